// fleet: run C++ functions as remote tasks on a cluster.
//
//   int Square(int x) { return x * x; }
//   FLEET_REMOTE(Square);
//
//   fleet::Init();  // or fleet::Init({.address = "scheduler:50051"})
//   fleet::ObjectRef<int> r = fleet::Task(Square).Remote(4);
//   int v = r.Get();
//
// This is the only header users include. Everything in fleet::internal is
// private to the library.
#ifndef FLEET_FLEET_H_
#define FLEET_FLEET_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fleet/array_builder.h"
#include "fleet/errors.h"
#include "fleet/object_ref.h"
#include "fleet/remote.h"
#include "fleet/serialization.h"

namespace fleet {

// A line a remote task printed to its stdout or stderr (on a worker that
// runs tasks in executor processes, its default).
struct TaskOutputLine {
  std::string worker;  // the worker's address, host:port
  int pid = 0;         // of the process that ran the task
  bool is_stderr = false;
  std::string text;    // without its newline
};

struct InitOptions {
  // The scheduler, as "host:port". Empty: start an embedded local cluster
  // (a scheduler and one worker inside this process, running tasks on
  // threads), for development and tests.
  std::string address;
  // The cluster token, when the scheduler was started with one
  // (FLEET_TOKEN). Empty: this process's $FLEET_TOKEN.
  std::string token = {};
  // Embedded cluster only: task slots; 0 means one per hardware thread.
  int local_slots = 0;
  // How long Init waits for the scheduler to answer before it throws.
  std::chrono::milliseconds connect_timeout{10'000};
  // When the connection to the scheduler breaks (it restarted, the network
  // dropped): how long to keep reconnecting, while Get and Wait keep
  // waiting and Remote() queues, before every pending result fails.
  std::chrono::milliseconds scheduler_reconnect_timeout{60'000};
  // spdlog level of fleet's own log lines: trace, debug, info, warn, error.
  std::string log_level = "warn";
  // Back-pressure: how many submissions may be in flight to the scheduler
  // before it admits them; Remote() blocks beyond that. The scheduler
  // admits while it holds fewer than its --max_pending_tasks.
  std::size_t submit_window = 10'000;
  // What this client's tasks print comes here as they print it: shown as
  // "(pid=N, host:port) text" on this process's stdout (stderr for what
  // they wrote to stderr), or handed to `on_task_output` when it is set.
  // It runs on the connection's thread: keep it short.
  bool print_task_output = true;
  std::function<void(const TaskOutputLine&)> on_task_output = nullptr;
};

// Connects this process to a cluster. Throws fleet::Error when the scheduler
// cannot be reached or a remote function was registered twice. Calling Init
// twice without Shutdown throws.
void Init(const InitOptions& options = {});

// Disconnects (and stops an embedded cluster). Outstanding ObjectRefs become
// unusable, and this client's tasks that have not started yet are cancelled
// (as when a client dies: nothing it left behind is kept). Called
// automatically at exit.
void Shutdown();

bool IsInitialized();

// How a task is run. Pass to TaskCaller::Options:
//   fleet::Task(Train).Options({.max_retries = 5, .retry_exceptions = true}).Remote(cfg);
struct TaskOptions {
  // Times the task is run again after the worker running it dies (and, with
  // retry_exceptions, after it throws); -1: no limit. The attempt that
  // failed last is in TaskError::attempt().
  int max_retries = 3;
  // Whether a task that throws is run again (within max_retries). Off by
  // default: a user exception is usually deterministic.
  bool retry_exceptions = false;
  // The task fails with a TaskError of kind "timed_out" once it has run
  // this long (zero: no limit). Its executor process is killed; with a
  // worker's --isolation=thread the call cannot be stopped and the task
  // fails only when it returns. Timeouts are not retried.
  std::chrono::milliseconds timeout{0};
};

namespace internal {

// One argument of a submission: a serialized value, or a reference.
struct SubmitArg {
  std::string value;
  ObjectHandle ref;
};

ObjectHandle SubmitTask(const std::string& function_name, uint64_t signature_hash,
                        std::vector<SubmitArg> args, const TaskOptions& options = {});
// Stores a value that serializes to `size_bytes`: write(value, out) writes
// them to `out`, which is the object's place in the store of a worker on
// this host when there is one (no intermediate copy).
ObjectHandle PutObject(std::size_t size_bytes, void (*write)(const void* value, char* out),
                       const void* value);
// Waits until `num_returns` handles are ready or `timeout` passes; returns
// whether each handle was ready (finished or failed) at that moment.
std::vector<bool> WaitObjects(const std::vector<ObjectHandle>& handles, std::size_t num_returns,
                              std::optional<std::chrono::nanoseconds> timeout);
// The registered name of the function at `address`; throws fleet::Error when
// it was not registered with FLEET_REMOTE.
const FunctionInfo& FunctionAt(const void* address);
void CancelObject(const ObjectHandle& handle);

// Whether an argument of type A can be passed for a parameter of type P:
// a value convertible to P, or an ObjectRef whose value converts to P.
template <typename P, typename A>
constexpr bool ArgFits() {
  using D = std::decay_t<A>;
  if constexpr (IsObjectRef<D>::value) {
    return std::is_convertible_v<typename D::value_type, std::decay_t<P>>;
  } else {
    return std::is_constructible_v<std::decay_t<P>, A&&>;
  }
}

template <typename P, typename A>
SubmitArg MakeArg(A&& arg) {
  using D = std::decay_t<A>;
  if constexpr (IsObjectRef<D>::value) {
    return SubmitArg{{}, arg.handle()};
  } else if constexpr (std::is_same_v<D, std::decay_t<P>>) {
    return SubmitArg{Serialize(arg), nullptr};
  } else {
    return SubmitArg{Serialize(std::decay_t<P>(std::forward<A>(arg))), nullptr};
  }
}

}  // namespace internal

// The remote form of a function with signature R(P...). Cheap to copy.
template <typename R, typename... P>
class TaskCaller {
 public:
  TaskCaller(std::string function_name, uint64_t signature_hash)
      : function_name_(std::move(function_name)), signature_hash_(signature_hash) {}

  // Submits one call and returns the future of its result. Arguments are
  // values (serialized now) or ObjectRefs (resolved on the cluster before the
  // task runs, without the bytes passing through this process). Types are
  // checked at compile time against the function's parameters.
  template <typename... A>
    requires(sizeof...(A) == sizeof...(P) && (internal::ArgFits<P, A>() && ...))
  ObjectRef<R> Remote(A&&... args) const {
    std::vector<internal::SubmitArg> submit_args;
    submit_args.reserve(sizeof...(A));
    (submit_args.push_back(internal::MakeArg<P>(std::forward<A>(args))), ...);
    return ObjectRef<R>(internal::SubmitTask(function_name_, signature_hash_,
                                             std::move(submit_args), options_));
  }

  // A caller that submits with `options`. Throws fleet::Error for invalid
  // options (max_retries below -1, a negative timeout).
  TaskCaller Options(const TaskOptions& options) const {
    if (options.max_retries < -1) {
      throw Error("TaskOptions::max_retries must be -1 (no limit) or more, not " +
                  std::to_string(options.max_retries));
    }
    if (options.timeout.count() < 0) {
      throw Error("TaskOptions::timeout must be zero (no limit) or positive, not " +
                  std::to_string(options.timeout.count()) + " ms");
    }
    TaskCaller caller = *this;
    caller.options_ = options;
    return caller;
  }

  const std::string& function_name() const { return function_name_; }
  uint64_t signature_hash() const { return signature_hash_; }
  const TaskOptions& options() const { return options_; }

 private:
  std::string function_name_;
  uint64_t signature_hash_;
  TaskOptions options_;
};

// The remote form of `fn`, which must be registered with FLEET_REMOTE.
template <typename R, typename... P>
TaskCaller<R, P...> Task(R (*fn)(P...)) {
  const internal::FunctionInfo& info =
      internal::FunctionAt(reinterpret_cast<const void*>(fn));
  return TaskCaller<R, P...>(info.name, info.signature_hash);
}

namespace internal {
template <typename Signature>
struct CallerFor;
template <typename R, typename... P>
struct CallerFor<R(P...)> {
  using type = TaskCaller<R, P...>;
  static type Make(std::string name) {
    return type(std::move(name), SignatureHash<R, P...>());
  }
};
}  // namespace internal

// The remote function registered under `name` on the workers, called with
// the signature the caller states: fleet::Task<int(int)>("Square"). For
// functions this binary does not link; a worker whose function has another
// signature fails the task with a signature-mismatch error.
template <typename Signature>
typename internal::CallerFor<Signature>::type Task(std::string name) {
  return internal::CallerFor<Signature>::Make(std::move(name));
}

// Stores `value` in the cluster and returns a reference that tasks can take
// as an argument; the value is serialized once, however many tasks use it.
// A large value goes to a worker's store, the one on this host when there
// is one: it is then serialized straight into that worker's shared memory.
template <typename T>
ObjectRef<std::decay_t<T>> Put(const T& value) {
  return ObjectRef<std::decay_t<T>>(internal::PutObject(
      SerializedSize(value),
      [](const void* v, char* out) { SerializeTo(*static_cast<const T*>(v), out); }, &value));
}

// Cancels the task that produces `ref`: a task not yet started never runs;
// one running now has its result discarded (its worker finishes the call,
// as tasks run on the worker's threads). Get then throws
// fleet::TaskCancelled, and tasks that take the result fail with it as
// their cause. A task that already finished is not affected.
template <typename T>
void Cancel(const ObjectRef<T>& ref) {
  if (!ref.valid()) throw Error("Cancel on an empty ObjectRef");
  internal::CancelObject(ref.handle());
}

template <typename T>
T Get(const ObjectRef<T>& ref) {
  return ref.Get();
}

template <typename T, typename Rep, typename Period>
T Get(const ObjectRef<T>& ref, std::chrono::duration<Rep, Period> timeout) {
  return ref.Get(timeout);
}

// Gets every value, in order. Throws the first failure's TaskError.
template <typename T>
std::vector<T> Get(const std::vector<ObjectRef<T>>& refs) {
  std::vector<T> values;
  values.reserve(refs.size());
  for (const ObjectRef<T>& ref : refs) values.push_back(ref.Get());
  return values;
}

template <typename T>
struct WaitResult {
  std::vector<ObjectRef<T>> ready;    // finished or failed, in input order
  std::vector<ObjectRef<T>> pending;  // not yet, in input order
};

namespace internal {
template <typename T>
WaitResult<T> WaitFor(const std::vector<ObjectRef<T>>& refs, std::size_t num_returns,
                      std::optional<std::chrono::nanoseconds> timeout) {
  std::vector<ObjectHandle> handles;
  handles.reserve(refs.size());
  for (const ObjectRef<T>& ref : refs) handles.push_back(ref.handle());
  std::vector<bool> is_ready = WaitObjects(handles, num_returns, timeout);
  WaitResult<T> result;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    (is_ready[i] ? result.ready : result.pending).push_back(refs[i]);
  }
  return result;
}
}  // namespace internal

// Returns once `num_returns` of `refs` are ready (finished or failed). Never
// throws for a failed task; Get does.
template <typename T>
WaitResult<T> Wait(const std::vector<ObjectRef<T>>& refs, std::size_t num_returns) {
  return internal::WaitFor(refs, num_returns, std::nullopt);
}

// As above, but returns after `timeout` with whatever is ready by then.
template <typename T, typename Rep, typename Period>
WaitResult<T> Wait(const std::vector<ObjectRef<T>>& refs, std::size_t num_returns,
                   std::chrono::duration<Rep, Period> timeout) {
  return internal::WaitFor(refs, num_returns,
                           std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
}

}  // namespace fleet

// Map, MapUnordered, AsCompleted: built on the declarations above, so last.
#include "fleet/stream.h"  // IWYU pragma: export

#endif  // FLEET_FLEET_H_
