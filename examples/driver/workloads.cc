#include "examples/driver/workloads.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

namespace fleet::examples {
namespace {

// Workload sizes: those of the Python baselines (peers/common.py), so that
// the figures compare with theirs (W3 runs fewer tasks: 20 x 16 MB).
constexpr int kNoopTasks = 10'000;
constexpr int kComplexOperationTasks = 10;
constexpr int kComputeHeavyTasks = 10;
constexpr int kComputeHeavyRowLength = 1000;
constexpr int kBigObjectTasks = 20;
constexpr int64_t kSlowMeanElements = 10'000'000;
constexpr int64_t kSlowMeanWindow = 500'000;
constexpr int64_t kSlowMeanStep = 100'000;
static_assert(kSlowMeanWindow % kSlowMeanStep == 0,
              "the expected means are built from step-sized blocks");

// Largest relative error accepted between a floating-point result and its
// expected value. Both sides sum millions of terms in different orders; a
// naive sum of n positive terms is within n * 2^-53 (4.4e-10 for 4e6 terms)
// of the exact sum, so 1e-9 catches any wrong term and no rounding.
constexpr double kRelativeTolerance = 1e-9;

constexpr double kMegabyte = 1e6;

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  absl::Duration Elapsed() const {
    return absl::FromChrono(std::chrono::steady_clock::now() - start_);
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

double RelativeError(double got, double want) {
  if (got == want) return 0;
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

// Compares the results of `name`'s tasks with the expected values; `max_error`
// gets the largest relative error seen.
absl::Status CheckClose(const std::string& name, const std::vector<double>& got,
                        const std::vector<double>& want, double& max_error) {
  if (got.size() != want.size()) {
    return absl::DataLossError(
        absl::StrCat(name, ": ", got.size(), " results, expected ", want.size()));
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = RelativeError(got[i], want[i]);
    max_error = std::max(max_error, error);
    if (!(error <= kRelativeTolerance)) {  // also catches NaN
      return absl::DataLossError(
          absl::StrFormat("%s task %d returned %.17g, expected %.17g (relative error %.3g > %.0e)",
                          name, i, got[i], want[i], error, kRelativeTolerance));
    }
  }
  return absl::OkStatus();
}

// --- complex_operation and complex_operation_vectorized -------------------

// The exact value of complex_operation(task_index), from a closed form that
// shares nothing with the task's loop: exp(x) sinh(x) = (exp(2x) - 1) / 2 and
// the inputs x_i = 1 + d (i + t) form an arithmetic progression, so the sum is
// a geometric series.
double ComplexOperationExpected(int task_index) {
  const long double d = 1e-7L;
  const long double n = static_cast<long double>(kComplexOperationElements);
  const long double first = std::exp(2 * (1 + d * task_index));
  const long double sum_exp = first * std::expm1(2 * d * n) / std::expm1(2 * d);
  return static_cast<double>((sum_exp - n) / 2);
}

std::vector<double> ComplexOperationExpectedAll() {
  std::vector<double> want;
  for (int t = 0; t < kComplexOperationTasks; ++t) want.push_back(ComplexOperationExpected(t));
  return want;
}

absl::StatusOr<WorkloadReport> RunComplexOperation(const ClusterInfo& cluster) {
  const std::string name = "complex_operation";
  const std::vector<double> want = ComplexOperationExpectedAll();
  const auto task = fleet::Task(complex_operation);

  Stopwatch cluster_clock;
  std::vector<fleet::ObjectRef<double>> refs;
  for (int t = 0; t < kComplexOperationTasks; ++t) refs.push_back(task.Remote(t));
  const std::vector<double> got = fleet::Get(refs);
  const absl::Duration cluster_wall = cluster_clock.Elapsed();

  // The same calls in one thread of this process: the baseline the cluster
  // is meant to beat.
  Stopwatch serial_clock;
  std::vector<double> serial;
  for (int t = 0; t < kComplexOperationTasks; ++t) serial.push_back(complex_operation(t));
  const absl::Duration serial_wall = serial_clock.Elapsed();

  double max_error = 0;
  if (absl::Status s = CheckClose(name, got, want, max_error); !s.ok()) return s;
  if (absl::Status s = CheckClose(name + " (serial)", serial, want, max_error); !s.ok()) {
    return s;
  }
  const bool identical = got == serial;
  double total = 0;
  for (double v : got) total += v;

  const double per_task_ms = Seconds(serial_wall) * 1e3 / kComplexOperationTasks;
  const double speedup = Seconds(serial_wall) / Seconds(cluster_wall);
  absl::PrintF(
      "  %d tasks of %d exp(x)*sinh(x) terms; results match the closed form "
      "(max relative error %.1e)%s\n",
      kComplexOperationTasks, kComplexOperationElements, max_error,
      identical ? ", bit-identical to the serial run" : "");
  absl::PrintF(
      "  cluster %.3f s | serial in this process %.3f s (%.0f ms per task) | "
      "speed-up %.2fx%s\n",
      Seconds(cluster_wall), Seconds(serial_wall), per_task_ms, speedup,
      cluster.slots > 0 ? absl::StrFormat(" on %d slots", cluster.slots) : "");

  WorkloadReport report;
  report.name = name;
  report.tasks = kComplexOperationTasks;
  report.result =
      absl::StrFormat("sum %.6e, all within %.0e of the closed form", total, kRelativeTolerance);
  report.wall = cluster_wall;
  report.notes = absl::StrFormat("serial %.3f s (%.0f ms/task), speed-up %.2fx",
                                 Seconds(serial_wall), per_task_ms, speedup);
  return report;
}

absl::StatusOr<WorkloadReport> RunComplexOperationVectorized(const ClusterInfo& cluster) {
  const std::string name = "complex_operation_vectorized";
  const std::vector<double> want = ComplexOperationExpectedAll();
  const auto task = fleet::Task(complex_operation_vectorized);

  // The inputs of task t are those complex_operation(t) computes itself, so
  // the expected values are the same. One buffer is refilled for each task
  // (Remote serializes it at once), as a driver that streams its inputs
  // would; building them is part of the measured time.
  fleet::Array<double> xs(static_cast<std::size_t>(kComplexOperationElements));
  const double input_mb = static_cast<double>(xs.size_bytes()) / kMegabyte;
  Stopwatch cluster_clock;
  std::vector<fleet::ObjectRef<double>> refs;
  for (int t = 0; t < kComplexOperationTasks; ++t) {
    for (int64_t i = 0; i < kComplexOperationElements; ++i) {
      xs[static_cast<std::size_t>(i)] = ComplexOperationInput(i, t);
    }
    refs.push_back(task.Remote(xs));
  }
  const std::vector<double> got = fleet::Get(refs);
  const absl::Duration wall = cluster_clock.Elapsed();

  double max_error = 0;
  if (absl::Status s = CheckClose(name, got, want, max_error); !s.ok()) return s;
  double total = 0;
  for (double v : got) total += v;

  absl::PrintF(
      "  %d tasks, each given a %.0f MB array of %d inputs; results match the "
      "closed form (max relative error %.1e)\n",
      kComplexOperationTasks, input_mb, kComplexOperationElements, max_error);
  absl::PrintF("  cluster %.3f s, building and shipping %.0f MB of inputs included\n",
               Seconds(wall), input_mb * kComplexOperationTasks);

  WorkloadReport report;
  report.name = name;
  report.tasks = kComplexOperationTasks;
  report.result =
      absl::StrFormat("sum %.6e, all within %.0e of the closed form", total, kRelativeTolerance);
  report.wall = wall;
  report.notes = absl::StrFormat("%.0f MB of inputs shipped", input_mb * kComplexOperationTasks);
  return report;
}

// --- compute_heavy_task ----------------------------------------------------

// Row t holds t, t + 1, ..., t + 999: integers, so every square and partial
// sum is exact in a double and the result can be compared exactly.
std::vector<double> ComputeHeavyRow(int t) {
  std::vector<double> row(kComputeHeavyRowLength);
  for (int j = 0; j < kComputeHeavyRowLength; ++j) row[j] = t + j;
  return row;
}

// --- noop -------------------------------------------------------------------

absl::StatusOr<WorkloadReport> RunNoop(const ClusterInfo&) {
  const std::string name = "noop";
  const auto task = fleet::Task(noop);
  Stopwatch clock;
  std::vector<fleet::ObjectRef<int64_t>> refs;
  refs.reserve(kNoopTasks);
  for (int64_t i = 0; i < kNoopTasks; ++i) refs.push_back(task.Remote(i));
  const std::vector<int64_t> got = fleet::Get(refs);
  const absl::Duration wall = clock.Elapsed();
  for (int64_t i = 0; i < kNoopTasks; ++i) {
    if (got[i] != i) {
      return absl::DataLossError(
          absl::StrFormat("%s task %d returned %d, expected %d", name, i, got[i], i));
    }
  }
  const double rate = kNoopTasks / Seconds(wall);
  absl::PrintF("  %d no-op tasks, one future each, submitted at once then gathered; all %d "
               "results right\n",
               kNoopTasks, kNoopTasks);
  absl::PrintF("  cluster %.3f s, %.0f tasks/s\n", Seconds(wall), rate);

  WorkloadReport report;
  report.name = name;
  report.tasks = kNoopTasks;
  report.result = absl::StrFormat("all %d values right", kNoopTasks);
  report.wall = wall;
  report.notes = absl::StrFormat("%.0f tasks/s", rate);
  return report;
}

// sum over j < n of (t + j)^2 = n t^2 + t n (n - 1) + (n - 1) n (2n - 1) / 6.
double ComputeHeavyExpected(int t) {
  const int64_t n = kComputeHeavyRowLength;
  const int64_t tt = t;
  return static_cast<double>(n * tt * tt + tt * n * (n - 1) + (n - 1) * n * (2 * n - 1) / 6);
}

absl::StatusOr<WorkloadReport> RunComputeHeavyTask(const ClusterInfo& cluster) {
  const std::string name = "compute_heavy_task";
  const auto task = fleet::Task(compute_heavy_task);
  std::vector<std::vector<double>> rows;
  for (int t = 0; t < kComputeHeavyTasks; ++t) rows.push_back(ComputeHeavyRow(t));

  Stopwatch clock;
  std::vector<fleet::ObjectRef<double>> refs;
  for (int t = 0; t < kComputeHeavyTasks; ++t) refs.push_back(task.Remote(rows[t]));
  const std::vector<double> got = fleet::Get(refs);
  const absl::Duration wall = clock.Elapsed();

  double total = 0;
  for (int t = 0; t < kComputeHeavyTasks; ++t) {
    const double want = ComputeHeavyExpected(t);
    if (got[t] != want) {
      return absl::DataLossError(absl::StrFormat(
          "%s task %d returned %.17g, expected exactly %.17g", name, t, got[t], want));
    }
    total += got[t];
  }

  std::string ideal;
  if (cluster.slots > 0) {
    const int waves = (kComputeHeavyTasks + cluster.slots - 1) / cluster.slots;
    ideal = absl::StrFormat("; ideal on %d slots: %d s", cluster.slots, waves);
  } else {
    ideal = "; ideal: 1 s per wave of tasks, 2 s on 8 slots";
  }
  absl::PrintF("  %d tasks of sleep(1 s) + sum of squares of %d doubles; all results exact\n",
               kComputeHeavyTasks, kComputeHeavyRowLength);
  absl::PrintF("  cluster %.3f s%s\n", Seconds(wall), ideal);

  WorkloadReport report;
  report.name = name;
  report.tasks = kComputeHeavyTasks;
  report.result = absl::StrFormat("sum %.0f, all exact", total);
  report.wall = wall;
  report.notes = ideal.substr(2);
  return report;
}

// --- return_big_object ------------------------------------------------------

absl::StatusOr<WorkloadReport> RunReturnBigObject(const ClusterInfo& cluster) {
  const std::string name = "return_big_object";
  const auto task = fleet::Task(return_big_object);
  const std::size_t elements = kBigObjectRows * kBigObjectCols;

  Stopwatch clock;
  std::vector<fleet::ObjectRef<fleet::Array<double>>> pending;
  absl::flat_hash_map<std::string, int> index_of;  // object id -> i
  for (int i = 0; i < kBigObjectTasks; ++i) {
    pending.push_back(task.Remote(i));
    index_of[pending.back().Id()] = i;
  }
  // Consume the results as they complete, dropping each one when it is
  // checked, so the driver holds at most one at a time.
  double total = 0;
  std::vector<int> order;
  while (!pending.empty()) {
    fleet::WaitResult<fleet::Array<double>> wait = fleet::Wait(pending, 1);
    pending = std::move(wait.pending);
    for (const fleet::ObjectRef<fleet::Array<double>>& ref : wait.ready) {
      const int i = index_of.at(ref.Id());
      const fleet::Array<double> value = ref.Get();
      if (value.size() != elements) {
        return absl::DataLossError(absl::StrFormat("%s(%d) returned %d elements, expected %d", name,
                                                   i, value.size(), elements));
      }
      const double want = static_cast<double>(i);
      for (std::size_t k = 0; k < elements; ++k) {
        if (value[k] != want) {
          return absl::DataLossError(absl::StrFormat("%s(%d): element %d is %.17g, expected %.17g",
                                                     name, i, k, value[k], want));
        }
      }
      total += want * static_cast<double>(elements);
      order.push_back(i);
    }
  }
  const absl::Duration wall = clock.Elapsed();

  const double result_mb = static_cast<double>(elements * sizeof(double)) / kMegabyte;
  const double received_mb = result_mb * kBigObjectTasks;
  int out_of_order = 0;
  for (std::size_t k = 0; k < order.size(); ++k) out_of_order += order[k] != static_cast<int>(k);
  absl::PrintF(
      "  %d results of %d x %d doubles (%.0f MB each) consumed as they completed "
      "(%d not in submission order); every element checked\n",
      kBigObjectTasks, kBigObjectRows, kBigObjectCols, result_mb, out_of_order);
  absl::PrintF("  cluster %.3f s, %.0f MB received, %.0f MB/s\n", Seconds(wall), received_mb,
               received_mb / Seconds(wall));

  WorkloadReport report;
  report.name = name;
  report.tasks = kBigObjectTasks;
  report.result = absl::StrFormat("sum of elements %.0f, all exact", total);
  report.wall = wall;
  report.notes =
      absl::StrFormat("%.0f MB received, %.0f MB/s", received_mb, received_mb / Seconds(wall));
  return report;
}

// --- slow_mean ----------------------------------------------------------------

// Deterministic uniform doubles in [0, 1): the top 53 bits of a fixed-seed
// 64-bit Mersenne Twister, the same on every platform.
fleet::Array<double> SlowMeanData() {
  fleet::Array<double> data(static_cast<std::size_t>(kSlowMeanElements));
  std::mt19937_64 generator(0);
  for (double& v : data) v = static_cast<double>(generator() >> 11) * 0x1.0p-53;
  return data;
}

absl::StatusOr<WorkloadReport> RunSlowMean(const ClusterInfo& cluster) {
  const std::string name = "slow_mean";
  const auto task = fleet::Task(slow_mean);
  const fleet::Array<double> data = SlowMeanData();
  const double data_mb = static_cast<double>(data.size_bytes()) / kMegabyte;

  // Expected means from step-sized block sums accumulated in long double: a
  // different order and precision from the task's loop.
  std::vector<long double> block_sums;
  for (int64_t start = 0; start < kSlowMeanElements; start += kSlowMeanStep) {
    long double sum = 0;
    for (int64_t i = start; i < std::min(start + kSlowMeanStep, kSlowMeanElements); ++i) {
      sum += data[static_cast<std::size_t>(i)];
    }
    block_sums.push_back(sum);
  }
  std::vector<int64_t> starts;  // as the seed: range(0, N - W, STEP), 95 windows
  std::vector<double> want;
  for (int64_t start = 0; start < kSlowMeanElements - kSlowMeanWindow; start += kSlowMeanStep) {
    starts.push_back(start);
    long double sum = 0;
    for (int64_t b = start / kSlowMeanStep; b < (start + kSlowMeanWindow) / kSlowMeanStep; ++b) {
      sum += block_sums[static_cast<std::size_t>(b)];
    }
    want.push_back(static_cast<double>(sum / kSlowMeanWindow));
  }

  Stopwatch put_clock;
  const fleet::ObjectRef<fleet::Array<double>> data_ref = fleet::Put(data);
  const absl::Duration put_time = put_clock.Elapsed();

  Stopwatch clock;
  std::vector<fleet::ObjectRef<double>> refs;
  for (int64_t start : starts)
    refs.push_back(task.Remote(data_ref, start, start + kSlowMeanWindow));
  const std::vector<double> got = fleet::Get(refs);
  const absl::Duration wall = clock.Elapsed();

  double max_error = 0;
  if (absl::Status s = CheckClose(name, got, want, max_error); !s.ok()) return s;
  const auto [low, high] = std::minmax_element(got.begin(), got.end());

  absl::PrintF(
      "  %d windows of %d over one Put array of %d doubles (%.0f MB, put in %.3f s); "
      "means match (max relative error %.1e)\n",
      starts.size(), kSlowMeanWindow, kSlowMeanElements, data_mb, Seconds(put_time), max_error);
  absl::PrintF("  cluster %.3f s (%.1f ms per task)\n", Seconds(wall),
               Seconds(wall) * 1e3 / static_cast<double>(starts.size()));

  WorkloadReport report;
  report.name = name;
  report.tasks = static_cast<int>(starts.size());
  report.result = absl::StrFormat("means in [%.6f, %.6f], all within %.0e (relative)", *low, *high,
                                  kRelativeTolerance);
  report.wall = wall;
  report.notes = absl::StrFormat("put %.0f MB once in %.3f s", data_mb, Seconds(put_time));
  return report;
}

}  // namespace

const std::vector<Workload>& Workloads() {
  static const std::vector<Workload>* const workloads = new std::vector<Workload>{
      {"noop", "10,000 no-op tasks, one future each, submitted at once", RunNoop},
      {"complex_operation", "10 CPU-bound exp*sinh loops, compared with the same calls serially",
       RunComplexOperation},
      {"complex_operation_vectorized", "the same math over input arrays built by the driver",
       RunComplexOperationVectorized},
      {"compute_heavy_task", "10 tasks of sleep(1 s) + a sum of squares (2 s on 8 slots)",
       RunComputeHeavyTask},
      {"return_big_object", "20 results of 16 MB, consumed as they complete", RunReturnBigObject},
      {"slow_mean", "95 windowed means over one Put 80 MB array", RunSlowMean},
  };
  return *workloads;
}

absl::StatusOr<WorkloadReport> RunWorkload(const Workload& workload, const ClusterInfo& cluster) {
  // fleet's user API reports failures as exceptions; they stop here.
  try {
    return workload.run(cluster);
  } catch (const fleet::TaskError& e) {
    return absl::AbortedError(absl::StrCat(workload.name, ": a task failed: ", e.what()));
  } catch (const fleet::Error& e) {
    return absl::AbortedError(absl::StrCat(workload.name, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(workload.name, ": unexpected exception: ", e.what()));
  }
}

}  // namespace fleet::examples
