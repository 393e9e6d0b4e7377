// Durations counted into fixed buckets, as a Prometheus histogram reports
// them (cumulative per upper bound, plus a sum and a count).
#ifndef FLEET_SCHEDULER_HISTOGRAM_H_
#define FLEET_SCHEDULER_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <cstdint>

namespace fleet::scheduler {

class DurationHistogram {
 public:
  // Upper bounds in seconds, from sub-millisecond tasks to long ones.
  static constexpr std::array<double, 16> kBounds = {
      0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,   0.5,   1,      2.5,   10,   60,    300};

  void Add(double seconds) {
    const auto bucket = std::lower_bound(kBounds.begin(), kBounds.end(), seconds);
    counts_[static_cast<std::size_t>(bucket - kBounds.begin())]++;
    sum_ += seconds;
    count_++;
  }

  // Observations up to kBounds[i] (i < kBounds.size()), not cumulative;
  // the last entry counts those above every bound.
  const std::array<uint64_t, kBounds.size() + 1>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::array<uint64_t, kBounds.size() + 1> counts_{};
  double sum_ = 0;
  uint64_t count_ = 0;
};

// What the scheduler measures per remote function.
struct FunctionStats {
  DurationHistogram run_time;    // reported by the worker, for tasks that returned
  DurationHistogram queue_wait;  // from ready (arguments there) to assigned
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_HISTOGRAM_H_
