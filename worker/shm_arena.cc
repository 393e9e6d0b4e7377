#include "worker/shm_arena.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older glibc headers lack it
#endif

namespace fleet::worker {
namespace {

std::string Errno(absl::string_view call) {
  return absl::StrCat(call, ": ", std::strerror(errno));
}

uint64_t PageBytes() { return static_cast<uint64_t>(sysconf(_SC_PAGESIZE)); }

uint64_t RoundUpToPage(uint64_t n) {
  const uint64_t page = PageBytes();
  return (n + page - 1) / page * page;
}

// The first number in `path` (cgroup limit files hold one, or "max").
std::optional<uint64_t> ReadLimitFile(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::nullopt;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) return std::nullopt;
  return value;
}

}  // namespace

uint64_t DefaultStoreMemoryBytes() {
  uint64_t memory = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * PageBytes();
  // cgroup v2, then v1 (whose "no limit" is a huge number, harmless here).
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (auto limit = ReadLimitFile(path); limit.has_value() && *limit > 0) {
      memory = std::min(memory, *limit);
    }
  }
  return std::max<uint64_t>(memory / 10 * 3, uint64_t{64} << 20);
}

absl::StatusOr<std::unique_ptr<ShmArena>> ShmArena::Create(uint64_t capacity_bytes,
                                                           uint64_t prefault_bytes) {
  if (capacity_bytes == 0) return absl::InvalidArgumentError("the object store needs memory");
  std::unique_ptr<ShmArena> arena(new ShmArena());
  arena->capacity_bytes_ = capacity_bytes;
  arena->mapped_bytes_ = RoundUpToPage(capacity_bytes);
  arena->fd_ = memfd_create("fleet-object-store", MFD_CLOEXEC);
  if (arena->fd_ < 0) return absl::InternalError(Errno("memfd_create for the object store"));
  if (ftruncate(arena->fd_, static_cast<off_t>(arena->mapped_bytes_)) != 0) {
    return absl::ResourceExhaustedError(
        Errno(absl::StrCat("sizing the object store to ", capacity_bytes, " bytes")));
  }
  // MAP_NORESERVE: the pages beyond the pre-faulted part are only promised,
  // and become resident on first use.
  void* base = mmap(nullptr, arena->mapped_bytes_, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_NORESERVE, arena->fd_, 0);
  if (base == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        Errno(absl::StrCat("mapping ", capacity_bytes, " bytes for the object store")));
  }
  arena->base_ = static_cast<char*>(base);
  // Huge pages where the host allows them for shared memory
  // (transparent_hugepage/shmem_enabled = advise) make faults 512x rarer.
  madvise(arena->base_, arena->mapped_bytes_, MADV_HUGEPAGE);

  const uint64_t prefault = RoundUpToPage(std::min(prefault_bytes, capacity_bytes));
  if (prefault > 0 && madvise(arena->base_, prefault, MADV_POPULATE_WRITE) != 0) {
    if (errno != EINVAL) {
      return absl::ResourceExhaustedError(
          Errno(absl::StrCat("pre-faulting ", prefault, " bytes of the object store")));
    }
    // A kernel before 5.14: touch every page. Nothing else uses the arena yet.
    volatile char* p = arena->base_;
    for (uint64_t i = 0; i < prefault; i += PageBytes()) p[i] = 0;
  }
  arena->prefaulted_bytes_ = prefault;
  return arena;
}

ShmArena::~ShmArena() {
  if (base_ != nullptr) munmap(base_, mapped_bytes_);
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::OpenForRead(const std::string& path,
                                                                    uint64_t size_bytes) {
  std::unique_ptr<MappedFile> file(new MappedFile());
  file->size_bytes_ = size_bytes;
  if (size_bytes == 0) return file;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Errno(absl::StrCat("opening spill file ", path)));
  void* data = mmap(nullptr, size_bytes, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);  // the mapping keeps the file
  if (data == MAP_FAILED) {
    return absl::InternalError(Errno(absl::StrCat("mapping spill file ", path)));
  }
  file->data_ = static_cast<char*>(data);
  return file;
}

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::CreateForWrite(const std::string& path,
                                                                       uint64_t size_bytes) {
  std::unique_ptr<MappedFile> file(new MappedFile());
  file->size_bytes_ = size_bytes;
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(Errno(absl::StrCat("creating spill file ", path)));
  // fallocate reserves the disk now, so a full disk is an error here and
  // not a SIGBUS while the object is written.
  if (size_bytes > 0 && posix_fallocate(fd, 0, static_cast<off_t>(size_bytes)) != 0) {
    close(fd);
    unlink(path.c_str());
    return absl::ResourceExhaustedError(
        absl::StrCat("no disk space for a ", size_bytes, "-byte spill file ", path));
  }
  void* data = size_bytes == 0 ? nullptr
                               : mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                                      fd, 0);
  close(fd);
  if (data == MAP_FAILED) {
    unlink(path.c_str());
    return absl::InternalError(Errno(absl::StrCat("mapping spill file ", path)));
  }
  file->data_ = static_cast<char*>(data);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(data_, size_bytes_);
}

absl::Status WriteSpillFile(const std::string& path, const char* data, uint64_t size_bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(Errno(absl::StrCat("creating spill file ", path)));
  uint64_t done = 0;
  while (done < size_bytes) {
    const ssize_t n = write(fd, data + done, std::min<uint64_t>(size_bytes - done, 1 << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = absl::ResourceExhaustedError(
          Errno(absl::StrCat("writing ", size_bytes, " bytes to spill file ", path)));
      close(fd);
      unlink(path.c_str());
      return status;
    }
    done += static_cast<uint64_t>(n);
  }
  // No fsync: a spill file only has to outlive this process's use of it.
  if (close(fd) != 0) {
    absl::Status status = absl::InternalError(Errno(absl::StrCat("closing spill file ", path)));
    unlink(path.c_str());
    return status;
  }
  return absl::OkStatus();
}

absl::Status ReadSpillFile(const std::string& path, char* out, uint64_t size_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::DataLossError(Errno(absl::StrCat("opening spill file ", path)));
  uint64_t done = 0;
  while (done < size_bytes) {
    const ssize_t n = pread(fd, out + done, std::min<uint64_t>(size_bytes - done, 1 << 30),
                            static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status =
          n == 0 ? absl::DataLossError(absl::StrCat("spill file ", path, " ends after ", done,
                                                    " of ", size_bytes, " bytes"))
                 : absl::DataLossError(Errno(absl::StrCat("reading spill file ", path)));
      close(fd);
      return status;
    }
    done += static_cast<uint64_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

}  // namespace fleet::worker
