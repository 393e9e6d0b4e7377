// The scheduler's HTTP endpoint during a job, and the cluster after a worker
// process dies.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
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

using ::testing::Contains;
using ::testing::UnorderedElementsAreArray;

TEST_F(ClusterTest, HealthzAnswersOk) {
  std::string body;
  EXPECT_EQ(cluster().HttpGet("/healthz", &body), 200);
  EXPECT_EQ(body, "ok\n");
}

// Runs `promtool check metrics` on `text`; returns its exit status and
// output, or nullopt when there is no promtool (deploy/install-deps.sh
// installs it).
std::optional<std::pair<int, std::string>> Promtool(const std::string& text) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return std::nullopt;
  const std::string input = ::testing::TempDir() + "/fleet-metrics.txt";
  std::ofstream(input) << text;
  FILE* pipe = popen(("promtool check metrics < " + input + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, output);
}

TEST_F(ClusterTest, MetricsCountTheJobAndPassPromtool) {
  constexpr int kTasks = 40;
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(fleet::Task(Square).Remote(i));
  for (int i = 0; i < kTasks; ++i) EXPECT_EQ(refs[i].Get(kResultTimeout), i * i);

  std::string text;
  ASSERT_EQ(cluster().HttpGet("/metrics", &text), 200);
  EXPECT_THAT(text, ::testing::HasSubstr("fleet_workers " + std::to_string(kWorkers) + "\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("fleet_tasks_finished_total " +
                                         std::to_string(kTasks) + "\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("fleet_task_run_seconds_count{function=\"Square\"} " +
                                         std::to_string(kTasks) + "\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "fleet_task_queue_wait_seconds_bucket{function=\"Square\",le=\"+Inf\"} " +
                        std::to_string(kTasks) + "\n"));
  const auto checked = Promtool(text);
  if (!checked) GTEST_SKIP() << "promtool is not installed (deploy/install-deps.sh installs it)";
  EXPECT_EQ(checked->first, 0) << checked->second << "\n" << text;
}

TEST_F(ClusterTest, DashboardPageIsServedWholeAndReadsStatus) {
  std::string page;
  ASSERT_EQ(cluster().HttpGet("/", &page), 200);
  EXPECT_THAT(page, ::testing::StartsWith("<!doctype html>"));
  EXPECT_THAT(page, ::testing::HasSubstr("fetch('/status'"));
  EXPECT_THAT(page, ::testing::HasSubstr("id=\"worker-table\""));
  EXPECT_THAT(page, ::testing::EndsWith("</html>\n"));
  // Self-contained: no script, style or image from elsewhere.
  EXPECT_THAT(page, ::testing::Not(::testing::HasSubstr("src=")));
  EXPECT_THAT(page, ::testing::Not(::testing::HasSubstr("href=")));
}

TEST_F(ClusterTest, StatusShowsWorkersSlotsAndRunningTasks) {
  // Idle: both workers, all slots free, nothing assigned.
  nlohmann::json idle = cluster().Status();
  ASSERT_EQ(idle["workers"].size(), static_cast<std::size_t>(kWorkers)) << idle.dump(2);
  EXPECT_EQ(idle["slots"]["total"].get<double>(), kWorkers * kSlotsPerWorker);
  EXPECT_EQ(idle["slots"]["busy"].get<uint64_t>(), 0u);
  EXPECT_EQ(idle["tasks"]["assigned"].get<uint64_t>(), 0u);
  EXPECT_GE(idle["sessions"].get<uint64_t>(), 1u);  // this test's client
  std::vector<int> pids;
  for (const nlohmann::json& w : idle["workers"]) {
    pids.push_back(w["pid"].get<int>());
    EXPECT_EQ(w["slots"].get<double>(), kSlotsPerWorker);
    EXPECT_EQ(w["state"], "alive");
    EXPECT_THAT(w["address"].get<std::string>(), ::testing::StartsWith("127.0.0.1:"));
  }
  EXPECT_THAT(pids, UnorderedElementsAreArray(WorkerPids()));

  // Busy: one sleeping task per slot. Workers report running tasks in
  // their heartbeats (every second), so poll until both are seen.
  constexpr int kSleepMs = 3000;
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kWorkers * kSlotsPerWorker; ++i) {
    refs.push_back(fleet::Task(SleepMs).Remote(kSleepMs));
  }
  nlohmann::json busy;
  const bool seen = cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return s["tasks"]["assigned"].get<uint64_t>() > 0 &&
               SumOverWorkers(s, "tasks_running") > 0 && s["slots"]["busy"].get<uint64_t>() > 0;
      },
      kStatusTimeout, &busy);
  EXPECT_TRUE(seen) << "no running task in /status: " << busy.dump(2);
  EXPECT_EQ(busy["workers"].size(), static_cast<std::size_t>(kWorkers));
  EXPECT_EQ(busy["slots"]["total"].get<double>(), kWorkers * kSlotsPerWorker);
  EXPECT_LE(busy["slots"]["busy"].get<uint64_t>(),
            static_cast<uint64_t>(kWorkers * kSlotsPerWorker));
  EXPECT_GE(SumOverWorkers(busy, "tasks_assigned"), 1);
  EXPECT_GE(busy["tasks"]["submitted"].get<uint64_t>(), refs.size());

  for (const auto& r : refs) EXPECT_EQ(r.Get(kResultTimeout), kSleepMs);

  // Done: nothing assigned, every task counted as finished. The scheduler
  // counts a task when its completion arrives, a moment after a same-host
  // worker handed the result to this client (worker/owner_delivery.h).
  nlohmann::json done;
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        return s["tasks"]["finished"].get<uint64_t>() >= refs.size();
      },
      kStatusTimeout, &done))
      << done.dump(2);
  EXPECT_EQ(done["tasks"]["assigned"].get<uint64_t>(), 0u) << done.dump(2);
  EXPECT_GE(done["tasks"]["finished"].get<uint64_t>(), refs.size());
  EXPECT_EQ(SumOverWorkers(done, "tasks_assigned"), 0);
  EXPECT_EQ(done["slots"]["busy"].get<uint64_t>(), 0u);
  // This client's job, with its own counts.
  ASSERT_EQ(done["jobs"].size(), 1u) << done.dump(2);
  const nlohmann::json& job = done["jobs"][0];
  EXPECT_EQ(job["state"], "connected");
  EXPECT_EQ(job["submitted"].get<uint64_t>(), refs.size());
  EXPECT_EQ(job["finished"].get<uint64_t>(), refs.size());
  EXPECT_EQ(job["pending"].get<uint64_t>(), 0u);
  EXPECT_GE(job["refs_held"].get<uint64_t>(), refs.size());
  EXPECT_THAT(job["client"].get<std::string>(), ::testing::EndsWith(":" + std::to_string(getpid())));
}

TEST_F(ClusterTest, TasksOfAKilledWorkerRunOnTheOtherWorker) {
  constexpr int kSleepMs = 1500;
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < 2 * kWorkers * kSlotsPerWorker; ++i) {
    refs.push_back(fleet::Task(SleepThenPid).Remote(kSleepMs));
  }
  // Wait until worker 0 holds some of them, then kill it.
  const int victim = cluster().worker_pid(0);
  const int survivor = cluster().worker_pid(1);
  nlohmann::json status;
  ASSERT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        for (const nlohmann::json& w : s["workers"]) {
          if (w["pid"].get<int>() == victim && w["tasks_assigned"].get<uint64_t>() > 0) return true;
        }
        return false;
      },
      kStatusTimeout, &status))
      << status.dump(2);
  cluster().KillWorker(0);

  // Every task still returns: those the dead worker had are run again.
  for (const auto& r : refs) {
    const int pid = r.Get(kResultTimeout);
    EXPECT_TRUE(pid == victim || pid == survivor) << pid;
  }
  // The scheduler drops the dead worker, and new work goes to the survivor.
  EXPECT_TRUE(cluster().WaitForStatus(
      [&](const nlohmann::json& s) {
        return s["workers"].size() == 1 && s["workers"][0]["pid"].get<int>() == survivor;
      },
      kStatusTimeout, &status))
      << status.dump(2);
  EXPECT_EQ(status["slots"]["total"].get<double>(), kSlotsPerWorker);
  EXPECT_EQ(fleet::Task(WorkerPid).Remote().Get(kResultTimeout), survivor);
}

}  // namespace
}  // namespace fleet_it
