#include "worker/object_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace fleet::worker {

void ObjectStore::Put(const ObjectId& id, ObjectBytes bytes) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = objects_.try_emplace(id, std::move(bytes));
  if (!inserted) return;
  stats_.bytes += it->second->size();
  stats_.objects++;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.bytes);
}

absl::StatusOr<ObjectBytes> ObjectStore::Get(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) {
    return absl::NotFoundError(absl::StrCat("object ", id.Short(), " is not in this worker's store"));
  }
  return it->second;
}

bool ObjectStore::Contains(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  return objects_.contains(id);
}

void ObjectStore::Delete(const ObjectId& id) {
  ObjectBytes doomed;  // released outside the lock
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  doomed = std::move(it->second);
  stats_.bytes -= doomed->size();
  stats_.objects--;
  objects_.erase(it);
}

ObjectStore::Stats ObjectStore::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace fleet::worker
