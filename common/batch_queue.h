// Outgoing batches for one stream. Items are added to the message being
// assembled while a write is in flight; when the write completes the writer
// takes the whole batch at once: the batch is as large as what arrived
// during one write, capped in bytes. Whoever finds no write in flight
// becomes the writer (Add returns true) and starts one; the writer keeps
// the role until TakeForWrite finds nothing more.
#ifndef FLEET_COMMON_BATCH_QUEUE_H_
#define FLEET_COMMON_BATCH_QUEUE_H_

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/message_spares.h"

namespace fleet {

// Default cap of one batch, well below the 64 MiB message limit we configure.
inline constexpr std::size_t kDefaultBatchCapBytes = 4 << 20;
// The largest written batch kept to hold the next one, by default: a
// process with a stream per peer (the scheduler) keeps little per stream.
inline constexpr std::size_t kDefaultMaxSpareBytes = 256 << 10;

// Thread-safe. `Message` is a protobuf message type.
template <typename Message>
class BatchQueue {
 public:
  // `max_spare_bytes`: see Recycle.
  explicit BatchQueue(std::size_t cap_bytes = kDefaultBatchCapBytes,
                      std::size_t max_spare_bytes = kDefaultMaxSpareBytes)
      : cap_bytes_(cap_bytes), max_spare_bytes_(max_spare_bytes) {}

  // Calls `add(Message&)` on the batch being assembled; `item_bytes` is the
  // size the item adds. Returns true when the caller must start a write
  // (nothing was in flight): it then calls TakeForWrite. Returns false when
  // the queue is closed or a writer will pick the item up.
  template <typename AddFn>
  bool Add(std::size_t item_bytes, AddFn&& add) {
    absl::MutexLock lock(&mu_);
    if (!AppendLocked(item_bytes, std::forward<AddFn>(add)) || writing_) return false;
    writing_ = true;
    return true;
  }

  // As Add, but the caller never becomes the writer: the item goes with the
  // next write, whoever starts it. Returns true when no write is in flight
  // or about to start, so that the item waits until someone starts one.
  template <typename AddFn>
  bool AddWithoutWriting(std::size_t item_bytes, AddFn&& add) {
    absl::MutexLock lock(&mu_);
    return AppendLocked(item_bytes, std::forward<AddFn>(add)) && !writing_;
  }

  // As Add, for a whole message of items: it becomes the next batch itself
  // when one starts here (no copy), else it is merged into the last, and
  // kept as a spare (Recycle).
  bool AddWhole(std::size_t bytes, Message message) {
    bool start_write = false;
    bool merged = false;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return false;
      if (batches_.empty() || last_batch_bytes_ + bytes > cap_bytes_) {
        batches_.push_back(std::move(message));
        last_batch_bytes_ = 0;
      } else {
        batches_.back().MergeFrom(message);
        merged = true;
      }
      last_batch_bytes_ += bytes;
      start_write = !writing_;
      writing_ = true;
    }
    if (merged) Recycle(std::move(message), bytes);
    return start_write;
  }

  // A message to assemble a whole batch in (for AddWhole): a spare when
  // there is one, so that its items' room is filled again.
  Message TakeSpare() {
    absl::MutexLock lock(&mu_);
    return spares_.Take();
  }

  // For writers that start each write themselves: the next batch to write,
  // or nullopt when there is none, in which case the writer is considered
  // idle until the next Add returns true. With `closed_and_drained`, a
  // writer that finds the queue closed and empty stays the writer (no one
  // else can become it) and is told so: it is the one to end the writes.
  std::optional<Message> TakeForWrite(bool* closed_and_drained = nullptr) {
    absl::MutexLock lock(&mu_);
    if (closed_and_drained != nullptr) {
      *closed_and_drained = batches_.empty() && closed_;
      if (*closed_and_drained) return std::nullopt;
    }
    return TakeLocked();
  }

  // Makes the caller the writer when there is none (no write in flight and
  // none about to start): returns whether it did. Then Add returns false
  // until the caller gives the role back through TakeForWrite.
  bool ClaimIdleWriter() {
    absl::MutexLock lock(&mu_);
    if (writing_) return false;
    writing_ = true;
    return true;
  }

  // Gives back a batch once written (`bytes` long), to hold a later one
  // (MessageSpares; the client's malloc is glibc's, where allocating each
  // item anew was a third of its CPU under no-op tasks). None larger than
  // `max_spare_bytes`: what a burst grew beyond it is given back.
  void Recycle(Message batch, std::size_t bytes) {
    if (bytes > max_spare_bytes_) return;
    batch.Clear();  // outside the lock
    absl::MutexLock lock(&mu_);
    spares_.Keep(std::move(batch), bytes);
  }

  // Stops accepting items; those queued can still be taken.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  // Adds the item to the batch being assembled; false (dropped) once closed.
  template <typename AddFn>
  bool AppendLocked(std::size_t item_bytes, AddFn&& add) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closed_) return false;
    if (batches_.empty() || last_batch_bytes_ + item_bytes > cap_bytes_) {
      batches_.push_back(spares_.Take());
      last_batch_bytes_ = 0;
    }
    add(batches_.back());
    last_batch_bytes_ += item_bytes;
    return true;
  }

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

  const std::size_t cap_bytes_;
  const std::size_t max_spare_bytes_;
  mutable absl::Mutex mu_;
  std::deque<Message> batches_ ABSL_GUARDED_BY(mu_);
  std::size_t last_batch_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  MessageSpares<Message> spares_ ABSL_GUARDED_BY(mu_);  // see Recycle
};

}  // namespace fleet

#endif  // FLEET_COMMON_BATCH_QUEUE_H_
