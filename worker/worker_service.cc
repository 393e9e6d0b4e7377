#include "worker/worker_service.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/completion_tag.h"
#include "common/grpc_status.h"
#include "common/object_transfer.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"

namespace fleet::worker {

// One call, from the wait for it to its end: when it comes, the next is
// waited for and the token checked; the kind then runs it, and ends it with
// End, whose completion deletes it.
class WorkerService::Call : public CompletionTag {
 public:
  void Handle(bool ok) final {
    if (ending_) {
      delete this;
      return;
    }
    if (!accepted_) {
      if (!ok) {  // the server is shutting down
        delete this;
        return;
      }
      accepted_ = true;
      AcceptNext();
      if (grpc::Status allowed = service_->token_.Check(context_); !allowed.ok()) {
        End(std::move(allowed));
        return;
      }
      Begin();
      return;
    }
    Continue(ok);
  }

 protected:
  Call(WorkerService* service, grpc::ServerCompletionQueue* queue)
      : service_(service), queue_(queue) {}
  virtual ~Call() = default;

  // Waits for the next call of this kind.
  virtual void AcceptNext() = 0;
  virtual void Begin() = 0;
  // An operation the kind started has completed.
  virtual void Continue(bool ok) = 0;
  // Ends the call with `status`; calls Ending first.
  virtual void End(grpc::Status status) = 0;
  void Ending() { ending_ = true; }

  WorkerService* const service_;
  grpc::ServerCompletionQueue* const queue_;
  grpc::ServerContext context_;

 private:
  bool accepted_ = false;
  bool ending_ = false;
};

// FetchObject: streams the object in chunks, one write in flight, from a
// pinned view (the store neither moves nor frees the bytes until the call
// ends).
class WorkerService::FetchCall final : public Call {
 public:
  static void Accept(WorkerService* service, grpc::ServerCompletionQueue* queue) {
    auto* call = new FetchCall(service, queue);
    service->RequestFetchObject(&call->context_, &call->request_, &call->responder_, queue, queue,
                                call);
  }

 private:
  FetchCall(WorkerService* service, grpc::ServerCompletionQueue* queue)
      : Call(service, queue), responder_(&context_) {}

  void AcceptNext() override { Accept(service_, queue_); }

  void Begin() override {
    absl::StatusOr<ObjectId> id = ObjectId::FromBinary(request_.object_id());
    absl::StatusOr<ObjectStore::View> view = id.ok() ? service_->store_->Get(*id) : id.status();
    if (!view.ok()) {
      End(ToGrpcStatus(view.status()));
      return;
    }
    id_ = *id;
    view_ = std::move(*view);
    WriteNext();
  }

  void Continue(bool ok) override {
    if (!ok) {
      End(grpc::Status(grpc::StatusCode::CANCELLED, "the receiver went away"));
      return;
    }
    WriteNext();
  }

  void WriteNext() {
    chunk_.Clear();
    if (offset_ == 0) {
      chunk_.set_object_id(std::string(id_.Binary()));
      chunk_.set_total_size_bytes(view_.size());
    }
    const std::size_t n = std::min<std::size_t>(kObjectChunkBytes, view_.size() - offset_);
    chunk_.set_offset_bytes(offset_);
    chunk_.set_data(view_.data() + offset_, n);
    offset_ += n;
    service_->bytes_sent_ += n;
    if (offset_ < view_.size()) {
      responder_.Write(chunk_, this);
      return;
    }
    // The last chunk (an empty object is one empty chunk) ends the call.
    Ending();
    responder_.WriteAndFinish(chunk_, grpc::WriteOptions(), grpc::Status::OK, this);
  }

  void End(grpc::Status status) override {
    Ending();
    responder_.Finish(status, this);
  }

  v1::FetchObjectRequest request_;
  grpc::ServerAsyncWriter<v1::ObjectChunk> responder_;
  ObjectId id_;
  ObjectStore::View view_;
  std::size_t offset_ = 0;
  v1::ObjectChunk chunk_;
};

// PutObject: receives the object straight into the store (allocated on the
// first chunk, written in place) and seals it when the client is done. An
// upload that ends early aborts the object (an unsealed writer does).
class WorkerService::PutCall final : public Call {
 public:
  static void Accept(WorkerService* service, grpc::ServerCompletionQueue* queue) {
    auto* call = new PutCall(service, queue);
    service->RequestPutObject(&call->context_, &call->responder_, queue, queue, call);
  }

 private:
  PutCall(WorkerService* service, grpc::ServerCompletionQueue* queue)
      : Call(service, queue), responder_(&context_) {}

  void AcceptNext() override { Accept(service_, queue_); }
  void Begin() override { responder_.Read(&chunk_, this); }

  void Continue(bool ok) override {
    if (ok) {
      Take();
    } else {
      Complete();  // the client is done
    }
  }

  void Take() {
    if (!started_) {
      absl::StatusOr<ObjectId> id = ObjectId::FromBinary(chunk_.object_id());
      if (!id.ok()) {
        End(ToGrpcStatus(id.status()));
        return;
      }
      total_ = chunk_.total_size_bytes();
      absl::StatusOr<ObjectStore::Writer> writer =
          service_->store_->Create(*id, total_, ObjectStore::Copy::kPrimary);
      if (writer.ok()) {
        writer_ = std::move(*writer);
      } else if (!absl::IsAlreadyExists(writer.status())) {
        // Objects are immutable: a second upload of an id is read and dropped.
        End(ToGrpcStatus(writer.status()));
        return;
      }
      started_ = true;
    }
    if (chunk_.offset_bytes() != received_ || chunk_.data().size() > total_ - received_) {
      End(grpc::Status(
          grpc::StatusCode::DATA_LOSS,
          absl::StrCat("chunk of ", chunk_.data().size(), " bytes at offset ",
                       chunk_.offset_bytes(), " after ", received_, " of ", total_, " bytes")));
      return;
    }
    if (writer_.data() != nullptr && !chunk_.data().empty()) {
      std::memcpy(writer_.data() + received_, chunk_.data().data(), chunk_.data().size());
    }
    received_ += chunk_.data().size();
    responder_.Read(&chunk_, this);
  }

  void Complete() {
    if (!started_ || received_ != total_) {
      End(grpc::Status(grpc::StatusCode::DATA_LOSS,
                       absl::StrCat("upload ended after ", received_, " of ", total_, " bytes")));
      return;
    }
    writer_.Seal();  // a no-op when the object was already stored
    reply_.set_size_bytes(received_);
    Ending();
    responder_.Finish(reply_, grpc::Status::OK, this);
  }

  void End(grpc::Status status) override {
    Ending();
    responder_.FinishWithError(status, this);
  }

  grpc::ServerAsyncReader<v1::PutObjectReply, v1::ObjectChunk> responder_;
  v1::ObjectChunk chunk_;
  v1::PutObjectReply reply_;
  bool started_ = false;
  ObjectStore::Writer writer_;  // empty when the object was already stored
  uint64_t received_ = 0;
  uint64_t total_ = 0;
};

void WorkerService::Serve(grpc::ServerCompletionQueue* queue) {
  FetchCall::Accept(this, queue);
  PutCall::Accept(this, queue);
}

}  // namespace fleet::worker
