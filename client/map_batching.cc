// fleet::Map's batch sizing (MapOptions::batch_size and max_in_flight).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

#include "fleet/stream.h"

namespace fleet::internal {

BatchSizer::BatchSizer(const MapOptions& options, bool batchable,
                       std::chrono::milliseconds task_timeout)
    : fixed_(options.batch_size),
      max_in_flight_(options.max_in_flight),
      task_timeout_(task_timeout),
      batching_(batchable && options.batch_size != 1) {}

std::size_t BatchSizer::Size() const {
  if (!batching_) return 1;
  if (fixed_ > 0) return max_in_flight_ ? std::min(fixed_, *max_in_flight_) : fixed_;
  std::size_t size = size_;
  if (max_in_flight_) size = std::min(size, std::max<std::size_t>(1, *max_in_flight_ / 4));
  return size;
}

std::size_t BatchSizer::MaxInFlight() const {
  return max_in_flight_ ? *max_in_flight_ : kDefaultMaxInFlight * Size();
}

bool BatchSizer::UseBatchedForm(std::size_t inputs) {
  if (!batching_) return false;
  if (inputs > 1) return true;
  if (fixed_ > 0) return false;  // a fixed size's last, short batch
  // Automatic, one input: single inputs are slow (or not measured yet).
  // Keep one probe in flight now and then to see whether that changed.
  if (probe_in_flight_ || (measured_ && ++since_probe_ < kProbeInterval)) return false;
  probe_in_flight_ = true;
  since_probe_ = 0;
  return true;
}

void BatchSizer::Observe(std::size_t inputs, uint64_t elapsed_ns, std::size_t bytes) {
  if (inputs == 0) return;
  probe_in_flight_ = false;
  measured_ = true;
  if (fixed_ > 0) return;
  using std::chrono::nanoseconds;
  const double per_input_ns =
      std::max(1.0, static_cast<double>(elapsed_ns) / static_cast<double>(inputs));
  const double per_input_bytes =
      std::max(1.0, static_cast<double>(bytes) / static_cast<double>(inputs));
  // What fits the target time, the byte budget, a quarter of the timeout.
  double fits = static_cast<double>(nanoseconds(kTargetBatchTime).count()) / per_input_ns;
  fits = std::min(fits, static_cast<double>(kMaxBatchBytes) / per_input_bytes);
  if (task_timeout_.count() > 0) {
    fits = std::min(fits, static_cast<double>(nanoseconds(task_timeout_).count()) / 4 /
                              per_input_ns);
  }
  const std::size_t target = static_cast<std::size_t>(
      std::clamp(fits, 1.0, static_cast<double>(kMaxBatchItems)));
  // How long a batch of the current size takes.
  const double batch_ns = per_input_ns * static_cast<double>(size_);
  if (batch_ns < static_cast<double>(nanoseconds(kGrowBelow).count())) {
    size_ = std::min(target, 2 * size_);
  } else if (batch_ns > static_cast<double>(nanoseconds(kShrinkAbove).count())) {
    size_ = target;
  }
  // Other limits than time apply at once.
  const double bytes_fit = static_cast<double>(kMaxBatchBytes) / per_input_bytes;
  if (static_cast<double>(size_) > bytes_fit) size_ = target;
  size_ = std::clamp<std::size_t>(size_, 1, kMaxBatchItems);
}

void BatchSizer::BatchFailed(const std::string& kind) {
  probe_in_flight_ = false;
  if (kind == "function_not_found" || kind == "signature_mismatch" || kind == "bad_argument") {
    batching_ = false;  // the workers' function has no (matching) batched form
    return;
  }
  size_ = std::max<std::size_t>(1, size_ / 2);
}

}  // namespace fleet::internal
