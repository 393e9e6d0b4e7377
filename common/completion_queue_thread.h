// A thread that drains one gRPC completion queue whose tags are all
// CompletionTags (common/completion_tag.h). A process that puts all its
// async calls (its services and its streams) on one such queue has one
// thread polling gRPC's sockets, which acts on each message itself: a
// second poller would pick up some of the messages and hand them over, a
// wake-up each (see the floor's chain rows in bench/).
#ifndef FLEET_COMMON_COMPLETION_QUEUE_THREAD_H_
#define FLEET_COMMON_COMPLETION_QUEUE_THREAD_H_

#include <memory>
#include <mutex>
#include <thread>

#include "absl/time/time.h"
#include "common/completion_tag.h"
#include "grpcpp/alarm.h"
#include "grpcpp/completion_queue.h"

namespace fleet {

// For the thread that drains `queue`, once the calls on it are over or
// ending: the last completions of calls that were cancelled or ended come
// in at once, so it handles completions until none has come for `quiet`
// (nothing is left then that would start another operation), shuts the
// queue down, and drops what comes later unhandled (handling it could
// start an operation on the shut queue, which gRPC aborts on).
void ShutDownWhenQuiet(grpc::CompletionQueue& queue, absl::Duration quiet);

// Thread-safe.
class CompletionQueueThread {
 public:
  // `queue`: a fresh one, or a server's (ServerBuilder::AddCompletionQueue).
  explicit CompletionQueueThread(
      std::unique_ptr<grpc::CompletionQueue> queue = std::make_unique<grpc::CompletionQueue>());
  ~CompletionQueueThread();  // Stop()

  CompletionQueueThread(const CompletionQueueThread&) = delete;
  CompletionQueueThread& operator=(const CompletionQueueThread&) = delete;

  grpc::CompletionQueue* queue() const { return queue_.get(); }

  // Call once the calls on the queue are over or ending (their server shut
  // down, their streams stopped): ShutDownWhenQuiet, then joins the thread.
  // Idempotent.
  void Stop(absl::Duration quiet = absl::ZeroDuration());

 private:
  void Drain();

  absl::Duration quiet_;  // written before wake_ is set

  const std::unique_ptr<grpc::CompletionQueue> queue_;
  grpc::Alarm wake_;     // set once, by Stop
  IgnoredTag wake_tag_;  // its tag: the thread stops draining at it
  std::once_flag stop_once_;
  std::thread thread_;  // last: it uses everything above
};

}  // namespace fleet

#endif  // FLEET_COMMON_COMPLETION_QUEUE_THREAD_H_
