#include "common/object_transfer.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
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

// The stub for a call to `address`, or to `relay` naming `address`.
std::unique_ptr<v1::Worker::Stub> StubFor(const std::string& address, const std::string& relay,
                                          grpc::ClientContext& context) {
  if (relay.empty()) return v1::Worker::NewStub(ChannelTo(address));
  context.AddMetadata(kRelayTargetMetadata, address);
  return v1::Worker::NewStub(ChannelTo(relay));
}

std::string Through(const std::string& relay) {
  return relay.empty() ? "" : absl::StrCat(" through the scheduler at ", relay);
}

}  // namespace

absl::StatusOr<uint64_t> FetchObjectInto(
    const std::string& address, const ObjectId& id,
    absl::FunctionRef<absl::StatusOr<char*>(uint64_t total_size_bytes)> allocate,
    absl::Duration timeout, const std::string& relay) {
  grpc::ClientContext context;
  auto stub = StubFor(address, relay, context);
  context.set_deadline(DeadlineAfter(timeout));
  v1::FetchObjectRequest request;
  request.set_object_id(std::string(id.Binary()));
  auto reader = stub->FetchObject(&context, request);
  const std::string what =
      absl::StrCat("fetching object ", id.Short(), " from worker at ", address, Through(relay));
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

absl::StatusOr<std::shared_ptr<const std::string>> FetchObjectFrom(const std::string& address,
                                                                    const ObjectId& id,
                                                                    absl::Duration timeout,
                                                                    const std::string& relay) {
  auto bytes = std::make_shared<std::string>();
  absl::StatusOr<uint64_t> size = FetchObjectInto(
      address, id,
      [&](uint64_t total) -> absl::StatusOr<char*> {
        bytes->resize(total);
        return bytes->data();
      },
      timeout, relay);
  if (!size.ok()) return size.status();
  return std::shared_ptr<const std::string>(std::move(bytes));
}

absl::Status UploadObjectTo(const std::string& address, const ObjectId& id,
                            absl::string_view bytes, absl::Duration timeout,
                            const std::string& relay) {
  grpc::ClientContext context;
  auto stub = StubFor(address, relay, context);
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
                                         address, Through(relay)));
  }
  return absl::OkStatus();
}

}  // namespace fleet
