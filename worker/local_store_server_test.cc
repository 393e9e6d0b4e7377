// The same-host object path end to end, in one process: a LocalStoreServer
// over a real store, reached through real unix sockets, both by the
// LocalStoreLink that clients and workers use and by a raw connection that
// can be closed at will (as a crashed client's is).
#include "worker/local_store_server.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/local_socket.h"
#include "common/local_store_link.h"
#include "fleet/v1/local_store.pb.h"
#include "gtest/gtest.h"
#include "worker/object_store.h"
#include "worker/owner_delivery.h"
#include "worker/task_array_memory.h"

namespace fleet::worker {
namespace {

constexpr uint64_t kStoreBytes = 8 << 20;

ObjectId Id(uint64_t i) { return ObjectId::Of(TaskId::Of(JobId(), i), 0); }

std::string Content(uint64_t i, uint64_t size) {
  std::string s(size, '\0');
  for (uint64_t k = 0; k < size; ++k) s[k] = static_cast<char>((i * 31 + k * 7 + k / 253) & 0xff);
  return s;
}

// Polls `done` for up to five seconds: the server notices a closed
// connection on its own thread.
template <typename Done>
bool Eventually(Done done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// A raw connection: the hello's arena mapped read-only.
struct RawClient {
  int socket = -1;
  const char* arena = nullptr;
  uint64_t arena_bytes = 0;

  ~RawClient() {
    if (arena != nullptr) munmap(const_cast<char*>(arena), arena_bytes);
    if (socket >= 0) close(socket);
  }
  void Close() {
    close(socket);
    socket = -1;
  }
  v1::LocalStoreReply Call(const v1::LocalStoreRequest& request) {
    v1::LocalStoreReply reply;
    EXPECT_TRUE(SendPacket(socket, request).ok());
    EXPECT_TRUE(ReceivePacket(socket, &reply).ok());
    return reply;
  }
};

class LocalStoreServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = ObjectStore::Open({.capacity_bytes = kStoreBytes,
                                    .prefault_bytes = kStoreBytes,
                                    .spill_dir = ::testing::TempDir()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    // Unique per test: the link registry is process-wide.
    address_ = absl::StrCat("local-store-test-", getpid(), "-", ++serial_, ":1");
    auto server = LocalStoreServer::Start(store_.get(), worker_id_, address_, &owners_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  void Connect(RawClient& client) {
    absl::StatusOr<int> socket = ConnectLocalSocket(address_);
    ASSERT_TRUE(socket.ok()) << socket.status();
    client.socket = *socket;
    v1::LocalStoreHello hello;
    int fd = -1;
    ASSERT_TRUE(ReceivePacket(client.socket, &hello, &fd).ok());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(hello.worker_id(), std::string(worker_id_.Binary()));
    client.arena_bytes = hello.arena_bytes();
    void* map = mmap(nullptr, client.arena_bytes, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    ASSERT_NE(map, MAP_FAILED);
    client.arena = static_cast<const char*>(map);
  }

  static inline int serial_ = 0;
  const WorkerId worker_id_ = WorkerId::Random();
  std::string address_;
  std::unique_ptr<ObjectStore> store_;
  OwnerSubscriptions owners_;
  std::unique_ptr<LocalStoreServer> server_;
};

// A successful task of `job` with one inline result.
v1::TaskCompleted InlineCompletion(const JobId& job, uint64_t index, std::string value) {
  v1::TaskCompleted completed;
  const TaskId task = TaskId::Of(job, index);
  completed.set_task_id(std::string(task.Binary()));
  v1::ObjectInfo* result = completed.add_results();
  result->set_object_id(std::string(ObjectId::Of(task, 0).Binary()));
  result->set_size_bytes(value.size());
  result->set_inline_value(std::move(value));
  return completed;
}

TEST_F(LocalStoreServerTest, SubscribedClientIsPushedItsJobsInlineResultsOnly) {
  const JobId job = JobId::Random();
  RawClient client;
  Connect(client);
  v1::LocalStoreRequest subscribe;
  subscribe.mutable_subscribe()->set_job_id(std::string(job.Binary()));
  ASSERT_TRUE(SendPacket(client.socket, subscribe).ok());

  v1::TaskCompleted completed = InlineCompletion(job, 1, "forty-two");
  // The server registers the subscription on its connection's thread.
  ASSERT_TRUE(Eventually([&] { return owners_.Deliver(completed); }));
  EXPECT_EQ(completed.results(0).inline_value(), "forty-two")
      << "the values stay for the scheduler";
  std::string packet(kLocalSocketMaxPushBytes, '\0');
  const ssize_t received = recv(client.socket, packet.data(), packet.size(), 0);
  ASSERT_GT(received, 0);
  v1::LocalStorePush push;
  ASSERT_TRUE(ParsePacket(absl::string_view(packet.data(), received), &push).ok());
  ASSERT_EQ(push.ready_size(), 1);
  EXPECT_EQ(push.ready(0).object_id(), completed.results(0).object_id());
  EXPECT_EQ(push.ready(0).inline_value(), "forty-two");

  // What goes through the scheduler instead: another job's results, a
  // failure (which it may retry), a result stored here, one too large.
  v1::TaskCompleted other_job = InlineCompletion(JobId::Random(), 2, "x");
  EXPECT_FALSE(owners_.Deliver(other_job));
  v1::TaskCompleted failed = InlineCompletion(job, 3, "");
  failed.clear_results();
  failed.mutable_failure()->set_kind(v1::TaskFailure::USER_EXCEPTION);
  EXPECT_FALSE(owners_.Deliver(failed));
  v1::TaskCompleted stored = InlineCompletion(job, 4, "");
  stored.mutable_results(0)->mutable_location()->set_address(address_);
  EXPECT_FALSE(owners_.Deliver(stored));
  v1::TaskCompleted large = InlineCompletion(job, 5, std::string(kLocalSocketMaxPushBytes, 'l'));
  EXPECT_FALSE(owners_.Deliver(large));
  EXPECT_EQ(owners_.delivered(), 1u);

  // Once the client has gone, nothing is pushed (and nothing is written to
  // a closed descriptor).
  client.Close();
  v1::TaskCompleted after = InlineCompletion(job, 6, "y");
  EXPECT_TRUE(Eventually([&] { return !owners_.Deliver(after); }));
}

TEST_F(LocalStoreServerTest, LinkReadsAnObjectInPlaceAndItsPinOutlivesTheDelete) {
  const std::string content = Content(1, 1 << 20);
  ASSERT_TRUE(store_->Put(Id(1), content).ok());
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->worker_id(), worker_id_);

  absl::StatusOr<LocalStoreLink::PinnedBytes> pinned = link->Read(Id(1));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  ASSERT_EQ(pinned->size, content.size());
  EXPECT_EQ(std::memcmp(pinned->data, content.data(), content.size()), 0);
  EXPECT_EQ(server_->bytes_mapped(), content.size());

  // Freed by the cluster while read here: its memory stays taken (nothing
  // can be placed over it) until the pin goes.
  store_->Delete(Id(1));
  EXPECT_EQ(store_->stats().bytes, content.size());
  absl::Status no_room = store_->Put(Id(2), Content(2, kStoreBytes - content.size() / 2));
  EXPECT_TRUE(absl::IsResourceExhausted(no_room)) << no_room;
  EXPECT_EQ(std::memcmp(pinned->data, content.data(), content.size()), 0);
  pinned->pin.reset();
  EXPECT_TRUE(Eventually([&] { return store_->stats().bytes == 0; }))
      << "the released object still holds " << store_->stats().bytes << " bytes";
}

TEST_F(LocalStoreServerTest, LinkWritesAnObjectInPlaceAndSealsIt) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  const std::string content = Content(3, 300'000);
  absl::StatusOr<char*> out = link->Create(Id(3), content.size());
  ASSERT_TRUE(out.ok()) << out.status();
  std::memcpy(*out, content.data(), content.size());
  EXPECT_FALSE(store_->Get(Id(3)).ok()) << "readable before it was sealed";
  ASSERT_TRUE(link->Seal(Id(3)).ok());
  absl::StatusOr<ObjectStore::View> view = store_->Get(Id(3));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->std_view(), content);

  // Objects are immutable: a second create of the id is refused.
  absl::StatusOr<char*> again = link->Create(Id(3), 10);
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
}

TEST_F(LocalStoreServerTest, AnAbortedObjectIsDroppedAndItsIdFreed) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  ASSERT_TRUE(link->Create(Id(4), 1000).ok());
  link->Abort(Id(4));
  EXPECT_FALSE(store_->Contains(Id(4)));
  EXPECT_EQ(store_->stats().bytes, 0u);
  // The id is free again.
  absl::StatusOr<char*> out = link->Create(Id(4), 1000);
  ASSERT_TRUE(out.ok()) << out.status();
  std::memset(*out, 1, 1000);
  EXPECT_TRUE(link->Seal(Id(4)).ok());
}

TEST_F(LocalStoreServerTest, LinkSealsAnObjectUnderAnotherId) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  const std::string content = Content(5, 100'000);
  absl::StatusOr<char*> out = link->CreateInFreeMemory(Id(5), content.size());
  ASSERT_TRUE(out.ok()) << out.status();
  std::memcpy(*out, content.data(), content.size());
  ASSERT_TRUE(link->SealAs(Id(5), Id(6)).ok());
  absl::StatusOr<ObjectStore::View> view = store_->Get(Id(6));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->std_view(), content);
  EXPECT_FALSE(store_->Contains(Id(5)));

  // Onto an id the store holds: refused, and the object is still there to abort.
  ASSERT_TRUE(link->Create(Id(7), 1000).ok());
  const absl::Status taken = link->SealAs(Id(7), Id(6));
  EXPECT_TRUE(absl::IsAlreadyExists(taken)) << taken;
  EXPECT_EQ(store_->stats().bytes, content.size() + 1000);
  link->Abort(Id(7));
  EXPECT_EQ(store_->stats().bytes, content.size());
}

TEST_F(LocalStoreServerTest, LinkCreatesInFreeMemoryOnlyWithoutSpilling) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  ASSERT_TRUE(store_->Put(Id(8), Content(8, kStoreBytes * 3 / 4)).ok());
  absl::StatusOr<char*> refused = link->CreateInFreeMemory(Id(9), kStoreBytes / 2);
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_EQ(store_->stats().spills, 0u);
  EXPECT_TRUE(link->Create(Id(9), kStoreBytes / 2).ok());  // spills the other
  EXPECT_EQ(store_->stats().spills, 1u);
}

TEST_F(LocalStoreServerTest, TaskArrayMemoryBuildsArraysInTheStoreAndSealsOneAsAResult) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  TaskArrayMemory memory(link.get());
  constexpr std::size_t kBytes = 512 << 10;  // two within a quarter of the store
  const std::string header = internal::SerializedArrayHeader<double>(kBytes);
  char* returned = memory.Allocate(header, kBytes);
  char* dropped = memory.Allocate(header, kBytes);
  ASSERT_NE(returned, nullptr);
  ASSERT_NE(dropped, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(returned) % internal::kArrayDataAlignment, 0u);
  EXPECT_EQ(store_->stats().bytes, 2 * (header.size() + kBytes));
  for (std::size_t i = 0; i < kBytes / sizeof(double); ++i) {
    reinterpret_cast<double*>(returned)[i] = static_cast<double>(i);
  }

  absl::StatusOr<uint64_t> sealed = memory.SealAs(returned, Id(10));
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(*sealed, header.size() + kBytes);
  memory.Free(returned);  // the array's destructor: the result stays
  memory.Free(dropped);
  EXPECT_EQ(store_->stats().bytes, *sealed);
  absl::StatusOr<ObjectStore::View> view = store_->Get(Id(10));
  ASSERT_TRUE(view.ok()) << view.status();
  const auto array = Deserialize<fleet::Array<double>>(view->std_view());
  ASSERT_EQ(array.size(), kBytes / sizeof(double));
  EXPECT_EQ(array[12345], 12345.0);

  // An id stored already: the array stays the task's, to free.
  char* again = memory.Allocate(header, kBytes);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(absl::IsAlreadyExists(memory.SealAs(again, Id(10)).status()));
  memory.Free(again);
  EXPECT_EQ(store_->stats().bytes, *sealed);
  EXPECT_TRUE(absl::IsNotFound(memory.SealAs(again, Id(11)).status()));
}

TEST_F(LocalStoreServerTest, TaskArrayMemoryTakesAtMostAQuarterOfTheStore) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  TaskArrayMemory memory(link.get());
  const std::size_t bytes = kStoreBytes / 8;
  const std::string header = internal::SerializedArrayHeader<char>(bytes);
  char* first = memory.Allocate(header, bytes);
  ASSERT_NE(first, nullptr);
  // The second would pass a quarter (with the headers): the heap's.
  EXPECT_EQ(memory.Allocate(header, bytes), nullptr);
  memory.Free(first);
  EXPECT_EQ(store_->stats().bytes, 0u);
  char* next = memory.Allocate(header, bytes);
  EXPECT_NE(next, nullptr);
  memory.Free(next);
}

TEST_F(LocalStoreServerTest, MissingAndOversizedObjectsAreClearErrors) {
  std::shared_ptr<LocalStoreLink> link = LocalStoreLink::To(address_);
  ASSERT_NE(link, nullptr);
  absl::StatusOr<LocalStoreLink::PinnedBytes> missing = link->Read(Id(5));
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find(Id(5).Short()), std::string::npos) << missing.status();
  // Larger than the arena: the store would keep it in a file, which a
  // same-host writer cannot map; the caller uploads it instead.
  absl::StatusOr<char*> too_big = link->Create(Id(6), 2 * kStoreBytes);
  EXPECT_TRUE(absl::IsResourceExhausted(too_big.status())) << too_big.status();
  EXPECT_FALSE(store_->Contains(Id(6)));
}

TEST_F(LocalStoreServerTest, AClosedConnectionReleasesItsPinsAndAbortsItsWrites) {
  ASSERT_TRUE(store_->Put(Id(7), Content(7, 4096)).ok());
  RawClient client;
  Connect(client);
  v1::LocalStoreRequest get;
  get.mutable_get()->set_object_id(std::string(Id(7).Binary()));
  const v1::LocalStoreReply pinned = client.Call(get);
  ASSERT_EQ(pinned.code(), 0) << pinned.message();
  ASSERT_EQ(pinned.size_bytes(), 4096u);
  EXPECT_EQ(std::string(client.arena + pinned.offset_bytes(), 4096), Content(7, 4096));

  v1::LocalStoreRequest create;
  create.mutable_create()->set_object_id(std::string(Id(8).Binary()));
  create.mutable_create()->set_size_bytes(8192);
  ASSERT_EQ(client.Call(create).code(), 0);

  store_->Delete(Id(7));
  EXPECT_GE(store_->stats().bytes, 4096u + 8192u) << "the pin and the unsealed object hold memory";
  client.Close();  // as when a client crashes
  EXPECT_TRUE(Eventually([&] { return store_->stats().bytes == 0; }))
      << store_->stats().bytes << " bytes still held after the client went";
  EXPECT_FALSE(store_->Contains(Id(8)));
}

TEST_F(LocalStoreServerTest, ALinkToADepartedWorkerIsDroppedWhenTheNextLinkIsMade) {
  std::weak_ptr<LocalStoreLink> departed = LocalStoreLink::To(address_);
  ASSERT_FALSE(departed.expired());
  // A second worker on this host, which stays.
  auto staying_store =
      ObjectStore::Open({.capacity_bytes = kStoreBytes, .spill_dir = ::testing::TempDir()});
  ASSERT_TRUE(staying_store.ok()) << staying_store.status();
  const std::string staying_address = absl::StrCat(address_, "-staying");
  auto staying_server =
      LocalStoreServer::Start(staying_store->get(), WorkerId::Random(), staying_address);
  ASSERT_TRUE(staying_server.ok()) << staying_server.status();
  std::weak_ptr<LocalStoreLink> staying = LocalStoreLink::To(staying_address);
  ASSERT_FALSE(staying.expired());
  EXPECT_FALSE(departed.expired()) << "a link to a running worker was dropped";

  server_.reset();  // the first worker goes: its connections close
  // Its arena stays mapped, by the registry alone, until a new link is made.
  EXPECT_FALSE(departed.expired());
  auto next_store =
      ObjectStore::Open({.capacity_bytes = kStoreBytes, .spill_dir = ::testing::TempDir()});
  ASSERT_TRUE(next_store.ok()) << next_store.status();
  const std::string next_address = absl::StrCat(address_, "-next");
  auto next_server = LocalStoreServer::Start(next_store->get(), WorkerId::Random(), next_address);
  ASSERT_TRUE(next_server.ok()) << next_server.status();
  ASSERT_NE(LocalStoreLink::To(next_address), nullptr);
  EXPECT_TRUE(departed.expired()) << "the departed worker's store is still mapped";
  EXPECT_FALSE(staying.expired()) << "a link to a running worker was dropped";
  EXPECT_EQ(LocalStoreLink::To(staying_address), staying.lock())
      << "a new link to a running worker";
}

TEST_F(LocalStoreServerTest, OneServerPerAddressInANetworkNamespace) {
  auto second = LocalStoreServer::Start(store_.get(), WorkerId::Random(), address_);
  EXPECT_TRUE(absl::IsAlreadyExists(second.status())) << second.status();
}

TEST_F(LocalStoreServerTest, NoLinkToAWorkerThatIsNotOnThisHost) {
  EXPECT_EQ(LocalStoreLink::To("no-such-worker.example:9"), nullptr);
}

}  // namespace
}  // namespace fleet::worker
