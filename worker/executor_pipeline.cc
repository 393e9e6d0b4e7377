// Executor slots with process isolation: each slot keeps its executor
// process fed with tasks and takes their answers in order.
#include <algorithm>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "worker/executor.h"
#include "worker/task_call.h"

namespace fleet::worker {
namespace {

// A slot sends its executor enough tasks to cover this much work, so that
// short tasks follow each other without a round trip to the daemon between
// them; longer tasks go one at a time, where another slot may take them.
constexpr double kPipelineCoverUs = 2000;
// Deep enough that a slot and its executor, running no-op tasks, trade
// dozens of tasks per wake-up rather than a few: each wake-up is a context
// switch on both sides (in M1 on 2 cores, 64 rather than 16 took ~2 us of
// worker CPU off each no-op task).
constexpr std::size_t kMaxPipelineDepth = 64;
// Below this, a slot sends its executor the next task while one runs, so
// that the executor starts it at once rather than after the daemon has
// reported the last one and gathered the next one's arguments (a few
// hundred us on two busy cores: 2-3 % of a 10 ms task). The scheduler
// queues two per slot for such tasks to keep it fed (its
// pipeline_ahead_below). Longer tasks go one at a time, where another slot
// may take them.
constexpr double kPipelineAheadBelowUs = 50'000;
// Tasks sent behind the one the executor runs never add up to more bytes
// than this, well under a socket buffer (~208 KiB): the slot's thread
// blocks in neither direction then. (It reads outcomes only between sends:
// with more queued in the channel, an executor blocked writing a large
// result, and the thread blocked writing the next task, waited on each
// other for ever.)
constexpr std::size_t kMaxPipelineBytes = 64 * 1024;
// How often an idle slot checks that its executor is still there.
constexpr absl::Duration kIdleCheckInterval = absl::Milliseconds(200);
constexpr double kRunTimeSmoothing = 0.1;

// The failure a dead executor process means for the task it was running.
v1::TaskFailure ExecutorEnded(const absl::Status& why, const std::string& function_name) {
  v1::TaskFailure::Kind kind = v1::TaskFailure::EXECUTOR_DIED;
  if (absl::IsDeadlineExceeded(why)) kind = v1::TaskFailure::TIMED_OUT;
  if (absl::IsCancelled(why)) kind = v1::TaskFailure::CANCELLED;
  return MakeFailure(kind, absl::StrCat(why.message(), " while running ", function_name));
}

}  // namespace

std::size_t Executor::PipelineDepth(const Slot& slot) {
  const double tasks = kPipelineCoverUs / std::max(1.0, slot.mean_run_us);
  const std::size_t min_depth = slot.mean_run_us < kPipelineAheadBelowUs ? 2 : 1;
  return std::clamp<std::size_t>(static_cast<std::size_t>(tasks), min_depth, kMaxPipelineDepth);
}

void Executor::RunProcessSlot(Slot& slot) {
  std::deque<Prepared> sent;  // in the executor's order; the front runs
  std::size_t sent_bytes = 0;  // their ExecutorTasks'
  // Gathered and counted in slot.in_flight, but not sent: it waits for
  // room behind the tasks sent (kMaxPipelineBytes).
  std::optional<Prepared> held;
  while (true) {
    std::deque<v1::TaskAssignment> taken;
    std::optional<absl::Status> gone_while_idle;
    {
      absl::MutexLock lock(&mu_);
      if (sent.empty() && !held) {
        // While idle, the executor is checked now and then: one that died
        // (killed from outside, say) is replaced at once, not when the
        // next task comes.
        auto work = [this, &slot]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || stopping_ || slot.sent_directly.has_value();
        };
        slot.idle = slot.process->alive();
        while (!mu_.AwaitWithTimeout(absl::Condition(&work), kIdleCheckInterval)) {
          gone_while_idle = slot.process->ReapIfGoneWhileIdle();
          if (gone_while_idle) break;
        }
        slot.idle = false;
      }
      if (slot.sent_directly) {  // by Enqueue, while this thread slept
        sent_bytes += slot.sent_directly->message_bytes;
        sent.push_back(std::move(*slot.sent_directly));
        slot.sent_directly.reset();
      }
      if (stopping_) break;
      const std::size_t depth = PipelineDepth(slot);
      // Topped up once half of it has run, not after each outcome: one
      // write then carries several tasks, and the executor still has half
      // a pipeline to run meanwhile.
      const bool top_up = sent.size() <= depth / 2;
      while (top_up && !gone_while_idle && !held && !queue_.empty() &&
             sent.size() + taken.size() < depth) {
        taken.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    if (gone_while_idle) {
      GetLogger("worker")->warn("event=executor_ended worker={} task=none reason=\"{}\"",
                                identity_.id.Short(), gone_while_idle->message());
      if (absl::Status started = StartExecutor(slot); !started.ok()) {
        GetLogger("worker")->error("event=executor_start_failed worker={} error=\"{}\"",
                                   identity_.id.Short(), started.message());
      }
      continue;
    }

    bool delivered = true;
    while ((held || !taken.empty()) && delivered) {
      Prepared prepared;
      std::optional<v1::TaskFailure> failure;
      if (held) {
        prepared = std::move(*held);
        held.reset();
      } else {
        prepared.assignment = std::move(taken.front());
        taken.pop_front();
        failure = Gather(prepared);
      }
      if (!failure && !slot.process->alive()) {
        if (absl::Status started = StartExecutor(slot); !started.ok()) {
          failure = MakeFailure(v1::TaskFailure::EXECUTOR_DIED,
                                absl::StrCat("no executor to run ",
                                             prepared.assignment.spec().function_name(), ": ",
                                             started.message()));
        }
      }
      if (failure) {
        {
          absl::MutexLock lock(&mu_);  // a held task was counted there
          slot.in_flight.erase(prepared.task);
          slot.cancelled.erase(prepared.task);
        }
        link_->ReportCompleted(Complete(prepared.assignment, std::move(failure)),
                               /*more_follow=*/false);
        continue;
      }
      {
        absl::MutexLock lock(&mu_);
        slot.in_flight.insert(prepared.task);
      }
      v1::ExecutorTask& message = slot.task_scratch;
      FillExecutorTask(prepared, message);
      prepared.message_bytes = message.ByteSizeLong();
      if (!sent.empty() && sent_bytes + prepared.message_bytes > kMaxPipelineBytes) {
        held = std::move(prepared);  // sent once the executor has taken some
        break;
      }
      delivered = slot.process->Send(message).ok();
      // An idle executor gets its first task at once; the rest of the batch
      // follows in one write (Await flushes it).
      if (delivered && sent.empty()) delivered = slot.process->Flush().ok();
      sent_bytes += prepared.message_bytes;
      sent.push_back(std::move(prepared));
    }
    // Not sent: the executor is gone (Await below says how), or a task is
    // held for room; they go back to the queue, where any slot may take them.
    if (!taken.empty()) {
      absl::MutexLock lock(&mu_);
      for (auto it = taken.rbegin(); it != taken.rend(); ++it) queue_.push_front(std::move(*it));
    }
    if (sent.empty()) continue;

    Prepared& front = sent.front();
    if (front.started == absl::InfiniteFuture()) front.started = absl::Now();
    ExecutorProcess::Limits limits;
    const uint64_t timeout_ms = front.assignment.spec().timeout_ms();
    if (timeout_ms > 0) {
      limits.deadline = front.started + absl::Milliseconds(static_cast<int64_t>(timeout_ms));
    }
    limits.memory_limit_bytes = options_.memory_limit_bytes;
    limits.cancelled = &slot.cancel;
    {
      absl::MutexLock lock(&mu_);
      slot.running = front.task;
      slot.cancel = stopping_ || slot.cancelled.contains(front.task);
    }
    running_++;
    absl::StatusOr<v1::ExecutorOutcome> outcome = slot.process->Await(limits);
    running_--;
    Prepared done = std::move(sent.front());
    sent.pop_front();
    sent_bytes -= done.message_bytes;
    bool stopped = false;
    bool more_follow = !sent.empty() || held.has_value();
    {
      absl::MutexLock lock(&mu_);
      slot.running.reset();
      slot.in_flight.erase(done.task);
      slot.cancelled.erase(done.task);
      stopped = stopping_;
      more_follow = more_follow || !queue_.empty();
    }
    // A task whose executor Stop killed is not reported as cancelled: the
    // scheduler re-runs it elsewhere when this worker leaves.
    if (stopped) break;

    if (outcome.ok()) {
      slot.mean_run_us += kRunTimeSmoothing *
                          (static_cast<double>(outcome->run_time_us()) - slot.mean_run_us);
      if (!sent.empty()) sent.front().started = absl::Now();
      v1::TaskCompleted completed;
      std::optional<v1::TaskFailure> failure = TakeOutcome(done, *outcome, completed);
      link_->ReportCompleted(Complete(done.assignment, std::move(failure), std::move(completed)),
                             more_follow);
      RecycleAssignment(done.assignment);
      continue;
    }

    // The executor is gone. Its progress counters tell the tasks it had
    // finished (their answers held back, lost with it) from the one it ran,
    // which is why it is gone (a crash, an exit, a limit, a cancel), and
    // from those it never started. All but the one it ran go back to the
    // queue, except those cancelled meanwhile.
    sent.push_front(std::move(done));
    const std::size_t finished =
        std::min<std::size_t>(slot.process->FinishedUnanswered(), sent.size());
    if (slot.process->RunningATask() && finished < sent.size()) {
      Prepared ran = std::move(sent[finished]);
      sent.erase(sent.begin() + static_cast<std::ptrdiff_t>(finished));
      const std::string& function_name = ran.assignment.spec().function_name();
      GetLogger("worker")->warn("event=executor_ended worker={} task={} function={} reason=\"{}\"",
                                identity_.id.Short(), ran.task.Short(), function_name,
                                outcome.status().message());
      {
        absl::MutexLock lock(&mu_);
        slot.in_flight.erase(ran.task);
        slot.cancelled.erase(ran.task);
      }
      link_->ReportCompleted(
          Complete(ran.assignment, ExecutorEnded(outcome.status(), function_name)),
          /*more_follow=*/false);
    } else {
      GetLogger("worker")->warn("event=executor_ended worker={} task=none reason=\"{}\"",
                                identity_.id.Short(), outcome.status().message());
    }
    {
      absl::MutexLock lock(&mu_);
      if (held) {
        slot.in_flight.erase(held->task);
        if (slot.cancelled.erase(held->task) == 0) queue_.push_front(std::move(held->assignment));
      }
      for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
        slot.in_flight.erase(it->task);
        if (slot.cancelled.erase(it->task) == 0) queue_.push_front(std::move(it->assignment));
      }
    }
    held.reset();
    sent.clear();
    sent_bytes = 0;
    // Replace it now rather than when the next task waits.
    if (absl::Status started = StartExecutor(slot); !started.ok()) {
      GetLogger("worker")->error("event=executor_start_failed worker={} error=\"{}\"",
                                 identity_.id.Short(), started.message());
    }
  }
}

}  // namespace fleet::worker
