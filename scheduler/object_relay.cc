#include "scheduler/object_relay.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/net.h"
#include "common/object_transfer.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/async_stream.h"
#include "scheduler/completion_tag.h"

namespace fleet::scheduler {
namespace {

// The target the caller named, or InvalidArgument.
absl::StatusOr<std::string> RelayTarget(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find(kRelayTargetMetadata);
  if (found == metadata.end() || found->second.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the scheduler's object relay needs the worker's address in the '",
        kRelayTargetMetadata, "' metadata; workers serve this call directly"));
  }
  return std::string(found->second.data(), found->second.size());
}

// Prefixes what went wrong on the far side of the relay with where it was.
grpc::Status Relayed(const grpc::Status& status, const std::string& target) {
  if (status.ok()) return status;
  return grpc::Status(status.error_code(), absl::StrCat("through the scheduler's relay to worker ",
                                                        target, ": ", status.error_message()));
}

}  // namespace

// What both relayed calls share: the caller's call (its context and its
// end notification), the call to the worker, and the count of operations
// in flight. Everything runs on the core thread; a call deletes itself once
// the caller's call is done and nothing is in flight.
class ObjectRelay::Call {
 public:
  virtual ~Call() = default;

 protected:
  Call(ObjectRelay* relay, grpc::ServerCompletionQueue* queue) : relay_(relay), queue_(queue) {
    context_.AsyncNotifyWhenDone(&done_tag_);
    in_flight_ = 1;  // the done notification
  }

  // Each started operation is counted; each completion handler calls
  // Completed first and Settle last.
  void Started() { ++in_flight_; }
  void Completed() { --in_flight_; }
  void Settle() {
    if (in_flight_ == 0) delete this;
  }

  // Checks the token and the target and dials the worker; on failure
  // returns the status to end the caller's call with.
  grpc::Status Admit() {
    if (grpc::Status allowed = relay_->token_->Check(context_); !allowed.ok()) return allowed;
    absl::StatusOr<std::string> target = RelayTarget(context_);
    if (!target.ok()) return ToGrpcStatus(target.status());
    target_ = *std::move(target);
    if (absl::Status allowed = relay_->core_->CheckRelayTarget(target_); !allowed.ok()) {
      relay_->core_->RecordRelay(0, false);  // a failed relay call, in /status
      return ToGrpcStatus(allowed);
    }
    stub_ = v1::Worker::NewStub(ChannelTo(target_));
    upstream_.set_deadline(absl::ToChronoTime(absl::Now() + kObjectTransferTimeout));
    return grpc::Status::OK;
  }

  // The relayed status, counted in the core (the /status "relay" figures).
  grpc::Status Record(const grpc::Status& upstream_status) {
    relay_->core_->RecordRelay(bytes_, upstream_status.ok());
    return Relayed(upstream_status, target_);
  }

  // The caller's call is over (finished, or the caller went away).
  void OnCallDone(bool) {
    Completed();
    if (context_.IsCancelled()) upstream_.TryCancel();
    Settle();
  }

  ObjectRelay* const relay_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;
  std::string target_;
  std::unique_ptr<v1::Worker::Stub> stub_;
  grpc::ClientContext upstream_;
  grpc::Status upstream_status_;
  uint64_t bytes_ = 0;
  v1::ObjectChunk chunk_;  // one chunk in flight: read, then written

 private:
  MemberTag<Call, &Call::OnCallDone> done_tag_{this};
  int in_flight_ = 0;
};

// One relayed FetchObject: each chunk read from the worker is written on to
// the caller before the next is read.
class ObjectRelay::Fetch final : public ObjectRelay::Call {
 public:
  static void Accept(ObjectRelay* relay, grpc::ServerCompletionQueue* queue) {
    auto* call = new Fetch(relay, queue);
    call->Started();
    relay->RequestFetchObject(&call->context_, &call->request_, &call->down_, queue, queue,
                              &call->accepted_tag_);
  }

 private:
  Fetch(ObjectRelay* relay, grpc::ServerCompletionQueue* queue) : Call(relay, queue) {}

  void OnAccepted(bool ok) {
    Completed();
    if (!ok) {  // shutting down; a call never started is never done
      delete this;
      return;
    }
    Accept(relay_, queue_);
    if (grpc::Status admitted = Admit(); !admitted.ok()) {
      Started();
      down_.Finish(admitted, &down_finished_tag_);
      return Settle();
    }
    up_ = stub_->PrepareAsyncFetchObject(&upstream_, request_, queue_);
    Started();
    up_->StartCall(&up_started_tag_);
    Settle();
  }
  void OnUpStarted(bool ok) {
    Completed();
    Started();
    if (ok) {
      up_->Read(&chunk_, &up_read_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
    Settle();
  }
  // A chunk from the worker, or the end of its stream (its status follows).
  void OnUpRead(bool ok) {
    Completed();
    Started();
    if (ok) {
      bytes_ += chunk_.data().size();
      down_.Write(chunk_, &down_written_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
    Settle();
  }
  void OnDownWritten(bool ok) {
    Completed();
    if (!ok) upstream_.TryCancel();  // the caller is gone; the read then fails
    Started();
    up_->Read(&chunk_, &up_read_tag_);
    Settle();
  }
  void OnUpFinished(bool) {
    Completed();
    Started();
    down_.Finish(Record(upstream_status_), &down_finished_tag_);
    Settle();
  }
  void OnDownFinished(bool) {
    Completed();
    Settle();
  }

  v1::FetchObjectRequest request_;
  grpc::ServerAsyncWriter<v1::ObjectChunk> down_{&context_};
  std::unique_ptr<grpc::ClientAsyncReader<v1::ObjectChunk>> up_;
  MemberTag<Fetch, &Fetch::OnAccepted> accepted_tag_{this};
  MemberTag<Fetch, &Fetch::OnUpStarted> up_started_tag_{this};
  MemberTag<Fetch, &Fetch::OnUpRead> up_read_tag_{this};
  MemberTag<Fetch, &Fetch::OnDownWritten> down_written_tag_{this};
  MemberTag<Fetch, &Fetch::OnUpFinished> up_finished_tag_{this};
  MemberTag<Fetch, &Fetch::OnDownFinished> down_finished_tag_{this};
};

// One relayed PutObject: each chunk read from the caller is written on to
// the worker before the next is read; the worker's reply and status come
// back. A caller that goes away cancels the worker's call, so that the
// worker does not keep a partial object.
class ObjectRelay::Put final : public ObjectRelay::Call {
 public:
  static void Accept(ObjectRelay* relay, grpc::ServerCompletionQueue* queue) {
    auto* call = new Put(relay, queue);
    call->Started();
    relay->RequestPutObject(&call->context_, &call->down_, queue, queue, &call->accepted_tag_);
  }

 private:
  Put(ObjectRelay* relay, grpc::ServerCompletionQueue* queue) : Call(relay, queue) {}

  void OnAccepted(bool ok) {
    Completed();
    if (!ok) {  // shutting down; a call never started is never done
      delete this;
      return;
    }
    Accept(relay_, queue_);
    if (grpc::Status admitted = Admit(); !admitted.ok()) {
      Started();
      down_.FinishWithError(admitted, &down_finished_tag_);
      return Settle();
    }
    up_ = stub_->PrepareAsyncPutObject(&upstream_, &upstream_reply_, queue_);
    Started();
    up_->StartCall(&up_started_tag_);
    Settle();
  }
  void OnUpStarted(bool ok) {
    Completed();
    Started();
    if (ok) {
      down_.Read(&chunk_, &down_read_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
    Settle();
  }
  // A chunk from the caller, or the end of what it sends (or it went away).
  void OnDownRead(bool ok) {
    Completed();
    Started();
    if (ok) {
      bytes_ += chunk_.data().size();
      up_->Write(chunk_, &up_written_tag_);
    } else {
      if (context_.IsCancelled()) upstream_.TryCancel();
      up_->WritesDone(&up_writes_done_tag_);
    }
    Settle();
  }
  // The chunk reached the worker; on failure its status follows.
  void OnUpWritten(bool ok) {
    Completed();
    Started();
    if (ok) {
      down_.Read(&chunk_, &down_read_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
    Settle();
  }
  void OnUpWritesDone(bool) {
    Completed();
    Started();
    up_->Finish(&upstream_status_, &up_finished_tag_);
    Settle();
  }
  void OnUpFinished(bool) {
    Completed();
    Started();
    const grpc::Status status = Record(upstream_status_);
    if (status.ok()) {
      down_.Finish(upstream_reply_, status, &down_finished_tag_);
    } else {
      down_.FinishWithError(status, &down_finished_tag_);
    }
    Settle();
  }
  void OnDownFinished(bool) {
    Completed();
    Settle();
  }

  grpc::ServerAsyncReader<v1::PutObjectReply, v1::ObjectChunk> down_{&context_};
  std::unique_ptr<grpc::ClientAsyncWriter<v1::ObjectChunk>> up_;
  v1::PutObjectReply upstream_reply_;
  MemberTag<Put, &Put::OnAccepted> accepted_tag_{this};
  MemberTag<Put, &Put::OnUpStarted> up_started_tag_{this};
  MemberTag<Put, &Put::OnDownRead> down_read_tag_{this};
  MemberTag<Put, &Put::OnUpWritten> up_written_tag_{this};
  MemberTag<Put, &Put::OnUpWritesDone> up_writes_done_tag_{this};
  MemberTag<Put, &Put::OnUpFinished> up_finished_tag_{this};
  MemberTag<Put, &Put::OnDownFinished> down_finished_tag_{this};
};

void ObjectRelay::AcceptCalls(grpc::ServerCompletionQueue* queue) {
  Fetch::Accept(this, queue);
  Put::Accept(this, queue);
}

}  // namespace fleet::scheduler
