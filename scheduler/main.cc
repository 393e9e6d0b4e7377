// fleet-scheduler: the cluster's central scheduler daemon.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/cluster_token.h"
#include "common/flags_usage.h"
#include "common/logging.h"
#include "common/mutex_checks.h"
#include "common/net.h"
#include "common/stop_signals.h"
#include "scheduler/scheduler_server.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and HTTP).");
ABSL_FLAG(int, port, 50051, "gRPC port for workers and clients; 0 picks a free port.");
ABSL_FLAG(int, http_port, 8265, "HTTP port for /healthz and /status; 0 picks a free port, -1 disables.");
ABSL_FLAG(bool, local_socket, true,
          "With a loopback or wildcard --host, also listen on the abstract unix socket "
          "fleet-scheduler-PORT, which workers and "
          "clients on this host that connect through a loopback address (127.0.0.1:PORT, "
          "localhost:PORT) use instead of TCP: a round trip is faster. --nolocal_socket: TCP "
          "only.");
ABSL_FLAG(std::string, port_file, "", "Write the bound gRPC port to this file once listening.");
ABSL_FLAG(std::string, http_port_file, "", "Write the bound HTTP port to this file once listening.");
ABSL_FLAG(int64_t, inline_threshold_bytes, 100 << 10,
          "Results and Put values up to this size travel inline in messages.");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(10),
          "A worker not heard from for this long (it sends a heartbeat every second) is "
          "declared dead: its tasks are re-run elsewhere and its stream is ended, so it exits "
          "and rejoins as a new worker when restarted. E.g. 10s, 1500ms.");
ABSL_FLAG(uint64_t, max_pending_tasks, 1'000'000,
          "Back-pressure: while more unfinished tasks than this are held, no more "
          "submissions are admitted and clients' Remote() calls block once their window is "
          "full, so the scheduler's memory stays bounded.");
ABSL_FLAG(uint64_t, max_lineage_bytes, uint64_t{1} << 30,
          "Lineage: the specs of finished tasks kept to rebuild lost results take at most this "
          "many bytes; beyond it the oldest are dropped, and their results fail as lost when "
          "their copies go.");
ABSL_FLAG(int, max_reconstructions, 3,
          "How many times one task may run again to rebuild results lost with their workers; "
          "-1 for no limit. Separate from each task's max_retries.");
ABSL_FLAG(std::string, state_dir, "",
          "Keep the scheduler's state durably in this directory (an embedded RocksDB); a "
          "scheduler started again on it (after a crash or kill -9) takes over its tasks, "
          "objects and sessions, and waits for the workers and clients to reconnect. Empty: "
          "state in memory only; a restart loses every job.");
ABSL_FLAG(bool, state_sync, false,
          "With --state_dir: each commit waits for the disk, so the state also survives a "
          "machine crash (slower); by default it survives the scheduler process dying.");
ABSL_FLAG(absl::Duration, reconnect_window, absl::Seconds(10),
          "After a restart with --state_dir: how long to wait for the workers that were "
          "connected to come back before their tasks run again elsewhere and their objects "
          "are rebuilt. Nothing is dispatched meanwhile (it ends early once all are back).");
ABSL_FLAG(absl::Duration, client_grace, absl::Seconds(10),
          "A client whose connection broke (or that had a session before a restart) may "
          "reconnect within this long and carry on; after it, its refs are released and its "
          "pending tasks cancelled. 0: at once.");
ABSL_FLAG(std::string, log_level, "", "trace, debug, info, warn or error (default: $SPDLOG_LEVEL or info).");

int main(int argc, char** argv) {
  fleet::SetUsage(
      "fleet-scheduler --port=50051 --http_port=8265\n"
      "The central scheduler of a fleet cluster: workers and clients connect to its gRPC port;\n"
      "/healthz and /status are served on its HTTP port.\n"
      "Environment: FLEET_TOKEN, when set, is the cluster token every worker, client and fleet\n"
      "command must send (they read it from their own FLEET_TOKEN).");
  fleet::SkipMutexDeadlockChecksInReleaseBuilds();
  absl::ParseCommandLine(argc, argv);
  if (auto s = fleet::SetLogLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    std::fprintf(stderr, "fleet-scheduler: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  fleet::BlockStopSignals();

  fleet::scheduler::SchedulerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.http_port = absl::GetFlag(FLAGS_http_port);
  options.core.inline_threshold_bytes = absl::GetFlag(FLAGS_inline_threshold_bytes);
  options.core.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  options.core.max_pending_tasks = absl::GetFlag(FLAGS_max_pending_tasks);
  options.core.max_lineage_bytes = absl::GetFlag(FLAGS_max_lineage_bytes);
  options.core.max_reconstructions = absl::GetFlag(FLAGS_max_reconstructions);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.state_sync = absl::GetFlag(FLAGS_state_sync);
  options.core.reconnect_window = absl::GetFlag(FLAGS_reconnect_window);
  options.core.client_grace = absl::GetFlag(FLAGS_client_grace);
  options.cluster_token = fleet::ClusterTokenFromEnvironment();
  options.local_socket = absl::GetFlag(FLAGS_local_socket);
  if (options.core.heartbeat_timeout < absl::Seconds(2)) {
    std::fprintf(stderr,
                 "fleet-scheduler: --heartbeat_timeout=%s would declare healthy workers dead: "
                 "they send a heartbeat every second; use 2s or more (10s by default)\n",
                 absl::FormatDuration(options.core.heartbeat_timeout).c_str());
    return 2;
  }
  auto server = fleet::scheduler::SchedulerServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "fleet-scheduler: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  for (auto [flag, port] : {std::pair{absl::GetFlag(FLAGS_port_file), (*server)->port()},
                            std::pair{absl::GetFlag(FLAGS_http_port_file), (*server)->http_port()}}) {
    if (flag.empty()) continue;
    if (auto s = fleet::WriteFileAtomically(flag, absl::StrCat(port, "\n")); !s.ok()) {
      std::fprintf(stderr, "fleet-scheduler: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  std::printf("fleet-scheduler listening grpc_port=%d http_port=%d local_socket=%s\n",
              (*server)->port(), (*server)->http_port(),
              (*server)->local_socket().empty() ? "none" : (*server)->local_socket().c_str());
  std::fflush(stdout);

  const int signal = fleet::WaitForStopSignal();
  fleet::GetLogger("scheduler")->info("event=scheduler_stopping signal={}", signal);
  (*server)->Shutdown();
  return 0;
}
