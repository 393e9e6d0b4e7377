// How the daemons stop: SIGINT and SIGTERM (what Ctrl-C, docker and
// Kubernetes send) are received by a thread that shuts down in order,
// instead of killing the process mid-write.
#ifndef FLEET_COMMON_STOP_SIGNALS_H_
#define FLEET_COMMON_STOP_SIGNALS_H_

namespace fleet {

// Blocks SIGINT and SIGTERM in the calling thread and in every thread it
// starts afterwards. REQUIRES: called in main before any thread starts.
void BlockStopSignals();

// Waits for SIGINT or SIGTERM and returns its number. REQUIRES:
// BlockStopSignals was called.
int WaitForStopSignal();

}  // namespace fleet

#endif  // FLEET_COMMON_STOP_SIGNALS_H_
