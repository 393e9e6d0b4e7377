// The scheduler killed with -9 in the middle of a job and started again on
// the same address and --state_dir: it takes over its committed state, the
// workers and the client reconnect and reconcile, and the job completes
// with every result right. An execution log that the tasks append to shows
// that no task's run was counted twice: what ran while the scheduler was
// down is taken back, not run again.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

class RestartTest : public ClusterTest {
 protected:
  RestartTest() {
    char dir[] = "/tmp/fleet-restart-test-XXXXXX";
    dir_ = mkdtemp(dir);
  }
  ~RestartTest() override { std::filesystem::remove_all(dir_); }

  int NumWorkers() const override { return 3; }
  std::vector<std::string> SchedulerFlags() const override {
    // A long window: it ends as soon as every worker is back, and a slow
    // reconnect under CI load must not turn into re-runs.
    return {"--state_dir=" + dir_ + "/state", "--reconnect_window=30s"};
  }

  std::string log_path() const { return dir_ + "/executions.log"; }

  // How many times each task index appears in the execution log.
  std::map<int64_t, int> Executions() const {
    std::map<int64_t, int> runs;
    std::ifstream log(log_path());
    int64_t index = 0;
    while (log >> index) runs[index]++;
    return runs;
  }

  std::string dir_;
};

TEST_F(RestartTest, SchedulerKilledMidJobLosesNoResultAndCountsNothingTwice) {
  constexpr int kTasks = 600;
  constexpr int kTaskMs = 20;
  // Objects the client stored before the restart: one inline in the
  // scheduler's state, one in a worker's store.
  fleet::ObjectRef<std::string> small = fleet::Put(std::string("kept small"));
  fleet::Array<double> values(256 * 1024);  // 2 MiB
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 2.0;
  fleet::ObjectRef<fleet::Array<double>> large = fleet::Put(values);

  std::vector<fleet::ObjectRef<int64_t>> squares;
  for (int i = 0; i < kTasks; ++i) {
    squares.push_back(fleet::Task(LoggedSquare).Remote(log_path(), int64_t{i}, kTaskMs));
  }
  // A second level: each sum waits for two squares.
  std::vector<fleet::ObjectRef<int64_t>> sums;
  for (int i = 0; i + 1 < kTasks; i += 50) sums.push_back(fleet::Task(Add).Remote(squares[i], squares[i + 1]));

  nlohmann::json before;
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return s["tasks"]["finished"].get<int>() >= kTasks / 4 && EveryWorkerRunsATask(s);
      },
      kResultTimeout, &before))
      << before.dump(2);
  ASSERT_LT(before["tasks"]["finished"].get<int>(), kTasks) << "no longer in the middle";
  const std::vector<int> worker_pids = WorkerPids();

  ASSERT_TRUE(cluster().KillAndRestartScheduler());
  // Submitted while the new scheduler may still be waiting for the others.
  std::vector<fleet::ObjectRef<int64_t>> late;
  for (int i = kTasks; i < kTasks + 20; ++i) {
    late.push_back(fleet::Task(LoggedSquare).Remote(log_path(), int64_t{i}, kTaskMs));
  }

  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(squares[i].Get(kResultTimeout), int64_t{i} * i) << "task " << i;
  }
  for (std::size_t k = 0; k < sums.size(); ++k) {
    const int64_t i = static_cast<int64_t>(k) * 50;
    EXPECT_EQ(sums[k].Get(kResultTimeout), i * i + (i + 1) * (i + 1));
  }
  for (int i = 0; i < static_cast<int>(late.size()); ++i) {
    EXPECT_EQ(late[i].Get(kResultTimeout), int64_t{kTasks + i} * (kTasks + i));
  }
  EXPECT_EQ(small.Get(kResultTimeout), "kept small");
  EXPECT_DOUBLE_EQ(fleet::Task(SumArray).Remote(large).Get(kResultTimeout), 2.0 * 256 * 1024);

  // Every task ran to its end exactly once.
  const std::map<int64_t, int> runs = Executions();
  EXPECT_EQ(runs.size(), static_cast<std::size_t>(kTasks + late.size()));
  for (const auto& [index, count] : runs) EXPECT_EQ(count, 1) << "task " << index << " ran " << count << " times";

  // The same workers carried on (none was restarted or declared dead), and
  // the new scheduler runs under a new epoch.
  const nlohmann::json after = cluster().Status();
  EXPECT_EQ(WorkerPids(), worker_pids);
  EXPECT_EQ(after["workers"].size(), 3u);
  EXPECT_GT(after["epoch"].get<uint64_t>(), before["epoch"].get<uint64_t>());
  EXPECT_EQ(after["tasks"]["retried"].get<int>(), 0) << after.dump(2);
}

TEST_F(RestartTest, ClientGivesUpClearlyWhenTheSchedulerStaysDown) {
  fleet::Shutdown();
  fleet::Init({.address = cluster().scheduler_address(),
               .connect_timeout = 10s,
               .scheduler_reconnect_timeout = 2s});
  fleet::ObjectRef<int> pending = fleet::Task(SleepMs).Remote(60'000);
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["assigned"].get<int>() == 1; },
      kStatusTimeout));
  ASSERT_TRUE(cluster().TerminateScheduler(10s).has_value());
  try {
    pending.Get(kResultTimeout);
    FAIL() << "Get returned although the scheduler is gone";
  } catch (const fleet::Error& error) {
    EXPECT_THAT(error.what(), ::testing::HasSubstr("could not reconnect within 2s"));
    EXPECT_THAT(error.what(), ::testing::HasSubstr(cluster().scheduler_address()));
  }
}

}  // namespace
}  // namespace fleet_it
