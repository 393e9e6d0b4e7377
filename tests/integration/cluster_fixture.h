// The fixture of the integration tests: every test gets a fresh cluster (a
// fleet-scheduler and two fleet-worker processes, or NumWorkers(), with two
// slots each, on 127.0.0.1) and a client connected to it, so no test sees
// another's tasks, objects or counters.
#ifndef FLEET_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
#define FLEET_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/test_tasks.h"
#include "tests/testing/local_process_cluster.h"

namespace fleet_it {

using namespace std::chrono_literals;

inline constexpr int kWorkers = 2;
inline constexpr int kSlotsPerWorker = 2;
// Bound of every Get and Wait that is expected to succeed.
inline constexpr std::chrono::seconds kResultTimeout(60);
// Bound of every poll of /status for a state expected soon.
inline constexpr std::chrono::seconds kStatusTimeout(15);

// How many synchronous calls the tests of the same-host paths make.
inline constexpr int kSyncCalls = 40;

// What a synchronous client does: Square(i).Get() for i in [0, calls), one
// after another, each checked. Wrap in ASSERT_NO_FATAL_FAILURE.
inline void CallSquaresSynchronously(int calls) {
  for (int i = 0; i < calls; ++i) {
    ASSERT_EQ(fleet::Task(Square).Remote(i).Get(kResultTimeout), i * i);
  }
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<fleet::test::LocalProcessCluster>(fleet::test::ClusterOptions{
        .workers = NumWorkers(),
        .slots_per_worker = kSlotsPerWorker,
        .task_libraries = {FLEET_TEST_TASK_LIB},
        .worker_flags = WorkerFlags(),
        .scheduler_flags = SchedulerFlags(),
    });
    ASSERT_TRUE(cluster_->Start());
    fleet::Init({.address = cluster_->scheduler_address(), .connect_timeout = 10s});
  }

  void TearDown() override {
    fleet::Shutdown();
    cluster_.reset();  // stops the daemons; prints their logs if the test failed
  }

  // How many fleet-workers the cluster starts (kWorkers unless overridden).
  virtual int NumWorkers() const { return kWorkers; }
  // Extra flags for every fleet-worker of the cluster, and for the scheduler.
  virtual std::vector<std::string> WorkerFlags() const { return {}; }
  virtual std::vector<std::string> SchedulerFlags() const { return {}; }

  fleet::test::LocalProcessCluster& cluster() { return *cluster_; }

  std::vector<int> WorkerPids() const {
    std::vector<int> pids;
    for (int i = 0; i < cluster_->num_workers(); ++i) pids.push_back(cluster_->worker_pid(i));
    return pids;
  }

 private:
  std::unique_ptr<fleet::test::LocalProcessCluster> cluster_;
};

// Whether every worker in /status runs at least one task.
inline bool EveryWorkerRunsATask(const nlohmann::json& status) {
  for (const nlohmann::json& w : status["workers"]) {
    if (w["tasks_running"].get<int>() == 0) return false;
  }
  return true;
}

// Sum of a numeric field over /status's workers.
inline double SumOverWorkers(const nlohmann::json& status, const char* field) {
  double sum = 0;
  if (!status.contains("workers")) return sum;
  for (const nlohmann::json& w : status["workers"]) sum += w.value(field, 0.0);
  return sum;
}

// /status once every worker in `since` (a /status read before) has sent a
// heartbeat after it, so that the workers' own figures (store, transfers,
// counters) cover what happened before `since` was read. Fails the test,
// and returns the last read, when that takes longer than kStatusTimeout.
inline nlohmann::json StatusWithHeartbeatsAfter(const fleet::test::LocalProcessCluster& cluster,
                                                const nlohmann::json& since) {
  nlohmann::json last;
  const bool fresh = cluster.WaitForStatus(
      [&](const nlohmann::json& s) {
        if (s["workers"].size() != since["workers"].size()) return false;
        for (const auto& w : s["workers"]) {
          if (w["last_heartbeat_s"].is_null()) return false;
          // The heartbeat's time on the worker's uptime clock, against
          // that clock when `since` was read.
          const double heartbeat_at =
              w["uptime_s"].get<double>() - w["last_heartbeat_s"].get<double>();
          bool newer = false;
          for (const auto& before : since["workers"]) {
            if (before["id"] == w["id"]) newer = heartbeat_at > before["uptime_s"].get<double>();
          }
          if (!newer) return false;
        }
        return true;
      },
      kStatusTimeout, &last);
  EXPECT_TRUE(fresh) << "the workers sent no heartbeat after " << since.dump()
                     << "; the last /status: " << last.dump();
  return last;
}

// The TaskError that Get throws for `ref`, or nullopt when Get returned a
// value. Bounded by kResultTimeout (a GetTimeout propagates).
template <typename T>
std::optional<fleet::TaskError> GetError(const fleet::ObjectRef<T>& ref) {
  try {
    ref.Get(kResultTimeout);
  } catch (const fleet::TaskError& e) {
    return e;
  }
  return std::nullopt;
}

// Ids of refs, for comparing Wait's split with the input.
template <typename T>
std::vector<std::string> Ids(const std::vector<fleet::ObjectRef<T>>& refs) {
  std::vector<std::string> ids;
  for (const auto& r : refs) ids.push_back(r.Id());
  return ids;
}

}  // namespace fleet_it

#endif  // FLEET_TESTS_INTEGRATION_CLUSTER_FIXTURE_H_
