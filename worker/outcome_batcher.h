// Executor side: the outcomes of tiny tasks run back to back go to the
// daemon together, one write (and one wake-up of the daemon's slot thread)
// for several tasks instead of one each.
//
// An outcome is held back only when its task ran under kShortRun and the
// next task is already read. What is held is written when the executor is
// about to wait for tasks, when kMaxHeld outcomes or kMaxHeldBytes are
// held, and, from a timer of its own, once the oldest has waited kMaxHold:
// a long task after tiny ones delays their answers by kMaxHold at most.
// Held outcomes die with the executor; the daemon tells those tasks from
// the one that was running by the executor's progress counters
// (executor_progress.h) and runs them again.
//
// Thread-safe (the executor's thread and the timer's).
#ifndef FLEET_WORKER_OUTCOME_BATCHER_H_
#define FLEET_WORKER_OUTCOME_BATCHER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fleet/v1/executor.pb.h"

namespace fleet::worker {

class OutcomeBatcher {
 public:
  static constexpr absl::Duration kShortRun = absl::Microseconds(50);
  // Short enough not to matter next to a task that runs long; long enough
  // that on a loaded machine (the executor preempted between tasks) a batch
  // fills before the timer fires (200 us cost ~1 us more per no-op task on
  // 2 cores).
  static constexpr absl::Duration kMaxHold = absl::Milliseconds(1);
  static constexpr std::size_t kMaxHeld = 16;
  static constexpr std::size_t kMaxHeldBytes = 64 << 10;

  // Writes to `channel`; starts the timer's thread.
  static absl::StatusOr<std::unique_ptr<OutcomeBatcher>> Create(int channel);
  ~OutcomeBatcher();  // stops the timer; what is still held is dropped

  // Queues `outcome` and writes it, with those held, unless it may wait:
  // its task was short and `next_ready` (the next task is already read).
  // Returns Cancelled when the daemon has gone.
  absl::Status Add(const v1::ExecutorOutcome& outcome, bool next_ready);
  // Writes what is held.
  absl::Status Flush();

  std::size_t held() const;

 private:
  OutcomeBatcher(int channel, int timer_fd, int stop_fd);
  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunTimer();

  const int channel_;
  const int timer_fd_;  // a timerfd, armed while something is held
  const int stop_fd_;   // an eventfd that stops the timer's thread
  mutable absl::Mutex mu_;
  std::string frames_ ABSL_GUARDED_BY(mu_);  // of the held outcomes
  std::size_t held_ ABSL_GUARDED_BY(mu_) = 0;
  bool timer_armed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);  // a write the timer's thread failed
  std::thread timer_thread_;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_OUTCOME_BATCHER_H_
