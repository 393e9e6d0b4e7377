#include "common/errno_status.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace fleet {

absl::Status ErrnoStatus(absl::string_view what, int error) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(what, ": ", std::strerror(error)));
}

}  // namespace fleet
