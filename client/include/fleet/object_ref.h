// ObjectRef<T>: a future for the result of a remote task or a Put.
#ifndef FLEET_OBJECT_REF_H_
#define FLEET_OBJECT_REF_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// An object's serialized value and what keeps it valid: a copy in this
// process, or a pin on the object in the store of a worker on this host,
// read in place through the mapped store.
struct ObjectBytes {
  std::string_view bytes;
  std::shared_ptr<const void> owner;
};

// Blocks until the object is ready (or `timeout` passes) and returns its
// serialized value. Throws TaskError when it failed, GetTimeout, or Error
// when the cluster cannot be reached.
ObjectBytes GetObjectBytes(const ObjectHandle& handle,
                           std::optional<std::chrono::nanoseconds> timeout);

// The object id as 56 hex digits.
std::string ObjectIdHex(const ObjectHandle& handle);

template <typename T>
T DecodeResult(std::string_view bytes) {
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

template <typename T>
struct ArrayElement {};
template <typename E>
struct ArrayElement<Array<E>> {
  using type = E;
};
template <typename T>
concept IsArray = requires { typename ArrayElement<T>::type; };

template <typename E>
ArrayView<E> ViewOf(ObjectBytes bytes) {
  ArrayView<E> view = DecodeResult<ArrayView<E>>(bytes.bytes);
  if (!view.in_place()) return view;  // an aligned private copy
  return ArrayView<E>(view.data(), view.size(), std::move(bytes.owner));
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
  T Get() const { return internal::DecodeResult<T>(Bytes(std::nullopt).bytes); }

  // As Get(), but throws fleet::GetTimeout when the value is not ready
  // within `timeout`.
  template <typename Rep, typename Period>
  T Get(std::chrono::duration<Rep, Period> timeout) const {
    return internal::DecodeResult<T>(
        Bytes(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)).bytes);
  }

  // ObjectRef<fleet::Array<E>> only: the array as a fleet::ArrayView<E>,
  // without deserializing it. When the object is in the store of a worker
  // on this host, the view reads it there, in place: no copy at all, and the
  // object stays pinned in that worker's memory (never evicted or spilled)
  // until the view and every copy of it are gone. Otherwise its bytes are
  // fetched once, as for Get, and the view reads them. Throws as Get does.
  auto GetView() const
    requires internal::IsArray<T>
  {
    return internal::ViewOf<typename internal::ArrayElement<T>::type>(Bytes(std::nullopt));
  }

  // As GetView(), but throws fleet::GetTimeout after `timeout`.
  template <typename Rep, typename Period>
  auto GetView(std::chrono::duration<Rep, Period> timeout) const
    requires internal::IsArray<T>
  {
    return internal::ViewOf<typename internal::ArrayElement<T>::type>(
        Bytes(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)));
  }

  bool valid() const { return handle_ != nullptr; }
  std::string Id() const { return valid() ? internal::ObjectIdHex(handle_) : std::string(); }

  const internal::ObjectHandle& handle() const { return handle_; }

 private:
  internal::ObjectBytes Bytes(std::optional<std::chrono::nanoseconds> timeout) const {
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
