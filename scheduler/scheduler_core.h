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
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.pb.h"
#include "scheduler/cluster_events.h"
#include "scheduler/cluster_snapshot.h"
#include "scheduler/histogram.h"
#include "scheduler/lineage.h"
#include "scheduler/state_store.h"
#include "scheduler/rate_meter.h"

namespace fleet::scheduler {

// Where the core's decisions go. Implementations must not call back into
// the core.
class SchedulerOutput {
 public:
  virtual ~SchedulerOutput() = default;
  // Takes what `assignment` holds; what it leaves there (an earlier
  // assignment's room, say) the core clears and fills again.
  virtual void AssignTask(const WorkerId& worker, v1::TaskAssignment& assignment) = 0;
  virtual void FreeObject(const WorkerId& worker, const ObjectId& object) = 0;
  // The worker should stop the task (it was cancelled); no completion is expected.
  virtual void CancelOnWorker(const WorkerId& /*worker*/, const TaskId& /*task*/) {}
  // The worker should copy the object from its location (see DrainWorker).
  virtual void CopyObject(const WorkerId& /*worker*/, const v1::ObjectInfo& /*object*/) {}
  // The draining worker is done: end its stream so that it exits.
  virtual void ReleaseWorker(const WorkerId& /*worker*/) {}
  // Every copy of the session's Put object is gone: it should upload the
  // value again if it still has it (PutObject), or say it cannot
  // (SchedulerCore::PutNotReuploadable).
  virtual void RequestReupload(SessionId /*session*/, const ObjectId& /*object*/) {}
  // A line one of the session's tasks printed.
  virtual void NotifyOutput(SessionId /*session*/, v1::TaskOutput /*output*/) {}
  // A result (or failure) of one of the session's tasks, or a change to it.
  virtual void NotifyObject(SessionId session, v1::ObjectInfo info) = 0;
  virtual void NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) = 0;
  virtual void NotifyWorkerLeft(SessionId session, const WorkerId& worker) = 0;
  // The session's submissions admitted so far (see SchedulerConfig).
  virtual void NotifyAdmitted(SessionId session, uint64_t admitted_requests) = 0;
};

struct SchedulerConfig {
  // Results and Put values up to this size travel inline.
  uint64_t inline_threshold_bytes = 100 << 10;
  // Bound on the small values the scheduler keeps to inline into dependents.
  uint64_t inline_cache_bytes = 256 << 20;
  // Each worker is sent enough queued work per slot to cover this long, so
  // no slot idles during a round trip; at least one task per slot is queued.
  absl::Duration target_queue_time = absl::Milliseconds(2);
  // Tasks shorter than this (on a worker's average) get at least two
  // queued per slot rather than one: the worker's executor then has the
  // next task in hand when one ends (a gap of a few hundred us otherwise,
  // 2-3 % of a 10 ms task). Longer tasks keep one each, so that a queued
  // task waits behind at most one other where a later slot could take it.
  absl::Duration pipeline_ahead_below = absl::Milliseconds(50);
  // The bound binds for tasks under 4 us only. Such a task still costs its
  // worker and executor ~5 us, so 512 cover ~2.5 ms: a round trip to the
  // scheduler under load, with the batches of hundreds it then carries.
  // 128 left a sixth of two cores idle under no-op tasks (M1): the
  // pipeline drained between round trips, and the smaller batches cost
  // more CPU per task everywhere. 1024 measured no better. The bound is
  // also what a worker may hoard when tasks that looked short turn out
  // long (the scheduler takes no queued task back), so it stays low.
  int max_queued_per_slot = 512;
  uint64_t epoch = 0;
  // A worker not heard from (heartbeat or any message) for this long is
  // declared dead, as if its stream had broken.
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // Back-pressure: while the scheduler holds more unfinished tasks than
  // this, it admits no more submissions, and clients block once their
  // window of unadmitted ones is full.
  uint64_t max_pending_tasks = 1'000'000;
  // Lineage: the specs kept to rebuild lost results are bounded by this
  // many bytes (their wire size plus a fixed 256 bytes each); beyond it the
  // oldest are dropped, and a result whose spec was dropped fails as lost
  // when its copies go.
  uint64_t max_lineage_bytes = uint64_t{1} << 30;
  // How many times one task may run again to rebuild its lost results
  // (-1: no limit). These re-runs do not use its max_retries, which bound
  // the attempts lost to dead workers within each run.
  int max_reconstructions = 3;
  // Durable state (--state_dir): the core records what each batch changed
  // (CollectChanges) for the loop to commit before anything it decided
  // leaves the scheduler.
  bool durable = false;
  // After a restart, how long the core waits for the workers it knew to
  // reconnect before it re-runs their tasks and rebuilds their objects.
  absl::Duration reconnect_window = absl::Seconds(10);
  // A client whose stream broke without a goodbye (or that had a session
  // before a restart) keeps its session this long to reconnect; then its
  // refs are released and its pending tasks cancelled.
  absl::Duration client_grace = absl::Seconds(10);
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
  // are re-queued (up to their max_retries) or failed. Objects that lived
  // only there and are still needed are rebuilt by running their producers
  // again (recursively, from lineage), or fail as lost when they cannot
  // be (a Put object, evicted lineage, max_reconstructions reached).
  void RemoveWorker(const WorkerId& worker, absl::string_view reason);
  // Completions from a worker that is not assigned the task (fenced or
  // stale) are ignored. A failure OBJECT_LOST naming the argument it could
  // not obtain re-queues the task (not charged to its retries) after
  // dropping the copy it was sent to, rebuilding the argument if none is
  // left. A completion with direct_spec records the task first when its
  // client's submission has not come yet (the worker ran it, or declined
  // it: then it is placed as any other).
  absl::Status TaskCompleted(const WorkerId& worker, const v1::TaskCompleted& completed);
  absl::Status ObjectStored(const WorkerId& worker, const v1::ObjectStored& stored);
  void Heartbeat(const WorkerId& worker, const v1::Heartbeat& heartbeat);
  // The worker is leaving gracefully (SIGTERM): it gets no new tasks; once
  // it has finished those it holds, every object only it holds is copied to
  // another worker, and then it is released (ReleaseWorker) and removed,
  // with nothing re-run and nothing lost. Unknown workers are ignored.
  void DrainWorker(const WorkerId& worker);
  // Passes a line a task printed on `worker` to the session of the task's
  // job, naming the worker; dropped when that session is gone.
  void ForwardOutput(const WorkerId& worker, v1::TaskOutput output);
  // Declares dead (RemoveWorker) every worker silent for longer than
  // config().heartbeat_timeout, and returns them with the reason, so that
  // their streams can be ended: whatever they send later is ignored.
  std::vector<std::pair<WorkerId, std::string>> ExpireSilentWorkers();
  // The scheduler itself did not run for `gap` (it was stopped, its host
  // froze, its loop was stuck): no worker could be heard meanwhile, so each
  // is treated as heard now.
  void ExcuseSilence(absl::Duration gap);

  // ---- client sessions
  // For a client that comes back (`open.resume`) while its job's session
  // is still kept: that session's id, to open again, continuing with its
  // refs, tasks and counts.
  std::optional<SessionId> SessionToResume(const v1::OpenSession& open) const;
  absl::Status OpenSession(SessionId session, const v1::OpenSession& open);
  // Completes a resumed open once the requests sent with it are in: the
  // job's objects the client no longer holds are released, and the client
  // is sent the state of those it holds (a failure for any unknown here).
  void ReconcileHeldObjects(SessionId session, const v1::OpenSession& open);
  // The client's stream broke without a goodbye: its session is kept for
  // config().client_grace for it to reconnect (closed at once when 0).
  void DisconnectSession(SessionId session);
  // Closes the sessions whose clients stayed away past the grace period.
  void ExpireAbsentSessions();
  // The client is gone: its references are released, and its tasks not yet
  // on a worker are cancelled (those running finish; their results are
  // freed on arrival), so a crashed driver leaks nothing.
  void CloseSession(SessionId session);
  // Returns InvalidArgument for a malformed task id or one of another job;
  // a duplicate is ignored. Failures of the task itself (a lost or
  // malformed argument) are reported to the session, not returned. A spec
  // with direct_worker_id set is recorded as running on that worker (its
  // client handed it over) when the worker is connected and every argument
  // is inline; TaskCompleted may have recorded it already.
  absl::Status SubmitTask(SessionId session, v1::TaskSpec spec);
  absl::Status PutObject(SessionId session, const v1::ObjectInfo& object);
  void ReleaseObject(SessionId session, const ObjectId& object);
  // The session was asked to upload its lost Put object again and no
  // longer has the value: the object fails as lost, and so its dependents.
  void PutNotReuploadable(SessionId session, const ObjectId& object);
  // Fails the session's task with CANCELLED (and its dependents with that
  // cause) unless it already finished; a running one's late result is
  // ignored. Unknown or finished tasks are left alone.
  void CancelTask(SessionId session, const TaskId& task);

  // Assigns ready tasks, oldest first, to workers with free capacity, then
  // admits what the sessions submitted if the scheduler holds no more than
  // max_pending_tasks. Called by the loop after each batch of events.
  void Dispatch();

  ClusterSnapshot Snapshot() const;

  // ---- durable state (scheduler_core_durable.cc)
  // Takes over what a previous run committed: its tasks (none assigned),
  // objects (without locations), sessions (disconnected: their clients
  // have client_grace to come back) and workers (reconnecting). Until they
  // are all back or reconnect_window has passed, nothing is dispatched;
  // then those still away are removed (their tasks re-run, their objects
  // rebuilt) and scheduling resumes. Call once, before any event.
  absl::Status Restore(const StoredState& state);
  // Appends the records changed since the last call (config().durable).
  void CollectChanges(StateChanges& changes);
  bool recovering() const { return recovering_; }
  // ---- operator queries (scheduler_core_admin.cc), for the Admin service
  // and the `fleet` tool.
  // Up to `request.limit()` (0: 100, at most 10,000) of the tasks held in
  // `request.state()` (waiting, ready, assigned; empty: all), oldest
  // first. Returns InvalidArgument for another state.
  absl::StatusOr<v1::ListTasksReply> ListTasks(const v1::ListTasksRequest& request) const;
  // Cancels the task whichever session owns it, as CancelTask does for its
  // client; returns the state it was in. NotFound: the scheduler holds no
  // such task; FailedPrecondition: it already finished.
  absl::StatusOr<std::string> CancelTaskAsOperator(const TaskId& task);
  // The object relay (object_relay.h) forwards only to workers: OK when a
  // worker that is connected (or draining) advertises `address`, else
  // NotFound, so the relay is no open proxy into the cluster's network.
  absl::Status CheckRelayTarget(const std::string& address) const;
  void RecordRelay(uint64_t bytes, bool ok);
  // The recent cluster events (worker and job lifecycle, task failures).
  ClusterEventLog& events() { return events_; }
  // ---- end of operator queries

  // Test hooks.
  std::size_t NumTasksForTest() const { return tasks_.size(); }
  std::size_t NumObjectsForTest() const { return objects_.size(); }
  std::size_t NumLineageForTest() const { return lineage_.size(); }

 private:
  enum class TaskState { kWaiting, kReady, kAssigned };
  // kReleased: nobody reads the object any more and its copies were freed,
  // but its record stays while a retained spec takes it as an argument,
  // so that it can be rebuilt if that spec has to run again.
  enum class ObjectState { kPending, kReady, kFailed, kReleased };

  struct Task {
    v1::TaskSpec spec;
    SessionId owner = 0;
    TaskState state = TaskState::kWaiting;
    int missing_args = 0;
    WorkerId worker;
    uint32_t attempt = 0;
    uint32_t retries = 0;     // re-runs of this run charged to max_retries
    int reconstructions = 0;  // runs that rebuilt lost results
    absl::InlinedVector<ObjectId, 2> ref_args;  // distinct
    absl::Time ready_at;  // when it last became ready to run
    absl::Time submitted_at;
    // Per ref arg, the worker the current attempt was told to fetch it from
    // (nil when it went inline).
    absl::InlinedVector<WorkerId, 2> arg_sources;
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
    bool put = false;         // stored by a client: it has no producer to re-run
    int pending_uses = 0;     // unfinished tasks that take it as an argument
    int lineage_uses = 0;     // retained specs that take it as an argument
    std::vector<TaskId> waiters;  // tasks waiting for it to become ready
    // A Put whose copies were lost, pending while its owner uploads it
    // again; `how_lost` completes the failure if the owner cannot.
    bool awaiting_reupload = false;
    std::string how_lost;
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
    std::optional<absl::Time> last_heartbeat_at;  // none before its first
    bool draining = false;
    bool reconnecting = false;  // restored: known before a restart, not back yet
    bool copying = false;  // its objects are being copied away
    int stranded = 0;      // objects only it held, with no worker to copy them to
    absl::flat_hash_set<ObjectId> copies_awaited;
  };

  struct Session {
    JobId job;
    std::string hostname;
    uint32_t pid = 0;
    absl::flat_hash_set<ObjectId> held;
    uint64_t submitted = 0;
    uint64_t finished = 0;   // its tasks, for /status
    uint64_t failed = 0;
    uint64_t cancelled = 0;
    uint64_t received = 0;  // submissions processed, accepted or not
    uint64_t admitted = 0;  // last count sent with NotifyAdmitted
    absl::Time opened_at;
    bool connected = true;  // false while its client is away (see DisconnectSession)
    absl::Time absent_since;
  };

  // Whether some copy of a ready object can be read: cached here or in a store.
  static bool HasCopy(const Object& object) {
    return object.has_inline || !object.locations.empty();
  }
  // Whether anything reads the object: its owner, or a pending task.
  static bool Needed(const Object& object) {
    return object.owner_holds || object.pending_uses > 0;
  }

  // ---- durable state (scheduler_core_durable.cc)
  void TouchTask(const TaskId& id) {
    if (config_.durable) dirty_tasks_.insert(id);
  }
  void TouchObject(const ObjectId& id) {
    if (config_.durable) dirty_objects_.insert(id);
  }
  void TouchSession(const JobId& job) {
    if (config_.durable) dirty_sessions_.insert(job);
  }
  void TouchWorker(const WorkerId& id) {
    if (config_.durable) dirty_workers_.insert(id);
  }
  // A worker that registered with `resume`: keeps its copies of objects
  // known here and the tasks it claims that are not running elsewhere;
  // has it free or drop the rest.
  void ReclaimFromWorker(Worker& worker, const v1::RegisterWorker& registration);
  // Ends the reconnect window once every restored worker is back or the
  // window has passed; returns whether recovery is still going on.
  bool ContinueRecovery();

  // Moves draining workers along: starts copying their objects once they
  // are idle, and releases them once no object depends on them.
  void ProgressDrains();
  FunctionStats& StatsFor(const std::string& function_name);
  void StartCopying(Worker& worker);
  int Capacity(const Worker& worker) const;
  Worker* PickWorker(const Task& task);
  bool AnyWorkerCouldRun(const Task& task) const;
  void Assign(Task& task, Worker& worker);
  // Puts the task in the ready queue, to be placed (at its head when it
  // should go before those waiting: a retry, a rebuild).
  void MakeReady(const TaskId& id, Task& task, bool at_front);
  // Records the task's next attempt as running (or queued) on `worker`.
  void Occupy(const TaskId& id, Task& task, Worker& worker);
  // Whether the task is held, or finished with a result or spec still kept.
  bool Known(const TaskId& task_id) const;
  // Records a submitted task (SubmitTask, past its checks). `ran_by`: the
  // worker its client handed it to, where it is recorded as running when
  // it is runnable from its spec alone; else it is placed as any other.
  void AddTask(SessionId session_id, Session& session, const TaskId& task_id, v1::TaskSpec spec,
               Worker* ran_by);
  // A direct task's worker reported on it (TaskCompleted.direct_spec)
  // before its client's submission came: records it as submitted, running
  // on `worker` (or ready, when declined). Nothing for a task known or
  // finished, or a job without a session.
  void AdoptDirectTask(const TaskId& task_id, Worker& worker, const v1::TaskCompleted& completed);
  // The worker declined the direct task (no idle slot): placed as any other.
  void DeclineDirectTask(const TaskId& task_id, Task& task, Worker& worker, uint32_t attempt);
  // When an argument of the ready task is pending again (being rebuilt),
  // the task goes back to waiting for it; returns whether it did.
  bool WaitForRebuiltArgs(const TaskId& id, Task& task);
  // Marks the task's returns failed, tells the owner, and fails every task
  // waiting on them (with `failure` as the cause), transitively.
  void FailTask(const TaskId& task_id, v1::TaskFailure failure);
  // `inline_value`, when given, goes to the owner even if it is not cached.
  // `owner_has_it`: the worker delivered the value to the owner already
  // (TaskCompleted.delivered_to_owner), nothing is sent to it.
  void MarkObjectReady(const ObjectId& id, Object& object, const std::string* inline_value,
                       bool owner_has_it = false);
  void MarkObjectFailed(const ObjectId& id, Object& object, const v1::TaskFailure& failure,
                        std::vector<std::pair<TaskId, v1::TaskFailure>>& to_fail);
  void ReleaseArgs(const Task& task);
  // The owner uploaded its lost Put object `id` again (`info`).
  absl::Status CompleteReupload(const ObjectId& id, Object& object, const v1::ObjectInfo& info);
  // Frees the object if nobody needs it; erasing it may release its
  // producer's lineage, and so free that spec's arguments, transitively.
  void MaybeFree(const ObjectId& id);
  // As above, for an object already looked up (or objects_.end()).
  void MaybeFree(absl::flat_hash_map<ObjectId, Object>::iterator first);
  // MaybeFree's step for one object; queues in `to_check` the objects its
  // erasure may have left unneeded.
  void FreeIfUnneeded(absl::flat_hash_map<ObjectId, Object>::iterator it,
                      std::vector<ObjectId>& to_check);
  void DropCopies(const ObjectId& id, Object& object);

  // ---- lineage (scheduler_core_lineage.cc)
  // Keeps the finished task's spec while any of its results is alive.
  void RetainLineage(const TaskId& id, Task& task);
  // Task `id`'s `entry`, removed from lineage_, no longer holds its
  // arguments, nor its results' records: queues them all for MaybeFree.
  void ForgetLineage(const TaskId& id, const Lineage::Entry& entry,
                     std::vector<ObjectId>& to_check);
  // Every copy of `id` is gone while something needs it: runs its producer
  // again, first rebuilding that producer's own lost arguments, or fails
  // it (and so its waiters) as lost. `how_lost` completes "object X was
  // lost: ...".
  void Rebuild(const ObjectId& id, std::string how_lost,
               std::vector<std::pair<TaskId, v1::TaskFailure>>& to_fail);
  // Turns the lineage entry of `producer` back into a task; false when it
  // has none or its reconstructions are used up (`why_not` says which).
  bool Reconstruct(const TaskId& producer, const ObjectId& lost, std::string* why_not,
                   std::vector<std::pair<ObjectId, std::string>>& also_lost);
  // Handles a failure OBJECT_LOST that names the argument; false when it
  // does not apply and the task should fail as usual.
  bool RequeueAfterLostArgument(const TaskId& id, const WorkerId& reporter,
                                const v1::TaskFailure& failure);
  void NotifyOwner(const ObjectId& id, const Object& object);
  v1::ObjectInfo DescribeFor(const ObjectId& id, const Object& object,
                             const WorkerId* prefer) const;
  // The location DescribeFor names: `prefer` when it holds a copy, else the
  // first; nil when there is none.
  WorkerId HolderFor(const Object& object, const WorkerId* prefer) const;
  std::string DescribeWorker(const WorkerId& id) const;

  const SchedulerConfig config_;
  SchedulerOutput* const output_;
  const Clock* const clock_;
  const absl::Time started_at_;
  // config_'s durations that Capacity reads for every task placed.
  const double target_queue_us_;
  const double pipeline_ahead_below_us_;

  absl::flat_hash_map<WorkerId, Worker> workers_;
  absl::flat_hash_map<SessionId, Session> sessions_;
  absl::flat_hash_map<TaskId, Task> tasks_;
  absl::flat_hash_map<ObjectId, Object> objects_;
  std::deque<TaskId> ready_;
  // Assign builds each assignment here: the router swaps it into its
  // batch and leaves an earlier one's room behind (SchedulerOutput::AssignTask).
  v1::TaskAssignment assignment_scratch_;
  Lineage lineage_;
  uint64_t inline_cache_used_bytes_ = 0;
  uint64_t tasks_submitted_ = 0;
  uint64_t tasks_finished_ = 0;
  uint64_t tasks_failed_ = 0;
  uint64_t tasks_cancelled_ = 0;
  uint64_t tasks_retried_ = 0;        // re-queued after a dead worker, exception or lost argument
  uint64_t tasks_run_directly_ = 0;   // recorded as handed to a worker by their client
  uint64_t tasks_reconstructed_ = 0;
  uint64_t relay_calls_ = 0;
  uint64_t relay_failed_ = 0;
  uint64_t relay_bytes_ = 0;  // finished tasks run again to rebuild lost results
  int draining_workers_ = 0;
  bool recovering_ = false;
  bool meta_recorded_ = false;  // the epoch is in the state
  absl::Time recovery_deadline_;
  absl::flat_hash_set<TaskId> dirty_tasks_;
  absl::flat_hash_set<ObjectId> dirty_objects_;
  absl::flat_hash_set<JobId> dirty_sessions_;
  absl::flat_hash_set<WorkerId> dirty_workers_;
  // Per function name; beyond kMaxTrackedFunctions names, under "(other)".
  absl::flat_hash_map<std::string, FunctionStats> function_stats_;
  // For operators (scheduler_core_admin.cc): what happened lately, and
  // tasks finished per second.
  ClusterEventLog events_;
  RateMeter finish_rate_{started_at_};
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SCHEDULER_CORE_H_
