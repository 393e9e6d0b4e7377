#include "scheduler/cluster_events.h"

#include <utility>

namespace fleet::scheduler {

void ClusterEventLog::Record(absl::Time at, absl::string_view name, EventFields fields) {
  v1::ClusterEvent event;
  event.set_sequence(next_sequence_++);
  event.set_time_unix_us(absl::ToUnixMicros(at));
  event.set_name(std::string(name));
  event.set_worker_id(std::move(fields.worker_id));
  event.set_worker_address(std::move(fields.worker_address));
  event.set_job_id(std::move(fields.job_id));
  event.set_task_id(std::move(fields.task_id));
  event.set_function_name(std::move(fields.function_name));
  event.set_failure_kind(std::move(fields.failure_kind));
  event.set_detail(std::move(fields.detail));
  if (!followers_.empty()) {
    v1::LogEntry entry;
    *entry.mutable_event() = event;
    for (auto& [id, follower] : followers_) follower.deliver(entry);
  }
  events_.push_back(std::move(event));
  while (events_.size() > capacity_) events_.pop_front();
}

void ClusterEventLog::PublishOutput(const v1::TaskOutput& output,
                                    absl::string_view worker_address) {
  if (output_followers_ == 0) return;
  v1::LogEntry entry;
  *entry.mutable_output() = output;
  entry.mutable_output()->set_worker(std::string(worker_address));
  for (auto& [id, follower] : followers_) {
    if (follower.with_output) follower.deliver(entry);
  }
}

std::vector<v1::ClusterEvent> ClusterEventLog::Recent(std::size_t max_events) const {
  const std::size_t count = max_events == 0 ? events_.size() : std::min(max_events, events_.size());
  return std::vector<v1::ClusterEvent>(events_.end() - static_cast<std::ptrdiff_t>(count),
                                       events_.end());
}

ClusterEventLog::FollowerId ClusterEventLog::Follow(bool with_output, Follower follower) {
  const FollowerId id = next_follower_++;
  followers_[id] = Subscription{.with_output = with_output, .deliver = std::move(follower)};
  if (with_output) output_followers_++;
  return id;
}

void ClusterEventLog::Unfollow(FollowerId id) {
  auto it = followers_.find(id);
  if (it == followers_.end()) return;
  if (it->second.with_output) output_followers_--;
  followers_.erase(it);
}

}  // namespace fleet::scheduler
