// Serialization of task arguments and results: msgpack for every built-in
// type and for user structs with MSGPACK_DEFINE, and fleet::Array<T> for
// large numeric data, stored as one raw aligned block instead of element by
// element.
#ifndef FLEET_SERIALIZATION_H_
#define FLEET_SERIALIZATION_H_

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace fleet {

// A contiguous array of trivially copyable elements, 64-byte aligned.
// Serialized as a msgpack ext value holding an element-type tag and the raw
// bytes, so a 80 MB Array<double> costs one memcpy, not 10 million packs.
// Copying an Array copies its elements; moving it is cheap.
template <typename T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>,
                "fleet::Array<T> needs a trivially copyable T");

 public:
  using value_type = T;
  static constexpr std::size_t kAlignment = 64;

  Array() = default;
  explicit Array(std::size_t size) : size_(size), data_(Allocate(size)) {
    std::memset(static_cast<void*>(data_.get()), 0, size_ * sizeof(T));
  }
  Array(std::size_t size, const T& value) : size_(size), data_(Allocate(size)) {
    for (std::size_t i = 0; i < size_; ++i) data_[i] = value;
  }
  Array(std::initializer_list<T> values) : Array(values.begin(), values.size()) {}
  Array(const T* values, std::size_t size) : size_(size), data_(Allocate(size)) {
    if (size_ > 0) std::memcpy(static_cast<void*>(data_.get()), values, size_ * sizeof(T));
  }
  Array(const Array& other) : Array(other.data(), other.size()) {}
  Array& operator=(const Array& other) {
    if (this != &other) *this = Array(other);
    return *this;
  }
  Array(Array&& other) noexcept
      : size_(std::exchange(other.size_, 0)), data_(std::move(other.data_)) {}
  Array& operator=(Array&& other) noexcept {
    size_ = std::exchange(other.size_, 0);
    data_ = std::move(other.data_);
    return *this;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t size_bytes() const { return size_ * sizeof(T); }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }

  friend bool operator==(const Array& a, const Array& b) {
    return a.size_ == b.size_ &&
           (a.size_ == 0 || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
  }

 private:
  struct AlignedDelete {
    void operator()(T* p) const { ::operator delete[](p, std::align_val_t{kAlignment}); }
  };
  static std::unique_ptr<T[], AlignedDelete> Allocate(std::size_t n) {
    if (n == 0) return nullptr;
    return std::unique_ptr<T[], AlignedDelete>(static_cast<T*>(
        ::operator new[](n * sizeof(T), std::align_val_t{kAlignment})));
  }

  std::size_t size_ = 0;
  std::unique_ptr<T[], AlignedDelete> data_;
};

namespace internal {

// msgpack ext type that marks a fleet::Array.
inline constexpr int8_t kArrayExtType = 0x46;  // 'F'

// Identifies the element type on the wire so that an Array<float> is never
// read as an Array<int32_t>: size, and whether it is floating or signed.
template <typename T>
constexpr uint32_t ArrayElementTag() {
  return static_cast<uint32_t>(sizeof(T)) |
         (std::is_floating_point_v<T> ? 0x100u : 0u) |
         (std::is_signed_v<T> ? 0x200u : 0u) |
         (std::is_arithmetic_v<T> ? 0u : 0x400u);
}

// Bytes before the elements inside the ext payload: tag and padding.
inline constexpr std::size_t kArrayHeaderBytes = 8;

}  // namespace internal

// Serializes `value` with msgpack.
template <typename T>
std::string Serialize(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  return std::string(buffer.data(), buffer.size());
}

namespace internal {
// Lets msgpack point into the caller's buffer for strings, binaries and
// extensions (a fleet::Array) instead of copying them into its zone first:
// the decoded object never outlives the buffer in Deserialize.
inline bool ReferenceInPlace(msgpack::type::object_type, std::size_t, void*) { return true; }
}  // namespace internal

// Deserializes a value that Serialize<T> produced. Throws msgpack::type_error
// (or another msgpack exception) when `bytes` does not hold a T.
template <typename T>
T Deserialize(std::string_view bytes) {
  msgpack::object_handle handle =
      msgpack::unpack(bytes.data(), bytes.size(), &internal::ReferenceInPlace);
  return handle.get().as<T>();
}

}  // namespace fleet

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {

template <typename T>
struct pack<fleet::Array<T>> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const fleet::Array<T>& v) const {
    const std::size_t payload = fleet::internal::kArrayHeaderBytes + v.size_bytes();
    if (payload > 0xffffffffu) throw msgpack::container_size_overflow("fleet::Array");
    o.pack_ext(payload, fleet::internal::kArrayExtType);
    char header[fleet::internal::kArrayHeaderBytes] = {};
    const uint32_t tag = fleet::internal::ArrayElementTag<T>();
    std::memcpy(header, &tag, sizeof(tag));
    o.pack_ext_body(header, sizeof(header));
    if (v.size() > 0) {
      o.pack_ext_body(reinterpret_cast<const char*>(v.data()), v.size_bytes());
    }
    return o;
  }
};

template <typename T>
struct convert<fleet::Array<T>> {
  const msgpack::object& operator()(const msgpack::object& o, fleet::Array<T>& v) const {
    if (o.type != msgpack::type::EXT || o.via.ext.type() != fleet::internal::kArrayExtType ||
        o.via.ext.size < fleet::internal::kArrayHeaderBytes) {
      throw msgpack::type_error();
    }
    uint32_t tag = 0;
    std::memcpy(&tag, o.via.ext.data(), sizeof(tag));
    const std::size_t bytes = o.via.ext.size - fleet::internal::kArrayHeaderBytes;
    if (tag != fleet::internal::ArrayElementTag<T>() || bytes % sizeof(T) != 0) {
      throw msgpack::type_error();
    }
    v = fleet::Array<T>(
        reinterpret_cast<const T*>(o.via.ext.data() + fleet::internal::kArrayHeaderBytes),
        bytes / sizeof(T));
    return o;
  }
};

}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE
}  // namespace msgpack

#endif  // FLEET_SERIALIZATION_H_
