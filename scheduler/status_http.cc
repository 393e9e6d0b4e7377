#include "scheduler/status_http.h"

#include <future>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "scheduler/dashboard_html.h"
#include "scheduler/metrics_text.h"
#include "scheduler/status_json.h"

namespace fleet::scheduler {
namespace {

// How long a request waits for the event loop before reporting it stuck.
constexpr std::chrono::seconds kLoopAnswerTimeout(5);

// Runs `read` on the loop thread and returns its result, or nullopt when
// the loop did not answer in time.
template <typename T, typename Fn>
std::optional<T> AskLoop(EventLoop* loop, Fn read) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> answer = promise->get_future();
  loop->Post([promise, read = std::move(read)]() mutable { promise->set_value(read()); });
  if (answer.wait_for(kLoopAnswerTimeout) != std::future_status::ready) return std::nullopt;
  return answer.get();
}

// Answers with the document `make` builds on the loop thread, or 503 with
// `stuck_body` when the loop does not answer.
template <typename Fn>
void AnswerFromLoop(EventLoop* loop, Fn make, const char* content_type, const char* stuck_body,
                    httplib::Response& res) {
  if (std::optional<std::string> body = AskLoop<std::string>(loop, std::move(make))) {
    res.set_content(*body, content_type);
  } else {
    res.status = 503;
    res.set_content(stuck_body, content_type);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<StatusHttpServer>> StatusHttpServer::Start(const std::string& host,
                                                                         int port, EventLoop* loop,
                                                                         SchedulerCore* core) {
  std::unique_ptr<StatusHttpServer> http(new StatusHttpServer());
  http->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *http->server_;

  server.Get("/healthz", [loop](const httplib::Request&, httplib::Response& res) {
    if (AskLoop<bool>(loop, [] { return true; })) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content("scheduler event loop is not answering\n", "text/plain");
    }
  });
  server.Get("/status", [loop, core](const httplib::Request&, httplib::Response& res) {
    AnswerFromLoop(
        loop, [core] { return StatusJson(core->Snapshot()); }, "application/json",
        R"({"error":"scheduler event loop is not answering"})", res);
  });

  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kDashboardHtml, "text/html; charset=utf-8");
  });
  server.Get("/metrics", [loop, core](const httplib::Request&, httplib::Response& res) {
    AnswerFromLoop(
        loop, [core] { return PrometheusText(core->Snapshot()); },
        "text/plain; version=0.0.4; charset=utf-8", "scheduler event loop is not answering\n",
        res);
  });

  if (port == 0) {
    http->port_ = server.bind_to_any_port(host);
  } else if (server.bind_to_port(host, port)) {
    http->port_ = port;
  } else {
    http->port_ = -1;
  }
  if (http->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind the HTTP status endpoint to ", host,
                                               ":", port, "; is the port in use? Pick another "
                                               "with --http_port"));
  }
  http->thread_ = std::thread([server = http->server_.get()] { server->listen_after_bind(); });
  return http;
}

StatusHttpServer::~StatusHttpServer() { Stop(); }

void StatusHttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace fleet::scheduler
