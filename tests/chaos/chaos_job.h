// The job of the chaos suite: kTotalTasks tasks of several shapes, submitted
// through a sliding window so that the client holds a bounded number of
// refs, each result checked against a value computed on the client.
//
//   short        Square(x), Add(a, b): well under a millisecond
//   sleepy       SleepThenSquare(x, 5..20 ms): keeps the slots busy, so
//                faults find tasks running
//   int_dag      Add(Multiply(x, x), Multiply(y, 3)): small results passed
//                as refs (inlined through the scheduler)
//   array_dag    DigestBigArray(ShiftArray(MakeBigArray(128 KiB))): arrays
//                live in the workers' stores and travel between them (and,
//                for some, to the client)
//   crash_once   SegfaultOnce(marker, v): crashes its executor on its first
//                run only, so it must succeed
//   always_crash Segfault(v): crashes on every run, so it must fail after
//                its retries with an error naming SIGSEGV
#ifndef FLEET_TESTS_CHAOS_CHAOS_JOB_H_
#define FLEET_TESTS_CHAOS_CHAOS_JOB_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fleet_chaos {

inline constexpr int kTotalTasks = 20'000;

struct JobOptions {
  uint32_t seed = 1;
  // Where crash_once tasks keep their markers (a directory on this host).
  std::string marker_dir;
  // The most units submitted and not yet checked.
  int window = 256;
  // Bound of each Get: a result not there by then counts as a hang.
  std::chrono::seconds result_timeout{120};
  // Called on the job's thread before it submits its last kFinalTasks
  // tasks: the test holds the job there until every kind of fault has been
  // injected, so that a fast machine cannot finish before the chaos has.
  std::function<void()> before_final_tasks;
};

inline constexpr int kFinalTasks = 2'000;

// How an always_crash task failed, for the test to judge against the
// faults that were injected.
struct ObservedFailure {
  std::string kind;     // TaskError::kind()
  std::string message;  // TaskError::what()
};

struct JobReport {
  int tasks_submitted = 0;
  int units_submitted = 0;
  int units_checked = 0;  // a DAG is one unit of three tasks
  int always_crash_submitted = 0;
  int crash_once_succeeded = 0;
  std::vector<ObservedFailure> always_crash_failures;
  // Wrong values, unexpected errors and hangs, the first kMaxProblems of
  // them; problem_count counts all.
  std::vector<std::string> problems;
  int problem_count = 0;
  bool hung = false;  // a Get timed out, so the job stopped early
};

// Runs the job on the fleet client that fleet::Init connected, from the
// calling thread. Never throws: whatever goes wrong is in the report.
JobReport RunChaosJob(const JobOptions& options);

}  // namespace fleet_chaos

#endif  // FLEET_TESTS_CHAOS_CHAOS_JOB_H_
