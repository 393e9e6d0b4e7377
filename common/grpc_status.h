// Conversions between absl::Status and grpc::Status at the RPC edge. The
// canonical codes are numerically equal in both libraries.
#ifndef FLEET_COMMON_GRPC_STATUS_H_
#define FLEET_COMMON_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace fleet {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

inline absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace fleet

#endif  // FLEET_COMMON_GRPC_STATUS_H_
