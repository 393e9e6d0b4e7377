#include "common/logging.h"

#include <cstdlib>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace fleet {
namespace {

absl::Mutex registry_mu(absl::kConstInit);
// Set by SetLogLevel; loggers created later start at it.
std::optional<spdlog::level::level_enum> configured_level ABSL_GUARDED_BY(registry_mu);

spdlog::level::level_enum DefaultLevel() {
  const char* env = std::getenv("SPDLOG_LEVEL");
  if (env != nullptr) {
    auto level = spdlog::level::from_str(env);
    // from_str maps unknown names to "off"; only accept a real match.
    if (level != spdlog::level::off || absl::string_view(env) == "off") return level;
  }
  return spdlog::level::info;
}

}  // namespace

std::shared_ptr<spdlog::logger> GetLogger(const std::string& name) {
  absl::MutexLock lock(&registry_mu);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = spdlog::stderr_color_mt(name);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ %n %v");
  logger->set_level(configured_level.value_or(DefaultLevel()));
  return logger;
}

void FlushLogs() {
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& logger) { logger->flush(); });
}

absl::Status SetLogLevel(absl::string_view level) {
  if (level.empty()) return absl::OkStatus();
  const auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown log level '", level, "': use trace, debug, info, warn, error or off"));
  }
  absl::MutexLock lock(&registry_mu);
  configured_level = parsed;
  spdlog::apply_all([parsed](const std::shared_ptr<spdlog::logger>& l) { l->set_level(parsed); });
  return absl::OkStatus();
}

}  // namespace fleet
