// The chaos suite: a job of 20,000 tasks (short ones, sleepy ones, DAGs
// passing 128 KiB arrays between workers, tasks that crash their executor)
// on three workers while a FaultInjector, seeded by the test, kills worker
// daemons and executors, drains workers and pauses them past the heartbeat
// timeout. Every result must arrive and be right, or fail with an error
// that says why; nothing may hang; the scheduler's counters must add up;
// and no daemon or executor of the cluster may outlive it.
//
// Re-run one seed with --gtest_filter='*Seed2'. FLEET_TEST_KEEP_LOGS=1
// keeps the daemons' logs.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/chaos/chaos_job.h"
#include "tests/chaos/fault_injector.h"
#include "tests/chaos/process_table.h"
#include "tests/integration/cluster_fixture.h"

namespace fleet_chaos {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A rare abort of this binary was once seen ("terminate called without an
// active exception"): if it comes back, its stacks are in the log.
const bool kStacksOnTerminate = (fleet::test::DumpStacksOnTerminate(), true);

constexpr int kWorkers = 3;
// The job waits at most this long for the opening faults (see
// JobOptions::before_final_tasks).
constexpr std::chrono::seconds kOpeningFaultsTimeout(90);
// Bound of the waits for the processes of a stopped cluster to be gone.
constexpr std::chrono::seconds kProcessesGoneTimeout(10);
// Failure messages point to the journal of faults the test prints first.
constexpr const char* kSeeFaults = "(the faults injected are listed above)";

class ChaosTest : public fleet_it::ClusterTest, public ::testing::WithParamInterface<uint32_t> {
 protected:
  int NumWorkers() const override { return kWorkers; }
  ChaosTest() {
    char dir[] = "/tmp/fleet-chaos-state-XXXXXX";
    state_dir_ = mkdtemp(dir);
  }
  ~ChaosTest() override { std::filesystem::remove_all(state_dir_); }

  // A short heartbeat timeout, so that a paused worker is declared dead
  // (and fenced) quickly; durable state, so that the scheduler can be
  // killed and started again.
  std::vector<std::string> SchedulerFlags() const override {
    return {"--heartbeat_timeout=2s", "--state_dir=" + state_dir_, "--reconnect_window=5s"};
  }

  std::string state_dir_;
};

// Whether an always_crash task's error says why it failed: its own SIGSEGV
// on its last run, or a fault the chaos injected that hit that run (its
// executor killed, or its worker killed or declared dead).
bool FailureSaysWhy(const ObservedFailure& failure, const FaultInjector& chaos) {
  if (failure.kind == "executor_died") {
    if (failure.message.find("executor crashed: SIGSEGV") != std::string::npos) return true;
    return chaos.count(Fault::kKillExecutor) > 0 &&
           failure.message.find("SIGKILL") != std::string::npos;
  }
  return failure.kind == "worker_died" &&
         chaos.count(Fault::kKillWorker) + chaos.count(Fault::kPauseWorker) > 0;
}

// The processes of this cluster still on the host: its worker daemons, the
// executors seen while it ran and any executor whose parent was one of its
// workers (each executor's command line names its parent's pid).
std::vector<ProcessInfo> ClusterProcessesLeft(const FaultInjector& chaos) {
  std::vector<ProcessInfo> left;
  for (ProcessInfo& p : ListProcesses()) {
    bool ours = chaos.worker_pids().count(p.pid) > 0 || chaos.executor_pids_seen().count(p.pid) > 0;
    for (pid_t worker : chaos.worker_pids()) {
      ours = ours ||
             p.cmdline.find("--parent_pid=" + std::to_string(worker) + " ") != std::string::npos;
    }
    // A recorded pid that a new, unrelated process has taken is not ours.
    ours = ours && (p.comm == "fleet-worker" || p.comm == "fleet-executor");
    if (ours) left.push_back(std::move(p));
  }
  return left;
}

std::string Describe(const std::vector<ProcessInfo>& processes) {
  std::string out;
  for (const ProcessInfo& p : processes) out += "  " + p.Describe() + "\n";
  return out;
}

TEST_P(ChaosTest, EveryResultArrivesOrFailsSayingWhy) {
  const uint32_t seed = GetParam();
  SCOPED_TRACE("chaos seed " + std::to_string(seed));
  const std::string marker_dir = cluster().temp_dir() + "/markers";
  std::filesystem::create_directories(marker_dir);

  FaultInjector chaos(cluster(), {.seed = seed});
  std::atomic<bool> chaos_over{false};
  std::atomic<bool> job_done{false};
  JobReport report;
  std::string job_error;  // what the job threw (a Get that timed out, say)
  std::thread job([&] {
    try {
      report = RunChaosJob({.seed = seed, .marker_dir = marker_dir, .before_final_tasks = [&] {
                              fleet::test::PollUntil(
                                  [&] { return chaos.every_kind_injected() || chaos_over.load(); },
                                  kOpeningFaultsTimeout);
                            }});
    } catch (const std::exception& e) {
      job_error = e.what();
    }
    job_done = true;
  });
  // Whatever the injector throws must not leave `job` joinable (that
  // aborts the whole binary with "terminate called without an active
  // exception"): it is reported as a failure once the job is joined.
  std::string injector_error;
  try {
    chaos.Run(job_done);
  } catch (const std::exception& e) {
    injector_error = e.what();
  } catch (...) {
    injector_error = "an exception that is not a std::exception";
  }
  chaos_over = true;
  job.join();
  EXPECT_EQ(injector_error, "") << "the fault injector threw";
  ASSERT_EQ(job_error, "") << "the job threw";
  const std::string faults =
      "faults injected (seed " + std::to_string(seed) + "):\n" + chaos.Journal();
  // Printed once, in the log of a passing run too: what this seed did.
  std::printf("%s%d units checked, %d always_crash failures, %d crash_once successes\n",
              faults.c_str(), report.units_checked,
              static_cast<int>(report.always_crash_failures.size()), report.crash_once_succeeded);

  // The cluster reacted to each fault as documented, and the chaos
  // covered every kind.
  EXPECT_THAT(chaos.problems(), IsEmpty()) << kSeeFaults;
  for (Fault fault : kAllFaults) {
    EXPECT_GT(chaos.count(fault), 0) << FaultName(fault) << " never happened; " << kSeeFaults;
  }

  // Every result arrived and was right, or failed saying why.
  EXPECT_FALSE(report.hung) << kSeeFaults;
  EXPECT_THAT(report.problems, IsEmpty())
      << report.problem_count << " problems in all; " << kSeeFaults;
  EXPECT_EQ(report.tasks_submitted, kTotalTasks);
  EXPECT_EQ(report.units_checked, report.units_submitted);
  EXPECT_GT(report.crash_once_succeeded, 0);
  ASSERT_EQ(static_cast<int>(report.always_crash_failures.size()), report.always_crash_submitted)
      << kSeeFaults;
  int named_sigsegv = 0;
  for (const ObservedFailure& failure : report.always_crash_failures) {
    EXPECT_TRUE(FailureSaysWhy(failure, chaos))
        << failure.kind << ": " << failure.message << "; " << kSeeFaults;
    named_sigsegv += failure.message.find("SIGSEGV") != std::string::npos ? 1 : 0;
  }
  // A fault hits a crashing task's last run only by rare chance.
  EXPECT_GT(named_sigsegv, report.always_crash_submitted / 2) << kSeeFaults;

  // The scheduler's counters add up: only the always_crash tasks failed,
  // the faults cost retries, and the replacements are what is left.
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        const auto& t = s["tasks"];
        return t["waiting"].get<int>() + t["ready"].get<int>() + t["assigned"].get<int>() == 0 &&
               s["workers"].size() == std::size_t{kWorkers};
      },
      fleet_it::kStatusTimeout, &status))
      << status.dump(2);
  std::printf("/status tasks: %s\n", status["tasks"].dump().c_str());
  EXPECT_EQ(status["tasks"]["failed"].get<int>(), report.always_crash_submitted) << status.dump(2);
  EXPECT_GT(status["tasks"]["retried"].get<int>(), 0) << status.dump(2);
  // Killed workers held the only copies of arrays still needed: lineage
  // rebuilt them.
  EXPECT_GT(status["tasks"]["reconstructed"].get<int>(), 0) << status.dump(2);
  for (const nlohmann::json& w : status["workers"]) {
    EXPECT_EQ(chaos.removed_worker_pids().count(w.value("pid", 0)), 0u)
        << "a worker the chaos removed is still listed: " << status.dump(2);
    // With nothing left to run, the scheduler's count of each worker's
    // tasks (which placement and drains trust) is back to zero.
    EXPECT_EQ(w.value("tasks_assigned", -1), 0) << status.dump(2);
  }

  // Removed workers are gone, and live workers reap their executors.
  for (pid_t pid : chaos.removed_worker_pids()) {
    EXPECT_FALSE(IsRunning(pid)) << "removed worker " << pid << " still runs";
  }
  std::vector<ProcessInfo> zombies;
  EXPECT_TRUE(fleet::test::PollUntil(
      [&] {
        zombies.clear();
        for (int i = 0; i < cluster().num_workers(); ++i) {
          if (cluster().worker_pid(i) <= 0) continue;
          for (ProcessInfo& p : ExecutorsOf(cluster().worker_pid(i))) {
            if (p.zombie()) zombies.push_back(std::move(p));
          }
        }
        return zombies.empty();
      },
      kProcessesGoneTimeout))
      << "executors their workers did not reap:\n"
      << Describe(zombies);

  // Once the cluster stops, nothing of it is left on the host.
  fleet::Shutdown();
  cluster().Stop();
  std::vector<ProcessInfo> left;
  EXPECT_TRUE(fleet::test::PollUntil(
      [&] {
        left = ClusterProcessesLeft(chaos);
        return left.empty();
      },
      kProcessesGoneTimeout))
      << "processes of the stopped cluster still on the host:\n"
      << Describe(left);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ChaosTest, ::testing::Values(1u, 2u, 3u),
                         [](const ::testing::TestParamInfo<uint32_t>& info) {
                           return "Seed" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace fleet_chaos
