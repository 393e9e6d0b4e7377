// Lineage: the specs of finished tasks whose results may have to be
// rebuilt by running them again, with the memory they take bounded.
//
// SchedulerCore retains a task's spec when the task finishes while any of
// its results is still alive (its owner holds it, a pending task takes it,
// or a retained spec downstream takes it as an argument), and releases the
// spec when the last of those results is erased. This class only keeps the
// entries, counts each one's live results and evicts the oldest entries
// beyond `max_bytes`; what an entry's arguments and results mean is the
// core's business.
//
// Thread-compatible: owned by SchedulerCore, on the scheduler's loop thread.
#ifndef FLEET_SCHEDULER_LINEAGE_H_
#define FLEET_SCHEDULER_LINEAGE_H_

#include <cstdint>
#include <list>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "common/ids.h"
#include "fleet/v1/common.pb.h"

namespace fleet::scheduler {

// Identifies one client session stream for the life of the scheduler.
using SessionId = uint64_t;

class Lineage {
 public:
  struct Entry {
    v1::TaskSpec spec;
    SessionId owner = 0;
    uint32_t attempt = 0;     // the attempt whose results are (or were) alive
    int reconstructions = 0;  // times the task ran again to rebuild lost results
    absl::InlinedVector<ObjectId, 2> ref_args;  // distinct
  };

  explicit Lineage(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  Lineage(const Lineage&) = delete;
  Lineage& operator=(const Lineage&) = delete;

  // Keeps `entry` for `task`, of which `live_returns` (> 0) results are
  // alive, replacing any entry it had. An entry counts its spec's wire size
  // plus a fixed overhead. Returns the entries evicted, oldest first, to
  // keep the total within max_bytes: possibly this one, when it alone is
  // larger.
  std::vector<std::pair<TaskId, Entry>> Retain(const TaskId& task, Entry entry, int live_returns);

  bool Contains(const TaskId& task) const { return slots_.contains(task); }
  // Null when the task has no entry.
  const Entry* Find(const TaskId& task) const;

  // Removes the entry, for the task to run again; nullopt when it has none.
  std::optional<Entry> Take(const TaskId& task);

  // One of the task's results was erased. Returns the entry, removed, when
  // it was the last; nullopt otherwise (or when the task has no entry).
  std::optional<Entry> ReleaseReturn(const TaskId& task);

  std::size_t size() const { return slots_.size(); }
  uint64_t bytes() const { return bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  // Entries evicted since the start.
  uint64_t evicted() const { return evicted_; }

 private:
  struct Slot {
    Entry entry;
    int live_returns = 0;
    uint64_t bytes = 0;
    std::list<TaskId>::iterator age;  // its place in oldest_first_
  };

  Entry Remove(absl::flat_hash_map<TaskId, Slot>::iterator it);

  const uint64_t max_bytes_;
  absl::flat_hash_map<TaskId, Slot> slots_;
  std::list<TaskId> oldest_first_;
  uint64_t bytes_ = 0;
  uint64_t evicted_ = 0;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_LINEAGE_H_
