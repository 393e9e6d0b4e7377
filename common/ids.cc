#include "common/ids.h"

#include "absl/random/random.h"

namespace fleet {
namespace {

// absl::BitGen seeds itself from the operating system's entropy source.
template <typename Id>
Id RandomId() {
  thread_local absl::BitGen gen;
  char bytes[Id::kSize];
  for (std::size_t i = 0; i < Id::kSize; i += 8) {
    const uint64_t word = absl::Uniform<uint64_t>(gen);
    std::memcpy(bytes + i, &word, 8);
  }
  return *Id::FromBinary(absl::string_view(bytes, Id::kSize));
}

void PutLittleEndian64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t GetLittleEndian64(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return v;
}

}  // namespace

JobId JobId::Random() { return RandomId<JobId>(); }
WorkerId WorkerId::Random() { return RandomId<WorkerId>(); }

TaskId TaskId::Of(const JobId& job, uint64_t index) {
  TaskId id;
  std::memcpy(id.bytes_.data(), job.Binary().data(), JobId::kSize);
  PutLittleEndian64(id.bytes_.data() + JobId::kSize, index);
  return id;
}

JobId TaskId::job() const { return *JobId::FromBinary(Binary().substr(0, JobId::kSize)); }

uint64_t TaskId::index() const { return GetLittleEndian64(bytes_.data() + JobId::kSize); }

std::string TaskId::Short() const { return absl::StrCat(job().Hex().substr(0, 8), ":", index()); }

ObjectId ObjectId::Of(const TaskId& task, uint32_t return_index) {
  ObjectId id;
  std::memcpy(id.bytes_.data(), task.Binary().data(), TaskId::kSize);
  for (int i = 0; i < 4; ++i) {
    id.bytes_[TaskId::kSize + i] = static_cast<char>((return_index >> (8 * i)) & 0xff);
  }
  return id;
}

TaskId ObjectId::task() const { return *TaskId::FromBinary(Binary().substr(0, TaskId::kSize)); }

uint32_t ObjectId::return_index() const {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    v |= static_cast<uint32_t>(static_cast<unsigned char>(bytes_[TaskId::kSize + i])) << (8 * i);
  }
  return v;
}

std::string ObjectId::Short() const { return absl::StrCat(task().Short(), ".", return_index()); }

}  // namespace fleet
