#include "scheduler/lineage.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fleet::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Lineage::Entry EntryOf(const TaskId& id, std::size_t arg_bytes) {
  Lineage::Entry entry;
  entry.spec.set_task_id(std::string(id.Binary()));
  entry.spec.add_args()->set_value(std::string(arg_bytes, 'v'));
  return entry;
}

std::vector<TaskId> Ids(const std::vector<std::pair<TaskId, Lineage::Entry>>& evicted) {
  std::vector<TaskId> ids;
  for (const auto& [id, entry] : evicted) ids.push_back(id);
  return ids;
}

TEST(LineageTest, AnEntryStaysUntilItsLastLiveResultIsReleased) {
  Lineage lineage(1 << 20);
  const TaskId t = TaskId::Of(JobId::Random(), 1);
  EXPECT_THAT(lineage.Retain(t, EntryOf(t, 10), /*live_returns=*/2), IsEmpty());
  EXPECT_GT(lineage.bytes(), 10u);
  EXPECT_EQ(lineage.ReleaseReturn(t), std::nullopt);
  EXPECT_TRUE(lineage.Contains(t));
  std::optional<Lineage::Entry> last = lineage.ReleaseReturn(t);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->spec.task_id(), t.Binary());
  EXPECT_FALSE(lineage.Contains(t));
  EXPECT_EQ(lineage.bytes(), 0u);
}

TEST(LineageTest, EvictsTheOldestBeyondItsBound) {
  const JobId job = JobId::Random();
  const TaskId a = TaskId::Of(job, 1), b = TaskId::Of(job, 2), c = TaskId::Of(job, 3);
  Lineage probe(1 << 20);
  probe.Retain(a, EntryOf(a, 1000), 1);
  const uint64_t one = probe.bytes();

  Lineage lineage(2 * one);
  EXPECT_THAT(lineage.Retain(a, EntryOf(a, 1000), 1), IsEmpty());
  EXPECT_THAT(lineage.Retain(b, EntryOf(b, 1000), 1), IsEmpty());
  EXPECT_THAT(Ids(lineage.Retain(c, EntryOf(c, 1000), 1)), ElementsAre(a));
  EXPECT_EQ(lineage.evicted(), 1u);
  EXPECT_LE(lineage.bytes(), 2 * one);
  // Taking one out (to run it again) frees its place.
  EXPECT_TRUE(lineage.Take(b).has_value());
  EXPECT_EQ(lineage.Find(b), nullptr);
  EXPECT_THAT(lineage.Retain(a, EntryOf(a, 1000), 1), IsEmpty());
  // An entry larger than the whole bound is evicted at once, last.
  EXPECT_THAT(Ids(lineage.Retain(b, EntryOf(b, 10 * one), 1)), ElementsAre(c, a, b));
  EXPECT_EQ(lineage.size(), 0u);
  EXPECT_EQ(lineage.bytes(), 0u);
}

}  // namespace
}  // namespace fleet::scheduler
