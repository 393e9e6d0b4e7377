#include "client/object_routes.h"

#include <utility>

#include "common/logging.h"
#include "common/net.h"
#include "common/object_transfer.h"
#include "grpcpp/channel.h"

namespace fleet::client {
namespace {

// A worker that answers at all connects well within this; one whose
// address swallows packets (a container address seen from outside, behind
// a firewall) is given up on after it.
constexpr absl::Duration kDirectConnectTimeout = absl::Seconds(3);
// How long a worker found unreachable is relayed to before the direct
// path is tried again (it may have been a passing network fault).
constexpr absl::Duration kRelayFor = absl::Minutes(5);

// Whether `channel` connects within kDirectConnectTimeout. A connection
// refused or a network unreachable fails at once (the channel's first
// attempt ends in TRANSIENT_FAILURE); an address that swallows packets
// takes the whole timeout.
bool Connects(grpc::Channel& channel) {
  const auto deadline = absl::ToChronoTime(absl::Now() + kDirectConnectTimeout);
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    if (!channel.WaitForStateChange(state, deadline)) return false;
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return true;
}

}  // namespace

bool ObjectRoutes::UseRelay(const std::string& worker) {
  {
    absl::MutexLock lock(&mu_);
    auto it = relay_until_.find(worker);
    if (it != relay_until_.end()) {
      if (absl::Now() < it->second) return true;
      relay_until_.erase(it);
    }
  }
  if (Connects(*ChannelTo(worker))) return false;
  GetLogger("client")->info(
      "event=object_relay worker={} scheduler={} reason=\"cannot connect to the worker from "
      "here; moving its objects through the scheduler for {}\"",
      worker, scheduler_address_, absl::FormatDuration(kRelayFor));
  absl::MutexLock lock(&mu_);
  relay_until_[worker] = absl::Now() + kRelayFor;
  return true;
}

absl::StatusOr<std::shared_ptr<const std::string>> ObjectRoutes::Fetch(const std::string& worker,
                                                                       const ObjectId& id) {
  if (UseRelay(worker)) {
    return FetchObjectFrom(worker, id, kObjectTransferTimeout, scheduler_address_);
  }
  return FetchObjectFrom(worker, id);
}

absl::Status ObjectRoutes::Upload(const std::string& worker, const ObjectId& id,
                                  absl::string_view bytes) {
  if (UseRelay(worker)) {
    return UploadObjectTo(worker, id, bytes, kObjectTransferTimeout, scheduler_address_);
  }
  return UploadObjectTo(worker, id, bytes);
}

}  // namespace fleet::client
