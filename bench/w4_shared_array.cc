// fleet-bench-w4: W4 of peers/: one 80 MB array (10,000,000 doubles) is
// placed in the cluster once (built in a worker's store with
// fleet::ArrayBuilder and sealed, or fleet::Put), then 95 slow_mean tasks
// (examples/tasks: sleep 10 ms, mean of a 500,000-element window, read in
// place through fleet::ArrayView) run over the windows of peers/common.py
// w4_slices. The wall time includes the Seal or Put, as the peers' includes
// their scatter, push or fork; making the data is timed for nobody.
//
//   fleet-bench-w4 --address=HOST:PORT [--placement=builder|put] [--quick]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(std::string, placement, "builder",
          "How the array gets into the cluster: builder (fleet::ArrayBuilder, written in a "
          "same-host worker's store, then sealed) or put (fleet::Put of a fleet::Array).");

namespace fleet::bench {
namespace {

constexpr int64_t kElements = 10'000'000;  // W4_N
constexpr int64_t kWindow = 500'000;       // W4_WINDOW
constexpr int64_t kStep = 100'000;         // W4_STEP
constexpr int kTrials = 2;                 // TRIALS in peers/common.py
constexpr double kRelativeTolerance = 1e-9;

int Run(const BenchOptions& options) {
  // --quick: the same 95 windows over an array a tenth the size.
  const int64_t scale = options.quick ? 10 : 1;
  const int64_t n = kElements / scale, window = kWindow / scale, step = kStep / scale;
  const int trials = options.quick ? 1 : kTrials;
  const std::string placement_mode = absl::GetFlag(FLAGS_placement);
  if (placement_mode != "builder" && placement_mode != "put") {
    std::fprintf(stderr, "fleet-bench-w4: --placement must be builder or put\n");
    return 2;
  }
  const bool builder = placement_mode == "builder";
  std::string variant = builder ? "ArrayBuilder in the store + ArrayView" : "Put once + ArrayView";
  if (!options.cluster.empty()) variant += ", " + options.cluster;
  const Recorder rec("fleet", "W4", options);

  // Uniform [0, 1), as np.random.rand (other values, same distribution).
  fleet::Array<double> data(static_cast<std::size_t>(n));
  std::mt19937_64 rng(0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (double& x : data) x = uniform(rng);
  std::vector<int64_t> starts;
  for (int64_t s = 0; s < n - window; s += step) starts.push_back(s);
  std::vector<double> want;
  for (int64_t s : starts) {
    double sum = 0;
    for (int64_t i = s; i < s + window; ++i) sum += data[static_cast<std::size_t>(i)];
    want.push_back(sum / static_cast<double>(window));
  }

  const auto task = fleet::Task(fleet::examples::slow_mean);
  for (int trial = 0; trial < trials; ++trial) {
    // The builder variant writes the array where it will be stored, as the
    // data is made (copied from `data` here: making it is not timed, for
    // either variant), and times the Seal.
    std::optional<fleet::ArrayBuilder<double>> built;
    if (builder) {
      built.emplace(data.size());
      std::copy(data.begin(), data.end(), built->begin());
    }
    Stopwatch clock;
    auto ref = builder ? std::move(*built).Seal() : fleet::Put(data);
    const double placement = clock.Seconds();
    std::vector<fleet::ObjectRef<double>> refs;
    refs.reserve(starts.size());
    for (int64_t s : starts) refs.push_back(task.Remote(ref, s, s + window));
    const std::vector<double> got = fleet::Get(refs);
    const double wall = clock.Seconds();
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (!(std::abs(got[i] - want[i]) <= kRelativeTolerance * std::abs(want[i]))) {
        std::fprintf(stderr, "fleet-bench-w4: window %zu: mean %.17g, expected %.17g\n", i, got[i],
                     want[i]);
        return 1;
      }
    }
    rec(variant, "wall_s", wall, trial);
    rec(variant, "placement_s", placement, trial);
    std::fprintf(stderr, "fleet-bench-w4: trial %d: %zu windows in %.3f s (%s %.3f s), checked\n",
                 trial, starts.size(), wall, builder ? "Seal" : "Put", placement);
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-w4",
      "fleet-bench-w4 --address=HOST:PORT [--quick]\nW4: 95 slow_mean tasks over one Put "
      "80 MB array; wall time.",
      fleet::bench::Run);
}
