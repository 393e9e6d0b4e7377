// Executor side of what tasks print (task_output.h has the daemon's side).
// The relay takes over the executor's stdout and stderr: they become pipes
// of its own, and it passes what they receive on to the daemon's pipes,
// each task's output behind a marker line naming the task. The relay reads
// its pipes itself, so it knows whether a task printed anything: a task
// that printed nothing costs one poll, where a marker written for every
// task on both pipes cost two writes (a third of an executor's CPU under
// no-op tasks) and the daemon's reader a wake-up every few milliseconds.
#ifndef FLEET_WORKER_TASK_OUTPUT_RELAY_H_
#define FLEET_WORKER_TASK_OUTPUT_RELAY_H_

#include <array>
#include <cstdint>
#include <memory>
#include <streambuf>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace fleet::worker {

class TaskOutputRelay {
 public:
  // Takes over descriptors `stdout_fd` and `stderr_fd` (the daemon's
  // pipes; 1 and 2 in an executor): what they led to becomes the relay's
  // destination, and they lead into the relay's pipes from now on. At most
  // one relay per process: it drains its pipes when the process gets a
  // fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) or calls exit,
  // so that the last lines of a task that crashes or exits still reach the
  // daemon.
  static absl::StatusOr<std::unique_ptr<TaskOutputRelay>> Start(int stdout_fd = 1,
                                                                int stderr_fd = 2);
  // Passes on what is left, and points the descriptors back at the
  // daemon's pipes.
  ~TaskOutputRelay();
  TaskOutputRelay(const TaskOutputRelay&) = delete;
  TaskOutputRelay& operator=(const TaskOutputRelay&) = delete;

  // What is printed from now on is `task_id`'s (binary, up to 32 bytes).
  void TaskStarted(std::string_view task_id);
  // Flushes stdio's buffers and passes on what the task printed, before
  // its answer goes to the daemon.
  void TaskEnded();

 private:
  struct Stream {
    int taken_fd;               // stdout_fd or stderr_fd
    int read_fd;                // the relay's pipe
    int daemon_fd;              // what taken_fd led to
    uint64_t marked = 0;        // the task whose marker came last (0: none)
    bool at_line_start = true;  // the last byte passed on ended a line
  };
  static constexpr std::size_t kMaxTaskIdBytes = 32;
  static constexpr std::size_t kMaxMarkerBytes = 2 + 2 * kMaxTaskIdBytes;

  TaskOutputRelay(Stream out, Stream err, int stop_fd);
  void Run();
  // Passes on what both pipes hold; returns the bytes read.
  std::size_t ForwardBothLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Passes on what `stream`'s pipe holds, reading into `buffer`; returns
  // the bytes read. The fatal-signal handler calls it without the lock.
  // Async-signal-safe.
  std::size_t Forward(Stream& stream, char* buffer,
                      std::size_t size) ABSL_NO_THREAD_SAFETY_ANALYSIS;
  friend void DrainOnFatalSignal(int signal);
  friend void DrainAtExit();

  absl::Mutex mu_;
  Stream out_ ABSL_GUARDED_BY(mu_);
  Stream err_ ABSL_GUARDED_BY(mu_);
  // Makes the running task's marker line, unless made already. Async-signal-safe.
  void MakeMarker() ABSL_NO_THREAD_SAFETY_ANALYSIS;

  // The running task: a count of tasks started, and its id, of which the
  // marker line is made only when its output is passed on (most tasks print
  // nothing: making it for each was a tenth of an executor's instructions
  // under no-op tasks). Read without the lock only by the fatal-signal
  // handler.
  uint64_t task_ ABSL_GUARDED_BY(mu_) = 0;
  char task_id_[kMaxTaskIdBytes] ABSL_GUARDED_BY(mu_);
  std::size_t task_id_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t marker_task_ ABSL_GUARDED_BY(mu_) = 0;  // the task marker_ was made for
  char marker_[kMaxMarkerBytes] ABSL_GUARDED_BY(mu_);
  std::size_t marker_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // std::cout's and std::cerr's buffers when they write straight into
  // stdio's (synced with stdio, the default; null otherwise): those need
  // no flush of their own.
  const std::streambuf* const synced_cout_;
  const std::streambuf* const synced_cerr_;
  const std::array<int, 2> read_fds_;  // out_'s and err_'s, fixed: polled without the lock
  const int stop_fd_;                  // an eventfd
  std::thread thread_;                 // started last: it uses everything above
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_TASK_OUTPUT_RELAY_H_
