#include "client/object_table.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/local_store_link.h"

namespace fleet::client {

using internal::ObjectBytes;
using internal::ObjectHandle;
using internal::ObjectState;
using Phase = internal::ObjectState::Phase;

void ObjectTable::SetReleaseSink(ReleaseSink sink) {
  absl::MutexLock lock(&sink_mu_);
  release_sink_ = std::move(sink);
}

ObjectHandle ObjectTable::Create(const ObjectId& id, std::shared_ptr<const std::string> value) {
  auto* state = new ObjectState(id);
  if (value != nullptr) {
    state->phase = Phase::kReady;
    state->value = std::move(value);
  }
  return Track(state);
}

ObjectHandle ObjectTable::CreateRemote(const ObjectId& id, std::string address) {
  auto* state = new ObjectState(id);
  state->phase = Phase::kRemote;
  state->address = std::move(address);
  return Track(state);
}

ObjectHandle ObjectTable::Track(ObjectState* state) {
  {
    absl::MutexLock lock(&mu_);
    objects_[state->id] = state;
    if (state->phase == Phase::kPending) pending_.fetch_add(1, std::memory_order_relaxed);
  }
  // The deleter keeps the table alive as long as any handle exists.
  return ObjectHandle(state, [table = shared_from_this()](ObjectState* s) { table->Release(s); });
}

void ObjectTable::Release(ObjectState* state) {
  const ObjectId id = state->id;
  {
    absl::MutexLock lock(&mu_);
    objects_.erase(id);
    if (state->phase == Phase::kPending) pending_.fetch_sub(1, std::memory_order_relaxed);
  }
  delete state;
  absl::MutexLock lock(&sink_mu_);
  if (release_sink_) release_sink_(id);
}

void ObjectTable::Resolve(google::protobuf::RepeatedPtrField<v1::ObjectInfo>& infos) {
  // Values are wrapped before the lock is taken: an allocation each.
  std::vector<std::shared_ptr<const std::string>> values(infos.size());
  for (int i = 0; i < infos.size(); ++i) {
    if (infos[i].payload_case() == v1::ObjectInfo::kInlineValue) {
      values[i] = std::make_shared<const std::string>(std::move(*infos[i].mutable_inline_value()));
    }
  }
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < infos.size(); ++i) {
    const v1::ObjectInfo& info = infos[i];
    auto id = ObjectId::FromBinary(info.object_id());
    if (!id.ok()) continue;
    auto it = objects_.find(*id);
    if (it == objects_.end()) continue;
    ObjectState& state = *it->second;
    const bool was_pending = state.phase == Phase::kPending;
    switch (info.payload_case()) {
      case v1::ObjectInfo::kInlineValue:
        state.phase = Phase::kReady;
        state.value = std::move(values[i]);
        break;
      case v1::ObjectInfo::kLocation:
        // A value already here is as good as the remote copy.
        if (state.phase != Phase::kReady) {
          state.phase = Phase::kRemote;
          state.address = info.location().address();
        }
        break;
      case v1::ObjectInfo::kFailure:
        // A value here stays: the task did finish (its worker pushed the
        // result before, say, a late cancel reached the scheduler), and
        // what a Get returned once does not turn into an error.
        if (state.phase == Phase::kReady) break;
        state.phase = Phase::kFailed;
        state.failure = info.failure();
        state.value.reset();
        break;
      case v1::ObjectInfo::PAYLOAD_NOT_SET:
        // Its copies were lost and it is being rebuilt: wait for it again.
        if (state.phase == Phase::kRemote) state.phase = Phase::kPending;
        break;
    }
    const bool pending = state.phase == Phase::kPending;
    if (pending != was_pending) pending_.fetch_add(pending ? 1 : -1, std::memory_order_relaxed);
  }
}

void ObjectTable::Break(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (broken_.ok()) broken_ = std::move(status);
}

namespace {

// How long a Get whose fetch failed waits to hear of another copy: the
// scheduler learns of a dead worker when its stream breaks, or at worst
// after its heartbeat timeout (10 s by default).
constexpr absl::Duration kRelocationWait = absl::Seconds(15);

ObjectBytes Held(const std::shared_ptr<const std::string>& value) {
  return ObjectBytes{std::string_view(*value), value};
}

}  // namespace

absl::StatusOr<ObjectBytes> ObjectTable::GetValue(const ObjectHandle& handle,
                                                  std::optional<absl::Duration> timeout,
                                                  v1::TaskFailure* failure) {
  ObjectState& state = *handle;
  absl::MutexLock lock(&mu_);
  // Settled: ready, failed, or remote with nobody else fetching it.
  auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !broken_.ok() || state.phase == Phase::kReady || state.phase == Phase::kFailed ||
           (state.phase == Phase::kRemote && !state.fetching);
  };
  const absl::Condition condition(&settled);
  const std::optional<absl::Time> deadline =
      timeout ? std::optional<absl::Time>(absl::Now() + *timeout) : std::nullopt;
  bool tried_in_place = false;
  while (true) {
    if (deadline) {
      if (!mu_.AwaitWithDeadline(condition, *deadline)) {
        return absl::DeadlineExceededError(absl::StrCat(
            "object ", state.id.Short(), " was not ready within ", absl::FormatDuration(*timeout)));
      }
    } else {
      mu_.Await(condition);
    }
    if (state.phase == Phase::kReady) return Held(state.value);
    if (state.phase == Phase::kFailed) {
      *failure = state.failure;
      return absl::AbortedError(state.failure.message());
    }
    if (!broken_.ok()) return broken_;
    const std::string address = state.address;

    if (!tried_in_place) {
      // On this host: read it in place. Not kept: a pin held as long as the
      // ref would keep the worker from spilling it under memory pressure.
      tried_in_place = true;
      mu_.Unlock();
      absl::StatusOr<LocalStoreLink::PinnedBytes> pinned =
          absl::NotFoundError("no worker store on this host");
      if (std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address)) {
        pinned = link->Read(state.id);
      }
      mu_.Lock();
      if (pinned.ok()) {
        return ObjectBytes{std::string_view(pinned->data, pinned->size), std::move(pinned->pin)};
      }
      continue;  // settle again: another Get may be fetching it meanwhile
    }

    // Fetch and keep it, without holding the lock; others wait for us.
    state.fetching = true;
    mu_.Unlock();
    auto bytes = routes_->Fetch(address, state.id);
    mu_.Lock();
    state.fetching = false;
    if (!bytes.ok()) {
      // The holder may just have left: the scheduler then says where
      // another copy is, or that the object is being rebuilt.
      absl::Time give_up = absl::Now() + kRelocationWait;
      if (deadline) give_up = std::min(give_up, *deadline);
      auto relocated = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !broken_.ok() || state.phase != Phase::kRemote || state.address != address;
      };
      if (mu_.AwaitWithDeadline(absl::Condition(&relocated), give_up)) {
        tried_in_place = false;
        continue;
      }
      return bytes.status();
    }
    if (state.phase == Phase::kRemote) {
      state.phase = Phase::kReady;
      state.value = *bytes;
    }
    return Held(*bytes);
  }
}

absl::StatusOr<std::vector<bool>> ObjectTable::Wait(const std::vector<ObjectHandle>& handles,
                                                    std::size_t num_returns,
                                                    std::optional<absl::Duration> timeout) {
  std::vector<bool> ready(handles.size(), false);
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!broken_.ok()) return true;
    std::size_t count = 0;
    for (const ObjectHandle& h : handles) count += h->phase != Phase::kPending;
    return count >= num_returns;
  };
  const absl::Condition condition(&enough);
  if (timeout) {
    mu_.AwaitWithTimeout(condition, *timeout);
  } else {
    mu_.Await(condition);
  }
  if (!broken_.ok()) return broken_;
  for (std::size_t i = 0; i < handles.size(); ++i) ready[i] = handles[i]->phase != Phase::kPending;
  return ready;
}

std::shared_ptr<const std::string> ObjectTable::HeldValue(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(id);
  return it == objects_.end() ? nullptr : it->second->value;
}

std::vector<ObjectId> ObjectTable::HeldIds() const {
  absl::MutexLock lock(&mu_);
  std::vector<ObjectId> ids;
  ids.reserve(objects_.size());
  for (const auto& [id, state] : objects_) ids.push_back(id);
  return ids;
}

std::size_t ObjectTable::size() const {
  absl::MutexLock lock(&mu_);
  return objects_.size();
}

}  // namespace fleet::client
