// fleet-bench-map: fleet::Map over 1,000,000 no-op items (issue 7: "Map 1M
// no-op ahead of joblib batch_size='auto' in the same run"; bench/run runs
// bench/peer_extra.py's joblib row beside it). The loop consumes the
// results in input order and checks each; tasks/s over the whole loop,
// one trial (a million unbatched tasks take tens of seconds on 2 cores).
// Also Q9: the CPU time of the scheduler, the workers and the client per
// item.
//
//   fleet-bench-map --address=HOST:PORT [--items=1000000] [--quick]
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(int64_t, items, 1'000'000, "Items to map (--quick: 1000).");

namespace fleet::bench {
namespace {

// One row of the table: a label and the options of fleet::Map.
struct MapVariant {
  std::string label;
  std::function<fleet::MapOptions()> options;
};

std::vector<MapVariant> Variants() {
  std::vector<MapVariant> variants = {
      // fleet::Map as a user writes it: automatic batching (batch_size 0)
      // sends cheap items to the function's batched form, many per task.
      {"Map(noop, items), automatic batching (default options)",
       [] {
         fleet::MapOptions o;
         o.show_progress = false;
         return o;
       }},
      // Fixed batches of 1,000 items, for comparison with the automatic size.
      {"Map(noop, items), batch_size=1000",
       [] {
         fleet::MapOptions o;
         o.show_progress = false;
         o.batch_size = 1000;
         return o;
       }},
  };
  // One task per item (batch_size=1) is M1's figure; at ~20-50k tasks/s a
  // million items would take most of bench/run's budget.
  return variants;
}

int Run(const BenchOptions& options) {
  const int64_t n = options.quick ? 1'000 : absl::GetFlag(FLAGS_items);
  if (n < 1) {
    std::fprintf(stderr, "fleet-bench-map: --items must be positive\n");
    return 2;
  }
  const Recorder rec("fleet", "MAP", options);
  std::vector<int64_t> items(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i;
  const std::string suffix = options.cluster.empty() ? "" : ", " + options.cluster;
  for (const MapVariant& v : Variants()) {
    const std::string variant = v.label + suffix;
    CpuMeter cpu(options);
    cpu.Start();
    Stopwatch clock;
    int64_t expected = 0;
    for (int64_t got : fleet::Map(fleet::examples::noop, items, v.options())) {
      if (got != expected) {
        std::fprintf(stderr, "fleet-bench-map: item %lld came back as %lld\n",
                     static_cast<long long>(expected), static_cast<long long>(got));
        return 1;
      }
      ++expected;
    }
    const double seconds = clock.Seconds();
    cpu.Stop();
    if (expected != n) {
      std::fprintf(stderr, "fleet-bench-map: %lld of %lld items came back\n",
                   static_cast<long long>(expected), static_cast<long long>(n));
      return 1;
    }
    rec(variant, "tasks_per_s", static_cast<double>(n) / seconds, 0, {{"items", n}});
    rec(variant, "wall_s", seconds, 0, {{"items", n}});
    cpu.Record(options, "Map: " + variant, static_cast<double>(n), 0);
    std::fprintf(stderr, "fleet-bench-map: %s: %lld items in %.3f s (%.0f items/s), checked\n",
                 v.label.c_str(), static_cast<long long>(n), seconds,
                 static_cast<double>(n) / seconds);
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-map",
      "fleet-bench-map --address=HOST:PORT [--items=N] [--quick]\nfleet::Map over 1,000,000 "
      "no-op items, items/s.",
      fleet::bench::Run);
}
