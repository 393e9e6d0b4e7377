// SchedulerCore's durable state: the records each batch changed, taking
// over a previous run's state after a restart, and the reconciliation with
// the workers and clients that come back.
#include <algorithm>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {
namespace {

// Sessions restored from the state get ids from here, far above those the
// service hands to streams.
constexpr SessionId kRestoredSessionBase = SessionId{1} << 62;

std::string Key(char kind, absl::string_view id) { return absl::StrCat(std::string(1, kind), id); }

absl::InlinedVector<ObjectId, 2> DistinctRefArgs(const v1::TaskSpec& spec) {
  absl::InlinedVector<ObjectId, 2> args;
  for (const v1::TaskArg& arg : spec.args()) {
    if (!arg.has_object_id()) continue;
    auto id = ObjectId::FromBinary(arg.object_id());
    if (id.ok() && !absl::c_linear_search(args, *id)) args.push_back(*id);
  }
  return args;
}

v1::ObjectRecord::State RecordState(int state) {
  switch (state) {
    case 1: return v1::ObjectRecord::READY;
    case 2: return v1::ObjectRecord::FAILED;
    case 3: return v1::ObjectRecord::RELEASED;
    default: return v1::ObjectRecord::PENDING;
  }
}

}  // namespace

// ---- recording -------------------------------------------------------------

void SchedulerCore::CollectChanges(StateChanges& changes) {
  auto& writes = changes.writes;
  for (const TaskId& id : dirty_tasks_) {
    v1::TaskRecord record;
    if (auto it = tasks_.find(id); it != tasks_.end()) {
      *record.mutable_spec() = it->second.spec;
      record.set_attempt(it->second.attempt);
      record.set_retries(it->second.retries);
      record.set_reconstructions(it->second.reconstructions);
    } else if (const Lineage::Entry* entry = lineage_.Find(id); entry != nullptr) {
      *record.mutable_spec() = entry->spec;
      record.set_finished(true);
      record.set_attempt(entry->attempt);
      record.set_reconstructions(entry->reconstructions);
    } else {
      writes.emplace_back(Key('t', id.Binary()), std::nullopt);
      continue;
    }
    writes.emplace_back(Key('t', id.Binary()), record.SerializeAsString());
  }
  for (const ObjectId& id : dirty_objects_) {
    auto it = objects_.find(id);
    if (it == objects_.end()) {
      writes.emplace_back(Key('o', id.Binary()), std::nullopt);
      continue;
    }
    const Object& object = it->second;
    v1::ObjectRecord record;
    record.set_state(RecordState(static_cast<int>(object.state)));
    record.set_size_bytes(object.size_bytes);
    if (object.has_inline) {
      record.set_has_inline(true);
      record.set_inline_value(object.inline_value);
    }
    if (object.state == ObjectState::kFailed) *record.mutable_failure() = object.failure;
    record.set_owner_holds(object.owner_holds);
    record.set_put(object.put);
    writes.emplace_back(Key('o', id.Binary()), record.SerializeAsString());
  }
  for (const JobId& job : dirty_sessions_) {
    auto it = absl::c_find_if(sessions_, [&](const auto& entry) { return entry.second.job == job; });
    if (it == sessions_.end()) {
      writes.emplace_back(Key('s', job.Binary()), std::nullopt);
      continue;
    }
    v1::SessionRecord record;
    record.set_client_hostname(it->second.hostname);
    record.set_client_pid(it->second.pid);
    writes.emplace_back(Key('s', job.Binary()), record.SerializeAsString());
  }
  for (const WorkerId& id : dirty_workers_) {
    auto it = workers_.find(id);
    if (it == workers_.end()) {
      writes.emplace_back(Key('w', id.Binary()), std::nullopt);
      continue;
    }
    v1::WorkerRecord record;
    record.set_address(it->second.address);
    record.set_hostname(it->second.hostname);
    writes.emplace_back(Key('w', id.Binary()), record.SerializeAsString());
  }
  if (!writes.empty() || !meta_recorded_) {
    meta_recorded_ = true;
    v1::MetaRecord meta;
    meta.set_epoch(config_.epoch);
    meta.set_tasks_submitted(tasks_submitted_);
    meta.set_tasks_finished(tasks_finished_);
    meta.set_tasks_failed(tasks_failed_);
    meta.set_tasks_cancelled(tasks_cancelled_);
    meta.set_tasks_retried(tasks_retried_);
    meta.set_tasks_reconstructed(tasks_reconstructed_);
    writes.emplace_back("m", meta.SerializeAsString());
  }
  dirty_tasks_.clear();
  dirty_objects_.clear();
  dirty_sessions_.clear();
  dirty_workers_.clear();
}

// ---- restoring -------------------------------------------------------------

absl::Status SchedulerCore::Restore(const StoredState& state) {
  const absl::Time now = clock_->Now();
  tasks_submitted_ = state.meta.tasks_submitted();
  tasks_finished_ = state.meta.tasks_finished();
  tasks_failed_ = state.meta.tasks_failed();
  tasks_cancelled_ = state.meta.tasks_cancelled();
  tasks_retried_ = state.meta.tasks_retried();
  tasks_reconstructed_ = state.meta.tasks_reconstructed();

  absl::flat_hash_map<JobId, SessionId> session_of_job;
  SessionId next_session = kRestoredSessionBase;
  for (const auto& [key, record] : state.sessions) {
    auto job = JobId::FromBinary(key);
    if (!job.ok()) return job.status();
    Session& session = sessions_[next_session];
    session.job = *job;
    session.hostname = record.client_hostname();
    session.pid = record.client_pid();
    session.opened_at = session.absent_since = now;
    session.connected = false;
    session_of_job[*job] = next_session++;
  }
  for (const auto& [key, record] : state.workers) {
    auto id = WorkerId::FromBinary(key);
    if (!id.ok()) return id.status();
    Worker& worker = workers_[*id];
    worker.id = *id;
    worker.address = record.address();
    worker.hostname = record.hostname();
    worker.reconnecting = true;
    worker.slots = 0;  // nothing is placed on it until it is back
    worker.connected_at = worker.last_heard = now;
  }
  auto owner_of = [&](const TaskId& task) -> SessionId {
    auto it = session_of_job.find(task.job());
    return it == session_of_job.end() ? 0 : it->second;
  };
  for (const auto& [key, record] : state.objects) {
    auto id = ObjectId::FromBinary(key);
    if (!id.ok()) return id.status();
    Object& object = objects_[*id];
    object.state = static_cast<ObjectState>(static_cast<int>(record.state()));
    object.size_bytes = record.size_bytes();
    if (record.has_inline()) {
      object.has_inline = true;
      object.inline_value = record.inline_value();
      inline_cache_used_bytes_ += object.inline_value.size();
    }
    object.failure = record.failure();
    object.owner = owner_of(id->task());
    object.owner_holds = record.owner_holds() && object.owner != 0;
    object.put = record.put();
    if (object.put && object.state == ObjectState::kPending) {
      // It was awaiting its client's upload: lost, as at the end of the
      // reconnect window; asked for again then, or failed.
      object.state = ObjectState::kReady;
    }
    if (object.owner_holds) sessions_[object.owner].held.insert(*id);
  }

  std::vector<TaskId> pending;
  for (const auto& [key, record] : state.tasks) {
    auto id = TaskId::FromBinary(key);
    if (!id.ok()) return id.status();
    if (record.finished()) {
      Lineage::Entry entry;
      entry.spec = record.spec();
      entry.owner = owner_of(*id);
      entry.attempt = record.attempt();
      entry.reconstructions = record.reconstructions();
      entry.ref_args = DistinctRefArgs(record.spec());
      int live_returns = 0;
      for (uint32_t i = 0; i < std::max<uint32_t>(1, record.spec().num_returns()); ++i) {
        live_returns += objects_.contains(ObjectId::Of(*id, i));
      }
      if (live_returns == 0) continue;
      for (const ObjectId& arg : entry.ref_args) {
        if (auto it = objects_.find(arg); it != objects_.end()) it->second.lineage_uses++;
      }
      // Retain evicts nothing: the previous run kept these within the bound.
      lineage_.Retain(*id, std::move(entry), live_returns);
      continue;
    }
    Task& task = tasks_[*id];
    task.spec = record.spec();
    task.owner = owner_of(*id);
    // Attempts the previous run made may still be running somewhere: the
    // next one is numbered past them.
    task.attempt = record.attempt() + 1;
    task.retries = record.retries();
    task.reconstructions = record.reconstructions();
    task.ref_args = DistinctRefArgs(task.spec);
    task.submitted_at = now;  // its age, for operators, counts from the restart
    pending.push_back(*id);
  }
  // Oldest first, as they were submitted.
  std::sort(pending.begin(), pending.end(), [](const TaskId& a, const TaskId& b) {
    return a.job() != b.job() ? a.job() < b.job() : a.index() < b.index();
  });
  for (const TaskId& id : pending) {
    Task& task = tasks_[id];
    for (const ObjectId& arg : task.ref_args) {
      auto it = objects_.find(arg);
      if (it == objects_.end()) continue;  // cannot be: it holds the argument
      it->second.pending_uses++;
      if (it->second.state == ObjectState::kPending) {
        task.missing_args++;
        it->second.waiters.push_back(id);
      }
    }
    task.state = task.missing_args == 0 ? TaskState::kReady : TaskState::kWaiting;
    task.ready_at = now;
    if (task.state == TaskState::kReady) ready_.push_back(id);
  }
  recovering_ = true;
  recovery_deadline_ = now + config_.reconnect_window;
  GetLogger("scheduler")->info(
      "event=state_restored epoch={} tasks={} lineage={} objects={} sessions={} workers={} "
      "reconnect_window={}",
      config_.epoch, tasks_.size(), lineage_.size(), objects_.size(), sessions_.size(),
      workers_.size(), absl::FormatDuration(config_.reconnect_window));
  return absl::OkStatus();
}

bool SchedulerCore::ContinueRecovery() {
  const bool waiting = absl::c_any_of(workers_, [](const auto& w) { return w.second.reconnecting; });
  if (waiting && clock_->Now() < recovery_deadline_) return true;
  std::vector<WorkerId> away;
  for (const auto& [id, worker] : workers_) {
    if (worker.reconnecting) away.push_back(id);
  }
  const std::string reason = absl::StrCat("it did not reconnect within --reconnect_window=",
                                          absl::FormatDuration(config_.reconnect_window),
                                          " after the scheduler restarted");
  for (const WorkerId& id : away) RemoveWorker(id, reason);
  // Objects whose copies were on workers that did not come back.
  std::vector<ObjectId> lost;
  for (const auto& [id, object] : objects_) {
    if (object.state == ObjectState::kReady && !HasCopy(object)) lost.push_back(id);
  }
  std::sort(lost.begin(), lost.end());
  std::vector<std::pair<TaskId, v1::TaskFailure>> to_fail;
  for (const ObjectId& id : lost) {
    Rebuild(id, "no worker that came back after the scheduler restarted holds a copy", to_fail);
  }
  for (auto& [task_id, failure] : to_fail) FailTask(task_id, std::move(failure));
  recovering_ = false;
  GetLogger("scheduler")->info(
      "event=recovery_finished workers_back={} workers_gone={} objects_rebuilt_or_lost={} "
      "tasks_queued={}",
      workers_.size(), away.size(), lost.size(), ready_.size());
  events_.Record(clock_->Now(), "recovery_finished",
                 {.detail = absl::StrCat("workers_back=", workers_.size(), " workers_gone=",
                                         away.size(), " objects_rebuilt_or_lost=", lost.size())});
  return false;
}

// ---- reconciliation --------------------------------------------------------

void SchedulerCore::ReclaimFromWorker(Worker& worker, const v1::RegisterWorker& registration) {
  int kept_objects = 0, freed_objects = 0, claimed = 0, dropped = 0;
  for (const v1::ObjectStored& held : registration.held_objects()) {
    auto id = ObjectId::FromBinary(held.object_id());
    if (!id.ok()) continue;
    auto it = objects_.find(*id);
    // The result of a task it finished while away: the completion follows
    // in the same message and makes it ready here.
    if (it != objects_.end() && it->second.state == ObjectState::kPending) continue;
    if (it == objects_.end() || it->second.state != ObjectState::kReady) {
      output_->FreeObject(worker.id, *id);
      freed_objects++;
      continue;
    }
    const bool had_copy = HasCopy(it->second);
    if (!absl::c_linear_search(it->second.locations, worker.id)) {
      it->second.locations.push_back(worker.id);
    }
    // Its owner may have come back first and been told to wait for it.
    if (!had_copy) NotifyOwner(*id, it->second);
    kept_objects++;
  }
  for (const v1::TaskClaim& claim : registration.running_tasks()) {
    auto id = TaskId::FromBinary(claim.task_id());
    if (!id.ok()) continue;
    auto it = tasks_.find(*id);
    if (it == tasks_.end() || it->second.state == TaskState::kAssigned) {
      output_->CancelOnWorker(worker.id, *id);  // finished, cancelled, or running elsewhere
      dropped++;
      continue;
    }
    Task& task = it->second;
    // Its arguments were there when it started: no need to wait for them.
    task.missing_args = 0;
    task.state = TaskState::kAssigned;
    task.worker = worker.id;
    task.attempt = claim.attempt();
    worker.assigned++;
    worker.tasks.insert(*id);
    claimed++;
  }
  GetLogger("scheduler")->info(
      "event=worker_reconciled worker={} objects_kept={} objects_freed={} tasks_claimed={} "
      "tasks_dropped={}",
      worker.id.Short(), kept_objects, freed_objects, claimed, dropped);
}

void SchedulerCore::ReconcileHeldObjects(SessionId session_id, const v1::OpenSession& open) {
  auto session_it = sessions_.find(session_id);
  if (session_it == sessions_.end()) return;
  absl::flat_hash_set<ObjectId> held;
  for (const std::string& bytes : open.held_objects()) {
    if (auto id = ObjectId::FromBinary(bytes); id.ok()) held.insert(*id);
  }
  // Releases sent while the stream was breaking may not have arrived.
  std::vector<ObjectId> released;
  for (const ObjectId& id : session_it->second.held) {
    if (!held.contains(id)) released.push_back(id);
  }
  for (const ObjectId& id : released) ReleaseObject(session_id, id);
  int unknown = 0;
  for (const ObjectId& id : held) {
    auto it = objects_.find(id);
    if (it != objects_.end() && it->second.owner == session_id &&
        it->second.state != ObjectState::kReleased) {
      // A restored object whose holder has not reconnected yet has no copy
      // to name: the owner hears of it when the holder is back.
      const Object& object = it->second;
      if (object.state == ObjectState::kFailed ||
          (object.state == ObjectState::kReady && HasCopy(object))) {
        NotifyOwner(id, object);
      }
      // The request may have been lost with the old stream.
      if (it->second.awaiting_reupload) output_->RequestReupload(session_id, id);
      continue;
    }
    unknown++;
    v1::ObjectInfo info;
    info.set_object_id(std::string(id.Binary()));
    v1::TaskFailure* failure = info.mutable_failure();
    failure->set_kind(v1::TaskFailure::OBJECT_LOST);
    failure->set_message(absl::StrCat(
        "the scheduler has no record of object ", id.Short(),
        ": it restarted without --state_dir, or this client was away longer than "
        "--client_grace; submit the work again"));
    output_->NotifyObject(session_id, std::move(info));
  }
  GetLogger("scheduler")->info(
      "event=job_reconciled session={} refs_held={} refs_released={} refs_unknown={}",
      session_id, held.size(), released.size(), unknown);
}

void SchedulerCore::DisconnectSession(SessionId session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  if (config_.client_grace <= absl::ZeroDuration()) {
    CloseSession(session_id);
    return;
  }
  it->second.connected = false;
  it->second.absent_since = clock_->Now();
  GetLogger("scheduler")->info("event=client_away job={} client={}:{} grace={}",
                               it->second.job.Hex().substr(0, 8), it->second.hostname,
                               it->second.pid, absl::FormatDuration(config_.client_grace));
}

void SchedulerCore::ExpireAbsentSessions() {
  const absl::Time now = clock_->Now();
  std::vector<SessionId> gone;
  for (const auto& [id, session] : sessions_) {
    if (!session.connected && now - session.absent_since > config_.client_grace) {
      gone.push_back(id);
    }
  }
  for (SessionId id : gone) {
    GetLogger("scheduler")->info("event=client_gone session={} grace={}", id,
                                 absl::FormatDuration(config_.client_grace));
    events_.Record(now, "client_gone",
                   {.job_id = sessions_[id].job.Hex(),
                    .detail = absl::StrCat("away longer than --client_grace=",
                                           absl::FormatDuration(config_.client_grace))});
    CloseSession(id);
  }
}

}  // namespace fleet::scheduler
