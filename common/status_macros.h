// RETURN_IF_ERROR and ASSIGN_OR_RETURN for absl::Status. Abseil gains its
// own ABSL_* versions in 20260526; until then these are ours.
#ifndef FLEET_COMMON_STATUS_MACROS_H_
#define FLEET_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#ifndef RETURN_IF_ERROR
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::absl::Status fleet_status_ = (expr);                      \
    if (!fleet_status_.ok()) return fleet_status_;              \
  } while (0)
#endif

#define FLEET_STATUS_CONCAT_INNER(a, b) a##b
#define FLEET_STATUS_CONCAT(a, b) FLEET_STATUS_CONCAT_INNER(a, b)

#ifndef ASSIGN_OR_RETURN
#define ASSIGN_OR_RETURN(lhs, expr) \
  FLEET_ASSIGN_OR_RETURN_IMPL(FLEET_STATUS_CONCAT(fleet_statusor_, __LINE__), lhs, expr)
#define FLEET_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
#endif

#endif  // FLEET_COMMON_STATUS_MACROS_H_
