#include "client/client_session.h"

#include <unistd.h>

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "common/local_store_link.h"
#include "common/logging.h"
#include "common/net.h"
#include "common/retry.h"
#include "common/scheduler_socket.h"
#include "common/task_spec.h"

namespace fleet::client {
namespace {

// How long Stop gives the scheduler to close the session after our last
// batch before cancelling it.
constexpr absl::Duration kCloseTimeout = absl::Seconds(2);

}  // namespace

ClientSession::ClientSession(std::string scheduler_address, JobId job,
                             std::shared_ptr<ObjectTable> table, uint64_t submit_window,
                             OnTaskOutput on_task_output, absl::Duration reconnect_timeout)
    : scheduler_address_(std::move(scheduler_address)),
      job_(job),
      table_(std::move(table)),
      submit_window_(std::max<uint64_t>(1, submit_window)),
      on_task_output_(std::move(on_task_output)),
      reconnect_timeout_(reconnect_timeout),
      same_host_results_(job, table_) {}

ClientSession::~ClientSession() { Stop(); }

absl::Status ClientSession::Start(absl::Duration timeout) {
  if (absl::Status opened = Open(/*resume=*/false, timeout); !opened.ok()) {
    RetireStream();
    return opened;
  }
  supervisor_ = std::thread([this] { Supervise(); });
  return absl::OkStatus();
}

absl::Status ClientSession::Open(bool resume, absl::Duration timeout) {
  // Its own channel: the connection closes with the session. Through the
  // scheduler's unix socket when it is on this host (common/scheduler_socket.h).
  auto channel = NewChannel(SchedulerChannelTarget(scheduler_address_));
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout))) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the fleet scheduler at ", scheduler_address_, " within ",
                     absl::FormatDuration(timeout),
                     "; is fleet-scheduler running there, and is the address right?"));
  }
  v1::OpenSession open;
  open.set_job_id(std::string(job_.Binary()));
  open.set_client_hostname(Hostname());
  open.set_client_pid(static_cast<uint32_t>(getpid()));
  if (resume) {
    open.set_resume(true);
    for (const ObjectId& id : table_->HeldIds()) open.add_held_objects(std::string(id.Binary()));
  }
  {
    // The scheduler tells a new stream about every worker.
    absl::MutexLock lock(&workers_mu_);
    workers_.clear();
  }
  Stream* stream = nullptr;
  v1::Scheduler::Stub* stub = nullptr;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    stub_ = v1::Scheduler::NewStub(channel);
    stream_ = std::make_unique<Stream>(queue_thread_.queue());
    stream = stream_.get();
    stub = stub_.get();
    generation = ++generation_;
    opened_ = false;
    stream_end_.reset();
    open.set_admitted_requests(admitted_);
    open.set_submit_window(submit_window_);
    // One first message: the open, then every request not admitted, in order.
    stream_->Send(open.ByteSizeLong(),
                  [&](v1::ClientToScheduler& batch) { *batch.mutable_open() = std::move(open); });
    for (const Request& request : unadmitted_) SendCopyLocked(request);
  }
  stream->Start(
      [stub](grpc::ClientContext* context, grpc::CompletionQueue* queue) {
        return stub->PrepareAsyncSession(context, queue);
      },
      [this, generation](v1::SchedulerToClient& message) { OnMessage(generation, message); },
      [this, generation](absl::Status status) { OnEnd(generation, std::move(status)); });
  absl::MutexLock lock(&mu_);
  auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return opened_ || stream_end_.has_value() || stopping_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&answered), timeout);
  if (opened_) return absl::OkStatus();
  if (stream_end_.has_value() && !stream_end_->ok()) return *stream_end_;
  return absl::UnavailableError(absl::StrCat("the fleet scheduler at ", scheduler_address_,
                                             " did not open a session within ",
                                             absl::FormatDuration(timeout)));
}

void ClientSession::RetireStream() {
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

void ClientSession::Stop() {
  std::call_once(stop_once_, [this] {
    std::unique_ptr<Stream> stream;
    std::unique_ptr<v1::Scheduler::Stub> stub;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      ended_ = true;  // a blocked Submit returns
      if (stream_ != nullptr) {
        // On purpose: the scheduler closes the session now rather than
        // keep it for a reconnect.
        stream_->Send(2, [](v1::ClientToScheduler& batch) { batch.set_goodbye(true); });
      }
    }
    if (supervisor_.joinable()) supervisor_.join();
    {
      absl::MutexLock lock(&mu_);
      stream = std::move(stream_);
      stub = std::move(stub_);
    }
    if (stream != nullptr) stream->Stop(kCloseTimeout);
    queue_thread_.Stop();  // nothing is left on it
  });
}

void ClientSession::Supervise() {
  while (true) {
    absl::Status why;
    {
      absl::MutexLock lock(&mu_);
      auto over = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stream_end_.has_value() || stopping_;
      };
      mu_.Await(absl::Condition(&over));
      if (stopping_) return;
      why = *stream_end_;
    }
    GetLogger("client")->warn(
        "event=session_lost scheduler={} status=\"{}\" hint=\"reconnecting for up to {}; "
        "pending results wait\"",
        scheduler_address_, why.ToString(), absl::FormatDuration(reconnect_timeout_));
    const std::optional<absl::Status> resumed = RetryWithBackoff(
        absl::Now() + reconnect_timeout_, why,
        [this] {
          absl::MutexLock lock(&mu_);
          return !stopping_;
        },
        [this](absl::Duration timeout) {
          RetireStream();
          return Open(/*resume=*/true, timeout);
        },
        [this](absl::Duration pause) {
          absl::MutexLock lock(&mu_);
          auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
          return !mu_.AwaitWithTimeout(absl::Condition(&stop), pause);
        });
    if (!resumed) return;  // stopping
    if (resumed->ok()) {
      GetLogger("client")->info("event=session_resumed scheduler={}", scheduler_address_);
      continue;
    }
    const absl::Status& last = *resumed;
    RetireStream();
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;  // a blocked Submit returns; its Get reports the loss
    }
    GetLogger("client")->error("event=session_ended scheduler={} status=\"{}\"",
                               scheduler_address_, last.ToString());
    table_->Break(absl::UnavailableError(absl::StrCat(
        "lost the connection to the fleet scheduler at ", scheduler_address_,
        " and could not reconnect within ", absl::FormatDuration(reconnect_timeout_), " (",
        last.ToString(), "); results still pending are unavailable")));
    return;
  }
}

void ClientSession::SendCopyLocked(const Request& request) {
  // The field's tag and length: a few bytes, which only the batch's cap sees.
  constexpr std::size_t kFieldOverhead = 4;
  const std::size_t bytes =
      std::visit([](const auto& message) { return message.ByteSizeLong(); }, request) +
      kFieldOverhead;
  stream_->Send(bytes, [&](v1::ClientToScheduler& batch) {
    if (const auto* spec = std::get_if<v1::TaskSpec>(&request)) {
      *batch.add_submit() = *spec;
    } else {
      *batch.add_put() = std::get<v1::PutObject>(request);
    }
  });
}

void ClientSession::SendRequestLocked(Request request) {
  submitted_++;
  if (stream_ != nullptr) SendCopyLocked(request);
  unadmitted_.push_back(std::move(request));
}

v1::TaskSpec ClientSession::NewSpec() {
  absl::MutexLock lock(&spare_specs_mu_);
  if (spare_specs_.empty()) return v1::TaskSpec();
  v1::TaskSpec spec = std::move(spare_specs_.back());
  spare_specs_.pop_back();
  return spec;
}

void ClientSession::KeepSpareSpecs() {
  // Cleared here, outside mu_, which a submitting thread may wait on. A
  // cleared spec has no task id: that marks those kept below.
  for (Request& request : admitted_scratch_) {
    auto* spec = std::get_if<v1::TaskSpec>(&request);
    if (spec == nullptr) continue;
    std::size_t arg_bytes = 0;
    for (const v1::TaskArg& arg : spec->args()) arg_bytes += arg.value().size();
    if (arg_bytes <= kMaxSpareSpecArgBytes) spec->Clear();
  }
  {
    absl::MutexLock lock(&spare_specs_mu_);
    for (Request& request : admitted_scratch_) {
      if (spare_specs_.size() >= submit_window_) break;
      auto* spec = std::get_if<v1::TaskSpec>(&request);
      if (spec != nullptr && spec->task_id().empty()) spare_specs_.push_back(std::move(*spec));
    }
  }
  admitted_scratch_.clear();
}

void ClientSession::Submit(v1::TaskSpec spec, bool hand_over) {
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ended_ || submitted_ - admitted_ < submit_window_;
  };
  mu_.Await(absl::Condition(&room));
  if (ended_) return;
  // Handed over only on an open stream: the submission naming the worker
  // must follow at once (a reconnecting session sends it with the open).
  if (hand_over && stream_ != nullptr && opened_ && RunnableFromSpecAlone(spec)) {
    if (std::optional<WorkerId> worker = same_host_results_.HandOver(spec)) {
      const absl::string_view id = worker->Binary();
      spec.set_direct_worker_id(id.data(), id.size());
    }
  }
  // At once, even for a task handed over, which nothing waits on here:
  // sent lazily (up to 2 ms later) it saved a synchronous call ~15 us, but
  // the scheduler would not count the slot it holds meanwhile, and could
  // queue another client's long task behind it.
  SendRequestLocked(std::move(spec));
}

void ClientSession::Put(v1::ObjectInfo info) {
  absl::MutexLock lock(&mu_);
  if (ended_) return;
  v1::PutObject put;
  *put.mutable_object() = std::move(info);
  SendRequestLocked(std::move(put));
}

void ClientSession::Cancel(const TaskId& id) {
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return;
  stream_->Send(TaskId::kSize + 2, [&](v1::ClientToScheduler& batch) {
    id.CopyTo(batch.add_cancel());
  });
}

void ClientSession::ReportLostPut(const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return;  // asked again after a reconnect
  stream_->Send(ObjectId::kSize + 2, [&](v1::ClientToScheduler& batch) {
    id.CopyTo(batch.add_lost_puts());
  });
}

void ClientSession::SetReuploadHandler(OnReupload handler) {
  absl::MutexLock lock(&reupload_mu_);
  on_reupload_ = std::move(handler);
}

void ClientSession::Release(const ObjectId& id) {
  // Lost with a broken stream: a resumed session lists the refs held.
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return;
  // Nothing waits on a release: it goes with the next request, or within
  // ClientStream::kDefaultLazyDelay.
  stream_->SendLazily(ObjectId::kSize + 2,
                      [&](v1::ClientToScheduler& batch) { id.CopyTo(batch.add_release()); });
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

void ClientSession::OnMessage(uint64_t generation, v1::SchedulerToClient& message) {
  {
    absl::MutexLock lock(&mu_);
    if (generation != generation_) return;
    if (message.has_ack()) {
      inline_threshold_bytes_ = message.ack().inline_threshold_bytes();
      opened_ = true;
    }
    if (message.admitted_requests() > admitted_) {
      const uint64_t newly = message.admitted_requests() - admitted_;
      for (uint64_t i = 0; i < newly && !unadmitted_.empty(); ++i) {
        admitted_scratch_.push_back(std::move(unadmitted_.front()));
        unadmitted_.pop_front();
      }
      admitted_ = message.admitted_requests();
    }
  }
  KeepSpareSpecs();
  if (message.workers_size() > 0 || message.workers_left_size() > 0) {
    absl::MutexLock lock(&workers_mu_);
    for (const v1::WorkerInfo& joined : message.workers()) {
      workers_.push_back(joined);
      // Connects now to a worker on this host, so that its store is mapped
      // by the time the first Put or Get needs it.
      LocalStoreLink::To(joined.address());
      same_host_results_.Watch(joined.address());
    }
    for (const std::string& left : message.workers_left()) {
      std::erase_if(workers_, [&](const v1::WorkerInfo& w) {
        if (w.worker_id() != left) return false;
        same_host_results_.Forget(w.address());
        return true;
      });
    }
  }
  if (message.ready_size() > 0) table_->Resolve(*message.mutable_ready());
  for (const std::string& bytes : message.reupload()) {
    auto id = ObjectId::FromBinary(bytes);
    if (!id.ok()) continue;
    absl::MutexLock lock(&reupload_mu_);
    if (on_reupload_) {
      on_reupload_(*id);
    } else {
      ReportLostPut(*id);
    }
  }
  if (on_task_output_) {
    for (const v1::TaskOutput& output : message.output()) on_task_output_(output);
  }
}

void ClientSession::OnEnd(uint64_t generation, absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (generation != generation_ || stopping_) return;
  stream_end_ = std::move(status);
}

}  // namespace fleet::client
