// The scheduler's same-host gRPC socket. Besides its TCP port, a scheduler
// listens on an abstract unix socket named after that port; workers and
// clients that reach it through a loopback address use the socket instead.
// On a virtual machine a loopback TCP message costs several times a unix
// socket's (the floor's echoes), and each round trip of a task crosses four.
//
// Abstract names are scoped to a network namespace, as a loopback address
// is, so the name of port P in a process's namespace belongs to the
// scheduler on 127.0.0.1:P there, or to nobody. Abstract sockets have no
// permissions, so a client uses one only when it is held by its own user
// or root: another user cannot stand in for the scheduler.
#ifndef FLEET_COMMON_SCHEDULER_SOCKET_H_
#define FLEET_COMMON_SCHEDULER_SOCKET_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fleet {

// Whether a server listening on `host` serves that host's loopback
// addresses too (a loopback or wildcard address): only then is
// 127.0.0.1:PORT that server, and may it hold the socket of PORT.
bool ServesLoopback(const std::string& host);

// The gRPC target of the socket of the scheduler on TCP port `port`
// ("unix-abstract:fleet-scheduler/PORT").
std::string SchedulerSocketTarget(int port);

// Whether the scheduler's socket for `port` can still be bound in this
// network namespace; AlreadyExists (saying so) when a process holds it.
absl::Status SchedulerSocketFree(int port);

// The target a channel to the scheduler at `address` ("host:port") should
// use: its socket, when `host` is a loopback address and the socket
// accepts a connection from a process of this user or root; else `address`.
std::string SchedulerChannelTarget(const std::string& address);

// A TCP port picked and held for a server that is about to bind it: a
// socket bound to `host`:0 with SO_REUSEPORT, never listening (so it takes
// no connections), for a gRPC server (which sets SO_REUSEPORT) to bind the
// same port while it is held. A server listening on port 0 learns its port
// only once started, too late to name its socket after it.
class HeldPort {
 public:
  static absl::StatusOr<HeldPort> Pick(const std::string& host);
  HeldPort(HeldPort&& other) noexcept : fd_(other.fd_), port_(other.port_) { other.fd_ = -1; }
  HeldPort& operator=(HeldPort&&) = delete;
  ~HeldPort();

  int port() const { return port_; }

 private:
  HeldPort(int fd, int port) : fd_(fd), port_(port) {}

  int fd_;
  int port_;
};

}  // namespace fleet

#endif  // FLEET_COMMON_SCHEDULER_SOCKET_H_
