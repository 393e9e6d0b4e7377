// fleet-bench-seed: Q7 of issue 7, the seed workloads W1 and W2 of peers/
// with the seed task library (examples/tasks, libfleet_examples.so).
//
//   W1: 10 complex_operation tasks (the CPU-bound exp * sinh loop, ~150 ms
//       each), submitted at once, gathered. Just before, the same 10 calls
//       run one after another in this process (the serial reference, same
//       code), and each trial's parallel efficiency is its
//       serial / (slots x wall): 100 % is a perfect speed-up on the
//       cluster's `--slots` task slots. Every result is compared with the
//       serial one. Issue 7's target: >= 90 % on 2 workers x 1 slot.
//   W2: 10 compute_heavy_task tasks (sleep 1 s, then the sum of squares of
//       a 1000-element row), submitted at once, on 8 slots (2 workers x 4
//       slots); wall time, target <= 2.02 s (ideal 2 s: two waves).
//
// The peers' W1 is a Python loop over 1e6 elements (their serial time is
// their own reference); fleet's is C++ over 8.5e6, sized to take about as
// long, so wall times compare the systems only roughly: compare the
// efficiencies.
//
//   fleet-bench-seed --address=HOST:PORT [--slots=2] [--w1_tasks=10] [--w1_trials=2]
//                    [--w1_threads_reference] [--quick] [W1] [W2]   (default: both)
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(int, slots, 2, "The cluster's task slots in all (W1's efficiency divides by them).");
ABSL_FLAG(int, w1_tasks, 10,
          "W1's complex_operation tasks per trial (the seed's 10; a multiple of --slots keeps "
          "every slot busy to the end, as bench/scaling does).");
ABSL_FLAG(int, w1_trials, 2, "W1's trials.");
ABSL_FLAG(bool, w1_threads_reference, false,
          "Before each W1 cluster run, also run the same calls on --slots threads of this "
          "process (no fleet): the machine's own parallel efficiency for the kernel (shared "
          "cores, SMT, clock), which bounds fleet's.");

namespace fleet::bench {
namespace {

constexpr int kW2Tasks = 10;  // W2_TASKS
constexpr int kW2Columns = 1000;
constexpr int kTrials = 2;  // TRIALS

std::string Variant(const BenchOptions& options, std::string base) {
  if (!options.cluster.empty()) base += ", " + options.cluster;
  return base;
}

// The W1 calls on `threads` threads of this process, each taking the next
// call until none is left; returns the wall time, or -1 (after saying why)
// when a result differs from `want`.
double RunOnThreads(int tasks, int threads, const std::vector<double>& want) {
  std::atomic<int> next{0};
  std::atomic<bool> wrong{false};
  Stopwatch clock;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < tasks; i = next++) {
        const double got = fleet::examples::complex_operation(i);
        if (!(std::abs(got - want[i]) <= 1e-9 * std::abs(want[i]))) wrong = true;
      }
    });
  }
  for (std::thread& thread : pool) thread.join();
  const double wall = clock.Seconds();
  if (wrong) {
    std::fprintf(stderr, "fleet-bench-seed: W1 on threads differs from the serial run\n");
    return -1;
  }
  return wall;
}

int RunW1(const BenchOptions& options) {
  const Recorder rec("fleet", "W1", options);
  const int tasks = options.quick ? 2 : absl::GetFlag(FLAGS_w1_tasks);
  const int trials = options.quick ? 1 : absl::GetFlag(FLAGS_w1_trials);
  if (tasks < 1) {
    std::fprintf(stderr, "fleet-bench-seed: --w1_tasks must be at least 1, got %d\n", tasks);
    return 2;
  }
  const int slots = absl::GetFlag(FLAGS_slots);
  const std::string variant = Variant(options, "complex_operation x " + std::to_string(tasks));
  std::vector<double> want(tasks);
  const auto task = fleet::Task(fleet::examples::complex_operation);
  // Each trial times the serial reference just before the cluster run and
  // divides by that: on a shared virtual machine the speed of a core drifts
  // by tens of percent within a minute, and a serial time from another
  // moment would measure that drift, not fleet.
  for (int trial = 0; trial < trials; ++trial) {
    Stopwatch serial_clock;
    for (int i = 0; i < tasks; ++i) want[i] = fleet::examples::complex_operation(i);
    const double serial = serial_clock.Seconds();
    rec(variant, "serial_s", serial, trial);
    if (absl::GetFlag(FLAGS_w1_threads_reference)) {
      const double threads_wall = RunOnThreads(tasks, slots, want);
      if (threads_wall < 0) return 1;
      rec(variant, "threads_wall_s", threads_wall, trial);
      const double threads_efficiency = serial / (slots * threads_wall) * 100;
      rec(variant, "threads_efficiency_pct", threads_efficiency, trial, {{"slots", slots}});
      std::fprintf(stderr, "fleet-bench-seed: W1 trial %d: %.3f s on %d threads: efficiency %.1f %%\n",
                   trial, threads_wall, slots, threads_efficiency);
    }
    Stopwatch clock;
    std::vector<fleet::ObjectRef<double>> refs;
    for (int i = 0; i < tasks; ++i) refs.push_back(task.Remote(i));
    const std::vector<double> got = fleet::Get(refs);
    const double wall = clock.Seconds();
    for (int i = 0; i < tasks; ++i) {
      if (!(std::abs(got[i] - want[i]) <= 1e-9 * std::abs(want[i]))) {
        std::fprintf(stderr, "fleet-bench-seed: W1 task %d returned %.17g, expected %.17g\n", i,
                     got[i], want[i]);
        return 1;
      }
    }
    const double efficiency = serial / (slots * wall) * 100;
    rec(variant, "wall_s", wall, trial);
    rec(variant, "efficiency_pct", efficiency, trial, {{"slots", slots}});
    std::fprintf(stderr,
                 "fleet-bench-seed: W1 trial %d: %.3f s on %d slots, serial %.3f s: efficiency "
                 "%.1f %%\n",
                 trial, wall, slots, serial, efficiency);
  }
  return 0;
}

int RunW2(const BenchOptions& options) {
  const Recorder rec("fleet", "W2", options);
  const int tasks = options.quick ? 2 : kW2Tasks;
  const int trials = options.quick ? 1 : kTrials;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<std::vector<double>> rows(tasks, std::vector<double>(kW2Columns));
  std::vector<double> want(tasks, 0.0);
  for (int i = 0; i < tasks; ++i) {
    for (double& x : rows[i]) {
      x = uniform(rng);
      want[i] += x * x;
    }
  }
  const std::string variant =
      Variant(options, "compute_heavy_task x " + std::to_string(tasks));
  const auto task = fleet::Task(fleet::examples::compute_heavy_task);
  for (int trial = 0; trial < trials; ++trial) {
    Stopwatch clock;
    std::vector<fleet::ObjectRef<double>> refs;
    for (const auto& row : rows) refs.push_back(task.Remote(row));
    const std::vector<double> got = fleet::Get(refs);
    const double wall = clock.Seconds();
    for (int i = 0; i < tasks; ++i) {
      if (!(std::abs(got[i] - want[i]) <= 1e-9 * std::abs(want[i]))) {
        std::fprintf(stderr, "fleet-bench-seed: W2 task %d returned %.17g, expected %.17g\n", i,
                     got[i], want[i]);
        return 1;
      }
    }
    rec(variant, "wall_s", wall, trial);
    std::fprintf(stderr, "fleet-bench-seed: W2 trial %d: %d tasks in %.3f s\n", trial, tasks,
                 wall);
  }
  return 0;
}

int Run(const BenchOptions& options) {
  bool w1 = options.positional.empty(), w2 = options.positional.empty();
  for (const std::string& arg : options.positional) {
    if (arg == "W1") {
      w1 = true;
    } else if (arg == "W2") {
      w2 = true;
    } else {
      std::fprintf(stderr, "fleet-bench-seed: unknown workload %s (W1 or W2)\n", arg.c_str());
      return 2;
    }
  }
  if (w1) {
    if (int rc = RunW1(options); rc != 0) return rc;
  }
  if (w2) {
    if (int rc = RunW2(options); rc != 0) return rc;
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-seed",
      "fleet-bench-seed --address=HOST:PORT [--slots=N] [--quick] [W1] [W2]\nW1: 10 CPU-bound "
      "tasks, wall time and parallel efficiency; W2: 10 x (sleep 1 s + sum of squares).",
      fleet::bench::Run);
}
