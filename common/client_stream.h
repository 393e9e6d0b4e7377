// The client end of a long-lived bidirectional stream (a worker's Connect, a
// client's Session). A writer thread drains a BatchQueue into the stream, one
// whole batch per write, so items sent while a write is in flight travel
// together in the next one; a reader thread hands each message read to a
// callback.
//
// Thread-safe.
#ifndef FLEET_COMMON_CLIENT_STREAM_H_
#define FLEET_COMMON_CLIENT_STREAM_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/batch_queue.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/sync_stream.h"

namespace fleet {

template <typename Out, typename In>
class ClientStream {
 public:
  using Stream = grpc::ClientReaderWriter<Out, In>;
  // Starts the call on the given context (e.g. a stub's Connect).
  using Opener = absl::AnyInvocable<std::unique_ptr<Stream>(grpc::ClientContext*)>;
  // Runs on the reader thread for each message, in order.
  using OnMessage = absl::AnyInvocable<void(In&)>;
  // Runs once on the reader thread when the stream has ended: OK after
  // Stop, otherwise why it broke.
  using OnEnd = absl::AnyInvocable<void(absl::Status)>;

  // `linger`: see BatchQueue::WaitAndTake (for items sent with more_follow).
  explicit ClientStream(absl::Duration linger = absl::ZeroDuration())
      : outbox_(kDefaultBatchCapBytes, linger) {}
  ~ClientStream() { Stop(absl::ZeroDuration()); }

  ClientStream(const ClientStream&) = delete;
  ClientStream& operator=(const ClientStream&) = delete;

  // Items sent before Start go out in the first write.
  void Start(Opener open, OnMessage on_message, OnEnd on_end) {
    on_message_ = std::move(on_message);
    on_end_ = std::move(on_end);
    stream_ = open(&context_);
    writer_ = std::thread([this] { WriteLoop(); });
    reader_ = std::thread([this] { ReadLoop(); });
  }

  // From now on the peer may end the stream cleanly (an OK status) and
  // OnEnd gets OK; before, that is a broken stream ("the peer closed").
  void ExpectPeerToEnd() { peer_may_end_ = true; }

  // Adds an item to the next batch; `add(Out&)` fills it in. Dropped once
  // the stream is stopping or broken. `more_follow`: see BatchQueue::Add.
  template <typename AddFn>
  void Send(std::size_t item_bytes, AddFn&& add, bool more_follow = false) {
    outbox_.Add(item_bytes, std::forward<AddFn>(add), more_follow);
  }

  // Flushes what is queued, half-closes, and gives the peer `grace` to end
  // the stream before cancelling it. Idempotent; concurrent callers return
  // once it is done.
  void Stop(absl::Duration grace) {
    std::call_once(stop_once_, [this, grace] {
      stopping_.Notify();
      outbox_.Close();
      if (writer_.joinable()) writer_.join();
      if (stream_ != nullptr && !reader_exited_.WaitForNotificationWithTimeout(grace)) {
        context_.TryCancel();
      }
      if (reader_.joinable()) reader_.join();
    });
  }

  // Ends the call at once; OnEnd reports it as broken unless stopping.
  void Cancel() { context_.TryCancel(); }

 private:
  void WriteLoop() {
    while (std::optional<Out> batch = outbox_.WaitAndTake()) {
      if (!stream_->Write(*batch)) break;  // the reader learns why
      // Serializing it cached its size.
      const auto written_bytes = static_cast<std::size_t>(batch->GetCachedSize());
      outbox_.Recycle(std::move(*batch), written_bytes);
    }
    stream_->WritesDone();
    writer_exited_.Notify();
  }

  void ReadLoop() {
    In message;
    while (stream_->Read(&message)) {
      on_message_(message);
      message.Clear();
    }
    // Finish only once the writer has stopped using the stream.
    outbox_.Close();
    writer_exited_.WaitForNotification();
    absl::Status status = ToAbslStatus(stream_->Finish());
    if (stopping_.HasBeenNotified()) {
      status = absl::OkStatus();
    } else if (status.ok() && !peer_may_end_.load()) {
      status = absl::UnavailableError("the peer closed the stream");
    }
    on_end_(std::move(status));
    reader_exited_.Notify();
  }

  grpc::ClientContext context_;
  std::unique_ptr<Stream> stream_;
  BatchQueue<Out> outbox_;
  OnMessage on_message_;  // reader thread only
  OnEnd on_end_;          // reader thread only
  absl::Notification stopping_;
  std::atomic<bool> peer_may_end_{false};
  absl::Notification writer_exited_;
  absl::Notification reader_exited_;
  std::once_flag stop_once_;
  std::thread writer_;
  std::thread reader_;
};

}  // namespace fleet

#endif  // FLEET_COMMON_CLIENT_STREAM_H_
