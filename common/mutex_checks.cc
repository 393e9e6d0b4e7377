#include "common/mutex_checks.h"

#include "absl/synchronization/mutex.h"

namespace fleet {

void SkipMutexDeadlockChecksInReleaseBuilds() {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace fleet
