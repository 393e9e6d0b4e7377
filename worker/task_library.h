// Loading of task libraries: shared objects whose FLEET_REMOTE functions
// register themselves in the process-wide registry when loaded.
#ifndef FLEET_WORKER_TASK_LIBRARY_H_
#define FLEET_WORKER_TASK_LIBRARY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fleet::worker {

// Loads each library in order. Returns FailedPrecondition naming the library
// when one cannot be loaded or registers a name another already has.
absl::Status LoadTaskLibraries(const std::vector<std::string>& paths);

}  // namespace fleet::worker

#endif  // FLEET_WORKER_TASK_LIBRARY_H_
