// How far an executor has got through the tasks sent to it, counted in a
// page of memory it shares with its daemon: the daemon still reads it after
// the executor died, and the executor pays no write for it. The executor
// holds back the answers of tiny tasks for a moment (outcome_batcher.h), so
// when it dies its channel alone cannot say which task was running: these
// counters can.
#ifndef FLEET_WORKER_EXECUTOR_PROGRESS_H_
#define FLEET_WORKER_EXECUTOR_PROGRESS_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"

namespace fleet::worker {

class ExecutorProgress {
 public:
  // A new page (a memfd the executor inherits), both counters 0.
  static absl::StatusOr<ExecutorProgress> Create();
  // The executor's side: maps the page at `fd`, which it then closes.
  static absl::StatusOr<ExecutorProgress> Adopt(int fd);

  ExecutorProgress(ExecutorProgress&& other) noexcept;
  ExecutorProgress& operator=(ExecutorProgress&& other) noexcept;
  ~ExecutorProgress();

  // The page's descriptor (the daemon's side, for the executor to inherit);
  // -1 once adopted.
  int fd() const { return fd_; }
  // After the caller closed fd() (or its duplicate) itself.
  void ForgetFd() { fd_ = -1; }

  // Executor side, before and after each task.
  void TaskStarted() { counters_->started.fetch_add(1, std::memory_order_release); }
  void TaskFinished() { counters_->finished.fetch_add(1, std::memory_order_release); }

  uint64_t started() const { return counters_->started.load(std::memory_order_acquire); }
  uint64_t finished() const { return counters_->finished.load(std::memory_order_acquire); }

 private:
  struct Counters {
    std::atomic<uint64_t> started{0};
    std::atomic<uint64_t> finished{0};
  };
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared between processes");

  ExecutorProgress(int fd, Counters* counters) : fd_(fd), counters_(counters) {}

  int fd_ = -1;
  Counters* counters_ = nullptr;  // mapped
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_PROGRESS_H_
