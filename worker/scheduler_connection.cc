#include "worker/scheduler_connection.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/net.h"
#include "common/retry.h"
#include "common/scheduler_socket.h"

namespace fleet::worker {
namespace {

constexpr absl::Duration kHeartbeatInterval = absl::Seconds(1);
// How long Stop gives the scheduler to close the stream after our last
// reports before cancelling it.
constexpr absl::Duration kCloseTimeout = absl::Seconds(1);
// How long a completion waits for those of the worker's other tasks in
// flight to join its message: under a burst of short tasks, one message to
// the scheduler per many completions (its per-message cost dominated its
// CPU per task); a lone task's completion goes at once.
constexpr absl::Duration kCompletionLinger = absl::Microseconds(500);

}  // namespace

SchedulerConnection::SchedulerConnection(std::string scheduler_address,
                                         grpc::CompletionQueue* queue, Handlers handlers,
                                         absl::Duration reconnect_timeout)
    : scheduler_address_(std::move(scheduler_address)),
      queue_(queue),
      handlers_(std::move(handlers)),
      reconnect_timeout_(reconnect_timeout) {}

SchedulerConnection::~SchedulerConnection() { Stop(); }

absl::Status SchedulerConnection::Start(const v1::RegisterWorker& registration,
                                        absl::Duration timeout) {
  registration_ = registration;
  if (absl::Status opened = Open(/*resume=*/false, timeout); !opened.ok()) {
    RetireStream();
    return opened;
  }
  supervisor_ = std::thread([this] { Supervise(); });
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return absl::OkStatus();
}

absl::Status SchedulerConnection::Open(bool resume, absl::Duration timeout) {
  // Its own channel: the connection closes with the stream. Through the
  // scheduler's unix socket when it is on this host (common/scheduler_socket.h).
  auto channel = NewChannel(SchedulerChannelTarget(scheduler_address_));
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach the scheduler at ", scheduler_address_, " within ",
        absl::FormatDuration(timeout), "; is fleet-scheduler running there?"));
  }
  v1::RegisterWorker registration = registration_;
  if (resume) {
    registration.set_resume(true);
    handlers_.fill_held_objects(registration);
  }
  Stream* stream = nullptr;
  v1::Scheduler::Stub* stub = nullptr;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    stub_ = v1::Scheduler::NewStub(channel);
    stream_ = std::make_unique<Stream>(queue_, kCompletionLinger);
    stream = stream_.get();
    stub = stub_.get();
    generation = ++generation_;
    registered_ = false;
    stream_end_.reset();
    recorded_on_stream_ = 0;
    if (resume) {
      for (const auto& [task, attempt] : assigned_) {
        v1::TaskClaim* claim = registration.add_running_tasks();
        claim->set_task_id(std::string(task.Binary()));
        claim->set_attempt(attempt);
      }
      for (const v1::TaskCompleted& done : unrecorded_) {
        v1::TaskClaim* claim = registration.add_running_tasks();
        claim->set_task_id(done.task_id());
        claim->set_attempt(done.attempt());
      }
    }
    // One first message: the registration, then what was not recorded, in
    // the order it was first sent. Later reports follow on this stream.
    stream_->Send(registration.ByteSizeLong(), [&](v1::WorkerToScheduler& batch) {
      *batch.mutable_register_() = std::move(registration);
    });
    for (const v1::TaskCompleted& done : unrecorded_) {
      stream_->Send(done.ByteSizeLong(),
                    [&](v1::WorkerToScheduler& batch) { *batch.add_completed() = done; });
    }
    if (draining_) {
      stream_->ExpectPeerToEnd();
      stream_->Send(2, [](v1::WorkerToScheduler& batch) { batch.set_draining(true); });
    }
  }
  stream->Start(
      [stub](grpc::ClientContext* context, grpc::CompletionQueue* queue) {
        return stub->PrepareAsyncConnect(context, queue);
      },
      [this, generation](v1::SchedulerToWorker& message) { OnMessage(generation, message); },
      [this, generation](absl::Status status) { OnEnd(generation, std::move(status)); });
  absl::MutexLock lock(&mu_);
  auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return registered_ || stream_end_.has_value() || stopping_flag_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&answered), timeout);
  if (registered_) return absl::OkStatus();
  if (stream_end_.has_value() && !stream_end_->ok()) return *stream_end_;
  return absl::DeadlineExceededError(absl::StrCat(
      "the scheduler at ", scheduler_address_, " did not acknowledge the registration within ",
      absl::FormatDuration(timeout)));
}

void SchedulerConnection::RetireStream() {
  std::unique_ptr<Stream> stream;
  std::unique_ptr<v1::Scheduler::Stub> stub;
  {
    absl::MutexLock lock(&mu_);
    stream = std::move(stream_);
    stub = std::move(stub_);
    generation_++;  // whatever the old stream still reports is ignored
  }
  if (stream != nullptr) stream->Stop(absl::ZeroDuration());
}

absl::Status SchedulerConnection::Wait() {
  ended_.WaitForNotification();
  absl::MutexLock lock(&mu_);
  return end_status_;
}

void SchedulerConnection::Finish(absl::Status status) {
  std::call_once(finish_once_, [&] {
    {
      absl::MutexLock lock(&mu_);
      end_status_ = std::move(status);
    }
    ended_.Notify();
  });
}

void SchedulerConnection::Stop() {
  std::call_once(stop_once_, [this] {
    stopping_.Notify();
    {
      absl::MutexLock lock(&mu_);
      stopping_flag_ = true;
    }
    if (heartbeat_.joinable()) heartbeat_.join();
    if (supervisor_.joinable()) supervisor_.join();
    std::unique_ptr<Stream> stream;
    std::unique_ptr<v1::Scheduler::Stub> stub;
    {
      absl::MutexLock lock(&mu_);
      stream = std::move(stream_);
      stub = std::move(stub_);
    }
    if (stream != nullptr) stream->Stop(kCloseTimeout);
    Finish(absl::OkStatus());
  });
}

void SchedulerConnection::Supervise() {
  while (true) {
    absl::Status ended;
    bool draining = false;
    {
      absl::MutexLock lock(&mu_);
      auto over = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stream_end_.has_value() || stopping_flag_;
      };
      mu_.Await(absl::Condition(&over));
      if (stopping_flag_) return;
      ended = *stream_end_;
      draining = draining_;
    }
    // OK: the drain is done. ABORTED: this worker was declared dead and
    // fenced; it must start again as a new one.
    if (ended.ok() || absl::IsAborted(ended) || draining ||
        reconnect_timeout_ <= absl::ZeroDuration()) {
      Finish(ended.ok() ? ended
                        : absl::UnavailableError(absl::StrCat(
                              "lost the stream to the scheduler at ", scheduler_address_, ": ",
                              ended.ToString())));
      return;
    }
    if (!Reconnect(ended)) return;
  }
}

bool SchedulerConnection::Reconnect(const absl::Status& why) {
  GetLogger("worker")->warn(
      "event=scheduler_lost scheduler={} status=\"{}\" hint=\"running tasks carry on; "
      "reconnecting for up to {}\"",
      scheduler_address_, why.ToString(), absl::FormatDuration(reconnect_timeout_));
  const std::optional<absl::Status> reconnected = RetryWithBackoff(
      absl::Now() + reconnect_timeout_, why,
      [this] {
        absl::MutexLock lock(&mu_);
        return !stopping_flag_ && !draining_;  // draining: nobody to hand over to
      },
      [this](absl::Duration timeout) {
        RetireStream();
        return Open(/*resume=*/true, timeout);
      },
      [this](absl::Duration pause) { return !stopping_.WaitForNotificationWithTimeout(pause); });
  if (reconnected && reconnected->ok()) {
    absl::MutexLock lock(&mu_);
    GetLogger("worker")->info(
        "event=scheduler_reconnected scheduler={} claimed_tasks={} unrecorded_completions={}",
        scheduler_address_, assigned_.size(), unrecorded_.size());
    return true;
  }
  if (stopping_.HasBeenNotified()) return false;
  const absl::Status last = reconnected.value_or(why);  // nullopt: it began to drain
  RetireStream();
  Finish(absl::UnavailableError(absl::StrCat(
      "lost the scheduler at ", scheduler_address_, " and could not reconnect within ",
      absl::FormatDuration(reconnect_timeout_), " (last: ", last.ToString(), ")")));
  return false;
}

void SchedulerConnection::ReportCompleted(v1::TaskCompleted completed, bool /*more_follow*/) {
  // Batched by whether this worker has other tasks to answer at all.
  absl::MutexLock lock(&mu_);
  if (auto id = TaskId::FromBinary(completed.task_id()); id.ok()) assigned_.erase(*id);
  const std::size_t bytes = completed.ByteSizeLong();
  // Sent at once even when its client has the results already: sent
  // lazily, it saved a synchronous round trip ~30 us, but the scheduler
  // then counted the finished task's slot busy for up to the lazy delay,
  // and placed long tasks behind one another meanwhile.
  SendLocked(
      bytes, [&](v1::WorkerToScheduler& batch) { *batch.add_completed() = completed; },
      /*more_follow=*/!assigned_.empty());
  unrecorded_.push_back(std::move(completed));
}

void SchedulerConnection::BeginDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
  if (stream_ == nullptr) return;
  stream_->ExpectPeerToEnd();  // the scheduler ends it once the drain is done
  stream_->Send(2, [](v1::WorkerToScheduler& batch) { batch.set_draining(true); });
}

void SchedulerConnection::ReportOutput(v1::TaskOutput output) {
  absl::MutexLock lock(&mu_);
  const std::size_t bytes = output.ByteSizeLong();
  SendLocked(bytes, [&](v1::WorkerToScheduler& batch) { *batch.add_output() = std::move(output); });
}

void SchedulerConnection::ReportStored(v1::ObjectStored stored) {
  // Lost with a broken stream: a registration that resumes lists them all.
  absl::MutexLock lock(&mu_);
  const std::size_t bytes = stored.ByteSizeLong();
  SendLocked(bytes, [&](v1::WorkerToScheduler& batch) { *batch.add_stored() = std::move(stored); });
}

void SchedulerConnection::OnMessage(uint64_t generation, v1::SchedulerToWorker& message) {
  {
    absl::MutexLock lock(&mu_);
    if (generation != generation_) return;
    if (message.has_register_ack()) registered_ = true;
    if (message.completions_recorded() > recorded_on_stream_) {
      const uint64_t newly = message.completions_recorded() - recorded_on_stream_;
      for (uint64_t i = 0; i < newly && !unrecorded_.empty(); ++i) {
        recorded_scratch_.push_back(std::move(unrecorded_.front()));
        unrecorded_.pop_front();
      }
      recorded_on_stream_ = message.completions_recorded();
    }
    for (const v1::TaskAssignment& assignment : message.assignments()) {
      if (auto id = TaskId::FromBinary(assignment.spec().task_id()); id.ok()) {
        assigned_[*id] = assignment.attempt();
      }
    }
    for (const std::string& id : message.cancel_tasks()) {
      if (auto task_id = TaskId::FromBinary(id); task_id.ok()) assigned_.erase(*task_id);
    }
  }
  recorded_scratch_.clear();
  if (message.has_register_ack()) {
    handlers_.on_registered(message.register_ack().inline_threshold_bytes());
  }
  for (v1::TaskAssignment& assignment : *message.mutable_assignments()) {
    handlers_.on_assignment(assignment);
  }
  for (const std::string& id : message.free_objects()) {
    if (auto object_id = ObjectId::FromBinary(id); object_id.ok()) handlers_.on_free(*object_id);
  }
  for (v1::ObjectInfo& object : *message.mutable_copy_objects()) {
    handlers_.on_copy(std::move(object));
  }
  for (const std::string& id : message.cancel_tasks()) {
    if (auto task_id = TaskId::FromBinary(id); task_id.ok()) handlers_.on_cancel(*task_id);
  }
}

void SchedulerConnection::OnEnd(uint64_t generation, absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (generation != generation_) return;
  stream_end_ = std::move(status);
}

void SchedulerConnection::HeartbeatLoop() {
  while (!stopping_.WaitForNotificationWithTimeout(kHeartbeatInterval)) {
    if (ended_.HasBeenNotified()) return;
    v1::Heartbeat heartbeat;
    handlers_.fill_heartbeat(heartbeat);
    absl::MutexLock lock(&mu_);
    if (!registered_) continue;
    SendLocked(heartbeat.ByteSizeLong(), [&](v1::WorkerToScheduler& batch) {
      *batch.mutable_heartbeat() = heartbeat;
    });
  }
}

}  // namespace fleet::worker
