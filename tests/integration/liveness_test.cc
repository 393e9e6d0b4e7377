// Liveness and fencing with real processes: a worker that stops answering
// without its connection breaking (SIGSTOP: the process, its socket and its
// stream stay up, its heartbeats stop) is declared dead after the
// scheduler's --heartbeat_timeout; its tasks run on the other worker; and
// when it wakes up it is fenced: its stream was ended, whatever it finishes
// late is dropped, and it exits so that a supervisor restarts it as a new
// worker.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

constexpr int kTasks = 12;
constexpr int kTaskMs = 1000;

class LivenessTest : public ClusterTest {
 protected:
  // A killed client's session is kept for --client_grace (it could be a
  // client reconnecting); a short one keeps the test short.
  std::vector<std::string> SchedulerFlags() const override {
    return {"--heartbeat_timeout=2s", "--client_grace=1s"};
  }

  void TearDown() override {
    if (stopped_pid_ > 0) kill(stopped_pid_, SIGCONT);  // so that the cluster can stop it
    ClusterTest::TearDown();
  }

  pid_t stopped_pid_ = -1;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(LivenessTest, SilentWorkerIsDeclaredDeadItsTasksRerunAndItIsFenced) {
  const pid_t silent = cluster().worker_pid(0);
  const pid_t healthy = cluster().worker_pid(1);
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(fleet::Task(SleepThenPid).Remote(kTaskMs));
  // Stop it while it runs some of them.
  ASSERT_TRUE(cluster().WaitForStatus(EveryWorkerRunsATask, kStatusTimeout));
  ASSERT_EQ(kill(silent, SIGSTOP), 0);
  stopped_pid_ = silent;

  // Every result arrives, those the silent worker held re-run on the other.
  std::set<int> pids;
  for (const auto& ref : refs) pids.insert(ref.Get(kResultTimeout));
  EXPECT_TRUE(pids.count(healthy)) << "no task ran on the healthy worker";
  for (int pid : pids) EXPECT_TRUE(pid == silent || pid == healthy) << pid;
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["workers"].size() == 1u; }, kStatusTimeout, &status))
      << status.dump();

  // Woken up, it finds its stream ended by the scheduler and exits, saying why.
  ASSERT_EQ(kill(silent, SIGCONT), 0);
  stopped_pid_ = -1;
  const std::optional<int> exit_status = cluster().WaitForWorkerExit(0, 20s);
  ASSERT_TRUE(exit_status.has_value()) << "the fenced worker kept running";
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 1)
      << fleet::test::LocalProcessCluster::DescribeExit(*exit_status);
  const std::string log = ReadFile(cluster().temp_dir() + "/worker-0.log");
  EXPECT_NE(log.find("declared dead"), std::string::npos) << log;

  // Its late completions changed nothing, and the cluster still serves.
  for (const auto& ref : refs) {
    const int pid = ref.Get(kResultTimeout);
    EXPECT_TRUE(pid == silent || pid == healthy);
  }
  EXPECT_EQ(fleet::Task(Square).Remote(7).Get(kResultTimeout), 49);
  const nlohmann::json after = cluster().Status();
  EXPECT_EQ(after["workers"].size(), 1u) << after.dump();
}

// A driver killed with work queued: the scheduler notices its session end,
// cancels the tasks not yet on a worker, lets the running ones finish and
// frees everything, so a crashed driver leaks nothing.
TEST_F(LivenessTest, StalledSchedulerDoesNotDeclareItsWorkersDead) {
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(fleet::Task(SleepThenPid).Remote(kTaskMs));
  ASSERT_TRUE(cluster().WaitForStatus(EveryWorkerRunsATask, kStatusTimeout));
  // Frozen for twice --heartbeat_timeout: on waking it hears nothing from
  // the workers for a moment, which is its own silence, not theirs.
  ASSERT_EQ(kill(cluster().scheduler_pid(), SIGSTOP), 0);
  stopped_pid_ = cluster().scheduler_pid();
  std::this_thread::sleep_for(4s);
  ASSERT_EQ(kill(cluster().scheduler_pid(), SIGCONT), 0);
  stopped_pid_ = -1;

  for (const auto& ref : refs) ref.Get(kResultTimeout);
  const nlohmann::json status = cluster().Status();
  EXPECT_EQ(status["workers"].size(), static_cast<std::size_t>(kWorkers)) << status.dump();
  EXPECT_EQ(status["tasks"]["retried"].get<int>(), 0) << status.dump();
  for (int i = 0; i < kWorkers; ++i) {
    EXPECT_FALSE(cluster().WaitForWorkerExit(i, 0ms).has_value()) << "worker-" << i << " exited";
  }
  const std::string log = ReadFile(cluster().temp_dir() + "/scheduler.log");
  EXPECT_NE(log.find("event=scheduler_stalled"), std::string::npos) << log;
}

TEST_F(LivenessTest, KilledClientsQueuedTasksAreCancelledAndNothingLeaks) {
  constexpr int kQueued = 200;
  std::vector<std::string> args = {FLEET_ABANDONING_CLIENT, cluster().scheduler_address(),
                                   std::to_string(kQueued), "200"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t client = -1;
  ASSERT_EQ(posix_spawn(&client, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  nlohmann::json status;
  const bool submitted = cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["submitted"].get<int>() >= kQueued; },
      kStatusTimeout, &status);
  kill(client, SIGKILL);
  int client_status = 0;
  waitpid(client, &client_status, 0);
  ASSERT_TRUE(submitted) << status.dump();

  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        const auto& t = s["tasks"];
        return s["sessions"].get<int>() == 1 &&  // this test's own session
               t["waiting"].get<int>() + t["ready"].get<int>() + t["assigned"].get<int>() == 0 &&
               SumOverWorkers(s, "store_objects") == 0;
      },
      kStatusTimeout, &status))
      << "the killed client's work was not cleaned up: " << status.dump();
  EXPECT_GT(status["tasks"]["cancelled"].get<int>(), 0) << status.dump();
  EXPECT_LT(status["tasks"]["finished"].get<int>(), kQueued / 2)
      << "the killed client's tasks ran on: " << status.dump();
  EXPECT_EQ(status["tasks"]["finished"].get<int>() + status["tasks"]["cancelled"].get<int>() +
                status["tasks"]["failed"].get<int>(),
            kQueued)
      << status.dump();
}

}  // namespace
}  // namespace fleet_it
