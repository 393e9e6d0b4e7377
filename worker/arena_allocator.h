// Hands out 64-byte aligned ranges of a fixed-size arena, by offset: best
// fit over a free list kept by address and by size, so freeing a range
// merges it with free neighbours at once (no fragmentation from adjacent
// free blocks) and an allocation takes the smallest block that fits,
// lowest address first. The object store owns one per shared-memory arena;
// it never touches the memory itself.
//
// Thread-compatible: the object store calls it under its mutex.
#ifndef FLEET_WORKER_ARENA_ALLOCATOR_H_
#define FLEET_WORKER_ARENA_ALLOCATOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace fleet::worker {

class ArenaAllocator {
 public:
  static constexpr uint64_t kAlignment = 64;

  // Manages [0, capacity_bytes rounded down to kAlignment).
  explicit ArenaAllocator(uint64_t capacity_bytes);

  // The bytes a request of `size_bytes` takes: rounded up to kAlignment,
  // and at least kAlignment (so an empty object still has an address).
  static uint64_t BlockSize(uint64_t size_bytes);

  // Returns the offset of a free block of BlockSize(size_bytes), or nullopt
  // when no free block is large enough (even if the free total would be).
  std::optional<uint64_t> Allocate(uint64_t size_bytes);
  // REQUIRES: `offset` came from Allocate and was not freed since.
  void Free(uint64_t offset);

  uint64_t capacity_bytes() const { return capacity_bytes_; }
  uint64_t used_bytes() const { return used_bytes_; }
  uint64_t free_bytes() const { return capacity_bytes_ - used_bytes_; }
  uint64_t largest_free_block_bytes() const;
  size_t free_blocks() const { return by_offset_.size(); }

 private:
  void InsertFree(uint64_t offset, uint64_t size);
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  const uint64_t capacity_bytes_;
  uint64_t used_bytes_ = 0;
  std::map<uint64_t, uint64_t> by_offset_;            // free: offset -> size
  std::set<std::pair<uint64_t, uint64_t>> by_size_;   // free: (size, offset)
  absl::flat_hash_map<uint64_t, uint64_t> allocated_;  // offset -> block size
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_ARENA_ALLOCATOR_H_
