#include "worker/scheduler_connection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/net.h"

namespace fleet::worker {
namespace {

constexpr absl::Duration kHeartbeatInterval = absl::Seconds(1);
// How long Stop gives the scheduler to close the stream after our last
// reports before cancelling it.
constexpr absl::Duration kCloseTimeout = absl::Seconds(1);

}  // namespace

SchedulerConnection::SchedulerConnection(std::string scheduler_address, Handlers handlers)
    : scheduler_address_(std::move(scheduler_address)), handlers_(std::move(handlers)) {}

SchedulerConnection::~SchedulerConnection() { Stop(); }

absl::Status SchedulerConnection::Start(const v1::RegisterWorker& registration,
                                        absl::Duration timeout) {
  // Its own channel: the connection closes with the stream.
  auto channel = NewChannel(scheduler_address_);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach the scheduler at ", scheduler_address_, " within ",
        absl::FormatDuration(timeout), "; is fleet-scheduler running there?"));
  }
  stub_ = v1::Scheduler::NewStub(channel);
  // Registration is the first item of the first batch.
  stream_.Send(registration.ByteSizeLong(), [&](v1::WorkerToScheduler& batch) {
    *batch.mutable_register_() = registration;
  });
  stream_.Start([this](grpc::ClientContext* context) { return stub_->Connect(context); },
                [this](v1::SchedulerToWorker& message) { OnMessage(message); },
                [this](absl::Status status) { OnEnd(std::move(status)); });
  if (!registered_.WaitForNotificationWithTimeout(timeout)) {
    stream_.Cancel();
    ended_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    return end_status_.ok() ? absl::DeadlineExceededError(absl::StrCat(
                                  "the scheduler at ", scheduler_address_,
                                  " did not acknowledge the registration"))
                            : end_status_;
  }
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return absl::OkStatus();
}

absl::Status SchedulerConnection::Wait() {
  ended_.WaitForNotification();
  absl::MutexLock lock(&mu_);
  return end_status_;
}

void SchedulerConnection::Stop() {
  std::call_once(stop_once_, [this] {
    stopping_.Notify();
    if (heartbeat_.joinable()) heartbeat_.join();
    stream_.Stop(kCloseTimeout);
  });
}

void SchedulerConnection::ReportCompleted(v1::TaskCompleted completed) {
  const std::size_t bytes = completed.ByteSizeLong();
  stream_.Send(bytes, [&](v1::WorkerToScheduler& batch) {
    *batch.add_completed() = std::move(completed);
  });
}

void SchedulerConnection::BeginDrain() {
  stream_.ExpectPeerToEnd();  // the scheduler ends it once the drain is done
  stream_.Send(2, [](v1::WorkerToScheduler& batch) { batch.set_draining(true); });
}

void SchedulerConnection::ReportOutput(v1::TaskOutput output) {
  const std::size_t bytes = output.ByteSizeLong();
  stream_.Send(bytes, [&](v1::WorkerToScheduler& batch) {
    *batch.add_output() = std::move(output);
  });
}

void SchedulerConnection::ReportStored(v1::ObjectStored stored) {
  const std::size_t bytes = stored.ByteSizeLong();
  stream_.Send(bytes, [&](v1::WorkerToScheduler& batch) {
    *batch.add_stored() = std::move(stored);
  });
}

void SchedulerConnection::OnMessage(v1::SchedulerToWorker& message) {
  if (message.has_register_ack()) {
    handlers_.on_registered(message.register_ack().inline_threshold_bytes());
    registered_.Notify();
  }
  for (v1::TaskAssignment& assignment : *message.mutable_assignments()) {
    handlers_.on_assignment(std::move(assignment));
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

void SchedulerConnection::OnEnd(absl::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      end_status_ = absl::UnavailableError(absl::StrCat(
          "lost the stream to the scheduler at ", scheduler_address_, ": ", status.ToString()));
    }
  }
  ended_.Notify();
}

void SchedulerConnection::HeartbeatLoop() {
  while (!stopping_.WaitForNotificationWithTimeout(kHeartbeatInterval)) {
    if (ended_.HasBeenNotified()) return;
    v1::Heartbeat heartbeat;
    handlers_.fill_heartbeat(heartbeat);
    stream_.Send(heartbeat.ByteSizeLong(), [&](v1::WorkerToScheduler& batch) {
      *batch.mutable_heartbeat() = heartbeat;
    });
  }
}

}  // namespace fleet::worker
