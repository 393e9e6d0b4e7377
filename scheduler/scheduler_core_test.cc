#include "scheduler/scheduler_core.h"

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler_core_test_fixture.h"

namespace fleet::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST_F(SchedulerCoreTest, ReadyTaskWaitsForAWorkerThenIsAssigned) {
  const TaskId t = Submit();
  core_.Dispatch();
  EXPECT_TRUE(out_.assigned.empty());
  EXPECT_EQ(core_.Snapshot().tasks_ready, 1u);
  const WorkerId w = AddWorker(2);
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[w][0]), t);
  EXPECT_EQ(out_.assigned[w][0].attempt(), 1u);
  EXPECT_EQ(core_.Snapshot().tasks_assigned, 1u);
}

TEST_F(SchedulerCoreTest, AnAssignmentCarriesNothingOfTheOneBeforeIt) {
  // The core builds each assignment where the last one was (its room is
  // reused): a task without ref args placed after one with a ref arg.
  const WorkerId w = AddWorker(4);
  const TaskId a = Submit();
  core_.Dispatch();
  Complete(w, a, 1, "result-a");
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  const TaskId c = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(3));
  EXPECT_EQ(TaskOf(out_.assigned[w][1]), b);
  EXPECT_THAT(out_.assigned[w][1].arg_objects(), SizeIs(1));
  const v1::TaskAssignment& third = out_.assigned[w][2];
  EXPECT_EQ(TaskOf(third), c);
  EXPECT_THAT(third.arg_objects(), IsEmpty());
  EXPECT_THAT(third.spec().args(), SizeIs(1));
  EXPECT_EQ(third.attempt(), 1u);
}

TEST_F(SchedulerCoreTest, TaskWaitsForItsArgumentInTheSchedulerNotOnAWorker) {
  const WorkerId w = AddWorker(4);
  const TaskId a = Submit();
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(1));  // only a: b is not ready
  EXPECT_EQ(core_.Snapshot().tasks_waiting, 1u);

  Complete(w, a, 1, "result-a");
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(2));
  const v1::TaskAssignment& second = out_.assigned[w][1];
  EXPECT_EQ(TaskOf(second), b);
  // The small value is inlined, so the worker needs no fetch.
  ASSERT_THAT(second.arg_objects(), SizeIs(1));
  EXPECT_EQ(second.arg_objects(0).inline_value(), "result-a");
  // And the owner got a's result pushed.
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(a, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->inline_value(), "result-a");
}

TEST_F(SchedulerCoreTest, ResultsTheWorkerDeliveredToTheOwnerAreNotSentAgain) {
  const WorkerId w = AddWorker(4);
  const TaskId a = Submit();
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  Complete(w, a, 1, "result-a", Result::kInline, /*delivered_to_owner=*/true);
  EXPECT_EQ(LastNotice(ObjectId::Of(a, 0)), nullptr) << "the owner has it already";
  // The scheduler still has the result: its dependent gets it inline.
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(2));
  EXPECT_EQ(TaskOf(out_.assigned[w][1]), b);
  ASSERT_THAT(out_.assigned[w][1].arg_objects(), SizeIs(1));
  EXPECT_EQ(out_.assigned[w][1].arg_objects(0).inline_value(), "result-a");
  // A stored result (no value to deliver) is still described to the owner.
  Complete(w, b, 1, "result-b", Result::kStoredOnly, /*delivered_to_owner=*/true);
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(b, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->location().worker_id(), w.Binary());
}

TEST_F(SchedulerCoreTest, SpreadsTasksOverWorkersByLoad) {
  const WorkerId w1 = AddWorker(2);
  const WorkerId w2 = AddWorker(2);
  for (int i = 0; i < 4; ++i) Submit();
  core_.Dispatch();
  EXPECT_THAT(out_.assigned[w1], SizeIs(2));
  EXPECT_THAT(out_.assigned[w2], SizeIs(2));
}

TEST_F(SchedulerCoreTest, QueuesOnlyABoundedAmountPerWorker) {
  const WorkerId w = AddWorker(1);
  for (int i = 0; i < 100; ++i) Submit();
  core_.Dispatch();
  const std::size_t first_round = out_.assigned[w].size();
  EXPECT_GE(first_round, 2u);  // pipelined: more than the one slot
  EXPECT_LT(first_round, 100u);
  EXPECT_EQ(core_.Snapshot().tasks_ready, 100u - first_round);
  // A completion frees room for more.
  Complete(w, TaskOf(out_.assigned[w][0]), 1, "x");
  core_.Dispatch();
  EXPECT_GT(out_.assigned[w].size(), first_round);
}

TEST_F(SchedulerCoreTest, ShortTasksDeepenThePipeline) {
  const WorkerId w = AddWorker(1);
  for (int i = 0; i < 1000; ++i) Submit();
  core_.Dispatch();
  const std::size_t before = out_.assigned[w].size();
  // Report very short run times: the worker's queue may grow.
  for (std::size_t i = 0; i < before; ++i) {
    v1::TaskCompleted done;
    done.set_task_id(out_.assigned[w][i].spec().task_id());
    done.set_attempt(1);
    done.set_run_time_us(5);
    done.add_results()->set_inline_value("x");
    ASSERT_TRUE(core_.TaskCompleted(w, done).ok());
  }
  core_.Dispatch();
  EXPECT_GT(out_.assigned[w].size() - before, before);
}

TEST_F(SchedulerCoreTest, TasksOfAFewMillisecondsQueueTwoPerSlotAndLongOnesOne) {
  const WorkerId w = AddWorker(1);
  for (int i = 0; i < 400; ++i) Submit();
  std::size_t completed = 0;
  // Runs tasks of `run_us` until the worker's average has settled, and
  // returns how many it holds then (running and queued).
  auto settle_at = [&](uint64_t run_us) {
    for (int round = 0; round < 100; ++round) {
      core_.Dispatch();
      v1::TaskCompleted done;
      done.set_task_id(out_.assigned[w][completed++].spec().task_id());
      done.set_attempt(1);
      done.set_run_time_us(run_us);
      done.add_results()->set_inline_value("x");
      EXPECT_TRUE(core_.TaskCompleted(w, done).ok());
    }
    core_.Dispatch();
    return out_.assigned[w].size() - completed;
  };
  // 10 ms tasks: one runs, one waits in the executor, one more behind it.
  EXPECT_EQ(settle_at(10'000), 3u);
  // 200 ms tasks: one runs, one waits.
  EXPECT_EQ(settle_at(200'000), 2u);
}

TEST_F(SchedulerCoreTest, PrefersTheWorkerHoldingTheArgumentBytes) {
  const WorkerId holder = AddWorker(2);
  const TaskId producer = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[holder], SizeIs(1));
  // A large result: not inlined, so it lives only on the holder.
  Complete(holder, producer, 1, std::string(1 << 20, 'x'), Result::kStoredOnly);
  const WorkerId other = AddWorker(2);
  const ObjectId big = ObjectId::Of(producer, 0);

  // Both consumers go to the holder although `other` is idle.
  Submit({big});
  core_.Dispatch();
  Submit({big});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[holder], SizeIs(3));
  EXPECT_TRUE(out_.assigned[other].empty());
  const v1::TaskAssignment& a = out_.assigned[holder].back();
  ASSERT_THAT(a.arg_objects(), SizeIs(1));
  EXPECT_EQ(a.arg_objects(0).location().worker_id(), holder.Binary());

  // With no idle slot left there, the next one goes to the idle worker and
  // is told where to fetch from.
  Submit({big});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[other], SizeIs(1));
  EXPECT_EQ(out_.assigned[other][0].arg_objects(0).location().worker_id(), holder.Binary());
  EXPECT_EQ(out_.assigned[other][0].arg_objects(0).location().address(), "10.0.0.1:7000");
}

TEST_F(SchedulerCoreTest, FailureChainsIntoDependents) {
  const WorkerId w = AddWorker(2);
  const TaskId a = Submit();
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  const TaskId c = Submit({ObjectId::Of(b, 0)});
  core_.Dispatch();
  Fail(w, a, 1);
  core_.Dispatch();
  const v1::ObjectInfo* notice_c = LastNotice(ObjectId::Of(c, 0));
  ASSERT_NE(notice_c, nullptr);
  ASSERT_TRUE(notice_c->has_failure());
  EXPECT_EQ(notice_c->failure().kind(), v1::TaskFailure::DEPENDENCY_FAILED);
  EXPECT_EQ(notice_c->failure().cause().kind(), v1::TaskFailure::DEPENDENCY_FAILED);
  EXPECT_EQ(notice_c->failure().cause().cause().kind(), v1::TaskFailure::USER_EXCEPTION);
  EXPECT_EQ(notice_c->failure().cause().cause().message(), "boom");
  EXPECT_EQ(core_.Snapshot().tasks_failed, 3u);
  EXPECT_EQ(core_.NumTasksForTest(), 0u);
  EXPECT_THAT(out_.assigned[w], SizeIs(1));  // b and c never ran
}

TEST_F(SchedulerCoreTest, SubmittingWithAFailedArgumentFailsAtOnce) {
  const WorkerId w = AddWorker(1);
  const TaskId a = Submit();
  core_.Dispatch();
  Fail(w, a, 1);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(b, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::DEPENDENCY_FAILED);
  EXPECT_EQ(notice->failure().cause().message(), "boom");
}

TEST_F(SchedulerCoreTest, UnknownArgumentFailsAsLost) {
  AddWorker(1);
  const ObjectId ghost = ObjectId::Of(TaskId::Of(job_, 999), 0);
  const TaskId t = Submit({ghost});
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(t, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::DEPENDENCY_FAILED);
  EXPECT_EQ(notice->failure().cause().kind(), v1::TaskFailure::OBJECT_LOST);
}

TEST_F(SchedulerCoreTest, ReleasedResultIsFreedOnItsWorker) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  Complete(w, t, 1, "v");
  EXPECT_EQ(core_.NumObjectsForTest(), 1u);
  core_.ReleaseObject(kSession, ObjectId::Of(t, 0));
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
  EXPECT_THAT(out_.freed[w], ::testing::ElementsAre(ObjectId::Of(t, 0)));
}

TEST_F(SchedulerCoreTest, ReleaseBeforeCompletionFreesOnCompletion) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  core_.ReleaseObject(kSession, ObjectId::Of(t, 0));
  EXPECT_EQ(core_.NumObjectsForTest(), 1u);  // still pending
  Complete(w, t, 1, "v");
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
  EXPECT_THAT(out_.freed[w], ::testing::ElementsAre(ObjectId::Of(t, 0)));
}

TEST_F(SchedulerCoreTest, ArgumentStaysUntilItsLastUserFinishes) {
  const WorkerId w = AddWorker(4);
  const TaskId a = Submit();
  core_.Dispatch();
  Complete(w, a, 1, "v");
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.ReleaseObject(kSession, ObjectId::Of(a, 0));  // the driver dropped its ref
  core_.Dispatch();
  EXPECT_TRUE(out_.freed[w].empty());
  Complete(w, b, 1, "w");
  EXPECT_THAT(out_.freed[w], ::testing::ElementsAre(ObjectId::Of(a, 0)));
}

TEST_F(SchedulerCoreTest, ClosingTheSessionReleasesItsReferences) {
  const WorkerId w = AddWorker(2);
  const TaskId a = Submit();
  const TaskId b = Submit();
  core_.Dispatch();
  Complete(w, a, 1, "v");
  core_.CloseSession(kSession);
  EXPECT_THAT(out_.freed[w], ::testing::ElementsAre(ObjectId::Of(a, 0)));
  Complete(w, b, 1, "v");  // finishes after the session left: freed at once
  EXPECT_THAT(out_.freed[w], SizeIs(2));
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
}

TEST_F(SchedulerCoreTest, ClosingTheSessionCancelsItsTasksNotYetOnAWorker) {
  const WorkerId w = AddWorker(1);
  std::vector<TaskId> tasks;
  for (int i = 0; i < 20; ++i) tasks.push_back(Submit());
  // One waits for an argument that will never come.
  const TaskId blocked = Submit({ObjectId::Of(tasks[19], 0)});
  core_.Dispatch();
  const std::size_t on_worker = out_.assigned[w].size();
  ASSERT_GT(on_worker, 0u);
  ASSERT_LT(on_worker, 20u);

  core_.CloseSession(kSession);
  EXPECT_EQ(core_.Snapshot().tasks_cancelled, 21 - on_worker);
  EXPECT_EQ(core_.NumTasksForTest(), on_worker);
  // Nothing more is dispatched, and the running ones' results are freed
  // as they arrive: nothing is left.
  core_.Dispatch();
  EXPECT_EQ(out_.assigned[w].size(), on_worker);
  for (const auto& a : std::vector<v1::TaskAssignment>(out_.assigned[w])) {
    Complete(w, TaskOf(a), 1, "r", Result::kStoredOnly);
  }
  EXPECT_EQ(core_.NumTasksForTest(), 0u);
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
  EXPECT_THAT(out_.freed[w], SizeIs(on_worker));
  (void)blocked;
}

TEST_F(SchedulerCoreTest, SubmissionsAreAdmittedOnlyWhileFewTasksArePending) {
  RecordingOutput out;
  SchedulerConfig config;
  config.max_pending_tasks = 5;
  SchedulerCore core(config, &out, &clock_);
  v1::OpenSession open;
  open.set_job_id(std::string(job_.Binary()));
  ASSERT_TRUE(core.OpenSession(kSession, open).ok());
  auto submit = [&](uint64_t index) {
    v1::TaskSpec spec;
    spec.set_task_id(std::string(TaskId::Of(job_, index).Binary()));
    spec.set_function_name("f");
    EXPECT_TRUE(core.SubmitTask(kSession, spec).ok());
  };
  for (uint64_t i = 1; i <= 4; ++i) submit(i);
  core.Dispatch();
  EXPECT_THAT(out.admitted[kSession], ::testing::ElementsAre(4u));

  // Over the limit (no worker runs anything): nothing more is admitted.
  for (uint64_t i = 5; i <= 10; ++i) submit(i);
  core.Dispatch();
  EXPECT_THAT(out.admitted[kSession], ::testing::ElementsAre(4u));

  // Tasks finish, the scheduler holds few enough again, and admits them all.
  const WorkerId w = WorkerId::Random();
  v1::RegisterWorker reg;
  reg.set_worker_id(std::string(w.Binary()));
  reg.set_address("10.0.0.9:7000");
  (*reg.mutable_resources()->mutable_quantities())["CPU"] = 8;
  ASSERT_TRUE(core.AddWorker(reg).ok());
  core.Dispatch();
  for (const v1::TaskAssignment& a : std::vector<v1::TaskAssignment>(out.assigned[w])) {
    if (core.NumTasksForTest() <= 5) break;
    v1::TaskCompleted done;
    done.set_task_id(a.spec().task_id());
    done.set_attempt(a.attempt());
    done.add_results()->set_inline_value("r");
    ASSERT_TRUE(core.TaskCompleted(w, done).ok());
  }
  core.Dispatch();
  EXPECT_THAT(out.admitted[kSession], ::testing::ElementsAre(4u, 10u));
}

TEST_F(SchedulerCoreTest, CancelFailsQueuedAndRunningTasksAndFreesLateResults) {
  const WorkerId w = AddWorker(1);
  const TaskId running = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(::testing::Ge(1u)));
  ASSERT_EQ(TaskOf(out_.assigned[w][0]), running);
  const TaskId dependent = Submit({ObjectId::Of(running, 0)});

  core_.CancelTask(kSession, running);
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(running, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::CANCELLED);
  const v1::ObjectInfo* chained = LastNotice(ObjectId::Of(dependent, 0));
  ASSERT_NE(chained, nullptr);
  EXPECT_EQ(chained->failure().kind(), v1::TaskFailure::DEPENDENCY_FAILED);
  EXPECT_EQ(chained->failure().cause().kind(), v1::TaskFailure::CANCELLED);
  EXPECT_EQ(core_.Snapshot().tasks_cancelled, 1u);

  // The running call still finishes on its worker: its result is dropped
  // there, and the task's ref keeps saying cancelled.
  Complete(w, running, 1, "late", Result::kStoredOnly);
  EXPECT_THAT(out_.freed[w], ::testing::Contains(ObjectId::Of(running, 0)));
  EXPECT_EQ(LastNotice(ObjectId::Of(running, 0))->failure().kind(), v1::TaskFailure::CANCELLED);

  // Cancelling what already finished, or another session's task, does nothing.
  const TaskId done = Submit();
  core_.Dispatch();
  Complete(w, done, 1, "ok");
  core_.CancelTask(kSession, done);
  core_.CancelTask(kSession + 1, Submit());
  EXPECT_EQ(LastNotice(ObjectId::Of(done, 0))->inline_value(), "ok");
  EXPECT_EQ(core_.Snapshot().tasks_cancelled, 1u);
}

TEST_F(SchedulerCoreTest, DeadWorkersTasksAreRetriedElsewhere) {
  const WorkerId w1 = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w1], SizeIs(1));
  const WorkerId w2 = AddWorker(1);
  core_.RemoveWorker(w1, "test");
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w2], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[w2][0]), t);
  EXPECT_EQ(out_.assigned[w2][0].attempt(), 2u);
  // A late completion from the dead worker is ignored; the live one counts.
  Complete(w1, t, 1, "stale");
  EXPECT_EQ(LastNotice(ObjectId::Of(t, 0)), nullptr);
  Complete(w2, t, 2, "fresh");
  ASSERT_NE(LastNotice(ObjectId::Of(t, 0)), nullptr);
  EXPECT_EQ(LastNotice(ObjectId::Of(t, 0))->inline_value(), "fresh");
  EXPECT_EQ(core_.Snapshot().tasks_retried, 1u);
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 0u);
}

TEST_F(SchedulerCoreTest, SilentWorkerIsDeclaredDeadAndItsTasksRunElsewhere) {
  const WorkerId quiet = AddWorker(1);
  const WorkerId alive = AddWorker(1);
  Submit();
  Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[quiet], SizeIs(1));
  const TaskId on_quiet = TaskOf(out_.assigned[quiet][0]);

  // Both heard from within the timeout: nobody expires.
  clock_.Advance(core_.config().heartbeat_timeout - absl::Seconds(1));
  core_.Heartbeat(alive, v1::Heartbeat());
  EXPECT_THAT(core_.ExpireSilentWorkers(), IsEmpty());

  // Past it, only the silent one goes, with a reason that names the timeout.
  clock_.Advance(absl::Seconds(2));
  const auto expired = core_.ExpireSilentWorkers();
  ASSERT_THAT(expired, SizeIs(1));
  EXPECT_EQ(expired[0].first, quiet);
  EXPECT_THAT(expired[0].second, HasSubstr("no heartbeat"));
  EXPECT_THAT(expired[0].second, HasSubstr("heartbeat_timeout"));
  EXPECT_EQ(core_.Snapshot().workers.size(), 1u);

  // Its task runs on the live worker as attempt 2; its late result is ignored.
  Complete(alive, TaskOf(out_.assigned[alive][0]), 1, "first");
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[alive], SizeIs(2));
  EXPECT_EQ(TaskOf(out_.assigned[alive][1]), on_quiet);
  EXPECT_EQ(out_.assigned[alive][1].attempt(), 2u);
  Complete(quiet, on_quiet, 1, "late");
  EXPECT_EQ(LastNotice(ObjectId::Of(on_quiet, 0)), nullptr);
}

TEST_F(SchedulerCoreTest, ExceptionsAreRetriedOnlyWhenTheTaskAsks) {
  const WorkerId w = AddWorker(1);
  const TaskId plain = Submit();
  core_.Dispatch();
  Fail(w, plain, 1);
  ASSERT_NE(LastNotice(ObjectId::Of(plain, 0)), nullptr);
  EXPECT_EQ(LastNotice(ObjectId::Of(plain, 0))->failure().attempt(), 1u);

  const TaskId retried = TaskId::Of(job_, ++tasks_);
  v1::TaskSpec spec;
  spec.set_task_id(std::string(retried.Binary()));
  spec.set_function_name("f");
  spec.set_max_retries(1);
  spec.set_retry_exceptions(true);
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  core_.Dispatch();
  Fail(w, retried, 1);
  EXPECT_EQ(LastNotice(ObjectId::Of(retried, 0)), nullptr) << "failed without its retry";
  core_.Dispatch();
  ASSERT_EQ(out_.assigned[w].back().attempt(), 2u);
  Fail(w, retried, 2);  // the one retry is used up
  ASSERT_NE(LastNotice(ObjectId::Of(retried, 0)), nullptr);
  EXPECT_EQ(LastNotice(ObjectId::Of(retried, 0))->failure().attempt(), 2u);
}

// Found by the chaos suite: every task that failed on a worker was counted
// off that worker twice, so its count went below zero (/status showed
// negative tasks_assigned), and placement and drains trusted a wrong count.
TEST_F(SchedulerCoreTest, TaskThatFailsOnAWorkerIsCountedOffItOnce) {
  const WorkerId w = AddWorker(1);
  const TaskId failing = Submit();
  core_.Dispatch();
  Fail(w, failing, 1);
  ASSERT_NE(LastNotice(ObjectId::Of(failing, 0)), nullptr) << "the task did not fail";
  ASSERT_THAT(core_.Snapshot().workers, SizeIs(1));
  EXPECT_EQ(core_.Snapshot().workers[0].assigned, 0);

  // The count stays that of the tasks it holds, which bounds its queue.
  for (int i = 0; i < 100; ++i) Submit();
  core_.Dispatch();
  const int holds = static_cast<int>(out_.assigned[w].size()) - 1;
  EXPECT_LT(holds, 100) << "its queue is not bounded any more";
  EXPECT_EQ(core_.Snapshot().workers[0].assigned, holds);
}

TEST_F(SchedulerCoreTest, RetriesRunOutIntoAClearFailure) {
  const TaskId t = Submit();
  for (int attempt = 1; attempt <= 4; ++attempt) {
    const WorkerId w = AddWorker(1);
    core_.Dispatch();
    ASSERT_THAT(out_.assigned[w], SizeIs(1)) << "attempt " << attempt;
    core_.RemoveWorker(w, "killed");
  }
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(t, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::WORKER_DIED);
  EXPECT_EQ(notice->failure().attempt(), 4u);
}

TEST_F(SchedulerCoreTest, HeldResultWhoseOnlyCopyDiedIsRebuiltByItsTask) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  CompleteLarge(w, t);
  const WorkerId other = AddWorker(1);
  core_.RemoveWorker(w, "killed");
  EXPECT_THAT(out_.left[kSession], ::testing::ElementsAre(w));
  core_.Dispatch();
  // The same task id runs again, as a new attempt, on the live worker.
  ASSERT_THAT(out_.assigned[other], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[other][0]), t);
  EXPECT_EQ(out_.assigned[other][0].attempt(), 2u);
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 1u);
  CompleteLarge(other, t);
  // The owner is told where the rebuilt copy is; it never saw a failure.
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(t, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_FALSE(notice->has_failure());
  EXPECT_EQ(notice->location().worker_id(), other.Binary());
  for (const auto& info : out_.notified[kSession]) EXPECT_FALSE(info.has_failure());
}

TEST_F(SchedulerCoreTest, LostIntermediateOfAChainIsRebuiltRecursively) {
  const WorkerId doomed = AddWorker(2);
  const TaskId a = Submit();
  core_.Dispatch();
  CompleteLarge(doomed, a);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  CompleteLarge(doomed, b);
  // The driver keeps only b's ref: a's copy is freed, its lineage kept.
  core_.ReleaseObject(kSession, ObjectId::Of(a, 0));
  EXPECT_THAT(out_.freed[doomed], ::testing::ElementsAre(ObjectId::Of(a, 0)));
  EXPECT_EQ(core_.NumLineageForTest(), 2u);

  // c is submitted, then b's only copy dies before c runs.
  const TaskId c = Submit({ObjectId::Of(b, 0)});
  const WorkerId survivor = AddWorker(2);
  core_.RemoveWorker(doomed, "killed");
  core_.Dispatch();
  // b needs a, which is gone too: a runs first, b and c wait.
  ASSERT_THAT(out_.assigned[survivor], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[survivor][0]), a);
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 2u);
  EXPECT_EQ(core_.Snapshot().tasks_waiting, 2u);

  CompleteLarge(survivor, a);
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[survivor], SizeIs(2));
  EXPECT_EQ(TaskOf(out_.assigned[survivor][1]), b);
  EXPECT_EQ(out_.assigned[survivor][1].arg_objects(0).location().worker_id(), survivor.Binary());
  CompleteLarge(survivor, b);
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[survivor], SizeIs(3));
  EXPECT_EQ(TaskOf(out_.assigned[survivor][2]), c);
  Complete(survivor, c, 1, "c");
  ASSERT_NE(LastNotice(ObjectId::Of(c, 0)), nullptr);
  EXPECT_EQ(LastNotice(ObjectId::Of(c, 0))->inline_value(), "c");
  for (const auto& info : out_.notified[kSession]) EXPECT_FALSE(info.has_failure());
  // a's rebuilt copy is freed again once b is rebuilt: nothing reads it.
  EXPECT_THAT(out_.freed[survivor], ::testing::Contains(ObjectId::Of(a, 0)));
}

TEST_F(SchedulerCoreTest, LostObjectNobodyNeedsIsNotRebuilt) {
  const WorkerId doomed = AddWorker(1);
  const TaskId a = Submit();
  const TaskId unread = Submit();
  core_.Dispatch();
  CompleteLarge(doomed, a);
  CompleteLarge(doomed, unread);
  core_.ReleaseObject(kSession, ObjectId::Of(unread, 0));
  const TaskId busy = Submit();  // takes the doomed worker's slot
  core_.Dispatch();
  // b, made from a on another worker, is held; a is not.
  const WorkerId survivor = AddWorker(1);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[survivor], SizeIs(1));
  CompleteLarge(survivor, b);
  core_.ReleaseObject(kSession, ObjectId::Of(a, 0));

  // a's worker dies: b still has its copy, so only the task that was
  // running there runs again.
  core_.RemoveWorker(doomed, "killed");
  core_.Dispatch();
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 0u);
  ASSERT_THAT(out_.assigned[survivor], SizeIs(2));
  EXPECT_EQ(TaskOf(out_.assigned[survivor][1]), busy);
  EXPECT_EQ(LastNotice(ObjectId::Of(b, 0))->location().worker_id(), survivor.Binary());
  EXPECT_EQ(core_.NumTasksForTest(), 1u);
}

TEST_F(SchedulerCoreTest, LostPutObjectIsUploadedAgainByItsClient) {
  const WorkerId w = AddWorker(1);
  const ObjectId put = PutOn(w);
  core_.RemoveWorker(w, "killed by a test");
  ASSERT_THAT(out_.reupload[kSession], ::testing::ElementsAre(put));
  const TaskId user = Submit({put});
  const WorkerId other = AddWorker(1);
  core_.Dispatch();
  EXPECT_TRUE(out_.assigned[other].empty());  // it waits for the value
  // The client stores it on `other` and says so, as a Put with the same id.
  v1::ObjectInfo again;
  again.set_object_id(std::string(put.Binary()));
  again.set_size_bytes(1 << 20);
  again.mutable_location()->set_worker_id(std::string(other.Binary()));
  ASSERT_TRUE(core_.PutObject(kSession, again).ok());
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[other], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[other][0]), user);
  EXPECT_EQ(out_.assigned[other][0].arg_objects(0).location().worker_id(), other.Binary());
  EXPECT_EQ(LastNotice(put)->location().worker_id(), other.Binary());
}

TEST_F(SchedulerCoreTest, LostPutObjectFailsNamingTheObjectAndTheWorker) {
  const WorkerId w = AddWorker(1);
  const ObjectId put = PutOn(w);
  const TaskId user = Submit({put});
  core_.RemoveWorker(w, "killed by a test");
  const WorkerId other = AddWorker(1);
  core_.Dispatch();
  // Asked for the value again, the client no longer has it.
  ASSERT_THAT(out_.reupload[kSession], ::testing::ElementsAre(put));
  core_.PutNotReuploadable(kSession, put);
  core_.Dispatch();
  const v1::ObjectInfo* notice = LastNotice(put);
  ASSERT_NE(notice, nullptr);
  ASSERT_TRUE(notice->has_failure());
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::OBJECT_LOST);
  EXPECT_THAT(notice->failure().message(), HasSubstr(put.Short()));
  EXPECT_THAT(notice->failure().message(), HasSubstr(w.Short()));
  EXPECT_THAT(notice->failure().message(), HasSubstr("killed by a test"));
  EXPECT_THAT(notice->failure().message(), HasSubstr("Put"));
  // The task that needed it fails with that cause instead of running.
  const v1::ObjectInfo* user_notice = LastNotice(ObjectId::Of(user, 0));
  ASSERT_NE(user_notice, nullptr);
  EXPECT_EQ(user_notice->failure().kind(), v1::TaskFailure::DEPENDENCY_FAILED);
  EXPECT_EQ(user_notice->failure().cause().kind(), v1::TaskFailure::OBJECT_LOST);
  EXPECT_TRUE(out_.assigned[other].empty());
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 0u);
}

TEST_F(SchedulerCoreTest, LineageIsFreedWhenTheResultsAreReleased) {
  const WorkerId w = AddWorker(2);
  const TaskId a = Submit();
  core_.Dispatch();
  CompleteLarge(w, a);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  CompleteLarge(w, b);
  const TaskId c = Submit({ObjectId::Of(b, 0)});
  core_.Dispatch();
  CompleteLarge(w, c);
  core_.ReleaseObject(kSession, ObjectId::Of(a, 0));
  core_.ReleaseObject(kSession, ObjectId::Of(b, 0));
  // c may have to be rebuilt, and so b, and so a: all three specs stay,
  // but only c's bytes do.
  EXPECT_EQ(core_.NumLineageForTest(), 3u);
  EXPECT_EQ(core_.NumObjectsForTest(), 3u);
  EXPECT_THAT(out_.freed[w], SizeIs(2));
  EXPECT_GT(core_.Snapshot().lineage_bytes, 0u);

  core_.ReleaseObject(kSession, ObjectId::Of(c, 0));
  EXPECT_EQ(core_.NumLineageForTest(), 0u);
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
  EXPECT_EQ(core_.NumTasksForTest(), 0u);
  EXPECT_EQ(core_.Snapshot().lineage_bytes, 0u);
  EXPECT_THAT(out_.freed[w], SizeIs(3));
}

TEST_F(SchedulerCoreTest, TaskWhoseResultIsHeldInlineKeepsNoLineageYetItsValueServesARebuild) {
  const WorkerId doomed = AddWorker(2);
  const TaskId a = Submit();
  core_.Dispatch();
  Complete(doomed, a, 1, "small");  // cached by the scheduler: never lost
  EXPECT_EQ(core_.NumLineageForTest(), 0u);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  CompleteLarge(doomed, b);
  EXPECT_EQ(core_.NumLineageForTest(), 1u);  // b's result lives only on a worker
  // The driver drops a's ref: b's retained spec still takes a, so a's
  // value stays, as the only way to run b again.
  core_.ReleaseObject(kSession, ObjectId::Of(a, 0));
  EXPECT_EQ(core_.NumObjectsForTest(), 2u);

  const WorkerId survivor = AddWorker(2);
  core_.RemoveWorker(doomed, "killed");
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[survivor], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[survivor][0]), b);  // a does not run again
  EXPECT_EQ(out_.assigned[survivor][0].arg_objects(0).inline_value(), "small");
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 1u);
  CompleteLarge(survivor, b);
  for (const auto& info : out_.notified[kSession]) EXPECT_FALSE(info.has_failure());

  // Once b is released nothing can ask for a again: both go.
  core_.ReleaseObject(kSession, ObjectId::Of(b, 0));
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
  EXPECT_EQ(core_.NumLineageForTest(), 0u);
}

TEST_F(SchedulerCoreTest, ArgumentAWorkerCouldNotObtainIsRebuiltAndTheTaskRequeued) {
  const WorkerId holder = AddWorker(1);
  const TaskId a = Submit();
  core_.Dispatch();
  CompleteLarge(holder, a);
  const TaskId busy = Submit();  // keeps the holder's one slot taken
  core_.Dispatch();
  const WorkerId reader = AddWorker(1);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[reader], SizeIs(1));
  ASSERT_EQ(TaskOf(out_.assigned[reader][0]), b);
  ASSERT_EQ(out_.assigned[reader][0].arg_objects(0).location().worker_id(), holder.Binary());

  // The holder died, but the scheduler has not noticed yet: the reader
  // cannot fetch a, and says so.
  FailLostArgument(reader, b, 1, ObjectId::Of(a, 0));
  EXPECT_EQ(LastNotice(ObjectId::Of(b, 0)), nullptr) << "b failed instead of waiting";
  EXPECT_THAT(out_.freed[holder], ::testing::Contains(ObjectId::Of(a, 0)));
  core_.Dispatch();
  // a, whose only known copy that was, runs again; b waits for it.
  ASSERT_THAT(out_.assigned[reader], SizeIs(2));
  EXPECT_EQ(TaskOf(out_.assigned[reader][1]), a);
  CompleteLarge(reader, a);
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[reader], SizeIs(3));
  EXPECT_EQ(TaskOf(out_.assigned[reader][2]), b);
  EXPECT_EQ(out_.assigned[reader][2].attempt(), 2u);
  EXPECT_EQ(out_.assigned[reader][2].arg_objects(0).location().worker_id(), reader.Binary());
  Complete(reader, b, 2, "b");
  EXPECT_EQ(LastNotice(ObjectId::Of(b, 0))->inline_value(), "b");
  const ClusterSnapshot s = core_.Snapshot();
  EXPECT_EQ(s.tasks_retried, 1u);
  EXPECT_EQ(s.tasks_reconstructed, 1u);
  EXPECT_EQ(s.tasks_failed, 0u);
  (void)busy;
}

TEST_F(SchedulerCoreTest, LostArgumentWithAnotherCopyIsFetchedFromThere) {
  const WorkerId holder = AddWorker(1);
  const TaskId a = Submit();
  core_.Dispatch();
  CompleteLarge(holder, a);
  const WorkerId second = AddWorker(1);
  v1::ObjectStored stored;
  stored.set_object_id(std::string(ObjectId::Of(a, 0).Binary()));
  ASSERT_TRUE(core_.ObjectStored(second, stored).ok());
  Submit();  // these two take the holder's slot and the second's
  Submit();
  core_.Dispatch();
  const WorkerId reader = AddWorker(1);
  const TaskId b = Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  ASSERT_FALSE(out_.assigned[reader].empty());
  const v1::TaskAssignment first = out_.assigned[reader][0];
  ASSERT_EQ(TaskOf(first), b);
  const std::string told = first.arg_objects(0).location().worker_id();

  FailLostArgument(reader, b, 1, ObjectId::Of(a, 0));
  core_.Dispatch();
  // Not rebuilt: b runs again, sent to the other copy.
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 0u);
  const v1::TaskAssignment* retry = nullptr;
  for (const auto& [w, list] : out_.assigned) {
    for (const auto& assignment : list) {
      if (TaskOf(assignment) == b && assignment.attempt() == 2) retry = &assignment;
    }
  }
  ASSERT_NE(retry, nullptr);
  EXPECT_TRUE(retry->arg_objects(0).has_location());
  EXPECT_NE(retry->arg_objects(0).location().worker_id(), told);
}

TEST_F(SchedulerCoreTest, ReconstructionsHaveTheirOwnBound) {
  const TaskId t = TaskId::Of(job_, ++tasks_);
  v1::TaskSpec spec;
  spec.set_task_id(std::string(t.Binary()));
  spec.set_function_name("f");
  spec.set_max_retries(0);  // no retry for a dead worker mid-run
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  // Each time the result is lost, its task runs again, although it has no
  // retries, until max_reconstructions (3) is reached.
  for (int run = 1; run <= 4; ++run) {
    const WorkerId w = AddWorker(1);
    core_.Dispatch();
    ASSERT_THAT(out_.assigned[w], SizeIs(1)) << "run " << run;
    CompleteLarge(w, t);
    core_.RemoveWorker(w, "killed");
  }
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(t, 0));
  ASSERT_NE(notice, nullptr);
  ASSERT_TRUE(notice->has_failure());
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::OBJECT_LOST);
  EXPECT_THAT(notice->failure().message(), HasSubstr("max_reconstructions=3"));
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 3u);
  EXPECT_EQ(core_.NumLineageForTest(), 0u);
}

SchedulerConfig TinyLineage() {
  SchedulerConfig config;
  config.max_lineage_bytes = 1;  // smaller than any spec: every one is evicted
  return config;
}

class EvictedLineageTest : public SchedulerCoreTest {
 protected:
  EvictedLineageTest() : SchedulerCoreTest(TinyLineage()) {}
};

TEST_F(EvictedLineageTest, ResultWhoseLineageWasEvictedFailsAsLostSayingWhy) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  CompleteLarge(w, t);
  EXPECT_EQ(core_.NumLineageForTest(), 0u);
  EXPECT_EQ(core_.Snapshot().lineage_evicted, 1u);
  core_.RemoveWorker(w, "killed");
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(t, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::OBJECT_LOST);
  EXPECT_THAT(notice->failure().message(), HasSubstr("max_lineage_bytes"));
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 0u);
}

SchedulerConfig NoInlineCache() {
  SchedulerConfig config;
  config.inline_cache_bytes = 0;
  return config;
}

class NoInlineCacheTest : public SchedulerCoreTest {
 protected:
  NoInlineCacheTest() : SchedulerCoreTest(NoInlineCache()) {}
};

// A worker keeps no copy of a tiny result (inline_only): the scheduler's is
// the only one, whatever its cache's bound, and nothing is freed on the worker.
TEST_F(NoInlineCacheTest, ResultTheWorkerDidNotStoreIsKeptHereAndOutlivesTheWorker) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  Complete(w, t, 1, "tiny", Result::kInlineOnly);
  ASSERT_NE(LastNotice(ObjectId::Of(t, 0)), nullptr);
  EXPECT_EQ(LastNotice(ObjectId::Of(t, 0))->inline_value(), "tiny");

  // The worker's death loses nothing: its dependent gets the value inline.
  const WorkerId survivor = AddWorker(1);
  core_.RemoveWorker(w, "killed");
  const TaskId dependent = Submit({ObjectId::Of(t, 0)});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[survivor], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[survivor][0]), dependent);
  EXPECT_EQ(out_.assigned[survivor][0].arg_objects(0).inline_value(), "tiny");
  EXPECT_EQ(core_.Snapshot().tasks_reconstructed, 0u);

  core_.ReleaseObject(kSession, ObjectId::Of(t, 0));
  Complete(survivor, dependent, 1, "v");
  core_.ReleaseObject(kSession, ObjectId::Of(dependent, 0));
  EXPECT_EQ(core_.NumObjectsForTest(), 0u);
  EXPECT_TRUE(out_.freed[w].empty());
}

TEST_F(SchedulerCoreTest, CompletionFromAnotherWorkerIsIgnored) {
  const WorkerId w1 = AddWorker(1);
  const WorkerId w2 = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  const WorkerId runner = out_.assigned[w1].empty() ? w2 : w1;
  const WorkerId impostor = runner == w1 ? w2 : w1;
  Complete(impostor, t, 1, "wrong");
  EXPECT_EQ(LastNotice(ObjectId::Of(t, 0)), nullptr);
  Complete(runner, t, 1, "right");
  EXPECT_EQ(LastNotice(ObjectId::Of(t, 0))->inline_value(), "right");
}

TEST_F(SchedulerCoreTest, RejectsMalformedInput) {
  v1::TaskSpec spec;
  spec.set_task_id("short");
  EXPECT_EQ(core_.SubmitTask(kSession, spec).code(), absl::StatusCode::kInvalidArgument);
  spec.set_task_id(std::string(TaskId::Of(JobId::Random(), 1).Binary()));  // another job
  EXPECT_EQ(core_.SubmitTask(kSession, spec).code(), absl::StatusCode::kInvalidArgument);
  const TaskId t = Submit();
  spec.set_task_id(std::string(t.Binary()));
  // A duplicate (a client sending again what it did not see admitted) is
  // taken as already there.
  EXPECT_TRUE(core_.SubmitTask(kSession, spec).ok());
  EXPECT_EQ(core_.NumTasksForTest(), 1u);
  EXPECT_EQ(core_.SubmitTask(99, spec).code(), absl::StatusCode::kFailedPrecondition);
  v1::RegisterWorker reg;
  reg.set_worker_id("bad");
  EXPECT_FALSE(core_.AddWorker(reg).ok());
}

TEST_F(SchedulerCoreTest, TaskNoWorkerCouldEverRunFailsFast) {
  const WorkerId w = AddWorker(2);
  const TaskId big = TaskId::Of(job_, ++tasks_);
  v1::TaskSpec spec;
  spec.set_task_id(std::string(big.Binary()));
  spec.set_function_name("f");
  (*spec.mutable_resources()->mutable_quantities())["CPU"] = 8;
  ASSERT_TRUE(core_.SubmitTask(kSession, spec).ok());
  const TaskId small = Submit();
  core_.Dispatch();
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(big, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->failure().kind(), v1::TaskFailure::UNSCHEDULABLE);
  // It does not block the queue behind it.
  ASSERT_THAT(out_.assigned[w], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[w][0]), small);
}

TEST_F(SchedulerCoreTest, SessionsLearnAboutWorkers) {
  const WorkerId w = AddWorker(1);
  EXPECT_THAT(out_.joined[kSession], SizeIs(1));
  v1::OpenSession open;
  open.set_job_id(std::string(JobId::Random().Binary()));
  ASSERT_TRUE(core_.OpenSession(2, open).ok());
  ASSERT_THAT(out_.joined[2], SizeIs(1));  // told about the existing worker
  EXPECT_EQ(out_.joined[2][0].worker_id(), w.Binary());
}

TEST_F(SchedulerCoreTest, SnapshotCountsWorkersAndTasks) {
  const WorkerId w = AddWorker(3);
  const TaskId a = Submit();
  Submit({ObjectId::Of(a, 0)});
  core_.Dispatch();
  clock_.Advance(absl::Seconds(5));
  ClusterSnapshot s = core_.Snapshot();
  ASSERT_THAT(s.workers, SizeIs(1));
  EXPECT_EQ(s.workers[0].slots, 3);
  EXPECT_EQ(s.workers[0].assigned, 1);
  EXPECT_EQ(s.workers[0].last_heard, absl::Seconds(5));
  EXPECT_EQ(s.tasks_assigned, 1u);
  EXPECT_EQ(s.tasks_waiting, 1u);
  EXPECT_EQ(s.tasks_submitted, 2u);
  EXPECT_EQ(s.sessions, 1u);
  EXPECT_EQ(s.uptime, absl::Seconds(5));
  Complete(w, a, 1, "v");
  s = core_.Snapshot();
  EXPECT_EQ(s.tasks_finished, 1u);
  EXPECT_EQ(s.workers[0].finished, 1u);
}

// A worker's own figures are as old as its last heartbeat: a completion
// heard since does not make them fresher.
TEST_F(SchedulerCoreTest, SnapshotTellsTheAgeOfAWorkersFiguresApartFromItsLastMessage) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  EXPECT_EQ(core_.Snapshot().workers[0].last_heartbeat, std::nullopt);  // none yet
  v1::Heartbeat heartbeat;
  heartbeat.set_store_bytes(7);
  core_.Heartbeat(w, heartbeat);
  clock_.Advance(absl::Seconds(2));
  Complete(w, t, 1, "v");
  clock_.Advance(absl::Seconds(1));
  const ClusterSnapshot s = core_.Snapshot();
  ASSERT_THAT(s.workers, SizeIs(1));
  EXPECT_EQ(s.workers[0].last_heard, absl::Seconds(1));
  EXPECT_EQ(s.workers[0].last_heartbeat, absl::Seconds(3));
  EXPECT_EQ(s.workers[0].store_bytes, 7u);
}

TEST_F(SchedulerCoreTest, CancelOfARunningTaskReachesItsWorker) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(1));
  core_.CancelTask(kSession, t);
  EXPECT_THAT(out_.cancelled[w], ::testing::ElementsAre(t));
  const TaskId queued = Submit();
  core_.CancelTask(kSession, queued);  // not on a worker: nothing to stop there
  EXPECT_THAT(out_.cancelled[w], SizeIs(1));
}

TEST_F(SchedulerCoreTest, CrashedExecutorIsRetriedLikeADeadWorker) {
  const WorkerId w = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  v1::TaskCompleted crashed;
  crashed.set_task_id(std::string(t.Binary()));
  crashed.set_attempt(1);
  crashed.mutable_failure()->set_kind(v1::TaskFailure::EXECUTOR_DIED);
  crashed.mutable_failure()->set_message("executor crashed: SIGSEGV while running f");
  ASSERT_TRUE(core_.TaskCompleted(w, crashed).ok());
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(2));
  EXPECT_EQ(TaskOf(out_.assigned[w][1]), t);
  EXPECT_EQ(core_.Snapshot().tasks_retried, 1u);
  EXPECT_EQ(LastNotice(ObjectId::Of(t, 0)), nullptr) << "the owner saw a failure";
}

TEST_F(SchedulerCoreTest, DrainingWorkerFinishesItsTasksHandsOverItsObjectsAndIsReleased) {
  const WorkerId leaving = AddWorker(1);
  const TaskId made_there = Submit();
  core_.Dispatch();
  CompleteLarge(leaving, made_there);
  const TaskId running = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[leaving], SizeIs(2));
  const WorkerId staying = AddWorker(1);

  core_.DrainWorker(leaving);
  const TaskId later = Submit();
  core_.Dispatch();
  EXPECT_THAT(out_.assigned[leaving], SizeIs(2)) << "a draining worker got a new task";
  ASSERT_THAT(out_.assigned[staying], SizeIs(1));
  EXPECT_EQ(TaskOf(out_.assigned[staying][0]), later);
  EXPECT_TRUE(out_.copies.empty()) << "objects moved before its tasks finished";
  EXPECT_EQ(core_.Snapshot().workers.size(), 2u);

  // Its task finishes there; then its only copy goes to the other worker.
  CompleteLarge(leaving, running);
  core_.Dispatch();
  ASSERT_THAT(out_.copies[staying], SizeIs(2));
  EXPECT_TRUE(out_.released.empty());
  for (const v1::ObjectInfo& copy : out_.copies[staying]) {
    EXPECT_EQ(copy.location().worker_id(), leaving.Binary());
    v1::ObjectStored stored;
    stored.set_object_id(copy.object_id());
    stored.set_size_bytes(copy.size_bytes());
    ASSERT_TRUE(core_.ObjectStored(staying, stored).ok());
  }
  core_.Dispatch();
  EXPECT_THAT(out_.released, ::testing::ElementsAre(leaving));
  const ClusterSnapshot snapshot = core_.Snapshot();
  EXPECT_EQ(snapshot.workers.size(), 1u);
  EXPECT_EQ(snapshot.tasks_retried, 0u);
  EXPECT_EQ(snapshot.tasks_reconstructed, 0u);
  // Its objects are read from where they were copied.
  const v1::ObjectInfo* notice = LastNotice(ObjectId::Of(made_there, 0));
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->location().worker_id(), staying.Binary());
}

TEST_F(SchedulerCoreTest, LastWorkerDrainsAtOnceWhenNoneCanTakeItsObjects) {
  const WorkerId only = AddWorker(1);
  const TaskId t = Submit();
  core_.Dispatch();
  CompleteLarge(only, t);
  core_.DrainWorker(only);
  core_.Dispatch();
  EXPECT_TRUE(out_.copies.empty());
  EXPECT_THAT(out_.released, ::testing::ElementsAre(only));
}

// ---- durable state and restarts --------------------------------------------

SchedulerConfig DurableConfig() {
  SchedulerConfig config;
  config.durable = true;
  config.reconnect_window = absl::Seconds(5);
  config.client_grace = absl::Seconds(20);
  return config;
}

// Commits what the core records into a real StateStore, and starts a
// second core on it, as a scheduler killed and started again would.
class DurableCoreTest : public SchedulerCoreTest {
 protected:
  DurableCoreTest() : SchedulerCoreTest(DurableConfig()) {
    char dir[] = "/tmp/fleet-state-test-XXXXXX";
    dir_ = mkdtemp(dir);
    auto store = StateStore::Open(dir_, /*sync=*/false);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  ~DurableCoreTest() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Commit() {
    StateChanges changes;
    core_.CollectChanges(changes);
    ASSERT_TRUE(store_->Commit(changes).ok());
  }

  std::unique_ptr<SchedulerCore> Restart() {
    Commit();
    absl::StatusOr<StoredState> state = store_->Load();
    EXPECT_TRUE(state.ok()) << state.status();
    SchedulerConfig config = DurableConfig();
    config.epoch = 2;
    auto core = std::make_unique<SchedulerCore>(config, &after_, &clock_);
    EXPECT_TRUE(core->Restore(*state).ok());
    return core;
  }

  static v1::RegisterWorker Registration(const WorkerId& id, bool resume) {
    v1::RegisterWorker reg;
    reg.set_worker_id(std::string(id.Binary()));
    reg.set_address("10.0.1.1:7000");
    (*reg.mutable_resources()->mutable_quantities())["CPU"] = 2;
    reg.set_resume(resume);
    return reg;
  }

  static void CompleteOn(SchedulerCore& core, const WorkerId& worker, const TaskId& task,
                         uint32_t attempt, const std::string& value) {
    v1::TaskCompleted done;
    done.set_task_id(std::string(task.Binary()));
    done.set_attempt(attempt);
    v1::ObjectInfo* result = done.add_results();
    result->set_object_id(std::string(ObjectId::Of(task, 0).Binary()));
    result->set_size_bytes(value.size());
    result->set_inline_value(value);
    EXPECT_TRUE(core.TaskCompleted(worker, done).ok());
  }

  std::vector<TaskId> AssignedAfter(const WorkerId& worker) {
    std::vector<TaskId> tasks;
    for (const v1::TaskAssignment& a : after_.assigned[worker]) tasks.push_back(TaskOf(a));
    return tasks;
  }

  v1::OpenSession ResumeOpen(const std::vector<ObjectId>& held) {
    v1::OpenSession open;
    open.set_job_id(std::string(job_.Binary()));
    open.set_resume(true);
    for (const ObjectId& id : held) open.add_held_objects(std::string(id.Binary()));
    return open;
  }

  std::string dir_;
  std::unique_ptr<StateStore> store_;
  RecordingOutput after_;  // what the restarted core says
};

TEST_F(DurableCoreTest, RestartKeepsTasksAndResultsAndTakesBackWhatWorkersRun) {
  const WorkerId w = AddWorker(1);
  const TaskId done_inline = Submit();
  const TaskId done_large = Submit();
  const TaskId running = Submit();
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(3));
  Complete(w, done_inline, 1, "one");
  CompleteLarge(w, done_large);

  std::unique_ptr<SchedulerCore> restarted = Restart();
  EXPECT_TRUE(restarted->recovering());
  EXPECT_EQ(restarted->Snapshot().tasks_finished, 2u);
  // A new worker gets nothing while the old one may still come back.
  const WorkerId newcomer = WorkerId::Random();
  ASSERT_TRUE(restarted->AddWorker(Registration(newcomer, false)).ok());
  restarted->Dispatch();
  EXPECT_THAT(AssignedAfter(newcomer), IsEmpty());

  // The old worker is back: it still runs `running` and holds the large result.
  v1::RegisterWorker back = Registration(w, true);
  v1::TaskClaim* claim = back.add_running_tasks();
  claim->set_task_id(std::string(running.Binary()));
  claim->set_attempt(3);
  back.add_held_objects()->set_object_id(std::string(ObjectId::Of(done_large, 0).Binary()));
  const ObjectId stranger = ObjectId::Of(TaskId::Of(JobId::Random(), 1), 0);
  back.add_held_objects()->set_object_id(std::string(stranger.Binary()));
  ASSERT_TRUE(restarted->AddWorker(back).ok());
  restarted->Dispatch();
  EXPECT_FALSE(restarted->recovering());
  EXPECT_THAT(AssignedAfter(newcomer), IsEmpty());  // not run a second time
  EXPECT_THAT(AssignedAfter(w), IsEmpty());
  EXPECT_THAT(after_.freed[w], ::testing::ElementsAre(stranger));
  CompleteOn(*restarted, w, running, 3, "three");
  EXPECT_EQ(restarted->Snapshot().tasks_finished, 3u);

  // The client comes back holding all three results and learns their state.
  const v1::OpenSession open = ResumeOpen({ObjectId::Of(done_inline, 0),
                                           ObjectId::Of(done_large, 0),
                                           ObjectId::Of(running, 0)});
  std::optional<SessionId> session = restarted->SessionToResume(open);
  ASSERT_TRUE(session.has_value());
  ASSERT_TRUE(restarted->OpenSession(*session, open).ok());
  restarted->ReconcileHeldObjects(*session, open);
  std::map<std::string, v1::ObjectInfo> last;
  for (const v1::ObjectInfo& info : after_.notified[*session]) last[info.object_id()] = info;
  EXPECT_EQ(last[std::string(ObjectId::Of(done_inline, 0).Binary())].inline_value(), "one");
  EXPECT_EQ(last[std::string(ObjectId::Of(done_large, 0).Binary())].location().worker_id(),
            w.Binary());
  EXPECT_EQ(last[std::string(ObjectId::Of(running, 0).Binary())].inline_value(), "three");
}

TEST_F(DurableCoreTest, ClientBackBeforeTheHolderHearsWhereItsResultIsOnceTheHolderIsBack) {
  const WorkerId w = AddWorker(1);
  const TaskId large = Submit();
  core_.Dispatch();
  CompleteLarge(w, large);
  std::unique_ptr<SchedulerCore> restarted = Restart();
  const ObjectId result = ObjectId::Of(large, 0);
  const v1::OpenSession open = ResumeOpen({result});
  const SessionId session = *restarted->SessionToResume(open);
  ASSERT_TRUE(restarted->OpenSession(session, open).ok());
  restarted->ReconcileHeldObjects(session, open);
  // Nothing to say yet: no copy is known until its holder is back.
  EXPECT_THAT(after_.notified[session], IsEmpty());
  v1::RegisterWorker back = Registration(w, true);
  back.add_held_objects()->set_object_id(std::string(result.Binary()));
  ASSERT_TRUE(restarted->AddWorker(back).ok());
  ASSERT_THAT(after_.notified[session], SizeIs(1));
  EXPECT_EQ(after_.notified[session][0].location().worker_id(), w.Binary());
}

TEST_F(DurableCoreTest, WorkerThatStaysAwayHasItsTasksRunAgainAndObjectsRebuilt) {
  const WorkerId w = AddWorker(2);
  const TaskId producer = Submit();
  core_.Dispatch();
  CompleteLarge(w, producer);
  const TaskId consumer = Submit({ObjectId::Of(producer, 0)});
  core_.Dispatch();
  ASSERT_THAT(out_.assigned[w], SizeIs(2));

  std::unique_ptr<SchedulerCore> restarted = Restart();
  const WorkerId newcomer = WorkerId::Random();
  ASSERT_TRUE(restarted->AddWorker(Registration(newcomer, false)).ok());
  restarted->Dispatch();
  EXPECT_THAT(AssignedAfter(newcomer), IsEmpty());
  clock_.Advance(absl::Seconds(6));  // past the reconnect window
  restarted->Dispatch();
  EXPECT_FALSE(restarted->recovering());
  // The producer runs again to rebuild the consumer's argument, then the consumer.
  EXPECT_THAT(AssignedAfter(newcomer), ::testing::ElementsAre(producer));
  CompleteOn(*restarted, newcomer, producer, after_.assigned[newcomer][0].attempt(), "p");
  restarted->Dispatch();
  EXPECT_THAT(AssignedAfter(newcomer), ::testing::ElementsAre(producer, consumer));
  EXPECT_EQ(restarted->Snapshot().tasks_reconstructed, 1u);
}

TEST_F(DurableCoreTest, ClientThatDoesNotComeBackIsReleasedAfterItsGrace) {
  Submit();
  Submit();
  std::unique_ptr<SchedulerCore> restarted = Restart();
  clock_.Advance(absl::Seconds(10));
  restarted->ExpireAbsentSessions();
  EXPECT_EQ(restarted->Snapshot().sessions, 1u);
  clock_.Advance(absl::Seconds(11));
  restarted->ExpireAbsentSessions();
  EXPECT_EQ(restarted->Snapshot().sessions, 0u);
  EXPECT_EQ(restarted->Snapshot().tasks_cancelled, 2u);
  EXPECT_EQ(restarted->NumObjectsForTest(), 0u);
}

TEST_F(DurableCoreTest, ResumingClientLosesWhatItReleasedAndLearnsWhatIsUnknown) {
  const WorkerId w = AddWorker(1);
  const TaskId dropped = Submit();
  core_.Dispatch();
  Complete(w, dropped, 1, "d");
  const TaskId kept = Submit();
  std::unique_ptr<SchedulerCore> restarted = Restart();
  EXPECT_EQ(restarted->NumObjectsForTest(), 2u);
  const ObjectId unknown = ObjectId::Of(TaskId::Of(job_, 999), 0);
  const v1::OpenSession open = ResumeOpen({ObjectId::Of(kept, 0), unknown});
  const SessionId session = *restarted->SessionToResume(open);
  ASSERT_TRUE(restarted->OpenSession(session, open).ok());
  // Sent again, as the client had not seen it admitted: taken as there.
  v1::TaskSpec again;
  again.set_task_id(std::string(kept.Binary()));
  again.set_function_name("f");
  ASSERT_TRUE(restarted->SubmitTask(session, again).ok());
  restarted->ReconcileHeldObjects(session, open);
  EXPECT_EQ(restarted->NumTasksForTest(), 1u);
  EXPECT_EQ(restarted->NumObjectsForTest(), 1u);  // the client no longer held `dropped`'s
  ASSERT_THAT(after_.notified[session], SizeIs(1));
  EXPECT_EQ(after_.notified[session][0].object_id(), unknown.Binary());
  EXPECT_EQ(after_.notified[session][0].failure().kind(), v1::TaskFailure::OBJECT_LOST);
}

TEST_F(DurableCoreTest, ClientStreamBreakKeepsTheSessionForItsGrace) {
  const TaskId t = Submit();
  core_.DisconnectSession(kSession);
  EXPECT_EQ(core_.Snapshot().sessions, 1u);
  const v1::OpenSession open = ResumeOpen({ObjectId::Of(t, 0)});
  ASSERT_EQ(core_.SessionToResume(open), kSession);
  ASSERT_TRUE(core_.OpenSession(kSession, open).ok());
  clock_.Advance(absl::Seconds(30));
  core_.ExpireAbsentSessions();
  EXPECT_EQ(core_.Snapshot().sessions, 1u);  // it came back in time
  EXPECT_EQ(core_.NumTasksForTest(), 1u);
}

}  // namespace
}  // namespace fleet::scheduler
