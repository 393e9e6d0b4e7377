// The scheduler's /metrics: the cluster snapshot in the Prometheus text
// exposition format (version 0.0.4), as `promtool check metrics` accepts it.
#ifndef FLEET_SCHEDULER_METRICS_TEXT_H_
#define FLEET_SCHEDULER_METRICS_TEXT_H_

#include <string>

#include "scheduler/cluster_snapshot.h"

namespace fleet::scheduler {

std::string PrometheusText(const ClusterSnapshot& snapshot);

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_METRICS_TEXT_H_
