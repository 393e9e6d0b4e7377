#include <algorithm>
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

double RegistryTestArraySum(ArrayView<double> values) {
  double sum = 0;
  for (double v : values) sum += v;
  return sum;
}
FLEET_REMOTE(RegistryTestArraySum);

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

TEST(FunctionRegistryTest, OneParameterFunctionsHaveABatchedForm) {
  auto& registry = FunctionRegistry::Global();
  const auto* square = registry.FindByName("RegistryTestSquare");
  const auto* batched = registry.FindByName("RegistryTestSquare#batch");
  ASSERT_NE(batched, nullptr);
  EXPECT_EQ(batched, square->batched.get());
  EXPECT_EQ(batched->name, "RegistryTestSquare#batch");
  EXPECT_EQ(batched->arity, 1u);
  // Its own signature hash: not the plain one, nor that of a plain function
  // with the same vector types.
  EXPECT_EQ(batched->signature_hash, (internal::BatchSignatureHash<int, int>()));
  EXPECT_NE(batched->signature_hash, square->signature_hash);
  EXPECT_NE(batched->signature_hash,
            (internal::SignatureHash<internal::BatchResult<int>, std::vector<int>>()));
  EXPECT_NE((internal::BatchSignatureHash<int, int>()),
            (internal::BatchSignatureHash<int, long>()));
  EXPECT_EQ((internal::BatchSignatureHash<int, const int&>()),
            (internal::BatchSignatureHash<int, int>()));
  // Listed once, under its own name; not found by address.
  const std::vector<std::string> names = registry.Names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "RegistryTestSquare"), 1);
  EXPECT_EQ(std::count(names.begin(), names.end(), "RegistryTestSquare#batch"), 0);
  EXPECT_EQ(registry.FindByAddress(nullptr), nullptr);
  // Void and two-parameter functions have none; nor does an unknown name.
  EXPECT_EQ(registry.FindByName("RegistryTestNothing#batch"), nullptr);
  EXPECT_EQ(registry.FindByName("RegistryTestJoin#batch"), nullptr);
  EXPECT_EQ(registry.FindByName("NoSuchFunction#batch"), nullptr);
  EXPECT_EQ(registry.FindByName("#batch"), nullptr);
}

TEST(FunctionRegistryTest, BatchedFormCallsTheFunctionOnEachInputInOrder) {
  const auto* batched = FunctionRegistry::Global().FindByName("RegistryTestSquare#batch");
  const std::string inputs = Serialize(std::vector<int>{3, -4, 5});
  const auto result =
      Deserialize<internal::BatchResult<int>>(internal::InvokeToString(*batched, {inputs}));
  EXPECT_EQ(result.values, (std::vector<int>{9, 16, 25}));
  const std::string none = Serialize(std::vector<int>{});
  EXPECT_TRUE(Deserialize<internal::BatchResult<int>>(internal::InvokeToString(*batched, {none}))
                  .values.empty());
  // The same errors as the plain form: bad arguments, and what fn throws.
  const std::string text = Serialize(std::vector<std::string>{"seven"});
  EXPECT_THROW(internal::InvokeToString(*batched, {text}), internal::BadArgument);
  EXPECT_THROW(internal::InvokeToString(*batched, {inputs, inputs}), internal::BadArgument);
  const auto* throws = FunctionRegistry::Global().FindByName("RegistryTestThrows#batch");
  ASSERT_NE(throws, nullptr);
  EXPECT_THROW(internal::InvokeToString(*throws, {inputs}), std::out_of_range);
}

TEST(FunctionRegistryTest, BatchedFormReadsArraysInItsInputs) {
  const auto* f = FunctionRegistry::Global().FindByName("RegistryTestArraySum#batch");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->signature_hash, (internal::BatchSignatureHash<double, Array<double>>()));
  const std::string inputs =
      Serialize(std::vector<Array<double>>{Array<double>{1, 2}, Array<double>{}, {4}});
  EXPECT_EQ(Deserialize<internal::BatchResult<double>>(internal::InvokeToString(*f, {inputs}))
                .values,
            (std::vector<double>{3, 0, 4}));
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
  ASSERT_EQ(errors.size(), 1u);  // once, not again for the batched form
  EXPECT_NE(errors[0].find("'RegistryTestDuplicate' is registered twice"), std::string::npos);
  EXPECT_NE(errors[0].find("liba.so"), std::string::npos);
  EXPECT_NE(errors[0].find("libb.so"), std::string::npos);
  EXPECT_TRUE(registry.TakeErrors().empty());
  // The first registration's batched form stays.
  EXPECT_NE(registry.FindByName("RegistryTestDuplicate#batch"), nullptr);
}

}  // namespace
}  // namespace fleet
