// Runs a program as a child process and reads what it writes, for tests of
// command-line tools (the `fleet` CLI, chromedriver). Children are started
// with posix_spawn (never fork: gRPC threads may run in the test process)
// and are killed and reaped when their Subprocess is destroyed.
//
// Thread-compatible.
#ifndef FLEET_TESTS_TESTING_SUBPROCESS_H_
#define FLEET_TESTS_TESTING_SUBPROCESS_H_

#include <spawn.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fleet::test {

// posix_spawn attributes for a child that starts with no signal blocked and
// every signal's default action, whatever this test process blocks or
// ignores (a gRPC thread may ignore SIGPIPE).
class CleanSignalsSpawnAttributes {
 public:
  CleanSignalsSpawnAttributes();
  ~CleanSignalsSpawnAttributes() { posix_spawnattr_destroy(&attributes_); }

  CleanSignalsSpawnAttributes(const CleanSignalsSpawnAttributes&) = delete;
  CleanSignalsSpawnAttributes& operator=(const CleanSignalsSpawnAttributes&) = delete;

  const posix_spawnattr_t* get() const { return &attributes_; }

 private:
  posix_spawnattr_t attributes_;
};

struct CommandResult {
  int exit_code = -1;  // -1 when it was killed (by a signal, or at the timeout)
  bool timed_out = false;
  std::string out = {};  // stdout
  std::string err = {};  // stderr
};

// Runs `argv` (argv[0] is a path) to completion, with `env` (NAME=value)
// added to this process's environment (replacing variables of the same
// name). Kills it after `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::vector<std::string>& env = {});

class Subprocess {
 public:
  // Returns nullptr and sets `error` when the program cannot be started.
  static std::unique_ptr<Subprocess> Start(const std::vector<std::string>& argv,
                                           const std::vector<std::string>& env, std::string* error);
  ~Subprocess();  // SIGKILL and reap, if still running

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Reads its output until `done(stdout so far, stderr so far)` holds, both
  // streams end, or `timeout` passes; returns whether `done` held.
  bool WaitForOutput(const std::function<bool(const std::string&, const std::string&)>& done,
                     std::chrono::milliseconds timeout);
  // Reads until it exits (both streams end) or `timeout` passes, then reaps
  // it (killing it first at the timeout).
  CommandResult Finish(std::chrono::milliseconds timeout);

  // Reads what is already written, without waiting: a caller that does
  // not wait for output calls this now and then, so that a chatty child
  // never blocks on a full pipe.
  void ReadAvailable();

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  pid_t pid() const { return pid_; }

 private:
  Subprocess() = default;
  // One poll round of at most `wait`; false once both streams have ended.
  bool ReadSome(std::chrono::milliseconds wait);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

}  // namespace fleet::test

#endif  // FLEET_TESTS_TESTING_SUBPROCESS_H_
