// The client's end of Scheduler.Session: submissions, Put notices and
// releases go up in batches; results, failures and worker changes come down
// as pushes.
//
// Thread-safe.
#ifndef FLEET_CLIENT_CLIENT_SESSION_H_
#define FLEET_CLIENT_CLIENT_SESSION_H_

#include <functional>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/object_table.h"
#include "common/client_stream.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.grpc.pb.h"

namespace fleet::client {

class ClientSession {
 public:
  // At most `submit_window` submissions go unadmitted by the scheduler at
  // a time: Submit blocks beyond that (back-pressure).
  // Lines the session's tasks print, as the scheduler passes them on.
  using OnTaskOutput = std::function<void(const v1::TaskOutput&)>;

  ClientSession(std::string scheduler_address, JobId job, std::shared_ptr<ObjectTable> table,
                uint64_t submit_window, OnTaskOutput on_task_output = nullptr);
  ~ClientSession();

  // Dials the scheduler and opens the session. Returns Unavailable naming
  // the address when the scheduler does not answer within `timeout`.
  absl::Status Start(absl::Duration timeout);
  // Flushes what is queued and closes the session. Idempotent.
  void Stop();

  // Blocks while the window of unadmitted submissions is full (until the
  // scheduler admits some, or the session ends).
  void Submit(v1::TaskSpec spec);
  void Put(v1::ObjectInfo info);
  void Release(const ObjectId& id);
  void Cancel(const TaskId& id);

  uint64_t inline_threshold_bytes() const { return inline_threshold_bytes_.load(); }
  const std::string& scheduler_address() const { return scheduler_address_; }

  // A worker to upload a large Put value to: one on this host when there
  // is one, else the next in turn. Waits up to `timeout` for a worker to
  // join; returns Unavailable when none does.
  absl::StatusOr<v1::WorkerInfo> PickWorkerForPut(absl::Duration timeout);

 private:
  void OnMessage(v1::SchedulerToClient& message);
  void OnEnd(absl::Status status);

  const std::string scheduler_address_;
  const JobId job_;
  const std::shared_ptr<ObjectTable> table_;
  std::atomic<uint64_t> inline_threshold_bytes_{100 << 10};  // from the scheduler's ack
  std::unique_ptr<v1::Scheduler::Stub> stub_;
  absl::Notification opened_;

  const uint64_t submit_window_;
  const OnTaskOutput on_task_output_;  // reader thread only
  absl::Mutex window_mu_;
  uint64_t submitted_ ABSL_GUARDED_BY(window_mu_) = 0;
  uint64_t admitted_ ABSL_GUARDED_BY(window_mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(window_mu_) = false;

  absl::Mutex workers_mu_;
  std::vector<v1::WorkerInfo> workers_ ABSL_GUARDED_BY(workers_mu_);
  std::size_t next_worker_ ABSL_GUARDED_BY(workers_mu_) = 0;

  // Last: its threads call the members above.
  ClientStream<v1::ClientToScheduler, v1::SchedulerToClient> stream_;
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_CLIENT_SESSION_H_
