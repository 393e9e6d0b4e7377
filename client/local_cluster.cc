#include "client/local_cluster.h"

#include "absl/strings/str_cat.h"

namespace fleet::client {

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(int slots) {
  std::unique_ptr<LocalCluster> cluster(new LocalCluster());
  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.host = "127.0.0.1";
  scheduler_options.port = 0;
  scheduler_options.http_port = -1;
  auto scheduler = scheduler::SchedulerServer::Start(scheduler_options);
  if (!scheduler.ok()) return scheduler.status();
  cluster->scheduler_ = std::move(*scheduler);

  worker::WorkerOptions worker_options;
  worker_options.scheduler_address = cluster->scheduler_address();
  worker_options.slots = slots;
  worker_options.listen_host = "127.0.0.1";
  // The program's own FLEET_REMOTE functions run here: they are not in a
  // task library an executor process could load.
  worker_options.isolate_tasks = false;
  auto worker = worker::WorkerServer::Start(worker_options);
  if (!worker.ok()) return worker.status();
  cluster->worker_ = std::move(*worker);
  return cluster;
}

LocalCluster::~LocalCluster() {
  if (worker_) worker_->Shutdown();
  if (scheduler_) scheduler_->Shutdown();
}

std::string LocalCluster::scheduler_address() const {
  return absl::StrCat("127.0.0.1:", scheduler_->port());
}

}  // namespace fleet::client
