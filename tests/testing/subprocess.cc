#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace fleet::test {
namespace {

using Clock = std::chrono::steady_clock;

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

CleanSignalsSpawnAttributes::CleanSignalsSpawnAttributes() {
  posix_spawnattr_init(&attributes_);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes_, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attributes_, &all);
  posix_spawnattr_setflags(&attributes_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

std::unique_ptr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                              const std::vector<std::string>& env,
                                              std::string* error) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    return nullptr;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    *error = std::string("pipe: ") + std::strerror(errno);
    close(out_pipe[0]);
    close(out_pipe[1]);
    return nullptr;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  const CleanSignalsSpawnAttributes attributes;

  std::vector<std::string> args = argv;
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  arg_ptrs.push_back(nullptr);
  std::vector<std::string> envs;
  // `env` replaces inherited variables of the same name: getenv finds the
  // first of duplicates.
  auto overridden = [&env](const char* inherited) {
    for (const std::string& e : env) {
      const std::size_t eq = e.find('=');
      if (eq != std::string::npos && std::strncmp(inherited, e.c_str(), eq + 1) == 0) return true;
    }
    return false;
  };
  for (char** e = environ; *e != nullptr; ++e) {
    if (!overridden(*e)) envs.emplace_back(*e);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> env_ptrs;
  for (std::string& e : envs) env_ptrs.push_back(e.data());
  env_ptrs.push_back(nullptr);

  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, args[0].c_str(), &actions, attributes.get(), arg_ptrs.data(),
                  env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    *error = "posix_spawn of " + args[0] + " failed: " + std::strerror(rc);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return nullptr;
  }
  std::unique_ptr<Subprocess> process(new Subprocess());
  process->pid_ = pid;
  process->out_fd_ = out_pipe[0];
  process->err_fd_ = err_pipe[0];
  return process;
}

Subprocess::~Subprocess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  CloseFd(out_fd_);
  CloseFd(err_fd_);
}

bool Subprocess::ReadSome(std::chrono::milliseconds wait) {
  pollfd fds[2];
  int n = 0;
  for (int fd : {out_fd_, err_fd_}) {
    if (fd >= 0) fds[n++] = pollfd{.fd = fd, .events = POLLIN, .revents = 0};
  }
  if (n == 0) return false;
  if (poll(fds, n, static_cast<int>(wait.count())) <= 0) return true;
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    char buffer[4096];
    const ssize_t got = read(fds[i].fd, buffer, sizeof(buffer));
    const bool is_out = fds[i].fd == out_fd_;
    if (got > 0) {
      (is_out ? out_ : err_).append(buffer, static_cast<std::size_t>(got));
    } else if (got == 0 || errno != EINTR) {
      CloseFd(is_out ? out_fd_ : err_fd_);
    }
  }
  return out_fd_ >= 0 || err_fd_ >= 0;
}

void Subprocess::ReadAvailable() {
  for (;;) {
    const std::size_t before = out_.size() + err_.size();
    if (!ReadSome(std::chrono::milliseconds(0)) || out_.size() + err_.size() == before) return;
  }
}

bool Subprocess::WaitForOutput(
    const std::function<bool(const std::string&, const std::string&)>& done,
    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done(out_, err_)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    if (!ReadSome(std::min(left, std::chrono::milliseconds(100)))) return done(out_, err_);
  }
  return true;
}

CommandResult Subprocess::Finish(std::chrono::milliseconds timeout) {
  CommandResult result;
  const bool ended = WaitForOutput(
      [this](const std::string&, const std::string&) { return out_fd_ < 0 && err_fd_ < 0; },
      timeout);
  if (!ended) {
    result.timed_out = true;
    kill(pid_, SIGKILL);
  }
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = out_;
  result.err = err_;
  return result;
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::vector<std::string>& env) {
  std::string error;
  std::unique_ptr<Subprocess> process = Subprocess::Start(argv, env, &error);
  if (process == nullptr) {
    CommandResult failed;
    failed.err = error;
    return failed;
  }
  return process->Finish(timeout);
}

}  // namespace fleet::test
