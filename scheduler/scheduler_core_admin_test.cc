// The core's operator queries: ListTasks, CancelTaskAsOperator and the
// cluster events.
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RecordingOutput : public SchedulerOutput {
 public:
  void AssignTask(const WorkerId& worker, v1::TaskAssignment& assignment) override {
    assigned[worker]++;
  }
  void FreeObject(const WorkerId&, const ObjectId&) override {}
  void CancelOnWorker(const WorkerId& worker, const TaskId& task) override {
    cancelled.push_back(task);
  }
  void NotifyObject(SessionId session, v1::ObjectInfo info) override {
    notified[session].push_back(std::move(info));
  }
  void NotifyWorkerJoined(SessionId, const v1::WorkerInfo&) override {}
  void NotifyWorkerLeft(SessionId, const WorkerId&) override {}
  void NotifyAdmitted(SessionId, uint64_t) override {}

  std::map<WorkerId, int> assigned;
  std::vector<TaskId> cancelled;
  std::map<SessionId, std::vector<v1::ObjectInfo>> notified;
};

constexpr SessionId kOwner = 7;

class SchedulerCoreAdminTest : public ::testing::Test {
 protected:
  SchedulerCoreAdminTest() : core_({}, &out_, &clock_) {
    v1::OpenSession open;
    open.set_job_id(std::string(job_.Binary()));
    EXPECT_TRUE(core_.OpenSession(kOwner, open).ok());
  }

  WorkerId AddWorker(double slots) {
    const WorkerId id = WorkerId::Random();
    v1::RegisterWorker reg;
    reg.set_worker_id(std::string(id.Binary()));
    reg.set_address("10.0.0.1:7000");
    (*reg.mutable_resources()->mutable_quantities())["CPU"] = slots;
    EXPECT_TRUE(core_.AddWorker(reg).ok());
    return id;
  }

  TaskId Submit(const std::string& function, std::vector<ObjectId> deps = {}) {
    const TaskId id = TaskId::Of(job_, ++tasks_);
    v1::TaskSpec spec;
    spec.set_task_id(std::string(id.Binary()));
    spec.set_function_name(function);
    for (const ObjectId& dep : deps) spec.add_args()->set_object_id(std::string(dep.Binary()));
    EXPECT_TRUE(core_.SubmitTask(kOwner, spec).ok());
    return id;
  }

  std::vector<std::string> ListedFunctions(const std::string& state, uint32_t limit = 0) {
    v1::ListTasksRequest request;
    request.set_state(state);
    request.set_limit(limit);
    absl::StatusOr<v1::ListTasksReply> reply = core_.ListTasks(request);
    EXPECT_TRUE(reply.ok()) << reply.status();
    std::vector<std::string> names;
    if (reply.ok()) {
      for (const v1::TaskSummary& t : reply->tasks()) names.push_back(t.function_name());
    }
    return names;
  }

  std::vector<std::string> EventNames() {
    std::vector<std::string> names;
    for (const v1::ClusterEvent& e : core_.events().Recent(0)) names.push_back(e.name());
    return names;
  }

  FakeClock clock_;
  RecordingOutput out_;
  SchedulerCore core_;
  JobId job_ = JobId::Random();
  uint64_t tasks_ = 0;
};

TEST_F(SchedulerCoreAdminTest, ListsTasksByStateOldestFirstWithinTheLimit) {
  const WorkerId worker = AddWorker(1);
  const TaskId first = Submit("first");
  clock_.Advance(absl::Seconds(1));
  Submit("second");
  clock_.Advance(absl::Seconds(1));
  Submit("third");
  Submit("fourth");
  Submit("dependent", {ObjectId::Of(first, 0)});
  core_.Dispatch();  // three fit on the worker: one slot, two queued (1 ms tasks)
  clock_.Advance(absl::Seconds(1));

  EXPECT_THAT(ListedFunctions("assigned"), ElementsAre("first", "second", "third"));
  EXPECT_THAT(ListedFunctions("ready"), ElementsAre("fourth"));
  EXPECT_THAT(ListedFunctions("waiting"), ElementsAre("dependent"));
  EXPECT_THAT(ListedFunctions("", 2), ElementsAre("first", "second"));

  v1::ListTasksRequest all;
  absl::StatusOr<v1::ListTasksReply> reply = core_.ListTasks(all);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->matching(), 5u);
  const v1::TaskSummary& oldest = reply->tasks(0);
  EXPECT_EQ(oldest.task_id(), first.Binary());
  EXPECT_EQ(oldest.worker_id(), worker.Binary());
  EXPECT_EQ(oldest.worker_address(), "10.0.0.1:7000");
  EXPECT_EQ(oldest.attempt(), 1u);
  EXPECT_DOUBLE_EQ(oldest.age_s(), 3.0);

  v1::ListTasksRequest bad;
  bad.set_state("running");
  EXPECT_EQ(core_.ListTasks(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerCoreAdminTest, OperatorCancelFailsTheOwnersTaskAndStopsARunningOne) {
  AddWorker(1);
  const TaskId running = Submit("running");
  core_.Dispatch();
  const TaskId queued = Submit("queued", {ObjectId::Of(running, 0)});

  absl::StatusOr<std::string> state = core_.CancelTaskAsOperator(queued);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "waiting");
  ASSERT_FALSE(out_.notified[kOwner].empty());
  const v1::ObjectInfo& info = out_.notified[kOwner].back();
  EXPECT_EQ(info.object_id(), ObjectId::Of(queued, 0).Binary());
  EXPECT_EQ(info.failure().kind(), v1::TaskFailure::CANCELLED);
  EXPECT_THAT(info.failure().message(), HasSubstr("operator"));

  state = core_.CancelTaskAsOperator(running);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, "assigned");
  EXPECT_THAT(out_.cancelled, ElementsAre(running));
  EXPECT_TRUE(ListedFunctions("").empty());
}

TEST_F(SchedulerCoreAdminTest, OperatorCancelTellsUnknownFromFinished) {
  const WorkerId worker = AddWorker(1);
  const TaskId done = Submit("done");
  core_.Dispatch();
  v1::TaskCompleted completed;
  completed.set_task_id(std::string(done.Binary()));
  completed.set_attempt(1);
  v1::ObjectInfo* result = completed.add_results();
  result->set_object_id(std::string(ObjectId::Of(done, 0).Binary()));
  result->set_inline_value("v");
  ASSERT_TRUE(core_.TaskCompleted(worker, completed).ok());

  EXPECT_EQ(core_.CancelTaskAsOperator(done).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(core_.CancelTaskAsOperator(TaskId::Of(job_, 999)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SchedulerCoreAdminTest, RecordsLifecycleEventsAndPassesThemToFollowers) {
  std::vector<v1::LogEntry> followed;
  const auto follower = core_.events().Follow(
      /*with_output=*/false, [&](const v1::LogEntry& entry) { followed.push_back(entry); });
  const WorkerId worker = AddWorker(1);
  const TaskId task = Submit("f");
  core_.Dispatch();
  core_.CancelTaskAsOperator(task).IgnoreError();
  core_.RemoveWorker(worker, "test");
  core_.CloseSession(kOwner);

  EXPECT_THAT(EventNames(), ElementsAre("job_started", "worker_joined", "task_failed",
                                        "worker_left", "job_finished"));
  ASSERT_EQ(followed.size(), 4u);  // everything after it began following
  EXPECT_EQ(followed[0].event().name(), "worker_joined");
  EXPECT_EQ(followed[0].event().worker_id(), worker.Hex());
  EXPECT_EQ(followed[1].event().failure_kind(), "CANCELLED");
  EXPECT_EQ(followed[1].event().task_id(), task.Hex());
  core_.events().Unfollow(follower);
  AddWorker(1);
  EXPECT_EQ(followed.size(), 4u);
}

TEST(ClusterEventLogTest, KeepsTheLastEventsUpToItsCapacity) {
  ClusterEventLog log(/*capacity=*/3);
  for (int i = 0; i < 5; ++i) log.Record(absl::UnixEpoch(), "e" + std::to_string(i), {});
  std::vector<std::string> names;
  for (const v1::ClusterEvent& e : log.Recent(0)) names.push_back(e.name());
  EXPECT_THAT(names, ElementsAre("e2", "e3", "e4"));
  ASSERT_EQ(log.Recent(1).size(), 1u);
  EXPECT_EQ(log.Recent(1)[0].name(), "e4");
  EXPECT_EQ(log.Recent(1)[0].sequence(), 5u);
}

}  // namespace
}  // namespace fleet::scheduler
