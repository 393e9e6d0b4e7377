// Recovery from a worker killed with -9 while it holds work and results,
// on a cluster of three workers: its tasks run again elsewhere, and
// results whose only copy it held are rebuilt by running their producers
// again (lineage), recursively. Every result stays right; /status counts
// the re-runs.
#include <signal.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

class RecoveryTest : public ClusterTest {
 protected:
  int NumWorkers() const override { return 3; }

  // The index of the worker whose pid is `pid`, or -1.
  int WorkerIndexOf(int pid) {
    for (int i = 0; i < cluster().num_workers(); ++i) {
      if (cluster().worker_pid(i) == pid) return i;
    }
    return -1;
  }

  // Kills worker `i` with -9 and waits until the scheduler has removed it.
  void KillAndWaitForRemoval(int i) {
    const std::size_t before = static_cast<std::size_t>(cluster().num_workers());
    cluster().KillWorker(i);
    nlohmann::json status;
    ASSERT_TRUE(cluster().WaitForStatus(
        [&](const nlohmann::json& s) { return s["workers"].size() == before - 1; },
        kStatusTimeout, &status))
        << "the scheduler still lists the killed worker: " << status.dump(2);
  }
};

TEST_F(RecoveryTest, WorkerKilledInTheMiddleOfManyTasksLosesNoResult) {
  constexpr int kTasks = 2000;
  constexpr int kTaskMs = 50;
  std::vector<fleet::ObjectRef<int>> refs;
  refs.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) refs.push_back(fleet::Task(SleepThenSquare).Remote(i, kTaskMs));

  // In the middle: every worker has work running and queued.
  nlohmann::json status;
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["finished"].get<int>() >= kTasks / 4; },
      kResultTimeout, &status))
      << status.dump(2);
  ASSERT_LT(status["tasks"]["finished"].get<int>(), kTasks) << "no longer in the middle";
  KillAndWaitForRemoval(1);

  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(refs[i].Get(kResultTimeout), i * i) << "task " << i;
  }
  // Counted when each completion reaches the scheduler, a moment after a
  // same-host worker handed the result to this client.
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["finished"].get<int>() >= kTasks; },
      kStatusTimeout, &status))
      << status.dump(2);
  const nlohmann::json& tasks = status["tasks"];
  EXPECT_GT(tasks["retried"].get<int>(), 0) << "no task of the killed worker ran again: "
                                            << status.dump(2);
  EXPECT_EQ(tasks["failed"].get<int>(), 0) << status.dump(2);
  EXPECT_GE(tasks["finished"].get<int>(), kTasks) << status.dump(2);
  EXPECT_EQ(status["workers"].size(), 2u);
}

TEST_F(RecoveryTest, LostIntermediateOfAThreeLevelDagIsRebuiltFromLineage) {
  constexpr int kWidth = 6;
  // 256 KiB each: above the inline threshold, so only a worker's store
  // holds them, never the scheduler.
  constexpr int64_t kElements = 32 * 1024;
  constexpr double kShift = 100;

  // Level 1 makes arrays, level 2 shifts them; the driver keeps only
  // level 2's refs, so level 1's copies are freed (their specs stay, as
  // level 2's lineage).
  std::vector<fleet::ObjectRef<fleet::Array<double>>> level1, level2;
  for (int i = 0; i < kWidth; ++i) {
    level1.push_back(fleet::Task(MakeBigArray).Remote(kElements, static_cast<double>(i)));
    level2.push_back(fleet::Task(ShiftArray).Remote(level1.back(), kShift));
  }
  auto [ready, pending] = fleet::Wait(level2, kWidth, kResultTimeout);
  ASSERT_EQ(ready.size(), static_cast<std::size_t>(kWidth));
  level1.clear();
  nlohmann::json status;
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return SumOverWorkers(s, "store_objects") == kWidth; },
      kStatusTimeout, &status))
      << "level 1's copies were not freed: " << status.dump(2);

  // The worker that made level2[0] holds its only copy (element 0 says
  // which; the driver reads it in place, keeping no copy on any worker).
  const int holder_pid = static_cast<int>(level2[0].Get(kResultTimeout)[0]);
  const int holder = WorkerIndexOf(holder_pid);
  ASSERT_GE(holder, 0) << "level2[0] was made by pid " << holder_pid << ", not a worker";
  KillAndWaitForRemoval(holder);

  // Level 3 reads every level 2 array: all right, level2[0] rebuilt on a
  // live worker from a rebuilt level1[0].
  std::vector<fleet::ObjectRef<ArrayDigest>> level3;
  for (int i = 0; i < kWidth; ++i) {
    level3.push_back(fleet::Task(DigestBigArray).Remote(level2[i], i + kShift, 0));
  }
  for (int i = 0; i < kWidth; ++i) {
    const ArrayDigest digest = level3[i].Get(kResultTimeout);
    EXPECT_EQ(digest.size, static_cast<uint64_t>(kElements)) << "level3[" << i << "]";
    EXPECT_TRUE(digest.pattern_ok) << "level3[" << i << "] read a wrong array";
    EXPECT_NE(digest.producer_pid, holder_pid)
        << "level2[" << i << "] still comes from the killed worker";
    EXPECT_GE(WorkerIndexOf(digest.producer_pid), 0) << "level2[" << i << "]";
  }
  status = cluster().Status();
  // level2[0] and, its input being freed, level1[0] at least.
  EXPECT_GE(status["tasks"]["reconstructed"].get<int>(), 2) << status.dump(2);
  EXPECT_EQ(status["tasks"]["failed"].get<int>(), 0) << status.dump(2);
}

// Puts that go over gRPC (no same-host store), so that a Get keeps a copy
// of the value in the client.
class PutRecoveryTest : public ClusterTest {
 protected:
  int NumWorkers() const override { return 1; }
  std::vector<std::string> WorkerFlags() const override { return {"--local_store=false"}; }
};

TEST_F(PutRecoveryTest, LostPutIsUploadedAgainByItsClientWhenItStillHoldsTheValue) {
  constexpr std::size_t kElements = 256 * 1024;  // 2 MiB: stored on the worker
  fleet::Array<double> values(kElements);
  for (std::size_t i = 0; i < kElements; ++i) values[i] = 3.0;
  fleet::ObjectRef<fleet::Array<double>> kept = fleet::Put(values);
  fleet::ObjectRef<fleet::Array<double>> not_kept = fleet::Put(values);
  // Read back: the client now holds that one's value, not the other's.
  ASSERT_EQ(kept.Get(kResultTimeout).size(), kElements);

  // The only copies die with the worker; another one joins.
  cluster().KillWorker(0);
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["workers"].empty(); }, kStatusTimeout));
  ASSERT_TRUE(cluster().AddWorker());

  EXPECT_DOUBLE_EQ(fleet::Task(SumArray).Remote(kept).Get(kResultTimeout), 3.0 * kElements);
  try {
    fleet::Task(SumArray).Remote(not_kept).Get(kResultTimeout);
    ADD_FAILURE() << "a task read a Put value that nobody could have stored again";
  } catch (const fleet::TaskError& error) {
    EXPECT_EQ(error.cause() == nullptr ? error.kind() : error.cause()->kind(), "object_lost")
        << error.what();
    EXPECT_THAT(error.what(), ::testing::HasSubstr("no longer holds the value")) << error.what();
  }
  const nlohmann::json status = cluster().Status();
  EXPECT_EQ(status["tasks"]["reconstructed"].get<int>(), 0) << status.dump(2);
}

}  // namespace
}  // namespace fleet_it
