// Tasks a client on this host hands to this worker itself, on its result
// subscription (local_store.proto's RunTask), rather than through the
// scheduler: a synchronous call (submit, then Get) then crosses no gRPC
// stream at all, the client's packet reaching an idle slot's executor and
// the result coming back as an owner push (owner_delivery.h).
//
// The scheduler still learns of every such task, twice: from the client's
// submission (TaskSpec.direct_worker_id) and from this worker's report,
// which carries the spec (TaskCompleted.direct_spec). Whichever comes
// first records the task, so that it is counted, its result known to the
// cluster, and, should this worker die before reporting, run again
// elsewhere. Only a task that can start at once is taken: with no slot
// idle (or while draining) the worker declines it to the scheduler
// (TaskCompleted.declined), which places it as any other, so that a
// client's direct task never waits behind the scheduler's queue here.
//
// The executor reports to this link, which adds the spec to a direct
// task's completion and passes every completion on.
//
// Thread-safe.
#ifndef FLEET_WORKER_DIRECT_TASKS_H_
#define FLEET_WORKER_DIRECT_TASKS_H_

#include <atomic>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "fleet/v1/common.pb.h"
#include "worker/scheduler_link.h"

namespace fleet::worker {

class Executor;

class DirectTasks : public SchedulerLink {
 public:
  // `results`: where completions go on (through owner delivery);
  // `scheduler`: where declines go. Both must outlive this.
  DirectTasks(SchedulerLink* results, SchedulerLink* scheduler)
      : results_(results), scheduler_(scheduler) {}

  // Once, before the worker registers (no client can know it before).
  void Attach(Executor* executor);
  // Before the executor stops: returns once no task is on its way to it.
  // Tasks handed over later are dropped, reported to nobody: the worker
  // is going, and the scheduler runs them elsewhere when it has gone.
  void Stop();
  // From now on every task handed over is declined.
  void BeginDrain();

  // A task handed over on a connection subscribed for `job`: started in an
  // idle slot, or declined.
  void Run(const JobId& job, v1::TaskSpec spec);
  // Has the scheduler place the task instead.
  void Decline(v1::TaskSpec spec);

  // Since start.
  uint64_t run() const { return run_.load(std::memory_order_relaxed); }
  uint64_t declined() const { return declined_.load(std::memory_order_relaxed); }

  // SchedulerLink, for the executor.
  void ReportCompleted(v1::TaskCompleted completed, bool more_follow) override;
  void ReportStored(v1::ObjectStored stored) override {
    results_->ReportStored(std::move(stored));
  }
  void ReportOutput(v1::TaskOutput output) override { results_->ReportOutput(std::move(output)); }

 private:
  SchedulerLink* const results_;
  SchedulerLink* const scheduler_;
  std::atomic<uint64_t> run_{0};
  std::atomic<uint64_t> declined_{0};
  // How many entries `running_` has, read without the lock: most
  // completions are the scheduler's tasks, and need no look-up.
  std::atomic<int> num_running_{0};

  absl::Mutex mu_;
  Executor* executor_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Direct tasks started and not yet reported: their specs.
  absl::flat_hash_map<TaskId, v1::TaskSpec> running_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_DIRECT_TASKS_H_
