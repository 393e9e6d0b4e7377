#include "scheduler/scheduler_server.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/cluster_token.h"
#include "common/event_loop.h"
#include "common/logging.h"
#include "common/net.h"
#include "common/scheduler_socket.h"
#include "common/status_macros.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "scheduler/admin_service.h"
#include "scheduler/object_relay.h"
#include "scheduler/scheduler_service.h"
#include "scheduler/state_store.h"
#include "scheduler/status_http.h"

namespace fleet::scheduler {

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::Start(SchedulerOptions options) {
  std::unique_ptr<SchedulerServer> server(new SchedulerServer());
  StoredState stored;
  if (!options.state_dir.empty()) {
    ASSIGN_OR_RETURN(server->state_, StateStore::Open(options.state_dir, options.state_sync));
    ASSIGN_OR_RETURN(stored, server->state_->Load());
    options.core.durable = true;
  }
  if (options.core.epoch == 0) {
    // Each start has a larger epoch than any before it on this state.
    options.core.epoch = std::max<uint64_t>(static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())),
                                            stored.meta.epoch() + 1);
  }
  server->router_ = std::make_unique<StreamRouter>();
  server->core_ = std::make_unique<SchedulerCore>(options.core, server->router_.get());
  SchedulerCore* core = server->core_.get();
  if (!stored.fresh) RETURN_IF_ERROR(core->Restore(stored));
  if (server->state_ != nullptr) {
    StateChanges changes;
    core->CollectChanges(changes);  // the new epoch
    RETURN_IF_ERROR(server->state_->Commit(changes));
  }
  server->loop_ = std::make_unique<EventLoop>(
      [core, router = server->router_.get(), state = server->state_.get()] {
        core->Dispatch();
        if (state != nullptr) {
          StateChanges changes;
          core->CollectChanges(changes);
          if (absl::Status committed = state->Commit(changes); !committed.ok()) {
            // What this batch decided would not survive a restart, and the
            // workers and clients must not act on it: stop here, and let a
            // restart take over from the last commit.
            GetLogger("scheduler")->critical("event=state_commit_failed status=\"{}\"",
                                             committed.ToString());
            std::_Exit(1);
          }
        }
        router->Flush();
      }, EventLoop::DrivenByCompletionQueue{});
  server->token_ = std::make_unique<ClusterTokenCheck>(options.cluster_token,
                                                       absl::StrCat("the fleet scheduler on ", Hostname()));
  server->service_ = std::make_unique<SchedulerService>(server->loop_.get(), core,
                                                        server->router_.get(), server->token_.get());

  grpc::ServerBuilder builder;
  // Held until the server has bound it, so that the socket can be named
  // after a port picked for it.
  std::optional<HeldPort> held_port;
  int port = options.port;
  // Bound to another address, the scheduler is not what 127.0.0.1:PORT
  // reaches (an SSH tunnel, say), so it must not take that port's socket.
  const bool local_socket = options.local_socket && ServesLoopback(options.host);
  if (local_socket && port == 0) {
    absl::StatusOr<HeldPort> picked = HeldPort::Pick(options.host);
    if (picked.ok()) {
      port = picked->port();
      held_port.emplace(std::move(*picked));
    } else {
      GetLogger("scheduler")
          ->warn("event=no_local_socket reason=\"{}\"", picked.status().message());
    }
  }
  builder.AddListeningPort(absl::StrCat(options.host, ":", port), grpc::InsecureServerCredentials(),
                           &server->port_);
  if (local_socket && port != 0) {
    if (absl::Status free = SchedulerSocketFree(port); free.ok()) {
      server->local_socket_ = SchedulerSocketTarget(port);
      builder.AddListeningPort(server->local_socket_, grpc::InsecureServerCredentials());
    } else {
      GetLogger("scheduler")
          ->warn(
              "event=no_local_socket reason=\"{}\" effect=\"same-host workers and clients use "
              "TCP\"",
              free.message());
    }
  }
  ConfigureServer(builder);
  builder.RegisterService(server->service_.get());
  server->admin_ = std::make_unique<AdminService>(server->loop_.get(), core, server->token_.get());
  builder.RegisterService(server->admin_.get());
  server->relay_ = std::make_unique<ObjectRelay>(core, server->token_.get());
  builder.RegisterService(server->relay_.get());
  server->queue_ = builder.AddCompletionQueue();
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options.host, ":", port,
        server->local_socket_.empty() ? "" : absl::StrCat(" and ", server->local_socket_),
        " for gRPC; is the port in use? Pick another with --port"));
  }
  server->core_thread_ = std::thread(
      [service = server->service_.get(), admin = server->admin_.get(),
       relay = server->relay_.get(), queue = server->queue_.get()] {
        admin->AcceptCalls(queue);
        relay->AcceptCalls(queue);
        service->Drain(queue);
      });
  if (options.http_port >= 0) {
    auto http = StatusHttpServer::Start(options.host, options.http_port, server->loop_.get(), core);
    if (!http.ok()) return http.status();
    server->http_ = std::move(*http);
  }
  // Checks often enough that a silent worker is declared dead within a
  // quarter of the timeout after it expires.
  const absl::Duration check_every =
      std::clamp(options.core.heartbeat_timeout / 4, absl::Milliseconds(50), absl::Seconds(1));
  // A gap between two checks far beyond `check_every` means the scheduler
  // itself was not running (stopped, its host frozen, its loop stuck): the
  // workers' heartbeats could not be heard, so their silence proves
  // nothing, and they get a full timeout again.
  const absl::Duration stalled_after = std::max(3 * check_every, absl::Seconds(2));
  server->last_liveness_check_ = absl::Now();
  server->liveness_ = std::thread([raw = server.get(), check_every, stalled_after] {
    while (!raw->stop_liveness_.WaitForNotificationWithTimeout(check_every)) {
      raw->loop_->Post([raw, stalled_after] {
        const absl::Time now = absl::Now();
        if (now - raw->last_liveness_check_ > stalled_after) {
          raw->core_->ExcuseSilence(now - raw->last_liveness_check_);
        }
        raw->last_liveness_check_ = now;
        for (const auto& [id, reason] : raw->core_->ExpireSilentWorkers()) {
          raw->router_->FenceWorker(id, reason);
        }
        raw->core_->ExpireAbsentSessions();
        raw->router_->TellPendingCounts();
      });
    }
  });
  GetLogger("scheduler")->info(
      "event=scheduler_started grpc_port={} http_port={} epoch={} heartbeat_timeout={} "
      "state_dir=\"{}\" restored={} token_required={}",
      server->port_, server->http_port(), options.core.epoch,
      absl::FormatDuration(options.core.heartbeat_timeout), options.state_dir, !stored.fresh,
      server->token_->required());
  return server;
}

SchedulerServer::~SchedulerServer() { Shutdown(); }

int SchedulerServer::http_port() const { return http_ ? http_->port() : -1; }

void SchedulerServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    stop_liveness_.Notify();
    if (liveness_.joinable()) liveness_.join();
    if (http_) http_->Stop();
    if (grpc_server_) {
      // Cancels the open streams; their close events still reach the loop.
      grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    }
    // The calls are cancelled; what they post from now on is dropped.
    if (loop_) loop_->Stop();
    if (core_thread_.joinable()) {
      service_->RequestStop();  // Drain shuts the queue down
      core_thread_.join();
    } else if (queue_) {
      queue_->Shutdown();
      void* tag = nullptr;
      bool ok = false;
      while (queue_->Next(&tag, &ok)) {
      }
    }
  });
}

void SchedulerServer::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

}  // namespace fleet::scheduler
