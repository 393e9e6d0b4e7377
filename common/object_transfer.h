// The client side of the Worker service's object transfer, used by clients
// (Get of a large result, Put of a large value) and by workers (arguments
// that live on another worker) across hosts, and as the fallback on one
// host: a worker on this host is reached through its mapped store
// (common/local_store_link.h) first.
#ifndef FLEET_COMMON_OBJECT_TRANSFER_H_
#define FLEET_COMMON_OBJECT_TRANSFER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ids.h"

namespace fleet {

inline constexpr std::size_t kObjectChunkBytes = 1 << 20;
// Generous: it bounds a whole transfer, and a GB-sized object on a slow
// network takes a while. It only keeps a dead peer from hanging a caller.
inline constexpr absl::Duration kObjectTransferTimeout = absl::Minutes(10);

// The metadata that names the worker a call to the scheduler's object relay
// (scheduler/object_relay.h) is forwarded to.
inline constexpr char kRelayTargetMetadata[] = "fleet-relay-to";

// Each call below reaches the worker at `address` directly, or, when
// `relay` (a scheduler's address) is given, through that scheduler's
// object relay.

// Fetches object `id` from the worker at `address`. Returns NotFound when
// the worker does not hold it, Unavailable when the worker cannot be reached.
absl::StatusOr<std::shared_ptr<const std::string>> FetchObjectFrom(
    const std::string& address, const ObjectId& id,
    absl::Duration timeout = kObjectTransferTimeout, const std::string& relay = "");

// Fetches object `id` from the worker at `address` straight into memory the
// caller provides: `allocate(total_size_bytes)` is called once, with the
// first chunk, and returns where to write (or an error that ends the
// fetch). Returns the object's size.
absl::StatusOr<uint64_t> FetchObjectInto(
    const std::string& address, const ObjectId& id,
    absl::FunctionRef<absl::StatusOr<char*>(uint64_t total_size_bytes)> allocate,
    absl::Duration timeout = kObjectTransferTimeout, const std::string& relay = "");

// Stores `bytes` as object `id` on the worker at `address`.
absl::Status UploadObjectTo(const std::string& address, const ObjectId& id,
                            absl::string_view bytes,
                            absl::Duration timeout = kObjectTransferTimeout,
                            const std::string& relay = "");

}  // namespace fleet

#endif  // FLEET_COMMON_OBJECT_TRANSFER_H_
