#include "worker/task_array_memory.h"

#include <cstring>

namespace fleet::worker {

char* TaskArrayMemory::Allocate(std::string_view header, std::size_t data_bytes) {
  const uint64_t size = header.size() + data_bytes;
  ObjectId id;
  {
    absl::MutexLock lock(&mu_);
    if (size > max_bytes_ - live_bytes_) return nullptr;  // the heap
    live_bytes_ += size;  // taken now, so that concurrent arrays see it
    id = ObjectId::Of(TaskId::Of(scratch_job_, next_scratch_++), 0);
  }
  absl::StatusOr<char*> start = store_->CreateInFreeMemory(id, size);
  absl::MutexLock lock(&mu_);
  if (!start.ok()) {  // no free memory (or the daemon is gone): the heap
    live_bytes_ -= size;
    return nullptr;
  }
  std::memcpy(*start, header.data(), header.size());
  char* data = *start + header.size();
  arrays_.emplace(data, Scratch{id, size});
  return data;
}

void TaskArrayMemory::Free(char* data) {
  ObjectId id;
  {
    absl::MutexLock lock(&mu_);
    auto it = arrays_.find(data);
    if (it == arrays_.end()) return;  // sealed as a result
    id = it->second.id;
    live_bytes_ -= it->second.size;
    arrays_.erase(it);
  }
  store_->Abort(id);
}

absl::StatusOr<uint64_t> TaskArrayMemory::SealAs(const void* data, const ObjectId& id) {
  Scratch scratch;
  {
    absl::MutexLock lock(&mu_);
    auto it = arrays_.find(data);
    if (it == arrays_.end()) {
      return absl::NotFoundError("SealAs of an array not built in this task memory");
    }
    scratch = it->second;
  }
  if (absl::Status sealed = store_->SealAs(scratch.id, id); !sealed.ok()) return sealed;
  absl::MutexLock lock(&mu_);
  live_bytes_ -= scratch.size;
  arrays_.erase(data);
  return scratch.size;
}

}  // namespace fleet::worker
