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
//     bare gRPC unary ping-pong and a bare gRPC bidi-stream ping-pong, each
//     with a child process that answers; and a handoff between two threads
//     of one process and back.
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

// --- small POSIX helpers ---------------------------------------------------

bool WriteFull(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool ReadFull(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void NoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fleet-bench-floor: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
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

// A child that echoes whatever arrives on its end of a Unix socketpair; the
// other end is returned in `fd`.
pid_t StartSocketPairChild(int* fd) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) Die("socketpair");
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::close(fds[0]);
    char buffer[64];
    for (;;) {
      const ssize_t r = ::read(fds[1], buffer, sizeof(buffer));
      if (r <= 0 || !WriteFull(fds[1], buffer, static_cast<std::size_t>(r))) ::_exit(0);
    }
  }
  ::close(fds[1]);
  *fd = fds[0];
  return pid;
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

// --- the gRPC child: Echo on the callback API, as fleet's daemons ------------

class EchoService final : public v1::Echo::CallbackService {
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const v1::EchoMessage* request, v1::EchoMessage* reply) override {
    *reply = *request;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<v1::EchoMessage, v1::EchoMessage>* Stream(
      grpc::CallbackServerContext*) override {
    // Reads one message, writes it back, reads the next; one of each in
    // flight, deleted in OnDone.
    class Reactor final : public grpc::ServerBidiReactor<v1::EchoMessage, v1::EchoMessage> {
     public:
      Reactor() { StartRead(&message_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        StartWrite(&message_);
      }
      void OnWriteDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        StartRead(&message_);
      }
      void OnDone() override { delete this; }

     private:
      v1::EchoMessage message_;
    };
    return new Reactor();
  }
};

pid_t StartGrpcChild(std::string* address) {
  int fds[2];
  if (::pipe(fds) != 0) Die("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::close(fds[0]);
    EchoService service;
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr || port == 0) ::_exit(1);
    WriteFull(fds[1], &port, sizeof(port));
    ::close(fds[1]);
    server->Wait();
    ::_exit(0);
  }
  ::close(fds[1]);
  int port = 0;
  if (!ReadFull(fds[0], &port, sizeof(port))) Die("the gRPC child did not start");
  ::close(fds[0]);
  *address = "127.0.0.1:" + std::to_string(port);
  return pid;
}

// Kills the children at exit, however main returns.
class Children {
 public:
  void Add(pid_t pid) { pids_.push_back(pid); }
  ~Children() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }

 private:
  std::vector<pid_t> pids_;
};

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

int RunLatency(const BenchOptions& options, int tcp_port, int socketpair_fd,
               const std::string& grpc_address) {
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

  auto stub =
      v1::Echo::NewStub(grpc::CreateChannel(grpc_address, grpc::InsecureChannelCredentials()));
  v1::EchoMessage request;
  request.set_payload(std::string(kPayloadBytes, 'x'));
  MeasureLatency(rec, "bare gRPC unary ping-pong, 32 B (C++)", calls, [&] {
    grpc::ClientContext context;
    v1::EchoMessage reply;
    const grpc::Status status = stub->Ping(&context, request, &reply);
    if (!status.ok() || reply.payload() != request.payload()) Die("gRPC Ping");
  });

  grpc::ClientContext context;
  auto stream = stub->Stream(&context);
  MeasureLatency(rec, "bare gRPC bidi-stream ping-pong, 32 B (C++)", calls, [&] {
    v1::EchoMessage reply;
    if (!stream->Write(request) || !stream->Read(&reply)) Die("gRPC Stream");
  });
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "fleet-bench-floor: stream ended with %s\n",
                 status.error_message().c_str());
    return 1;
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
  std::string grpc_address;
  children.Add(fleet::bench::StartGrpcChild(&grpc_address));

  // Google Benchmark's own flags: a shorter minimum time for --quick.
  std::string min_time = std::string("--benchmark_min_time=") + (options.quick ? "0.01" : "0.3");
  std::vector<char*> bench_argv = {argv[0], min_time.data()};
  int bench_argc = static_cast<int>(bench_argv.size());
  benchmark::Initialize(&bench_argc, bench_argv.data());

  return fleet::bench::RunGuarded("fleet-bench-floor", [&] {
    fleet::bench::RunBandwidth(options, tcp_port);
    return fleet::bench::RunLatency(options, tcp_port, socketpair_fd, grpc_address);
  });
}
