// Registration of remote functions. FLEET_REMOTE(fn) next to a function's
// definition registers it under its name in the process-wide registry of
// libfleet_task, which both the client (to name it on the wire) and the
// worker (to run it) consult.
//
// A function of one parameter that returns a value also gets a batched form,
// found under "<name>#batch" (kBatchSuffix): it takes a std::vector of the
// parameter's type, calls the function on each element in order, and
// returns a BatchResult (the results and how long the calls took).
// fleet::Map sends cheap inputs to it many at a time; to the worker it is
// just another function, with its own signature hash.
#ifndef FLEET_REMOTE_H_
#define FLEET_REMOTE_H_

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "fleet/serialization.h"

namespace fleet {

template <typename T>
class ObjectRef;

namespace internal {

// Thrown by an invoker when an argument cannot be decoded as the parameter
// type; the worker reports it as a bad-argument failure, not as a user error.
class BadArgument : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where an invoker writes the serialized result: it asks once for exactly
// the bytes it needs (the worker gives it memory in its object store). May
// throw to refuse.
class ResultBuffer {
 public:
  virtual ~ResultBuffer() = default;
  virtual char* Allocate(std::size_t size_bytes) = 0;
  // Where the call's large arrays are built (ArrayMemory), or nullptr: the heap.
  virtual ArrayMemory* array_memory() { return nullptr; }
  // Takes the returned array at `data`, built in `memory` with its
  // serialized header in front (`size_bytes` in all), as the result where
  // it is: true when it did, false to have it serialized through Allocate.
  virtual bool AdoptArray(ArrayMemory& /*memory*/, const void* /*data*/,
                          std::size_t /*size_bytes*/) {
    return false;
  }
};

// Decodes the serialized arguments, calls the function and serializes its
// result into `result`. Throws BadArgument, whatever the function throws, or
// whatever `result` throws.
using Invoker =
    std::function<void(const std::vector<std::string_view>& args, ResultBuffer& result)>;

struct FunctionInfo {
  std::string name;
  uint64_t signature_hash = 0;
  std::size_t arity = 0;
  const void* address = nullptr;  // for fleet::Task(fn) lookups
  Invoker invoke;
  // The batched form ("<name>#batch"), for functions that have one: found
  // by FindByName, never listed by Names() nor by address.
  std::shared_ptr<const FunctionInfo> batched = nullptr;
};

// The name suffix under which a function's batched form is found.
inline constexpr std::string_view kBatchSuffix = "#batch";

// What a batched form returns: fn(input) for each input, in order, and the
// time the calls took (decoding the inputs included), which fleet::Map uses
// to size its batches.
template <typename R>
struct BatchResult {
  std::vector<R> values;
  uint64_t elapsed_ns = 0;
  MSGPACK_DEFINE(values, elapsed_ns);
};

// Process-wide registry of remote functions. Thread-safe.
class FunctionRegistry {
 public:
  static FunctionRegistry& Global();

  // Registers `info` (and its batched form). A second function under the
  // same name is refused and remembered as an error (see TakeErrors), naming
  // both origins.
  void Register(FunctionInfo info);

  // Returns nullptr when not registered. The pointer stays valid for the
  // life of the process (functions are never unregistered). "<name>#batch"
  // finds the batched form of <name>, when it has one.
  const FunctionInfo* FindByName(std::string_view name) const;
  const FunctionInfo* FindByAddress(const void* address) const;
  std::vector<std::string> Names() const;

  // Brackets the loading of a task library so that registrations and errors
  // name the library they came from.
  void BeginLibrary(std::string path);
  void EndLibrary();

  // Returns and clears the registration errors seen so far.
  std::vector<std::string> TakeErrors();

 private:
  FunctionRegistry() = default;
  struct State;
  State& state() const;
};

// 64-bit FNV-1a, stable across builds and compilers.
constexpr uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// The type whose serialized form a parameter type reads: itself, decayed,
// except that an ArrayView<T> reads an Array<T>.
template <typename T>
struct WireTypeOf {
  using type = T;
};
template <typename T>
struct WireTypeOf<ArrayView<T>> {
  using type = Array<T>;
};
template <typename T>
using WireType = typename WireTypeOf<std::decay_t<T>>::type;

// Hash of a signature by wire types, from the Itanium-ABI mangled name, so
// `int(const std::string&)` and `int(std::string)` agree, as do
// `double(ArrayView<double>)` and `double(Array<double>)`, and any other
// difference does not.
template <typename R, typename... P>
uint64_t SignatureHash() {
  return Fnv1a64(typeid(R (*)(WireType<P>...)).name());
}

// Hash of the batched form of R(P): that of BatchResult<R>(std::vector<P>)
// by wire types, salted so that it differs from any plain function's.
template <typename R, typename P>
uint64_t BatchSignatureHash() {
  return Fnv1a64(std::string("fleet-batch:") +
                 typeid(BatchResult<R> (*)(std::vector<WireType<P>>)).name());
}

// Whether R(P) gets a batched form: it returns a value, and both types can
// be decoded as elements of a vector (which default-constructs them).
template <typename R, typename P>
inline constexpr bool kHasBatchedForm =
    !std::is_void_v<R> && std::is_default_constructible_v<std::decay_t<P>> &&
    std::is_default_constructible_v<R>;

template <typename T>
T DecodeArgument(std::string_view bytes, std::size_t index, const char* function_name) {
  try {
    return Deserialize<T>(bytes);
  } catch (const std::exception& e) {
    throw BadArgument("argument " + std::to_string(index) + " of " + function_name +
                      " cannot be decoded as the parameter type (" + e.what() + ")");
  }
}

template <typename T>
void WriteResult(const T& value, ResultBuffer& result) {
  SerializeTo(value, result.Allocate(SerializedSize(value)));
}

template <typename T>
void WriteResult(const Array<T>& value, ResultBuffer& result) {
  const std::size_t size_bytes = SerializedSize(value);
  ArrayMemory* memory = ArrayMemoryOf(value);
  if (memory != nullptr && result.AdoptArray(*memory, value.data(), size_bytes)) return;
  SerializeTo(value, result.Allocate(size_bytes));
}

template <typename R, typename... P, std::size_t... I>
Invoker MakeInvoker(R (*fn)(P...), std::string name, std::index_sequence<I...>) {
  return [fn, name = std::move(name)](const std::vector<std::string_view>& args,
                                      ResultBuffer& result) {
    if (args.size() != sizeof...(P)) {
      throw BadArgument(name + " takes " + std::to_string(sizeof...(P)) + " arguments, got " +
                        std::to_string(args.size()));
    }
    std::tuple<std::decay_t<P>...> decoded{
        DecodeArgument<std::decay_t<P>>(args[I], I, name.c_str())...};
    if constexpr (std::is_void_v<R>) {
      fn(std::move(std::get<I>(decoded))...);
      WriteResult(msgpack::type::nil_t(), result);
    } else {
      WriteResult(fn(std::move(std::get<I>(decoded))...), result);
    }
  };
}

// The batched form's invoker: one argument, a msgpack array of inputs.
template <typename R, typename P>
Invoker MakeBatchInvoker(R (*fn)(P), std::string name) {
  return [fn, name = std::move(name)](const std::vector<std::string_view>& args,
                                      ResultBuffer& result) {
    if (args.size() != 1) {
      throw BadArgument(name + " takes 1 argument (the batch of inputs), got " +
                        std::to_string(args.size()));
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::decay_t<P>> inputs =
        DecodeArgument<std::vector<std::decay_t<P>>>(args[0], 0, name.c_str());
    BatchResult<R> out;
    out.values.reserve(inputs.size());
    for (auto& input : inputs) out.values.push_back(fn(std::move(input)));
    out.elapsed_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::steady_clock::now() - start)
                                               .count());
    WriteResult(out, result);
  };
}

template <typename R, typename P>
std::shared_ptr<const FunctionInfo> MakeBatchedForm(const char* name, R (*fn)(P)) {
  auto info = std::make_shared<FunctionInfo>();
  info->name = std::string(name) + std::string(kBatchSuffix);
  info->signature_hash = BatchSignatureHash<R, P>();
  info->arity = 1;
  info->invoke = MakeBatchInvoker(fn, info->name);
  return info;
}

// Calls `function` and returns its serialized result as a string.
inline std::string InvokeToString(const FunctionInfo& function,
                                  const std::vector<std::string_view>& args) {
  class StringResult : public ResultBuffer {
   public:
    char* Allocate(std::size_t size_bytes) override {
      bytes.resize(size_bytes);
      return bytes.data();
    }
    std::string bytes;
  } result;
  function.invoke(args, result);
  return std::move(result.bytes);
}

template <typename R, typename... P>
bool RegisterFunction(const char* name, R (*fn)(P...)) {
  static_assert(!std::is_reference_v<R> && !std::is_pointer_v<R>,
                "a remote function returns a value, not a reference or pointer");
  static_assert(std::is_same_v<WireType<R>, std::decay_t<R>>,
                "a remote function cannot return a view: return a fleet::Array");
  static_assert((!(std::is_pointer_v<std::decay_t<P>>) && ...),
                "a remote function takes values, not pointers");
  FunctionInfo info;
  info.name = name;
  info.signature_hash = SignatureHash<R, P...>();
  info.arity = sizeof...(P);
  info.address = reinterpret_cast<const void*>(fn);
  info.invoke = MakeInvoker(fn, name, std::index_sequence_for<P...>{});
  if constexpr (sizeof...(P) == 1) {
    if constexpr (kHasBatchedForm<R, P...>) info.batched = MakeBatchedForm(name, fn);
  }
  FunctionRegistry::Global().Register(std::move(info));
  return true;
}

}  // namespace internal
}  // namespace fleet

// Registers `fn`, a free function whose arguments and result are
// serializable, as a remote function named after it. Use it once, at
// namespace scope in the .cc file that defines the function.
#define FLEET_REMOTE(fn)                                                     \
  [[maybe_unused]] static const bool FLEET_INTERNAL_CONCAT(                  \
      fleet_remote_registered_, __COUNTER__) =                               \
      ::fleet::internal::RegisterFunction(#fn, &fn)
#define FLEET_INTERNAL_CONCAT_IMPL(a, b) a##b
#define FLEET_INTERNAL_CONCAT(a, b) FLEET_INTERNAL_CONCAT_IMPL(a, b)

#endif  // FLEET_REMOTE_H_
