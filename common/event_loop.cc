#include "common/event_loop.h"

#include <utility>

#include "grpcpp/alarm.h"
#include "grpcpp/completion_queue.h"

namespace fleet {

EventLoop::EventLoop(absl::AnyInvocable<void()> after_batch)
    : after_batch_(std::move(after_batch)), thread_([this] { Run(); }) {}

EventLoop::EventLoop(absl::AnyInvocable<void()> after_batch, DrivenByCompletionQueue)
    : after_batch_(std::move(after_batch)) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(Event event) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  pending_.push_back(std::move(event));
  // The queue's own thread runs what it posts after its current round.
  if (queue_ != nullptr && std::this_thread::get_id() != queue_thread_) WakeLocked();
}

void EventLoop::AttachTo(grpc::CompletionQueue* queue, void* wake_tag) {
  absl::MutexLock lock(&mu_);
  queue_ = queue;
  wake_tag_ = wake_tag;
  queue_thread_ = std::this_thread::get_id();
  wake_ = std::make_unique<grpc::Alarm>();
  if (!pending_.empty()) WakeLocked();
}

void EventLoop::WakeLocked() {
  if (wake_pending_) return;
  wake_pending_ = true;
  // An alarm already due: the queue hands it out at once.
  wake_->Set(queue_, gpr_now(GPR_CLOCK_MONOTONIC), wake_tag_);
}

void EventLoop::OnWakeUp() {
  absl::MutexLock lock(&mu_);
  wake_pending_ = false;
}

void EventLoop::RunPending() {
  std::vector<Event> batch;
  bool ran = false;
  while (true) {  // what the events post runs in the same round
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      batch.swap(pending_);
    }
    if (batch.empty()) break;
    ran = true;
    for (Event& event : batch) std::move(event)();
    batch.clear();
  }
  if (ran && after_batch_) after_batch_();
}

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void EventLoop::Run() {
  std::vector<Event> batch;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](EventLoop* loop) ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop->mu_) {
            return !loop->pending_.empty() || loop->stopping_;
          },
          this));
      if (stopping_) return;
      batch.swap(pending_);
    }
    for (Event& event : batch) std::move(event)();
    batch.clear();
    if (after_batch_) after_batch_();
  }
}

}  // namespace fleet
