// The /status document (schema in docs/status.md).
#ifndef FLEET_SCHEDULER_STATUS_JSON_H_
#define FLEET_SCHEDULER_STATUS_JSON_H_

#include <string>

#include "scheduler/cluster_snapshot.h"

namespace fleet::scheduler {

inline constexpr const char* kFleetVersion = "0.1.0";

std::string StatusJson(const ClusterSnapshot& snapshot);

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_STATUS_JSON_H_
