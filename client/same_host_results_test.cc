#include "client/same_host_results.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/object_routes.h"
#include "client/object_table.h"
#include "common/local_socket.h"
#include "fleet/v1/local_store.pb.h"
#include "gtest/gtest.h"

namespace fleet::client {
namespace {

constexpr absl::Duration kGetTimeout = absl::Seconds(10);

// The store socket of a worker on this host, as much of it as a
// subscription sees: the hello, the Subscribe, then pushes down and tasks
// handed over up.
class FakeWorker {
 public:
  explicit FakeWorker(std::string address, bool takes_subscriptions = true)
      : address_(std::move(address)), takes_subscriptions_(takes_subscriptions) {
    absl::StatusOr<int> listening = ListenLocalSocket(address_);
    EXPECT_TRUE(listening.ok()) << listening.status();
    listen_fd_ = listening.value_or(-1);
  }
  ~FakeWorker() {
    if (connection_ >= 0) close(connection_);
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  const std::string& address() const { return address_; }
  const WorkerId& id() const { return id_; }

  // Takes the client's connection and its Subscribe; returns the job.
  std::string AcceptSubscription() {
    pollfd ready{listen_fd_, POLLIN, 0};
    if (poll(&ready, 1, 10'000) != 1) return "";
    connection_ = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection_ < 0) return "";
    v1::LocalStoreHello hello;
    hello.set_worker_id(std::string(id_.Binary()));
    hello.set_takes_subscriptions(takes_subscriptions_);
    hello.set_takes_tasks(takes_subscriptions_);
    if (!SendPacket(connection_, hello).ok()) return "";
    v1::LocalStoreRequest request;
    if (!ReceivePacket(connection_, &request).ok()) return "";
    return request.subscribe().job_id();
  }

  // The next task handed over on the subscription; its id, or "".
  std::string ReceiveTask() {
    timeval timeout{10, 0};
    setsockopt(connection_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    v1::LocalStoreRequest request;
    if (!ReceivePacket(connection_, &request).ok() || !request.has_run_task()) return "";
    return request.run_task().spec().task_id();
  }

  // Pushes `id`'s result, `value` inline, as a worker's slot does.
  void Push(const ObjectId& id, const std::string& value) {
    v1::LocalStorePush push;
    v1::ObjectInfo* info = push.add_ready();
    info->set_object_id(std::string(id.Binary()));
    info->set_inline_value(value);
    std::string packet;
    ASSERT_TRUE(FramePush(push, packet).ok());
    ASSERT_TRUE(SendPushNow(connection_, packet).ok());
  }

 private:
  const std::string address_;
  const bool takes_subscriptions_;
  const WorkerId id_ = WorkerId::Random();
  int listen_fd_ = -1;
  int connection_ = -1;
};

class SameHostResultsTest : public ::testing::Test {
 protected:
  std::string Value(const internal::ObjectHandle& handle) {
    v1::TaskFailure failure;
    absl::StatusOr<internal::ObjectBytes> bytes = table_->GetValue(handle, kGetTimeout, &failure);
    if (!bytes.ok()) return absl::StrCat("error: ", bytes.status().ToString());
    return std::string(bytes->bytes);
  }
  ObjectId NextObject() { return ObjectId::Of(TaskId::Of(job_, next_task_++), 0); }
  v1::TaskSpec NextSpec(std::size_t arg_bytes = 8) {
    v1::TaskSpec spec;
    spec.set_task_id(std::string(TaskId::Of(job_, next_task_++).Binary()));
    spec.set_function_name("f");
    spec.add_args()->set_value(std::string(arg_bytes, 'a'));
    return spec;
  }
  // HandOver, retried while the thread opens the subscription it accepted.
  std::optional<WorkerId> HandOverOnceOpen(v1::TaskSpec& spec) {
    for (int i = 0; i < 1000; ++i) {
      if (std::optional<WorkerId> worker = results_.HandOver(spec)) return worker;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return std::nullopt;
  }
  std::string UniqueAddress() {
    return absl::StrCat("same-host-results-test-", getpid(), ":", ++port_);
  }

  const JobId job_ = JobId::Random();
  std::shared_ptr<ObjectTable> table_ =
      std::make_shared<ObjectTable>(std::make_shared<ObjectRoutes>("127.0.0.1:1"));
  SameHostResults results_{job_, table_};
  uint64_t next_task_ = 1;
  int port_ = 0;
};

TEST_F(SameHostResultsTest, APushedResultResolvesItsObject) {
  FakeWorker worker(UniqueAddress());
  results_.Watch(worker.address());
  ASSERT_EQ(worker.AcceptSubscription(), job_.Binary());
  const ObjectId id = NextObject();
  internal::ObjectHandle handle = table_->Create(id);
  worker.Push(id, "forty-two");
  EXPECT_EQ(Value(handle), "forty-two");
}

// The scheduler counts a pushed result delivered and never sends it: one
// pushed just before its worker is forgotten (it left) is still read. The
// ordering that lost such a result (the push landing between the thread's
// poll and its closing of the socket) depends on timing, so rounds repeat.
TEST_F(SameHostResultsTest, AResultPushedBeforeItsWorkerIsForgottenIsNotLost) {
  for (int round = 0; round < 50; ++round) {
    FakeWorker worker(UniqueAddress());
    results_.Watch(worker.address());
    ASSERT_EQ(worker.AcceptSubscription(), job_.Binary()) << "round " << round;
    const ObjectId id = NextObject();
    internal::ObjectHandle handle = table_->Create(id);
    worker.Push(id, absl::StrCat("value ", round));
    results_.Forget(worker.address());
    EXPECT_EQ(Value(handle), absl::StrCat("value ", round)) << "round " << round;
  }
}

TEST_F(SameHostResultsTest, AHandedOverTaskReachesTheWorkerThatIsNamed) {
  FakeWorker worker(UniqueAddress());
  results_.Watch(worker.address());
  ASSERT_EQ(worker.AcceptSubscription(), job_.Binary());
  v1::TaskSpec spec = NextSpec();
  const v1::TaskSpec sent = spec;
  const std::optional<WorkerId> named = HandOverOnceOpen(spec);
  ASSERT_TRUE(named.has_value());
  EXPECT_EQ(*named, worker.id());
  EXPECT_EQ(spec.SerializeAsString(), sent.SerializeAsString());  // left as it was
  EXPECT_EQ(worker.ReceiveTask(), sent.task_id());
}

TEST_F(SameHostResultsTest, NothingIsHandedToAWorkerForgottenOrOverATooLargeSpec) {
  FakeWorker worker(UniqueAddress());
  results_.Watch(worker.address());
  ASSERT_EQ(worker.AcceptSubscription(), job_.Binary());
  v1::TaskSpec small = NextSpec();
  ASSERT_TRUE(HandOverOnceOpen(small).has_value());
  // The worker reads one request packet of kLocalSocketMaxMessageBytes.
  v1::TaskSpec large = NextSpec(kLocalSocketMaxMessageBytes);
  EXPECT_FALSE(results_.HandOver(large).has_value());
  EXPECT_EQ(large.args(0).value().size(), static_cast<std::size_t>(kLocalSocketMaxMessageBytes));

  results_.Forget(worker.address());
  v1::TaskSpec after = NextSpec();
  bool closed = false;
  for (int i = 0; i < 1000 && !closed; ++i) {
    closed = !results_.HandOver(after).has_value();
    if (!closed) absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(closed) << "still handing tasks to a worker forgotten";
}

TEST_F(SameHostResultsTest, AWorkerTakingNoSubscriptionsIsNeitherSubscribedToNorHandedTasks) {
  FakeWorker worker(UniqueAddress(), /*takes_subscriptions=*/false);
  results_.Watch(worker.address());
  EXPECT_EQ(worker.AcceptSubscription(), "");  // hung up after the hello
  v1::TaskSpec spec = NextSpec();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(results_.HandOver(spec).has_value());
}

}  // namespace
}  // namespace fleet::client
