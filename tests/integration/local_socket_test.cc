// Same-host workers and clients reach the scheduler through its unix socket
// (common/scheduler_socket.h), and over TCP when it has none; a same-host
// worker pushes small results straight to their client through its store's
// socket (worker/owner_delivery.h).
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net.h"
#include "common/scheduler_socket.h"
#include "fleet/fleet.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_tasks.h"

namespace fleet_it {
namespace {

int SchedulerPort(const std::string& address) {
  auto host_port = fleet::SplitHostPort(address);
  EXPECT_TRUE(host_port.ok()) << host_port.status();
  return host_port.ok() ? host_port->second : 0;
}

// Connections accepted on the scheduler's unix socket: in /proc/net/unix
// each accepted socket carries the listening socket's name, in state
// SS_CONNECTED (03).
int ConnectionsThroughSchedulerSocket(int port) {
  std::ifstream table("/proc/net/unix");
  const std::string name = absl::StrCat("@fleet-scheduler-", port);
  int connected = 0;
  for (std::string line; std::getline(table, line);) {
    // Num RefCount Protocol Flags Type St Inode Path
    if (!absl::EndsWith(line, name)) continue;
    std::vector<std::string> fields;
    for (std::size_t start = 0, end; start < line.size(); start = end + 1) {
      end = line.find(' ', start);
      if (end == std::string::npos) end = line.size();
      if (end > start) fields.push_back(line.substr(start, end - start));
    }
    if (fields.size() >= 6 && fields[5] == "03") ++connected;
  }
  return connected;
}

TEST_F(ClusterTest, SameHostWorkersAndClientsUseTheSchedulersUnixSocket) {
  EXPECT_EQ(fleet::Task(Square).Remote(7).Get(kResultTimeout), 49);
  const int port = SchedulerPort(cluster().scheduler_address());
  EXPECT_EQ(fleet::SchedulerChannelTarget(cluster().scheduler_address()),
            fleet::SchedulerSocketTarget(port));
  EXPECT_EQ(fleet::SchedulerChannelTarget(absl::StrCat("localhost:", port)),
            fleet::SchedulerSocketTarget(port));
  // Another host's address never goes to a local socket, whatever its port.
  EXPECT_EQ(fleet::SchedulerChannelTarget(absl::StrCat("192.0.2.1:", port)),
            absl::StrCat("192.0.2.1:", port));
  // Each worker's stream and this client's session.
  EXPECT_GE(ConnectionsThroughSchedulerSocket(port), kWorkers + 1);
  EXPECT_TRUE(absl::IsAlreadyExists(fleet::SchedulerSocketFree(port)));
}

class TcpOnlyTest : public ClusterTest {
 protected:
  std::vector<std::string> SchedulerFlags() const override { return {"--nolocal_socket"}; }
};

TEST_F(TcpOnlyTest, WithoutTheSocketEveryoneConnectsOverTcp) {
  EXPECT_EQ(fleet::Task(Square).Remote(8).Get(kResultTimeout), 64);
  const int port = SchedulerPort(cluster().scheduler_address());
  EXPECT_EQ(fleet::SchedulerChannelTarget(cluster().scheduler_address()),
            cluster().scheduler_address());
  EXPECT_EQ(ConnectionsThroughSchedulerSocket(port), 0);
  EXPECT_TRUE(fleet::SchedulerSocketFree(port).ok());
}

TEST_F(ClusterTest, SameHostWorkersPushSmallResultsStraightToTheirClient) {
  ASSERT_NO_FATAL_FAILURE(CallSquaresSynchronously(kSyncCalls));
  // Results of a pipelined burst go through the scheduler, batched; all of
  // them arrive either way.
  std::vector<fleet::ObjectRef<int>> burst;
  for (int i = 0; i < 2000; ++i) burst.push_back(fleet::Task(Square).Remote(i));
  const std::vector<int> squares = fleet::Get(burst);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(squares[i], i * i);
  // The client subscribes as the workers join, so at most the first calls
  // can have gone through the scheduler.
  nlohmann::json last;
  EXPECT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) {
        return SumOverWorkers(s, "results_delivered_to_owner") >= kSyncCalls / 2;
      },
      kStatusTimeout, &last))
      << last.dump();
}

class NoOwnerDeliveryTest : public ClusterTest {
 protected:
  std::vector<std::string> WorkerFlags() const override { return {"--deliver_to_owner=false"}; }
};

TEST_F(NoOwnerDeliveryTest, ResultsComeThroughTheSchedulerAloneAndNoTaskIsHandedOver) {
  ASSERT_NO_FATAL_FAILURE(CallSquaresSynchronously(kSyncCalls));
  // Waits until every worker has reported its counters after the calls.
  nlohmann::json before;
  ASSERT_TRUE(cluster().WaitForStatus(
      [](const nlohmann::json& s) { return s["workers"].size() == kWorkers; }, kStatusTimeout,
      &before));
  const nlohmann::json last = StatusWithHeartbeatsAfter(cluster(), before);
  EXPECT_EQ(SumOverWorkers(last, "results_delivered_to_owner"), 0) << last.dump();
  // Nor are they handed tasks (worker/direct_tasks.h), not even to decline.
  EXPECT_EQ(last["tasks"].value("run_directly", -1), 0) << last.dump();
  EXPECT_EQ(SumOverWorkers(last, "direct_tasks_run"), 0) << last.dump();
  EXPECT_EQ(SumOverWorkers(last, "direct_tasks_declined"), 0) << last.dump();
}

}  // namespace
}  // namespace fleet_it
