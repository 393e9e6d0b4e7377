#include "worker/argument_fetcher.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/object_transfer.h"

namespace fleet::worker {
namespace {

// A fetched copy can be evicted again before the waiting task pins it; it
// is fetched anew a bounded number of times.
constexpr int kMaxAttempts = 3;

}  // namespace

absl::StatusOr<ArgumentBytes> ArgumentFetcher::Obtain(const ObjectId& id,
                                                      const std::string& holder_address) {
  absl::Status last = absl::NotFoundError(absl::StrCat("object ", id.Short(), " is not here"));
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    absl::StatusOr<ObjectStore::View> local = store_->Get(id);
    if (local.ok()) return ArgumentBytes(std::move(*local));
    if (holder_address.empty()) return local.status();
    if (std::shared_ptr<LocalStoreLink> neighbour = LocalStoreLink::To(holder_address)) {
      absl::StatusOr<LocalStoreLink::PinnedBytes> pinned = neighbour->Read(id);
      if (pinned.ok()) {
        neighbour_reads_++;
        return ArgumentBytes(std::move(*pinned), holder_address);
      }
      // Spilled there, or the link broke: fetch a copy (gRPC reads spill files).
    }

    std::shared_ptr<Fetch> fetch;
    bool leader = false;
    {
      absl::MutexLock lock(&mu_);
      auto [it, inserted] = in_flight_.try_emplace(id);
      if (inserted) it->second = std::make_shared<Fetch>();
      fetch = it->second;
      leader = inserted;
    }
    if (!leader) {
      fetch->done.WaitForNotification();
      last = fetch->status;
      if (!last.ok()) return last;
      continue;  // now in the store, unless evicted already
    }

    absl::StatusOr<std::shared_ptr<const std::string>> private_copy =
        FetchIntoStore(id, holder_address, ObjectStore::Copy::kSecondary);
    {
      absl::MutexLock lock(&mu_);
      in_flight_.erase(id);
    }
    // AlreadyExists: a copy arrived between our Get and the fetch.
    const bool arrived = absl::IsAlreadyExists(private_copy.status());
    fetch->status = arrived ? absl::OkStatus() : private_copy.status();
    fetch->done.Notify();
    if (arrived) continue;
    if (!private_copy.ok()) return private_copy.status();
    if (*private_copy != nullptr) return ArgumentBytes(std::move(*private_copy));
  }
  return absl::UnavailableError(absl::StrCat("object ", id.Short(), " fetched from ",
                                             holder_address, " was evicted ", kMaxAttempts,
                                             " times before the task could read it; the "
                                             "store is too small for this task's arguments"));
}

absl::Status ArgumentFetcher::Copy(const ObjectId& id, const std::string& holder_address) {
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (absl::StatusOr<uint64_t> here = store_->MakePrimary(id); here.ok()) {
      ReportStored(id, *here);
      return absl::OkStatus();
    }
    absl::StatusOr<std::shared_ptr<const std::string>> fetched =
        FetchIntoStore(id, holder_address, ObjectStore::Copy::kPrimary);
    if (fetched.ok() && *fetched != nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("object ", id.Short(), " does not fit this worker's store"));
    }
    if (fetched.ok()) return absl::OkStatus();
    // AlreadyExists: a task's fetch of it won the race; it becomes primary.
    if (!absl::IsAlreadyExists(fetched.status())) return fetched.status();
  }
  return absl::AbortedError(absl::StrCat("object ", id.Short(), " from ", holder_address,
                                         " kept appearing and vanishing here"));
}

void ArgumentFetcher::ReportStored(const ObjectId& id, uint64_t size_bytes) {
  v1::ObjectStored stored;
  stored.set_object_id(std::string(id.Binary()));
  stored.set_size_bytes(size_bytes);
  link_->ReportStored(std::move(stored));
}

absl::StatusOr<std::shared_ptr<const std::string>> ArgumentFetcher::FetchIntoStore(
    const ObjectId& id, const std::string& holder_address, ObjectStore::Copy copy) {
  ObjectStore::Writer writer;
  bool too_large = false;
  std::shared_ptr<std::string> private_copy;
  absl::StatusOr<uint64_t> size = FetchObjectInto(
      holder_address, id, [&](uint64_t total) -> absl::StatusOr<char*> {
        absl::StatusOr<ObjectStore::Writer> created = store_->Create(
            id, total, copy,
            copy == ObjectStore::Copy::kSecondary ? holder_address : std::string());
        if (created.ok()) {
          writer = std::move(*created);
          return writer.data();
        }
        if (!absl::IsResourceExhausted(created.status())) return created.status();
        // The store cannot keep a copy: the task reads a private one.
        too_large = true;
        private_copy = std::make_shared<std::string>(total, '\0');
        return private_copy->data();
      });
  if (!size.ok()) return size.status();  // an unsealed writer aborts
  bytes_received_ += *size;
  fetches_++;
  if (too_large) return std::shared_ptr<const std::string>(std::move(private_copy));
  writer.Seal();
  ReportStored(id, *size);
  return std::shared_ptr<const std::string>();
}

}  // namespace fleet::worker
