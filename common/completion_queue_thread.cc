#include "common/completion_queue_thread.h"

#include <utility>

#include "absl/time/clock.h"

namespace fleet {

void ShutDownWhenQuiet(grpc::CompletionQueue& queue, absl::Duration quiet) {
  void* tag = nullptr;
  bool ok = false;
  while (queue.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + quiet)) ==
         grpc::CompletionQueue::GOT_EVENT) {
    static_cast<CompletionTag*>(tag)->Handle(ok);
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
    // Dropped.
  }
}

CompletionQueueThread::CompletionQueueThread(std::unique_ptr<grpc::CompletionQueue> queue)
    : queue_(std::move(queue)), thread_([this] { Drain(); }) {}

CompletionQueueThread::~CompletionQueueThread() { Stop(); }

void CompletionQueueThread::Stop(absl::Duration quiet) {
  std::call_once(stop_once_, [this, quiet] {
    quiet_ = quiet;
    // Due at once. The thread shuts the queue down only once it has this
    // tag: a flag it could see first would let it shut the queue down
    // before the alarm is set, and setting one on a shut queue aborts.
    wake_.Set(queue_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &wake_tag_);
    thread_.join();
  });
}

void CompletionQueueThread::Drain() {
  void* tag = nullptr;
  bool ok = false;
  while (queue_->Next(&tag, &ok) && tag != &wake_tag_) {
    static_cast<CompletionTag*>(tag)->Handle(ok);
  }
  ShutDownWhenQuiet(*queue_, quiet_);
}

}  // namespace fleet
