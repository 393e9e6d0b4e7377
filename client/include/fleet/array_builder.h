// fleet::ArrayBuilder<T>: a fleet::Array<T> built where it will be stored,
// the zero-copy form of fleet::Put for large numeric data.
#ifndef FLEET_ARRAY_BUILDER_H_
#define FLEET_ARRAY_BUILDER_H_

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "fleet/errors.h"
#include "fleet/object_ref.h"
#include "fleet/serialization.h"

namespace fleet {
namespace internal {

// An object being filled in place; defined in the client library.
struct ObjectBuild;
// Starts an object of `size_bytes` and sets `out` to where its bytes go.
std::shared_ptr<ObjectBuild> BeginObject(std::size_t size_bytes, char** out);
// Stores the object and returns its handle. Throws fleet::Error.
ObjectHandle SealObject(ObjectBuild& build);

}  // namespace internal

// An array of `size` elements written directly into the object store of a
// worker on this host (the shared memory tasks read it from), then sealed
// into an ObjectRef<Array<T>> like the one fleet::Put returns, without the
// copy Put makes:
//
//   fleet::ArrayBuilder<double> data(10'000'000);
//   for (std::size_t i = 0; i < data.size(); ++i) data[i] = ...;
//   fleet::ObjectRef<fleet::Array<double>> ref = std::move(data).Seal();
//
// With no worker on this host (or a small array, which travels inline) the
// elements are built in this process and stored by Seal, as Put would. The
// elements start uninitialized. Destroying a builder without sealing it
// drops the object. Move-only; not thread-safe (fill it from several
// threads, but seal it from one).
template <typename T>
class ArrayBuilder {
  static_assert(std::is_trivially_copyable_v<T>,
                "fleet::ArrayBuilder<T> needs a trivially copyable T");
  static_assert(alignof(T) <= internal::kArrayDataAlignment,
                "fleet::ArrayBuilder<T> supports alignments up to 16 bytes");

 public:
  using value_type = T;

  // Throws fleet::Error when fleet is not initialized or no worker can hold
  // the array.
  explicit ArrayBuilder(std::size_t size) : size_(size) {
    const std::string header = internal::SerializedArrayHeader<T>(size * sizeof(T));
    char* out = nullptr;
    build_ = internal::BeginObject(header.size() + size * sizeof(T), &out);
    std::memcpy(out, header.data(), header.size());
    data_ = reinterpret_cast<T*>(out + header.size());
  }
  ArrayBuilder(ArrayBuilder&& other) noexcept
      : size_(std::exchange(other.size_, 0)),
        data_(std::exchange(other.data_, nullptr)),
        build_(std::move(other.build_)) {}
  ArrayBuilder& operator=(ArrayBuilder&& other) noexcept {
    size_ = std::exchange(other.size_, 0);
    data_ = std::exchange(other.data_, nullptr);
    build_ = std::move(other.build_);
    return *this;
  }

  std::size_t size() const { return size_; }
  std::size_t size_bytes() const { return size_ * sizeof(T); }
  T* data() { return data_; }
  T& operator[](std::size_t i) { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }

  // Makes the array immutable and visible to tasks; the builder is empty
  // afterwards. Throws fleet::Error when the worker is gone.
  ObjectRef<Array<T>> Seal() && {
    if (build_ == nullptr) throw Error("Seal on an empty fleet::ArrayBuilder");
    std::shared_ptr<internal::ObjectBuild> build = std::move(build_);
    data_ = nullptr;
    size_ = 0;
    return ObjectRef<Array<T>>(internal::SealObject(*build));
  }

 private:
  std::size_t size_ = 0;
  T* data_ = nullptr;
  std::shared_ptr<internal::ObjectBuild> build_;
};

}  // namespace fleet

#endif  // FLEET_ARRAY_BUILDER_H_
