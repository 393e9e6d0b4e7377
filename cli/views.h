// What the `fleet` tool prints: the /status document as a summary and a
// workers table, the task list, and log entries. Pure functions of what
// the scheduler answered.
#ifndef FLEET_CLI_VIEWS_H_
#define FLEET_CLI_VIEWS_H_

#include <string>

#include "absl/status/statusor.h"
#include "fleet/v1/admin.pb.h"
#include "nlohmann/json.hpp"

namespace fleet::cli {

// The cluster summary (uptime, version, workers, slots, tasks by state,
// throughput), a blank line, then the workers table. InvalidArgument when
// `status` lacks what /status always has.
absl::StatusOr<std::string> RenderStatus(const nlohmann::json& status);
// One row per worker: id (short), address, state, slots busy/total,
// running, queued, finished, failed, store used/capacity, heartbeat age.
absl::StatusOr<std::string> RenderWorkers(const nlohmann::json& status);

// One row per task, and a note when more match than are shown.
std::string RenderTasks(const v1::ListTasksReply& reply);
nlohmann::json TasksJson(const v1::ListTasksReply& reply);

// One line, without its newline: "2026-11-22 21:02:28.644  worker_joined  worker=…".
std::string RenderLogEntry(const v1::LogEntry& entry);
nlohmann::json LogEntryJson(const v1::LogEntry& entry);

}  // namespace fleet::cli

#endif  // FLEET_CLI_VIEWS_H_
