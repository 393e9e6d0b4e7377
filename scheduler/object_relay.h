// The object relay: the Worker service (FetchObject, PutObject) served on
// the scheduler's port, forwarding each call to the worker named in the
// call's kRelayTargetMetadata. A client that cannot reach a worker (it runs
// outside the container network, or behind NAT, and knows only the
// scheduler's published port) moves large objects through it; workers
// never need it. Each call costs the scheduler's host the bytes twice, so
// clients use it only when the direct path fails (client/object_routes.h).
//
// Only a connected worker's advertised address is a valid target
// (SchedulerCore::CheckRelayTarget); each finished call is counted in the
// core (the /status "relay" figures). Both the caller's call and the call to
// the worker run on gRPC's async API on the core thread's completion queue,
// as every call the scheduler serves: a relayed chunk costs that thread a
// copy in and out. One chunk is in flight per call, so a relay holds at
// most one chunk (kObjectChunkBytes) of each transfer.
#ifndef FLEET_SCHEDULER_OBJECT_RELAY_H_
#define FLEET_SCHEDULER_OBJECT_RELAY_H_

#include "common/cluster_token.h"
#include "fleet/v1/worker.grpc.pb.h"
#include "grpcpp/completion_queue.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {

class ObjectRelay final : public v1::Worker::AsyncService {
 public:
  // `core` is touched only on the thread that drains the queue; all
  // outlive the service's calls.
  ObjectRelay(SchedulerCore* core, const ClusterTokenCheck* token)
      : core_(core), token_(token) {}

  // Asks for the first call of each method on `queue`; each call accepted
  // asks for the next. Call on the core thread, before draining.
  void AcceptCalls(grpc::ServerCompletionQueue* queue);

 private:
  class Call;
  class Fetch;
  class Put;

  SchedulerCore* const core_;
  const ClusterTokenCheck* const token_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_OBJECT_RELAY_H_
