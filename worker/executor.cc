#include "worker/executor.h"

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "fleet/remote.h"
#include "worker/task_call.h"

namespace fleet::worker {
namespace {

// The result buffer of a call on a daemon thread: an object being written
// in the store. A result the store already has (a task re-run here) is
// serialized into a scratch buffer and dropped; the stored copy stays.
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

// Describes the result in `completed`, inlining a small one, and seals it.
void AddResult(const ObjectId& id, StoreResult& result, uint64_t inline_threshold,
               v1::TaskCompleted& completed) {
  v1::ObjectInfo* info = completed.add_results();
  info->set_object_id(std::string(id.Binary()));
  info->set_size_bytes(result.size());
  if (result.size() <= inline_threshold) {
    const absl::string_view bytes = result.bytes();
    info->set_inline_value(bytes.data(), bytes.size());
  }
  result.Seal();
}

// The failure a dead executor process means for its task.
v1::TaskFailure ExecutorEnded(const absl::Status& why, const std::string& function_name) {
  v1::TaskFailure::Kind kind = v1::TaskFailure::EXECUTOR_DIED;
  if (absl::IsDeadlineExceeded(why)) kind = v1::TaskFailure::TIMED_OUT;
  if (absl::IsCancelled(why)) kind = v1::TaskFailure::CANCELLED;
  return MakeFailure(kind, absl::StrCat(why.message(), " while running ", function_name));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> Executor::Start(Options options, Identity identity,
                                                          ObjectStore* store,
                                                          SchedulerLink* link) {
  std::unique_ptr<Executor> executor(
      new Executor(std::move(options), std::move(identity), store, link));
  const int slots = std::max(1, executor->options_.slots);
  for (int i = 0; i < slots; ++i) {
    auto slot = std::make_unique<Slot>();
    if (executor->options_.isolation == Isolation::kProcess) {
      absl::StatusOr<std::unique_ptr<ExecutorProcess>> process =
          ExecutorProcess::Spawn(executor->options_.process, executor->options_.store_server);
      if (!process.ok()) return process.status();
      slot->process = std::move(*process);
    }
    executor->slots_.push_back(std::move(slot));
  }
  for (auto& slot : executor->slots_) {
    slot->thread = std::thread([raw = executor.get(), s = slot.get()] { raw->RunSlot(*s); });
  }
  return executor;
}

Executor::Executor(Options options, Identity identity, ObjectStore* store, SchedulerLink* link)
    : options_(std::move(options)),
      identity_(std::move(identity)),
      store_(store),
      link_(link),
      fetcher_(store, link) {}

Executor::~Executor() { Stop(); }

void Executor::Enqueue(v1::TaskAssignment assignment) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(assignment));
}

void Executor::Cancel(const TaskId& task) {
  absl::MutexLock lock(&mu_);
  const std::string binary(task.Binary());
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->spec().task_id() == binary) {
      queue_.erase(it);
      return;
    }
  }
  for (auto& slot : slots_) {
    if (slot->running == task) slot->cancel = true;
  }
}

void Executor::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queue_.clear();
    for (auto& slot : slots_) slot->cancel = true;  // kills running executors
  }
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
  }
}

uint32_t Executor::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<uint32_t>(queue_.size());
}

void Executor::RunSlot(Slot& slot) {
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
      slot.running = *TaskId::FromBinary(assignment.spec().task_id());
      slot.cancel = false;
    }
    running_++;
    v1::TaskCompleted completed = Execute(assignment, slot);
    running_--;
    bool stopped = false;
    {
      absl::MutexLock lock(&mu_);
      slot.running.reset();
      stopped = stopping_ && options_.isolation == Isolation::kProcess;
    }
    // A task whose executor Stop killed is not reported as cancelled: the
    // scheduler re-runs it elsewhere when this worker leaves.
    if (stopped) return;
    link_->ReportCompleted(std::move(completed));
    // Replace a dead executor now rather than when the next task waits.
    if (options_.isolation == Isolation::kProcess && !slot.process->alive()) {
      if (absl::Status started = StartExecutor(slot); !started.ok()) {
        GetLogger("worker")->error("event=executor_start_failed worker={} error=\"{}\"",
                                   identity_.id.Short(), started.message());
      }
    }
  }
}

v1::TaskCompleted Executor::Execute(const v1::TaskAssignment& assignment, Slot& slot) {
  const v1::TaskSpec& spec = assignment.spec();
  v1::TaskCompleted completed;
  completed.set_task_id(spec.task_id());
  completed.set_attempt(assignment.attempt());
  auto fail = [&](v1::TaskFailure failure) {
    failure.set_function_name(spec.function_name());
    failure.set_task_id(spec.task_id());
    failure.set_worker(absl::StrCat("worker ", identity_.id.Short(), " at ", identity_.address));
    completed.clear_results();
    *completed.mutable_failure() = std::move(failure);
    return completed;
  };

  // Gather arguments; `held` keeps their bytes readable (pinned in a
  // store, or a private copy) during the call.
  std::vector<ArgumentBytes> held;
  held.reserve(spec.args_size());
  std::vector<Argument> args(spec.args_size());
  for (int i = 0; i < spec.args_size(); ++i) {
    const v1::TaskArg& arg = spec.args(i);
    if (!arg.has_object_id()) {
      args[i].bytes = arg.value();
      continue;
    }
    const v1::ObjectInfo* info = nullptr;
    for (const v1::ObjectInfo& candidate : assignment.arg_objects()) {
      if (candidate.object_id() == arg.object_id()) info = &candidate;
    }
    auto object_id = ObjectId::FromBinary(arg.object_id());
    if (info == nullptr || !object_id.ok()) {
      return fail(MakeFailure(v1::TaskFailure::INTERNAL,
                              absl::StrCat("argument ", i, " has no location in the assignment")));
    }
    if (info->has_inline_value()) {
      args[i].bytes = info->inline_value();
      continue;
    }
    // A copy this worker fetched and evicted since is fetched again from
    // where it came from: the scheduler may still name this worker.
    std::string holder = info->has_location() ? info->location().address() : std::string();
    if (std::optional<std::string> from = store_->FetchedFrom(*object_id)) holder = *from;
    absl::StatusOr<ArgumentBytes> bytes = fetcher_.Obtain(*object_id, holder);
    if (!bytes.ok()) {
      return fail(MakeFailure(v1::TaskFailure::OBJECT_LOST,
                              absl::StrCat("argument ", i, " (object ", object_id->Short(),
                                           ") could not be obtained: ", bytes.status().message())));
    }
    held.push_back(std::move(*bytes));
    args[i] = Argument{held.back().bytes(), &held.back(), *object_id};
  }

  const ObjectId result_id = ObjectId::Of(*TaskId::FromBinary(spec.task_id()), 0);
  std::optional<v1::TaskFailure> failure =
      options_.isolation == Isolation::kProcess
          ? CallInExecutor(spec, args, result_id, slot, completed)
          : CallHere(spec, args, result_id, completed);
  if (failure) return fail(std::move(*failure));
  return completed;
}

std::optional<v1::TaskFailure> Executor::CallHere(const v1::TaskSpec& spec,
                                                  const std::vector<Argument>& args,
                                                  const ObjectId& result_id,
                                                  v1::TaskCompleted& completed) {
  std::vector<std::string_view> views;
  views.reserve(args.size());
  for (const Argument& arg : args) views.push_back(arg.bytes);
  StoreResult result(store_, result_id);
  const auto start = std::chrono::steady_clock::now();
  std::optional<v1::TaskFailure> failure = CallRegisteredFunction(
      spec.function_name(), spec.signature_hash(), views, result,
      absl::StrCat("worker ", identity_.id.Short()));
  if (failure) return failure;
  const auto run_time = std::chrono::steady_clock::now() - start;
  completed.set_run_time_us(
      std::chrono::duration_cast<std::chrono::microseconds>(run_time).count());
  if (spec.timeout_ms() > 0 &&
      run_time > std::chrono::milliseconds(spec.timeout_ms())) {
    // A thread cannot be stopped: the call ran to its end, its result is dropped.
    return MakeFailure(v1::TaskFailure::TIMED_OUT,
                       absl::StrCat(spec.function_name(), " ran past its timeout of ",
                                    spec.timeout_ms(), " ms (with --isolation=thread the "
                                    "task is not stopped at its timeout, only failed after)"));
  }
  AddResult(result_id, result, inline_threshold_bytes_.load(), completed);
  return std::nullopt;
}

absl::Status Executor::StartExecutor(Slot& slot) {
  absl::StatusOr<std::unique_ptr<ExecutorProcess>> process =
      ExecutorProcess::Spawn(options_.process, options_.store_server);
  if (!process.ok()) return process.status();
  slot.process = std::move(*process);
  executor_restarts_++;
  return absl::OkStatus();
}

std::optional<v1::TaskFailure> Executor::CallInExecutor(const v1::TaskSpec& spec,
                                                        const std::vector<Argument>& args,
                                                        const ObjectId& result_id, Slot& slot,
                                                        v1::TaskCompleted& completed) {
  if (!slot.process->alive()) {
    if (absl::Status started = StartExecutor(slot); !started.ok()) {
      return MakeFailure(v1::TaskFailure::EXECUTOR_DIED,
                         absl::StrCat("no executor to run ", spec.function_name(), ": ",
                                      started.message()));
    }
  }

  v1::ExecutorTask task;
  task.set_task_id(spec.task_id());
  task.set_function_name(spec.function_name());
  task.set_signature_hash(spec.signature_hash());
  task.set_inline_threshold_bytes(inline_threshold_bytes_.load());
  for (const Argument& arg : args) {
    v1::ExecutorArg* out = task.add_args();
    if (arg.held == nullptr || !arg.held->neighbour_address().empty()) {
      if (arg.held == nullptr) {
        out->set_value(arg.bytes.data(), arg.bytes.size());
      } else {
        out->mutable_neighbour()->set_address(arg.held->neighbour_address());
        out->mutable_neighbour()->set_object_id(std::string(arg.id.Binary()));
      }
    } else if (arg.held->in_this_store() && store_->ArenaOffset(arg.bytes.data())) {
      out->set_own_store_object(std::string(arg.id.Binary()));
    } else {
      // A private copy, or an object larger than the arena read from its
      // spill file: the executor gets the bytes.
      out->set_value(arg.bytes.data(), arg.bytes.size());
    }
  }
  ExecutorProcess::Limits limits;
  if (spec.timeout_ms() > 0) {
    limits.deadline = absl::Now() + absl::Milliseconds(static_cast<int64_t>(spec.timeout_ms()));
  }
  limits.memory_limit_bytes = options_.memory_limit_bytes;
  limits.cancelled = &slot.cancel;

  absl::StatusOr<v1::ExecutorOutcome> outcome = slot.process->Run(task, limits);
  if (!outcome.ok()) {
    GetLogger("worker")->warn("event=executor_ended worker={} task={} function={} reason=\"{}\"",
                              identity_.id.Short(), result_id.Short(), spec.function_name(),
                              outcome.status().message());
    return ExecutorEnded(outcome.status(), spec.function_name());
  }
  if (outcome->has_failure()) return std::move(*outcome->mutable_failure());
  completed.set_run_time_us(outcome->run_time_us());
  if (outcome->result_case() == v1::ExecutorOutcome::kStoredSizeBytes) {
    v1::ObjectInfo* info = completed.add_results();
    info->set_object_id(std::string(result_id.Binary()));
    info->set_size_bytes(outcome->stored_size_bytes());
    return std::nullopt;
  }
  // A small result (or one larger than the arena): stored here.
  const std::string& value = outcome->inline_value();
  StoreResult result(store_, result_id);
  try {
    std::memcpy(result.Allocate(value.size()), value.data(), value.size());
  } catch (const ResultNotStored& e) {
    return MakeFailure(v1::TaskFailure::INTERNAL, e.what());
  }
  AddResult(result_id, result, inline_threshold_bytes_.load(), completed);
  return std::nullopt;
}

}  // namespace fleet::worker
