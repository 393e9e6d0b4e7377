// The client's record of every object it holds a reference to: pending,
// ready (with the value), remote (with the worker to fetch from) or failed.
// Handles are shared_ptrs whose deleter releases the object to the cluster.
//
// Thread-safe.
#ifndef FLEET_CLIENT_OBJECT_TABLE_H_
#define FLEET_CLIENT_OBJECT_TABLE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/object_routes.h"
#include "common/ids.h"
#include "fleet/object_ref.h"
#include "fleet/v1/common.pb.h"

namespace fleet::internal {

struct ObjectState {
  enum class Phase { kPending, kReady, kRemote, kFailed };

  explicit ObjectState(const ObjectId& object_id) : id(object_id) {}

  const ObjectId id;
  // The fields below are guarded by the owning ObjectTable's mutex.
  Phase phase = Phase::kPending;
  std::shared_ptr<const std::string> value;  // kReady
  std::string address;                       // kRemote: the worker holding it
  v1::TaskFailure failure;                   // kFailed
  bool fetching = false;                     // a Get is fetching it now
};

}  // namespace fleet::internal

namespace fleet::client {

class ObjectTable : public std::enable_shared_from_this<ObjectTable> {
 public:
  using ReleaseSink = absl::AnyInvocable<void(const ObjectId&)>;

  // Large values are fetched along `routes`.
  explicit ObjectTable(std::shared_ptr<ObjectRoutes> routes) : routes_(std::move(routes)) {}

  // Sets where releases go; with no sink (after Shutdown) they go nowhere.
  void SetReleaseSink(ReleaseSink sink);

  // A new pending object, or one already holding its value.
  internal::ObjectHandle Create(const ObjectId& id,
                                std::shared_ptr<const std::string> value = nullptr);
  // A Put value uploaded to the worker at `address`.
  internal::ObjectHandle CreateRemote(const ObjectId& id, std::string address);

  // Applies a push from the scheduler; ids no longer held are ignored.
  // Inline values are moved out of `infos`. One lock hold for them all: a
  // Get waiting on one of them wakes once, not once per object.
  void Resolve(google::protobuf::RepeatedPtrField<v1::ObjectInfo>& infos);
  // Every Get and Wait from now on fails with `status` (the session is gone).
  void Break(absl::Status status);

  // Blocks until the object is ready and returns its bytes: held here, or
  // read in place (pinned, not kept) in the store of a worker on this host,
  // or else fetched from the worker and kept. Returns DeadlineExceeded on
  // timeout, Aborted with the failure's description when the task failed
  // (see `failure`), or the session's error.
  absl::StatusOr<internal::ObjectBytes> GetValue(
      const internal::ObjectHandle& handle, std::optional<absl::Duration> timeout,
      v1::TaskFailure* failure);

  // Whether each handle is ready, once `num_returns` are or `timeout` passed.
  absl::StatusOr<std::vector<bool>> Wait(const std::vector<internal::ObjectHandle>& handles,
                                         std::size_t num_returns,
                                         std::optional<absl::Duration> timeout);

  std::size_t size() const;
  // Whether any object held is still pending (a task's result not in
  // yet): false when this client awaits nothing. Lock-free; a hint, as
  // another thread may submit or resolve meanwhile.
  bool AnyPending() const { return pending_.load(std::memory_order_relaxed) > 0; }
  // The bytes of the object when this table holds them (a small value, or
  // a large one fetched and kept); null otherwise.
  std::shared_ptr<const std::string> HeldValue(const ObjectId& id) const;
  // The ids of every object held (what a resuming session reports).
  std::vector<ObjectId> HeldIds() const;

 private:
  internal::ObjectHandle Track(internal::ObjectState* state);
  void Release(internal::ObjectState* state);

  const std::shared_ptr<ObjectRoutes> routes_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<ObjectId, internal::ObjectState*> objects_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  // Objects in objects_ in Phase::kPending; written under mu_.
  std::atomic<int64_t> pending_{0};
  ReleaseSink release_sink_ ABSL_GUARDED_BY(sink_mu_);
  absl::Mutex sink_mu_ ABSL_ACQUIRED_AFTER(mu_);
};

}  // namespace fleet::client

#endif  // FLEET_CLIENT_OBJECT_TABLE_H_
