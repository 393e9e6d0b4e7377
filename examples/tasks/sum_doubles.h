// The loop that reads every double of a buffer, shared by the in-place
// argument benchmark (a task) and the machine's read-rate floor, so that
// the two figures compare the same code.
#ifndef FLEET_BENCH_COMMON_READ_LOOP_H_
#define FLEET_BENCH_COMMON_READ_LOOP_H_

#include <cstddef>

namespace fleet::examples {

// Four independent sums (numpy's sum keeps several too), so that the loop is
// bound by reading memory and not by the latency of one chain of additions,
// which runs 3-4x slower.
inline double SumDoubles(const double* p, std::size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; ++i) s0 += p[i];
  return s0 + s1 + s2 + s3;
}

}  // namespace fleet::examples

#endif  // FLEET_EXAMPLES_TASKS_SUM_DOUBLES_H_
