// The cluster token: a shared secret that a scheduler started with one
// (FLEET_TOKEN in its environment) requires on every RPC, and that workers
// require on their object service. Every fleet process sends it on every
// call it makes: channels made by NewChannel (common/net.h) attach it.
//
// It keeps out strangers who can reach the ports; it is not encryption
// (the channels are plaintext gRPC), so a cluster across untrusted
// networks also needs a private network or a TLS-terminating proxy.
#ifndef FLEET_COMMON_CLUSTER_TOKEN_H_
#define FLEET_COMMON_CLUSTER_TOKEN_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/status.h"

namespace fleet {

inline constexpr char kClusterTokenVariable[] = "FLEET_TOKEN";

// $FLEET_TOKEN, or "" when unset.
std::string ClusterTokenFromEnvironment();

// The token this process sends. It starts as $FLEET_TOKEN; the client's
// InitOptions::token replaces it. Thread-safe.
std::string SentClusterToken();
void SetSentClusterToken(std::string token);

// Attaches SentClusterToken(), read at each call, to every call on a
// channel made with it (NewChannel uses it).
std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
NewClusterTokenInterceptorFactory();

// What a server requires of each call. An empty token requires nothing (a
// cluster started without FLEET_TOKEN is open to whoever reaches it).
class ClusterTokenCheck {
 public:
  ClusterTokenCheck(std::string token, std::string server_name)
      : token_(std::move(token)), server_name_(std::move(server_name)) {}

  bool required() const { return !token_.empty(); }

  // OK when the call carries the token; otherwise UNAUTHENTICATED, saying
  // which server refused it and what the caller should set.
  grpc::Status Check(const grpc::ServerContextBase& context) const;

 private:
  std::string token_;
  std::string server_name_;  // e.g. "the fleet scheduler"
};

}  // namespace fleet

#endif  // FLEET_COMMON_CLUSTER_TOKEN_H_
