#include "scheduler/admin_service.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/batch_queue.h"
#include "common/completion_tag.h"
#include "common/grpc_status.h"
#include "common/ids.h"
#include "scheduler/unary_call.h"

namespace fleet::scheduler {
namespace {

// A follower that reads more slowly than the cluster produces loses entries
// beyond this backlog (and is told how many) instead of growing the
// scheduler's memory.
constexpr std::size_t kMaxFollowerBacklogBytes = 16 << 20;

// One StreamLogs call: the recent events, then (when following) each new
// entry as the core records it. One write in flight; entries that arrive
// meanwhile are batched (BatchQueue).
//
// Lifetime: shared by gRPC (until the call is done and finished) and the
// event log's follower callback (until unfollowed on the loop).
class LogStream final : public std::enable_shared_from_this<LogStream> {
 public:
  // Asks for the next StreamLogs call; once one arrives, serves it and asks
  // for the next.
  static void Accept(v1::Admin::AsyncService* service, grpc::ServerCompletionQueue* queue,
                     EventLoop* loop, SchedulerCore* core, const ClusterTokenCheck* token) {
    auto stream = std::shared_ptr<LogStream>(new LogStream(service, queue, loop, core, token));
    stream->self_ = stream;
    stream->context_.AsyncNotifyWhenDone(&stream->done_tag_);
    service->RequestStreamLogs(&stream->context_, &stream->request_, &stream->writer_, queue,
                               queue, &stream->accepted_tag_);
  }

  void OnAccepted(bool ok) {
    if (!ok) {  // shutting down; a call never started is never done
      self_.reset();
      return;
    }
    accepted_ = true;
    Accept(service_, queue_, loop_, core_, token_);
    if (grpc::Status allowed = token_->Check(context_); !allowed.ok()) {
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      writer_.Finish(allowed, &finish_tag_);
      return;
    }
    Start(shared_from_this(), core_, request_);
  }

  static void Start(std::shared_ptr<LogStream> stream, SchedulerCore* core,
                    v1::StreamLogsRequest request) {
    EventLoop* loop = stream->loop_;
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
      stream->following_core_ = core;
    });
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

  void OnWriteDone(bool ok) {
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
    MaybeRelease();
  }

  // The call is over: finished, or cancelled (the caller went away).
  void OnCallDone(bool) {
    if (accepted_ && context_.IsCancelled()) {
      {
        absl::MutexLock lock(&mu_);
        cancelled_ = true;
      }
      outbox_.Close();
      MaybeFinish();
    }
    // Stop following on the loop, which owns the event log; the callback's
    // hold on this stream goes with it.
    std::optional<ClusterEventLog::FollowerId> follower;
    SchedulerCore* core = nullptr;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      follower = follower_;
      core = following_core_;
    }
    if (follower) loop_->Post([core, id = *follower] { core->events().Unfollow(id); });
    MaybeRelease();
  }

  void OnFinished(bool) {
    {
      absl::MutexLock lock(&mu_);
      finish_done_ = true;
    }
    MaybeRelease();
  }

 private:
  LogStream(v1::Admin::AsyncService* service, grpc::ServerCompletionQueue* queue,
            EventLoop* loop, SchedulerCore* core, const ClusterTokenCheck* token)
      : service_(service), queue_(queue), loop_(loop), core_(core), token_(token) {}

  // gRPC's hold goes once the call is done and, if it was accepted and
  // finished, the finish has completed.
  void MaybeRelease() {
    {
      absl::MutexLock lock(&mu_);
      if (!done_ || writing_ || (finished_ && !finish_done_)) return;
    }
    self_.reset();
  }

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
    writer_.Write(current_, &write_tag_);
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
      writer_.Finish(grpc::Status::OK, &finish_tag_);
    } else {
      writer_.Write(current_, &write_tag_);
    }
  }

  v1::Admin::AsyncService* const service_;
  grpc::ServerCompletionQueue* const queue_;
  EventLoop* const loop_;
  SchedulerCore* const core_;
  const ClusterTokenCheck* const token_;
  grpc::ServerContext context_;
  v1::StreamLogsRequest request_;
  grpc::ServerAsyncWriter<v1::StreamLogsReply> writer_{&context_};
  MemberTag<LogStream, &LogStream::OnAccepted> accepted_tag_{this};
  MemberTag<LogStream, &LogStream::OnWriteDone> write_tag_{this};
  MemberTag<LogStream, &LogStream::OnFinished> finish_tag_{this};
  MemberTag<LogStream, &LogStream::OnCallDone> done_tag_{this};
  bool accepted_ = false;  // the core thread's
  BatchQueue<v1::StreamLogsReply> outbox_;
  v1::StreamLogsReply current_;  // the reply being written; touched by the writer only
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool backlog_only_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_done_ ABSL_GUARDED_BY(mu_) = false;
  std::size_t backlog_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t written_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ClusterEventLog::FollowerId> follower_ ABSL_GUARDED_BY(mu_);
  SchedulerCore* following_core_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<LogStream> self_;  // gRPC's hold (MaybeRelease)
};

}  // namespace

void AdminService::AcceptCalls(grpc::ServerCompletionQueue* queue) {
  UnaryMethod<v1::Admin::AsyncService, v1::ListTasksRequest, v1::ListTasksReply>::Accept(
      this, queue, &AdminService::RequestListTasks, token_,
      [core = core_](const v1::ListTasksRequest& request,
                     v1::ListTasksReply& reply) -> absl::Status {
        absl::StatusOr<v1::ListTasksReply> tasks = core->ListTasks(request);
        if (!tasks.ok()) return tasks.status();
        reply = std::move(*tasks);
        return absl::OkStatus();
      });
  UnaryMethod<v1::Admin::AsyncService, v1::CancelTaskRequest, v1::CancelTaskReply>::Accept(
      this, queue, &AdminService::RequestCancelTask, token_,
      [core = core_](const v1::CancelTaskRequest& request,
                     v1::CancelTaskReply& reply) -> absl::Status {
        absl::StatusOr<TaskId> id = TaskId::FromBinary(request.task_id());
        if (!id.ok()) return id.status();
        absl::StatusOr<std::string> state = core->CancelTaskAsOperator(*id);
        if (!state.ok()) return state.status();
        reply.set_state(*state);
        return absl::OkStatus();
      });
  LogStream::Accept(this, queue, loop_, core_, token_);
}

}  // namespace fleet::scheduler
