// How the daemons stop: SIGINT and SIGTERM (what Ctrl-C, docker and
// Kubernetes send) are received by a thread that shuts down in order,
// instead of killing the process mid-write.
#ifndef FLEET_COMMON_STOP_SIGNALS_H_
#define FLEET_COMMON_STOP_SIGNALS_H_

#include <optional>

#include "absl/time/time.h"

namespace fleet {

// Blocks SIGINT and SIGTERM in the calling thread and in every thread it
// starts afterwards. REQUIRES: called in main before any thread starts.
void BlockStopSignals();

// Waits for SIGINT or SIGTERM and returns its number. REQUIRES:
// BlockStopSignals was called.
int WaitForStopSignal();

// As WaitForStopSignal, but gives up after `timeout` (nullopt).
std::optional<int> WaitForStopSignalFor(absl::Duration timeout);

}  // namespace fleet

#endif  // FLEET_COMMON_STOP_SIGNALS_H_
