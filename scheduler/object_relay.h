// The object relay: the Worker service (FetchObject, PutObject) served on
// the scheduler's port, forwarding each call to the worker named in the
// call's kRelayTargetMetadata. A client that cannot reach a worker (it runs
// outside the container network, or behind NAT, and knows only the
// scheduler's published port) moves large objects through it; workers
// never need it. Each call costs the scheduler's host the bytes twice, so
// clients use it only when the direct path fails (client/object_routes.h).
//
// Only a connected worker's advertised address is a valid target, checked
// on the event loop (SchedulerCore::CheckRelayTarget); the forwarding itself
// never touches the loop; each finished call is counted there (the /status
// "relay" figures). One chunk is in flight per call, so a relay holds
// at most one chunk (kObjectChunkBytes) of each transfer.
#ifndef FLEET_SCHEDULER_OBJECT_RELAY_H_
#define FLEET_SCHEDULER_OBJECT_RELAY_H_

#include "common/cluster_token.h"
#include "common/event_loop.h"
#include "fleet/v1/worker.grpc.pb.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {

// Thread-safe.
class ObjectRelay final : public v1::Worker::CallbackService {
 public:
  // `core` is touched only on `loop`; all outlive the service's calls.
  ObjectRelay(EventLoop* loop, SchedulerCore* core, const ClusterTokenCheck* token)
      : loop_(loop), core_(core), token_(token) {}

  grpc::ServerWriteReactor<v1::ObjectChunk>* FetchObject(
      grpc::CallbackServerContext* context, const v1::FetchObjectRequest* request) override;
  grpc::ServerReadReactor<v1::ObjectChunk>* PutObject(grpc::CallbackServerContext* context,
                                                      v1::PutObjectReply* reply) override;

 private:
  class Fetch;
  class Put;

  EventLoop* const loop_;
  SchedulerCore* const core_;
  const ClusterTokenCheck* const token_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_OBJECT_RELAY_H_
