// Runs assigned tasks on a fixed number of slots. For each task a slot
// gathers the arguments (inline, from the local store, in place in a
// same-host neighbour's store, or fetched from the worker that holds them),
// has the registered function called, makes sure the result is sealed in
// the store and reports the completion.
//
// Where the function runs is the isolation mode: in an executor process of
// the slot's own (the default; executor_process.h), so that a crash, exit
// or runaway allocation fails only that task, and a timeout or cancel can
// stop it; or on the slot's thread in this process (--isolation=thread:
// no process hop, no protection).
//
// Thread-safe.
#ifndef FLEET_WORKER_EXECUTOR_H_
#define FLEET_WORKER_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.pb.h"
#include "worker/argument_fetcher.h"
#include "worker/executor_process.h"
#include "worker/object_store.h"
#include "worker/scheduler_link.h"

namespace fleet::worker {

class Executor {
 public:
  struct Identity {
    WorkerId id;
    std::string address;
  };

  enum class Isolation { kProcess, kThread };

  struct Options {
    int slots = 1;
    Isolation isolation = Isolation::kProcess;
    // kProcess only: how to start executors, the server of their store
    // connections (must outlive the executor), and their memory limit.
    ExecutorProcessOptions process;
    LocalStoreServer* store_server = nullptr;
    uint64_t memory_limit_bytes = 0;  // anonymous memory per executor; 0: none
  };

  // With kProcess, starts every slot's executor process first, and fails
  // (FailedPrecondition, saying why) when one does not start.
  static absl::StatusOr<std::unique_ptr<Executor>> Start(Options options, Identity identity,
                                                         ObjectStore* store, SchedulerLink* link);
  ~Executor();  // stops; queued tasks are dropped

  void set_inline_threshold_bytes(uint64_t bytes) { inline_threshold_bytes_ = bytes; }
  void Enqueue(v1::TaskAssignment assignment);
  // Drops the task if queued; kills its executor if it runs (with
  // kProcess; a thread cannot be stopped, the call runs to its end). Its
  // completion, if any, reports CANCELLED. Unknown tasks are ignored.
  void Cancel(const TaskId& task);
  // Drops queued tasks, kills running executors, joins the slots.
  void Stop();

  int slots() const { return static_cast<int>(slots_.size()); }
  uint32_t running() const { return running_.load(); }
  uint32_t queued() const;
  // Executor processes that died (crashed, exited, killed) and were replaced.
  uint64_t executor_restarts() const { return executor_restarts_.load(); }
  // Bytes and objects fetched from other workers for arguments.
  uint64_t bytes_received() const { return fetcher_.bytes_received(); }
  uint64_t fetches() const { return fetcher_.fetches(); }
  uint64_t neighbour_reads() const { return fetcher_.neighbour_reads(); }

 private:
  struct Slot {
    std::unique_ptr<ExecutorProcess> process;  // kProcess; owned by the slot's thread
    std::atomic<bool> cancel{false};
    std::optional<TaskId> running;  // guarded by Executor::mu_
    std::thread thread;
  };
  // An argument's bytes and where they are.
  struct Argument {
    std::string_view bytes;
    const ArgumentBytes* held = nullptr;  // null: inline in the assignment
    ObjectId id;
  };

  Executor(Options options, Identity identity, ObjectStore* store, SchedulerLink* link);

  void RunSlot(Slot& slot);
  v1::TaskCompleted Execute(const v1::TaskAssignment& assignment, Slot& slot);
  // Calls the function on this thread, its result serialized into the store.
  std::optional<v1::TaskFailure> CallHere(const v1::TaskSpec& spec,
                                          const std::vector<Argument>& args,
                                          const ObjectId& result_id, v1::TaskCompleted& completed);
  // Replaces the slot's dead executor process.
  absl::Status StartExecutor(Slot& slot);
  // Has the slot's executor process call it, starting one first if needed.
  std::optional<v1::TaskFailure> CallInExecutor(const v1::TaskSpec& spec,
                                                const std::vector<Argument>& args,
                                                const ObjectId& result_id, Slot& slot,
                                                v1::TaskCompleted& completed);

  const Options options_;
  const Identity identity_;
  ObjectStore* const store_;
  SchedulerLink* const link_;
  ArgumentFetcher fetcher_;
  std::atomic<uint64_t> inline_threshold_bytes_{100 << 10};
  std::atomic<uint32_t> running_{0};
  std::atomic<uint64_t> executor_restarts_{0};

  mutable absl::Mutex mu_;
  std::deque<v1::TaskAssignment> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Slot>> slots_;  // last: their threads use everything above
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_H_
