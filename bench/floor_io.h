// Blocking POSIX I/O for fleet-bench-floor's processes: whole reads and
// writes, and dying with errno's reason.
#ifndef FLEET_BENCH_FLOOR_IO_H_
#define FLEET_BENCH_FLOOR_IO_H_

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace fleet::bench {

// The gRPC target of the abstract unix socket a gRPC child of
// fleet-bench-floor listens on beside its TCP port, named after its pid
// (known to the parent from fork, while the port is known only once the
// child listens): the same hops over the transport a scheduler's same-host
// workers and clients use (common/scheduler_socket.h).
inline std::string UnixTargetOf(pid_t pid) {
  return "unix-abstract:fleet-bench-floor-" + std::to_string(pid);
}

inline bool WriteFull(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

inline bool ReadFull(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "fleet-bench-floor: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

}  // namespace fleet::bench

#endif  // FLEET_BENCH_FLOOR_IO_H_
