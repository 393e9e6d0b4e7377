// Copies objects a draining worker hands over (SchedulerToWorker
// copy_objects) into this worker's store, one at a time on a thread of its
// own, so that the scheduler connection's thread never waits on a fetch.
//
// Thread-safe.
#ifndef FLEET_WORKER_OBJECT_COPIER_H_
#define FLEET_WORKER_OBJECT_COPIER_H_

#include <deque>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "fleet/v1/common.pb.h"

namespace fleet::worker {

class Executor;

class ObjectCopier {
 public:
  // `executor` fetches (and must outlive the copier).
  explicit ObjectCopier(Executor* executor);
  ~ObjectCopier();  // waits for the copy in progress; drops the rest

  // Copies `object` from its location.
  void Enqueue(v1::ObjectInfo object);

 private:
  void Run();

  Executor* const executor_;
  absl::Mutex mu_;
  std::deque<v1::ObjectInfo> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: it uses everything above
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_OBJECT_COPIER_H_
