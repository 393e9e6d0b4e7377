#include "scheduler/object_relay.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/completion_tag.h"
#include "common/grpc_status.h"
#include "common/net.h"
#include "common/object_transfer.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/async_stream.h"

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

  // The tag of one of the call's operations: counts the operation as
  // completed, runs `Method`, and deletes the call once nothing is left in
  // flight. Whoever starts an operation calls Started first.
  template <typename Self, void (Self::*Method)(bool)>
  class Step final : public CompletionTag {
   public:
    explicit Step(Self* self) : self_(self) {}
    void Handle(bool ok) override {
      Call* const call = self_;
      --call->in_flight_;
      (self_->*Method)(ok);
      if (call->in_flight_ == 0) delete call;
    }

   private:
    Self* const self_;
  };

  void Started() { ++in_flight_; }
  // A call the server never started (it is shutting down) is never done:
  // its done notification will not come.
  void NeverStarted() { --in_flight_; }

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
    if (context_.IsCancelled()) upstream_.TryCancel();
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
  Step<Call, &Call::OnCallDone> done_tag_{this};
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
    if (!ok) {
      NeverStarted();
      return;
    }
    Accept(relay_, queue_);
    if (grpc::Status admitted = Admit(); !admitted.ok()) {
      Started();
      down_.Finish(admitted, &down_finished_tag_);
      return;
    }
    up_ = stub_->PrepareAsyncFetchObject(&upstream_, request_, queue_);
    Started();
    up_->StartCall(&up_started_tag_);
  }
  void OnUpStarted(bool ok) {
    Started();
    if (ok) {
      up_->Read(&chunk_, &up_read_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
  }
  // A chunk from the worker, or the end of its stream (its status follows).
  void OnUpRead(bool ok) {
    Started();
    if (ok) {
      bytes_ += chunk_.data().size();
      down_.Write(chunk_, &down_written_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
  }
  void OnDownWritten(bool ok) {
    if (!ok) upstream_.TryCancel();  // the caller is gone; the read then fails
    Started();
    up_->Read(&chunk_, &up_read_tag_);
  }
  void OnUpFinished(bool) {
    Started();
    down_.Finish(Record(upstream_status_), &down_finished_tag_);
  }
  void OnDownFinished(bool) {}  // the caller has its answer; nothing follows

  v1::FetchObjectRequest request_;
  grpc::ServerAsyncWriter<v1::ObjectChunk> down_{&context_};
  std::unique_ptr<grpc::ClientAsyncReader<v1::ObjectChunk>> up_;
  Step<Fetch, &Fetch::OnAccepted> accepted_tag_{this};
  Step<Fetch, &Fetch::OnUpStarted> up_started_tag_{this};
  Step<Fetch, &Fetch::OnUpRead> up_read_tag_{this};
  Step<Fetch, &Fetch::OnDownWritten> down_written_tag_{this};
  Step<Fetch, &Fetch::OnUpFinished> up_finished_tag_{this};
  Step<Fetch, &Fetch::OnDownFinished> down_finished_tag_{this};
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
    if (!ok) {
      NeverStarted();
      return;
    }
    Accept(relay_, queue_);
    if (grpc::Status admitted = Admit(); !admitted.ok()) {
      Started();
      down_.FinishWithError(admitted, &down_finished_tag_);
      return;
    }
    up_ = stub_->PrepareAsyncPutObject(&upstream_, &upstream_reply_, queue_);
    Started();
    up_->StartCall(&up_started_tag_);
  }
  void OnUpStarted(bool ok) {
    Started();
    if (ok) {
      down_.Read(&chunk_, &down_read_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
  }
  // A chunk from the caller, or the end of what it sends (or it went away).
  void OnDownRead(bool ok) {
    Started();
    if (ok) {
      bytes_ += chunk_.data().size();
      up_->Write(chunk_, &up_written_tag_);
    } else {
      if (context_.IsCancelled()) upstream_.TryCancel();
      up_->WritesDone(&up_writes_done_tag_);
    }
  }
  // The chunk reached the worker; on failure its status follows.
  void OnUpWritten(bool ok) {
    Started();
    if (ok) {
      down_.Read(&chunk_, &down_read_tag_);
    } else {
      up_->Finish(&upstream_status_, &up_finished_tag_);
    }
  }
  void OnUpWritesDone(bool) {
    Started();
    up_->Finish(&upstream_status_, &up_finished_tag_);
  }
  void OnUpFinished(bool) {
    Started();
    const grpc::Status status = Record(upstream_status_);
    if (status.ok()) {
      down_.Finish(upstream_reply_, status, &down_finished_tag_);
    } else {
      down_.FinishWithError(status, &down_finished_tag_);
    }
  }
  void OnDownFinished(bool) {}  // the caller has its answer; nothing follows

  grpc::ServerAsyncReader<v1::PutObjectReply, v1::ObjectChunk> down_{&context_};
  std::unique_ptr<grpc::ClientAsyncWriter<v1::ObjectChunk>> up_;
  v1::PutObjectReply upstream_reply_;
  Step<Put, &Put::OnAccepted> accepted_tag_{this};
  Step<Put, &Put::OnUpStarted> up_started_tag_{this};
  Step<Put, &Put::OnDownRead> down_read_tag_{this};
  Step<Put, &Put::OnUpWritten> up_written_tag_{this};
  Step<Put, &Put::OnUpWritesDone> up_writes_done_tag_{this};
  Step<Put, &Put::OnUpFinished> up_finished_tag_{this};
  Step<Put, &Put::OnDownFinished> down_finished_tag_{this};
};

void ObjectRelay::AcceptCalls(grpc::ServerCompletionQueue* queue) {
  Fetch::Accept(this, queue);
  Put::Accept(this, queue);
}

}  // namespace fleet::scheduler
