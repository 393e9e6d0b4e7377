// Waiting for results: Get with a timeout, and Wait's ready/pending split.
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

TEST_F(ClusterTest, GetWithTimeoutThrowsGetTimeoutAndLaterGetSucceeds) {
  fleet::ObjectRef<int> slow = fleet::Task(SleepMs).Remote(2000);
  try {
    slow.Get(100ms);
    FAIL() << "Get(100ms) returned the result of a task that sleeps 2 s";
  } catch (const fleet::GetTimeout& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr(slow.Id().substr(0, 8)));
  }
  // fleet::Get with a timeout behaves the same.
  EXPECT_THROW(fleet::Get(slow, 10ms), fleet::GetTimeout);
  // The task went on; a later Get returns its value.
  EXPECT_EQ(slow.Get(kResultTimeout), 2000);
  EXPECT_EQ(fleet::Get(slow), 2000);
  EXPECT_EQ(slow.Get(1ms), 2000);  // ready now: no timeout
}

TEST_F(ClusterTest, WaitSplitsReadyAndPending) {
  constexpr int kSlowMs = 4000;
  std::vector<fleet::ObjectRef<int>> fast;
  std::vector<fleet::ObjectRef<int>> slow;
  std::vector<fleet::ObjectRef<int>> all;
  // Fast ones first so that none queues behind a slow one on a worker.
  for (int i = 1; i <= 4; ++i) fast.push_back(fleet::Task(SleepMs).Remote(i));
  for (int i = 0; i < 2; ++i) slow.push_back(fleet::Task(SleepMs).Remote(kSlowMs));
  all.insert(all.end(), fast.begin(), fast.end());
  all.insert(all.end(), slow.begin(), slow.end());

  fleet::WaitResult<int> four = fleet::Wait(all, 4, kResultTimeout);
  EXPECT_THAT(Ids(four.ready), ElementsAreArray(Ids(fast)));
  EXPECT_THAT(Ids(four.pending), ElementsAreArray(Ids(slow)));

  // A short timeout returns fewer than asked, without throwing.
  fleet::WaitResult<int> short_wait = fleet::Wait(slow, 2, 50ms);
  EXPECT_LT(short_wait.ready.size(), 2u);
  EXPECT_EQ(short_wait.ready.size() + short_wait.pending.size(), 2u);

  // Asking for no more than is ready returns at once with all that is ready.
  fleet::WaitResult<int> one = fleet::Wait(fast, 1, kResultTimeout);
  EXPECT_EQ(one.ready.size(), fast.size());

  // Waiting long enough gets everything, in input order.
  fleet::WaitResult<int> everything = fleet::Wait(all, all.size(), kResultTimeout);
  EXPECT_THAT(Ids(everything.ready), ElementsAreArray(Ids(all)));
  EXPECT_TRUE(everything.pending.empty());
  EXPECT_EQ(fleet::Get(all), (std::vector<int>{1, 2, 3, 4, kSlowMs, kSlowMs}));

  // More returns than refs can never finish: an error, not a hang.
  EXPECT_THROW(fleet::Wait(fast, fast.size() + 1, 1s), fleet::Error);
}

}  // namespace
}  // namespace fleet_it
