#include "worker/local_store_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/local_socket.h"
#include "common/logging.h"
#include "fleet/v1/local_store.pb.h"
#include "worker/direct_tasks.h"
#include "worker/object_store.h"
#include "worker/owner_delivery.h"

namespace fleet::worker {
namespace {

bool SameUser(int fd) {
  ucred peer{};
  socklen_t length = sizeof(peer);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) return false;
  return peer.uid == geteuid() || peer.uid == 0;
}

void SetStatus(const absl::Status& status, v1::LocalStoreReply& reply) {
  reply.set_code(static_cast<int32_t>(status.code()));
  reply.set_message(std::string(status.message()));
}

// What one connection holds: pins of sealed objects (a Get may pin an
// object several times) and objects being written.
struct ConnectionState {
  absl::flat_hash_map<ObjectId, std::vector<ObjectStore::View>> pins;
  absl::flat_hash_map<ObjectId, ObjectStore::Writer> writers;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LocalStoreServer>> LocalStoreServer::Start(
    ObjectStore* store, const WorkerId& worker_id, const std::string& address,
    OwnerSubscriptions* owner_subscriptions) {
  absl::StatusOr<int> listen_fd = ListenLocalSocket(address);
  if (!listen_fd.ok()) return listen_fd.status();
  const int wake_fd = eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) {
    close(*listen_fd);
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  std::unique_ptr<LocalStoreServer> server(
      new LocalStoreServer(store, worker_id, *listen_fd, wake_fd));
  server->owner_subscriptions_ = owner_subscriptions;
  server->acceptor_ = std::thread([raw = server.get()] { raw->AcceptLoop(); });
  return server;
}

absl::StatusOr<std::unique_ptr<LocalStoreServer>> LocalStoreServer::Unlisted(
    ObjectStore* store, const WorkerId& worker_id) {
  const int wake_fd = eventfd(0, EFD_CLOEXEC);
  if (wake_fd < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  return std::unique_ptr<LocalStoreServer>(new LocalStoreServer(store, worker_id, -1, wake_fd));
}

LocalStoreServer::LocalStoreServer(ObjectStore* store, const WorkerId& worker_id, int listen_fd,
                                   int wake_fd)
    : store_(store), worker_id_(worker_id), listen_fd_(listen_fd), wake_fd_(wake_fd) {}

LocalStoreServer::~LocalStoreServer() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    GetLogger("worker")->error("event=local_store_stop_failed error=\"{}\"",
                               std::strerror(errno));
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (int fd : connections_) shutdown(fd, SHUT_RDWR);  // wakes their reads
    threads = std::move(threads_);
  }
  for (std::thread& thread : threads) thread.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  close(wake_fd_);
}

absl::Status LocalStoreServer::ServeConnection(int fd) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    close(fd);
    return absl::UnavailableError("the worker's local store server is stopping");
  }
  AddConnectionLocked(fd, /*counted=*/false);
  return absl::OkStatus();
}

void LocalStoreServer::AddConnectionLocked(int fd, bool counted) {
  JoinFinishedLocked();
  connections_.insert(fd);
  threads_.emplace_back([this, fd, counted] { Serve(fd, counted); });
}

void LocalStoreServer::AcceptLoop() {
  pollfd watched[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      GetLogger("worker")->error("event=local_store_poll_failed error=\"{}\"",
                                 std::strerror(errno));
      return;
    }
    if (watched[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the peer gave up, or out of descriptors for now
    if (!SameUser(fd)) {
      GetLogger("worker")->warn(
          "event=local_store_refused reason=\"a process of another user connected\"");
      close(fd);
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    AddConnectionLocked(fd, /*counted=*/true);
  }
}

void LocalStoreServer::Serve(int fd, bool counted) {
  v1::LocalStoreHello hello;
  hello.set_worker_id(std::string(worker_id_.Binary()));
  hello.set_arena_bytes(store_->arena_bytes());
  hello.set_prefaulted_bytes(store_->arena_prefaulted_bytes());
  hello.set_takes_subscriptions(owner_subscriptions_ != nullptr);
  hello.set_takes_tasks(owner_subscriptions_ != nullptr && direct_tasks_.load() != nullptr);
  absl::Status status = SendPacket(fd, hello, store_->arena_fd());
  ConnectionState state;
  bool subscribed = false;
  JobId subscribed_job;
  v1::LocalStoreRequest request;
  while (status.ok()) {
    status = ReceivePacket(fd, &request);
    if (!status.ok()) break;
    v1::LocalStoreReply reply;
    switch (request.request_case()) {
      case v1::LocalStoreRequest::kGet: {
        absl::StatusOr<ObjectId> id = ObjectId::FromBinary(request.get().object_id());
        absl::StatusOr<ObjectStore::View> view = id.ok() ? store_->Get(*id) : id.status();
        std::optional<uint64_t> offset;
        if (view.ok()) offset = store_->ArenaOffset(view->data());
        if (!view.ok()) {
          SetStatus(view.status(), reply);
        } else if (!offset) {
          SetStatus(absl::FailedPreconditionError(absl::StrCat(
                        "object ", id->Short(), " is read from its spill file, not the arena")),
                    reply);
        } else {
          reply.set_offset_bytes(*offset);
          reply.set_size_bytes(view->size());
          if (counted) bytes_mapped_.fetch_add(view->size(), std::memory_order_relaxed);
          state.pins[*id].push_back(std::move(*view));
        }
        break;
      }
      case v1::LocalStoreRequest::kRelease: {
        absl::StatusOr<ObjectId> id = ObjectId::FromBinary(request.release().object_id());
        if (!id.ok()) continue;
        auto it = state.pins.find(*id);
        if (it == state.pins.end()) continue;
        it->second.pop_back();
        if (it->second.empty()) state.pins.erase(it);
        continue;  // no reply
      }
      case v1::LocalStoreRequest::kCreate: {
        absl::StatusOr<ObjectId> id = ObjectId::FromBinary(request.create().object_id());
        const uint64_t size = request.create().size_bytes();
        absl::StatusOr<ObjectStore::Writer> writer = !id.ok() ? id.status()
                                                     : request.create().free_memory_only()
                                                         ? store_->CreateInFreeMemory(*id, size)
                                                         : store_->Create(*id, size);
        std::optional<uint64_t> offset;
        if (writer.ok()) offset = store_->ArenaOffset(writer->data());
        if (!writer.ok()) {
          SetStatus(writer.status(), reply);
        } else if (!offset) {
          // Larger than the arena: the writer aborts, the client uploads.
          SetStatus(absl::ResourceExhaustedError(absl::StrCat(
                        "object ", id->Short(), " (", request.create().size_bytes(),
                        " bytes) is larger than the object store's arena")),
                    reply);
        } else {
          reply.set_offset_bytes(*offset);
          reply.set_size_bytes(writer->size());
          state.writers[*id] = std::move(*writer);
        }
        break;
      }
      case v1::LocalStoreRequest::kSeal: {
        absl::StatusOr<ObjectId> id = ObjectId::FromBinary(request.seal().object_id());
        auto it = id.ok() ? state.writers.find(*id) : state.writers.end();
        if (it == state.writers.end()) {
          SetStatus(absl::NotFoundError("Seal of an object this connection did not create"),
                    reply);
          break;
        }
        if (request.seal().as_object_id().empty()) {
          it->second.Seal();
          state.writers.erase(it);
          break;
        }
        absl::StatusOr<ObjectId> as = ObjectId::FromBinary(request.seal().as_object_id());
        absl::Status sealed = as.ok() ? it->second.SealAs(*as) : as.status();
        if (sealed.ok()) {
          state.writers.erase(it);
        } else {
          SetStatus(sealed, reply);  // still unsealed: the client aborts it
        }
        break;
      }
      case v1::LocalStoreRequest::kAbort: {
        absl::StatusOr<ObjectId> id = ObjectId::FromBinary(request.abort().object_id());
        if (id.ok()) state.writers.erase(*id);  // an unsealed Writer aborts
        break;
      }
      case v1::LocalStoreRequest::kSubscribe: {
        // From now on the connection carries pushes down, and tasks handed
        // over up.
        absl::StatusOr<JobId> job = JobId::FromBinary(request.subscribe().job_id());
        if (job.ok() && owner_subscriptions_ != nullptr && !subscribed) {
          owner_subscriptions_->Subscribe(*job, fd);
          subscribed = true;
          subscribed_job = *job;
        }
        continue;  // no reply
      }
      case v1::LocalStoreRequest::kRunTask: {
        // Its client submits it naming this worker: it is run here or
        // declined to the scheduler. Only a worker whose hello said it takes
        // no tasks (no client sends it one) drops it.
        DirectTasks* tasks = direct_tasks_.load();
        v1::TaskSpec& spec = *request.mutable_run_task()->mutable_spec();
        if (tasks == nullptr) {
          GetLogger("worker")->warn(
              "event=direct_task_dropped reason=\"the worker takes no direct tasks\"");
        } else if (subscribed) {
          tasks->Run(subscribed_job, std::move(spec));
        } else {
          tasks->Decline(std::move(spec));
        }
        continue;  // no reply: the results come as any task's
      }
      case v1::LocalStoreRequest::REQUEST_NOT_SET:
        SetStatus(absl::InvalidArgumentError("empty local store request"), reply);
        break;
    }
    status = SendPacket(fd, reply);
  }
  if (!absl::IsCancelled(status)) {
    GetLogger("worker")->warn("event=local_store_connection_failed error=\"{}\"",
                              status.message());
  }
  state = ConnectionState();  // releases pins, aborts unsealed objects
  if (subscribed) owner_subscriptions_->Unsubscribe(fd);  // no push is under way after it
  absl::MutexLock lock(&mu_);
  connections_.erase(fd);
  close(fd);
  finished_.push_back(std::this_thread::get_id());
}

void LocalStoreServer::JoinFinishedLocked() {
  for (std::thread::id id : finished_) {
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [id](const std::thread& t) { return t.get_id() == id; });
    if (it == threads_.end()) continue;
    it->join();  // it has returned from Serve or is about to
    threads_.erase(it);
  }
  finished_.clear();
}

}  // namespace fleet::worker
