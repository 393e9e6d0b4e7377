#include "common/local_store_link.h"

#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/local_socket.h"
#include "common/logging.h"
#include "fleet/v1/local_store.pb.h"

namespace fleet {
namespace {

// Linux 5.14; older glibc headers lack them.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// Objects below this are read and written with ordinary page faults.
constexpr uint64_t kPopulateMinBytes = 1 << 20;

// How long a worker found not to be on this host is not asked again.
constexpr absl::Duration kAbsentRetry = absl::Seconds(3);

struct Registry {
  struct Slot {
    std::shared_ptr<LocalStoreLink> link;  // null: absent until retry_after
    absl::Time retry_after;
  };
  absl::Mutex mu;
  absl::flat_hash_map<std::string, Slot> slots ABSL_GUARDED_BY(mu);
};

// Whether the worker at the other end of `socket` has gone: its store, which
// the link's mappings keep alive, then serves nobody else.
bool PeerClosed(int socket) {
  pollfd watched{.fd = socket, .events = POLLRDHUP, .revents = 0};
  return poll(&watched, 1, 0) > 0 && (watched.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

std::atomic<bool> populate_arenas_up_front{true};

Registry& TheRegistry() {
  static Registry* registry = new Registry();  // never destroyed: used at exit
  return *registry;
}

absl::Status FromReply(const v1::LocalStoreReply& reply, absl::string_view what) {
  if (reply.code() == 0) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(reply.code()),
                      absl::StrCat(what, ": ", reply.message()));
}

}  // namespace

std::shared_ptr<LocalStoreLink> LocalStoreLink::To(const std::string& address) {
  Registry& registry = TheRegistry();
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&registry.mu);
    auto it = registry.slots.find(address);
    if (it != registry.slots.end()) {
      if (it->second.link != nullptr && !it->second.link->broken_.load()) return it->second.link;
      if (it->second.link == nullptr && now < it->second.retry_after) return nullptr;
    }
  }
  ForgetDeparted();
  // Connecting is a syscall or two; racing threads may both connect, and
  // the last one's link is kept (the other is closed with its last user).
  std::shared_ptr<LocalStoreLink> link;
  absl::StatusOr<int> socket = ConnectLocalSocket(address);
  if (socket.ok()) {
    link.reset(new LocalStoreLink(address, *socket));
    if (absl::Status status = link->Handshake(); !status.ok()) {
      GetLogger("store")->warn("event=local_store_unusable address={} error=\"{}\"", address,
                               status.message());
      link.reset();
    }
  }
  if (link != nullptr && populate_arenas_up_front.load()) {
    link->populating_ = std::thread([raw = link.get()] { raw->PopulatePrefaulted(); });
  }
  absl::MutexLock lock(&registry.mu);
  registry.slots[address] = Registry::Slot{link, now + kAbsentRetry};
  return link;
}

void LocalStoreLink::ForgetDeparted() {
  Registry& registry = TheRegistry();
  const absl::Time now = absl::Now();
  // Destroyed (unmapped, joined) after the lock is let go.
  std::vector<std::shared_ptr<LocalStoreLink>> departed;
  absl::MutexLock lock(&registry.mu);
  absl::erase_if(registry.slots, [&](auto& entry) {
    Registry::Slot& slot = entry.second;
    if (slot.link == nullptr) return now >= slot.retry_after;
    if (!slot.link->broken_.load() && !PeerClosed(slot.link->socket_)) return false;
    departed.push_back(std::move(slot.link));
    return true;
  });
}

void LocalStoreLink::SetPopulateArenasUpFront(bool populate) {
  populate_arenas_up_front = populate;
}

absl::StatusOr<std::shared_ptr<LocalStoreLink>> LocalStoreLink::Adopt(int socket,
                                                                      std::string address) {
  std::shared_ptr<LocalStoreLink> link(new LocalStoreLink(std::move(address), socket));
  if (absl::Status status = link->Handshake(); !status.ok()) return status;
  link->populating_ = std::thread([raw = link.get()] { raw->PopulatePrefaulted(); });
  return link;
}

LocalStoreLink::LocalStoreLink(std::string address, int socket)
    : address_(std::move(address)), socket_(socket) {}

LocalStoreLink::~LocalStoreLink() {
  if (populating_.joinable()) populating_.join();
  if (read_base_ != nullptr) munmap(const_cast<char*>(read_base_), arena_bytes_);
  if (write_base_ != nullptr) munmap(write_base_, arena_bytes_);
  close(socket_);
}

void LocalStoreLink::Populate(uint64_t offset, uint64_t size, bool for_write) {
  if (size < kPopulateMinBytes) return;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t begin = offset / page * page;
  const uint64_t end = std::min(arena_bytes_, (offset + size + page - 1) / page * page);
  // A chunk once populated stays mapped (the worker never gives arena pages
  // back), so only chunks not seen before are populated. A chunk the range
  // only partly covers counts as seen: later objects there may still fault
  // on a few pages, which is correct, just slower.
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // chunk [first, last)
  {
    absl::MutexLock lock(&populate_mu_);
    std::vector<bool>& seen = for_write ? written_chunks_ : read_chunks_;
    for (uint64_t c = begin / kPopulateChunkBytes; c * kPopulateChunkBytes < end; ++c) {
      if (seen[c]) continue;
      seen[c] = true;
      if (!runs.empty() && runs.back().second == c) {
        runs.back().second = c + 1;
      } else {
        runs.emplace_back(c, c + 1);
      }
    }
  }
  char* base = for_write ? write_base_ : const_cast<char*>(read_base_);
  for (const auto& [first, last] : runs) {
    const uint64_t from = std::max(begin, first * kPopulateChunkBytes);
    const uint64_t to = std::min(end, last * kPopulateChunkBytes);
    // Best effort: without it (kernels before 5.14) the first touch of each
    // page faults instead.
    madvise(base + from, to - from, for_write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  }
}

void LocalStoreLink::PopulatePrefaulted() {
  // In steps, so that a Read or Write meanwhile finds most chunks done.
  constexpr uint64_t kStep = 32 << 20;
  for (uint64_t offset = 0; offset < prefaulted_bytes_; offset += kStep) {
    const uint64_t size = std::min(kStep, prefaulted_bytes_ - offset);
    Populate(offset, size, /*for_write=*/true);
    Populate(offset, size, /*for_write=*/false);
  }
}

absl::Status LocalStoreLink::Handshake() {
  v1::LocalStoreHello hello;
  int arena_fd = -1;
  if (absl::Status status = ReceivePacket(socket_, &hello, &arena_fd); !status.ok()) {
    return status;
  }
  if (arena_fd < 0) return absl::DataLossError("the worker's hello carried no arena descriptor");
  auto id = WorkerId::FromBinary(hello.worker_id());
  absl::Status status = id.status();
  if (status.ok()) {
    worker_id_ = *id;
    arena_bytes_ = hello.arena_bytes();
    prefaulted_bytes_ = std::min(hello.prefaulted_bytes(), arena_bytes_);
    void* read = mmap(nullptr, arena_bytes_, PROT_READ, MAP_SHARED, arena_fd, 0);
    void* write = read == MAP_FAILED ? MAP_FAILED
                                     : mmap(nullptr, arena_bytes_, PROT_READ | PROT_WRITE,
                                            MAP_SHARED, arena_fd, 0);
    if (read == MAP_FAILED || write == MAP_FAILED) {
      status = absl::ResourceExhaustedError(absl::StrCat("mapping the ", arena_bytes_,
                                                         "-byte object store of ", address_, ": ",
                                                         std::strerror(errno)));
      if (read != MAP_FAILED) munmap(read, arena_bytes_);
    } else {
      read_base_ = static_cast<const char*>(read);
      write_base_ = static_cast<char*>(write);
      const uint64_t chunks = (arena_bytes_ + kPopulateChunkBytes - 1) / kPopulateChunkBytes;
      absl::MutexLock lock(&populate_mu_);
      read_chunks_.assign(chunks, false);
      written_chunks_.assign(chunks, false);
    }
  }
  close(arena_fd);  // the mappings keep the memory
  return status;
}

absl::Status LocalStoreLink::Exchange(const v1::LocalStoreRequest& request,
                                      v1::LocalStoreReply* reply) {
  absl::MutexLock lock(&mu_);
  absl::Status status = SendPacket(socket_, request);
  if (status.ok()) status = ReceivePacket(socket_, reply);
  if (!status.ok()) {
    broken_ = true;
    return absl::UnavailableError(absl::StrCat("the same-host store connection to the worker at ",
                                               address_, " failed: ", status.message()));
  }
  return absl::OkStatus();
}

void LocalStoreLink::SendRelease(const ObjectId& id) {
  v1::LocalStoreRequest request;
  request.mutable_release()->set_object_id(std::string(id.Binary()));
  absl::MutexLock lock(&mu_);
  // A broken connection released every pin already.
  if (!SendPacket(socket_, request).ok()) broken_ = true;
}

absl::StatusOr<LocalStoreLink::PinnedBytes> LocalStoreLink::Read(const ObjectId& id) {
  v1::LocalStoreRequest request;
  request.mutable_get()->set_object_id(std::string(id.Binary()));
  v1::LocalStoreReply reply;
  if (absl::Status status = Exchange(request, &reply); !status.ok()) return status;
  const std::string what = absl::StrCat("reading object ", id.Short(), " at ", address_);
  if (absl::Status status = FromReply(reply, what); !status.ok()) return status;
  if (!InArena(reply.offset_bytes(), reply.size_bytes())) {
    SendRelease(id);
    return absl::DataLossError(absl::StrCat(what, ": the worker placed it outside its arena"));
  }
  Populate(reply.offset_bytes(), reply.size_bytes(), /*for_write=*/false);
  // The pin is the link itself, kept alive (mapping included) by the
  // returned pointer; its deleter releases the worker-side pin.
  std::shared_ptr<LocalStoreLink> self = shared_from_this();
  std::shared_ptr<const void> pin(self.get(), [self, id](const void*) { self->SendRelease(id); });
  return PinnedBytes{read_base_ + reply.offset_bytes(), reply.size_bytes(), std::move(pin)};
}

absl::StatusOr<char*> LocalStoreLink::Create(const ObjectId& id, uint64_t size_bytes) {
  return CreateObject(id, size_bytes, /*free_memory_only=*/false);
}

absl::StatusOr<char*> LocalStoreLink::CreateInFreeMemory(const ObjectId& id, uint64_t size_bytes) {
  return CreateObject(id, size_bytes, /*free_memory_only=*/true);
}

absl::StatusOr<char*> LocalStoreLink::CreateObject(const ObjectId& id, uint64_t size_bytes,
                                                   bool free_memory_only) {
  v1::LocalStoreRequest request;
  request.mutable_create()->set_object_id(std::string(id.Binary()));
  request.mutable_create()->set_size_bytes(size_bytes);
  request.mutable_create()->set_free_memory_only(free_memory_only);
  v1::LocalStoreReply reply;
  if (absl::Status status = Exchange(request, &reply); !status.ok()) return status;
  const std::string what = absl::StrCat("storing object ", id.Short(), " at ", address_);
  if (absl::Status status = FromReply(reply, what); !status.ok()) return status;
  if (!InArena(reply.offset_bytes(), size_bytes)) {
    Abort(id);
    return absl::DataLossError(absl::StrCat(what, ": the worker placed it outside its arena"));
  }
  Populate(reply.offset_bytes(), size_bytes, /*for_write=*/true);
  return write_base_ + reply.offset_bytes();
}

absl::Status LocalStoreLink::Seal(const ObjectId& id) {
  v1::LocalStoreRequest request;
  request.mutable_seal()->set_object_id(std::string(id.Binary()));
  v1::LocalStoreReply reply;
  if (absl::Status status = Exchange(request, &reply); !status.ok()) return status;
  return FromReply(reply, absl::StrCat("sealing object ", id.Short(), " at ", address_));
}

absl::Status LocalStoreLink::SealAs(const ObjectId& id, const ObjectId& as) {
  v1::LocalStoreRequest request;
  request.mutable_seal()->set_object_id(std::string(id.Binary()));
  request.mutable_seal()->set_as_object_id(std::string(as.Binary()));
  v1::LocalStoreReply reply;
  if (absl::Status status = Exchange(request, &reply); !status.ok()) return status;
  return FromReply(reply, absl::StrCat("sealing object ", id.Short(), " as object ", as.Short(),
                                       " at ", address_));
}

void LocalStoreLink::Abort(const ObjectId& id) {
  v1::LocalStoreRequest request;
  request.mutable_abort()->set_object_id(std::string(id.Binary()));
  v1::LocalStoreReply reply;
  Exchange(request, &reply).IgnoreError();  // a broken link aborted it already
}

}  // namespace fleet
