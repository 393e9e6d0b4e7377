#include "common/scheduler_socket.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

// A server needs a service (`unused`, which must outlive it).
std::unique_ptr<grpc::Server> StartServer(grpc::ServerBuilder& builder,
                                          grpc::CallbackGenericService& unused) {
  builder.RegisterCallbackGenericService(&unused);
  return builder.BuildAndStart();
}

TEST(SchedulerSocketTest, AHeldPortCanBeBoundByAGrpcServerWhileHeld) {
  absl::StatusOr<HeldPort> held = HeldPort::Pick("127.0.0.1");
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_GT(held->port(), 0);
  int bound = 0;
  grpc::CallbackGenericService unused;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", held->port()),
                           grpc::InsecureServerCredentials(), &bound);
  std::unique_ptr<grpc::Server> server = StartServer(builder, unused);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(bound, held->port());
  server->Shutdown();
}

TEST(SchedulerSocketTest, AChannelGoesToTheSocketOnlyWhileAServerHoldsIt) {
  absl::StatusOr<HeldPort> held = HeldPort::Pick("127.0.0.1");
  ASSERT_TRUE(held.ok()) << held.status();
  const int port = held->port();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  ASSERT_TRUE(SchedulerSocketFree(port).ok());
  EXPECT_EQ(SchedulerChannelTarget(address), address);  // nobody listens there

  grpc::CallbackGenericService unused;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(SchedulerSocketTarget(port), grpc::InsecureServerCredentials());
  std::unique_ptr<grpc::Server> server = StartServer(builder, unused);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(SchedulerChannelTarget(address), SchedulerSocketTarget(port));
  EXPECT_EQ(SchedulerChannelTarget(absl::StrCat("[::1]:", port)), SchedulerSocketTarget(port));
  EXPECT_EQ(SchedulerChannelTarget(absl::StrCat("127.1.2.3:", port)), SchedulerSocketTarget(port));
  EXPECT_TRUE(absl::IsAlreadyExists(SchedulerSocketFree(port)));
  // Not a loopback address, or not an address: left as given.
  EXPECT_EQ(SchedulerChannelTarget(absl::StrCat("192.0.2.1:", port)),
            absl::StrCat("192.0.2.1:", port));
  EXPECT_EQ(SchedulerChannelTarget("127.0.0.1"), "127.0.0.1");

  server->Shutdown();
  server.reset();
  EXPECT_TRUE(SchedulerSocketFree(port).ok());
  EXPECT_EQ(SchedulerChannelTarget(address), address);
}

TEST(SchedulerSocketTest, OnlyAServerReachableThroughLoopbackTakesTheSocket) {
  for (const char* host : {"0.0.0.0", "::", "[::]", "127.0.0.1", "localhost", "::1"}) {
    EXPECT_TRUE(ServesLoopback(host)) << host;
  }
  for (const char* host : {"192.0.2.7", "10.0.0.1", "scheduler", "2001:db8::1"}) {
    EXPECT_FALSE(ServesLoopback(host)) << host;
  }
}

}  // namespace
}  // namespace fleet
