// The `fleet` tool's commands: what each takes, its help, and how it runs.
#ifndef FLEET_CLI_COMMANDS_H_
#define FLEET_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/command_line.h"
#include "cli/scheduler_client.h"

namespace fleet::cli {

struct Command {
  std::string name = {};
  std::string usage = {};    // "fleet tasks [--state=S] [--limit=N]"
  std::string summary = {};  // one line for the command list
  std::string details = {};  // what --help adds
  std::vector<FlagSpec> flags = {};
  // Writes the command's output to `out`. InvalidArgument is a usage error.
  absl::Status (*run)(const CommandLine& line, SchedulerClient& client,
                      std::ostream& out) = nullptr;
};

const std::vector<Command>& Commands();
const Command* FindCommand(const std::string& name);

// `fleet --help`, and `fleet COMMAND --help`.
std::string TopLevelHelp();
std::string CommandHelp(const Command& command);

}  // namespace fleet::cli

#endif  // FLEET_CLI_COMMANDS_H_
