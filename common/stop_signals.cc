#include "common/stop_signals.h"

#include <pthread.h>
#include <signal.h>

namespace fleet {
namespace {

sigset_t StopSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignalSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForStopSignal() {
  const sigset_t set = StopSignalSet();
  int signal = 0;
  sigwait(&set, &signal);
  return signal;
}

}  // namespace fleet
