// The child processes fleet-bench-floor measures against: each forked before
// the parent starts gRPC or any thread (gRPC does not survive a fork).
#ifndef FLEET_BENCH_FLOOR_CHILDREN_H_
#define FLEET_BENCH_FLOOR_CHILDREN_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace fleet::bench {

// A child that echoes whatever arrives on its end of a Unix socketpair; the
// other end is returned in `fd`.
pid_t StartSocketPairChild(int* fd);

// A child serving the bare Echo service on 127.0.0.1 (callback API, as
// fleet's daemons); its address is returned in `address`. Every gRPC child
// also listens on UnixTargetOf(its pid) (floor_io.h).
pid_t StartGrpcChild(std::string* address);

// The bare form of fleet's round-trip path (client -> scheduler -> worker ->
// executor and back), with no task system: a relay child whose Echo stream
// forwards each message over a stream of its own to an end child, which
// passes it through a socketpair child and answers. Returns the children to
// kill (the socketpair grandchild exits when its socket closes); the relay's
// address in `address`. On the callback API (as fleet's daemons), the
// relay's downstream stream is either a blocking client stream called inline
// in the upstream read reaction or a callback client reactor (no thread
// blocks, as in fleet's scheduler); on the async API, the relay and the end
// each drain one completion queue on one thread, alone or beside an idle
// callback service (which brings the callback API's polling threads back),
// or alone with both streams over unix sockets (`address` is then the
// relay's UnixTargetOf). The floor is the fastest over the transport the
// round trip measured used.
enum class RelayKind {
  kBlockingClient,
  kCallbackClient,
  kAsync,
  kAsyncBesideCallback,
  kAsyncOverUnixSockets
};
std::vector<pid_t> StartChainChildren(RelayKind relay_kind, std::string* address);

// Kills the children at exit, however main returns.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children();

  void Add(pid_t pid) { pids_.push_back(pid); }

 private:
  std::vector<pid_t> pids_;
};

}  // namespace fleet::bench

#endif  // FLEET_BENCH_FLOOR_CHILDREN_H_
