// fleet-bench-w3: W3 of peers/: 150 tasks each return 16 MB (10000 x 200
// doubles, after a 0.1 s sleep); the caller sums them as they complete and
// drops each result once summed. Measures the wall time and the memory the
// whole system under test (scheduler, workers and this client) grows by.
//
//   fleet-bench-w3 --address=HOST:PORT --mode=as_completed|wait|map_unordered
//                  [--read=view|get] [--system_pids=SCHED,W1,W2] [--cgroup=DIR]
//                  [--quick]
//
// Run it on a fresh cluster per mode: a store keeps its pages once touched,
// so a second measurement on the same cluster would start from a higher
// baseline and grow less.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "bench/tasks/bench_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(std::string, mode, "as_completed",
          "How the results are consumed as they complete: as_completed (all submitted, then "
          "fleet::AsCompleted), wait (all submitted, then fleet::Wait with num_returns=1 in a "
          "loop) or map_unordered (fleet::MapUnordered with --max_in_flight).");
ABSL_FLAG(int, max_in_flight, 4, "--mode=map_unordered: MapOptions::max_in_flight.");
ABSL_FLAG(std::string, read, "view",
          "--mode=as_completed and wait: how a result is read: view (ObjectRef::GetView, in "
          "place in the worker's store when on this host) or get (ObjectRef::Get, a copy).");

namespace fleet::bench {
namespace {

constexpr int kTasks = 150;
constexpr int kQuickTasks = 6;

// Adds `result` into `total`; both have kW3Elements elements.
void Accumulate(const fleet::ArrayView<double>& result, std::vector<double>& total) {
  if (result.size() != total.size()) {
    std::fprintf(stderr, "fleet-bench-w3: a result has %zu elements, expected %zu\n", result.size(),
                 total.size());
    std::exit(1);
  }
  for (std::size_t i = 0; i < total.size(); ++i) total[i] += result[i];
}

// Adds the value of `ref` into `total`, read in place or as a copy.
void Accumulate(const fleet::ObjectRef<fleet::Array<double>>& ref, bool view,
                std::vector<double>& total) {
  if (view) {
    Accumulate(ref.GetView(), total);
  } else {
    const fleet::Array<double> copy = ref.Get();
    Accumulate(copy, total);
  }
}

// Sums the results in the order they complete with fleet::AsCompleted,
// which drops each ref once it has been yielded.
void SumAsCompleted(std::vector<fleet::ObjectRef<fleet::Array<double>>> refs, bool view,
                    std::vector<double>& total) {
  for (auto& done : fleet::AsCompleted(std::move(refs))) Accumulate(done, view, total);
}

// The same with fleet::Wait: take one ready ref at a time, sum it, drop it.
void SumWithWait(std::vector<fleet::ObjectRef<fleet::Array<double>>> refs, bool view,
                 std::vector<double>& total) {
  while (!refs.empty()) {
    auto [ready, pending] = fleet::Wait(refs, 1);
    refs = std::move(pending);
    for (auto& ref : ready) {
      Accumulate(ref, view, total);
      ref = {};  // drop it now, not at the end of the batch
    }
  }
}

// Submits as the loop takes results, never more than `max_in_flight` out.
void SumMapUnordered(int tasks, int max_in_flight, std::vector<double>& total) {
  std::vector<int64_t> inputs;
  for (int64_t i = 0; i < tasks; ++i) inputs.push_back(i);
  fleet::MapOptions options;
  options.max_in_flight = static_cast<std::size_t>(max_in_flight);
  for (auto& [index, result] : fleet::MapUnordered(bench_w3_result, inputs, options)) {
    Accumulate(result, total);
  }
}

int Run(const BenchOptions& options) {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const int max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  if (mode != "as_completed" && mode != "wait" && mode != "map_unordered") {
    std::fprintf(stderr, "fleet-bench-w3: --mode must be as_completed, wait or map_unordered\n");
    return 2;
  }
  if (max_in_flight < 1) {
    std::fprintf(stderr, "fleet-bench-w3: --max_in_flight must be at least 1\n");
    return 2;
  }
  const std::string read = absl::GetFlag(FLAGS_read);
  if (read != "view" && read != "get") {
    std::fprintf(stderr, "fleet-bench-w3: --read must be view or get\n");
    return 2;
  }
  const bool view = read == "view";
  const int tasks = options.quick ? kQuickTasks : kTasks;
  const std::string how = view ? " + GetView" : " + Get";
  std::string variant = mode == "as_completed" ? "AsCompleted" + how
                        : mode == "wait"
                            ? "Wait(num_returns=1) loop" + how
                            : "MapUnordered(max_in_flight=" + std::to_string(max_in_flight) + ")";
  if (!options.cluster.empty()) variant += ", " + options.cluster;
  const Recorder rec("fleet", "W3", options);
  const auto task = fleet::Task(bench_w3_result);

  std::vector<double> total(kW3Elements, 0.0);
  MemorySampler memory(options.system_pids, options.cgroup);
  memory.Start();
  Stopwatch clock;
  if (mode == "map_unordered") {
    SumMapUnordered(tasks, max_in_flight, total);
  } else {
    std::vector<fleet::ObjectRef<fleet::Array<double>>> refs;
    refs.reserve(tasks);
    for (int i = 0; i < tasks; ++i) refs.push_back(task.Remote(static_cast<int64_t>(i)));
    if (mode == "as_completed") {
      SumAsCompleted(std::move(refs), view, total);
    } else {
      SumWithWait(std::move(refs), view, total);
    }
  }
  const double wall = clock.Seconds();
  memory.Stop();

  // Every element is 0 + 1 + ... + (tasks - 1): each result counted once.
  const double want = static_cast<double>(tasks) * (tasks - 1) / 2;
  for (std::size_t i = 0; i < total.size(); ++i) {
    if (total[i] != want) {
      std::fprintf(stderr, "fleet-bench-w3: element %zu of the sum is %.17g, expected %.17g\n", i,
                   total[i], want);
      return 1;
    }
  }
  rec(variant, "wall_s", wall);
  memory.Record(rec, variant);
  std::fprintf(stderr, "fleet-bench-w3: %s: %d x 16 MB summed in %.3f s, sum checked\n",
               variant.c_str(), tasks, wall);
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-w3",
      "fleet-bench-w3 --address=HOST:PORT [--mode=as_completed|wait|map_unordered] "
      "[--read=view|get] [--max_in_flight=N] [--cgroup=DIR] "
      "[--system_pids=P,P,P] [--quick]\nW3: 150 tasks returning 16 MB each, summed as they "
      "complete; wall time and memory growth of the whole system.",
      fleet::bench::Run);
}
