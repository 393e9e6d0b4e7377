// fleet-bench-big-args: Q4 of issue 7, tasks with a 1 MB argument and a
// 1 MB result. 200 tasks are submitted at once, each passing its own
// fleet::Array<double> of 125,000 doubles BY VALUE (the client Puts each one
// automatically: it is too large to travel inline), each returning an array
// of the same size (bench_plus_one) that the client fetches with Get;
// tasks/s and MB/s both ways, best of 3 trials. Every element of every
// result is checked.
//
//   fleet-bench-big-args --address=HOST:PORT [--quick]
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/common/bench_common.h"
#include "bench/tasks/bench_tasks.h"
#include "fleet/fleet.h"

namespace fleet::bench {
namespace {

constexpr std::size_t kElements = 125'000;  // 1 MB of doubles
constexpr int kTasks = 200;
constexpr int kTrials = 3;

int Run(const BenchOptions& options) {
  const int tasks = options.quick ? 10 : kTasks;
  const int trials = options.quick ? 1 : kTrials;
  std::string variant = "Remote(1 MB Array by value) x N + Get(vector)";
  if (!options.cluster.empty()) variant += ", " + options.cluster;
  const Recorder rec("fleet", "Q4", options);
  const auto plus_one = fleet::Task(bench_plus_one);
  fleet::Array<double> argument(kElements);
  for (int trial = 0; trial < trials; ++trial) {
    Stopwatch clock;
    std::vector<fleet::ObjectRef<fleet::Array<double>>> refs;
    refs.reserve(tasks);
    for (int i = 0; i < tasks; ++i) {
      // Serialized (and Put) by Remote, so one buffer serves every task.
      for (std::size_t j = 0; j < kElements; ++j) argument[j] = static_cast<double>(i + j);
      refs.push_back(plus_one.Remote(argument));
    }
    const std::vector<fleet::Array<double>> got = fleet::Get(refs);
    const double seconds = clock.Seconds();
    for (int i = 0; i < tasks; ++i) {
      bool ok = got[i].size() == kElements;
      for (std::size_t j = 0; ok && j < kElements; ++j) {
        ok = got[i][j] == static_cast<double>(i + j) + 1.0;
      }
      if (!ok) {
        std::fprintf(stderr, "fleet-bench-big-args: the result of task %d is wrong\n", i);
        return 1;
      }
    }
    const double mb = static_cast<double>(kElements * sizeof(double)) / kMB;
    rec(variant, "tasks_per_s", tasks / seconds, trial);
    rec(variant, "MB_per_s", 2 * mb * tasks / seconds, trial);  // in and out
    std::fprintf(stderr, "fleet-bench-big-args: trial %d: %d tasks in %.3f s (%.0f tasks/s)\n",
                 trial, tasks, seconds, tasks / seconds);
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-big-args",
      "fleet-bench-big-args --address=HOST:PORT [--quick]\nQ4: tasks with a 1 MB argument "
      "and a 1 MB result, tasks/s.",
      fleet::bench::Run);
}
