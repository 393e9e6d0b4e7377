// The single thread that owns the scheduler's state. Other threads (gRPC
// reactions, the HTTP server) post closures; the loop runs them in arrival
// order, then runs `after_batch` once per batch (placement), so a burst of
// completions is followed by one placement pass instead of many.
#ifndef FLEET_SCHEDULER_EVENT_LOOP_H_
#define FLEET_SCHEDULER_EVENT_LOOP_H_

#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace fleet::scheduler {

// Thread-safe.
class EventLoop {
 public:
  using Event = absl::AnyInvocable<void() &&>;

  explicit EventLoop(absl::AnyInvocable<void()> after_batch);
  ~EventLoop();  // stops the thread; events still queued are dropped

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Post(Event event);
  void Stop();

 private:
  void Run();

  absl::AnyInvocable<void()> after_batch_;  // loop thread only
  absl::Mutex mu_;
  std::vector<Event> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_EVENT_LOOP_H_
