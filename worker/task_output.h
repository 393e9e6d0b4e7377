// What tasks print, from an executor process to the client that owns the
// task. The executor's stdout and stderr are pipes the daemon reads; the
// executor's TaskOutputRelay (task_output_relay.h) writes a marker line
// naming a task before that task's output, so every line after it is that
// task's (until the next marker), however the pipes' reads and the task's
// completion interleave.
#ifndef FLEET_WORKER_TASK_OUTPUT_H_
#define FLEET_WORKER_TASK_OUTPUT_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <thread>

#include "fleet/v1/scheduler.pb.h"

namespace fleet::worker {

// Starts a marker line: the task's id in hex follows, then a newline. A
// task is unlikely to print this control character first on a line, and if
// it does the line only loses its attribution.
inline constexpr char kTaskOutputMarker = '\x1e';

// Daemon side: reads an executor's stdout and stderr pipes on a thread of
// its own and hands each line (attributed to its task) to `on_line`.
class TaskOutputReader {
 public:
  using OnLine = std::function<void(v1::TaskOutput)>;

  // Takes the read ends of the pipes.
  TaskOutputReader(int stdout_fd, int stderr_fd, pid_t pid, OnLine on_line);
  // Stops reading, even if something the task started keeps the pipes open.
  ~TaskOutputReader();
  TaskOutputReader(const TaskOutputReader&) = delete;
  TaskOutputReader& operator=(const TaskOutputReader&) = delete;

 private:
  struct Stream {
    int fd;
    bool is_stderr;
    std::string pending;  // an unfinished line
    std::string task_id;  // whose output this is, from the last marker
  };

  void Run();
  void Consume(Stream& stream, const char* data, std::size_t size);
  void Emit(Stream& stream, std::string line);

  Stream out_;
  Stream err_;
  const pid_t pid_;
  const OnLine on_line_;
  const int stop_fd_;  // an eventfd
  std::thread thread_;  // last: it uses everything above
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_TASK_OUTPUT_H_
