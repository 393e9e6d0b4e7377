#include "worker/direct_tasks.h"

#include <utility>

#include "common/logging.h"
#include "common/task_spec.h"
#include "worker/executor.h"

namespace fleet::worker {

void DirectTasks::Attach(Executor* executor) {
  absl::MutexLock lock(&mu_);
  executor_ = executor;
}

void DirectTasks::Stop() {
  absl::MutexLock lock(&mu_);
  executor_ = nullptr;
  stopped_ = true;
}

void DirectTasks::BeginDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

void DirectTasks::Run(const JobId& job, v1::TaskSpec spec) {
  absl::StatusOr<TaskId> id = TaskId::FromBinary(spec.task_id());
  if (!id.ok()) {
    // The scheduler refuses the client's submission of it too.
    GetLogger("worker")->warn("event=direct_task_refused error=\"{}\"", id.status().message());
    return;
  }
  {
    // Held while the executor takes it, so that Stop returns only once no
    // task is on its way there. The executor reports completions without
    // its own lock held: this order is the only one.
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    if (executor_ != nullptr && !draining_ && id->job() == job && RunnableFromSpecAlone(spec)) {
      // Recorded before it can start: its completion may come at once.
      running_.emplace(*id, spec);
      num_running_.fetch_add(1, std::memory_order_relaxed);
      v1::TaskAssignment assignment;
      *assignment.mutable_spec() = std::move(spec);
      assignment.set_attempt(kFirstAttempt);
      if (executor_->EnqueueIfIdle(assignment)) {
        run_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      spec = std::move(*assignment.mutable_spec());
      running_.erase(*id);
      num_running_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  Decline(std::move(spec));
}

void DirectTasks::Decline(v1::TaskSpec spec) {
  declined_.fetch_add(1, std::memory_order_relaxed);
  v1::TaskCompleted declined;
  declined.set_task_id(spec.task_id());
  declined.set_attempt(kFirstAttempt);
  declined.set_declined(true);
  *declined.mutable_direct_spec() = std::move(spec);
  scheduler_->ReportCompleted(std::move(declined), /*more_follow=*/false);
}

void DirectTasks::ReportCompleted(v1::TaskCompleted completed, bool more_follow) {
  if (num_running_.load(std::memory_order_relaxed) > 0) {
    absl::StatusOr<TaskId> id = TaskId::FromBinary(completed.task_id());
    absl::MutexLock lock(&mu_);
    auto it = id.ok() ? running_.find(*id) : running_.end();
    if (it != running_.end()) {
      *completed.mutable_direct_spec() = std::move(it->second);
      running_.erase(it);
      num_running_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  results_->ReportCompleted(std::move(completed), more_follow);
}

}  // namespace fleet::worker
