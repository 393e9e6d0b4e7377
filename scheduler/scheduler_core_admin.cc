// SchedulerCore's operator queries: listing the tasks it holds and
// cancelling one on an operator's behalf (see scheduler_core.h).
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {
namespace {

constexpr uint32_t kDefaultTaskListLimit = 100;
// A reply stays far below the message limit, and one call cannot make the
// loop copy a million tasks.
constexpr uint32_t kMaxTaskListLimit = 10'000;

}  // namespace

absl::StatusOr<v1::ListTasksReply> SchedulerCore::ListTasks(
    const v1::ListTasksRequest& request) const {
  std::optional<TaskState> wanted;
  if (request.state() == "waiting") {
    wanted = TaskState::kWaiting;
  } else if (request.state() == "ready") {
    wanted = TaskState::kReady;
  } else if (request.state() == "assigned") {
    wanted = TaskState::kAssigned;
  } else if (!request.state().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown task state \"", request.state(),
                                                   "\": use waiting, ready or assigned"));
  }
  const uint32_t limit =
      request.limit() == 0 ? kDefaultTaskListLimit : std::min(request.limit(), kMaxTaskListLimit);

  std::vector<std::pair<const TaskId*, const Task*>> matching;
  for (const auto& [id, task] : tasks_) {
    if (!wanted || task.state == *wanted) matching.emplace_back(&id, &task);
  }
  // Oldest first: submission order within a job, then by submission time.
  auto older = [](const auto& a, const auto& b) {
    if (a.second->submitted_at != b.second->submitted_at) {
      return a.second->submitted_at < b.second->submitted_at;
    }
    return *a.first < *b.first;
  };
  const std::size_t shown = std::min<std::size_t>(limit, matching.size());
  std::partial_sort(matching.begin(), matching.begin() + static_cast<std::ptrdiff_t>(shown),
                    matching.end(), older);

  v1::ListTasksReply reply;
  reply.set_matching(matching.size());
  const absl::Time now = clock_->Now();
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& [id, task] = matching[i];
    v1::TaskSummary* summary = reply.add_tasks();
    summary->set_task_id(std::string(id->Binary()));
    summary->set_function_name(task->spec.function_name());
    switch (task->state) {
      case TaskState::kWaiting:
        summary->set_state("waiting");
        break;
      case TaskState::kReady:
        summary->set_state("ready");
        break;
      case TaskState::kAssigned:
        summary->set_state("assigned");
        break;
    }
    if (task->state == TaskState::kAssigned) {
      summary->set_worker_id(std::string(task->worker.Binary()));
      auto worker = workers_.find(task->worker);
      if (worker != workers_.end()) summary->set_worker_address(worker->second.address);
    }
    summary->set_attempt(task->attempt);
    summary->set_age_s(absl::ToDoubleSeconds(now - task->submitted_at));
  }
  return reply;
}

absl::StatusOr<std::string> SchedulerCore::CancelTaskAsOperator(const TaskId& task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) {
    // A finished task leaves its results (or lineage) behind while they are
    // referenced; otherwise nothing tells it from an id never submitted.
    auto result = objects_.find(ObjectId::Of(task_id, 0));
    if (result != objects_.end() || lineage_.Contains(task_id)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", task_id.Short(), " already finished",
          result != objects_.end() && result->second.state == ObjectState::kFailed ? " (it failed)"
                                                                                   : ""));
    }
    return absl::NotFoundError(absl::StrCat(
        "the scheduler holds no task ", task_id.Hex(),
        ": it finished and its results were released, its client went away, or it was never "
        "submitted"));
  }
  Task& task = it->second;
  const bool running = task.state == TaskState::kAssigned;
  std::string state = running ? "assigned" : task.state == TaskState::kReady ? "ready" : "waiting";
  if (running) output_->CancelOnWorker(task.worker, task_id);
  GetLogger("scheduler")
      ->info("event=task_cancelled_by_operator task={} function={} state={}", task_id.Short(),
             task.spec.function_name(), state);
  v1::TaskFailure failure;
  failure.set_kind(v1::TaskFailure::CANCELLED);
  failure.set_message(running ? "cancelled by an operator (fleet cancel) while running; it was "
                                "stopped and anything it returns is discarded"
                              : "cancelled by an operator (fleet cancel) before it ran");
  failure.set_attempt(task.attempt);
  FailTask(task_id, std::move(failure));
  return state;
}

absl::Status SchedulerCore::CheckRelayTarget(const std::string& address) const {
  for (const auto& [id, worker] : workers_) {
    if (worker.address == address && !worker.reconnecting) return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat(
      "no connected worker advertises ", address,
      "; the object's holder may have left (ask the scheduler where it is now)"));
}

void SchedulerCore::RecordRelay(uint64_t bytes, bool ok) {
  relay_calls_++;
  relay_failed_ += ok ? 0 : 1;
  relay_bytes_ += bytes;
}

}  // namespace fleet::scheduler
