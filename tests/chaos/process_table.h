// What /proc says about this host's processes: enough for the chaos suite to
// find a worker's executor processes and to check that none outlives the
// cluster.
#ifndef FLEET_TESTS_CHAOS_PROCESS_TABLE_H_
#define FLEET_TESTS_CHAOS_PROCESS_TABLE_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace fleet_chaos {

struct ProcessInfo {
  pid_t pid = -1;
  pid_t parent = -1;
  char state = '?';     // 'R', 'S', 'T' (stopped), 'Z' (zombie), ...
  std::string comm;     // the executable's name, at most 15 characters
  std::string cmdline;  // arguments joined by spaces; empty for a zombie

  bool zombie() const { return state == 'Z'; }
  std::string Describe() const;  // "pid 12 (fleet-executor, state S, parent 7): <cmdline>"
};

// The process `pid`, or nullopt when there is none (or it vanished while
// being read).
std::optional<ProcessInfo> ReadProcess(pid_t pid);

// Every process on the host, as far as they could be read.
std::vector<ProcessInfo> ListProcesses();

// The worker daemon `worker_pid`'s executor processes, zombies included.
std::vector<ProcessInfo> ExecutorsOf(pid_t worker_pid);

// Whether `pid` runs and has not exited (a zombie has).
bool IsRunning(pid_t pid);

}  // namespace fleet_chaos

#endif  // FLEET_TESTS_CHAOS_PROCESS_TABLE_H_
