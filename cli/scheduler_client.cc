#include "cli/scheduler_client.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/net.h"
#include "grpcpp/client_context.h"

namespace fleet::cli {

SchedulerClient::SchedulerClient(std::string address, absl::Duration timeout)
    : address_(std::move(address)), timeout_(timeout) {
  channel_ = NewChannel(address_);  // sends $FLEET_TOKEN
  scheduler_ = v1::Scheduler::NewStub(channel_);
  admin_ = v1::Admin::NewStub(channel_);
}

void SchedulerClient::SetDeadline(grpc::ClientContext& context) const {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
}

absl::Status SchedulerClient::Explain(const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  const grpc::StatusCode code = status.error_code();
  if (code != grpc::StatusCode::UNAVAILABLE && code != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return ToAbslStatus(status);
  }
  std::string why;
  const std::string lower = absl::AsciiStrToLower(status.error_message());
  if (code == grpc::StatusCode::DEADLINE_EXCEEDED) {
    why = absl::StrCat("no answer within ", absl::FormatDuration(timeout_));
  } else if (absl::StrContains(lower, "connection refused")) {
    why = "connection refused";
  } else if (absl::StrContains(lower, "dns") || absl::StrContains(lower, "resolve")) {
    why = "the host name does not resolve";
  } else {
    why = status.error_message();
  }
  return absl::UnavailableError(absl::StrCat("cannot reach the scheduler at ", address_, " (", why,
                                             "); is it running? set --address or "
                                             "FLEET_ADDRESS"));
}

absl::StatusOr<std::string> SchedulerClient::GetStatusJson() {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetStatusReply reply;
  const grpc::Status status = scheduler_->GetStatus(&context, v1::GetStatusRequest(), &reply);
  if (!status.ok()) return Explain(status);
  return std::move(*reply.mutable_status_json());
}

absl::StatusOr<v1::ListTasksReply> SchedulerClient::ListTasks(const std::string& state,
                                                              uint32_t limit) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ListTasksRequest request;
  request.set_state(state);
  request.set_limit(limit);
  v1::ListTasksReply reply;
  const grpc::Status status = admin_->ListTasks(&context, request, &reply);
  if (!status.ok()) return Explain(status);
  return reply;
}

absl::StatusOr<std::string> SchedulerClient::CancelTask(const TaskId& task) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::CancelTaskRequest request;
  request.set_task_id(std::string(task.Binary()));
  v1::CancelTaskReply reply;
  const grpc::Status status = admin_->CancelTask(&context, request, &reply);
  if (!status.ok()) return Explain(status);
  return reply.state();
}

absl::Status SchedulerClient::StreamLogs(const v1::StreamLogsRequest& request,
                                         absl::FunctionRef<void(const v1::LogEntry&)> on_entry) {
  grpc::ClientContext context;
  if (request.follow()) {
    // The stream lasts as long as the user wants; only reaching the
    // scheduler is bounded.
    if (absl::StatusOr<std::string> reachable = GetStatusJson(); !reachable.ok()) {
      return reachable.status();
    }
  } else {
    SetDeadline(context);
  }
  std::unique_ptr<grpc::ClientReader<v1::StreamLogsReply>> reader =
      admin_->StreamLogs(&context, request);
  v1::StreamLogsReply reply;
  while (reader->Read(&reply)) {
    for (const v1::LogEntry& entry : reply.entries()) on_entry(entry);
  }
  const grpc::Status status = reader->Finish();
  if (request.follow() && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(
        absl::StrCat("the scheduler at ", address_, " went away: ", status.error_message()));
  }
  return Explain(status);
}

}  // namespace fleet::cli
