#include <string>
#include <vector>

#include "fleet/v1/scheduler.pb.h"
#include "gtest/gtest.h"
#include "scheduler/server_stream.h"

namespace fleet::scheduler {
namespace {

TEST(ReadsAfterRoundTest, HoldsTheRoundsFirstReadUntilPostHeld) {
  ReadsAfterRound reads;
  std::vector<int> posted;
  reads.Add([&] { posted.push_back(1); });
  EXPECT_TRUE(posted.empty());
  reads.PostHeld();
  EXPECT_EQ(posted, std::vector<int>({1}));
  reads.PostHeld();  // nothing held any more
  EXPECT_EQ(posted, std::vector<int>({1}));
}

TEST(ReadsAfterRoundTest, PostsTheRoundsLaterReadsAtOnce) {
  ReadsAfterRound reads;
  std::vector<int> posted;
  reads.Add([&] { posted.push_back(1); });
  reads.Add([&] { posted.push_back(2); });
  reads.Add([&] { posted.push_back(3); });
  EXPECT_EQ(posted, std::vector<int>({2, 3}));
  reads.PostHeld();
  EXPECT_EQ(posted, std::vector<int>({2, 3, 1}));
  // A new round holds its first read again.
  reads.Add([&] { posted.push_back(4); });
  EXPECT_EQ(posted, std::vector<int>({2, 3, 1}));
  reads.PostHeld();
  EXPECT_EQ(posted, std::vector<int>({2, 3, 1, 4}));
}

TEST(ReadsAfterRoundTest, OnceStoppingPostsWhatIsHeldAndEachReadAtOnce) {
  ReadsAfterRound reads;
  std::vector<int> posted;
  reads.Add([&] { posted.push_back(1); });
  reads.StopHolding();
  EXPECT_EQ(posted, std::vector<int>({1}));
  reads.Add([&] { posted.push_back(2); });
  EXPECT_EQ(posted, std::vector<int>({1, 2}));
}

// The room a message from `pool` has for its first completion's task id.
std::size_t RoomOfNext(SparePool<v1::WorkerToScheduler>& pool) {
  v1::WorkerToScheduler next = pool.Take();
  EXPECT_EQ(next.completed_size(), 0);  // cleared: nothing read before shows again
  return next.mutable_completed()->Add()->mutable_task_id()->capacity();
}

v1::WorkerToScheduler ReadWithTaskIdOf(std::size_t bytes) {
  v1::WorkerToScheduler message;
  message.add_completed()->set_task_id(std::string(bytes, 'a'));
  return message;
}

TEST(SparePoolTest, KeepsTwoReadMessagesForTheNextReadsToParseInto) {
  SparePool<v1::WorkerToScheduler> pool;
  constexpr std::size_t kRoom = 4096;
  pool.Give(ReadWithTaskIdOf(kRoom));
  pool.Give(ReadWithTaskIdOf(kRoom));
  pool.Give(ReadWithTaskIdOf(kRoom));  // a third is dropped
  EXPECT_GE(RoomOfNext(pool), kRoom);
  EXPECT_GE(RoomOfNext(pool), kRoom);
  EXPECT_LT(RoomOfNext(pool), kRoom);
}

TEST(SparePoolTest, DropsAMessageOverAMebibyte) {
  SparePool<v1::WorkerToScheduler> pool;
  pool.Give(ReadWithTaskIdOf(2 << 20));
  EXPECT_LT(RoomOfNext(pool), std::size_t{2 << 20});
}

}  // namespace
}  // namespace fleet::scheduler
