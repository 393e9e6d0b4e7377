// The exceptions of fleet's user API. Inside the library and across daemons
// failures are absl::Status values; they become these exceptions only here.
#ifndef FLEET_ERRORS_H_
#define FLEET_ERRORS_H_

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace fleet {

// Base of every exception fleet throws: bad configuration, an unreachable
// scheduler, a lost connection, misuse of the API.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A remote task failed, or an object it needed did. what() is a complete,
// human-readable account including the chain of causes.
class TaskError : public Error {
 public:
  struct Details {
    std::string kind;            // "user_exception", "dependency_failed", ...
    std::string function_name;
    std::string task_id;         // hex
    std::string exception_type;  // demangled C++ type, for user exceptions
    std::string message;
    std::string worker;          // "worker <id> at <host:port>"
    uint32_t attempt = 0;
    std::shared_ptr<const TaskError> cause;  // why an argument failed
  };

  explicit TaskError(Details details);

  const std::string& kind() const { return details_.kind; }
  const std::string& function_name() const { return details_.function_name; }
  const std::string& task_id() const { return details_.task_id; }
  const std::string& exception_type() const { return details_.exception_type; }
  const std::string& message() const { return details_.message; }
  const std::string& worker() const { return details_.worker; }
  uint32_t attempt() const { return details_.attempt; }
  // The failure of the argument that made this task fail; null otherwise.
  const TaskError* cause() const { return details_.cause.get(); }

 private:
  Details details_;
};

// The task was cancelled with fleet::Cancel (kind() is "cancelled"); its
// dependents fail with a TaskError whose cause() is this.
class TaskCancelled : public TaskError {
 public:
  using TaskError::TaskError;
  explicit TaskCancelled(TaskError error) : TaskError(std::move(error)) {}
};

// ObjectRef::Get(timeout) or Wait gave up before the result was ready. The
// task goes on; a later Get may succeed.
class GetTimeout : public Error {
 public:
  using Error::Error;
};

}  // namespace fleet

#endif  // FLEET_ERRORS_H_
