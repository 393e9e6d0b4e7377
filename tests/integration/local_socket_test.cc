// Same-host workers and clients reach the scheduler through its unix socket
// (common/scheduler_socket.h), and over TCP when it has none.
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

}  // namespace
}  // namespace fleet_it
