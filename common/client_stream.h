// The client end of a long-lived bidirectional stream (a worker's Connect, a
// client's Session), on gRPC's async API. Items sent while a write is in
// flight travel together in the next write (a BatchQueue). A sender that
// finds no write in flight starts the write itself, on its own thread, so
// an item that travels alone costs no hand-off between threads: each such
// hand-off is a wake-up on the path of a round trip (see the floor's chain
// rows in bench/). The thread that drains the call's completion queue (a
// CompletionQueueThread, which the process's other async calls share) hands
// each message read to a callback, and writes what gathered during a write.
//
// Thread-safe.
#ifndef FLEET_COMMON_CLIENT_STREAM_H_
#define FLEET_COMMON_CLIENT_STREAM_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/batch_queue.h"
#include "common/completion_tag.h"
#include "common/grpc_status.h"
#include "grpcpp/alarm.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/support/async_stream.h"

namespace fleet {

template <typename Out, typename In>
class ClientStream {
 public:
  using Call = grpc::ClientAsyncReaderWriter<Out, In>;
  // Prepares the call, not yet started, on the given context and queue
  // (e.g. a stub's PrepareAsyncConnect).
  using Opener =
      absl::AnyInvocable<std::unique_ptr<Call>(grpc::ClientContext*, grpc::CompletionQueue*)>;
  // Runs on the queue's thread for each message, in order.
  using OnMessage = absl::AnyInvocable<void(In&)>;
  // Runs once on the queue's thread when the stream has ended: OK after
  // Stop, otherwise why it broke.
  using OnEnd = absl::AnyInvocable<void(absl::Status)>;

  // `queue`: where the call's operations complete; its thread must drain
  // it until Stop has returned. `linger`: how long an item sent with
  // `more_follow` waits for the items its producer expects (one message for
  // a burst instead of one per item, at the cost of at most `linger` for an
  // item that has company coming).
  // `lazy_delay`: how long an item sent lazily waits, at most, for company
  // (SendLazily).
  explicit ClientStream(grpc::CompletionQueue* queue, absl::Duration linger = absl::ZeroDuration(),
                        absl::Duration lazy_delay = kDefaultLazyDelay)
      : queue_(queue),
        linger_(linger),
        lazy_delay_(lazy_delay),
        // A process has one or two such streams, and a burst of submits
        // fills batches of megabytes: keeping one whole saves rebuilding
        // its thousands of elements, a malloc or more each, for the next.
        outbox_(kDefaultBatchCapBytes, /*max_spare_bytes=*/kDefaultBatchCapBytes) {
    // Items sent before the call has started wait for it: this stream is
    // their writer until then.
    outbox_.ClaimIdleWriter();
  }
  ~ClientStream() { Stop(absl::ZeroDuration()); }

  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;

  // Items sent before Start go out in the first write.
  void Start(Opener open, OnMessage on_message, OnEnd on_end) {
    on_message_ = std::move(on_message);
    on_end_ = std::move(on_end);
    call_ = open(&context_, queue_);
    call_->StartCall(&started_tag_);
    started_.Notify();
  }

  // From now on the peer may end the stream cleanly (an OK status) and
  // OnEnd gets OK; before, that is a broken stream ("the peer closed").
  void ExpectPeerToEnd() { peer_may_end_ = true; }

  // Adds an item to the next batch; `add(Out&)` fills it in. Dropped once
  // the stream is stopping or broken. `more_follow`: the producer expects
  // further items shortly (see `linger`); an item sent without it ends a
  // linger at once.
  template <typename AddFn>
  void Send(std::size_t item_bytes, AddFn&& add, bool more_follow = false) {
    const bool lingers = linger_ > absl::ZeroDuration();
    if (outbox_.Add(item_bytes, std::forward<AddFn>(add))) {
      // No write was in flight: this thread is the writer now.
      if (more_follow && lingers) {
        absl::MutexLock lock(&linger_mu_);
        lingering_ = true;
        linger_alarm_.Set(queue_, absl::ToChronoTime(absl::Now() + linger_), &linger_tag_);
      } else {
        WriteNext();
      }
    } else if (!more_follow && lingers) {
      absl::MutexLock lock(&linger_mu_);
      if (lingering_) linger_alarm_.Cancel();  // its tag comes at once
    }
  }

  // Adds an item nothing waits on (a release, say) to the next write,
  // whoever starts it: the next Send's, usually, or else one the queue's
  // thread starts `lazy_delay` from now. The sending thread writes nothing
  // and wakes nobody: on a round trip's path (a program that drops one
  // result and submits its next task) a write of its own cost that thread
  // a send and a wake-up of the queue's thread, and the peer a message.
  template <typename AddFn>
  void SendLazily(std::size_t item_bytes, AddFn&& add) {
    if (outbox_.AddWithoutWriting(item_bytes, std::forward<AddFn>(add))) ArmFlush();
  }
  static constexpr absl::Duration kDefaultLazyDelay = absl::Milliseconds(2);

  // Flushes what is queued, half-closes, and gives the peer `grace` to take
  // it and end the stream before cancelling it (what it has not taken by
  // then is lost). Idempotent; concurrent callers return once it is done.
  // Not on the queue's thread.
  void Stop(absl::Duration grace) {
    std::call_once(stop_once_, [this, grace] {
      const absl::Time deadline = absl::Now() + grace;
      stopping_ = true;
      outbox_.Close();
      if (!started_.HasBeenNotified()) return;
      {
        // What waits for a flush goes with the writes below; the alarm's
        // tag still comes back (at once) before the stream ends.
        absl::MutexLock lock(&flush_mu_);
        flush_stopped_ = true;
        if (flush_armed_) flush_alarm_.Cancel();
      }
      // An idle writer ends the writes here; one in flight does when done.
      if (outbox_.ClaimIdleWriter()) WriteNext();
      // A peer that stops reading (hung, or its host gone without a reset)
      // would hold a write in flight for ever; cancelling fails it.
      if (!writes_over_.WaitForNotificationWithDeadline(deadline)) context_.TryCancel();
      writes_over_.WaitForNotification();
      if (!ended_.WaitForNotificationWithDeadline(deadline)) context_.TryCancel();
      // Its last operation has come back: the stream may be destroyed.
      ended_.WaitForNotification();
    });
  }

  // Ends the call at once; OnEnd reports it as broken unless stopping.
  void Cancel() { context_.TryCancel(); }

 private:
  // By the writer: writes the next batch, or ends the writes once the
  // queue is closed and drained, or gives the role back.
  void WriteNext() {
    bool closed_and_drained = false;
    std::optional<Out> next = outbox_.TakeForWrite(&closed_and_drained);
    if (next.has_value()) {
      writing_ = std::move(next);
      call_->Write(*writing_, &write_tag_);
    } else if (closed_and_drained) {
      call_->WritesDone(&writes_done_tag_);
    }
    // Otherwise the role is given back: another thread may be the writer
    // already, so `writing_` is not touched.
  }

  void OnStarted(bool ok) {
    if (!ok) {  // the call never began: Finish says why
      read_over_ = true;
      outbox_.Close();
      EndWrites();
      return;
    }
    call_->Read(&message_, &read_tag_);
    WriteNext();  // this stream has been the writer since it was made
  }

  void OnRead(bool ok) {
    if (ok) {
      on_message_(message_);
      message_.Clear();
      call_->Read(&message_, &read_tag_);
      return;
    }
    read_over_ = true;
    // Nothing more can be sent. A write in flight ends the writes when
    // its tag comes; otherwise they end here.
    outbox_.Close();
    if (outbox_.ClaimIdleWriter()) EndWrites();
    FinishWhenOver();
  }

  void OnWritten(bool ok) {
    if (!ok) {  // broken: the read side learns why
      outbox_.Close();
      EndWrites();
      return;
    }
    // Serializing it cached its size.
    const auto written_bytes = static_cast<std::size_t>(writing_->GetCachedSize());
    outbox_.Recycle(std::move(*writing_), written_bytes);
    WriteNext();
  }

  void OnWritesDone(bool /*ok*/) { EndWrites(); }

  void OnLingerOver(bool /*ok*/) {
    {
      absl::MutexLock lock(&linger_mu_);
      lingering_ = false;
    }
    WriteNext();
  }

  // For an item that waits with no write in flight: the queue's thread
  // starts one `lazy_delay_` from now, unless a write takes it before.
  void ArmFlush() {
    absl::MutexLock lock(&flush_mu_);
    // Once stopping or finished nothing more is written: no alarm may come
    // after the stream has ended.
    if (flush_armed_ || flush_stopped_ || finished_) return;
    flush_armed_ = true;
    flush_alarm_.Set(queue_, absl::ToChronoTime(absl::Now() + lazy_delay_), &flush_tag_);
  }

  void OnFlushDue(bool /*ok*/) {
    {
      absl::MutexLock lock(&flush_mu_);
      flush_armed_ = false;
    }
    // Nothing to write (a write took the items) gives the role back.
    if (outbox_.ClaimIdleWriter()) WriteNext();
    NotifyEndedWhenIdle();
  }

  // The writer role is kept from here on: nothing is written any more.
  void EndWrites() {
    writes_over_.Notify();
    FinishWhenOver();
  }

  // Finish only once neither side uses the call any more.
  void FinishWhenOver() {
    if (read_over_ && writes_over_.HasBeenNotified() && !finishing_) {
      finishing_ = true;
      call_->Finish(&status_, &finished_tag_);
    }
  }

  void OnFinished(bool /*ok*/) {
    absl::Status status = ToAbslStatus(status_);
    if (stopping_.load()) {
      status = absl::OkStatus();
    } else if (status.ok() && !peer_may_end_.load()) {
      status = absl::UnavailableError("the peer closed the stream");
    }
    on_end_(std::move(status));
    {
      absl::MutexLock lock(&flush_mu_);
      finished_ = true;
    }
    NotifyEndedWhenIdle();
  }

  // Once the call has finished and a flush alarm's tag has come back (a
  // linger holds the writer role, so the writes cannot have ended during
  // one), no operation of the stream's is on the queue any more. Last: Stop
  // may destroy the stream once it sees this. The queue's thread only.
  void NotifyEndedWhenIdle() {
    {
      absl::MutexLock lock(&flush_mu_);
      if (!finished_ || flush_armed_) return;
    }
    if (!ended_.HasBeenNotified()) ended_.Notify();
  }

  grpc::CompletionQueue* const queue_;
  const absl::Duration linger_;
  const absl::Duration lazy_delay_;
  grpc::ClientContext context_;
  std::unique_ptr<Call> call_;
  BatchQueue<Out> outbox_;
  std::optional<Out> writing_;  // the writer's only: its batch in flight
  In message_;                  // the queue's thread only, as below
  grpc::Status status_;
  bool read_over_ = false;
  bool finishing_ = false;
  OnMessage on_message_;
  OnEnd on_end_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> peer_may_end_{false};
  absl::Notification started_;
  absl::Notification writes_over_;
  absl::Notification ended_;
  std::once_flag stop_once_;

  absl::Mutex linger_mu_;
  grpc::Alarm linger_alarm_ ABSL_GUARDED_BY(linger_mu_);
  bool lingering_ ABSL_GUARDED_BY(linger_mu_) = false;

  absl::Mutex flush_mu_;
  grpc::Alarm flush_alarm_ ABSL_GUARDED_BY(flush_mu_);
  bool flush_armed_ ABSL_GUARDED_BY(flush_mu_) = false;    // its tag has not come back
  bool flush_stopped_ ABSL_GUARDED_BY(flush_mu_) = false;  // Stop flushes what waits
  bool finished_ ABSL_GUARDED_BY(flush_mu_) = false;       // the call's Finish came back

  MemberTag<ClientStream, &ClientStream::OnStarted> started_tag_{this};
  MemberTag<ClientStream, &ClientStream::OnRead> read_tag_{this};
  MemberTag<ClientStream, &ClientStream::OnWritten> write_tag_{this};
  MemberTag<ClientStream, &ClientStream::OnWritesDone> writes_done_tag_{this};
  MemberTag<ClientStream, &ClientStream::OnLingerOver> linger_tag_{this};
  MemberTag<ClientStream, &ClientStream::OnFlushDue> flush_tag_{this};
  MemberTag<ClientStream, &ClientStream::OnFinished> finished_tag_{this};
};

}  // namespace fleet

#endif  // FLEET_COMMON_CLIENT_STREAM_H_
