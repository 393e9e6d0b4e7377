#include "worker/scheduler_connection.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/net.h"

namespace fleet::worker {
namespace {

constexpr absl::Duration kHeartbeatInterval = absl::Seconds(1);

}  // namespace

SchedulerConnection::SchedulerConnection(std::string scheduler_address, Handlers handlers)
    : scheduler_address_(std::move(scheduler_address)), handlers_(std::move(handlers)) {}

SchedulerConnection::~SchedulerConnection() { Stop(); }

absl::Status SchedulerConnection::Start(const v1::RegisterWorker& registration,
                                        absl::Duration timeout) {
  // Its own channel: the connection closes with the session.
  auto channel = NewChannel(scheduler_address_);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach the scheduler at ", scheduler_address_, " within ",
        absl::FormatDuration(timeout), "; is fleet-scheduler running there?"));
  }
  stub_ = v1::Scheduler::NewStub(channel);
  stream_ = stub_->Connect(&context_);
  // Registration is the first item of the first batch.
  outbox_.Add(registration.ByteSizeLong(), [&](v1::WorkerToScheduler& batch) {
    *batch.mutable_register_() = registration;
  });
  writer_ = std::thread([this] { WriteLoop(); });
  reader_ = std::thread([this] { ReadLoop(); });
  if (!registered_.WaitForNotificationWithTimeout(timeout)) {
    context_.TryCancel();
    done_.WaitForNotification();
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
  done_.WaitForNotification();
  absl::MutexLock lock(&mu_);
  return end_status_;
}

void SchedulerConnection::Stop() {
  std::call_once(stop_once_, [this] {
    stopping_.Notify();
    outbox_.Close();
    if (stream_) context_.TryCancel();
    for (std::thread* t : {&heartbeat_, &writer_, &reader_}) {
      if (t->joinable()) t->join();
    }
  });
}

void SchedulerConnection::ReportCompleted(v1::TaskCompleted completed) {
  const std::size_t bytes = completed.ByteSizeLong();
  outbox_.Add(bytes, [&](v1::WorkerToScheduler& batch) {
    *batch.add_completed() = std::move(completed);
  });
}

void SchedulerConnection::ReportStored(v1::ObjectStored stored) {
  const std::size_t bytes = stored.ByteSizeLong();
  outbox_.Add(bytes, [&](v1::WorkerToScheduler& batch) {
    *batch.add_stored() = std::move(stored);
  });
}

void SchedulerConnection::ReadLoop() {
  v1::SchedulerToWorker message;
  while (stream_->Read(&message)) {
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
    message.Clear();
  }
  // Finish only once the writer has stopped using the stream.
  outbox_.Close();
  writer_exited_.WaitForNotification();
  absl::Status status = ToAbslStatus(stream_->Finish());
  {
    absl::MutexLock lock(&mu_);
    end_status_ = stopping_.HasBeenNotified()
                      ? absl::OkStatus()
                      : absl::UnavailableError(absl::StrCat(
                            "lost the stream to the scheduler at ", scheduler_address_, ": ",
                            status.ok() ? "the scheduler closed it" : status.ToString()));
  }
  done_.Notify();
}

void SchedulerConnection::WriteLoop() {
  while (std::optional<v1::WorkerToScheduler> batch = outbox_.WaitAndTake()) {
    if (!stream_->Write(*batch)) break;  // the reader sees why
  }
  stream_->WritesDone();
  writer_exited_.Notify();
}

void SchedulerConnection::HeartbeatLoop() {
  while (!stopping_.WaitForNotificationWithTimeout(kHeartbeatInterval)) {
    if (done_.HasBeenNotified()) return;
    v1::Heartbeat heartbeat;
    handlers_.fill_heartbeat(heartbeat);
    outbox_.Add(heartbeat.ByteSizeLong(), [&](v1::WorkerToScheduler& batch) {
      *batch.mutable_heartbeat() = heartbeat;
    });
  }
}

}  // namespace fleet::worker
