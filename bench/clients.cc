// fleet-bench-clients: Q2 of issue 7, no-op throughput with several clients
// at once. Each of --clients processes (4) connects to the cluster, warms
// up, and waits at a barrier; then each submits --tasks no-op tasks at once
// (one future each, as M1) and gathers them. The figure is the total
// tasks/s over the wall time from the first client's first submission to
// the last client's last result (CLOCK_MONOTONIC is one clock for every
// process on the host). Best of 3 trials; each trial forks fresh clients.
// Also Q9: the scheduler's and workers' CPU time per task over the run.
//
//   fleet-bench-clients --address=HOST:PORT [--clients=4] [--tasks=20000] [--quick]
//
// The parent never initializes fleet: the clients are forked before any
// gRPC state exists (gRPC does not survive a fork), and each child is a
// whole fleet client of its own, as separate programs would be.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "bench/common/bench_common.h"
#include "examples/tasks/seed_tasks.h"
#include "fleet/fleet.h"

ABSL_FLAG(int, clients, 4, "Client processes submitting at the same time.");
ABSL_FLAG(int, tasks, 20'000, "No-op tasks each client submits (--quick: 200).");

namespace fleet::bench {
namespace {

constexpr int kTrials = 3;

// What a child reports through its pipe: when it submitted its first task
// and got its last result (steady_clock, the host's CLOCK_MONOTONIC), and
// whether every result was right.
struct ChildReport {
  double first_submit_s = 0;
  double last_result_s = 0;
  int ok = 0;
};

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One client process: connect, warm up, say ready, wait for the start
// (EOF on `go`: the parent closes it for every child at once), run, report.
[[noreturn]] void RunChild(const BenchOptions& options, int tasks, int ready_fd, int go_fd,
                           int report_fd) {
  ChildReport report;
  const int rc = RunGuarded("fleet-bench-clients (child)", [&] {
    InitFleetOrDie(options, "fleet-bench-clients");
    WarmUp();
    const char ready = 'r';
    if (::write(ready_fd, &ready, 1) != 1) return 1;
    char go = 0;
    while (::read(go_fd, &go, 1) < 0 && errno == EINTR) {
    }
    const auto noop = fleet::Task(fleet::examples::noop);
    std::vector<fleet::ObjectRef<int64_t>> refs;
    refs.reserve(tasks);
    report.first_submit_s = MonotonicSeconds();
    for (int64_t i = 0; i < tasks; ++i) refs.push_back(noop.Remote(i));
    const std::vector<int64_t> got = fleet::Get(refs);
    report.last_result_s = MonotonicSeconds();
    for (int64_t i = 0; i < tasks; ++i) {
      if (got[i] != i) {
        std::fprintf(stderr, "fleet-bench-clients: task %lld returned %lld\n",
                     static_cast<long long>(i), static_cast<long long>(got[i]));
        return 1;
      }
    }
    report.ok = 1;
    return 0;
  });
  if (::write(report_fd, &report, sizeof(report)) != sizeof(report)) report.ok = 0;
  if (fleet::IsInitialized()) fleet::Shutdown();
  std::fflush(stderr);
  ::_exit(rc == 0 && report.ok ? 0 : 1);
}

// Reads one byte from `fd`, waiting at most `timeout_ms` (a child that died
// before it wrote would otherwise block the parent for good: the other
// children keep the pipe open).
bool ReadByte(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  char byte = 0;
  return ::read(fd, &byte, 1) == 1;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "fleet-bench-clients: %s\n", what.c_str());
  return 1;
}

// One trial: forks `clients` children, starts them together, and returns
// the total rate (0 on failure).
double RunTrial(const BenchOptions& options, int clients, int tasks, int trial) {
  int ready[2], go[2], report[2];
  if (::pipe(ready) != 0 || ::pipe(go) != 0 || ::pipe(report) != 0) return 0;
  std::vector<pid_t> children;
  for (int c = 0; c < clients; ++c) {
    const pid_t pid = ::fork();
    if (pid < 0) return 0;
    if (pid == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      ::close(report[0]);
      RunChild(options, tasks, ready[1], go[0], report[1]);
    }
    children.push_back(pid);
  }
  ::close(ready[1]);
  ::close(go[0]);
  ::close(report[1]);
  auto kill_all = [&] {
    for (pid_t pid : children) ::kill(pid, SIGKILL);
    for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
  };
  for (int c = 0; c < clients; ++c) {
    if (!ReadByte(ready[0], 60'000)) {
      kill_all();
      Fail("a client did not get ready (see its message above)");
      return 0;
    }
  }
  CpuMeter cpu(options);
  cpu.Start();
  ::close(go[1]);  // every child's read returns now
  std::vector<ChildReport> reports;
  for (int c = 0; c < clients; ++c) {
    ChildReport r;
    if (::read(report[0], &r, sizeof(r)) != sizeof(r) || !r.ok) {
      kill_all();
      Fail("a client failed (see its message above)");
      return 0;
    }
    reports.push_back(r);
  }
  cpu.Stop();
  bool all_ok = true;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    all_ok = all_ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  ::close(ready[0]);
  ::close(report[0]);
  if (!all_ok) {
    Fail("a client exited with an error");
    return 0;
  }
  double first = reports[0].first_submit_s, last = reports[0].last_result_s;
  for (const ChildReport& r : reports) {
    first = std::min(first, r.first_submit_s);
    last = std::max(last, r.last_result_s);
  }
  const double total = static_cast<double>(clients) * tasks;
  const double rate = total / (last - first);
  std::string variant = std::to_string(clients) + " client processes x " + std::to_string(tasks) +
                        " no-ops at once";
  if (!options.cluster.empty()) variant += ", " + options.cluster;
  const Recorder rec("fleet", "Q2", options);
  rec(variant, "tasks_per_s", rate, trial);
  rec(variant, "wall_s", last - first, trial);
  cpu.Record(options, "Q2: " + variant, total, trial);
  std::fprintf(stderr, "fleet-bench-clients: trial %d: %.0f tasks in %.3f s (%.0f tasks/s)\n",
               trial, total, last - first, rate);
  return rate;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  const fleet::bench::BenchOptions options = fleet::bench::ParseBenchFlags(
      argc, argv,
      "fleet-bench-clients --address=HOST:PORT [--clients=4] [--tasks=N] [--quick]\nQ2: no-op "
      "throughput of several client processes submitting at once.");
  if (options.address.empty()) {
    std::fprintf(stderr, "fleet-bench-clients: --address=HOST:PORT is required\n");
    return 2;
  }
  const int clients = absl::GetFlag(FLAGS_clients);
  const int tasks = options.quick ? 200 : absl::GetFlag(FLAGS_tasks);
  if (clients < 1 || tasks < 1) {
    std::fprintf(stderr, "fleet-bench-clients: --clients and --tasks must be positive\n");
    return 2;
  }
  const int trials = options.quick ? 1 : fleet::bench::kTrials;
  for (int trial = 0; trial < trials; ++trial) {
    if (fleet::bench::RunTrial(options, clients, tasks, trial) <= 0) return 1;
  }
  return 0;
}
