// fleet: the command-line tool for operators of a fleet cluster (see
// `fleet --help` and README.md). Parses the command line, runs one command
// against the scheduler, and turns its status into a message and an exit
// code: 0 done, 1 the scheduler could not do it (or was not reached), 2 a
// usage error.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/scheduler_client.h"

namespace {

constexpr const char* kDefaultAddress = "127.0.0.1:50051";
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

int Fail(const absl::Status& status, int exit_code) {
  std::fprintf(stderr, "fleet: %s\n", std::string(status.message()).c_str());
  if (exit_code == kExitUsage) std::fprintf(stderr, "(see fleet --help)\n");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  using fleet::cli::Command;
  const std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<fleet::cli::CommandLine> line = fleet::cli::ParseCommandLine(
      args, [](const std::string& name) -> std::optional<std::vector<fleet::cli::FlagSpec>> {
        if (name == "help") return std::vector<fleet::cli::FlagSpec>{};
        const Command* command = fleet::cli::FindCommand(name);
        if (command == nullptr) return std::nullopt;
        return command->flags;
      });
  if (!line.ok()) return Fail(line.status(), kExitUsage);

  const Command* command = fleet::cli::FindCommand(line->command);
  if (line->command.empty() || line->command == "help") {
    const Command* topic =
        line->positional.empty() ? nullptr : fleet::cli::FindCommand(line->positional[0]);
    std::cout << (topic != nullptr ? fleet::cli::CommandHelp(*topic) : fleet::cli::TopLevelHelp());
    // `fleet` alone is a usage error; asking for help is not.
    return line->command.empty() && !line->Has("help") ? kExitUsage : 0;
  }
  if (line->Has("help")) {
    std::cout << fleet::cli::CommandHelp(*command);
    return 0;
  }

  const char* env_address = std::getenv("FLEET_ADDRESS");
  const std::string address = line->Get(
      "address", env_address != nullptr && *env_address != '\0' ? env_address : kDefaultAddress);
  absl::StatusOr<absl::Duration> timeout = line->GetDuration("timeout", absl::Seconds(5));
  if (!timeout.ok()) return Fail(timeout.status(), kExitUsage);

  fleet::cli::SchedulerClient client(address, *timeout);
  const absl::Status status = command->run(*line, client, std::cout);
  std::cout.flush();
  // Commands check their arguments before calling the scheduler, so
  // InvalidArgument means the command line was wrong.
  if (status.code() == absl::StatusCode::kInvalidArgument) return Fail(status, kExitUsage);
  if (!status.ok()) return Fail(status, kExitFailed);
  return 0;
}
