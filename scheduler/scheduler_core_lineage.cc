// SchedulerCore, continued: lineage and the rebuilding of lost objects.
//
// A finished task's spec stays in lineage_ while any of its results is
// alive; an argument of a retained spec keeps its record (kReleased, its
// copies freed once nothing reads it) for as long, so that a chain of
// specs can be run again, from the last copy that survives, when a result
// needed downstream loses every copy.
#include "scheduler/scheduler_core.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"

namespace fleet::scheduler {
namespace {

v1::TaskFailure LostFailure(const ObjectId& id, absl::string_view how_lost,
                            absl::string_view why_not) {
  v1::TaskFailure failure;
  failure.set_kind(v1::TaskFailure::OBJECT_LOST);
  failure.set_task_id(std::string(id.task().Binary()));
  failure.set_message(
      absl::StrCat("object ", id.Short(), " was lost: ", how_lost, "; it cannot be rebuilt: ",
                   why_not));
  return failure;
}

}  // namespace

void SchedulerCore::RetainLineage(const TaskId& id, Task& task) {
  const uint32_t num_returns = std::max<uint32_t>(1, task.spec.num_returns());
  int live_returns = 0;
  bool all_held_here = true;  // every live result has its value in the inline cache
  for (uint32_t i = 0; i < num_returns; ++i) {
    auto it = objects_.find(ObjectId::Of(id, i));
    if (it == objects_.end()) continue;
    live_returns++;
    all_held_here = all_held_here && it->second.has_inline;
  }
  if (live_returns == 0) return;  // nobody can ask for its results again

  std::vector<ObjectId> to_check;
  if (std::optional<Lineage::Entry> old = lineage_.Take(id)) ForgetLineage(id, *old, to_check);
  if (all_held_here) {
    // Results the scheduler holds are never lost with a worker: nothing
    // will run the task again, so its spec is not kept (the common case of
    // small results, which then costs no lineage bookkeeping). MaybeFree
    // keeps such a result while retained specs downstream take it.
    TouchTask(id);
    for (const ObjectId& object_id : to_check) MaybeFree(object_id);
    return;
  }
  for (const ObjectId& arg : task.ref_args) {
    auto it = objects_.find(arg);
    if (it != objects_.end()) it->second.lineage_uses++;
  }
  Lineage::Entry entry;
  entry.spec = std::move(task.spec);
  entry.owner = task.owner;
  entry.attempt = task.attempt;
  entry.reconstructions = task.reconstructions;
  entry.ref_args = task.ref_args;
  for (auto& [evicted_id, evicted] : lineage_.Retain(id, std::move(entry), live_returns)) {
    GetLogger("scheduler")->debug("event=lineage_evicted task={} max_lineage_bytes={}",
                                  evicted_id.Short(), lineage_.max_bytes());
    ForgetLineage(evicted_id, evicted, to_check);
  }
  TouchTask(id);
  for (const ObjectId& object_id : to_check) MaybeFree(object_id);
}

void SchedulerCore::ForgetLineage(const TaskId& id, const Lineage::Entry& entry,
                                  std::vector<ObjectId>& to_check) {
  TouchTask(id);
  for (const ObjectId& arg : entry.ref_args) {
    auto it = objects_.find(arg);
    if (it == objects_.end()) continue;
    it->second.lineage_uses--;
    to_check.push_back(arg);
  }
  // Its released results cannot be rebuilt now: their records go.
  for (uint32_t i = 0; i < std::max<uint32_t>(1, entry.spec.num_returns()); ++i) {
    to_check.push_back(ObjectId::Of(id, i));
  }
}

void SchedulerCore::Rebuild(const ObjectId& first, std::string how_lost,
                            std::vector<std::pair<TaskId, v1::TaskFailure>>& to_fail) {
  // A work list rather than recursion: a lost chain can be long.
  std::vector<std::pair<ObjectId, std::string>> lost;
  lost.emplace_back(first, std::move(how_lost));
  while (!lost.empty()) {
    auto [id, how] = std::move(lost.back());
    lost.pop_back();
    auto it = objects_.find(id);
    if (it == objects_.end()) continue;
    Object& object = it->second;
    const bool gone = object.state == ObjectState::kReleased ||
                      (object.state == ObjectState::kReady && !HasCopy(object));
    if (!gone) continue;  // being rebuilt already, failed, or a copy came back
    if (!Needed(object)) {
      MaybeFree(id);  // nothing reads it: dropped, not rebuilt
      continue;
    }
    if (tasks_.contains(id.task())) {
      // Its producer runs again already, to rebuild a sibling result.
      object.state = ObjectState::kPending;
      TouchObject(id);
      NotifyOwner(id, object);  // pending again: the owner waits, not fetches
      continue;
    }
    if (object.put && object.owner_holds && sessions_.contains(object.owner) &&
        sessions_.at(object.owner).connected) {
      // No task can make it again, but its client may still hold the value.
      object.state = ObjectState::kPending;
      object.awaiting_reupload = true;
      object.how_lost = how;
      TouchObject(id);
      GetLogger("scheduler")->info("event=put_reupload_requested object={} reason=\"{}\"",
                                   id.Short(), how);
      output_->RequestReupload(object.owner, id);
      NotifyOwner(id, object);  // pending again: the owner waits, not fetches
      continue;
    }
    std::string why_not =
        "it was stored with Put, so no task can make it again, and its client is not "
        "connected to upload it again; Put the value again";
    if (!object.put && Reconstruct(id.task(), id, &why_not, lost)) continue;
    GetLogger("scheduler")->warn("event=object_lost object={} reason=\"{}\" not_rebuilt=\"{}\"",
                                 id.Short(), how, why_not);
    MarkObjectFailed(id, object, LostFailure(id, how, why_not), to_fail);
    NotifyOwner(id, object);
    // A spec that cannot rebuild this result cannot rebuild any other.
    if (std::optional<Lineage::Entry> spent = lineage_.Take(id.task())) {
      std::vector<ObjectId> to_check;
      ForgetLineage(id.task(), *spent, to_check);
      for (const ObjectId& object_id : to_check) MaybeFree(object_id);
    }
  }
}

bool SchedulerCore::Reconstruct(const TaskId& producer, const ObjectId& lost, std::string* why_not,
                                std::vector<std::pair<ObjectId, std::string>>& also_lost) {
  const Lineage::Entry* entry = lineage_.Find(producer);
  if (entry == nullptr) {
    *why_not = absl::StrCat(
        "the spec of its task was dropped to keep lineage within --max_lineage_bytes=",
        lineage_.max_bytes(), "; raise it, or keep fewer results alive at once");
    return false;
  }
  if (config_.max_reconstructions >= 0 &&
      entry->reconstructions >= config_.max_reconstructions) {
    *why_not = absl::StrCat("its task ", entry->spec.function_name(), " already ran again ",
                            entry->reconstructions,
                            " times to rebuild lost results (--max_reconstructions=",
                            config_.max_reconstructions, ")");
    return false;
  }
  for (const ObjectId& arg : entry->ref_args) {
    if (objects_.contains(arg)) continue;
    *why_not = absl::StrCat("argument ", arg.Short(), " of its task ",
                            entry->spec.function_name(),
                            " is gone too (a Put its client released, or its own lineage was "
                            "dropped)");
    return false;
  }

  Lineage::Entry spec = *lineage_.Take(producer);
  tasks_reconstructed_++;
  Task& task = tasks_[producer];
  TouchTask(producer);
  task.owner = spec.owner;
  task.attempt = spec.attempt;  // a new attempt: late results of old ones are ignored
  task.reconstructions = spec.reconstructions + 1;
  // The results that kept a copy stay readable; the others wait for it.
  for (uint32_t i = 0; i < std::max<uint32_t>(1, spec.spec.num_returns()); ++i) {
    auto it = objects_.find(ObjectId::Of(producer, i));
    if (it == objects_.end()) continue;
    Object& result = it->second;
    if (result.state == ObjectState::kReleased ||
        (result.state == ObjectState::kReady && !HasCopy(result))) {
      result.state = ObjectState::kPending;
      TouchObject(it->first);
      NotifyOwner(it->first, result);  // pending again: the owner waits, not fetches
    }
  }
  // The arguments move from the spec's hold to the task's; those without
  // a copy are rebuilt first (Dispatch makes the task wait for them).
  for (const ObjectId& arg : spec.ref_args) {
    Object& object = objects_.at(arg);
    object.pending_uses++;
    object.lineage_uses--;
    task.ref_args.push_back(arg);
    if (object.state == ObjectState::kReleased ||
        (object.state == ObjectState::kReady && !HasCopy(object))) {
      also_lost.emplace_back(arg,
                             absl::StrCat("it is needed again to rebuild object ", lost.Short(),
                                          ", and its copies were freed or lost"));
    }
  }
  GetLogger("scheduler")->info(
      "event=task_reconstructed task={} function={} object={} reconstruction={}",
      producer.Short(), spec.spec.function_name(), lost.Short(), task.reconstructions);
  task.spec = std::move(spec.spec);
  MakeReady(producer, task, /*at_front=*/true);  // someone is waiting for it already
  task.submitted_at = task.ready_at;             // its age, for operators, counts from the rebuild
  return true;
}

bool SchedulerCore::RequeueAfterLostArgument(const TaskId& id, const WorkerId& reporter,
                                             const v1::TaskFailure& failure) {
  auto lost = ObjectId::FromBinary(failure.lost_object_id());
  auto task_it = tasks_.find(id);
  if (!lost.ok() || task_it == tasks_.end()) return false;
  Task& task = task_it->second;
  auto arg = absl::c_find(task.ref_args, *lost);
  auto object_it = objects_.find(*lost);
  if (arg == task.ref_args.end() || object_it == objects_.end()) return false;
  Object& object = object_it->second;

  // The copy the worker was sent to is gone or unreadable (its holder died
  // before we noticed, or evicted a secondary copy): forget it, and free
  // whatever is left of it there.
  const std::size_t index = static_cast<std::size_t>(arg - task.ref_args.begin());
  const WorkerId source = index < task.arg_sources.size() ? task.arg_sources[index] : WorkerId();
  if (!source.IsNil()) {
    if (auto loc = absl::c_find(object.locations, source); loc != object.locations.end()) {
      object.locations.erase(loc);
      output_->FreeObject(source, *lost);
    }
  }
  GetLogger("scheduler")->warn(
      "event=argument_lost task={} object={} worker={} source={} reason=\"{}\"", id.Short(),
      lost->Short(), reporter.Short(), source.IsNil() ? "none" : source.Short(),
      failure.message());

  // Not charged to its retries: the task did not fail, its input did.
  tasks_retried_++;
  MakeReady(id, task, /*at_front=*/true);
  if (object.state == ObjectState::kReady && !HasCopy(object)) {
    // Rebuild adds tasks: `task` is not used after this.
    std::vector<std::pair<TaskId, v1::TaskFailure>> to_fail;
    Rebuild(*lost,
            absl::StrCat("worker ", reporter.Short(), " could not obtain it from worker ",
                         source.IsNil() ? "?" : source.Short(), " (", failure.message(),
                         ") and no other copy is known"),
            to_fail);
    for (auto& [failed_id, failed] : to_fail) FailTask(failed_id, std::move(failed));
  }
  return true;
}

}  // namespace fleet::scheduler
