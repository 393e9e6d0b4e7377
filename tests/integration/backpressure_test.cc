// Back-pressure with real processes: a client that submits far faster than
// the workers run is held back by its window of unadmitted submissions,
// and the scheduler admits only while it holds few enough tasks, so the
// tasks it holds stay bounded however many the client submits.
#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

constexpr int kMaxPending = 100;
constexpr int kWindow = 50;
constexpr int kTasks = 1500;

TEST(BackPressureTest, TheSchedulerHoldsABoundedNumberOfTasks) {
  fleet::test::LocalProcessCluster cluster(fleet::test::ClusterOptions{
      .workers = kWorkers,
      .slots_per_worker = kSlotsPerWorker,
      .task_libraries = {FLEET_TEST_TASK_LIB},
      .scheduler_flags = {"--max_pending_tasks=" + std::to_string(kMaxPending)},
  });
  ASSERT_TRUE(cluster.Start());
  fleet::Init({.address = cluster.scheduler_address(),
               .connect_timeout = 10s,
               .submit_window = kWindow});

  // Samples what the scheduler holds while the client submits.
  std::atomic<bool> done{false};
  std::atomic<int> most_held{0};
  std::atomic<int> samples{0};
  std::thread sampler([&] {
    while (!done.load()) {
      if (auto s = cluster.TryStatus()) {
        const auto& t = (*s)["tasks"];
        const int held = t["waiting"].get<int>() + t["ready"].get<int>() + t["assigned"].get<int>();
        most_held = std::max(most_held.load(), held);
        samples++;
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(fleet::Task(SleepMs).Remote(1));
  for (const auto& ref : refs) ASSERT_EQ(ref.Get(kResultTimeout), 1);
  done = true;
  sampler.join();
  fleet::Shutdown();

  ASSERT_GT(samples.load(), 10);
  // Admitted while at most kMaxPending were held, plus one window in flight.
  EXPECT_LE(most_held.load(), kMaxPending + kWindow);
  EXPECT_GT(most_held.load(), kWindow / 2) << "the test did not load the scheduler";
}

// The scheduler tells admissions on their own (no result to ride along
// with) once a quarter of the client's window awaits them: a client with a
// window of one submits task after task while none of them ends.
TEST(BackPressureTest, AWindowOfOneSubmitsWhileNoTaskEnds) {
  fleet::test::LocalProcessCluster cluster(fleet::test::ClusterOptions{
      .workers = kWorkers,
      .slots_per_worker = kSlotsPerWorker,
      .task_libraries = {FLEET_TEST_TASK_LIB},
  });
  ASSERT_TRUE(cluster.Start());
  fleet::Init({.address = cluster.scheduler_address(), .connect_timeout = 10s, .submit_window = 1});
  const std::string gate = cluster.temp_dir() + "/gate";
  constexpr int kGated = 2 * kWorkers * kSlotsPerWorker;  // half of them wait for a slot
  std::vector<fleet::ObjectRef<int>> refs;
  for (int i = 0; i < kGated; ++i) {
    refs.push_back(fleet::Task(GatedSquare).Remote(GatedInput{.value = i, .gate_path = gate}));
  }
  // Each Remote above returned only once the one before was admitted; the
  // last is admitted too, while the gate still holds every task.
  int held = 0;
  for (int attempt = 0; attempt < 200 && held < kGated; ++attempt) {
    if (auto s = cluster.TryStatus()) {
      const auto& t = (*s)["tasks"];
      held = t["waiting"].get<int>() + t["ready"].get<int>() + t["assigned"].get<int>();
    }
    if (held < kGated) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(held, kGated);
  std::ofstream(gate).put('\n');
  for (int i = 0; i < kGated; ++i) EXPECT_EQ(refs[i].Get(kResultTimeout), i * i);
  fleet::Shutdown();
}

}  // namespace
}  // namespace fleet_it
