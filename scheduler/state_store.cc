#include "scheduler/state_store.h"

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace fleet::scheduler {
namespace {

template <typename Record>
absl::Status ParseInto(const rocksdb::Slice& key, const rocksdb::Slice& value,
                       std::vector<std::pair<std::string, Record>>& into) {
  Record record;
  if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("a ", Record::descriptor()->name(),
                                            " in the state directory does not parse"));
  }
  into.emplace_back(std::string(key.data() + 1, key.size() - 1), std::move(record));
  return absl::OkStatus();
}

}  // namespace

StateStore::StateStore(std::string dir, std::unique_ptr<rocksdb::DB> db, bool sync)
    : dir_(std::move(dir)), db_(std::move(db)), sync_(sync) {}

StateStore::~StateStore() = default;

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& dir, bool sync) {
  rocksdb::Options options;
  options.create_if_missing = true;
  // A scheduler killed mid-write leaves a torn last record: recover up to
  // it rather than refuse to start.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  options.max_background_jobs = 2;
  // Written on every batch, read only at a restart: an unsorted memtable,
  // sorted once when it is flushed, costs far less per write than the
  // default skip list.
  options.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  options.allow_concurrent_memtable_write = false;  // the loop is the only writer
  options.keep_log_file_num = 3;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(options, dir, &raw);
  if (!status.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open the scheduler's state in ", dir, ": ", status.ToString(),
        " (is another fleet-scheduler using it? is it writable?)"));
  }
  return std::unique_ptr<StateStore>(
      new StateStore(dir, std::unique_ptr<rocksdb::DB>(raw), sync));
}

absl::StatusOr<StoredState> StateStore::Load() {
  StoredState state;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    const rocksdb::Slice value = it->value();
    if (key.empty()) continue;
    state.fresh = false;
    absl::Status parsed;
    switch (key[0]) {
      case 'm':
        if (!state.meta.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          parsed = absl::DataLossError("the meta record does not parse");
        }
        break;
      case 't': parsed = ParseInto(key, value, state.tasks); break;
      case 'o': parsed = ParseInto(key, value, state.objects); break;
      case 's': parsed = ParseInto(key, value, state.sessions); break;
      case 'w': parsed = ParseInto(key, value, state.workers); break;
      default: break;  // written by a later version: not ours to judge
    }
    if (!parsed.ok()) {
      return absl::DataLossError(absl::StrCat(parsed.message(), " (state directory ", dir_,
                                              "); move it away to start with an empty state"));
    }
  }
  if (!it->status().ok()) {
    return absl::DataLossError(absl::StrCat("cannot read the scheduler's state in ", dir_, ": ",
                                            it->status().ToString()));
  }
  return state;
}

absl::Status StateStore::Commit(const StateChanges& changes) {
  if (changes.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const auto& [key, value] : changes.writes) {
    if (value.has_value()) {
      batch.Put(key, *value);
    } else {
      batch.Delete(key);
    }
  }
  rocksdb::WriteOptions options;
  options.sync = sync_;
  rocksdb::Status status = db_->Write(options, &batch);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot write the scheduler's state in ", dir_, ": ",
                                            status.ToString()));
  }
  commits_++;
  bytes_written_ += batch.GetDataSize();
  return absl::OkStatus();
}

}  // namespace fleet::scheduler
