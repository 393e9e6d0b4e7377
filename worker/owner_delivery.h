// Hands a finished task's results straight to its owner, the client that
// submitted it, when that client runs on this host and has subscribed
// (local_store.proto's Subscribe, on the store's socket): the results go
// from the slot that took them from the executor to the client in one
// packet, instead of up to the scheduler and down to the client over gRPC.
// A synchronous round trip (submit, then Get) then crosses gRPC twice
// rather than four times. The completion still goes to the scheduler,
// marked delivered_to_owner: it records the task and its results as
// before, and only leaves out sending the values to the client again.
//
// Only what is safe and cheap to hand over goes this way: a task that
// succeeded (a failure may be retried: the scheduler decides) whose every
// result is inline, in one push of at most kLocalSocketMaxPushBytes, sent
// without blocking. Anything else (a large result, a failure, a client
// not subscribed here, or one whose queue is full) goes through the
// scheduler as before. A client that gets a result both ways keeps the
// first: results are immutable.
//
// Thread-safe.
#ifndef FLEET_WORKER_OWNER_DELIVERY_H_
#define FLEET_WORKER_OWNER_DELIVERY_H_

#include <atomic>
#include <cstdint>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "worker/scheduler_link.h"

namespace fleet::worker {

// The clients on this host that subscribed, by job.
class OwnerSubscriptions {
 public:
  // The client of `job` listens on `socket` (a subscribed store
  // connection, which its server keeps open until Unsubscribe). A later
  // subscription of the same job replaces it.
  void Subscribe(const JobId& job, int socket);
  // Before `socket` is closed: no push is under way on it once this returns.
  void Unsubscribe(int socket);

  // Pushes the results of `completed` to its owner when that client
  // subscribed and they qualify (see above); whether they went.
  bool Deliver(v1::TaskCompleted& completed);

  // Tasks whose results were pushed to their owner, since start.
  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

 private:
  // Pushes are sent under the reader lock, so that Unsubscribe (a writer)
  // returns only once no thread is still writing to its socket.
  absl::Mutex mu_;
  absl::flat_hash_map<JobId, int> subscribers_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> delivered_{0};
};

// What the executor reports to: completions are offered to their owner
// first, then go on to the scheduler (marked when delivered).
class OwnerDeliveringLink : public SchedulerLink {
 public:
  // Both must outlive this.
  OwnerDeliveringLink(OwnerSubscriptions* owners, SchedulerLink* scheduler)
      : owners_(owners), scheduler_(scheduler) {}

  // Only a completion with none right behind it is pushed: those of a
  // pipeline or a queue go through the scheduler, which batches them (a
  // push each cost one client ~20 % of its no-op throughput), and their
  // owner is waiting on many, not on one.
  void ReportCompleted(v1::TaskCompleted completed, bool more_follow) override {
    if (!more_follow && owners_->Deliver(completed)) completed.set_delivered_to_owner(true);
    scheduler_->ReportCompleted(std::move(completed), more_follow);
  }
  void ReportStored(v1::ObjectStored stored) override {
    scheduler_->ReportStored(std::move(stored));
  }
  void ReportOutput(v1::TaskOutput output) override { scheduler_->ReportOutput(std::move(output)); }

 private:
  OwnerSubscriptions* const owners_;
  SchedulerLink* const scheduler_;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_OWNER_DELIVERY_H_
