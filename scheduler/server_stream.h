// One server-side bidirectional stream (a worker's Connect or a client's
// Session) on gRPC's async API: its completions arrive on the scheduler's
// completion queue, drained by the core thread. One read and at most one
// write in flight; messages to send are batched while a write is in flight.
//
// Lifetime: shared. The stream holds itself from Begin (or Refuse) until
// the call has finished and its read has ended; the scheduler's routing
// table holds it until it hears that the stream closed. Send after the
// stream finished is a no-op.
#ifndef FLEET_SCHEDULER_SERVER_STREAM_H_
#define FLEET_SCHEDULER_SERVER_STREAM_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "common/batch_queue.h"
#include "common/completion_tag.h"
#include "common/message_spares.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"

namespace fleet::scheduler {

// Holds back one stream's next read a round, until the core thread has
// sent what the round decided (SchedulerService::Drain). Posting a read
// makes gRPC 1.51 send the peer a window update for the message just read,
// in a write of its own: posted at once, it went out ahead of the round's
// sends, on a round trip's path (submit -> Get 597 -> 567 us, six
// alternating pairs of three runs). Only the round's first read is held,
// the one message of a quiet round: the others are posted at once, so that
// a busy stream's next message can come in the same round (holding every
// read lowered the no-op rate, as the placement pass then ran once per
// message; holding only a quiet stream's, or only a small message's, was
// ~40 us slower than this in ABBA pairs). The core thread only.
class ReadsAfterRound {
 public:
  void Add(absl::AnyInvocable<void() &&> post_read) {
    if (at_once_ || held_) {
      std::move(post_read)();
    } else {
      held_ = std::move(post_read);
    }
  }
  // Posts the read held, if any.
  void PostHeld() {
    if (!held_) return;
    absl::AnyInvocable<void() &&> post_read = std::move(held_);
    held_ = nullptr;
    std::move(post_read)();
  }
  // For the rounds of a stop, which are not followed by PostHeld: posts
  // what is held, and each read added from now on at once.
  void StopHolding() {
    at_once_ = true;
    PostHeld();
  }

 private:
  absl::AnyInvocable<void() &&> held_;
  bool at_once_ = false;
};

// Messages read before, cleared, for the next reads to parse into
// (MessageSpares), so that a worker's completions are parsed without
// allocating: parsing into a new message each time, and freeing it after,
// was a tenth of the scheduler's instructions under no-op tasks. None of
// over 1 MiB. The core thread only.
template <typename Message>
class SparePool {
 public:
  Message Take() { return spares_.Take(); }
  void Give(Message message) {
    const std::size_t bytes = message.ByteSizeLong();
    if (bytes > kMaxSpareBytes) return;
    message.Clear();
    spares_.Keep(std::move(message), bytes);
  }

 private:
  static constexpr std::size_t kMaxSpareBytes = 1 << 20;
  MessageSpares<Message> spares_;
};

template <typename In, typename Out>
class ServerStream final : public std::enable_shared_from_this<ServerStream<In, Out>> {
 public:
  using OnMessage = absl::AnyInvocable<void(In)>;
  using Outgoing = Out;
  using OnClosed = absl::AnyInvocable<void()>;
  using Responder = grpc::ServerAsyncReaderWriter<Out, In>;

  // A stream for the service's RequestConnect / RequestSession to fill in.
  static std::shared_ptr<ServerStream> Create() {
    return std::shared_ptr<ServerStream>(new ServerStream());
  }
  grpc::ServerContext* context() { return &context_; }
  grpc::ServerAsyncReaderWriter<Out, In>* rw() { return &rw_; }

  // Ends a call just accepted with `status`, reading nothing.
  void Refuse(grpc::Status status) {
    self_ = this->shared_from_this();
    {
      absl::MutexLock lock(&mu_);
      read_done_ = true;
      finished_ = true;
    }
    outbox_.Close();
    rw_.Finish(status, &finish_tag_);
  }

  // Starts reading a call just accepted: `on_message` runs on the core
  // thread for each message read, in order; `on_closed` once, when the
  // peer is gone or the call was cancelled. Each read after the first is
  // posted through `reads`, and parsed into a message from `spares`; both
  // must outlive the call.
  void Begin(OnMessage on_message, OnClosed on_closed, ReadsAfterRound* reads,
             SparePool<In>* spares) {
    on_message_ = std::move(on_message);
    on_closed_ = std::move(on_closed);
    reads_ = reads;
    spares_ = spares;
    self_ = this->shared_from_this();
    rw_.Read(&incoming_, &read_tag_);
  }

  // Adds to the outgoing batch; `add(Out&)` fills in the item. Thread-safe.
  template <typename AddFn>
  void Send(std::size_t item_bytes, AddFn&& add) {
    if (outbox_.Add(item_bytes, std::forward<AddFn>(add))) StartNextWrite();
  }
  // A message to assemble the next SendWhole in: one written before, when
  // there is one, whose items' room is filled again.
  Out TakeSpare() { return outbox_.TakeSpare(); }
  // Sends `message` (several items, `bytes` in all) as Send would each.
  void SendWhole(std::size_t bytes, Out message) {
    if (outbox_.AddWhole(bytes, std::move(message))) StartNextWrite();
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

 private:
  ServerStream() : rw_(&context_), read_tag_(this), write_tag_(this), finish_tag_(this) {}

  void OnReadDone(bool ok) {
    if (!ok) {
      outbox_.Close();
      {
        absl::MutexLock lock(&mu_);
        read_done_ = true;
      }
      on_closed_();
      MaybeFinish();
      MaybeRelease();
      return;
    }
    on_message_(std::move(incoming_));
    incoming_ = spares_->Take();
    // `self_` holds the stream until this read has come back.
    reads_->Add([this] { ReadNext(); });
  }

  void ReadNext() {
    bool finished = false;
    {
      absl::MutexLock lock(&mu_);
      finished = finished_;
    }
    // Ended meanwhile (aborted by the round): the read would fail at once.
    if (finished) {
      OnReadDone(false);
      return;
    }
    rw_.Read(&incoming_, &read_tag_);
  }

  void OnWriteDone(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
    }
    if (!ok) {
      outbox_.Close();
      MaybeFinish();
      return;
    }
    // Its elements hold a later batch (BatchQueue::Recycle): destroyed
    // here, a written batch freed every assignment or result in it, and the
    // next one allocated them all again. Serializing it cached its size.
    const auto written_bytes = static_cast<std::size_t>(current_.GetCachedSize());
    outbox_.Recycle(std::move(current_), written_bytes);
    StartNextWrite();
    MaybeFinish();
  }

  void OnFinished(bool) {
    {
      absl::MutexLock lock(&mu_);
      finish_done_ = true;
    }
    MaybeRelease();
  }

  // Drops the stream's hold on itself once nothing of the call is left in
  // flight.
  void MaybeRelease() {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_done_ || !read_done_) return;
    }
    self_.reset();
  }

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
    rw_.Write(current_, &write_tag_);
  }

  void MaybeFinish() {
    grpc::Status status = grpc::Status::OK;
    {
      absl::MutexLock lock(&mu_);
      if (!(read_done_ || aborted_) || writing_ || finished_) return;
      finished_ = true;
      if (aborted_) status = abort_status_;
    }
    rw_.Finish(status, &finish_tag_);
  }

  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<Out, In> rw_;
  MemberTag<ServerStream, &ServerStream::OnReadDone> read_tag_;
  MemberTag<ServerStream, &ServerStream::OnWriteDone> write_tag_;
  MemberTag<ServerStream, &ServerStream::OnFinished> finish_tag_;
  OnMessage on_message_;  // the core thread only
  OnClosed on_closed_;
  ReadsAfterRound* reads_ = nullptr;
  SparePool<In>* spares_ = nullptr;
  In incoming_;
  Out current_;  // the message being written; touched only by the writer
  BatchQueue<Out> outbox_;
  absl::Mutex mu_;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_done_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status abort_status_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<ServerStream> self_;  // gRPC's hold (MaybeRelease)
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_SERVER_STREAM_H_
