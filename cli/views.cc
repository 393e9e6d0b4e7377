#include "cli/views.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/text_table.h"
#include "common/ids.h"

namespace fleet::cli {
namespace {

// nlohmann's accessors throw on a missing or mistyped field; our functions
// report that as a status instead.
template <typename Fn>
absl::StatusOr<std::string> Guarded(Fn render) {
  try {
    return render();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the scheduler's status document is not as expected: ", e.what()));
  }
}

std::string Number(double value) {
  return value == static_cast<double>(static_cast<int64_t>(value))
             ? absl::StrCat(static_cast<int64_t>(value))
             : absl::StrFormat("%.1f", value);
}

std::string ShortWorker(const std::string& hex) { return hex.substr(0, 8); }

// "dffaf901:17" for a task id's hex; the hex itself when it does not parse.
std::string ShortTask(const std::string& hex) {
  absl::StatusOr<TaskId> id = TaskId::FromBinary(absl::HexStringToBytes(hex));
  return id.ok() ? id->Short() : hex;
}

std::string RenderWorkerTable(const nlohmann::json& status) {
  TextTable table({"WORKER", "ADDRESS", "STATE", ">SLOTS", ">RUNNING", ">QUEUED", ">FINISHED",
                   ">FAILED", ">STORE", ">HEARTBEAT"});
  for (const nlohmann::json& w : status.at("workers")) {
    const double slots = w.at("slots").get<double>();
    const uint64_t assigned = w.at("tasks_assigned").get<uint64_t>();
    const uint64_t running = w.at("tasks_running").get<uint64_t>();
    // Busy as /status counts it: a slot with a task assigned.
    const uint64_t busy = std::min<uint64_t>(assigned, static_cast<uint64_t>(slots));
    table.AddRow({
        ShortWorker(w.at("id").get<std::string>()),
        w.at("address").get<std::string>(),
        w.at("state").get<std::string>(),
        absl::StrCat(busy, "/", Number(slots)),
        absl::StrCat(running),
        absl::StrCat(assigned > running ? assigned - running : 0),
        absl::StrCat(w.at("tasks_finished").get<uint64_t>()),
        absl::StrCat(w.at("tasks_failed").get<uint64_t>()),
        absl::StrCat(FormatBytes(w.at("store_bytes").get<double>()), " / ",
                     FormatBytes(w.at("store_capacity_bytes").get<double>())),
        absl::StrCat(FormatAge(w.at("last_heard_s").get<double>()), " ago"),
    });
  }
  if (table.num_rows() == 0) return "no workers\n";
  return table.Render();
}

// The jobs (client sessions); empty when there are none.
std::string RenderJobTable(const nlohmann::json& status) {
  if (!status.contains("jobs") || status.at("jobs").empty()) return "";
  TextTable table({"JOB", "CLIENT", "STATE", ">SUBMITTED", ">FINISHED", ">FAILED", ">PENDING",
                   ">REFS", ">UP"});
  for (const nlohmann::json& j : status.at("jobs")) {
    table.AddRow({
        j.at("job").get<std::string>().substr(0, 8),
        j.at("client").get<std::string>(),
        j.at("state").get<std::string>(),
        absl::StrCat(j.at("submitted").get<uint64_t>()),
        absl::StrCat(j.at("finished").get<uint64_t>()),
        absl::StrCat(j.at("failed").get<uint64_t>() + j.at("cancelled").get<uint64_t>()),
        absl::StrCat(j.at("pending").get<uint64_t>()),
        absl::StrCat(j.at("refs_held").get<uint64_t>()),
        FormatAge(j.at("uptime_s").get<double>()),
    });
  }
  return absl::StrCat("\n", table.Render());
}

}  // namespace

absl::StatusOr<std::string> RenderStatus(const nlohmann::json& status) {
  return Guarded([&] {
    const nlohmann::json& tasks = status.at("tasks");
    const nlohmann::json& slots = status.at("slots");
    const nlohmann::json& workers = status.at("workers");
    const auto draining = std::count_if(workers.begin(), workers.end(), [](const auto& w) {
      return w.at("state").template get<std::string>() == "draining";
    });
    std::string out;
    absl::StrAppend(&out, "fleet ", status.at("version").get<std::string>(), ", up ",
                    FormatAge(status.at("uptime_s").get<double>()), ", ",
                    status.at("sessions").get<uint64_t>(), " client session(s)\n");
    absl::StrAppend(&out, "workers     ", workers.size(),
                    draining > 0 ? absl::StrCat(" (", draining, " draining)") : "", "\n");
    if (status.value("durable", false)) {
      absl::StrAppend(&out, "state       durable (--state_dir)",
                      status.value("recovering", false)
                          ? ", recovering: waiting for its workers to reconnect"
                          : "",
                      "\n");
    }
    absl::StrAppend(&out, "slots       ", slots.at("busy").get<uint64_t>(), " busy of ",
                    Number(slots.at("total").get<double>()), "\n");
    absl::StrAppend(&out, "tasks       ", tasks.at("waiting").get<uint64_t>(), " waiting, ",
                    tasks.at("ready").get<uint64_t>(), " ready, ",
                    tasks.at("assigned").get<uint64_t>(), " assigned\n");
    absl::StrAppend(&out, "            ", tasks.at("submitted").get<uint64_t>(), " submitted, ",
                    tasks.at("finished").get<uint64_t>(), " finished, ",
                    tasks.at("failed").get<uint64_t>(), " failed, ",
                    tasks.at("cancelled").get<uint64_t>(), " cancelled, ",
                    tasks.at("retried").get<uint64_t>(), " retried, ",
                    tasks.at("reconstructed").get<uint64_t>(), " reconstructed\n");
    const nlohmann::json& throughput = status.at("throughput");
    absl::StrAppend(&out, "throughput  ",
                    absl::StrFormat("%.1f", throughput.at("tasks_per_s_10s").get<double>()),
                    " tasks/s over 10s, ",
                    absl::StrFormat("%.1f", throughput.at("tasks_per_s_60s").get<double>()),
                    " tasks/s over 60s\n");
    absl::StrAppend(&out, "objects     ", status.at("objects").at("count").get<uint64_t>(),
                    " tracked, lineage ", status.at("lineage").at("specs").get<uint64_t>(),
                    " specs (", FormatBytes(status.at("lineage").at("bytes").get<double>()),
                    ")\n\n");
    absl::StrAppend(&out, RenderWorkerTable(status), RenderJobTable(status));
    return out;
  });
}

absl::StatusOr<std::string> RenderWorkers(const nlohmann::json& status) {
  return Guarded([&] { return RenderWorkerTable(status); });
}

std::string RenderTasks(const v1::ListTasksReply& reply) {
  TextTable table({"TASK", "FUNCTION", "STATE", "WORKER", ">ATTEMPT", ">AGE"});
  for (const v1::TaskSummary& task : reply.tasks()) {
    table.AddRow({absl::BytesToHexString(task.task_id()), task.function_name(), task.state(),
                  task.worker_address().empty() ? "-" : task.worker_address(),
                  absl::StrCat(task.attempt()), FormatAge(task.age_s())});
  }
  std::string out = table.num_rows() == 0 ? std::string("no tasks\n") : table.Render();
  if (reply.matching() > static_cast<uint64_t>(reply.tasks_size())) {
    absl::StrAppend(&out, "(", reply.tasks_size(), " of ", reply.matching(),
                    " tasks shown, oldest first; raise --limit to see more)\n");
  }
  return out;
}

nlohmann::json TasksJson(const v1::ListTasksReply& reply) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const v1::TaskSummary& task : reply.tasks()) {
    tasks.push_back({{"id", absl::BytesToHexString(task.task_id())},
                     {"function", task.function_name()},
                     {"state", task.state()},
                     {"worker_id", absl::BytesToHexString(task.worker_id())},
                     {"worker_address", task.worker_address()},
                     {"attempt", task.attempt()},
                     {"age_s", task.age_s()}});
  }
  return {{"tasks", tasks}, {"matching", reply.matching()}};
}

std::string RenderLogEntry(const v1::LogEntry& entry) {
  if (entry.has_output()) {
    const v1::TaskOutput& output = entry.output();
    return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(), absl::LocalTimeZone()),
                        "  ", output.is_stderr() ? "stderr" : "stdout", "  (pid=", output.pid(),
                        ", ", output.worker(), ") ", output.line());
  }
  const v1::ClusterEvent& event = entry.event();
  std::vector<std::string> fields;
  if (!event.worker_id().empty()) fields.push_back("worker=" + ShortWorker(event.worker_id()));
  if (!event.worker_address().empty()) fields.push_back("address=" + event.worker_address());
  if (!event.job_id().empty()) fields.push_back("job=" + event.job_id().substr(0, 8));
  if (!event.task_id().empty()) fields.push_back("task=" + ShortTask(event.task_id()));
  if (!event.function_name().empty()) fields.push_back("function=" + event.function_name());
  if (!event.failure_kind().empty()) fields.push_back("kind=" + event.failure_kind());
  if (!event.detail().empty()) fields.push_back(event.detail());
  const absl::Time at = absl::FromUnixMicros(event.time_unix_us());
  return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%E3S", at, absl::LocalTimeZone()), "  ",
                      event.name(), "  ", absl::StrJoin(fields, " "));
}

nlohmann::json LogEntryJson(const v1::LogEntry& entry) {
  if (entry.has_output()) {
    const v1::TaskOutput& output = entry.output();
    return {{"output",
             {{"task_id", absl::BytesToHexString(output.task_id())},
              {"stream", output.is_stderr() ? "stderr" : "stdout"},
              {"pid", output.pid()},
              {"worker", output.worker()},
              {"line", output.line()}}}};
  }
  const v1::ClusterEvent& event = entry.event();
  return {{"event",
           {{"sequence", event.sequence()},
            {"time_unix_us", event.time_unix_us()},
            {"name", event.name()},
            {"worker_id", event.worker_id()},
            {"worker_address", event.worker_address()},
            {"job_id", event.job_id()},
            {"task_id", event.task_id()},
            {"function", event.function_name()},
            {"failure_kind", event.failure_kind()},
            {"detail", event.detail()}}}};
}

}  // namespace fleet::cli
