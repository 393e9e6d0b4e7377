// fleet-bench-tasks: the cost of a task itself, as M1 and M2 of peers/.
//
//   M1: 20,000 no-op tasks (examples' noop) submitted at once, one future
//       each, then gathered; tasks/s, best of 3 trials. Also Q9: the CPU
//       time of the scheduler, the workers and this client per task.
//   M2: 1,000 sequential round trips, Task(noop).Remote(i).Get(), after 50
//       warm-up calls; median and p99 in µs. fleet-bench-floor measures a
//       bare gRPC ping-pong between two processes in the same run. The
//       variant says whether the client reached the scheduler through its
//       unix socket (common/scheduler_socket.h) or over TCP.
//
//   fleet-bench-tasks --address=HOST:PORT [--quick] [M1] [M2]   (default: both)
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/common/bench_common.h"
#include "common/scheduler_socket.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

namespace fleet::bench {
namespace {

constexpr int kM1Tasks = 20'000;  // M1_TASKS
constexpr int kM1Trials = 3;      // M1_TRIALS
constexpr int kM2Calls = 1'000;   // M2_CALLS
constexpr int kM2WarmUp = 50;

std::string Variant(const BenchOptions& options, std::string base) {
  if (!options.cluster.empty()) base += ", " + options.cluster;
  return base;
}

int RunM1(const BenchOptions& options) {
  const Recorder rec("fleet", "M1", options);
  const int tasks = options.quick ? 200 : kM1Tasks;
  const int trials = options.quick ? 1 : kM1Trials;
  const std::string variant = Variant(options, "Remote x N + Get(vector)");
  const auto noop = fleet::Task(fleet::examples::noop);
  CpuMeter cpu(options);  // Q9: the CPU time each process spends per task
  for (int trial = 0; trial < trials; ++trial) {
    cpu.Start();
    Stopwatch clock;
    std::vector<fleet::ObjectRef<int64_t>> refs;
    refs.reserve(tasks);
    for (int64_t i = 0; i < tasks; ++i) refs.push_back(noop.Remote(i));
    const std::vector<int64_t> got = fleet::Get(refs);
    const double seconds = clock.Seconds();
    cpu.Stop();
    for (int64_t i = 0; i < tasks; ++i) {
      if (got[i] != i) {
        std::fprintf(stderr, "fleet-bench-tasks: M1 task %lld returned %lld\n",
                     static_cast<long long>(i), static_cast<long long>(got[i]));
        return 1;
      }
    }
    rec(variant, "tasks_per_s", tasks / seconds, trial);
    cpu.Record(options, "M1: " + variant, tasks, trial);
    std::fprintf(stderr, "fleet-bench-tasks: M1 trial %d: %d no-ops in %.3f s (%.0f tasks/s)\n",
                 trial, tasks, seconds, tasks / seconds);
  }
  return 0;
}

int RunM2(const BenchOptions& options) {
  const Recorder rec("fleet", "M2", options);
  const int calls = options.quick ? 20 : kM2Calls;
  // bench/report.py compares it with the ping-pong over the same transport.
  const bool over_unix_socket = SchedulerChannelTarget(options.address) != options.address;
  const std::string variant =
      Variant(options, over_unix_socket ? "Remote(i).Get(), same host (the scheduler's unix socket)"
                                        : "Remote(i).Get(), over TCP");
  const auto noop = fleet::Task(fleet::examples::noop);
  for (int64_t i = 0; i < kM2WarmUp; ++i) noop.Remote(i).Get();
  std::vector<double> samples;
  samples.reserve(calls);
  for (int64_t i = 0; i < calls; ++i) {
    Stopwatch clock;
    const int64_t got = noop.Remote(i).Get();
    samples.push_back(clock.Seconds());
    if (got != i) {
      std::fprintf(stderr, "fleet-bench-tasks: M2 call %lld returned %lld\n",
                   static_cast<long long>(i), static_cast<long long>(got));
      return 1;
    }
  }
  const LatencyStats stats = ComputeLatency(samples);
  rec(variant, "median_us", stats.median_us);
  rec(variant, "p99_us", stats.p99_us);
  std::fprintf(stderr, "fleet-bench-tasks: M2: median %.0f us, p99 %.0f us over %d calls\n",
               stats.median_us, stats.p99_us, calls);
  return 0;
}

int Run(const BenchOptions& options) {
  bool m1 = options.positional.empty(), m2 = options.positional.empty();
  for (const std::string& name : options.positional) {
    if (name == "M1") {
      m1 = true;
    } else if (name == "M2") {
      m2 = true;
    } else {
      std::fprintf(stderr, "fleet-bench-tasks: unknown workload \"%s\" (M1 or M2)\n", name.c_str());
      return 2;
    }
  }
  if (m1) {
    if (int rc = RunM1(options); rc != 0) return rc;
  }
  if (m2) {
    if (int rc = RunM2(options); rc != 0) return rc;
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-tasks",
      "fleet-bench-tasks --address=HOST:PORT [--quick] [M1] [M2]\nM1: no-op task throughput; "
      "M2: synchronous round trip.",
      fleet::bench::Run);
}
