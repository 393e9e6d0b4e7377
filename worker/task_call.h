// One call of a registered remote function, as both isolation modes make
// it: in a daemon thread (--isolation=thread) and in an executor process.
// Failures become TaskFailure values; nothing the function throws escapes.
#ifndef FLEET_WORKER_TASK_CALL_H_
#define FLEET_WORKER_TASK_CALL_H_

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/remote.h"
#include "fleet/v1/common.pb.h"

namespace fleet::worker {

// Thrown by a ResultBuffer that cannot take the result (a store error):
// the task fails with INTERNAL rather than as the user's exception.
class ResultNotStored : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

v1::TaskFailure MakeFailure(v1::TaskFailure::Kind kind, std::string message);

// Looks up `function_name`, checks the caller's signature hash, and calls
// it with the serialized `args`, its result serialized into `result`.
// Returns the failure (kind, message, exception type) when it could not
// run or threw; `where` names this process in the messages ("worker 3f2a").
std::optional<v1::TaskFailure> CallRegisteredFunction(const std::string& function_name,
                                                      uint64_t signature_hash,
                                                      const std::vector<std::string_view>& args,
                                                      internal::ResultBuffer& result,
                                                      const std::string& where);

}  // namespace fleet::worker

#endif  // FLEET_WORKER_TASK_CALL_H_
