#include "cli/commands.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "cli/views.h"
#include "common/status_macros.h"

namespace fleet::cli {
namespace {

constexpr int kMaxTaskListLimit = 10'000;

// nlohmann throws on bytes that are not UTF-8 (a task may print anything);
// those are replaced instead.
std::string Dump(const nlohmann::json& json, int indent) {
  return json.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<nlohmann::json> FetchStatus(SchedulerClient& client, std::string* text) {
  ASSIGN_OR_RETURN(*text, client.GetStatusJson());
  nlohmann::json status = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (status.is_discarded()) {
    return absl::InternalError("the scheduler's status document is not valid JSON");
  }
  return status;
}

absl::Status RunStatus(const CommandLine& line, SchedulerClient& client, std::ostream& out) {
  const bool json = line.Has("json");
  if (!line.Has("watch")) {
    std::string text;
    ASSIGN_OR_RETURN(nlohmann::json status, FetchStatus(client, &text));
    if (json) {
      out << text << "\n";  // exactly the /status document
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(std::string rendered, RenderStatus(status));
    out << rendered;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(absl::Duration interval, line.GetDuration("interval", absl::Seconds(1)));
  ASSIGN_OR_RETURN(int64_t count, line.GetInt("count", 0, 0, INT64_MAX));
  // Ctrl-C ends the loop the usual way (SIGINT's default action): there is
  // nothing to clean up.
  for (int64_t shown = 0; count == 0 || shown < count; ++shown) {
    if (shown > 0) absl::SleepFor(interval);
    std::string text;
    ASSIGN_OR_RETURN(nlohmann::json status, FetchStatus(client, &text));
    std::string frame = text + "\n";
    if (!json) {
      ASSIGN_OR_RETURN(std::string rendered, RenderStatus(status));
      frame = absl::StrCat("every ", absl::FormatDuration(interval), " from ", client.address(),
                           " at ", absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()),
                           "\n\n", rendered);
    }
    out << "\033[H\033[2J" << frame << std::flush;  // home, clear screen
  }
  return absl::OkStatus();
}

absl::Status RunWorkers(const CommandLine& line, SchedulerClient& client, std::ostream& out) {
  std::string text;
  ASSIGN_OR_RETURN(nlohmann::json status, FetchStatus(client, &text));
  if (line.Has("json")) {
    out << Dump(status.value("workers", nlohmann::json::array()), 2) << "\n";
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::string rendered, RenderWorkers(status));
  out << rendered;
  return absl::OkStatus();
}

absl::Status RunTasks(const CommandLine& line, SchedulerClient& client, std::ostream& out) {
  const std::string state = line.Get("state", "");
  if (!state.empty() && state != "waiting" && state != "ready" && state != "assigned") {
    return absl::InvalidArgumentError(
        absl::StrCat("--state=", state, ": expected waiting, ready or assigned"));
  }
  ASSIGN_OR_RETURN(int64_t limit, line.GetInt("limit", 100, 1, kMaxTaskListLimit));
  ASSIGN_OR_RETURN(v1::ListTasksReply reply, client.ListTasks(state, static_cast<uint32_t>(limit)));
  out << (line.Has("json") ? Dump(TasksJson(reply), 2) + "\n" : RenderTasks(reply));
  return absl::OkStatus();
}

absl::Status RunCancel(const CommandLine& line, SchedulerClient& client, std::ostream& out) {
  if (line.positional.size() != 1) {
    return absl::InvalidArgumentError("cancel takes one TASK_ID (as `fleet tasks` prints it)");
  }
  const std::string& hex = line.positional[0];
  const bool is_hex =
      std::all_of(hex.begin(), hex.end(), [](char c) { return absl::ascii_isxdigit(c); });
  if (!is_hex || hex.size() != 2 * TaskId::kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", hex, "\" is not a task id: expected ", 2 * TaskId::kSize,
                     " hex digits, as the TASK column of `fleet tasks` shows"));
  }
  ASSIGN_OR_RETURN(TaskId id, TaskId::FromBinary(absl::HexStringToBytes(hex)));
  ASSIGN_OR_RETURN(std::string state, client.CancelTask(id));
  out << "cancelled task " << id.Short() << " (it was " << state << ")\n";
  return absl::OkStatus();
}

absl::Status RunLogs(const CommandLine& line, SchedulerClient& client, std::ostream& out) {
  ASSIGN_OR_RETURN(int64_t tail, line.GetInt("tail", 0, 0, 1'000'000));
  v1::StreamLogsRequest request;
  request.set_follow(line.Has("follow"));
  request.set_tail(static_cast<uint32_t>(tail));
  request.set_task_output(request.follow() && !line.Has("no-output"));
  const bool json = line.Has("json");
  return client.StreamLogs(request, [&](const v1::LogEntry& entry) {
    out << (json ? Dump(LogEntryJson(entry), -1) : RenderLogEntry(entry)) << "\n";
    out.flush();  // a follower reads each entry as it happens
  });
}

const FlagSpec kJsonFlag = {.name = "json",
                            .is_switch = true,
                            .help = "--json               print JSON instead of a table"};

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {.name = "status",
       .usage = "fleet status [--json] [--watch [--interval=1s] [--count=N]]",
       .summary = "the cluster at a glance: workers, slots, tasks, throughput",
       .details = "Prints a summary of the cluster (version, uptime, workers, whether its\n"
                  "state is durable, slots, tasks by state and their totals, throughput over\n"
                  "10 s and 60 s), a table of the workers and one of the jobs (client\n"
                  "sessions). --json prints the scheduler's /status document as it is.\n",
       .flags = {kJsonFlag,
                 {.name = "watch",
                  .is_switch = true,
                  .help = "--watch              redraw every --interval until Ctrl-C"},
                 {.name = "interval",
                  .help = "--interval=DURATION  between redraws with --watch (default 1s)"},
                 {.name = "count",
                  .help = "--count=N            with --watch, stop after N redraws"}},
       .run = RunStatus},
      {.name = "workers",
       .usage = "fleet workers [--json]",
       .summary = "the workers: address, state, slots, tasks, store, heartbeat",
       .details = "One row per connected worker: its id (first 8 hex digits), address, state\n"
                  "(alive, draining, or reconnecting to a restarted scheduler), slots\n"
                  "busy/total, tasks running, queued there, finished and failed, its object\n"
                  "store's use and capacity, and how long ago it was last heard from. --json\n"
                  "prints /status's workers array.\n",
       .flags = {kJsonFlag},
       .run = RunWorkers},
      {.name = "tasks",
       .usage = "fleet tasks [--state=waiting|ready|assigned] [--limit=100] [--json]",
       .summary = "the tasks the scheduler holds, oldest first",
       .details = "Tasks not finished yet: waiting (for their arguments), ready (for a slot)\n"
                  "or assigned (running or queued on a worker), oldest first. The TASK column\n"
                  "is the id `fleet cancel` takes.\n",
       .flags = {kJsonFlag,
                 {.name = "state",
                  .help = "--state=STATE        only tasks in this state: waiting, ready, "
                          "assigned"},
                 {.name = "limit",
                  .help = "--limit=N            at most N tasks (default 100, at most 10000)"}},
       .run = RunTasks},
      {.name = "cancel",
       .usage = "fleet cancel TASK_ID",
       .summary = "cancel a task, whichever client submitted it",
       .details = "Fails the task with CANCELLED, as fleet::Cancel would: its client's Get\n"
                  "throws fleet::TaskCancelled, tasks that take its result fail with it as\n"
                  "their cause, and a running task's executor process is stopped. TASK_ID is\n"
                  "the full hex id that `fleet tasks` prints.\n",
       .flags = {},
       .run = RunCancel},
      {.name = "logs",
       .usage = "fleet logs [--follow [--no-output]] [--tail=N] [--json]",
       .summary = "the cluster's recent events; --follow streams new ones",
       .details = "Prints the scheduler's recent cluster events (up to the last 1,000):\n"
                  "workers joining, draining, declared dead and leaving, jobs (client\n"
                  "sessions) starting and finishing, and tasks failing, with their kind.\n"
                  "--follow then prints new events as they happen, and the lines tasks\n"
                  "print, until Ctrl-C.\n",
       .flags = {kJsonFlag,
                 {.name = "follow",
                  .is_switch = true,
                  .help = "--follow             keep printing new events as they happen"},
                 {.name = "no-output",
                  .is_switch = true,
                  .help = "--no-output          with --follow, leave out what tasks print"},
                 {.name = "tail",
                  .help = "--tail=N             start with only the last N events"}},
       .run = RunLogs},
  };
  return *commands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& command : Commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::string TopLevelHelp() {
  std::string help =
      "fleet: look at and steer a fleet cluster through its scheduler.\n\n"
      "usage: fleet [--address=HOST:PORT] [--timeout=5s] COMMAND [flags]\n\ncommands:\n";
  for (const Command& command : Commands()) {
    absl::StrAppend(&help, "  ", command.name, std::string(10 - command.name.size(), ' '),
                    command.summary, "\n");
  }
  absl::StrAppend(&help, "\nflags, for every command:\n");
  for (const FlagSpec& flag : GlobalFlags()) absl::StrAppend(&help, "  ", flag.help, "\n");
  absl::StrAppend(&help,
                  "\nenvironment:\n"
                  "  FLEET_ADDRESS        the default --address\n"
                  "  FLEET_TOKEN          the cluster token, when the scheduler was started with one\n");
  absl::StrAppend(&help, "\n`fleet COMMAND --help` describes a command.\n");
  return help;
}

std::string CommandHelp(const Command& command) {
  std::string help = absl::StrCat("usage: ", command.usage, "\n\n", command.details);
  if (!command.flags.empty()) {
    absl::StrAppend(&help, "\nflags:\n");
    for (const FlagSpec& flag : command.flags) absl::StrAppend(&help, "  ", flag.help, "\n");
  }
  absl::StrAppend(&help, "\nflags, for every command:\n");
  for (const FlagSpec& flag : GlobalFlags()) absl::StrAppend(&help, "  ", flag.help, "\n");
  return help;
}

}  // namespace fleet::cli
