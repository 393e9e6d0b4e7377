// The scheduler's durable state (--state_dir), kept in an embedded RocksDB:
// one record per task, object, session and worker (proto/fleet/v1/
// state.proto), rewritten when it changes. The event loop commits the
// changes of each batch of events as one atomic write: RocksDB's write-ahead
// log makes it durable, and its memtable flushes and compactions are the
// snapshots that keep the log short. After a restart, Load returns what the
// last committed batch left.
//
// Thread-compatible: used by the scheduler's event loop thread.
#ifndef FLEET_SCHEDULER_STATE_STORE_H_
#define FLEET_SCHEDULER_STATE_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fleet/v1/state.pb.h"

namespace rocksdb {
class DB;
}

namespace fleet::scheduler {

// What one batch of events changed: each key's new record, or nullopt for
// a record to delete. Keys are a kind letter ("t" task, "o" object,
// "s" session, "w" worker, "m" meta) and the binary id.
struct StateChanges {
  std::vector<std::pair<std::string, std::optional<std::string>>> writes;
  bool empty() const { return writes.empty(); }
};

// Everything a state directory holds.
struct StoredState {
  bool fresh = true;  // nothing was stored before
  v1::MetaRecord meta;
  std::vector<std::pair<std::string, v1::TaskRecord>> tasks;  // key without its kind letter
  std::vector<std::pair<std::string, v1::ObjectRecord>> objects;
  std::vector<std::pair<std::string, v1::SessionRecord>> sessions;
  std::vector<std::pair<std::string, v1::WorkerRecord>> workers;
};

class StateStore {
 public:
  // Opens (creating it if needed) the state in `dir`. With `sync`, every
  // commit waits for the disk (survives a machine crash); without, for the
  // OS (survives the scheduler's own death, kill -9 included). Returns
  // FailedPrecondition naming the directory when it cannot be opened (held
  // by another scheduler, unreadable, corrupt).
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& dir, bool sync);
  ~StateStore();

  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  absl::StatusOr<StoredState> Load();
  // Writes the changes atomically; returns Internal naming the directory
  // when the disk refuses them.
  absl::Status Commit(const StateChanges& changes);

  const std::string& dir() const { return dir_; }
  uint64_t commits() const { return commits_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  StateStore(std::string dir, std::unique_ptr<rocksdb::DB> db, bool sync);

  const std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  const bool sync_;
  uint64_t commits_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_STATE_STORE_H_
