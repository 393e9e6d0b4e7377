// --help for our daemons and tools.
#ifndef FLEET_COMMON_FLAGS_USAGE_H_
#define FLEET_COMMON_FLAGS_USAGE_H_

#include <string>

namespace fleet {

// Sets the usage message, and makes --help list the flags defined in the
// program's main.cc (absl otherwise lists only flags of a file named after
// the program, so ours would show as "No flags matched").
void SetUsage(const std::string& message);

}  // namespace fleet

#endif  // FLEET_COMMON_FLAGS_USAGE_H_
