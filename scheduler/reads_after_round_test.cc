#include <vector>

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

}  // namespace
}  // namespace fleet::scheduler
