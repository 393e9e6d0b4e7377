#include "worker/worker_server.h"

#include <unistd.h>

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/completion_queue_thread.h"
#include "common/event_loop.h"
#include "common/logging.h"
#include "common/net.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "worker/available_cpus.h"
#include "worker/direct_tasks.h"
#include "worker/executor.h"
#include "worker/local_store_server.h"
#include "worker/object_store.h"
#include "worker/owner_delivery.h"
#include "worker/scheduler_connection.h"
#include "worker/task_library.h"
#include "worker/worker_service.h"

namespace fleet::worker {

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(WorkerOptions options) {
  if (auto status = LoadTaskLibraries(options.task_libraries); !status.ok()) return status;
  std::unique_ptr<WorkerServer> server(new WorkerServer());
  server->id_ = WorkerId::Random();
  server->slots_ = options.slots > 0 ? options.slots : AvailableCpus();
  auto store = ObjectStore::Open({.capacity_bytes = options.store_memory_bytes,
                                  .prefault_bytes = options.store_prefault_bytes,
                                  .spill_dir = options.spill_dir,
                                  .store_name = server->id_.Hex()});
  if (!store.ok()) return store.status();
  server->store_ = std::move(*store);
  server->service_ = std::make_unique<WorkerService>(server->store_.get(), options.cluster_token);

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(options.listen_host, ":", options.port),
                           grpc::InsecureServerCredentials(), &port);
  ConfigureServer(builder);
  builder.RegisterService(server->service_.get());
  std::unique_ptr<grpc::ServerCompletionQueue> queue = builder.AddCompletionQueue();
  grpc::ServerCompletionQueue* server_queue = queue.get();
  server->grpc_server_ = builder.BuildAndStart();
  server->queue_thread_ = std::make_unique<CompletionQueueThread>(std::move(queue));
  if (server->grpc_server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_host, ":",
                                               options.port, " for the Worker service"));
  }
  server->service_->Serve(server_queue);
  server->address_ = options.advertise_address;
  if (server->address_.empty()) {
    auto host = LocalAddressToward(options.scheduler_address);
    if (!host.ok()) return host.status();
    server->address_ = host->find(':') == std::string::npos ? absl::StrCat(*host, ":", port)
                                                             : absl::StrCat("[", *host, "]:", port);
  }

  server->owners_ = std::make_unique<OwnerSubscriptions>();
  absl::StatusOr<std::unique_ptr<LocalStoreServer>> local_store =
      absl::UnavailableError("turned off with --local_store=false");
  if (options.serve_local_store) {
    local_store =
        LocalStoreServer::Start(server->store_.get(), server->id_, server->address_,
                                options.deliver_to_owner ? server->owners_.get() : nullptr);
    if (!local_store.ok()) {
      // Same-host clients then use gRPC, as remote ones do.
      GetLogger("worker")->warn("event=local_store_unavailable worker={} error=\"{}\"",
                                server->id_.Short(), local_store.status().message());
    }
  }
  if (!local_store.ok()) {
    // Executors still reach the store through connections handed to them.
    local_store = LocalStoreServer::Unlisted(server->store_.get(), server->id_);
    if (!local_store.ok()) return local_store.status();
  }
  server->local_store_ = std::move(*local_store);

  WorkerServer* self = server.get();
  SchedulerConnection::Handlers handlers;
  handlers.on_registered = [self](uint64_t threshold) {
    self->executor_->set_inline_threshold_bytes(threshold);
  };
  handlers.on_assignment = [self](v1::TaskAssignment& assignment) {
    self->executor_->Enqueue(assignment);
  };
  handlers.on_free = [self](const ObjectId& id) { self->store_->Delete(id); };
  handlers.on_cancel = [self](const TaskId& id) { self->executor_->Cancel(id); };
  handlers.on_copy = [self](v1::ObjectInfo object) {
    self->copier_->Post([self, object = std::move(object)] { self->CopyHandedOver(object); });
  };
  handlers.fill_heartbeat = [self](v1::Heartbeat& heartbeat) {
    heartbeat.set_running_tasks(self->executor_->running());
    heartbeat.set_queued_tasks(self->executor_->queued());
    const ObjectStore::Stats stats = self->store_->stats();
    heartbeat.set_store_bytes(stats.bytes);
    heartbeat.set_store_objects(stats.objects);
    heartbeat.set_store_peak_bytes(stats.peak_bytes);
    heartbeat.set_store_capacity_bytes(stats.capacity_bytes);
    heartbeat.set_store_spilled_bytes(stats.spilled_bytes);
    heartbeat.set_store_spilled_objects(stats.spilled_objects);
    heartbeat.set_store_evictions(stats.evictions);
    heartbeat.set_store_spills(stats.spills);
    heartbeat.set_store_restores(stats.restores);
    heartbeat.set_bytes_sent(self->service_->bytes_sent());
    heartbeat.set_bytes_received(self->executor_->bytes_received());
    heartbeat.set_objects_fetched(self->executor_->fetches());
    heartbeat.set_neighbour_reads(self->executor_->neighbour_reads());
    heartbeat.set_bytes_shared_locally(self->local_store_->bytes_mapped());
    heartbeat.set_executor_restarts(self->executor_->executor_restarts());
    heartbeat.set_results_delivered_to_owner(self->owners_->delivered());
    heartbeat.set_direct_tasks_run(self->direct_tasks_->run());
    heartbeat.set_direct_tasks_declined(self->direct_tasks_->declined());
  };
  handlers.fill_held_objects = [self](v1::RegisterWorker& registration) {
    for (const auto& [id, size] : self->store_->SealedObjects()) {
      v1::ObjectStored* held = registration.add_held_objects();
      held->set_object_id(std::string(id.Binary()));
      held->set_size_bytes(size);
    }
  };
  server->connection_ = std::make_unique<SchedulerConnection>(
      options.scheduler_address, server->queue_thread_->queue(), std::move(handlers),
      options.scheduler_reconnect_timeout);
  server->executor_link_ =
      std::make_unique<OwnerDeliveringLink>(server->owners_.get(), server->connection_.get());
  server->direct_tasks_ =
      std::make_unique<DirectTasks>(server->executor_link_.get(), server->connection_.get());
  Executor::Options executor_options;
  executor_options.slots = server->slots_;
  executor_options.isolation =
      options.isolate_tasks ? Executor::Isolation::kProcess : Executor::Isolation::kThread;
  executor_options.process.binary = options.executor_binary;
  executor_options.process.task_libraries = options.task_libraries;
  executor_options.process.worker_address = server->address_;
  executor_options.process.log_level = options.log_level;
  executor_options.store_server = server->local_store_.get();
  executor_options.memory_limit_bytes = options.executor_memory_limit_bytes;
  auto executor = Executor::Start(std::move(executor_options),
                                  Executor::Identity{server->id_, server->address_},
                                  server->store_.get(), server->direct_tasks_.get());
  if (!executor.ok()) return executor.status();
  server->executor_ = std::move(*executor);
  if (options.deliver_to_owner && options.direct_tasks) {
    server->direct_tasks_->Attach(server->executor_.get());
    server->local_store_->AcceptDirectTasks(server->direct_tasks_.get());
  }
  server->copier_ = std::make_unique<EventLoop>();

  v1::RegisterWorker registration;
  registration.set_worker_id(std::string(server->id_.Binary()));
  registration.set_address(server->address_);
  (*registration.mutable_resources()->mutable_quantities())["CPU"] = server->slots_;
  registration.set_hostname(Hostname());
  registration.set_pid(static_cast<uint32_t>(getpid()));
  for (const std::string& lib : options.task_libraries) registration.add_task_libraries(lib);
  if (auto status = server->connection_->Start(registration, options.connect_timeout);
      !status.ok()) {
    return status;
  }
  GetLogger("worker")->info(
      "event=worker_started worker={} address={} slots={} isolation={} scheduler={} "
      "store_bytes={} spill_dir={}",
      server->id_.Short(), server->address_, server->slots_,
      options.isolate_tasks ? "process" : "thread", options.scheduler_address,
      server->store_->stats().capacity_bytes, server->store_->spill_dir());
  return server;
}

WorkerServer::~WorkerServer() { Shutdown(); }

const std::string& WorkerServer::spill_dir() const { return store_->spill_dir(); }

absl::Status WorkerServer::Wait() { return connection_->Wait(); }

void WorkerServer::CopyHandedOver(const v1::ObjectInfo& object) {
  absl::StatusOr<ObjectId> id = ObjectId::FromBinary(object.object_id());
  absl::Status copied =
      id.ok() ? executor_->CopyObject(*id, object.location().address()) : id.status();
  if (!copied.ok()) {
    // The scheduler keeps waiting for it; the holder leaves at the end of
    // its drain timeout, and lineage rebuilds what it can.
    GetLogger("worker")->warn("event=object_copy_failed from={} error=\"{}\"",
                              object.location().address(), copied.message());
  }
}

void WorkerServer::Drain() {
  GetLogger("worker")->info(
      "event=worker_draining worker={} running={} queued={} hint=\"finishing its tasks and "
      "handing its objects over; stop signal again to stop now\"",
      id_.Short(), executor_->running(), executor_->queued());
  direct_tasks_->BeginDrain();
  connection_->BeginDrain();
}

void WorkerServer::Shutdown() {
  // A signal and the end of the scheduler stream may both ask; the second
  // caller waits for the first to finish.
  std::call_once(shutdown_once_, [this] {
    // Executors first: they report through the connection. No task is
    // handed to them after.
    if (direct_tasks_) direct_tasks_->Stop();
    if (executor_) executor_->Stop();
    if (connection_) connection_->Stop();
    if (grpc_server_) grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    // The calls the server cancelled send their last completions at once.
    if (queue_thread_) queue_thread_->Stop(/*quiet=*/absl::Milliseconds(200));
  });
}

}  // namespace fleet::worker
