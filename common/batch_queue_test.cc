#include "common/batch_queue.h"

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

TEST(BatchQueueTest, AClosedQueueIsDrainedThenTheWriterIsToldToEndTheWrites) {
  BatchQueue<Batch> q;
  for (int i = 0; i < 5; ++i) AddRelease(q, nullptr);
  q.Close();
  bool start = true;
  AddRelease(q, &start);  // refused: closed
  EXPECT_FALSE(start);
  bool closed_and_drained = true;
  std::optional<Batch> batch = q.TakeForWrite(&closed_and_drained);
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->release_size(), 5);
  EXPECT_FALSE(closed_and_drained);
  EXPECT_FALSE(q.TakeForWrite(&closed_and_drained).has_value());
  EXPECT_TRUE(closed_and_drained);
  // The writer kept its role: no one else can claim it to end the writes twice.
  EXPECT_FALSE(q.ClaimIdleWriter());
}

TEST(BatchQueueTest, AnIdleWriterRoleCanBeClaimedOnce) {
  BatchQueue<Batch> q;
  EXPECT_TRUE(q.ClaimIdleWriter());
  EXPECT_FALSE(q.ClaimIdleWriter());
  bool start = true;
  AddRelease(q, &start);  // the claimer writes it
  EXPECT_FALSE(start);
  EXPECT_EQ(q.TakeForWrite()->release_size(), 1);
  EXPECT_FALSE(q.TakeForWrite().has_value());  // gives the role back
  EXPECT_TRUE(q.ClaimIdleWriter());
}

// Whether the next batch's first element reused the room of a recycled one
// that had held `kLong` bytes.
constexpr std::size_t kLong = 4096;
bool NextBatchReusesTheRecycledOne(std::size_t written_bytes,
                                   std::size_t max_spare_bytes = kDefaultMaxSpareBytes) {
  BatchQueue<Batch> q(kDefaultBatchCapBytes, max_spare_bytes);
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
  // Unless the queue keeps spares that large.
  EXPECT_TRUE(NextBatchReusesTheRecycledOne(1 << 20, /*max_spare_bytes=*/4 << 20));
}

// A written batch whose one element held a string of `room` bytes.
Batch WrittenBatch(BatchQueue<Batch>& q, std::size_t room) {
  q.Add(room, [room](Batch& b) { b.add_release(std::string(room, 'a')); });
  std::optional<Batch> written = q.TakeForWrite();
  EXPECT_TRUE(written.has_value());
  return written.has_value() ? std::move(*written) : Batch();
}

// The room of the first element of the next batch started.
std::size_t NextBatchRoom(BatchQueue<Batch>& q) {
  AddRelease(q, nullptr);
  std::optional<Batch> next = q.TakeForWrite();
  EXPECT_TRUE(next.has_value());
  return next.has_value() && next->release_size() == 1 ? next->release(0).capacity() : 0;
}

TEST(BatchQueueTest, TwoSparesHoldTheTwoBatchesAfterAnIdleStream) {
  // A stream restarting from idle writes one item alone while the next
  // batch fills: both are built in recycled memory.
  BatchQueue<Batch> q;
  Batch first = WrittenBatch(q, kLong);
  Batch second = WrittenBatch(q, kLong);
  q.Recycle(std::move(first), kLong);
  q.Recycle(std::move(second), kLong);
  EXPECT_GE(NextBatchRoom(q), kLong);
  EXPECT_GE(NextBatchRoom(q), kLong);
  EXPECT_LT(NextBatchRoom(q), kLong);  // no third spare
}

TEST(BatchQueueTest, TheLargerSparesAreKeptAndTheLargestUsedFirst) {
  BatchQueue<Batch> q;
  Batch small = WrittenBatch(q, 64);
  Batch large = WrittenBatch(q, kLong);
  Batch middle = WrittenBatch(q, 1024);
  q.Recycle(std::move(small), 64);
  q.Recycle(std::move(large), kLong);
  q.Recycle(std::move(middle), 1024);  // takes the small one's place
  EXPECT_GE(NextBatchRoom(q), kLong);
  const std::size_t room = NextBatchRoom(q);
  EXPECT_GE(room, 1024u);
  EXPECT_LT(room, kLong);
}

TEST(BatchQueueTest, AWholeMessageMergedIntoTheOpenBatchIsKeptForTheNextOne) {
  BatchQueue<Batch> q;
  AddRelease(q, nullptr);  // opens a batch (and a write)
  Batch whole;
  whole.add_release(std::string(kLong, 'a'));
  EXPECT_FALSE(q.AddWhole(kLong, std::move(whole)));
  Batch spare = q.TakeSpare();
  ASSERT_EQ(spare.release_size(), 0);  // cleared: nothing is sent twice
  EXPECT_GE(spare.mutable_release()->Add()->capacity(), kLong);
  // A message that became the batch itself is not also a spare.
  BatchQueue<Batch> idle;
  Batch alone;
  alone.add_release(std::string(kLong, 'a'));
  EXPECT_TRUE(idle.AddWhole(kLong, std::move(alone)));
  EXPECT_EQ(idle.TakeSpare().mutable_release()->Add()->capacity(), std::string().capacity());
  EXPECT_EQ(idle.TakeForWrite()->release(0).size(), kLong);
}

}  // namespace
}  // namespace fleet
