// spdlog setup: one named logger per component, writing to stderr. Messages
// lead with `event=` and continue with key=value pairs (see STYLE.md).
#ifndef FLEET_COMMON_LOGGING_H_
#define FLEET_COMMON_LOGGING_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "spdlog/spdlog.h"

namespace fleet {

// Returns the logger named `name` ("scheduler", "worker", "client"),
// creating it on first use. Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(const std::string& name);

// Sets the level of every fleet logger. `level` is empty (keep: SPDLOG_LEVEL
// or info), or one of trace, debug, info, warn, error, critical, off.
// Returns InvalidArgument for anything else.
absl::Status SetLogLevel(absl::string_view level);

// Writes out what every fleet logger buffered, before a process exits
// without running destructors.
void FlushLogs();

}  // namespace fleet

// Debian's Abseil has its own string_view type (not std::string_view); let
// log lines format it.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

#endif  // FLEET_COMMON_LOGGING_H_
