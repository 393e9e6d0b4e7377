// Daemon and object lifecycles: daemons stop cleanly on SIGTERM (what
// `docker compose down` and Kubernetes send), and a result whose only copy
// dies with its worker is rebuilt or fails with a clear error, never hangs.
#include <sys/wait.h>

#include <optional>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using fleet::test::ClusterOptions;
using fleet::test::LocalProcessCluster;

constexpr std::chrono::seconds kExitTimeout(10);

bool ExitedWithCode0(const std::optional<int>& wait_status) {
  return wait_status.has_value() && WIFEXITED(*wait_status) && WEXITSTATUS(*wait_status) == 0;
}

std::string Describe(const std::optional<int>& wait_status) {
  return wait_status
             ? LocalProcessCluster::DescribeExit(*wait_status)
             : "still running after " + std::to_string(kExitTimeout.count()) + " s (SIGKILLed)";
}

// Regression test: fleet-worker used to hang (or crash) on SIGTERM. Its
// signal thread called WorkerServer::Shutdown() while the main thread, woken
// because that shutdown ended the scheduler stream, called it again
// (worker/main.cc); both joined the same std::threads in
// SchedulerConnection::Stop and Executor::Stop, and the main thread blocked
// forever in pthread_join (or, when main won, destroyed the WorkerServer
// under the signal thread: SIGSEGV). Fixed by making Shutdown run once
// (commit d9d7041). It hit one SIGTERM in four to ten, so this test stops 60
// workers to catch a relapse reliably.
TEST(DaemonLifecycleTest, WorkersExitWithCode0OnSigterm) {
  constexpr int kRounds = 15;
  constexpr int kWorkersPerRound = 4;
  for (int round = 0; round < kRounds; ++round) {
    LocalProcessCluster cluster(ClusterOptions{
        .workers = kWorkersPerRound,
        .slots_per_worker = 1,
        .task_libraries = {FLEET_TEST_TASK_LIB},
    });
    ASSERT_TRUE(cluster.Start());
    for (int i = 0; i < kWorkersPerRound; ++i) {
      const std::optional<int> exit = cluster.TerminateWorker(i, kExitTimeout);
      ASSERT_TRUE(ExitedWithCode0(exit))
          << "round " << round << ": worker-" << i << " " << Describe(exit);
    }
    // The scheduler saw them go.
    nlohmann::json status;
    EXPECT_TRUE(cluster.WaitForStatus([](const nlohmann::json& s) { return s["workers"].empty(); },
                                      kStatusTimeout, &status))
        << status.dump(2);
  }
}

TEST(DaemonLifecycleTest, SchedulerExitsWithCode0OnSigtermWithWorkersAndAClient) {
  LocalProcessCluster cluster(ClusterOptions{
      .workers = kWorkers,
      .slots_per_worker = kSlotsPerWorker,
      .task_libraries = {FLEET_TEST_TASK_LIB},
  });
  ASSERT_TRUE(cluster.Start());
  fleet::Init({.address = cluster.scheduler_address(), .connect_timeout = 10s});
  EXPECT_EQ(fleet::Task(Square).Remote(3).Get(kResultTimeout), 9);
  fleet::Shutdown();

  const std::optional<int> exit = cluster.TerminateScheduler(kExitTimeout);
  EXPECT_TRUE(ExitedWithCode0(exit)) << "fleet-scheduler " << Describe(exit);
  // Workers notice that the scheduler is gone and end too.
  for (int i = 0; i < kWorkers; ++i) {
    const std::optional<int> worker_exit = cluster.TerminateWorker(i, kExitTimeout);
    EXPECT_TRUE(worker_exit.has_value()) << "worker-" << i << " " << Describe(worker_exit);
  }
}

TEST_F(ClusterTest, ResultLostWithItsWorkerIsRebuiltOrFailsClearly) {
  // 2 MiB: above the inline threshold, so the producer's store holds the
  // only copy.
  constexpr int64_t kElements = 256 * 1024;
  fleet::ObjectRef<fleet::Array<double>> big = fleet::Task(MakeBigArray).Remote(kElements, 5.0);
  auto [ready, pending] =
      fleet::Wait(std::vector<fleet::ObjectRef<fleet::Array<double>>>{big}, 1, kResultTimeout);
  ASSERT_EQ(ready.size(), 1u);

  // The producer is the worker whose store holds the bytes (reported in
  // its heartbeat); reading the object from a task or the client here
  // would copy it and so save it.
  int producer = -1;
  nlohmann::json status;
  ASSERT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        for (const nlohmann::json& w : s["workers"]) {
          if (w["store_bytes"].get<uint64_t>() < kElements * sizeof(double)) continue;
          for (int i = 0; i < cluster().num_workers(); ++i) {
            if (cluster().worker_pid(i) == w["pid"].get<int>()) producer = i;
          }
        }
        return producer >= 0;
      },
      kStatusTimeout, &status))
      << "no worker reports the object in its store: " << status.dump(2);
  cluster().KillWorker(producer);
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["workers"].size() == 1; }, kStatusTimeout, &status))
      << status.dump(2);

  // Get either returns the rebuilt value or fails with a TaskError saying
  // the object was lost; it never hangs. (The client may first try the dead
  // worker's address before the scheduler's notice arrives: a plain
  // fleet::Error is accepted then, and the Get is repeated.)
  std::optional<fleet::Array<double>> value;
  std::optional<fleet::TaskError> lost;
  std::string other_error;
  fleet::test::PollUntil(
      [&] {
        try {
          value = big.Get(kResultTimeout);
          return true;
        } catch (const fleet::TaskError& e) {
          lost = e;
          return true;
        } catch (const fleet::Error& e) {
          other_error = e.what();
          return false;
        }
      },
      kStatusTimeout, 100ms);
  ASSERT_TRUE(value || lost) << "Get kept failing without a TaskError: " << other_error;
  RecordProperty("outcome", value ? "rebuilt" : "object_lost");
  if (value) {
    EXPECT_EQ(value->size(), static_cast<std::size_t>(kElements));
  } else {
    EXPECT_EQ(lost->kind(), "object_lost") << lost->what();
  }
  // The driver holds the ref and the task's spec is in lineage: it is rebuilt.
  EXPECT_TRUE(value.has_value()) << "not rebuilt: " << (lost ? lost->what() : "");

  // A task that needs it runs on the rebuilt object or fails with the cause.
  fleet::ObjectRef<double> sum = fleet::Task(SumArray).Remote(big);
  try {
    EXPECT_GT(sum.Get(kResultTimeout), 0);
    EXPECT_TRUE(value.has_value()) << "the task ran on an object the client was told was lost";
  } catch (const fleet::TaskError& e) {
    EXPECT_EQ(e.kind(), "dependency_failed") << e.what();
    ASSERT_NE(e.cause(), nullptr) << e.what();
    EXPECT_EQ(e.cause()->kind(), "object_lost") << e.what();
  }
  // The surviving worker still runs new work.
  EXPECT_EQ(fleet::Task(Square).Remote(6).Get(kResultTimeout), 36);
}

}  // namespace
}  // namespace fleet_it
