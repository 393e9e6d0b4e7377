// What our gRPC completion queues carry: every tag is a CompletionTag, and
// the thread draining the queue (the scheduler's core thread, a client
// stream's thread) calls Handle with the operation's outcome.
#ifndef FLEET_COMMON_COMPLETION_TAG_H_
#define FLEET_COMMON_COMPLETION_TAG_H_

#include <utility>

namespace fleet {

class CompletionTag {
 public:
  virtual ~CompletionTag() = default;
  virtual void Handle(bool ok) = 0;
};

// A tag that calls `(owner->*Method)(ok)`: one per kind of operation an
// object has in flight.
template <typename Owner, void (Owner::*Method)(bool)>
class MemberTag final : public CompletionTag {
 public:
  explicit MemberTag(Owner* owner) : owner_(owner) {}
  void Handle(bool ok) override { (owner_->*Method)(ok); }

 private:
  Owner* const owner_;
};

// A tag whose completion only wakes the thread draining the queue (an
// alarm set to stop it, say).
class IgnoredTag final : public CompletionTag {
 public:
  void Handle(bool) override {}
};

}  // namespace fleet

#endif  // FLEET_COMMON_COMPLETION_TAG_H_
