#include "client/same_host_results.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/local_socket.h"
#include "common/logging.h"
#include "fleet/v1/local_store.pb.h"

namespace fleet::client {
namespace {

// How long a worker may take to greet a new subscription: its store's
// accepting thread answers at once unless it is stopping.
constexpr timeval kHelloTimeout{1, 0};

// Reads every packet queued on a subscription into `ready` (`packet` and
// `push` are room to read into). False once the worker has closed it (it
// stopped) or it broke.
bool DrainSubscription(int socket, std::string& packet, v1::LocalStorePush& push,
                       google::protobuf::RepeatedPtrField<v1::ObjectInfo>& ready) {
  while (true) {
    const ssize_t received = recv(socket, packet.data(), packet.size(), MSG_DONTWAIT);
    if (received < 0 && errno == EINTR) continue;
    if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (received <= 0) return false;
    if (!ParsePacket(absl::string_view(packet.data(), static_cast<std::size_t>(received)), &push)
             .ok()) {
      continue;  // the worker sends the same results to the scheduler
    }
    for (v1::ObjectInfo& info : *push.mutable_ready()) ready.Add(std::move(info));
  }
}

}  // namespace

SameHostResults::SameHostResults(JobId job, std::shared_ptr<ObjectTable> table)
    : job_(job), table_(std::move(table)), wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  // Without an eventfd nothing could wake or stop the thread: no
  // subscriptions, every result comes through the scheduler.
  if (wake_fd_ >= 0) thread_ = std::thread([this] { Run(); });
}

SameHostResults::~SameHostResults() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void SameHostResults::Watch(const std::string& address) {
  absl::MutexLock lock(&mu_);
  Post(to_watch_, address);
}

void SameHostResults::Forget(const std::string& address) {
  absl::MutexLock lock(&mu_);
  Post(to_forget_, address);
}

bool SameHostResults::Wake() {
  const uint64_t one = 1;
  return write(wake_fd_, &one, sizeof(one)) == sizeof(one);
}

void SameHostResults::Post(std::vector<std::string>& queue, const std::string& address) {
  queue.push_back(address);
  if (!Wake()) queue.pop_back();  // nobody would take it
}

int SameHostResults::Subscribe(const std::string& address, WorkerId& worker,
                               bool& takes_tasks) const {
  absl::StatusOr<int> socket = ConnectLocalSocket(address);
  if (!socket.ok()) return -1;  // not on this host
  setsockopt(*socket, SOL_SOCKET, SO_RCVTIMEO, &kHelloTimeout, sizeof(kHelloTimeout));
  v1::LocalStoreHello hello;
  int arena_fd = -1;
  absl::Status status = ReceivePacket(*socket, &hello, &arena_fd);
  if (arena_fd >= 0) close(arena_fd);  // reads go through LocalStoreLink
  if (status.ok() && !hello.takes_subscriptions()) {
    status = absl::FailedPreconditionError("the worker takes no subscriptions (--deliver_to_owner)");
  }
  if (status.ok()) {
    absl::StatusOr<WorkerId> id = WorkerId::FromBinary(hello.worker_id());
    status = id.status();
    if (id.ok()) worker = *id;
    takes_tasks = hello.takes_tasks();
  }
  v1::LocalStoreRequest request;
  request.mutable_subscribe()->set_job_id(std::string(job_.Binary()));
  if (status.ok()) status = SendPacket(*socket, request);
  if (!status.ok()) {
    GetLogger("client")->debug("event=result_subscription_failed worker={} error=\"{}\"", address,
                               status.message());
    close(*socket);
    return -1;
  }
  return *socket;
}

void SameHostResults::Run() {
  std::vector<pollfd> polled;
  std::vector<std::string> polled_addresses;
  std::string packet(kLocalSocketMaxPushBytes, '\0');
  v1::LocalStorePush push;
  google::protobuf::RepeatedPtrField<v1::ObjectInfo> ready;
  absl::flat_hash_map<std::string, int> sockets;
  while (true) {
    polled.assign(1, pollfd{wake_fd_, POLLIN, 0});
    polled_addresses.assign(1, "");
    for (const auto& [address, socket] : sockets) {
      polled.push_back(pollfd{socket, POLLIN, 0});
      polled_addresses.push_back(address);
    }
    if (poll(polled.data(), polled.size(), -1) < 0) {
      if (errno == EINTR) continue;
      GetLogger("client")->error("event=result_subscriptions_failed error=\"poll: {}\"",
                                 std::strerror(errno));
      break;
    }
    // Every packet queued, resolved together below: one lock of the table
    // for a burst of results.
    std::vector<std::string> closed;
    for (std::size_t i = 1; i < polled.size(); ++i) {
      if (polled[i].revents == 0) continue;
      if (!DrainSubscription(polled[i].fd, packet, push, ready)) {
        closed.push_back(polled_addresses[i]);
      }
    }
    std::vector<std::string> to_watch;
    bool stopping = false;
    if (polled[0].revents != 0) {
      uint64_t count = 0;
      if (read(wake_fd_, &count, sizeof(count)) < 0) count = 0;
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
      to_watch = std::exchange(to_watch_, {});
      for (std::string& address : std::exchange(to_forget_, {})) closed.push_back(address);
    }
    for (const std::string& address : closed) {
      auto it = sockets.find(address);
      if (it == sockets.end()) continue;
      // A worker that left may have pushed results since the poll: the
      // scheduler counts them delivered and will not send them, so they
      // are read before the socket goes.
      DrainSubscription(it->second, packet, push, ready);
      CloseForHandOver(it->second);
      close(it->second);
      sockets.erase(it);
    }
    if (!ready.empty()) {
      table_->Resolve(ready);
      ready.Clear();
    }
    if (stopping) break;
    for (const std::string& address : to_watch) {
      if (sockets.contains(address)) continue;
      WorkerId worker;
      bool takes_tasks = false;
      const int socket = Subscribe(address, worker, takes_tasks);
      if (socket < 0) continue;
      sockets[address] = socket;
      if (takes_tasks) OpenForHandOver(worker, socket);
    }
  }
  for (const auto& [address, socket] : sockets) {
    CloseForHandOver(socket);
    close(socket);
  }
}

void SameHostResults::OpenForHandOver(const WorkerId& worker, int socket) {
  absl::MutexLock lock(&hand_over_mu_);
  hand_over_to_.emplace_back(worker, socket);
}

void SameHostResults::CloseForHandOver(int socket) {
  absl::MutexLock lock(&hand_over_mu_);
  std::erase_if(hand_over_to_, [socket](const auto& entry) { return entry.second == socket; });
}

std::optional<WorkerId> SameHostResults::HandOver(v1::TaskSpec& spec) {
  absl::MutexLock lock(&hand_over_mu_);
  if (hand_over_to_.empty()) return std::nullopt;
  // Framed in place: the spec goes into the request and back out.
  v1::TaskSpec* wire = hand_over_request_.mutable_run_task()->mutable_spec();
  wire->Swap(&spec);
  // The worker reads requests into a buffer of kLocalSocketMaxMessageBytes.
  const bool fits =
      hand_over_request_.ByteSizeLong() + 1 <= static_cast<std::size_t>(kLocalSocketMaxMessageBytes);
  const bool framed = fits && FramePush(hand_over_request_, hand_over_packet_).ok();
  wire->Swap(&spec);
  if (!framed) return std::nullopt;
  // In turn, so that the clients of a host spread over its workers. A full
  // socket (a worker slow to read) refuses it: the scheduler places it.
  const auto& [worker, socket] = hand_over_to_[next_hand_over_++ % hand_over_to_.size()];
  if (!SendPushNow(socket, hand_over_packet_).ok()) return std::nullopt;
  return worker;
}

}  // namespace fleet::client
