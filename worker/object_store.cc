#include "worker/object_store.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace fleet::worker {

// One object. Fields are guarded by the store's mu_. An entry leaves
// entries_ when deleted (or evicted), but lives on, holding its memory and
// spill file, while a View or Writer pins it or a spill write reads it;
// whoever drops the last of those releases it.
struct ObjectStore::Entry {
  ObjectId id;
  uint64_t size = 0;
  Copy copy = Copy::kPrimary;
  std::string fetched_from;
  uint64_t generation = 0;  // makes its spill file name unique
  bool sealed = false;
  bool deleted = false;
  bool file_only = false;   // larger than the arena: lives in its spill file
  bool on_disk = false;     // its spill file is complete
  bool spilling = false;    // a spill write reads its memory outside mu_
  bool restoring = false;   // a restore fills its memory outside mu_
  int pins = 0;             // Views and the Writer
  std::optional<uint64_t> offset;  // its arena block, when in memory
  bool in_lru = false;
  std::list<Entry*>::iterator lru_pos;
};

namespace {

int LruIndex(ObjectStore::Copy copy) { return copy == ObjectStore::Copy::kPrimary ? 0 : 1; }

void Unlink(const std::string& path) {
  if (!path.empty()) unlink(path.c_str());
}

}  // namespace

// ---- View and Writer ---------------------------------------------------------

ObjectStore::View::View(View&& other) noexcept { *this = std::move(other); }

ObjectStore::View& ObjectStore::View::operator=(View&& other) noexcept {
  if (this != &other) {
    Release();
    store_ = std::exchange(other.store_, nullptr);
    entry_ = std::move(other.entry_);
    file_ = std::move(other.file_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

ObjectStore::View::~View() { Release(); }

void ObjectStore::View::Release() {
  if (store_ != nullptr) store_->Unpin(entry_);
  store_ = nullptr;
  entry_.reset();
  file_.reset();
  data_ = nullptr;
  size_ = 0;
}

ObjectStore::Writer::Writer(Writer&& other) noexcept { *this = std::move(other); }

ObjectStore::Writer& ObjectStore::Writer::operator=(Writer&& other) noexcept {
  if (this != &other) {
    Abort();
    store_ = std::exchange(other.store_, nullptr);
    entry_ = std::move(other.entry_);
    file_ = std::move(other.file_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

ObjectStore::Writer::~Writer() { Abort(); }

void ObjectStore::Writer::Seal() {
  // Unmap first: the bytes are in the page cache, where readers map them.
  file_.reset();
  if (store_ != nullptr) store_->FinishWrite(entry_, /*seal=*/true);
  store_ = nullptr;
  entry_.reset();
  data_ = nullptr;
}

absl::Status ObjectStore::Writer::SealAs(const ObjectId& id) {
  if (store_ == nullptr) return absl::FailedPreconditionError("SealAs on an empty Writer");
  if (absl::Status renamed = store_->RenameWritten(*entry_, id); !renamed.ok()) return renamed;
  Seal();
  return absl::OkStatus();
}

void ObjectStore::Writer::Abort() {
  file_.reset();
  if (store_ != nullptr) store_->FinishWrite(entry_, /*seal=*/false);
  store_ = nullptr;
  entry_.reset();
  data_ = nullptr;
}

// ---- the store ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ObjectStore>> ObjectStore::Open(ObjectStoreOptions options) {
  const uint64_t capacity =
      options.capacity_bytes > 0 ? options.capacity_bytes : DefaultStoreMemoryBytes();
  ASSIGN_OR_RETURN(std::unique_ptr<ShmArena> arena,
                   ShmArena::Create(capacity, options.prefault_bytes));
  std::error_code error;
  std::filesystem::path parent = options.spill_dir;
  if (parent.empty()) parent = std::filesystem::temp_directory_path(error);
  if (parent.empty()) parent = "/tmp";
  const std::string name =
      options.store_name.empty() ? WorkerId::Random().Hex() : options.store_name;
  // The parent now, so a bad --spill_dir fails at start; our own directory
  // on the first spill, so a worker that never spills (or is SIGKILLed
  // before it does) leaves nothing behind.
  std::filesystem::create_directories(parent, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create the spill directory ", parent.string(), ": ", error.message()));
  }
  const std::filesystem::path dir = parent / absl::StrCat("fleet-spill-", name);
  return std::unique_ptr<ObjectStore>(new ObjectStore(std::move(arena), dir.string()));
}

ObjectStore::ObjectStore(std::unique_ptr<ShmArena> arena, std::string spill_dir)
    : arena_(std::move(arena)),
      spill_dir_(std::move(spill_dir)),
      allocator_(arena_->capacity_bytes()) {
  stats_.capacity_bytes = allocator_.capacity_bytes();
}

ObjectStore::~ObjectStore() {
  // Every file in the directory is one of ours (its name has our id).
  std::error_code error;
  std::filesystem::remove_all(spill_dir_, error);
  if (error) {
    GetLogger("worker")->warn("event=spill_dir_not_removed dir={} error=\"{}\"", spill_dir_,
                              error.message());
  }
}

absl::Status ObjectStore::MakeSpillDir() const {
  std::error_code error;
  std::filesystem::create_directories(spill_dir_, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create the spill directory ", spill_dir_, ": ", error.message()));
  }
  return absl::OkStatus();
}

std::string ObjectStore::SpillPath(const Entry& entry) const {
  return absl::StrCat(spill_dir_, "/", entry.id.Hex(), ".", entry.generation);
}

std::optional<uint64_t> ObjectStore::ArenaOffset(const char* data) const {
  const char* base = arena_->base();
  if (data < base || data >= base + arena_->capacity_bytes()) return std::nullopt;
  return static_cast<uint64_t>(data - base);
}

absl::StatusOr<ObjectStore::Writer> ObjectStore::Create(const ObjectId& id, uint64_t size_bytes,
                                                        Copy copy, std::string fetched_from) {
  return CreateWithRoom(id, size_bytes, copy, std::move(fetched_from), Room::kMake);
}

absl::StatusOr<ObjectStore::Writer> ObjectStore::CreateInFreeMemory(const ObjectId& id,
                                                                    uint64_t size_bytes) {
  return CreateWithRoom(id, size_bytes, Copy::kPrimary, {}, Room::kFreeOnly);
}

absl::StatusOr<ObjectStore::Writer> ObjectStore::CreateWithRoom(const ObjectId& id,
                                                                uint64_t size_bytes, Copy copy,
                                                                std::string fetched_from,
                                                                Room room) {
  auto entry = std::make_shared<Entry>();
  entry->id = id;
  entry->size = size_bytes;
  entry->copy = copy;
  entry->fetched_from = std::move(fetched_from);
  entry->pins = 1;  // the Writer's
  Writer writer;
  {
    absl::MutexLock lock(&mu_);
    if (entries_.contains(id)) {
      return absl::AlreadyExistsError(absl::StrCat("object ", id.Short(), " is already stored"));
    }
    if (room == Room::kFreeOnly && size_bytes > allocator_.capacity_bytes()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("object ", id.Short(), " (", size_bytes,
                       " bytes) is larger than this worker's object store arena (",
                       allocator_.capacity_bytes(), " bytes)"));
    }
    if (size_bytes > allocator_.capacity_bytes() && copy == Copy::kSecondary) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "a copy of object ", id.Short(), " (", size_bytes,
          " bytes) is larger than this worker's object store (", allocator_.capacity_bytes(),
          " bytes)"));
    }
    entry->generation = next_generation_++;
    entries_.emplace(id, entry);
    evicted_from_.erase(id);
    writer.store_ = this;
    writer.entry_ = entry;
    writer.size_ = size_bytes;
    if (size_bytes > allocator_.capacity_bytes()) {
      entry->file_only = true;  // mapped below, outside the lock
    } else {
      absl::StatusOr<uint64_t> offset;
      if (room == Room::kMake) {
        offset = AllocateLocked(id, size_bytes);
      } else if (std::optional<uint64_t> free = allocator_.Allocate(size_bytes)) {
        offset = *free;
      } else {
        offset = absl::ResourceExhaustedError(absl::StrCat(
            "object ", id.Short(), " (", size_bytes,
            " bytes) does not fit in this worker's free store memory: ", DescribeLocked()));
      }
      if (!offset.ok()) {
        entry->pins = 0;
        writer.store_ = nullptr;
        if (!entry->deleted) {
          entries_.erase(id);
          entry->deleted = true;
        }
        return offset.status();
      }
      entry->offset = *offset;
      stats_.bytes += size_bytes;
      stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.bytes);
      writer.data_ = arena_->base() + *offset;
    }
  }
  if (entry->file_only) {
    // Mapping a file is I/O; only this Writer touches the entry's file now.
    if (absl::Status made = MakeSpillDir(); !made.ok()) return made;
    auto file = MappedFile::CreateForWrite(SpillPath(*entry), size_bytes);
    if (!file.ok()) return file.status();  // the Writer aborts the entry
    writer.file_ = std::move(*file);
    writer.data_ = writer.file_->data();
    GetLogger("worker")->debug("event=object_file_backed object={} bytes={}", id.Short(),
                               size_bytes);
  }
  return writer;
}

absl::Status ObjectStore::Put(const ObjectId& id, absl::string_view bytes, Copy copy,
                              std::string fetched_from) {
  absl::StatusOr<Writer> writer = Create(id, bytes.size(), copy, std::move(fetched_from));
  if (absl::IsAlreadyExists(writer.status())) return absl::OkStatus();
  if (!writer.ok()) return writer.status();
  if (!bytes.empty()) std::memcpy(writer->data(), bytes.data(), bytes.size());
  writer->Seal();
  return absl::OkStatus();
}

absl::Status ObjectStore::RenameWritten(Entry& entry, const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  if (entry.id == id) return absl::OkStatus();
  if (entries_.contains(id)) {
    return absl::AlreadyExistsError(absl::StrCat("object ", id.Short(), " is already stored"));
  }
  if (entry.deleted) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", entry.id.Short(), " was deleted while being written"));
  }
  auto node = entries_.extract(entry.id);
  node.key() = id;
  entries_.insert(std::move(node));
  entry.id = id;
  evicted_from_.erase(id);
  return absl::OkStatus();
}

void ObjectStore::FinishWrite(const std::shared_ptr<Entry>& entry, bool seal) {
  std::string doomed;
  {
    absl::MutexLock lock(&mu_);
    entry->pins--;
    if (!entry->deleted) {
      if (seal) {
        entry->sealed = true;
        stats_.objects++;
        if (entry->file_only) {
          entry->on_disk = true;
          stats_.spilled_bytes += entry->size;
          stats_.spilled_objects++;
        } else {
          TouchLocked(*entry);
        }
      } else {
        entries_.erase(entry->id);
        entry->deleted = true;
      }
    }
    if (entry->deleted && entry->pins == 0 && !entry->spilling) doomed = ReleaseLocked(*entry);
  }
  Unlink(doomed);
}

absl::StatusOr<ObjectStore::View> ObjectStore::Get(const ObjectId& id) {
  View view;
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || !it->second->sealed) {
      return absl::NotFoundError(
          absl::StrCat("object ", id.Short(), " is not in this worker's store"));
    }
    std::shared_ptr<Entry> entry = it->second;
    // Another reader is restoring it: wait for the bytes.
    mu_.Await(absl::Condition(+[](Entry* e) { return !e->restoring; }, entry.get()));
    if (entry->deleted) {
      return absl::NotFoundError(
          absl::StrCat("object ", id.Short(), " was deleted from this worker's store"));
    }
    view.store_ = this;
    view.entry_ = entry;
    view.size_ = entry->size;
    entry->pins++;
    if (entry->offset.has_value()) {
      view.data_ = arena_->base() + *entry->offset;
      TouchLocked(*entry);
    } else {
      status = RestoreLocked(view);
    }
  }
  // On error the View unpins here, outside the lock.
  if (!status.ok()) return status;
  return view;
}

absl::Status ObjectStore::RestoreLocked(View& view) {
  Entry& entry = *view.entry_;
  const std::string path = SpillPath(entry);
  if (!entry.file_only) {
    entry.restoring = true;
    absl::StatusOr<uint64_t> offset = AllocateLocked(entry.id, entry.size);
    if (offset.ok()) {
      entry.offset = *offset;
      stats_.bytes += entry.size;
      stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.bytes);
      char* bytes = arena_->base() + *offset;
      mu_.Unlock();
      absl::Status read = ReadSpillFile(path, bytes, entry.size);
      mu_.Lock();
      entry.restoring = false;
      if (!read.ok()) {
        FreeMemoryLocked(entry);
        return read;
      }
      stats_.restores++;
      if (!entry.deleted) TouchLocked(entry);
      view.data_ = bytes;
      GetLogger("worker")->debug("event=object_restored object={} bytes={}", entry.id.Short(),
                                 entry.size);
      return absl::OkStatus();
    }
    entry.restoring = false;
    if (!absl::IsResourceExhausted(offset.status())) return offset.status();
    // Everything else is pinned: read it from its file rather than fail.
    GetLogger("worker")->debug("event=object_read_from_spill_file object={} reason=\"{}\"",
                               entry.id.Short(), offset.status().message());
  }
  mu_.Unlock();
  absl::StatusOr<std::unique_ptr<MappedFile>> file = MappedFile::OpenForRead(path, entry.size);
  mu_.Lock();
  if (!file.ok()) return absl::DataLossError(file.status().message());
  view.file_ = std::move(*file);
  view.data_ = view.file_->data();
  return absl::OkStatus();
}

std::vector<std::pair<ObjectId, uint64_t>> ObjectStore::SealedObjects() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<ObjectId, uint64_t>> sealed;
  sealed.reserve(entries_.size());
  for (const auto& [id, entry] : entries_) {
    if (entry->sealed && !entry->deleted) sealed.emplace_back(id, entry->size);
  }
  return sealed;
}

bool ObjectStore::Contains(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  return it != entries_.end() && it->second->sealed;
}

std::optional<std::string> ObjectStore::FetchedFrom(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = evicted_from_.find(id);
  if (it == evicted_from_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<uint64_t> ObjectStore::MakePrimary(const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second->sealed) {
    return absl::NotFoundError(absl::StrCat("object ", id.Short(), " is not in this store"));
  }
  Entry& entry = *it->second;
  if (entry.copy == Copy::kSecondary) {
    const bool listed = entry.in_lru;
    if (listed) {
      lru_[LruIndex(entry.copy)].erase(entry.lru_pos);
      entry.in_lru = false;
    }
    entry.copy = Copy::kPrimary;
    entry.fetched_from.clear();
    if (listed) TouchLocked(entry);
  }
  return entry.size;
}

void ObjectStore::Delete(const ObjectId& id) {
  std::string doomed;
  {
    absl::MutexLock lock(&mu_);
    evicted_from_.erase(id);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    std::shared_ptr<Entry> entry = std::move(it->second);
    entries_.erase(it);
    entry->deleted = true;
    if (entry->sealed) stats_.objects--;
    if (entry->in_lru) {
      lru_[LruIndex(entry->copy)].erase(entry->lru_pos);
      entry->in_lru = false;
    }
    if (entry->pins == 0 && !entry->spilling) doomed = ReleaseLocked(*entry);
  }
  Unlink(doomed);
}

void ObjectStore::Unpin(const std::shared_ptr<Entry>& entry) {
  std::string doomed;
  {
    absl::MutexLock lock(&mu_);
    entry->pins--;
    if (entry->deleted && entry->pins == 0 && !entry->spilling) doomed = ReleaseLocked(*entry);
  }
  Unlink(doomed);
}

ObjectStore::Stats ObjectStore::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

// ---- making room ---------------------------------------------------------------

absl::StatusOr<uint64_t> ObjectStore::AllocateLocked(const ObjectId& id, uint64_t size_bytes) {
  while (true) {
    if (std::optional<uint64_t> offset = allocator_.Allocate(size_bytes)) return *offset;
    std::shared_ptr<Entry> victim = PickVictimLocked();
    if (victim == nullptr) {
      if (spills_in_flight_ == 0) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "object ", id.Short(), " (", size_bytes, " bytes) does not fit in this worker's ",
            "object store even after evicting and spilling every unpinned object: ",
            DescribeLocked(), "; raise --store_memory or hold fewer objects at once"));
      }
      // Another caller's spill is about to free memory: retry after it.
      struct Seen {
        ObjectStore* store;
        uint64_t finished;
      } seen{this, spills_finished_};
      mu_.Await(absl::Condition(
          +[](Seen* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->store->mu_) {
            return s->store->spills_finished_ != s->finished;
          },
          &seen));
      continue;
    }
    if (victim->copy == Copy::kSecondary) {
      // Another worker holds the primary; remember where, to fetch it again.
      entries_.erase(victim->id);
      victim->deleted = true;
      stats_.objects--;
      stats_.evictions++;
      if (!victim->fetched_from.empty()) evicted_from_[victim->id] = victim->fetched_from;
      ReleaseLocked(*victim);  // a secondary never has a spill file
      GetLogger("worker")->debug("event=object_evicted object={} bytes={}", victim->id.Short(),
                                 victim->size);
    } else if (victim->on_disk) {
      FreeMemoryLocked(*victim);  // restored earlier; its spill file is still good
    } else if (absl::Status spilled = SpillLocked(victim); !spilled.ok()) {
      return absl::Status(spilled.code(), absl::StrCat("making room for object ", id.Short(),
                                                       ": ", spilled.message()));
    }
  }
}

std::shared_ptr<ObjectStore::Entry> ObjectStore::PickVictimLocked() {
  for (Copy copy : {Copy::kSecondary, Copy::kPrimary}) {
    for (Entry* entry : lru_[LruIndex(copy)]) {
      if (entry->pins == 0 && !entry->spilling) return entries_.at(entry->id);
    }
  }
  return nullptr;
}

absl::Status ObjectStore::SpillLocked(const std::shared_ptr<Entry>& victim) {
  // While `spilling`, nothing frees or reuses its memory, and readers may
  // still pin and read it.
  victim->spilling = true;
  spills_in_flight_++;
  const std::string path = SpillPath(*victim);
  const char* bytes = arena_->base() + *victim->offset;
  mu_.Unlock();
  absl::Status status = MakeSpillDir();
  if (status.ok()) status = WriteSpillFile(path, bytes, victim->size);
  mu_.Lock();
  victim->spilling = false;
  spills_in_flight_--;
  spills_finished_++;
  if (status.ok()) {
    victim->on_disk = true;
    stats_.spilled_bytes += victim->size;
    stats_.spilled_objects++;
    stats_.spills++;
    GetLogger("worker")->debug("event=object_spilled object={} bytes={}", victim->id.Short(),
                               victim->size);
  } else {
    GetLogger("worker")->warn("event=spill_failed object={} status=\"{}\"", victim->id.Short(),
                              status.ToString());
  }
  if (victim->deleted) {
    if (victim->pins == 0) {
      const std::string doomed = ReleaseLocked(*victim);
      mu_.Unlock();
      Unlink(doomed);
      mu_.Lock();
    }
  } else if (status.ok() && victim->pins == 0) {
    FreeMemoryLocked(*victim);
  }
  return status;
}

void ObjectStore::FreeMemoryLocked(Entry& entry) {
  if (entry.in_lru) {
    lru_[LruIndex(entry.copy)].erase(entry.lru_pos);
    entry.in_lru = false;
  }
  if (!entry.offset.has_value()) return;
  allocator_.Free(*entry.offset);
  entry.offset.reset();
  stats_.bytes -= entry.size;
}

std::string ObjectStore::ReleaseLocked(Entry& entry) {
  FreeMemoryLocked(entry);
  std::string doomed;
  if (entry.on_disk) {
    stats_.spilled_bytes -= entry.size;
    stats_.spilled_objects--;
    entry.on_disk = false;
    doomed = SpillPath(entry);
  } else if (entry.file_only) {
    doomed = SpillPath(entry);  // an aborted large object's partial file
  }
  entry.file_only = false;
  return doomed;
}

void ObjectStore::TouchLocked(Entry& entry) {
  std::list<Entry*>& lru = lru_[LruIndex(entry.copy)];
  if (entry.in_lru) {
    lru.splice(lru.end(), lru, entry.lru_pos);
  } else {
    entry.lru_pos = lru.insert(lru.end(), &entry);
    entry.in_lru = true;
  }
}

std::string ObjectStore::DescribeLocked() const {
  uint64_t pinned_bytes = 0;
  uint64_t pinned_objects = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry->offset.has_value() && (entry->pins > 0 || entry->spilling)) {
      pinned_bytes += entry->size;
      pinned_objects++;
    }
  }
  return absl::StrCat("capacity ", allocator_.capacity_bytes(), " bytes, ", stats_.bytes,
                      " bytes in memory of which ", pinned_bytes, " in ", pinned_objects,
                      " objects are pinned (being read or written), largest free block ",
                      allocator_.largest_free_block_bytes(), " bytes");
}

}  // namespace fleet::worker
