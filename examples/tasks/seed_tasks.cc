#include "examples/tasks/seed_tasks.h"

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>

#include "examples/tasks/sum_doubles.h"
#include "fleet/remote.h"

namespace fleet::examples {

int64_t noop(int64_t i) { return i; }
FLEET_REMOTE(noop);

double complex_operation(int task_index) {
  double sum = 0;
  for (int64_t i = 0; i < kComplexOperationElements; ++i) {
    const double x = ComplexOperationInput(i, task_index);
    sum += std::exp(x) * std::sinh(x);
  }
  return sum;
}
FLEET_REMOTE(complex_operation);

double complex_operation_vectorized(fleet::ArrayView<double> xs) {
  double sum = 0;
  for (double x : xs) sum += std::exp(x) * std::sinh(x);
  return sum;
}
FLEET_REMOTE(complex_operation_vectorized);

double compute_heavy_task(std::vector<double> row) {
  std::this_thread::sleep_for(std::chrono::seconds(1));
  double sum = 0;
  for (double v : row) sum += v * v;
  return sum;
}
FLEET_REMOTE(compute_heavy_task);

fleet::Array<double> return_big_object(int i) {
  return fleet::Array<double>(kBigObjectRows * kBigObjectCols, static_cast<double>(i));
}
FLEET_REMOTE(return_big_object);

double slow_mean(fleet::ArrayView<double> data, int64_t start, int64_t end) {
  // A bad window is the caller's bug; say which instead of reading past the
  // end, and let the task fail with it.
  if (start < 0 || start >= end || static_cast<uint64_t>(end) > data.size()) {
    throw std::out_of_range("slow_mean: window [" + std::to_string(start) + ", " +
                            std::to_string(end) + ") is not inside an array of " +
                            std::to_string(data.size()) + " elements");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::size_t n = static_cast<std::size_t>(end - start);
  return SumDoubles(data.data() + start, n) / static_cast<double>(n);
}
FLEET_REMOTE(slow_mean);

}  // namespace fleet::examples
