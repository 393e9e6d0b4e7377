#include "worker/arena_allocator.h"

#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace fleet::worker {
namespace {

constexpr uint64_t kBlock = ArenaAllocator::kAlignment;

TEST(ArenaAllocatorTest, RoundsRequestsUpToAlignedBlocks) {
  EXPECT_EQ(ArenaAllocator::BlockSize(0), kBlock);
  EXPECT_EQ(ArenaAllocator::BlockSize(1), kBlock);
  EXPECT_EQ(ArenaAllocator::BlockSize(kBlock), kBlock);
  EXPECT_EQ(ArenaAllocator::BlockSize(kBlock + 1), 2 * kBlock);

  ArenaAllocator allocator(10 * kBlock + 7);  // the tail below one block is unused
  EXPECT_EQ(allocator.capacity_bytes(), 10 * kBlock);
  std::optional<uint64_t> a = allocator.Allocate(1);
  std::optional<uint64_t> b = allocator.Allocate(100);
  std::optional<uint64_t> c = allocator.Allocate(0);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, 0u);  // fills from the start
  EXPECT_EQ(*b, kBlock);
  EXPECT_EQ(*c, 3 * kBlock);
  EXPECT_EQ(allocator.used_bytes(), 4 * kBlock);
}

TEST(ArenaAllocatorTest, RefusesWhatDoesNotFit) {
  ArenaAllocator allocator(4 * kBlock);
  EXPECT_FALSE(allocator.Allocate(4 * kBlock + 1).has_value());
  EXPECT_FALSE(allocator.Allocate(UINT64_MAX).has_value());
  ASSERT_TRUE(allocator.Allocate(4 * kBlock).has_value());
  EXPECT_FALSE(allocator.Allocate(0).has_value());
  EXPECT_EQ(allocator.free_bytes(), 0u);

  ArenaAllocator empty(kBlock - 1);
  EXPECT_EQ(empty.capacity_bytes(), 0u);
  EXPECT_FALSE(empty.Allocate(0).has_value());
}

TEST(ArenaAllocatorTest, CoalescesFreedNeighboursOnBothSides) {
  ArenaAllocator allocator(4 * kBlock);
  std::vector<uint64_t> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(*allocator.Allocate(kBlock));
  allocator.Free(blocks[0]);
  allocator.Free(blocks[2]);
  // Two free blocks of one each: fragmented, so two blocks do not fit.
  EXPECT_EQ(allocator.free_blocks(), 2u);
  EXPECT_EQ(allocator.free_bytes(), 2 * kBlock);
  EXPECT_EQ(allocator.largest_free_block_bytes(), kBlock);
  EXPECT_FALSE(allocator.Allocate(2 * kBlock).has_value());
  // Freeing the one between merges all three.
  allocator.Free(blocks[1]);
  EXPECT_EQ(allocator.free_blocks(), 1u);
  EXPECT_EQ(allocator.largest_free_block_bytes(), 3 * kBlock);
  allocator.Free(blocks[3]);
  EXPECT_EQ(allocator.free_blocks(), 1u);
  EXPECT_EQ(allocator.largest_free_block_bytes(), 4 * kBlock);
  std::optional<uint64_t> whole = allocator.Allocate(4 * kBlock);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(*whole, 0u);
}

TEST(ArenaAllocatorTest, TakesTheSmallestFreeBlockThatFits) {
  ArenaAllocator allocator(16 * kBlock);
  const uint64_t a = *allocator.Allocate(3 * kBlock);  // [0, 3)
  const uint64_t b = *allocator.Allocate(kBlock);      // [3, 4)
  const uint64_t c = *allocator.Allocate(kBlock);      // [4, 5)
  const uint64_t d = *allocator.Allocate(kBlock);      // [5, 6)
  allocator.Free(a);                                   // hole of 3
  allocator.Free(c);                                   // hole of 1
  // One block goes to the one-block hole, not to the start of the larger.
  EXPECT_EQ(*allocator.Allocate(kBlock), c);
  EXPECT_EQ(*allocator.Allocate(2 * kBlock), a);
  allocator.Free(b);
  allocator.Free(d);
}

TEST(ArenaAllocatorTest, RandomAllocationsNeverOverlapAndAllCoalesceBack) {
  constexpr uint64_t kCapacity = 1 << 20;
  ArenaAllocator allocator(kCapacity);
  std::mt19937_64 random(42);
  std::map<uint64_t, uint64_t> live;  // offset -> block size
  uint64_t live_bytes = 0;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || random() % 3 != 0) {
      const uint64_t size = random() % 20000;
      std::optional<uint64_t> offset = allocator.Allocate(size);
      if (!offset.has_value()) {
        // Only refused when no free block is large enough.
        EXPECT_LT(allocator.largest_free_block_bytes(), ArenaAllocator::BlockSize(size));
        continue;
      }
      const uint64_t block = ArenaAllocator::BlockSize(size);
      EXPECT_EQ(*offset % kBlock, 0u);
      EXPECT_LE(*offset + block, kCapacity);
      auto next = live.lower_bound(*offset);
      if (next != live.end()) {
        EXPECT_LE(*offset + block, next->first);
      }
      if (next != live.begin()) {
        auto prev = std::prev(next);
        EXPECT_LE(prev->first + prev->second, *offset);
      }
      live.emplace(*offset, block);
      live_bytes += block;
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(random() % live.size()));
      allocator.Free(it->first);
      live_bytes -= it->second;
      live.erase(it);
    }
    ASSERT_EQ(allocator.used_bytes(), live_bytes);
  }
  for (const auto& [offset, size] : live) allocator.Free(offset);
  EXPECT_EQ(allocator.used_bytes(), 0u);
  EXPECT_EQ(allocator.free_blocks(), 1u);
  EXPECT_EQ(allocator.largest_free_block_bytes(), kCapacity);
}

}  // namespace
}  // namespace fleet::worker
