#include "common/ids.h"

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

TEST(IdsTest, RandomJobIdsDiffer) {
  absl::flat_hash_set<JobId> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(JobId::Random()).second);
  EXPECT_FALSE(JobId::Random().IsNil());
}

TEST(IdsTest, TaskIdHoldsJobAndIndex) {
  const JobId job = JobId::Random();
  const TaskId task = TaskId::Of(job, 0x0102030405060708ull);
  EXPECT_EQ(task.job(), job);
  EXPECT_EQ(task.index(), 0x0102030405060708ull);
  EXPECT_EQ(task.Binary().size(), TaskId::kSize);
  EXPECT_EQ(task.Short(), job.Hex().substr(0, 8) + ":" + std::to_string(task.index()));
}

TEST(IdsTest, ObjectIdHoldsTaskAndReturnIndex) {
  const TaskId task = TaskId::Of(JobId::Random(), 42);
  const ObjectId object = ObjectId::Of(task, 7);
  EXPECT_EQ(object.task(), task);
  EXPECT_EQ(object.return_index(), 7u);
  EXPECT_NE(ObjectId::Of(task, 0), object);
}

TEST(IdsTest, BinaryRoundTrip) {
  const ObjectId object = ObjectId::Of(TaskId::Of(JobId::Random(), 99), 1);
  absl::StatusOr<ObjectId> parsed = ObjectId::FromBinary(object.Binary());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, object);
  EXPECT_EQ(parsed->Hex(), object.Hex());
  EXPECT_EQ(object.Hex().size(), 2 * ObjectId::kSize);
}

TEST(IdsTest, FromBinaryRejectsWrongSize) {
  absl::StatusOr<TaskId> parsed = TaskId::FromBinary("too short");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("task id must be 24 bytes"), absl::string_view::npos);
}

TEST(IdsTest, DistinctIndexesGiveDistinctIds) {
  const JobId job = JobId::Random();
  absl::flat_hash_set<TaskId> seen;
  for (uint64_t i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(TaskId::Of(job, i)).second);
}

}  // namespace
}  // namespace fleet
