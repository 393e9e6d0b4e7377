#include "tests/chaos/chaos_job.h"

#include <deque>
#include <exception>
#include <functional>
#include <optional>
#include <utility>

#include "fleet/fleet.h"
#include "tests/integration/test_tasks.h"

namespace fleet_chaos {
namespace {

using fleet_it::ArrayDigest;
using fleet_it::BigArrayValue;

constexpr int kMaxProblems = 20;
// The job is cut into blocks of kBlockTasks tasks of a fixed mix (see
// PlanBlock); crash tasks come every kCrashEveryBlocks blocks.
constexpr int kBlockTasks = 50;
constexpr int kSleepyPerBlock = 12;
constexpr int kCrashEveryBlocks = 20;
static_assert(kTotalTasks % kBlockTasks == 0 && kFinalTasks % kBlockTasks == 0);
// 128 KiB of doubles: above the 100 KiB inline threshold, so the arrays
// live in the workers' stores, never in the scheduler.
constexpr int64_t kArrayElements = 16 * 1024;
constexpr double kShift = 0.5;
// One array_dag in this many also reads its middle array on the client.
constexpr int kClientReadsEvery = 4;
// Faults come about once a second here, far more often than in a real
// cluster: unlimited retries of machine failures keep an unlucky task that
// is hit again and again from failing, which fleet would rightly report.
constexpr fleet::TaskOptions kUnderChaos{.max_retries = -1};
// An always_crash task is run twice: its error must still name SIGSEGV.
constexpr fleet::TaskOptions kAlwaysCrash{.max_retries = 1};

enum class Unit { kShort, kSleepy, kIntDag, kArrayDag, kCrashOnce, kAlwaysCrash };

int TasksIn(Unit unit) { return unit == Unit::kIntDag || unit == Unit::kArrayDag ? 3 : 1; }

// The units of block `block`, kBlockTasks tasks in all: the DAGs first (so
// their later stages queue behind short work), sleepy tasks spread among
// the short ones.
std::vector<Unit> PlanBlock(int block) {
  std::vector<Unit> plan = {Unit::kArrayDag, Unit::kIntDag};
  if (block % kCrashEveryBlocks == 0) plan.push_back(Unit::kAlwaysCrash);
  if (block % kCrashEveryBlocks == kCrashEveryBlocks / 2) plan.push_back(Unit::kCrashOnce);
  int tasks = 0;
  for (Unit u : plan) tasks += TasksIn(u);
  for (int k = 0; tasks < kBlockTasks; ++k, ++tasks) {
    plan.push_back(k % 3 == 0 && k / 3 < kSleepyPerBlock ? Unit::kSleepy : Unit::kShort);
  }
  return plan;
}

// A submitted unit whose results the client has not checked yet.
struct Pending {
  std::string what;  // "Square(17)", for problem reports
  std::function<void()> check;
};

class Job {
 public:
  explicit Job(const JobOptions& options) : options_(options) {}

  JobReport Run() {
    try {
      for (int block = 0; block < kTotalTasks / kBlockTasks && !report_.hung; ++block) {
        if (block == (kTotalTasks - kFinalTasks) / kBlockTasks && options_.before_final_tasks) {
          options_.before_final_tasks();
        }
        for (Unit unit : PlanBlock(block)) {
          Submit(unit);
          while (static_cast<int>(window_.size()) > options_.window && !report_.hung) CheckOldest();
        }
      }
      while (!window_.empty() && !report_.hung) CheckOldest();
    } catch (const std::exception& e) {
      Problem(std::string("the job stopped: ") + e.what());
    }
    return std::move(report_);
  }

 private:
  void Submit(Unit unit) {
    const int n = report_.units_submitted++;
    // Inputs differ per seed, so each seed checks other values.
    const int x = (n + static_cast<int>(options_.seed) * 1000) % 30'000;
    report_.tasks_submitted += TasksIn(unit);
    switch (unit) {
      case Unit::kShort:
        return SubmitShort(x);
      case Unit::kSleepy:
        return SubmitSleepy(x);
      case Unit::kIntDag:
        return SubmitIntDag(x);
      case Unit::kArrayDag:
        return SubmitArrayDag(n, x);
      case Unit::kCrashOnce:
        return SubmitCrashOnce(n, x);
      case Unit::kAlwaysCrash:
        return SubmitAlwaysCrash(x);
    }
  }

  void SubmitShort(int x) {
    if (x % 2 == 0) {
      Expect("Square(" + std::to_string(x) + ")",
             fleet::Task(fleet_it::Square).Options(kUnderChaos).Remote(x), x * x);
    } else {
      Expect("Add(" + std::to_string(x) + ", 7)",
             fleet::Task(fleet_it::Add).Options(kUnderChaos).Remote(int64_t{x}, int64_t{7}),
             int64_t{x} + 7);
    }
  }

  void SubmitSleepy(int x) {
    const int ms = 5 + x % 16;
    Expect("SleepThenSquare(" + std::to_string(x) + ", " + std::to_string(ms) + ")",
           fleet::Task(fleet_it::SleepThenSquare).Options(kUnderChaos).Remote(x, ms), x * x);
  }

  void SubmitIntDag(int x) {
    const int64_t y = x + 1;
    auto squared =
        fleet::Task(fleet_it::Multiply).Options(kUnderChaos).Remote(int64_t{x}, int64_t{x});
    auto tripled = fleet::Task(fleet_it::Multiply).Options(kUnderChaos).Remote(y, int64_t{3});
    Expect("Add(Multiply(" + std::to_string(x) + ", same), Multiply(" + std::to_string(y) + ", 3))",
           fleet::Task(fleet_it::Add).Options(kUnderChaos).Remote(squared, tripled),
           int64_t{x} * x + 3 * y);
  }

  void SubmitArrayDag(int n, int x) {
    const double seed = static_cast<double>(x % 1000);
    auto made =
        fleet::Task(fleet_it::MakeBigArray).Options(kUnderChaos).Remote(kArrayElements, seed);
    auto shifted = fleet::Task(fleet_it::ShiftArray).Options(kUnderChaos).Remote(made, kShift);
    auto digest = fleet::Task(fleet_it::DigestBigArray)
                      .Options(kUnderChaos)
                      .Remote(shifted, seed + kShift, 0);
    const std::string what = "DigestBigArray(ShiftArray(MakeBigArray(" +
                             std::to_string(kArrayElements) + ", " + std::to_string(x % 1000) +
                             ")))";
    // Only the refs the check needs stay alive; the scheduler keeps the
    // rest for as long as the DAG needs them.
    std::optional<fleet::ObjectRef<fleet::Array<double>>> read_on_client;
    if (n % kClientReadsEvery == 0) read_on_client = shifted;
    window_.push_back({what, [this, what, digest, read_on_client, seed] {
                         CheckDigest(what, digest, seed + kShift);
                         if (read_on_client)
                           CheckArrayOnClient(what, *read_on_client, seed + kShift);
                       }});
  }

  void SubmitCrashOnce(int n, int x) {
    const std::string marker = options_.marker_dir + "/crash-once-" + std::to_string(n);
    auto ref = fleet::Task(fleet_it::SegfaultOnce).Options(kUnderChaos).Remote(marker, x);
    window_.push_back({"SegfaultOnce(" + marker + ")", [this, ref, x, marker] {
                         const std::string what = "SegfaultOnce(" + marker + ")";
                         if (std::optional<int> v = GetOrReport(what, ref); v) {
                           if (*v == x) {
                             ++report_.crash_once_succeeded;
                           } else {
                             Problem(what + " returned " + std::to_string(*v) + ", not " +
                                     std::to_string(x));
                           }
                         }
                       }});
  }

  void SubmitAlwaysCrash(int x) {
    ++report_.always_crash_submitted;
    auto ref = fleet::Task(fleet_it::Segfault).Options(kAlwaysCrash).Remote(x);
    const std::string what = "Segfault(" + std::to_string(x) + ")";
    window_.push_back({what, [this, ref, what] {
                         try {
                           const int v = ref.Get(options_.result_timeout);
                           Problem(what + " returned " + std::to_string(v) + " instead of failing");
                         } catch (const fleet::TaskError& e) {
                           report_.always_crash_failures.push_back({e.kind(), e.what()});
                         } catch (const fleet::GetTimeout&) {
                           Hung(what);
                         }
                       }});
  }

  // Queues the check that `ref` yields `expected`.
  template <typename T>
  void Expect(std::string what, fleet::ObjectRef<T> ref, T expected) {
    window_.push_back({what, [this, what, ref, expected] {
                         if (std::optional<T> v = GetOrReport(what, ref); v && *v != expected) {
                           Problem(what + " returned " + std::to_string(*v) + ", not " +
                                   std::to_string(expected));
                         }
                       }});
  }

  void CheckDigest(const std::string& what, const fleet::ObjectRef<ArrayDigest>& ref, double seed) {
    std::optional<ArrayDigest> d = GetOrReport(what, ref);
    if (!d) return;
    double sum = 0;
    for (uint64_t i = 1; i < static_cast<uint64_t>(kArrayElements); ++i)
      sum += BigArrayValue(seed, i);
    if (d->size != static_cast<uint64_t>(kArrayElements) || !d->pattern_ok || d->sum != sum) {
      Problem(what + " read a wrong array: size " + std::to_string(d->size) + ", pattern " +
              (d->pattern_ok ? "ok" : "wrong") + ", sum " + std::to_string(d->sum) +
              " instead of " + std::to_string(sum));
    }
  }

  void CheckArrayOnClient(const std::string& what,
                          const fleet::ObjectRef<fleet::Array<double>>& ref, double seed) {
    const std::string read = "reading the middle array of " + what + " on the client";
    try {
      auto view = ref.GetView(options_.result_timeout);
      const uint64_t last = static_cast<uint64_t>(kArrayElements) - 1;
      if (view.size() != static_cast<std::size_t>(kArrayElements) ||
          view[1] != BigArrayValue(seed, 1) || view[last] != BigArrayValue(seed, last)) {
        Problem(read + ": a wrong array of " + std::to_string(view.size()) + " elements");
      }
    } catch (const fleet::GetTimeout&) {
      Hung(read);
    } catch (const fleet::Error& e) {
      Problem(read + " failed: " + e.what());
    }
  }

  // The value of `ref`, or nullopt after recording why there is none.
  template <typename T>
  std::optional<T> GetOrReport(const std::string& what, const fleet::ObjectRef<T>& ref) {
    try {
      return ref.Get(options_.result_timeout);
    } catch (const fleet::GetTimeout&) {
      Hung(what);
    } catch (const fleet::Error& e) {  // TaskError included: none of these may fail
      Problem(what + " failed: " + e.what());
    }
    return std::nullopt;
  }

  void CheckOldest() {
    Pending oldest = std::move(window_.front());
    window_.pop_front();
    oldest.check();
    ++report_.units_checked;
  }

  void Hung(const std::string& what) {
    report_.hung = true;
    Problem(what + " did not arrive within " + std::to_string(options_.result_timeout.count()) +
            " s (" + std::to_string(window_.size()) + " more results outstanding)");
  }

  void Problem(std::string what) {
    if (++report_.problem_count <= kMaxProblems) report_.problems.push_back(std::move(what));
  }

  const JobOptions options_;
  JobReport report_;
  std::deque<Pending> window_;
};

}  // namespace

JobReport RunChaosJob(const JobOptions& options) { return Job(options).Run(); }

}  // namespace fleet_chaos
