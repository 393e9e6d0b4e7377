#include "worker/available_cpus.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"

namespace fleet::worker {
namespace {

// The first whitespace-separated words of `path` as integers; nullopt when
// the file is missing or a word is not a number ("max" is not).
std::optional<std::pair<int64_t, int64_t>> ReadTwoNumbers(const std::string& path) {
  std::ifstream in(path);
  std::string first, second;
  if (!(in >> first >> second)) return std::nullopt;
  std::pair<int64_t, int64_t> numbers;
  if (!absl::SimpleAtoi(first, &numbers.first) || !absl::SimpleAtoi(second, &numbers.second)) {
    return std::nullopt;
  }
  return numbers;
}

std::optional<int64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  int64_t value = 0;
  if (!(in >> word) || !absl::SimpleAtoi(word, &value)) return std::nullopt;
  return value;
}

// The CFS quota as CPUs, rounded up; nullopt when there is none.
std::optional<int> QuotaCpus(const std::string& root) {
  int64_t quota = -1;
  int64_t period = 0;
  if (auto v2 = ReadTwoNumbers(root + "/cpu.max")) {  // "max 100000" reads as none
    std::tie(quota, period) = *v2;
  } else {
    for (const char* dir : {"/cpu", "/cpu,cpuacct"}) {
      auto q = ReadNumber(root + dir + "/cpu.cfs_quota_us");
      auto p = ReadNumber(root + dir + "/cpu.cfs_period_us");
      if (q && p) {
        quota = *q;
        period = *p;
        break;
      }
    }
  }
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<int>((quota + period - 1) / period);
}

}  // namespace

int AvailableCpus(const std::string& cgroup_root) {
  int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof(mask), &mask) == 0) cpus = std::max(1, CPU_COUNT(&mask));
  if (std::optional<int> quota = QuotaCpus(cgroup_root)) cpus = std::min(cpus, *quota);
  return std::max(1, cpus);
}

}  // namespace fleet::worker
