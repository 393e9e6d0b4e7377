// The scheduler's HTTP endpoint: /healthz and /status (and, later, /metrics
// and the dashboard). Runs its own threads; reads state only by posting to
// the event loop and waiting for the answer.
#ifndef FLEET_SCHEDULER_STATUS_HTTP_H_
#define FLEET_SCHEDULER_STATUS_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/event_loop.h"
#include "scheduler/scheduler_core.h"

namespace httplib {
class Server;
}

namespace fleet::scheduler {

class StatusHttpServer {
 public:
  // Binds `host`:`port` (0 = any free port) and starts serving. `core` is
  // read only on `loop`.
  static absl::StatusOr<std::unique_ptr<StatusHttpServer>> Start(const std::string& host, int port,
                                                                  EventLoop* loop,
                                                                  SchedulerCore* core);
  ~StatusHttpServer();

  int port() const { return port_; }
  void Stop();

 private:
  StatusHttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_STATUS_HTTP_H_
