// The client's end of owner delivery (worker/owner_delivery.h): a
// subscription to this job's results at every worker on this host, each a
// connection of its own to the worker's store socket, on which the worker
// pushes a finished task's small results as soon as its executor hands
// them over, instead of sending them through the scheduler. One thread
// reads every subscription and resolves the objects in the table; a Get
// waiting on one wakes as it would for a push from the scheduler.
//
// Nothing depends on it: a worker elsewhere, or one this client has not
// subscribed to yet, sends the results through the scheduler, and a result
// that comes both ways is resolved twice with the same value.
//
// Thread-safe.
#ifndef FLEET_CLIENT_SAME_HOST_RESULTS_H_
#define FLEET_CLIENT_SAME_HOST_RESULTS_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/object_table.h"
#include "common/ids.h"

namespace fleet::client {

class SameHostResults {
 public:
  SameHostResults(JobId job, std::shared_ptr<ObjectTable> table);
  ~SameHostResults();  // closes the subscriptions, joins the thread
  SameHostResults(const SameHostResults&) = delete;
  SameHostResults& operator=(const SameHostResults&) = delete;

  // Subscribes at the worker at `address` (host:port) if it runs on this
  // host, in the background. Again for the same address: nothing.
  void Watch(const std::string& address);
  // Closes the subscription at the worker that left.
  void Forget(const std::string& address);

 private:
  // Wakes the thread; false only without an eventfd (it never wakes).
  bool Wake();
  // Queues `address` on `queue` for the thread and wakes it.
  void Post(std::vector<std::string>& queue, const std::string& address)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Owns the subscriptions' sockets, by worker address.
  void Run();
  // Connects and subscribes; -1 when the worker is not on this host.
  int Subscribe(const std::string& address) const;

  const JobId job_;
  const std::shared_ptr<ObjectTable> table_;
  const int wake_fd_;  // an eventfd: something to connect, close or stop

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> to_watch_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> to_forget_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: it uses everything above
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_SAME_HOST_RESULTS_H_
