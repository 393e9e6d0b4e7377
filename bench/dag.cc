// fleet-bench-dag: Q8 of issue 7, a 100,000-task DAG end to end: a binary
// reduction tree. 50,000 leaf tasks (noop(i), returning i), then pairwise
// bench_add tasks, each taking the ObjectRefs of two tasks of the level
// below (resolved on the cluster: the client never sees the partial sums),
// level by level up to one result: 99,999 tasks in all. Everything is
// submitted at once (the client's submit window applies back-pressure);
// the wall time runs from the first submission to the final Get, and the
// sum is checked. Tasks/s, wall time, best of 2 trials; also Q9: the CPU
// time of the scheduler, the workers and the client per task.
//
//   fleet-bench-dag --address=HOST:PORT [--leaves=50000] [--quick]
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "bench/tasks/bench_tasks.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(int64_t, leaves, 50'000, "Leaf tasks of the reduction tree (--quick: 500).");

namespace fleet::bench {
namespace {

constexpr int kTrials = 2;

int Run(const BenchOptions& options) {
  const int64_t leaves = options.quick ? 500 : absl::GetFlag(FLAGS_leaves);
  if (leaves < 1) {
    std::fprintf(stderr, "fleet-bench-dag: --leaves must be positive\n");
    return 2;
  }
  const int trials = options.quick ? 1 : kTrials;
  const int64_t tasks = 2 * leaves - 1;
  std::string variant = "binary reduction tree, " + std::to_string(leaves) + " leaves, " +
                        std::to_string(tasks) + " tasks";
  if (!options.cluster.empty()) variant += ", " + options.cluster;
  const Recorder rec("fleet", "Q8", options);
  const auto leaf = fleet::Task(fleet::examples::noop);
  const auto add = fleet::Task(bench_add);
  const int64_t want = leaves * (leaves - 1) / 2;
  CpuMeter cpu(options);
  for (int trial = 0; trial < trials; ++trial) {
    cpu.Start();
    Stopwatch clock;
    std::vector<fleet::ObjectRef<int64_t>> level;
    level.reserve(leaves);
    for (int64_t i = 0; i < leaves; ++i) level.push_back(leaf.Remote(i));
    while (level.size() > 1) {
      std::vector<fleet::ObjectRef<int64_t>> next;
      next.reserve((level.size() + 1) / 2);
      for (std::size_t i = 0; i + 1 < level.size(); i += 2) {
        next.push_back(add.Remote(level[i], level[i + 1]));
      }
      if (level.size() % 2 == 1) next.push_back(level.back());  // carried up a level
      level = std::move(next);
    }
    const int64_t sum = level[0].Get();
    const double seconds = clock.Seconds();
    cpu.Stop();
    if (sum != want) {
      std::fprintf(stderr, "fleet-bench-dag: the tree's sum is %lld, expected %lld\n",
                   static_cast<long long>(sum), static_cast<long long>(want));
      return 1;
    }
    rec(variant, "tasks_per_s", static_cast<double>(tasks) / seconds, trial);
    rec(variant, "wall_s", seconds, trial);
    cpu.Record(options, "Q8: " + variant, static_cast<double>(tasks), trial);
    std::fprintf(stderr, "fleet-bench-dag: trial %d: %lld tasks in %.3f s (%.0f tasks/s), sum ok\n",
                 trial, static_cast<long long>(tasks), seconds,
                 static_cast<double>(tasks) / seconds);
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-dag",
      "fleet-bench-dag --address=HOST:PORT [--leaves=N] [--quick]\nQ8: a binary reduction "
      "tree of 2 x leaves - 1 tasks, end to end.",
      fleet::bench::Run);
}
