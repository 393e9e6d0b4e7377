// The seed workloads as remote functions: the task code that both the
// fleet-examples driver (which links it) and the workers (which load it with
// --task_lib=libfleet_examples.so) run. Each mirrors one workload of the
// Python baselines (peers/tasks.py), so that fleet can be compared with Dask,
// joblib, multiprocessing and ipyparallel on the same work.
#ifndef FLEET_EXAMPLES_TASKS_SEED_TASKS_H_
#define FLEET_EXAMPLES_TASKS_SEED_TASKS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fleet/serialization.h"

namespace fleet::examples {

// Elements of one complex_operation task, sized so that one task takes about
// 150 ms on the 2-core development VM (one exp + sinh pair costs ~17.5 ns
// there when the host is quiet), close to the 175 ms of the Python seed loop.
inline constexpr int64_t kComplexOperationElements = 8'500'000;

// Rows and columns of one return_big_object result: 2e6 doubles, 16 MB.
inline constexpr std::size_t kBigObjectRows = 10'000;
inline constexpr std::size_t kBigObjectCols = 200;

// The input of element `i` of complex_operation task `task_index`. Varies
// with both so that no call can be folded or memoized, and stays in
// [1, 1.85] so that exp(x) * sinh(x) stays far from overflow.
inline double ComplexOperationInput(int64_t i, int64_t task_index) {
  return 1.0 + 1e-7 * static_cast<double>(i + task_index);
}

// M1, the no-op task of the throughput benchmarks: returns `i`.
int64_t noop(int64_t i);

// W1, the CPU-bound seed loop: the sum over kComplexOperationElements
// elements of exp(x) * sinh(x), x = ComplexOperationInput(i, task_index).
double complex_operation(int task_index);

// W1 over a buffer of inputs built by the caller: the sum of
// exp(x) * sinh(x) over `xs`.
double complex_operation_vectorized(fleet::ArrayView<double> xs);

// W2, the joblib seed: sleeps 1 s, then returns the sum of squares of `row`.
double compute_heavy_task(std::vector<double> row);

// W3: a kBigObjectRows x kBigObjectCols array (row-major) whose every
// element is `i`.
fleet::Array<double> return_big_object(int i);

// W4: sleeps 10 ms, then returns the mean of data[start, end), reading the
// array in place in the worker's store (no copy per task). Throws
// std::out_of_range unless 0 <= start < end <= data.size().
double slow_mean(fleet::ArrayView<double> data, int64_t start, int64_t end);

}  // namespace fleet::examples

#endif  // FLEET_EXAMPLES_TASKS_SEED_TASKS_H_
