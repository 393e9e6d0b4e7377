#include "common/local_socket.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "fleet/v1/local_store.pb.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

class LocalSocketTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ends_), 0); }
  void TearDown() override {
    for (int fd : ends_) {
      if (fd >= 0) close(fd);
    }
  }
  int ends_[2] = {-1, -1};
};

// ReceivePacket waits in poll, not in recv: a packet sent while it waits
// still arrives, whole.
TEST_F(LocalSocketTest, ReceiveWaitsForAPacketSentLater) {
  std::thread sender([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    v1::LocalStoreRequest request;
    request.mutable_subscribe()->set_job_id("job");
    ASSERT_TRUE(SendPacket(ends_[0], request).ok());
  });
  v1::LocalStoreRequest received;
  const absl::Status status = ReceivePacket(ends_[1], &received);
  sender.join();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(received.subscribe().job_id(), "job");
}

// The socket's receive timeout bounds the wait, as it bounded recv.
TEST_F(LocalSocketTest, ReceiveGivesUpAfterTheSocketsTimeout) {
  const timeval timeout{0, 100'000};
  ASSERT_EQ(setsockopt(ends_[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
  v1::LocalStoreRequest received;
  const absl::Status status = ReceivePacket(ends_[1], &received);
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(absl::IsCancelled(status)) << "nothing closed: " << status;
  EXPECT_NE(status.message().find("receiving on the local store socket"), std::string::npos)
      << status;
}

// A peer that closes while the other end waits is seen as closed.
TEST_F(LocalSocketTest, ReceiveSeesAPeerThatClosesWhileItWaits) {
  std::thread closer([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    close(ends_[0]);
    ends_[0] = -1;
  });
  v1::LocalStoreRequest received;
  const absl::Status status = ReceivePacket(ends_[1], &received);
  closer.join();
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
}

}  // namespace
}  // namespace fleet
