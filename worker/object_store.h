// The worker's object store: sealed, immutable objects by id, in process
// memory. (Issue #3 moves it into a shared-memory arena with spilling.)
//
// Thread-safe: executors, FetchObject streams and the scheduler connection
// use it concurrently.
#ifndef FLEET_WORKER_OBJECT_STORE_H_
#define FLEET_WORKER_OBJECT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace fleet::worker {

using ObjectBytes = std::shared_ptr<const std::string>;

class ObjectStore {
 public:
  struct Stats {
    uint64_t bytes = 0;
    uint64_t objects = 0;
    uint64_t peak_bytes = 0;
  };

  // Stores `bytes` as `id`. Storing an id again keeps the first copy (objects
  // are immutable; a re-run task produces the same value).
  void Put(const ObjectId& id, ObjectBytes bytes);
  // Returns NotFound naming the id when absent.
  absl::StatusOr<ObjectBytes> Get(const ObjectId& id) const;
  bool Contains(const ObjectId& id) const;
  // Readers holding the bytes keep them alive; the store forgets them now.
  void Delete(const ObjectId& id);
  Stats stats() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<ObjectId, ObjectBytes> objects_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_OBJECT_STORE_H_
