#include "scheduler/admin_service.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/batch_queue.h"
#include "common/grpc_status.h"
#include "common/ids.h"

namespace fleet::scheduler {
namespace {

// A follower that reads more slowly than the cluster produces loses entries
// beyond this backlog (and is told how many) instead of growing the
// scheduler's memory.
constexpr std::size_t kMaxFollowerBacklogBytes = 16 << 20;

// Answers a unary call from the event loop thread: `answer` runs there, where
// the core may be read, and returns the call's status. The reaction itself
// returns at once (it never waits for the loop), as GetStatus does.
template <typename Fn>
grpc::ServerUnaryReactor* AnswerOnLoop(grpc::CallbackServerContext* context, EventLoop* loop,
                                       const ClusterTokenCheck& token, Fn answer) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (grpc::Status allowed = token.Check(*context); !allowed.ok()) {
    reactor->Finish(std::move(allowed));
    return reactor;
  }
  loop->Post(
      [reactor, answer = std::move(answer)]() mutable { reactor->Finish(ToGrpcStatus(answer())); });
  return reactor;
}

// One StreamLogs call: the recent events, then (when following) each new
// entry as the core records it. One write in flight; entries that arrive
// meanwhile are batched (BatchQueue).
//
// Lifetime: shared by gRPC (until OnDone) and the event log's follower
// callback (until unfollowed on the loop).
class LogStream final : public grpc::ServerWriteReactor<v1::StreamLogsReply>,
                        public std::enable_shared_from_this<LogStream> {
 public:
  static LogStream* Start(EventLoop* loop, SchedulerCore* core, v1::StreamLogsRequest request) {
    auto stream = std::shared_ptr<LogStream>(new LogStream(loop));
    stream->self_ = stream;
    loop->Post([stream, core, request = std::move(request)] {
      for (const v1::ClusterEvent& event : core->events().Recent(request.tail())) {
        v1::LogEntry entry;
        *entry.mutable_event() = event;
        stream->Send(entry);
      }
      if (!request.follow()) {
        stream->EndAfterBacklog();
        return;
      }
      absl::MutexLock lock(&stream->mu_);
      if (stream->done_) return;  // cancelled before it could follow
      stream->follower_ = core->events().Follow(
          request.task_output(), [stream](const v1::LogEntry& entry) { stream->Send(entry); });
      stream->core_ = core;
    });
    return stream.get();
  }

  // Thread-safe; a no-op once the call has ended.
  void Send(const v1::LogEntry& entry) {
    const std::size_t bytes = entry.ByteSizeLong() + 4;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (backlog_bytes_ + bytes > kMaxFollowerBacklogBytes) {
        dropped_++;
        return;
      }
      backlog_bytes_ += bytes;
    }
    if (outbox_.Add(bytes, [&](v1::StreamLogsReply& reply) { *reply.add_entries() = entry; })) {
      StartNextWrite();
    }
  }

  void OnWriteDone(bool ok) override {
    uint64_t dropped = 0;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      backlog_bytes_ -= std::min(backlog_bytes_, written_bytes_);
      if (!ok) cancelled_ = true;  // the caller is gone
      dropped = std::exchange(dropped_, 0);
    }
    if (ok && dropped > 0) {
      v1::LogEntry note;
      note.mutable_event()->set_name("entries_dropped");
      note.mutable_event()->set_detail(absl::StrCat(
          dropped, " entries were dropped: this follower read more slowly than they came"));
      Send(note);
    }
    if (ok) StartNextWrite();
    MaybeFinish();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    outbox_.Close();
    MaybeFinish();
  }

  void OnDone() override {
    // Stop following on the loop, which owns the event log; the callback's
    // hold on this stream goes with it.
    std::optional<ClusterEventLog::FollowerId> follower;
    SchedulerCore* core = nullptr;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      follower = follower_;
      core = core_;
    }
    if (follower) loop_->Post([core, id = *follower] { core->events().Unfollow(id); });
    self_.reset();
  }

 private:
  explicit LogStream(EventLoop* loop) : loop_(loop) {}

  // Without --follow: ends the call once what was queued has been written.
  void EndAfterBacklog() {
    {
      absl::MutexLock lock(&mu_);
      backlog_only_ = true;
    }
    MaybeFinish();
  }

  // Taking the batch and marking the write in flight happen under one lock,
  // so MaybeFinish never finishes between them and loses a batch.
  void StartNextWrite() {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || writing_) return;
      std::optional<v1::StreamLogsReply> next = outbox_.TakeForWrite();
      if (!next) return;
      writing_ = true;
      current_ = std::move(*next);
      written_bytes_ = current_.ByteSizeLong();
    }
    StartWrite(&current_);
  }

  // Ends the call once it was cancelled, or, without --follow, once
  // everything queued has been written.
  void MaybeFinish() {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || writing_ || !(backlog_only_ || cancelled_)) return;
      if (!cancelled_) {
        std::optional<v1::StreamLogsReply> next = outbox_.TakeForWrite();
        if (next) {
          writing_ = true;
          current_ = std::move(*next);
          written_bytes_ = current_.ByteSizeLong();
        }
      }
      if (!writing_) finished_ = finish = true;
    }
    if (finish) {
      Finish(grpc::Status::OK);
    } else {
      StartWrite(&current_);
    }
  }

  EventLoop* const loop_;
  BatchQueue<v1::StreamLogsReply> outbox_;
  v1::StreamLogsReply current_;  // the reply being written; touched by the writer only
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool backlog_only_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::size_t backlog_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t written_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ClusterEventLog::FollowerId> follower_ ABSL_GUARDED_BY(mu_);
  SchedulerCore* core_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<LogStream> self_;  // gRPC's hold, dropped in OnDone
};

}  // namespace

grpc::ServerUnaryReactor* AdminService::ListTasks(grpc::CallbackServerContext* context,
                                                  const v1::ListTasksRequest* request,
                                                  v1::ListTasksReply* reply) {
  return AnswerOnLoop(context, loop_, *token_, [this, request, reply]() -> absl::Status {
    absl::StatusOr<v1::ListTasksReply> tasks = core_->ListTasks(*request);
    if (!tasks.ok()) return tasks.status();
    *reply = std::move(*tasks);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminService::CancelTask(grpc::CallbackServerContext* context,
                                                   const v1::CancelTaskRequest* request,
                                                   v1::CancelTaskReply* reply) {
  return AnswerOnLoop(context, loop_, *token_, [this, request, reply]() -> absl::Status {
    absl::StatusOr<TaskId> id = TaskId::FromBinary(request->task_id());
    if (!id.ok()) return id.status();
    absl::StatusOr<std::string> state = core_->CancelTaskAsOperator(*id);
    if (!state.ok()) return state.status();
    reply->set_state(*state);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::StreamLogsReply>* AdminService::StreamLogs(
    grpc::CallbackServerContext* context, const v1::StreamLogsRequest* request) {
  if (grpc::Status allowed = token_->Check(*context); !allowed.ok()) {
    return new RefusedWriteCall<v1::StreamLogsReply>(std::move(allowed));
  }
  return LogStream::Start(loop_, core_, *request);
}

}  // namespace fleet::scheduler
