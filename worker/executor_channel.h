// The channel between a worker daemon and one of its executor processes
// (executor.proto): protobuf messages with an 8-byte length prefix on a
// SOCK_STREAM socketpair. A stream, not packets, because a task's inline
// arguments and results have no fixed bound.
#ifndef FLEET_WORKER_EXECUTOR_CHANNEL_H_
#define FLEET_WORKER_EXECUTOR_CHANNEL_H_

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"

namespace fleet::worker {

// Returns Cancelled when the peer has gone (closed, crashed).
absl::Status SendFramed(int socket, const google::protobuf::MessageLite& message);
absl::Status ReceiveFramed(int socket, google::protobuf::MessageLite* message);

}  // namespace fleet::worker

#endif  // FLEET_WORKER_EXECUTOR_CHANNEL_H_
