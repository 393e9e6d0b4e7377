// The scheduler's recent cluster events, for `fleet logs` (the Admin
// service's StreamLogs): a bounded ring of the last events, and the
// followers that receive each new one, and the lines tasks print, as they
// happen.
//
// Thread-compatible: owned by the scheduler's event loop thread, like the
// core that records into it. Followers are called on that thread and must
// not block (they hand the entry to their stream and return).
#ifndef FLEET_SCHEDULER_CLUSTER_EVENTS_H_
#define FLEET_SCHEDULER_CLUSTER_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fleet/v1/admin.pb.h"

namespace fleet::scheduler {

// What an event is about; fields that do not apply stay empty.
struct EventFields {
  std::string worker_id = {};  // hex
  std::string worker_address = {};
  std::string job_id = {};   // hex
  std::string task_id = {};  // hex
  std::string function_name = {};
  std::string failure_kind = {};
  std::string detail = {};
};

class ClusterEventLog {
 public:
  static constexpr std::size_t kDefaultCapacity = 1000;
  using FollowerId = uint64_t;
  using Follower = absl::AnyInvocable<void(const v1::LogEntry&)>;

  explicit ClusterEventLog(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // Keeps the event (dropping the oldest beyond capacity) and passes it to
  // every follower.
  void Record(absl::Time at, absl::string_view name, EventFields fields);
  // Passes a line a task printed on the worker at `worker_address` to the
  // followers that asked for output; nothing is kept.
  void PublishOutput(const v1::TaskOutput& output, absl::string_view worker_address);

  // The last `max_events` events kept (all when 0), oldest first.
  std::vector<v1::ClusterEvent> Recent(std::size_t max_events) const;

  // `follower` gets every event recorded from now on, and task output when
  // `with_output`. Returns the id Unfollow takes.
  FollowerId Follow(bool with_output, Follower follower);
  void Unfollow(FollowerId id);
  std::size_t num_followers() const { return followers_.size(); }

 private:
  struct Subscription {
    bool with_output = false;
    Follower deliver;
  };

  const std::size_t capacity_;
  std::deque<v1::ClusterEvent> events_;
  uint64_t next_sequence_ = 1;
  FollowerId next_follower_ = 1;
  std::size_t output_followers_ = 0;  // those with with_output, so output costs nothing without
  absl::flat_hash_map<FollowerId, Subscription> followers_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_CLUSTER_EVENTS_H_
