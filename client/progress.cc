// fleet::Map's progress (MapOptions::show_progress and on_progress).
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "fleet/stream.h"

namespace fleet::internal {
namespace {

using Clock = std::chrono::steady_clock;

// Reports are spaced at least this far apart (the last one aside).
constexpr std::chrono::milliseconds kReportInterval(100);
// A loop shorter than this never draws a bar.
constexpr std::chrono::milliseconds kDrawAfter(500);

int TerminalWidth() {
  winsize size{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

// 1234 -> "1234", 12345 -> "12.3k", 1234567 -> "1.23M".
std::string Compact(double value) {
  char text[32];
  if (value >= 1e6) {
    std::snprintf(text, sizeof(text), "%.3gM", value / 1e6);
  } else if (value >= 1e4) {
    std::snprintf(text, sizeof(text), "%.3gk", value / 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.0f", value);
  }
  return text;
}

std::string Duration(double seconds) {
  const long total = std::lround(seconds);
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof(text), "%ldh%02ldm", total / 3600, total % 3600 / 60);
  } else if (total >= 60) {
    std::snprintf(text, sizeof(text), "%ldm%02lds", total / 60, total % 60);
  } else {
    std::snprintf(text, sizeof(text), "%lds", total);
  }
  return text;
}

}  // namespace

std::string FormatProgress(const MapProgress& progress, int width) {
  // StrCat, not `" " + std::string`: GCC 12 at -O3 reports a false
  // -Wrestrict overlap in the latter.
  std::string tail = absl::StrCat(" ", Compact(static_cast<double>(progress.done)));
  if (progress.total) absl::StrAppend(&tail, "/", Compact(static_cast<double>(*progress.total)));
  absl::StrAppend(&tail, " ", Compact(progress.per_second), "/s");
  if (progress.eta_seconds) absl::StrAppend(&tail, " ETA ", Duration(*progress.eta_seconds));
  if (!progress.total || *progress.total == 0) return "fleet::Map" + tail;
  const double fraction =
      std::min(1.0, static_cast<double>(progress.done) / static_cast<double>(*progress.total));
  char percent[8];
  std::snprintf(percent, sizeof(percent), "%3.0f%% ", fraction * 100);
  const int bar = std::max(10, width - static_cast<int>(tail.size()) - 8);
  const int filled = static_cast<int>(fraction * bar);
  return std::string(percent) + "[" + std::string(filled, '=') +
         std::string(bar - filled, ' ') + "]" + tail;
}

ProgressReporter::ProgressReporter(const MapOptions& options, std::optional<std::size_t> total)
    : draw_(options.show_progress && isatty(STDERR_FILENO) == 1),
      on_progress_(options.on_progress),
      total_(total),
      start_(Clock::now()),
      last_report_(start_) {}

ProgressReporter::~ProgressReporter() {
  if (drawn_) {
    std::fprintf(stderr, "\r%s\n", FormatProgress(Now(), TerminalWidth()).c_str());
  }
}

MapProgress ProgressReporter::Now() const {
  MapProgress progress;
  progress.done = done_;
  progress.total = total_;
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  progress.per_second = seconds > 0 ? static_cast<double>(done_) / seconds : 0;
  if (total_ && progress.per_second > 0 && *total_ >= done_) {
    progress.eta_seconds = static_cast<double>(*total_ - done_) / progress.per_second;
  }
  return progress;
}

void ProgressReporter::Took() {
  ++done_;
  if (!draw_ && !on_progress_) return;
  const Clock::time_point now = Clock::now();
  const bool last = total_ && done_ >= *total_;
  if (!last && now - last_report_ < kReportInterval) return;
  last_report_ = now;
  const MapProgress progress = Now();
  if (on_progress_) on_progress_(progress);
  if (draw_ && (drawn_ || now - start_ >= kDrawAfter)) {
    drawn_ = true;
    std::fprintf(stderr, "\r%s", FormatProgress(progress, TerminalWidth()).c_str());
    std::fflush(stderr);
  }
}

}  // namespace fleet::internal
