// What a task's spec alone says about where it may run, for the client,
// the scheduler and the worker to agree on.
#ifndef FLEET_COMMON_TASK_SPEC_H_
#define FLEET_COMMON_TASK_SPEC_H_

#include "fleet/v1/common.pb.h"

namespace fleet {

// Whether a worker can run the task with nothing more than its spec: every
// argument inline (only the scheduler knows where objects are) and no
// actor. Such a task is what a client may hand to a worker on its host
// itself (a direct task, worker/direct_tasks.h).
inline bool RunnableFromSpecAlone(const v1::TaskSpec& spec) {
  if (!spec.actor_id().empty()) return false;
  for (const v1::TaskArg& arg : spec.args()) {
    if (arg.has_object_id()) return false;
  }
  return true;
}

}  // namespace fleet

#endif  // FLEET_COMMON_TASK_SPEC_H_
