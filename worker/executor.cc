#include "worker/executor.h"

#include <cxxabi.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <typeinfo>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "fleet/remote.h"

namespace fleet::worker {
namespace {

std::string Demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : std::string(mangled);
}

// Thrown into the invoker when the store cannot take the result.
class ResultNotStored : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The invoker's result buffer: an object being written in the store. A
// result the store already has (a task re-run here) is serialized into a
// scratch buffer and dropped; the stored copy stays.
class StoreResult : public internal::ResultBuffer {
 public:
  StoreResult(ObjectStore* store, const ObjectId& id) : store_(store), id_(id) {}

  char* Allocate(std::size_t size_bytes) override {
    size_ = size_bytes;
    absl::StatusOr<ObjectStore::Writer> writer = store_->Create(id_, size_bytes);
    if (writer.ok()) {
      writer_ = std::move(*writer);
      return writer_.data();
    }
    if (!absl::IsAlreadyExists(writer.status())) {
      throw ResultNotStored(absl::StrCat("the result (", size_bytes,
                                         " bytes) could not be stored: ",
                                         writer.status().message()));
    }
    scratch_.resize(size_bytes);
    return scratch_.data();
  }

  std::size_t size() const { return size_; }
  absl::string_view bytes() const {
    return writer_.data() != nullptr ? absl::string_view(writer_.data(), size_)
                                     : absl::string_view(scratch_);
  }
  void Seal() {
    if (writer_.data() != nullptr) writer_.Seal();
  }

 private:
  ObjectStore* const store_;
  const ObjectId id_;
  ObjectStore::Writer writer_;
  std::string scratch_;
  std::size_t size_ = 0;
};

v1::TaskFailure Failure(v1::TaskFailure::Kind kind, std::string message) {
  v1::TaskFailure failure;
  failure.set_kind(kind);
  failure.set_message(std::move(message));
  return failure;
}

}  // namespace

Executor::Executor(int slots, Identity identity, ObjectStore* store, SchedulerLink* link)
    : identity_(std::move(identity)), store_(store), link_(link), fetcher_(store, link) {
  for (int i = 0; i < slots; ++i) threads_.emplace_back([this] { RunSlot(); });
}

Executor::~Executor() { Stop(); }

void Executor::Enqueue(v1::TaskAssignment assignment) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(assignment));
}

void Executor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queue_.clear();
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

uint32_t Executor::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<uint32_t>(queue_.size());
}

void Executor::RunSlot() {
  while (true) {
    v1::TaskAssignment assignment;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Executor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return !e->queue_.empty() || e->stopping_;
          },
          this));
      if (stopping_) return;
      assignment = std::move(queue_.front());
      queue_.pop_front();
    }
    running_++;
    v1::TaskCompleted completed = Execute(assignment);
    running_--;
    link_->ReportCompleted(std::move(completed));
  }
}

v1::TaskCompleted Executor::Execute(const v1::TaskAssignment& assignment) {
  const v1::TaskSpec& spec = assignment.spec();
  v1::TaskCompleted completed;
  completed.set_task_id(spec.task_id());
  completed.set_attempt(assignment.attempt());
  auto fail = [&](v1::TaskFailure failure) {
    failure.set_function_name(spec.function_name());
    failure.set_task_id(spec.task_id());
    failure.set_worker(absl::StrCat("worker ", identity_.id.Short(), " at ", identity_.address));
    *completed.mutable_failure() = std::move(failure);
    return completed;
  };

  const internal::FunctionInfo* function =
      internal::FunctionRegistry::Global().FindByName(spec.function_name());
  if (function == nullptr) {
    return fail(Failure(
        v1::TaskFailure::FUNCTION_NOT_FOUND,
        absl::StrCat("function '", spec.function_name(), "' is not registered on worker ",
                     identity_.id.Short(), " (registered: ",
                     absl::StrJoin(internal::FunctionRegistry::Global().Names(), ", "),
                     "); define it with FLEET_REMOTE in a task library and load that library "
                     "with --task_lib")));
  }
  if (function->signature_hash != spec.signature_hash()) {
    return fail(Failure(
        v1::TaskFailure::SIGNATURE_MISMATCH,
        absl::StrCat("signature mismatch for ", spec.function_name(),
                     ": the caller's argument and result types differ from the worker's "
                     "(hash ",
                     absl::Hex(spec.signature_hash()), " vs ", absl::Hex(function->signature_hash),
                     "); build the client and the task library from the same code")));
  }

  // Gather arguments; `held` keeps their bytes readable (pinned in the
  // store, or a private copy) during the call.
  std::vector<ArgumentBytes> held;
  std::vector<std::string_view> args;  // the registry's (std) view type
  args.reserve(spec.args_size());
  for (int i = 0; i < spec.args_size(); ++i) {
    const v1::TaskArg& arg = spec.args(i);
    if (!arg.has_object_id()) {
      args.push_back(arg.value());
      continue;
    }
    const v1::ObjectInfo* info = nullptr;
    for (const v1::ObjectInfo& candidate : assignment.arg_objects()) {
      if (candidate.object_id() == arg.object_id()) info = &candidate;
    }
    auto object_id = ObjectId::FromBinary(arg.object_id());
    if (info == nullptr || !object_id.ok()) {
      return fail(Failure(v1::TaskFailure::INTERNAL,
                          absl::StrCat("argument ", i, " has no location in the assignment")));
    }
    if (info->has_inline_value()) {
      args.push_back(info->inline_value());
      continue;
    }
    // A copy this worker fetched and evicted since is fetched again from
    // where it came from: the scheduler may still name this worker.
    std::string holder = info->has_location() ? info->location().address() : std::string();
    if (std::optional<std::string> from = store_->FetchedFrom(*object_id)) holder = *from;
    absl::StatusOr<ArgumentBytes> bytes = fetcher_.Obtain(*object_id, holder);
    if (!bytes.ok()) {
      v1::TaskFailure lost = Failure(
          v1::TaskFailure::OBJECT_LOST,
          absl::StrCat("argument ", i, " (object ", object_id->Short(),
                       ") could not be obtained: ", bytes.status().message()));
      lost.set_lost_object_id(arg.object_id());  // so the scheduler re-queues instead of failing
      return fail(std::move(lost));
    }
    held.push_back(std::move(*bytes));
    args.push_back(held.back().bytes());
  }

  // The result is serialized straight into the store.
  const ObjectId result_id = ObjectId::Of(*TaskId::FromBinary(spec.task_id()), 0);
  StoreResult result(store_, result_id);
  const auto start = std::chrono::steady_clock::now();
  try {
    function->invoke(args, result);
  } catch (const internal::BadArgument& e) {
    return fail(Failure(v1::TaskFailure::BAD_ARGUMENT, e.what()));
  } catch (const ResultNotStored& e) {
    return fail(Failure(v1::TaskFailure::INTERNAL, e.what()));
  } catch (const std::exception& e) {
    v1::TaskFailure failure = Failure(v1::TaskFailure::USER_EXCEPTION, e.what());
    failure.set_exception_type(Demangle(typeid(e).name()));
    return fail(std::move(failure));
  } catch (...) {
    std::type_info* type = abi::__cxa_current_exception_type();
    v1::TaskFailure failure =
        Failure(v1::TaskFailure::USER_EXCEPTION, "a value that is not a std::exception was thrown");
    failure.set_exception_type(type != nullptr ? Demangle(type->name()) : "unknown");
    return fail(std::move(failure));
  }
  completed.set_run_time_us(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count());

  v1::ObjectInfo* info = completed.add_results();
  info->set_object_id(std::string(result_id.Binary()));
  info->set_size_bytes(result.size());
  if (result.size() <= inline_threshold_bytes_.load()) {
    const absl::string_view bytes = result.bytes();
    info->set_inline_value(bytes.data(), bytes.size());
  }
  result.Seal();
  return completed;
}

}  // namespace fleet::worker
