// Where the large arrays a task makes in an executor process are built
// (fleet::internal::ArrayMemory, serialization.h): new objects in the
// daemon's store, under scratch ids, written in place through the
// executor's mapping. One the task returns is sealed as its result where it
// was built: no copy into the store, and no page faults either, as the
// store's memory is faulted in already where a fresh heap block of that
// size is not (16 MB built and stored: ~4 ms before, ~1.5 ms now). Any
// other is dropped when destroyed.
//
// Only memory the store has free is used: a working array never makes the
// store evict or spill an object, and without free memory it is built on
// the heap, as before. Nor does one executor's arrays take more than a
// quarter of the store at once (kMaxArenaShare): they are outside its
// --executor_memory_limit, and a task that makes many must not leave the
// others' results no room. An array a task keeps past its call (in a
// static) stays in the store until the executor exits.
//
// Tasks on daemon threads (--isolation=thread) build arrays on the heap: an
// array kept in a static there would outlive the store it was built in.
#ifndef FLEET_WORKER_TASK_ARRAY_MEMORY_H_
#define FLEET_WORKER_TASK_ARRAY_MEMORY_H_

#include <cstdint>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "common/local_store_link.h"
#include "fleet/serialization.h"

namespace fleet::worker {

class TaskArrayMemory : public internal::ArrayMemory {
 public:
  // Through the executor's link to its daemon's store, which must outlive
  // every array built here.
  explicit TaskArrayMemory(LocalStoreLink* store)
      : store_(store), max_bytes_(store->arena_bytes() / kMaxArenaShare) {}
  TaskArrayMemory(const TaskArrayMemory&) = delete;
  TaskArrayMemory& operator=(const TaskArrayMemory&) = delete;

  char* Allocate(std::string_view header, std::size_t data_bytes) override;
  void Free(char* data) override;

  // Seals the array whose elements are at `data` (from Allocate) as object
  // `id`, and returns the object's size (header and elements). From then on
  // Free of `data` does nothing. AlreadyExists: `id` is stored already (a
  // task run here again); the array stays as it was. NotFound: `data` is
  // not an array of this memory.
  absl::StatusOr<uint64_t> SealAs(const void* data, const ObjectId& id);

 private:
  struct Scratch {
    ObjectId id;
    uint64_t size = 0;
  };

  static constexpr uint64_t kMaxArenaShare = 4;

  LocalStoreLink* const store_;
  const uint64_t max_bytes_;
  // Scratch ids are objects of a job of their own, which no client has.
  const JobId scratch_job_ = JobId::Random();

  absl::Mutex mu_;
  uint64_t next_scratch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t live_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of the arrays in arrays_
  // By the address of the elements.
  absl::flat_hash_map<const void*, Scratch> arrays_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_TASK_ARRAY_MEMORY_H_
