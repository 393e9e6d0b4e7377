// Serves the object store to processes on this host (local_store.proto):
// clients and other workers map the arena's memfd and read sealed objects
// in place, pinned for as long as they hold them, or write new objects
// straight into the arena. This is how a same-host Get returns a view with
// no copy and a same-host Put costs one memcpy into pre-faulted memory.
//
// Every pin and unsealed object belongs to its connection: when a client
// exits or crashes, the kernel closes its socket and everything it held is
// released. Only processes of this worker's user (or root) are served.
//
// A client may also subscribe to its tasks' results on a connection of its
// own (OwnerSubscriptions): the worker then pushes them there, and takes
// tasks the client hands it on that connection (DirectTasks).
//
// Thread-safe. One thread accepts; each connection has a thread (a host
// has a handful of clients and workers, not thousands).
#ifndef FLEET_WORKER_LOCAL_STORE_SERVER_H_
#define FLEET_WORKER_LOCAL_STORE_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace fleet::worker {

class DirectTasks;
class ObjectStore;
class OwnerSubscriptions;

class LocalStoreServer {
 public:
  // Listens on the abstract socket named after `address` (see
  // common/local_socket.h). `store` must outlive the server, and so must
  // `owner_subscriptions`, which takes the subscriptions (none are taken
  // when null).
  static absl::StatusOr<std::unique_ptr<LocalStoreServer>> Start(
      ObjectStore* store, const WorkerId& worker_id, const std::string& address,
      OwnerSubscriptions* owner_subscriptions = nullptr);
  // Serves only the connections handed to ServeConnection (no socket name:
  // --local_store=false, or another process holds the name).
  static absl::StatusOr<std::unique_ptr<LocalStoreServer>> Unlisted(ObjectStore* store,
                                                                    const WorkerId& worker_id);
  // Closes every connection (releasing their pins) and joins the threads.
  ~LocalStoreServer();
  LocalStoreServer(const LocalStoreServer&) = delete;
  LocalStoreServer& operator=(const LocalStoreServer&) = delete;

  // Serves `fd`, one end of a connected SOCK_SEQPACKET socketpair whose
  // other end is given to a process of this worker (an executor). Takes the
  // descriptor, also on error.
  absl::Status ServeConnection(int fd);

  // Where tasks handed over on subscribed connections go (RunTask); set
  // once, before the worker registers. Until then they are dropped.
  void AcceptDirectTasks(DirectTasks* tasks) { direct_tasks_.store(tasks); }

  // Bytes handed out by Get replies: what same-host clients and workers
  // read in place (this worker's executors are not counted).
  uint64_t bytes_mapped() const { return bytes_mapped_.load(std::memory_order_relaxed); }

 private:
  LocalStoreServer(ObjectStore* store, const WorkerId& worker_id, int listen_fd, int wake_fd);

  void AcceptLoop();
  // `counted`: its reads count in bytes_mapped (not an executor's).
  void Serve(int fd, bool counted);
  void JoinFinishedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddConnectionLocked(int fd, bool counted) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ObjectStore* const store_;
  OwnerSubscriptions* owner_subscriptions_ = nullptr;  // set once, by Start
  const WorkerId worker_id_;
  const int listen_fd_;  // -1 when Unlisted
  const int wake_fd_;    // an eventfd that stops AcceptLoop
  std::atomic<uint64_t> bytes_mapped_{0};
  std::atomic<DirectTasks*> direct_tasks_{nullptr};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<int> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  // Threads whose connection ended, joined at the next accept.
  std::vector<std::thread::id> finished_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;  // not started when Unlisted
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_LOCAL_STORE_SERVER_H_
