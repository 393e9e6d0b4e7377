#include "common/retry.h"

#include <algorithm>
#include <utility>

namespace fleet {
namespace {

constexpr absl::Duration kAttemptTimeout = absl::Seconds(2);
constexpr absl::Duration kFirstPause = absl::Milliseconds(100);
constexpr absl::Duration kMaxPause = absl::Seconds(2);

}  // namespace

std::optional<absl::Status> RetryWithBackoff(
    absl::Time deadline, absl::Status last, absl::FunctionRef<bool()> keep_trying,
    absl::FunctionRef<absl::Status(absl::Duration timeout)> attempt,
    absl::FunctionRef<bool(absl::Duration pause)> pause) {
  absl::Duration next_pause = kFirstPause;
  while (absl::Now() < deadline) {
    if (!keep_trying()) return std::nullopt;
    last = attempt(std::min(kAttemptTimeout, deadline - absl::Now()));
    // A refused token stays refused: retrying only delays the error that
    // tells the operator what to fix.
    if (last.ok() || absl::IsUnauthenticated(last)) return last;
    if (!pause(next_pause)) return std::nullopt;
    next_pause = std::min(next_pause * 2, kMaxPause);
  }
  return last;
}

}  // namespace fleet
