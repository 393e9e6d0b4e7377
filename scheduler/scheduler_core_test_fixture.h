// The scheduler core's test fixture: a core with one open session, fed
// events by hand, its decisions recorded per destination. Shared by the
// core's test files.
#ifndef FLEET_SCHEDULER_SCHEDULER_CORE_TEST_FIXTURE_H_
#define FLEET_SCHEDULER_SCHEDULER_CORE_TEST_FIXTURE_H_

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {

// Records what the core says, per destination.
class RecordingOutput : public SchedulerOutput {
 public:
  void AssignTask(const WorkerId& worker, v1::TaskAssignment& assignment) override {
    // A copy: the assignment keeps its content, as one the router leaves
    // behind keeps an earlier one's, and none of it may show in the next.
    assigned[worker].push_back(assignment);
  }
  void FreeObject(const WorkerId& worker, const ObjectId& object) override {
    freed[worker].push_back(object);
  }
  void NotifyObject(SessionId session, v1::ObjectInfo info) override {
    notified[session].push_back(std::move(info));
  }
  void NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) override {
    joined[session].push_back(worker);
  }
  void NotifyWorkerLeft(SessionId session, const WorkerId& worker) override {
    left[session].push_back(worker);
  }
  void NotifyAdmitted(SessionId session, uint64_t admitted_requests) override {
    admitted[session].push_back(admitted_requests);
  }
  void CancelOnWorker(const WorkerId& worker, const TaskId& task) override {
    cancelled[worker].push_back(task);
  }
  void CopyObject(const WorkerId& worker, const v1::ObjectInfo& object) override {
    copies[worker].push_back(object);
  }
  void ReleaseWorker(const WorkerId& worker) override { released.push_back(worker); }
  void RequestReupload(SessionId session, const ObjectId& object) override {
    reupload[session].push_back(object);
  }

  std::map<WorkerId, std::vector<v1::TaskAssignment>> assigned;
  std::map<WorkerId, std::vector<ObjectId>> freed;
  std::map<SessionId, std::vector<uint64_t>> admitted;
  std::map<SessionId, std::vector<v1::ObjectInfo>> notified;
  std::map<SessionId, std::vector<v1::WorkerInfo>> joined;
  std::map<SessionId, std::vector<WorkerId>> left;
  std::map<WorkerId, std::vector<TaskId>> cancelled;
  std::map<WorkerId, std::vector<v1::ObjectInfo>> copies;
  std::vector<WorkerId> released;
  std::map<SessionId, std::vector<ObjectId>> reupload;
};

constexpr SessionId kSession = 1;

class SchedulerCoreTest : public ::testing::Test {
 protected:
  explicit SchedulerCoreTest(SchedulerConfig config = {}) : core_(config, &out_, &clock_) {
    v1::OpenSession open;
    open.set_job_id(std::string(job_.Binary()));
    EXPECT_TRUE(core_.OpenSession(kSession, open).ok());
  }

  WorkerId AddWorker(double slots) {
    const WorkerId id = WorkerId::Random();
    v1::RegisterWorker reg;
    reg.set_worker_id(std::string(id.Binary()));
    reg.set_address("10.0.0." + std::to_string(++workers_) + ":7000");
    (*reg.mutable_resources()->mutable_quantities())["CPU"] = slots;
    EXPECT_TRUE(core_.AddWorker(reg).ok());
    return id;
  }

  // A new task's spec, whose arguments are refs to `deps` (and one inline
  // value).
  v1::TaskSpec NewSpec(const std::vector<ObjectId>& deps = {}) {
    const TaskId id = TaskId::Of(job_, ++tasks_);
    v1::TaskSpec spec;
    spec.set_task_id(std::string(id.Binary()));
    spec.set_function_name("f");
    spec.set_max_retries(3);
    spec.add_args()->set_value("v");
    for (const ObjectId& dep : deps) spec.add_args()->set_object_id(std::string(dep.Binary()));
    return spec;
  }

  // Submits a task whose arguments are refs to `deps` (and one inline value).
  TaskId Submit(const std::vector<ObjectId>& deps = {}) {
    const v1::TaskSpec spec = NewSpec(deps);
    EXPECT_TRUE(core_.SubmitTask(kSession, spec).ok());
    return *TaskId::FromBinary(spec.task_id());
  }

  // How a completion reports its result: inline and stored on the worker,
  // stored only, or inline only (the worker kept no copy).
  enum class Result { kInline, kStoredOnly, kInlineOnly };

  void Complete(const WorkerId& worker, const TaskId& task, uint32_t attempt,
                const std::string& value, Result how = Result::kInline,
                bool delivered_to_owner = false) {
    v1::TaskCompleted done;
    done.set_delivered_to_owner(delivered_to_owner);
    done.set_task_id(std::string(task.Binary()));
    done.set_attempt(attempt);
    done.set_run_time_us(1000);
    v1::ObjectInfo* result = done.add_results();
    result->set_object_id(std::string(ObjectId::Of(task, 0).Binary()));
    result->set_size_bytes(value.size());
    if (how != Result::kStoredOnly) result->set_inline_value(value);
    result->set_inline_only(how == Result::kInlineOnly);
    EXPECT_TRUE(core_.TaskCompleted(worker, done).ok());
  }

  void Fail(const WorkerId& worker, const TaskId& task, uint32_t attempt) {
    v1::TaskCompleted done;
    done.set_task_id(std::string(task.Binary()));
    done.set_attempt(attempt);
    done.mutable_failure()->set_kind(v1::TaskFailure::USER_EXCEPTION);
    done.mutable_failure()->set_exception_type("std::runtime_error");
    done.mutable_failure()->set_message("boom");
    EXPECT_TRUE(core_.TaskCompleted(worker, done).ok());
  }

  // A worker's report that it could not obtain argument `lost` of `task`.
  void FailLostArgument(const WorkerId& worker, const TaskId& task, uint32_t attempt,
                        const ObjectId& lost) {
    v1::TaskCompleted done;
    done.set_task_id(std::string(task.Binary()));
    done.set_attempt(attempt);
    done.mutable_failure()->set_kind(v1::TaskFailure::OBJECT_LOST);
    done.mutable_failure()->set_message("argument 1 could not be obtained: connection refused");
    done.mutable_failure()->set_lost_object_id(std::string(lost.Binary()));
    EXPECT_TRUE(core_.TaskCompleted(worker, done).ok());
  }

  // Runs `task` to completion on `worker` with a result too large to inline
  // (so the worker's store holds its only copy), as the core's last
  // assignment of it there.
  void CompleteLarge(const WorkerId& worker, const TaskId& task) {
    uint32_t attempt = 0;
    for (const v1::TaskAssignment& a : out_.assigned[worker]) {
      if (TaskOf(a) == task) attempt = a.attempt();
    }
    ASSERT_GT(attempt, 0u) << "task " << task.Short() << " was never assigned there";
    Complete(worker, task, attempt, std::string(200 << 10, 'x'), Result::kStoredOnly);
  }

  // A Put object of the session, stored on `worker`.
  ObjectId PutOn(const WorkerId& worker) {
    const ObjectId id = ObjectId::Of(TaskId::Of(job_, ++tasks_), 0);
    v1::ObjectInfo info;
    info.set_object_id(std::string(id.Binary()));
    info.set_size_bytes(1 << 20);
    info.mutable_location()->set_worker_id(std::string(worker.Binary()));
    EXPECT_TRUE(core_.PutObject(kSession, info).ok());
    return id;
  }

  static TaskId TaskOf(const v1::TaskAssignment& a) {
    return *TaskId::FromBinary(a.spec().task_id());
  }

  // The last notification the session got about `object`.
  const v1::ObjectInfo* LastNotice(const ObjectId& object) {
    const v1::ObjectInfo* last = nullptr;
    for (const auto& info : out_.notified[kSession]) {
      if (info.object_id() == object.Binary()) last = &info;
    }
    return last;
  }

  FakeClock clock_;
  RecordingOutput out_;
  SchedulerCore core_;
  JobId job_ = JobId::Random();
  int workers_ = 0;
  uint64_t tasks_ = 0;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SCHEDULER_CORE_TEST_FIXTURE_H_
