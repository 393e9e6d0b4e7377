#include "scheduler/rate_meter.h"

#include "gtest/gtest.h"

namespace fleet::scheduler {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

TEST(RateMeterTest, AveragesWholeSecondsOfTheWindow) {
  RateMeter meter(kStart);
  for (int s = 0; s < 20; ++s) meter.Add(kStart + absl::Seconds(s) + absl::Milliseconds(500), 10);
  // At 20.5 s, seconds 10..19 are the last ten whole ones: 10 a second.
  EXPECT_DOUBLE_EQ(meter.PerSecond(kStart + absl::Milliseconds(20'500), 10), 10.0);
  // Over a minute, only 20 seconds have passed: the mean of those.
  EXPECT_DOUBLE_EQ(meter.PerSecond(kStart + absl::Milliseconds(20'500), 60), 10.0);
}

TEST(RateMeterTest, ForgetsSecondsOutsideTheWindow) {
  RateMeter meter(kStart);
  meter.Add(kStart + absl::Seconds(1), 100);
  EXPECT_DOUBLE_EQ(meter.PerSecond(kStart + absl::Seconds(5), 10), 20.0);  // 100 over seconds 0..4
  // A minute on, the ring's bucket for second 1 may be read for a later
  // second: its old count must not count again.
  EXPECT_DOUBLE_EQ(meter.PerSecond(kStart + absl::Seconds(71), 60), 0.0);
  meter.Add(kStart + absl::Seconds(70), 6);
  EXPECT_DOUBLE_EQ(meter.PerSecond(kStart + absl::Seconds(71), 10), 0.6);
}

TEST(RateMeterTest, ReadsZeroBeforeTheFirstWholeSecond) {
  RateMeter meter(kStart);
  meter.Add(kStart, 5);
  EXPECT_DOUBLE_EQ(meter.PerSecond(kStart + absl::Milliseconds(900), 10), 0.0);
}

}  // namespace
}  // namespace fleet::scheduler
