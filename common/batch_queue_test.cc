#include "common/batch_queue.h"

#include <thread>

#include "fleet/v1/scheduler.pb.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

using Batch = v1::ClientToScheduler;

void AddRelease(BatchQueue<Batch>& q, bool* start, std::size_t bytes = 30) {
  bool s = q.Add(bytes, [](Batch& b) { b.add_release("x"); });
  if (start != nullptr) *start = s;
}

TEST(BatchQueueTest, FirstAddAsksForAWriteLaterAddsJoinTheBatch) {
  BatchQueue<Batch> q;
  bool start = false;
  AddRelease(q, &start);
  EXPECT_TRUE(start);
  AddRelease(q, &start);
  EXPECT_FALSE(start);
  AddRelease(q, &start);
  EXPECT_FALSE(start);
  std::optional<Batch> batch = q.TakeForWrite();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->release_size(), 3);
  // The writer found nothing more: idle again, so the next Add starts one.
  EXPECT_FALSE(q.TakeForWrite().has_value());
  AddRelease(q, &start);
  EXPECT_TRUE(start);
}

TEST(BatchQueueTest, AWholeMessageStartsABatchOrJoinsTheOpenOne) {
  BatchQueue<Batch> q;
  Batch two;
  two.add_release("a");
  two.add_release("b");
  EXPECT_TRUE(q.AddWhole(60, two));
  AddRelease(q, nullptr);
  EXPECT_FALSE(q.AddWhole(60, two));
  std::optional<Batch> batch = q.TakeForWrite();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->release_size(), 5);
  // Beyond the cap it starts the next batch.
  BatchQueue<Batch> capped(100);
  capped.AddWhole(60, two);
  capped.AddWhole(60, two);
  EXPECT_EQ(capped.TakeForWrite()->release_size(), 2);
  EXPECT_EQ(capped.TakeForWrite()->release_size(), 2);
}

TEST(BatchQueueTest, ItemsAddedDuringAWriteFormTheNextBatch) {
  BatchQueue<Batch> q;
  AddRelease(q, nullptr);
  std::optional<Batch> first = q.TakeForWrite();  // write in flight
  ASSERT_TRUE(first.has_value());
  bool start = true;
  AddRelease(q, &start);
  AddRelease(q, &start);
  EXPECT_FALSE(start);  // still writing: the writer picks these up
  std::optional<Batch> second = q.TakeForWrite();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->release_size(), 2);
}

TEST(BatchQueueTest, CapsBatchesInBytes) {
  BatchQueue<Batch> q(/*cap_bytes=*/100);
  for (int i = 0; i < 10; ++i) AddRelease(q, nullptr, /*bytes=*/30);
  int batches = 0;
  int items = 0;
  while (std::optional<Batch> b = q.TakeForWrite()) {
    ++batches;
    items += b->release_size();
    EXPECT_LE(b->release_size(), 3);
  }
  EXPECT_EQ(items, 10);
  EXPECT_EQ(batches, 4);
}

TEST(BatchQueueTest, ClosedQueueRefusesItemsAndReleasesTheWaitingWriter) {
  BatchQueue<Batch> q;
  std::optional<Batch> taken = Batch();
  std::thread writer([&] { taken = q.WaitAndTake(); });
  q.Close();
  writer.join();
  EXPECT_FALSE(taken.has_value());
  bool start = true;
  AddRelease(q, &start);
  EXPECT_FALSE(start);
  EXPECT_FALSE(q.WaitAndTake().has_value());
}

TEST(BatchQueueTest, ThreadWriterDrainsBeforeReportingClosed) {
  BatchQueue<Batch> q;
  for (int i = 0; i < 5; ++i) AddRelease(q, nullptr);
  q.Close();
  std::optional<Batch> batch = q.WaitAndTake();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->release_size(), 5);
  EXPECT_FALSE(q.WaitAndTake().has_value());
}

TEST(BatchQueueTest, ThreadWriterLingersWhileTheProducerSaysMoreFollow) {
  // A linger far longer than the test: only the producer's word ends it.
  BatchQueue<Batch> q(kDefaultBatchCapBytes, absl::Hours(1));
  q.Add(30, [](Batch& b) { b.add_release("first"); }, /*more_follow=*/true);
  std::optional<Batch> taken;
  std::thread writer([&] { taken = q.WaitAndTake(); });
  q.Add(30, [](Batch& b) { b.add_release("second"); }, /*more_follow=*/true);
  q.Add(30, [](Batch& b) { b.add_release("last"); }, /*more_follow=*/false);
  writer.join();
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->release_size(), 3);
}

TEST(BatchQueueTest, ThreadWriterTakesALoneItemAtOnceDespiteALinger) {
  BatchQueue<Batch> q(kDefaultBatchCapBytes, absl::Hours(1));
  q.Add(30, [](Batch& b) { b.add_release("alone"); }, /*more_follow=*/false);
  std::optional<Batch> batch = q.WaitAndTake();  // would hang for an hour if it lingered
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->release_size(), 1);
}

TEST(BatchQueueTest, ThreadWriterStopsLingeringWhenTheBatchReachesTheCap) {
  BatchQueue<Batch> q(/*cap_bytes=*/50, absl::Hours(1));
  q.Add(30, [](Batch& b) { b.add_release("a"); }, /*more_follow=*/true);
  q.Add(30, [](Batch& b) { b.add_release("b"); }, /*more_follow=*/true);  // starts a second batch
  std::optional<Batch> batch = q.WaitAndTake();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->release_size(), 1);
}

// Whether the next batch's first element reused the room of a recycled one
// that had held `kLong` bytes.
constexpr std::size_t kLong = 4096;
bool NextBatchReusesTheRecycledOne(std::size_t written_bytes) {
  BatchQueue<Batch> q;
  q.Add(kLong, [](Batch& b) { b.add_release(std::string(kLong, 'a')); });
  std::optional<Batch> written = q.TakeForWrite();
  if (!written.has_value()) return false;
  q.Recycle(std::move(*written), written_bytes);
  AddRelease(q, nullptr);
  std::optional<Batch> next = q.TakeForWrite();
  EXPECT_TRUE(next.has_value());
  EXPECT_EQ(next->release_size(), 1);  // cleared: nothing of the old batch is sent again
  EXPECT_EQ(next->release(0), "x");
  return next->release(0).capacity() >= kLong;
}

TEST(BatchQueueTest, ARecycledBatchHoldsTheNextOneInTheSameMemory) {
  EXPECT_TRUE(NextBatchReusesTheRecycledOne(kLong));
}

TEST(BatchQueueTest, ALargeBatchIsNotKeptForReuse) {
  EXPECT_FALSE(NextBatchReusesTheRecycledOne(1 << 20));
}

}  // namespace
}  // namespace fleet
