// Cleared protobuf messages kept to hold later ones: a cleared message
// keeps its repeated fields' elements and their strings' room, so steady
// traffic fills the same memory again instead of allocating and freeing
// each item's. Used for a stream's written batches (BatchQueue::Recycle)
// and the scheduler's read messages (SparePool).
//
// Two, the largest kept and taken first: a stream that went idle starts
// again with a one-item write, which takes a spare while the items behind
// it fill the next batch. With one spare that batch was built anew each
// time, and whichever written batch found the spare taken was freed, a free
// per item, however large it had grown.
//
// Thread-compatible.
#ifndef FLEET_COMMON_MESSAGE_SPARES_H_
#define FLEET_COMMON_MESSAGE_SPARES_H_

#include <cstddef>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace fleet {

template <typename Message>
class MessageSpares {
 public:
  // Keeps `cleared`, which held `bytes` before it was cleared, if it is
  // among the two largest given; the one it displaces is freed.
  void Keep(Message cleared, std::size_t bytes) {
    if (spares_.size() < kMaxSpares) {
      spares_.push_back({std::move(cleared), bytes});
    } else if (spares_.front().bytes < bytes) {
      std::swap(spares_.front().message, cleared);
      spares_.front().bytes = bytes;
    }
    // Take takes from the back: the larger spare holds the next message.
    if (spares_.size() == kMaxSpares && spares_.front().bytes > spares_.back().bytes) {
      std::swap(spares_.front(), spares_.back());
    }
  }

  // The largest spare, or a new message when none is kept.
  Message Take() {
    if (spares_.empty()) return Message();
    Message spare = std::move(spares_.back().message);
    spares_.pop_back();
    return spare;
  }

 private:
  struct Spare {
    Message message;
    std::size_t bytes;  // what it held: how much room it keeps
  };
  static constexpr std::size_t kMaxSpares = 2;
  absl::InlinedVector<Spare, kMaxSpares> spares_;
};

}  // namespace fleet

#endif  // FLEET_COMMON_MESSAGE_SPARES_H_
