#include "fleet/serialization.h"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
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
  // One ext header (at most 6 bytes), the 8-byte tag, then the raw doubles.
  EXPECT_LE(bytes.size(), a.size_bytes() + internal::kArrayHeaderBytes + 6);
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

TEST(SerializationTest, WrongTypeThrows) {
  EXPECT_THROW(Deserialize<int>(Serialize(std::string("x"))), msgpack::type_error);
  EXPECT_THROW(Deserialize<std::vector<int>>(Serialize(3)), msgpack::type_error);
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
