// fleet-bench-floor: the limits of this machine, measured in the same run
// as fleet and the peers, without any task system:
//
//   XFER (Google Benchmark, GB/s): memcpy between warm buffers; memcpy into
//     fresh pages (each page faulted in on first touch, as a new object's
//     memory is); the summing loop of bench_sum_view over a warm buffer; and
//     loopback TCP from this process to a child process (1 MiB writes).
//   M2 (plain loops, median and p99 µs over 1,000 round trips after 50
//     warm-up ones): a 32-byte echo over loopback TCP, the same over a Unix
//     socketpair (the kind of channel between a worker and its executor), a
//     bare gRPC unary ping-pong and a bare gRPC bidi-stream ping-pong (also
//     over a unix socket, as a scheduler's same-host workers and clients
//     reach it), each with a child process that answers; fleet's round-trip path with no
//     task system in it (a bare gRPC stream to a relay process, which
//     forwards over its own stream to an end process, which passes the
//     message through a socketpair child: the client -> scheduler ->
//     worker -> executor hops): on the callback API with a relay that
//     blocks on its downstream stream and with one that does not, and on
//     the async API with one thread per process draining its completion
//     queue, alone, over unix sockets, and beside an idle callback service;
//     and a handoff
//     between two threads of one process and back.
//
//   fleet-bench-floor [--quick] [--out=FILE]
//
// The children are forked before this process starts gRPC or any thread
// (gRPC does not survive a fork), and killed at exit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bench/common/bench_common.h"
#include "bench/floor_children.h"
#include "bench/floor_io.h"
#include "examples/tasks/sum_doubles.h"
#include "benchmark/benchmark.h"
#include "fleet/bench/v1/echo.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace fleet::bench {
namespace {

constexpr int kCalls = 1'000;  // M2_CALLS
constexpr int kWarmUpCalls = 50;
constexpr std::size_t kPayloadBytes = 32;
constexpr std::size_t kTcpWriteBytes = 1 << 20;
// bench/report.py finds these rows by their start, "bare chain".
constexpr char kBlockingChainVariant[] =
    "bare chain: gRPC stream to a relay, its stream to an end, a socketpair hop there; relay "
    "with a blocking client stream, 32 B (C++)";
constexpr char kCallbackChainVariant[] =
    "bare chain: gRPC stream to a relay, its stream to an end, a socketpair hop there; relay "
    "with a callback client reactor, 32 B (C++)";
constexpr char kAsyncChainVariant[] =
    "bare chain: gRPC stream to a relay, its stream to an end, a socketpair hop there; relay "
    "and end on the async API, one thread each, 32 B (C++)";
constexpr char kAsyncUnixChainVariant[] =
    "bare chain: gRPC stream to a relay, its stream to an end, a socketpair hop there; relay "
    "and end on the async API, one thread each, both streams over unix sockets, 32 B (C++)";
constexpr char kAsyncBesideCallbackChainVariant[] =
    "bare chain: gRPC stream to a relay, its stream to an end, a socketpair hop there; relay "
    "and end on the async API beside an idle callback service, 32 B (C++)";

// --- small POSIX helpers ---------------------------------------------------

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// --- the TCP child: a sink for bulk transfers and an echo --------------------

// Each connection starts with one mode byte. 'B': repeated (8-byte length,
// that many bytes) frames, each answered with one byte once fully read.
// 'E': every read is written back.
[[noreturn]] void ServeTcp(int listener) {
  std::vector<char> buffer(kTcpWriteBytes);
  for (;;) {
    const int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) {
      if (errno == EINTR) continue;
      ::_exit(0);
    }
    NoDelay(c);
    char mode = 0;
    if (ReadFull(c, &mode, 1) && mode == 'B') {
      uint64_t length = 0;
      while (ReadFull(c, &length, sizeof(length))) {
        while (length > 0) {
          const ssize_t r = ::read(c, buffer.data(), std::min<uint64_t>(length, buffer.size()));
          if (r <= 0) break;
          length -= static_cast<uint64_t>(r);
        }
        const char ack = 'k';
        if (!WriteFull(c, &ack, 1)) break;
      }
    } else if (mode == 'E') {
      for (;;) {
        const ssize_t r = ::read(c, buffer.data(), 64);
        if (r <= 0 || !WriteFull(c, buffer.data(), static_cast<std::size_t>(r))) break;
      }
    }
    ::close(c);
  }
}

pid_t StartTcpChild(int* port) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, 4) != 0) {
    Die("cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) ServeTcp(listener);
  ::close(listener);
  return pid;
}

int ConnectTcp(int port, char mode) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die("cannot connect to the TCP child");
  }
  NoDelay(fd);
  if (!WriteFull(fd, &mode, 1)) Die("write to the TCP child");
  return fd;
}

// --- bandwidth: Google Benchmark ---------------------------------------------

// A buffer of `bytes` with every page touched.
std::unique_ptr<char[]> WarmBuffer(std::size_t bytes, char fill) {
  std::unique_ptr<char[]> buffer(new char[bytes]);
  std::memset(buffer.get(), fill, bytes);
  return buffer;
}

// Prints each repetition of each benchmark as a JSON line (system "floor",
// workload "XFER", metric GB_per_s) instead of Google Benchmark's table.
class JsonLinesReporter final : public benchmark::BenchmarkReporter {
 public:
  explicit JsonLinesReporter(const Recorder& rec) : rec_(rec) {}
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      auto it = run.counters.find("bytes_per_second");
      if (it == run.counters.end()) continue;
      const int trial = run.repetition_index < 0 ? 0 : static_cast<int>(run.repetition_index);
      rec_(run.run_name.function_name, "GB_per_s", it->second.value / kGB, trial);
    }
  }

 private:
  const Recorder& rec_;
};

void RunBandwidth(const BenchOptions& options, int tcp_port) {
  const std::size_t bytes = options.quick ? (std::size_t{1} << 20) : std::size_t{100'000'000};
  const std::string size = options.quick ? "1 MiB" : "100 MB";
  const int repetitions = options.quick ? 1 : 3;
  auto src = std::shared_ptr<char[]>(WarmBuffer(bytes, 1));
  auto dst = std::shared_ptr<char[]>(WarmBuffer(bytes, 2));

  auto memcpy_warm = [src, dst, bytes](benchmark::State& state) {
    for (auto _ : state) {
      std::memcpy(dst.get(), src.get(), bytes);
      benchmark::DoNotOptimize(dst.get());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  };
  auto memcpy_fresh = [src, bytes](benchmark::State& state) {
    for (auto _ : state) {
      state.PauseTiming();
      void* fresh =
          ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (fresh == MAP_FAILED) {
        state.SkipWithError("mmap failed");
        break;
      }
      state.ResumeTiming();
      std::memcpy(fresh, src.get(), bytes);
      benchmark::DoNotOptimize(fresh);
      benchmark::ClobberMemory();
      state.PauseTiming();
      ::munmap(fresh, bytes);
      state.ResumeTiming();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  };
  auto read_loop = [src, bytes](benchmark::State& state) {
    const double* p = reinterpret_cast<const double*>(src.get());
    const std::size_t n = bytes / sizeof(double);
    for (auto _ : state) {
      double sum = fleet::examples::SumDoubles(p, n);
      benchmark::DoNotOptimize(sum);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  };
  auto tcp = [src, bytes, tcp_port](benchmark::State& state) {
    const int fd = ConnectTcp(tcp_port, 'B');
    for (auto _ : state) {
      const uint64_t length = bytes;
      bool ok = WriteFull(fd, &length, sizeof(length));
      for (std::size_t off = 0; ok && off < bytes; off += kTcpWriteBytes) {
        ok = WriteFull(fd, src.get() + off, std::min(kTcpWriteBytes, bytes - off));
      }
      char ack = 0;
      if (!ok || !ReadFull(fd, &ack, 1)) {
        state.SkipWithError("the TCP child went away");
        break;
      }
    }
    ::close(fd);
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  };

  const std::vector<std::pair<std::string, std::function<void(benchmark::State&)>>> benches = {
      {"memcpy " + size + ", warm buffers", memcpy_warm},
      {"memcpy " + size + " into fresh pages (first touch)", memcpy_fresh},
      {"read loop over " + size + " (bench_sum_view's)", read_loop},
      {"loopback TCP to another process, " + size + " in 1 MiB writes", tcp},
  };
  for (const auto& [name, fn] : benches) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->Repetitions(repetitions)->UseRealTime();
  }
  const Recorder rec("floor", "XFER", options);
  JsonLinesReporter reporter(rec);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::ClearRegisteredBenchmarks();
}

// --- latency: plain loops ------------------------------------------------------

template <typename RoundTrip>
void MeasureLatency(const Recorder& rec, const std::string& variant, int calls,
                    RoundTrip&& round_trip) {
  for (int i = 0; i < kWarmUpCalls; ++i) round_trip();
  std::vector<double> samples;
  samples.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    Stopwatch clock;
    round_trip();
    samples.push_back(clock.Seconds());
  }
  const LatencyStats stats = ComputeLatency(samples);
  rec(variant, "median_us", stats.median_us);
  rec(variant, "p99_us", stats.p99_us);
}

// Two threads of this process passing a turn back and forth through an
// absl::Mutex condition, as fleet's event loop receives work: the handoff
// from a daemon's network thread to the thread that owns its state (the
// scheduler's core thread), and back.
void MeasureThreadHandoff(const Recorder& rec, int calls) {
  struct Turn {
    absl::Mutex mu;
    int holder ABSL_GUARDED_BY(mu) = 0;  // 0: this thread, 1: the partner, -1: stop
  } turn;
  std::thread partner([&turn] {
    while (true) {
      absl::MutexLock lock(&turn.mu);
      turn.mu.Await(absl::Condition(
          +[](int* holder) { return *holder != 0; }, &turn.holder));
      if (turn.holder < 0) return;
      turn.holder = 0;
    }
  });
  MeasureLatency(rec, "thread handoff ping-pong (absl::Mutex condition), C++", calls, [&turn] {
    absl::MutexLock lock(&turn.mu);
    turn.holder = 1;
    turn.mu.Await(absl::Condition(+[](int* holder) { return *holder == 0; }, &turn.holder));
  });
  {
    absl::MutexLock lock(&turn.mu);
    turn.holder = -1;
  }
  partner.join();
}

// One round trip over a new stream of `stub`'s Stream, `calls` times.
int MeasureStream(const Recorder& rec, const std::string& variant, int calls,
                  v1::Echo::Stub& stub, const v1::EchoMessage& request) {
  grpc::ClientContext context;
  auto stream = stub.Stream(&context);
  MeasureLatency(rec, variant, calls, [&] {
    v1::EchoMessage reply;
    if (!stream->Write(request) || !stream->Read(&reply) ||
        reply.payload() != request.payload()) {
      Die(variant);
    }
  });
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "fleet-bench-floor: %s: the stream ended with %s\n", variant.c_str(),
                 status.error_message().c_str());
    return 1;
  }
  return 0;
}

// The addresses of the children fleet-bench-floor measures against.
struct GrpcChildren {
  std::string echo;
  std::string echo_unix;  // the same child over its unix socket
  std::string blocking_chain;
  std::string callback_chain;
  std::string async_chain;
  std::string async_unix_chain;
  std::string async_beside_callback_chain;
};

int RunLatency(const BenchOptions& options, int tcp_port, int socketpair_fd,
               const GrpcChildren& grpc_children) {
  const Recorder rec("floor", "M2", options);
  const int calls = options.quick ? 20 : kCalls;

  char message[kPayloadBytes];
  std::memset(message, 'x', sizeof(message));
  auto echo = [&](int fd, const char* what) {
    char reply[kPayloadBytes];
    if (!WriteFull(fd, message, sizeof(message)) || !ReadFull(fd, reply, sizeof(reply))) {
      Die(what);
    }
  };
  const int fd = ConnectTcp(tcp_port, 'E');
  MeasureLatency(rec, "raw TCP loopback echo, 32 B (C++)", calls, [&] { echo(fd, "TCP echo"); });
  ::close(fd);
  MeasureLatency(rec, "Unix socketpair echo, 32 B (C++)", calls,
                 [&] { echo(socketpair_fd, "socketpair echo"); });

  MeasureThreadHandoff(rec, calls);

  auto stub = v1::Echo::NewStub(
      grpc::CreateChannel(grpc_children.echo, grpc::InsecureChannelCredentials()));
  v1::EchoMessage request;
  request.set_payload(std::string(kPayloadBytes, 'x'));
  MeasureLatency(rec, "bare gRPC unary ping-pong, 32 B (C++)", calls, [&] {
    grpc::ClientContext context;
    v1::EchoMessage reply;
    const grpc::Status status = stub->Ping(&context, request, &reply);
    if (!status.ok() || reply.payload() != request.payload()) Die("gRPC Ping");
  });

  if (MeasureStream(rec, "bare gRPC bidi-stream ping-pong, 32 B (C++)", calls, *stub, request) != 0) {
    return 1;
  }
  // bench/report.py tells the two apart by " over a unix socket".
  auto unix_stub = v1::Echo::NewStub(
      grpc::CreateChannel(grpc_children.echo_unix, grpc::InsecureChannelCredentials()));
  if (MeasureStream(rec, "bare gRPC bidi-stream ping-pong over a unix socket, 32 B (C++)", calls,
                    *unix_stub, request) != 0) {
    return 1;
  }
  for (const auto& [address, variant] :
       {std::pair{grpc_children.blocking_chain, kBlockingChainVariant},
        std::pair{grpc_children.callback_chain, kCallbackChainVariant},
        std::pair{grpc_children.async_chain, kAsyncChainVariant},
        std::pair{grpc_children.async_unix_chain, kAsyncUnixChainVariant},
        std::pair{grpc_children.async_beside_callback_chain, kAsyncBesideCallbackChainVariant}}) {
    auto chain_stub =
        v1::Echo::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    if (MeasureStream(rec, variant, calls, *chain_stub, request) != 0) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fleet::bench

int main(int argc, char** argv) {
  const fleet::bench::BenchOptions options = fleet::bench::ParseBenchFlags(
      argc, argv,
      "fleet-bench-floor [--quick] [--out=FILE]\nThe machine's limits: memcpy, the read loop, "
      "loopback TCP (GB/s) and TCP / socketpair / bare gRPC round trips (µs).");
  // Children first: before this process has a thread or gRPC state.
  fleet::bench::Children children;
  int tcp_port = 0;
  children.Add(fleet::bench::StartTcpChild(&tcp_port));
  int socketpair_fd = -1;
  children.Add(fleet::bench::StartSocketPairChild(&socketpair_fd));
  fleet::bench::GrpcChildren grpc_children;
  const pid_t echo = fleet::bench::StartGrpcChild(&grpc_children.echo);
  children.Add(echo);
  grpc_children.echo_unix = fleet::bench::UnixTargetOf(echo);
  for (pid_t pid : fleet::bench::StartChainChildren(fleet::bench::RelayKind::kBlockingClient,
                                                    &grpc_children.blocking_chain)) {
    children.Add(pid);
  }
  for (pid_t pid : fleet::bench::StartChainChildren(fleet::bench::RelayKind::kCallbackClient,
                                                    &grpc_children.callback_chain)) {
    children.Add(pid);
  }
  for (pid_t pid : fleet::bench::StartChainChildren(fleet::bench::RelayKind::kAsync,
                                                    &grpc_children.async_chain)) {
    children.Add(pid);
  }
  for (pid_t pid : fleet::bench::StartChainChildren(fleet::bench::RelayKind::kAsyncOverUnixSockets,
                                                    &grpc_children.async_unix_chain)) {
    children.Add(pid);
  }
  for (pid_t pid : fleet::bench::StartChainChildren(
           fleet::bench::RelayKind::kAsyncBesideCallback,
           &grpc_children.async_beside_callback_chain)) {
    children.Add(pid);
  }

  // Google Benchmark's own flags: a shorter minimum time for --quick.
  std::string min_time = std::string("--benchmark_min_time=") + (options.quick ? "0.01" : "0.3");
  std::vector<char*> bench_argv = {argv[0], min_time.data()};
  int bench_argc = static_cast<int>(bench_argv.size());
  benchmark::Initialize(&bench_argc, bench_argv.data());

  return fleet::bench::RunGuarded("fleet-bench-floor", [&] {
    fleet::bench::RunBandwidth(options, tcp_port);
    return fleet::bench::RunLatency(options, tcp_port, socketpair_fd, grpc_children);
  });
}
