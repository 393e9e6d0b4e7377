// A function name registered by two task libraries is refused when the
// worker loads them: the worker exits with an error naming the function and
// both libraries, instead of running whichever came first.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_process_cluster.h"

namespace fleet_it {
namespace {

using ::testing::HasSubstr;

TEST(DuplicateLibraryTest, WorkerRefusesTwoLibrariesRegisteringTheSameName) {
  fleet::test::LocalProcessCluster cluster(fleet::test::ClusterOptions{
      .workers = 1,
      .slots_per_worker = 1,
      .task_libraries = {FLEET_DUPLICATE_LIB_A, FLEET_DUPLICATE_LIB_B},
  });
  const ::testing::AssertionResult started = cluster.Start();
  ASSERT_FALSE(started) << "a worker loading both libraries joined the cluster";
  const std::string logs = cluster.Logs();
  EXPECT_THAT(logs, HasSubstr("remote function 'Duplicated' is registered twice"));
  EXPECT_THAT(logs, HasSubstr(FLEET_DUPLICATE_LIB_A));
  EXPECT_THAT(logs, HasSubstr(FLEET_DUPLICATE_LIB_B));
}

TEST(DuplicateLibraryTest, EitherLibraryAloneIsFine) {
  fleet::test::LocalProcessCluster cluster(fleet::test::ClusterOptions{
      .workers = 1,
      .slots_per_worker = 1,
      .task_libraries = {FLEET_DUPLICATE_LIB_A},
  });
  EXPECT_TRUE(cluster.Start());
}

}  // namespace
}  // namespace fleet_it
