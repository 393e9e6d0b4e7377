#include "worker/task_call.h"

#include <cxxabi.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fleet::worker {
namespace {

std::string Demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : std::string(mangled);
}

}  // namespace

v1::TaskFailure MakeFailure(v1::TaskFailure::Kind kind, std::string message) {
  v1::TaskFailure failure;
  failure.set_kind(kind);
  failure.set_message(std::move(message));
  return failure;
}

std::optional<v1::TaskFailure> CallRegisteredFunction(const std::string& function_name,
                                                      uint64_t signature_hash,
                                                      const std::vector<std::string_view>& args,
                                                      internal::ResultBuffer& result,
                                                      const std::string& where) {
  // Consecutive tasks mostly call the same function: the registry's lookup
  // (a lock and a map search, a tenth of an executor's instructions under
  // no-op tasks) is skipped when the name is the last one found on this
  // thread. Registered functions are never removed, so the pointer stays valid.
  thread_local std::string last_name;
  thread_local const internal::FunctionInfo* last_function = nullptr;
  const internal::FunctionInfo* function =
      last_function != nullptr && last_name == function_name
          ? last_function
          : internal::FunctionRegistry::Global().FindByName(function_name);
  if (function != nullptr && function != last_function) {
    last_name = function_name;
    last_function = function;
  }
  if (function == nullptr) {
    return MakeFailure(
        v1::TaskFailure::FUNCTION_NOT_FOUND,
        absl::StrCat("function '", function_name, "' is not registered on ", where,
                     " (registered: ",
                     absl::StrJoin(internal::FunctionRegistry::Global().Names(), ", "),
                     "); define it with FLEET_REMOTE in a task library and load that library "
                     "with --task_lib"));
  }
  if (function->signature_hash != signature_hash) {
    return MakeFailure(
        v1::TaskFailure::SIGNATURE_MISMATCH,
        absl::StrCat("signature mismatch for ", function_name,
                     ": the caller's argument and result types differ from the worker's "
                     "(hash ",
                     absl::Hex(signature_hash), " vs ", absl::Hex(function->signature_hash),
                     "); build the client and the task library from the same code"));
  }
  try {
    internal::ScopedArrayMemory arrays(result.array_memory());
    function->invoke(args, result);
  } catch (const internal::BadArgument& e) {
    return MakeFailure(v1::TaskFailure::BAD_ARGUMENT, e.what());
  } catch (const ResultNotStored& e) {
    return MakeFailure(v1::TaskFailure::INTERNAL, e.what());
  } catch (const std::exception& e) {
    v1::TaskFailure failure = MakeFailure(v1::TaskFailure::USER_EXCEPTION, e.what());
    failure.set_exception_type(Demangle(typeid(e).name()));
    return failure;
  } catch (...) {
    std::type_info* type = abi::__cxa_current_exception_type();
    v1::TaskFailure failure = MakeFailure(v1::TaskFailure::USER_EXCEPTION,
                                          "a value that is not a std::exception was thrown");
    failure.set_exception_type(type != nullptr ? Demangle(type->name()) : "unknown");
    return failure;
  }
  return std::nullopt;
}

}  // namespace fleet::worker
