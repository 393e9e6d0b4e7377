#include "worker/executor_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "worker/executor_channel.h"
#include "worker/executor_progress.h"
#include "worker/local_store_server.h"

extern char** environ;

namespace fleet::worker {
namespace {

// The executor finds its channel and its store connection here.
constexpr int kChildChannelFd = 3;
constexpr int kChildStoreFd = 4;
constexpr int kChildProgressFd = 5;

// How often a running task's limits (cancel, deadline, memory) are checked.
constexpr int kWatchIntervalMs = 100;

// Moves `fd` above the descriptors the child's are dup2'ed onto, so that
// one dup2 cannot overwrite the source of the next.
int AboveChildFds(int fd) {
  if (fd > kChildProgressFd) return fd;
  const int moved = fcntl(fd, F_DUPFD_CLOEXEC, kChildProgressFd + 1);
  close(fd);
  return moved;
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) {
    const int signal = WTERMSIG(status);
    const char* abbreviation = sigabbrev_np(signal);
    const std::string name = abbreviation != nullptr ? absl::StrCat("SIG", abbreviation)
                                                     : absl::StrCat("signal ", signal);
    if (signal == SIGKILL) {
      return absl::StrCat("executor was killed: ", name,
                          " (by the kernel's out-of-memory killer, or by another process)");
    }
    return absl::StrCat("executor crashed: ", name, " (", strsignal(signal), ")");
  }
  if (WIFEXITED(status)) {
    return absl::StrCat("executor exited with status ", WEXITSTATUS(status),
                        " (the task called exit, or the executor failed)");
  }
  return absl::StrCat("executor ended with wait status ", status);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExecutorProcess>> ExecutorProcess::Spawn(
    const ExecutorProcessOptions& options, LocalStoreServer* store_server) {
  int channel[2];
  int store[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) != 0) {
    return ErrnoStatus("socketpair for an executor channel");
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, store) != 0) {
    absl::Status error = ErrnoStatus("socketpair for an executor's store connection");
    close(channel[0]);
    close(channel[1]);
    return error;
  }
  absl::StatusOr<ExecutorProgress> progress = ExecutorProgress::Create();
  if (!progress.ok()) {
    for (int fd : {channel[0], channel[1], store[0], store[1]}) close(fd);
    return progress.status();
  }
  // What its tasks print comes back through these (task_output.h).
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    absl::Status error = ErrnoStatus("pipe2 for an executor's output");
    for (int fd : {channel[0], channel[1], store[0], store[1]}) close(fd);
    return error;
  }
  const int child_channel = AboveChildFds(channel[1]);
  const int child_store = AboveChildFds(store[1]);
  const int child_out = AboveChildFds(out_pipe[1]);
  const int child_err = AboveChildFds(err_pipe[1]);
  const int child_progress = AboveChildFds(progress->fd());

  std::vector<std::string> args = {
      options.binary,
      absl::StrCat("--channel_fd=", kChildChannelFd),
      absl::StrCat("--store_fd=", kChildStoreFd),
      absl::StrCat("--progress_fd=", kChildProgressFd),
      absl::StrCat("--worker_address=", options.worker_address),
      absl::StrCat("--parent_pid=", getpid()),
      absl::StrCat("--task_lib=", absl::StrJoin(options.task_libraries, ",")),
  };
  if (!options.log_level.empty()) args.push_back(absl::StrCat("--log_level=", options.log_level));
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  // Tasks can tell which worker runs them (getpid() is the executor's).
  std::vector<std::string> worker_variables = {
      absl::StrCat("FLEET_WORKER_PID=", getpid()),
      absl::StrCat("FLEET_WORKER_ADDRESS=", options.worker_address)};
  std::vector<char*> envp;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    if (!absl::StartsWith(*variable, "FLEET_WORKER_")) envp.push_back(*variable);
  }
  for (std::string& variable : worker_variables) envp.push_back(variable.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_channel, kChildChannelFd);
  posix_spawn_file_actions_adddup2(&actions, child_store, kChildStoreFd);
  posix_spawn_file_actions_adddup2(&actions, child_progress, kChildProgressFd);
  posix_spawn_file_actions_adddup2(&actions, child_out, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, child_err, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // The daemon blocks its stop signals for a waiting thread; the executor
  // starts with none blocked, in a process group of its own so that a
  // terminal's Ctrl-C reaches the daemon, which stops its executors.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaddset(&defaults, signal);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, options.binary.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  for (int fd : {child_channel, child_store, child_out, child_err, child_progress}) close(fd);
  progress->ForgetFd();  // closed above, maybe under another number
  if (spawned != 0) {
    for (int fd : {channel[0], store[0], out_pipe[0], err_pipe[0]}) close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start the executor ", options.binary, ": ", std::strerror(spawned),
                     "; install fleet-executor beside fleet-worker, pass --executor_binary, or "
                     "run tasks in the worker with --isolation=thread"));
  }
  std::function<void(v1::TaskOutput)> on_output = options.on_output;
  if (!on_output) on_output = [](v1::TaskOutput) {};
  std::unique_ptr<ExecutorProcess> process(new ExecutorProcess(
      pid, channel[0], std::move(*progress),
      std::make_unique<TaskOutputReader>(out_pipe[0], err_pipe[0], pid, std::move(on_output))));
  if (absl::Status served = store_server->ServeConnection(store[0]); !served.ok()) {
    process->Reap(true, served).IgnoreError();
    return served;
  }

  pollfd ready_poll{process->channel_, POLLIN, 0};
  const int waited =
      poll(&ready_poll, 1, static_cast<int>(absl::ToInt64Milliseconds(options.start_timeout)));
  v1::ExecutorReady ready;
  absl::Status status = waited > 0
                            ? process->reader_.Receive(&ready)
                            : absl::DeadlineExceededError(absl::StrCat(
                                  "not ready after ", absl::FormatDuration(options.start_timeout)));
  if (!status.ok()) {
    const bool gone = absl::IsCancelled(status);
    absl::Status why = process->Reap(!gone, gone ? std::nullopt : std::optional(status));
    return absl::FailedPreconditionError(
        absl::StrCat("the executor ", options.binary, " did not start: ", why.message(),
                     "; its own message is in this worker's log (stderr)"));
  }
  return process;
}

ExecutorProcess::~ExecutorProcess() {
  if (alive()) Reap(true, absl::OkStatus()).IgnoreError();
}

absl::Status ExecutorProcess::Send(const v1::ExecutorTask& task) {
  if (!alive()) return absl::FailedPreconditionError("the executor is not running");
  return AppendFramed(task, unsent_);
}

absl::Status ExecutorProcess::Flush() {
  if (unsent_.empty()) return absl::OkStatus();
  if (!alive()) return absl::FailedPreconditionError("the executor is not running");
  absl::Status sent = SendFrames(channel_, unsent_);
  unsent_.clear();
  // A channel broken for another reason than the executor's exit ends it
  // too, so that Await does not wait for an answer that cannot come.
  if (!sent.ok() && !absl::IsCancelled(sent)) kill(pid_, SIGKILL);
  return sent;
}

absl::StatusOr<v1::ExecutorOutcome> ExecutorProcess::Await(const Limits& limits) {
  if (!alive()) return absl::FailedPreconditionError("the executor is not running");
  // A failed write means the executor is gone or was killed: the channel
  // then reads as closed below, and Reap says how it ended.
  Flush().IgnoreError();
  while (true) {
    if (reader_.HasFrame()) {  // read with an earlier outcome: no wait
      v1::ExecutorOutcome outcome;
      absl::Status received = reader_.Receive(&outcome);
      if (!received.ok()) return Reap(true, received);
      ++answered_;
      return outcome;
    }
    int timeout_ms = kWatchIntervalMs;
    if (limits.deadline != absl::InfiniteFuture()) {
      const int64_t left = absl::ToInt64Milliseconds(limits.deadline - absl::Now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, kWatchIntervalMs));
    }
    // (Not a busy wait past the deadline while a held answer comes.)
    if (FinishedUnanswered() > 0) timeout_ms = std::max(timeout_ms, 1);
    pollfd readable{channel_, POLLIN, 0};
    const int ready = poll(&readable, 1, timeout_ms);
    if (ready < 0 && errno != EINTR) return Reap(true, ErrnoStatus("polling an executor channel"));
    if (ready > 0) {
      v1::ExecutorOutcome outcome;
      absl::Status received = reader_.Receive(&outcome);
      if (received.ok()) {
        ++answered_;
        return outcome;
      }
      if (absl::IsCancelled(received)) return Reap(false, std::nullopt);
      return Reap(true, received);
    }
    // A task that has finished, its answer held back for a moment, is
    // neither stopped nor timed out: the answer is on its way.
    if (FinishedUnanswered() > 0) continue;
    if (limits.cancelled != nullptr && limits.cancelled->load()) {
      return Reap(true, absl::CancelledError("the task was cancelled and its executor killed"));
    }
    if (absl::Now() >= limits.deadline) {
      return Reap(true, absl::DeadlineExceededError("the task ran past its timeout and its "
                                                    "executor was killed"));
    }
    if (limits.memory_limit_bytes > 0) {
      const std::optional<uint64_t> used = AnonymousBytes();
      if (used && *used > limits.memory_limit_bytes) {
        return Reap(true, absl::ResourceExhaustedError(absl::StrCat(
                              "executor used ", *used >> 20,
                              " MiB of anonymous memory, over its limit of ",
                              limits.memory_limit_bytes >> 20,
                              " MiB (--executor_memory_limit), and was killed")));
      }
    }
  }
}

std::optional<absl::Status> ExecutorProcess::ReapIfGoneWhileIdle() {
  if (!alive()) return std::nullopt;
  pollfd readable{channel_, POLLIN, 0};
  if (poll(&readable, 1, 0) <= 0) return std::nullopt;
  return Reap(true, std::nullopt);
}

absl::Status ExecutorProcess::Reap(bool kill_first, std::optional<absl::Status> why) {
  if (kill_first) kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = 0;
  close(channel_);
  channel_ = -1;
  if (why) return *why;
  return absl::AbortedError(DescribeExit(status));
}

std::optional<uint64_t> ExecutorProcess::AnonymousBytes() const {
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "RssAnon:")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, "kB");
    uint64_t kib = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kib)) return kib << 10;
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace fleet::worker
