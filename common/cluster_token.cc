#include "common/cluster_token.h"

#include <cstdlib>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace fleet {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

absl::Mutex sent_token_mu(absl::kConstInit);
std::string* sent_token ABSL_GUARDED_BY(sent_token_mu) = nullptr;

// Compares without stopping at the first difference, so the time a refusal
// takes says nothing about how much of a guess was right.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    differ |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return differ == 0;
}

class ClusterTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (std::string token = SentClusterToken(); !token.empty()) {
        methods->GetSendInitialMetadata()->emplace("authorization", absl::StrCat(kBearer, token));
      }
    }
    methods->Proceed();
  }
};

class ClusterTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new ClusterTokenInterceptor();
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
NewClusterTokenInterceptorFactory() {
  return std::make_unique<ClusterTokenInterceptorFactory>();
}

std::string ClusterTokenFromEnvironment() {
  const char* value = std::getenv(kClusterTokenVariable);
  return value == nullptr ? std::string() : std::string(value);
}

std::string SentClusterToken() {
  absl::MutexLock lock(&sent_token_mu);
  if (sent_token == nullptr) sent_token = new std::string(ClusterTokenFromEnvironment());
  return *sent_token;
}

void SetSentClusterToken(std::string token) {
  absl::MutexLock lock(&sent_token_mu);
  if (sent_token == nullptr) {
    sent_token = new std::string(std::move(token));
  } else {
    *sent_token = std::move(token);
  }
}

grpc::Status ClusterTokenCheck::Check(const grpc::ServerContextBase& context) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat(server_name_, " requires the cluster token and this call carries none: set ",
                     kClusterTokenVariable, " to the token the cluster was started with"));
  }
  const absl::string_view sent(found->second.data(), found->second.size());
  if (!absl::StartsWith(sent, kBearer) || !SameSecret(sent.substr(kBearer.size()), token_)) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat(server_name_, " refused the cluster token this call carries: set ",
                     kClusterTokenVariable, " to the token the cluster was started with"));
  }
  return grpc::Status::OK;
}

}  // namespace fleet
