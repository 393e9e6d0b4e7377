#include "worker/executor.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "fleet/remote.h"
#include "worker/task_call.h"

namespace fleet::worker {
namespace {

// Results this small are not stored here: the scheduler keeps every one
// with its record of the object (they cost it no more than that record),
// so a copy in this store would only be made, and later freed, for nothing.
constexpr std::size_t kInlineOnlyMaxBytes = 256;

// The result buffer of a call on a daemon thread: an object being written
// in the store, or a scratch buffer for a result too small to store
// (kInlineOnlyMaxBytes). A result the store already has (a task re-run
// here) is serialized into the scratch buffer and dropped; the stored copy
// stays.
class StoreResult : public internal::ResultBuffer {
 public:
  StoreResult(ObjectStore* store, const ObjectId& id) : store_(store), id_(id) {}

  char* Allocate(std::size_t size_bytes) override {
    size_ = size_bytes;
    if (size_bytes <= kInlineOnlyMaxBytes) {
      inline_only_ = true;
      scratch_.resize(size_bytes);
      return scratch_.data();
    }
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
  bool inline_only() const { return inline_only_; }
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
  bool inline_only_ = false;
};

// Adds the description of result `id`, of `size_bytes`, to `completed`.
v1::ObjectInfo* AddResultInfo(const ObjectId& id, uint64_t size_bytes,
                              v1::TaskCompleted& completed) {
  v1::ObjectInfo* info = completed.add_results();
  info->set_object_id(std::string(id.Binary()));
  info->set_size_bytes(size_bytes);
  return info;
}

// Describes the result in `completed`, inlining a small one, and seals it.
void AddResult(const ObjectId& id, StoreResult& result, uint64_t inline_threshold,
               v1::TaskCompleted& completed) {
  v1::ObjectInfo* info = AddResultInfo(id, result.size(), completed);
  if (result.size() <= inline_threshold || result.inline_only()) {
    const absl::string_view bytes = result.bytes();
    info->set_inline_value(bytes.data(), bytes.size());
  }
  info->set_inline_only(result.inline_only());
  result.Seal();
}

// What the assignment says of the object argument `arg` names (where it
// is, or its value inline); null when it says nothing.
const v1::ObjectInfo* ArgObject(const v1::TaskAssignment& assignment, const v1::TaskArg& arg) {
  for (const v1::ObjectInfo& info : assignment.arg_objects()) {
    if (info.object_id() == arg.object_id()) return &info;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> Executor::Start(Options options, Identity identity,
                                                          ObjectStore* store,
                                                          SchedulerLink* link) {
  if (!options.process.on_output) {
    options.process.on_output = [link](v1::TaskOutput line) {
      link->ReportOutput(std::move(line));
    };
  }
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
    Executor* raw = executor.get();
    Slot* s = slot.get();
    slot->thread = raw->options_.isolation == Isolation::kProcess
                       ? std::thread([raw, s] { raw->RunProcessSlot(*s); })
                       : std::thread([raw, s] { raw->RunThreadSlot(*s); });
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

void Executor::Enqueue(v1::TaskAssignment& assignment) {
  absl::MutexLock lock(&mu_);
  if (options_.isolation == Isolation::kProcess && queue_.empty() && !stopping_) {
    for (auto& slot : slots_) {
      if (slot->idle) {
        if (SendDirectly(*slot, assignment)) return;
        break;
      }
    }
  }
  queue_.emplace_back().Swap(&assignment);
  TakeSpareAssignment(assignment);
}

bool Executor::EnqueueIfIdle(v1::TaskAssignment& assignment) {
  absl::MutexLock lock(&mu_);
  if (!queue_.empty() || stopping_) return false;
  for (auto& slot : slots_) {
    if (!slot->idle) continue;
    if (options_.isolation == Isolation::kProcess) return SendDirectly(*slot, assignment);
    // A waiting thread takes it; until one has, the queue is not empty and
    // no other task is taken this way.
    queue_.emplace_back().Swap(&assignment);
    TakeSpareAssignment(assignment);
    return true;
  }
  return false;
}

void Executor::TakeSpareAssignment(v1::TaskAssignment& emptied) {
  if (spare_assignments_.empty()) return;
  emptied.Swap(&spare_assignments_.back());
  spare_assignments_.pop_back();
}

void Executor::RecycleAssignment(v1::TaskAssignment& assignment) {
  assignment.Clear();
  absl::MutexLock lock(&mu_);
  if (spare_assignments_.size() >= kMaxSpareAssignments) return;
  spare_assignments_.emplace_back().Swap(&assignment);
}

bool Executor::SendDirectly(Slot& slot, v1::TaskAssignment& assignment) {
  const v1::TaskSpec& spec = assignment.spec();
  for (const v1::TaskArg& arg : spec.args()) {
    if (!arg.has_object_id()) continue;
    const v1::ObjectInfo* info = ArgObject(assignment, arg);
    if (info == nullptr || !info->has_inline_value()) return false;  // the slot's thread obtains it
  }
  // The slot's thread waits for work and touches neither its executor nor
  // this state until it has the lock again.
  if (!slot.process->alive()) return false;
  Prepared prepared;
  prepared.assignment = std::move(assignment);
  if (Gather(prepared)) {  // a malformed assignment: the slot's thread reports it
    assignment = std::move(prepared.assignment);
    return false;
  }
  v1::ExecutorTask& message = slot.task_scratch;  // its thread waits: see above
  FillExecutorTask(prepared, message);
  if (!slot.process->Send(message).ok() || !slot.process->Flush().ok()) {
    assignment = std::move(prepared.assignment);  // the slot's thread finds the executor gone
    return false;
  }
  prepared.message_bytes = message.ByteSizeLong();
  prepared.started = absl::Now();
  slot.in_flight.insert(prepared.task);
  slot.idle = false;
  slot.sent_directly = std::move(prepared);
  TakeSpareAssignment(assignment);
  return true;
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
    if (slot->running == task) {
      slot->cancel = true;
    } else if (slot->in_flight.contains(task)) {
      slot->cancelled.insert(task);  // stopped when its executor gets to it
    }
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
    // Killed and reaped here: the daemon may exit without destructors, and
    // an orphaned executor would wait on its parent-death signal.
    slot->process.reset();
  }
}

uint32_t Executor::queued() const {
  absl::MutexLock lock(&mu_);
  // Tasks sent to an executor behind the one it runs wait there.
  std::size_t waiting_in_executors = 0;
  for (const auto& slot : slots_) {
    const std::size_t sent = slot->in_flight.size();
    waiting_in_executors += sent - std::min<std::size_t>(sent, slot->running.has_value() ? 1 : 0);
  }
  return static_cast<uint32_t>(queue_.size() + waiting_in_executors);
}

void Executor::RunThreadSlot(Slot& slot) {
  while (true) {
    Prepared prepared;
    {
      absl::MutexLock lock(&mu_);
      slot.idle = queue_.empty();
      mu_.Await(absl::Condition(
          +[](Executor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return !e->queue_.empty() || e->stopping_;
          },
          this));
      slot.idle = false;
      if (stopping_) return;
      prepared.assignment = std::move(queue_.front());
      queue_.pop_front();
    }
    running_++;
    v1::TaskCompleted completed;
    std::optional<v1::TaskFailure> failure = Gather(prepared);
    if (!failure) failure = CallHere(prepared, completed);
    running_--;
    bool more_follow = false;
    {
      absl::MutexLock lock(&mu_);
      more_follow = !queue_.empty();
    }
    link_->ReportCompleted(Complete(prepared.assignment, std::move(failure), std::move(completed)),
                           more_follow);
    RecycleAssignment(prepared.assignment);
  }
}

v1::TaskCompleted Executor::Complete(const v1::TaskAssignment& assignment,
                                     std::optional<v1::TaskFailure> failure,
                                     v1::TaskCompleted completed) const {
  const v1::TaskSpec& spec = assignment.spec();
  completed.set_task_id(spec.task_id());
  completed.set_attempt(assignment.attempt());
  if (failure) {
    failure->set_function_name(spec.function_name());
    failure->set_task_id(spec.task_id());
    failure->set_worker(absl::StrCat("worker ", identity_.id.Short(), " at ", identity_.address));
    completed.clear_results();
    *completed.mutable_failure() = std::move(*failure);
  }
  return completed;
}

std::optional<v1::TaskFailure> Executor::Gather(Prepared& prepared) {
  const v1::TaskAssignment& assignment = prepared.assignment;
  const v1::TaskSpec& spec = assignment.spec();
  absl::StatusOr<TaskId> task = TaskId::FromBinary(spec.task_id());
  if (!task.ok()) return MakeFailure(v1::TaskFailure::INTERNAL, "malformed task id");
  prepared.task = *task;
  prepared.held.reserve(spec.args_size());
  prepared.args.resize(spec.args_size());
  for (int i = 0; i < spec.args_size(); ++i) {
    const v1::TaskArg& arg = spec.args(i);
    Argument& out = prepared.args[i];
    if (!arg.has_object_id()) {
      out.bytes = arg.value();
      continue;
    }
    const v1::ObjectInfo* info = ArgObject(assignment, arg);
    auto object_id = ObjectId::FromBinary(arg.object_id());
    if (info == nullptr || !object_id.ok()) {
      return MakeFailure(v1::TaskFailure::INTERNAL,
                         absl::StrCat("argument ", i, " has no location in the assignment"));
    }
    if (info->has_inline_value()) {
      out.bytes = info->inline_value();
      continue;
    }
    // A copy this worker fetched and evicted since is fetched again from
    // where it came from: the scheduler may still name this worker.
    std::string holder = info->has_location() ? info->location().address() : std::string();
    if (std::optional<std::string> from = store_->FetchedFrom(*object_id)) holder = *from;
    absl::StatusOr<ArgumentBytes> bytes = fetcher_.Obtain(*object_id, holder);
    if (!bytes.ok()) {
      v1::TaskFailure lost = MakeFailure(
          v1::TaskFailure::OBJECT_LOST,
          absl::StrCat("argument ", i, " (object ", object_id->Short(),
                       ") could not be obtained: ", bytes.status().message()));
      lost.set_lost_object_id(arg.object_id());  // so the scheduler re-queues instead of failing
      return lost;
    }
    prepared.held.push_back(std::move(*bytes));
    out = Argument{prepared.held.back().bytes(), &prepared.held.back(), *object_id};
  }
  return std::nullopt;
}

std::optional<v1::TaskFailure> Executor::CallHere(const Prepared& prepared,
                                                  v1::TaskCompleted& completed) {
  const v1::TaskSpec& spec = prepared.assignment.spec();
  std::vector<std::string_view> views;
  views.reserve(prepared.args.size());
  for (const Argument& arg : prepared.args) views.push_back(arg.bytes);
  const ObjectId result_id = ObjectId::Of(prepared.task, 0);
  StoreResult result(store_, result_id);
  const auto start = std::chrono::steady_clock::now();
  std::optional<v1::TaskFailure> failure = CallRegisteredFunction(
      spec.function_name(), spec.signature_hash(), views, result,
      absl::StrCat("worker ", identity_.id.Short()));
  if (failure) return failure;
  const auto run_time = std::chrono::steady_clock::now() - start;
  completed.set_run_time_us(
      std::chrono::duration_cast<std::chrono::microseconds>(run_time).count());
  if (spec.timeout_ms() > 0 && run_time > std::chrono::milliseconds(spec.timeout_ms())) {
    // A thread cannot be stopped: the call ran to its end, its result is dropped.
    return MakeFailure(v1::TaskFailure::TIMED_OUT,
                       absl::StrCat(spec.function_name(), " ran past its timeout of ",
                                    spec.timeout_ms(),
                                    " ms (with --isolation=thread the task is not stopped at "
                                    "its timeout, only failed after)"));
  }
  AddResult(result_id, result, inline_threshold_bytes_.load(), completed);
  return std::nullopt;
}

void Executor::FillExecutorTask(const Prepared& prepared, v1::ExecutorTask& task) const {
  const v1::TaskSpec& spec = prepared.assignment.spec();
  task.Clear();
  task.set_task_id(spec.task_id());
  task.set_function_name(spec.function_name());
  task.set_signature_hash(spec.signature_hash());
  task.set_inline_threshold_bytes(inline_threshold_bytes_.load());
  for (const Argument& arg : prepared.args) {
    v1::ExecutorArg* out = task.add_args();
    if (arg.held == nullptr) {
      out->set_value(arg.bytes.data(), arg.bytes.size());
    } else if (!arg.held->neighbour_address().empty()) {
      out->mutable_neighbour()->set_address(arg.held->neighbour_address());
      out->mutable_neighbour()->set_object_id(std::string(arg.id.Binary()));
    } else if (arg.held->in_this_store() && store_->ArenaOffset(arg.bytes.data())) {
      out->set_own_store_object(std::string(arg.id.Binary()));
    } else {
      // A private copy, or an object larger than the arena read from its
      // spill file: the executor gets the bytes.
      out->set_value(arg.bytes.data(), arg.bytes.size());
    }
  }
}

std::optional<v1::TaskFailure> Executor::TakeOutcome(const Prepared& prepared,
                                                     v1::ExecutorOutcome& outcome,
                                                     v1::TaskCompleted& completed) {
  if (outcome.has_failure()) return std::move(*outcome.mutable_failure());
  completed.set_run_time_us(outcome.run_time_us());
  const ObjectId result_id = ObjectId::Of(prepared.task, 0);
  if (outcome.result_case() == v1::ExecutorOutcome::kStoredSizeBytes) {
    AddResultInfo(result_id, outcome.stored_size_bytes(), completed);
    return std::nullopt;
  }
  // A small result (or one larger than the arena): stored here, unless
  // StoreResult finds it too small to store.
  const std::string& value = outcome.inline_value();
  StoreResult result(store_, result_id);
  try {
    std::memcpy(result.Allocate(value.size()), value.data(), value.size());
  } catch (const ResultNotStored& e) {
    return MakeFailure(v1::TaskFailure::INTERNAL, e.what());
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

}  // namespace fleet::worker
