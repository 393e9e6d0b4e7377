// fleet-bench-transfer: how fast bytes move through fleet's object store.
//
//   M3 (as peers/): a 100 MB float64 array in (Put, then one task sums it
//      through fleet::ArrayView) and a 100 MB array out (a task makes it,
//      the client Gets it).
//   XFER: the same figures as bandwidths, and the two transfers between
//      processes:
//      - in-place read: the summing task's own loop over the 100 MB argument
//        in the store of a worker on the client's host (no copy), GB/s;
//      - Put: client to a worker's store, GB/s;
//      - worker to worker: a task on worker A makes 1 GB, a task on worker B
//        sums it: over gRPC (--path=grpc, workers without --local_store) B
//        fetches it first and the transfer is B's end-to-end time less its
//        summing loop; on one host B reads A's store in place, and the row
//        is that whole read;
//      - worker to client: Get of that 1 GB (decoded into an Array from the
//        mapped store, or fetched over gRPC first).
//   fleet-bench-floor measures the machine's limits (memcpy, loopback TCP)
//   in the same run.
//
//   fleet-bench-transfer --address=HOST:PORT [--path=same_host|grpc] [--quick]
//
// Needs two workers with one slot each (the cross-worker step keeps A's
// slot busy so that the consumer goes to B), as bench/run starts them.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "bench/tasks/bench_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(std::string, path, "same_host",
          "Which path the cluster's workers give this client, for the labels: same_host (the "
          "default: mapped stores) or grpc (workers started with --local_store=false, as "
          "between hosts).");

namespace fleet::bench {
namespace {

constexpr int64_t kM3Elements = 12'500'000;    // 100 MB, M3_ELEMS
constexpr int64_t kBigElements = 125'000'000;  // 1 GB
constexpr int kM3Trials = 3;                   // M3_TRIALS
constexpr int kBigTrials = 2;
// How long bench_hold keeps the producer's worker busy: long enough for the
// scheduler to place the consumer elsewhere (it does so at submission).
constexpr int64_t kHoldMs = 500;

// `base`, with the cluster's shape when bench/run gave it.
std::string Variant(const BenchOptions& options, const std::string& base) {
  return options.cluster.empty() ? base : base + ", " + options.cluster;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "fleet-bench-transfer: %s\n", what.c_str());
  return 1;
}

int RunM3(const BenchOptions& options, int64_t elements, int trials) {
  const Recorder m3("fleet", "M3", options);
  const Recorder xfer("fleet", "XFER", options);
  const double bytes = static_cast<double>(elements) * sizeof(double);
  const fleet::Array<double> ones(static_cast<std::size_t>(elements), 1.0);
  const auto sum = fleet::Task(bench_sum_view);
  const auto make = fleet::Task(bench_make_array);
  const std::string size = std::to_string(static_cast<int64_t>(bytes / kMB)) + " MB";
  const bool grpc = absl::GetFlag(FLAGS_path) == "grpc";
  const std::string over = grpc ? ", over gRPC (as between hosts)" : "";
  const std::string put_sum = Variant(options, "Put + task sum (ArrayView)" + over);
  const std::string returned =
      Variant(options, "task returns " + size + ", client Gets it" + over);
  const std::string put =
      Variant(options, grpc ? "Put " + size + " over gRPC: client to a worker's store"
                            : "Put " + size + ": client to a same-host worker's store");
  const std::string read =
      Variant(options, "in-place read of a same-host " + size + " argument (task's own loop)");
  const std::string fetched = Variant(
      options, grpc ? "task result to the client over gRPC, " + size + " (Get: fetch + decode)"
                    : "task result to the client, same host, " + size +
                          " (Get: decode from the mapped store)");
  for (int trial = 0; trial < trials; ++trial) {
    Stopwatch clock;
    auto ref = fleet::Put(ones);
    const double put_s = clock.Seconds();
    const SumReport r = DecodeSumReport(sum.Remote(ref).Get());
    const double seconds = clock.Seconds();
    if (r.sum != static_cast<double>(elements)) {
      return Fail("the sum of the Put array is " + std::to_string(r.sum) + ", expected " +
                  std::to_string(elements));
    }
    m3(put_sum, "seconds", seconds, trial);
    m3(put_sum, "MB_per_s", bytes / kMB / seconds, trial);
    m3(put_sum, "put_s", put_s, trial);
    xfer(put, "GB_per_s", bytes / kGB / put_s, trial);
    if (grpc) {
      // The task reads in place on its worker either way; one row is enough.
    } else if (r.in_place) {
      xfer(read, "GB_per_s", bytes / kGB / r.read_seconds, trial);
    } else {
      xfer.Unsupported(read, "the task received a copy, not a view of the store");
    }

    Stopwatch out_clock;
    const fleet::Array<double> back = make.Remote(elements, 1.0).Get();
    const double out_s = out_clock.Seconds();
    if (back.size() != static_cast<std::size_t>(elements) || back[back.size() - 1] != 1.0) {
      return Fail("the returned array is wrong");
    }
    m3(returned, "seconds", out_s, trial);
    xfer(fetched, "GB_per_s", bytes / kGB / out_s, trial);
  }
  return 0;
}

int RunCrossWorker(const BenchOptions& options, int64_t elements, int trials) {
  const Recorder xfer("fleet", "XFER", options);
  const double bytes = static_cast<double>(elements) * sizeof(double);
  const std::string size = bytes >= kGB ? std::to_string(static_cast<int64_t>(bytes / kGB)) + " GB"
                                        : std::to_string(static_cast<int64_t>(bytes / kMB)) + " MB";
  const bool grpc = absl::GetFlag(FLAGS_path) == "grpc";
  // Over gRPC B fetches a copy, and the transfer is B's time less its
  // summing loop; on one host B reads A's store in place, so there is no
  // transfer to isolate: the row is the whole read, end to end.
  const std::string w2w = Variant(
      options, grpc ? "worker to worker over gRPC, " + size + " (B fetches A's result, then sums)"
                    : "in-place read on worker B of worker A's " + size +
                          " result (same host, end to end)");
  const std::string w2c = Variant(
      options, grpc ? "worker to client over gRPC, " + size + " (Get: fetch + decode)"
                    : "worker to client, same host, " + size +
                          " (Get: decode from the mapped store)");
  const auto make = fleet::Task(bench_make_array);
  const auto hold = fleet::Task(bench_hold);
  const auto sum = fleet::Task(bench_sum_view);
  for (int trial = 0; trial < trials; ++trial) {
    auto produced = make.Remote(elements, 1.0);
    fleet::Wait(std::vector{produced}, 1);
    // The holder runs bench_hold (it holds the argument and has an idle
    // slot); the consumer, submitted while that slot is busy, goes to the
    // other worker, which fetches the bytes from the holder.
    auto held = hold.Remote(produced, kHoldMs);
    Stopwatch clock;
    const SumReport r = DecodeSumReport(sum.Remote(produced).Get());
    const double end_to_end = clock.Seconds();
    const int64_t holder_pid = held.Get();
    if (r.sum != static_cast<double>(elements)) return Fail("the 1 GB sum is wrong");
    if (r.pid == holder_pid) {
      xfer.Unsupported(w2w, "the consumer ran on the producer's worker (no transfer)");
    } else {
      const double transfer_s = grpc ? end_to_end - r.read_seconds : end_to_end;
      xfer(w2w, "GB_per_s", bytes / kGB / transfer_s, trial);
      xfer(w2w, "seconds", transfer_s, trial,
           {{"end_to_end_s", end_to_end}, {"read_s", r.read_seconds}});
    }

    Stopwatch get_clock;
    const fleet::Array<double> local = produced.Get();
    const double get_s = get_clock.Seconds();
    if (local.size() != static_cast<std::size_t>(elements) || local[0] != 1.0) {
      return Fail("the fetched 1 GB array is wrong");
    }
    xfer(w2c, "GB_per_s", bytes / kGB / get_s, trial);
    xfer(w2c, "seconds", get_s, trial);
  }
  return 0;
}

int Run(const BenchOptions& options) {
  if (int rc = RunM3(options, options.quick ? kM3Elements / 100 : kM3Elements,
                     options.quick ? 1 : kM3Trials);
      rc != 0) {
    return rc;
  }
  return RunCrossWorker(options, options.quick ? kBigElements / 1000 : kBigElements,
                        options.quick ? 1 : kBigTrials);
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  return fleet::bench::RunBenchMain(
      argc, argv, "fleet-bench-transfer",
      "fleet-bench-transfer --address=HOST:PORT [--quick]\nPut/Get: 100 MB in and out, the "
      "in-place read of a same-host argument, and 1 GB between workers and to the client.",
      fleet::bench::Run);
}
