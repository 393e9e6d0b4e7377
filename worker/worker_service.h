// The Worker gRPC service: peers and clients fetch objects from this
// worker's store, and clients upload Put values into it. On gRPC's async
// API: its calls complete on the worker's one completion queue, beside the
// scheduler stream's (common/completion_queue_thread.h says why).
#ifndef FLEET_WORKER_WORKER_SERVICE_H_
#define FLEET_WORKER_WORKER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "common/cluster_token.h"
#include "common/net.h"
#include "fleet/v1/worker.grpc.pb.h"
#include "worker/object_store.h"

namespace fleet::worker {

class WorkerService final : public v1::Worker::AsyncService {
 public:
  // Every call must carry `token` (common/cluster_token.h); empty: none is
  // required.
  WorkerService(ObjectStore* store, std::string token)
      : store_(store), token_(std::move(token), "the fleet worker on " + Hostname()) {}

  // Starts taking calls, once the server is built; `queue` is the one its
  // builder made, drained by one thread until the server has shut down.
  void Serve(grpc::ServerCompletionQueue* queue);

  // Object bytes streamed to peers and clients since start.
  uint64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  class Call;
  class FetchCall;
  class PutCall;

  ObjectStore* const store_;
  const ClusterTokenCheck token_;
  std::atomic<uint64_t> bytes_sent_{0};
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_WORKER_SERVICE_H_
