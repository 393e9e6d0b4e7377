// The client side of the same-host object path (worker/local_store_server.h):
// a connection to the store of a worker on this host, with its arena
// mapped, for reading sealed objects in place and writing new ones in place.
// Clients use it for Get and Put; workers use it to copy an argument from a
// neighbour's store with one memcpy instead of a gRPC stream.
//
// Thread-safe. Requests on one link are serialized (each is a few
// microseconds: a packet each way).
#ifndef FLEET_COMMON_LOCAL_STORE_LINK_H_
#define FLEET_COMMON_LOCAL_STORE_LINK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace fleet {
namespace v1 {
class LocalStoreRequest;
class LocalStoreReply;
}  // namespace v1

class LocalStoreLink : public std::enable_shared_from_this<LocalStoreLink> {
 public:
  // An object's bytes in the mapped arena, pinned there (never evicted,
  // spilled or freed) until `pin` and every copy of it are destroyed.
  struct PinnedBytes {
    const char* data = nullptr;
    uint64_t size = 0;
    std::shared_ptr<const void> pin;
  };

  // The link to the worker at `address` ("host:port"), shared by the whole
  // process; nullptr when that worker is not on this host (or not running).
  // A missing worker is asked again after a few seconds, not on every call.
  static std::shared_ptr<LocalStoreLink> To(const std::string& address);

  ~LocalStoreLink();
  LocalStoreLink(const LocalStoreLink&) = delete;
  LocalStoreLink& operator=(const LocalStoreLink&) = delete;

  // Pins sealed object `id`. Returns NotFound when the worker does not hold
  // it, FailedPrecondition when it is spilled and cannot come back into
  // memory now (read it through gRPC instead), Unavailable when the
  // connection broke.
  absl::StatusOr<PinnedBytes> Read(const ObjectId& id);

  // Stores a new primary object `id` of `size_bytes`: `write` fills its
  // bytes in place, then it is sealed (or aborted, when `write` throws:
  // the exception propagates). Returns the worker's error
  // (AlreadyExists, ResourceExhausted when it does not fit) or Unavailable.
  absl::Status Write(const ObjectId& id, uint64_t size_bytes,
                     absl::FunctionRef<void(char* out)> write);

  const WorkerId& worker_id() const { return worker_id_; }
  const std::string& address() const { return address_; }

 private:
  LocalStoreLink(std::string address, int socket);

  // Receives the hello and maps the arena.
  absl::Status Handshake();
  // Sends `request` and reads the reply, as one exchange; OK only when the
  // worker's reply is.
  absl::Status Exchange(const v1::LocalStoreRequest& request, v1::LocalStoreReply* reply)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SendRelease(const ObjectId& id) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string address_;
  const int socket_;
  WorkerId worker_id_;
  // The arena twice: read-only for views, writable for Write only, so a
  // stray write through a view faults instead of corrupting an object.
  const char* read_base_ = nullptr;
  char* write_base_ = nullptr;
  uint64_t arena_bytes_ = 0;

  absl::Mutex mu_;  // one exchange on the socket at a time
  std::atomic<bool> broken_{false};  // the connection failed; To() makes a new link
};

}  // namespace fleet

#endif  // FLEET_COMMON_LOCAL_STORE_LINK_H_
