// Objects: large results fetched by the client and by tasks on another
// worker, Put values, and objects freed once no ref is left.
#include <algorithm>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using ::testing::Contains;

constexpr int64_t kFiftyMiBOfDoubles = 50 * 1024 * 1024 / sizeof(double);

// The sum of elements 1..size-1 of MakeBigArray(size, seed); every partial
// sum is an integer below 2^53, so it is exact in any order.
double ExpectedBigArraySum(int64_t size, double seed) {
  double sum = 0;
  for (int64_t i = 1; i < size; ++i) sum += BigArrayValue(seed, static_cast<uint64_t>(i));
  return sum;
}

TEST_F(ClusterTest, FiftyMegabyteResultReachesClientAndTaskOnOtherWorker) {
  constexpr double kSeed = 7;
  fleet::ObjectRef<fleet::Array<double>> big =
      fleet::Task(MakeBigArray).Remote(kFiftyMiBOfDoubles, kSeed);

  // The client fetches it, whole and intact.
  fleet::Array<double> local = big.Get(kResultTimeout);
  ASSERT_EQ(local.size(), static_cast<std::size_t>(kFiftyMiBOfDoubles));
  const int producer_pid = static_cast<int>(local[0]);
  EXPECT_THAT(WorkerPids(), Contains(producer_pid));
  std::size_t mismatches = 0;
  for (std::size_t i = 1; i < local.size(); ++i) mismatches += local[i] != BigArrayValue(kSeed, i);
  EXPECT_EQ(mismatches, 0u);

  // Tasks consume it. Each consumer holds a slot for a while, so once the
  // producer's worker is busy the rest go to the other worker, which must
  // fetch the object from its peer. Retried a few times in case every
  // consumer still landed on the producer's worker.
  const double expected_sum = ExpectedBigArraySum(kFiftyMiBOfDoubles, kSeed);
  bool ran_on_other_worker = false;
  for (int attempt = 0; attempt < 3 && !ran_on_other_worker; ++attempt) {
    std::vector<fleet::ObjectRef<ArrayDigest>> digests;
    for (int i = 0; i < 2 * kWorkers * kSlotsPerWorker; ++i) {
      digests.push_back(fleet::Task(DigestBigArray).Remote(big, kSeed, 500));
    }
    for (const auto& ref : digests) {
      ArrayDigest d = ref.Get(kResultTimeout);
      EXPECT_EQ(d.size, static_cast<uint64_t>(kFiftyMiBOfDoubles));
      EXPECT_TRUE(d.pattern_ok);
      EXPECT_EQ(d.sum, expected_sum);
      EXPECT_EQ(d.producer_pid, producer_pid);
      EXPECT_THAT(WorkerPids(), Contains(d.consumer_pid));
      if (d.consumer_pid != producer_pid) ran_on_other_worker = true;
    }
  }
  EXPECT_TRUE(ran_on_other_worker)
      << "every consumer ran on the producer's worker (pid " << producer_pid << ")";
}

TEST_F(ClusterTest, PutSmallAndLargeValuesAsTaskArguments) {
  // Small: travels inline.
  fleet::ObjectRef<std::string> small = fleet::Put(std::string("abc"));
  EXPECT_EQ(fleet::Task(Repeat).Remote(small, 3).Get(kResultTimeout), "abcabcabc");
  EXPECT_EQ(fleet::Task(Length).Remote(small).Get(kResultTimeout), 3u);
  EXPECT_EQ(small.Get(kResultTimeout), "abc");

  // Large: 20 MiB, uploaded to a worker and fetched by tasks elsewhere.
  constexpr std::size_t kElements = 20 * 1024 * 1024 / sizeof(double);
  fleet::Array<double> values(kElements);
  double expected = 0;
  for (std::size_t i = 0; i < kElements; ++i) {
    values[i] = static_cast<double>(i % 1000);
    expected += values[i];
  }
  fleet::ObjectRef<fleet::Array<double>> large = fleet::Put(values);
  std::vector<fleet::ObjectRef<double>> sums;
  for (int i = 0; i < kWorkers * kSlotsPerWorker; ++i) {
    sums.push_back(fleet::Task(SumArray).Remote(large));
  }
  for (const auto& s : sums) EXPECT_EQ(s.Get(kResultTimeout), expected);
  EXPECT_TRUE(large.Get(kResultTimeout) == values) << "the Put value came back different";

  // A large value passed directly is Put behind the scenes.
  EXPECT_EQ(fleet::Task(SumArray).Remote(values).Get(kResultTimeout), expected);
}

TEST_F(ClusterTest, LargeStringResultAndArgument) {
  // 5 MiB string result (msgpack str, not Array) round trip through a task.
  fleet::ObjectRef<std::string> text =
      fleet::Task(Repeat).Remote(std::string("0123456789"), 512 * 1024);
  EXPECT_EQ(fleet::Task(Length).Remote(text).Get(kResultTimeout), 5u * 1024 * 1024);
  std::string value = text.Get(kResultTimeout);
  ASSERT_EQ(value.size(), 5u * 1024 * 1024);
  EXPECT_EQ(value.substr(0, 12), "012345678901");
  EXPECT_EQ(value.substr(value.size() - 3), "789");
}

TEST_F(ClusterTest, ObjectsAreFreedWhenRefsAreDropped) {
  const nlohmann::json before = cluster().Status();
  const uint64_t base = before["objects"]["count"].get<uint64_t>();
  constexpr int kSmall = 50;
  {
    std::vector<fleet::ObjectRef<int>> squares;
    for (int i = 0; i < kSmall; ++i) squares.push_back(fleet::Task(Square).Remote(i));
    fleet::ObjectRef<std::string> small_put = fleet::Put(std::string("small"));
    fleet::ObjectRef<fleet::Array<double>> large_put =
        fleet::Put(fleet::Array<double>(256 * 1024, 1.0));  // 2 MiB: held by a worker
    fleet::ObjectRef<fleet::Array<double>> large_result =
        fleet::Task(MakeBigArray).Remote(256 * 1024, 1.0);
    auto [ready, pending] = fleet::Wait(squares, squares.size(), kResultTimeout);
    ASSERT_TRUE(pending.empty());
    EXPECT_EQ(fleet::Task(SumArray).Remote(large_put).Get(kResultTimeout), 256.0 * 1024);
    EXPECT_EQ(large_result.Get(kResultTimeout).size(), 256u * 1024);

    nlohmann::json during;
    EXPECT_TRUE(cluster().WaitForStatus(
        [&](const nlohmann::json& s) {
          return s["objects"]["count"].get<uint64_t>() >= base + kSmall + 3;
        },
        kStatusTimeout, &during))
        << during.dump(2);
    // The workers' stores hold the large objects (reported by heartbeat);
    // the squares, tiny, live only in the scheduler.
    EXPECT_TRUE(cluster().WaitForStatus(
        [&](const nlohmann::json& s) {
          const uint64_t stored = SumOverWorkers(s, "store_objects");
          return stored >= 2 && stored < kSmall;
        },
        kStatusTimeout, &during))
        << during.dump(2);
  }
  // Every ref is gone: the scheduler forgets the objects and the workers
  // delete them from their stores.
  nlohmann::json after;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) { return s["objects"]["count"].get<uint64_t>() == base; },
      kStatusTimeout, &after))
      << "objects still counted after every ref was dropped: " << after.dump(2);
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        return SumOverWorkers(s, "store_objects") == 0 && SumOverWorkers(s, "store_bytes") == 0;
      },
      kStatusTimeout, &after))
      << "workers still store objects after every ref was dropped: " << after.dump(2);
}

}  // namespace
}  // namespace fleet_it
