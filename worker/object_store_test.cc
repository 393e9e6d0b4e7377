#include "worker/object_store.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fleet::worker {
namespace {

using Copy = ObjectStore::Copy;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kChunk = 64 * kKiB;  // a multiple of the allocator's alignment

ObjectId Id(uint64_t i) { return ObjectId::Of(TaskId::Of(JobId(), i), 0); }

// Object `i`'s content: `size` bytes that differ per object and per offset.
std::string Content(uint64_t i, uint64_t size) {
  std::string s(size, '\0');
  for (uint64_t k = 0; k < size; ++k) s[k] = static_cast<char>((i * 131 + k * 7 + k / 251) & 0xff);
  return s;
}

std::string Read(ObjectStore& store, const ObjectId& id) {
  absl::StatusOr<ObjectStore::View> view = store.Get(id);
  if (!view.ok()) return "<" + view.status().ToString() + ">";
  return std::string(view->bytes());
}

int CountFiles(const std::string& dir) {
  int n = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    n += entry.is_regular_file() ? 1 : 0;
  }
  return n;
}

class ObjectStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ObjectStore> Open(uint64_t capacity_bytes) {
    auto store = ObjectStore::Open({.capacity_bytes = capacity_bytes,
                                    .prefault_bytes = capacity_bytes,
                                    .spill_dir = spill_parent_});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  void TearDown() override {
    std::error_code error;
    std::filesystem::remove_all(spill_parent_, error);
  }

  const std::string spill_parent_ = ::testing::TempDir() + "/object_store_test-" +
                                    std::to_string(getpid());
};

TEST_F(ObjectStoreTest, CreateWriteSealGet) {
  auto store = Open(1 << 20);
  absl::StatusOr<ObjectStore::Writer> writer = store->Create(Id(1), 100);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_EQ(writer->size(), 100u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(writer->data()) % 64, 0u);
  const std::string content = Content(1, 100);
  std::memcpy(writer->data(), content.data(), content.size());
  // Not visible until sealed, but its memory counts.
  EXPECT_FALSE(store->Contains(Id(1)));
  EXPECT_EQ(store->Get(Id(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->stats().bytes, 100u);
  EXPECT_EQ(store->stats().objects, 0u);
  writer->Seal();
  EXPECT_TRUE(store->Contains(Id(1)));
  EXPECT_EQ(Read(*store, Id(1)), content);
  EXPECT_EQ(store->stats().objects, 1u);
  EXPECT_EQ(store->stats().capacity_bytes, 1u << 20);
}

TEST_F(ObjectStoreTest, ObjectsAreImmutableAndTheFirstCopyStays) {
  auto store = Open(1 << 20);
  ASSERT_TRUE(store->Put(Id(1), "first").ok());
  ASSERT_TRUE(store->Put(Id(1), "second, longer").ok());
  EXPECT_EQ(Read(*store, Id(1)), "first");
  EXPECT_EQ(store->Create(Id(1), 10).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->stats().bytes, 5u);
  EXPECT_EQ(store->stats().objects, 1u);
  ASSERT_TRUE(store->Put(Id(2), "").ok());
  EXPECT_EQ(Read(*store, Id(2)), "");
}

TEST_F(ObjectStoreTest, AnAbortedWriterFreesItsMemoryAndId) {
  auto store = Open(1 << 20);
  {
    absl::StatusOr<ObjectStore::Writer> writer = store->Create(Id(1), 1000);
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ(store->Create(Id(1), 1000).status().code(), absl::StatusCode::kAlreadyExists);
  }
  EXPECT_EQ(store->stats().bytes, 0u);
  EXPECT_FALSE(store->Contains(Id(1)));
  EXPECT_TRUE(store->Put(Id(1), "again").ok());
  EXPECT_EQ(Read(*store, Id(1)), "again");
}

TEST_F(ObjectStoreTest, SealAsStoresTheObjectUnderTheNewIdOnly) {
  auto store = Open(1 << 20);
  absl::StatusOr<ObjectStore::Writer> writer = store->Create(Id(1), 1000);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string content = Content(1, 1000);
  std::memcpy(writer->data(), content.data(), content.size());
  ASSERT_TRUE(writer->SealAs(Id(2)).ok());
  EXPECT_EQ(Read(*store, Id(2)), content);
  EXPECT_FALSE(store->Contains(Id(1)));
  EXPECT_EQ(store->stats().objects, 1u);
  EXPECT_EQ(store->stats().bytes, 1000u);
  // The scratch id is free again; the sealed object is deleted as any other.
  EXPECT_TRUE(store->Put(Id(1), "again").ok());
  store->Delete(Id(2));
  EXPECT_EQ(store->stats().bytes, 5u);
  EXPECT_EQ(writer->SealAs(Id(3)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ObjectStoreTest, SealAsAnIdStoredAlreadyLeavesTheWriterToAbort) {
  auto store = Open(1 << 20);
  ASSERT_TRUE(store->Put(Id(2), "first").ok());
  {
    absl::StatusOr<ObjectStore::Writer> writer = store->Create(Id(1), 1000);
    ASSERT_TRUE(writer.ok()) << writer.status();
    EXPECT_EQ(writer->SealAs(Id(2)).code(), absl::StatusCode::kAlreadyExists);
    ASSERT_NE(writer->data(), nullptr);  // still being written
    EXPECT_FALSE(store->Contains(Id(1)));
    EXPECT_EQ(store->stats().bytes, 1005u);
  }
  EXPECT_EQ(Read(*store, Id(2)), "first");
  EXPECT_EQ(store->stats().bytes, 5u);
  EXPECT_EQ(store->stats().objects, 1u);
}

TEST_F(ObjectStoreTest, CreateInFreeMemoryNeverEvictsNorSpills) {
  constexpr uint64_t kCapacity = 1 << 20;
  auto store = Open(kCapacity);
  ASSERT_TRUE(store->Put(Id(1), Content(1, kCapacity / 2)).ok());
  ASSERT_TRUE(store->Put(Id(2), Content(2, kCapacity / 4), ObjectStore::Copy::kSecondary).ok());
  absl::StatusOr<ObjectStore::Writer> refused = store->CreateInFreeMemory(Id(3), kCapacity / 2);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_EQ(store->CreateInFreeMemory(Id(3), 2 * kCapacity).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(store->Contains(Id(3)));
  EXPECT_EQ(store->stats().evictions, 0u);
  EXPECT_EQ(store->stats().spills, 0u);
  EXPECT_TRUE(store->Contains(Id(2)));
  // What is free it takes; Create makes room where it would not.
  EXPECT_TRUE(store->CreateInFreeMemory(Id(4), kCapacity / 8).ok());
  EXPECT_TRUE(store->Create(Id(3), kCapacity / 2).ok());
  EXPECT_GT(store->stats().evictions + store->stats().spills, 0u);
}

TEST_F(ObjectStoreTest, DeleteWaitsForReadersBeforeFreeing) {
  auto store = Open(1 << 20);
  ASSERT_TRUE(store->Put(Id(1), Content(1, 1000)).ok());
  absl::StatusOr<ObjectStore::View> view = store->Get(Id(1));
  ASSERT_TRUE(view.ok());
  store->Delete(Id(1));
  store->Delete(Id(1));  // idempotent
  EXPECT_FALSE(store->Contains(Id(1)));
  EXPECT_EQ(store->Get(Id(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->stats().objects, 0u);
  EXPECT_EQ(store->stats().bytes, 1000u);  // still pinned by the reader
  EXPECT_EQ(std::string(view->bytes()), Content(1, 1000));
  *view = ObjectStore::View();
  EXPECT_EQ(store->stats().bytes, 0u);
  EXPECT_EQ(store->stats().peak_bytes, 1000u);
}

TEST_F(ObjectStoreTest, MemoryStaysWithinTheLimitAndSpilledObjectsReadBack) {
  constexpr uint64_t kCapacity = 1 << 20;
  auto store = Open(kCapacity);
  constexpr int kObjects = 40;  // 4 MB of 100 KB objects into 1 MiB
  for (int i = 0; i < kObjects; ++i) {
    ASSERT_TRUE(store->Put(Id(i), Content(i, 100 * kKiB)).ok()) << i;
    ASSERT_LE(store->stats().bytes, kCapacity);
  }
  ObjectStore::Stats stats = store->stats();
  EXPECT_EQ(stats.objects, static_cast<uint64_t>(kObjects));
  EXPECT_GT(stats.spills, 0u);
  EXPECT_GT(stats.spilled_objects, 0u);
  EXPECT_EQ(stats.spilled_bytes, stats.spilled_objects * 100 * kKiB);
  EXPECT_EQ(CountFiles(store->spill_dir()), static_cast<int>(stats.spilled_objects));
  EXPECT_EQ(stats.evictions, 0u);  // primaries are spilled, never dropped
  for (int i = 0; i < kObjects; ++i) {
    EXPECT_EQ(Read(*store, Id(i)), Content(i, 100 * kKiB)) << i;
    ASSERT_LE(store->stats().bytes, kCapacity);
  }
  stats = store->stats();
  EXPECT_GT(stats.restores, 0u);
  EXPECT_LE(stats.peak_bytes, kCapacity);
  EXPECT_GE(stats.peak_bytes, kCapacity - 100 * kKiB);
}

TEST_F(ObjectStoreTest, EvictsSecondariesFirstLeastRecentlyUsedFirst) {
  auto store = Open(4 * kChunk);
  ASSERT_TRUE(store->Put(Id(0), Content(0, kChunk)).ok());  // primary
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(store->Put(Id(i), Content(i, kChunk), Copy::kSecondary,
                           absl::StrCat("peer-", i, ":1")).ok());
  }
  EXPECT_EQ(Read(*store, Id(1)), Content(1, kChunk));  // 1 is now the most recent
  // Secondaries go in LRU order (2, 3, 1) before any primary is spilled.
  const int expected_victims[] = {2, 3, 1};
  for (int n = 0; n < 3; ++n) {
    ASSERT_TRUE(store->Put(Id(10 + n), Content(10 + n, kChunk)).ok());
    const int victim = expected_victims[n];
    EXPECT_FALSE(store->Contains(Id(victim))) << victim;
    EXPECT_EQ(store->FetchedFrom(Id(victim)), absl::StrCat("peer-", victim, ":1"));
    EXPECT_EQ(store->stats().evictions, static_cast<uint64_t>(n + 1));
    EXPECT_EQ(store->stats().spills, 0u);
  }
  EXPECT_EQ(store->stats().objects, 4u);
  // Now only primaries are left: the least recently used one (0) spills.
  ASSERT_TRUE(store->Put(Id(13), Content(13, kChunk)).ok());
  EXPECT_EQ(store->stats().spills, 1u);
  EXPECT_EQ(store->stats().spilled_objects, 1u);
  EXPECT_TRUE(store->Contains(Id(0)));
  EXPECT_EQ(Read(*store, Id(0)), Content(0, kChunk));
  EXPECT_EQ(store->stats().restores, 1u);
  // Storing or deleting an evicted copy forgets where it came from.
  ASSERT_TRUE(store->Put(Id(2), Content(2, kChunk), Copy::kSecondary, "peer-2:1").ok());
  EXPECT_FALSE(store->FetchedFrom(Id(2)).has_value());
  store->Delete(Id(3));
  EXPECT_FALSE(store->FetchedFrom(Id(3)).has_value());
}

TEST_F(ObjectStoreTest, PinnedObjectsStayAndAFullStoreSaysWhy) {
  auto store = Open(2 * kChunk);
  ASSERT_TRUE(store->Put(Id(1), Content(1, kChunk)).ok());
  ASSERT_TRUE(store->Put(Id(2), Content(2, kChunk)).ok());
  absl::StatusOr<ObjectStore::View> one = store->Get(Id(1));  // pinned, and most recent
  ASSERT_TRUE(one.ok());
  ASSERT_TRUE(store->Get(Id(2)).ok());  // 2 is now more recent than 1, but unpinned
  const char* where = one->data();
  ASSERT_TRUE(store->Put(Id(3), Content(3, kChunk)).ok());  // spills 2, not pinned 1
  EXPECT_EQ(store->stats().spilled_objects, 1u);
  EXPECT_EQ(one->data(), where);
  EXPECT_EQ(std::string(one->bytes()), Content(1, kChunk));
  absl::StatusOr<ObjectStore::View> three = store->Get(Id(3));
  ASSERT_TRUE(three.ok());

  // Everything in memory is pinned: a new object cannot fit.
  absl::Status full = store->Put(Id(4), Content(4, kChunk));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(full.message(), absl::StrCat(kChunk, " bytes"))) << full;
  EXPECT_TRUE(absl::StrContains(full.message(), absl::StrCat("capacity ", 2 * kChunk))) << full;
  EXPECT_TRUE(absl::StrContains(full.message(), "pinned")) << full;
  EXPECT_FALSE(store->Contains(Id(4)));
  EXPECT_LE(store->stats().bytes, 2 * kChunk);

  // A spilled object is still readable: from its file, in place.
  EXPECT_EQ(Read(*store, Id(2)), Content(2, kChunk));
  EXPECT_EQ(store->stats().restores, 0u);

  *one = ObjectStore::View();
  EXPECT_TRUE(store->Put(Id(4), Content(4, kChunk)).ok());
  EXPECT_EQ(Read(*store, Id(4)), Content(4, kChunk));
}

TEST_F(ObjectStoreTest, SpillFilesGoWithTheirObjectsAndTheDirectoryWithTheStore) {
  auto store = Open(2 * kChunk);
  const std::string dir = store->spill_dir();
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(store->Put(Id(i), Content(i, kChunk)).ok());
  EXPECT_FALSE(std::filesystem::exists(dir));  // made on the first spill
  for (int i = 2; i < 6; ++i) ASSERT_TRUE(store->Put(Id(i), Content(i, kChunk)).ok());
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  EXPECT_EQ(store->stats().spilled_objects, 4u);
  EXPECT_EQ(CountFiles(dir), 4);
  // A restored object keeps its file until deleted (a second spill is free).
  EXPECT_EQ(Read(*store, Id(0)), Content(0, kChunk));
  EXPECT_EQ(CountFiles(dir), 5);  // restoring 0 spilled 4
  for (int i = 0; i < 6; ++i) store->Delete(Id(i));
  EXPECT_EQ(CountFiles(dir), 0);
  const ObjectStore::Stats stats = store->stats();
  EXPECT_EQ(stats.objects, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.spilled_bytes, 0u);
  EXPECT_EQ(stats.spilled_objects, 0u);

  ASSERT_TRUE(store->Put(Id(7), Content(7, kChunk)).ok());
  ASSERT_TRUE(store->Put(Id(8), Content(8, kChunk)).ok());
  ASSERT_TRUE(store->Put(Id(9), Content(9, kChunk)).ok());
  EXPECT_EQ(CountFiles(dir), 1);
  store.reset();
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(ObjectStoreTest, AnObjectLargerThanTheArenaLivesInItsSpillFile) {
  auto store = Open(kChunk);
  const uint64_t size = 5 * kChunk + 3;
  absl::StatusOr<ObjectStore::Writer> writer = store->Create(Id(1), size);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string content = Content(1, size);
  std::memcpy(writer->data(), content.data(), size);
  writer->Seal();
  EXPECT_EQ(Read(*store, Id(1)), content);
  ObjectStore::Stats stats = store->stats();
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_EQ(stats.objects, 1u);
  EXPECT_EQ(stats.spilled_bytes, size);
  EXPECT_EQ(CountFiles(store->spill_dir()), 1);
  // Such a copy of another worker's object is refused: the caller has the bytes.
  absl::Status secondary = store->Put(Id(2), content, Copy::kSecondary, "peer:1");
  EXPECT_EQ(secondary.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(secondary.message(), "larger than")) << secondary;
  // An aborted one leaves no file behind.
  ASSERT_TRUE(store->Create(Id(3), size).ok());
  EXPECT_EQ(CountFiles(store->spill_dir()), 1);
  store->Delete(Id(1));
  EXPECT_EQ(CountFiles(store->spill_dir()), 0);
  EXPECT_EQ(store->stats().spilled_bytes, 0u);
}

TEST_F(ObjectStoreTest, ConcurrentReadersAndWritersUnderMemoryPressure) {
  constexpr uint64_t kCapacity = 1 << 20;
  auto store = Open(kCapacity);
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 150;
  std::atomic<bool> over_limit{false};
  std::atomic<int> bad_reads{0};
  std::atomic<int> written{0};
  auto size_of = [](uint64_t i) { return (16 + i % 48) * kKiB; };
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t n = 0; n < kPerWriter; ++n) {
        const uint64_t i = t * 1000 + n;
        absl::Status put = store->Put(Id(i), Content(i, size_of(i)),
                                      n % 3 == 0 ? Copy::kSecondary : Copy::kPrimary, "peer:1");
        if (!put.ok()) {
          ADD_FAILURE() << put;
          continue;
        }
        written++;
        if (store->stats().bytes > kCapacity) over_limit = true;
        if (n % 4 == 0) store->Delete(Id(i));
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 random(r);
      while (written.load() < kWriters * kPerWriter) {
        const uint64_t i = (random() % kWriters) * 1000 + random() % kPerWriter;
        absl::StatusOr<ObjectStore::View> view = store->Get(Id(i));
        if (!view.ok()) continue;  // not written yet, deleted or evicted
        if (view->bytes() != Content(i, size_of(i))) bad_reads++;
        if (store->stats().bytes > kCapacity) over_limit = true;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(over_limit.load());
  EXPECT_EQ(bad_reads.load(), 0);
  // Every primary that was not deleted is still there, intact.
  uint64_t expected_objects = 0;
  for (int t = 0; t < kWriters; ++t) {
    for (uint64_t n = 0; n < kPerWriter; ++n) {
      const uint64_t i = t * 1000 + n;
      if (n % 4 == 0) {
        EXPECT_FALSE(store->Contains(Id(i)));
      } else if (n % 3 != 0) {
        ASSERT_EQ(Read(*store, Id(i)), Content(i, size_of(i))) << i;
        expected_objects++;
      } else if (store->Contains(Id(i))) {
        expected_objects++;  // a secondary not evicted
      }
    }
  }
  const ObjectStore::Stats stats = store->stats();
  EXPECT_EQ(stats.objects, expected_objects);
  EXPECT_LE(stats.peak_bytes, kCapacity);
  EXPECT_GT(stats.spills, 0u);
  EXPECT_GT(stats.evictions, 0u);
  EXPECT_EQ(CountFiles(store->spill_dir()), static_cast<int>(stats.spilled_objects));
}

TEST(ObjectStoreDefaultsTest, DefaultMemoryIsAFractionOfThisMachine) {
  const uint64_t physical =
      static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  EXPECT_GT(DefaultStoreMemoryBytes(), 0u);
  EXPECT_LE(DefaultStoreMemoryBytes(), physical / 10 * 3 + (64 << 20));
}

}  // namespace
}  // namespace fleet::worker
