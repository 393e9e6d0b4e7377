#include "worker/executor_channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/local_socket.h"

namespace fleet::worker {
namespace {

// Far beyond any inline task value (larger ones go through the store); a
// larger prefix means a corrupted stream.
constexpr uint64_t kMaxFrameBytes = std::numeric_limits<int>::max();  // protobuf's own bound
// What one read asks for at least: a few dozen small frames.
constexpr std::size_t kReadChunkBytes = 64 << 10;

absl::Status PeerGone() { return absl::CancelledError("the executor channel was closed"); }

absl::Status Errno(const char* what) {
  const int error = errno;
  if (error == EPIPE || error == ECONNRESET) return PeerGone();
  return ErrnoStatus(absl::StrCat(what, " on the executor channel"), error);
}

}  // namespace

absl::Status SendFramed(int socket, const google::protobuf::MessageLite& message) {
  std::string frame;
  if (absl::Status framed = AppendFramed(message, frame); !framed.ok()) return framed;
  return SendFrames(socket, frame);
}

absl::Status AppendFramed(const google::protobuf::MessageLite& message, std::string& frames) {
  const uint64_t size = message.ByteSizeLong();
  if (size > kMaxFrameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a message of ", size, " bytes is too large for the executor channel (2 GiB at most)"));
  }
  // Both ends are on one host: the prefix is in its byte order.
  const std::size_t at = frames.size();
  frames.resize(at + sizeof(size) + size);
  std::memcpy(frames.data() + at, &size, sizeof(size));
  message.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(frames.data() + at + sizeof(size)));
  return absl::OkStatus();
}

absl::Status SendFrames(int socket, const std::string& frames) {
  const char* data = frames.data();
  std::size_t left = frames.size();
  while (left > 0) {
    const ssize_t sent = send(socket, data, left, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return Errno("writing");
    }
    data += sent;
    left -= static_cast<std::size_t>(sent);
  }
  return absl::OkStatus();
}

bool FramedReader::HasFrame() const {
  if (buffered() < sizeof(uint64_t)) return false;
  uint64_t size = 0;
  std::memcpy(&size, buffer_.data() + begin_, sizeof(size));
  return buffered() - sizeof(size) >= size;
}

absl::Status FramedReader::Fill(std::size_t wanted) {
  if (begin_ > 0) {  // the unread bytes move to the front
    std::memmove(buffer_.data(), buffer_.data() + begin_, buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  const bool large = wanted > kReadChunkBytes;
  const std::size_t room = large ? wanted : end_ + kReadChunkBytes;
  if (buffer_.size() < room) buffer_.resize(room);
  while (true) {
    const ssize_t got =
        recv(socket_, buffer_.data() + end_, (large ? wanted : room) - end_, MSG_DONTWAIT);
    if (got == 0) return PeerGone();
    if (got < 0) {
      if (errno == EINTR) continue;
      // Waits in poll, not in recv: see AwaitReadable.
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && AwaitReadable(socket_)) continue;
      return Errno("reading");
    }
    end_ += static_cast<std::size_t>(got);
    if (!large || end_ >= wanted) return absl::OkStatus();
  }
}

absl::Status FramedReader::Receive(google::protobuf::MessageLite* message) {
  constexpr std::size_t kPrefix = sizeof(uint64_t);
  while (buffered() < kPrefix) {
    if (absl::Status filled = Fill(kPrefix); !filled.ok()) return filled;
  }
  uint64_t size = 0;
  std::memcpy(&size, buffer_.data() + begin_, kPrefix);
  if (size > kMaxFrameBytes) {
    return absl::DataLossError(absl::StrCat("the executor channel announced a message of ", size,
                                            " bytes: the stream is corrupted"));
  }
  while (buffered() < kPrefix + size) {
    if (absl::Status filled = Fill(kPrefix + size); !filled.ok()) return filled;
  }
  const bool parsed =
      message->ParseFromArray(buffer_.data() + begin_ + kPrefix, static_cast<int>(size));
  begin_ += kPrefix + size;
  if (begin_ == end_) begin_ = end_ = 0;
  if (!parsed) return absl::DataLossError("a malformed message arrived on the executor channel");
  return absl::OkStatus();
}

}  // namespace fleet::worker
