// The `fleet` tool's command line: a command, its positional arguments and
// flags (--name=value, --name value, or --name for a switch), in any order.
// Each command declares the flags it takes; the global ones (--address,
// --timeout, --help) are accepted everywhere.
#ifndef FLEET_CLI_COMMAND_LINE_H_
#define FLEET_CLI_COMMAND_LINE_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fleet::cli {

struct FlagSpec {
  std::string name = {};   // without the dashes
  bool is_switch = false;  // takes no value
  std::string help = {};   // "--name=VALUE  what it does"
};

// The flags every command accepts.
const std::vector<FlagSpec>& GlobalFlags();

struct CommandLine {
  std::string command = {};  // empty: none given
  std::vector<std::string> positional = {};
  std::map<std::string, std::string> flags = {};  // switches map to "true"

  bool Has(const std::string& name) const { return flags.contains(name); }
  std::string Get(const std::string& name, const std::string& fallback) const;
  // InvalidArgument when the value is not a whole number in [min, max].
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback, int64_t min,
                                 int64_t max) const;
  // "1s", "500ms", "2m", or plain seconds ("1.5").
  absl::StatusOr<absl::Duration> GetDuration(const std::string& name,
                                             absl::Duration fallback) const;
};

// Splits argv[1..]. The first argument that is not a flag is the command;
// `flags_of(command)` returns the flags it takes (beyond the global ones),
// or nullopt for an unknown command. Only global flags may come before the
// command. Returns InvalidArgument for an unknown command or flag, or a
// missing value.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::vector<FlagSpec>>(const std::string&)>& flags_of);

}  // namespace fleet::cli

#endif  // FLEET_CLI_COMMAND_LINE_H_
