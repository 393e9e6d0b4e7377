// Graceful drain (SchedulerCore::DrainWorker): a worker told to stop
// finishes what it holds, hands its objects over, and leaves with nothing
// re-run and nothing lost.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "scheduler/scheduler_core.h"

namespace fleet::scheduler {

void SchedulerCore::DrainWorker(const WorkerId& id) {
  auto it = workers_.find(id);
  if (it == workers_.end() || it->second.draining) return;
  it->second.draining = true;
  draining_workers_++;
  GetLogger("scheduler")->info("event=worker_draining worker={} address={} tasks={}",
                               id.Short(), it->second.address, it->second.assigned);
  events_.Record(clock_->Now(), "worker_draining",
                 {.worker_id = id.Hex(), .worker_address = it->second.address,
                  .detail = absl::StrCat("tasks=", it->second.assigned)});
}

void SchedulerCore::ProgressDrains() {
  std::vector<std::pair<WorkerId, int>> drained;  // and objects stranded
  for (auto& [id, worker] : workers_) {
    if (!worker.draining || worker.assigned > 0) continue;
    if (!worker.copying) StartCopying(worker);
    // A copy that arrived, or an object freed meanwhile, is no longer awaited.
    absl::erase_if(worker.copies_awaited, [&, id = id](const ObjectId& object_id) {
      auto object = objects_.find(object_id);
      if (object == objects_.end()) return true;
      const auto& locations = object->second.locations;
      return absl::c_any_of(locations, [&](const WorkerId& holder) { return holder != id; });
    });
    if (worker.copies_awaited.empty()) drained.emplace_back(id, worker.stranded);
  }
  for (const auto& [id, stranded] : drained) {
    output_->ReleaseWorker(id);
    RemoveWorker(id, stranded == 0
                         ? "drained: its tasks finished and its objects were copied elsewhere"
                         : absl::StrCat("drained: its tasks finished; ", stranded,
                                        " objects had no other worker to go to"));
  }
}

void SchedulerCore::StartCopying(Worker& worker) {
  worker.copying = true;
  // Each object goes to the worker with the most free store, counting what
  // was already planned for it.
  absl::flat_hash_map<WorkerId, int64_t> free_bytes;
  for (const auto& [id, other] : workers_) {
    if (other.draining) continue;
    free_bytes[id] = static_cast<int64_t>(other.last_heartbeat.store_capacity_bytes()) -
                     static_cast<int64_t>(other.last_heartbeat.store_bytes());
  }
  uint64_t bytes = 0;
  for (const auto& [object_id, object] : objects_) {
    if (object.state != ObjectState::kReady || object.has_inline) continue;
    if (object.locations.size() != 1 || object.locations[0] != worker.id) continue;
    if (free_bytes.empty()) {
      worker.stranded++;
      continue;
    }
    auto target = absl::c_max_element(
        free_bytes, [](const auto& a, const auto& b) { return a.second < b.second; });
    target->second -= static_cast<int64_t>(object.size_bytes);
    v1::ObjectInfo info;
    info.set_object_id(std::string(object_id.Binary()));
    info.set_size_bytes(object.size_bytes);
    info.mutable_location()->set_worker_id(std::string(worker.id.Binary()));
    info.mutable_location()->set_address(worker.address);
    output_->CopyObject(target->first, info);
    worker.copies_awaited.insert(object_id);
    bytes += object.size_bytes;
  }
  GetLogger("scheduler")->info("event=worker_handing_over worker={} objects={} bytes={}",
                               worker.id.Short(), worker.copies_awaited.size(), bytes);
  if (worker.stranded > 0) {
    GetLogger("scheduler")->warn(
        "event=worker_drain_stranded worker={} objects={} reason=\"no other worker to copy "
        "them to; they are lost when it leaves (and rebuilt from lineage where possible)\"",
        worker.id.Short(), worker.stranded);
  }
}

}  // namespace fleet::scheduler
