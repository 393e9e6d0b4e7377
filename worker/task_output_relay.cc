#include "worker/task_output_relay.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>

#if defined(__GLIBCXX__)
#include <ext/stdio_sync_filebuf.h>
#endif

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "worker/task_output.h"

namespace fleet::worker {
namespace {

// The relay waits this long between reads unless the last one brought at
// least kBusyReadBytes, so that a task printing line by line does not wake
// it for each line (as the daemon's reader, task_output.cc).
constexpr int kGatherMs = 2;
constexpr std::size_t kBusyReadBytes = 16 << 10;
constexpr std::size_t kReadBytes = 64 << 10;

// `buffer` when it is the one libstdc++ gives a standard stream synced
// with stdio, which writes straight into stdio's buffer; null otherwise.
const std::streambuf* SyncedWithStdio(const std::streambuf* buffer) {
#if defined(__GLIBCXX__)
  if (dynamic_cast<const __gnu_cxx::stdio_sync_filebuf<char>*>(buffer) != nullptr) return buffer;
#endif
  return nullptr;
}

// Writes all of `parts`; gives up when nobody reads (the output is lost,
// the task is not). Async-signal-safe.
void WriteAll(int fd, iovec* parts, int count) {
  while (count > 0) {
    const ssize_t written = writev(fd, parts, count);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    std::size_t left = static_cast<std::size_t>(written);
    while (count > 0 && left >= parts->iov_len) {
      left -= parts->iov_len;
      ++parts;
      --count;
    }
    if (count > 0) {
      parts->iov_base = static_cast<char*>(parts->iov_base) + left;
      parts->iov_len -= left;
    }
  }
}

// The relay that the handlers below drain: the first one started.
std::atomic<TaskOutputRelay*> process_relay{nullptr};
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

}  // namespace

// Passes on what a crashing task printed last, then dies of the signal.
// Without the lock: the thread that holds it may be the one crashing.
void DrainOnFatalSignal(int signal) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (TaskOutputRelay* relay = process_relay.load()) {
    char buffer[4096];
    relay->Forward(relay->out_, buffer, sizeof(buffer));
    relay->Forward(relay->err_, buffer, sizeof(buffer));
  }
  // The handler was reset to the default action (SA_RESETHAND): this ends
  // the process with `signal`, whether it came from a fault or from raise.
  raise(signal);
}

// A task that calls exit: what it printed last is passed on before the
// process ends (it never returns to the executor's loop).
void DrainAtExit() {
  std::fflush(stdout);  // exit flushes stdio only after its handlers
  std::fflush(stderr);
  if (TaskOutputRelay* relay = process_relay.load()) {
    absl::MutexLock lock(&relay->mu_);
    relay->ForwardBothLocked();
  }
}

absl::StatusOr<std::unique_ptr<TaskOutputRelay>> TaskOutputRelay::Start(int stdout_fd,
                                                                        int stderr_fd) {
  Stream streams[2] = {{stdout_fd, -1, -1}, {stderr_fd, -1, -1}};
  auto undo = [&streams](int taken) {
    for (int i = 0; i < 2; ++i) {
      Stream& s = streams[i];
      if (i < taken) dup2(s.daemon_fd, s.taken_fd);
      for (int fd : {s.read_fd, s.daemon_fd}) {
        if (fd >= 0) close(fd);
      }
    }
  };
  for (int i = 0; i < 2; ++i) {
    Stream& s = streams[i];
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
      absl::Status error = ErrnoStatus("pipe2 for the executor's output relay");
      undo(i);
      return error;
    }
    s.read_fd = pipe_fds[0];
    s.daemon_fd = fcntl(s.taken_fd, F_DUPFD_CLOEXEC, 3);
    if (s.daemon_fd < 0 || fcntl(s.read_fd, F_SETFL, O_NONBLOCK) != 0 ||
        dup2(pipe_fds[1], s.taken_fd) < 0) {
      absl::Status error = ErrnoStatus(absl::StrCat("taking over descriptor ", s.taken_fd));
      close(pipe_fds[1]);
      undo(i);
      return error;
    }
    close(pipe_fds[1]);  // taken_fd is the pipe's write end now
  }
  const int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    absl::Status error = ErrnoStatus("eventfd for the executor's output relay");
    undo(2);
    return error;
  }
  std::unique_ptr<TaskOutputRelay> relay(new TaskOutputRelay(streams[0], streams[1], stop_fd));
  TaskOutputRelay* expected = nullptr;
  if (process_relay.compare_exchange_strong(expected, relay.get())) {
    struct sigaction action = {};
    action.sa_handler = DrainOnFatalSignal;
    action.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&action.sa_mask);
    for (int signal : kFatalSignals) sigaction(signal, &action, nullptr);
    static std::once_flag at_exit;
    std::call_once(at_exit, [] { std::atexit(DrainAtExit); });
  }
  return relay;
}

TaskOutputRelay::TaskOutputRelay(Stream out, Stream err, int stop_fd)
    : out_(out),
      err_(err),
      synced_cout_(SyncedWithStdio(std::cout.rdbuf())),
      synced_cerr_(SyncedWithStdio(std::cerr.rdbuf())),
      read_fds_{out.read_fd, err.read_fd},
      stop_fd_(stop_fd) {
  thread_ = std::thread([this] { Run(); });
}

TaskOutputRelay::~TaskOutputRelay() {
  TaskOutputRelay* self = this;
  if (process_relay.compare_exchange_strong(self, nullptr)) {
    for (int signal : kFatalSignals) ::signal(signal, SIG_DFL);
  }
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof(one)) < 0) {
    // Cannot happen for an eventfd below its maximum.
  }
  thread_.join();  // it passed on what was left
  close(stop_fd_);
  absl::MutexLock lock(&mu_);
  for (Stream* stream : {&out_, &err_}) {
    dup2(stream->daemon_fd, stream->taken_fd);
    close(stream->daemon_fd);
    close(stream->read_fd);
  }
}

void TaskOutputRelay::TaskStarted(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  ++task_;
  task_id_bytes_ = std::min(task_id.size(), kMaxTaskIdBytes);
  std::memcpy(task_id_, task_id.data(), task_id_bytes_);
}

void TaskOutputRelay::MakeMarker() {
  if (marker_task_ == task_) return;
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t n = 0;
  marker_[n++] = kTaskOutputMarker;
  for (std::size_t i = 0; i < task_id_bytes_; ++i) {
    const auto byte = static_cast<unsigned char>(task_id_[i]);
    marker_[n++] = kHex[byte >> 4];
    marker_[n++] = kHex[byte & 15];
  }
  marker_[n++] = '\n';
  marker_bytes_ = n;
  marker_task_ = task_;
}

void TaskOutputRelay::TaskEnded() {
  // Streams synced with stdio hold nothing of their own, and stdio's
  // buffers are flushed only when they hold something: four flushes a task
  // were a fifth of an executor's instructions under no-op tasks.
  if (std::cout.rdbuf() != synced_cout_) std::cout.flush();
  if (std::cerr.rdbuf() != synced_cerr_) std::cerr.flush();
  if (__fpending(stdout) > 0) std::fflush(stdout);
  if (__fpending(stderr) > 0) std::fflush(stderr);
  pollfd pipes[2] = {{read_fds_[0], POLLIN, 0}, {read_fds_[1], POLLIN, 0}};
  if (poll(pipes, 2, 0) <= 0) return;  // printed nothing: the common case
  absl::MutexLock lock(&mu_);
  ForwardBothLocked();
}

std::size_t TaskOutputRelay::ForwardBothLocked() {
  static thread_local char buffer[kReadBytes];
  return Forward(out_, buffer, sizeof(buffer)) + Forward(err_, buffer, sizeof(buffer));
}

std::size_t TaskOutputRelay::Forward(Stream& stream, char* buffer, std::size_t size) {
  std::size_t total = 0;
  while (true) {
    const ssize_t got = read(stream.read_fd, buffer, size);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return total;  // EAGAIN: empty for now
    total += static_cast<std::size_t>(got);
    char newline[] = "\n";
    if (task_ > 0) MakeMarker();
    iovec parts[3] = {
        {newline, 1}, {marker_, marker_bytes_}, {buffer, static_cast<std::size_t>(got)}};
    int first = 2;
    if (stream.marked != task_ && task_ > 0) {
      // A line the previous task left unfinished ends before the marker.
      first = stream.at_line_start ? 1 : 0;
      stream.marked = task_;
    }
    WriteAll(stream.daemon_fd, parts + first, 3 - first);
    stream.at_line_start = buffer[got - 1] == '\n';
  }
}

void TaskOutputRelay::Run() {
  pollfd watched[3] = {{read_fds_[0], POLLIN, 0}, {read_fds_[1], POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  while (true) {
    if (poll(watched, 3, -1) < 0 && errno != EINTR) break;
    std::size_t read_bytes = 0;
    {
      absl::MutexLock lock(&mu_);
      read_bytes = ForwardBothLocked();
    }
    if (watched[2].revents != 0) return;  // stopping: what was left is passed on
    if (read_bytes < kBusyReadBytes) {
      // A stop ends the wait early; the next round sees it (the eventfd
      // stays readable).
      pollfd stop = {stop_fd_, POLLIN, 0};
      poll(&stop, 1, kGatherMs);
    }
  }
}

}  // namespace fleet::worker
