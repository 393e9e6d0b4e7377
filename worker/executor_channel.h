// The channel between a worker daemon and one of its executor processes
// (executor.proto): protobuf messages with an 8-byte length prefix on a
// SOCK_STREAM socketpair. A stream, not packets, because a task's inline
// arguments and results have no fixed bound.
#ifndef FLEET_WORKER_EXECUTOR_CHANNEL_H_
#define FLEET_WORKER_EXECUTOR_CHANNEL_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"

namespace fleet::worker {

// Returns Cancelled when the peer has gone (closed, crashed).
absl::Status SendFramed(int socket, const google::protobuf::MessageLite& message);

// Appends `message`'s frame to `frames`, to be sent with others by one
// SendFrames: a batch of pipelined tasks costs one write, not one each.
absl::Status AppendFramed(const google::protobuf::MessageLite& message, std::string& frames);
absl::Status SendFrames(int socket, const std::string& frames);

// Reads frames through a buffer: one read takes in whatever the peer has
// written so far (several tasks, or outcomes), instead of two reads a
// message. Thread-compatible; the only reader of its socket.
class FramedReader {
 public:
  explicit FramedReader(int socket) : socket_(socket) {}

  // Whether a whole frame is buffered: Receive will not block.
  bool HasFrame() const;
  // Returns Cancelled when the peer has gone, DataLoss for a corrupted stream.
  absl::Status Receive(google::protobuf::MessageLite* message);

 private:
  std::size_t buffered() const { return end_ - begin_; }
  // Reads once (for a frame larger than a chunk: until `wanted` bytes are
  // buffered).
  absl::Status Fill(std::size_t wanted);

  const int socket_;
  std::string buffer_;     // only grows: its size is its room
  std::size_t begin_ = 0;  // the unread bytes are [begin_, end_)
  std::size_t end_ = 0;
};

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_CHANNEL_H_
