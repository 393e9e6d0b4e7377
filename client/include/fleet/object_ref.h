// ObjectRef<T>: a future for the result of a remote task or a Put.
#ifndef FLEET_OBJECT_REF_H_
#define FLEET_OBJECT_REF_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "fleet/errors.h"
#include "fleet/serialization.h"

namespace fleet {
namespace internal {

// The client runtime's record of one object; defined in the client library.
struct ObjectState;
// A reference-counted handle: the object is released to the cluster when the
// last handle in this process goes away.
using ObjectHandle = std::shared_ptr<ObjectState>;

// Blocks until the object is ready (or `timeout` passes) and returns its
// serialized value. Throws TaskError when it failed, GetTimeout, or Error
// when the cluster cannot be reached.
std::shared_ptr<const std::string> GetObjectBytes(
    const ObjectHandle& handle, std::optional<std::chrono::nanoseconds> timeout);

// The object id as 56 hex digits.
std::string ObjectIdHex(const ObjectHandle& handle);

template <typename T>
T DecodeResult(const std::string& bytes) {
  if constexpr (std::is_void_v<T>) {
    return;
  } else {
    try {
      return Deserialize<T>(bytes);
    } catch (const msgpack::type_error&) {
      throw Error("result cannot be decoded as the requested type: the remote function "
                  "returns a different type than this ObjectRef expects");
    }
  }
}

}  // namespace internal

// A typed reference to an object in the cluster: the future result of
// Task(fn).Remote(...) or the value given to Put. Copies are cheap and share
// the object; when the last copy anywhere is destroyed, the cluster may free
// it. Thread-safe: copies may be used from several threads.
template <typename T>
class ObjectRef {
 public:
  using value_type = T;

  ObjectRef() = default;
  explicit ObjectRef(internal::ObjectHandle handle) : handle_(std::move(handle)) {}

  // Blocks until the value is ready and returns it. Throws fleet::TaskError
  // when the task (or one it depended on) failed.
  T Get() const { return internal::DecodeResult<T>(*Bytes(std::nullopt)); }

  // As Get(), but throws fleet::GetTimeout when the value is not ready
  // within `timeout`.
  template <typename Rep, typename Period>
  T Get(std::chrono::duration<Rep, Period> timeout) const {
    return internal::DecodeResult<T>(
        *Bytes(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)));
  }

  bool valid() const { return handle_ != nullptr; }
  std::string Id() const { return valid() ? internal::ObjectIdHex(handle_) : std::string(); }

  const internal::ObjectHandle& handle() const { return handle_; }

 private:
  std::shared_ptr<const std::string> Bytes(std::optional<std::chrono::nanoseconds> timeout) const {
    if (!valid()) throw Error("Get on an empty ObjectRef");
    return internal::GetObjectBytes(handle_, timeout);
  }

  internal::ObjectHandle handle_;
};

namespace internal {
template <typename T>
struct IsObjectRef : std::false_type {};
template <typename T>
struct IsObjectRef<ObjectRef<T>> : std::true_type {};
}  // namespace internal

}  // namespace fleet

#endif  // FLEET_OBJECT_REF_H_
