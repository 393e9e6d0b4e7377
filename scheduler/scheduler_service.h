// The Scheduler gRPC service, on gRPC's async API. One thread, the core
// thread (Drain), takes every completion of the scheduler's calls (this
// service's, the Admin service's and the object relay's) from one
// completion queue and owns the SchedulerCore: a message read is acted on by
// the thread that read it, and no gRPC thread hands it to another (with the
// callback API each message woke two threads before it reached the core).
// The core's output goes back through the streams recorded here
// (StreamRouter).
#ifndef FLEET_SCHEDULER_SCHEDULER_SERVICE_H_
#define FLEET_SCHEDULER_SCHEDULER_SERVICE_H_

#include <atomic>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/cluster_token.h"
#include "common/ids.h"
#include "fleet/v1/scheduler.grpc.pb.h"
#include "common/event_loop.h"
#include "grpcpp/alarm.h"
#include "scheduler/scheduler_core.h"
#include "scheduler/server_stream.h"

namespace fleet::scheduler {

using WorkerStream = ServerStream<v1::WorkerToScheduler, v1::SchedulerToWorker>;
using ClientStream = ServerStream<v1::ClientToScheduler, v1::SchedulerToClient>;

// Routes the core's output to the open streams. Owned by the loop thread.
//
// What the core sends during a batch of events is held until Flush, which
// the loop calls once per batch: each stream gets one message per batch
// instead of one write per event (a gRPC write costs more than the work of
// most events), and with durable state the loop flushes only after the
// batch's changes are committed, so nothing the scheduler decided reaches a
// worker or client before it would survive a restart.
class StreamRouter : public SchedulerOutput {
 public:

  void AddWorker(const WorkerId& id, std::shared_ptr<WorkerStream> stream);
  // Drops the worker's route if it is still `stream`; returns whether it was.
  bool RemoveWorker(const WorkerId& id, const WorkerStream* stream);
  // Ends the stream of a worker declared dead, telling it why; whatever it
  // still sends is dropped with the stream.
  void FenceWorker(const WorkerId& id, const std::string& reason);
  // `submit_window`: how many requests the client sends before it waits for
  // their admission (OpenSession); 0 for a client that did not say.
  void AddSession(SessionId id, std::shared_ptr<ClientStream> stream, uint64_t submit_window);
  // Drops the session's route if it is still `stream`; returns whether it was.
  bool RemoveSession(SessionId id, const ClientStream* stream);
  // The worker's completions the core has taken in on its current stream;
  // a later Flush tells the worker the count, and it forgets them.
  void CountCompletions(const WorkerId& id, int count);
  // Makes the next Flush send every count still untold (see Flush).
  void TellPendingCounts();
  // Sends what was held. Call after each batch.
  //
  // The cumulative counts (admissions to a client, recorded completions to
  // a worker) ride along with a stream's other messages. Alone, a count is
  // sent only once enough accumulated (a quarter of the client's submit
  // window; kCompletionsTellEvery completions) or at TellPendingCounts: a
  // message of its own per count added two writes to the four of a lone
  // round trip (each also answered by a gRPC window update), and no peer
  // waits on a count below those thresholds.
  void Flush();

  void AssignTask(const WorkerId& worker, v1::TaskAssignment& assignment) override;
  void FreeObject(const WorkerId& worker, const ObjectId& object) override;
  void CancelOnWorker(const WorkerId& worker, const TaskId& task) override;
  void CopyObject(const WorkerId& worker, const v1::ObjectInfo& object) override;
  void ReleaseWorker(const WorkerId& worker) override;
  void NotifyOutput(SessionId session, v1::TaskOutput output) override;
  void RequestReupload(SessionId session, const ObjectId& object) override;
  void NotifyObject(SessionId session, v1::ObjectInfo info) override;
  void NotifyWorkerJoined(SessionId session, const v1::WorkerInfo& worker) override;
  void NotifyWorkerLeft(SessionId session, const WorkerId& worker) override;
  void NotifyAdmitted(SessionId session, uint64_t admitted_requests) override;

 private:
  // Messages held for one stream until Flush, each within the batch cap.
  template <typename Out>
  using Held = std::vector<std::pair<std::size_t, Out>>;

  template <typename Stream, typename AddFn>
  void Deliver(const std::shared_ptr<Stream>& stream, std::size_t bytes, AddFn&& add);
  template <typename Stream>
  void End(const std::shared_ptr<Stream>& stream, grpc::Status status);

  // A cumulative count the peer is told: `count` so far, `told` as last sent.
  struct Count {
    uint64_t count = 0;
    uint64_t told = 0;
    uint64_t tell_every = 1;  // sent alone once count - told reaches this
    bool Due(bool with_other_messages, bool tell_all) const {
      return count != told && (with_other_messages || tell_all || count - told >= tell_every);
    }
  };
  static constexpr uint64_t kCompletionsTellEvery = 64;
  template <typename Stream>
  using HeldBy = absl::flat_hash_map<std::shared_ptr<Stream>, Held<typename Stream::Outgoing>>;

  // Holds the counts in `to_tell` that are due (Count::Due) for their streams.
  template <typename Id, typename Stream, typename SetCount>
  void HoldDueCounts(absl::flat_hash_set<Id>& to_tell, absl::flat_hash_map<Id, Count>& counts,
                     const absl::flat_hash_map<Id, std::shared_ptr<Stream>>& streams,
                     const HeldBy<Stream>& held, SetCount set_count);

  absl::flat_hash_map<WorkerId, std::shared_ptr<WorkerStream>> workers_;
  absl::flat_hash_map<SessionId, std::shared_ptr<ClientStream>> sessions_;
  absl::flat_hash_map<WorkerId, Count> completions_;  // on the worker's current stream
  absl::flat_hash_set<WorkerId> completions_to_tell_;
  absl::flat_hash_map<SessionId, Count> admissions_;
  absl::flat_hash_set<SessionId> admissions_to_tell_;
  bool tell_all_counts_ = false;
  HeldBy<WorkerStream> held_workers_;
  HeldBy<ClientStream> held_clients_;
  std::vector<std::pair<std::shared_ptr<WorkerStream>, grpc::Status>> held_ends_;
};

class SchedulerService final : public v1::Scheduler::AsyncService {
 public:
  // `core` and `router` are touched only on the core thread, which runs
  // `loop` (EventLoop::DrivenByCompletionQueue).
  SchedulerService(EventLoop* loop, SchedulerCore* core, StreamRouter* router,
                   const ClusterTokenCheck* token)
      : loop_(loop), core_(core), router_(router), token_(token) {}

  // The core thread: accepts this service's calls on `queue` and drains it,
  // running `loop` after each round of completions, until the queue is shut
  // down. Other services' calls on `queue` must have been asked for first.
  void Drain(grpc::ServerCompletionQueue* queue);
  // Makes Drain return, once the server has been shut down (its calls
  // cancelled) and the loop stopped: Drain handles what is left until the
  // queue is quiet, then shuts the queue down itself and discards the rest,
  // so that no handler starts an operation on a queue already shut down.
  // Thread-safe.
  void RequestStop();

 private:
  template <typename Stream>
  class StreamAcceptor;

  // What the loop knows of one client stream.
  struct SessionStream {
    SessionId id = 0;  // changes when the open resumes a kept session
    bool goodbye = false;
  };

  void OnWorkerMessage(const std::shared_ptr<WorkerStream>& stream,
                       std::shared_ptr<WorkerId> registered, v1::WorkerToScheduler& message);
  void OnClientMessage(const std::shared_ptr<ClientStream>& stream,
                       const std::shared_ptr<SessionStream>& session,
                       v1::ClientToScheduler& message);

  // Start reading a call accepted (its token checked).
  void StartConnect(std::shared_ptr<WorkerStream> stream);
  void StartSession(std::shared_ptr<ClientStream> stream);

  EventLoop* const loop_;
  SchedulerCore* const core_;
  StreamRouter* const router_;
  const ClusterTokenCheck* const token_;
  // The core thread's.
  ReadsAfterRound reads_after_round_;
  SparePool<v1::WorkerToScheduler> worker_spares_;
  SparePool<v1::ClientToScheduler> client_spares_;
  std::atomic<SessionId> next_session_{1};
  std::atomic<bool> stop_requested_{false};
  absl::Mutex stop_mu_;
  std::unique_ptr<grpc::Alarm> stop_alarm_ ABSL_GUARDED_BY(stop_mu_);
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SCHEDULER_SERVICE_H_
