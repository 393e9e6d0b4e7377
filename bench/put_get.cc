// fleet-bench-put-get: Q5 of issue 7, Put and Get calls per second on
// small objects. Put 10,000 distinct 100-byte values (std::string), one
// call each, then Get each of them back, one call each; each rate over its
// own loop, best of 3 trials. Every value read back is compared with what
// was Put.
//
// A small object travels inline: Put hands it to the scheduler without
// waiting for an answer, and the client keeps the value, so a Get of this
// client's own small Put is answered without a round trip. A third row Gets
// small objects the client did not make (the results of finished no-op
// tasks, Wait-ed for first, so that only the Get is timed).
//
//   fleet-bench-put-get --address=HOST:PORT [--quick]
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/common/bench_common.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

namespace fleet::bench {
namespace {

constexpr int kObjects = 10'000;
constexpr std::size_t kValueBytes = 100;
constexpr int kTrials = 3;

std::string Value(int i) {
  std::string v = std::to_string(i);
  v.resize(kValueBytes, '.');
  return v;
}

int Run(const BenchOptions& options) {
  const int n = options.quick ? 100 : kObjects;
  const int trials = options.quick ? 1 : kTrials;
  const std::string suffix = options.cluster.empty() ? "" : ", " + options.cluster;
  const Recorder rec("fleet", "Q5", options);
  std::vector<std::string> values;
  for (int i = 0; i < n; ++i) values.push_back(Value(i));
  const auto noop = fleet::Task(fleet::examples::noop);
  for (int trial = 0; trial < trials; ++trial) {
    std::vector<fleet::ObjectRef<std::string>> refs;
    refs.reserve(n);
    Stopwatch put_clock;
    for (int i = 0; i < n; ++i) refs.push_back(fleet::Put(values[i]));
    const double put_s = put_clock.Seconds();
    Stopwatch get_clock;
    for (int i = 0; i < n; ++i) {
      if (refs[i].Get() != values[i]) {
        std::fprintf(stderr, "fleet-bench-put-get: object %d read back wrong\n", i);
        return 1;
      }
    }
    const double get_s = get_clock.Seconds();
    rec("Put, 100 B values" + suffix, "calls_per_s", n / put_s, trial);
    rec("Get of own Put, 100 B values" + suffix, "calls_per_s", n / get_s, trial);

    std::vector<fleet::ObjectRef<int64_t>> results;
    results.reserve(n);
    for (int64_t i = 0; i < n; ++i) results.push_back(noop.Remote(i));
    fleet::Wait(results, results.size());
    Stopwatch result_clock;
    for (int64_t i = 0; i < n; ++i) {
      if (results[i].Get() != i) {
        std::fprintf(stderr, "fleet-bench-put-get: task result %lld is wrong\n",
                     static_cast<long long>(i));
        return 1;
      }
    }
    const double result_s = result_clock.Seconds();
    rec("Get of finished task results (int64)" + suffix, "calls_per_s", n / result_s, trial);
    std::fprintf(stderr,
                 "fleet-bench-put-get: trial %d: %d Puts in %.3f s, %d Gets in %.3f s, %d result "
                 "Gets in %.3f s\n",
                 trial, n, put_s, n, get_s, n, result_s);
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-put-get",
      "fleet-bench-put-get --address=HOST:PORT [--quick]\nQ5: Put and Get calls per second, "
      "100-byte objects.",
      fleet::bench::Run);
}
