// The worker's end of Scheduler.Connect: registers, then carries
// assignments and frees down, completions, stored-object reports and
// heartbeats up. Outgoing items are batched while a write is in flight.
//
// Thread-safe. Runs a reader, a writer and a heartbeat thread.
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
#include "common/batch_queue.h"
#include "fleet/v1/scheduler.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "worker/executor.h"

namespace fleet::worker {

class SchedulerConnection : public SchedulerLink {
 public:
  struct Handlers {
    absl::AnyInvocable<void(uint64_t inline_threshold_bytes)> on_registered;
    absl::AnyInvocable<void(v1::TaskAssignment)> on_assignment;
    absl::AnyInvocable<void(const ObjectId&)> on_free;
    // Fills in the heartbeat's load and store figures.
    absl::AnyInvocable<void(v1::Heartbeat&)> fill_heartbeat;
  };

  SchedulerConnection(std::string scheduler_address, Handlers handlers);
  ~SchedulerConnection();

  // Dials the scheduler, registers and waits for its acknowledgement.
  // Returns Unavailable naming the address when it cannot be reached within
  // `timeout`, or whatever the scheduler answered.
  absl::Status Start(const v1::RegisterWorker& registration, absl::Duration timeout);
  // Blocks until the stream ends; returns why.
  absl::Status Wait();
  // Idempotent; concurrent callers return once it is done.
  void Stop();

  void ReportCompleted(v1::TaskCompleted completed) override;
  void ReportStored(v1::ObjectStored stored) override;

 private:
  void ReadLoop();
  void WriteLoop();
  void HeartbeatLoop();

  const std::string scheduler_address_;
  Handlers handlers_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerToScheduler, v1::SchedulerToWorker>> stream_;
  BatchQueue<v1::WorkerToScheduler> outbox_;
  absl::Notification registered_;
  absl::Notification done_;
  absl::Notification writer_exited_;
  absl::Notification stopping_;
  std::once_flag stop_once_;
  absl::Mutex mu_;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  std::thread reader_;
  std::thread writer_;
  std::thread heartbeat_;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_SCHEDULER_CONNECTION_H_
