// Ids of jobs, tasks, objects and workers, as fixed-size byte strings (the
// layouts are documented in proto/fleet/v1/common.proto).
#ifndef FLEET_COMMON_IDS_H_
#define FLEET_COMMON_IDS_H_

#include <algorithm>
#include <array>
#include <bit>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fleet {

// Fixed-size binary id; `Derived` names the kind (CRTP) for messages.
template <std::size_t N, typename Derived>
class FixedId {
 public:
  static constexpr std::size_t kSize = N;

  FixedId() { bytes_.fill(0); }

  // Returns InvalidArgument unless `binary` has exactly kSize bytes.
  static absl::StatusOr<Derived> FromBinary(absl::string_view binary) {
    if (binary.size() != N) {
      return absl::InvalidArgumentError(absl::StrCat(Derived::kKind, " id must be ", N,
                                                     " bytes, got ", binary.size()));
    }
    Derived id;
    std::memcpy(static_cast<FixedId&>(id).bytes_.data(), binary.data(), N);
    return id;
  }

  absl::string_view Binary() const { return absl::string_view(bytes_.data(), N); }
  // Into a protobuf bytes field: a reused one keeps its room, no allocation.
  void CopyTo(std::string* out) const { out->assign(bytes_.data(), N); }
  std::string Hex() const { return absl::BytesToHexString(Binary()); }
  bool IsNil() const { return *this == FixedId(); }

  // Ids are map keys on every hot path: compared as a few machine words,
  // not through memcmp (a call into libc that showed in the scheduler's
  // profile), and hashed as one word folded from them, so that each hash
  // costs one mixing round, not one per word. The words are rotated apart
  // before they are folded: an object id's counter (third word) and return
  // index (fourth) then land in different bits, and random words (a job's
  // or a worker's) stay random.
  friend bool operator==(const FixedId& a, const FixedId& b) { return a.Words() == b.Words(); }
  friend auto operator<=>(const FixedId&, const FixedId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FixedId& id) {
    const WordArray words = id.Words();
    uint64_t folded = 0;
    for (std::size_t i = 0; i < kWords; ++i) {
      folded ^= std::rotl(words[i], static_cast<int>(i * 40 % 64));
    }
    return H::combine(std::move(h), folded);
  }

 protected:
  static constexpr std::size_t kWords = (N + 7) / 8;
  using WordArray = std::array<uint64_t, kWords>;
  // Word by word, each loaded straight from the id: one copy of all N bytes
  // into a zeroed array made the loads that followed wait on the stores
  // (store forwarding fails across the partial last word).
  WordArray Words() const {
    return [this]<std::size_t... I>(std::index_sequence<I...>) {
      return WordArray{Word<I>()...};
    }(std::make_index_sequence<kWords>{});
  }
  template <std::size_t I>
  uint64_t Word() const {
    uint64_t word = 0;
    std::memcpy(&word, bytes_.data() + I * 8, std::min<std::size_t>(8, N - I * 8));
    return word;
  }

  std::array<char, N> bytes_;
};

// 128 random bits, never reused.
class JobId : public FixedId<16, JobId> {
 public:
  static constexpr const char* kKind = "job";
  static JobId Random();
};

// 128 random bits chosen at process start: the worker's identity and its
// incarnation in one.
class WorkerId : public FixedId<16, WorkerId> {
 public:
  static constexpr const char* kKind = "worker";
  static WorkerId Random();
  // First 8 hex digits, for logs and tables.
  std::string Short() const { return Hex().substr(0, 8); }
};

// The attempt number of a task's first run, whether the scheduler placed
// it or its owner handed it to a worker itself (TaskSpec.direct_worker_id).
inline constexpr uint32_t kFirstAttempt = 1;

// (job id, submission counter).
class TaskId : public FixedId<24, TaskId> {
 public:
  static constexpr const char* kKind = "task";
  static TaskId Of(const JobId& job, uint64_t index);
  JobId job() const;
  uint64_t index() const;
  // "<first 8 hex digits of the job>:<index>", for logs and messages.
  std::string Short() const;
};

// (task id, return index).
class ObjectId : public FixedId<28, ObjectId> {
 public:
  static constexpr const char* kKind = "object";
  static ObjectId Of(const TaskId& task, uint32_t return_index);
  TaskId task() const;
  uint32_t return_index() const;
  std::string Short() const;
};

}  // namespace fleet

#endif  // FLEET_COMMON_IDS_H_
