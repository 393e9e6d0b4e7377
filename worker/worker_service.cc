#include "worker/worker_service.h"

#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/object_transfer.h"

namespace fleet::worker {
namespace {

// Streams one object in chunks, one write in flight; the shared bytes stay
// alive until the stream ends even if the store frees the object meanwhile.
class ObjectSender final : public grpc::ServerWriteReactor<v1::ObjectChunk> {
 public:
  ObjectSender(const ObjectId& id, ObjectBytes bytes) : id_(id), bytes_(std::move(bytes)) {
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
    if (offset_ >= bytes_->size() && offset_ > 0) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.Clear();
    if (offset_ == 0) {
      chunk_.set_object_id(std::string(id_.Binary()));
      chunk_.set_total_size_bytes(bytes_->size());
    }
    const std::size_t n = std::min(kObjectChunkBytes, bytes_->size() - offset_);
    chunk_.set_offset_bytes(offset_);
    chunk_.set_data(bytes_->data() + offset_, n);
    // An empty object is one empty chunk; mark it sent.
    offset_ += std::max<std::size_t>(n, 1);
    StartWrite(&chunk_);
  }

  const ObjectId id_;
  const ObjectBytes bytes_;
  std::size_t offset_ = 0;
  v1::ObjectChunk chunk_;
};

// Receives one object and seals it in the store when the client is done.
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
      bytes_ = std::make_shared<std::string>();
      bytes_->reserve(chunk_.total_size_bytes());
      total_ = chunk_.total_size_bytes();
      started_ = true;
    }
    if (chunk_.offset_bytes() != bytes_->size()) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("chunk at offset ", chunk_.offset_bytes(), " after ",
                                       bytes_->size(), " bytes")));
      return;
    }
    bytes_->append(chunk_.data());
    StartRead(&chunk_);
  }
  void OnDone() override { delete this; }

 private:
  void Complete() {
    if (!started_ || bytes_->size() != total_) {
      Finish(grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("upload ended after ", started_ ? bytes_->size() : 0,
                                       " of ", total_, " bytes")));
      return;
    }
    reply_->set_size_bytes(bytes_->size());
    store_->Put(id_, std::move(bytes_));
    Finish(grpc::Status::OK);
  }

  ObjectStore* const store_;
  v1::PutObjectReply* const reply_;
  v1::ObjectChunk chunk_;
  bool started_ = false;
  ObjectId id_;
  std::shared_ptr<std::string> bytes_;
  uint64_t total_ = 0;
};

}  // namespace

grpc::ServerWriteReactor<v1::ObjectChunk>* WorkerService::FetchObject(
    grpc::CallbackServerContext* context, const v1::FetchObjectRequest* request) {
  auto id = ObjectId::FromBinary(request->object_id());
  absl::StatusOr<ObjectBytes> bytes = id.ok() ? store_->Get(*id) : id.status();
  if (!bytes.ok()) {
    class Failed final : public grpc::ServerWriteReactor<v1::ObjectChunk> {
     public:
      explicit Failed(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
      void OnDone() override { delete this; }
    };
    return new Failed(bytes.status());
  }
  return new ObjectSender(*id, std::move(*bytes));
}

grpc::ServerReadReactor<v1::ObjectChunk>* WorkerService::PutObject(
    grpc::CallbackServerContext* context, v1::PutObjectReply* reply) {
  return new ObjectReceiver(store_, reply);
}

}  // namespace fleet::worker
