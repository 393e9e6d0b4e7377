#include "worker/executor_channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace fleet::worker {
namespace {

// Far beyond any task value; a larger prefix means a corrupted stream.
constexpr uint64_t kMaxFrameBytes = uint64_t{1} << 34;

absl::Status PeerGone() { return absl::CancelledError("the executor channel was closed"); }

absl::Status Errno(const char* what) {
  const int error = errno;
  if (error == EPIPE || error == ECONNRESET) return PeerGone();
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(what, " on the executor channel: ", std::strerror(error)));
}

absl::Status ReadExactly(int socket, char* data, uint64_t size) {
  while (size > 0) {
    const ssize_t got = read(socket, data, size);
    if (got == 0) return PeerGone();
    if (got < 0) {
      if (errno == EINTR) continue;
      return Errno("reading");
    }
    data += got;
    size -= static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SendFramed(int socket, const google::protobuf::MessageLite& message) {
  std::string body;
  if (!message.SerializeToString(&body)) {
    return absl::InternalError("a message for the executor channel could not be serialized");
  }
  // Both ends are on one host: the prefix is in its byte order.
  uint64_t prefix = body.size();
  iovec parts[2] = {{&prefix, sizeof(prefix)}, {body.data(), body.size()}};
  int first = 0;
  while (first < 2) {
    msghdr header{};
    header.msg_iov = parts + first;
    header.msg_iovlen = static_cast<size_t>(2 - first);
    ssize_t sent = sendmsg(socket, &header, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return Errno("writing");
    }
    while (first < 2 && static_cast<size_t>(sent) >= parts[first].iov_len) {
      sent -= static_cast<ssize_t>(parts[first].iov_len);
      ++first;
    }
    if (first < 2) {
      parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + sent;
      parts[first].iov_len -= static_cast<size_t>(sent);
    }
  }
  return absl::OkStatus();
}

absl::Status ReceiveFramed(int socket, google::protobuf::MessageLite* message) {
  uint64_t size = 0;
  if (absl::Status status = ReadExactly(socket, reinterpret_cast<char*>(&size), sizeof(size));
      !status.ok()) {
    return status;
  }
  if (size > kMaxFrameBytes) {
    return absl::DataLossError(absl::StrCat("the executor channel announced a message of ", size,
                                            " bytes: the stream is corrupted"));
  }
  std::string body(size, '\0');
  if (absl::Status status = ReadExactly(socket, body.data(), size); !status.ok()) return status;
  if (!message->ParseFromString(body)) {
    return absl::DataLossError("a malformed message arrived on the executor channel");
  }
  return absl::OkStatus();
}

}  // namespace fleet::worker
