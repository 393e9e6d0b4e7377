#include "cli/command_line.h"

#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fleet::cli {
namespace {

const FlagSpec* FindFlag(const std::vector<FlagSpec>& specs, const std::string& name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec>* flags = new std::vector<FlagSpec>{
      {.name = "address",
       .help = "--address=HOST:PORT  the scheduler's gRPC address (default $FLEET_ADDRESS, "
               "else 127.0.0.1:50051)"},
      {.name = "timeout",
       .help = "--timeout=DURATION   how long to wait for the scheduler's answer (default 5s)"},
      {.name = "help", .is_switch = true, .help = "--help               show help and exit"},
  };
  return *flags;
}

std::string CommandLine::Get(const std::string& name, const std::string& fallback) const {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

absl::StatusOr<int64_t> CommandLine::GetInt(const std::string& name, int64_t fallback, int64_t min,
                                            int64_t max) const {
  auto it = flags.find(name);
  if (it == flags.end()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, "=", it->second, ": expected a whole number from ", min, " to ", max));
  }
  return value;
}

absl::StatusOr<absl::Duration> CommandLine::GetDuration(const std::string& name,
                                                        absl::Duration fallback) const {
  auto it = flags.find(name);
  if (it == flags.end()) return fallback;
  absl::Duration value;
  double seconds = 0;
  if (absl::SimpleAtod(it->second, &seconds)) {
    value = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(it->second, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, "=", it->second, ": expected a duration such as 5s, 500ms or 1.5"));
  }
  if (value <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be positive"));
  }
  return value;
}

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::vector<FlagSpec>>(const std::string&)>& flags_of) {
  CommandLine line;
  std::vector<FlagSpec> specs = GlobalFlags();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h") {
      line.flags["help"] = "true";
      continue;
    }
    if (!absl::StartsWith(arg, "--") || arg == "--") {
      if (line.command.empty()) {
        line.command = arg;
        std::optional<std::vector<FlagSpec>> own = flags_of(arg);
        if (!own) return absl::InvalidArgumentError(absl::StrCat("unknown command \"", arg, "\""));
        specs.insert(specs.end(), own->begin(), own->end());
      } else {
        line.positional.push_back(arg);
      }
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const std::size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const FlagSpec* spec = FindFlag(specs, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          line.command.empty()
              ? absl::StrCat("unknown flag --", name,
                             " (a command's own flags go after the command)")
              : absl::StrCat("unknown flag --", name, " for \"", line.command, "\""));
    }
    if (!value) {
      if (spec->is_switch) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    }
    line.flags[name] = *value;
  }
  return line;
}

}  // namespace fleet::cli
