#include "common/object_transfer.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/local_store_link.h"
#include "common/net.h"
#include "fleet/v1/worker.grpc.pb.h"
#include "grpcpp/client_context.h"

namespace fleet {
namespace {

std::chrono::system_clock::time_point DeadlineAfter(absl::Duration timeout) {
  return absl::ToChronoTime(absl::Now() + timeout);
}

absl::Status Annotate(const absl::Status& status, absl::string_view what) {
  return absl::Status(status.code(), absl::StrCat(what, ": ", status.message()));
}

absl::StatusOr<uint64_t> FetchOverGrpc(
    const std::string& address, const ObjectId& id,
    absl::FunctionRef<absl::StatusOr<char*>(uint64_t total_size_bytes)> allocate,
    absl::Duration timeout) {
  auto stub = v1::Worker::NewStub(ChannelTo(address));
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(timeout));
  v1::FetchObjectRequest request;
  request.set_object_id(std::string(id.Binary()));
  auto reader = stub->FetchObject(&context, request);
  const std::string what = absl::StrCat("fetching object ", id.Short(), " from worker at ", address);
  char* out = nullptr;
  bool allocated = false;
  uint64_t total = 0;
  uint64_t received = 0;
  absl::Status failed;
  v1::ObjectChunk chunk;
  while (failed.ok() && reader->Read(&chunk)) {
    if (!allocated) {
      allocated = true;
      total = chunk.total_size_bytes();
      absl::StatusOr<char*> buffer = allocate(total);
      if (!buffer.ok()) {
        failed = buffer.status();
        break;
      }
      out = *buffer;
    }
    if (chunk.offset_bytes() != received || received + chunk.data().size() > total) {
      failed = absl::DataLossError(absl::StrCat(what, ": chunk of ", chunk.data().size(),
                                                " bytes at offset ", chunk.offset_bytes(),
                                                " after ", received, " of ", total, " bytes"));
      break;
    }
    if (!chunk.data().empty()) std::memcpy(out + received, chunk.data().data(), chunk.data().size());
    received += chunk.data().size();
  }
  if (!failed.ok()) {
    context.TryCancel();
    reader->Finish().IgnoreError();
    return Annotate(failed, what);
  }
  absl::Status status = ToAbslStatus(reader->Finish());
  if (!status.ok()) return Annotate(status, what);
  if (!allocated || received != total) {
    return absl::DataLossError(
        absl::StrCat(what, ": the stream ended after ", received, " of ", total, " bytes"));
  }
  return total;
}

}  // namespace

absl::StatusOr<uint64_t> FetchObjectInto(
    const std::string& address, const ObjectId& id,
    absl::FunctionRef<absl::StatusOr<char*>(uint64_t total_size_bytes)> allocate,
    absl::Duration timeout) {
  if (std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address)) {
    absl::StatusOr<LocalStoreLink::PinnedBytes> pinned = link->Read(id);
    if (pinned.ok()) {
      absl::StatusOr<char*> out = allocate(pinned->size);
      if (!out.ok()) {
        return Annotate(out.status(), absl::StrCat("fetching object ", id.Short(),
                                                   " from the worker at ", address));
      }
      if (pinned->size > 0) std::memcpy(*out, pinned->data, pinned->size);
      return pinned->size;
    }
    if (absl::IsNotFound(pinned.status())) return pinned.status();
    // Spilled beyond what its store can take back, or the link broke: the
    // gRPC stream reads spill files and reconnects.
  }
  return FetchOverGrpc(address, id, allocate, timeout);
}

absl::StatusOr<std::shared_ptr<const std::string>> FetchObjectFrom(const std::string& address,
                                                                    const ObjectId& id,
                                                                    absl::Duration timeout) {
  auto bytes = std::make_shared<std::string>();
  absl::StatusOr<uint64_t> size = FetchObjectInto(
      address, id,
      [&](uint64_t total) -> absl::StatusOr<char*> {
        bytes->resize(total);
        return bytes->data();
      },
      timeout);
  if (!size.ok()) return size.status();
  return std::shared_ptr<const std::string>(std::move(bytes));
}

absl::Status UploadObjectTo(const std::string& address, const ObjectId& id,
                            absl::string_view bytes, absl::Duration timeout) {
  if (std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address)) {
    absl::Status stored = link->Write(id, bytes.size(), [&](char* out) {
      if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
    });
    // Too large for the arena, or the link broke: gRPC writes a spill file
    // or reconnects. Anything else is the answer.
    // Objects are immutable: a second upload of an id keeps the first.
    if (absl::IsAlreadyExists(stored)) return absl::OkStatus();
    if (!absl::IsResourceExhausted(stored) && !absl::IsUnavailable(stored)) return stored;
  }
  auto stub = v1::Worker::NewStub(ChannelTo(address));
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(timeout));
  v1::PutObjectReply reply;
  auto writer = stub->PutObject(&context, &reply);
  std::size_t offset = 0;
  do {
    v1::ObjectChunk chunk;
    if (offset == 0) {
      chunk.set_object_id(std::string(id.Binary()));
      chunk.set_total_size_bytes(bytes.size());
    }
    const std::size_t n = std::min(kObjectChunkBytes, bytes.size() - offset);
    chunk.set_offset_bytes(offset);
    chunk.set_data(bytes.data() + offset, n);
    offset += n;
    if (!writer->Write(chunk)) break;  // Finish() says why
  } while (offset < bytes.size());
  writer->WritesDone();
  absl::Status status = ToAbslStatus(writer->Finish());
  if (!status.ok()) {
    return Annotate(status, absl::StrCat("uploading object ", id.Short(), " to worker at ",
                                         address));
  }
  return absl::OkStatus();
}

}  // namespace fleet
