// A thread that runs the closures other threads post, one at a time, in
// arrival order, then `after_batch` (if given) once per batch. The
// scheduler's state is owned by one (other threads post events, and a
// burst of completions is followed by one placement pass instead of many);
// a worker copies objects handed over by a draining peer on another.
#ifndef FLEET_COMMON_EVENT_LOOP_H_
#define FLEET_COMMON_EVENT_LOOP_H_

#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace fleet {

// Thread-safe.
class EventLoop {
 public:
  using Event = absl::AnyInvocable<void() &&>;

  explicit EventLoop(absl::AnyInvocable<void()> after_batch = nullptr);
  ~EventLoop();  // stops the thread; events still queued are dropped

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Post(Event event);
  void Stop();

 private:
  void Run();

  absl::AnyInvocable<void()> after_batch_;  // loop thread only; may be empty
  absl::Mutex mu_;
  std::vector<Event> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace fleet

#endif  // FLEET_COMMON_EVENT_LOOP_H_
