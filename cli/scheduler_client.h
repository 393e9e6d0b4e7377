// The `fleet` tool's connection to a scheduler: its Scheduler.GetStatus and
// Admin calls, each bounded by the tool's --timeout (except a followed log
// stream, which lasts until the scheduler ends it or the tool is stopped).
// A scheduler that cannot be reached is reported as Unavailable with a
// message saying where it was looked for and how to point elsewhere.
//
// Thread-compatible.
#ifndef FLEET_CLI_SCHEDULER_CLIENT_H_
#define FLEET_CLI_SCHEDULER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "fleet/v1/admin.grpc.pb.h"
#include "fleet/v1/scheduler.grpc.pb.h"

namespace fleet::cli {

class SchedulerClient {
 public:
  SchedulerClient(std::string address, absl::Duration timeout);

  const std::string& address() const { return address_; }

  // The /status document, as JSON text.
  absl::StatusOr<std::string> GetStatusJson();
  absl::StatusOr<v1::ListTasksReply> ListTasks(const std::string& state, uint32_t limit);
  // Returns the state the task was in.
  absl::StatusOr<std::string> CancelTask(const TaskId& task);
  // Calls `on_entry` for each entry until the stream ends: after the recent
  // events, or, with request.follow(), when the scheduler goes away.
  absl::Status StreamLogs(const v1::StreamLogsRequest& request,
                          absl::FunctionRef<void(const v1::LogEntry&)> on_entry);

 private:
  // The call's outcome as an absl::Status; an unreachable scheduler gets a
  // message that says so.
  absl::Status Explain(const grpc::Status& status) const;
  void SetDeadline(grpc::ClientContext& context) const;

  const std::string address_;
  const absl::Duration timeout_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Scheduler::Stub> scheduler_;
  std::unique_ptr<v1::Admin::Stub> admin_;
};

}  // namespace fleet::cli

#endif  // FLEET_CLI_SCHEDULER_CLIENT_H_
