#include <stdexcept>
#include <string>
#include <vector>

#include "fleet/remote.h"
#include "gtest/gtest.h"

namespace fleet {
namespace {

using internal::FunctionRegistry;

int RegistryTestSquare(int x) { return x * x; }
FLEET_REMOTE(RegistryTestSquare);

std::string RegistryTestJoin(const std::string& a, std::vector<std::string> rest) {
  std::string out = a;
  for (const std::string& s : rest) out += "," + s;
  return out;
}
FLEET_REMOTE(RegistryTestJoin);

void RegistryTestNothing(int) {}
FLEET_REMOTE(RegistryTestNothing);

int RegistryTestThrows(int) { throw std::out_of_range("too far"); }
FLEET_REMOTE(RegistryTestThrows);

// Returns the address of its first element, to show the view reads in place.
uint64_t RegistryTestViewAddress(ArrayView<double> values, double scale) {
  return reinterpret_cast<uint64_t>(values.data()) + static_cast<uint64_t>(scale * 0);
}
FLEET_REMOTE(RegistryTestViewAddress);

TEST(FunctionRegistryTest, FindsByNameAndAddress) {
  const auto* by_name = FunctionRegistry::Global().FindByName("RegistryTestSquare");
  ASSERT_NE(by_name, nullptr);
  EXPECT_EQ(by_name->arity, 1u);
  const auto* by_address = FunctionRegistry::Global().FindByAddress(
      reinterpret_cast<const void*>(&RegistryTestSquare));
  EXPECT_EQ(by_address, by_name);
  EXPECT_EQ(FunctionRegistry::Global().FindByName("NoSuchFunction"), nullptr);
}

TEST(FunctionRegistryTest, InvokesWithSerializedArguments) {
  const auto* square = FunctionRegistry::Global().FindByName("RegistryTestSquare");
  const std::string arg = Serialize(7);
  EXPECT_EQ(Deserialize<int>(internal::InvokeToString(*square, {arg})), 49);

  const auto* join = FunctionRegistry::Global().FindByName("RegistryTestJoin");
  const std::string a = Serialize(std::string("x"));
  const std::string rest = Serialize(std::vector<std::string>{"y", "z"});
  EXPECT_EQ(Deserialize<std::string>(internal::InvokeToString(*join, {a, rest})), "x,y,z");
}

TEST(FunctionRegistryTest, VoidFunctionsReturnNil) {
  const auto* nothing = FunctionRegistry::Global().FindByName("RegistryTestNothing");
  const std::string arg = Serialize(1);
  const std::string result = internal::InvokeToString(*nothing, {arg});
  EXPECT_EQ(msgpack::unpack(result.data(), result.size()).get().type, msgpack::type::NIL);
}

TEST(FunctionRegistryTest, BadArgumentsAreReportedAsSuch) {
  const auto* square = FunctionRegistry::Global().FindByName("RegistryTestSquare");
  const std::string text = Serialize(std::string("seven"));
  try {
    internal::InvokeToString(*square, {text});
    FAIL() << "expected BadArgument";
  } catch (const internal::BadArgument& e) {
    EXPECT_NE(std::string(e.what()).find("argument 0 of RegistryTestSquare"), std::string::npos);
  }
  EXPECT_THROW(internal::InvokeToString(*square, {}), internal::BadArgument);
}

TEST(FunctionRegistryTest, UserExceptionsPassThrough) {
  const auto* f = FunctionRegistry::Global().FindByName("RegistryTestThrows");
  const std::string arg = Serialize(1);
  EXPECT_THROW(internal::InvokeToString(*f, {arg}), std::out_of_range);
}

TEST(FunctionRegistryTest, SignatureHashIgnoresConstRefButNotTypes) {
  EXPECT_EQ((internal::SignatureHash<int, const std::string&>()),
            (internal::SignatureHash<int, std::string>()));
  EXPECT_NE((internal::SignatureHash<int, int>()), (internal::SignatureHash<int, long>()));
  EXPECT_NE((internal::SignatureHash<int, int>()), (internal::SignatureHash<double, int>()));
  EXPECT_NE((internal::SignatureHash<int, int, int>()), (internal::SignatureHash<int, int>()));
  const auto* square = FunctionRegistry::Global().FindByName("RegistryTestSquare");
  EXPECT_EQ(square->signature_hash, (internal::SignatureHash<int, int>()));
}

TEST(FunctionRegistryTest, ArrayViewParametersReadTheArgumentInPlace) {
  const auto* f = FunctionRegistry::Global().FindByName("RegistryTestViewAddress");
  const std::string serialized = Serialize(Array<double>(1000, 2.0));
  const Array<char> aligned(serialized.data(), serialized.size());  // as in a store
  const std::string scale = Serialize(1.0);
  const uint64_t address =
      Deserialize<uint64_t>(internal::InvokeToString(*f, {std::string_view(aligned.data(), aligned.size()), scale}));
  EXPECT_EQ(address, reinterpret_cast<uint64_t>(aligned.data() + aligned.size() - 8000));
  // An ArrayView parameter reads what an Array parameter reads.
  EXPECT_EQ(f->signature_hash, (internal::SignatureHash<uint64_t, Array<double>, double>()));
}

TEST(FunctionRegistryTest, DuplicateNamesAcrossLibrariesAreRefused) {
  auto& registry = FunctionRegistry::Global();
  registry.TakeErrors();
  registry.BeginLibrary("liba.so");
  internal::RegisterFunction("RegistryTestDuplicate", &RegistryTestSquare);
  registry.EndLibrary();
  EXPECT_TRUE(registry.TakeErrors().empty());
  registry.BeginLibrary("libb.so");
  internal::RegisterFunction("RegistryTestDuplicate", &RegistryTestSquare);
  registry.EndLibrary();
  std::vector<std::string> errors = registry.TakeErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("'RegistryTestDuplicate' is registered twice"), std::string::npos);
  EXPECT_NE(errors[0].find("liba.so"), std::string::npos);
  EXPECT_NE(errors[0].find("libb.so"), std::string::npos);
  EXPECT_TRUE(registry.TakeErrors().empty());
}

}  // namespace
}  // namespace fleet
