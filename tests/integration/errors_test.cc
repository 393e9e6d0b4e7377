// Failures as the user sees them: TaskError from a throwing task, failures
// propagated through arguments, unknown functions, wrong signatures (at
// compile time and at run time), and an unreachable scheduler.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fleet/fleet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

using ::testing::HasSubstr;

// ---- compile time: Remote is constrained by the function's parameters.

template <typename... A>
concept CanCallSquareWith = requires(A&&... args) {
  fleet::Task(Square).Remote(std::forward<A>(args)...);
};
static_assert(CanCallSquareWith<int>);
static_assert(CanCallSquareWith<short>);                  // converts to int
static_assert(CanCallSquareWith<fleet::ObjectRef<int>>);  // a ref to an int
static_assert(!CanCallSquareWith<std::string>);           // a string is not an int
static_assert(!CanCallSquareWith<const char*>);
static_assert(!CanCallSquareWith<fleet::ObjectRef<std::string>>);
static_assert(!CanCallSquareWith<>);          // too few arguments
static_assert(!CanCallSquareWith<int, int>);  // too many

template <typename... A>
concept CanCallRepeatWith = requires(A&&... args) {
  fleet::Task(Repeat).Remote(std::forward<A>(args)...);
};
static_assert(CanCallRepeatWith<std::string, int>);
static_assert(CanCallRepeatWith<const char*, int>);
static_assert(!CanCallRepeatWith<int, std::string>);  // swapped

// Whether `message` names one of the workers listed by /status.
bool NamesAWorker(const std::string& message, const nlohmann::json& status) {
  for (const nlohmann::json& w : status["workers"]) {
    if (message.find(w["address"].get<std::string>()) != std::string::npos) return true;
  }
  return false;
}

TEST_F(ClusterTest, ThrowingTaskRaisesTaskErrorWithTypeMessageAndWorker) {
  fleet::ObjectRef<int> ref = fleet::Task(ThrowInvalidInput).Remote(std::string("bad input 42"));
  std::optional<fleet::TaskError> error = GetError(ref);
  ASSERT_TRUE(error.has_value()) << "Get returned a value";
  EXPECT_EQ(error->kind(), "user_exception");
  EXPECT_EQ(error->function_name(), "ThrowInvalidInput");
  EXPECT_EQ(error->exception_type(), "fleet_it::InvalidInput");
  EXPECT_EQ(error->message(), "bad input 42");
  EXPECT_THAT(error->worker(), HasSubstr("worker "));
  EXPECT_TRUE(NamesAWorker(error->worker(), cluster().Status())) << error->worker();
  EXPECT_FALSE(error->task_id().empty());
  EXPECT_EQ(error->cause(), nullptr);
  EXPECT_GE(error->attempt(), 1u);
  const std::string what = error->what();
  EXPECT_THAT(what, HasSubstr("ThrowInvalidInput"));
  EXPECT_THAT(what, HasSubstr("fleet_it::InvalidInput"));
  EXPECT_THAT(what, HasSubstr("bad input 42"));

  // Get keeps failing the same way; it is a fleet::Error too.
  EXPECT_THROW(ref.Get(kResultTimeout), fleet::TaskError);
  EXPECT_THROW(ref.Get(kResultTimeout), fleet::Error);
  // A failed ref counts as ready for Wait, which does not throw.
  auto [ready, pending] = fleet::Wait(std::vector<fleet::ObjectRef<int>>{ref}, 1, kResultTimeout);
  EXPECT_EQ(ready.size(), 1u);
  EXPECT_TRUE(pending.empty());
  // The failure is counted, and the cluster goes on working.
  EXPECT_GE(cluster().Status()["tasks"]["failed"].get<uint64_t>(), 1u);
  EXPECT_EQ(fleet::Task(Square).Remote(4).Get(kResultTimeout), 16);
}

// Checks that `error` is the failure of ThrowInvalidInput("root cause").
void ExpectRootCause(const fleet::TaskError& error) {
  EXPECT_EQ(error.kind(), "user_exception");
  EXPECT_EQ(error.function_name(), "ThrowInvalidInput");
  EXPECT_EQ(error.exception_type(), "fleet_it::InvalidInput");
  EXPECT_EQ(error.message(), "root cause");
  EXPECT_EQ(error.cause(), nullptr);
}

// A file for FailTimesThenCount's run counter, fresh for each use.
std::string RunCounterPath(const std::string& name) {
  const std::string path = ::testing::TempDir() + "fleet-runs-" + std::to_string(getpid()) + "-" + name;
  std::remove(path.c_str());
  return path;
}

TEST_F(ClusterTest, ExceptionsAreRetriedOnlyWithRetryExceptions) {
  // By default a throwing task fails at once, on attempt 1.
  const std::string plain = RunCounterPath("plain");
  std::optional<fleet::TaskError> error = GetError(fleet::Task(FailTimesThenCount).Remote(plain, 2));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->attempt(), 1u);
  EXPECT_EQ(error->exception_type(), "fleet_it::InvalidInput");

  // With retry_exceptions it runs again until it succeeds, within max_retries.
  const auto retrying =
      fleet::Task(FailTimesThenCount).Options({.max_retries = 3, .retry_exceptions = true});
  const std::string flaky = RunCounterPath("flaky");
  EXPECT_EQ(retrying.Remote(flaky, 2).Get(kResultTimeout), 3);

  // And fails with the last attempt's error once the retries are used up.
  const std::string hopeless = RunCounterPath("hopeless");
  error = GetError(fleet::Task(FailTimesThenCount)
                       .Options({.max_retries = 1, .retry_exceptions = true})
                       .Remote(hopeless, 5));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->attempt(), 2u);
  EXPECT_THAT(error->message(), ::testing::HasSubstr("run 2 fails"));
  EXPECT_THAT(error->what(), ::testing::HasSubstr("attempt 2"));

  EXPECT_THROW(fleet::Task(FailTimesThenCount).Options({.max_retries = -2}), fleet::Error);
}

TEST_F(ClusterTest, CancelFailsQueuedAndRunningTasksWithTaskCancelled) {
  // Fill every slot, then queue one more and a task that needs it.
  std::vector<fleet::ObjectRef<int>> busy;
  for (int i = 0; i < kWorkers * kSlotsPerWorker; ++i) {
    busy.push_back(fleet::Task(SleepMs).Remote(1500));
  }
  fleet::ObjectRef<int> queued = fleet::Task(SleepMs).Remote(1);
  fleet::ObjectRef<int> dependent = fleet::Task(Square).Remote(queued);
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return s["tasks"]["assigned"].get<int>() >= kWorkers * kSlotsPerWorker;
      },
      kStatusTimeout));

  fleet::Cancel(queued);
  fleet::Cancel(busy[0]);
  for (const auto* ref : {&queued, &busy[0]}) {
    try {
      ref->Get(kResultTimeout);
      ADD_FAILURE() << "Get of a cancelled task returned";
    } catch (const fleet::TaskCancelled& e) {
      EXPECT_EQ(e.kind(), "cancelled");
      EXPECT_THAT(e.what(), ::testing::HasSubstr("cancelled by its client"));
    }
  }
  std::optional<fleet::TaskError> chained = GetError(dependent);
  ASSERT_TRUE(chained.has_value());
  EXPECT_EQ(chained->kind(), "dependency_failed");
  ASSERT_NE(chained->cause(), nullptr);
  EXPECT_EQ(chained->cause()->kind(), "cancelled");

  // The others are unaffected, and a finished task cannot be cancelled.
  for (std::size_t i = 1; i < busy.size(); ++i) EXPECT_EQ(busy[i].Get(kResultTimeout), 1500);
  fleet::Cancel(busy[1]);
  EXPECT_EQ(busy[1].Get(kResultTimeout), 1500);
  EXPECT_THROW(fleet::Cancel(fleet::ObjectRef<int>()), fleet::Error);
  nlohmann::json status;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["tasks"]["cancelled"].get<int>() == 2; },
      kStatusTimeout, &status))
      << status.dump();
}

TEST_F(ClusterTest, FailedArgumentFailsDependentsWithCauseChain) {
  fleet::ObjectRef<int> failing = fleet::Task(ThrowInvalidInput).Remote(std::string("root cause"));
  // Submitted while the argument may still be pending.
  fleet::ObjectRef<int64_t> child = fleet::Task(Add).Remote(failing, 1);
  fleet::ObjectRef<int64_t> grandchild = fleet::Task(Add).Remote(child, 1);

  std::optional<fleet::TaskError> child_error = GetError(child);
  ASSERT_TRUE(child_error.has_value());
  EXPECT_EQ(child_error->kind(), "dependency_failed");
  EXPECT_EQ(child_error->function_name(), "Add");
  ASSERT_NE(child_error->cause(), nullptr);
  ExpectRootCause(*child_error->cause());

  std::optional<fleet::TaskError> grandchild_error = GetError(grandchild);
  ASSERT_TRUE(grandchild_error.has_value());
  EXPECT_EQ(grandchild_error->kind(), "dependency_failed");
  EXPECT_EQ(grandchild_error->function_name(), "Add");
  // Walk the chain to its root: the original exception.
  std::vector<const fleet::TaskError*> chain = {&*grandchild_error};
  while (chain.back()->cause() != nullptr && chain.size() < 10) {
    chain.push_back(chain.back()->cause());
  }
  ASSERT_EQ(chain.size(), 3u) << grandchild_error->what();
  EXPECT_EQ(chain[1]->kind(), "dependency_failed");
  ExpectRootCause(*chain.back());
  EXPECT_THAT(std::string(grandchild_error->what()), HasSubstr("root cause"));

  // Submitted after the argument is known to have failed.
  fleet::ObjectRef<int> late = fleet::Task(Square).Remote(failing);
  std::optional<fleet::TaskError> late_error = GetError(late);
  ASSERT_TRUE(late_error.has_value());
  EXPECT_EQ(late_error->kind(), "dependency_failed");
  EXPECT_EQ(late_error->function_name(), "Square");
  ASSERT_NE(late_error->cause(), nullptr);
  ExpectRootCause(*late_error->cause());
}

TEST_F(ClusterTest, UnknownFunctionFailsWithFunctionNotFound) {
  fleet::ObjectRef<int> ref = fleet::Task<int(int)>("NoSuchFunction").Remote(1);
  std::optional<fleet::TaskError> error = GetError(ref);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "function_not_found");
  EXPECT_EQ(error->function_name(), "NoSuchFunction");
  EXPECT_THAT(error->message(), HasSubstr("NoSuchFunction"));
  EXPECT_THAT(std::string(error->what()), HasSubstr("NoSuchFunction"));
}

TEST_F(ClusterTest, WrongSignatureByNameFailsWithSignatureMismatch) {
  // Square takes an int; the caller claims it takes a string.
  std::optional<fleet::TaskError> error =
      GetError(fleet::Task<int(std::string)>("Square").Remote("x"));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "signature_mismatch");
  EXPECT_EQ(error->function_name(), "Square");
  EXPECT_THAT(error->message(), HasSubstr("Square"));

  // The right parameters but the wrong result type is a mismatch too.
  error = GetError(fleet::Task<std::string(int)>("Square").Remote(3));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->kind(), "signature_mismatch");

  // The right signature by name works.
  EXPECT_EQ(fleet::Task<int(int)>("Square").Remote(3).Get(kResultTimeout), 9);
}

TEST_F(ClusterTest, GetWithTheWrongResultTypeThrowsInsteadOfMisdecoding) {
  // A ref to Square's result read as a string: the typed API cannot say
  // this, but an ObjectRef built from another's handle can.
  fleet::ObjectRef<int> ref = fleet::Task(Square).Remote(3);
  EXPECT_EQ(ref.Get(kResultTimeout), 9);
  fleet::ObjectRef<std::string> wrong(ref.handle());
  EXPECT_THROW(wrong.Get(kResultTimeout), fleet::Error);
}

// A TCP port on 127.0.0.1 that is bound (so nobody else takes it) but not
// listening, so connecting to it is refused. Closed on destruction.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~RefusingPort() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(UnreachableSchedulerTest, InitThrowsNamingTheAddress) {
  RefusingPort refusing;
  ASSERT_GT(refusing.port(), 0);
  const std::string address = "127.0.0.1:" + std::to_string(refusing.port());
  try {
    fleet::Init({.address = address, .connect_timeout = 1s});
    fleet::Shutdown();
    FAIL() << "Init connected to " << address << ", where nothing listens";
  } catch (const fleet::Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr(address));
  }
  EXPECT_FALSE(fleet::IsInitialized());
  // Nothing works without a session, and says so.
  EXPECT_THROW(fleet::Task(Square).Remote(1), fleet::Error);
}

}  // namespace
}  // namespace fleet_it
