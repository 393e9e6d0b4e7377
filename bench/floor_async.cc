#include "bench/floor_async.h"

#include <unistd.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "bench/floor_io.h"
#include "fleet/bench/v1/echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace fleet::bench {
namespace {

using v1::EchoMessage;

// What each completion on the queue is for.
enum class Event : intptr_t {
  kAccepted = 1,
  kUpstreamRead,
  kUpstreamWritten,
  kUpstreamFinished,
  kDownstreamStarted,
  kDownstreamWritten,
  kDownstreamRead,
};

void* TagOf(Event event) { return reinterpret_cast<void*>(static_cast<intptr_t>(event)); }
Event EventOf(void* tag) { return static_cast<Event>(reinterpret_cast<intptr_t>(tag)); }

// The upstream call being served; a new one for each call accepted.
struct Upstream {
  grpc::ServerContext context;
  grpc::ServerAsyncReaderWriter<EchoMessage, EchoMessage> stream{&context};
};

// The relay's call to the next process, open for the process's lifetime.
struct Downstream {
  std::unique_ptr<v1::Echo::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<EchoMessage, EchoMessage>> stream;
  int completions_left = 0;  // of the write and the read of one message
  bool failed = false;
};

// A callback service that is never called.
class IdleCallbackService final : public v1::Echo::CallbackService {};

// `downstream` empty: answer with `answer`; otherwise relay to it.
[[noreturn]] void Serve(int port_fd, Answer answer, const std::string& downstream_address,
                        AsyncOptions options) {
  v1::Echo::AsyncService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.AddListeningPort(UnixTargetOf(::getpid()), grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  IdleCallbackService idle;
  // Registered for another host name, so that it never takes these calls.
  if (options.with_idle_callback_service) builder.RegisterService("idle.invalid", &idle);
  std::unique_ptr<grpc::ServerCompletionQueue> queue = builder.AddCompletionQueue();
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) ::_exit(1);

  std::unique_ptr<Upstream> up;
  auto accept = [&] {
    up = std::make_unique<Upstream>();
    service.RequestStream(&up->context, &up->stream, queue.get(), queue.get(),
                          TagOf(Event::kAccepted));
  };
  std::optional<Downstream> down;
  if (downstream_address.empty()) {
    accept();
  } else {
    down.emplace();
    down->stub = v1::Echo::NewStub(
        grpc::CreateChannel(downstream_address, grpc::InsecureChannelCredentials()));
    down->stream = down->stub->PrepareAsyncStream(&down->context, queue.get());
    down->stream->StartCall(TagOf(Event::kDownstreamStarted));  // accepts once started
  }
  // The port goes out only now, so that the first call finds everything set.
  WriteFull(port_fd, &port, sizeof(port));
  ::close(port_fd);

  EchoMessage message;
  EchoMessage reply;
  void* tag = nullptr;
  bool ok = false;
  while (queue->Next(&tag, &ok)) {
    switch (EventOf(tag)) {
      case Event::kDownstreamStarted:
        if (!ok) ::_exit(1);
        accept();
        break;
      case Event::kAccepted:
        if (!ok) ::_exit(0);  // shutting down
        up->stream.Read(&message, TagOf(Event::kUpstreamRead));
        break;
      case Event::kUpstreamRead:
        if (!ok) {
          up->stream.Finish(grpc::Status::OK, TagOf(Event::kUpstreamFinished));
        } else if (down) {
          down->completions_left = 2;
          down->failed = false;
          down->stream->Write(message, TagOf(Event::kDownstreamWritten));
          down->stream->Read(&reply, TagOf(Event::kDownstreamRead));
        } else if (answer(message)) {
          up->stream.Write(message, TagOf(Event::kUpstreamWritten));
        } else {
          up->stream.Finish(grpc::Status::OK, TagOf(Event::kUpstreamFinished));
        }
        break;
      case Event::kDownstreamWritten:
      case Event::kDownstreamRead:
        if (!ok) down->failed = true;
        if (--down->completions_left > 0) break;
        if (down->failed) ::_exit(1);  // the end is gone: nothing left to measure
        up->stream.Write(reply, TagOf(Event::kUpstreamWritten));
        break;
      case Event::kUpstreamWritten:
        if (ok) {
          up->stream.Read(&message, TagOf(Event::kUpstreamRead));
        } else {
          up->stream.Finish(grpc::Status::OK, TagOf(Event::kUpstreamFinished));
        }
        break;
      case Event::kUpstreamFinished:
        accept();  // the next call
        break;
    }
  }
  ::_exit(0);
}

}  // namespace

void ServeAsyncAnswering(int port_fd, Answer answer, AsyncOptions options) {
  Serve(port_fd, std::move(answer), "", options);
}

void ServeAsyncRelay(int port_fd, const std::string& downstream, AsyncOptions options) {
  Serve(port_fd, Answer(), downstream, options);
}

}  // namespace fleet::bench
