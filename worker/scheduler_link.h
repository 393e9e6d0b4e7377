// Where a worker's components report to the scheduler (implemented by the
// scheduler connection).
#ifndef FLEET_WORKER_SCHEDULER_LINK_H_
#define FLEET_WORKER_SCHEDULER_LINK_H_

#include "fleet/v1/scheduler.pb.h"

namespace fleet::worker {

// Thread-safe.
class SchedulerLink {
 public:
  virtual ~SchedulerLink() = default;
  // `more_follow`: the slot that ran the task has others to answer right
  // behind it (sent to its executor, or queued): nobody is likely to be
  // waiting on this one result alone.
  virtual void ReportCompleted(v1::TaskCompleted completed, bool more_follow) = 0;
  virtual void ReportStored(v1::ObjectStored stored) = 0;
  virtual void ReportOutput(v1::TaskOutput output) = 0;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_SCHEDULER_LINK_H_
