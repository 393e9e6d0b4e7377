// How many CPUs this process may use: what a worker's slots default to.
// In a container that is its CPU limit, not the host's core count, which
// std::thread::hardware_concurrency() would give.
#ifndef FLEET_WORKER_AVAILABLE_CPUS_H_
#define FLEET_WORKER_AVAILABLE_CPUS_H_

#include <string>

namespace fleet::worker {

// The CPUs in this process's affinity mask (a cpuset, `docker run
// --cpuset-cpus`), capped by the CFS quota of its cgroup (`--cpus`,
// Kubernetes' CPU limit) rounded up; at least 1. `cgroup_root` is where
// the cgroup file systems are mounted (v2: its cpu.max; v1: cpu/
// cpu.cfs_quota_us and cpu.cfs_period_us), a parameter for tests.
int AvailableCpus(const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace fleet::worker

#endif  // FLEET_WORKER_AVAILABLE_CPUS_H_
