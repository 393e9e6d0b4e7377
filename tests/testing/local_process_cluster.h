// LocalProcessCluster: a real fleet cluster for integration tests. It starts
// the fleet-scheduler binary and N fleet-worker binaries as child processes
// on 127.0.0.1 with port 0, waits until the scheduler's /status lists every
// worker, and stops them all when destroyed.
//
//   fleet::test::LocalProcessCluster cluster({.workers = 2, .slots_per_worker = 2,
//                                             .task_libraries = {FLEET_TEST_TASK_LIB}});
//   ASSERT_TRUE(cluster.Start());
//   fleet::Init({.address = cluster.scheduler_address()});
//
// Each daemon's stdout and stderr go to a file in a per-cluster temporary
// directory. When the current test has failed, the destructor prints those
// files and keeps the directory; otherwise it removes it (set
// FLEET_TEST_KEEP_LOGS=1 in the environment to keep it anyway).
//
// Children are started with posix_spawn (never fork: gRPC threads may already
// run in the test process) and, where util-linux's setpriv is installed, with
// a parent-death signal, so a test process killed by a ctest timeout leaves
// no daemon behind.
//
// Thread-compatible: create, start, change (KillWorker, AddWorker, ...) and
// stop it on the test's main thread; the const accessors may be called from
// any thread while the main thread does not change it.
#ifndef FLEET_TESTS_TESTING_LOCAL_PROCESS_CLUSTER_H_
#define FLEET_TESTS_TESTING_LOCAL_PROCESS_CLUSTER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fleet::test {

// Polls `condition` every `interval` until it is true or `timeout` passes;
// returns its last value. Never sleeps past the deadline.
bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval = std::chrono::milliseconds(20));

// Prints every thread's stack of process `pid` (gdb) to stderr.
void DumpThreadStacks(pid_t pid, const std::string& name);
// From now on std::terminate first prints this process's thread stacks, so
// that an abort ("terminate called without an active exception") says
// which thread and object caused it.
void DumpStacksOnTerminate();

struct ClusterOptions {
  int workers = 2;
  int slots_per_worker = 2;
  // Passed to every worker as --task_lib.
  std::vector<std::string> task_libraries = {};
  // Extra flags for every worker, e.g. "--store_memory=268435456".
  std::vector<std::string> worker_flags = {};
  // Extra flags for the scheduler, e.g. "--heartbeat_timeout=2s".
  std::vector<std::string> scheduler_flags = {};
  // How long Start waits for the port files and for every worker to show
  // up in /status.
  std::chrono::milliseconds start_timeout{20'000};
  // How long the destructor waits after SIGTERM before it sends SIGKILL.
  std::chrono::milliseconds stop_timeout{5'000};
  // Directory of fleet-scheduler and fleet-worker; empty means the build's
  // bin directory (or $FLEET_BIN_DIR when set).
  std::string bin_dir = {};
  std::string log_level = "info";
};

class LocalProcessCluster {
 public:
  explicit LocalProcessCluster(ClusterOptions options);
  // Stops every process still running (see Stop).
  ~LocalProcessCluster();

  LocalProcessCluster(const LocalProcessCluster&) = delete;
  LocalProcessCluster& operator=(const LocalProcessCluster&) = delete;

  // Starts the scheduler, waits for its port files, starts the workers and
  // waits until /status lists all of them. On failure the result's message
  // says what went wrong and includes the daemons' logs. REQUIRES: called once.
  ::testing::AssertionResult Start();

  // Starts one more worker, with the same flags, as worker num_workers() - 1
  // (so a test can replace one it killed), and waits up to start_timeout
  // until /status lists it. On failure the message includes the logs.
  // REQUIRES: Start succeeded; called on the thread that called Start (the
  // workers' parent-death signal follows the thread that started them).
  ::testing::AssertionResult AddWorker();

  // "127.0.0.1:<grpc port>". REQUIRES: Start succeeded.
  std::string scheduler_address() const;
  int port() const { return port_; }
  int http_port() const { return http_port_; }
  int num_workers() const { return static_cast<int>(workers_.size()); }
  // The pid of worker `i` (the fleet-worker process itself); -1 once it has
  // been reaped.
  pid_t worker_pid(int i) const;
  pid_t scheduler_pid() const { return scheduler_.pid; }
  const std::string& temp_dir() const { return temp_dir_; }

  // GET /status, parsed. Throws std::runtime_error when the request fails or
  // the body is not JSON (gtest reports the exception as a test failure).
  nlohmann::json Status() const;
  // As Status, but nullopt instead of throwing.
  std::optional<nlohmann::json> TryStatus() const;
  // Polls /status until `condition` holds for it or `timeout` passes.
  // Returns whether it held; `last`, when given, receives the last status
  // read (null when none could be read).
  bool WaitForStatus(const std::function<bool(const nlohmann::json&)>& condition,
                     std::chrono::milliseconds timeout, nlohmann::json* last = nullptr) const;
  // GET `path` on the HTTP port; returns the HTTP status code (or -1 when
  // the request failed) and stores the body in `body`.
  int HttpGet(const std::string& path, std::string* body) const;

  // SIGKILLs worker `i` and reaps it. Its log stays in the temp directory.
  void KillWorker(int i);

  // Sends SIGTERM to worker `i` (or the scheduler) and waits up to `timeout`
  // for it to exit. Returns its wait status (see DescribeExit), or nullopt
  // when it did not exit in time, in which case it has been SIGKILLed.
  std::optional<int> TerminateWorker(int i, std::chrono::milliseconds timeout);
  std::optional<int> TerminateScheduler(std::chrono::milliseconds timeout);
  // SIGKILLs the scheduler and reaps it; then starts it again with the same
  // flags on the same ports, and waits until it answers /status. On
  // failure the message includes the logs. REQUIRES: Start succeeded.
  ::testing::AssertionResult KillAndRestartScheduler();
  // Waits up to `timeout` for worker `i` to exit on its own; returns its wait
  // status, or nullopt when it is still running.
  std::optional<int> WaitForWorkerExit(int i, std::chrono::milliseconds timeout);
  // "exited with code 0", "killed by signal 9 (Killed)", ...
  static std::string DescribeExit(int wait_status);

  // SIGTERM to every running daemon, SIGKILL to those still alive after
  // stop_timeout, and waitpid for all. Idempotent.
  void Stop();

  // Every daemon's log, each under a header naming the file; at most
  // `max_bytes_each` from the end of each file.
  std::string Logs(std::size_t max_bytes_each = 64 << 10) const;

 private:
  struct Process {
    std::string name;                // "scheduler", "worker-0", ...
    std::string log_path;            // stdout and stderr
    pid_t pid = -1;                  // -1 when not running (never started or reaped)
    std::optional<int> exit_status;  // wait status once reaped
  };

  ::testing::AssertionResult Fail(const std::string& what) const;
  std::optional<int> Terminate(Process& process, std::chrono::milliseconds timeout);
  // Appends a worker to workers_ and spawns it; does not wait for it to join.
  bool SpawnWorker(std::string* error);
  bool Spawn(Process& process, const std::string& binary, const std::vector<std::string>& args,
             std::string* error);
  // Reaps `process` if it has exited; returns whether it is still running.
  bool CheckAlive(Process& process);
  // Prints every thread's stack of a process that would not stop (gdb).
  void DumpStacks(const Process& process) const;
  // Waits up to `timeout` for every running process to exit; true when all did.
  bool ReapAll(std::chrono::milliseconds timeout);
  std::string ReadPortFile(const std::string& path) const;

  const ClusterOptions options_;
  std::string bin_dir_;
  std::string temp_dir_;
  Process scheduler_;
  std::vector<std::string> scheduler_flags_;  // all but the ports
  std::vector<Process> workers_;
  int port_ = 0;
  int http_port_ = 0;
  bool started_ = false;
  // Set when a failure message already carried the logs, so the destructor
  // does not print them twice.
  mutable bool logs_reported_ = false;
};

}  // namespace fleet::test

#endif  // FLEET_TESTS_TESTING_LOCAL_PROCESS_CLUSTER_H_
