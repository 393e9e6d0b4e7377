// How this client moves large objects to and from workers: straight to the
// worker, or, when it cannot reach the worker (it runs outside the
// cluster's network, e.g. on the host of a compose cluster, and knows only
// the scheduler's published port), through the scheduler's object relay
// (scheduler/object_relay.h). A worker found unreachable is relayed to for
// a while before the direct path is tried again, so a client pays the
// connection attempt once, not per object.
//
// Thread-safe.
#ifndef FLEET_CLIENT_OBJECT_ROUTES_H_
#define FLEET_CLIENT_OBJECT_ROUTES_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ids.h"

namespace fleet::client {

class ObjectRoutes {
 public:
  explicit ObjectRoutes(std::string scheduler_address)
      : scheduler_address_(std::move(scheduler_address)) {}

  // Fetches object `id` from the worker at `worker`.
  absl::StatusOr<std::shared_ptr<const std::string>> Fetch(const std::string& worker,
                                                           const ObjectId& id);
  // Stores `bytes` as object `id` on the worker at `worker`.
  absl::Status Upload(const std::string& worker, const ObjectId& id, absl::string_view bytes);

 private:
  // Whether to go through the relay to reach `worker`: it was found
  // unreachable lately, or it cannot be connected to now.
  bool UseRelay(const std::string& worker);

  const std::string scheduler_address_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::Time> relay_until_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_OBJECT_ROUTES_H_
