#include "worker/outcome_batcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "worker/executor_channel.h"

namespace fleet::worker {
namespace {

absl::Status Errno(const char* what) {
  const int error = errno;  // before StrCat allocates
  return ErrnoStatus(absl::StrCat(what, " for the executor's outcome timer"), error);
}

// Arms `timer_fd` to fire once after `delay`, or disarms it (zero).
void SetTimer(int timer_fd, absl::Duration delay) {
  itimerspec when{};
  when.it_value = absl::ToTimespec(delay);
  timerfd_settime(timer_fd, 0, &when, nullptr);
}

}  // namespace

absl::StatusOr<std::unique_ptr<OutcomeBatcher>> OutcomeBatcher::Create(int channel) {
  const int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timer_fd < 0) return Errno("timerfd_create");
  const int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    absl::Status error = Errno("eventfd");
    close(timer_fd);
    return error;
  }
  return std::unique_ptr<OutcomeBatcher>(new OutcomeBatcher(channel, timer_fd, stop_fd));
}

OutcomeBatcher::OutcomeBatcher(int channel, int timer_fd, int stop_fd)
    : channel_(channel),
      timer_fd_(timer_fd),
      stop_fd_(stop_fd),
      timer_thread_([this] { RunTimer(); }) {}

OutcomeBatcher::~OutcomeBatcher() {
  const uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof(one)) < 0) {
    // Cannot fail for an eventfd below its maximum.
  }
  timer_thread_.join();
  close(timer_fd_);
  close(stop_fd_);
}

absl::Status OutcomeBatcher::Add(const v1::ExecutorOutcome& outcome, bool next_ready) {
  absl::MutexLock lock(&mu_);
  if (absl::Status framed = AppendFramed(outcome, frames_); !framed.ok()) return framed;
  ++held_;
  const bool short_run = absl::Microseconds(outcome.run_time_us()) < kShortRun;
  if (!next_ready || !short_run || held_ >= kMaxHeld || frames_.size() >= kMaxHeldBytes) {
    return FlushLocked();
  }
  if (!timer_armed_) {
    SetTimer(timer_fd_, kMaxHold);
    timer_armed_ = true;
  }
  return broken_;
}

absl::Status OutcomeBatcher::Flush() {
  absl::MutexLock lock(&mu_);
  return FlushLocked();
}

std::size_t OutcomeBatcher::held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

absl::Status OutcomeBatcher::FlushLocked() {
  if (timer_armed_) {
    SetTimer(timer_fd_, absl::ZeroDuration());
    timer_armed_ = false;
  }
  if (held_ == 0 || !broken_.ok()) return broken_;
  broken_ = SendFrames(channel_, frames_);
  frames_.clear();
  held_ = 0;
  return broken_;
}

void OutcomeBatcher::RunTimer() {
  while (true) {
    pollfd watched[2] = {{timer_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (watched[1].revents != 0) return;
    uint64_t expirations = 0;
    if (read(timer_fd_, &expirations, sizeof(expirations)) < 0) continue;  // disarmed meanwhile
    absl::MutexLock lock(&mu_);
    timer_armed_ = false;
    FlushLocked().IgnoreError();  // kept in broken_ for the executor's thread
  }
}

}  // namespace fleet::worker
