// Process isolation (the workers' default --isolation=process): a task
// that crashes, exits, runs past its timeout, outgrows its memory limit or
// is cancelled costs only its executor process. The worker daemon, its
// store and its other tasks carry on, the task is retried where that is
// the rule, and its error says what happened to it.
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using ::testing::HasSubstr;

// Long enough that a task not stopped at its timeout (or cancel) would
// make Get(kResultTimeout) give up.
constexpr int kNeverEndsMs = 2 * 60'000;
constexpr int64_t kMemoryLimitMiB = 256;

class IsolationTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override {
    return {"--executor_memory_limit=" + std::to_string(kMemoryLimitMiB << 20)};
  }

  void ExpectDaemonsAlive() {
    for (int pid : WorkerPids()) EXPECT_EQ(kill(pid, 0), 0) << "worker " << pid << " died";
    nlohmann::json status;
    EXPECT_TRUE(cluster().WaitForStatus(
        [](const nlohmann::json& s) { return s["workers"].size() == std::size_t{kWorkers}; },
        kStatusTimeout, &status))
        << status.dump();
  }

  // Waits until /status counts at least `restarts` replaced executors.
  bool WaitForExecutorRestarts(double restarts, nlohmann::json* status) {
    return cluster().WaitForStatus(
        [restarts](const nlohmann::json& s) {
          return SumOverWorkers(s, "executor_restarts") >= restarts;
        },
        kStatusTimeout, status);
  }
};

TEST_F(IsolationTest, TasksRunInExecutorProcessesOfTheirWorker) {
  const std::vector<int> daemons = WorkerPids();
  std::vector<fleet::ObjectRef<int>> process_pids;
  for (int i = 0; i < 8; ++i) process_pids.push_back(fleet::Task(ProcessPid).Remote());
  for (auto& ref : process_pids) {
    const int pid = ref.Get(kResultTimeout);
    EXPECT_THAT(daemons, ::testing::Not(::testing::Contains(pid)));
    EXPECT_NE(pid, getpid());
  }
  EXPECT_THAT(daemons, ::testing::Contains(fleet::Task(WorkerPid).Remote().Get(kResultTimeout)));
}

TEST_F(IsolationTest, IdleExecutorKilledFromOutsideIsReapedAndReplacedAtOnce) {
  const int executor = fleet::Task(ProcessPid).Remote().Get(kResultTimeout);
  nlohmann::json status = cluster().Status();
  const double restarts = SumOverWorkers(status, "executor_restarts");
  // No task is sent to it: the worker must notice on its own.
  ASSERT_EQ(kill(executor, SIGKILL), 0);
  EXPECT_TRUE(WaitForExecutorRestarts(restarts + 1, &status)) << status.dump();
  EXPECT_TRUE(fleet::test::PollUntil([&] { return kill(executor, 0) != 0 && errno == ESRCH; },
                                     kStatusTimeout))
      << "the killed executor " << executor << " was not reaped";
  ExpectDaemonsAlive();
  EXPECT_EQ(fleet::Task(Square).Remote(6).Get(kResultTimeout), 36);
}

TEST_F(IsolationTest, SegfaultFailsOnlyItsTaskAfterItsRetriesAndNamesTheSignal) {
  std::vector<fleet::ObjectRef<int>> neighbours;
  for (int i = 0; i < 6; ++i) neighbours.push_back(fleet::Task(SleepThenPid).Remote(300));
  fleet::ObjectRef<int> crashing = fleet::Task(Segfault).Options({.max_retries = 2}).Remote(7);

  std::optional<fleet::TaskError> error = GetError(crashing);
  ASSERT_TRUE(error.has_value()) << "Segfault returned";
  EXPECT_EQ(error->kind(), "executor_died");
  EXPECT_EQ(error->function_name(), "Segfault");
  EXPECT_THAT(error->message(), HasSubstr("executor crashed: SIGSEGV"));
  EXPECT_THAT(error->message(), HasSubstr("while running Segfault"));
  EXPECT_EQ(error->attempt(), 3u) << "one run and two retries";

  const std::vector<int> daemons = WorkerPids();
  for (auto& ref : neighbours) EXPECT_THAT(daemons, ::testing::Contains(ref.Get(kResultTimeout)));
  ExpectDaemonsAlive();
  nlohmann::json status;
  EXPECT_TRUE(WaitForExecutorRestarts(3, &status)) << status.dump();
  // The slots work on with their new executors.
  EXPECT_EQ(fleet::Task(Square).Remote(9).Get(kResultTimeout), 81);
}

TEST_F(IsolationTest, CrashAmongShortTasksFailsOnlyTheCrashingTask) {
  // Short tasks are sent to an executor ahead of time; those queued behind
  // the crash in the dead executor run again in its replacement. Those just
  // before it, whose answers the executor still held back, are not blamed
  // for the crash (no retries: one blamed would fail).
  std::vector<fleet::ObjectRef<int>> before, after;
  for (int i = 0; i < 300; ++i) {
    before.push_back(fleet::Task(Square).Options({.max_retries = 0}).Remote(i));
  }
  fleet::ObjectRef<int> crashing = fleet::Task(Segfault).Options({.max_retries = 0}).Remote(1);
  for (int i = 0; i < 300; ++i) after.push_back(fleet::Task(Square).Remote(i));
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(before[i].Get(kResultTimeout), i * i);
    EXPECT_EQ(after[i].Get(kResultTimeout), i * i);
  }
  std::optional<fleet::TaskError> error = GetError(crashing);
  ASSERT_TRUE(error.has_value());
  EXPECT_THAT(error->message(), HasSubstr("SIGSEGV"));
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return s["tasks"]["finished"].get<int>() == 600 && s["tasks"]["failed"].get<int>() == 1;
      },
      kStatusTimeout, &status))
      << status.dump();
}

TEST_F(IsolationTest, TaskThatCrashesOnceSucceedsOnItsRetry) {
  const std::string marker =
      (std::filesystem::temp_directory_path() / ("fleet-segfault-once-" + std::to_string(getpid())))
          .string();
  std::filesystem::remove(marker);
  EXPECT_EQ(fleet::Task(SegfaultOnce).Remote(marker, 42).Get(kResultTimeout), 42);
  EXPECT_TRUE(std::filesystem::exists(marker)) << "the first run did not happen";
  std::filesystem::remove(marker);
}

TEST_F(IsolationTest, ExitInATaskNamesTheExitStatus) {
  std::optional<fleet::TaskError> error =
      GetError(fleet::Task(ExitWith).Options({.max_retries = 0}).Remote(3));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "executor_died");
  EXPECT_THAT(error->message(), HasSubstr("executor exited with status 3"));
  EXPECT_EQ(error->attempt(), 1u);
  ExpectDaemonsAlive();
}

TEST_F(IsolationTest, TimeoutKillsTheTaskAndIsNotRetried) {
  fleet::ObjectRef<int> slow =
      fleet::Task(SleepMs).Options({.timeout = std::chrono::milliseconds(500)}).Remote(kNeverEndsMs);
  std::optional<fleet::TaskError> error = GetError(slow);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "timed_out");
  EXPECT_THAT(error->message(), HasSubstr("ran past its timeout"));
  EXPECT_EQ(error->attempt(), 1u);
  EXPECT_EQ(fleet::Task(SleepMs).Options({.timeout = std::chrono::milliseconds(60'000)}).Remote(5)
                .Get(kResultTimeout),
            5);
  EXPECT_THROW(fleet::Task(SleepMs).Options({.timeout = std::chrono::milliseconds(-1)}),
               fleet::Error);
}

TEST_F(IsolationTest, CancelKillsARunningTask) {
  // Every slot busy with a task that would outlast the test.
  std::vector<fleet::ObjectRef<int>> endless;
  for (int i = 0; i < kWorkers * kSlotsPerWorker; ++i) {
    endless.push_back(fleet::Task(SleepMs).Remote(kNeverEndsMs));
  }
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return SumOverWorkers(s, "tasks_running") >= kWorkers * kSlotsPerWorker;
      },
      kStatusTimeout));
  for (auto& ref : endless) fleet::Cancel(ref);
  for (auto& ref : endless) EXPECT_THROW(ref.Get(kResultTimeout), fleet::TaskCancelled);
  // Their slots are free again: these could not run otherwise.
  std::vector<fleet::ObjectRef<int>> after;
  for (int i = 0; i < kWorkers * kSlotsPerWorker; ++i) after.push_back(fleet::Task(Square).Remote(i));
  for (int i = 0; i < kWorkers * kSlotsPerWorker; ++i) EXPECT_EQ(after[i].Get(kResultTimeout), i * i);
  nlohmann::json status;
  EXPECT_TRUE(WaitForExecutorRestarts(kWorkers * kSlotsPerWorker, &status)) << status.dump();
}

TEST_F(IsolationTest, MemoryLimitCountsTheHeapNotTheStore) {
  // Over the limit on the heap: killed, and named.
  std::optional<fleet::TaskError> error = GetError(
      fleet::Task(TouchHeapMiB).Options({.max_retries = 0}).Remote(2 * kMemoryLimitMiB, 30'000));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "executor_died");
  EXPECT_THAT(error->message(), HasSubstr("over its limit of 256 MiB"));
  EXPECT_THAT(error->message(), HasSubstr("--executor_memory_limit"));

  // Under it: fine.
  EXPECT_EQ(fleet::Task(TouchHeapMiB).Remote(kMemoryLimitMiB / 4, 0).Get(kResultTimeout),
            (kMemoryLimitMiB / 4) << 20);

  // Reading an object larger than the limit in place in the store does not
  // count against it. (Built by this process, in the store: a task making
  // it would hold it on its heap first.)
  const int64_t doubles = (int64_t{3} * kMemoryLimitMiB / 2 << 20) / 8;
  fleet::ArrayBuilder<double> builder(static_cast<std::size_t>(doubles));
  for (int64_t i = 0; i < doubles; ++i) builder[static_cast<std::size_t>(i)] = BigArrayValue(1.0, i);
  fleet::ObjectRef<fleet::Array<double>> big = std::move(builder).Seal();
  WindowMeanResult mean = fleet::Task(WindowMean).Remote(big, int64_t{0}, doubles).Get(kResultTimeout);
  EXPECT_NEAR(mean.mean, 1.0 + 499.5, 1.0);
  ExpectDaemonsAlive();
}

TEST_F(IsolationTest, ArraysOfATaskAreBuiltInTheStoreAndOnlyTheReturnedOneStays) {
  constexpr int64_t kDoubles = (int64_t{8} << 20) / 8;
  {
    // Returned: sealed as the result where it was built.
    fleet::Array<double> big =
        fleet::Task(ArrayNotingWhereBuilt).Remote(kDoubles).Get(kResultTimeout);
    ASSERT_EQ(big.size(), static_cast<std::size_t>(kDoubles));
    EXPECT_EQ(big[0], 1.0) << "not built in the store";
    EXPECT_EQ(big[kDoubles - 1], static_cast<double>(kDoubles - 1));
    // Small arrays stay on the heap.
    fleet::Array<double> small =
        fleet::Task(ArrayNotingWhereBuilt).Remote(1000).Get(kResultTimeout);
    EXPECT_EQ(small[0], 0.0);
    EXPECT_EQ(small[999], 999.0);

    // Not returned: given back to the store when destroyed.
    fleet::ObjectRef<fleet::Array<double>> kept =
        fleet::Task(ArrayNotingWhereBuilt).Remote(kDoubles);
    kept.Get(kResultTimeout);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(fleet::Task(SumOfTemporaryArrays).Remote(kDoubles, 3).Get(kResultTimeout),
                (std::vector<double>{3.0 * kDoubles, 3}));
    }
    const auto kept_bytes = static_cast<double>(fleet::SerializedSize(big));
    nlohmann::json status;
    EXPECT_TRUE(cluster().WaitForStatus(
        [kept_bytes](const nlohmann::json& s) {
          return SumOverWorkers(s, "store_bytes") == kept_bytes;
        },
        kStatusTimeout, &status))
        << "only `kept` should be left: " << status.dump();
  }
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return SumOverWorkers(s, "store_bytes") == 0; }, kStatusTimeout,
      &status))
      << status.dump();
}

TEST_F(IsolationTest, StoreDrainsAfterAnExecutorCrashesHoldingArguments) {
  {
    const int64_t doubles = (int64_t{32} << 20) / 8;
    fleet::ObjectRef<fleet::Array<double>> big = fleet::Task(MakeBigArray).Remote(doubles, 2.0);
    big.Get(kResultTimeout);
    // It reads `big` in place (a pin on its store connection), then crashes.
    std::optional<fleet::TaskError> error =
        GetError(fleet::Task(SegfaultAfterReading).Options({.max_retries = 1}).Remote(big));
    ASSERT_TRUE(error.has_value());
    EXPECT_THAT(error->message(), HasSubstr("SIGSEGV"));
  }
  // With the ref gone, nothing holds the array: not the dead executor's
  // pins, not the daemon's.
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return SumOverWorkers(s, "store_bytes") == 0; },
      kStatusTimeout, &status))
      << status.dump();
}

TEST_F(IsolationTest, WhatTasksPrintReachesTheirClientTaggedWithWorkerAndPid) {
  struct Seen {
    std::mutex mu;
    std::vector<fleet::TaskOutputLine> lines;  // guarded by mu
  };
  auto seen = std::make_shared<Seen>();
  fleet::Shutdown();
  fleet::Init({.address = cluster().scheduler_address(),
               .connect_timeout = 10s,
               .on_task_output = [seen](const fleet::TaskOutputLine& line) {
                 std::lock_guard<std::mutex> lock(seen->mu);
                 seen->lines.push_back(line);
               }});
  constexpr int kTasks = 6;
  constexpr int kLines = 5;
  std::vector<fleet::ObjectRef<int>> refs;
  for (int t = 0; t < kTasks; ++t) {
    refs.push_back(fleet::Task(PrintLines).Remote("task" + std::to_string(t), kLines));
  }
  for (auto& ref : refs) EXPECT_EQ(ref.Get(kResultTimeout), kLines);
  std::set<std::string> workers;
  const nlohmann::json status = cluster().Status();
  for (const nlohmann::json& w : status["workers"]) {
    workers.insert(w["address"].get<std::string>());
  }
  const auto all_arrived = [&] {
    std::lock_guard<std::mutex> lock(seen->mu);
    return seen->lines.size() >= static_cast<std::size_t>(kTasks * (kLines + 1));
  };
  for (int wait = 0; wait < 200 && !all_arrived(); ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::lock_guard<std::mutex> lock(seen->mu);
  ASSERT_EQ(seen->lines.size(), static_cast<std::size_t>(kTasks * (kLines + 1)));
  std::set<std::string> texts;
  for (const fleet::TaskOutputLine& line : seen->lines) {
    texts.insert(line.text);
    EXPECT_TRUE(workers.count(line.worker)) << line.worker;
    EXPECT_THAT(WorkerPids(), ::testing::Not(::testing::Contains(line.pid)))
        << "the line came from the daemon, not an executor";
    EXPECT_EQ(line.is_stderr, line.text.ends_with(" done")) << line.text;
  }
  for (int t = 0; t < kTasks; ++t) {
    const std::string tag = "task" + std::to_string(t);
    for (int i = 0; i < kLines; ++i) EXPECT_TRUE(texts.count(tag + " " + std::to_string(i)));
    EXPECT_TRUE(texts.count(tag + " done")) << tag;
  }
}

class ThreadIsolationTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override { return {"--isolation=thread"}; }
};

TEST_F(ThreadIsolationTest, TasksRunInTheDaemon) {
  const std::vector<int> daemons = WorkerPids();
  for (int i = 0; i < 4; ++i) {
    EXPECT_THAT(daemons, ::testing::Contains(fleet::Task(ProcessPid).Remote().Get(kResultTimeout)));
  }
  // A timeout cannot stop a thread: the task fails when it returns.
  std::optional<fleet::TaskError> error =
      GetError(fleet::Task(SleepMs).Options({.timeout = std::chrono::milliseconds(50)}).Remote(300));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "timed_out");

  // Arrays stay on the heap: one kept in a static would outlive the store.
  fleet::Array<double> big =
      fleet::Task(ArrayNotingWhereBuilt).Remote(int64_t{1} << 20).Get(kResultTimeout);
  EXPECT_EQ(big[0], 0.0);
  EXPECT_EQ(big[12345], 12345.0);
}

}  // namespace
}  // namespace fleet_it
