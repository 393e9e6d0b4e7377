// The client's end of Scheduler.Session: submissions, Put notices and
// releases go up in batches; results, failures and worker changes come down
// as pushes.
//
// Each request (a submission or a Put) is kept until the scheduler admits
// it. When the stream breaks (the scheduler restarted, the network
// dropped), the session reconnects and resumes: it says which refs it
// holds and sends again what was not admitted, while Get and Wait keep
// waiting. It gives up after the reconnect timeout, and then every pending
// result fails with that error.
//
// Thread-safe.
#ifndef FLEET_CLIENT_CLIENT_SESSION_H_
#define FLEET_CLIENT_CLIENT_SESSION_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/object_table.h"
#include "client/same_host_results.h"
#include "common/client_stream.h"
#include "common/completion_queue_thread.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.grpc.pb.h"

namespace fleet::client {

class ClientSession {
 public:
  // At most `submit_window` submissions go unadmitted by the scheduler at
  // a time: Submit blocks beyond that (back-pressure).
  // Lines the session's tasks print, as the scheduler passes them on.
  using OnTaskOutput = std::function<void(const v1::TaskOutput&)>;
  // The scheduler asks for a lost Put object's value again (see
  // SchedulerToClient.reupload). Runs on the connection's thread: hand the
  // work to another.
  using OnReupload = std::function<void(const ObjectId&)>;

  ClientSession(std::string scheduler_address, JobId job, std::shared_ptr<ObjectTable> table,
                uint64_t submit_window, OnTaskOutput on_task_output = nullptr,
                absl::Duration reconnect_timeout = absl::Seconds(60));
  ~ClientSession();

  // Dials the scheduler and opens the session. Returns Unavailable naming
  // the address when the scheduler does not answer within `timeout`.
  absl::Status Start(absl::Duration timeout);
  // Flushes what is queued and closes the session (the scheduler cancels
  // its tasks that have not started). Idempotent.
  void Stop();

  // A spec for the next Submit to fill: an admitted one, cleared, when
  // there is one, whose fields' room is filled again (a new spec and its
  // strings were a sixth of a client's instructions under no-op tasks).
  v1::TaskSpec NewSpec();
  // Blocks while the window of unadmitted submissions is full (until the
  // scheduler admits some, or the session ends). While the session is
  // reconnecting, requests wait to be sent with the resumed open.
  // `hand_over`: the client awaits no other result, so that this task is
  // likely all it waits for: when its arguments are all inline it goes
  // straight to a worker on this host (SameHostResults::HandOver), and the
  // submission, which names that worker, follows.
  void Submit(v1::TaskSpec spec, bool hand_over = false);
  void Put(v1::ObjectInfo info);
  void Release(const ObjectId& id);
  void Cancel(const TaskId& id);
  // Tells the scheduler that the value of a Put object it asked for again
  // is not held here.
  void ReportLostPut(const ObjectId& id);
  // Set once, before the first request for it can come (right after Start).
  void SetReuploadHandler(OnReupload handler);

  uint64_t inline_threshold_bytes() const { return inline_threshold_bytes_.load(); }
  const std::string& scheduler_address() const { return scheduler_address_; }

  // A worker to upload a large Put value to: one on this host when there
  // is one, else the next in turn. Waits up to `timeout` for a worker to
  // join; returns Unavailable when none does.
  absl::StatusOr<v1::WorkerInfo> PickWorkerForPut(absl::Duration timeout);

 private:
  using Stream = ClientStream<v1::ClientToScheduler, v1::SchedulerToClient>;

  // Opens a new stream whose first message opens the session (resuming
  // it, with the refs held and the requests not admitted, when `resume`)
  // and waits up to `timeout` for the acknowledgement.
  absl::Status Open(bool resume, absl::Duration timeout);
  void RetireStream();
  // A request, kept from its sending until the scheduler admits it: one
  // submission or one put. Kept bare, not in a ClientToScheduler of its
  // own: each wrapper was two more allocations per task, and glibc's
  // malloc (the host program's) is a good part of a client's CPU.
  using Request = std::variant<v1::TaskSpec, v1::PutObject>;
  // Sends a request and keeps it until it is admitted.
  void SendRequestLocked(Request request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends a copy of `request` on stream_ (not null); the original stays
  // unadmitted.
  void SendCopyLocked(const Request& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnMessage(uint64_t generation, v1::SchedulerToClient& message);
  // Keeps the specs admitted_scratch_ holds for NewSpec, and empties it.
  // The queue's thread only, without mu_.
  void KeepSpareSpecs();
  void OnEnd(uint64_t generation, absl::Status status);
  // Reconnects after a broken stream, or fails what is pending.
  void Supervise();

  const std::string scheduler_address_;
  const JobId job_;
  const std::shared_ptr<ObjectTable> table_;
  const uint64_t submit_window_;
  const OnTaskOutput on_task_output_;  // the queue's thread only
  const absl::Duration reconnect_timeout_;
  std::atomic<uint64_t> inline_threshold_bytes_{100 << 10};  // from the scheduler's ack
  // Where the streams' operations complete; outlives them.
  CompletionQueueThread queue_thread_;

  absl::Mutex mu_;
  std::unique_ptr<v1::Scheduler::Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);  // null between streams
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;         // of the current stream
  bool opened_ ABSL_GUARDED_BY(mu_) = false;             // the current stream's ack came
  std::optional<absl::Status> stream_end_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // for good: nothing more is sent
  // Requests sent but not admitted, oldest first.
  std::deque<Request> unadmitted_ ABSL_GUARDED_BY(mu_);
  // Admitted requests, moved out of unadmitted_ to be destroyed once mu_
  // is released (a submitting thread waits on mu_ meanwhile). The queue's
  // thread only.
  std::vector<Request> admitted_scratch_;
  // Admitted specs kept for NewSpec: as many as the window holds (a burst
  // of submissions then finds them all), each with up to
  // kMaxSpareSpecArgBytes of argument values (~4 MB at most in all for the
  // default window).
  static constexpr std::size_t kMaxSpareSpecArgBytes = 256;
  absl::Mutex spare_specs_mu_;
  std::vector<v1::TaskSpec> spare_specs_ ABSL_GUARDED_BY(spare_specs_mu_);
  uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;  // requests, in all
  uint64_t admitted_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread supervisor_;
  std::once_flag stop_once_;

  absl::Mutex reupload_mu_;
  OnReupload on_reupload_ ABSL_GUARDED_BY(reupload_mu_);

  absl::Mutex workers_mu_;
  std::vector<v1::WorkerInfo> workers_ ABSL_GUARDED_BY(workers_mu_);
  // Results pushed by the workers on this host (subscribed as they join).
  SameHostResults same_host_results_;
  std::size_t next_worker_ ABSL_GUARDED_BY(workers_mu_) = 0;
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_CLIENT_SESSION_H_
