#include "common/stop_signals.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>

#include "absl/time/clock.h"

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

std::optional<int> WaitForStopSignalFor(absl::Duration timeout) {
  const sigset_t set = StopSignalSet();
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const timespec left = absl::ToTimespec(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    const int signal = sigtimedwait(&set, nullptr, &left);
    if (signal > 0) return signal;
    if (errno != EINTR || absl::Now() >= deadline) return std::nullopt;
  }
}

}  // namespace fleet
