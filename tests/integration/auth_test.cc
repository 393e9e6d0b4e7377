// The cluster token (FLEET_TOKEN): a scheduler started with one refuses
// clients, workers and `fleet` commands that do not send it, and a cluster
// whose every process has it works as before, object transfers included.
#include <cstdlib>
#include <string>

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

constexpr char kToken[] = "auth-test-7f3c9d1e";

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The daemons inherit this process's environment; each test runs in a
    // process of its own.
    ASSERT_EQ(setenv("FLEET_TOKEN", kToken, /*overwrite=*/1), 0);
    cluster_ = std::make_unique<fleet::test::LocalProcessCluster>(fleet::test::ClusterOptions{
        .task_libraries = {FLEET_TEST_TASK_LIB},
        // Objects move over gRPC, not a same-host mapping, so that every
        // transfer meets the workers' token check.
        .worker_flags = {"--local_store=false"},
    });
    ASSERT_TRUE(cluster_->Start());
  }

  void TearDown() override {
    fleet::Shutdown();
    cluster_.reset();
  }

  CommandResult Fleet(const std::string& token) {
    return RunCommand({FLEET_CLI, "--address=" + cluster_->scheduler_address(), "status"},
                      std::chrono::seconds(30), {"FLEET_TOKEN=" + token});
  }

  std::unique_ptr<fleet::test::LocalProcessCluster> cluster_;
};

TEST_F(AuthTest, ClientWithTheWrongTokenIsRefusedAndToldWhatToSet) {
  try {
    fleet::Init({.address = cluster_->scheduler_address(), .token = "not-the-token"});
    FAIL() << "Init with the wrong token succeeded";
  } catch (const fleet::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("refused the cluster token"));
    EXPECT_THAT(e.what(), HasSubstr("FLEET_TOKEN"));
  }
  EXPECT_FALSE(fleet::IsInitialized());
  EXPECT_EQ(cluster_->Status()["sessions"].get<int>(), 0);
}

TEST_F(AuthTest, ClusterWithTheTokenMovesObjectsBetweenEveryProcess) {
  fleet::Init({.address = cluster_->scheduler_address(), .token = kToken});
  EXPECT_EQ(fleet::Task(Square).Remote(7).Get(), 49);
  // A 4 MiB result made on one worker, read by a task on each worker (a
  // fetch between workers for at least one) and by this client.
  fleet::ObjectRef<fleet::Array<double>> big = fleet::Task(FourMiBArray).Remote(3);
  std::vector<fleet::ObjectRef<ArrayDigest>> digests;
  for (int i = 0; i < 4; ++i) digests.push_back(fleet::Task(DigestBigArray).Remote(big, 3.0, 0));
  for (auto& digest : digests) EXPECT_TRUE(digest.Get(kResultTimeout).pattern_ok);
  EXPECT_EQ(big.Get(kResultTimeout).size(), static_cast<std::size_t>(kFourMiBOfDoubles));
  // A value too large to travel inline, uploaded by this client.
  const std::string value(2 << 20, 'x');
  EXPECT_EQ(fleet::Task(Length).Remote(fleet::Put(value)).Get(kResultTimeout), value.size());
}

TEST_F(AuthTest, FleetCommandNeedsTheTokenToo) {
  const CommandResult without = Fleet("");
  EXPECT_EQ(without.exit_code, 1) << without.err;
  EXPECT_THAT(without.err, HasSubstr("requires the cluster token"));
  const CommandResult wrong = Fleet("guess");
  EXPECT_EQ(wrong.exit_code, 1) << wrong.err;
  EXPECT_THAT(wrong.err, HasSubstr("refused the cluster token"));
  const CommandResult right = Fleet(kToken);
  EXPECT_EQ(right.exit_code, 0) << right.err;
  EXPECT_THAT(right.out, HasSubstr("workers     2"));
}

}  // namespace
}  // namespace fleet_it
