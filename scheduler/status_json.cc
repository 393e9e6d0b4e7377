#include "scheduler/status_json.h"

#include "nlohmann/json.hpp"

namespace fleet::scheduler {

std::string StatusJson(const ClusterSnapshot& snapshot) {
  nlohmann::json workers = nlohmann::json::array();
  double slots_total = 0;
  uint64_t slots_busy = 0;
  for (const WorkerSnapshot& w : snapshot.workers) {
    slots_total += w.slots;
    slots_busy += std::min<uint64_t>(w.assigned, static_cast<uint64_t>(w.slots));
    workers.push_back({
        {"id", w.id},
        {"address", w.address},
        {"hostname", w.hostname},
        {"pid", w.pid},
        {"state", w.reconnecting ? "reconnecting"
                  : w.draining   ? "draining"
                                 : "alive"},
        {"slots", w.slots},
        {"tasks_assigned", w.assigned},
        {"tasks_running", w.running},
        {"tasks_finished", w.finished},
        {"tasks_failed", w.failed},
        {"store_bytes", w.store_bytes},
        {"store_objects", w.store_objects},
        {"store_peak_bytes", w.store_peak_bytes},
        {"store_capacity_bytes", w.store_capacity_bytes},
        {"store_spilled_bytes", w.store_spilled_bytes},
        {"store_spilled_objects", w.store_spilled_objects},
        {"store_evictions", w.store_evictions},
        {"store_spills", w.store_spills},
        {"store_restores", w.store_restores},
        {"bytes_sent", w.bytes_sent},
        {"bytes_received", w.bytes_received},
        {"objects_fetched", w.objects_fetched},
        {"bytes_shared_locally", w.bytes_shared_locally},
        {"neighbour_reads", w.neighbour_reads},
        {"executor_restarts", w.executor_restarts},
        {"results_delivered_to_owner", w.results_delivered_to_owner},
        {"direct_tasks_run", w.direct_tasks_run},
        {"direct_tasks_declined", w.direct_tasks_declined},
        {"mean_task_run_ms", w.mean_task_run_ms},
        {"uptime_s", absl::ToDoubleSeconds(w.uptime)},
        {"last_heard_s", absl::ToDoubleSeconds(w.last_heard)},
        {"last_heartbeat_s", w.last_heartbeat.has_value()
                                 ? nlohmann::json(absl::ToDoubleSeconds(*w.last_heartbeat))
                                 : nlohmann::json(nullptr)},
    });
  }
  nlohmann::json jobs = nlohmann::json::array();
  for (const JobSnapshot& j : snapshot.jobs) {
    jobs.push_back({
        {"job", j.job},
        {"client", j.client},
        {"state", j.connected ? "connected" : "away"},
        {"submitted", j.submitted},
        {"finished", j.finished},
        {"failed", j.failed},
        {"cancelled", j.cancelled},
        {"pending", j.pending},
        {"refs_held", j.refs_held},
        {"uptime_s", absl::ToDoubleSeconds(j.uptime)},
    });
  }
  nlohmann::json status = {
      {"version", kFleetVersion},
      {"epoch", snapshot.epoch},
      {"uptime_s", absl::ToDoubleSeconds(snapshot.uptime)},
      {"slots", {{"total", slots_total}, {"busy", slots_busy}}},
      {"workers", workers},
      {"tasks",
       {{"waiting", snapshot.tasks_waiting},
        {"ready", snapshot.tasks_ready},
        {"assigned", snapshot.tasks_assigned},
        {"submitted", snapshot.tasks_submitted},
        {"finished", snapshot.tasks_finished},
        {"failed", snapshot.tasks_failed},
        {"cancelled", snapshot.tasks_cancelled},
        {"retried", snapshot.tasks_retried},
        {"run_directly", snapshot.tasks_run_directly},
        {"reconstructed", snapshot.tasks_reconstructed}}},
      {"lineage",
       {{"specs", snapshot.lineage_specs},
        {"bytes", snapshot.lineage_bytes},
        {"evicted", snapshot.lineage_evicted}}},
      {"objects",
       {{"count", snapshot.objects}, {"inline_cache_bytes", snapshot.inline_cache_bytes}}},
      {"relay",
       {{"calls", snapshot.relay_calls},
        {"failed", snapshot.relay_failed},
        {"bytes", snapshot.relay_bytes}}},
      {"sessions", snapshot.sessions},
      {"jobs", jobs},
      {"sessions_away", snapshot.sessions_away},
      {"durable", snapshot.durable},
      {"recovering", snapshot.recovering},
      {"throughput",
       {{"tasks_per_s_10s", snapshot.tasks_per_s_10s},
        {"tasks_per_s_60s", snapshot.tasks_per_s_60s}}},
  };
  return status.dump(2);
}

}  // namespace fleet::scheduler
