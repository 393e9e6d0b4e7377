// Tasks and their results: many independent tasks, chains and DAGs of
// dependent tasks, and clients using the API from several threads.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

TEST_F(ClusterTest, TenThousandTasksEachReturnTheirResult) {
  constexpr int kTasks = 10'000;
  auto square = fleet::Task(Square);
  std::vector<fleet::ObjectRef<int>> refs;
  refs.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) refs.push_back(square.Remote(i));

  // Bounded wait first; then fleet::Get of the vector returns at once.
  auto [ready, pending] = fleet::Wait(refs, refs.size(), kResultTimeout);
  ASSERT_EQ(ready.size(), refs.size()) << pending.size() << " tasks still pending";
  std::vector<int> values = fleet::Get(refs);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(kTasks));
  int wrong = 0;
  for (int i = 0; i < kTasks; ++i) {
    if (values[i] != i * i && ++wrong <= 5) ADD_FAILURE() << "Square(" << i << ") = " << values[i];
  }
  EXPECT_EQ(wrong, 0);

  // Counted when each completion reaches the scheduler, a moment after a
  // same-host worker handed the last results to this client.
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return s["tasks"]["finished"].get<uint64_t>() >= static_cast<uint64_t>(kTasks);
      },
      kStatusTimeout, &status))
      << status.dump(2);
  EXPECT_GE(status["tasks"]["finished"].get<uint64_t>(), static_cast<uint64_t>(kTasks));
  EXPECT_GE(status["tasks"]["submitted"].get<uint64_t>(), static_cast<uint64_t>(kTasks));
  EXPECT_EQ(status["tasks"]["failed"].get<uint64_t>(), 0u);
  ASSERT_EQ(status["workers"].size(), static_cast<std::size_t>(kWorkers)) << status.dump(2);
  for (const nlohmann::json& w : status["workers"]) {
    EXPECT_GT(w["tasks_finished"].get<uint64_t>(), 0u) << "a worker ran nothing: " << w.dump();
  }
  EXPECT_GE(SumOverWorkers(status, "tasks_finished"), kTasks);
}

TEST_F(ClusterTest, DependencyChainOfDepth100) {
  auto add = fleet::Task(Add);
  fleet::ObjectRef<int64_t> ref = add.Remote(0, 0);
  // Each step takes the previous ref; the previous ref itself is dropped
  // right away, so the cluster must keep it alive for its pending use.
  for (int i = 1; i <= 100; ++i) ref = add.Remote(ref, i);
  EXPECT_EQ(ref.Get(kResultTimeout), 5050);
}

TEST_F(ClusterTest, DiamondDag) {
  // a -> b, a -> c, (b, c) -> d
  fleet::ObjectRef<int> a = fleet::Task(Square).Remote(3);
  fleet::ObjectRef<int64_t> b = fleet::Task(Add).Remote(a, 1);
  fleet::ObjectRef<int64_t> c = fleet::Task(Multiply).Remote(a, 2);
  fleet::ObjectRef<int64_t> d = fleet::Task(Add).Remote(b, c);
  EXPECT_EQ(d.Get(kResultTimeout), 28);
  EXPECT_EQ(a.Get(kResultTimeout), 9);
  EXPECT_EQ(b.Get(kResultTimeout), 10);
  EXPECT_EQ(c.Get(kResultTimeout), 18);
}

TEST_F(ClusterTest, SameRefTwiceInOneCall) {
  fleet::ObjectRef<int64_t> a = fleet::Task(Add).Remote(20, 1);
  EXPECT_EQ(fleet::Task(Add).Remote(a, a).Get(kResultTimeout), 42);
  EXPECT_EQ(fleet::Task(Multiply).Remote(a, a).Get(kResultTimeout), 441);
}

TEST_F(ClusterTest, WideFanInOfSlowAndFastArguments) {
  // One task whose two arguments finish at different times, repeated over
  // many pairs: the dependency table must count every argument.
  std::vector<fleet::ObjectRef<int64_t>> sums;
  for (int i = 0; i < 50; ++i) {
    auto slow = fleet::Task(SleepMs).Remote(i % 5 == 0 ? 50 : 0);
    auto fast = fleet::Task(Square).Remote(i);
    sums.push_back(fleet::Task(Add).Remote(slow, fast));
  }
  auto [ready, pending] = fleet::Wait(sums, sums.size(), kResultTimeout);
  ASSERT_TRUE(pending.empty());
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(sums[i].Get(kResultTimeout), (i % 5 == 0 ? 50 : 0) + i * i) << "pair " << i;
  }
}

TEST_F(ClusterTest, VoidTaskAndCallByName) {
  fleet::ObjectRef<void> done = fleet::Task(Noop).Remote();
  EXPECT_NO_THROW(done.Get(kResultTimeout));
  // By name with the right signature, as a program that does not link the
  // task library would call it.
  EXPECT_EQ(fleet::Task<int(int)>("Square").Remote(12).Get(kResultTimeout), 144);
  EXPECT_EQ(
      fleet::Task<std::string(std::string, int)>("Repeat").Remote("ab", 3).Get(kResultTimeout),
      "ababab");
}

TEST_F(ClusterTest, ManyThreadsSubmitAndGetConcurrently) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  // One shared large object that every thread also reads.
  constexpr int64_t kBigElements = 1 << 20;  // 8 MiB
  fleet::ObjectRef<fleet::Array<double>> big = fleet::Task(MakeBigArray).Remote(kBigElements, 3.0);

  std::atomic<int> wrong{0};
  std::atomic<int> errors{0};
  std::vector<std::string> first_error(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        std::vector<fleet::ObjectRef<int>> refs;
        for (int i = 0; i < kPerThread; ++i) {
          refs.push_back(fleet::Task(Square).Remote(t * 1000 + i));
        }
        for (int i = 0; i < kPerThread; ++i) {
          const int x = t * 1000 + i;
          if (refs[i].Get(kResultTimeout) != x * x) wrong++;
        }
        fleet::Array<double> a = big.Get(kResultTimeout);
        if (a.size() != static_cast<std::size_t>(kBigElements) || a[1] != BigArrayValue(3.0, 1) ||
            a[a.size() - 1] != BigArrayValue(3.0, a.size() - 1)) {
          wrong++;
        }
      } catch (const std::exception& e) {
        errors++;
        first_error[t] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(first_error[t], "") << "thread " << t;
}

TEST_F(ClusterTest, InitTwiceThrowsAndShutdownAllowsANewSession) {
  EXPECT_THROW(fleet::Init({.address = cluster().scheduler_address()}), fleet::Error);
  EXPECT_TRUE(fleet::IsInitialized());
  fleet::ObjectRef<int> r = fleet::Task(Square).Remote(5);
  EXPECT_EQ(r.Get(kResultTimeout), 25);
  fleet::Shutdown();
  EXPECT_FALSE(fleet::IsInitialized());
  // Calls without a session fail with a clear error, not a hang.
  EXPECT_THROW(fleet::Task(Square).Remote(6), fleet::Error);
  EXPECT_THROW(r.Get(kResultTimeout), fleet::Error);
  // A new session on the same cluster works.
  fleet::Init({.address = cluster().scheduler_address(), .connect_timeout = 10s});
  EXPECT_EQ(fleet::Task(Square).Remote(7).Get(kResultTimeout), 49);
}

}  // namespace
}  // namespace fleet_it
