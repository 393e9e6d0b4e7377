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
// The subscriptions also carry tasks the other way: HandOver gives a task
// to one of these workers directly (worker/direct_tasks.h).
//
// Thread-safe.
#ifndef FLEET_CLIENT_SAME_HOST_RESULTS_H_
#define FLEET_CLIENT_SAME_HOST_RESULTS_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/object_table.h"
#include "common/ids.h"
#include "fleet/v1/local_store.pb.h"

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

  // Hands `spec` (every argument inline) to one of the workers subscribed
  // to, in turn, which runs it at once or declines it to the scheduler
  // (local_store.proto's RunTask): the worker's id, for the submission to
  // name; none when no subscription could take it (none yet, a spec too
  // large for one packet, a full socket). `spec` is left as it was.
  std::optional<WorkerId> HandOver(v1::TaskSpec& spec);

 private:
  // Wakes the thread; false only without an eventfd (it never wakes).
  bool Wake();
  // Queues `address` on `queue` for the thread and wakes it.
  void Post(std::vector<std::string>& queue, const std::string& address)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Owns the subscriptions' sockets, by worker address.
  void Run();
  // Connects and subscribes; -1 when the worker is not on this host (or
  // takes no subscriptions). `worker`: its id, from the store's hello;
  // `takes_tasks`: whether it may be handed tasks.
  int Subscribe(const std::string& address, WorkerId& worker, bool& takes_tasks) const;
  // The thread's subscriptions open to HandOver, and those no longer.
  void OpenForHandOver(const WorkerId& worker, int socket);
  void CloseForHandOver(int socket);

  const JobId job_;
  const std::shared_ptr<ObjectTable> table_;
  const int wake_fd_;  // an eventfd: something to connect, close or stop

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> to_watch_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> to_forget_ ABSL_GUARDED_BY(mu_);

  // The subscriptions HandOver writes to: a socket is closed only once it
  // has left this list, under the lock, so that no write goes to it then.
  absl::Mutex hand_over_mu_;
  std::vector<std::pair<WorkerId, int>> hand_over_to_ ABSL_GUARDED_BY(hand_over_mu_);
  std::size_t next_hand_over_ ABSL_GUARDED_BY(hand_over_mu_) = 0;
  v1::LocalStoreRequest hand_over_request_ ABSL_GUARDED_BY(hand_over_mu_);
  std::string hand_over_packet_ ABSL_GUARDED_BY(hand_over_mu_);
  std::thread thread_;  // last: it uses everything above
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_SAME_HOST_RESULTS_H_
