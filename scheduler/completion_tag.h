// What the scheduler's completion queue carries: every tag is a CompletionTag,
// and the core thread (SchedulerService::Drain) calls Handle with the
// operation's outcome.
#ifndef FLEET_SCHEDULER_COMPLETION_TAG_H_
#define FLEET_SCHEDULER_COMPLETION_TAG_H_

#include <utility>

namespace fleet::scheduler {

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

}  // namespace fleet::scheduler

#endif  // FLEET_SCHEDULER_COMPLETION_TAG_H_
