#include "scheduler/scheduler_service.h"

#include <utility>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "scheduler/status_json.h"

namespace fleet::scheduler {
namespace {

void LogRejected(const absl::Status& status, absl::string_view from) {
  if (!status.ok()) {
    GetLogger("scheduler")->warn("event=message_rejected from={} status=\"{}\"", from,
                                 status.ToString());
  }
}

// Calls `use` with each id of `ids` that parses; logs the others.
template <typename Id, typename Ids, typename Use>
void ForEachId(const Ids& ids, absl::string_view from, Use use) {
  for (const std::string& bytes : ids) {
    absl::StatusOr<Id> id = Id::FromBinary(bytes);
    if (id.ok()) {
      use(*id);
    } else {
      LogRejected(id.status(), from);
    }
  }
}

}  // namespace

// ---- StreamRouter ----------------------------------------------------------

void StreamRouter::AddWorker(const WorkerId& id, std::shared_ptr<WorkerStream> stream) {
  workers_[id] = std::move(stream);
}
void StreamRouter::RemoveWorker(const WorkerId& id) { workers_.erase(id); }
void StreamRouter::FenceWorker(const WorkerId& id, const std::string& reason) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  it->second->Abort(grpc::Status(grpc::StatusCode::UNAVAILABLE, reason));
  workers_.erase(it);
}
void StreamRouter::AddSession(SessionId id, std::shared_ptr<ClientStream> stream) {
  sessions_[id] = std::move(stream);
}
void StreamRouter::RemoveSession(SessionId id) { sessions_.erase(id); }

void StreamRouter::AssignTask(const WorkerId& worker, v1::TaskAssignment assignment) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  const std::size_t bytes = assignment.ByteSizeLong();
  it->second->Send(bytes, [&](v1::SchedulerToWorker& batch) {
    *batch.add_assignments() = std::move(assignment);
  });
}

void StreamRouter::FreeObject(const WorkerId& worker, const ObjectId& object) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  it->second->Send(ObjectId::kSize + 2, [&](v1::SchedulerToWorker& batch) {
    batch.add_free_objects(std::string(object.Binary()));
  });
}

void StreamRouter::CancelOnWorker(const WorkerId& worker, const TaskId& task) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  it->second->Send(TaskId::kSize + 2, [&](v1::SchedulerToWorker& batch) {
    batch.add_cancel_tasks(std::string(task.Binary()));
  });
}

void StreamRouter::CopyObject(const WorkerId& worker, const v1::ObjectInfo& object) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  it->second->Send(object.ByteSizeLong(), [&](v1::SchedulerToWorker& batch) {
    *batch.add_copy_objects() = object;
  });
}

void StreamRouter::ReleaseWorker(const WorkerId& worker) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  it->second->Abort(grpc::Status::OK);  // the worker's stream ends cleanly: it exits
  workers_.erase(it);
}

void StreamRouter::NotifyOutput(SessionId session, v1::TaskOutput output) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const std::size_t bytes = output.ByteSizeLong();
  it->second->Send(bytes, [&](v1::SchedulerToClient& batch) {
    *batch.add_output() = std::move(output);
  });
}

void StreamRouter::NotifyObject(SessionId session, v1::ObjectInfo info) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const std::size_t bytes = info.ByteSizeLong();
  it->second->Send(bytes, [&](v1::SchedulerToClient& batch) {
    *batch.add_ready() = std::move(info);
  });
}

void StreamRouter::NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  it->second->Send(worker.ByteSizeLong(), [&](v1::SchedulerToClient& batch) {
    *batch.add_workers() = worker;
  });
}

void StreamRouter::NotifyWorkerLeft(SessionId session, const WorkerId& worker) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  it->second->Send(WorkerId::kSize + 2, [&](v1::SchedulerToClient& batch) {
    batch.add_workers_left(std::string(worker.Binary()));
  });
}

void StreamRouter::NotifyAdmitted(SessionId session, uint64_t admitted_submissions) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  it->second->Send(12, [&](v1::SchedulerToClient& batch) {
    batch.set_admitted_submissions(admitted_submissions);  // cumulative: the latest wins
  });
}

// ---- worker streams --------------------------------------------------------

grpc::ServerBidiReactor<v1::WorkerToScheduler, v1::SchedulerToWorker>* SchedulerService::Connect(
    grpc::CallbackServerContext* context) {
  // Set once by the registration, read on the loop thread only.
  auto registered = std::make_shared<WorkerId>();
  auto stream_holder = std::make_shared<std::weak_ptr<WorkerStream>>();
  auto stream = WorkerStream::Start(
      [this, registered, stream_holder](v1::WorkerToScheduler message) {
        auto stream = stream_holder->lock();
        if (stream == nullptr) return;
        loop_->Post([this, stream, registered, message = std::move(message)]() mutable {
          OnWorkerMessage(stream, registered, std::move(message));
        });
      },
      [this, registered] {
        loop_->Post([this, registered] {
          if (registered->IsNil()) return;
          router_->RemoveWorker(*registered);
          core_->RemoveWorker(*registered, "its stream closed");
        });
      });
  *stream_holder = stream;
  return stream.get();
}

void SchedulerService::OnWorkerMessage(const std::shared_ptr<WorkerStream>& stream,
                                       std::shared_ptr<WorkerId> registered,
                                       v1::WorkerToScheduler message) {
  if (message.has_register_()) {
    auto id = WorkerId::FromBinary(message.register_().worker_id());
    absl::Status status = id.status();
    if (status.ok()) status = core_->AddWorker(message.register_());
    if (!status.ok()) {
      LogRejected(status, "worker");
      return;
    }
    *registered = *id;
    router_->AddWorker(*id, stream);
    v1::RegisterAck ack;
    ack.set_scheduler_epoch(core_->config().epoch);
    ack.set_inline_threshold_bytes(core_->config().inline_threshold_bytes);
    stream->Send(ack.ByteSizeLong(), [&](v1::SchedulerToWorker& batch) {
      *batch.mutable_register_ack() = ack;
    });
  }
  if (registered->IsNil()) {
    LogRejected(absl::FailedPreconditionError("worker sent messages before registering"),
                "worker");
    return;
  }
  for (const v1::TaskCompleted& done : message.completed()) {
    LogRejected(core_->TaskCompleted(*registered, done), registered->Short());
  }
  for (const v1::ObjectStored& stored : message.stored()) {
    LogRejected(core_->ObjectStored(*registered, stored), registered->Short());
  }
  if (message.has_heartbeat()) core_->Heartbeat(*registered, message.heartbeat());
  for (v1::TaskOutput& output : *message.mutable_output()) {
    core_->ForwardOutput(*registered, std::move(output));
  }
  if (message.draining()) core_->DrainWorker(*registered);
}

// ---- client sessions -------------------------------------------------------

grpc::ServerBidiReactor<v1::ClientToScheduler, v1::SchedulerToClient>* SchedulerService::Session(
    grpc::CallbackServerContext* context) {
  const SessionId session = next_session_.fetch_add(1);
  auto stream_holder = std::make_shared<std::weak_ptr<ClientStream>>();
  auto stream = ClientStream::Start(
      [this, session, stream_holder](v1::ClientToScheduler message) {
        auto stream = stream_holder->lock();
        if (stream == nullptr) return;
        loop_->Post([this, stream, session, message = std::move(message)]() mutable {
          OnClientMessage(stream, session, std::move(message));
        });
      },
      [this, session] {
        loop_->Post([this, session] {
          router_->RemoveSession(session);
          core_->CloseSession(session);
        });
      });
  *stream_holder = stream;
  return stream.get();
}

void SchedulerService::OnClientMessage(const std::shared_ptr<ClientStream>& stream,
                                       SessionId session, v1::ClientToScheduler message) {
  const std::string from = absl::StrCat("session ", session);
  if (message.has_open()) {
    // Route first: opening tells the session about every worker.
    router_->AddSession(session, stream);
    absl::Status status = core_->OpenSession(session, message.open());
    if (!status.ok()) {
      router_->RemoveSession(session);
      LogRejected(status, from);
      return;
    }
    v1::SessionAck ack;
    ack.set_scheduler_epoch(core_->config().epoch);
    ack.set_inline_threshold_bytes(core_->config().inline_threshold_bytes);
    stream->Send(ack.ByteSizeLong(), [&](v1::SchedulerToClient& batch) {
      *batch.mutable_ack() = ack;
    });
  }
  for (const v1::PutObject& put : message.put()) {
    LogRejected(core_->PutObject(session, put.object()), from);
  }
  for (v1::TaskSpec& spec : *message.mutable_submit()) {
    LogRejected(core_->SubmitTask(session, std::move(spec)), from);
  }
  ForEachId<TaskId>(message.cancel(), from,
                    [&](const TaskId& id) { core_->CancelTask(session, id); });
  ForEachId<ObjectId>(message.release(), from,
                      [&](const ObjectId& id) { core_->ReleaseObject(session, id); });
}

// ---- status ----------------------------------------------------------------

grpc::ServerUnaryReactor* SchedulerService::GetStatus(grpc::CallbackServerContext* context,
                                                      const v1::GetStatusRequest* request,
                                                      v1::GetStatusReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_->Post([this, reactor, reply] {
    reply->set_status_json(StatusJson(core_->Snapshot()));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace fleet::scheduler
