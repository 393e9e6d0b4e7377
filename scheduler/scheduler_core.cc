#include "scheduler/scheduler_core.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/task_spec.h"

namespace fleet::scheduler {
namespace {

// Weight of the newest run time in a worker's moving average.
constexpr double kRunTimeSmoothing = 0.2;
// Functions measured one by one in /metrics; any more share one series, so
// that a stream of bogus names cannot grow the scheduler without bound.
constexpr std::size_t kMaxTrackedFunctions = 1000;

double CpuDemand(const v1::TaskSpec& spec) {
  auto it = spec.resources().quantities().find("CPU");
  return it == spec.resources().quantities().end() ? 1.0 : it->second;
}

}  // namespace

SchedulerCore::SchedulerCore(SchedulerConfig config, SchedulerOutput* output, const Clock* clock)
    : config_(std::move(config)),
      output_(output),
      clock_(clock),
      started_at_(clock->Now()),
      target_queue_us_(absl::ToDoubleMicroseconds(config_.target_queue_time)),
      pipeline_ahead_below_us_(absl::ToDoubleMicroseconds(config_.pipeline_ahead_below)),
      lineage_(config_.max_lineage_bytes) {}

// ---- workers ---------------------------------------------------------------

absl::Status SchedulerCore::AddWorker(const v1::RegisterWorker& registration) {
  ASSIGN_OR_RETURN(WorkerId id, WorkerId::FromBinary(registration.worker_id()));
  if (registration.address().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker ", id.Short(), " registered without an address"));
  }
  if (auto known = workers_.find(id); known != workers_.end()) {
    if (!known->second.reconnecting) {
      return absl::AlreadyExistsError(
          absl::StrCat("worker ", id.Short(), " is already registered"));
    }
    workers_.erase(known);  // back after the scheduler's restart
  }
  TouchWorker(id);
  Worker& worker = workers_[id];
  worker.id = id;
  worker.address = registration.address();
  worker.hostname = registration.hostname();
  worker.pid = registration.pid();
  auto cpu = registration.resources().quantities().find("CPU");
  worker.slots = cpu == registration.resources().quantities().end() ? 1 : cpu->second;
  worker.connected_at = worker.last_heard = clock_->Now();
  GetLogger("scheduler")->info("event=worker_joined worker={} address={} host={} slots={} resume={}",
                               id.Short(), worker.address, worker.hostname, worker.slots,
                               registration.resume());
  if (registration.resume()) ReclaimFromWorker(worker, registration);
  events_.Record(worker.connected_at, "worker_joined",
                 {.worker_id = id.Hex(), .worker_address = worker.address,
                  .detail = absl::StrCat("host=", worker.hostname, " slots=", worker.slots,
                                         registration.resume() ? " resumed" : "")});
  v1::WorkerInfo info;
  info.set_worker_id(std::string(id.Binary()));
  info.set_address(worker.address);
  info.set_hostname(worker.hostname);
  for (const auto& [session_id, session] : sessions_) output_->NotifyWorkerJoined(session_id, info);
  return absl::OkStatus();
}

void SchedulerCore::RemoveWorker(const WorkerId& id, absl::string_view reason) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  Worker worker = std::move(it->second);
  workers_.erase(it);
  TouchWorker(id);
  if (worker.draining) draining_workers_--;
  GetLogger("scheduler")->info("event=worker_left worker={} address={} reason=\"{}\" tasks={}",
                               id.Short(), worker.address, reason, worker.tasks.size());
  events_.Record(clock_->Now(), "worker_left",
                 {.worker_id = id.Hex(), .worker_address = worker.address,
                  .detail = absl::StrCat("reason=\"", reason, "\" tasks=", worker.tasks.size())});
  for (const auto& [session_id, session] : sessions_) output_->NotifyWorkerLeft(session_id, id);

  // Tasks it held go back to the front of the queue, oldest first, while
  // they have retries left.
  std::vector<TaskId> held(worker.tasks.begin(), worker.tasks.end());
  std::sort(held.begin(), held.end(), [](const TaskId& a, const TaskId& b) {
    return a.index() < b.index();
  });
  for (auto rit = held.rbegin(); rit != held.rend(); ++rit) {
    auto task_it = tasks_.find(*rit);
    if (task_it == tasks_.end()) continue;
    Task& task = task_it->second;
    const int max_retries = task.spec.max_retries();
    if (max_retries < 0 || static_cast<int>(task.retries) < max_retries) {
      task.retries++;
      tasks_retried_++;
      TouchTask(*rit);
      MakeReady(*rit, task, /*at_front=*/true);
      continue;
    }
    v1::TaskFailure failure;
    failure.set_kind(v1::TaskFailure::WORKER_DIED);
    failure.set_message(absl::StrCat("worker ", id.Short(), " at ", worker.address,
                                     " went away (", reason, ") while running the task, and its ",
                                     max_retries, " retries are used up"));
    failure.set_worker(absl::StrCat("worker ", id.Short(), " at ", worker.address));
    failure.set_attempt(task.attempt);
    FailTask(*rit, std::move(failure));
  }

  // Objects whose only copy was there are rebuilt, or fail as lost. Every
  // copy on the worker is forgotten first, so that a rebuild never counts
  // on an argument that is gone too.
  std::vector<ObjectId> lost;
  for (auto& [object_id, object] : objects_) {
    auto loc = std::find(object.locations.begin(), object.locations.end(), id);
    if (loc == object.locations.end()) continue;
    object.locations.erase(loc);
    if (object.state != ObjectState::kReady) continue;
    if (!HasCopy(object)) {
      lost.push_back(object_id);
    } else if (!object.has_inline) {
      NotifyOwner(object_id, object);  // where another copy is
    }
  }
  std::sort(lost.begin(), lost.end());  // a stable order of re-runs
  const std::string how_lost = absl::StrCat("its only copy was on worker ", id.Short(), " at ",
                                            worker.address, ", which went away (", reason, ")");
  std::vector<std::pair<TaskId, v1::TaskFailure>> to_fail;
  for (const ObjectId& object_id : lost) Rebuild(object_id, how_lost, to_fail);
  for (auto& [task_id, failure] : to_fail) FailTask(task_id, std::move(failure));
}

absl::Status SchedulerCore::TaskCompleted(const WorkerId& worker_id,
                                          const v1::TaskCompleted& completed) {
  ASSIGN_OR_RETURN(TaskId task_id, TaskId::FromBinary(completed.task_id()));
  auto task_it = tasks_.find(task_id);
  auto worker_it = workers_.find(worker_id);
  if (completed.has_direct_spec() && worker_it != workers_.end()) {
    // Its owner handed it to the worker: the worker's word may come before
    // the owner's submission, and stands for it.
    if (task_it == tasks_.end()) {
      AdoptDirectTask(task_id, worker_it->second, completed);
      task_it = tasks_.find(task_id);
    } else if (completed.declined()) {
      DeclineDirectTask(task_id, task_it->second, worker_it->second, completed.attempt());
    }
    if (completed.declined()) return absl::OkStatus();
  }
  if (task_it == tasks_.end() || worker_it == workers_.end() ||
      task_it->second.state != TaskState::kAssigned || task_it->second.worker != worker_id ||
      task_it->second.attempt != completed.attempt()) {
    GetLogger("scheduler")->debug("event=stale_completion task={} worker={} attempt={}",
                                  task_id.Short(), worker_id.Short(), completed.attempt());
    // Its results sit in that worker's store, where nothing will ever read
    // them (a cancelled task, an attempt superseded by a retry), unless a
    // live attempt there produced them.
    const bool live_here = task_it != tasks_.end() &&
                           task_it->second.state == TaskState::kAssigned &&
                           task_it->second.worker == worker_id;
    if (worker_it != workers_.end() && !live_here) {
      for (int i = 0; i < completed.results_size(); ++i) {
        const ObjectId object_id = ObjectId::Of(task_id, static_cast<uint32_t>(i));
        auto object_it = objects_.find(object_id);
        const bool listed = object_it != objects_.end() &&
                            absl::c_linear_search(object_it->second.locations, worker_id);
        if (!listed) output_->FreeObject(worker_id, object_id);
      }
    }
    return absl::OkStatus();
  }
  Task& task = task_it->second;
  Worker& worker = worker_it->second;
  worker.assigned--;
  worker.tasks.erase(task_id);
  worker.last_heard = clock_->Now();
  worker.mean_run_us += kRunTimeSmoothing * (static_cast<double>(completed.run_time_us()) -
                                             worker.mean_run_us);

  if (completed.has_failure()) {
    if (completed.failure().kind() == v1::TaskFailure::OBJECT_LOST &&
        RequeueAfterLostArgument(task_id, worker_id, completed.failure())) {
      return absl::OkStatus();
    }
    worker.failed++;
    const int max_retries = task.spec.max_retries();
    // A crashed executor counts as a machine failure; an exception is
    // retried only when the task asks for it.
    const v1::TaskFailure::Kind kind = completed.failure().kind();
    const bool retryable =
        kind == v1::TaskFailure::EXECUTOR_DIED ||
        (kind == v1::TaskFailure::USER_EXCEPTION && task.spec.retry_exceptions());
    if (retryable && (max_retries < 0 || static_cast<int>(task.retries) < max_retries)) {
      task.retries++;
      tasks_retried_++;
      TouchTask(task_id);
      GetLogger("scheduler")->info(
          "event=task_retried task={} attempt={} kind={} reason=\"{}\"", task_id.Short(),
          task.attempt, v1::TaskFailure::Kind_Name(kind), completed.failure().message());
      MakeReady(task_id, task, /*at_front=*/false);
      return absl::OkStatus();
    }
    v1::TaskFailure failure = completed.failure();
    if (failure.worker().empty()) failure.set_worker(DescribeWorker(worker_id));
    failure.set_attempt(task.attempt);
    // The worker has let go of it (counted off above): FailTask must not
    // count it off a second time.
    task.worker = WorkerId();
    FailTask(task_id, std::move(failure));
    return absl::OkStatus();
  }

  worker.finished++;
  tasks_finished_++;
  if (auto owner = sessions_.find(task.owner); owner != sessions_.end()) owner->second.finished++;
  finish_rate_.Add(clock_->Now());
  StatsFor(task.spec.function_name())
      .run_time.Add(static_cast<double>(completed.run_time_us()) / 1e6);
  for (int i = 0; i < completed.results_size(); ++i) {
    const v1::ObjectInfo& result = completed.results(i);
    const ObjectId object_id = ObjectId::Of(task_id, static_cast<uint32_t>(i));
    // The worker kept no copy of a tiny result: this value is the only one,
    // cached whatever the cache's bound (it costs no more than the object's
    // record).
    const bool stored = !(result.inline_only() && result.has_inline_value());
    auto object_it = objects_.find(object_id);
    if (object_it == objects_.end()) {
      // Released before it was ready: nobody will ever read it.
      if (stored) output_->FreeObject(worker_id, object_id);
      continue;
    }
    Object& object = object_it->second;
    if (object.state == ObjectState::kReady) {
      // It kept a copy while the task ran again to rebuild a sibling
      // result: this is one more copy.
      if (stored && !absl::c_linear_search(object.locations, worker_id)) {
        object.locations.push_back(worker_id);
      }
      continue;
    }
    if (object.state != ObjectState::kPending) {
      if (stored) output_->FreeObject(worker_id, object_id);
      continue;
    }
    object.size_bytes = result.size_bytes();
    if (stored) object.locations.push_back(worker_id);
    if (result.has_inline_value() &&
        (!stored ||
         inline_cache_used_bytes_ + result.inline_value().size() <= config_.inline_cache_bytes)) {
      object.has_inline = true;
      object.inline_value = result.inline_value();
      inline_cache_used_bytes_ += object.inline_value.size();
    }
    // When the cache is full the owner still gets the value in its push.
    MarkObjectReady(object_id, object, result.has_inline_value() ? &result.inline_value() : nullptr,
                    completed.delivered_to_owner() && result.has_inline_value());
  }
  const TaskId done = task_id;
  Task finished = std::move(task);
  tasks_.erase(task_it);
  TouchTask(done);
  // Lineage first: it holds the arguments that the task no longer does.
  RetainLineage(done, finished);
  ReleaseArgs(finished);
  for (int i = 0; i < completed.results_size(); ++i) MaybeFree(ObjectId::Of(done, i));
  return absl::OkStatus();
}

absl::Status SchedulerCore::ObjectStored(const WorkerId& worker_id,
                                         const v1::ObjectStored& stored) {
  ASSIGN_OR_RETURN(ObjectId object_id, ObjectId::FromBinary(stored.object_id()));
  auto it = objects_.find(object_id);
  if (it == objects_.end() || !workers_.contains(worker_id)) {
    output_->FreeObject(worker_id, object_id);
    return absl::OkStatus();
  }
  if (it->second.state != ObjectState::kReady) {
    // A copy of an object freed (or being rebuilt) meanwhile: nobody will
    // be sent to read it there.
    output_->FreeObject(worker_id, object_id);
    return absl::OkStatus();
  }
  auto& locations = it->second.locations;
  if (std::find(locations.begin(), locations.end(), worker_id) == locations.end()) {
    locations.push_back(worker_id);
  }
  return absl::OkStatus();
}

std::vector<std::pair<WorkerId, std::string>> SchedulerCore::ExpireSilentWorkers() {
  const absl::Time now = clock_->Now();
  std::vector<std::pair<WorkerId, std::string>> expired;
  for (const auto& [id, worker] : workers_) {
    if (worker.reconnecting) continue;  // the reconnect window decides
    const absl::Duration silent = now - worker.last_heard;
    if (silent <= config_.heartbeat_timeout) continue;
    expired.emplace_back(
        id, absl::StrCat("declared dead: no heartbeat for ", absl::FormatDuration(silent),
                         " (--heartbeat_timeout=",
                         absl::FormatDuration(config_.heartbeat_timeout),
                         "); its tasks were re-queued. Restart the worker: it joins as a new "
                         "one"));
  }
  for (const auto& [id, reason] : expired) {
    events_.Record(now, "worker_declared_dead",
                   {.worker_id = id.Hex(), .worker_address = workers_[id].address,
                    .detail = reason});
    RemoveWorker(id, reason);
  }
  return expired;
}

void SchedulerCore::ExcuseSilence(absl::Duration gap) {
  const absl::Time now = clock_->Now();
  for (auto& [id, worker] : workers_) {
    if (!worker.reconnecting) worker.last_heard = std::max(worker.last_heard, now);
  }
  GetLogger("scheduler")->warn(
      "event=scheduler_stalled gap={} hint=\"the scheduler did not run for this long (stopped, "
      "host frozen or overloaded); workers get a full --heartbeat_timeout again\"",
      absl::FormatDuration(gap));
}

void SchedulerCore::ForwardOutput(const WorkerId& worker, v1::TaskOutput output) {
  auto worker_it = workers_.find(worker);
  absl::StatusOr<TaskId> task = TaskId::FromBinary(output.task_id());
  if (worker_it == workers_.end() || !task.ok()) return;
  events_.PublishOutput(output, worker_it->second.address);
  for (const auto& [session_id, session] : sessions_) {
    if (session.job != task->job()) continue;
    output.set_worker(worker_it->second.address);
    output_->NotifyOutput(session_id, std::move(output));
    return;
  }
}

void SchedulerCore::Heartbeat(const WorkerId& worker_id, const v1::Heartbeat& heartbeat) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  it->second.last_heard = clock_->Now();
  it->second.last_heartbeat = heartbeat;
  it->second.last_heartbeat_at = it->second.last_heard;
}

// ---- sessions --------------------------------------------------------------

std::optional<SessionId> SchedulerCore::SessionToResume(const v1::OpenSession& open) const {
  auto job = JobId::FromBinary(open.job_id());
  if (!open.resume() || !job.ok()) return std::nullopt;
  for (const auto& [id, session] : sessions_) {
    if (session.job == *job) return id;
  }
  return std::nullopt;
}

absl::Status SchedulerCore::OpenSession(SessionId session_id, const v1::OpenSession& open) {
  ASSIGN_OR_RETURN(JobId job, JobId::FromBinary(open.job_id()));
  if (auto kept = sessions_.find(session_id); kept != sessions_.end()) {
    if (!open.resume() || kept->second.job != job) {
      return absl::AlreadyExistsError(absl::StrCat("session ", session_id, " is already open"));
    }
    // The client is back (also when its old stream's end has not been
    // seen yet): the session continues on this stream.
    kept->second.connected = true;
    kept->second.received = kept->second.admitted = open.admitted_requests();
    GetLogger("scheduler")->info("event=job_resumed job={} client={}:{} session={}",
                                 job.Hex().substr(0, 8), kept->second.hostname,
                                 kept->second.pid, session_id);
    events_.Record(clock_->Now(), "job_resumed",
                   {.job_id = job.Hex(),
                    .detail = absl::StrCat("client=", kept->second.hostname, ":",
                                           kept->second.pid)});
  } else {
    TouchSession(job);
    Session& session = sessions_[session_id];
    session.received = session.admitted = open.admitted_requests();
    session.job = job;
    session.hostname = open.client_hostname();
    session.pid = open.client_pid();
    session.opened_at = clock_->Now();
    GetLogger("scheduler")->info("event=job_started job={} client={}:{}", job.Hex().substr(0, 8),
                                 session.hostname, session.pid);
    events_.Record(session.opened_at, "job_started",
                   {.job_id = job.Hex(),
                    .detail = absl::StrCat("client=", session.hostname, ":", session.pid)});
  }
  for (const auto& [id, worker] : workers_) {
    if (worker.reconnecting) continue;
    v1::WorkerInfo info;
    info.set_worker_id(std::string(id.Binary()));
    info.set_address(worker.address);
    info.set_hostname(worker.hostname);
    output_->NotifyWorkerJoined(session_id, info);
  }
  return absl::OkStatus();
}

void SchedulerCore::CloseSession(SessionId session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  // Lost Puts it was to upload again: nobody will now.
  std::vector<ObjectId> unreuploaded;
  for (const ObjectId& id : it->second.held) {
    auto object = objects_.find(id);
    if (object != objects_.end() && object->second.awaiting_reupload) unreuploaded.push_back(id);
  }
  for (const ObjectId& id : unreuploaded) PutNotReuploadable(session_id, id);
  it = sessions_.find(session_id);
  std::vector<ObjectId> held(it->second.held.begin(), it->second.held.end());
  // Nobody can read the results of its tasks any more: those not on a
  // worker yet are dropped; those running finish, and their results are
  // freed as they arrive.
  std::vector<TaskId> dropped;
  for (const auto& [task_id, task] : tasks_) {
    if (task.owner == session_id && task.state != TaskState::kAssigned) dropped.push_back(task_id);
  }
  for (const TaskId& task_id : dropped) {
    auto task_it = tasks_.find(task_id);
    const Task task = std::move(task_it->second);
    tasks_.erase(task_it);
    TouchTask(task_id);
    ReleaseArgs(task);
    for (uint32_t i = 0; i < std::max<uint32_t>(1, task.spec.num_returns()); ++i) {
      auto result = objects_.find(ObjectId::Of(task_id, i));
      if (result != objects_.end() && result->second.state == ObjectState::kPending) {
        objects_.erase(result);
        TouchObject(ObjectId::Of(task_id, i));
      }
    }
  }
  tasks_cancelled_ += dropped.size();
  GetLogger("scheduler")->info(
      "event=job_finished job={} submitted={} released_refs={} cancelled_tasks={}",
      it->second.job.Hex().substr(0, 8), it->second.submitted, held.size(), dropped.size());
  events_.Record(clock_->Now(), "job_finished",
                 {.job_id = it->second.job.Hex(),
                  .detail = absl::StrCat("submitted=", it->second.submitted,
                                         " cancelled_tasks=", dropped.size())});
  for (const ObjectId& id : held) ReleaseObject(session_id, id);
  TouchSession(it->second.job);
  sessions_.erase(session_id);
}

absl::Status SchedulerCore::SubmitTask(SessionId session_id, v1::TaskSpec spec) {
  auto session_it = sessions_.find(session_id);
  if (session_it == sessions_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("task submitted on session ", session_id, " before it was opened"));
  }
  Session& session = session_it->second;
  session.received++;  // the client counts every Remote, accepted or not
  ASSIGN_OR_RETURN(TaskId task_id, TaskId::FromBinary(spec.task_id()));
  if (task_id.job() != session.job) {
    return absl::InvalidArgumentError(absl::StrCat("task ", task_id.Short(),
                                                   " does not belong to the session's job"));
  }
  if (Known(task_id)) {
    // Sent again by a client that reconnected without seeing it admitted,
    // or a direct task its worker told of first: it is here already.
    GetLogger("scheduler")->debug("event=duplicate_submission task={}", task_id.Short());
    return absl::OkStatus();
  }
  Worker* ran_by = nullptr;
  if (!spec.direct_worker_id().empty()) {
    absl::StatusOr<WorkerId> direct = WorkerId::FromBinary(spec.direct_worker_id());
    spec.clear_direct_worker_id();  // a re-run elsewhere is the scheduler's
    auto it = direct.ok() ? workers_.find(*direct) : workers_.end();
    // A worker gone (or not back yet) either died with the task or never
    // had it: it runs as any other.
    if (it != workers_.end() && !it->second.reconnecting) ran_by = &it->second;
  }
  AddTask(session_id, session, task_id, std::move(spec), ran_by);
  return absl::OkStatus();
}

void SchedulerCore::AddTask(SessionId session_id, Session& session, const TaskId& task_id,
                            v1::TaskSpec spec, Worker* ran_by) {
  if (spec.num_returns() == 0) spec.set_num_returns(1);
  tasks_submitted_++;
  session.submitted++;

  Task& task = tasks_[task_id];
  task.owner = session_id;
  TouchTask(task_id);
  task.submitted_at = clock_->Now();
  for (uint32_t i = 0; i < spec.num_returns(); ++i) {
    const ObjectId object_id = ObjectId::Of(task_id, i);
    TouchObject(object_id);
    Object& object = objects_[object_id];
    object.owner = session_id;
    session.held.insert(object_id);
  }

  std::optional<v1::TaskFailure> failed_arg;
  std::vector<ObjectId> released_args;  // rebuilt once the task is queued
  for (const v1::TaskArg& arg : spec.args()) {
    if (!arg.has_object_id()) continue;
    auto arg_id = ObjectId::FromBinary(arg.object_id());
    if (!arg_id.ok()) {
      v1::TaskFailure failure;
      failure.set_kind(v1::TaskFailure::BAD_ARGUMENT);
      failure.set_message(
          absl::StrCat("an argument's object id is malformed: ", arg_id.status().message()));
      failed_arg = std::move(failure);
      continue;
    }
    if (std::find(task.ref_args.begin(), task.ref_args.end(), *arg_id) != task.ref_args.end()) {
      continue;
    }
    auto object_it = objects_.find(*arg_id);
    if (object_it == objects_.end()) {
      v1::TaskFailure failure;
      failure.set_kind(v1::TaskFailure::OBJECT_LOST);
      failure.set_message(absl::StrCat("argument object ", arg_id->Short(),
                                       " is unknown to the scheduler: it was freed or never "
                                       "created; keep an ObjectRef alive while tasks use it"));
      failed_arg = std::move(failure);
      continue;
    }
    task.ref_args.push_back(*arg_id);
    Object& object = object_it->second;
    object.pending_uses++;
    if (object.state == ObjectState::kPending) {
      task.missing_args++;
      object.waiters.push_back(task_id);
    } else if (object.state == ObjectState::kFailed && !failed_arg) {
      failed_arg = object.failure;
    } else if (object.state == ObjectState::kReleased) {
      released_args.push_back(*arg_id);
    }
  }
  task.spec = std::move(spec);

  if (failed_arg) {
    v1::TaskFailure failure;
    failure.set_kind(v1::TaskFailure::DEPENDENCY_FAILED);
    failure.set_message("an argument of the task failed");
    *failure.mutable_cause() = std::move(*failed_arg);
    FailTask(task_id, std::move(failure));
  } else if (task.missing_args == 0) {
    if (ran_by != nullptr && RunnableFromSpecAlone(task.spec)) {
      // Its worker has it already, as its first attempt (kFirstAttempt):
      // counted there, not placed.
      Occupy(task_id, task, *ran_by);
      tasks_run_directly_++;
    } else {
      MakeReady(task_id, task, /*at_front=*/false);
    }
  }
  // The task waits for them in Dispatch (WaitForRebuiltArgs). Rebuild adds
  // tasks: `task` is not used after this.
  std::vector<std::pair<TaskId, v1::TaskFailure>> to_fail;
  for (const ObjectId& arg : released_args) {
    Rebuild(arg, "it had been freed, as nothing read it, and is an argument again", to_fail);
  }
  for (auto& [failed_id, failure] : to_fail) FailTask(failed_id, std::move(failure));
}

bool SchedulerCore::Known(const TaskId& task_id) const {
  return tasks_.contains(task_id) || objects_.contains(ObjectId::Of(task_id, 0)) ||
         lineage_.Contains(task_id);
}

void SchedulerCore::AdoptDirectTask(const TaskId& task_id, Worker& worker,
                                    const v1::TaskCompleted& completed) {
  // Finished already (its results are known): a stale report, as below.
  if (Known(task_id)) return;
  for (auto& [session_id, session] : sessions_) {
    if (session.job != task_id.job()) continue;
    v1::TaskSpec spec = completed.direct_spec();
    spec.clear_direct_worker_id();
    AddTask(session_id, session, task_id, std::move(spec),
            completed.declined() ? nullptr : &worker);
    return;
  }
  // Its client is gone: the report is stale, and its results are freed.
}

void SchedulerCore::DeclineDirectTask(const TaskId& task_id, Task& task, Worker& worker,
                                      uint32_t attempt) {
  if (task.state != TaskState::kAssigned || task.worker != worker.id || task.attempt != attempt) {
    return;
  }
  worker.assigned--;
  worker.tasks.erase(task_id);
  MakeReady(task_id, task, /*at_front=*/false);
  TouchTask(task_id);
}

void SchedulerCore::MakeReady(const TaskId& id, Task& task, bool at_front) {
  task.state = TaskState::kReady;
  task.ready_at = clock_->Now();
  task.worker = WorkerId();
  if (at_front) {
    ready_.push_front(id);
  } else {
    ready_.push_back(id);
  }
}

void SchedulerCore::Occupy(const TaskId& id, Task& task, Worker& worker) {
  task.state = TaskState::kAssigned;
  task.worker = worker.id;
  task.attempt++;
  worker.assigned++;
  worker.tasks.insert(id);
}

absl::Status SchedulerCore::PutObject(SessionId session_id, const v1::ObjectInfo& info) {
  auto session_it = sessions_.find(session_id);
  if (session_it == sessions_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("object put on session ", session_id, " before it was opened"));
  }
  session_it->second.received++;  // the client counts every request
  ASSIGN_OR_RETURN(ObjectId object_id, ObjectId::FromBinary(info.object_id()));
  if (object_id.task().job() != session_it->second.job) {
    return absl::InvalidArgumentError(
        absl::StrCat("object ", object_id.Short(), " does not belong to the session's job"));
  }
  if (auto existing = objects_.find(object_id); existing != objects_.end()) {
    Object& object = existing->second;
    if (object.awaiting_reupload && object.owner == session_id) {
      return CompleteReupload(object_id, object, info);
    }
    // Sent again by a client that reconnected without seeing it admitted.
    GetLogger("scheduler")->debug("event=duplicate_put object={}", object_id.Short());
    return absl::OkStatus();
  }
  TouchObject(object_id);
  Object& object = objects_[object_id];
  object.owner = session_id;
  object.put = true;
  object.size_bytes = info.size_bytes();
  session_it->second.held.insert(object_id);
  if (info.has_inline_value()) {
    object.state = ObjectState::kReady;
    object.has_inline = true;
    object.inline_value = info.inline_value();
    inline_cache_used_bytes_ += object.inline_value.size();
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(WorkerId holder, WorkerId::FromBinary(info.location().worker_id()));
  if (!workers_.contains(holder)) {
    std::vector<std::pair<TaskId, v1::TaskFailure>> unused;
    v1::TaskFailure failure;
    failure.set_kind(v1::TaskFailure::OBJECT_LOST);
    failure.set_message(absl::StrCat("object ", object_id.Short(), " was uploaded to worker ",
                                     holder.Short(), ", which has left the cluster"));
    MarkObjectFailed(object_id, object, failure, unused);
    NotifyOwner(object_id, object);
    return absl::OkStatus();
  }
  object.state = ObjectState::kReady;
  object.locations.push_back(holder);
  return absl::OkStatus();
}

absl::Status SchedulerCore::CompleteReupload(const ObjectId& id, Object& object,
                                             const v1::ObjectInfo& info) {
  if (info.has_inline_value()) {
    object.has_inline = true;
    object.inline_value = info.inline_value();
    inline_cache_used_bytes_ += object.inline_value.size();
  } else {
    ASSIGN_OR_RETURN(WorkerId holder, WorkerId::FromBinary(info.location().worker_id()));
    if (!workers_.contains(holder)) {
      // Gone again already: ask once more.
      output_->RequestReupload(object.owner, id);
      return absl::OkStatus();
    }
    object.locations.push_back(holder);
  }
  object.awaiting_reupload = false;
  object.how_lost.clear();
  GetLogger("scheduler")->info("event=put_reuploaded object={} bytes={}", id.Short(),
                               info.size_bytes());
  MarkObjectReady(id, object, nullptr);
  return absl::OkStatus();
}

void SchedulerCore::PutNotReuploadable(SessionId session_id, const ObjectId& id) {
  auto it = objects_.find(id);
  if (it == objects_.end() || !it->second.awaiting_reupload || it->second.owner != session_id) {
    return;
  }
  Object& object = it->second;
  object.awaiting_reupload = false;
  GetLogger("scheduler")->warn("event=object_lost object={} reason=\"{}\" not_rebuilt=\"its "
                               "client no longer holds the value\"",
                               id.Short(), object.how_lost);
  v1::TaskFailure failure;
  failure.set_kind(v1::TaskFailure::OBJECT_LOST);
  failure.set_message(absl::StrCat(
      "object ", id.Short(), " was lost: ", object.how_lost,
      "; it was stored with Put and its client no longer holds the value to upload it again; "
      "Put the value again"));
  std::vector<std::pair<TaskId, v1::TaskFailure>> to_fail;
  MarkObjectFailed(id, object, failure, to_fail);
  NotifyOwner(id, object);
  for (auto& [task_id, task_failure] : to_fail) FailTask(task_id, std::move(task_failure));
}

void SchedulerCore::ReleaseObject(SessionId session_id, const ObjectId& object_id) {
  auto session_it = sessions_.find(session_id);
  if (session_it != sessions_.end()) session_it->second.held.erase(object_id);
  auto it = objects_.find(object_id);
  if (it == objects_.end() || it->second.owner != session_id) return;
  it->second.owner_holds = false;
  TouchObject(object_id);
  MaybeFree(it);
}

void SchedulerCore::CancelTask(SessionId session_id, const TaskId& task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || it->second.owner != session_id) return;
  const bool running = it->second.state == TaskState::kAssigned;
  if (running) output_->CancelOnWorker(it->second.worker, task_id);
  v1::TaskFailure failure;
  failure.set_kind(v1::TaskFailure::CANCELLED);
  failure.set_message(running ? "cancelled by its client while running; it was stopped and "
                                "anything it returns is discarded"
                              : "cancelled by its client before it ran");
  failure.set_attempt(it->second.attempt);
  FailTask(task_id, std::move(failure));
}

// ---- placement -------------------------------------------------------------

int SchedulerCore::Capacity(const Worker& worker) const {
  const double slots = std::max(1.0, worker.slots);
  const double run_us = std::max(1.0, worker.mean_run_us);
  // Tasks too short for the gap between them to vanish next to their run
  // time get two queued per slot: the worker's pipeline sends one to the
  // executor while another runs, and the second is there to follow it.
  const double min_per_slot = run_us < pipeline_ahead_below_us_ ? 2.0 : 1.0;
  const double per_slot = std::clamp(target_queue_us_ / run_us, min_per_slot,
                                     static_cast<double>(config_.max_queued_per_slot));
  return static_cast<int>(slots * (1.0 + per_slot));
}

SchedulerCore::Worker* SchedulerCore::PickWorker(const Task& task) {
  Worker* least_loaded = nullptr;
  double least_load = 0;
  Worker* local = nullptr;
  uint64_t local_bytes = 0;
  const double demand = CpuDemand(task.spec);
  for (auto& [id, worker] : workers_) {
    if (worker.draining || worker.slots < demand || worker.assigned >= Capacity(worker)) continue;
    const double load = worker.assigned / std::max(1.0, worker.slots);
    if (least_loaded == nullptr || load < least_load) {
      least_loaded = &worker;
      least_load = load;
    }
    // Locality counts only where the worker has an idle slot for the task.
    if (worker.assigned >= worker.slots) continue;
    uint64_t bytes = 0;
    for (const ObjectId& arg : task.ref_args) {
      auto it = objects_.find(arg);
      if (it == objects_.end() || it->second.has_inline) continue;
      const auto& locs = it->second.locations;
      if (std::find(locs.begin(), locs.end(), id) != locs.end()) bytes += it->second.size_bytes;
    }
    if (bytes > local_bytes) {
      local = &worker;
      local_bytes = bytes;
    }
  }
  return local != nullptr ? local : least_loaded;
}

bool SchedulerCore::AnyWorkerCouldRun(const Task& task) const {
  const double demand = CpuDemand(task.spec);
  for (const auto& [id, worker] : workers_) {
    if (worker.slots >= demand) return true;
  }
  return false;
}

void SchedulerCore::Dispatch() {
  if (draining_workers_ > 0) ProgressDrains();
  const bool recovering = recovering_ && ContinueRecovery();
  while (!recovering && !ready_.empty()) {
    auto it = tasks_.find(ready_.front());
    if (it == tasks_.end() || it->second.state != TaskState::kReady) {
      ready_.pop_front();
      continue;
    }
    if (WaitForRebuiltArgs(it->first, it->second)) {
      ready_.pop_front();
      continue;
    }
    Worker* worker = PickWorker(it->second);
    if (worker == nullptr) {
      if (workers_.empty() || AnyWorkerCouldRun(it->second)) break;  // wait for capacity
      const TaskId infeasible = ready_.front();
      ready_.pop_front();
      v1::TaskFailure failure;
      failure.set_kind(v1::TaskFailure::UNSCHEDULABLE);
      failure.set_message(absl::StrCat("the task needs ", CpuDemand(it->second.spec),
                                       " CPU but no worker in the cluster has that many slots"));
      FailTask(infeasible, std::move(failure));
      continue;
    }
    ready_.pop_front();
    Assign(it->second, *worker);
  }
  if (tasks_.size() <= config_.max_pending_tasks) {
    for (auto& [id, session] : sessions_) {
      if (session.received == session.admitted) continue;
      session.admitted = session.received;
      output_->NotifyAdmitted(id, session.admitted);
    }
  }
}

void SchedulerCore::Assign(Task& task, Worker& worker) {
  const TaskId task_id = *TaskId::FromBinary(task.spec.task_id());
  v1::TaskAssignment& assignment = assignment_scratch_;
  assignment.Clear();
  task.arg_sources.clear();
  for (const ObjectId& arg : task.ref_args) {
    auto it = objects_.find(arg);
    if (it == objects_.end()) {  // pinned by pending_uses; cannot happen
      task.arg_sources.emplace_back();
      continue;
    }
    if (it->second.state == ObjectState::kFailed) {
      v1::TaskFailure failure;
      failure.set_kind(v1::TaskFailure::DEPENDENCY_FAILED);
      failure.set_message("an argument of the task failed");
      *failure.mutable_cause() = it->second.failure;
      FailTask(task_id, std::move(failure));
      return;
    }
    v1::ObjectInfo* info = assignment.add_arg_objects();
    *info = DescribeFor(arg, it->second, &worker.id);
    task.arg_sources.push_back(info->has_location() ? HolderFor(it->second, &worker.id)
                                                    : WorkerId());
  }
  StatsFor(task.spec.function_name())
      .queue_wait.Add(absl::ToDoubleSeconds(clock_->Now() - task.ready_at));
  Occupy(task_id, task, worker);
  *assignment.mutable_spec() = task.spec;
  assignment.set_attempt(task.attempt);
  // Looked up once, and the ids formatted only when the line is written:
  // both were ~5 % of the scheduler's instructions under no-op tasks.
  static const std::shared_ptr<spdlog::logger> logger = GetLogger("scheduler");
  if (logger->should_log(spdlog::level::debug)) {
    logger->debug("event=task_assigned task={} worker={} attempt={}", task_id.Short(),
                  worker.id.Short(), task.attempt);
  }
  output_->AssignTask(worker.id, assignment);
}

bool SchedulerCore::WaitForRebuiltArgs(const TaskId& id, Task& task) {
  for (const ObjectId& arg : task.ref_args) {
    auto it = objects_.find(arg);
    if (it == objects_.end() || it->second.state != ObjectState::kPending) continue;
    it->second.waiters.push_back(id);
    task.missing_args++;
  }
  if (task.missing_args == 0) return false;
  task.state = TaskState::kWaiting;
  return true;
}

// ---- objects and failures --------------------------------------------------

void SchedulerCore::FailTask(const TaskId& first_id, v1::TaskFailure first_failure) {
  std::vector<std::pair<TaskId, v1::TaskFailure>> to_fail;
  to_fail.emplace_back(first_id, std::move(first_failure));
  while (!to_fail.empty()) {
    auto [task_id, failure] = std::move(to_fail.back());
    to_fail.pop_back();
    auto it = tasks_.find(task_id);
    if (it == tasks_.end()) continue;
    Task& task = it->second;
    if (task.state == TaskState::kAssigned) {
      auto worker_it = workers_.find(task.worker);
      if (worker_it != workers_.end()) {
        worker_it->second.assigned--;
        worker_it->second.tasks.erase(task_id);
      }
    }
    if (failure.function_name().empty()) failure.set_function_name(task.spec.function_name());
    if (failure.task_id().empty()) failure.set_task_id(std::string(task_id.Binary()));
    (failure.kind() == v1::TaskFailure::CANCELLED ? tasks_cancelled_ : tasks_failed_)++;
    if (auto owner = sessions_.find(task.owner); owner != sessions_.end()) {
      (failure.kind() == v1::TaskFailure::CANCELLED ? owner->second.cancelled
                                                     : owner->second.failed)++;
    }
    GetLogger("scheduler")->debug("event=task_failed task={} function={} kind={}",
                                  task_id.Short(), task.spec.function_name(),
                                  v1::TaskFailure::Kind_Name(failure.kind()));
    events_.Record(clock_->Now(), "task_failed",
                   {.task_id = task_id.Hex(), .function_name = task.spec.function_name(),
                    .failure_kind = v1::TaskFailure::Kind_Name(failure.kind()),
                    .detail = failure.message()});
    const uint32_t num_returns = std::max<uint32_t>(1, task.spec.num_returns());
    for (uint32_t i = 0; i < num_returns; ++i) {
      const ObjectId object_id = ObjectId::Of(task_id, i);
      auto object_it = objects_.find(object_id);
      if (object_it == objects_.end()) continue;
      MarkObjectFailed(object_id, object_it->second, failure, to_fail);
      NotifyOwner(object_id, object_it->second);
    }
    ReleaseArgs(task);
    tasks_.erase(it);
    TouchTask(task_id);
    for (uint32_t i = 0; i < num_returns; ++i) MaybeFree(ObjectId::Of(task_id, i));
  }
}

void SchedulerCore::MarkObjectReady(const ObjectId& id, Object& object,
                                    const std::string* inline_value, bool owner_has_it) {
  object.state = ObjectState::kReady;
  TouchObject(id);
  if (!owner_has_it && object.owner_holds && sessions_.contains(object.owner)) {
    v1::ObjectInfo info = DescribeFor(id, object, nullptr);
    if (!object.has_inline && inline_value != nullptr) info.set_inline_value(*inline_value);
    output_->NotifyObject(object.owner, std::move(info));
  }
  for (const TaskId& waiter : std::exchange(object.waiters, {})) {
    auto it = tasks_.find(waiter);
    if (it == tasks_.end() || it->second.state != TaskState::kWaiting) continue;
    if (--it->second.missing_args == 0) MakeReady(waiter, it->second, /*at_front=*/false);
  }
}

void SchedulerCore::MarkObjectFailed(const ObjectId& id, Object& object,
                                     const v1::TaskFailure& failure,
                                     std::vector<std::pair<TaskId, v1::TaskFailure>>& to_fail) {
  object.state = ObjectState::kFailed;
  object.failure = failure;
  TouchObject(id);
  if (object.has_inline) {
    inline_cache_used_bytes_ -= object.inline_value.size();
    object.has_inline = false;
    object.inline_value.clear();
  }
  for (const TaskId& waiter : std::exchange(object.waiters, {})) {
    v1::TaskFailure chained;
    chained.set_kind(v1::TaskFailure::DEPENDENCY_FAILED);
    chained.set_message(absl::StrCat("argument ", id.Short(), " failed"));
    *chained.mutable_cause() = failure;
    to_fail.emplace_back(waiter, std::move(chained));
  }
}

void SchedulerCore::ReleaseArgs(const Task& task) {
  for (const ObjectId& arg : task.ref_args) {
    auto it = objects_.find(arg);
    if (it == objects_.end()) continue;
    it->second.pending_uses--;
    MaybeFree(it);
  }
}

void SchedulerCore::MaybeFree(const ObjectId& first) { MaybeFree(objects_.find(first)); }

void SchedulerCore::MaybeFree(absl::flat_hash_map<ObjectId, Object>::iterator first) {
  std::vector<ObjectId> to_check;  // stays empty (no allocation) unless lineage is released
  auto it = first;
  while (true) {
    if (it != objects_.end()) FreeIfUnneeded(it, to_check);
    if (to_check.empty()) return;
    it = objects_.find(to_check.back());
    to_check.pop_back();
  }
}

void SchedulerCore::FreeIfUnneeded(absl::flat_hash_map<ObjectId, Object>::iterator it,
                                   std::vector<ObjectId>& to_check) {
  const ObjectId id = it->first;
  Object& object = it->second;
  if (Needed(object) || object.state == ObjectState::kPending) return;
  if (object.lineage_uses > 0 && object.has_inline && !lineage_.Contains(id.task())) {
    return;  // its producer kept no spec (RetainLineage): this value is how it is rebuilt
  }
  DropCopies(id, object);
  TouchObject(id);
  // Nothing reads it now, but a retained spec downstream may have to run
  // again: its record stays while its producer's spec does, to rebuild it.
  const bool rebuildable =
      object.state == ObjectState::kReady || object.state == ObjectState::kReleased;
  if (object.lineage_uses > 0 && rebuildable && lineage_.Contains(id.task())) {
    object.state = ObjectState::kReleased;
    return;
  }
  objects_.erase(it);
  if (std::optional<Lineage::Entry> dropped = lineage_.ReleaseReturn(id.task())) {
    ForgetLineage(id.task(), *dropped, to_check);
  }
}

void SchedulerCore::DropCopies(const ObjectId& id, Object& object) {
  for (const WorkerId& holder : object.locations) output_->FreeObject(holder, id);
  object.locations.clear();
  if (object.has_inline) inline_cache_used_bytes_ -= object.inline_value.size();
  object.has_inline = false;
  object.inline_value.clear();
}

void SchedulerCore::NotifyOwner(const ObjectId& id, const Object& object) {
  if (!object.owner_holds || !sessions_.contains(object.owner)) return;
  output_->NotifyObject(object.owner, DescribeFor(id, object, nullptr));
}

v1::ObjectInfo SchedulerCore::DescribeFor(const ObjectId& id, const Object& object,
                                          const WorkerId* prefer) const {
  v1::ObjectInfo info;
  info.set_object_id(std::string(id.Binary()));
  info.set_size_bytes(object.size_bytes);
  if (object.state == ObjectState::kFailed) {
    *info.mutable_failure() = object.failure;
  } else if (object.has_inline) {
    info.set_inline_value(object.inline_value);
  } else if (!object.locations.empty()) {
    const WorkerId holder = HolderFor(object, prefer);
    auto worker_it = workers_.find(holder);
    info.mutable_location()->set_worker_id(std::string(holder.Binary()));
    if (worker_it != workers_.end()) {
      info.mutable_location()->set_address(worker_it->second.address);
    }
  }
  return info;
}

WorkerId SchedulerCore::HolderFor(const Object& object, const WorkerId* prefer) const {
  if (object.locations.empty()) return WorkerId();
  if (prefer != nullptr && absl::c_linear_search(object.locations, *prefer)) return *prefer;
  return object.locations.front();
}

std::string SchedulerCore::DescribeWorker(const WorkerId& id) const {
  auto it = workers_.find(id);
  if (it == workers_.end()) return absl::StrCat("worker ", id.Short());
  return absl::StrCat("worker ", id.Short(), " at ", it->second.address, " (pid ",
                      it->second.pid, " on ", it->second.hostname, ")");
}

// ---- status ----------------------------------------------------------------

FunctionStats& SchedulerCore::StatsFor(const std::string& function_name) {
  auto it = function_stats_.find(function_name);
  if (it != function_stats_.end()) return it->second;
  if (function_stats_.size() >= kMaxTrackedFunctions) return function_stats_["(other)"];
  return function_stats_[function_name];
}

ClusterSnapshot SchedulerCore::Snapshot() const {
  const absl::Time now = clock_->Now();
  ClusterSnapshot snapshot;
  snapshot.epoch = config_.epoch;
  snapshot.uptime = now - started_at_;
  for (const auto& [id, worker] : workers_) {
    WorkerSnapshot& w = snapshot.workers.emplace_back();
    w.id = id.Hex();
    w.address = worker.address;
    w.hostname = worker.hostname;
    w.pid = worker.pid;
    w.slots = worker.slots;
    w.assigned = worker.assigned;
    w.running = worker.last_heartbeat.running_tasks();
    w.finished = worker.finished;
    w.failed = worker.failed;
    w.store_bytes = worker.last_heartbeat.store_bytes();
    w.store_objects = worker.last_heartbeat.store_objects();
    w.store_peak_bytes = worker.last_heartbeat.store_peak_bytes();
    w.store_capacity_bytes = worker.last_heartbeat.store_capacity_bytes();
    w.store_spilled_bytes = worker.last_heartbeat.store_spilled_bytes();
    w.store_spilled_objects = worker.last_heartbeat.store_spilled_objects();
    w.store_evictions = worker.last_heartbeat.store_evictions();
    w.store_spills = worker.last_heartbeat.store_spills();
    w.store_restores = worker.last_heartbeat.store_restores();
    w.bytes_sent = worker.last_heartbeat.bytes_sent();
    w.bytes_received = worker.last_heartbeat.bytes_received();
    w.objects_fetched = worker.last_heartbeat.objects_fetched();
    w.bytes_shared_locally = worker.last_heartbeat.bytes_shared_locally();
    w.neighbour_reads = worker.last_heartbeat.neighbour_reads();
    w.executor_restarts = worker.last_heartbeat.executor_restarts();
    w.results_delivered_to_owner = worker.last_heartbeat.results_delivered_to_owner();
    w.direct_tasks_run = worker.last_heartbeat.direct_tasks_run();
    w.direct_tasks_declined = worker.last_heartbeat.direct_tasks_declined();
    w.draining = worker.draining;
    w.reconnecting = worker.reconnecting;
    w.mean_task_run_ms = worker.mean_run_us / 1000.0;
    w.uptime = now - worker.connected_at;
    w.last_heard = now - worker.last_heard;
    if (worker.last_heartbeat_at.has_value()) w.last_heartbeat = now - *worker.last_heartbeat_at;
  }
  std::sort(snapshot.workers.begin(), snapshot.workers.end(),
            [](const WorkerSnapshot& a, const WorkerSnapshot& b) { return a.address < b.address; });
  absl::flat_hash_map<SessionId, uint64_t> pending_by_session;
  for (const auto& [id, task] : tasks_) {
    pending_by_session[task.owner]++;
    switch (task.state) {
      case TaskState::kWaiting: snapshot.tasks_waiting++; break;
      case TaskState::kReady: snapshot.tasks_ready++; break;
      case TaskState::kAssigned: snapshot.tasks_assigned++; break;
    }
  }
  snapshot.tasks_submitted = tasks_submitted_;
  snapshot.tasks_finished = tasks_finished_;
  snapshot.tasks_failed = tasks_failed_;
  snapshot.tasks_cancelled = tasks_cancelled_;
  snapshot.tasks_retried = tasks_retried_;
  snapshot.tasks_run_directly = tasks_run_directly_;
  snapshot.tasks_reconstructed = tasks_reconstructed_;
  snapshot.relay_calls = relay_calls_;
  snapshot.relay_failed = relay_failed_;
  snapshot.relay_bytes = relay_bytes_;
  snapshot.lineage_specs = lineage_.size();
  snapshot.lineage_bytes = lineage_.bytes();
  snapshot.lineage_evicted = lineage_.evicted();
  snapshot.objects = objects_.size();
  snapshot.inline_cache_bytes = inline_cache_used_bytes_;
  snapshot.sessions = sessions_.size();
  for (const auto& [id, session] : sessions_) {
    snapshot.sessions_away += !session.connected;
    JobSnapshot& job = snapshot.jobs.emplace_back();
    job.job = session.job.Hex();
    job.client = absl::StrCat(session.hostname, ":", session.pid);
    job.connected = session.connected;
    job.submitted = session.submitted;
    job.finished = session.finished;
    job.failed = session.failed;
    job.cancelled = session.cancelled;
    auto pending = pending_by_session.find(id);
    job.pending = pending == pending_by_session.end() ? 0 : pending->second;
    job.refs_held = session.held.size();
    job.uptime = now - session.opened_at;
  }
  std::sort(snapshot.jobs.begin(), snapshot.jobs.end(),
            [](const JobSnapshot& a, const JobSnapshot& b) { return a.uptime > b.uptime; });
  snapshot.durable = config_.durable;
  snapshot.recovering = recovering_;
  snapshot.tasks_per_s_10s = finish_rate_.PerSecond(now, 10);
  snapshot.tasks_per_s_60s = finish_rate_.PerSecond(now, 60);
  snapshot.functions.insert(function_stats_.begin(), function_stats_.end());
  return snapshot;
}

}  // namespace fleet::scheduler
