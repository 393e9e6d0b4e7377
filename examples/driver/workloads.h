// The seed workloads as driver code: each one submits its tasks to the
// cluster that fleet::Init connected to, checks every result against a value
// it computes independently, prints its details and reports what it measured.
#ifndef FLEET_EXAMPLES_DRIVER_WORKLOADS_H_
#define FLEET_EXAMPLES_DRIVER_WORKLOADS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fleet::examples {

// What the driver knows about the cluster it runs on.
struct ClusterInfo {
  int slots = 0;  // task slots in all; 0 when unknown (a remote cluster)
};

// What one workload run measured.
struct WorkloadReport {
  std::string name;
  int tasks = 0;
  std::string result;   // one line on the (checked) results
  absl::Duration wall;  // from the first submission to the last result
  std::string notes;    // further figures: serial time, throughput, ...
};

struct Workload {
  std::string name;
  std::string description;  // one line, for --help
  absl::StatusOr<WorkloadReport> (*run)(const ClusterInfo& cluster);
};

// Every workload, in the order `all` runs them.
const std::vector<Workload>& Workloads();

// Runs `workload` on the current cluster. REQUIRES: fleet::Init was called.
// Returns DataLossError when a result is wrong, and AbortedError naming the
// task when a task failed or the cluster was lost (fleet's exceptions do not
// leave this function).
absl::StatusOr<WorkloadReport> RunWorkload(const Workload& workload, const ClusterInfo& cluster);

}  // namespace fleet::examples

#endif  // FLEET_EXAMPLES_DRIVER_WORKLOADS_H_
