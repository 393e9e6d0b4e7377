// The `fleet` tool's parts that need no scheduler: its command line and
// what it prints.
#include <optional>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/text_table.h"
#include "cli/views.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fleet::cli {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<CommandLine> Parse(std::vector<std::string> args) {
  return ParseCommandLine(args,
                          [](const std::string& name) -> std::optional<std::vector<FlagSpec>> {
                            const Command* command = FindCommand(name);
                            if (command == nullptr) return std::nullopt;
                            return command->flags;
                          });
}

TEST(CommandLineTest, TakesFlagsInEitherFormAndOrder) {
  absl::StatusOr<CommandLine> line =
      Parse({"--address", "10.0.0.1:1", "tasks", "--state=ready", "--limit", "5"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->command, "tasks");
  EXPECT_EQ(line->Get("address", ""), "10.0.0.1:1");
  EXPECT_EQ(line->Get("state", ""), "ready");
  EXPECT_EQ(*line->GetInt("limit", 100, 1, 10), 5);

  line = Parse({"cancel", "abc", "--timeout=2s"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_THAT(line->positional, ::testing::ElementsAre("abc"));
  EXPECT_EQ(*line->GetDuration("timeout", absl::Seconds(5)), absl::Seconds(2));
}

TEST(CommandLineTest, RejectsWhatItDoesNotKnow) {
  EXPECT_THAT(std::string(Parse({"frobnicate"}).status().message()),
              HasSubstr("unknown command \"frobnicate\""));
  EXPECT_THAT(std::string(Parse({"workers", "--state=ready"}).status().message()),
              HasSubstr("unknown flag --state for \"workers\""));
  EXPECT_THAT(std::string(Parse({"--json", "status"}).status().message()),
              HasSubstr("go after the command"));
  EXPECT_THAT(std::string(Parse({"tasks", "--limit"}).status().message()),
              HasSubstr("--limit needs a value"));
  absl::StatusOr<CommandLine> line = Parse({"tasks", "--limit=0"});
  ASSERT_TRUE(line.ok());
  EXPECT_FALSE(line->GetInt("limit", 100, 1, 10).ok());
}

TEST(TextTableTest, AlignsColumns) {
  TextTable table({"NAME", ">COUNT"});
  table.AddRow({"a", "1"});
  table.AddRow({"longer", "100"});
  EXPECT_EQ(table.Render(),
            "NAME    COUNT\n"
            "a           1\n"
            "longer    100\n");
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatAge(75), "1m15s");
  EXPECT_EQ(FormatAge(0.25), "0.2s");
}

const char* kStatus = R"({
  "version": "0.1.0", "epoch": 1, "uptime_s": 75.0,
  "slots": {"total": 4.0, "busy": 3},
  "workers": [
    {"id": "0123456789abcdef0123456789abcdef", "address": "10.0.0.1:7000", "state": "alive",
     "slots": 2.0, "tasks_assigned": 5, "tasks_running": 2, "tasks_finished": 40,
     "tasks_failed": 1, "store_bytes": 1048576, "store_capacity_bytes": 1073741824,
     "last_heard_s": 0.4},
    {"id": "fedcba9876543210fedcba9876543210", "address": "10.0.0.2:7000", "state": "draining",
     "slots": 2.0, "tasks_assigned": 1, "tasks_running": 1, "tasks_finished": 2,
     "tasks_failed": 0, "store_bytes": 0, "store_capacity_bytes": 1073741824,
     "last_heard_s": 1.0}],
  "tasks": {"waiting": 1, "ready": 2, "assigned": 6, "submitted": 52, "finished": 42,
            "failed": 1, "cancelled": 0, "retried": 0, "reconstructed": 0},
  "lineage": {"specs": 3, "bytes": 2048, "evicted": 0},
  "objects": {"count": 8, "inline_cache_bytes": 4},
  "sessions": 1,
  "throughput": {"tasks_per_s_10s": 4.2, "tasks_per_s_60s": 0.7}
})";

TEST(ViewsTest, StatusSummarisesTheClusterAndListsWorkers) {
  absl::StatusOr<std::string> text = RenderStatus(nlohmann::json::parse(kStatus));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("fleet 0.1.0, up 1m15s, 1 client session(s)"));
  EXPECT_THAT(*text, HasSubstr("workers     2 (1 draining)"));
  EXPECT_THAT(*text, HasSubstr("slots       3 busy of 4"));
  EXPECT_THAT(*text, HasSubstr("tasks       1 waiting, 2 ready, 6 assigned"));
  EXPECT_THAT(*text, HasSubstr("52 submitted, 42 finished, 1 failed"));
  EXPECT_THAT(*text, HasSubstr("4.2 tasks/s over 10s, 0.7 tasks/s over 60s"));
  // Worker 1: 5 assigned on 2 slots, 2 running, so 3 queued.
  EXPECT_THAT(*text, HasSubstr("01234567  10.0.0.1:7000  alive       2/2        2       3"));
  EXPECT_THAT(*text, HasSubstr("1.0 MiB / 1.0 GiB"));
  EXPECT_THAT(*text, HasSubstr("fedcba98  10.0.0.2:7000  draining"));
}

TEST(ViewsTest, StatusWithoutItsFieldsIsAnErrorNotACrash) {
  EXPECT_EQ(RenderStatus(nlohmann::json::parse(R"({"version": 1})")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ViewsTest, TasksShowTheirIdAndSayWhenSomeAreLeftOut) {
  v1::ListTasksReply reply;
  v1::TaskSummary* task = reply.add_tasks();
  task->set_task_id(std::string(24, '\x01'));
  task->set_function_name("Square");
  task->set_state("ready");
  task->set_age_s(3);
  reply.set_matching(7);
  const std::string text = RenderTasks(reply);
  std::string hex;
  for (int i = 0; i < 24; ++i) hex += "01";
  EXPECT_THAT(text, HasSubstr(hex + "  Square    ready  -"));
  EXPECT_THAT(text, HasSubstr("Square"));
  EXPECT_THAT(text, HasSubstr("(1 of 7 tasks shown"));
}

TEST(ViewsTest, EventLineNamesTheEventAndItsFields) {
  v1::LogEntry entry;
  v1::ClusterEvent* event = entry.mutable_event();
  event->set_name("worker_joined");
  event->set_worker_id("0123456789abcdef0123456789abcdef");
  event->set_worker_address("10.0.0.1:7000");
  event->set_detail("slots=2");
  EXPECT_THAT(RenderLogEntry(entry),
              HasSubstr("  worker_joined  worker=01234567 address=10.0.0.1:7000 slots=2"));
}

TEST(HelpTest, ListsEveryCommand) {
  const std::string help = TopLevelHelp();
  for (const Command& command : Commands()) EXPECT_THAT(help, HasSubstr(command.name));
  EXPECT_THAT(CommandHelp(*FindCommand("tasks")), HasSubstr("--state=STATE"));
}

}  // namespace
}  // namespace fleet::cli
