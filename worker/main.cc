// fleet-worker: runs tasks for a fleet cluster.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/cluster_token.h"
#include "common/flags_usage.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "common/stop_signals.h"
#include "worker/worker_server.h"

ABSL_FLAG(std::string, scheduler, "127.0.0.1:50051", "The scheduler's gRPC address, host:port.");
ABSL_FLAG(int, slots, 0,
          "Tasks run at once; 0 means one per CPU this worker may use (its container's CPU "
          "limit or cpuset, else the host's cores).");
ABSL_FLAG(std::vector<std::string>, task_lib, {},
          "Task library (.so) to load; repeat the flag or separate paths with commas.");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address the Worker service listens on.");
ABSL_FLAG(int, port, 0, "Port of the Worker service (object transfer); 0 picks a free one.");
ABSL_FLAG(std::string, advertise_address, "",
          "host:port peers and clients use to reach this worker (default: detected).");
ABSL_FLAG(int, connect_timeout_s, 10, "Seconds to wait for the scheduler at start.");
ABSL_FLAG(absl::Duration, scheduler_reconnect_timeout, absl::Seconds(60),
          "When the stream to the scheduler breaks (it restarted, the network dropped), keep "
          "running what this worker holds and try to reconnect for this long; then exit. 0: "
          "exit at once.");
ABSL_FLAG(int64_t, store_memory, 0,
          "Bytes of shared memory for the object store; objects beyond it spill to disk. "
          "0 means 30% of this host's (or container's) memory: give each worker an explicit "
          "size when several share a host.");
ABSL_FLAG(int64_t, store_prefault, static_cast<int64_t>(fleet::worker::kDefaultStorePrefaultBytes),
          "Bytes of the object store to pre-fault at start (first-touch page faults are "
          "slow); the rest is faulted in on first use. Capped at --store_memory.");
ABSL_FLAG(std::string, spill_dir, "",
          "Where the object store spills objects under memory pressure: the worker makes a "
          "subdirectory named after its id there and removes it at exit. Default: $TMPDIR "
          "or /tmp.");
ABSL_FLAG(bool, local_store, true,
          "Serve the object store to clients and workers on this host through shared "
          "memory (they read and write objects in place); false: they use gRPC like remote "
          "ones.");
ABSL_FLAG(bool, deliver_to_owner, true,
          "Push a finished task's small results straight to the client that submitted it when "
          "that client runs on this host (through the same-host store socket), instead of "
          "through the scheduler: a synchronous round trip crosses gRPC twice, not four times. "
          "Needs --local_store.");
ABSL_FLAG(bool, direct_tasks, true,
          "Take tasks a client on this host hands over itself, when a slot is idle (a "
          "synchronous call then crosses no gRPC stream; the scheduler is told after the "
          "fact). Needs --deliver_to_owner.");
ABSL_FLAG(std::string, isolation, "process",
          "Where tasks run: 'process' (each slot's tasks in an executor process of its own: a "
          "task that crashes, exits or runs out of memory fails alone and is retried, and a "
          "timeout or cancel stops it) or 'thread' (on threads of the worker: no process hop, "
          "no protection).");
ABSL_FLAG(std::string, executor_binary, "",
          "The executor program for --isolation=process (default: fleet-executor beside this "
          "binary).");
ABSL_FLAG(int64_t, executor_memory_limit, 0,
          "Bytes of anonymous memory an executor process may use (the store's shared pages "
          "do not count); one that uses more is killed and its task fails. 0: no limit.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(30),
          "On SIGTERM or SIGINT the worker drains: it takes no new tasks, finishes those it "
          "holds and hands its objects to other workers, then exits; nothing is re-run. After "
          "this long (or on a second signal) it stops at once and the scheduler re-runs what "
          "it held. 0 stops at once. Give docker/Kubernetes a longer stop grace period.");
ABSL_FLAG(std::string, log_level, "", "trace, debug, info, warn or error (default: $SPDLOG_LEVEL or info).");

namespace {

// fleet-executor in the directory of this program.
std::string ExecutorBesideThisBinary() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return "fleet-executor";
  return (self.parent_path() / "fleet-executor").string();
}

// absl keeps only the last occurrence of a repeated flag; --task_lib is
// meant to repeat, so gather every occurrence first and hand absl the rest.
std::vector<std::string> TakeRepeatedFlag(const std::string& name, int& argc, char** argv) {
  std::vector<std::string> values;
  const std::string eq = "--" + name + "=";
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (absl::StartsWith(arg, eq)) {
      values.push_back(arg.substr(eq.size()));
    } else if (arg == "--" + name && i + 1 < argc) {
      values.push_back(argv[++i]);
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  fleet::SetUsage(
      "fleet-worker --scheduler=HOST:PORT --slots=N --task_lib=PATH.so [--task_lib=...]\n"
      "Runs the remote functions of the given task libraries for a fleet cluster.\n"
      "Environment: FLEET_TOKEN, the cluster token (when the scheduler was started with one).");
  std::vector<std::string> libraries;
  for (const std::string& value : TakeRepeatedFlag("task_lib", argc, argv)) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      libraries.emplace_back(part);
    }
  }
  fleet::SkipMutexDeadlockChecksInReleaseBuilds();
  absl::ParseCommandLine(argc, argv);
  if (auto s = fleet::SetLogLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::fprintf(stderr, "fleet-worker: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  fleet::BlockStopSignals();

  fleet::worker::WorkerOptions options;
  options.scheduler_address = absl::GetFlag(FLAGS_scheduler);
  options.slots = absl::GetFlag(FLAGS_slots);
  options.task_libraries = libraries;
  options.listen_host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  options.cluster_token = fleet::ClusterTokenFromEnvironment();
  options.connect_timeout = absl::Seconds(absl::GetFlag(FLAGS_connect_timeout_s));
  options.scheduler_reconnect_timeout = absl::GetFlag(FLAGS_scheduler_reconnect_timeout);
  if (absl::GetFlag(FLAGS_store_memory) < 0 || absl::GetFlag(FLAGS_store_prefault) < 0) {
    std::fprintf(stderr, "fleet-worker: --store_memory and --store_prefault take bytes >= 0\n");
    return 2;
  }
  options.store_memory_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_store_memory));
  options.store_prefault_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_store_prefault));
  options.spill_dir = absl::GetFlag(FLAGS_spill_dir);
  options.serve_local_store = absl::GetFlag(FLAGS_local_store);
  options.deliver_to_owner = absl::GetFlag(FLAGS_deliver_to_owner);
  options.direct_tasks = absl::GetFlag(FLAGS_direct_tasks);
  const std::string isolation = absl::GetFlag(FLAGS_isolation);
  if (isolation != "process" && isolation != "thread") {
    std::fprintf(stderr, "fleet-worker: --isolation is 'process' or 'thread', not '%s'\n",
                 isolation.c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_executor_memory_limit) < 0) {
    std::fprintf(stderr, "fleet-worker: --executor_memory_limit takes bytes >= 0\n");
    return 2;
  }
  options.isolate_tasks = isolation == "process";
  options.executor_binary = absl::GetFlag(FLAGS_executor_binary);
  if (options.executor_binary.empty()) options.executor_binary = ExecutorBesideThisBinary();
  options.executor_memory_limit_bytes =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_executor_memory_limit));
  options.log_level = absl::GetFlag(FLAGS_log_level);
  auto server = fleet::worker::WorkerServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "fleet-worker: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::printf("fleet-worker %s serving at %s with %d slots\n", (*server)->id().Short().c_str(),
              (*server)->address().c_str(), (*server)->slots());
  std::fflush(stdout);

  // A signal drains the worker; when the scheduler has taken everything
  // over it ends the stream, and Wait below returns. A second signal, or
  // the drain timeout, stops it at once.
  const absl::Duration drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  std::thread signal_waiter([server = server->get(), drain_timeout] {
    fleet::WaitForStopSignal();
    if (drain_timeout > absl::ZeroDuration()) {
      server->Drain();
      if (!fleet::WaitForStopSignalFor(drain_timeout)) {
        fleet::GetLogger("worker")->warn(
            "event=drain_timed_out timeout={} hint=\"stopping now; the scheduler re-runs what "
            "this worker still held\"",
            absl::FormatDuration(drain_timeout));
      }
    }
    server->Shutdown();
  });
  signal_waiter.detach();
  absl::Status ended = (*server)->Wait();
  if (!ended.ok()) {
    fleet::GetLogger("worker")->error("event=worker_exiting status=\"{}\"", ended.ToString());
  }
  (*server)->Shutdown();
  // Everything that must not outlive the worker is gone once its parts are
  // stopped, except the spill files: the kernel frees the store's memfd and
  // sockets. Exiting here skips gRPC's library teardown, which can wait up
  // to a reconnect back-off (seconds) on a channel to a peer that already
  // exited, and would hold up every `docker stop`.
  std::error_code error;
  std::filesystem::remove_all((*server)->spill_dir(), error);
  fleet::FlushLogs();
  std::fflush(nullptr);
  std::_Exit(ended.ok() ? 0 : 1);
}
