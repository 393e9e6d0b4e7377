// Direct tasks (worker/direct_tasks.h): a client that awaits nothing else
// hands a task with inline arguments to an idle worker on its host, and the
// scheduler hears of it after the fact. Real daemons; a worker killed
// while it runs one.
#include <signal.h>

#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

uint64_t RunDirectly(const nlohmann::json& status) {
  return status["tasks"].value("run_directly", uint64_t{0});
}

// Synchronous calls until one has gone straight to a worker: the client
// subscribes to each worker as the scheduler tells it of it.
void WaitUntilTasksAreHandedOver(fleet::test::LocalProcessCluster& cluster) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(fleet::Task(Square).Remote(i).Get(kResultTimeout), i * i);
    if (RunDirectly(cluster.Status()) > 0) return;
  }
  FAIL() << "no task was handed to a worker: " << cluster.Status().dump();
}

TEST_F(ClusterTest, SynchronousCallsGoStraightToAnIdleWorkerAndTheSchedulerCountsThem) {
  ASSERT_NO_FATAL_FAILURE(CallSquaresSynchronously(kSyncCalls));
  // At most the first calls went through the scheduler (before the
  // subscriptions were open). The scheduler's books balance once both
  // messages of each task are in: nothing left assigned, every task
  // finished once.
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return RunDirectly(s) >= kSyncCalls / 2 &&
               SumOverWorkers(s, "direct_tasks_run") >= kSyncCalls / 2 &&
               s["tasks"]["assigned"] == 0 && s["tasks"]["finished"] == s["tasks"]["submitted"];
      },
      kStatusTimeout, &last))
      << last.dump();
  EXPECT_EQ(last["tasks"]["submitted"].get<int>(), kSyncCalls) << last.dump();
  EXPECT_EQ(last["tasks"]["retried"].get<int>(), 0) << last.dump();
  for (const nlohmann::json& w : last["workers"]) EXPECT_EQ(w["tasks_assigned"], 0) << w.dump();
}

TEST_F(ClusterTest, ATaskHandedToABusyWorkerIsDeclinedAndPlacedByTheScheduler) {
  WaitUntilTasksAreHandedOver(cluster());
  const int slots = static_cast<int>(cluster().Status()["slots"]["total"].get<double>());
  {
    // Every slot busy; the refs are dropped, so the client awaits nothing.
    std::vector<fleet::ObjectRef<int>> sleepers;
    for (int i = 0; i < slots; ++i) sleepers.push_back(fleet::Task(SleepThenPid).Remote(3000));
    nlohmann::json busy;
    ASSERT_TRUE(cluster().WaitForStatus(
        [slots](const nlohmann::json& s) { return SumOverWorkers(s, "tasks_running") >= slots; },
        kStatusTimeout, &busy))
        << busy.dump() << system(("cp " + cluster().temp_dir() + "/*.log /tmp/rt/").c_str());
  }
  EXPECT_EQ(fleet::Task(Square).Remote(9).Get(kResultTimeout), 81);
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return SumOverWorkers(s, "direct_tasks_declined") >= 1; },
      kStatusTimeout, &last))
      << last.dump();
}

TEST_F(ClusterTest, AFailedDirectTaskReachesItsClientThroughTheScheduler) {
  WaitUntilTasksAreHandedOver(cluster());
  const uint64_t before = RunDirectly(cluster().Status());
  fleet::ObjectRef<int> ref = fleet::Task(ThrowInvalidInput).Remote(std::string("direct 7"));
  try {
    ref.Get(kResultTimeout);
    FAIL() << "Get returned a value";
  } catch (const fleet::TaskError& error) {
    EXPECT_EQ(error.kind(), "user_exception");
    EXPECT_EQ(error.message(), "direct 7");
  }
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [before](const nlohmann::json& s) {
        return RunDirectly(s) > before && s["tasks"]["assigned"] == 0;
      },
      kStatusTimeout, &last))
      << last.dump();
  EXPECT_EQ(last["tasks"]["failed"].get<int>(), 1) << last.dump();
}

TEST_F(ClusterTest, ADirectTaskWhoseWorkerIsKilledRunsAgainOnAnother) {
  WaitUntilTasksAreHandedOver(cluster());
  const uint64_t before = RunDirectly(cluster().Status());
  fleet::ObjectRef<int> ref = fleet::Task(SleepThenPid).Remote(3000);
  // The scheduler knows where it runs once the submission is in.
  nlohmann::json running;
  ASSERT_TRUE(cluster().WaitForStatus(
      [before](const nlohmann::json& s) {
        return RunDirectly(s) > before && s["tasks"]["assigned"] == 1;
      },
      kStatusTimeout, &running))
      << running.dump();
  int victim = 0;
  for (const nlohmann::json& w : running["workers"]) {
    if (w["tasks_assigned"] == 1) victim = w["pid"].get<int>();
  }
  ASSERT_GT(victim, 0) << running.dump();
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  const int ran_on = ref.Get(kResultTimeout);
  EXPECT_NE(ran_on, victim);
  EXPECT_TRUE(ran_on == cluster().worker_pid(0) || ran_on == cluster().worker_pid(1)) << ran_on;
  const nlohmann::json after = cluster().Status();
  EXPECT_GE(after["tasks"]["retried"].get<int>(), 1) << after.dump();
}

class PushOnlyTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override { return {"--direct_tasks=false"}; }
};

TEST_F(PushOnlyTest, WorkersTakingNoDirectTasksStillPushResults) {
  ASSERT_NO_FATAL_FAILURE(CallSquaresSynchronously(kSyncCalls));
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return SumOverWorkers(s, "results_delivered_to_owner") >= kSyncCalls / 2;
      },
      kStatusTimeout, &last))
      << last.dump();
  EXPECT_EQ(RunDirectly(last), 0u) << last.dump();
  EXPECT_EQ(SumOverWorkers(last, "direct_tasks_declined"), 0) << last.dump();
}

}  // namespace
}  // namespace fleet_it
