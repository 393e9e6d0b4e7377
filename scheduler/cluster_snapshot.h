// A copy of the scheduler's state for status reporting, taken on the loop
// thread and read anywhere.
#ifndef FLEET_SCHEDULER_CLUSTER_SNAPSHOT_H_
#define FLEET_SCHEDULER_CLUSTER_SNAPSHOT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "scheduler/histogram.h"

namespace fleet::scheduler {

struct WorkerSnapshot {
  std::string id;  // hex
  std::string address;
  std::string hostname;
  uint32_t pid = 0;
  double slots = 0;
  int assigned = 0;  // running + queued
  uint32_t running = 0;  // from the last heartbeat
  uint64_t finished = 0;
  uint64_t failed = 0;
  uint64_t store_bytes = 0;  // object store, from the last heartbeat
  uint64_t store_objects = 0;
  uint64_t store_peak_bytes = 0;
  uint64_t store_capacity_bytes = 0;
  uint64_t store_spilled_bytes = 0;
  uint64_t store_spilled_objects = 0;
  uint64_t store_evictions = 0;
  uint64_t store_spills = 0;
  uint64_t store_restores = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t objects_fetched = 0;
  uint64_t bytes_shared_locally = 0;
  uint64_t neighbour_reads = 0;
  uint64_t executor_restarts = 0;
  uint64_t results_delivered_to_owner = 0;
  uint64_t direct_tasks_run = 0;
  uint64_t direct_tasks_declined = 0;
  bool draining = false;
  bool reconnecting = false;  // known before a restart, not back yet
  double mean_task_run_ms = 0;
  absl::Duration uptime;
  absl::Duration last_heard;  // since any message from it
  // Since its last heartbeat: the age of its own figures above (none
  // before the first). Not last_heard: completions come in between.
  std::optional<absl::Duration> last_heartbeat;
};

// One client session: a job.
struct JobSnapshot {
  std::string job;     // hex id
  std::string client;  // host:pid
  bool connected = true;
  uint64_t submitted = 0;
  uint64_t finished = 0;
  uint64_t failed = 0;
  uint64_t cancelled = 0;
  uint64_t pending = 0;    // its tasks the scheduler holds, not finished
  uint64_t refs_held = 0;  // objects it holds refs to
  absl::Duration uptime;   // since it opened its session (or the scheduler restored it)
};

struct ClusterSnapshot {
  uint64_t epoch = 0;
  absl::Duration uptime;
  std::vector<WorkerSnapshot> workers;
  uint64_t tasks_waiting = 0;   // for arguments
  uint64_t tasks_ready = 0;     // queued in the scheduler
  uint64_t tasks_assigned = 0;  // running or queued on a worker
  uint64_t tasks_submitted = 0;
  uint64_t tasks_finished = 0;
  uint64_t tasks_failed = 0;
  uint64_t tasks_cancelled = 0;  // by fleet::Cancel, or their client went away
  // Attempts re-queued: their worker died, they threw with retry_exceptions,
  // or their worker could not obtain an argument.
  uint64_t tasks_retried = 0;
  uint64_t tasks_run_directly = 0;  // handed to a worker by their client

  uint64_t tasks_reconstructed = 0;  // finished tasks run again to rebuild lost results
  uint64_t lineage_specs = 0;        // specs kept to rebuild results
  uint64_t lineage_bytes = 0;
  uint64_t lineage_evicted = 0;      // specs dropped to stay within max_lineage_bytes
  uint64_t objects = 0;
  uint64_t inline_cache_bytes = 0;
  // Transfers forwarded by the object relay (object_relay.h) for clients
  // that cannot reach a worker, and the bytes they moved.
  uint64_t relay_calls = 0;
  uint64_t relay_failed = 0;
  uint64_t relay_bytes = 0;
  uint64_t sessions = 0;
  std::vector<JobSnapshot> jobs;  // oldest first
  uint64_t sessions_away = 0;  // kept for clients to reconnect (--client_grace)
  bool durable = false;        // --state_dir
  bool recovering = false;     // in the reconnect window after a restart
  // Tasks finished per second over the last 10 and 60 whole seconds.
  double tasks_per_s_10s = 0;
  double tasks_per_s_60s = 0;
  std::map<std::string, FunctionStats> functions;  // by function name
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_CLUSTER_SNAPSHOT_H_
