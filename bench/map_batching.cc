// fleet-bench-map: issue 7's question, fleet::Map over many no-op inputs
// with automatic batching (MapOptions::batch_size = 0), against joblib's
// Parallel(batch_size='auto') on the same machine (bench/map_joblib.py).
//
//   MAP: N no-op inputs (examples' noop, returns its input) through
//        fleet::Map (input order) and fleet::MapUnordered, each result
//        checked; inputs/s, best of --trials. --batch_size=1 measures one
//        task per input, as before batching.
//
//   fleet-bench-map --address=HOST:PORT [--inputs=1000000] [--trials=3] [--batch_size=0]
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(int64_t, inputs, 1'000'000, "Inputs per trial.");
ABSL_FLAG(int, trials, 3, "Trials of each variant; the best is the figure.");
ABSL_FLAG(int64_t, batch_size, 0, "MapOptions::batch_size (0: automatic).");

namespace fleet::bench {
namespace {

int Run(const BenchOptions& options) {
  const Recorder rec("fleet", "MAP", options);
  const int64_t n = options.quick ? 20'000 : absl::GetFlag(FLAGS_inputs);
  const int trials = options.quick ? 1 : absl::GetFlag(FLAGS_trials);
  const auto batch_size = static_cast<std::size_t>(absl::GetFlag(FLAGS_batch_size));
  std::vector<int64_t> inputs(static_cast<std::size_t>(n));
  std::iota(inputs.begin(), inputs.end(), 0);
  const fleet::MapOptions map_options = {.show_progress = false, .batch_size = batch_size};
  const std::string suffix = " batch_size=" + std::to_string(batch_size) +
                             (options.cluster.empty() ? "" : ", " + options.cluster);
  for (int trial = 0; trial < trials; ++trial) {
    Stopwatch clock;
    int64_t expected = 0;
    for (int64_t v : fleet::Map(fleet::examples::noop, inputs, map_options)) {
      if (v != expected++) {
        std::fprintf(stderr, "fleet-bench-map: Map input %lld returned %lld\n",
                     static_cast<long long>(expected - 1), static_cast<long long>(v));
        return 1;
      }
    }
    double seconds = clock.Seconds();
    rec("Map" + suffix, "inputs_per_s", static_cast<double>(n) / seconds, trial);
    std::fprintf(stderr, "fleet-bench-map: Map trial %d: %lld inputs in %.3f s (%.0f/s)\n", trial,
                 static_cast<long long>(n), seconds, static_cast<double>(n) / seconds);

    Stopwatch unordered_clock;
    int64_t count = 0;
    for (auto& [i, v] : fleet::MapUnordered(fleet::examples::noop, inputs, map_options)) {
      if (v != inputs[i]) {
        std::fprintf(stderr, "fleet-bench-map: MapUnordered input %zu returned %lld\n", i,
                     static_cast<long long>(v));
        return 1;
      }
      ++count;
    }
    seconds = unordered_clock.Seconds();
    if (count != n) {
      std::fprintf(stderr, "fleet-bench-map: MapUnordered yielded %lld of %lld\n",
                   static_cast<long long>(count), static_cast<long long>(n));
      return 1;
    }
    rec("MapUnordered" + suffix, "inputs_per_s", static_cast<double>(n) / seconds, trial);
    std::fprintf(stderr,
                 "fleet-bench-map: MapUnordered trial %d: %lld inputs in %.3f s (%.0f/s)\n",
                 trial, static_cast<long long>(n), seconds, static_cast<double>(n) / seconds);
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-map",
      "fleet-bench-map --address=HOST:PORT [--inputs=N] [--trials=N] [--batch_size=N]",
      fleet::bench::Run);
}
