#include "tests/chaos/fault_injector.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <sstream>
#include <utility>

#include "nlohmann/json.hpp"
#include "tests/chaos/process_table.h"

namespace fleet_chaos {
namespace {

using fleet::test::LocalProcessCluster;
using fleet::test::PollUntil;

bool ExitedWith(const std::optional<int>& wait_status, int code) {
  return wait_status.has_value() && WIFEXITED(*wait_status) && WEXITSTATUS(*wait_status) == code;
}

std::string DescribeExit(const std::optional<int>& wait_status) {
  return wait_status ? LocalProcessCluster::DescribeExit(*wait_status) : "still running";
}

bool StatusListsPid(const nlohmann::json& status, pid_t pid) {
  if (!status.contains("workers")) return false;
  for (const nlohmann::json& w : status["workers"]) {
    if (w.value("pid", 0) == pid) return true;
  }
  return false;
}

}  // namespace

const char* FaultName(Fault fault) {
  switch (fault) {
    case Fault::kKillWorker:
      return "kill_worker";
    case Fault::kKillExecutor:
      return "kill_executor";
    case Fault::kDrainWorker:
      return "drain_worker";
    case Fault::kPauseWorker:
      return "pause_worker";
    case Fault::kRestartScheduler:
      return "restart_scheduler";
  }
  return "unknown";
}

FaultInjector::FaultInjector(LocalProcessCluster& cluster, FaultInjectorOptions options)
    : cluster_(cluster),
      options_(options),
      rng_(options.seed),
      start_(std::chrono::steady_clock::now()),
      opening_faults_(std::begin(kAllFaults), std::end(kAllFaults)) {
  std::shuffle(opening_faults_.begin(), opening_faults_.end(), rng_);
  // Popped from the back.
  std::reverse(opening_faults_.begin(), opening_faults_.end());
  for (int i = 0; i < cluster_.num_workers(); ++i) {
    if (cluster_.worker_pid(i) > 0) {
      active_.push_back(i);
      worker_pids_.insert(cluster_.worker_pid(i));
    }
  }
}

void FaultInjector::Run(const std::atomic<bool>& done) {
  std::uniform_int_distribution<int64_t> interval_ms(options_.min_interval.count(),
                                                     options_.max_interval.count());
  while (total_faults() < options_.max_faults && !replacement_failed_) {
    const std::chrono::milliseconds pause(interval_ms(rng_));
    if (PollUntil([&] { return done.load(); }, pause)) return;
    NoteExecutors();
    Inject(NextFault());
    every_kind_injected_ = std::all_of(std::begin(kAllFaults), std::end(kAllFaults),
                                       [&](Fault f) { return count(f) > 0; });
  }
}

Fault FaultInjector::NextFault() {
  if (!opening_faults_.empty()) {
    const Fault fault = opening_faults_.back();
    opening_faults_.pop_back();
    return fault;
  }
  std::uniform_int_distribution<std::size_t> pick(0, std::size(kAllFaults) - 1);
  return kAllFaults[pick(rng_)];
}

void FaultInjector::Inject(Fault fault) {
  // A fault that removes a worker needs another one to carry the job
  // while its replacement starts.
  const bool removes_a_worker = fault == Fault::kKillWorker || fault == Fault::kDrainWorker ||
                                fault == Fault::kPauseWorker;
  if (removes_a_worker && active_.size() < 2) fault = Fault::kKillExecutor;
  switch (fault) {
    case Fault::kKillWorker:
      return KillWorker(PickWorker(/*remove=*/true));
    case Fault::kKillExecutor:
      return KillExecutor(PickWorker(/*remove=*/false));
    case Fault::kDrainWorker:
      return DrainWorker(PickWorker(/*remove=*/true));
    case Fault::kPauseWorker:
      return PauseWorker(PickWorker(/*remove=*/true));
    case Fault::kRestartScheduler:
      return RestartScheduler();
  }
}

int FaultInjector::PickWorker(bool remove) {
  std::uniform_int_distribution<std::size_t> pick(0, active_.size() - 1);
  const std::size_t at = pick(rng_);
  const int index = active_[at];
  if (remove) active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(at));
  return index;
}

void FaultInjector::KillWorker(int index) {
  const pid_t pid = cluster_.worker_pid(index);
  removed_worker_pids_.insert(pid);
  cluster_.KillWorker(index);
  Note(Fault::kKillWorker,
       "kill -9 worker-" + std::to_string(index) + " (pid " + std::to_string(pid) + ")");
  StartReplacement();
}

void FaultInjector::KillExecutor(int index) {
  const pid_t worker = cluster_.worker_pid(index);
  std::vector<ProcessInfo> executors = ExecutorsOf(worker);
  std::erase_if(executors, [](const ProcessInfo& p) { return p.zombie(); });
  if (executors.empty()) {
    // Counted all the same: it is what a kill at this moment would find.
    Note(Fault::kKillExecutor, "worker-" + std::to_string(index) + " had no executor to kill");
    return;
  }
  std::uniform_int_distribution<std::size_t> pick(0, executors.size() - 1);
  const pid_t victim = executors[pick(rng_)].pid;
  kill(victim, SIGKILL);
  Note(Fault::kKillExecutor, "kill -9 executor " + std::to_string(victim) + " of worker-" +
                                 std::to_string(index) + " (pid " + std::to_string(worker) + ")");
  // The daemon reaps it and starts another; it must not go down with it.
  const bool replaced = PollUntil(
      [&] {
        if (!IsRunning(worker)) return true;  // reported below
        std::vector<ProcessInfo> now = ExecutorsOf(worker);
        const bool victim_reaped =
            !ReadProcess(victim).has_value() || ReadProcess(victim)->parent != worker;
        const bool has_new = std::any_of(now.begin(), now.end(), [&](const ProcessInfo& p) {
          return p.pid != victim && !p.zombie() && !executor_pids_seen_.count(p.pid);
        });
        return victim_reaped && has_new;
      },
      options_.executor_restart_timeout);
  if (!IsRunning(worker)) {
    Problem("worker-" + std::to_string(index) + " (pid " + std::to_string(worker) +
            ") died after its executor " + std::to_string(victim) + " was killed");
  } else if (!replaced) {
    fleet::test::DumpThreadStacks(worker, "worker-" + std::to_string(index));
    Problem("worker-" + std::to_string(index) + " did not reap its killed executor " +
            std::to_string(victim) + " and start a new one within " +
            std::to_string(options_.executor_restart_timeout.count()) + " ms");
  }
  NoteExecutors();
}

void FaultInjector::DrainWorker(int index) {
  const pid_t pid = cluster_.worker_pid(index);
  removed_worker_pids_.insert(pid);
  kill(pid, SIGTERM);
  Note(Fault::kDrainWorker,
       "SIGTERM worker-" + std::to_string(index) + " (pid " + std::to_string(pid) + ")");
  if (!StartReplacement()) return;
  ExpectExit(index, 0, options_.drain_timeout, "drained", "");
}

void FaultInjector::PauseWorker(int index) {
  const pid_t pid = cluster_.worker_pid(index);
  removed_worker_pids_.insert(pid);
  kill(pid, SIGSTOP);
  Note(Fault::kPauseWorker,
       "SIGSTOP worker-" + std::to_string(index) + " (pid " + std::to_string(pid) + ")");
  const bool replaced = StartReplacement();
  // Paused until the scheduler has given up on it: longer than its
  // --heartbeat_timeout by construction.
  nlohmann::json status;
  const bool declared_dead =
      replaced &&
      cluster_.WaitForStatus([pid](const nlohmann::json& s) { return !StatusListsPid(s, pid); },
                             options_.declared_dead_timeout, &status);
  kill(pid, SIGCONT);
  if (!replaced) return;
  if (!declared_dead) {
    Problem("the scheduler still listed paused worker-" + std::to_string(index) + " (pid " +
            std::to_string(pid) + ") after " +
            std::to_string(options_.declared_dead_timeout.count()) + " ms: " + status.dump());
  }
  ExpectExit(index, 1, options_.fenced_exit_timeout, "fenced", " of SIGCONT");
}

void FaultInjector::RestartScheduler() {
  const pid_t old_pid = cluster_.scheduler_pid();
  const ::testing::AssertionResult restarted = cluster_.KillAndRestartScheduler();
  Note(Fault::kRestartScheduler, "kill -9 scheduler (pid " + std::to_string(old_pid) +
                                     ") and start it again on its --state_dir");
  if (!restarted) {
    Problem(std::string("the scheduler did not start again: ") + restarted.message());
    replacement_failed_ = true;  // nothing more can be learnt
    return;
  }
  // The same worker processes come back; none is declared dead.
  std::set<pid_t> expected;
  for (int index : active_) expected.insert(cluster_.worker_pid(index));
  nlohmann::json status;
  const bool all_back = cluster_.WaitForStatus(
      [&](const nlohmann::json& s) {
        if (s.value("recovering", true) || !s.contains("workers")) return false;
        std::set<pid_t> alive;
        for (const nlohmann::json& w : s["workers"]) {
          if (w.value("state", "") == "alive") alive.insert(w.value("pid", 0));
        }
        return alive == expected;
      },
      options_.reconnect_timeout, &status);
  if (!all_back) {
    Problem("after the scheduler's restart, its workers did not all reconnect within " +
            std::to_string(options_.reconnect_timeout.count()) + " ms: " + status.dump());
  }
}

void FaultInjector::ExpectExit(int index, int code, std::chrono::milliseconds timeout,
                               const std::string& which, const std::string& since) {
  const pid_t pid = cluster_.worker_pid(index);
  const std::optional<int> exit = cluster_.WaitForWorkerExit(index, timeout);
  if (ExitedWith(exit, code)) return;
  Problem(which + " worker-" + std::to_string(index) + " (pid " + std::to_string(pid) +
          ") did not exit with code " + std::to_string(code) + " within " +
          std::to_string(timeout.count()) + " ms" + since + ": " + DescribeExit(exit));
  cluster_.KillWorker(index);
}

bool FaultInjector::StartReplacement() {
  const ::testing::AssertionResult started = cluster_.AddWorker();
  if (!started) {
    Problem(std::string("a replacement worker did not start: ") + started.message());
    replacement_failed_ = true;
    return false;
  }
  const int index = cluster_.num_workers() - 1;
  active_.push_back(index);
  worker_pids_.insert(cluster_.worker_pid(index));
  return true;
}

void FaultInjector::NoteExecutors() {
  for (int index : active_) {
    for (const ProcessInfo& p : ExecutorsOf(cluster_.worker_pid(index))) {
      executor_pids_seen_.insert(p.pid);
    }
  }
}

void FaultInjector::Note(Fault fault, const std::string& what) {
  ++counts_[fault];
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start_)
                              .count();
  char when[32];
  std::snprintf(when, sizeof(when), "%6.2fs ", static_cast<double>(elapsed_ms) / 1000.0);
  journal_.push_back(when + std::string(FaultName(fault)) + ": " + what);
}

void FaultInjector::Problem(const std::string& what) { problems_.push_back(what); }

int FaultInjector::count(Fault fault) const {
  auto it = counts_.find(fault);
  return it == counts_.end() ? 0 : it->second;
}

std::string FaultInjector::Journal() const {
  std::ostringstream out;
  for (const std::string& line : journal_) out << "  " << line << "\n";
  return out.str();
}

}  // namespace fleet_chaos
