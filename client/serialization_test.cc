#include "fleet/serialization.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"

namespace fleet {
namespace {

template <typename T>
T RoundTrip(const T& value) {
  return Deserialize<T>(Serialize(value));
}

struct Point {
  double x = 0;
  double y = 0;
  std::string label;
  MSGPACK_DEFINE(x, y, label);
  bool operator==(const Point&) const = default;
};

// Holds another value's serialized bytes and decodes them while it is itself
// decoded: a Deserialize inside a Deserialize.
struct Envelope {
  std::vector<Point> inner;
};

}  // namespace
}  // namespace fleet

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <>
struct convert<fleet::Envelope> {
  const msgpack::object& operator()(const msgpack::object& o, fleet::Envelope& v) const {
    const std::string bytes = o.as<std::string>();
    v.inner = fleet::Deserialize<std::vector<fleet::Point>>(bytes);
    return o;
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE
}  // namespace msgpack

namespace fleet {
namespace {

struct Shape {
  std::vector<Point> points;
  std::optional<int> color;
  MSGPACK_DEFINE(points, color);
  bool operator==(const Shape&) const = default;
};

TEST(SerializationTest, Arithmetic) {
  EXPECT_EQ(RoundTrip(true), true);
  EXPECT_EQ(RoundTrip('a'), 'a');
  EXPECT_EQ(RoundTrip(std::numeric_limits<int8_t>::min()), std::numeric_limits<int8_t>::min());
  EXPECT_EQ(RoundTrip(std::numeric_limits<int32_t>::min()), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(RoundTrip(std::numeric_limits<int64_t>::max()), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(RoundTrip(std::numeric_limits<uint64_t>::max()), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(RoundTrip(uint16_t{65535}), uint16_t{65535});
  EXPECT_EQ(RoundTrip(3.5f), 3.5f);
  EXPECT_EQ(RoundTrip(-1e300), -1e300);
}

// What msgpack's own decoder makes of `bytes` as a T: the value, or
// nullopt where it throws type_error.
std::string Hex(const std::string& bytes) {
  std::ostringstream out;
  for (unsigned char c : bytes) out << std::hex << (c >> 4) << (c & 15);
  return out.str();
}

template <typename T>
std::optional<T> MsgpackDecodes(const std::string& bytes) {
  try {
    return msgpack::unpack(bytes.data(), bytes.size())->as<T>();
  } catch (const msgpack::type_error&) {
    return std::nullopt;
  }
}

template <typename T>
std::optional<T> FleetDecodes(const std::string& bytes) {
  try {
    return Deserialize<T>(bytes);
  } catch (const msgpack::type_error&) {
    return std::nullopt;
  }
}

template <typename T>
void ExpectIntegerDecodesAsMsgpackDoes(const std::string& bytes, const std::string& what) {
  EXPECT_EQ(FleetDecodes<T>(bytes), MsgpackDecodes<T>(bytes)) << what << " as " << typeid(T).name();
}

TEST(SerializationTest, IntegersDecodeExactlyAsMsgpackDecodesThem) {
  // Integers skip msgpack's parser (internal::DecodeInteger): every
  // encoding, at every boundary, into every integer type, must give the
  // same value, or the same refusal, as msgpack's conversion.
  std::vector<std::string> encodings;
  auto add = [&](auto value) {
    encodings.push_back(Serialize(value));
    // And in every wider format msgpack reads (senders may not pack tightly).
    auto packed = [&](auto pack) {
      msgpack::sbuffer buffer;
      msgpack::packer<msgpack::sbuffer> packer(buffer);
      pack(packer);
      encodings.emplace_back(buffer.data(), buffer.size());
    };
    using Packer = msgpack::packer<msgpack::sbuffer>;
    if constexpr (std::is_signed_v<decltype(value)>) {
      packed([&](Packer& p) { p.pack_int8(static_cast<int8_t>(value)); });
      packed([&](Packer& p) { p.pack_int16(static_cast<int16_t>(value)); });
      packed([&](Packer& p) { p.pack_int32(static_cast<int32_t>(value)); });
      packed([&](Packer& p) { p.pack_int64(static_cast<int64_t>(value)); });
    } else {
      packed([&](Packer& p) { p.pack_uint8(static_cast<uint8_t>(value)); });
      packed([&](Packer& p) { p.pack_uint16(static_cast<uint16_t>(value)); });
      packed([&](Packer& p) { p.pack_uint32(static_cast<uint32_t>(value)); });
      packed([&](Packer& p) { p.pack_uint64(static_cast<uint64_t>(value)); });
    }
  };
  for (int64_t v : {int64_t{0},
                    int64_t{1},
                    int64_t{-1},
                    int64_t{31},
                    int64_t{-32},
                    int64_t{-33},
                    int64_t{127},
                    int64_t{128},
                    int64_t{-128},
                    int64_t{-129},
                    int64_t{255},
                    int64_t{256},
                    int64_t{32767},
                    int64_t{32768},
                    int64_t{-32768},
                    int64_t{-32769},
                    int64_t{65535},
                    int64_t{65536},
                    int64_t{2147483647},
                    int64_t{2147483648},
                    int64_t{-2147483648LL},
                    int64_t{-2147483649LL},
                    int64_t{4294967295LL},
                    int64_t{4294967296LL},
                    std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()}) {
    add(v);
    if (v >= 0) add(static_cast<uint64_t>(v));
  }
  add(std::numeric_limits<uint64_t>::max());
  add(uint64_t{1} << 63);
  // Not integers, or cut short: left to msgpack.
  encodings.push_back(Serialize(2.5));
  encodings.push_back(Serialize(true));
  encodings.push_back(Serialize(std::string("7")));
  for (const std::string& bytes : encodings) {
    const std::string what = Hex(bytes);
    ExpectIntegerDecodesAsMsgpackDoes<int8_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<uint8_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<char>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<int16_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<uint16_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<int32_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<uint32_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<int64_t>(bytes, what);
    ExpectIntegerDecodesAsMsgpackDoes<uint64_t>(bytes, what);
  }
  for (const std::string& whole : {Serialize(int64_t{1} << 40), Serialize(uint16_t{300})}) {
    const std::string cut = whole.substr(0, whole.size() - 1);
    EXPECT_ANY_THROW(Deserialize<int64_t>(cut)) << Hex(cut);
  }
}

TEST(SerializationTest, StringsAndContainers) {
  EXPECT_EQ(RoundTrip(std::string("")), "");
  EXPECT_EQ(RoundTrip(std::string("hello\0world", 11)), std::string("hello\0world", 11));
  EXPECT_EQ(RoundTrip(std::vector<int>{1, -2, 3}), (std::vector<int>{1, -2, 3}));
  EXPECT_EQ(RoundTrip(std::vector<double>{}), std::vector<double>{});
  EXPECT_EQ(RoundTrip(std::vector<std::string>{"a", "bc"}), (std::vector<std::string>{"a", "bc"}));
  const std::map<std::string, int> m{{"a", 1}, {"b", 2}};
  EXPECT_EQ(RoundTrip(m), m);
  const std::unordered_map<int, std::vector<int>> um{{1, {1}}, {2, {2, 2}}};
  EXPECT_EQ(RoundTrip(um), um);
  const std::tuple<int, std::string, double> t{1, "two", 3.0};
  EXPECT_EQ(RoundTrip(t), t);
  const std::pair<int, bool> p{5, true};
  EXPECT_EQ(RoundTrip(p), p);
}

TEST(SerializationTest, Optional) {
  EXPECT_EQ(RoundTrip(std::optional<int>()), std::nullopt);
  EXPECT_EQ(RoundTrip(std::optional<int>(7)), 7);
}

TEST(SerializationTest, UserStructs) {
  const Point p{1.5, -2.5, "corner"};
  EXPECT_EQ(RoundTrip(p), p);
  const Shape s{{p, Point{0, 0, "origin"}}, 3};
  EXPECT_EQ(RoundTrip(s), s);
}

TEST(SerializationTest, ArrayIsOneRawBlock) {
  Array<double> a(1000);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<double>(i) * 0.5;
  const std::string bytes = Serialize(a);
  // One ext header (at most 6 bytes), the 5-byte tag and padding length, at
  // most 15 bytes of padding, then the raw doubles.
  EXPECT_LE(bytes.size(), a.size_bytes() + 6 + internal::kArrayFixedHeaderBytes + 15);
  const Array<double> back = Deserialize<Array<double>>(bytes);
  EXPECT_EQ(back, a);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(back.data()) % Array<double>::kAlignment, 0u);
}

TEST(SerializationTest, ArrayOfOtherTypesAndEmpty) {
  EXPECT_EQ(RoundTrip(Array<int32_t>{1, -2, 3}), (Array<int32_t>{1, -2, 3}));
  EXPECT_EQ(RoundTrip(Array<uint8_t>(5, 9)), Array<uint8_t>(5, 9));
  EXPECT_EQ(RoundTrip(Array<float>()).size(), 0u);
}

TEST(SerializationTest, ArrayRefusesAnotherElementType) {
  const std::string bytes = Serialize(Array<float>{1, 2});
  EXPECT_THROW(Deserialize<Array<int32_t>>(bytes), msgpack::type_error);
  EXPECT_THROW(Deserialize<Array<double>>(bytes), msgpack::type_error);
}

struct NamedValues {
  std::string name;
  Array<double> values;
  MSGPACK_DEFINE(name, values);
};

TEST(SerializationTest, ArrayInsideAStruct) {
  NamedValues b{"b", Array<double>{1, 2, 3}};
  NamedValues back = RoundTrip(b);
  EXPECT_EQ(back.name, "b");
  EXPECT_EQ(back.values, b.values);
}

// The elements of an array serialized on its own start at a 16-byte aligned
// offset, whatever its size (msgpack's ext header is 2 to 6 bytes).
TEST(SerializationTest, ArrayElementsAreAlignedInTheSerializedBytes) {
  for (std::size_t n : {0, 1, 2, 3, 7, 8, 31, 32, 33, 255, 256, 8191, 8192, 8193, 100000}) {
    Array<double> a(n);
    for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<double>(i) + 0.25;
    const std::string bytes = Serialize(a);
    const std::size_t data_offset = bytes.size() - a.size_bytes();
    EXPECT_EQ(data_offset % internal::kArrayDataAlignment, 0u) << n << " elements";
    EXPECT_EQ(Deserialize<Array<double>>(bytes), a) << n << " elements";
  }
}

TEST(SerializationTest, ArrayViewReadsTopLevelArraysInPlace) {
  for (std::size_t n : {1, 5, 1000, 250000}) {
    Array<float> a(n);
    for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<float>(i) * 0.5f;
    // An aligned buffer, as the worker's store provides.
    const std::string serialized = Serialize(a);
    Array<char> buffer(serialized.data(), serialized.size());
    const std::string_view bytes(buffer.data(), buffer.size());
    const ArrayView<float> view = Deserialize<ArrayView<float>>(bytes);
    ASSERT_EQ(view.size(), n);
    EXPECT_TRUE(view.in_place());
    EXPECT_GE(reinterpret_cast<const char*>(view.data()), buffer.data());
    EXPECT_LE(reinterpret_cast<const char*>(view.end()), buffer.data() + buffer.size());
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(view[i], a[i]);
  }
}

TEST(SerializationTest, ArrayViewOfAMisalignedArrayHoldsACopy) {
  // Nested behind a one-byte value the elements are misaligned for int64.
  const std::tuple<bool, Array<int64_t>> value{true, Array<int64_t>{1, -2, 3}};
  const std::string serialized = Serialize(value);
  Array<char> buffer(serialized.data(), serialized.size());
  auto [flag, view] =
      Deserialize<std::tuple<bool, ArrayView<int64_t>>>(std::string_view(buffer.data(), buffer.size()));
  EXPECT_TRUE(flag);
  ASSERT_EQ(view.size(), 3u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(view.data()) % alignof(int64_t), 0u);
  ArrayView<int64_t> copy = view;  // copies of a copying view stay valid
  view = ArrayView<int64_t>();
  EXPECT_EQ(copy[0], 1);
  EXPECT_EQ(copy[1], -2);
  EXPECT_EQ(copy[2], 3);
}

TEST(SerializationTest, ArrayViewSerializesLikeTheArray) {
  const Array<uint16_t> a{1, 2, 3, 65535};
  EXPECT_EQ(Serialize(ArrayView<uint16_t>(a)), Serialize(a));
  EXPECT_THROW(Deserialize<ArrayView<int16_t>>(Serialize(a)), msgpack::type_error);
}

TEST(SerializationTest, WrongTypeThrows) {
  EXPECT_THROW(Deserialize<int>(Serialize(std::string("x"))), msgpack::type_error);
  EXPECT_THROW(Deserialize<std::vector<int>>(Serialize(3)), msgpack::type_error);
  // The thread's decoding zone is free again after a throw.
  EXPECT_EQ(RoundTrip(Shape{{{1, 2, "a"}}, 3}), (Shape{{{1, 2, "a"}}, 3}));
}

TEST(SerializationTest, ADecodeInsideADecodeLeavesTheOuterOneIntact) {
  const std::vector<Point> inner = {{1, 2, "in"}, {3, 4, "side"}};
  const auto envelope = Deserialize<std::pair<Point, Envelope>>(
      Serialize(std::make_pair(Point{5, 6, "before"}, Serialize(inner))));
  EXPECT_EQ(envelope.first, (Point{5, 6, "before"}));
  EXPECT_EQ(envelope.second.inner, inner);
  // Many values through the same thread: each decode starts from a clean zone.
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(RoundTrip(std::vector<int>(i % 40, i)).size(), i % 40);
}

// The VmFlags of the mapping of this process that contains `address`.
std::string VmFlagsAt(const void* address) {
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= at && at < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

TEST(SerializationTest, LargeArraysAskForHugePages) {
  if (!std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled")) {
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  }
  Array<double> large(internal::kHugePageAdviceBytes / sizeof(double) * 2, 1.0);
  EXPECT_NE(VmFlagsAt(large.data() + large.size() / 2).find(" hg"), std::string::npos);
  Array<double> small(1000, 1.0);
  EXPECT_EQ(VmFlagsAt(small.data()).find(" hg"), std::string::npos);
  EXPECT_EQ(large[large.size() - 1], 1.0);
}

TEST(SerializationTest, ArrayCopiesAreDeepAndMovesAreCheap) {
  Array<int> a{1, 2, 3};
  Array<int> copy = a;
  copy[0] = 100;
  EXPECT_EQ(a[0], 1);
  const int* data = a.data();
  Array<int> moved = std::move(a);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(moved.size(), 3u);
}

}  // namespace
}  // namespace fleet

namespace fleet {
namespace {

// Lends heap blocks laid out as the worker's store lends its memory (the
// serialized header, then the elements), and keeps count.
class CountingArrayMemory : public internal::ArrayMemory {
 public:
  ~CountingArrayMemory() override { EXPECT_TRUE(blocks_.empty()) << "an array was not freed"; }

  char* Allocate(std::string_view header, std::size_t data_bytes) override {
    auto block = std::make_unique<std::string>(header.size() + data_bytes, '\0');
    std::memcpy(block->data(), header.data(), header.size());
    char* data = block->data() + header.size();
    blocks_.emplace(data, std::move(block));
    allocated++;
    return data;
  }
  void Free(char* data) override { EXPECT_EQ(blocks_.erase(data), 1u); }

  // The block of the array at `data`: its serialized form.
  std::string_view Serialized(const void* data) const {
    const std::string& block = *blocks_.at(data);
    return std::string_view(block);
  }

  int allocated = 0;

 private:
  std::map<const void*, std::unique_ptr<std::string>> blocks_;
};

TEST(TaskArrayMemoryTest, LargeArraysMadeInATaskScopeComeFromItsMemory) {
  constexpr std::size_t kLarge = internal::kTaskArrayMinBytes / sizeof(double);
  CountingArrayMemory memory;
  {
    Array<double> outside(kLarge);
    EXPECT_EQ(ArrayMemoryOf(outside), nullptr);
  }
  {
    internal::ScopedArrayMemory scope(&memory);
    EXPECT_EQ(internal::CurrentArrayMemory(), &memory);
    Array<double> large(kLarge, 2.5);
    Array<double> small(kLarge - 1, 2.5);
    EXPECT_EQ(ArrayMemoryOf(large), &memory);
    EXPECT_EQ(ArrayMemoryOf(small), nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(large.data()) % internal::kArrayDataAlignment, 0u);
    // What the memory holds is the array's serialized form: it can be
    // stored as it is.
    EXPECT_EQ(memory.Serialized(large.data()), Serialize(large));
    EXPECT_EQ(Deserialize<Array<double>>(memory.Serialized(large.data())), large);
    // A copy is a new array of the memory; a move takes the block along.
    Array<double> copy = large;
    Array<double> moved = std::move(large);
    EXPECT_EQ(ArrayMemoryOf(moved), &memory);
    EXPECT_EQ(memory.allocated, 3);  // `large`, the decoded one, `copy`
    {
      internal::ScopedArrayMemory inner(nullptr);
      EXPECT_EQ(ArrayMemoryOf(Array<double>(kLarge)), nullptr);
    }
    EXPECT_EQ(internal::CurrentArrayMemory(), &memory);
  }
  EXPECT_EQ(internal::CurrentArrayMemory(), nullptr);
}

}  // namespace
}  // namespace fleet
