#include "bench/common/bench_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(std::string, address, "", "The scheduler, host:port (required).");
ABSL_FLAG(std::string, out, "", "JSON-lines file to append the figures to (default: stdout only).");
ABSL_FLAG(std::string, round, "1", "Label stored with every figure.");
ABSL_FLAG(std::string, cluster, "",
          "The cluster's shape, stored with every figure and in the variant.");
ABSL_FLAG(bool, quick, false, "Small sizes and one trial: a correctness smoke, not a measurement.");
ABSL_FLAG(std::string, system_pids, "",
          "Comma-separated pids of the scheduler and workers, for the process-tree RSS.");
ABSL_FLAG(std::string, cgroup, "",
          "Memory cgroup directory that holds the whole system under test (scheduler, workers "
          "and this program).");

namespace fleet::bench {

BenchOptions ParseBenchFlags(int argc, char** argv, const std::string& usage) {
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  BenchOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.out = absl::GetFlag(FLAGS_out);
  options.round = absl::GetFlag(FLAGS_round);
  options.cluster = absl::GetFlag(FLAGS_cluster);
  options.quick = absl::GetFlag(FLAGS_quick);
  options.cgroup = absl::GetFlag(FLAGS_cgroup);
  for (absl::string_view part :
       absl::StrSplit(absl::GetFlag(FLAGS_system_pids), ',', absl::SkipEmpty())) {
    int pid = 0;
    if (!absl::SimpleAtoi(part, &pid) || pid <= 0) {
      std::fprintf(stderr, "%s: bad pid \"%s\" in --system_pids\n", argv[0],
                   std::string(part).c_str());
      std::exit(2);
    }
    options.system_pids.push_back(pid);
  }
  for (std::size_t i = 1; i < positional.size(); ++i)
    options.positional.emplace_back(positional[i]);
  return options;
}

void InitFleetOrDie(const BenchOptions& options, const char* program) {
  if (options.address.empty()) {
    std::fprintf(stderr, "%s: --address=HOST:PORT is required\n", program);
    std::exit(2);
  }
  try {
    fleet::Init({.address = options.address});
  } catch (const fleet::Error& e) {
    std::fprintf(stderr, "%s: cannot connect to %s: %s\n", program, options.address.c_str(),
                 e.what());
    std::exit(1);
  }
}

void WarmUp() {
  const auto noop = fleet::Task(fleet::examples::noop);
  std::vector<fleet::ObjectRef<int64_t>> refs;
  for (int64_t i = 0; i < 8; ++i) refs.push_back(noop.Remote(i));
  fleet::Get(refs);
}

int RunGuarded(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: FAILED: %s\n", program, e.what());
    return 1;
  }
}

Recorder::Recorder(std::string system, std::string workload, const BenchOptions& options)
    : system_(std::move(system)),
      workload_(std::move(workload)),
      out_(options.out),
      round_(options.round),
      cluster_(options.cluster) {}

void Recorder::operator()(const std::string& variant, const std::string& metric, double value,
                          int trial, const nlohmann::json& extra) const {
  nlohmann::json record = {{"system", system_}, {"workload", workload_}, {"variant", variant},
                           {"metric", metric},  {"value", value},        {"round", round_},
                           {"trial", trial},    {"source", "bench"}};
  if (!cluster_.empty()) record["cluster"] = cluster_;
  for (const auto& [key, v] : extra.items()) record[key] = v;
  Write(std::move(record));
}

void Recorder::Unsupported(const std::string& variant, const std::string& reason) const {
  nlohmann::json record = {
      {"system", system_}, {"workload", workload_}, {"variant", variant}, {"metric", "unsupported"},
      {"value", reason},   {"round", round_},       {"trial", 0},         {"source", "bench"}};
  if (!cluster_.empty()) record["cluster"] = cluster_;
  Write(std::move(record));
}

void Recorder::Write(nlohmann::json record) const {
  const std::string line = record.dump();
  std::cout << line << std::endl;
  if (!out_.empty()) {
    std::ofstream file(out_, std::ios::app);
    file << line << "\n";
  }
}

LatencyStats ComputeLatency(std::vector<double> samples_seconds) {
  LatencyStats stats;
  if (samples_seconds.empty()) return stats;
  std::vector<double> us;
  us.reserve(samples_seconds.size());
  for (double s : samples_seconds) us.push_back(s * 1e6);
  std::sort(us.begin(), us.end());
  const std::size_t n = us.size();
  // statistics.median: the mean of the two middle values when n is even.
  stats.median_us = n % 2 == 1 ? us[n / 2] : (us[n / 2 - 1] + us[n / 2]) / 2;
  // us[min(n - 1, round(0.99 n) - 1)], as latency_stats in peers/common.py.
  const long rank = std::lround(0.99 * static_cast<double>(n)) - 1;
  stats.p99_us = us[std::min<std::size_t>(n - 1, static_cast<std::size_t>(std::max(0L, rank)))];
  return stats;
}

namespace {

// The parent pid from /proc/PID/stat, or -1. The command name may hold
// spaces and parentheses, so parse after the last ')'.
pid_t ParentOf(const std::string& pid) {
  std::ifstream file("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(file, line)) return -1;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

uint64_t RssOf(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(file >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::optional<uint64_t> ReadUint(const std::string& path) {
  std::ifstream file(path);
  uint64_t value = 0;
  if (!(file >> value)) return std::nullopt;
  return value;
}

bool WriteString(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// `roots` and every process below them, each once.
std::vector<pid_t> WithDescendants(const std::vector<pid_t>& roots) {
  std::unordered_map<pid_t, std::vector<pid_t>> children;
  if (DIR* proc = ::opendir("/proc")) {
    while (dirent* entry = ::readdir(proc)) {
      int pid = 0;
      if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
      const pid_t ppid = ParentOf(entry->d_name);
      if (ppid > 0) children[ppid].push_back(pid);
    }
    ::closedir(proc);
  }
  std::vector<pid_t> todo(roots.begin(), roots.end()), all;
  while (!todo.empty()) {
    const pid_t pid = todo.back();
    todo.pop_back();
    if (std::find(all.begin(), all.end(), pid) != all.end()) continue;
    all.push_back(pid);
    for (pid_t child : children[pid]) todo.push_back(child);
  }
  return all;
}

}  // namespace

uint64_t TreeRssBytes(const std::vector<pid_t>& roots) {
  uint64_t total = 0;
  for (pid_t pid : WithDescendants(roots)) total += RssOf(pid);
  return total;
}

namespace {

// Fields 14-17 of /proc/PID/stat (utime, stime, cutime, cstime), in ticks.
double OwnCpuSeconds(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(file, line)) return 0;
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> fields;  // from field 3 (state) on
  std::string field;
  while (fields.size() < 15 && rest >> field) fields.push_back(field);
  if (fields.size() < 15) return 0;
  double ticks = 0;
  for (int i = 11; i <= 14; ++i) ticks += std::strtod(fields[i].c_str(), nullptr);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

double CpuSeconds(pid_t pid, bool descendants) {
  if (!descendants) return OwnCpuSeconds(pid);
  double total = 0;
  for (pid_t p : WithDescendants({pid})) total += OwnCpuSeconds(p);
  return total;
}

CpuMeter::CpuMeter(const BenchOptions& options) : pids_(options.system_pids) {}

void CpuMeter::Start() {
  if (pids_.empty()) return;
  scheduler_ = -CpuSeconds(pids_[0], false);
  workers_ = 0;
  for (std::size_t i = 1; i < pids_.size(); ++i) workers_ -= CpuSeconds(pids_[i], true);
  client_ = -CpuSeconds(::getpid(), true);
}

void CpuMeter::Stop() {
  if (pids_.empty()) return;
  scheduler_ += CpuSeconds(pids_[0], false);
  for (std::size_t i = 1; i < pids_.size(); ++i) workers_ += CpuSeconds(pids_[i], true);
  client_ += CpuSeconds(::getpid(), true);
}

void CpuMeter::Record(const BenchOptions& options, const std::string& variant, double tasks,
                      int trial) const {
  if (pids_.empty() || tasks <= 0) return;
  const Recorder rec("fleet", "Q9", options);
  rec(variant, "scheduler_us_per_task", scheduler_ / tasks * 1e6, trial);
  rec(variant, "workers_us_per_task", workers_ / tasks * 1e6, trial);
  rec(variant, "client_us_per_task", client_ / tasks * 1e6, trial);
}

std::string CgroupUsageFile(const std::string& cgroup_dir) {
  if (cgroup_dir.empty()) return "";
  for (const char* name : {"memory.current", "memory.usage_in_bytes"}) {
    const std::string path = cgroup_dir + "/" + name;
    if (Exists(path)) return path;
  }
  return "";
}

MemorySampler::MemorySampler(std::vector<pid_t> system_pids, std::string cgroup_dir)
    : roots_(std::move(system_pids)), cgroup_dir_(std::move(cgroup_dir)) {
  roots_.insert(roots_.begin(), ::getpid());
  usage_file_ = CgroupUsageFile(cgroup_dir_);
}

MemorySampler::~MemorySampler() { Stop(); }

void MemorySampler::Start() {
  baseline_rss_ = peak_rss_ = TreeRssBytes(roots_);
  if (!usage_file_.empty()) {
    cg_baseline_ = cg_peak_ = ReadUint(usage_file_).value_or(0);
    // The kernel's high-water mark, reset now so that it covers this
    // measurement only. v1: write 0 to memory.max_usage_in_bytes. v2 (Linux
    // 6.12+): a write to memory.peak resets it for that open file, so the
    // file stays open until Stop reads it. Where no reset works the figure
    // is not recorded (it would include the cluster's start).
    const std::string v1 = cgroup_dir_ + "/memory.max_usage_in_bytes";
    const std::string v2 = cgroup_dir_ + "/memory.peak";
    if (Exists(v1) && WriteString(v1, "0")) {
      kernel_peak_file_ = v1;
    } else if (Exists(v2)) {
      peak_fd_ = ::open(v2.c_str(), O_RDWR);
      if (peak_fd_ >= 0 && ::write(peak_fd_, "reset\n", 6) != 6) {
        ::close(peak_fd_);
        peak_fd_ = -1;
      }
    }
  }
  stop_ = false;
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      Sample();
      for (int i = 0; i < 5 && !stop_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  });
}

void MemorySampler::Sample() {
  peak_rss_ = std::max(peak_rss_, TreeRssBytes(roots_));
  if (!usage_file_.empty()) cg_peak_ = std::max(cg_peak_, ReadUint(usage_file_).value_or(0));
}

void MemorySampler::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  Sample();
  if (!kernel_peak_file_.empty()) {
    cg_kernel_peak_ = ReadUint(kernel_peak_file_);
  } else if (peak_fd_ >= 0) {
    char buffer[32] = {};
    const ssize_t n = ::pread(peak_fd_, buffer, sizeof(buffer) - 1, 0);
    uint64_t value = 0;
    if (n > 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buffer, n)), &value)) {
      cg_kernel_peak_ = value;
    }
    ::close(peak_fd_);
    peak_fd_ = -1;
  }
}

void MemorySampler::Record(const Recorder& rec, const std::string& variant) const {
  rec(variant, "peak_rss_mb", static_cast<double>(peak_rss_) / kMB);
  rec(variant, "baseline_rss_mb", static_cast<double>(baseline_rss_) / kMB);
  if (!usage_file_.empty()) {
    rec(variant, "cgroup_peak_mb", static_cast<double>(cg_peak_) / kMB);
    rec(variant, "cgroup_baseline_mb", static_cast<double>(cg_baseline_) / kMB);
    if (cg_kernel_peak_) {
      rec(variant, "cgroup_kernel_peak_mb", static_cast<double>(*cg_kernel_peak_) / kMB);
    }
  }
}

int RunBenchMain(int argc, char** argv, const char* program, const std::string& usage,
                 int (*run)(const BenchOptions&)) {
  const BenchOptions options = ParseBenchFlags(argc, argv, usage);
  InitFleetOrDie(options, program);
  const int rc = RunGuarded(program, [&] {
    WarmUp();
    return run(options);
  });
  fleet::Shutdown();
  return rc;
}

}  // namespace fleet::bench
