#include "worker/owner_delivery.h"

#include <string>

#include "absl/container/flat_hash_map.h"
#include "common/local_socket.h"
#include "fleet/v1/local_store.pb.h"

namespace fleet::worker {
namespace {

bool AllInline(const v1::TaskCompleted& completed) {
  if (completed.has_failure() || completed.results_size() == 0) return false;
  for (const v1::ObjectInfo& result : completed.results()) {
    if (!result.has_inline_value()) return false;
  }
  return true;
}

}  // namespace

void OwnerSubscriptions::Subscribe(const JobId& job, int socket) {
  absl::WriterMutexLock lock(&mu_);
  subscribers_[job] = socket;
}

void OwnerSubscriptions::Unsubscribe(int socket) {
  absl::WriterMutexLock lock(&mu_);
  absl::erase_if(subscribers_, [socket](const auto& entry) { return entry.second == socket; });
}

bool OwnerSubscriptions::Deliver(v1::TaskCompleted& completed) {
  if (!AllInline(completed)) return false;
  absl::StatusOr<TaskId> task = TaskId::FromBinary(completed.task_id());
  if (!task.ok()) return false;
  absl::ReaderMutexLock lock(&mu_);
  auto it = subscribers_.find(task->job());
  if (it == subscribers_.end()) return false;
  // Framed with the results swapped in and back out: no copy of the values.
  thread_local v1::LocalStorePush push;
  thread_local std::string packet;
  push.mutable_ready()->Swap(completed.mutable_results());
  const bool framed = FramePush(push, packet).ok();
  push.mutable_ready()->Swap(completed.mutable_results());
  if (!framed || !SendPushNow(it->second, packet).ok()) return false;
  delivered_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace fleet::worker
