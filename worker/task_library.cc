#include "worker/task_library.h"

#include <dlfcn.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "fleet/remote.h"

namespace fleet::worker {

absl::Status LoadTaskLibraries(const std::vector<std::string>& paths) {
  auto& registry = internal::FunctionRegistry::Global();
  // Registrations made by the program itself (an embedded worker's client)
  // are checked too.
  if (auto errors = registry.TakeErrors(); !errors.empty()) {
    return absl::FailedPreconditionError(absl::StrJoin(errors, "; "));
  }
  for (const std::string& path : paths) {
    const std::size_t before = registry.Names().size();
    registry.BeginLibrary(path);
    // RTLD_LOCAL keeps libraries' own symbols apart; the registry is shared
    // through libfleet_task, which every task library links.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    registry.EndLibrary();
    if (handle == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot load task library ", path, ": ", dlerror()));
    }
    if (auto errors = registry.TakeErrors(); !errors.empty()) {
      return absl::FailedPreconditionError(absl::StrJoin(errors, "; "));
    }
    const std::size_t added = registry.Names().size() - before;
    GetLogger("worker")->info("event=task_library_loaded path={} functions={}", path, added);
    if (added == 0) {
      GetLogger("worker")->warn(
          "event=task_library_empty path={} hint=\"no FLEET_REMOTE functions registered; does "
          "it link fleet::task?\"",
          path);
    }
  }
  return absl::OkStatus();
}

}  // namespace fleet::worker
