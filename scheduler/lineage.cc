#include "scheduler/lineage.h"

#include <iterator>

namespace fleet::scheduler {
namespace {

// About what an entry costs beside its spec: the map slot, the age list
// node, the argument ids.
constexpr uint64_t kEntryOverheadBytes = 256;

}  // namespace

std::vector<std::pair<TaskId, Lineage::Entry>> Lineage::Retain(const TaskId& task, Entry entry,
                                                               int live_returns) {
  std::vector<std::pair<TaskId, Entry>> evicted;
  if (auto it = slots_.find(task); it != slots_.end()) Remove(it);
  // Accounted as the spec's wire size (the arguments passed by value
  // dominate it) plus the entry's own bookkeeping.
  const uint64_t bytes = entry.spec.ByteSizeLong() + kEntryOverheadBytes;
  oldest_first_.push_back(task);
  Slot& slot = slots_[task];
  slot.entry = std::move(entry);
  slot.live_returns = live_returns;
  slot.bytes = bytes;
  slot.age = std::prev(oldest_first_.end());
  bytes_ += bytes;
  while (bytes_ > max_bytes_ && !oldest_first_.empty()) {
    const TaskId oldest = oldest_first_.front();
    evicted.emplace_back(oldest, Remove(slots_.find(oldest)));
    evicted_++;
  }
  return evicted;
}

const Lineage::Entry* Lineage::Find(const TaskId& task) const {
  auto it = slots_.find(task);
  return it == slots_.end() ? nullptr : &it->second.entry;
}

std::optional<Lineage::Entry> Lineage::Take(const TaskId& task) {
  auto it = slots_.find(task);
  if (it == slots_.end()) return std::nullopt;
  return Remove(it);
}

std::optional<Lineage::Entry> Lineage::ReleaseReturn(const TaskId& task) {
  auto it = slots_.find(task);
  if (it == slots_.end() || --it->second.live_returns > 0) return std::nullopt;
  return Remove(it);
}

Lineage::Entry Lineage::Remove(absl::flat_hash_map<TaskId, Slot>::iterator it) {
  Entry entry = std::move(it->second.entry);
  bytes_ -= it->second.bytes;
  oldest_first_.erase(it->second.age);
  slots_.erase(it);
  return entry;
}

}  // namespace fleet::scheduler
