// Peer-to-peer transfer of shared arguments: one large Put object read by
// many tasks on two workers moves to each worker at most once, however many
// tasks there read it at the same time (the seed's 80 MB array read by 95
// tasks).
#include <cmath>
#include <set>
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

// Waits until every worker has sent a heartbeat after `since` (a status
// read earlier), so that its counters describe everything before it.
nlohmann::json FreshStatus(const fleet::test::LocalProcessCluster& cluster, const nlohmann::json& since) {
  nlohmann::json last;
  const bool fresh = cluster.WaitForStatus(
      [&](const nlohmann::json& s) {
        if (s["workers"].size() != since["workers"].size()) return false;
        for (const auto& w : s["workers"]) {
          bool newer = false;
          for (const auto& before : since["workers"]) {
            if (before["id"] != w["id"]) continue;
            // Heard from after the earlier read: uptime moved on by more
            // than the age of the last message.
            const double heard_at = w["uptime_s"].get<double>() - w["last_heard_s"].get<double>();
            newer = heard_at > before["uptime_s"].get<double>();
          }
          if (!newer) return false;
        }
        return true;
      },
      kStatusTimeout, &last);
  EXPECT_TRUE(fresh) << "workers sent no heartbeat after the job: " << last.dump();
  return last;
}

TEST_F(ClusterTest, SharedArgumentMovesToEachWorkerAtMostOnce) {
  fleet::Array<double> data(kElements);
  for (int64_t i = 0; i < kElements; ++i) data[i] = static_cast<double>(i % 1000);
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
    ASSERT_NEAR(got.mean, want, 1e-9 * std::abs(want)) << "task " << t;
    pids.insert(got.pid);
  }
  ASSERT_EQ(pids.size(), 2u) << "the test needs tasks on both workers";

  const nlohmann::json status = FreshStatus(cluster(), cluster().Status());
  uint64_t fetched_objects = 0;
  for (const auto& w : status["workers"]) {
    // The worker holding the Put never fetches it; the other fetches it once.
    EXPECT_LE(w["objects_fetched"].get<uint64_t>(), 1u) << w.dump();
    EXPECT_LE(w["bytes_received"].get<uint64_t>(), data.size_bytes() + 4096) << w.dump();
    fetched_objects += w["objects_fetched"].get<uint64_t>();
  }
  EXPECT_EQ(fetched_objects, 1u) << status.dump();
  // And whoever holds it served it once.
  uint64_t sent = 0;
  for (const auto& w : status["workers"]) sent += w["bytes_sent"].get<uint64_t>();
  EXPECT_GE(sent, data.size_bytes());
  EXPECT_LE(sent, data.size_bytes() + 4096);
}

}  // namespace
}  // namespace fleet_it
