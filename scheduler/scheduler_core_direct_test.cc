// Direct tasks: a client hands a task to an idle worker on its host itself
// and submits it with direct_worker_id; the worker's report carries the
// spec (TaskCompleted.direct_spec). Either message may reach the core
// first, and either records the task.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler_core.h"
#include "scheduler/scheduler_core_test_fixture.h"

namespace fleet::scheduler {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class DirectTaskTest : public SchedulerCoreTest {
 protected:
  // A task its client handed to `worker`.
  v1::TaskSpec DirectSpec(const WorkerId& worker, const std::vector<ObjectId>& deps = {}) {
    v1::TaskSpec spec = NewSpec(deps);
    spec.set_direct_worker_id(std::string(worker.Binary()));
    return spec;
  }

  static TaskId IdOf(const v1::TaskSpec& spec) { return *TaskId::FromBinary(spec.task_id()); }

  // The worker's report on a task its client handed it: run (the value
  // pushed to the client already) or declined.
  void Report(const WorkerId& worker, const v1::TaskSpec& spec, const std::string& value,
              bool declined = false, Result how = Result::kInline) {
    v1::TaskCompleted done;
    done.set_task_id(spec.task_id());
    done.set_attempt(kFirstAttempt);
    *done.mutable_direct_spec() = spec;
    if (declined) {
      done.set_declined(true);
    } else {
      done.set_run_time_us(50);
      done.set_delivered_to_owner(how != Result::kStoredOnly);
      v1::ObjectInfo* result = done.add_results();
      result->set_object_id(std::string(ObjectId::Of(IdOf(spec), 0).Binary()));
      result->set_size_bytes(value.size());
      if (how != Result::kStoredOnly) result->set_inline_value(value);
    }
    EXPECT_TRUE(core_.TaskCompleted(worker, done).ok());
  }
};

TEST_F(DirectTaskTest, SubmissionFirstIsRecordedAsRunningOnItsWorkerNotPlaced) {
  const WorkerId w = AddWorker(1);
  const v1::TaskSpec spec = DirectSpec(w);
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  core_.Dispatch();
  EXPECT_THAT(out_.assigned[w], IsEmpty());
  ClusterSnapshot snapshot = core_.Snapshot();
  EXPECT_EQ(snapshot.tasks_assigned, 1u);
  EXPECT_EQ(snapshot.tasks_run_directly, 1u);

  Report(w, spec, "r");
  snapshot = core_.Snapshot();
  EXPECT_EQ(snapshot.tasks_assigned, 0u);
  EXPECT_EQ(snapshot.tasks_finished, 1u);
  // The worker pushed the value to the client: nothing is sent again.
  EXPECT_EQ(LastNotice(ObjectId::Of(IdOf(spec), 0)), nullptr);
  EXPECT_EQ(core_.NumTasksForTest(), 0u);
}

TEST_F(DirectTaskTest, ReportFirstRecordsTheTaskAndTheLateSubmissionIsADuplicate) {
  const WorkerId w = AddWorker(1);
  const v1::TaskSpec spec = DirectSpec(w);
  Report(w, spec, "r");
  ClusterSnapshot snapshot = core_.Snapshot();
  EXPECT_EQ(snapshot.tasks_submitted, 1u);
  EXPECT_EQ(snapshot.tasks_finished, 1u);
  EXPECT_EQ(snapshot.tasks_run_directly, 1u);
  EXPECT_EQ(core_.NumObjectsForTest(), 1u);  // the client holds it

  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  core_.Dispatch();
  EXPECT_THAT(out_.assigned, IsEmpty());  // not run a second time
  snapshot = core_.Snapshot();
  EXPECT_EQ(snapshot.tasks_submitted, 1u);
  EXPECT_EQ(snapshot.tasks_assigned, 0u);
  // The client's release then frees it, as any result.
  core_.ReleaseObject(kSession, ObjectId::Of(IdOf(spec), 0));
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
}

TEST_F(DirectTaskTest, DeclinedBeforeTheSubmissionIsPlacedAsAnyOther) {
  const WorkerId busy = AddWorker(1);
  const v1::TaskSpec spec = DirectSpec(busy);
  Report(busy, spec, "", /*declined=*/true);
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());  // a duplicate now
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[busy], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[busy][0]), IdOf(spec));
  EXPECT_TRUE(out_.assigned[busy][0].spec().direct_worker_id().empty());
  EXPECT_EQ(core_.Snapshot().tasks_run_directly, 0u);
  Complete(busy, IdOf(spec), out_.assigned[busy][0].attempt(), "r");
  EXPECT_EQ(LastNotice(ObjectId::Of(IdOf(spec), 0))->inline_value(), "r");
}

TEST_F(DirectTaskTest, DeclinedAfterTheSubmissionIsPlacedAsAnyOther) {
  const WorkerId busy = AddWorker(1);
  const v1::TaskSpec spec = DirectSpec(busy);
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  Report(busy, spec, "", /*declined=*/true);
  EXPECT_EQ(core_.Snapshot().tasks_ready, 1u);
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[busy], SizeIs(1));
  const uint32_t attempt = out_.assigned[busy][0].attempt();
  EXPECT_GT(attempt, kFirstAttempt);
  // Not charged to its retries: the decline ran nothing.
  EXPECT_EQ(core_.Snapshot().tasks_retried, 0u);
  Complete(busy, IdOf(spec), attempt, "r");
  EXPECT_EQ(LastNotice(ObjectId::Of(IdOf(spec), 0))->inline_value(), "r");
}

TEST_F(DirectTaskTest, ItsWorkerDyingRunsItElsewhere) {
  const WorkerId w1 = AddWorker(1);
  const WorkerId w2 = AddWorker(1);
  const v1::TaskSpec spec = DirectSpec(w1);
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  core_.RemoveWorker(w1, "killed");
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w2], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[w2][0]), IdOf(spec));
  Complete(w2, IdOf(spec), out_.assigned[w2][0].attempt(), "from w2");
  EXPECT_EQ(LastNotice(ObjectId::Of(IdOf(spec), 0))->inline_value(), "from w2");
}

TEST_F(DirectTaskTest, SubmissionNamingAWorkerGoneIsPlaced) {
  const WorkerId w = AddWorker(1);
  const v1::TaskSpec spec = DirectSpec(WorkerId::Random());
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(1));
  EXPECT_EQ(core_.Snapshot().tasks_run_directly, 0u);
}

TEST_F(DirectTaskTest, OnlyTasksWithInlineArgumentsAreRecordedAsHandedOver) {
  const WorkerId w = AddWorker(2);
  const ObjectId put = PutOn(w);
  const v1::TaskSpec spec = DirectSpec(w, {put});
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(1));  // placed, with where its argument is
  EXPECT_THAT(out_.assigned[w][0].arg_objects(), SizeIs(1));
  EXPECT_EQ(core_.Snapshot().tasks_run_directly, 0u);
}

TEST_F(DirectTaskTest, ReportForAJobWithoutSessionFreesItsStoredResult) {
  const WorkerId w = AddWorker(1);
  v1::TaskSpec spec = DirectSpec(w);
  const TaskId stranger = TaskId::Of(JobId::Random(), 1);
  spec.set_task_id(std::string(stranger.Binary()));
  Report(w, spec, std::string(200 << 10, 'x'), /*declined=*/false, Result::kStoredOnly);
  EXPECT_THAT(out_.freed[w], Contains(ObjectId::Of(stranger, 0)));
  EXPECT_EQ(core_.NumTasksForTest(), 0u);
  EXPECT_EQ(core_.Snapshot().tasks_submitted, 0u);
}

}  // namespace
}  // namespace fleet::scheduler
