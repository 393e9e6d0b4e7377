// Small networking helpers shared by the daemons and the client.
#ifndef FLEET_COMMON_NET_H_
#define FLEET_COMMON_NET_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "grpcpp/channel.h"

namespace grpc {
class ServerBuilder;
}

namespace fleet {

// gRPC's default 4 MiB limit is raised deliberately: batches are capped at
// kDefaultBatchCapBytes and object chunks at kObjectChunkBytes, so this only
// leaves headroom for a batch whose single item is large.
inline constexpr int kMaxMessageBytes = 64 << 20;

// Splits "host:port". Returns InvalidArgument naming `address` when it is
// not of that form or the port is not a number in 1..65535.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(absl::string_view address);

// The local IP address this host uses to reach `address` ("host:port"),
// found by routing, not by sending anything; how a worker detects the
// address to advertise from inside a container or a network namespace.
absl::StatusOr<std::string> LocalAddressToward(absl::string_view address);

std::string Hostname();

// Keepalive: every fleet connection is pinged after kKeepaliveTime without
// a ping, and closed when an answer takes longer than kKeepaliveTimeout, so
// a peer whose host vanished (no FIN, a dead node, a cut network) is
// noticed in well under a minute, not when TCP gives up minutes later.
inline constexpr int kKeepaliveTimeMs = 20'000;
inline constexpr int kKeepaliveTimeoutMs = 10'000;

// Sets fleet's message limits and keepalive on a server, and lets its
// peers ping as often as NewChannel's channels do.
void ConfigureServer(grpc::ServerBuilder& builder);

// A new channel to `address` with fleet's message limits, keepalive and the
// cluster token (common/cluster_token.h); its connection closes when the
// last reference goes.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address);

// A channel to `address` shared per address for the life of the process, for
// short calls to many peers (object transfer). Thread-safe.
std::shared_ptr<grpc::Channel> ChannelTo(const std::string& address);

// Writes `content` to `path` atomically (temporary file, then rename), so a
// reader polling for a port file never sees it half-written.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content);

}  // namespace fleet

#endif  // FLEET_COMMON_NET_H_
