#include "worker/task_output.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"

namespace fleet::worker {
namespace {

// A longer line is passed on in pieces of this size.
constexpr std::size_t kMaxLineBytes = 16 << 10;
// The reader waits this long between reads unless the last one brought at
// least kBusyReadBytes.
constexpr int kGatherMs = 2;
constexpr std::size_t kBusyReadBytes = 16 << 10;

}  // namespace

TaskOutputReader::TaskOutputReader(int stdout_fd, int stderr_fd, pid_t pid, OnLine on_line)
    : out_{stdout_fd, false, {}, {}},
      err_{stderr_fd, true, {}, {}},
      pid_(pid),
      on_line_(std::move(on_line)),
      stop_fd_(eventfd(0, EFD_CLOEXEC)),
      thread_([this] { Run(); }) {}

TaskOutputReader::~TaskOutputReader() {
  const uint64_t one = 1;
  if (stop_fd_ >= 0 && write(stop_fd_, &one, sizeof(one)) < 0) {
    // Cannot happen for an eventfd below its maximum; the reader then ends
    // at the pipes' end of file.
  }
  thread_.join();
  close(out_.fd);
  close(err_.fd);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void TaskOutputReader::Run() {
  char buffer[64 << 10];
  bool out_open = true;
  bool err_open = true;
  while (out_open || err_open) {
    pollfd watched[3] = {{out_open ? out_.fd : -1, POLLIN, 0},
                         {err_open ? err_.fd : -1, POLLIN, 0},
                         {stop_fd_, POLLIN, 0}};
    if (poll(watched, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    // What the executor wrote before it died still comes first.
    std::size_t read_bytes = 0;
    for (int i = 0; i < 2; ++i) {
      if (watched[i].fd < 0 || watched[i].revents == 0) continue;
      Stream& stream = i == 0 ? out_ : err_;
      const ssize_t got = read(stream.fd, buffer, sizeof(buffer));
      if (got > 0) {
        read_bytes += static_cast<std::size_t>(got);
        Consume(stream, buffer, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        if (!stream.pending.empty()) Emit(stream, std::move(stream.pending));
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (watched[2].revents != 0) return;
    // Rather than wake for each line of a task printing line by line, the
    // reader lets a few milliseconds' worth gather (a pipe holds 64 KiB;
    // one filling faster is read again at once). Output reaches the client
    // that much later.
    if (read_bytes < kBusyReadBytes) {
      pollfd stop = {stop_fd_, POLLIN, 0};
      if (poll(&stop, 1, kGatherMs) > 0) return;
    }
  }
}

void TaskOutputReader::Consume(Stream& stream, const char* data, std::size_t size) {
  const char* const end = data + size;
  while (data < end) {
    const char* newline = static_cast<const char*>(std::memchr(data, '\n', end - data));
    const char* stop = newline != nullptr ? newline : end;
    const std::size_t room = kMaxLineBytes - stream.pending.size();
    if (static_cast<std::size_t>(stop - data) >= room) {
      stream.pending.append(data, room);
      data += room;
      Emit(stream, std::move(stream.pending));
      stream.pending.clear();
      continue;
    }
    stream.pending.append(data, stop);
    data = stop;
    if (newline != nullptr) {
      Emit(stream, std::move(stream.pending));
      stream.pending.clear();
      ++data;
    }
  }
}

void TaskOutputReader::Emit(Stream& stream, std::string line) {
  if (!line.empty() && line[0] == kTaskOutputMarker) {
    stream.task_id = absl::HexStringToBytes(line.substr(1));
    return;
  }
  // Kept in the worker's own log too, as a worker log file is in Ray.
  std::fprintf(stderr, "(pid=%d) %s\n", static_cast<int>(pid_), line.c_str());
  v1::TaskOutput output;
  output.set_task_id(stream.task_id);
  output.set_is_stderr(stream.is_stderr);
  output.set_line(std::move(line));
  output.set_pid(static_cast<uint32_t>(pid_));
  on_line_(std::move(output));
}

}  // namespace fleet::worker
