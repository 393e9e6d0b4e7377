#include "cli/text_table.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fleet::cli {

TextTable::TextTable(std::vector<std::string> headers) {
  for (std::string& header : headers) {
    const bool right = !header.empty() && header[0] == '>';
    right_aligned_.push_back(right);
    headers_.push_back(right ? header.substr(1) : std::move(header));
  }
}

void TextTable::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string TextTable::Render() const {
  std::vector<std::size_t> widths;
  for (const std::string& header : headers_) widths.push_back(header.size());
  for (const auto& row : rows_) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  auto render_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) line += "  ";
      const std::string pad(widths[c] - cells[c].size(), ' ');
      line += right_aligned_[c] ? pad + cells[c] : cells[c] + pad;
    }
    // No trailing spaces: the last column may be left-aligned.
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  };
  render_line(headers_);
  for (const auto& row : rows_) render_line(row);
  return out;
}

std::string FormatBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    unit++;
  }
  return unit == 0 ? absl::StrCat(static_cast<uint64_t>(bytes), " B")
                   : absl::StrFormat("%.1f %s", bytes, kUnits[unit]);
}

std::string FormatAge(double seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 60) return absl::StrFormat("%.1fs", seconds);
  const auto whole = static_cast<int64_t>(seconds);
  if (whole < 3600) return absl::StrFormat("%dm%02ds", whole / 60, whole % 60);
  if (whole < 86400) return absl::StrFormat("%dh%02dm", whole / 3600, whole % 3600 / 60);
  return absl::StrFormat("%dd%02dh", whole / 86400, whole % 86400 / 3600);
}

}  // namespace fleet::cli
