// The object store's memory: one shared-memory region per worker, made
// with memfd_create + ftruncate + mmap(MAP_SHARED), and the files objects
// spill to.
//
// Why memfd and not shm_open: a memfd is not a file in /dev/shm, so it is
// not bounded by /dev/shm's size (64 MiB in a default Docker container)
// and leaves nothing behind when the worker dies; its pages are charged to
// the worker's memory cgroup like any shared memory. Another process on the
// host can still map it through /proc/<worker pid>/fd/<fd()> or a passed fd.
//
// Fresh pages cost a page fault on first touch (0.6 to 2 GB/s on the VMs
// we run on, against 4 to 6 GB/s for copying into mapped memory), so
// Create pre-faults the first `prefault_bytes` of the arena at start. The
// allocator fills the arena from its start, and pages once touched stay
// mapped (the store never returns them to the kernel), so every page pays
// its first touch once: at start for the pre-faulted part, on first use
// for the rest. The arena's resident size is therefore its high-water
// mark, which the worker exports as store_peak_bytes.
#ifndef FLEET_WORKER_SHM_ARENA_H_
#define FLEET_WORKER_SHM_ARENA_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace fleet::worker {

// What --store_memory means when not given: 30% of the memory this process
// may use (physical memory, or the cgroup's memory.max when lower), as
// Ray's object store does. Several workers on one host should be given
// explicit sizes that add up to what the host can spare.
uint64_t DefaultStoreMemoryBytes();
// What --store_prefault means when not given.
inline constexpr uint64_t kDefaultStorePrefaultBytes = uint64_t{256} << 20;

// Thread-safe (immutable after Create).
class ShmArena {
 public:
  // Maps `capacity_bytes` (> 0) of fresh shared memory and pre-faults the
  // first min(prefault_bytes, capacity_bytes) of it. Returns
  // ResourceExhausted or Internal naming the failing call.
  static absl::StatusOr<std::unique_ptr<ShmArena>> Create(uint64_t capacity_bytes,
                                                          uint64_t prefault_bytes);
  ~ShmArena();
  ShmArena(const ShmArena&) = delete;
  ShmArena& operator=(const ShmArena&) = delete;

  char* base() const { return base_; }
  uint64_t capacity_bytes() const { return capacity_bytes_; }
  uint64_t prefaulted_bytes() const { return prefaulted_bytes_; }
  int fd() const { return fd_; }

 private:
  ShmArena() = default;

  int fd_ = -1;
  char* base_ = nullptr;
  uint64_t capacity_bytes_ = 0;
  uint64_t mapped_bytes_ = 0;  // capacity rounded up to whole pages
  uint64_t prefaulted_bytes_ = 0;
};

// A file mapped into memory: a spilled object read in place, or an object
// too large for the arena written straight into its spill file.
// Thread-compatible; the mapping lives until destruction.
class MappedFile {
 public:
  // Maps the first `size_bytes` of an existing file read-only.
  static absl::StatusOr<std::unique_ptr<MappedFile>> OpenForRead(const std::string& path,
                                                                 uint64_t size_bytes);
  // Creates (or truncates) `path` with `size_bytes` and maps it writable.
  static absl::StatusOr<std::unique_ptr<MappedFile>> CreateForWrite(const std::string& path,
                                                                    uint64_t size_bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  char* data() const { return data_; }
  uint64_t size_bytes() const { return size_bytes_; }

 private:
  MappedFile() = default;

  char* data_ = nullptr;  // null for an empty file
  uint64_t size_bytes_ = 0;
};

// Writes `size_bytes` at `data` to a new file `path` (replacing any), or
// reads the first `size_bytes` of `path` into `out`. Errors name the path.
absl::Status WriteSpillFile(const std::string& path, const char* data, uint64_t size_bytes);
absl::Status ReadSpillFile(const std::string& path, char* out, uint64_t size_bytes);

}  // namespace fleet::worker

#endif  // FLEET_WORKER_SHM_ARENA_H_
