// The Scheduler gRPC service. Reactions decode messages and post them to
// the event loop, where the SchedulerCore acts on them; the core's output
// goes back through the streams recorded here (StreamRouter).
#ifndef FLEET_SCHEDULER_SCHEDULER_SERVICE_H_
#define FLEET_SCHEDULER_SCHEDULER_SERVICE_H_

#include <atomic>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.grpc.pb.h"
#include "common/event_loop.h"
#include "scheduler/scheduler_core.h"
#include "scheduler/server_stream.h"

namespace fleet::scheduler {

using WorkerStream = ServerStream<v1::WorkerToScheduler, v1::SchedulerToWorker>;
using ClientStream = ServerStream<v1::ClientToScheduler, v1::SchedulerToClient>;

// Routes the core's output to the open streams. Owned by the loop thread.
class StreamRouter : public SchedulerOutput {
 public:
  void AddWorker(const WorkerId& id, std::shared_ptr<WorkerStream> stream);
  void RemoveWorker(const WorkerId& id);
  // Ends the stream of a worker declared dead, telling it why; whatever it
  // still sends is dropped with the stream.
  void FenceWorker(const WorkerId& id, const std::string& reason);
  void AddSession(SessionId id, std::shared_ptr<ClientStream> stream);
  void RemoveSession(SessionId id);

  void AssignTask(const WorkerId& worker, v1::TaskAssignment assignment) override;
  void FreeObject(const WorkerId& worker, const ObjectId& object) override;
  void CancelOnWorker(const WorkerId& worker, const TaskId& task) override;
  void CopyObject(const WorkerId& worker, const v1::ObjectInfo& object) override;
  void ReleaseWorker(const WorkerId& worker) override;
  void NotifyOutput(SessionId session, v1::TaskOutput output) override;
  void NotifyObject(SessionId session, v1::ObjectInfo info) override;
  void NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) override;
  void NotifyWorkerLeft(SessionId session, const WorkerId& worker) override;
  void NotifyAdmitted(SessionId session, uint64_t admitted_submissions) override;

 private:
  absl::flat_hash_map<WorkerId, std::shared_ptr<WorkerStream>> workers_;
  absl::flat_hash_map<SessionId, std::shared_ptr<ClientStream>> sessions_;
};

class SchedulerService final : public v1::Scheduler::CallbackService {
 public:
  // `core` and `router` are touched only on `loop`.
  SchedulerService(EventLoop* loop, SchedulerCore* core, StreamRouter* router)
      : loop_(loop), core_(core), router_(router) {}

  grpc::ServerBidiReactor<v1::WorkerToScheduler, v1::SchedulerToWorker>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<v1::ClientToScheduler, v1::SchedulerToClient>* Session(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusReply* reply) override;

 private:
  void OnWorkerMessage(const std::shared_ptr<WorkerStream>& stream,
                       std::shared_ptr<WorkerId> registered, v1::WorkerToScheduler message);
  void OnClientMessage(const std::shared_ptr<ClientStream>& stream, SessionId session,
                       v1::ClientToScheduler message);

  EventLoop* const loop_;
  SchedulerCore* const core_;
  StreamRouter* const router_;
  std::atomic<SessionId> next_session_{1};
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SCHEDULER_SERVICE_H_
