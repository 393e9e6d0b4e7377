// The worker's end of Scheduler.Connect: registers, then carries
// assignments and frees down, completions, stored-object reports and
// heartbeats up, batched while a write is in flight.
//
// Thread-safe. Runs a heartbeat thread beside the stream's own.
#ifndef FLEET_WORKER_SCHEDULER_CONNECTION_H_
#define FLEET_WORKER_SCHEDULER_CONNECTION_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>

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
    absl::AnyInvocable<void(v1::TaskAssignment)> on_assignment;
    absl::AnyInvocable<void(const ObjectId&)> on_free;
    absl::AnyInvocable<void(const TaskId&)> on_cancel;
    // An object to copy here from its draining holder.
    absl::AnyInvocable<void(v1::ObjectInfo)> on_copy;
    // Fills in the heartbeat's load and store figures.
    absl::AnyInvocable<void(v1::Heartbeat&)> fill_heartbeat;
  };

  SchedulerConnection(std::string scheduler_address, Handlers handlers);
  ~SchedulerConnection();

  // Dials the scheduler, registers and waits for its acknowledgement.
  // Returns Unavailable naming the address when it cannot be reached within
  // `timeout`, or whatever the scheduler answered.
  absl::Status Start(const v1::RegisterWorker& registration, absl::Duration timeout);
  // Blocks until the stream ends; returns why (OK after Stop).
  absl::Status Wait();
  // Flushes pending reports and closes the stream. Idempotent; concurrent
  // callers return once it is done.
  void Stop();

  // Asks the scheduler to drain this worker: no new tasks; the stream ends
  // (Wait returns OK) once what it holds is finished and handed over.
  void BeginDrain();
  void ReportCompleted(v1::TaskCompleted completed) override;
  void ReportStored(v1::ObjectStored stored) override;
  void ReportOutput(v1::TaskOutput output) override;

 private:
  void OnMessage(v1::SchedulerToWorker& message);
  void OnEnd(absl::Status status);
  void HeartbeatLoop();

  const std::string scheduler_address_;
  Handlers handlers_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
  absl::Notification registered_;
  absl::Notification ended_;
  absl::Notification stopping_;
  std::once_flag stop_once_;
  absl::Mutex mu_;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  std::thread heartbeat_;
  // Last: its threads call the members above.
  ClientStream<v1::WorkerToScheduler, v1::SchedulerToWorker> stream_;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_SCHEDULER_CONNECTION_H_
