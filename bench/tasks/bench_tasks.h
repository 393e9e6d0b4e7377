// Remote functions of the benchmarks that the seed workloads
// (examples/tasks) do not provide. Workers load them with
// --task_lib=libfleet_bench_tasks.so beside libfleet_examples.so; the bench
// programs link this library.
#ifndef FLEET_BENCH_TASKS_BENCH_TASKS_H_
#define FLEET_BENCH_TASKS_BENCH_TASKS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fleet/serialization.h"

namespace fleet::bench {

// W3's result: 10000 x 200 doubles (16 MB), as peers/tasks.py w3 builds.
inline constexpr std::size_t kW3Elements = 10'000 * 200;

// W3, as peers/tasks.py w3: sleeps 100 ms, then returns kW3Elements copies
// of `i`.
fleet::Array<double> bench_w3_result(int64_t i);

// An array of `elements` copies of `value` (M3's "return 100 MB", and the
// producer of the cross-worker transfer).
fleet::Array<double> bench_make_array(int64_t elements, double value);

// What bench_sum_view measured, in the order of the returned vector.
struct SumReport {
  double sum = 0;
  double read_seconds = 0;  // the summing loop alone, timed inside the task
  int64_t pid = 0;          // the worker process that ran the task
  bool in_place = false;    // whether the argument was read where it lay (no copy)
};
// Reads every element of `data` and reports the sum and how long reading
// took. Encoded as {sum, read_seconds, pid, in_place} (see DecodeSumReport).
std::vector<double> bench_sum_view(fleet::ArrayView<double> data);
SumReport DecodeSumReport(const std::vector<double>& v);

// Keeps a slot of the worker that holds `data` busy for `ms` milliseconds
// (the scheduler places it there: the worker holds its argument), so that
// the next task on `data` goes to another worker. Returns this worker's pid.
int64_t bench_hold(fleet::ArrayView<double> data, int64_t ms);

// Q8's inner node: a + b (the arguments are the ObjectRefs of two earlier
// tasks, resolved on the cluster).
int64_t bench_add(int64_t a, int64_t b);

// Q4: takes an array by value (1 MB: the client Puts it automatically) and
// returns an array of the same size: each element plus one, so that the
// client can check that the bytes went both ways.
fleet::Array<double> bench_plus_one(fleet::Array<double> data);

}  // namespace fleet::bench

#endif  // FLEET_BENCH_TASKS_BENCH_TASKS_H_
