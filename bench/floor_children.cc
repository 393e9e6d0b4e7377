#include "bench/floor_children.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "bench/floor_async.h"
#include "bench/floor_io.h"
#include "fleet/bench/v1/echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace fleet::bench {
namespace {

using v1::EchoMessage;

// Answers each message of a Stream call with `answer(message)` (false ends
// the call), run inline in the read reaction: the cheapest form a relay or
// an end of the chain can take on the callback API. One read or one write in
// flight; deleted in OnDone.
class AnsweringReactor final : public grpc::ServerBidiReactor<EchoMessage, EchoMessage> {
 public:
  explicit AnsweringReactor(Answer* answer) : answer_(answer) { StartRead(&message_); }
  void OnReadDone(bool ok) override {
    if (!ok || !(*answer_)(message_)) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&message_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    StartRead(&message_);
  }
  void OnDone() override { delete this; }

 private:
  Answer* const answer_;
  EchoMessage message_;
};

// Ping echoes; Stream answers with `answer` (the echo itself by default).
class EchoService final : public v1::Echo::CallbackService {
 public:
  explicit EchoService(Answer answer) : answer_(std::move(answer)) {}

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const EchoMessage* request, EchoMessage* reply) override {
    *reply = *request;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<EchoMessage, EchoMessage>* Stream(
      grpc::CallbackServerContext*) override {
    return new AnsweringReactor(&answer_);
  }

 private:
  Answer answer_;
};

// The relay's stream reaction without blocking, as fleet's scheduler relays:
// each message read upstream is written on a downstream stream of its own (a
// callback client reactor), and the answer read there is written back
// upstream once both the downstream write and read have completed (gRPC
// allows one write in flight, and the two completions may come in either
// order).
class RelayReactor final : public grpc::ServerBidiReactor<EchoMessage, EchoMessage> {
 public:
  explicit RelayReactor(v1::Echo::Stub* stub) : down_(this) {
    stub->async()->Stream(&down_context_, &down_);
    down_.StartCall();
    StartRead(&message_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      down_context_.TryCancel();
      Finish(grpc::Status::OK);
      return;
    }
    down_.Forward(&message_, &reply_);
  }
  void OnWriteDone(bool ok) override {
    if (ok) {
      StartRead(&message_);
    } else {
      down_context_.TryCancel();
      Finish(grpc::Status::OK);
    }
  }
  void OnDone() override { MaybeDelete(); }

 private:
  class Down final : public grpc::ClientBidiReactor<EchoMessage, EchoMessage> {
   public:
    explicit Down(RelayReactor* up) : up_(up) {}
    void Forward(const EchoMessage* message, EchoMessage* reply) {
      completions_left_.store(2);
      failed_.store(false);
      StartWrite(message);
      StartRead(reply);
    }
    void OnWriteDone(bool ok) override { Complete(ok); }
    void OnReadDone(bool ok) override { Complete(ok); }
    void OnDone(const grpc::Status&) override { up_->MaybeDelete(); }

   private:
    void Complete(bool ok) {
      if (!ok) failed_.store(true);
      if (completions_left_.fetch_sub(1) != 1) return;
      if (failed_.load()) {
        up_->Finish(grpc::Status::OK);
      } else {
        up_->StartWrite(&up_->reply_);
      }
    }

    RelayReactor* const up_;
    std::atomic<int> completions_left_{0};
    std::atomic<bool> failed_{false};
  };
  // Both halves (the upstream call and the downstream one) are done once
  // each has called this.
  void MaybeDelete() {
    if (halves_left_.fetch_sub(1) == 1) delete this;
  }

  std::atomic<int> halves_left_{2};
  grpc::ClientContext down_context_;
  Down down_;
  EchoMessage message_;
  EchoMessage reply_;
};

class RelayService final : public v1::Echo::CallbackService {
 public:
  explicit RelayService(const std::string& address)
      : stub_(v1::Echo::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}
  grpc::ServerBidiReactor<EchoMessage, EchoMessage>* Stream(
      grpc::CallbackServerContext*) override {
    return new RelayReactor(stub_.get());
  }

 private:
  std::unique_ptr<v1::Echo::Stub> stub_;
};

// Forks a child that runs `serve(port_fd)`, which must write the port it
// listens on (127.0.0.1) to port_fd and never return; returns its pid, its
// address in `address`. `serve` runs in the child, before gRPC starts there.
pid_t StartChild(absl::AnyInvocable<void(int port_fd)> serve, std::string* address) {
  int fds[2];
  if (::pipe(fds) != 0) Die("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::close(fds[0]);
    serve(fds[1]);
    ::_exit(1);
  }
  ::close(fds[1]);
  int port = 0;
  if (!ReadFull(fds[0], &port, sizeof(port))) Die("a gRPC child did not start");
  ::close(fds[0]);
  *address = "127.0.0.1:" + std::to_string(port);
  return pid;
}

// A child serving make_service()'s service on the callback API.
pid_t StartServer(absl::AnyInvocable<std::unique_ptr<grpc::Service>()> make_service,
                  std::string* address) {
  return StartChild(
      [make_service = std::move(make_service)](int port_fd) mutable {
        std::unique_ptr<grpc::Service> service = make_service();
        int port = 0;
        grpc::ServerBuilder builder;
        builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
        builder.AddListeningPort(UnixTargetOf(::getpid()), grpc::InsecureServerCredentials());
        builder.RegisterService(service.get());
        std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
        if (server == nullptr || port == 0) ::_exit(1);
        WriteFull(port_fd, &port, sizeof(port));
        ::close(port_fd);
        server->Wait();
        ::_exit(0);
      },
      address);
}

// StartServer for EchoService(make_answer()).
pid_t StartEchoServer(absl::AnyInvocable<Answer()> make_answer, std::string* address) {
  return StartServer(
      [make_answer = std::move(make_answer)]() mutable -> std::unique_ptr<grpc::Service> {
        return std::make_unique<EchoService>(make_answer());
      },
      address);
}

// The end's answer: each message goes through a socketpair child (a
// grandchild, which exits with the socket) and back, as a worker's task goes
// to its executor. Made in the end's process.
Answer ThroughSocketPair() {
  int fd = -1;
  StartSocketPairChild(&fd);
  return Answer([fd](EchoMessage& message) {
    const std::string& payload = message.payload();
    std::string reply(payload.size(), '\0');
    if (!WriteFull(fd, payload.data(), payload.size()) ||
        !ReadFull(fd, reply.data(), reply.size())) {
      return false;
    }
    message.set_payload(std::move(reply));
    return true;
  });
}

}  // namespace

pid_t StartSocketPairChild(int* fd) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) Die("socketpair");
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::close(fds[0]);
    char buffer[64];
    for (;;) {
      const ssize_t r = ::read(fds[1], buffer, sizeof(buffer));
      if (r <= 0 || !WriteFull(fds[1], buffer, static_cast<std::size_t>(r))) ::_exit(0);
    }
  }
  ::close(fds[1]);
  *fd = fds[0];
  return pid;
}

pid_t StartGrpcChild(std::string* address) {
  return StartEchoServer([] { return Answer([](EchoMessage&) { return true; }); }, address);
}

std::vector<pid_t> StartChainChildren(RelayKind relay_kind, std::string* address) {
  // The relay: each message goes to the end over one long-lived stream and
  // its answer comes back, as the scheduler forwards a task to a worker and
  // its result to the client.
  std::string end_address;
  if (relay_kind == RelayKind::kAsync || relay_kind == RelayKind::kAsyncBesideCallback ||
      relay_kind == RelayKind::kAsyncOverUnixSockets) {
    const AsyncOptions options{.with_idle_callback_service =
                                   relay_kind == RelayKind::kAsyncBesideCallback};
    const pid_t end = StartChild(
        [options](int port_fd) { ServeAsyncAnswering(port_fd, ThroughSocketPair(), options); },
        &end_address);
    if (relay_kind == RelayKind::kAsyncOverUnixSockets) end_address = UnixTargetOf(end);
    const pid_t relay = StartChild(
        [end_address, options](int port_fd) { ServeAsyncRelay(port_fd, end_address, options); },
        address);
    if (relay_kind == RelayKind::kAsyncOverUnixSockets) *address = UnixTargetOf(relay);
    return {end, relay};
  }
  const pid_t end = StartEchoServer(ThroughSocketPair, &end_address);
  if (relay_kind == RelayKind::kCallbackClient) {
    const pid_t relay = StartServer(
        [end_address]() -> std::unique_ptr<grpc::Service> {
          return std::make_unique<RelayService>(end_address);
        },
        address);
    return {end, relay};
  }
  const pid_t relay = StartEchoServer(
      [end_address] {
        struct Downstream {
          std::shared_ptr<v1::Echo::Stub> stub;
          grpc::ClientContext context;
          std::unique_ptr<grpc::ClientReaderWriter<EchoMessage, EchoMessage>> stream;
        };
        auto down = std::make_shared<Downstream>();
        down->stub = v1::Echo::NewStub(
            grpc::CreateChannel(end_address, grpc::InsecureChannelCredentials()));
        down->stream = down->stub->Stream(&down->context);
        return Answer([down](EchoMessage& message) {
          return down->stream->Write(message) && down->stream->Read(&message);
        });
      },
      address);
  return {end, relay};
}

Children::~Children() {
  for (pid_t pid : pids_) ::kill(pid, SIGKILL);
  for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
}

}  // namespace fleet::bench
