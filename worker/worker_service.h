// The Worker gRPC service: peers and clients fetch objects from this
// worker's store, and clients upload Put values into it.
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

class WorkerService final : public v1::Worker::CallbackService {
 public:
  // Every call must carry `token` (common/cluster_token.h); empty: none is
  // required.
  WorkerService(ObjectStore* store, std::string token)
      : store_(store), token_(std::move(token), "the fleet worker on " + Hostname()) {}

  grpc::ServerWriteReactor<v1::ObjectChunk>* FetchObject(
      grpc::CallbackServerContext* context, const v1::FetchObjectRequest* request) override;
  grpc::ServerReadReactor<v1::ObjectChunk>* PutObject(grpc::CallbackServerContext* context,
                                                      v1::PutObjectReply* reply) override;

  // Object bytes streamed to peers and clients since start.
  uint64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  ObjectStore* const store_;
  const ClusterTokenCheck token_;
  std::atomic<uint64_t> bytes_sent_{0};
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_WORKER_SERVICE_H_
