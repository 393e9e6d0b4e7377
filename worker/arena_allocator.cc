#include "worker/arena_allocator.h"

#include <cstdlib>
#include <iterator>

#include "common/logging.h"

namespace fleet::worker {

ArenaAllocator::ArenaAllocator(uint64_t capacity_bytes)
    : capacity_bytes_(capacity_bytes / kAlignment * kAlignment) {
  if (capacity_bytes_ > 0) InsertFree(0, capacity_bytes_);
}

uint64_t ArenaAllocator::BlockSize(uint64_t size_bytes) {
  if (size_bytes == 0) return kAlignment;
  return (size_bytes + kAlignment - 1) / kAlignment * kAlignment;
}

std::optional<uint64_t> ArenaAllocator::Allocate(uint64_t size_bytes) {
  if (size_bytes > capacity_bytes_) return std::nullopt;  // BlockSize would overflow near 2^64
  const uint64_t size = BlockSize(size_bytes);
  // Smallest block that fits; among equal sizes the lowest offset, which
  // keeps the busy part of the arena at its (pre-faulted) start.
  auto fit = by_size_.lower_bound({size, 0});
  if (fit == by_size_.end()) return std::nullopt;
  const auto [block_size, offset] = *fit;
  EraseFree(by_offset_.find(offset));
  if (block_size > size) InsertFree(offset + size, block_size - size);
  allocated_.emplace(offset, size);
  used_bytes_ += size;
  return offset;
}

void ArenaAllocator::Free(uint64_t offset) {
  auto it = allocated_.find(offset);
  if (it == allocated_.end()) {
    GetLogger("worker")->critical("event=arena_bad_free offset={}", offset);
    std::abort();
  }
  uint64_t start = offset;
  uint64_t size = it->second;
  allocated_.erase(it);
  used_bytes_ -= size;
  // Merge with the free neighbours on both sides.
  auto next = by_offset_.lower_bound(start);
  if (next != by_offset_.end() && next->first == start + size) {
    size += next->second;
    next = std::next(next);
    EraseFree(std::prev(next));
  }
  if (next != by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      EraseFree(prev);
    }
  }
  InsertFree(start, size);
}

uint64_t ArenaAllocator::largest_free_block_bytes() const {
  return by_size_.empty() ? 0 : by_size_.rbegin()->first;
}

void ArenaAllocator::InsertFree(uint64_t offset, uint64_t size) {
  by_offset_.emplace(offset, size);
  by_size_.emplace(size, offset);
}

void ArenaAllocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  by_size_.erase({it->second, it->first});
  by_offset_.erase(it);
}

}  // namespace fleet::worker
