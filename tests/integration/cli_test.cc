// The `fleet` command-line tool, run as a real subprocess against a real
// cluster: its figures match /status, it lists workers and tasks, cancels a
// task of another client, shows and follows the cluster's events, and says
// clearly when it cannot reach the scheduler.
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"
#include "tests/testing/subprocess.h"

namespace fleet_it {
namespace {

using fleet::test::CommandResult;
using fleet::test::RunCommand;
using ::testing::HasSubstr;

// Bound of every CLI run expected to end (its own --timeout is 5 s).
constexpr std::chrono::seconds kCliTimeout(30);

std::string Describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
         "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// A task id as `fleet tasks` prints it: the hex of the ref's object id
// without its 4-byte return index.
std::string TaskHex(const std::string& object_id_hex) { return object_id_hex.substr(0, 48); }

class CliTest : public ClusterTest {
 protected:
  void TearDown() override {
    if (!gate_.empty()) std::ofstream(gate_).put('\n');  // let gated tasks end
    ClusterTest::TearDown();
  }

  CommandResult Fleet(std::vector<std::string> args) {
    args.insert(args.begin(), {FLEET_CLI, "--address=" + cluster().scheduler_address()});
    return RunCommand(args, kCliTimeout);
  }

  // Tasks that run until the test opens the gate (or TearDown does).
  std::vector<fleet::ObjectRef<int>> SubmitGated(int count) {
    gate_ = cluster().temp_dir() + "/gate";
    std::vector<fleet::ObjectRef<int>> refs;
    for (int i = 0; i < count; ++i) {
      refs.push_back(fleet::Task(GatedSquare).Remote(GatedInput{.value = i, .gate_path = gate_}));
    }
    return refs;
  }
  void OpenGate() { std::ofstream(gate_).put('\n'); }

  std::string gate_;
};

TEST_F(CliTest, StatusJsonIsTheStatusDocumentDuringAJob) {
  const int quick = 20;
  for (int i = 0; i < quick; ++i)
    EXPECT_EQ(fleet::Task(Square).Remote(i).Get(kResultTimeout), i * i);
  std::vector<fleet::ObjectRef<int>> refs = SubmitGated(2 * kWorkers * kSlotsPerWorker);
  ASSERT_TRUE(cluster().WaitForStatus(EveryWorkerRunsATask, kStatusTimeout));

  const nlohmann::json before = cluster().Status();
  const CommandResult run = Fleet({"status", "--json"});
  const nlohmann::json after = cluster().Status();
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  const nlohmann::json cli = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_FALSE(cli.is_discarded()) << run.out;

  EXPECT_EQ(cli["version"], after["version"]);
  EXPECT_EQ(cli["epoch"], after["epoch"]);
  std::set<std::string> cli_workers, http_workers;
  for (const nlohmann::json& w : cli["workers"]) cli_workers.insert(w["id"].get<std::string>());
  for (const nlohmann::json& w : after["workers"]) http_workers.insert(w["id"].get<std::string>());
  EXPECT_EQ(cli_workers, http_workers);
  EXPECT_EQ(cli_workers.size(), static_cast<std::size_t>(kWorkers));
  EXPECT_EQ(cli["slots"]["total"], after["slots"]["total"]);
  const auto finished = [](const nlohmann::json& s) { return s["tasks"]["finished"].get<int>(); };
  EXPECT_GE(finished(cli), quick);
  EXPECT_LE(finished(before), finished(cli));
  EXPECT_LE(finished(cli), finished(after));
  EXPECT_GT(cli["tasks"]["assigned"].get<int>(), 0) << run.out;

  // The table says the same.
  const CommandResult table = Fleet({"status"});
  ASSERT_EQ(table.exit_code, 0) << Describe(table);
  EXPECT_THAT(table.out, HasSubstr("workers     " + std::to_string(kWorkers) + "\n"));
  EXPECT_THAT(table.out, HasSubstr("busy of " + std::to_string(kWorkers * kSlotsPerWorker)));
  EXPECT_THAT(table.out, HasSubstr("tasks/s over 10s"));
  for (const nlohmann::json& w : after["workers"]) {
    EXPECT_THAT(table.out, HasSubstr(w["address"].get<std::string>()));
  }

  // --watch redraws --count times, then ends.
  const CommandResult watch = Fleet({"status", "--watch", "--interval=100ms", "--count=2"});
  ASSERT_EQ(watch.exit_code, 0) << Describe(watch);
  std::size_t frames = 0;
  for (std::size_t at = watch.out.find("\033[2J"); at != std::string::npos;
       at = watch.out.find("\033[2J", at + 1)) {
    frames++;
  }
  EXPECT_EQ(frames, 2u) << watch.out;
  OpenGate();
  for (const auto& ref : refs) ref.Get(kResultTimeout);
}

TEST_F(CliTest, WorkersListsEveryWorker) {
  const nlohmann::json status = cluster().Status();
  const CommandResult table = Fleet({"workers"});
  ASSERT_EQ(table.exit_code, 0) << Describe(table);
  const CommandResult json = Fleet({"workers", "--json"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  const nlohmann::json workers = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(workers.is_array()) << json.out;
  EXPECT_EQ(workers.size(), static_cast<std::size_t>(kWorkers));
  ASSERT_EQ(status["workers"].size(), static_cast<std::size_t>(kWorkers));
  for (const nlohmann::json& w : status["workers"]) {
    const std::string address = w["address"].get<std::string>();
    EXPECT_THAT(table.out, HasSubstr(address));
    EXPECT_THAT(table.out, HasSubstr(w["id"].get<std::string>().substr(0, 8) + "  " + address));
    EXPECT_THAT(json.out, HasSubstr("\"" + address + "\""));
  }
}

TEST_F(CliTest, TasksListsARunningJobsTasksByState) {
  std::vector<fleet::ObjectRef<int>> refs = SubmitGated(kWorkers * kSlotsPerWorker);
  // Waits in the scheduler for its argument, a gated task's result.
  fleet::ObjectRef<int> dependent = fleet::Task(Square).Remote(refs[0]);
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["assigned"].get<int>() > 0; },
      kStatusTimeout));

  const CommandResult assigned = Fleet({"tasks", "--state=assigned"});
  ASSERT_EQ(assigned.exit_code, 0) << Describe(assigned);
  EXPECT_THAT(assigned.out, HasSubstr("GatedSquare  assigned  127.0.0.1:"));
  EXPECT_THAT(assigned.out, ::testing::Not(HasSubstr("waiting")));

  const CommandResult waiting = Fleet({"tasks", "--state=waiting"});
  ASSERT_EQ(waiting.exit_code, 0) << Describe(waiting);
  EXPECT_THAT(waiting.out, HasSubstr(TaskHex(dependent.Id()) + "  Square"));
  EXPECT_THAT(waiting.out, ::testing::Not(HasSubstr("GatedSquare")));

  // Every task of the job, as JSON, bounded by --limit.
  const CommandResult all = Fleet({"tasks", "--json", "--limit=2"});
  ASSERT_EQ(all.exit_code, 0) << Describe(all);
  const nlohmann::json listed = nlohmann::json::parse(all.out, nullptr, false);
  ASSERT_FALSE(listed.is_discarded()) << all.out;
  EXPECT_EQ(listed["tasks"].size(), 2u);
  EXPECT_EQ(listed["matching"].get<int>(), static_cast<int>(refs.size()) + 1);

  const CommandResult bad = Fleet({"tasks", "--state=running"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_THAT(bad.err, HasSubstr("expected waiting, ready or assigned"));

  OpenGate();
  EXPECT_EQ(dependent.Get(kResultTimeout), 0);
}

TEST_F(CliTest, CancelFailsAQueuedTaskWithTaskCancelled) {
  std::vector<fleet::ObjectRef<int>> refs = SubmitGated(1);
  fleet::ObjectRef<int> queued = fleet::Task(Square).Remote(refs[0]);
  const std::string id = TaskHex(queued.Id());
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["waiting"].get<int>() == 1; },
      kStatusTimeout));

  const CommandResult cancel = Fleet({"cancel", id});
  ASSERT_EQ(cancel.exit_code, 0) << Describe(cancel);
  EXPECT_THAT(cancel.out, HasSubstr("(it was waiting)"));
  EXPECT_THROW(queued.Get(kResultTimeout), fleet::TaskCancelled);
  try {
    queued.Get(kResultTimeout);
  } catch (const fleet::TaskCancelled& e) {
    EXPECT_THAT(e.what(), HasSubstr("fleet cancel"));
  }

  const CommandResult again = Fleet({"cancel", id});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_THAT(again.err, HasSubstr("already finished"));
  const CommandResult unknown = Fleet({"cancel", std::string(48, 'a')});
  EXPECT_EQ(unknown.exit_code, 1) << Describe(unknown);
  EXPECT_THAT(unknown.err, HasSubstr("holds no task " + std::string(48, 'a')));
  const CommandResult malformed = Fleet({"cancel", "not-a-task"});
  EXPECT_EQ(malformed.exit_code, 2) << Describe(malformed);
  EXPECT_THAT(malformed.err, HasSubstr("is not a task id"));

  // The gated task itself is untouched.
  OpenGate();
  EXPECT_EQ(refs[0].Get(kResultTimeout), 0);
}

TEST_F(CliTest, LogsShowWorkersJoiningAndTheJob) {
  const CommandResult logs = Fleet({"logs"});
  ASSERT_EQ(logs.exit_code, 0) << Describe(logs);
  const nlohmann::json status = cluster().Status();
  for (const nlohmann::json& w : status["workers"]) {
    EXPECT_THAT(logs.out,
                HasSubstr("worker_joined  worker=" + w["id"].get<std::string>().substr(0, 8) +
                          " address=" + w["address"].get<std::string>()));
  }
  EXPECT_THAT(logs.out, HasSubstr("job_started"));  // this test's client
}

TEST_F(CliTest, LogsFollowStreamsEventsAndTaskOutputAsTheyHappen) {
  std::string error;
  std::unique_ptr<fleet::test::Subprocess> follow = fleet::test::Subprocess::Start(
      {FLEET_CLI, "--address=" + cluster().scheduler_address(), "logs", "--follow", "--tail=1"}, {},
      &error);
  ASSERT_NE(follow, nullptr) << error;
  // The one recent event comes first; from then on it follows.
  ASSERT_TRUE(
      follow->WaitForOutput([](const std::string& out,
                               const std::string&) { return out.find('\n') != std::string::npos; },
                            kCliTimeout))
      << follow->out() << follow->err();

  EXPECT_EQ(fleet::Task(PrintLines).Remote(std::string("followed"), 3).Get(kResultTimeout), 3);
  EXPECT_THAT(GetError(fleet::Task(ThrowInvalidInput).Remote(std::string("on purpose"))),
              ::testing::Optional(::testing::_));
  ASSERT_TRUE(cluster().AddWorker());
  std::string joined;
  const nlohmann::json status = cluster().Status();
  for (const nlohmann::json& w : status["workers"]) {
    if (w["pid"].get<int>() == cluster().worker_pid(kWorkers)) {
      joined = "worker_joined  worker=" + w["id"].get<std::string>().substr(0, 8);
    }
  }
  ASSERT_FALSE(joined.empty()) << "the added worker is not in /status";
  EXPECT_TRUE(follow->WaitForOutput(
      [&](const std::string& out, const std::string&) {
        return out.find("followed 2") != std::string::npos &&
               out.find("kind=USER_EXCEPTION") != std::string::npos &&
               out.find(joined) != std::string::npos;
      },
      kCliTimeout))
      << follow->out() << follow->err();
  EXPECT_THAT(follow->out(), HasSubstr("stdout  (pid="));
  EXPECT_THAT(follow->out(), HasSubstr("task_failed"));
  EXPECT_THAT(follow->out(), HasSubstr("function=ThrowInvalidInput"));
}

TEST(CliWithoutClusterTest, UnreachableSchedulerIsAClearErrorAndNonzeroExit) {
  const CommandResult run = RunCommand({FLEET_CLI, "--address=127.0.0.1:1", "status"}, kCliTimeout);
  EXPECT_EQ(run.exit_code, 1) << Describe(run);
  EXPECT_THAT(run.err, HasSubstr("fleet: cannot reach the scheduler at 127.0.0.1:1 "
                                 "(connection refused); is it running? set --address or "
                                 "FLEET_ADDRESS"));
  // FLEET_ADDRESS is where it looks without --address.
  const CommandResult from_env =
      RunCommand({FLEET_CLI, "workers"}, kCliTimeout, {"FLEET_ADDRESS=127.0.0.1:2"});
  EXPECT_EQ(from_env.exit_code, 1) << Describe(from_env);
  EXPECT_THAT(from_env.err, HasSubstr("cannot reach the scheduler at 127.0.0.1:2"));
  for (const char* command : {"tasks", "logs"}) {
    const CommandResult other =
        RunCommand({FLEET_CLI, "--address=127.0.0.1:1", command}, kCliTimeout);
    EXPECT_EQ(other.exit_code, 1) << Describe(other);
    EXPECT_THAT(other.err, HasSubstr("cannot reach the scheduler")) << command;
  }
}

TEST(CliWithoutClusterTest, HelpDescribesEveryCommand) {
  const CommandResult top = RunCommand({FLEET_CLI, "--help"}, kCliTimeout);
  EXPECT_EQ(top.exit_code, 0) << Describe(top);
  for (const char* command : {"status", "workers", "tasks", "cancel", "logs"}) {
    EXPECT_THAT(top.out, HasSubstr(std::string("  ") + command)) << command;
    const CommandResult help = RunCommand({FLEET_CLI, command, "--help"}, kCliTimeout);
    EXPECT_EQ(help.exit_code, 0) << Describe(help);
    EXPECT_THAT(help.out, HasSubstr(std::string("usage: fleet ") + command));
    EXPECT_THAT(help.out, HasSubstr("--address=HOST:PORT"));
  }
  const CommandResult none = RunCommand({FLEET_CLI}, kCliTimeout);
  EXPECT_EQ(none.exit_code, 2) << Describe(none);
  EXPECT_THAT(none.out, HasSubstr("usage: fleet"));
  const CommandResult unknown = RunCommand({FLEET_CLI, "frobnicate"}, kCliTimeout);
  EXPECT_EQ(unknown.exit_code, 2) << Describe(unknown);
  EXPECT_THAT(unknown.err, HasSubstr("unknown command \"frobnicate\""));
}

}  // namespace
}  // namespace fleet_it
