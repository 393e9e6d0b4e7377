#include "client/client_session.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/local_store_link.h"
#include "common/logging.h"
#include "common/net.h"

namespace fleet::client {
namespace {

// How long Stop gives the scheduler to close the session after our last
// batch before cancelling it.
constexpr absl::Duration kCloseTimeout = absl::Seconds(2);

}  // namespace

ClientSession::ClientSession(std::string scheduler_address, JobId job,
                             std::shared_ptr<ObjectTable> table, uint64_t submit_window,
                             OnTaskOutput on_task_output)
    : scheduler_address_(std::move(scheduler_address)),
      job_(job),
      table_(std::move(table)),
      submit_window_(std::max<uint64_t>(1, submit_window)),
      on_task_output_(std::move(on_task_output)) {}

ClientSession::~ClientSession() { Stop(); }

absl::Status ClientSession::Start(absl::Duration timeout) {
  // Its own channel: the connection closes with the session.
  auto channel = NewChannel(scheduler_address_);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the fleet scheduler at ", scheduler_address_, " within ",
                     absl::FormatDuration(timeout),
                     "; is fleet-scheduler running there, and is the address right?"));
  }
  stub_ = v1::Scheduler::NewStub(channel);
  v1::OpenSession open;
  open.set_job_id(std::string(job_.Binary()));
  open.set_client_hostname(Hostname());
  open.set_client_pid(static_cast<uint32_t>(getpid()));
  stream_.Send(open.ByteSizeLong(),
               [&](v1::ClientToScheduler& batch) { *batch.mutable_open() = open; });
  stream_.Start([this](grpc::ClientContext* context) { return stub_->Session(context); },
                [this](v1::SchedulerToClient& message) { OnMessage(message); },
                [this](absl::Status status) { OnEnd(std::move(status)); });
  if (!opened_.WaitForNotificationWithTimeout(timeout)) {
    return absl::UnavailableError(absl::StrCat("the fleet scheduler at ", scheduler_address_,
                                               " did not open a session within ",
                                               absl::FormatDuration(timeout)));
  }
  return absl::OkStatus();
}

void ClientSession::Stop() {
  {
    absl::MutexLock lock(&window_mu_);
    ended_ = true;
  }
  stream_.Stop(kCloseTimeout);
}

void ClientSession::Submit(v1::TaskSpec spec) {
  {
    absl::MutexLock lock(&window_mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(window_mu_) {
      return ended_ || submitted_ - admitted_ < submit_window_;
    };
    window_mu_.Await(absl::Condition(&room));
    submitted_++;
  }
  const std::size_t bytes = spec.ByteSizeLong();
  stream_.Send(bytes, [&](v1::ClientToScheduler& batch) { *batch.add_submit() = std::move(spec); });
}

void ClientSession::Put(v1::ObjectInfo info) {
  const std::size_t bytes = info.ByteSizeLong();
  stream_.Send(bytes, [&](v1::ClientToScheduler& batch) {
    *batch.add_put()->mutable_object() = std::move(info);
  });
}

void ClientSession::Cancel(const TaskId& id) {
  stream_.Send(TaskId::kSize + 2, [&](v1::ClientToScheduler& batch) {
    batch.add_cancel(std::string(id.Binary()));
  });
}

void ClientSession::Release(const ObjectId& id) {
  stream_.Send(ObjectId::kSize + 2, [&](v1::ClientToScheduler& batch) {
    batch.add_release(std::string(id.Binary()));
  });
}

absl::StatusOr<v1::WorkerInfo> ClientSession::PickWorkerForPut(absl::Duration timeout) {
  absl::MutexLock lock(&workers_mu_);
  auto any = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(workers_mu_) { return !workers_.empty(); };
  if (!workers_mu_.AwaitWithTimeout(absl::Condition(&any), timeout)) {
    return absl::UnavailableError(absl::StrCat(
        "no worker has joined the cluster at ", scheduler_address_, " within ",
        absl::FormatDuration(timeout), " to hold a Put value; start a fleet-worker"));
  }
  // On this host (strictly: reachable through its mapped store), so the
  // value is written once, in place.
  for (const v1::WorkerInfo& worker : workers_) {
    if (LocalStoreLink::To(worker.address()) != nullptr) return worker;
  }
  return workers_[next_worker_++ % workers_.size()];
}

void ClientSession::OnMessage(v1::SchedulerToClient& message) {
  if (message.has_ack()) {
    inline_threshold_bytes_ = message.ack().inline_threshold_bytes();
    opened_.Notify();
  }
  if (message.admitted_requests() > 0) {
    absl::MutexLock lock(&window_mu_);
    admitted_ = std::max(admitted_, message.admitted_requests());
  }
  if (message.workers_size() > 0 || message.workers_left_size() > 0) {
    absl::MutexLock lock(&workers_mu_);
    for (const v1::WorkerInfo& joined : message.workers()) {
      workers_.push_back(joined);
      // Connects now to a worker on this host, so that its store is mapped
      // by the time the first Put or Get needs it.
      LocalStoreLink::To(joined.address());
    }
    for (const std::string& left : message.workers_left()) {
      std::erase_if(workers_, [&](const v1::WorkerInfo& w) { return w.worker_id() == left; });
    }
  }
  for (const v1::ObjectInfo& info : message.ready()) table_->Resolve(info);
  if (on_task_output_) {
    for (const v1::TaskOutput& output : message.output()) on_task_output_(output);
  }
}

void ClientSession::OnEnd(absl::Status status) {
  {
    absl::MutexLock lock(&window_mu_);
    ended_ = true;  // a blocked Submit returns; its Get reports the loss
  }
  if (status.ok()) return;  // we closed it
  GetLogger("client")->error("event=session_lost scheduler={} status=\"{}\"", scheduler_address_,
                             status.ToString());
  table_->Break(absl::UnavailableError(
      absl::StrCat("lost the connection to the fleet scheduler at ", scheduler_address_, " (",
                   status.ToString(), "); results still pending are unavailable")));
}

}  // namespace fleet::client
