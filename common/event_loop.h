// A thread that runs the closures other threads post, one at a time, in
// arrival order, then `after_batch` (if given) once per batch. The
// scheduler's state is owned by one (other threads post events, and a
// burst of completions is followed by one placement pass instead of many);
// a worker copies objects handed over by a draining peer on another.
//
// The scheduler's loop has no thread of its own: the thread that drains its
// gRPC completion queue runs it (DrivenByCompletionQueue), so that a
// message read is acted on by the thread that read it. Other threads' posts
// wake that thread through the queue (a gRPC alarm).
#ifndef FLEET_COMMON_EVENT_LOOP_H_
#define FLEET_COMMON_EVENT_LOOP_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace grpc {
class Alarm;
class CompletionQueue;
}  // namespace grpc

namespace fleet {

// Thread-safe.
class EventLoop {
 public:
  using Event = absl::AnyInvocable<void() &&>;

  explicit EventLoop(absl::AnyInvocable<void()> after_batch = nullptr);
  // A loop without a thread: the caller's completion-queue thread runs it
  // (AttachTo, RunPending).
  struct DrivenByCompletionQueue {};
  EventLoop(absl::AnyInvocable<void()> after_batch, DrivenByCompletionQueue);
  ~EventLoop();  // stops the thread; events still queued are dropped

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Post(Event event);
  void Stop();

  // For a loop DrivenByCompletionQueue, called on the thread that drains
  // `queue`: from now on a post from another thread puts `wake_tag` on
  // `queue` (at most one at a time), and that thread calls OnWakeUp when it
  // takes it, and RunPending after each round of completions.
  void AttachTo(grpc::CompletionQueue* queue, void* wake_tag);
  void OnWakeUp();
  // Runs what was posted (and what that posts), then `after_batch` if
  // anything ran.
  void RunPending();

 private:
  void Run();
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::AnyInvocable<void()> after_batch_;  // loop thread only; may be empty
  absl::Mutex mu_;
  std::vector<Event> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // DrivenByCompletionQueue only.
  grpc::CompletionQueue* queue_ ABSL_GUARDED_BY(mu_) = nullptr;
  void* wake_tag_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread::id queue_thread_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> wake_ ABSL_GUARDED_BY(mu_);
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the fields above exist
};

}  // namespace fleet

#endif  // FLEET_COMMON_EVENT_LOOP_H_
