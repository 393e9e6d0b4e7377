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

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "fleet/v1/executor.pb.h"
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
  // Takes what `assignment` holds, and leaves it the room of an assignment
  // done before (Clear keeps a message's strings and elements), for the
  // next one read to be parsed into without allocating.
  void Enqueue(v1::TaskAssignment& assignment);
  // Enqueue, only when a slot waits idle with nothing queued (the task
  // starts at once); otherwise returns false and leaves `assignment` as
  // it was. For tasks handed over by their client (worker/direct_tasks.h),
  // which must not wait behind the scheduler's.
  bool EnqueueIfIdle(v1::TaskAssignment& assignment);
  // Drops the task if queued; kills its executor if it runs (with
  // kProcess; a thread cannot be stopped, the call runs to its end). Its
  // completion, if any, reports CANCELLED. Unknown tasks are ignored.
  void Cancel(const TaskId& task);
  // Makes this worker's store hold a primary copy of `id`, fetched from
  // the worker at `holder_address` (which is leaving) unless it is here.
  absl::Status CopyObject(const ObjectId& id, const std::string& holder_address) {
    return fetcher_.Copy(id, holder_address);
  }
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
  // An argument's bytes and where they are.
  struct Argument {
    std::string_view bytes;
    const ArgumentBytes* held = nullptr;  // null: inline in the assignment
    ObjectId id;
  };
  // A task with its arguments gathered: `held` keeps their bytes readable
  // (pinned in a store, or a private copy) until the call is over.
  struct Prepared {
    v1::TaskAssignment assignment;
    TaskId task;
    std::vector<ArgumentBytes> held;  // reserved up front: `args` points into it
    std::vector<Argument> args;
    absl::Time started = absl::InfiniteFuture();  // when it began to run
    std::size_t message_bytes = 0;  // of its ExecutorTask, once sent
  };
  struct Slot {
    std::unique_ptr<ExecutorProcess> process;  // kProcess; owned by the slot's thread
    std::atomic<bool> cancel{false};           // stop the task running now
    // Guarded by Executor::mu_: the task the slot's executor runs, the
    // tasks sent to it, and those of them cancelled while waiting there.
    std::optional<TaskId> running;
    absl::flat_hash_set<TaskId> in_flight;
    absl::flat_hash_set<TaskId> cancelled;
    // Guarded by Executor::mu_: set while the slot's thread waits with
    // nothing sent, when Enqueue may send a task straight to the executor
    // (one whose arguments are all in the assignment), so that the task
    // does not wait for the thread to wake; and that task, for the thread
    // to take on. With kThread: set while the thread waits for work.
    bool idle = false;
    std::optional<Prepared> sent_directly;
    // Slot thread only. Starts high: nothing is pipelined until tasks are
    // seen to be short.
    double mean_run_us = 1e6;
    // Each task's message to the executor is built here, in the room the
    // last one left: by the slot's thread, or by Enqueue while that thread
    // waits idle (see `idle`).
    v1::ExecutorTask task_scratch;
    std::thread thread;
  };

  Executor(Options options, Identity identity, ObjectStore* store, SchedulerLink* link);

  // Thread isolation: one task at a time, called on the slot's thread.
  void RunThreadSlot(Slot& slot);
  // Process isolation: tasks are sent to the slot's executor ahead of time
  // (a pipeline, while they are short) and answered in order.
  void RunProcessSlot(Slot& slot);

  // Sends `assignment` to the idle `slot`'s executor, and returns true, if
  // its arguments are all inline and it goes; otherwise leaves it as it was.
  bool SendDirectly(Slot& slot, v1::TaskAssignment& assignment)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills prepared.held/args; returns the failure when an argument cannot
  // be obtained.
  std::optional<v1::TaskFailure> Gather(Prepared& prepared);
  // The completion of `prepared`'s task: `failure` (with where and what),
  // or the results `completed` already describes.
  v1::TaskCompleted Complete(const v1::TaskAssignment& assignment,
                             std::optional<v1::TaskFailure> failure,
                             v1::TaskCompleted completed = {}) const;
  // Calls the function on this thread, its result serialized into the store.
  std::optional<v1::TaskFailure> CallHere(const Prepared& prepared, v1::TaskCompleted& completed);
  // Fills in `task` (cleared first) to have an executor call it.
  void FillExecutorTask(const Prepared& prepared, v1::ExecutorTask& task) const;
  // Keeps a finished task's assignment, cleared, for Enqueue to hand back.
  void RecycleAssignment(v1::TaskAssignment& assignment) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives `emptied` (moved from) the room of a spare, if there is one.
  void TakeSpareAssignment(v1::TaskAssignment& emptied) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Turns an executor's answer into the task's results (storing a small
  // one here).
  std::optional<v1::TaskFailure> TakeOutcome(const Prepared& prepared,
                                             v1::ExecutorOutcome& outcome,
                                             v1::TaskCompleted& completed);
  // How many tasks the slot keeps sent to its executor: enough to cover
  // ~2 ms of work, so that short tasks do not wait for a wake-up each.
  static std::size_t PipelineDepth(const Slot& slot);
  // Replaces the slot's dead executor process.
  absl::Status StartExecutor(Slot& slot);

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
  // Finished tasks' assignments, cleared (RecycleAssignment); at most
  // kMaxSpareAssignments.
  static constexpr std::size_t kMaxSpareAssignments = 1024;
  std::vector<v1::TaskAssignment> spare_assignments_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Slot>> slots_;  // last: their threads use everything above
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_H_
