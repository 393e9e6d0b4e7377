// The memory behind fleet::Array (serialization.h): large arrays ask for
// transparent huge pages, as numpy does for arrays of 4 MiB and more, and
// inside a task come from the worker's store (ArrayMemory).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "fleet/serialization.h"

namespace fleet::internal {

void AdviseHugePages(void* data, std::size_t size_bytes) {
  // madvise wants a page-aligned start; the first partial page keeps small pages.
  static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t aligned = (start + page - 1) / page * page;
  if (aligned >= start + size_bytes) return;
  // Advice only: where the kernel has them off (or is too old), nothing changes.
  madvise(reinterpret_cast<void*>(aligned), start + size_bytes - aligned, MADV_HUGEPAGE);
}

namespace {
// Here, in the one shared library every task library and worker links, so
// that a worker and the task libraries it loads see the same variable.
thread_local ArrayMemory* current_array_memory = nullptr;
}  // namespace

ArrayMemory* CurrentArrayMemory() { return current_array_memory; }

ScopedArrayMemory::ScopedArrayMemory(ArrayMemory* memory) : previous_(current_array_memory) {
  current_array_memory = memory;
}

ScopedArrayMemory::~ScopedArrayMemory() { current_array_memory = previous_; }

}  // namespace fleet::internal
