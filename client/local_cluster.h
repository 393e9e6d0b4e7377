// The embedded cluster fleet::Init() starts without an address: a scheduler
// and one worker inside this process, on 127.0.0.1, running the remote
// functions this binary registered on threads.
#ifndef FLEET_CLIENT_LOCAL_CLUSTER_H_
#define FLEET_CLIENT_LOCAL_CLUSTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/scheduler_server.h"
#include "worker/worker_server.h"

namespace fleet::client {

class LocalCluster {
 public:
  // `slots` <= 0: one per hardware thread.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(int slots);
  ~LocalCluster();

  std::string scheduler_address() const;

 private:
  LocalCluster() = default;

  std::unique_ptr<scheduler::SchedulerServer> scheduler_;
  std::unique_ptr<worker::WorkerServer> worker_;  // after: it talks to the scheduler
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_LOCAL_CLUSTER_H_
