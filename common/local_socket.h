// The unix socket under the same-host object path (local_store.proto):
// its name, and one protobuf message per SOCK_SEQPACKET packet, optionally
// carrying a file descriptor.
//
// The socket lives in the abstract namespace, named after the worker's
// advertised host:port. Abstract names are scoped to a network namespace,
// as the worker's address is, so whoever can connect to the name shares
// the worker's host (and can map its memfd), and a process in another
// container or namespace simply finds no such socket and uses gRPC.
// (NewAbstractSocket also names the scheduler's socket,
// common/scheduler_socket.h.)
#ifndef FLEET_COMMON_LOCAL_SOCKET_H_
#define FLEET_COMMON_LOCAL_SOCKET_H_

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace fleet {

// A new unix socket of `type` (SOCK_STREAM, SOCK_SEQPACKET) and the
// abstract address `name` stands for: a NUL byte, then the name,
// unterminated, as gRPC's unix-abstract targets name them too. The caller
// owns `fd`. InvalidArgument when the name does not fit.
struct AbstractSocket {
  int fd = -1;
  sockaddr_un address{};
  socklen_t length = 0;

  const sockaddr* name() const { return reinterpret_cast<const sockaddr*>(&address); }
};
absl::StatusOr<AbstractSocket> NewAbstractSocket(absl::string_view name, int type);

// Largest message either side sends; requests and replies are tiny.
inline constexpr int kLocalSocketMaxMessageBytes = 4096;

// Binds and listens on the socket for the worker at `address` (a
// non-blocking socket: poll it, then accept). Returns AlreadyExists when
// another process in this network namespace holds it.
absl::StatusOr<int> ListenLocalSocket(absl::string_view address);

// Connects to the socket of the worker at `address`; NotFound when there
// is none in this network namespace.
absl::StatusOr<int> ConnectLocalSocket(absl::string_view address);

// Sends `message` as one packet, with `fd` attached when it is >= 0.
absl::Status SendPacket(int socket, const google::protobuf::MessageLite& message, int fd = -1);

// Waits until `socket` has something to read (or its peer closed it), at
// most `timeout_ms` (-1: for ever). False, with errno EAGAIN, when the
// timeout passed; false with another errno when poll failed.
//
// A thread that waits for a unix socket in recv or read sleeps on the
// queue where the kernel also signals room to write: it is woken, for
// nothing, each time the peer takes what this end sent (a reply, a task,
// a result). poll(POLLIN) filters that out, saving a context switch per
// message. Receive without blocking first, and wait here only on EAGAIN.
bool AwaitReadable(int socket, int timeout_ms = -1);

// Receives one packet into `message`, waiting (AwaitReadable) at most the
// socket's receive timeout (SO_RCVTIMEO; none: for ever); when `fd` is given, a descriptor attached
// to the packet is stored there (else -1). Returns Cancelled when the peer closed the connection.
absl::Status ReceivePacket(int socket, google::protobuf::MessageLite* message, int* fd = nullptr);

// Pushes (a worker's LocalStorePush on a subscribed connection) carry task
// results and may be larger than requests: up to this many bytes each,
// sent without blocking, received in batches.
inline constexpr std::size_t kLocalSocketMaxPushBytes = 64 << 10;

// `message` framed as one packet into `packet` (replacing its content).
// InvalidArgument when the packet would exceed kLocalSocketMaxPushBytes.
absl::Status FramePush(const google::protobuf::MessageLite& message, std::string& packet);

// Sends a framed packet without blocking. ResourceExhausted when the
// peer's receive queue is full (it is slow to read), Cancelled when it
// closed the connection.
absl::Status SendPushNow(int socket, absl::string_view packet);

// Parses one packet received (a request, a reply or a push); DataLoss when
// it is not one of this protocol's.
absl::Status ParsePacket(absl::string_view packet, google::protobuf::MessageLite* message);

}  // namespace fleet

#endif  // FLEET_COMMON_LOCAL_SOCKET_H_
