// The worker's end of Scheduler.Connect: registers, then carries
// assignments and frees down, completions, stored-object reports and
// heartbeats up, batched while a write is in flight.
//
// When the stream breaks (the scheduler restarted, the network dropped),
// the worker keeps running what it holds and reconnects: it registers
// again with `resume`, saying which objects it holds and which tasks it
// runs, and sends again every completion the scheduler had not yet
// recorded (it keeps each until the scheduler says so). It gives up after
// the reconnect timeout. A stream the scheduler ends on purpose (a fenced
// worker, a finished drain) is final.
//
// Thread-safe. Runs a heartbeat thread and a reconnecting thread.
#ifndef FLEET_WORKER_SCHEDULER_CONNECTION_H_
#define FLEET_WORKER_SCHEDULER_CONNECTION_H_

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/client_stream.h"
#include "fleet/v1/scheduler.grpc.pb.h"
#include "worker/executor.h"

namespace fleet::worker {

class SchedulerConnection : public SchedulerLink {
 public:
  struct Handlers {
    absl::AnyInvocable<void(uint64_t inline_threshold_bytes)> on_registered;
    // Takes what the assignment holds; what it leaves there (a spent
    // assignment's room) the next message read is parsed into.
    absl::AnyInvocable<void(v1::TaskAssignment&)> on_assignment;
    absl::AnyInvocable<void(const ObjectId&)> on_free;
    absl::AnyInvocable<void(const TaskId&)> on_cancel;
    // An object to copy here from its draining holder.
    absl::AnyInvocable<void(v1::ObjectInfo)> on_copy;
    // Fills in the heartbeat's load and store figures.
    absl::AnyInvocable<void(v1::Heartbeat&)> fill_heartbeat;
    // Lists the objects the store holds, for a registration that resumes.
    absl::AnyInvocable<void(v1::RegisterWorker&)> fill_held_objects;
  };

  // `queue`: where the stream's operations complete (drained until this
  // connection has stopped). `reconnect_timeout`: how long to keep trying
  // after the stream breaks (zero: do not reconnect).
  SchedulerConnection(std::string scheduler_address, grpc::CompletionQueue* queue,
                      Handlers handlers, absl::Duration reconnect_timeout);
  ~SchedulerConnection();

  // Dials the scheduler, registers and waits for its acknowledgement.
  // Returns Unavailable naming the address when it cannot be reached within
  // `timeout`, or whatever the scheduler answered.
  absl::Status Start(const v1::RegisterWorker& registration, absl::Duration timeout);
  // Blocks until the connection is over; returns why (OK after Stop or a
  // finished drain).
  absl::Status Wait();
  // Flushes pending reports and closes the stream. Idempotent; concurrent
  // callers return once it is done.
  void Stop();

  // Asks the scheduler to drain this worker: no new tasks; the stream ends
  // (Wait returns OK) once what it holds is finished and handed over. A
  // draining worker does not reconnect.
  void BeginDrain();
  void ReportCompleted(v1::TaskCompleted completed, bool more_follow) override;
  void ReportStored(v1::ObjectStored stored) override;
  void ReportOutput(v1::TaskOutput output) override;

 private:
  using Stream = ClientStream<v1::WorkerToScheduler, v1::SchedulerToWorker>;

  // Opens a new stream whose first message registers (with what this
  // worker holds and runs, and the completions not yet recorded, when
  // `resume`), and waits up to `timeout` for the acknowledgement.
  absl::Status Open(bool resume, absl::Duration timeout);
  // Stops and drops the current stream, if any.
  void RetireStream();
  // Sends on the current stream; dropped while there is none.
  template <typename AddFn>
  void SendLocked(std::size_t bytes, AddFn&& add, bool more_follow = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (stream_ != nullptr) stream_->Send(bytes, std::forward<AddFn>(add), more_follow);
  }
  void OnMessage(uint64_t generation, v1::SchedulerToWorker& message);
  void OnEnd(uint64_t generation, absl::Status status);
  // Waits for the stream to end; reconnects while that makes sense, else
  // ends the connection.
  void Supervise();
  bool Reconnect(const absl::Status& why);
  void Finish(absl::Status status);
  void HeartbeatLoop();

  const std::string scheduler_address_;
  grpc::CompletionQueue* const queue_;
  Handlers handlers_;
  const absl::Duration reconnect_timeout_;
  v1::RegisterWorker registration_;  // as first sent
  absl::Notification ended_;         // the connection is over for good
  absl::Notification stopping_;
  std::once_flag stop_once_;
  std::once_flag finish_once_;

  absl::Mutex mu_;
  std::unique_ptr<v1::Scheduler::Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);  // null between streams
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;         // of the current stream
  bool registered_ ABSL_GUARDED_BY(mu_) = false;         // the current stream's ack came
  std::optional<absl::Status> stream_end_ ABSL_GUARDED_BY(mu_);  // how the current one ended
  bool stopping_flag_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  // Completions not yet recorded by the scheduler, oldest first, and how
  // many the scheduler has said it recorded on the current stream.
  std::deque<v1::TaskCompleted> unrecorded_ ABSL_GUARDED_BY(mu_);
  uint64_t recorded_on_stream_ ABSL_GUARDED_BY(mu_) = 0;
  // Recorded completions, moved out of unrecorded_ to be destroyed once mu_
  // is released (the slot threads reporting completions wait on it). The
  // queue's thread only.
  std::vector<v1::TaskCompleted> recorded_scratch_;
  // Tasks assigned here and not yet completed: task id -> attempt.
  absl::flat_hash_map<TaskId, uint32_t> assigned_ ABSL_GUARDED_BY(mu_);

  std::thread supervisor_;
  std::thread heartbeat_;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_SCHEDULER_CONNECTION_H_
