// Streams: fleet::Map, fleet::MapUnordered and fleet::AsCompleted on a real
// cluster (order, completion order, bounded memory, errors, early exit), and
// what they do without one (option checks, laziness, empty inputs).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <list>
#include <map>
#include <numeric>
#include <optional>
#if !defined(__clang__)
#include <ranges>
#endif
#include <string>
#include <utility>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

// Not registered with FLEET_REMOTE.
int NotRemote(int x) { return x; }

// The streams are single-pass ranges (input iterators, std::default_sentinel
// as end) yielding lvalue references.
using MapStream = decltype(fleet::Map(Square, std::declval<std::vector<int>&>()));
using UnorderedStream = decltype(fleet::MapUnordered(Square, std::declval<std::vector<int>>()));
using RefStream = decltype(fleet::AsCompleted(std::declval<std::vector<fleet::ObjectRef<int>>>()));
template <typename Stream>
using IteratorOf = decltype(std::declval<Stream&>().begin());
static_assert(std::input_iterator<IteratorOf<MapStream>>);
static_assert(std::input_iterator<IteratorOf<UnorderedStream>>);
static_assert(std::input_iterator<IteratorOf<RefStream>>);
static_assert(!std::forward_iterator<IteratorOf<MapStream>>);
static_assert(std::sentinel_for<std::default_sentinel_t, IteratorOf<MapStream>>);
static_assert(std::same_as<std::iter_reference_t<IteratorOf<MapStream>>, int&>);
static_assert(
    std::same_as<std::iter_reference_t<IteratorOf<UnorderedStream>>, std::pair<std::size_t, int>&>);
static_assert(std::same_as<std::iter_reference_t<IteratorOf<RefStream>>, fleet::ObjectRef<int>&>);
static_assert(!std::is_copy_constructible_v<MapStream>);

// Clang 14 cannot compile libstdc++ 12's <ranges> (std::ranges::begin
// fails); fleet's streams avoid it, and so do these tests under Clang.
#if !defined(__clang__)
#define FLEET_TEST_STD_RANGES 1
static_assert(std::ranges::input_range<MapStream>);
static_assert(std::ranges::input_range<UnorderedStream>);
static_assert(std::ranges::input_range<RefStream>);
#endif

// The numbers 0..size-1, counting how often an element is read.
class CountingRange {
 public:
  class iterator {
   public:
    iterator(int i, int* reads) : i_(i), reads_(reads) {}
    int operator*() const {
      ++*reads_;
      return i_;
    }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const iterator& other) const { return i_ != other.i_; }

   private:
    int i_;
    int* reads_;
  };

  CountingRange(int size, int* reads) : size_(size), reads_(reads) {}
  iterator begin() const { return iterator(0, reads_); }
  iterator end() const { return iterator(size_, reads_); }

 private:
  int size_;
  int* reads_;
};

std::vector<int> Iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<int> Squares(const std::vector<int>& inputs) {
  std::vector<int> out;
  for (int x : inputs) out.push_back(x * x);
  return out;
}

uint64_t ObjectCount(const nlohmann::json& status) {
  return status["objects"]["count"].get<uint64_t>();
}

// Opens a gate that GatedSquare waits at.
void OpenGate(const std::string& path) {
  std::ofstream gate(path);
  gate << "open\n";
}

// ---- without a cluster -----------------------------------------------------

TEST(StreamWithoutClusterTest, InvalidOptionsAndFunctionsAreRefusedAtTheCall) {
  ASSERT_FALSE(fleet::IsInitialized());
  const std::vector<int> inputs = {1, 2, 3};
  EXPECT_THROW(fleet::Map(Square, inputs, {.max_in_flight = 0}), fleet::Error);
  EXPECT_THROW(fleet::MapUnordered(Square, inputs, {.max_in_flight = 0}), fleet::Error);
  EXPECT_THROW(fleet::Map(fleet::Task<int(int)>("Square"), inputs, {.max_in_flight = 0}),
               fleet::Error);
  try {
    fleet::Map(Square, inputs, {.max_in_flight = 0});
  } catch (const fleet::Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("max_in_flight"));
  }
  EXPECT_THROW(fleet::Map(NotRemote, inputs), fleet::Error);
  EXPECT_THROW(fleet::MapUnordered(NotRemote, inputs), fleet::Error);

  std::vector<fleet::ObjectRef<int>> refs(2);  // empty refs
  EXPECT_THROW(fleet::AsCompleted(std::move(refs)), fleet::Error);
}

TEST(StreamWithoutClusterTest, NothingIsReadOrSubmittedBeforeBegin) {
  ASSERT_FALSE(fleet::IsInitialized());
  int reads = 0;
  CountingRange counted(10, &reads);
  auto stream = fleet::Map(Square, counted, {.max_in_flight = 2});
  auto unordered = fleet::MapUnordered(Square, counted);
  EXPECT_EQ(reads, 0);
  // begin() starts submitting, which needs fleet::Init.
  try {
    stream.begin();
    FAIL() << "begin() submitted without fleet::Init";
  } catch (const fleet::Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("not initialized"));
  }
  EXPECT_THROW(unordered.begin(), fleet::Error);
}

TEST(StreamWithoutClusterTest, EmptyInputsYieldNothing) {
  ASSERT_FALSE(fleet::IsInitialized());
  int yielded = 0;
  for (int v : fleet::Map(Square, std::vector<int>{})) yielded += v + 1;
  for (auto& [i, v] : fleet::MapUnordered(Square, std::vector<int>{})) yielded += v + 1;
  for (auto& ref : fleet::AsCompleted(std::vector<fleet::ObjectRef<int>>{})) {
    yielded += ref.valid() ? 1 : 2;
  }
  EXPECT_EQ(yielded, 0);
  auto stream = fleet::Map(Square, std::vector<int>{});
  auto it = stream.begin();
  EXPECT_TRUE(it == stream.end());
  EXPECT_THROW(*it, fleet::Error);  // dereferenced at the end
  EXPECT_THROW(++it, fleet::Error);
}

// ---- on a cluster ----------------------------------------------------------

class StreamingTest : public ClusterTest {};

TEST_F(StreamingTest, MapYieldsAThousandResultsInInputOrder) {
  // batch_size = 1: one task per input, as before batching.
  const std::vector<int> inputs = Iota(1000);
  std::vector<int> results;
  for (int sq : fleet::Map(Square, inputs,
                           {.max_in_flight = 64, .timeout = kResultTimeout, .batch_size = 1})) {
    results.push_back(sq);
  }
  EXPECT_THAT(results, ElementsAreArray(Squares(inputs)));
  EXPECT_EQ(cluster().Status()["tasks"]["submitted"].get<uint64_t>(), inputs.size());
}

TEST_F(StreamingTest, MapReportsItsProgress) {
  const std::vector<int> inputs = Iota(300);
  std::vector<fleet::MapProgress> reports;
  std::size_t taken = 0;
  for (auto [index, sq] : fleet::MapUnordered(
           Square, inputs,
           {.timeout = kResultTimeout,
            .on_progress = [&](const fleet::MapProgress& p) { reports.push_back(p); }})) {
    EXPECT_EQ(sq, inputs[index] * inputs[index]);
    ++taken;
    if (!reports.empty()) {
      EXPECT_LE(reports.back().done, taken);
    }
  }
  ASSERT_FALSE(reports.empty());
  // The last element is always reported, with the total the inputs gave.
  EXPECT_EQ(reports.back().done, inputs.size());
  EXPECT_EQ(reports.back().total, inputs.size());
  EXPECT_GT(reports.back().per_second, 0);
  ASSERT_TRUE(reports.back().eta_seconds.has_value());
  EXPECT_EQ(*reports.back().eta_seconds, 0);
  for (std::size_t i = 1; i < reports.size(); ++i) {
    EXPECT_LE(reports[i - 1].done, reports[i].done);
  }
  // Reports are spaced out, not one per element.
  EXPECT_LT(reports.size(), inputs.size());
}

TEST(StreamWithoutClusterTest, ProgressBarShowsCountRateAndEta) {
  const std::string bar = fleet::internal::FormatProgress(
      {.done = 250, .total = 1000, .per_second = 50, .eta_seconds = 15.0}, 60);
  EXPECT_THAT(bar, ::testing::StartsWith(" 25% [="));
  EXPECT_THAT(bar, ::testing::EndsWith("] 250/1000 50/s ETA 15s"));
  EXPECT_LE(bar.size(), 60u);
  EXPECT_EQ(fleet::internal::FormatProgress({.done = 12345, .per_second = 2000000}, 80),
            "fleet::Map 12.3k 2M/s");
}

// ---- batch sizing, without a cluster ---------------------------------------

using fleet::internal::BatchSizer;
constexpr uint64_t kMicrosecond = 1000;
constexpr uint64_t kMillisecond = 1000 * kMicrosecond;

TEST(BatchSizerTest, BatchSizeOneOrAFunctionWithoutABatchedFormNeverBatches) {
  for (const auto& [options, batchable] :
       {std::pair{fleet::MapOptions{.batch_size = 1}, true},
        std::pair{fleet::MapOptions{}, false}, std::pair{fleet::MapOptions{.batch_size = 8}, false}}) {
    BatchSizer sizer(options, batchable, 0ms);
    EXPECT_EQ(sizer.Size(), 1u);
    EXPECT_FALSE(sizer.UseBatchedForm(1));
    sizer.Observe(1, 1, 8);
    EXPECT_EQ(sizer.Size(), 1u);
    EXPECT_EQ(sizer.MaxInFlight(), fleet::kDefaultMaxInFlight);  // 64 tasks of one input
  }
  BatchSizer explicit_limit({.max_in_flight = 5, .batch_size = 1}, true, 0ms);
  EXPECT_EQ(explicit_limit.MaxInFlight(), 5u);
}

TEST(BatchSizerTest, AFixedSizeIsKeptWithinMaxInFlight) {
  BatchSizer sizer({.batch_size = 100}, true, 0ms);
  EXPECT_EQ(sizer.Size(), 100u);
  EXPECT_EQ(sizer.MaxInFlight(), 100 * fleet::kDefaultMaxInFlight);
  EXPECT_TRUE(sizer.UseBatchedForm(100));
  EXPECT_FALSE(sizer.UseBatchedForm(1));  // a last batch of one goes to fn itself
  sizer.Observe(100, 100 * kMillisecond, 800);  // slow: still fixed
  EXPECT_EQ(sizer.Size(), 100u);
  BatchSizer bounded({.max_in_flight = 30, .batch_size = 100}, true, 0ms);
  EXPECT_EQ(bounded.Size(), 30u);
  EXPECT_EQ(bounded.MaxInFlight(), 30u);
}

TEST(BatchSizerTest, AutomaticSizeDoublesForCheapInputsUpToTheCap) {
  BatchSizer sizer({}, true, 0ms);
  EXPECT_EQ(sizer.Size(), 1u);
  EXPECT_TRUE(sizer.UseBatchedForm(1));  // the first task measures
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 20; ++i) {
    const std::size_t size = sizer.Size();
    sizer.Observe(size, size * kMicrosecond / 10, size * 8);  // 0.1 us, 8 bytes per input
    sizes.push_back(sizer.Size());
  }
  EXPECT_EQ(sizes[0], 2u);
  EXPECT_EQ(sizes[1], 4u);
  EXPECT_EQ(sizes[2], 8u);
  EXPECT_EQ(sizes.back(), BatchSizer::kMaxBatchItems);
  EXPECT_EQ(sizer.MaxInFlight(), BatchSizer::kMaxBatchItems * fleet::kDefaultMaxInFlight);
  EXPECT_TRUE(sizer.UseBatchedForm(2));
}

TEST(BatchSizerTest, AutomaticSizeAimsAtAboutTenMillisecondsPerBatch) {
  BatchSizer sizer({}, true, 0ms);
  for (int i = 0; i < 20; ++i) sizer.Observe(sizer.Size(), sizer.Size() * 100 * kMicrosecond, 8);
  // 0.1 ms per input: between 5 and 20 ms per batch.
  EXPECT_GE(sizer.Size(), 50u);
  EXPECT_LE(sizer.Size(), 200u);
  // The inputs become slower: it shrinks to ~10 ms at once.
  sizer.Observe(sizer.Size(), sizer.Size() * 5 * kMillisecond, 8);
  EXPECT_EQ(sizer.Size(), 2u);
}

TEST(BatchSizerTest, SlowInputsGoOnePerTaskWithAnOccasionalProbe) {
  BatchSizer sizer({}, true, 0ms);
  ASSERT_TRUE(sizer.UseBatchedForm(1));
  EXPECT_FALSE(sizer.UseBatchedForm(1));  // one probe at a time
  sizer.Observe(1, 50 * kMillisecond, 8);
  EXPECT_EQ(sizer.Size(), 1u);
  std::size_t probes = 0;
  for (std::size_t i = 0; i < 10 * BatchSizer::kProbeInterval; ++i) {
    if (sizer.UseBatchedForm(1)) {
      ++probes;
      sizer.Observe(1, 50 * kMillisecond, 8);
    }
  }
  EXPECT_EQ(probes, 10u);
  EXPECT_EQ(sizer.Size(), 1u);
  EXPECT_EQ(sizer.MaxInFlight(), fleet::kDefaultMaxInFlight);
}

TEST(BatchSizerTest, BytesTimeoutAndMaxInFlightBoundTheSize) {
  BatchSizer big({}, true, 0ms);
  for (int i = 0; i < 20; ++i) big.Observe(big.Size(), 1, big.Size() * 100'000);
  EXPECT_LE(big.Size() * 100'000, BatchSizer::kMaxBatchBytes);
  EXPECT_GE(big.Size(), 5u);

  BatchSizer timed({}, true, 4ms);  // a quarter of it: 1 ms
  for (int i = 0; i < 20; ++i) timed.Observe(timed.Size(), timed.Size() * 100 * kMicrosecond, 8);
  EXPECT_LE(timed.Size(), 10u);

  BatchSizer bounded({.max_in_flight = 40}, true, 0ms);
  for (int i = 0; i < 20; ++i) bounded.Observe(bounded.Size(), 1, 8);
  EXPECT_EQ(bounded.Size(), 10u);
  EXPECT_EQ(bounded.MaxInFlight(), 40u);
}

TEST(BatchSizerTest, FailuresHalveTheSizeOrStopBatching) {
  BatchSizer sizer({}, true, 0ms);
  for (int i = 0; i < 20; ++i) sizer.Observe(sizer.Size(), 1, 8);
  ASSERT_EQ(sizer.Size(), BatchSizer::kMaxBatchItems);
  sizer.BatchFailed("user_exception");
  EXPECT_EQ(sizer.Size(), BatchSizer::kMaxBatchItems / 2);
  EXPECT_TRUE(sizer.batching());
  // Workers whose task library has no batched form.
  sizer.BatchFailed("function_not_found");
  EXPECT_FALSE(sizer.batching());
  EXPECT_EQ(sizer.Size(), 1u);
  EXPECT_FALSE(sizer.UseBatchedForm(1));
  BatchSizer mismatch({.batch_size = 50}, true, 0ms);
  mismatch.BatchFailed("signature_mismatch");
  EXPECT_EQ(mismatch.Size(), 1u);
}

TEST_F(StreamingTest, MapAcceptsAnyInputRange) {
  const std::vector<int> expected = Squares(Iota(20));
  auto collect = [](auto&& stream) {
    std::vector<int> out;
    for (int v : stream) out.push_back(v);
    return out;
  };
  // A hand-written range, an rvalue container of another convertible type,
  // a braced list.
  int reads = 0;
  EXPECT_EQ(collect(fleet::Map(Square, CountingRange(20, &reads), {.timeout = kResultTimeout})),
            expected);
  EXPECT_EQ(reads, 20);
  std::list<short> shorts;
  for (int i = 0; i < 20; ++i) shorts.push_back(static_cast<short>(i));
  EXPECT_EQ(collect(fleet::Map(Square, std::move(shorts), {.timeout = kResultTimeout})), expected);
  EXPECT_EQ(collect(fleet::Map(Square, {3, 4}, {.timeout = kResultTimeout})),
            (std::vector<int>{9, 16}));
  // A TaskCaller named by string, and ObjectRefs as inputs.
  EXPECT_EQ(collect(fleet::Map(fleet::Task<int(int)>("Square"), Iota(20),
                               {.max_in_flight = 3, .timeout = kResultTimeout})),
            expected);
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < 20; ++i) refs.push_back(fleet::Put(i));
  EXPECT_EQ(collect(fleet::Map(Square, refs, {.max_in_flight = 5, .timeout = kResultTimeout})),
            expected);
#ifdef FLEET_TEST_STD_RANGES
  // A view, and an infinite one: submitted lazily, so a loop that stops is fine.
  EXPECT_EQ(collect(fleet::Map(Square, std::views::iota(0, 20), {.timeout = kResultTimeout})),
            expected);
  std::vector<int> first;
  for (int v :
       fleet::Map(Square, std::views::iota(0), {.max_in_flight = 4, .timeout = kResultTimeout})) {
    first.push_back(v);
    if (first.size() == 10) break;
  }
  EXPECT_EQ(first, Squares(Iota(10)));
#endif
}

TEST_F(StreamingTest, MapUnorderedYieldsEveryIndexOnce) {
  const std::vector<int> inputs = Iota(300);
  std::map<std::size_t, int> seen;
  std::size_t yielded = 0;
  for (auto& [i, sq] :
       fleet::MapUnordered(Square, inputs, {.max_in_flight = 16, .timeout = kResultTimeout})) {
    ++yielded;
    EXPECT_TRUE(seen.emplace(i, sq).second) << "index " << i << " yielded twice";
  }
  EXPECT_EQ(yielded, inputs.size());
  ASSERT_EQ(seen.size(), inputs.size());
  for (const auto& [i, sq] : seen) EXPECT_EQ(sq, inputs[i] * inputs[i]) << "index " << i;
}

TEST_F(StreamingTest, MapUnorderedDoesNotWaitForASlowElement) {
  // Input 0 cannot finish before the gate opens, and the gate opens only
  // once every other input was yielded: it must come last.
  const std::string gate = cluster().temp_dir() + "/unordered-gate";
  constexpr int kInputs = 20;
  std::vector<GatedInput> inputs;
  for (int i = 0; i < kInputs; ++i) inputs.push_back({i, i == 0 ? gate : std::string()});
  std::vector<std::size_t> order;
  for (auto& [i, sq] :
       fleet::MapUnordered(GatedSquare, inputs, {.max_in_flight = 4, .timeout = kResultTimeout})) {
    EXPECT_EQ(sq, static_cast<int>(i * i));
    order.push_back(i);
    if (order.size() == kInputs - 1) OpenGate(gate);
  }
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kInputs));
  EXPECT_EQ(order.back(), 0u);
  std::vector<std::size_t> all(kInputs);
  std::iota(all.begin(), all.end(), std::size_t{0});
  EXPECT_THAT(order, UnorderedElementsAreArray(all));
}

TEST_F(StreamingTest, AsCompletedYieldsEveryRefOnceAndTheSlowOneLast) {
  const uint64_t base = ObjectCount(cluster().Status());
  const std::string gate = cluster().temp_dir() + "/as-completed-gate";
  std::vector<fleet::ObjectRef<int>> refs;
  // Submitted first, finishes last: it waits for the gate, which opens once
  // every other ref was yielded.
  refs.push_back(fleet::Task(GatedSquare).Remote(GatedInput{7, gate}));
  std::map<std::string, int> expected;
  for (int i = 0; i < 20; ++i) {
    refs.push_back(fleet::Task(Square).Remote(i));
    expected[refs.back().Id()] = i * i;
  }
  refs.push_back(fleet::Task(SquareNonNegative).Remote(-1));
  const std::vector<std::string> ids = Ids(refs);
  const std::string& slow_id = ids.front();
  const std::string& failing_id = ids.back();

  std::vector<std::string> yielded;
  for (auto& done : fleet::AsCompleted(std::move(refs), {.timeout = kResultTimeout})) {
    yielded.push_back(done.Id());
    if (done.Id() == failing_id) {
      // Yielding never throws; Get shows the failure.
      std::optional<fleet::TaskError> error = GetError(done);
      ASSERT_TRUE(error.has_value());
      EXPECT_EQ(error->exception_type(), "fleet_it::InvalidInput");
    } else if (done.Id() == slow_id) {
      EXPECT_EQ(done.Get(kResultTimeout), 49);
    } else {
      EXPECT_EQ(done.Get(kResultTimeout), expected.at(done.Id()));
    }
    if (yielded.size() == ids.size() - 1) OpenGate(gate);
  }
  EXPECT_THAT(yielded, UnorderedElementsAreArray(ids));
  ASSERT_FALSE(yielded.empty());
  EXPECT_EQ(yielded.back(), slow_id);
  // The stream owned the refs and dropped each one: nothing is left.
  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) { return ObjectCount(s) == base; }, kStatusTimeout, &after))
      << after.dump(2);
}

// Calls `take` until it stops throwing GetTimeout, for at most kResultTimeout.
template <typename F>
auto RetryOnTimeout(F take) {
  const auto deadline = std::chrono::steady_clock::now() + kResultTimeout;
  while (true) {
    try {
      return take();
    } catch (const fleet::GetTimeout&) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
    }
  }
}

TEST_F(StreamingTest, TimeoutThrowsGetTimeoutAndTheStreamGoesOn) {
  // Input 0 waits at a gate that stays closed until the checks below, so a
  // short timeout must expire; once the gate opens, the same streams go on.
  const std::string gate = cluster().temp_dir() + "/timeout-gate";
  const std::vector<GatedInput> inputs = {{3, gate}, {4, ""}};
  const fleet::MapOptions options = {.max_in_flight = 2, .timeout = 20ms};
  auto ordered = fleet::Map(GatedSquare, inputs, options);
  auto unordered = fleet::MapUnordered(GatedSquare, inputs, {.max_in_flight = 1, .timeout = 20ms});
  std::vector<fleet::ObjectRef<int>> refs;
  refs.push_back(fleet::Task(GatedSquare).Remote(GatedInput{5, gate}));
  auto completed = fleet::AsCompleted(std::move(refs), {.timeout = 20ms});

  auto o = ordered.begin();
  EXPECT_THROW(*o, fleet::GetTimeout);
  EXPECT_THROW(++o, fleet::GetTimeout);  // moving past an element waits for it too
  auto u = unordered.begin();
  EXPECT_THROW(*u, fleet::GetTimeout);
  auto c = completed.begin();
  EXPECT_THROW(*c, fleet::GetTimeout);
  OpenGate(gate);

  EXPECT_EQ(RetryOnTimeout([&] { return *o; }), 9);
  ++o;
  EXPECT_EQ(RetryOnTimeout([&] { return *o; }), 16);
  ++o;
  EXPECT_TRUE(o == ordered.end());
  std::map<std::size_t, int> got;
  for (; u != unordered.end(); ++u) got.insert(RetryOnTimeout([&] { return *u; }));
  EXPECT_EQ(got, (std::map<std::size_t, int>{{0, 9}, {1, 16}}));
  EXPECT_EQ(RetryOnTimeout([&] { return *c; }).Get(kResultTimeout), 25);
  ++c;
  EXPECT_TRUE(c == completed.end());
}

TEST_F(StreamingTest, MapKeepsAtMostMaxInFlightResultsInTheCluster) {
  constexpr std::size_t kMaxInFlight = 4;
  constexpr int kTasks = 50;
  // The scheduler handles a batch's submissions before its releases, and a
  // worker deletes an object a moment after the scheduler forgets it.
  constexpr uint64_t kSlack = 2;
  const nlohmann::json before = cluster().Status();
  const uint64_t base_count = ObjectCount(before);
  const double base_store = SumOverWorkers(before, "store_objects");

  uint64_t max_count = 0;
  double max_store = 0;
  auto sample = [&](const nlohmann::json& s) {
    max_count = std::max(max_count, ObjectCount(s) - std::min(ObjectCount(s), base_count));
    max_store = std::max(max_store, SumOverWorkers(s, "store_objects") - base_store);
  };
  int consumed = 0;
  const std::vector<int> seeds = Iota(kTasks);
  for (fleet::Array<double>& a : fleet::Map(
           FourMiBArray, seeds, {.max_in_flight = kMaxInFlight, .timeout = kResultTimeout})) {
    ASSERT_EQ(a.size(), static_cast<std::size_t>(kFourMiBOfDoubles));
    EXPECT_EQ(a[1], BigArrayValue(consumed, 1));
    EXPECT_EQ(a[a.size() - 1], BigArrayValue(consumed, a.size() - 1));
    sample(cluster().Status());
    if (consumed == kTasks / 2) {
      // Halfway, hold the loop until the stores have reported (workers
      // report them by heartbeat) the results in flight, and no more.
      nlohmann::json held;
      EXPECT_TRUE(cluster().WaitForStatus(
          [&](const nlohmann::json& s) {
            sample(s);
            return ObjectCount(s) == base_count + kMaxInFlight &&
                   SumOverWorkers(s, "store_objects") == base_store + kMaxInFlight;
          },
          kStatusTimeout, &held))
          << held.dump(2);
    }
    ++consumed;
  }
  EXPECT_EQ(consumed, kTasks);
  EXPECT_LE(max_count, kMaxInFlight + kSlack) << "objects counted by the scheduler";
  EXPECT_LE(max_store, static_cast<double>(kMaxInFlight + kSlack)) << "objects in the stores";
  EXPECT_EQ(cluster().Status()["tasks"]["submitted"].get<uint64_t>(),
            static_cast<uint64_t>(kTasks));

  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        return ObjectCount(s) == base_count && SumOverWorkers(s, "store_objects") == base_store;
      },
      kStatusTimeout, &after))
      << "objects left after the loop: " << after.dump(2);
}

TEST_F(StreamingTest, FailedElementThrowsWhenReached) {
  const uint64_t base = ObjectCount(cluster().Status());
  std::vector<int> inputs = Iota(20);
  inputs[10] = -1;
  const fleet::MapOptions options = {.max_in_flight = 4, .timeout = kResultTimeout};

  // Map: the ten before it are delivered, then its TaskError.
  std::vector<int> delivered;
  try {
    for (int v : fleet::Map(SquareNonNegative, inputs, options)) delivered.push_back(v);
    ADD_FAILURE() << "Map finished without the TaskError of input 10";
  } catch (const fleet::TaskError& e) {
    EXPECT_EQ(e.function_name(), "SquareNonNegative");
    EXPECT_EQ(e.exception_type(), "fleet_it::InvalidInput");
    EXPECT_THAT(e.message(), HasSubstr("negative input -1"));
  }
  EXPECT_THAT(delivered, ElementsAreArray(Squares(Iota(10))));

  // A hand-written loop may move past the failure and go on.
  auto stream = fleet::Map(SquareNonNegative, inputs, options);
  std::vector<int> values;
  int failures = 0;
  for (auto it = stream.begin(); it != stream.end(); ++it) {
    try {
      values.push_back(*it);
    } catch (const fleet::TaskError&) {
      ++failures;
      EXPECT_THROW(*it, fleet::TaskError);  // again, until the loop moves on
    }
  }
  EXPECT_EQ(failures, 1);
  std::vector<int> others = Squares(inputs);
  others.erase(others.begin() + 10);
  EXPECT_THAT(values, ElementsAreArray(others));

  // MapUnordered: everything yielded before the failure is right.
  std::map<std::size_t, int> unordered;
  bool threw = false;
  try {
    for (auto& [i, sq] : fleet::MapUnordered(SquareNonNegative, inputs, options)) {
      unordered[i] = sq;
    }
  } catch (const fleet::TaskError& e) {
    threw = true;
    EXPECT_EQ(e.exception_type(), "fleet_it::InvalidInput");
  }
  EXPECT_TRUE(threw);
  EXPECT_EQ(unordered.count(10), 0u);
  for (const auto& [i, sq] : unordered) EXPECT_EQ(sq, inputs[i] * inputs[i]) << "index " << i;

  // And the failed stream left nothing behind.
  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) { return ObjectCount(s) == base; }, kStatusTimeout, &after))
      << after.dump(2);
}

TEST_F(StreamingTest, BreakingOutEarlyDropsTheRefsInFlight) {
  constexpr std::size_t kMaxInFlight = 8;
  constexpr std::size_t kTaken = 5;
  const nlohmann::json before = cluster().Status();
  const uint64_t base_count = ObjectCount(before);
  const double base_store = SumOverWorkers(before, "store_objects");
  auto submitted = [this] { return cluster().Status()["tasks"]["submitted"].get<uint64_t>(); };
  {
    auto stream = fleet::Map(FourMiBArray, Iota(1000),
                             {.max_in_flight = kMaxInFlight, .timeout = kResultTimeout});
    std::size_t taken = 0;
    for (fleet::Array<double>& a : stream) {
      EXPECT_EQ(a.size(), static_cast<std::size_t>(kFourMiBOfDoubles));
      if (++taken == kTaken) break;
    }
    // The stream still holds the results in flight, and submitted no more.
    nlohmann::json during;
    EXPECT_TRUE(cluster().WaitForStatus(
        [&](const nlohmann::json& s) { return ObjectCount(s) == base_count + kMaxInFlight; },
        kStatusTimeout, &during))
        << during.dump(2);
    EXPECT_LE(submitted(), kTaken + kMaxInFlight);
  }
  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        return ObjectCount(s) == base_count && SumOverWorkers(s, "store_objects") == base_store;
      },
      kStatusTimeout, &after))
      << "objects left after the stream was dropped: " << after.dump(2);
  EXPECT_LE(submitted(), kTaken + kMaxInFlight);

  // AsCompleted, left after two refs, drops the rest with the stream.
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < 10; ++i) refs.push_back(fleet::Task(Square).Remote(i));
  int seen = 0;
  for (auto& done : fleet::AsCompleted(std::move(refs), {.timeout = kResultTimeout})) {
    EXPECT_TRUE(done.valid());
    if (++seen == 2) break;
  }
  EXPECT_TRUE(
      cluster().WaitForStatus([&](const nlohmann::json& s) { return ObjectCount(s) == base_count; },
                              kStatusTimeout, &after))
      << after.dump(2);
}

// ---- batches -----------------------------------------------------------------

uint64_t Submitted(const nlohmann::json& status) {
  return status["tasks"]["submitted"].get<uint64_t>();
}

TEST_F(StreamingTest, FixedBatchesKeepResultsAndOrder) {
  const std::vector<int> inputs = Iota(2000);
  std::vector<int> results;
  for (int sq : fleet::Map(Square, inputs, {.timeout = kResultTimeout, .batch_size = 100})) {
    results.push_back(sq);
  }
  EXPECT_THAT(results, ElementsAreArray(Squares(inputs)));
  EXPECT_EQ(Submitted(cluster().Status()), 20u);  // 100 inputs per task

  // MapUnordered: every index once, the inputs of a batch in input order;
  // the last batch is short (2000 = 13 * 150 + 50). By string, too.
  std::map<std::size_t, int> seen;
  std::size_t in_batch_order = 0;
  std::optional<std::size_t> previous;
  for (auto& [i, sq] : fleet::MapUnordered(fleet::Task<int(int)>("Square"), inputs,
                                           {.timeout = kResultTimeout, .batch_size = 150})) {
    EXPECT_TRUE(seen.emplace(i, sq).second) << "index " << i << " yielded twice";
    if (previous && i % 150 != 0 && i == *previous + 1) ++in_batch_order;
    previous = i;
  }
  ASSERT_EQ(seen.size(), inputs.size());
  for (const auto& [i, sq] : seen) EXPECT_EQ(sq, inputs[i] * inputs[i]) << "index " << i;
  EXPECT_EQ(in_batch_order, inputs.size() - 14);  // all but each batch's first
  EXPECT_EQ(Submitted(cluster().Status()), 20u + 14u);
}

TEST_F(StreamingTest, AutomaticBatchingBatchesCheapInputs) {
  const std::vector<int> inputs = Iota(50'000);
  std::vector<int> results;
  results.reserve(inputs.size());
  for (int sq : fleet::Map(Square, inputs, {.timeout = kResultTimeout})) results.push_back(sq);
  EXPECT_THAT(results, ElementsAreArray(Squares(inputs)));
  const uint64_t ordered_tasks = Submitted(cluster().Status());
  EXPECT_LT(ordered_tasks, inputs.size() / 20) << "cheap inputs were not batched";

  std::vector<bool> seen(inputs.size());
  std::size_t yielded = 0;
  for (auto& [i, sq] : fleet::MapUnordered(Square, inputs, {.timeout = kResultTimeout})) {
    ASSERT_LT(i, inputs.size());
    EXPECT_FALSE(seen[i]) << "index " << i << " yielded twice";
    seen[i] = true;
    EXPECT_EQ(sq, inputs[i] * inputs[i]);
    ++yielded;
  }
  EXPECT_EQ(yielded, inputs.size());
  EXPECT_LT(Submitted(cluster().Status()) - ordered_tasks, inputs.size() / 20);
}

TEST_F(StreamingTest, AutomaticBatchingKeepsSlowInputsOnePerTask) {
  // 50 ms per input: five times the target of a batch; more inputs than
  // the first submissions, so later ones are sized from what was measured.
  const std::vector<int> inputs(120, 50);
  std::size_t yielded = 0;
  for (auto& [i, ms] : fleet::MapUnordered(SleepMs, inputs, {.timeout = kResultTimeout})) {
    EXPECT_EQ(ms, 50);
    ++yielded;
  }
  EXPECT_EQ(yielded, inputs.size());
  EXPECT_EQ(Submitted(cluster().Status()), inputs.size());
}

TEST_F(StreamingTest, AFailingInputInABatchFailsAloneWithItsOwnError) {
  std::vector<int> inputs = Iota(1000);
  inputs[530] = -1;
  const uint64_t base_objects = ObjectCount(cluster().Status());
  // The error without batching, for comparison.
  std::optional<fleet::TaskError> alone = GetError(fleet::Task(SquareNonNegative).Remote(-1));
  ASSERT_TRUE(alone.has_value());
  const uint64_t before = Submitted(cluster().Status());

  std::vector<int> delivered;
  try {
    for (int v : fleet::Map(SquareNonNegative, inputs,
                            {.timeout = kResultTimeout, .batch_size = 100})) {
      delivered.push_back(v);
    }
    ADD_FAILURE() << "Map finished without the TaskError of input 530";
  } catch (const fleet::TaskError& e) {
    EXPECT_EQ(e.function_name(), "SquareNonNegative");
    EXPECT_EQ(e.kind(), alone->kind());
    EXPECT_EQ(e.exception_type(), alone->exception_type());
    EXPECT_EQ(e.message(), alone->message());
  }
  EXPECT_THAT(delivered, ElementsAreArray(Squares(Iota(530))));
  // Batches up to the failed one (6), then its inputs one per task (100).
  EXPECT_GE(Submitted(cluster().Status()) - before, 6u + 100u);

  // A hand-written loop moves past it and gets every other input right,
  // with automatic batching as well.
  std::vector<int> others = Squares(inputs);
  others.erase(others.begin() + 530);
  for (std::size_t batch_size : {std::size_t{100}, std::size_t{0}}) {
    auto stream = fleet::Map(SquareNonNegative, inputs,
                             {.timeout = kResultTimeout, .batch_size = batch_size});
    std::vector<int> values;
    int failures = 0;
    for (auto it = stream.begin(); it != stream.end(); ++it) {
      try {
        values.push_back(*it);
      } catch (const fleet::TaskError& e) {
        ++failures;
        EXPECT_EQ(e.message(), alone->message());
        EXPECT_THROW(*it, fleet::TaskError);  // again, until the loop moves on
      }
    }
    EXPECT_EQ(failures, 1) << "batch_size " << batch_size;
    EXPECT_THAT(values, ElementsAreArray(others)) << "batch_size " << batch_size;
  }

  // MapUnordered: every other index once with its value, and the failure.
  auto stream = fleet::MapUnordered(SquareNonNegative, inputs,
                                    {.timeout = kResultTimeout, .batch_size = 64});
  std::map<std::size_t, int> unordered;
  int failures = 0;
  for (auto it = stream.begin(); it != stream.end(); ++it) {
    try {
      auto& [i, sq] = *it;
      EXPECT_TRUE(unordered.emplace(i, sq).second);
    } catch (const fleet::TaskError& e) {
      ++failures;
      EXPECT_EQ(e.message(), alone->message());
    }
  }
  EXPECT_EQ(failures, 1);
  EXPECT_EQ(unordered.size(), inputs.size() - 1);
  EXPECT_EQ(unordered.count(530), 0u);
  for (const auto& [i, sq] : unordered) EXPECT_EQ(sq, inputs[i] * inputs[i]) << "index " << i;

  // Skipping elements unread (++ without *) moves past the failure too.
  auto skipped = fleet::Map(SquareNonNegative, inputs,
                            {.timeout = kResultTimeout, .batch_size = 100});
  std::size_t moved = 0;
  for (auto it = skipped.begin(); it != skipped.end(); ++it) ++moved;
  EXPECT_EQ(moved, inputs.size());

  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) { return ObjectCount(s) == base_objects; }, kStatusTimeout,
      &after))
      << after.dump(2);
}

TEST_F(StreamingTest, BatchedProgressCountsInputs) {
  const std::vector<int> inputs = Iota(1000);
  std::vector<fleet::MapProgress> reports;
  std::size_t taken = 0;
  for (int sq : fleet::Map(
           Square, inputs,
           {.timeout = kResultTimeout,
            .on_progress = [&](const fleet::MapProgress& p) { reports.push_back(p); },
            .batch_size = 50})) {
    EXPECT_EQ(sq, inputs[taken] * inputs[taken]);
    ++taken;
    if (!reports.empty()) {
      EXPECT_LE(reports.back().done, taken);
    }
  }
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back().done, inputs.size());  // inputs, not the 20 tasks
  EXPECT_EQ(reports.back().total, inputs.size());
  EXPECT_EQ(Submitted(cluster().Status()), 20u);
}

TEST_F(StreamingTest, BatchesRespectMaxInFlightAndDroppingTheStreamStopsThem) {
  constexpr std::size_t kMaxInFlight = 400;
  constexpr std::size_t kBatch = 100;
  constexpr std::size_t kTaken = 250;
  const uint64_t base = ObjectCount(cluster().Status());
  {
    auto stream = fleet::Map(Square, Iota(100'000),
                             {.max_in_flight = kMaxInFlight, .timeout = kResultTimeout,
                              .batch_size = kBatch});
    std::size_t taken = 0;
    for (int sq : stream) {
      EXPECT_EQ(sq, static_cast<int>(taken * taken));
      if (++taken == kTaken) break;
    }
    // Inputs out: at most max_in_flight, in whole batches: the first four,
    // and one more each time the loop finished one, (250 + 400) / 100 in
    // all (the client submits asynchronously: wait for the scheduler to
    // have them all).
    nlohmann::json during;
    EXPECT_TRUE(cluster().WaitForStatus(
        [&](const nlohmann::json& s) { return Submitted(s) == 6; }, kStatusTimeout, &during))
        << during.dump(2);
  }
  // Dropped: its refs are released and nothing more is submitted.
  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) { return ObjectCount(s) == base; }, kStatusTimeout, &after))
      << after.dump(2);
  EXPECT_EQ(Submitted(after), 6u);
  const uint64_t at_drop = Submitted(after);

  // Automatic batches within an explicit max_in_flight: at most a quarter.
  std::size_t yielded = 0;
  for (int sq : fleet::Map(Square, Iota(5000), {.max_in_flight = 200, .timeout = kResultTimeout})) {
    EXPECT_EQ(sq, static_cast<int>(yielded * yielded));
    ++yielded;
  }
  EXPECT_EQ(yielded, 5000u);
  EXPECT_GE(Submitted(cluster().Status()) - at_drop, 5000u / 50);
}

TEST_F(StreamingTest, LargeBatchesBothWaysDoNotStallTheExecutorPipeline) {
  // Automatic batching ramps up through many short tasks, so that each
  // slot pipelines many tasks into its executor, to batches of ~50 KB of
  // inputs and ~50 KB of results (5 bytes each way per input). A slot that
  // queued more bytes than the executor's socket takes, while the executor
  // waited to hand back a result, used to wait for ever.
  std::vector<int> inputs;
  for (int i = 0; i < 1'000'000; ++i) inputs.push_back(-33'000 - i % 13'000);  // squares < 2^31
  std::size_t taken = 0;
  for (int sq : fleet::Map(Square, inputs, {.timeout = kResultTimeout})) {
    ASSERT_EQ(sq, inputs[taken] * inputs[taken]) << "input " << taken;
    ++taken;
  }
  EXPECT_EQ(taken, inputs.size());
}

}  // namespace
}  // namespace fleet_it
