// The client side of the same-host object path (worker/local_store_server.h):
// a connection to the store of a worker on this host, with its arena
// mapped, for reading sealed objects in place and writing new ones in place.
// Clients use it for Get and Put; workers use it to read an argument in
// place in a neighbour's store instead of fetching a copy.
//
// Thread-safe. Requests on one link are serialized (each is a few
// microseconds: a packet each way).
#ifndef FLEET_COMMON_LOCAL_STORE_LINK_H_
#define FLEET_COMMON_LOCAL_STORE_LINK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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
  // Making a new link first drops the links to workers that have gone, so
  // that their stores' memory, which a link's mappings keep, is given back
  // once the last pin on them goes (workers listen on new ports, and a
  // long-lived client would otherwise keep every departed one's arena).
  // A new link maps the pages of the worker's pre-faulted arena in the
  // background (unless turned off below), so that the first reads and
  // writes through it do not pay a page fault per 4 KiB (~1 us each: 20 ms
  // for 80 MB); objects of 1 MiB or more are mapped in one call when first
  // read or written in any case.
  static std::shared_ptr<LocalStoreLink> To(const std::string& address);

  // Whether links made by To() from now on map their whole pre-faulted
  // arena up front (the default). Clients turn it off: it costs ~0.2
  // CPU-seconds per same-host worker at every client start, which halved a
  // new client's speed for its first quarter second on two cores, and a
  // client that moves large objects pays ~25 ms per 100 MB of a region the
  // first time instead. Daemons and executors, long-lived, keep it.
  static void SetPopulateArenasUpFront(bool populate);

  // A link over `socket`, already connected to the store of the worker at
  // `address` (an executor process's connection to its own daemon, made
  // with socketpair). Not shared through To(). Takes the socket, also on
  // error.
  static absl::StatusOr<std::shared_ptr<LocalStoreLink>> Adopt(int socket, std::string address);

  ~LocalStoreLink();
  LocalStoreLink(const LocalStoreLink&) = delete;
  LocalStoreLink& operator=(const LocalStoreLink&) = delete;

  // Pins sealed object `id`. Returns NotFound when the worker does not hold
  // it, FailedPrecondition when it is spilled and cannot come back into
  // memory now (read it through gRPC instead), Unavailable when the
  // connection broke.
  absl::StatusOr<PinnedBytes> Read(const ObjectId& id);

  // Stores a new primary object: Create returns where to write its
  // `size_bytes` (in this process's mapping of the arena), or the worker's
  // error (AlreadyExists, ResourceExhausted when it does not fit) or
  // Unavailable; Seal makes it visible; Abort drops it. An object not
  // sealed when the link closes is dropped.
  absl::StatusOr<char*> Create(const ObjectId& id, uint64_t size_bytes);
  absl::Status Seal(const ObjectId& id);
  void Abort(const ObjectId& id);
  // Create in the store's free memory only: ResourceExhausted rather than
  // evicting or spilling other objects to make room.
  absl::StatusOr<char*> CreateInFreeMemory(const ObjectId& id, uint64_t size_bytes);
  // Seals object `id` (created here) as object `as` instead. AlreadyExists
  // when the worker holds `as` already; the object is then still unsealed.
  absl::Status SealAs(const ObjectId& id, const ObjectId& as);

  const WorkerId& worker_id() const { return worker_id_; }
  uint64_t arena_bytes() const { return arena_bytes_; }
  const std::string& address() const { return address_; }

 private:
  LocalStoreLink(std::string address, int socket);
  void PopulatePrefaulted();
  static void ForgetDeparted();

  absl::StatusOr<char*> CreateObject(const ObjectId& id, uint64_t size_bytes,
                                     bool free_memory_only);
  // Receives the hello and maps the arena.
  absl::Status Handshake();
  // Sends `request` and reads the reply, as one exchange; OK only when the
  // worker's reply is.
  absl::Status Exchange(const v1::LocalStoreRequest& request, v1::LocalStoreReply* reply)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SendRelease(const ObjectId& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the worker's reply describes bytes inside the mapped arena.
  bool InArena(uint64_t offset, uint64_t size) const {
    return offset <= arena_bytes_ && size <= arena_bytes_ - offset;
  }
  // Maps the pages of [offset, offset + size) of the arena into the read
  // (or write) mapping in one call, instead of one fault per 4 KiB page on
  // first touch: 80 MB read for the first time costs 20,000 faults.
  void Populate(uint64_t offset, uint64_t size, bool for_write) ABSL_LOCKS_EXCLUDED(populate_mu_);

  const std::string address_;
  const int socket_;
  WorkerId worker_id_;
  // The arena twice: read-only for views, writable for Write only, so a
  // stray write through a view faults instead of corrupting an object.
  const char* read_base_ = nullptr;
  char* write_base_ = nullptr;
  uint64_t arena_bytes_ = 0;
  uint64_t prefaulted_bytes_ = 0;
  std::thread populating_;  // PopulatePrefaulted, joined by the destructor

  static constexpr uint64_t kPopulateChunkBytes = 2 << 20;
  absl::Mutex populate_mu_;
  // Which 2 MiB chunks of each mapping are known to be mapped already.
  std::vector<bool> read_chunks_ ABSL_GUARDED_BY(populate_mu_);
  std::vector<bool> written_chunks_ ABSL_GUARDED_BY(populate_mu_);

  absl::Mutex mu_;                   // one exchange on the socket at a time
  std::atomic<bool> broken_{false};  // the connection failed; To() makes a new link
};

}  // namespace fleet

#endif  // FLEET_COMMON_LOCAL_STORE_LINK_H_
