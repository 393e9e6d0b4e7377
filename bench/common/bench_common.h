// What every benchmark program shares: its command line, the JSON-lines
// record of its figures (the fields of peers/common.py's Recorder, so that
// bench/report.py merges fleet's figures with the Python peers'), clocks,
// latency percentiles and the memory sampler of the system under test.
#ifndef FLEET_BENCH_COMMON_BENCH_COMMON_H_
#define FLEET_BENCH_COMMON_BENCH_COMMON_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"

namespace fleet::bench {

inline constexpr double kMB = 1e6;  // as the peers: MB = 10^6 bytes
inline constexpr double kGB = 1e9;

// The flags every program takes (see ParseBenchFlags).
struct BenchOptions {
  std::string address;                  // --address: the scheduler, host:port
  std::string out;                      // --out: JSONL file to append to ("" = stdout only)
  std::string round;                    // --round: label stored with every figure
  std::string cluster;                  // --cluster: the cluster's shape, e.g. "2 workers x 1 slot"
  bool quick = false;                   // --quick: small sizes, a correctness smoke
  std::vector<pid_t> system_pids;       // --system_pids: scheduler and workers
  std::string cgroup;                   // --cgroup: memory cgroup holding the whole system
  std::vector<std::string> positional;  // arguments after the program name
};

// Parses the common flags (and any the program defines with ABSL_FLAG);
// exits with a usage message on a bad command line.
BenchOptions ParseBenchFlags(int argc, char** argv, const std::string& usage);

// fleet::Init against options.address; prints the reason and exits 1 when
// the cluster cannot be reached.
void InitFleetOrDie(const BenchOptions& options, const char* program);

// Runs a few no-op tasks and waits for them, as the peers warm their
// workers before timing anything.
void WarmUp();

// Runs `body` and returns its exit status; a fleet::Error (a failed task,
// a lost cluster) or any other exception is printed and exits 1.
int RunGuarded(const char* program, const std::function<int()>& body);

// The whole main() of a program that measures a cluster: parses the flags
// (`usage` for --help), connects, warms the cluster up, runs `run` guarded
// as above, and disconnects. Returns the exit code.
int RunBenchMain(int argc, char** argv, const char* program, const std::string& usage,
                 int (*run)(const BenchOptions&));

// Appends one JSON line per figure to stdout and to options.out:
//   {"system": ..., "workload": ..., "variant": ..., "metric": ..., "value": ...,
//    "round": ..., "trial": ..., "cluster": ..., "source": "bench"}
// ("source" tells bench/report.py these from the peers' own figures).
// Thread-compatible.
class Recorder {
 public:
  Recorder(std::string system, std::string workload, const BenchOptions& options);

  void operator()(const std::string& variant, const std::string& metric, double value,
                  int trial = 0, const nlohmann::json& extra = nlohmann::json::object()) const;
  // A figure that could not be measured, with the reason (peers' "unsupported").
  void Unsupported(const std::string& variant, const std::string& reason) const;

 private:
  void Write(nlohmann::json record) const;

  std::string system_;
  std::string workload_;
  std::string out_;
  std::string round_;
  std::string cluster_;
};

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// Median and 99th percentile in microseconds, computed exactly as
// peers/common.py latency_stats does.
struct LatencyStats {
  double median_us = 0;
  double p99_us = 0;
};
LatencyStats ComputeLatency(std::vector<double> samples_seconds);

// Resident set size of `roots` and all their descendants, in bytes, as
// psutil's memory_info().rss summed over the tree (peers/common.py
// tree_rss): shared pages count once per process that maps them.
uint64_t TreeRssBytes(const std::vector<pid_t>& roots);

// The memory-usage file of a cgroup directory (v2 memory.current or v1
// memory.usage_in_bytes), or "" when it has neither.
std::string CgroupUsageFile(const std::string& cgroup_dir);

// CPU time (user + system, seconds) that `pid` has used, plus what its
// children that it waited for used (cutime + cstime, so that executor
// processes that already exited still count); with `descendants`, also
// every live descendant's. 0 when the process is gone. Resolution: one
// clock tick (10 ms), so measure thousands of tasks at a time.
double CpuSeconds(pid_t pid, bool descendants);

// Q9: the CPU time each part of the system spends per task over one
// measurement. The scheduler is options.system_pids[0] (bench/run passes
// the scheduler first), the workers the rest (with their executor
// processes), the client this process (and its children).
class CpuMeter {
 public:
  explicit CpuMeter(const BenchOptions& options);
  void Start();
  void Stop();
  // Records scheduler_us_per_task, workers_us_per_task and
  // client_us_per_task under workload Q9 and `variant`; nothing without
  // --system_pids.
  void Record(const BenchOptions& options, const std::string& variant, double tasks,
              int trial) const;
  double SchedulerSeconds() const { return scheduler_; }

 private:
  std::vector<pid_t> pids_;
  double scheduler_ = 0, workers_ = 0, client_ = 0;  // used between Start and Stop
};

// Samples the memory of the system under test every 50 ms on a thread, as
// peers/common.py PeakRSS does: the process-tree RSS of this process plus
// `system_pids`, and, when a cgroup is given, its usage (shared memory
// counted once). Also reads the kernel's own high-water mark of the cgroup
// (v1 memory.max_usage_in_bytes, reset at Start; v2 memory.peak, reset at
// Start where the kernel allows it), which sees what 50 ms samples miss.
class MemorySampler {
 public:
  MemorySampler(std::vector<pid_t> system_pids, std::string cgroup_dir);
  ~MemorySampler();
  MemorySampler(const MemorySampler&) = delete;
  MemorySampler& operator=(const MemorySampler&) = delete;

  void Start();
  void Stop();
  // Records peak_rss_mb, baseline_rss_mb and, with a cgroup, cgroup_peak_mb,
  // cgroup_baseline_mb and cgroup_kernel_peak_mb under `variant`.
  void Record(const Recorder& rec, const std::string& variant) const;

 private:
  void Sample();

  std::vector<pid_t> roots_;
  std::string cgroup_dir_;
  std::string usage_file_;
  std::string kernel_peak_file_;  // v1, reset at Start
  int peak_fd_ = -1;              // v2 memory.peak, reset through this descriptor
  uint64_t baseline_rss_ = 0, peak_rss_ = 0;
  uint64_t cg_baseline_ = 0, cg_peak_ = 0;
  std::optional<uint64_t> cg_kernel_peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace fleet::bench

#endif  // FLEET_BENCH_COMMON_BENCH_COMMON_H_
