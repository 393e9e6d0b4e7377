#include "bench/tasks/bench_tasks.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "examples/tasks/sum_doubles.h"
#include "fleet/remote.h"

namespace fleet::bench {

fleet::Array<double> bench_w3_result(int64_t i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return fleet::Array<double>(kW3Elements, static_cast<double>(i));
}
FLEET_REMOTE(bench_w3_result);

fleet::Array<double> bench_make_array(int64_t elements, double value) {
  return fleet::Array<double>(static_cast<std::size_t>(elements), value);
}
FLEET_REMOTE(bench_make_array);

std::vector<double> bench_sum_view(fleet::ArrayView<double> data) {
  const auto start = std::chrono::steady_clock::now();
  const double sum = fleet::examples::SumDoubles(data.data(), data.size());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {sum, seconds, static_cast<double>(::getpid()), data.in_place() ? 1.0 : 0.0};
}
FLEET_REMOTE(bench_sum_view);

SumReport DecodeSumReport(const std::vector<double>& v) {
  SumReport r;
  if (v.size() != 4) return r;
  r.sum = v[0];
  r.read_seconds = v[1];
  r.pid = static_cast<int64_t>(v[2]);
  r.in_place = v[3] != 0;
  return r;
}

int64_t bench_hold(fleet::ArrayView<double> data, int64_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return static_cast<int64_t>(::getpid());
}
FLEET_REMOTE(bench_hold);

int64_t bench_add(int64_t a, int64_t b) { return a + b; }
FLEET_REMOTE(bench_add);

fleet::Array<double> bench_plus_one(fleet::Array<double> data) {
  for (double& x : data) x += 1.0;
  return data;
}
FLEET_REMOTE(bench_plus_one);

}  // namespace fleet::bench
