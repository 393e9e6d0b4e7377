// The client runtime behind fleet.h: one per process, between Init and
// Shutdown. User-facing functions throw; everything below returns Status.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "client/client_session.h"
#include "client/local_cluster.h"
#include "client/object_routes.h"
#include "client/object_table.h"
#include "common/cluster_token.h"
#include "common/event_loop.h"
#include "common/ids.h"
#include "common/local_store_link.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "common/object_transfer.h"
#include "fleet/fleet.h"

namespace fleet {
namespace internal {

// An object being filled in place (by Put or fleet::ArrayBuilder).
struct ObjectBuild {
  ObjectId id;
  std::size_t size = 0;
  char* out = nullptr;  // where the caller writes
  bool sealed = false;
  v1::WorkerInfo worker;  // where it goes, when too large to travel inline
  // In that worker's store, on this host:
  std::shared_ptr<LocalStoreLink> link;
  // Or privately, until Seal stores it:
  std::string buffer;

  ~ObjectBuild() {
    if (link != nullptr && !sealed) link->Abort(id);
  }
};

}  // namespace internal

namespace {

// How long a large Put waits for a worker to join an empty cluster.
constexpr absl::Duration kPutWorkerWait = absl::Seconds(30);

class Runtime {
 public:
  // Where the lines the tasks print go (see InitOptions::print_task_output).
  static client::ClientSession::OnTaskOutput TaskOutputHandler(const InitOptions& options) {
    if (options.on_task_output) {
      return [handler = options.on_task_output](const v1::TaskOutput& output) {
        handler(TaskOutputLine{.worker = output.worker(),
                               .pid = static_cast<int>(output.pid()),
                               .is_stderr = output.is_stderr(),
                               .text = output.line()});
      };
    }
    if (!options.print_task_output) return nullptr;
    return [](const v1::TaskOutput& output) {
      std::FILE* to = output.is_stderr() ? stderr : stdout;
      std::fprintf(to, "(pid=%u, %s) %s\n", output.pid(), output.worker().c_str(),
                   output.line().c_str());
      std::fflush(to);
    };
  }

  static absl::StatusOr<std::unique_ptr<Runtime>> Start(const InitOptions& options) {
    std::unique_ptr<Runtime> runtime(new Runtime());
    std::string address = options.address;
    if (address.empty()) {
      auto local = client::LocalCluster::Start(options.local_slots);
      if (!local.ok()) return local.status();
      runtime->local_ = std::move(*local);
      address = runtime->local_->scheduler_address();
    }
    if (!options.token.empty()) SetSentClusterToken(options.token);
    runtime->routes_ = std::make_shared<client::ObjectRoutes>(address);
    runtime->table_ = std::make_shared<client::ObjectTable>(runtime->routes_);
    runtime->session_ = std::make_unique<client::ClientSession>(
        address, runtime->job_, runtime->table_, options.submit_window,
        TaskOutputHandler(options), absl::FromChrono(options.scheduler_reconnect_timeout));
    absl::Duration timeout = absl::FromChrono(options.connect_timeout);
    if (auto status = runtime->session_->Start(timeout); !status.ok()) return status;
    client::ClientSession* session = runtime->session_.get();
    runtime->table_->SetReleaseSink([session](const ObjectId& id) { session->Release(id); });
    Runtime* raw = runtime.get();
    runtime->reuploads_ = std::make_unique<EventLoop>();
    session->SetReuploadHandler([raw](const ObjectId& id) {
      raw->reuploads_->Post([raw, id] { raw->Reupload(id); });
    });
    return runtime;
  }

  ~Runtime() {
    table_->SetReleaseSink(nullptr);
    table_->Break(absl::FailedPreconditionError("fleet::Shutdown was called"));
    session_->Stop();
    reuploads_.reset();  // after the session: it posts there
    local_.reset();
  }

  internal::ObjectHandle Submit(const std::string& function_name, uint64_t signature_hash,
                                std::vector<internal::SubmitArg> args,
                                const TaskOptions& options) {
    const TaskId task_id = TaskId::Of(job_, next_index_.fetch_add(1));
    // Set in place, into the room of a spec used before (NewSpec).
    v1::TaskSpec spec = session_->NewSpec();
    const absl::string_view task_id_bytes = task_id.Binary();
    spec.set_task_id(task_id_bytes.data(), task_id_bytes.size());
    spec.set_function_name(function_name);
    spec.set_signature_hash(signature_hash);
    spec.set_num_returns(1);
    spec.set_max_retries(options.max_retries);
    spec.set_retry_exceptions(options.retry_exceptions);
    spec.set_timeout_ms(static_cast<uint64_t>(options.timeout.count()));
    // Values too large to travel inline are Put first; the temporary refs
    // are released after the submission, in stream order, so the scheduler
    // already counts the task's use of them.
    std::vector<internal::ObjectHandle> temporaries;
    for (internal::SubmitArg& arg : args) {
      v1::TaskArg* wire = spec.add_args();
      if (arg.ref == nullptr && arg.value.size() > session_->inline_threshold_bytes()) {
        const std::string& value = arg.value;
        arg.ref = Put(value.size(), [&value](char* out) {
          std::memcpy(out, value.data(), value.size());
        });
        temporaries.push_back(arg.ref);
      }
      if (arg.ref != nullptr) {
        wire->set_object_id(std::string(arg.ref->id.Binary()));
      } else {
        wire->set_value(std::move(arg.value));
      }
    }
    // Read before this task's result is added: whether the caller awaits
    // nothing else (a synchronous call, most likely).
    const bool awaits_nothing_else = !table_->AnyPending();
    internal::ObjectHandle result = table_->Create(ObjectId::Of(task_id, 0));
    session_->Submit(std::move(spec), /*hand_over=*/awaits_nothing_else);
    return result;
  }

  // Stores an object of `size` bytes that `write` serializes into the
  // memory it is given: inline when small; else in the store of a worker on
  // this host, in place, when there is one; else uploaded to a worker.
  internal::ObjectHandle Put(std::size_t size, absl::FunctionRef<void(char* out)> write) {
    std::shared_ptr<internal::ObjectBuild> build = Begin(size);
    write(build->out);  // if it throws, the unsealed object is dropped
    return Seal(*build);
  }

  // Starts an object to be filled in place (Put, fleet::ArrayBuilder): in
  // the store of a worker on this host when the value is too large to
  // travel inline and there is one (and it has room); else in a private
  // buffer, which Seal stores.
  std::shared_ptr<internal::ObjectBuild> Begin(std::size_t size) {
    auto build = std::make_shared<internal::ObjectBuild>();
    build->id = ObjectId::Of(TaskId::Of(job_, next_index_.fetch_add(1)), 0);
    build->size = size;
    if (size > session_->inline_threshold_bytes()) {
      auto worker = session_->PickWorkerForPut(kPutWorkerWait);
      if (!worker.ok()) throw Error(std::string(worker.status().message()));
      build->worker = *std::move(worker);
      if (std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(build->worker.address())) {
        absl::StatusOr<char*> out = link->Create(build->id, size);
        if (out.ok()) {
          build->link = std::move(link);
          build->out = *out;
          return build;
        }
        // Unavailable: the link broke; ResourceExhausted: larger than the
        // store's memory, which an upload can put in a spill file.
        if (!absl::IsUnavailable(out.status()) && !absl::IsResourceExhausted(out.status())) {
          throw Error(absl::StrCat("creating an object of ", size, " bytes failed: ",
                                   out.status().message()));
        }
      }
    }
    build->buffer.resize(size);
    build->out = build->buffer.data();
    return build;
  }

  internal::ObjectHandle Seal(internal::ObjectBuild& build) {
    if (build.sealed) throw Error("this object was sealed already");
    build.sealed = true;
    const absl::string_view bytes(build.out, build.size);
    if (build.worker.address().empty()) {  // small enough to travel inline
      v1::ObjectInfo info;
      info.set_object_id(std::string(build.id.Binary()));
      info.set_size_bytes(build.size);
      info.set_inline_value(bytes.data(), bytes.size());
      // Small objects are always built in `buffer`.
      internal::ObjectHandle handle =
          table_->Create(build.id, std::make_shared<const std::string>(std::move(build.buffer)));
      session_->Put(std::move(info));
      return handle;
    }
    absl::Status status = absl::UnavailableError("not in a same-host store");
    if (build.link != nullptr) status = build.link->Seal(build.id);
    // The link broke (its mapping still holds the bytes), or the object was
    // built privately: upload it.
    if (absl::IsUnavailable(status)) status = routes_->Upload(build.worker.address(), build.id, bytes);
    if (!status.ok()) {
      throw Error(absl::StrCat("storing an object of ", build.size, " bytes on worker ",
                               build.worker.address(), " failed: ", status.message()));
    }
    return Register(build.id, build.size, build.worker);
  }

  client::ObjectTable& table() { return *table_; }

  // The scheduler lost every copy of Put object `id`: stores the value
  // again, as Put did, when this client still holds it.
  void Reupload(const ObjectId& id) {
    std::shared_ptr<const std::string> value = table_->HeldValue(id);
    absl::Status status = absl::NotFoundError("the value is not held here");
    v1::WorkerInfo worker;
    if (value != nullptr) {
      absl::StatusOr<v1::WorkerInfo> picked = session_->PickWorkerForPut(kPutWorkerWait);
      status = picked.status();
      if (picked.ok()) {
        worker = *std::move(picked);
        status = absl::UnavailableError("no same-host store");
        if (std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(worker.address())) {
          absl::StatusOr<char*> out = link->Create(id, value->size());
          if (out.ok()) {
            std::memcpy(*out, value->data(), value->size());
            status = link->Seal(id);
          }
        }
        if (!status.ok()) status = routes_->Upload(worker.address(), id, *value);
      }
    }
    if (!status.ok()) {
      GetLogger("client")->warn("event=put_not_reuploaded object={} reason=\"{}\"", id.Short(),
                                status.message());
      session_->ReportLostPut(id);
      return;
    }
    GetLogger("client")->info("event=put_reuploaded object={} worker={} bytes={}", id.Short(),
                              worker.address(), value->size());
    v1::ObjectInfo info;
    info.set_object_id(std::string(id.Binary()));
    info.set_size_bytes(value->size());
    info.mutable_location()->set_worker_id(worker.worker_id());
    info.mutable_location()->set_address(worker.address());
    session_->Put(std::move(info));
  }

  void Cancel(const ObjectId& id) {
    // Its result is here: the task has finished, there is nothing to
    // cancel (the scheduler may not have heard yet when a same-host worker
    // pushed the result straight here).
    if (table_->HeldValue(id) != nullptr) return;
    session_->Cancel(id.task());
  }

 private:
  // Tracks a large object just stored on `worker` and tells the scheduler.
  internal::ObjectHandle Register(const ObjectId& id, std::size_t size,
                                  const v1::WorkerInfo& worker) {
    v1::ObjectInfo info;
    info.set_object_id(std::string(id.Binary()));
    info.set_size_bytes(size);
    info.mutable_location()->set_worker_id(worker.worker_id());
    info.mutable_location()->set_address(worker.address());
    internal::ObjectHandle handle = table_->CreateRemote(id, worker.address());
    session_->Put(std::move(info));
    return handle;
  }

  Runtime() : job_(JobId::Random()) {}

  const JobId job_;
  std::atomic<uint64_t> next_index_{1};
  // Declared in dependency order.
  std::unique_ptr<client::LocalCluster> local_;
  std::shared_ptr<client::ObjectRoutes> routes_;
  std::shared_ptr<client::ObjectTable> table_;
  std::unique_ptr<client::ClientSession> session_;
  std::unique_ptr<EventLoop> reuploads_;  // lost Puts stored again, off the session's thread
};

absl::Mutex runtime_mu(absl::kConstInit);
// Shared so that calls in flight keep it alive across a concurrent Shutdown.
std::shared_ptr<Runtime>* current_runtime ABSL_GUARDED_BY(runtime_mu) = nullptr;

std::shared_ptr<Runtime> Current() {
  absl::MutexLock lock(&runtime_mu);
  if (current_runtime == nullptr || *current_runtime == nullptr) {
    throw Error("fleet is not initialized: call fleet::Init() first");
  }
  return *current_runtime;
}

TaskError ToTaskError(const v1::TaskFailure& failure) {
  TaskError::Details details;
  std::string kind = v1::TaskFailure::Kind_Name(failure.kind());
  for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  details.kind = kind;
  details.function_name = failure.function_name();
  if (auto id = TaskId::FromBinary(failure.task_id()); id.ok()) details.task_id = id->Short();
  details.exception_type = failure.exception_type();
  details.message = failure.message();
  details.worker = failure.worker();
  details.attempt = failure.attempt();
  if (failure.has_cause()) details.cause = std::make_shared<TaskError>(ToTaskError(failure.cause()));
  return TaskError(std::move(details));
}

}  // namespace

void Init(const InitOptions& options) {
  SkipMutexDeadlockChecksInReleaseBuilds();
  if (auto status = SetLogLevel(options.log_level); !status.ok()) {
    throw Error(std::string(status.message()));
  }
  if (auto errors = internal::FunctionRegistry::Global().TakeErrors(); !errors.empty()) {
    throw Error(absl::StrJoin(errors, "; "));
  }
  absl::MutexLock lock(&runtime_mu);
  if (current_runtime != nullptr && *current_runtime != nullptr) {
    throw Error("fleet::Init was already called; call fleet::Shutdown first");
  }
  // Before the session links to same-host workers (see the function).
  LocalStoreLink::SetPopulateArenasUpFront(false);
  auto runtime = Runtime::Start(options);
  if (!runtime.ok()) throw Error(std::string(runtime.status().message()));
  static bool at_exit_registered = false;
  if (!at_exit_registered) {
    at_exit_registered = true;
    std::atexit([] { Shutdown(); });
  }
  if (current_runtime == nullptr) current_runtime = new std::shared_ptr<Runtime>();
  *current_runtime = std::shared_ptr<Runtime>(std::move(*runtime));
}

void Shutdown() {
  std::shared_ptr<Runtime> runtime;
  {
    absl::MutexLock lock(&runtime_mu);
    if (current_runtime == nullptr) return;
    runtime = std::move(*current_runtime);
    *current_runtime = nullptr;
  }
  runtime.reset();  // stops the session and any embedded cluster
}

bool IsInitialized() {
  absl::MutexLock lock(&runtime_mu);
  return current_runtime != nullptr && *current_runtime != nullptr;
}

namespace internal {

ObjectHandle SubmitTask(const std::string& function_name, uint64_t signature_hash,
                        std::vector<SubmitArg> args, const TaskOptions& options) {
  return Current()->Submit(function_name, signature_hash, std::move(args), options);
}

void CancelObject(const ObjectHandle& handle) {
  Current()->Cancel(handle->id);
}

ObjectHandle PutObject(std::size_t size_bytes, void (*write)(const void* value, char* out),
                       const void* value) {
  return Current()->Put(size_bytes, [&](char* out) { write(value, out); });
}

std::shared_ptr<ObjectBuild> BeginObject(std::size_t size_bytes, char** out) {
  std::shared_ptr<ObjectBuild> build = Current()->Begin(size_bytes);
  *out = build->out;
  return build;
}

ObjectHandle SealObject(ObjectBuild& build) { return Current()->Seal(build); }

ObjectBytes GetObjectBytes(const ObjectHandle& handle,
                           std::optional<std::chrono::nanoseconds> timeout) {
  std::shared_ptr<Runtime> runtime = Current();
  std::optional<absl::Duration> wait;
  if (timeout) wait = absl::FromChrono(*timeout);
  v1::TaskFailure failure;
  auto bytes = runtime->table().GetValue(handle, wait, &failure);
  if (bytes.ok()) return *bytes;
  if (absl::IsAborted(bytes.status()) && failure.kind() != v1::TaskFailure::KIND_UNSPECIFIED) {
    if (failure.kind() == v1::TaskFailure::CANCELLED) throw TaskCancelled(ToTaskError(failure));
    throw ToTaskError(failure);
  }
  if (absl::IsDeadlineExceeded(bytes.status())) throw GetTimeout(std::string(bytes.status().message()));
  throw Error(std::string(bytes.status().message()));
}

std::string ObjectIdHex(const ObjectHandle& handle) { return handle->id.Hex(); }

std::vector<bool> WaitObjects(const std::vector<ObjectHandle>& handles, std::size_t num_returns,
                              std::optional<std::chrono::nanoseconds> timeout) {
  if (num_returns > handles.size()) {
    throw Error(absl::StrCat("Wait for ", num_returns, " of ", handles.size(),
                             " refs can never finish: num_returns exceeds the number of refs"));
  }
  std::shared_ptr<Runtime> runtime = Current();
  std::optional<absl::Duration> wait;
  if (timeout) wait = absl::FromChrono(*timeout);
  auto ready = runtime->table().Wait(handles, num_returns, wait);
  if (!ready.ok()) throw Error(std::string(ready.status().message()));
  return *ready;
}

const FunctionInfo& FunctionAt(const void* address) {
  const FunctionInfo* info = FunctionRegistry::Global().FindByAddress(address);
  if (info == nullptr) {
    throw Error(
        "fleet::Task: this function is not a registered remote function; add "
        "FLEET_REMOTE(name) after its definition, in a file linked into this program");
  }
  return *info;
}

}  // namespace internal
}  // namespace fleet
