// Shared arguments and results between processes: one large Put object
// read by many tasks on two workers moves to each worker at most once,
// however many tasks there read it at the same time (the seed's 80 MB array
// read by 95 tasks), and is not copied at all between workers on one host;
// a client on a worker's host reads results in place.
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

constexpr int64_t kElements = 10'000'000;  // 80 MB of doubles
constexpr int kTasks = 95;
constexpr int64_t kWindow = 500'000;
constexpr int64_t kStep = 100'000;

// Every worker refuses same-host shared memory: objects move over gRPC, as
// between hosts.
class GrpcTransferTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override { return {"--local_store=false"}; }
};

// Runs the seed's W4 shape and returns the status read after it: 95 tasks
// over one 80 MB Put, on both workers, every result checked.
nlohmann::json RunSharedArgumentJob(const fleet::test::LocalProcessCluster& cluster,
                                    const fleet::Array<double>& data) {
  const auto ref = fleet::Put(data);
  std::vector<fleet::ObjectRef<WindowMeanResult>> refs;
  for (int t = 0; t < kTasks; ++t) {
    const int64_t start = (t * kStep) % (kElements - kWindow);
    refs.push_back(fleet::Task(WindowMean).Remote(ref, start, start + kWindow));
  }
  std::set<int> pids;
  for (int t = 0; t < kTasks; ++t) {
    const WindowMeanResult got = refs[t].Get(kResultTimeout);
    const int64_t start = (t * kStep) % (kElements - kWindow);
    double want = 0;
    for (int64_t i = start; i < start + kWindow; ++i) want += data[i];
    want /= kWindow;
    EXPECT_NEAR(got.mean, want, 1e-9 * std::abs(want)) << "task " << t;
    pids.insert(got.pid);
  }
  EXPECT_EQ(pids.size(), 2u) << "the test needs tasks on both workers";
  return StatusWithHeartbeatsAfter(cluster, cluster.Status());
}

fleet::Array<double> SharedData() {
  fleet::Array<double> data(kElements);
  for (int64_t i = 0; i < kElements; ++i) data[i] = static_cast<double>(i % 1000);
  return data;
}

// The worker holding the Put never fetches it; the other fetches it once.
void ExpectFetchedOnce(const nlohmann::json& status, uint64_t size) {
  uint64_t fetched_objects = 0;
  for (const auto& w : status["workers"]) {
    EXPECT_LE(w["objects_fetched"].get<uint64_t>(), 1u) << w.dump();
    EXPECT_LE(w["bytes_received"].get<uint64_t>(), size + 4096) << w.dump();
    fetched_objects += w["objects_fetched"].get<uint64_t>();
  }
  EXPECT_EQ(fetched_objects, 1u) << status.dump();
}

TEST_F(ClusterTest, SharedArgumentIsReadInPlaceByTheSameHostWorker) {
  const fleet::Array<double> data = SharedData();
  const nlohmann::json status = RunSharedArgumentJob(cluster(), data);
  // On one host the other worker's tasks read it in the holder's mapped
  // store: nothing is copied, nothing goes over gRPC.
  EXPECT_EQ(SumOverWorkers(status, "objects_fetched"), 0) << status.dump();
  EXPECT_EQ(SumOverWorkers(status, "bytes_received"), 0) << status.dump();
  EXPECT_EQ(SumOverWorkers(status, "bytes_sent"), 0) << status.dump();
  EXPECT_GE(SumOverWorkers(status, "neighbour_reads"), 1) << status.dump();
  EXPECT_GE(SumOverWorkers(status, "bytes_shared_locally"),
            SumOverWorkers(status, "neighbour_reads") * data.size_bytes())
      << status.dump();
  // Only the worker the Put went to holds it.
  EXPECT_LE(SumOverWorkers(status, "store_bytes"), data.size_bytes() + 4096) << status.dump();
}

TEST_F(GrpcTransferTest, SharedArgumentMovesToEachWorkerAtMostOnce) {
  const fleet::Array<double> data = SharedData();
  const nlohmann::json status = RunSharedArgumentJob(cluster(), data);
  ExpectFetchedOnce(status, data.size_bytes());
  // And whoever holds it served it once, over gRPC.
  EXPECT_EQ(SumOverWorkers(status, "bytes_shared_locally"), 0) << status.dump();
  EXPECT_GE(SumOverWorkers(status, "bytes_sent"), data.size_bytes()) << status.dump();
  EXPECT_LE(SumOverWorkers(status, "bytes_sent"), data.size_bytes() + 4096) << status.dump();
}

// A result of MakeBigArray(kFourMiBOfDoubles, seed), element 0 aside (the pid).
void ExpectBigArray(const fleet::ArrayView<double>& view, double seed) {
  ASSERT_EQ(view.size(), static_cast<std::size_t>(kFourMiBOfDoubles));
  for (std::size_t i = 1; i < view.size(); i += 4099) {
    ASSERT_EQ(view[i], BigArrayValue(seed, i)) << "element " << i;
  }
  ASSERT_EQ(view[view.size() - 1], BigArrayValue(seed, view.size() - 1));
}

// Stores of 24 MiB: a dozen 4 MiB results put them under pressure.
class SmallStoreTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override {
    return {"--store_memory=" + std::to_string(24 << 20),
            "--store_prefault=" + std::to_string(24 << 20)};
  }
};

TEST_F(SmallStoreTest, GetViewReadsAResultInPlaceAndPinsItThere) {
  constexpr double kSeed = 5;
  std::optional<fleet::ArrayView<double>> view;
  {
    fleet::ObjectRef<fleet::Array<double>> ref =
        fleet::Task(MakeBigArray).Remote(kFourMiBOfDoubles, kSeed);
    view = ref.GetView(kResultTimeout);
    EXPECT_TRUE(view->in_place());
    ExpectBigArray(*view, kSeed);
    // Get still returns a copy of its own.
    fleet::Array<double> copy = ref.Get(kResultTimeout);
    EXPECT_NE(copy.data(), view->data());
    EXPECT_TRUE(std::equal(copy.begin() + 1, copy.end(), view->begin() + 1));
  }
  // The ref is gone, so the cluster frees the object, but the view pins it:
  // twelve more results go through the stores (evicting and spilling), and
  // the viewed bytes stay where they are, unchanged.
  constexpr int kOthers = 12;
  std::vector<fleet::ObjectRef<fleet::Array<double>>> others;
  for (int i = 0; i < kOthers; ++i) {
    others.push_back(fleet::Task(MakeBigArray).Remote(kFourMiBOfDoubles, static_cast<double>(i)));
  }
  for (int i = 0; i < kOthers; ++i) ExpectBigArray(others[i].GetView(kResultTimeout), i);
  ExpectBigArray(*view, kSeed);

  const nlohmann::json status = StatusWithHeartbeatsAfter(cluster(), cluster().Status());
  EXPECT_GE(SumOverWorkers(status, "bytes_shared_locally"), (kOthers + 1) * 4.0 * (1 << 20))
      << status.dump();
  EXPECT_EQ(SumOverWorkers(status, "bytes_sent"), 0) << "a same-host Get went over gRPC";
  EXPECT_GT(SumOverWorkers(status, "store_spills"), 0) << "the stores were not under pressure";

  others.clear();
  view.reset();
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return SumOverWorkers(s, "store_bytes") == 0 && SumOverWorkers(s, "store_objects") == 0;
      },
      kStatusTimeout, &last))
      << "a released view left its object behind: " << last.dump();
}

TEST_F(GrpcTransferTest, GetViewOfARemoteResultReadsTheFetchedBytes) {
  constexpr double kSeed = 6;
  fleet::ObjectRef<fleet::Array<double>> ref =
      fleet::Task(MakeBigArray).Remote(kFourMiBOfDoubles, kSeed);
  fleet::ArrayView<double> view = ref.GetView(kResultTimeout);
  EXPECT_TRUE(view.in_place());  // in the fetched bytes, aligned: no second copy
  ExpectBigArray(view, kSeed);
  // Valid on its own, after the ref is gone.
  ref = {};
  ExpectBigArray(view, kSeed);
  const nlohmann::json status = StatusWithHeartbeatsAfter(cluster(), cluster().Status());
  EXPECT_GE(SumOverWorkers(status, "bytes_sent"), 4.0 * (1 << 20)) << status.dump();
}

// Fills a builder of `size` doubles with i * 0.5 and returns what they sum to.
double FillHalves(fleet::ArrayBuilder<double>& builder) {
  double sum = 0;
  for (std::size_t i = 0; i < builder.size(); ++i) {
    builder[i] = static_cast<double>(i) * 0.5;
    sum += builder[i];
  }
  return sum;
}

// A builder sealed into a ref that a task and the client read correctly.
void ExpectBuiltArrayWorks(std::size_t size) {
  fleet::ArrayBuilder<double> builder(size);
  ASSERT_EQ(builder.size(), size);
  const double want = FillHalves(builder);
  fleet::ObjectRef<fleet::Array<double>> ref = std::move(builder).Seal();
  EXPECT_EQ(builder.data(), nullptr) << "a sealed builder is empty";
  EXPECT_THROW(std::move(builder).Seal(), fleet::Error);
  EXPECT_DOUBLE_EQ(fleet::Task(SumArray).Remote(ref).Get(kResultTimeout), want);
  const fleet::ArrayView<double> view = ref.GetView(kResultTimeout);
  ASSERT_EQ(view.size(), size);
  for (std::size_t i = 0; i < size; i += 997) ASSERT_EQ(view[i], static_cast<double>(i) * 0.5);
}

TEST_F(ClusterTest, ArrayBuilderWritesInTheSameHostStoreAndSealsIntoARef) {
  ExpectBuiltArrayWorks(kFourMiBOfDoubles);
  ExpectBuiltArrayWorks(10);  // small: travels inline
  const nlohmann::json status = StatusWithHeartbeatsAfter(cluster(), cluster().Status());
  EXPECT_EQ(SumOverWorkers(status, "bytes_sent"), 0) << "the builder's array went over gRPC";
}

TEST_F(GrpcTransferTest, ArrayBuilderWithoutASameHostStoreIsUploadedBySeal) {
  ExpectBuiltArrayWorks(kFourMiBOfDoubles);
}

TEST_F(ClusterTest, ArrayBuilderDroppedUnsealedLeavesNothingBehind) {
  {
    fleet::ArrayBuilder<double> builder(kFourMiBOfDoubles);
    FillHalves(builder);
    nlohmann::json last;
    EXPECT_TRUE(cluster().WaitForStatus(
        [](const nlohmann::json& s) {
          return SumOverWorkers(s, "store_bytes") >= kFourMiBOfDoubles * 8.0;
        },
        kStatusTimeout, &last))
        << "the unsealed array is not in a store: " << last.dump();
  }
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return SumOverWorkers(s, "store_bytes") == 0; },
      kStatusTimeout, &last))
      << "a dropped builder left its object behind: " << last.dump();
}

}  // namespace
}  // namespace fleet_it
