// fleet-examples: runs the seed workloads (examples/tasks) on a fleet cluster
// and checks their results.
//
//   fleet-examples all                                # embedded local cluster
//   fleet-examples compute_heavy_task --address=127.0.0.1:50051
//
// The workers of a real cluster need the same task code:
//   fleet-worker --scheduler=HOST:PORT --task_lib=lib/libfleet_examples.so
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "examples/driver/workloads.h"
#include "fleet/fleet.h"

ABSL_FLAG(std::string, address, "",
          "The scheduler, host:port. Empty: start an embedded local cluster in this process.");
ABSL_FLAG(int, local_slots, 0,
          "Embedded cluster only: task slots; 0 means one per hardware thread.");
ABSL_FLAG(std::string, log_level, "warn",
          "fleet's own log level: trace, debug, info, warn or error.");

namespace {

using fleet::examples::ClusterInfo;
using fleet::examples::Workload;
using fleet::examples::WorkloadReport;

std::string Usage() {
  std::string usage =
      "fleet-examples NAME [--address=HOST:PORT] [--local_slots=N]\n"
      "Runs seed workloads on a fleet cluster, checks every result and prints wall times.\n"
      "Without --address it starts an embedded local cluster; a real cluster's workers need\n"
      "--task_lib=libfleet_examples.so. NAME is one of:\n";
  for (const Workload& w : fleet::examples::Workloads()) {
    absl::StrAppend(&usage, absl::StrFormat("  %-30s %s\n", w.name, w.description));
  }
  absl::StrAppend(&usage, absl::StrFormat("  %-30s %s", "all", "every workload above, in order"));
  return usage;
}

// The workloads NAME selects; empty when it names none.
std::vector<const Workload*> Select(const std::string& name) {
  std::vector<const Workload*> selected;
  for (const Workload& w : fleet::examples::Workloads()) {
    if (name == "all" || name == w.name) selected.push_back(&w);
  }
  return selected;
}

void PrintSummary(const std::vector<absl::StatusOr<WorkloadReport>>& reports,
                  const std::vector<const Workload*>& selected) {
  absl::PrintF("\n%-30s %6s %9s  %-6s %s\n", "workload", "tasks", "wall s", "check", "result");
  for (std::size_t i = 0; i < reports.size(); ++i) {
    if (reports[i].ok()) {
      const WorkloadReport& r = *reports[i];
      absl::PrintF("%-30s %6d %9.3f  %-6s %s; %s\n", r.name, r.tasks, absl::ToDoubleSeconds(r.wall),
                   "ok", r.result, r.notes);
    } else {
      absl::PrintF("%-30s %6s %9s  %-6s %s\n", selected[i]->name, "-", "-", "FAILED",
                   reports[i].status().message());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // absl's --help lists the flags of files named after the program
  // (fleet-examples.cc); ours live in main.cc.
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "examples/driver/main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(Usage());
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 2) {
    std::fprintf(stderr, "%s\n", Usage().c_str());
    return 2;
  }
  const std::string name = positional[1];
  const std::vector<const Workload*> selected = Select(name);
  if (selected.empty()) {
    std::fprintf(stderr, "fleet-examples: unknown workload \"%s\"\n\n%s\n", name.c_str(),
                 Usage().c_str());
    return 2;
  }

  fleet::InitOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.local_slots = absl::GetFlag(FLAGS_local_slots);
  options.log_level = absl::GetFlag(FLAGS_log_level);
  ClusterInfo cluster;
  try {
    fleet::Init(options);
  } catch (const fleet::Error& e) {
    std::fprintf(stderr, "fleet-examples: cannot start: %s\n", e.what());
    return 1;
  }
  if (options.address.empty()) {
    cluster.slots = options.local_slots > 0 ? options.local_slots
                                            : static_cast<int>(std::thread::hardware_concurrency());
    absl::PrintF("fleet-examples: embedded local cluster with %d slots\n", cluster.slots);
  } else {
    absl::PrintF("fleet-examples: cluster at %s\n", options.address);
  }

  std::vector<absl::StatusOr<WorkloadReport>> reports;
  bool all_ok = true;
  for (const Workload* w : selected) {
    absl::PrintF("\n%s: %s\n", w->name, w->description);
    std::fflush(stdout);
    reports.push_back(fleet::examples::RunWorkload(*w, cluster));
    if (!reports.back().ok()) {
      all_ok = false;
      absl::FPrintF(stderr, "fleet-examples: %s FAILED: %s\n", w->name,
                    reports.back().status().ToString());
    }
    std::fflush(stdout);
  }
  PrintSummary(reports, selected);
  fleet::Shutdown();
  if (!all_ok) {
    absl::FPrintF(stderr, "fleet-examples: FAILED: a result was wrong or a task failed (above)\n");
    return 1;
  }
  return 0;
}
