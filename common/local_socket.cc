#include "common/local_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace fleet {
namespace {

// Leads every packet, so that an empty message is not read as the
// zero-length packet that means the peer closed the connection.
constexpr char kPacketMark = 'F';

// The socket's receive timeout (SO_RCVTIMEO) in milliseconds; -1 for none.
int ReceiveTimeoutMs(int socket) {
  timeval timeout{};
  socklen_t length = sizeof(timeout);
  if (getsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, &length) != 0 ||
      (timeout.tv_sec == 0 && timeout.tv_usec == 0)) {
    return -1;
  }
  return static_cast<int>(timeout.tv_sec * 1000 + (timeout.tv_usec + 999) / 1000);
}

// A new socket and the abstract name of the worker at `address`.
absl::StatusOr<AbstractSocket> StoreSocket(absl::string_view address) {
  return NewAbstractSocket(absl::StrCat("fleet-store/", address), SOCK_SEQPACKET);
}

}  // namespace

absl::StatusOr<AbstractSocket> NewAbstractSocket(absl::string_view name, int type) {
  AbstractSocket socket_and_name;
  socket_and_name.address.sun_family = AF_UNIX;
  if (name.size() + 1 > sizeof(socket_and_name.address.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the socket name ", name, " is too long (at most ",
                     sizeof(socket_and_name.address.sun_path) - 1, " bytes)"));
  }
  char* path = socket_and_name.address.sun_path;
  path[0] = '\0';
  std::memcpy(path + 1, name.data(), name.size());
  socket_and_name.length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  socket_and_name.fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (socket_and_name.fd < 0) return ErrnoStatus("socket(AF_UNIX)", errno);
  return socket_and_name;
}

absl::StatusOr<int> ListenLocalSocket(absl::string_view address) {
  absl::StatusOr<AbstractSocket> unbound = StoreSocket(address);
  if (!unbound.ok()) return unbound.status();
  const int fd = unbound->fd;
  if (bind(fd, unbound->name(), unbound->length) != 0) {
    const int error = errno;
    close(fd);
    if (error == EADDRINUSE) {
      return absl::AlreadyExistsError(absl::StrCat(
          "another process in this network namespace serves the object store of ", address));
    }
    return ErrnoStatus(absl::StrCat("binding the local store socket of ", address), error);
  }
  // Non-blocking, so that a connection that vanishes between poll and
  // accept cannot leave the accepting thread blocked (and its server
  // unable to stop); accepted sockets are blocking again.
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 || listen(fd, 64) != 0) {
    const int error = errno;
    close(fd);
    return ErrnoStatus(absl::StrCat("listening on the local store socket of ", address), error);
  }
  return fd;
}

absl::StatusOr<int> ConnectLocalSocket(absl::string_view address) {
  absl::StatusOr<AbstractSocket> unbound = StoreSocket(address);
  if (!unbound.ok()) return unbound.status();
  const int fd = unbound->fd;
  if (connect(fd, unbound->name(), unbound->length) != 0) {
    const int error = errno;
    close(fd);
    if (error == ECONNREFUSED || error == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("no worker store at ", address, " in this network namespace"));
    }
    return ErrnoStatus(absl::StrCat("connecting to the local store of ", address), error);
  }
  return fd;
}

absl::Status SendPacket(int socket, const google::protobuf::MessageLite& message, int fd) {
  char buffer[kLocalSocketMaxMessageBytes];
  const size_t size = message.ByteSizeLong();
  buffer[0] = kPacketMark;
  if (size + 1 > sizeof(buffer) ||
      !message.SerializeToArray(buffer + 1, static_cast<int>(size))) {
    return absl::InternalError(absl::StrCat("a local store message of ", size,
                                            " bytes does not fit one packet"));
  }
  iovec io{buffer, size + 1};
  msghdr header{};
  header.msg_iov = &io;
  header.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    header.msg_control = control;
    header.msg_controllen = sizeof(control);
    cmsghdr* attached = CMSG_FIRSTHDR(&header);
    attached->cmsg_level = SOL_SOCKET;
    attached->cmsg_type = SCM_RIGHTS;
    attached->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(attached), &fd, sizeof(int));
  }
  while (true) {
    if (sendmsg(socket, &header, MSG_NOSIGNAL) >= 0) return absl::OkStatus();
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      return absl::CancelledError("the local store connection was closed");
    }
    return ErrnoStatus("sending on the local store socket", errno);
  }
}

bool AwaitReadable(int socket, int timeout_ms) {
  pollfd watched{socket, POLLIN, 0};
  while (true) {
    const int ready = poll(&watched, 1, timeout_ms);
    if (ready > 0) return true;  // readable, closed or failed: recv says which
    if (ready == 0) {
      errno = EAGAIN;
      return false;
    }
    if (errno != EINTR) return false;
  }
}

absl::Status ReceivePacket(int socket, google::protobuf::MessageLite* message, int* fd) {
  if (fd != nullptr) *fd = -1;
  char buffer[kLocalSocketMaxMessageBytes];
  iovec io{buffer, sizeof(buffer)};
  msghdr header{};
  header.msg_iov = &io;
  header.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  header.msg_control = control;
  header.msg_controllen = sizeof(control);
  ssize_t received;
  while (true) {
    received = recvmsg(socket, &header, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (received >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    // errno says why: EAGAIN when it timed out.
    if (!AwaitReadable(socket, ReceiveTimeoutMs(socket))) break;
  }
  if (received < 0) {
    if (errno == ECONNRESET) return absl::CancelledError("the local store connection was closed");
    return ErrnoStatus("receiving on the local store socket", errno);
  }
  for (cmsghdr* attached = CMSG_FIRSTHDR(&header); attached != nullptr;
       attached = CMSG_NXTHDR(&header, attached)) {
    if (attached->cmsg_level == SOL_SOCKET && attached->cmsg_type == SCM_RIGHTS) {
      int passed = -1;
      std::memcpy(&passed, CMSG_DATA(attached), sizeof(int));
      if (fd != nullptr) {
        *fd = passed;
      } else {
        close(passed);
      }
    }
  }
  if (received == 0) return absl::CancelledError("the local store connection was closed");
  if ((header.msg_flags & MSG_TRUNC) != 0) {
    return absl::DataLossError("a message too large arrived on the local store socket");
  }
  return ParsePacket(absl::string_view(buffer, static_cast<std::size_t>(received)), message);
}

absl::Status FramePush(const google::protobuf::MessageLite& message, std::string& packet) {
  const std::size_t size = message.ByteSizeLong();
  if (size + 1 > kLocalSocketMaxPushBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a push of ", size, " bytes exceeds ", kLocalSocketMaxPushBytes));
  }
  packet.resize(size + 1);
  packet[0] = kPacketMark;
  if (!message.SerializeToArray(packet.data() + 1, static_cast<int>(size))) {
    return absl::InternalError("serializing a local store push");
  }
  return absl::OkStatus();
}

absl::Status SendPushNow(int socket, absl::string_view packet) {
  while (true) {
    if (send(socket, packet.data(), packet.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
      return absl::OkStatus();
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::ResourceExhaustedError("the subscriber's receive queue is full");
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      return absl::CancelledError("the subscriber closed the connection");
    }
    return ErrnoStatus("pushing on the local store socket", errno);
  }
}

absl::Status ParsePacket(absl::string_view packet, google::protobuf::MessageLite* message) {
  if (packet.empty() || packet.size() > kLocalSocketMaxPushBytes || packet[0] != kPacketMark ||
      !message->ParseFromArray(packet.data() + 1, static_cast<int>(packet.size() - 1))) {
    return absl::DataLossError("a malformed message arrived on the local store socket");
  }
  return absl::OkStatus();
}

}  // namespace fleet
