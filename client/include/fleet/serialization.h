// Serialization of task arguments and results: msgpack for every built-in
// type and for user structs with MSGPACK_DEFINE, and fleet::Array<T> for
// large numeric data, stored as one raw aligned block instead of element by
// element.
#ifndef FLEET_SERIALIZATION_H_
#define FLEET_SERIALIZATION_H_

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <msgpack.hpp>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace fleet {

namespace internal {
// Arrays of this size and more are backed by transparent huge pages where
// the kernel offers them on request (madvise mode): a fresh 16 MB array is
// then written in well under half the time, most of which was faulting in
// 4 KiB pages one by one. numpy does the same from 4 MiB.
inline constexpr std::size_t kHugePageAdviceBytes = 4 << 20;
// Asks for huge pages for the whole pages of [data, data + size_bytes);
// Array calls it from kHugePageAdviceBytes on.
void AdviseHugePages(void* data, std::size_t size_bytes);

// Memory for the large arrays a task makes, lent by the worker that runs it:
// room in its object store, so that an array the task returns is stored
// where it was built rather than copied there. Thread-safe.
class ArrayMemory {
 public:
  virtual ~ArrayMemory() = default;
  // Room for an array serialized as `header` followed by `data_bytes` of
  // elements: writes the header and returns where the elements go
  // (kArrayDataAlignment-aligned), or nullptr when it has none (the array
  // then lives on the heap).
  virtual char* Allocate(std::string_view header, std::size_t data_bytes) = 0;
  // Gives back what Allocate returned, when the array is destroyed.
  virtual void Free(char* data) = 0;
};

// Arrays of this size and more made while a task runs on this thread take
// their memory from the task's ArrayMemory. Below it the heap is cheaper
// for an array the task does not return: the executor's malloc reuses freed
// blocks of less than 1 MiB (its mmap threshold), with no page faults, where
// the store costs two requests to the worker (~35 us); from it a heap array
// is a fresh mapping faulted page by page, which costs more than those.
inline constexpr std::size_t kTaskArrayMinBytes = 1 << 20;
// And up to this size: a larger array stays on the heap (a msgpack ext
// value, an array's serialized form, holds less than 4 GiB).
inline constexpr std::size_t kTaskArrayMaxBytes = std::size_t{1} << 31;
// The ArrayMemory of the task running on this thread; nullptr elsewhere.
ArrayMemory* CurrentArrayMemory();
// Sets CurrentArrayMemory() for its lifetime (the worker does, around each
// task call); nullptr keeps arrays on the heap.
class ScopedArrayMemory {
 public:
  explicit ScopedArrayMemory(ArrayMemory* memory);
  ~ScopedArrayMemory();
  ScopedArrayMemory(const ScopedArrayMemory&) = delete;
  ScopedArrayMemory& operator=(const ScopedArrayMemory&) = delete;

 private:
  ArrayMemory* const previous_;
};

// The serialized header of an array of `data_bytes` bytes of T (defined
// below, with the format).
template <typename T>
std::string SerializedArrayHeader(std::size_t data_bytes);
}  // namespace internal

// A contiguous array of trivially copyable elements, 64-byte aligned (an
// array of 1 MiB or more made inside a task: kArrayDataAlignment, 16, as
// it is built in the worker's object store; see ArrayMemory).
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

  // An array of `size` elements copied from `bytes`, which may be
  // misaligned for T (no zero-fill first: one pass over the memory).
  static Array CopyOf(const void* bytes, std::size_t size) {
    Array array;
    array.size_ = size;
    array.data_ = Allocate(size);
    if (size > 0) std::memcpy(static_cast<void*>(array.data_.get()), bytes, size * sizeof(T));
    return array;
  }

  friend bool operator==(const Array& a, const Array& b) {
    return a.size_ == b.size_ &&
           (a.size_ == 0 || std::memcmp(a.data(), b.data(), a.size_bytes()) == 0);
  }

  // The task ArrayMemory holding the elements, or nullptr (the heap); for
  // the worker, which stores such an array where it is (found by ADL only).
  friend internal::ArrayMemory* ArrayMemoryOf(const Array& array) {
    return array.data_.get_deleter().memory;
  }

 private:
  struct Deleter {
    internal::ArrayMemory* memory = nullptr;  // nullptr: the heap
    void operator()(T* p) const {
      if (memory != nullptr) {
        memory->Free(reinterpret_cast<char*>(p));
      } else {
        ::operator delete[](p, std::align_val_t{kAlignment});
      }
    }
  };
  using Storage = std::unique_ptr<T[], Deleter>;

  // Before anything is written: the pages are faulted in by the first write.
  static Storage Allocate(std::size_t n) {
    if (n == 0) return nullptr;
    const std::size_t bytes = n * sizeof(T);
    internal::ArrayMemory* memory =
        bytes >= internal::kTaskArrayMinBytes && bytes <= internal::kTaskArrayMaxBytes
            ? internal::CurrentArrayMemory()
            : nullptr;
    if (memory != nullptr) {
      char* data = memory->Allocate(internal::SerializedArrayHeader<T>(bytes), bytes);
      if (data != nullptr) return Storage(reinterpret_cast<T*>(data), Deleter{memory});
    }
    void* data = ::operator new[](bytes, std::align_val_t{kAlignment});
    if (bytes >= internal::kHugePageAdviceBytes) internal::AdviseHugePages(data, bytes);
    return Storage(static_cast<T*>(data));
  }

  std::size_t size_ = 0;
  Storage data_;
};

// A read-only view of a fleet::Array<T>. As a task parameter: the task
// reads an Array<T> argument in place, in the bytes the worker already
// holds, instead of receiving a copy; the view is valid for the duration of
// the call (copy it into an Array<T> to keep the data). From
// ObjectRef<Array<T>>::GetView(): the client reads a result in place; that
// view keeps what it reads alive for as long as it or any copy of it lives.
//
// Arrays serialized on their own (a Put, a task's result, a top-level
// argument) are laid out so that their elements are 16-byte aligned and are
// viewed without any copy; an array nested inside another value may be
// unaligned, and its view then holds an aligned private copy.
template <typename T>
class ArrayView {
  static_assert(std::is_trivially_copyable_v<T>,
                "fleet::ArrayView<T> needs a trivially copyable T");

 public:
  using value_type = T;

  ArrayView() = default;
  // A view of `array`, for passing an Array where an ArrayView is expected.
  ArrayView(const Array<T>& array) : data_(array.data()), size_(array.size()) {}  // NOLINT
  ArrayView(const T* data, std::size_t size) : data_(data), size_(size) {}
  // A view that keeps `owner` (whatever holds the bytes) alive.
  ArrayView(const T* data, std::size_t size, std::shared_ptr<const void> owner)
      : data_(data), size_(size), owner_(std::move(owner)) {}

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t size_bytes() const { return size_ * sizeof(T); }
  const T* data() const { return data_; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  // Whether the view reads the bytes in place (no private copy).
  bool in_place() const { return in_place_; }

  // Used by deserialization when the bytes are misaligned for T.
  void AdoptCopy(Array<T> copy) {
    auto owned = std::make_shared<const Array<T>>(std::move(copy));
    data_ = owned->data();
    size_ = owned->size();
    owner_ = std::move(owned);
    in_place_ = false;
  }

 private:
  const T* data_ = nullptr;
  std::size_t size_ = 0;
  std::shared_ptr<const void> owner_;  // shared: copies of the view stay valid
  bool in_place_ = true;
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

// The ext payload of an array: a 4-byte element tag, a 1-byte padding
// length, that many zero bytes, then the elements. The padding puts the
// elements at a multiple of kArrayDataAlignment from the start of the
// serialized value.
inline constexpr std::size_t kArrayFixedHeaderBytes = 5;
inline constexpr std::size_t kArrayDataAlignment = 16;

// Bytes msgpack writes before an ext payload of `payload` bytes.
constexpr std::size_t ExtHeaderBytes(std::size_t payload) {
  if (payload == 1 || payload == 2 || payload == 4 || payload == 8 || payload == 16) return 2;
  if (payload <= 0xff) return 3;
  if (payload <= 0xffff) return 4;
  return 6;
}

// Padding that aligns the elements of `data_bytes` bytes, when the ext
// value starts at an aligned offset.
constexpr std::size_t ArrayPadding(std::size_t data_bytes) {
  for (std::size_t pad = 0; pad < kArrayDataAlignment; ++pad) {
    const std::size_t payload = kArrayFixedHeaderBytes + pad + data_bytes;
    if ((ExtHeaderBytes(payload) + kArrayFixedHeaderBytes + pad) % kArrayDataAlignment == 0) {
      return pad;
    }
  }
  return 0;  // unreachable: some padding below the alignment always fits
}

// Reads an array's ext object; returns the elements' address (possibly
// unaligned) and count, or throws msgpack::type_error.
template <typename T>
std::pair<const char*, std::size_t> UnpackArray(const msgpack::object& o) {
  if (o.type != msgpack::type::EXT || o.via.ext.type() != kArrayExtType ||
      o.via.ext.size < kArrayFixedHeaderBytes) {
    throw msgpack::type_error();
  }
  const char* payload = o.via.ext.data();
  uint32_t tag = 0;
  std::memcpy(&tag, payload, sizeof(tag));
  const std::size_t pad = static_cast<unsigned char>(payload[4]);
  if (tag != ArrayElementTag<T>() || o.via.ext.size < kArrayFixedHeaderBytes + pad) {
    throw msgpack::type_error();
  }
  const std::size_t bytes = o.via.ext.size - kArrayFixedHeaderBytes - pad;
  if (bytes % sizeof(T) != 0) throw msgpack::type_error();
  return {payload + kArrayFixedHeaderBytes + pad, bytes / sizeof(T)};
}

}  // namespace internal

namespace internal {

// msgpack output streams that count, or write into memory sized by counting
// first, so a value can be serialized straight into its final place.
struct CountingStream {
  std::size_t bytes = 0;
  void write(const char*, std::size_t n) { bytes += n; }
};
struct BufferStream {
  char* out;
  void write(const char* data, std::size_t n) {
    if (n > 0) std::memcpy(out, data, n);
    out += n;
  }
};

// Writes what precedes the elements of a serialized array of `data_bytes`
// bytes of T (see ArrayPadding): the ext header, the tag and the padding.
template <typename T, typename Stream>
void PackArrayHeader(msgpack::packer<Stream>& o, std::size_t data_bytes) {
  const std::size_t pad = ArrayPadding(data_bytes);
  const std::size_t payload = kArrayFixedHeaderBytes + pad + data_bytes;
  if (payload > 0xffffffffu) throw msgpack::container_size_overflow("fleet::Array");
  o.pack_ext(payload, kArrayExtType);
  char header[kArrayFixedHeaderBytes + kArrayDataAlignment] = {};
  const uint32_t tag = ArrayElementTag<T>();
  std::memcpy(header, &tag, sizeof(tag));
  header[4] = static_cast<char>(pad);
  o.pack_ext_body(header, kArrayFixedHeaderBytes + pad);
}

// Bytes before the elements of a serialized array of `size` T's; the
// elements follow, kArrayDataAlignment-aligned from the value's start.
template <typename T>
std::size_t ArrayHeaderBytes(std::size_t size) {
  CountingStream counter;
  msgpack::packer<CountingStream> packer(counter);
  PackArrayHeader<T>(packer, size * sizeof(T));
  return counter.bytes;
}

template <typename T>
std::string SerializedArrayHeader(std::size_t data_bytes) {
  std::string header(ArrayHeaderBytes<T>(data_bytes / sizeof(T)), '\0');
  BufferStream stream{header.data()};
  msgpack::packer<BufferStream> packer(stream);
  PackArrayHeader<T>(packer, data_bytes);
  return header;
}

}  // namespace internal

// Bytes Serialize(value) produces.
template <typename T>
std::size_t SerializedSize(const T& value) {
  internal::CountingStream counter;
  msgpack::pack(counter, value);
  return counter.bytes;
}

// Writes what Serialize(value) produces to `out`, which has room for
// SerializedSize(value) bytes.
template <typename T>
void SerializeTo(const T& value, char* out) {
  internal::BufferStream stream{out};
  msgpack::pack(stream, value);
}

// Serializes `value` with msgpack, into a string of exactly its size
// (counted first: a msgpack::sbuffer starts with 8 KiB on the heap, a cost
// that dominated small arguments).
template <typename T>
std::string Serialize(const T& value) {
  std::string out(SerializedSize(value), '\0');
  SerializeTo(value, out.data());
  return out;
}

namespace internal {
// Lets msgpack point into the caller's buffer for strings, binaries and
// extensions (a fleet::Array) instead of copying them into its zone first:
// the decoded object never outlives the buffer in Deserialize.
inline bool ReferenceInPlace(msgpack::type::object_type, std::size_t, void*) { return true; }

// The msgpack::zone that holds a decoded object tree while it is converted.
// A zone allocates an 8 KiB chunk when it is made, which was most of the
// cost of decoding a small value (and, with glibc's malloc, a heap
// consolidation each time): each thread keeps one, cleared back to that
// chunk when a decode ends. A decode that starts while the thread's zone is
// in use (a user's msgpack adaptor that itself calls Deserialize) gets a
// zone of its own.
class DecodeZone {
 public:
  DecodeZone() {
    if (thread_zone_in_use) {
      own_.emplace();
      zone_ = &*own_;
    } else {
      thread_zone_in_use = true;
      zone_ = &ThreadZone();
    }
  }
  ~DecodeZone() {
    if (own_) return;
    zone_->clear();
    thread_zone_in_use = false;
  }
  DecodeZone(const DecodeZone&) = delete;
  DecodeZone& operator=(const DecodeZone&) = delete;

  msgpack::zone& get() { return *zone_; }

 private:
  static msgpack::zone& ThreadZone() {
    thread_local msgpack::zone zone;
    return zone;
  }
  static inline thread_local bool thread_zone_in_use = false;

  std::optional<msgpack::zone> own_;
  msgpack::zone* zone_;
};
// Decodes a complete msgpack integer that fits T into `out`, as msgpack's
// own conversion would; returns false, decoding nothing, for anything else
// (another type, a value out of T's range, too few bytes), which the
// general path then decodes or refuses. Integers are the commonest small
// result, and msgpack::unpack allocates twice per call for its parse
// stacks (~1,200 instructions, a tenth of a client's under no-op tasks).
template <typename T>
bool DecodeInteger(std::string_view bytes, T& out) {
  if (bytes.empty()) return false;
  const auto first = static_cast<unsigned char>(bytes[0]);
  // Big-endian, `size` bytes after the format byte.
  auto big_endian = [&](std::size_t size, uint64_t& value) {
    if (bytes.size() < 1 + size) return false;
    value = 0;
    for (std::size_t i = 1; i <= size; ++i) {
      value = (value << 8) | static_cast<unsigned char>(bytes[i]);
    }
    return true;
  };
  uint64_t raw = 0;
  bool negative = false;
  if (first <= 0x7f) {  // positive fixint
    raw = first;
  } else if (first >= 0xe0) {  // negative fixint
    raw = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(first)));
    negative = true;
  } else if (first >= 0xcc && first <= 0xcf) {  // uint 8, 16, 32, 64
    if (!big_endian(std::size_t{1} << (first - 0xcc), raw)) return false;
  } else if (first >= 0xd0 && first <= 0xd3) {  // int 8, 16, 32, 64
    const std::size_t size = std::size_t{1} << (first - 0xd0);
    if (!big_endian(size, raw)) return false;
    if (size < 8) {  // sign-extend
      const uint64_t sign = uint64_t{1} << (size * 8 - 1);
      raw = (raw ^ sign) - sign;
    }
    negative = static_cast<int64_t>(raw) < 0;
  } else {
    return false;
  }
  if (negative) {
    if constexpr (std::is_signed_v<T>) {
      const auto value = static_cast<int64_t>(raw);
      if (value < static_cast<int64_t>(std::numeric_limits<T>::min())) return false;
      out = static_cast<T>(value);
      return true;
    } else {
      return false;
    }
  }
  if (raw > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
  out = static_cast<T>(raw);
  return true;
}
}  // namespace internal

// Deserializes a value that Serialize<T> produced. Throws msgpack::type_error
// (or another msgpack exception) when `bytes` does not hold a T.
template <typename T>
T Deserialize(std::string_view bytes) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    T value;
    if (internal::DecodeInteger(bytes, value)) return value;
  }
  internal::DecodeZone zone;
  return msgpack::unpack(zone.get(), bytes.data(), bytes.size(), &internal::ReferenceInPlace)
      .template as<T>();
}

}  // namespace fleet

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {

// fleet::Array and fleet::ArrayView share one wire format (see
// fleet::internal::ArrayPadding).
template <typename T>
struct pack<fleet::Array<T>> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const fleet::Array<T>& v) const {
    return pack<fleet::ArrayView<T>>()(o, fleet::ArrayView<T>(v));
  }
};

template <typename T>
struct pack<fleet::ArrayView<T>> {
  template <typename Stream>
  packer<Stream>& operator()(packer<Stream>& o, const fleet::ArrayView<T>& v) const {
    fleet::internal::PackArrayHeader<T>(o, v.size_bytes());
    if (!v.empty()) o.pack_ext_body(reinterpret_cast<const char*>(v.data()), v.size_bytes());
    return o;
  }
};

template <typename T>
struct convert<fleet::Array<T>> {
  const msgpack::object& operator()(const msgpack::object& o, fleet::Array<T>& v) const {
    auto [data, size] = fleet::internal::UnpackArray<T>(o);
    v = fleet::Array<T>::CopyOf(data, size);
    return o;
  }
};

// Points into the unpacked bytes when they are aligned for T (msgpack must
// reference, not copy, ext data: fleet::Deserialize does), else copies.
template <typename T>
struct convert<fleet::ArrayView<T>> {
  const msgpack::object& operator()(const msgpack::object& o, fleet::ArrayView<T>& v) const {
    auto [data, size] = fleet::internal::UnpackArray<T>(o);
    if (reinterpret_cast<std::uintptr_t>(data) % alignof(T) == 0) {
      v = fleet::ArrayView<T>(reinterpret_cast<const T*>(data), size);
    } else {
      v.AdoptCopy(fleet::Array<T>::CopyOf(data, size));
    }
    return o;
  }
};

}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE
}  // namespace msgpack

#endif  // FLEET_SERIALIZATION_H_
