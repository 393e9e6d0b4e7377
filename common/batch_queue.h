// Outgoing batches for one stream. Items are added to the message being
// assembled while a write is in flight; when the write completes the writer
// takes the whole batch at once: the batch is as large as what arrived
// during one write, capped in bytes. The one timer: a producer that knows
// more items are about to follow says so with each Add, and a writer
// thread then waits up to `linger` for them (see WaitAndTake).
#ifndef FLEET_COMMON_BATCH_QUEUE_H_
#define FLEET_COMMON_BATCH_QUEUE_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fleet {

// Default cap of one batch, well below the 64 MiB message limit we configure.
inline constexpr std::size_t kDefaultBatchCapBytes = 4 << 20;

// Thread-safe. `Message` is a protobuf message type.
template <typename Message>
class BatchQueue {
 public:
  explicit BatchQueue(std::size_t cap_bytes = kDefaultBatchCapBytes,
                      absl::Duration linger = absl::ZeroDuration())
      : cap_bytes_(cap_bytes), linger_(linger) {}

  // Calls `add(Message&)` on the batch being assembled; `item_bytes` is the
  // size the item adds. `more_follow`: the producer expects further items
  // shortly (the latest Add's word counts). Returns true when the caller
  // must start a write (nothing was in flight): it then calls TakeForWrite.
  // Returns false when the queue is closed or a writer will pick the item up.
  template <typename AddFn>
  bool Add(std::size_t item_bytes, AddFn&& add, bool more_follow = false) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    more_follow_ = more_follow;
    if (batches_.empty() || last_batch_bytes_ + item_bytes > cap_bytes_) {
      if (spare_) {
        batches_.push_back(std::move(*spare_));
        spare_.reset();
      } else {
        batches_.emplace_back();
      }
      last_batch_bytes_ = 0;
    }
    add(batches_.back());
    last_batch_bytes_ += item_bytes;
    if (writing_) return false;
    writing_ = true;
    return true;
  }

  // As Add, for a whole message of items: it becomes the next batch itself
  // when one starts here (no copy), else it is merged into the last.
  bool AddWhole(std::size_t bytes, Message message) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    if (batches_.empty() || last_batch_bytes_ + bytes > cap_bytes_) {
      batches_.push_back(std::move(message));
      last_batch_bytes_ = 0;
    } else {
      batches_.back().MergeFrom(message);
    }
    last_batch_bytes_ += bytes;
    if (writing_) return false;
    writing_ = true;
    return true;
  }

  // For callback writers: the next batch to write, or nullopt when there is
  // none, in which case the writer is considered idle until the next Add
  // returns true.
  std::optional<Message> TakeForWrite() {
    absl::MutexLock lock(&mu_);
    return TakeLocked();
  }

  // For a writer thread: blocks until a batch is available or the queue is
  // closed (then nullopt, after the remaining batches were taken). While
  // the producer says more items follow, waits up to `linger` for the
  // batch to fill (to the cap) or for the producer to say none follow: one
  // message for a burst instead of one per item, at the cost of at most
  // `linger` for an item that has company coming.
  std::optional<Message> WaitAndTake() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](BatchQueue* q) { return !q->batches_.empty() || q->closed_; }, this));
    if (linger_ > absl::ZeroDuration() && more_follow_) {
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](BatchQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
                                 return !q->more_follow_ || q->closed_ || q->batches_.size() > 1;
                               },
                               this),
                           linger_);
    }
    writing_ = true;  // a thread writer is always "writing"; Add never asks it to start
    return TakeLocked();
  }

  // Gives back a batch once written (`bytes` long), to hold a later one: a
  // cleared protobuf message keeps its repeated fields' elements and their
  // strings' room, so a stream's steady traffic fills the same memory again
  // instead of allocating and freeing each item's (the client's malloc is
  // glibc's, where that was a third of its CPU under no-op tasks). One spare
  // at most, and none larger than kMaxSpareBytes: what a burst grew is
  // given back.
  void Recycle(Message batch, std::size_t bytes) {
    if (bytes > kMaxSpareBytes) return;
    batch.Clear();
    absl::MutexLock lock(&mu_);
    if (!spare_) spare_.emplace(std::move(batch));
  }

  // Stops accepting items; a blocked WaitAndTake returns once drained.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  std::optional<Message> TakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (batches_.empty()) {
      writing_ = false;
      return std::nullopt;
    }
    std::optional<Message> next(std::move(batches_.front()));
    batches_.pop_front();
    if (batches_.empty()) last_batch_bytes_ = 0;
    return next;
  }

  static constexpr std::size_t kMaxSpareBytes = 256 << 10;

  const std::size_t cap_bytes_;
  const absl::Duration linger_;
  mutable absl::Mutex mu_;
  std::deque<Message> batches_ ABSL_GUARDED_BY(mu_);
  std::size_t last_batch_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool more_follow_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Message> spare_ ABSL_GUARDED_BY(mu_);  // see Recycle
};

}  // namespace fleet

#endif  // FLEET_COMMON_BATCH_QUEUE_H_
