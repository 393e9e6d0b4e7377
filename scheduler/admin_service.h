// The Admin gRPC service (proto/fleet/v1/admin.proto), for operators and
// the `fleet` tool: lists the tasks the scheduler holds, cancels one, and
// streams the cluster's events. On gRPC's async API, as the Scheduler
// service: its calls complete on the core thread, which answers them from
// the core at once.
#ifndef FLEET_SCHEDULER_ADMIN_SERVICE_H_
#define FLEET_SCHEDULER_ADMIN_SERVICE_H_

#include "common/cluster_token.h"
#include "common/event_loop.h"
#include "fleet/v1/admin.grpc.pb.h"
#include "grpcpp/completion_queue.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {

class AdminService final : public v1::Admin::AsyncService {
 public:
  // `core` is touched only on `loop`'s thread, which drains `queue`; all
  // outlive the service's calls.
  AdminService(EventLoop* loop, SchedulerCore* core, const ClusterTokenCheck* token)
      : loop_(loop), core_(core), token_(token) {}

  // Asks for the first call of each method on `queue`; each call accepted
  // asks for the next. Call on the core thread, before draining.
  void AcceptCalls(grpc::ServerCompletionQueue* queue);

 private:
  EventLoop* const loop_;
  SchedulerCore* const core_;
  const ClusterTokenCheck* const token_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_ADMIN_SERVICE_H_
