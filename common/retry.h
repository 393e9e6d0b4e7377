// Retrying a connection while its peer restarts: the worker's stream to the
// scheduler and the client's session both use it.
#ifndef FLEET_COMMON_RETRY_H_
#define FLEET_COMMON_RETRY_H_

#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace fleet {

// Calls `attempt` until it succeeds or `deadline` passes, pausing between
// tries for a time that doubles from 100 ms up to 2 s, so that a peer that
// is restarting is found soon without being hammered. Each try is given up
// to 2 s (less near the deadline). `keep_trying()`, asked before each try,
// and `pause(d)`, which waits `d`, end the retries by returning false (the
// caller is stopping): then the result is nullopt. Otherwise it is OK, or
// the last try's error (`last` when there was no try). UNAUTHENTICATED (the
// peer refused the cluster token) ends the retries at once.
std::optional<absl::Status> RetryWithBackoff(
    absl::Time deadline, absl::Status last, absl::FunctionRef<bool()> keep_trying,
    absl::FunctionRef<absl::Status(absl::Duration timeout)> attempt,
    absl::FunctionRef<bool(absl::Duration pause)> pause);

}  // namespace fleet

#endif  // FLEET_COMMON_RETRY_H_
