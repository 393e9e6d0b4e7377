// Events per second over the last minute (tasks finished, for the
// throughput figures of /status and `fleet status`): one counter per
// second in a ring.
//
// Thread-compatible.
#ifndef FLEET_SCHEDULER_RATE_METER_H_
#define FLEET_SCHEDULER_RATE_METER_H_

#include <algorithm>
#include <array>
#include <cstdint>

#include "absl/time/time.h"

namespace fleet::scheduler {

class RateMeter {
 public:
  static constexpr int64_t kWindowSeconds = 60;

  explicit RateMeter(absl::Time start) : start_(start) {}

  void Add(absl::Time at, uint64_t count = 1) {
    const int64_t second = SecondOf(at);
    Bucket& bucket = buckets_[Index(second)];
    if (bucket.second != second) bucket = Bucket{.second = second, .count = 0};
    bucket.count += count;
  }

  // Mean events per second over the last `window_seconds` whole seconds
  // before `now` (at most kWindowSeconds; fewer while the meter is younger).
  // The second in progress is left out: it would read low.
  double PerSecond(absl::Time now, int64_t window_seconds) const {
    const int64_t current = SecondOf(now);
    const int64_t seconds = std::min({window_seconds, kWindowSeconds, current});
    if (seconds <= 0) return 0;
    uint64_t sum = 0;
    for (int64_t s = current - seconds; s < current; ++s) {
      const Bucket& bucket = buckets_[Index(s)];
      if (bucket.second == s) sum += bucket.count;
    }
    return static_cast<double>(sum) / static_cast<double>(seconds);
  }

 private:
  struct Bucket {
    int64_t second = -1;  // which second since start it counts
    uint64_t count = 0;
  };

  int64_t SecondOf(absl::Time t) const {
    return std::max<int64_t>(0, absl::ToInt64Seconds(t - start_));
  }
  static std::size_t Index(int64_t second) {
    return static_cast<std::size_t>(second % (kWindowSeconds + 1));
  }

  const absl::Time start_;
  std::array<Bucket, kWindowSeconds + 1> buckets_ = {};
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_RATE_METER_H_
