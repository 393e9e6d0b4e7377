// The worker daemon as a library: object store, executor, Worker service
// and scheduler connection wired together. main.cc and the client's
// embedded cluster both run it.
#ifndef FLEET_WORKER_WORKER_SERVER_H_
#define FLEET_WORKER_WORKER_SERVER_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "worker/shm_arena.h"

namespace grpc {
class Server;
}

namespace fleet {
class CompletionQueueThread;
class EventLoop;
namespace v1 {
class ObjectInfo;
}
}  // namespace fleet

namespace fleet::worker {

class ObjectStore;
class Executor;
class WorkerService;
class LocalStoreServer;
class SchedulerConnection;
class OwnerSubscriptions;
class OwnerDeliveringLink;
class DirectTasks;

struct WorkerOptions {
  std::string scheduler_address;  // host:port
  int slots = 0;                  // 0: one per hardware thread
  std::vector<std::string> task_libraries;
  std::string listen_host = "0.0.0.0";
  int port = 0;  // of the Worker service; 0: any free port
  // host:port peers and clients use to reach this worker; empty: the local
  // address on the route to the scheduler, with the bound port.
  std::string advertise_address;
  // Peers and clients must send it on every call to the object service
  // (common/cluster_token.h); empty: none is required.
  std::string cluster_token;
  absl::Duration connect_timeout = absl::Seconds(10);
  // After losing the scheduler's stream, how long to keep trying to
  // reconnect (tasks keep running meanwhile); zero: exit at once.
  absl::Duration scheduler_reconnect_timeout = absl::Seconds(60);
  // Object store: its memory limit (0: DefaultStoreMemoryBytes(), 30% of
  // this host's or container's memory), how much of it to pre-fault at
  // start, and where to spill (a subdirectory named after the worker id is
  // made there and removed at shutdown; empty: $TMPDIR or /tmp).
  uint64_t store_memory_bytes = 0;
  uint64_t store_prefault_bytes = kDefaultStorePrefaultBytes;
  std::string spill_dir;
  // Serve the store to same-host processes through shared memory (see
  // local_store_server.h).
  bool serve_local_store = true;
  // Push small results straight to their same-host client, subscribed
  // through that socket (owner_delivery.h).
  bool deliver_to_owner = true;
  // Take tasks such a client hands over on that subscription
  // (direct_tasks.h); only with deliver_to_owner.
  bool direct_tasks = true;
  // Where tasks run (executor.h): in executor processes started from
  // `executor_binary` (fleet-executor), each killed when it uses more than
  // `executor_memory_limit_bytes` of anonymous memory (0: no limit), or on
  // this process's threads.
  bool isolate_tasks = true;
  std::string executor_binary;
  uint64_t executor_memory_limit_bytes = 0;
  std::string log_level;  // passed on to executors
};

// Thread-safe.
class WorkerServer {
 public:
  // Loads the task libraries, starts the executors, starts serving and
  // registers with the scheduler. Returns FailedPrecondition for a bad task
  // library or an executor that does not start, Unavailable when the
  // scheduler cannot be reached.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(WorkerOptions options);
  ~WorkerServer();

  const WorkerId& id() const { return id_; }
  const std::string& address() const { return address_; }
  int slots() const { return slots_; }
  // The object store's spill directory (removed when the server is destroyed).
  const std::string& spill_dir() const;
  // Blocks until the connection to the scheduler ends; returns why (OK
  // after Shutdown).
  absl::Status Wait();
  // Asks the scheduler to drain this worker: it gets no new tasks, finishes
  // those it holds, hands its objects to other workers, and then the
  // scheduler ends the stream (Wait returns OK). Does not wait.
  void Drain();
  // Idempotent; concurrent callers return once it is done.
  void Shutdown();

 private:
  WorkerServer() = default;
  // Makes this store hold a primary copy of `object`, fetched from its
  // (draining) holder. On the copier's thread.
  void CopyHandedOver(const v1::ObjectInfo& object);

  WorkerId id_;
  std::string address_;
  int slots_ = 0;
  std::once_flag shutdown_once_;
  // Declared in dependency order; destroyed bottom-up.
  std::unique_ptr<ObjectStore> store_;
  // Same-host clients subscribed to their results (owner_delivery.h).
  std::unique_ptr<OwnerSubscriptions> owners_;
  // What the executor reports to. Before local_store_, whose connections
  // hand it tasks until they close (it drops them once stopped).
  std::unique_ptr<DirectTasks> direct_tasks_;
  std::unique_ptr<WorkerService> service_;
  // Drains the queue of the Worker service's calls and the scheduler
  // stream's.
  std::unique_ptr<CompletionQueueThread> queue_thread_;
  std::unique_ptr<grpc::Server> grpc_server_;
  // Listening on the socket named after address_, or Unlisted (serving
  // only executors) when that is off or taken.
  std::unique_ptr<LocalStoreServer> local_store_;
  std::unique_ptr<SchedulerConnection> connection_;
  // What executors report to: the owners first, then connection_.
  std::unique_ptr<OwnerDeliveringLink> executor_link_;
  std::unique_ptr<Executor> executor_;
  // Copies objects a draining peer hands over, one at a time, so that the
  // scheduler connection's thread never waits on a fetch.
  std::unique_ptr<EventLoop> copier_;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_WORKER_SERVER_H_
