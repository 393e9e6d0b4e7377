#include "worker/object_store.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace fleet::worker {
namespace {

ObjectId Id(uint64_t i) { return ObjectId::Of(TaskId::Of(JobId(), i), 0); }
ObjectBytes Bytes(std::size_t n, char c = 'x') {
  return std::make_shared<const std::string>(n, c);
}

TEST(ObjectStoreTest, PutGetDelete) {
  ObjectStore store;
  store.Put(Id(1), Bytes(10, 'a'));
  absl::StatusOr<ObjectBytes> got = store.Get(Id(1));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(**got, std::string(10, 'a'));
  EXPECT_TRUE(store.Contains(Id(1)));
  store.Delete(Id(1));
  EXPECT_FALSE(store.Contains(Id(1)));
  EXPECT_EQ(store.Get(Id(1)).status().code(), absl::StatusCode::kNotFound);
  // The reader's copy outlives the deletion.
  EXPECT_EQ(**got, std::string(10, 'a'));
}

TEST(ObjectStoreTest, AccountsBytesObjectsAndPeak) {
  ObjectStore store;
  store.Put(Id(1), Bytes(100));
  store.Put(Id(2), Bytes(50));
  store.Put(Id(2), Bytes(70));  // immutable: the first copy stays
  EXPECT_EQ(store.stats().bytes, 150u);
  EXPECT_EQ(store.stats().objects, 2u);
  EXPECT_EQ((*store.Get(Id(2)))->size(), 50u);
  store.Delete(Id(1));
  store.Delete(Id(1));
  EXPECT_EQ(store.stats().bytes, 50u);
  EXPECT_EQ(store.stats().objects, 1u);
  EXPECT_EQ(store.stats().peak_bytes, 150u);
}

TEST(ObjectStoreTest, ConcurrentReadersAndWriters) {
  ObjectStore store;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (uint64_t i = 0; i < 1000; ++i) {
        const ObjectId id = Id(t * 1000 + i);
        store.Put(id, Bytes(8));
        EXPECT_TRUE(store.Get(id).ok());
        if (i % 2 == 0) store.Delete(id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store.stats().objects, 2000u);
  EXPECT_EQ(store.stats().bytes, 16000u);
}

}  // namespace
}  // namespace fleet::worker
