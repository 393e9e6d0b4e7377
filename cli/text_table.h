// A plain-text table with aligned columns, for the `fleet` tool's output.
#ifndef FLEET_CLI_TEXT_TABLE_H_
#define FLEET_CLI_TEXT_TABLE_H_

#include <string>
#include <vector>

namespace fleet::cli {

class TextTable {
 public:
  // Columns whose header starts with '>' are right-aligned (the '>' is not
  // shown): numbers read better that way.
  explicit TextTable(std::vector<std::string> headers);

  // REQUIRES: as many cells as headers.
  void AddRow(std::vector<std::string> cells);
  std::size_t num_rows() const { return rows_.size(); }

  // The header line, then one line per row; columns two spaces apart.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_aligned_;
  std::vector<std::vector<std::string>> rows_;
};

// 1536 -> "1.5 KiB"; below 1 KiB in bytes.
std::string FormatBytes(double bytes);
// 0.25 -> "0.2s", 75 -> "1m15s", 7300 -> "2h01m".
std::string FormatAge(double seconds);

}  // namespace fleet::cli

#endif  // FLEET_CLI_TEXT_TABLE_H_
