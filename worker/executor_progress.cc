#include "worker/executor_progress.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace fleet::worker {
namespace {

absl::Status Errno(const char* what) {
  const int error = errno;  // before StrCat allocates
  return ErrnoStatus(absl::StrCat(what, " for an executor's progress page"), error);
}

}  // namespace

absl::StatusOr<ExecutorProgress> ExecutorProgress::Create() {
  const int fd = memfd_create("fleet-executor-progress", MFD_CLOEXEC);
  if (fd < 0) return Errno("memfd_create");
  if (ftruncate(fd, sizeof(Counters)) != 0) {
    absl::Status error = Errno("ftruncate");
    close(fd);
    return error;
  }
  void* page = mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (page == MAP_FAILED) {
    absl::Status error = Errno("mmap");
    close(fd);
    return error;
  }
  return ExecutorProgress(fd, new (page) Counters());
}

absl::StatusOr<ExecutorProgress> ExecutorProgress::Adopt(int fd) {
  void* page = mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (page == MAP_FAILED) return Errno("mmap");
  close(fd);
  return ExecutorProgress(-1, static_cast<Counters*>(page));
}

ExecutorProgress::ExecutorProgress(ExecutorProgress&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), counters_(std::exchange(other.counters_, nullptr)) {}

ExecutorProgress& ExecutorProgress::operator=(ExecutorProgress&& other) noexcept {
  std::swap(fd_, other.fd_);
  std::swap(counters_, other.counters_);
  return *this;
}

ExecutorProgress::~ExecutorProgress() {
  if (fd_ >= 0) close(fd_);
  if (counters_ != nullptr) munmap(counters_, sizeof(Counters));
}

}  // namespace fleet::worker
