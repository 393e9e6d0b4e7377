// Debian builds Abseil without NDEBUG, so its absl::Mutex runs deadlock
// detection on every Lock: a global lock and a hash lookup in a process-wide
// graph, which showed as several percent of every fleet process's CPU under
// load. Release builds of fleet turn it off at process start, as an NDEBUG
// Abseil would; debug builds keep it.
#ifndef FLEET_COMMON_MUTEX_CHECKS_H_
#define FLEET_COMMON_MUTEX_CHECKS_H_

namespace fleet {

// Call early in main() (or fleet::Init), before threads start locking.
void SkipMutexDeadlockChecksInReleaseBuilds();

}  // namespace fleet

#endif  // FLEET_COMMON_MUTEX_CHECKS_H_
