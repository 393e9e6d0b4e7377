// The scheduler daemon as a library: the event loop, the core, the gRPC
// service and the HTTP endpoint wired together. main.cc and the client's
// embedded cluster both run it.
#ifndef FLEET_SCHEDULER_SCHEDULER_SERVER_H_
#define FLEET_SCHEDULER_SCHEDULER_SERVER_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/completion_queue.h"
#include "scheduler/scheduler_core.h"

namespace grpc {
class Server;
}

namespace fleet {
class ClusterTokenCheck;
class EventLoop;
}

namespace fleet::scheduler {

class StreamRouter;
class SchedulerService;
class AdminService;
class ObjectRelay;
class StatusHttpServer;
class StateStore;

struct SchedulerOptions {
  std::string host = "0.0.0.0";
  int port = 50051;       // 0: any free port
  int http_port = 8265;   // 0: any free port; -1: no HTTP endpoint
  // Where the durable state lives (RocksDB); empty: in memory only. A
  // scheduler started again on the same directory takes over its state.
  std::string state_dir;
  // Each commit waits for the disk, not only the OS (see StateStore).
  bool state_sync = false;
  // Every RPC must carry this token (common/cluster_token.h); empty: none
  // is required.
  std::string cluster_token;
  // With a loopback or wildcard `host`, also listen on an abstract unix
  // socket named after the port, which same-host workers and clients
  // connecting through a loopback address use instead of TCP
  // (common/scheduler_socket.h).
  bool local_socket = true;
  SchedulerConfig core;
};

// Thread-safe.
class SchedulerServer {
 public:
  // Returns Unavailable when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> Start(SchedulerOptions options);
  ~SchedulerServer();  // shuts down

  int port() const { return port_; }
  // The gRPC target of the local socket (common/scheduler_socket.h); empty
  // when the scheduler has none.
  const std::string& local_socket() const { return local_socket_; }
  int http_port() const;
  // Stops accepting calls, ends every stream and stops the loop.
  // Idempotent.
  void Shutdown();
  // Blocks until Shutdown.
  void Wait();

 private:
  SchedulerServer() = default;

  std::once_flag shutdown_once_;

  // Declared in dependency order: each member uses only those above it, and
  // they are destroyed bottom-up.
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<StreamRouter> router_;
  std::unique_ptr<SchedulerCore> core_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<ClusterTokenCheck> token_;
  std::unique_ptr<SchedulerService> service_;
  std::unique_ptr<AdminService> admin_;  // operators' calls (the `fleet` tool)
  std::unique_ptr<ObjectRelay> relay_;   // large objects for clients outside
  // Every call's completions, drained by the core thread, which also runs
  // the loop's events (SchedulerService::Drain); destroyed after the server.
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::thread core_thread_;
  std::unique_ptr<StatusHttpServer> http_;
  // Declares silent workers dead (SchedulerCore::ExpireSilentWorkers).
  absl::Notification stop_liveness_;
  std::thread liveness_;
  absl::Time last_liveness_check_;  // the loop thread's, once the thread runs
  int port_ = 0;
  std::string local_socket_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SCHEDULER_SERVER_H_
