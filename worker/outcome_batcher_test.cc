#include "worker/outcome_batcher.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "worker/executor_channel.h"

namespace fleet::worker {
namespace {

constexpr int64_t kTinyUs = 2;
constexpr int64_t kLongUs = 5000;

class OutcomeBatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
    absl::StatusOr<std::unique_ptr<OutcomeBatcher>> batcher = OutcomeBatcher::Create(fds_[0]);
    ASSERT_TRUE(batcher.ok()) << batcher.status();
    batcher_ = std::move(*batcher);
    reader_ = std::make_unique<FramedReader>(fds_[1]);
  }
  void TearDown() override {
    batcher_.reset();
    close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }

  absl::Status Add(int64_t run_time_us, bool next_ready) {
    v1::ExecutorOutcome outcome;
    outcome.set_run_time_us(run_time_us);
    return batcher_->Add(outcome, next_ready);
  }

  // The run times of the outcomes the daemon's end can read, waiting up to
  // `wait_ms` for the first.
  std::vector<int64_t> Delivered(int wait_ms = 0) {
    std::vector<int64_t> run_times;
    while (true) {
      pollfd readable{fds_[1], POLLIN, 0};
      if (!reader_->HasFrame() && poll(&readable, 1, run_times.empty() ? wait_ms : 0) <= 0) {
        return run_times;
      }
      v1::ExecutorOutcome outcome;
      if (!reader_->Receive(&outcome).ok()) return run_times;
      run_times.push_back(outcome.run_time_us());
    }
  }

  int fds_[2] = {-1, -1};
  std::unique_ptr<OutcomeBatcher> batcher_;
  std::unique_ptr<FramedReader> reader_;
};

TEST_F(OutcomeBatcherTest, WritesAtOnceWhenNoTaskIsReady) {
  ASSERT_TRUE(Add(kTinyUs, /*next_ready=*/false).ok());
  EXPECT_EQ(Delivered(), std::vector<int64_t>{kTinyUs});
  EXPECT_EQ(batcher_->held(), 0u);
}

TEST_F(OutcomeBatcherTest, HoldsTinyTasksWhileTheNextIsReadyThenWritesAllInOrder) {
  ASSERT_TRUE(Add(1, true).ok());
  ASSERT_TRUE(Add(2, true).ok());
  ASSERT_TRUE(Add(3, true).ok());
  EXPECT_EQ(batcher_->held(), 3u);
  ASSERT_TRUE(Add(4, false).ok());
  EXPECT_EQ(Delivered(), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(batcher_->held(), 0u);
}

TEST_F(OutcomeBatcherTest, ALongTaskIsAnsweredAtOnceWithThoseHeld) {
  ASSERT_TRUE(Add(kTinyUs, true).ok());
  ASSERT_TRUE(Add(kLongUs, true).ok());
  EXPECT_EQ(Delivered(), (std::vector<int64_t>{kTinyUs, kLongUs}));
}

TEST_F(OutcomeBatcherTest, FlushWritesWhatIsHeld) {
  ASSERT_TRUE(Add(kTinyUs, true).ok());
  ASSERT_TRUE(batcher_->Flush().ok());
  EXPECT_EQ(Delivered(), std::vector<int64_t>{kTinyUs});
  ASSERT_TRUE(batcher_->Flush().ok()) << "nothing held: nothing to do";
  EXPECT_TRUE(Delivered().empty());
}

TEST_F(OutcomeBatcherTest, HoldsAtMostABatch) {
  for (std::size_t i = 1; i < OutcomeBatcher::kMaxHeld; ++i) ASSERT_TRUE(Add(kTinyUs, true).ok());
  EXPECT_EQ(batcher_->held(), OutcomeBatcher::kMaxHeld - 1);
  ASSERT_TRUE(Add(kTinyUs, true).ok());
  EXPECT_EQ(Delivered().size(), OutcomeBatcher::kMaxHeld);
}

TEST_F(OutcomeBatcherTest, TheTimerWritesWhatWasHeldWhileALongTaskRuns) {
  // The executor went on to a task that runs long: nobody calls Flush.
  ASSERT_TRUE(Add(kTinyUs, true).ok());
  EXPECT_EQ(Delivered(/*wait_ms=*/10'000), std::vector<int64_t>{kTinyUs});
  EXPECT_EQ(batcher_->held(), 0u);
  // And again, once re-armed.
  ASSERT_TRUE(Add(kTinyUs + 1, true).ok());
  EXPECT_EQ(Delivered(/*wait_ms=*/10'000), std::vector<int64_t>{kTinyUs + 1});
}

TEST_F(OutcomeBatcherTest, ReportsADaemonThatHasGone) {
  close(fds_[1]);
  fds_[1] = -1;
  EXPECT_TRUE(absl::IsCancelled(Add(kTinyUs, false)));
  EXPECT_TRUE(absl::IsCancelled(Add(kTinyUs, false))) << "and keeps saying so";
}

}  // namespace
}  // namespace fleet::worker
