// The scheduler's cluster state and every decision made on it: task
// lifecycle, dependency tracking, placement, the object directory and
// reference counts. Pure logic: it learns of the world through its event
// methods and speaks through SchedulerOutput, so tests drive it directly.
//
// Thread-compatible: owned by the scheduler's event loop thread.
#ifndef FLEET_SCHEDULER_SCHEDULER_CORE_H_
#define FLEET_SCHEDULER_SCHEDULER_CORE_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.pb.h"
#include "scheduler/cluster_snapshot.h"

namespace fleet::scheduler {

// Identifies one client session stream for the life of the scheduler.
using SessionId = uint64_t;

// Where the core's decisions go. Implementations must not call back into
// the core.
class SchedulerOutput {
 public:
  virtual ~SchedulerOutput() = default;
  virtual void AssignTask(const WorkerId& worker, v1::TaskAssignment assignment) = 0;
  virtual void FreeObject(const WorkerId& worker, const ObjectId& object) = 0;
  // The worker should stop the task (it was cancelled); no completion is expected.
  virtual void CancelOnWorker(const WorkerId& /*worker*/, const TaskId& /*task*/) {}
  // A result (or failure) of one of the session's tasks, or a change to it.
  virtual void NotifyObject(SessionId session, v1::ObjectInfo info) = 0;
  virtual void NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) = 0;
  virtual void NotifyWorkerLeft(SessionId session, const WorkerId& worker) = 0;
  // The session's submissions admitted so far (see SchedulerConfig).
  virtual void NotifyAdmitted(SessionId session, uint64_t admitted_submissions) = 0;
};

struct SchedulerConfig {
  // Results and Put values up to this size travel inline.
  uint64_t inline_threshold_bytes = 100 << 10;
  // Bound on the small values the scheduler keeps to inline into dependents.
  uint64_t inline_cache_bytes = 256 << 20;
  // Each worker is sent enough queued work per slot to cover this long, so
  // no slot idles during a round trip; at least one task per slot is queued.
  absl::Duration target_queue_time = absl::Milliseconds(2);
  int max_queued_per_slot = 128;
  uint64_t epoch = 0;
  // A worker not heard from (heartbeat or any message) for this long is
  // declared dead, as if its stream had broken.
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // Back-pressure: while the scheduler holds more unfinished tasks than
  // this, it admits no more submissions, and clients block once their
  // window of unadmitted ones is full.
  uint64_t max_pending_tasks = 1'000'000;
};

class SchedulerCore {
 public:
  SchedulerCore(SchedulerConfig config, SchedulerOutput* output,
                const Clock* clock = Clock::Real());

  SchedulerCore(const SchedulerCore&) = delete;
  SchedulerCore& operator=(const SchedulerCore&) = delete;

  const SchedulerConfig& config() const { return config_; }

  // ---- workers
  // Returns InvalidArgument for a malformed registration, AlreadyExists when
  // the worker id is registered.
  absl::Status AddWorker(const v1::RegisterWorker& registration);
  // The worker's stream ended or it was declared dead: its assigned tasks
  // are re-queued (up to their max_retries) or failed, and objects that
  // lived only there are marked lost.
  void RemoveWorker(const WorkerId& worker, absl::string_view reason);
  // Completions from a worker that is not assigned the task (fenced or
  // stale) are ignored.
  absl::Status TaskCompleted(const WorkerId& worker, const v1::TaskCompleted& completed);
  absl::Status ObjectStored(const WorkerId& worker, const v1::ObjectStored& stored);
  void Heartbeat(const WorkerId& worker, const v1::Heartbeat& heartbeat);
  // Declares dead (RemoveWorker) every worker silent for longer than
  // config().heartbeat_timeout, and returns them with the reason, so that
  // their streams can be ended: whatever they send later is ignored.
  std::vector<std::pair<WorkerId, std::string>> ExpireSilentWorkers();

  // ---- client sessions
  absl::Status OpenSession(SessionId session, const v1::OpenSession& open);
  // The client is gone: its references are released, and its tasks not yet
  // on a worker are cancelled (those running finish; their results are
  // freed on arrival), so a crashed driver leaks nothing.
  void CloseSession(SessionId session);
  // Returns InvalidArgument for a malformed spec or a task id of another
  // job; AlreadyExists for a duplicate. Failures of the task itself (a lost
  // argument) are reported to the session, not returned.
  absl::Status SubmitTask(SessionId session, v1::TaskSpec spec);
  absl::Status PutObject(SessionId session, const v1::ObjectInfo& object);
  void ReleaseObject(SessionId session, const ObjectId& object);
  // Fails the session's task with CANCELLED (and its dependents with that
  // cause) unless it already finished; a running one's late result is
  // ignored. Unknown or finished tasks are left alone.
  void CancelTask(SessionId session, const TaskId& task);

  // Assigns ready tasks, oldest first, to workers with free capacity, then
  // admits what the sessions submitted if the scheduler holds no more than
  // max_pending_tasks. Called by the loop after each batch of events.
  void Dispatch();

  ClusterSnapshot Snapshot() const;

  // Test hooks.
  std::size_t NumTasksForTest() const { return tasks_.size(); }
  std::size_t NumObjectsForTest() const { return objects_.size(); }

 private:
  enum class TaskState { kWaiting, kReady, kAssigned };
  enum class ObjectState { kPending, kReady, kFailed };

  struct Task {
    v1::TaskSpec spec;
    SessionId owner = 0;
    TaskState state = TaskState::kWaiting;
    int missing_args = 0;
    WorkerId worker;
    uint32_t attempt = 0;
    absl::InlinedVector<ObjectId, 2> ref_args;  // distinct
  };

  struct Object {
    ObjectState state = ObjectState::kPending;
    uint64_t size_bytes = 0;
    bool has_inline = false;
    std::string inline_value;
    absl::InlinedVector<WorkerId, 1> locations;
    v1::TaskFailure failure;
    SessionId owner = 0;
    bool owner_holds = true;  // the owning session still references it
    int pending_uses = 0;     // unfinished tasks that take it as an argument
    std::vector<TaskId> waiters;  // tasks waiting for it to become ready
  };

  struct Worker {
    WorkerId id;
    std::string address;
    std::string hostname;
    uint32_t pid = 0;
    double slots = 0;
    int assigned = 0;  // running + queued on the worker
    absl::flat_hash_set<TaskId> tasks;
    double mean_run_us = 1000;  // moving average of reported run times
    uint64_t finished = 0;
    uint64_t failed = 0;
    absl::Time connected_at;
    absl::Time last_heard;
    v1::Heartbeat last_heartbeat;
  };

  struct Session {
    JobId job;
    std::string hostname;
    uint32_t pid = 0;
    absl::flat_hash_set<ObjectId> held;
    uint64_t submitted = 0;
    uint64_t received = 0;  // submissions processed, accepted or not
    uint64_t admitted = 0;  // last count sent with NotifyAdmitted
    absl::Time opened_at;
  };

  int Capacity(const Worker& worker) const;
  Worker* PickWorker(const Task& task);
  bool AnyWorkerCouldRun(const Task& task) const;
  void Assign(Task& task, Worker& worker);
  // Marks the task's returns failed, tells the owner, and fails every task
  // waiting on them (with `failure` as the cause), transitively.
  void FailTask(const TaskId& task_id, v1::TaskFailure failure);
  // `inline_value`, when given, goes to the owner even if it is not cached.
  void MarkObjectReady(const ObjectId& id, Object& object, const std::string* inline_value);
  void MarkObjectFailed(const ObjectId& id, Object& object, const v1::TaskFailure& failure,
                        std::vector<std::pair<TaskId, v1::TaskFailure>>& to_fail);
  void ReleaseArgs(const Task& task);
  void MaybeFree(const ObjectId& id);
  void NotifyOwner(const ObjectId& id, const Object& object);
  v1::ObjectInfo DescribeFor(const ObjectId& id, const Object& object,
                             const WorkerId* prefer) const;
  std::string DescribeWorker(const WorkerId& id) const;

  const SchedulerConfig config_;
  SchedulerOutput* const output_;
  const Clock* const clock_;
  const absl::Time started_at_;

  absl::flat_hash_map<WorkerId, Worker> workers_;
  absl::flat_hash_map<SessionId, Session> sessions_;
  absl::flat_hash_map<TaskId, Task> tasks_;
  absl::flat_hash_map<ObjectId, Object> objects_;
  std::deque<TaskId> ready_;
  uint64_t inline_cache_used_bytes_ = 0;
  uint64_t tasks_submitted_ = 0;
  uint64_t tasks_finished_ = 0;
  uint64_t tasks_failed_ = 0;
  uint64_t tasks_cancelled_ = 0;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SCHEDULER_CORE_H_
