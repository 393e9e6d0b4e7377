#include "common/completion_queue_thread.h"

#include <utility>

#include "absl/time/clock.h"

namespace fleet {
namespace {

class Ignored final : public CompletionTag {
 public:
  void Handle(bool) override {}
};
Ignored wake_tag;

}  // namespace

CompletionQueueThread::CompletionQueueThread(std::unique_ptr<grpc::CompletionQueue> queue)
    : queue_(std::move(queue)), thread_([this] { Drain(); }) {}

CompletionQueueThread::~CompletionQueueThread() { Stop(); }

void CompletionQueueThread::Stop(absl::Duration quiet) {
  std::call_once(stop_once_, [this, quiet] {
    quiet_ = quiet;
    stopping_ = true;
    // Due at once: wakes the thread if it waits.
    wake_.Set(queue_.get(), gpr_now(GPR_CLOCK_MONOTONIC), &wake_tag);
    thread_.join();
  });
}

void CompletionQueueThread::Drain() {
  void* tag = nullptr;
  bool ok = false;
  while (!stopping_.load() && queue_->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->Handle(ok);
  // The last completions of calls that were cancelled or ended come in at
  // once; once none has come for a while, nothing is left that would start
  // another operation, and the queue can shut down.
  while (queue_->AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + quiet_)) ==
         grpc::CompletionQueue::GOT_EVENT) {
    static_cast<CompletionTag*>(tag)->Handle(ok);
  }
  queue_->Shutdown();
  while (queue_->Next(&tag, &ok)) {
    // Discarded: handling it could start an operation on the shut queue.
  }
}

}  // namespace fleet
