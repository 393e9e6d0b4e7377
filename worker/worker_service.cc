#include "worker/worker_service.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/object_transfer.h"

namespace fleet::worker {
namespace {

// Streams one object in chunks, one write in flight, from a pinned view:
// the store neither moves nor frees the bytes until the stream ends.
class ObjectSender final : public grpc::ServerWriteReactor<v1::ObjectChunk> {
 public:
  ObjectSender(const ObjectId& id, ObjectStore::View view, std::atomic<uint64_t>* bytes_sent)
      : id_(id), view_(std::move(view)), bytes_sent_(bytes_sent) {
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the receiver went away"));
      return;
    }
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (offset_ >= view_.size() && offset_ > 0) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.Clear();
    if (offset_ == 0) {
      chunk_.set_object_id(std::string(id_.Binary()));
      chunk_.set_total_size_bytes(view_.size());
    }
    const std::size_t n = std::min<std::size_t>(kObjectChunkBytes, view_.size() - offset_);
    chunk_.set_offset_bytes(offset_);
    chunk_.set_data(view_.data() + offset_, n);
    // An empty object is one empty chunk; mark it sent.
    offset_ += std::max<std::size_t>(n, 1);
    *bytes_sent_ += n;
    StartWrite(&chunk_);
  }

  const ObjectId id_;
  const ObjectStore::View view_;
  std::atomic<uint64_t>* const bytes_sent_;
  std::size_t offset_ = 0;
  v1::ObjectChunk chunk_;
};

// Receives one object straight into the store (allocated on the first
// chunk, written in place) and seals it when the client is done. An
// upload that ends early aborts the object.
class ObjectReceiver final : public grpc::ServerReadReactor<v1::ObjectChunk> {
 public:
  ObjectReceiver(ObjectStore* store, v1::PutObjectReply* reply) : store_(store), reply_(reply) {
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Complete();
      return;
    }
    if (!started_) {
      auto id = ObjectId::FromBinary(chunk_.object_id());
      if (!id.ok()) {
        Finish(ToGrpcStatus(id.status()));
        return;
      }
      id_ = *id;
      total_ = chunk_.total_size_bytes();
      absl::StatusOr<ObjectStore::Writer> writer =
          store_->Create(id_, total_, ObjectStore::Copy::kPrimary);
      if (writer.ok()) {
        writer_ = std::move(*writer);
      } else if (!absl::IsAlreadyExists(writer.status())) {
        // Objects are immutable: a second upload of an id is read and dropped.
        Finish(ToGrpcStatus(writer.status()));
        return;
      }
      started_ = true;
    }
    if (chunk_.offset_bytes() != received_ || chunk_.data().size() > total_ - received_) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("chunk of ", chunk_.data().size(), " bytes at offset ",
                                       chunk_.offset_bytes(), " after ", received_, " of ",
                                       total_, " bytes")));
      return;
    }
    if (writer_.data() != nullptr && !chunk_.data().empty()) {
      std::memcpy(writer_.data() + received_, chunk_.data().data(), chunk_.data().size());
    }
    received_ += chunk_.data().size();
    StartRead(&chunk_);
  }
  void OnDone() override { delete this; }  // an unsealed writer aborts

 private:
  void Complete() {
    if (!started_ || received_ != total_) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("upload ended after ", received_, " of ", total_,
                                       " bytes")));
      return;
    }
    writer_.Seal();  // a no-op when the object was already stored
    reply_->set_size_bytes(received_);
    Finish(grpc::Status::OK);
  }

  ObjectStore* const store_;
  v1::PutObjectReply* const reply_;
  v1::ObjectChunk chunk_;
  bool started_ = false;
  ObjectId id_;
  ObjectStore::Writer writer_;  // empty when the object was already stored
  uint64_t received_ = 0;
  uint64_t total_ = 0;
};

}  // namespace

grpc::ServerWriteReactor<v1::ObjectChunk>* WorkerService::FetchObject(
    grpc::CallbackServerContext* context, const v1::FetchObjectRequest* request) {
  if (grpc::Status allowed = token_.Check(*context); !allowed.ok()) {
    return new RefusedWriteCall<v1::ObjectChunk>(std::move(allowed));
  }
  auto id = ObjectId::FromBinary(request->object_id());
  absl::StatusOr<ObjectStore::View> view = id.ok() ? store_->Get(*id) : id.status();
  if (!view.ok()) return new RefusedWriteCall<v1::ObjectChunk>(ToGrpcStatus(view.status()));
  return new ObjectSender(*id, std::move(*view), &bytes_sent_);
}

grpc::ServerReadReactor<v1::ObjectChunk>* WorkerService::PutObject(
    grpc::CallbackServerContext* context, v1::PutObjectReply* reply) {
  if (grpc::Status allowed = token_.Check(*context); !allowed.ok()) {
    return new RefusedReadCall<v1::ObjectChunk>(std::move(allowed));
  }
  return new ObjectReceiver(store_, reply);
}

}  // namespace fleet::worker
