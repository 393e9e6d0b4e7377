#include "common/scheduler_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/net.h"

namespace fleet {
namespace {

std::string SocketName(int port) { return absl::StrCat("fleet-scheduler-", port); }

// A unix socket and the abstract address of `name` (a NUL byte, then the
// name, unterminated: gRPC's unix-abstract targets name them so).
struct AbstractSocket {
  int fd = -1;
  sockaddr_un address{};
  socklen_t length = 0;

  explicit AbstractSocket(const std::string& name) {
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, name.data(), name.size());  // short: a port's name
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  ~AbstractSocket() {
    if (fd >= 0) close(fd);
  }
  const sockaddr* name() const { return reinterpret_cast<const sockaddr*>(&address); }
};

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace

bool ServesLoopback(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]" ||
         IsLoopbackHost(host);
}

std::string SchedulerSocketTarget(int port) {
  return absl::StrCat("unix-abstract:", SocketName(port));
}

absl::Status SchedulerSocketFree(int port) {
  AbstractSocket probe(SocketName(port));
  if (probe.fd < 0) return ErrnoStatus("socket(AF_UNIX)");
  if (bind(probe.fd, probe.name(), probe.length) == 0) return absl::OkStatus();
  if (errno == EADDRINUSE) {
    return absl::AlreadyExistsError(absl::StrCat(
        "another process in this network namespace holds the socket ", SocketName(port)));
  }
  return ErrnoStatus(absl::StrCat("binding the socket ", SocketName(port)));
}

std::string SchedulerChannelTarget(const std::string& address) {
  absl::StatusOr<std::pair<std::string, int>> host_port = SplitHostPort(address);
  if (!host_port.ok() || !IsLoopbackHost(host_port->first)) return address;
  AbstractSocket probe(SocketName(host_port->second));
  if (probe.fd < 0 || connect(probe.fd, probe.name(), probe.length) != 0) return address;
  ucred peer{};
  socklen_t size = sizeof(peer);
  if (getsockopt(probe.fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) return address;
  if (peer.uid != geteuid() && peer.uid != 0) return address;
  return SchedulerSocketTarget(host_port->second);
}

absl::StatusOr<HeldPort> HeldPort::Pick(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* results = nullptr;
  if (int rc = getaddrinfo(host.c_str(), "0", &hints, &results); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", host, "' to pick a port: ", gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError(absl::StrCat("no address for '", host, "'"));
  for (addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = ErrnoStatus("socket");
      continue;
    }
    const int on = 1;
    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
      last = ErrnoStatus(absl::StrCat("picking a port on '", host, "'"));
      close(fd);
      continue;
    }
    const int port =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    freeaddrinfo(results);
    return HeldPort(fd, port);
  }
  freeaddrinfo(results);
  return last;
}

HeldPort::~HeldPort() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace fleet
