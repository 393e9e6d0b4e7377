// One server-side bidirectional stream (a worker's Connect or a client's
// Session) as a gRPC callback reactor: one read and at most one write in
// flight; messages to send are batched while a write is in flight.
//
// Lifetime: shared. gRPC holds the reactor until OnDone; the scheduler's
// routing table holds it until it hears that the stream closed. Send after
// the stream finished is a no-op.
#ifndef FLEET_SCHEDULER_SERVER_STREAM_H_
#define FLEET_SCHEDULER_SERVER_STREAM_H_

#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "common/batch_queue.h"
#include "grpcpp/support/server_callback.h"

namespace fleet::scheduler {

template <typename In, typename Out>
class ServerStream final : public grpc::ServerBidiReactor<In, Out>,
                           public std::enable_shared_from_this<ServerStream<In, Out>> {
 public:
  // `on_message` runs on a gRPC thread for each message read, in order;
  // `on_closed` once, when the peer is gone or the call was cancelled.
  using OnMessage = absl::AnyInvocable<void(In)>;
  using Outgoing = Out;
  using OnClosed = absl::AnyInvocable<void()>;

  static std::shared_ptr<ServerStream> Start(OnMessage on_message, OnClosed on_closed) {
    auto stream = std::shared_ptr<ServerStream>(
        new ServerStream(std::move(on_message), std::move(on_closed)));
    stream->self_ = stream;
    stream->StartRead(&stream->incoming_);
    return stream;
  }

  // Adds to the outgoing batch; `add(Out&)` fills in the item. Thread-safe.
  template <typename AddFn>
  void Send(std::size_t item_bytes, AddFn&& add) {
    if (outbox_.Add(item_bytes, std::forward<AddFn>(add))) StartNextWrite();
  }

  // Sends `message` (several items, `bytes` in all) as Send would each.
  void SendWhole(std::size_t bytes, Out message) {
    if (outbox_.AddWhole(bytes, std::move(message))) StartNextWrite();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      outbox_.Close();
      {
        absl::MutexLock lock(&mu_);
        read_done_ = true;
      }
      on_closed_();
      MaybeFinish();
      return;
    }
    on_message_(std::move(incoming_));
    incoming_.Clear();
    this->StartRead(&incoming_);
  }

  // Ends the stream now with `status` (what is queued is dropped): the peer
  // sees the call fail with it. Thread-safe; a no-op once finished.
  void Abort(grpc::Status status) {
    outbox_.Close();
    {
      absl::MutexLock lock(&mu_);
      if (aborted_) return;
      aborted_ = true;
      abort_status_ = std::move(status);
    }
    MaybeFinish();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
    }
    if (!ok) {
      // The peer is gone; the read side will notice and close.
      outbox_.Close();
      MaybeFinish();
      return;
    }
    StartNextWrite();
    MaybeFinish();
  }

  void OnDone() override { self_.reset(); }

 private:
  ServerStream(OnMessage on_message, OnClosed on_closed)
      : on_message_(std::move(on_message)), on_closed_(std::move(on_closed)) {}

  // Called by whoever owns the right to write: the Send that found the
  // queue idle, or OnWriteDone.
  void StartNextWrite() {
    std::optional<Out> next = outbox_.TakeForWrite();
    if (!next) return;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      writing_ = true;
      current_ = std::move(*next);
    }
    this->StartWrite(&current_);
  }

  void MaybeFinish() {
    grpc::Status status = grpc::Status::OK;
    {
      absl::MutexLock lock(&mu_);
      if (!(read_done_ || aborted_) || writing_ || finished_) return;
      finished_ = true;
      if (aborted_) status = abort_status_;
    }
    this->Finish(status);
  }

  OnMessage on_message_;  // gRPC read callbacks only, one at a time
  OnClosed on_closed_;
  In incoming_;
  Out current_;  // the message being written; touched only by the writer
  BatchQueue<Out> outbox_;
  absl::Mutex mu_;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status abort_status_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<ServerStream> self_;  // gRPC's hold, dropped in OnDone
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SERVER_STREAM_H_
