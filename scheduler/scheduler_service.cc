#include "scheduler/scheduler_service.h"

#include <algorithm>
#include <type_traits>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "common/completion_queue_thread.h"
#include "common/logging.h"
#include "scheduler/status_json.h"
#include "scheduler/unary_call.h"

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

template <typename Stream, typename AddFn>
void StreamRouter::Deliver(const std::shared_ptr<Stream>& stream, std::size_t bytes, AddFn&& add) {
  auto& held = [&]() -> auto& {
    if constexpr (std::is_same_v<Stream, WorkerStream>) {
      return held_workers_[stream];
    } else {
      return held_clients_[stream];
    }
  }();
  if (held.empty() || held.back().first + bytes > kDefaultBatchCapBytes) {
    held.emplace_back(0, stream->TakeSpare());
  }
  add(held.back().second);
  held.back().first += bytes;
}

template <typename Stream>
void StreamRouter::End(const std::shared_ptr<Stream>& stream, grpc::Status status) {
  held_ends_.emplace_back(stream, std::move(status));
}

template <typename Id, typename Stream, typename SetCount>
void StreamRouter::HoldDueCounts(absl::flat_hash_set<Id>& to_tell,
                                 absl::flat_hash_map<Id, Count>& counts,
                                 const absl::flat_hash_map<Id, std::shared_ptr<Stream>>& streams,
                                 const HeldBy<Stream>& held, SetCount set_count) {
  for (auto it = to_tell.begin(); it != to_tell.end();) {
    auto stream = streams.find(*it);
    auto count = counts.find(*it);
    if (stream == streams.end() || count == counts.end()) {
      to_tell.erase(it++);
      continue;
    }
    if (!count->second.Due(held.contains(stream->second), tell_all_counts_)) {
      ++it;
      continue;
    }
    const uint64_t value = count->second.count;
    Deliver(stream->second, 12, [&](auto& batch) { set_count(batch, value); });
    count->second.told = value;
    to_tell.erase(it++);
  }
}

void StreamRouter::Flush() {
  // Cumulative: the latest wins.
  HoldDueCounts(admissions_to_tell_, admissions_, sessions_, held_clients_,
                [](v1::SchedulerToClient& batch, uint64_t admitted) {
                  batch.set_admitted_requests(admitted);
                });
  HoldDueCounts(completions_to_tell_, completions_, workers_, held_workers_,
                [](v1::SchedulerToWorker& batch, uint64_t recorded) {
                  batch.set_completions_recorded(recorded);
                });
  tell_all_counts_ = false;
  auto send_all = [](auto& held_by_stream) {
    for (auto& [stream, held] : held_by_stream) {
      for (auto& [bytes, message] : held) stream->SendWhole(bytes, std::move(message));
    }
    held_by_stream.clear();
  };
  send_all(held_workers_);
  send_all(held_clients_);
  for (auto& [stream, status] : held_ends_) stream->Abort(std::move(status));
  held_ends_.clear();
}

void StreamRouter::TellPendingCounts() { tell_all_counts_ = true; }

void StreamRouter::AddWorker(const WorkerId& id, std::shared_ptr<WorkerStream> stream) {
  workers_[id] = std::move(stream);
  completions_[id] = Count{.tell_every = kCompletionsTellEvery};
}
bool StreamRouter::RemoveWorker(const WorkerId& id, const WorkerStream* stream) {
  auto it = workers_.find(id);
  if (it == workers_.end() || it->second.get() != stream) return false;
  workers_.erase(it);
  completions_.erase(id);
  return true;
}
void StreamRouter::CountCompletions(const WorkerId& id, int count) {
  if (count == 0 || !workers_.contains(id)) return;
  completions_[id].count += static_cast<uint64_t>(count);
  completions_to_tell_.insert(id);
}
void StreamRouter::FenceWorker(const WorkerId& id, const std::string& reason) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  // ABORTED: the worker exits rather than reconnect (see SchedulerConnection).
  End(it->second, grpc::Status(grpc::StatusCode::ABORTED, reason));
  workers_.erase(it);
  completions_.erase(id);
}
void StreamRouter::AddSession(SessionId id, std::shared_ptr<ClientStream> stream,
                              uint64_t submit_window) {
  sessions_[id] = std::move(stream);
  // The client blocks once a whole window awaits admission; told at a
  // quarter, it never waits on a count held back here.
  admissions_[id] = Count{.tell_every = std::max<uint64_t>(1, submit_window / 4)};
}
bool StreamRouter::RemoveSession(SessionId id, const ClientStream* stream) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.get() != stream) return false;
  sessions_.erase(it);
  admissions_.erase(id);
  return true;
}

void StreamRouter::AssignTask(const WorkerId& worker, v1::TaskAssignment& assignment) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  const std::size_t bytes = assignment.ByteSizeLong();
  Deliver(it->second, bytes,
          [&](v1::SchedulerToWorker& batch) { batch.add_assignments()->Swap(&assignment); });
}

void StreamRouter::FreeObject(const WorkerId& worker, const ObjectId& object) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  Deliver(it->second, ObjectId::kSize + 2, [&](v1::SchedulerToWorker& batch) {
    batch.add_free_objects(std::string(object.Binary()));
  });
}

void StreamRouter::CancelOnWorker(const WorkerId& worker, const TaskId& task) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  Deliver(it->second, TaskId::kSize + 2, [&](v1::SchedulerToWorker& batch) {
    batch.add_cancel_tasks(std::string(task.Binary()));
  });
}

void StreamRouter::CopyObject(const WorkerId& worker, const v1::ObjectInfo& object) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  Deliver(it->second, object.ByteSizeLong(), [&](v1::SchedulerToWorker& batch) {
    *batch.add_copy_objects() = object;
  });
}

void StreamRouter::ReleaseWorker(const WorkerId& worker) {
  auto it = workers_.find(worker);
  if (it == workers_.end()) return;
  End(it->second, grpc::Status::OK);  // the worker's stream ends cleanly: it exits
  workers_.erase(it);
  completions_.erase(worker);
}

void StreamRouter::NotifyOutput(SessionId session, v1::TaskOutput output) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const std::size_t bytes = output.ByteSizeLong();
  Deliver(it->second, bytes, [&](v1::SchedulerToClient& batch) {
    *batch.add_output() = std::move(output);
  });
}

void StreamRouter::RequestReupload(SessionId session, const ObjectId& object) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  Deliver(it->second, ObjectId::kSize + 2, [&](v1::SchedulerToClient& batch) {
    batch.add_reupload(std::string(object.Binary()));
  });
}

void StreamRouter::NotifyObject(SessionId session, v1::ObjectInfo info) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const std::size_t bytes = info.ByteSizeLong();
  Deliver(it->second, bytes, [&](v1::SchedulerToClient& batch) {
    *batch.add_ready() = std::move(info);
  });
}

void StreamRouter::NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  Deliver(it->second, worker.ByteSizeLong(), [&](v1::SchedulerToClient& batch) {
    *batch.add_workers() = worker;
  });
}

void StreamRouter::NotifyWorkerLeft(SessionId session, const WorkerId& worker) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  Deliver(it->second, WorkerId::kSize + 2, [&](v1::SchedulerToClient& batch) {
    batch.add_workers_left(std::string(worker.Binary()));
  });
}

void StreamRouter::NotifyAdmitted(SessionId session, uint64_t admitted_requests) {
  auto it = admissions_.find(session);
  if (it == admissions_.end()) return;
  it->second.count = admitted_requests;
  admissions_to_tell_.insert(session);
}

// ---- worker streams --------------------------------------------------------

void SchedulerService::StartConnect(std::shared_ptr<WorkerStream> stream_ptr) {
  // Set once by the registration, read on the loop thread only.
  auto registered = std::make_shared<WorkerId>();
  auto stream_holder = std::make_shared<std::weak_ptr<WorkerStream>>();
  auto stream = stream_ptr;
  *stream_holder = stream;
  stream->Begin(
      [this, registered, stream_holder](v1::WorkerToScheduler message) {
        auto stream = stream_holder->lock();
        if (stream == nullptr) return;
        loop_->Post([this, stream, registered, message = std::move(message)]() mutable {
          OnWorkerMessage(stream, registered, message);
          worker_spares_.Give(std::move(message));
        });
      },
      [this, registered, stream_holder] {
        loop_->Post([this, registered, stream = stream_holder->lock()] {
          if (registered->IsNil()) return;
          // Unless the worker has already come back on a new stream.
          if (!router_->RemoveWorker(*registered, stream.get())) return;
          core_->RemoveWorker(*registered, "its stream closed");
        });
      },
      &reads_after_round_, &worker_spares_);
}

void SchedulerService::OnWorkerMessage(const std::shared_ptr<WorkerStream>& stream,
                                       std::shared_ptr<WorkerId> registered,
                                       v1::WorkerToScheduler& message) {
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
  // Named once a message, not once an item: formatting the id was ~3 % of
  // the scheduler's instructions under no-op tasks.
  const std::string from = registered->Short();
  for (const v1::TaskCompleted& done : message.completed()) {
    LogRejected(core_->TaskCompleted(*registered, done), from);
  }
  router_->CountCompletions(*registered, message.completed_size());
  for (const v1::ObjectStored& stored : message.stored()) {
    LogRejected(core_->ObjectStored(*registered, stored), from);
  }
  if (message.has_heartbeat()) core_->Heartbeat(*registered, message.heartbeat());
  for (v1::TaskOutput& output : *message.mutable_output()) {
    core_->ForwardOutput(*registered, std::move(output));
  }
  if (message.draining()) core_->DrainWorker(*registered);
}

// ---- client sessions -------------------------------------------------------

void SchedulerService::StartSession(std::shared_ptr<ClientStream> stream_ptr) {
  auto session = std::make_shared<SessionStream>();  // touched on the loop only
  session->id = next_session_.fetch_add(1);
  auto stream_holder = std::make_shared<std::weak_ptr<ClientStream>>();
  auto stream = stream_ptr;
  *stream_holder = stream;
  stream->Begin(
      [this, session, stream_holder](v1::ClientToScheduler message) {
        auto stream = stream_holder->lock();
        if (stream == nullptr) return;
        loop_->Post([this, stream, session, message = std::move(message)]() mutable {
          OnClientMessage(stream, session, message);
          client_spares_.Give(std::move(message));
        });
      },
      [this, session, stream_holder] {
        loop_->Post([this, session, stream = stream_holder->lock()] {
          // Unless the client has already come back on a new stream.
          if (!router_->RemoveSession(session->id, stream.get())) return;
          if (session->goodbye) {
            core_->CloseSession(session->id);
          } else {
            core_->DisconnectSession(session->id);
          }
        });
      },
      &reads_after_round_, &client_spares_);
}

void SchedulerService::OnClientMessage(const std::shared_ptr<ClientStream>& stream,
                                       const std::shared_ptr<SessionStream>& session_stream,
                                       v1::ClientToScheduler& message) {
  if (message.has_open()) {
    session_stream->id =
        core_->SessionToResume(message.open()).value_or(session_stream->id);
    // Route first: opening tells the session about every worker.
    router_->AddSession(session_stream->id, stream, message.open().submit_window());
    absl::Status status = core_->OpenSession(session_stream->id, message.open());
    if (!status.ok()) {
      router_->RemoveSession(session_stream->id, stream.get());
      LogRejected(status, absl::StrCat("session ", session_stream->id));
      return;
    }
    v1::SessionAck ack;
    ack.set_scheduler_epoch(core_->config().epoch);
    ack.set_inline_threshold_bytes(core_->config().inline_threshold_bytes);
    stream->Send(ack.ByteSizeLong(), [&](v1::SchedulerToClient& batch) {
      *batch.mutable_ack() = ack;
    });
  }
  const SessionId session = session_stream->id;
  const std::string from = absl::StrCat("session ", session);
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
  ForEachId<ObjectId>(message.lost_puts(), from,
                      [&](const ObjectId& id) { core_->PutNotReuploadable(session, id); });
  if (message.open().resume()) core_->ReconcileHeldObjects(session, message.open());
  if (message.goodbye()) session_stream->goodbye = true;
}

// ---- status ----------------------------------------------------------------

// Waits for the next call of one stream method (Connect or Session) and
// starts it; each call accepted asks for the next.
template <typename Stream>
class SchedulerService::StreamAcceptor final : public CompletionTag {
 public:
  using RequestFn = void (v1::Scheduler::AsyncService::*)(
      grpc::ServerContext*, typename Stream::Responder*, grpc::CompletionQueue*,
      grpc::ServerCompletionQueue*, void*);
  using StartFn = void (SchedulerService::*)(std::shared_ptr<Stream>);

  StreamAcceptor(SchedulerService* service, grpc::ServerCompletionQueue* queue,
                 RequestFn request, StartFn start)
      : service_(service), queue_(queue), request_(request), start_(start) {}

  void Request() {
    next_ = Stream::Create();
    (service_->*request_)(next_->context(), next_->rw(), queue_, queue_, this);
  }

  void Handle(bool ok) override {
    if (!ok) return;  // the server is shutting down
    if (grpc::Status allowed = service_->token_->Check(*next_->context()); !allowed.ok()) {
      next_->Refuse(std::move(allowed));
    } else {
      (service_->*start_)(std::move(next_));
    }
    Request();
  }

 private:
  SchedulerService* const service_;
  grpc::ServerCompletionQueue* const queue_;
  const RequestFn request_;
  const StartFn start_;
  std::shared_ptr<Stream> next_;  // the stream the next call fills in
};

void SchedulerService::Drain(grpc::ServerCompletionQueue* queue) {
  // Other threads' posts to the loop wake this thread with this tag.
  class WakeUp final : public CompletionTag {
   public:
    explicit WakeUp(EventLoop* loop) : loop_(loop) {}
    void Handle(bool) override { loop_->OnWakeUp(); }

   private:
    EventLoop* const loop_;
  };
  WakeUp wake_up(loop_);
  loop_->AttachTo(queue, &wake_up);
  IgnoredTag stop_tag;
  {
    absl::MutexLock lock(&stop_mu_);
    stop_alarm_ = std::make_unique<grpc::Alarm>();
    stop_alarm_->Set(queue, gpr_inf_future(GPR_CLOCK_MONOTONIC), &stop_tag);
  }
  StreamAcceptor<WorkerStream> workers(this, queue, &SchedulerService::RequestConnect,
                                       &SchedulerService::StartConnect);
  StreamAcceptor<ClientStream> clients(this, queue, &SchedulerService::RequestSession,
                                       &SchedulerService::StartSession);
  workers.Request();
  clients.Request();
  UnaryMethod<v1::Scheduler::AsyncService, v1::GetStatusRequest, v1::GetStatusReply>::Accept(
      this, queue, &SchedulerService::RequestGetStatus, token_,
      [core = core_](const v1::GetStatusRequest&, v1::GetStatusReply& reply) {
        reply.set_status_json(StatusJson(core->Snapshot()));
        return absl::OkStatus();
      });
  // A round: the completions already there (up to kMaxRound, so that a
  // steady stream of them does not hold back the loop), then the events
  // they posted, and the core's placement pass and sends (after_batch).
  constexpr int kMaxRound = 256;
  void* tag = nullptr;
  bool ok = false;
  while (!stop_requested_.load() && queue->Next(&tag, &ok)) {
    static_cast<CompletionTag*>(tag)->Handle(ok);
    for (int i = 1; i < kMaxRound && queue->AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC)) ==
                                         grpc::CompletionQueue::GOT_EVENT;
         ++i) {
      static_cast<CompletionTag*>(tag)->Handle(ok);
    }
    loop_->RunPending();
    reads_after_round_.PostHeld();
    loop_->RunPending();  // what a stream found ended meanwhile posted
  }
  {
    absl::MutexLock lock(&stop_mu_);
    stop_alarm_->Cancel();  // in case RequestStop came before it was set
  }
  reads_after_round_.StopHolding();  // they fail at once: the calls were cancelled
  // Stopping: the calls were cancelled; their last completions include
  // those of the operations they start, such as a relay's cancelled call to
  // a worker.
  ShutDownWhenQuiet(*queue, absl::Milliseconds(200));
}

void SchedulerService::RequestStop() {
  stop_requested_ = true;
  absl::MutexLock lock(&stop_mu_);
  // Fires the alarm set in Drain at once (a cancelled alarm completes too),
  // waking Drain if it waits.
  if (stop_alarm_ != nullptr) stop_alarm_->Cancel();
}

}  // namespace fleet::scheduler
