// Runs assigned tasks on a fixed number of slots (threads in this process).
// For each task it gathers the arguments (inline, from the local store, or
// fetched from the worker that holds them), calls the registered function,
// seals the result in the store and reports the completion.
//
// Thread-safe.
#ifndef FLEET_WORKER_EXECUTOR_H_
#define FLEET_WORKER_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.pb.h"
#include "worker/argument_fetcher.h"
#include "worker/object_store.h"
#include "worker/scheduler_link.h"

namespace fleet::worker {

class Executor {
 public:
  struct Identity {
    WorkerId id;
    std::string address;
  };

  Executor(int slots, Identity identity, ObjectStore* store, SchedulerLink* link);
  ~Executor();  // stops; queued tasks are dropped

  void set_inline_threshold_bytes(uint64_t bytes) { inline_threshold_bytes_ = bytes; }
  void Enqueue(v1::TaskAssignment assignment);
  void Stop();

  int slots() const { return static_cast<int>(threads_.size()); }
  uint32_t running() const { return running_.load(); }
  uint32_t queued() const;
  // Bytes and objects fetched from other workers for arguments.
  uint64_t bytes_received() const { return fetcher_.bytes_received(); }
  uint64_t fetches() const { return fetcher_.fetches(); }
  uint64_t neighbour_reads() const { return fetcher_.neighbour_reads(); }

 private:
  void RunSlot();
  v1::TaskCompleted Execute(const v1::TaskAssignment& assignment);

  const Identity identity_;
  ObjectStore* const store_;
  SchedulerLink* const link_;
  ArgumentFetcher fetcher_;
  std::atomic<uint64_t> inline_threshold_bytes_{100 << 10};
  std::atomic<uint32_t> running_{0};

  mutable absl::Mutex mu_;
  std::deque<v1::TaskAssignment> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // last: they use everything above
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_H_
