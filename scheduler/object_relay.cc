#include "scheduler/object_relay.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/ids.h"
#include "common/logging.h"
#include "common/net.h"
#include "common/object_transfer.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"

namespace fleet::scheduler {
namespace {

// The target the caller named, or InvalidArgument.
absl::StatusOr<std::string> RelayTarget(const grpc::CallbackServerContext& context) {
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

// What both relayed calls share: the upstream call to the worker, the
// bytes moved, and the two OnDone (the caller's call and the worker's call)
// that must both have happened before the relay may delete itself.
struct RelayedCall {
  RelayedCall(EventLoop* loop, SchedulerCore* core) : loop(loop), core(core) {}

  // Opens the stub to `target` with a transfer's deadline.
  v1::Worker::Stub* Dial() {
    stub = v1::Worker::NewStub(ChannelTo(target));
    upstream.set_deadline(absl::ToChronoTime(absl::Now() + kObjectTransferTimeout));
    return stub.get();
  }
  // Counts the call on the loop, where /status reads it.
  void Record(bool ok) const {
    loop->Post([core = core, bytes = bytes, ok] { core->RecordRelay(bytes, ok); });
  }
  // True for the second of the two OnDone.
  bool LastDone() { return pending.fetch_sub(1) == 1; }

  EventLoop* const loop;
  SchedulerCore* const core;
  std::string target;
  std::unique_ptr<v1::Worker::Stub> stub;
  grpc::ClientContext upstream;
  uint64_t bytes = 0;
  std::atomic<int> pending{2};
};

}  // namespace

// One relayed FetchObject: the worker's chunks, read with a callback
// client call, are written on to the caller one at a time. The client call
// is held open (AddHold) while a chunk is being written on, so that it
// cannot end under a write; deletes itself when both calls are done.
class ObjectRelay::Fetch final : public grpc::ServerWriteReactor<v1::ObjectChunk>,
                                 public grpc::ClientReadReactor<v1::ObjectChunk> {
  using Down = grpc::ServerWriteReactor<v1::ObjectChunk>;
  using Up = grpc::ClientReadReactor<v1::ObjectChunk>;

 public:
  Fetch(EventLoop* loop, SchedulerCore* core, v1::FetchObjectRequest request)
      : call_(loop, core), request_(std::move(request)) {}

  // Starts forwarding to `target` once the loop has checked it.
  void Begin(absl::Status allowed, std::string target) {
    call_.target = std::move(target);
    if (!allowed.ok()) {
      EndUpstream(ToGrpcStatus(allowed));
      return;
    }
    call_.Dial()->async()->FetchObject(&call_.upstream, &request_, this);
    Up::AddHold();
    Up::StartRead(&chunk_);
    Up::StartCall();
  }

  // Upstream: a chunk arrived, or the worker's stream ended (its status
  // follows in OnDone once the hold is gone).
  void OnReadDone(bool ok) override {
    if (!ok) {
      Up::RemoveHold();
      return;
    }
    call_.bytes += chunk_.data().size();
    Down::StartWrite(&chunk_);
  }
  // Downstream: the chunk went out; read the next.
  void OnWriteDone(bool ok) override {
    if (!ok) {  // the caller is gone
      call_.upstream.TryCancel();
      Up::RemoveHold();
      return;
    }
    Up::StartRead(&chunk_);
  }
  void OnDone(const grpc::Status& status) override {
    EndUpstream(Relayed(status, call_.target));
  }
  // Downstream: the caller went away (safe before the upstream call starts).
  void OnCancel() override { call_.upstream.TryCancel(); }
  void OnDone() override {
    if (call_.LastDone()) delete this;
  }

 private:
  void EndUpstream(grpc::Status status) {
    call_.Record(status.ok());
    Down::Finish(std::move(status));
    if (call_.LastDone()) delete this;
  }

  RelayedCall call_;
  const v1::FetchObjectRequest request_;
  v1::ObjectChunk chunk_;  // one chunk in flight: read, then written
};

// One relayed PutObject: the caller's chunks are written on to the worker
// one at a time, and the worker's reply and status come back. The client
// call is held open until the last chunk or the end has been passed on.
class ObjectRelay::Put final : public grpc::ServerReadReactor<v1::ObjectChunk>,
                               public grpc::ClientWriteReactor<v1::ObjectChunk> {
  using Down = grpc::ServerReadReactor<v1::ObjectChunk>;
  using Up = grpc::ClientWriteReactor<v1::ObjectChunk>;

 public:
  Put(EventLoop* loop, SchedulerCore* core, grpc::CallbackServerContext* context,
      v1::PutObjectReply* reply)
      : call_(loop, core), context_(context), reply_(reply) {}

  void Begin(absl::Status allowed, std::string target) {
    call_.target = std::move(target);
    if (!allowed.ok()) {
      EndUpstream(ToGrpcStatus(allowed));
      return;
    }
    call_.Dial()->async()->PutObject(&call_.upstream, &upstream_reply_, this);
    Up::AddHold();
    Up::StartCall();
    Down::StartRead(&chunk_);
  }

  // Downstream: a chunk arrived, or the caller is done sending (or gone:
  // then the worker must not see a clean end and keep a partial object).
  void OnReadDone(bool ok) override {
    if (!ok) {
      if (context_->IsCancelled()) {
        call_.upstream.TryCancel();
      } else {
        Up::StartWritesDone();
      }
      Up::RemoveHold();
      return;
    }
    call_.bytes += chunk_.data().size();
    Up::StartWrite(&chunk_);
  }
  // Upstream: the chunk reached the worker; read the next. On failure the
  // worker's status follows in OnDone.
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Up::RemoveHold();
      return;
    }
    Down::StartRead(&chunk_);
  }
  void OnDone(const grpc::Status& status) override {
    if (status.ok()) *reply_ = upstream_reply_;
    EndUpstream(Relayed(status, call_.target));
  }
  void OnCancel() override { call_.upstream.TryCancel(); }
  void OnDone() override {
    if (call_.LastDone()) delete this;
  }

 private:
  void EndUpstream(grpc::Status status) {
    call_.Record(status.ok());
    Down::Finish(std::move(status));
    if (call_.LastDone()) delete this;
  }

  RelayedCall call_;
  grpc::CallbackServerContext* const context_;
  v1::PutObjectReply* const reply_;
  v1::PutObjectReply upstream_reply_;
  v1::ObjectChunk chunk_;  // one chunk in flight: read, then written
};

grpc::ServerWriteReactor<v1::ObjectChunk>* ObjectRelay::FetchObject(
    grpc::CallbackServerContext* context, const v1::FetchObjectRequest* request) {
  if (grpc::Status allowed = token_->Check(*context); !allowed.ok()) {
    return new RefusedWriteCall<v1::ObjectChunk>(std::move(allowed));
  }
  absl::StatusOr<std::string> target = RelayTarget(*context);
  if (!target.ok()) return new RefusedWriteCall<v1::ObjectChunk>(ToGrpcStatus(target.status()));
  auto* relay = new Fetch(loop_, core_, *request);
  loop_->Post([core = core_, relay, target = *std::move(target)]() mutable {
    absl::Status allowed = core->CheckRelayTarget(target);
    relay->Begin(std::move(allowed), std::move(target));
  });
  return relay;
}

grpc::ServerReadReactor<v1::ObjectChunk>* ObjectRelay::PutObject(
    grpc::CallbackServerContext* context, v1::PutObjectReply* reply) {
  if (grpc::Status allowed = token_->Check(*context); !allowed.ok()) {
    return new RefusedReadCall<v1::ObjectChunk>(std::move(allowed));
  }
  absl::StatusOr<std::string> target = RelayTarget(*context);
  if (!target.ok()) return new RefusedReadCall<v1::ObjectChunk>(ToGrpcStatus(target.status()));
  auto* relay = new Put(loop_, core_, context, reply);
  loop_->Post([core = core_, relay, target = *std::move(target)]() mutable {
    absl::Status allowed = core->CheckRelayTarget(target);
    relay->Begin(std::move(allowed), std::move(target));
  });
  return relay;
}

}  // namespace fleet::scheduler
