// Obtains the objects a task reads: from this worker's store; in place in
// the store of the worker that holds them when that worker is on this host
// (pinned there through the local store link: no copy, no second copy of
// the memory); or else fetched from the holder straight into this store.
// Concurrent requests for one object share one fetch, and the fetched copy
// is kept (as a secondary, evicted first under pressure) and reported to
// the scheduler, so 95 tasks reading one array on this worker transfer it
// once.
//
// Thread-safe.
#ifndef FLEET_WORKER_ARGUMENT_FETCHER_H_
#define FLEET_WORKER_ARGUMENT_FETCHER_H_

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/ids.h"
#include "common/local_store_link.h"
#include "worker/object_store.h"
#include "worker/scheduler_link.h"

namespace fleet::worker {

// The bytes of one argument, readable while this lives: pinned in this
// store, pinned in a same-host neighbour's store, or (an object too large
// for the store to keep a copy of) held privately.
class ArgumentBytes {
 public:
  explicit ArgumentBytes(ObjectStore::View view) : view_(std::move(view)) {}
  explicit ArgumentBytes(std::shared_ptr<const std::string> owned)
      : elsewhere_(*owned), owner_(std::move(owned)) {}
  ArgumentBytes(LocalStoreLink::PinnedBytes pinned, std::string neighbour_address)
      : elsewhere_(pinned.data, pinned.size),
        owner_(std::move(pinned.pin)),
        neighbour_address_(std::move(neighbour_address)) {}

  std::string_view bytes() const { return owner_ != nullptr ? elsewhere_ : view_.std_view(); }
  bool in_this_store() const { return owner_ == nullptr; }
  // The same-host worker whose store holds the bytes; empty when they are
  // in this store or private.
  const std::string& neighbour_address() const { return neighbour_address_; }

 private:
  ObjectStore::View view_;
  std::string_view elsewhere_;  // when owner_ is set
  std::shared_ptr<const void> owner_;
  std::string neighbour_address_;
};

class ArgumentFetcher {
 public:
  ArgumentFetcher(ObjectStore* store, SchedulerLink* link) : store_(store), link_(link) {}

  // Returns object `id`, fetching it from the worker at `holder_address`
  // when this store lacks it. Errors name the object and the holder.
  absl::StatusOr<ArgumentBytes> Obtain(const ObjectId& id, const std::string& holder_address);

  // Makes this store hold a primary copy of `id` (its holder at
  // `holder_address` is leaving), fetching it unless a copy is here, and
  // reports it stored.
  absl::Status Copy(const ObjectId& id, const std::string& holder_address);

  uint64_t bytes_received() const { return bytes_received_.load(); }
  uint64_t fetches() const { return fetches_.load(); }
  // Arguments read in place in a same-host neighbour's store.
  uint64_t neighbour_reads() const { return neighbour_reads_.load(); }

 private:
  struct Fetch {
    absl::Notification done;
    absl::Status status;  // written before `done` is notified
  };

  // Fetches `id` into the store as a `copy`; returns a private copy
  // instead when the store cannot hold a secondary one.
  absl::StatusOr<std::shared_ptr<const std::string>> FetchIntoStore(
      const ObjectId& id, const std::string& holder_address, ObjectStore::Copy copy);
  void ReportStored(const ObjectId& id, uint64_t size_bytes);

  ObjectStore* const store_;
  SchedulerLink* const link_;
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> fetches_{0};
  std::atomic<uint64_t> neighbour_reads_{0};
  absl::Mutex mu_;
  absl::flat_hash_map<ObjectId, std::shared_ptr<Fetch>> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_ARGUMENT_FETCHER_H_
