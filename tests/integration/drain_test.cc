// Graceful drain: SIGTERM to a worker (what docker stop and Kubernetes
// send) stops new assignments, lets the tasks it holds finish there, copies
// the objects only it holds to the other worker, and then it exits with
// status 0. Nothing is re-run, nothing is rebuilt, nothing is lost.
#include <signal.h>
#include <sys/wait.h>

#include <cstdint>
#include <set>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

constexpr int64_t kArrayDoubles = (int64_t{1} << 20) / 8;  // 1 MiB: never inlined

class DrainTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override { return {"--drain_timeout=60s"}; }
};

TEST_F(DrainTest, TerminatedWorkerFinishesItsTasksHandsOverItsObjectsAndExits) {
  const int leaving = cluster().worker_pid(0);
  const int staying = cluster().worker_pid(1);

  // Results held by this client, some made (and so held only) on the
  // worker that is about to leave.
  std::vector<fleet::ObjectRef<fleet::Array<double>>> arrays;
  for (int i = 0; i < 8; ++i) {
    arrays.push_back(fleet::Task(MakeBigArray).Remote(kArrayDoubles, static_cast<double>(i)));
  }
  int made_by_leaving = 0;
  for (auto& ref : arrays) made_by_leaving += ref.GetView()[0] == leaving ? 1 : 0;
  ASSERT_GT(made_by_leaving, 0) << "no array was made on the worker that leaves";

  // Work in progress on both workers when the signal comes.
  std::vector<fleet::ObjectRef<int>> sleepers;
  for (int i = 0; i < 8; ++i) sleepers.push_back(fleet::Task(SleepThenPid).Remote(1000));
  ASSERT_TRUE(cluster().WaitForStatus(EveryWorkerRunsATask, kStatusTimeout));
  ASSERT_EQ(kill(leaving, SIGTERM), 0);
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        for (const auto& w : s["workers"]) {
          if (w["state"] == "draining") return true;
        }
        return s["workers"].size() == 1u;
      },
      kStatusTimeout, &status))
      << status.dump();

  // It exits cleanly once it has handed everything over.
  const std::optional<int> exit_status = cluster().WaitForWorkerExit(0, kResultTimeout);
  ASSERT_TRUE(exit_status.has_value()) << "the draining worker did not exit";
  EXPECT_TRUE(WIFEXITED(*exit_status) && WEXITSTATUS(*exit_status) == 0) << *exit_status;

  // Every task it was running or had queued finished there, not elsewhere.
  std::set<int> pids;
  for (auto& ref : sleepers) pids.insert(ref.Get(kResultTimeout));
  EXPECT_TRUE(pids.count(leaving)) << "no task finished on the draining worker";
  // Its arrays are still readable: copied to the other worker, not rebuilt.
  for (int i = 0; i < static_cast<int>(arrays.size()); ++i) {
    fleet::ArrayView<double> view = arrays[i].GetView();
    ASSERT_EQ(view.size(), static_cast<std::size_t>(kArrayDoubles));
    EXPECT_EQ(view[1], BigArrayValue(i, 1));
    EXPECT_EQ(view[kArrayDoubles - 1], BigArrayValue(i, kArrayDoubles - 1));
  }
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["workers"].size() == 1u; }, kStatusTimeout, &status))
      << status.dump();
  EXPECT_EQ(status["tasks"]["retried"], 0) << status.dump();
  EXPECT_EQ(status["tasks"]["reconstructed"], 0) << status.dump();
  EXPECT_EQ(status["tasks"]["failed"], 0) << status.dump();
  EXPECT_EQ(status["workers"][0]["pid"], staying);
  // New work runs on the worker that stayed.
  EXPECT_EQ(fleet::Task(WorkerPid).Remote().Get(kResultTimeout), staying);
}

}  // namespace
}  // namespace fleet_it
