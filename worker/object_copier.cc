#include "worker/object_copier.h"

#include <utility>

#include "common/ids.h"
#include "common/logging.h"
#include "worker/executor.h"

namespace fleet::worker {

ObjectCopier::ObjectCopier(Executor* executor)
    : executor_(executor), thread_([this] { Run(); }) {}

ObjectCopier::~ObjectCopier() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void ObjectCopier::Enqueue(v1::ObjectInfo object) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(object));
}

void ObjectCopier::Run() {
  while (true) {
    v1::ObjectInfo object;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ObjectCopier* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
            return !c->queue_.empty() || c->stopping_;
          },
          this));
      if (stopping_) return;
      object = std::move(queue_.front());
      queue_.pop_front();
    }
    absl::StatusOr<ObjectId> id = ObjectId::FromBinary(object.object_id());
    absl::Status copied = id.ok() ? executor_->CopyObject(*id, object.location().address())
                                  : id.status();
    if (!copied.ok()) {
      // The scheduler keeps waiting for it; the holder leaves at the end of
      // its drain timeout, and lineage rebuilds what it can.
      GetLogger("worker")->warn("event=object_copy_failed from={} error=\"{}\"",
                                object.location().address(), copied.message());
    }
  }
}

}  // namespace fleet::worker
