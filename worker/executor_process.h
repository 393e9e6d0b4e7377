// One executor process (fleet-executor, --isolation=process) as the worker
// daemon sees it: spawned with posix_spawn, handed one task at a time over
// its channel (executor_channel.h), watched while it runs, and killed when
// the task runs past its deadline, past its memory limit or is cancelled.
// When the process dies, Run says how ("executor crashed: SIGSEGV"); the
// daemon, its store and its other executors carry on, and the store
// connection's pins and unsealed objects die with the process.
//
// Thread-compatible: each belongs to one executor slot.
#ifndef FLEET_WORKER_EXECUTOR_PROCESS_H_
#define FLEET_WORKER_EXECUTOR_PROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fleet/v1/executor.pb.h"
#include "fleet/v1/scheduler.pb.h"
#include "worker/executor_channel.h"
#include "worker/executor_progress.h"
#include "worker/task_output.h"

namespace fleet::worker {

class LocalStoreServer;

struct ExecutorProcessOptions {
  std::string binary;  // path of fleet-executor
  std::vector<std::string> task_libraries;
  std::string worker_address;  // the daemon's advertised address
  std::string log_level;
  // How long a new executor may take to load its task libraries.
  absl::Duration start_timeout = absl::Seconds(60);
  // Each line its tasks print (see task_output.h).
  std::function<void(v1::TaskOutput)> on_output;
};

class ExecutorProcess {
 public:
  // Starts an executor whose store connection `store_server` serves, and
  // waits until it has loaded its task libraries. Errors say why it could
  // not start (a missing binary, a library that does not load).
  static absl::StatusOr<std::unique_ptr<ExecutorProcess>> Spawn(
      const ExecutorProcessOptions& options, LocalStoreServer* store_server);
  ~ExecutorProcess();  // kills the process if it still runs, and reaps it
  ExecutorProcess(const ExecutorProcess&) = delete;
  ExecutorProcess& operator=(const ExecutorProcess&) = delete;

  struct Limits {
    absl::Time deadline = absl::InfiniteFuture();
    uint64_t memory_limit_bytes = 0;  // of anonymous memory (not the store's pages); 0: none
    const std::atomic<bool>* cancelled = nullptr;
  };

  // Queues `task` on the executor, which runs its tasks one at a time in
  // the order sent. Tasks queued together go in one write, at the next
  // Flush or Await. An error means the channel broke: Await says why.
  absl::Status Send(const v1::ExecutorTask& task);
  absl::Status Flush();
  // Waits for the outcome of the oldest task sent and not yet answered,
  // enforcing `limits` on it. An error means the process is gone, and says
  // why: Aborted (it crashed or exited), DeadlineExceeded,
  // ResourceExhausted (memory limit) or Cancelled (it was killed for that
  // reason).
  absl::StatusOr<v1::ExecutorOutcome> Await(const Limits& limits);

  // For an executor with no task sent: whether it has gone (killed from
  // outside, say) and, if so, reaps it and returns how it ended. An idle
  // executor never writes, so anything on its channel means it is gone.
  std::optional<absl::Status> ReapIfGoneWhileIdle();

  // Of the tasks sent and not answered, how many the executor has finished
  // (their answers held back, or lost with it) and whether it was running
  // the next one. Still readable once it is gone.
  uint64_t FinishedUnanswered() const { return progress_.finished() - answered_; }
  bool RunningATask() const { return progress_.started() > progress_.finished(); }

  pid_t pid() const { return pid_; }
  bool alive() const { return pid_ > 0; }

 private:
  ExecutorProcess(pid_t pid, int channel, ExecutorProgress progress,
                  std::unique_ptr<TaskOutputReader> output)
      : pid_(pid),
        channel_(channel),
        reader_(channel),
        progress_(std::move(progress)),
        output_(std::move(output)) {}

  // Kills the process (if `kill_first`), reaps it, and returns `why` or,
  // for a process that died on its own, how it died.
  absl::Status Reap(bool kill_first, std::optional<absl::Status> why);
  // Anonymous resident memory of the process, from /proc; nullopt when it
  // cannot be read.
  std::optional<uint64_t> AnonymousBytes() const;

  pid_t pid_;  // 0 once reaped
  int channel_;
  FramedReader reader_;                       // of channel_
  std::string unsent_;                        // frames of tasks queued by Send
  ExecutorProgress progress_;                 // shared with the process
  uint64_t answered_ = 0;                     // outcomes Await returned
  std::unique_ptr<TaskOutputReader> output_;  // after the process: joined once it is gone
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_PROCESS_H_
