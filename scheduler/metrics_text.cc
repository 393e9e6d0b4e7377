#include "scheduler/metrics_text.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"

namespace fleet::scheduler {
namespace {

// Counters print as exact integers (StrCat's %g would round 1234567).
std::string Number(double value) {
  if (value == static_cast<double>(static_cast<int64_t>(value)) && std::abs(value) < 9e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return absl::StrFormat("%.17g", value);
}

std::string Escape(const std::string& value) {
  return absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
}

// Writes one metric family: its HELP and TYPE lines, then its samples.
class Family {
 public:
  Family(std::string& out, const std::string& name, const char* type, const char* help)
      : out_(out), name_(name) {
    absl::StrAppend(&out_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }

  Family& Sample(double value, const std::string& labels = "") {
    return Named(name_, labels, value);
  }
  Family& Named(const std::string& name, const std::string& labels, double value) {
    absl::StrAppend(&out_, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                    Number(value), "\n");
    return *this;
  }

 private:
  std::string& out_;
  const std::string name_;
};

std::string WorkerLabels(const WorkerSnapshot& w) {
  return absl::StrCat("worker=\"", Escape(w.id), "\",address=\"", Escape(w.address), "\"");
}

void PerWorker(std::string& out, const ClusterSnapshot& snapshot, const std::string& name,
               const char* type, const char* help,
               const std::function<double(const WorkerSnapshot&)>& value) {
  Family family(out, name, type, help);
  for (const WorkerSnapshot& w : snapshot.workers) family.Sample(value(w), WorkerLabels(w));
}

void Histograms(std::string& out, const ClusterSnapshot& snapshot, const std::string& name,
                const char* help, DurationHistogram FunctionStats::*which) {
  Family family(out, name, "histogram", help);
  for (const auto& [function, stats] : snapshot.functions) {
    const DurationHistogram& h = stats.*which;
    const std::string label = absl::StrCat("function=\"", Escape(function), "\"");
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i < DurationHistogram::kBounds.size(); ++i) {
      cumulative += h.counts()[i];
      family.Named(name + "_bucket",
                   absl::StrCat(label, ",le=\"", DurationHistogram::kBounds[i], "\""),
                   static_cast<double>(cumulative));
    }
    family.Named(name + "_bucket", absl::StrCat(label, ",le=\"+Inf\""),
                 static_cast<double>(h.count()));
    family.Named(name + "_sum", label, h.sum());
    family.Named(name + "_count", label, static_cast<double>(h.count()));
  }
}

}  // namespace

std::string PrometheusText(const ClusterSnapshot& s) {
  std::string out;
  Family(out, "fleet_uptime_seconds", "gauge", "Seconds since the scheduler started.")
      .Sample(absl::ToDoubleSeconds(s.uptime));
  Family(out, "fleet_workers", "gauge", "Workers connected.")
      .Sample(static_cast<double>(s.workers.size()));
  Family(out, "fleet_sessions", "gauge", "Client sessions open.")
      .Sample(static_cast<double>(s.sessions));
  Family(out, "fleet_sessions_away", "gauge",
         "Sessions kept for their client to reconnect (--client_grace).")
      .Sample(static_cast<double>(s.sessions_away));
  Family(out, "fleet_scheduler_recovering", "gauge",
         "1 while a restarted scheduler waits for its workers to reconnect.")
      .Sample(s.recovering ? 1.0 : 0.0);
  Family(out, "fleet_tasks", "gauge", "Unfinished tasks by state.")
      .Sample(static_cast<double>(s.tasks_waiting), "state=\"waiting\"")
      .Sample(static_cast<double>(s.tasks_ready), "state=\"ready\"")
      .Sample(static_cast<double>(s.tasks_assigned), "state=\"assigned\"");
  const std::pair<const char*, uint64_t> task_counters[] = {
      {"submitted", s.tasks_submitted},
      {"finished", s.tasks_finished},
      {"failed", s.tasks_failed},
      {"cancelled", s.tasks_cancelled},
      {"retried", s.tasks_retried},
      {"reconstructed", s.tasks_reconstructed},
      {"run_directly", s.tasks_run_directly}};
  for (const auto& [what, count] : task_counters) {
    Family(out, absl::StrCat("fleet_tasks_", what, "_total"), "counter",
           absl::StrCat("Tasks ", what, " since the scheduler started.").c_str())
        .Sample(static_cast<double>(count));
  }
  Family(out, "fleet_objects", "gauge", "Objects the scheduler tracks.")
      .Sample(static_cast<double>(s.objects));
  Family(out, "fleet_inline_cache_bytes", "gauge", "Bytes of small values cached to inline.")
      .Sample(static_cast<double>(s.inline_cache_bytes));
  Family(out, "fleet_relay_calls_total", "counter",
         "Object transfers the scheduler relayed for clients that cannot reach a worker.")
      .Sample(static_cast<double>(s.relay_calls));
  Family(out, "fleet_relay_failed_total", "counter", "Relayed object transfers that failed.")
      .Sample(static_cast<double>(s.relay_failed));
  Family(out, "fleet_relay_bytes_total", "counter", "Bytes moved through the object relay.")
      .Sample(static_cast<double>(s.relay_bytes));
  Family(out, "fleet_lineage_specs", "gauge", "Task specs kept to rebuild lost results.")
      .Sample(static_cast<double>(s.lineage_specs));
  Family(out, "fleet_lineage_bytes", "gauge", "Bytes of task specs kept as lineage.")
      .Sample(static_cast<double>(s.lineage_bytes));
  Family(out, "fleet_lineage_evicted_total", "counter",
         "Lineage specs dropped to stay within --max_lineage_bytes.")
      .Sample(static_cast<double>(s.lineage_evicted));

  PerWorker(out, s, "fleet_worker_slots", "gauge", "Task slots of the worker.",
            [](const WorkerSnapshot& w) { return w.slots; });
  PerWorker(out, s, "fleet_worker_draining", "gauge", "1 while the worker drains.",
            [](const WorkerSnapshot& w) { return w.draining ? 1.0 : 0.0; });
  PerWorker(out, s, "fleet_worker_tasks_assigned", "gauge",
            "Tasks running or queued on the worker.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.assigned); });
  PerWorker(out, s, "fleet_worker_tasks_running", "gauge", "Tasks running (last heartbeat).",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.running); });
  PerWorker(out, s, "fleet_worker_tasks_finished_total", "counter", "Tasks finished there.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.finished); });
  PerWorker(out, s, "fleet_worker_tasks_failed_total", "counter", "Tasks failed there.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.failed); });
  PerWorker(out, s, "fleet_worker_store_bytes", "gauge", "Object bytes in store memory.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_bytes); });
  PerWorker(out, s, "fleet_worker_store_capacity_bytes", "gauge", "The store's memory limit.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_capacity_bytes); });
  PerWorker(out, s, "fleet_worker_store_objects", "gauge", "Objects held, in memory or spilled.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_objects); });
  PerWorker(out, s, "fleet_worker_store_spilled_bytes", "gauge", "Object bytes in spill files.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_spilled_bytes); });
  PerWorker(out, s, "fleet_worker_store_evictions_total", "counter",
            "Secondary copies dropped under memory pressure.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_evictions); });
  PerWorker(out, s, "fleet_worker_store_spills_total", "counter", "Objects written to disk.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_spills); });
  PerWorker(out, s, "fleet_worker_store_restores_total", "counter", "Spilled objects read back.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.store_restores); });
  PerWorker(out, s, "fleet_worker_sent_bytes_total", "counter",
            "Object bytes served to peers and clients.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.bytes_sent); });
  PerWorker(out, s, "fleet_worker_received_bytes_total", "counter",
            "Argument bytes fetched from peers.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.bytes_received); });
  PerWorker(out, s, "fleet_worker_executor_restarts_total", "counter",
            "Executor processes that died and were replaced.",
            [](const WorkerSnapshot& w) { return static_cast<double>(w.executor_restarts); });
  PerWorker(out, s, "fleet_worker_last_heard_seconds", "gauge",
            "Seconds since the worker was last heard from.",
            [](const WorkerSnapshot& w) { return absl::ToDoubleSeconds(w.last_heard); });

  Histograms(out, s, "fleet_task_run_seconds",
             "Run time of tasks that returned, as their worker measured it.",
             &FunctionStats::run_time);
  Histograms(out, s, "fleet_task_queue_wait_seconds",
             "Time from a task's arguments being ready to its assignment to a worker.",
             &FunctionStats::queue_wait);
  return out;
}

}  // namespace fleet::scheduler
