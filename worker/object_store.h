// The worker's object store: sealed, immutable objects by id, in one
// shared-memory arena with a fixed capacity (see shm_arena.h), spilling to
// local disk under memory pressure.
//
// An object is created (Create allocates its bytes in the arena), written in
// place through the returned Writer, and sealed; from then on it is
// immutable and Get returns a View that pins it: while any View or Writer of
// an object lives, its bytes stay where they are (never evicted, spilled
// away or reused).
//
// Memory pressure: when an allocation does not fit, the store frees unpinned
// objects until it does, in this order: secondary copies (fetched from
// another worker, so they can be fetched again) least recently used first,
// dropped; then primary copies (results produced here, Put uploads) least
// recently used first, spilled to one file each under the spill directory
// and dropped from memory. Get restores a spilled object into the arena
// (freeing others the same way); a spill file is kept until its object is
// deleted, so spilling an object again costs no write. When even that
// cannot make room, Create fails with ResourceExhausted naming the sizes,
// and Get reads the spill file in place instead.
//
// A primary object larger than the whole arena is stored in its spill file
// only: its Writer and Views map the file. A secondary copy that large is
// refused (ResourceExhausted): the caller keeps its own bytes.
//
// Thread-safe: executors, FetchObject and PutObject streams and the scheduler
// connection use it concurrently. Spill writes and restore reads run outside
// the lock; the lock is never held across I/O.
#ifndef FLEET_WORKER_OBJECT_STORE_H_
#define FLEET_WORKER_OBJECT_STORE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "worker/arena_allocator.h"
#include "worker/shm_arena.h"

namespace fleet::worker {

struct ObjectStoreOptions {
  uint64_t capacity_bytes = 0;  // 0: DefaultStoreMemoryBytes()
  uint64_t prefault_bytes = kDefaultStorePrefaultBytes;
  // Spill files go to `spill_dir`/fleet-spill-<store_name>, created on the
  // first spill and removed (with every file in it) by the destructor.
  // Empty: the system's temporary directory ($TMPDIR or /tmp).
  std::string spill_dir = {};
  std::string store_name = {};  // the worker id; unique among stores sharing spill_dir
};

class ObjectStore {
 public:
  enum class Copy { kPrimary, kSecondary };

  struct Stats {
    uint64_t capacity_bytes = 0;
    uint64_t bytes = 0;          // object bytes in the arena now (sealed or being written)
    uint64_t peak_bytes = 0;     // high-water mark of `bytes`
    uint64_t objects = 0;        // sealed objects, in memory or spilled
    uint64_t spilled_bytes = 0;  // in spill files now
    uint64_t spilled_objects = 0;
    uint64_t evictions = 0;  // secondary copies dropped (cumulative)
    uint64_t spills = 0;     // primary copies written to disk (cumulative)
    uint64_t restores = 0;   // spilled objects read back into the arena (cumulative)
  };

  struct Entry;  // defined in object_store.cc

  // A sealed object, pinned while the View lives. Move-only. An empty View
  // (default-constructed or moved from) pins nothing.
  // REQUIRES: destroyed before its store.
  class View {
   public:
    View() = default;
    View(View&& other) noexcept;
    View& operator=(View&& other) noexcept;
    ~View();

    const char* data() const { return data_; }
    uint64_t size() const { return size_; }
    absl::string_view bytes() const { return absl::string_view(data_, size_); }
    std::string_view std_view() const { return std::string_view(data_, size_); }

   private:
    friend class ObjectStore;
    void Release();

    ObjectStore* store_ = nullptr;
    std::shared_ptr<Entry> entry_;
    std::shared_ptr<MappedFile> file_;  // when reading a spill file in place
    const char* data_ = nullptr;
    uint64_t size_ = 0;
  };

  // An object being written. Move-only. Destroying it unsealed aborts the
  // object (its id becomes free again). REQUIRES: destroyed before its store.
  class Writer {
   public:
    Writer() = default;
    Writer(Writer&& other) noexcept;
    Writer& operator=(Writer&& other) noexcept;
    ~Writer();

    char* data() const { return data_; }
    uint64_t size() const { return size_; }
    // Makes the object visible to Get; data() is invalid from then on. A
    // no-op on an empty Writer (default-constructed, moved from or sealed).
    void Seal();
    // Seals the object under `id` instead of the id it was created with (a
    // task's array, built under a scratch id, becoming its result).
    // AlreadyExists when `id` is stored or being written: the Writer stays
    // as it was, unsealed. FailedPrecondition on an empty Writer.
    absl::Status SealAs(const ObjectId& id);

   private:
    friend class ObjectStore;
    void Abort();

    ObjectStore* store_ = nullptr;
    std::shared_ptr<Entry> entry_;
    std::shared_ptr<MappedFile> file_;  // an object larger than the arena
    char* data_ = nullptr;
    uint64_t size_ = 0;
  };

  // Maps the arena and creates the spill directory.
  static absl::StatusOr<std::unique_ptr<ObjectStore>> Open(ObjectStoreOptions options);
  // Removes every spill file and the spill directory.
  ~ObjectStore();
  ObjectStore(const ObjectStore&) = delete;
  ObjectStore& operator=(const ObjectStore&) = delete;

  // Allocates `size_bytes` for object `id`. `fetched_from` (for a secondary
  // copy) is the address of the worker it came from, remembered after
  // eviction (see FetchedFrom). Returns AlreadyExists when `id` is stored or
  // being written (objects are immutable; the first copy stays),
  // ResourceExhausted when it does not fit (see above), or the spill error
  // that stopped the store from making room.
  absl::StatusOr<Writer> Create(const ObjectId& id, uint64_t size_bytes,
                                Copy copy = Copy::kPrimary, std::string fetched_from = {});
  // Create of a primary object in memory that is free now: ResourceExhausted
  // rather than evicting or spilling anything (or backing it with a file).
  // For a task's working array, which may never become an object.
  absl::StatusOr<Writer> CreateInFreeMemory(const ObjectId& id, uint64_t size_bytes);
  // Create, copy, Seal. Storing an id that exists is OK and keeps the first copy.
  absl::Status Put(const ObjectId& id, absl::string_view bytes, Copy copy = Copy::kPrimary,
                   std::string fetched_from = {});
  // Pins object `id`, restoring it from disk if spilled. Returns NotFound
  // naming the id when absent or not sealed yet; DataLoss when its spill
  // file cannot be read.
  absl::StatusOr<View> Get(const ObjectId& id);
  bool Contains(const ObjectId& id) const;
  // Every sealed object with its size (what a reconnecting worker reports).
  std::vector<std::pair<ObjectId, uint64_t>> SealedObjects() const;
  // The address a secondary copy of `id` was fetched from, when that copy
  // was evicted since (the scheduler may still list this worker as holding
  // it). Forgotten when `id` is stored again or deleted.
  std::optional<std::string> FetchedFrom(const ObjectId& id) const;
  // Makes the sealed copy of `id` a primary one (kept: spilled, never
  // evicted) and returns its size; NotFound when absent or not sealed.
  absl::StatusOr<uint64_t> MakePrimary(const ObjectId& id);
  // Forgets `id`. Its memory and spill file are freed once no View pins it.
  void Delete(const ObjectId& id);

  Stats stats() const;

  // The arena, for mapping by other processes on this host (see
  // local_store_server.h): its memfd, its size, and where `data` (from a
  // View or Writer) lies in it, or nullopt when it is not in the arena (a
  // spilled object read, or a file-only object written, in its file).
  int arena_fd() const { return arena_->fd(); }
  uint64_t arena_bytes() const { return arena_->capacity_bytes(); }
  uint64_t arena_prefaulted_bytes() const { return arena_->prefaulted_bytes(); }
  std::optional<uint64_t> ArenaOffset(const char* data) const;

  // This store's own spill directory (inside ObjectStoreOptions::spill_dir);
  // it exists from the first spill on.
  const std::string& spill_dir() const { return spill_dir_; }

 private:
  ObjectStore(std::unique_ptr<ShmArena> arena, std::string spill_dir);

  enum class Room { kMake, kFreeOnly };
  absl::StatusOr<Writer> CreateWithRoom(const ObjectId& id, uint64_t size_bytes, Copy copy,
                                        std::string fetched_from, Room room);
  // Seals the written `entry` under `id`; see Writer::SealAs.
  absl::Status RenameWritten(Entry& entry, const ObjectId& id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MakeSpillDir() const;  // idempotent; I/O: call without mu_
  std::string SpillPath(const Entry& entry) const;
  // Finds a block of `size_bytes` for object `id`, evicting and spilling as
  // described above; releases mu_ while it writes spill files.
  absl::StatusOr<uint64_t> AllocateLocked(const ObjectId& id, uint64_t size_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<Entry> PickVictimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `victim` to its spill file with mu_ released, then drops its
  // memory unless it was pinned meanwhile.
  absl::Status SpillLocked(const std::shared_ptr<Entry>& victim)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Points the pinned `view` at its spilled object: read back into the
  // arena, or mapped from its file when the arena has no room for it.
  // Releases mu_ during the I/O.
  absl::Status RestoreLocked(View& view) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeMemoryLocked(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees what a deleted, idle entry still holds; returns its spill file
  // for the caller to unlink once mu_ is released (or an empty string).
  std::string ReleaseLocked(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks `entry` most recently used. REQUIRES: sealed, in memory, not deleted.
  void TouchLocked(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unpin(const std::shared_ptr<Entry>& entry) ABSL_LOCKS_EXCLUDED(mu_);
  void FinishWrite(const std::shared_ptr<Entry>& entry, bool seal) ABSL_LOCKS_EXCLUDED(mu_);
  std::string DescribeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::unique_ptr<ShmArena> arena_;
  const std::string spill_dir_;

  mutable absl::Mutex mu_;
  ArenaAllocator allocator_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ObjectId, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  // Sealed objects in memory, least recently used first: [0] primaries,
  // [1] secondaries.
  std::list<Entry*> lru_[2] ABSL_GUARDED_BY(mu_);
  // Where evicted secondary copies came from (see FetchedFrom).
  absl::flat_hash_map<ObjectId, std::string> evicted_from_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int spills_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t spills_finished_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_OBJECT_STORE_H_
