#include "common/event_loop.h"

#include <utility>

namespace fleet {

EventLoop::EventLoop(absl::AnyInvocable<void()> after_batch)
    : after_batch_(std::move(after_batch)), thread_([this] { Run(); }) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(Event event) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) pending_.push_back(std::move(event));
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
