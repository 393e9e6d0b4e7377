// The Admin gRPC service (proto/fleet/v1/admin.proto), for operators and
// the `fleet` tool: lists the tasks the scheduler holds, cancels one, and
// streams the cluster's events. Like the Scheduler service, its reactions
// never block: they post to the event loop, where the core is read and the
// call is answered.
#ifndef FLEET_SCHEDULER_ADMIN_SERVICE_H_
#define FLEET_SCHEDULER_ADMIN_SERVICE_H_

#include "common/cluster_token.h"
#include "common/event_loop.h"
#include "fleet/v1/admin.grpc.pb.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {

// Thread-safe.
class AdminService final : public v1::Admin::CallbackService {
 public:
  // `core` is touched only on `loop`; both outlive the service's calls.
  AdminService(EventLoop* loop, SchedulerCore* core, const ClusterTokenCheck* token)
      : loop_(loop), core_(core), token_(token) {}

  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const v1::ListTasksRequest* request,
                                      v1::ListTasksReply* reply) override;
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* context,
                                       const v1::CancelTaskRequest* request,
                                       v1::CancelTaskReply* reply) override;
  grpc::ServerWriteReactor<v1::StreamLogsReply>* StreamLogs(
      grpc::CallbackServerContext* context, const v1::StreamLogsRequest* request) override;

 private:
  EventLoop* const loop_;
  SchedulerCore* const core_;
  const ClusterTokenCheck* const token_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_ADMIN_SERVICE_H_
