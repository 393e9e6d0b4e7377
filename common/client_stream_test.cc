#include "common/client_stream.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/completion_queue_thread.h"
#include "common/net.h"
#include "fleet/v1/scheduler.grpc.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

using Stream = ClientStream<v1::WorkerToScheduler, v1::SchedulerToWorker>;

// A real gRPC server whose Connect records each message it reads (as the
// task ids of its completions), answers each with how many completions it
// has read so far, and ends the call as the test says.
class RecordingScheduler final : public v1::Scheduler::Service {
 public:
  // After this many messages the server ends the call with `status`
  // (never, by default: it reads until the client half-closes).
  void EndAfter(int messages, grpc::Status status) {
    end_after_ = messages;
    end_status_ = std::move(status);
  }

  // The server reads nothing until ResumeReading, as a hung peer.
  void StallReading() { stalled_ = true; }
  void ResumeReading() {
    if (!resumed_.HasBeenNotified()) resumed_.Notify();
  }

  grpc::Status Connect(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::SchedulerToWorker, v1::WorkerToScheduler>* stream) override {
    if (stalled_) resumed_.WaitForNotification();
    v1::WorkerToScheduler message;
    uint64_t completions = 0;
    int read = 0;
    while (stream->Read(&message)) {
      std::vector<std::string> ids;
      for (const v1::TaskCompleted& done : message.completed()) ids.push_back(done.task_id());
      completions += ids.size();
      {
        absl::MutexLock lock(&mu_);
        messages_.push_back(std::move(ids));
      }
      v1::SchedulerToWorker answer;
      answer.set_completions_recorded(completions);
      stream->Write(answer);
      if (++read == end_after_) return end_status_;
    }
    absl::MutexLock lock(&mu_);
    saw_half_close_ = true;
    return grpc::Status::OK;
  }

  std::vector<std::vector<std::string>> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  bool saw_half_close() {
    absl::MutexLock lock(&mu_);
    return saw_half_close_;
  }

 private:
  int end_after_ = -1;
  grpc::Status end_status_;
  bool stalled_ = false;
  absl::Notification resumed_;
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> messages_ ABSL_GUARDED_BY(mu_);
  bool saw_half_close_ ABSL_GUARDED_BY(mu_) = false;
};

class ClientStreamTest : public ::testing::Test {
 protected:
  void StartServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&scheduler_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Scheduler::NewStub(NewChannel("127.0.0.1:" + std::to_string(port)));
  }

  void TearDown() override {
    scheduler_.ResumeReading();  // a stalled handler would hold Shutdown
    if (server_ != nullptr) server_->Shutdown();
  }

  // Starts `stream`; what it reads and how it ends are recorded.
  void Start(Stream& stream) {
    stream.Start(
        [this](grpc::ClientContext* context, grpc::CompletionQueue* queue) {
          return stub_->PrepareAsyncConnect(context, queue);
        },
        [this](v1::SchedulerToWorker& message) {
          absl::MutexLock lock(&mu_);
          recorded_ = message.completions_recorded();
        },
        [this](absl::Status status) {
          end_ = std::move(status);
          ended_.Notify();
        });
  }

  static void SendCompleted(Stream& stream, const std::string& task, bool more_follow = false) {
    stream.Send(
        task.size() + 4,
        [&](v1::WorkerToScheduler& batch) { batch.add_completed()->set_task_id(task); },
        more_follow);
  }

  static void SendLazily(Stream& stream, const std::string& task) {
    stream.SendLazily(task.size() + 4, [&](v1::WorkerToScheduler& batch) {
      batch.add_completed()->set_task_id(task);
    });
  }

  // Waits until the server has answered `completions`.
  void AwaitRecorded(uint64_t completions) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return recorded_ >= completions; };
    mu_.Await(absl::Condition(&reached));
  }

  RecordingScheduler scheduler_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;
  CompletionQueueThread queue_thread_;  // outlives the streams of each test
  absl::Mutex mu_;
  uint64_t recorded_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification ended_;
  absl::Status end_;
};

TEST_F(ClientStreamTest, ItemsSentBeforeStartGoFirstAndEveryItemArrivesInOrder) {
  StartServer();
  Stream stream(queue_thread_.queue());
  SendCompleted(stream, "a");
  SendCompleted(stream, "b");
  Start(stream);
  for (int i = 0; i < 100; ++i) SendCompleted(stream, "t" + std::to_string(i));
  AwaitRecorded(102);
  stream.Stop(absl::Seconds(5));
  std::vector<std::string> order;
  for (const auto& message : scheduler_.messages()) {
    order.insert(order.end(), message.begin(), message.end());
  }
  ASSERT_EQ(order.size(), 102u);
  EXPECT_EQ(order[0], "a");
  EXPECT_EQ(order[1], "b");
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i + 2], "t" + std::to_string(i));
  // The two sent before the call started travel together.
  EXPECT_GE(scheduler_.messages()[0].size(), 2u);
}

TEST_F(ClientStreamTest, ConcurrentSendersLoseNothingAndKeepTheirOrder) {
  // Senders become the writer whenever they find none, while the queue's
  // thread writes what gathered: the writer role changes hands constantly.
  StartServer();
  Stream stream(queue_thread_.queue());
  Start(stream);
  constexpr int kSenders = 4;
  constexpr int kItems = 5000;
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&stream, s] {
      for (int i = 0; i < kItems; ++i) {
        SendCompleted(stream, std::to_string(s) + ":" + std::to_string(i));
      }
    });
  }
  for (std::thread& sender : senders) sender.join();
  AwaitRecorded(kSenders * kItems);
  stream.Stop(absl::Seconds(5));
  std::vector<int> next(kSenders, 0);
  for (const auto& message : scheduler_.messages()) {
    for (const std::string& item : message) {
      const int s = item[0] - '0';
      EXPECT_EQ(item, std::to_string(s) + ":" + std::to_string(next[s]));
      next[s]++;
    }
  }
  for (int s = 0; s < kSenders; ++s) EXPECT_EQ(next[s], kItems);
}

TEST_F(ClientStreamTest, ALingerHoldsABurstUntilItsLastItem) {
  StartServer();
  // A linger far longer than the test: only the producer's word ends it.
  Stream stream(queue_thread_.queue(), absl::Hours(1));
  Start(stream);
  // Once the server has answered it, this lone item's write is long done
  // (its completion comes when the bytes are on the socket): no write is in
  // flight when the burst begins.
  SendCompleted(stream, "alone");
  AwaitRecorded(1);
  SendCompleted(stream, "first", /*more_follow=*/true);
  SendCompleted(stream, "second", /*more_follow=*/true);
  SendCompleted(stream, "last", /*more_follow=*/false);
  AwaitRecorded(4);
  const auto messages = scheduler_.messages();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1], (std::vector<std::string>{"first", "second", "last"}));
  stream.Stop(absl::Seconds(5));
}

// A lazy item rides with the next item sent: one message, no write of its
// own.
TEST_F(ClientStreamTest, ALazyItemGoesWithTheNextItemSent) {
  StartServer();
  // A lazy delay far longer than the test: only the next item sends it.
  Stream stream(queue_thread_.queue(), absl::ZeroDuration(), absl::Hours(1));
  Start(stream);
  SendCompleted(stream, "alone");
  AwaitRecorded(1);  // no write in flight from here on
  SendLazily(stream, "lazy");
  SendCompleted(stream, "next");
  AwaitRecorded(3);
  const auto messages = scheduler_.messages();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1], (std::vector<std::string>{"lazy", "next"}));
  stream.Stop(absl::Seconds(5));
}

// With nothing sent after it, a lazy item still goes, on its own.
TEST_F(ClientStreamTest, ALazyItemAloneIsWrittenWithoutAnotherSend) {
  StartServer();
  Stream stream(queue_thread_.queue());
  Start(stream);
  SendCompleted(stream, "first");
  AwaitRecorded(1);
  SendLazily(stream, "lazy");
  AwaitRecorded(2);
  const auto messages = scheduler_.messages();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1], (std::vector<std::string>{"lazy"}));
  stream.Stop(absl::Seconds(5));
}

// Stop sends what waits lazily, and the stream ends cleanly although its
// flush was still due.
TEST_F(ClientStreamTest, StopSendsALazyItemThatWaits) {
  StartServer();
  Stream stream(queue_thread_.queue(), absl::ZeroDuration(), absl::Hours(1));
  Start(stream);
  SendCompleted(stream, "first");
  AwaitRecorded(1);
  SendLazily(stream, "lazy");
  stream.Stop(absl::Seconds(5));
  ASSERT_TRUE(ended_.HasBeenNotified());
  EXPECT_TRUE(end_.ok()) << end_;
  std::size_t items = 0;
  for (const auto& message : scheduler_.messages()) items += message.size();
  EXPECT_EQ(items, 2u);
}

TEST_F(ClientStreamTest, StopFlushesWhatIsQueuedThenHalfCloses) {
  StartServer();
  Stream stream(queue_thread_.queue());
  Start(stream);
  for (int i = 0; i < 20; ++i) SendCompleted(stream, "t" + std::to_string(i));
  stream.Stop(absl::Seconds(5));
  ASSERT_TRUE(ended_.HasBeenNotified());
  EXPECT_TRUE(end_.ok()) << end_;
  std::size_t items = 0;
  for (const auto& message : scheduler_.messages()) items += message.size();
  EXPECT_EQ(items, 20u);
  EXPECT_TRUE(scheduler_.saw_half_close());
  // Stopped: later items are dropped, not queued.
  SendCompleted(stream, "late");
}

TEST_F(ClientStreamTest, APeerThatEndsTheStreamUnexpectedlyBreaksIt) {
  scheduler_.EndAfter(1, grpc::Status::OK);
  StartServer();
  Stream stream(queue_thread_.queue());
  Start(stream);
  SendCompleted(stream, "a");
  ended_.WaitForNotification();
  EXPECT_TRUE(absl::IsUnavailable(end_)) << end_;
  EXPECT_NE(end_.message().find("peer closed"), std::string::npos) << end_;
}

TEST_F(ClientStreamTest, APeerExpectedToEndEndsItCleanly) {
  scheduler_.EndAfter(1, grpc::Status::OK);
  StartServer();
  Stream stream(queue_thread_.queue());
  stream.ExpectPeerToEnd();
  Start(stream);
  SendCompleted(stream, "a");
  ended_.WaitForNotification();
  EXPECT_TRUE(end_.ok()) << end_;
}

TEST_F(ClientStreamTest, ThePeersErrorIsWhatEndsTheStream) {
  scheduler_.EndAfter(2, grpc::Status(grpc::StatusCode::ABORTED, "this worker was fenced"));
  StartServer();
  Stream stream(queue_thread_.queue());
  Start(stream);
  SendCompleted(stream, "a");
  AwaitRecorded(1);
  SendCompleted(stream, "b");
  ended_.WaitForNotification();
  EXPECT_TRUE(absl::IsAborted(end_)) << end_;
  EXPECT_NE(end_.message().find("fenced"), std::string::npos) << end_;
  // Broken: sending more is dropped, and stopping returns.
  SendCompleted(stream, "c");
  stream.Stop(absl::Seconds(5));
}

TEST_F(ClientStreamTest, StopCutsOffAWriteThePeerDoesNotTake) {
  scheduler_.StallReading();
  StartServer();
  Stream stream(queue_thread_.queue());
  Start(stream);
  // Far beyond what the peer's flow-control windows and the sockets'
  // buffers take while it reads nothing: a write stays in flight.
  for (int i = 0; i < 32; ++i) SendCompleted(stream, std::string(1 << 20, 'x'));
  absl::Notification stopped;
  std::thread stopper([&] {
    stream.Stop(absl::Milliseconds(200));
    stopped.Notify();
  });
  // Not a timing claim: without a bound, Stop never returns while the peer
  // reads nothing.
  const bool returned = stopped.WaitForNotificationWithTimeout(absl::Seconds(60));
  scheduler_.ResumeReading();  // lets a Stop that hung return, so the test can end
  stopper.join();
  EXPECT_TRUE(returned) << "Stop waited for a write the peer never took";
  ASSERT_TRUE(ended_.HasBeenNotified());
  EXPECT_TRUE(end_.ok()) << end_;  // stopped on purpose: not reported as broken
  EXPECT_TRUE(scheduler_.messages().empty());
}

TEST_F(ClientStreamTest, NoServerIsABrokenStreamThatSaysWhy) {
  // Nothing listens there.
  stub_ = v1::Scheduler::NewStub(NewChannel("127.0.0.1:1"));
  Stream stream(queue_thread_.queue());
  Start(stream);
  SendCompleted(stream, "a");
  ended_.WaitForNotification();
  EXPECT_TRUE(absl::IsUnavailable(end_)) << end_;
  stream.Stop(absl::ZeroDuration());
}

}  // namespace
}  // namespace fleet
