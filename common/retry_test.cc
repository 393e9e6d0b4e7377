#include "common/retry.h"

#include <vector>

#include "gtest/gtest.h"

namespace fleet {
namespace {

TEST(RetryWithBackoffTest, RetriesWithGrowingPausesUntilATrySucceeds) {
  std::vector<absl::Duration> pauses;
  int tries = 0;
  std::optional<absl::Status> result = RetryWithBackoff(
      absl::Now() + absl::Minutes(1), absl::UnavailableError("lost"), [] { return true; },
      [&](absl::Duration timeout) {
        EXPECT_LE(timeout, absl::Seconds(2));
        return ++tries < 4 ? absl::UnavailableError("refused") : absl::OkStatus();
      },
      [&](absl::Duration pause) {
        pauses.push_back(pause);
        return true;
      });
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
  EXPECT_EQ(tries, 4);
  EXPECT_EQ(pauses, (std::vector<absl::Duration>{absl::Milliseconds(100),
                                                 absl::Milliseconds(200),
                                                 absl::Milliseconds(400)}));
}

TEST(RetryWithBackoffTest, StopsAtOnceWhenThePeerRefusesTheToken) {
  int tries = 0;
  std::optional<absl::Status> result = RetryWithBackoff(
      absl::Now() + absl::Minutes(1), absl::UnavailableError("lost"), [] { return true; },
      [&](absl::Duration) {
        ++tries;
        return absl::UnauthenticatedError("refused the cluster token");
      },
      [](absl::Duration) { return true; });
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(absl::IsUnauthenticated(*result));
  EXPECT_EQ(tries, 1);
}

TEST(RetryWithBackoffTest, GivesUpAtTheDeadlineWithTheLastError) {
  int tries = 0;
  std::optional<absl::Status> result = RetryWithBackoff(
      absl::Now() + absl::Milliseconds(50), absl::UnavailableError("lost"), [] { return true; },
      [&](absl::Duration) {
        ++tries;
        return absl::UnavailableError(absl::StrCat("refused ", tries));
      },
      [](absl::Duration) {
        absl::SleepFor(absl::Milliseconds(30));
        return true;
      });
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->message(), absl::StrCat("refused ", tries));
  EXPECT_GE(tries, 1);
  // No try at all: the error that started it.
  result = RetryWithBackoff(absl::Now() - absl::Seconds(1), absl::UnavailableError("lost"),
                            [] { return true; },
                            [](absl::Duration) { return absl::OkStatus(); },
                            [](absl::Duration) { return true; });
  EXPECT_EQ(result->message(), "lost");
}

TEST(RetryWithBackoffTest, StopsWhenTheCallerDoes) {
  int tries = 0;
  auto refused = [&](absl::Duration) {
    ++tries;
    return absl::UnavailableError("refused");
  };
  EXPECT_FALSE(RetryWithBackoff(absl::Now() + absl::Minutes(1), absl::OkStatus(),
                                [] { return false; }, refused, [](absl::Duration) { return true; })
                   .has_value());
  EXPECT_EQ(tries, 0);
  EXPECT_FALSE(RetryWithBackoff(absl::Now() + absl::Minutes(1), absl::OkStatus(),
                                [] { return true; }, refused, [](absl::Duration) { return false; })
                   .has_value());
  EXPECT_EQ(tries, 1);
}

}  // namespace
}  // namespace fleet
