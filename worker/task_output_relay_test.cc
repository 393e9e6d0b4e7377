#include "worker/task_output_relay.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "worker/task_output.h"

namespace fleet::worker {
namespace {

std::string Marker(absl::string_view task_id) {
  return absl::StrCat(std::string(1, kTaskOutputMarker), absl::BytesToHexString(task_id), "\n");
}

void Print(int fd, std::string_view text) {
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

// The daemon's two pipes, and the descriptors a relay takes over, which
// lead into them as an executor's stdout and stderr do.
class TaskOutputRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      int fds[2];
      ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
      daemon_[i] = fds[0];
      taken_[i] = fds[1];
    }
  }
  void TearDown() override {
    relay_.reset();
    for (int fd : {daemon_[0], daemon_[1], taken_[0], taken_[1]}) close(fd);
  }

  void StartRelay() {
    absl::StatusOr<std::unique_ptr<TaskOutputRelay>> relay =
        TaskOutputRelay::Start(taken_[0], taken_[1]);
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
  }

  // What the daemon's pipe `i` holds, waiting up to `wait_ms` for a first
  // byte and then taking what is there.
  std::string Received(int i, int wait_ms = 0) {
    std::string received;
    char buffer[4096];
    while (true) {
      pollfd readable{daemon_[i], POLLIN, 0};
      if (poll(&readable, 1, received.empty() ? wait_ms : 0) <= 0) return received;
      const ssize_t got = read(daemon_[i], buffer, sizeof(buffer));
      if (got <= 0) return received;
      received.append(buffer, static_cast<std::size_t>(got));
    }
  }

  // Runs a task in a forked child with a relay of its own: the task prints
  // `text` on taken_[stream], then `end` ends the process. Returns the
  // child's wait status.
  int StatusOfTaskInChild(std::string_view task_id, int stream, std::string_view text,
                          void (*end)()) {
    const pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
      absl::StatusOr<std::unique_ptr<TaskOutputRelay>> relay =
          TaskOutputRelay::Start(taken_[0], taken_[1]);
      if (!relay.ok()) _exit(2);
      (*relay)->TaskStarted(task_id);
      if (write(taken_[stream], text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        _exit(3);
      }
      end();
      _exit(4);
    }
    int status = 0;
    return waitpid(child, &status, 0) == child ? status : -1;
  }

  int daemon_[2] = {-1, -1};  // read ends: stdout's, stderr's
  int taken_[2] = {-1, -1};   // what a task writes to
  std::unique_ptr<TaskOutputRelay> relay_;
};

TEST_F(TaskOutputRelayTest, EachTasksOutputFollowsItsMarkerAndSilentTasksAddNothing) {
  StartRelay();
  relay_->TaskStarted("task-a");
  Print(taken_[0], "a out\n");
  Print(taken_[1], "a err\n");
  relay_->TaskEnded();
  for (int i = 0; i < 100; ++i) {
    relay_->TaskStarted(absl::StrCat("silent-", i));
    relay_->TaskEnded();
  }
  relay_->TaskStarted("task-c");
  Print(taken_[0], "c 1\nc 2\n");
  relay_->TaskEnded();
  // Passed on when each task ended, not later.
  EXPECT_EQ(Received(0), Marker("task-a") + "a out\n" + Marker("task-c") + "c 1\nc 2\n");
  EXPECT_EQ(Received(1), Marker("task-a") + "a err\n");
}

TEST_F(TaskOutputRelayTest, ALineATaskLeftUnfinishedEndsBeforeTheNextTasksMarker) {
  StartRelay();
  relay_->TaskStarted("task-a");
  Print(taken_[0], "no newline");
  relay_->TaskEnded();
  relay_->TaskStarted("task-b");
  Print(taken_[0], "b\n");
  relay_->TaskEnded();
  EXPECT_EQ(Received(0), Marker("task-a") + "no newline\n" + Marker("task-b") + "b\n");
}

TEST_F(TaskOutputRelayTest, ARunningTasksOutputIsPassedOnAsItGoes) {
  StartRelay();
  relay_->TaskStarted("long-task");
  Print(taken_[1], "halfway\n");
  // The task has not ended: the relay's thread passes the line on.
  EXPECT_EQ(Received(1, /*wait_ms=*/5000), Marker("long-task") + "halfway\n");
  Print(taken_[1], "done\n");
  relay_->TaskEnded();
  EXPECT_EQ(Received(1), "done\n");  // the same task: no second marker
}

TEST_F(TaskOutputRelayTest, StoppingPassesOnTheRestAndGivesTheDescriptorsBack) {
  StartRelay();
  relay_->TaskStarted("task-a");
  Print(taken_[0], "before stop\n");
  relay_.reset();
  EXPECT_EQ(Received(0), Marker("task-a") + "before stop\n");
  Print(taken_[0], "straight through\n");
  EXPECT_EQ(Received(0), "straight through\n");
}

TEST_F(TaskOutputRelayTest, ACrashingTasksLastLinesArePassedOnAndItDiesOfItsSignal) {
  // Straight to the crash: the relay's thread has had no time to pass the
  // line on, so the signal handler does.
  const int status =
      StatusOfTaskInChild("crashing-task", 1, "last words\n", [] { raise(SIGSEGV); });
  ASSERT_TRUE(WIFSIGNALED(status)) << "wait status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  EXPECT_EQ(Received(1), Marker("crashing-task") + "last words\n");
}

TEST_F(TaskOutputRelayTest, WhatATaskPrintedBeforeCallingExitIsPassedOn) {
  const int status = StatusOfTaskInChild("exiting-task", 0, "goodbye\n", [] { std::exit(7); });
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(Received(0), Marker("exiting-task") + "goodbye\n");
}

}  // namespace
}  // namespace fleet::worker
