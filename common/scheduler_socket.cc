#include "common/scheduler_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/local_socket.h"
#include "common/net.h"

namespace fleet {
namespace {

std::string SocketName(int port) { return absl::StrCat("fleet-scheduler-", port); }

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
  absl::StatusOr<AbstractSocket> probe = NewAbstractSocket(SocketName(port), SOCK_STREAM);
  if (!probe.ok()) return probe.status();
  absl::Cleanup closed = [fd = probe->fd] { close(fd); };
  if (bind(probe->fd, probe->name(), probe->length) == 0) return absl::OkStatus();
  if (errno == EADDRINUSE) {
    return absl::AlreadyExistsError(absl::StrCat(
        "another process in this network namespace holds the socket ", SocketName(port)));
  }
  return ErrnoStatus(absl::StrCat("binding the socket ", SocketName(port)));
}

std::string SchedulerChannelTarget(const std::string& address) {
  absl::StatusOr<std::pair<std::string, int>> host_port = SplitHostPort(address);
  if (!host_port.ok() || !IsLoopbackHost(host_port->first)) return address;
  absl::StatusOr<AbstractSocket> probe =
      NewAbstractSocket(SocketName(host_port->second), SOCK_STREAM);
  if (!probe.ok()) return address;
  absl::Cleanup closed = [fd = probe->fd] { close(fd); };
  if (connect(probe->fd, probe->name(), probe->length) != 0) return address;
  ucred peer{};
  socklen_t size = sizeof(peer);
  if (getsockopt(probe->fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) return address;
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
