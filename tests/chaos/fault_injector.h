// FaultInjector: the chaos half of the chaos suite. While a job runs, it
// injects faults into a LocalProcessCluster one at a time, at intervals
// drawn from a PRNG seeded by the test (so a failing seed can be re-run),
// and checks that the cluster reacts to each as docs/operations.md says:
//
//   kill_worker      kill -9 a worker daemon; start a replacement
//   kill_executor    kill -9 one executor process of a worker; the daemon
//                    must survive and start a new executor
//   drain_worker     SIGTERM a worker and start a replacement; the old one
//                    must finish, hand over its objects and exit with 0
//   pause_worker     SIGSTOP a worker and start a replacement; once the
//                    scheduler has declared it dead (--heartbeat_timeout)
//                    SIGCONT it: it must find itself fenced and exit with 1
//   restart_scheduler
//                    kill -9 the scheduler and start it again on the same
//                    address and --state_dir: every worker must reconnect
//                    (none restarted) and the job carry on
//
// The first five faults are the five kinds in a seeded random order, so
// every seed exercises each; later ones are drawn at random. A worker is
// removed only while another one runs, and each removal starts a
// replacement, so the cluster never runs out of workers.
//
// Thread-compatible: Run it on the thread that started the cluster (the
// replacements' parent-death signal follows the thread that starts them).
#ifndef FLEET_TESTS_CHAOS_FAULT_INJECTOR_H_
#define FLEET_TESTS_CHAOS_FAULT_INJECTOR_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/testing/local_process_cluster.h"

namespace fleet_chaos {

enum class Fault { kKillWorker, kKillExecutor, kDrainWorker, kPauseWorker, kRestartScheduler };
inline constexpr Fault kAllFaults[] = {Fault::kKillWorker, Fault::kKillExecutor,
                                       Fault::kDrainWorker, Fault::kPauseWorker,
                                       Fault::kRestartScheduler};
const char* FaultName(Fault fault);

struct FaultInjectorOptions {
  uint32_t seed = 1;
  // Run stops after this many faults, even if the job goes on.
  int max_faults = 24;
  // The pause before each fault is drawn uniformly from this range.
  std::chrono::milliseconds min_interval{200};
  std::chrono::milliseconds max_interval{1200};
  // Bounds of the waits for the cluster's reaction to a fault.
  std::chrono::milliseconds declared_dead_timeout{15'000};  // after SIGSTOP
  std::chrono::milliseconds drain_timeout{45'000};          // SIGTERM to exit
  std::chrono::milliseconds fenced_exit_timeout{20'000};    // SIGCONT to exit
  std::chrono::milliseconds executor_restart_timeout{10'000};
  std::chrono::milliseconds reconnect_timeout{30'000};  // restart to all workers back
};

class FaultInjector {
 public:
  FaultInjector(fleet::test::LocalProcessCluster& cluster, FaultInjectorOptions options);

  // Injects faults until `done` becomes true or max_faults have been
  // injected, or a fault's replacement worker fails to start.
  void Run(const std::atomic<bool>& done);

  // What the cluster did wrong in reaction to a fault; empty when nothing.
  const std::vector<std::string>& problems() const { return problems_; }
  // What Run did, one line per fault, for failure messages.
  std::string Journal() const;
  int count(Fault fault) const;
  int total_faults() const { return static_cast<int>(journal_.size()); }
  // Whether one fault of each kind has been injected. Thread-safe.
  bool every_kind_injected() const { return every_kind_injected_.load(); }
  // Every worker daemon the cluster has run (faulted or not) and every
  // executor process seen while injecting, for the orphan check.
  const std::set<pid_t>& worker_pids() const { return worker_pids_; }
  const std::set<pid_t>& executor_pids_seen() const { return executor_pids_seen_; }
  // The worker daemons that Run killed, drained or paused.
  const std::set<pid_t>& removed_worker_pids() const { return removed_worker_pids_; }

 private:
  Fault NextFault();
  void Inject(Fault fault);
  void KillWorker(int index);
  void KillExecutor(int index);
  void DrainWorker(int index);
  void PauseWorker(int index);
  void RestartScheduler();
  // Starts a replacement worker and adds it to active_; false (and a
  // problem) when it does not join.
  bool StartReplacement();
  // Waits for worker `index` to exit with `code`; reports a problem (naming
  // it `which`, and `since` what) and kills it when it does not.
  void ExpectExit(int index, int code, std::chrono::milliseconds timeout,
                  const std::string& which, const std::string& since);
  // A random index from active_; removes it from active_ when `remove`.
  int PickWorker(bool remove);
  // Records the pids of every active worker's executors.
  void NoteExecutors();
  void Note(Fault fault, const std::string& what);
  void Problem(const std::string& what);

  fleet::test::LocalProcessCluster& cluster_;
  const FaultInjectorOptions options_;
  std::mt19937 rng_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<Fault> opening_faults_;  // the first faults, one of each kind
  std::vector<int> active_;            // indices of workers that take part
  bool replacement_failed_ = false;
  std::atomic<bool> every_kind_injected_{false};
  std::vector<std::string> journal_;
  std::vector<std::string> problems_;
  std::map<Fault, int> counts_;
  std::set<pid_t> worker_pids_;
  std::set<pid_t> executor_pids_seen_;
  std::set<pid_t> removed_worker_pids_;
};

}  // namespace fleet_chaos

#endif  // FLEET_TESTS_CHAOS_FAULT_INJECTOR_H_
