// The status of a failed system call.
#ifndef FLEET_COMMON_ERRNO_STATUS_H_
#define FLEET_COMMON_ERRNO_STATUS_H_

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fleet {

// `what` failed with `error`: the status whose code matches the error,
// saying "what: strerror". The default reads errno at the call, in no set
// order with building `what`: read it first where that allocates.
absl::Status ErrnoStatus(absl::string_view what, int error = errno);

}  // namespace fleet

#endif  // FLEET_COMMON_ERRNO_STATUS_H_
