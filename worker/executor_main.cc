// fleet-executor: runs a worker's tasks in a process of their own
// (--isolation=process, executor.proto), so that a task that crashes, calls
// exit or runs out of memory costs this process, not the worker daemon,
// its store and its other tasks. Started by the daemon, never by hand.
#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/local_store_link.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "fleet/v1/executor.pb.h"
#include "worker/executor_channel.h"
#include "worker/executor_progress.h"
#include "worker/outcome_batcher.h"
#include "worker/task_array_memory.h"
#include "worker/task_call.h"
#include "worker/task_library.h"
#include "worker/task_output_relay.h"

ABSL_FLAG(int, channel_fd, -1, "Descriptor of the channel to the worker daemon.");
ABSL_FLAG(int, store_fd, -1, "Descriptor of the connection to the daemon's object store.");
ABSL_FLAG(int, progress_fd, -1, "Descriptor of the progress counters shared with the daemon.");
ABSL_FLAG(std::string, worker_address, "", "The daemon's advertised address.");
ABSL_FLAG(int, parent_pid, 0, "The daemon's pid: the executor exits when it is gone.");
ABSL_FLAG(std::vector<std::string>, task_lib, {}, "Task libraries, comma separated.");
ABSL_FLAG(std::string, log_level, "", "As the daemon's (default here: warn).");

namespace fleet::worker {
namespace {

// Where the function writes its result: a value up to the inline threshold
// (or one larger than the store's arena) in memory, to go back in the
// outcome; anything else straight into the store, as a new primary object.
class ExecutorResult : public internal::ResultBuffer {
 public:
  ExecutorResult(LocalStoreLink* store, TaskArrayMemory* arrays, const ObjectId& id,
                 uint64_t inline_threshold)
      : store_(store), arrays_(arrays), id_(id), inline_threshold_(inline_threshold) {}
  ~ExecutorResult() override {
    if (place_ == Place::kUnsealed) store_->Abort(id_);
  }

  internal::ArrayMemory* array_memory() override { return arrays_; }

  // A returned array built in the store becomes the result where it is.
  // (One small enough to go inline is serialized as any other result.)
  bool AdoptArray(internal::ArrayMemory& memory, const void* data,
                  std::size_t size_bytes) override {
    if (&memory != arrays_ || size_bytes <= inline_threshold_) return false;
    absl::StatusOr<uint64_t> sealed = arrays_->SealAs(data, id_);
    // AlreadyExists: a re-run here; the stored copy stays.
    if (!sealed.ok() && !absl::IsAlreadyExists(sealed.status())) return false;
    place_ = Place::kStored;
    size_ = size_bytes;
    return true;
  }

  char* Allocate(std::size_t size_bytes) override {
    size_ = size_bytes;
    if (size_bytes > inline_threshold_) {
      absl::StatusOr<char*> created = store_->Create(id_, size_bytes);
      if (created.ok()) {
        place_ = Place::kUnsealed;
        return *created;
      }
      if (absl::IsAlreadyExists(created.status())) {
        place_ = Place::kStored;  // a re-run here: the stored copy stays
      } else if (!absl::IsResourceExhausted(created.status())) {
        throw ResultNotStored(absl::StrCat("the result (", size_bytes,
                                           " bytes) could not be stored: ",
                                           created.status().message()));
      }
      // ResourceExhausted: larger than the arena; the daemon stores (spills) it.
    }
    value_.resize(size_bytes);
    return value_.data();
  }

  // Seals what was written in the store and sets `outcome`'s result.
  absl::Status Finish(v1::ExecutorOutcome& outcome) {
    if (place_ == Place::kUnsealed) {
      place_ = Place::kStored;
      if (absl::Status sealed = store_->Seal(id_); !sealed.ok()) return sealed;
    }
    if (place_ == Place::kStored) {
      outcome.set_stored_size_bytes(size_);
    } else {
      outcome.set_inline_value(std::move(value_));
    }
    return absl::OkStatus();
  }

 private:
  enum class Place { kValue, kUnsealed, kStored };

  LocalStoreLink* const store_;
  TaskArrayMemory* const arrays_;
  const ObjectId id_;
  const uint64_t inline_threshold_;
  Place place_ = Place::kValue;
  std::string value_;
  std::size_t size_ = 0;
};

v1::ExecutorOutcome Fail(v1::TaskFailure::Kind kind, std::string message) {
  v1::ExecutorOutcome outcome;
  *outcome.mutable_failure() = MakeFailure(kind, std::move(message));
  return outcome;
}

v1::ExecutorOutcome Execute(const v1::ExecutorTask& task, LocalStoreLink* own_store,
                            TaskArrayMemory* arrays, const std::string& where) {
  // Pins of the arguments read in place, released after the call.
  absl::InlinedVector<LocalStoreLink::PinnedBytes, 2> pinned;
  std::vector<std::string_view> args;
  args.reserve(task.args_size());
  for (int i = 0; i < task.args_size(); ++i) {
    const v1::ExecutorArg& arg = task.args(i);
    if (arg.has_value()) {
      args.push_back(arg.value());
      continue;
    }
    const bool own = arg.source_case() == v1::ExecutorArg::kOwnStoreObject;
    absl::StatusOr<ObjectId> id =
        ObjectId::FromBinary(own ? arg.own_store_object() : arg.neighbour().object_id());
    std::shared_ptr<LocalStoreLink> neighbour;
    if (!own) neighbour = LocalStoreLink::To(arg.neighbour().address());
    LocalStoreLink* store = own ? own_store : neighbour.get();
    absl::StatusOr<LocalStoreLink::PinnedBytes> bytes =
        !id.ok() ? id.status()
        : store == nullptr
            ? absl::UnavailableError(absl::StrCat("no store at ", arg.neighbour().address()))
            : store->Read(*id);
    if (!bytes.ok() && !own) {
      // The neighbour holding it went away (killed, drained, fenced) after
      // the daemon found it there: like an argument the daemon cannot
      // obtain, it is lost to this worker, not a failure of the task, so the
      // scheduler re-queues the task (rebuilding the object if no copy is
      // left) instead of failing it.
      v1::ExecutorOutcome outcome = Fail(
          v1::TaskFailure::OBJECT_LOST,
          absl::StrCat("argument ", i, " could not be read at ", arg.neighbour().address(), ": ",
                       bytes.status().message()));
      outcome.mutable_failure()->set_lost_object_id(arg.neighbour().object_id());
      return outcome;
    }
    if (!bytes.ok()) {
      return Fail(v1::TaskFailure::INTERNAL,
                  absl::StrCat("the executor could not read argument ", i, ": ",
                               bytes.status().message()));
    }
    pinned.push_back(std::move(*bytes));
    args.emplace_back(pinned.back().data, pinned.back().size);
  }

  absl::StatusOr<TaskId> task_id = TaskId::FromBinary(task.task_id());
  if (!task_id.ok()) return Fail(v1::TaskFailure::INTERNAL, "malformed task id");
  ExecutorResult result(own_store, arrays, ObjectId::Of(*task_id, 0),
                        task.inline_threshold_bytes());
  const auto start = std::chrono::steady_clock::now();
  std::optional<v1::TaskFailure> failure =
      CallRegisteredFunction(task.function_name(), task.signature_hash(), args, result, where);
  v1::ExecutorOutcome outcome;
  outcome.set_run_time_us(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count());
  if (failure) {
    *outcome.mutable_failure() = std::move(*failure);
  } else if (absl::Status finished = result.Finish(outcome); !finished.ok()) {
    *outcome.mutable_failure() = MakeFailure(
        v1::TaskFailure::INTERNAL,
        absl::StrCat("the result could not be sealed in the store: ", finished.message()));
  }
  return outcome;
}

int Main(int argc, char** argv) {
  fleet::SkipMutexDeadlockChecksInReleaseBuilds();
  absl::ParseCommandLine(argc, argv);
  // Die with the daemon, even when it is SIGKILLed.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != absl::GetFlag(FLAGS_parent_pid)) return 1;  // it died before the prctl
  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (!SetLogLevel(level.empty() ? "warn" : level).ok()) return 2;
  auto logger = GetLogger("executor");
  // stdout is a pipe to the daemon: line by line, so that what a task
  // prints reaches its client as it goes, not when a buffer fills.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  absl::StatusOr<std::unique_ptr<TaskOutputRelay>> output = TaskOutputRelay::Start();
  if (!output.ok()) {
    logger->error("event=executor_start_failed error=\"{}\"", output.status().message());
    return 2;
  }

  if (absl::Status loaded = LoadTaskLibraries(absl::GetFlag(FLAGS_task_lib)); !loaded.ok()) {
    logger->error("event=executor_start_failed error=\"{}\"", loaded.message());
    return 2;
  }
  const int channel = absl::GetFlag(FLAGS_channel_fd);
  const std::string address = absl::GetFlag(FLAGS_worker_address);
  absl::StatusOr<std::shared_ptr<LocalStoreLink>> store =
      LocalStoreLink::Adopt(absl::GetFlag(FLAGS_store_fd), address);
  if (!store.ok()) {
    logger->error("event=executor_start_failed error=\"{}\"", store.status().message());
    return 2;
  }
  absl::StatusOr<ExecutorProgress> progress =
      ExecutorProgress::Adopt(absl::GetFlag(FLAGS_progress_fd));
  absl::StatusOr<std::unique_ptr<OutcomeBatcher>> outcomes = OutcomeBatcher::Create(channel);
  if (!progress.ok() || !outcomes.ok()) {
    logger->error("event=executor_start_failed error=\"{}\"",
                  (progress.ok() ? outcomes.status() : progress.status()).message());
    return 2;
  }
  v1::ExecutorReady ready;
  ready.set_pid(static_cast<uint32_t>(getpid()));
  if (!SendFramed(channel, ready).ok()) return 1;

  const std::string where = absl::StrCat("worker at ", address, " (executor pid ", getpid(), ")");
  // Arrays a task keeps beyond its call (in a static, say) may use it until
  // the process ends; it is never destroyed (the process ends with _Exit).
  TaskArrayMemory& arrays = *new TaskArrayMemory(store->get());
  FramedReader tasks(channel);
  v1::ExecutorTask task;  // parsed into again for each task: its strings keep their room
  while (true) {
    // Nothing is held while the executor waits.
    if (!tasks.HasFrame() && !(*outcomes)->Flush().ok()) return 0;
    absl::Status received = tasks.Receive(&task);
    if (absl::IsCancelled(received)) return 0;  // the daemon stopped
    if (!received.ok()) {
      logger->error("event=executor_channel_failed error=\"{}\"", received.message());
      return 1;
    }
    progress->TaskStarted();
    (*output)->TaskStarted(task.task_id());
    v1::ExecutorOutcome outcome = Execute(task, store->get(), &arrays, where);
    (*output)->TaskEnded();
    progress->TaskFinished();
    absl::Status added = (*outcomes)->Add(outcome, tasks.HasFrame());
    if (absl::IsCancelled(added)) return 0;
    if (!added.ok()) {
      logger->error("event=executor_outcome_failed task={} error=\"{}\"",
                    absl::BytesToHexString(task.task_id()), added.message());
      return 1;
    }
  }
}

}  // namespace
}  // namespace fleet::worker

int main(int argc, char** argv) {
  // Task results are often large buffers (arrays are built in the store,
  // TaskArrayMemory; vectors, strings and arrays that do not fit there are
  // built here, then copied into it). glibc raises its mmap threshold after
  // the first such buffer is freed, and from then on keeps freed ones in the
  // heap: an executor that once returned a 16 MB result would hold tens of
  // MB for good. A fixed threshold gives every buffer above 1 MiB back when
  // it is freed.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  const int status = fleet::worker::Main(argc, argv);
  fleet::FlushLogs();
  std::fflush(nullptr);
  // Task libraries and their threads are not torn down in order.
  std::_Exit(status);
}
