#include "common/event_loop.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "grpcpp/completion_queue.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

TEST(EventLoopTest, RunsEventsInOrderOnOneThreadAndThenTheBatchHook) {
  std::vector<int> seen;  // touched only on the loop thread
  std::atomic<int> hooks{0};
  std::thread::id loop_thread;
  absl::Notification done;
  {
    EventLoop loop([&] { hooks++; });
    for (int i = 0; i < 100; ++i) {
      loop.Post([&, i] {
        if (i == 0) loop_thread = std::this_thread::get_id();
        EXPECT_EQ(std::this_thread::get_id(), loop_thread);
        seen.push_back(i);
        if (i == 99) done.Notify();
      });
    }
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_NE(loop_thread, std::this_thread::get_id());
  // Batched: at least one hook, at most one per event.
  EXPECT_GE(hooks.load(), 1);
  EXPECT_LE(hooks.load(), 100);
}

TEST(EventLoopTest, PostsFromManyThreadsAllRun) {
  std::atomic<int> count{0};
  absl::Notification done;
  EventLoop loop([] {});
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        loop.Post([&] {
          if (++count == 4000) done.Notify();
        });
      }
    });
  }
  for (auto& t : posters) t.join();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(count.load(), 4000);
}

TEST(EventLoopTest, RunsWithoutABatchHook) {
  absl::Notification ran;
  EventLoop loop;
  loop.Post([&] { ran.Notify(); });
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(EventLoopTest, PostAfterStopIsDropped) {
  std::atomic<int> count{0};
  EventLoop loop([] {});
  loop.Stop();
  loop.Post([&] { count++; });
  EXPECT_EQ(count.load(), 0);
}

TEST(EventLoopTest, DrivenByACompletionQueueRunsEverythingOnTheDrainingThread) {
  grpc::CompletionQueue queue;
  std::atomic<int> hooks{0};
  absl::Notification hooked;
  EventLoop loop(
      [&] {
        if (hooks.fetch_add(1) == 0) hooked.Notify();
      },
      EventLoop::DrivenByCompletionQueue{});
  std::atomic<int> count{0};
  std::atomic<int> wrong_thread{0};
  std::atomic<bool> follow_up_ran{false};
  absl::Notification attached;
  absl::Notification done;
  std::thread::id drain_thread;
  std::thread drainer([&] {
    drain_thread = std::this_thread::get_id();
    int wake_tag = 0;
    loop.AttachTo(&queue, &wake_tag);
    attached.Notify();
    void* tag = nullptr;
    bool ok = false;
    while (queue.Next(&tag, &ok)) {
      EXPECT_EQ(tag, &wake_tag);
      loop.OnWakeUp();
      loop.RunPending();
    }
  });
  attached.WaitForNotification();
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        loop.Post([&] {
          if (std::this_thread::get_id() != drain_thread) wrong_thread++;
          if (++count == 4000) {
            // Posted from the draining thread: runs in the same round,
            // with no wake-up of its own.
            loop.Post([&] {
              follow_up_ran = true;
              done.Notify();
            });
          }
        });
      }
    });
  }
  for (std::thread& poster : posters) poster.join();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // The round's hook runs after its events; a Stop before it would skip it.
  ASSERT_TRUE(hooked.WaitForNotificationWithTimeout(absl::Seconds(10)));
  loop.Stop();
  queue.Shutdown();
  drainer.join();
  EXPECT_EQ(count.load(), 4000);
  EXPECT_TRUE(follow_up_ran.load());
  EXPECT_EQ(wrong_thread.load(), 0);
  // One hook per round that ran something: at least one, at most one per event.
  EXPECT_GE(hooks.load(), 1);
  EXPECT_LE(hooks.load(), 4000);
}

}  // namespace
}  // namespace fleet
