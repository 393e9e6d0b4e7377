// The process-wide registry behind FLEET_REMOTE. It lives in libfleet_task,
// a shared library, so that a client binary, a worker daemon and every task
// library it loads see one registry.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "fleet/remote.h"

namespace fleet::internal {

struct FunctionRegistry::State {
  std::mutex mu;
  // std::map keeps FunctionInfo addresses stable; lookups are by name on
  // the worker (once per task) and by address on the client (once per
  // Task(fn) call), both cheap enough here.
  std::map<std::string, std::unique_ptr<FunctionInfo>, std::less<>> by_name;
  std::unordered_map<const void*, const FunctionInfo*> by_address;
  std::map<std::string, std::string, std::less<>> origin;  // name -> library
  std::string current_library = "the main program";
  std::vector<std::string> errors;
};

FunctionRegistry& FunctionRegistry::Global() {
  // Never destroyed: static destructors of task libraries may still look.
  static FunctionRegistry* registry = new FunctionRegistry();
  return *registry;
}

FunctionRegistry::State& FunctionRegistry::state() const {
  static State* state = new State();
  return *state;
}

void FunctionRegistry::Register(FunctionInfo info) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto existing = s.origin.find(info.name);
  if (existing != s.origin.end()) {
    s.errors.push_back("remote function '" + info.name + "' is registered twice: in " +
                       existing->second + " and in " + s.current_library +
                       "; rename one of them or load only one of the libraries");
    return;
  }
  s.origin[info.name] = s.current_library;
  auto owned = std::make_unique<FunctionInfo>(std::move(info));
  s.by_address[owned->address] = owned.get();
  const std::string name = owned->name;
  s.by_name.emplace(name, std::move(owned));
}

const FunctionInfo* FunctionRegistry::FindByName(std::string_view name) const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.by_name.find(name);
  if (it != s.by_name.end()) return it->second.get();
  // "<name>#batch": the batched form of <name>, which lives with <name>, so
  // that a name registered twice is refused once and Names() lists only
  // what users registered.
  if (name.size() > kBatchSuffix.size() && name.ends_with(kBatchSuffix)) {
    it = s.by_name.find(name.substr(0, name.size() - kBatchSuffix.size()));
    if (it != s.by_name.end()) return it->second->batched.get();
  }
  return nullptr;
}

const FunctionInfo* FunctionRegistry::FindByAddress(const void* address) const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.by_address.find(address);
  return it == s.by_address.end() ? nullptr : it->second;
}

std::vector<std::string> FunctionRegistry::Names() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<std::string> names;
  for (const auto& [name, info] : s.by_name) names.push_back(name);
  return names;
}

void FunctionRegistry::BeginLibrary(std::string path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.current_library = std::move(path);
}

void FunctionRegistry::EndLibrary() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.current_library = "the main program";
}

std::vector<std::string> FunctionRegistry::TakeErrors() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return std::exchange(s.errors, {});
}

}  // namespace fleet::internal
