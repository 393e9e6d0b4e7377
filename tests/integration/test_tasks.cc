#include "tests/integration/test_tasks.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "fleet/remote.h"

namespace fleet_it {
namespace {

// The worker daemon's pid: an executor process learns it from its
// environment; a task on a worker thread (--isolation=thread) runs in it.
int DaemonPid() {
  const char* pid = std::getenv("FLEET_WORKER_PID");
  return pid != nullptr ? std::atoi(pid) : static_cast<int>(getpid());
}

// Whether `data` lies in a mapping of a worker's object store arena (its
// memfd, shm_arena.cc), from /proc/self/maps.
bool InObjectStore(const void* data) {
  const auto address = reinterpret_cast<uintptr_t>(data);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t start = 0;
    uintptr_t end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &start, &end) != 2) continue;
    if (address >= start && address < end) {
      return line.find("memfd:fleet-object-store") != std::string::npos;
    }
  }
  return false;
}

}  // namespace

int Square(int x) { return x * x; }
FLEET_REMOTE(Square);

int64_t Add(int64_t a, int64_t b) { return a + b; }
FLEET_REMOTE(Add);

int64_t Multiply(int64_t a, int64_t b) { return a * b; }
FLEET_REMOTE(Multiply);

void Noop() {}
FLEET_REMOTE(Noop);

int ThrowInvalidInput(std::string message) { throw InvalidInput(std::move(message)); }
FLEET_REMOTE(ThrowInvalidInput);

int FailTimesThenCount(std::string path, int failures) {
  int runs = 0;
  {
    std::ifstream in(path);
    in >> runs;
  }
  ++runs;
  {
    std::ofstream out(path, std::ios::trunc);
    out << runs;
  }
  if (runs <= failures) throw InvalidInput("run " + std::to_string(runs) + " fails");
  return runs;
}
FLEET_REMOTE(FailTimesThenCount);

int SleepMs(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
FLEET_REMOTE(SleepMs);

int64_t LoggedSquare(std::string log_path, int64_t i, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  // One write(2) with O_APPEND: lines from concurrent runs never interleave.
  const std::string line = std::to_string(i) + "\n";
  const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0 || write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    throw std::runtime_error("cannot append to " + log_path);
  }
  close(fd);
  return i * i;
}
FLEET_REMOTE(LoggedSquare);

int WorkerPid() { return DaemonPid(); }
FLEET_REMOTE(WorkerPid);

int SleepThenPid(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return DaemonPid();
}
FLEET_REMOTE(SleepThenPid);

int PrintLines(std::string tag, int count) {
  for (int i = 0; i < count; ++i) std::cout << tag << " " << i << "\n";
  std::fprintf(stderr, "%s done\n", tag.c_str());
  return count;
}
FLEET_REMOTE(PrintLines);

int ProcessPid() { return static_cast<int>(getpid()); }
FLEET_REMOTE(ProcessPid);

int Segfault(int value) {
  // A volatile pointer to volatile memory: the compiler can neither see
  // the null (and emit a trap, SIGILL) nor drop the store.
  volatile int* volatile nowhere = nullptr;
  *nowhere = value;
  return value;
}
FLEET_REMOTE(Segfault);

int ExitWith(int status) {
  std::exit(status);
}
FLEET_REMOTE(ExitWith);

int SegfaultOnce(std::string path, int value) {
  if (access(path.c_str(), F_OK) != 0) {
    std::ofstream(path) << "crashed";
    return Segfault(value);
  }
  return value;
}
FLEET_REMOTE(SegfaultOnce);

int64_t TouchHeapMiB(int64_t mib, int hold_ms) {
  const std::size_t bytes = static_cast<std::size_t>(mib) << 20;
  std::unique_ptr<char[]> block(new char[bytes]);
  for (std::size_t i = 0; i < bytes; i += 4096) block[i] = static_cast<char>(i);
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  int64_t touched = 0;
  for (std::size_t i = 0; i < bytes; i += 4096) touched += block[i] == static_cast<char>(i) ? 4096 : 0;
  return touched;
}
FLEET_REMOTE(TouchHeapMiB);

fleet::Array<double> ArrayNotingWhereBuilt(int64_t size) {
  fleet::Array<double> a(static_cast<std::size_t>(size));
  for (std::size_t i = 1; i < a.size(); ++i) a[i] = static_cast<double>(i);
  if (!a.empty()) a[0] = InObjectStore(a.data()) ? 1 : 0;
  return a;
}
FLEET_REMOTE(ArrayNotingWhereBuilt);

std::vector<double> SumOfTemporaryArrays(int64_t size, int count) {
  std::vector<fleet::Array<double>> arrays;
  for (int i = 0; i < count; ++i) arrays.emplace_back(static_cast<std::size_t>(size), 1.0);
  double sum = 0;
  double in_store = 0;
  for (const fleet::Array<double>& a : arrays) {
    for (double x : a) sum += x;
    in_store += InObjectStore(a.data()) ? 1 : 0;
  }
  return {sum, in_store};
}
FLEET_REMOTE(SumOfTemporaryArrays);

int SleepThenSquare(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x * x;
}
FLEET_REMOTE(SleepThenSquare);

fleet::Array<double> MakeBigArray(int64_t size, double seed) {
  fleet::Array<double> a(static_cast<std::size_t>(size));
  if (size > 0) a[0] = static_cast<double>(DaemonPid());
  for (std::size_t i = 1; i < a.size(); ++i) a[i] = BigArrayValue(seed, i);
  return a;
}
FLEET_REMOTE(MakeBigArray);

ArrayDigest DigestBigArray(fleet::Array<double> a, double seed, int sleep_ms) {
  ArrayDigest digest;
  digest.size = a.size();
  digest.pattern_ok = !a.empty();
  for (std::size_t i = 1; i < a.size(); ++i) {
    digest.sum += a[i];
    digest.pattern_ok = digest.pattern_ok && a[i] == BigArrayValue(seed, i);
  }
  digest.producer_pid = a.empty() ? 0 : static_cast<int>(a[0]);
  digest.consumer_pid = DaemonPid();
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  return digest;
}
FLEET_REMOTE(DigestBigArray);

fleet::Array<double> ShiftArray(fleet::ArrayView<double> a, double shift) {
  fleet::Array<double> shifted(a.size());
  if (!a.empty()) shifted[0] = static_cast<double>(DaemonPid());
  for (std::size_t i = 1; i < a.size(); ++i) shifted[i] = a[i] + shift;
  return shifted;
}
FLEET_REMOTE(ShiftArray);

double SumArray(fleet::Array<double> a) {
  double sum = 0;
  for (double x : a) sum += x;
  return sum;
}
FLEET_REMOTE(SumArray);

std::string Repeat(std::string s, int times) {
  std::string out;
  out.reserve(s.size() * static_cast<std::size_t>(times > 0 ? times : 0));
  for (int i = 0; i < times; ++i) out += s;
  return out;
}
FLEET_REMOTE(Repeat);

uint64_t Length(std::string s) { return s.size(); }
FLEET_REMOTE(Length);

fleet::Array<double> FourMiBArray(int seed) { return MakeBigArray(kFourMiBOfDoubles, seed); }
FLEET_REMOTE(FourMiBArray);

int SquareNonNegative(int x) {
  if (x < 0) throw InvalidInput("negative input " + std::to_string(x));
  return x * x;
}
FLEET_REMOTE(SquareNonNegative);

int GatedSquare(GatedInput input) {
  if (!input.gate_path.empty()) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kGateTimeoutMs);
    while (access(input.gate_path.c_str(), F_OK) != 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        throw InvalidInput("gate " + input.gate_path + " did not open within " +
                           std::to_string(kGateTimeoutMs) + " ms");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return input.value * input.value;
}
FLEET_REMOTE(GatedSquare);

WindowMeanResult WindowMean(fleet::ArrayView<double> data, int64_t start, int64_t end) {
  if (start < 0 || start >= end || static_cast<uint64_t>(end) > data.size()) {
    throw InvalidInput("window out of range");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  double sum = 0;
  for (int64_t i = start; i < end; ++i) sum += data[static_cast<std::size_t>(i)];
  return {sum / static_cast<double>(end - start), DaemonPid()};
}
FLEET_REMOTE(WindowMean);

int SegfaultAfterReading(fleet::ArrayView<double> data) {
  double sum = 0;
  for (double x : data) sum += x;
  return Segfault(static_cast<int>(sum));
}
FLEET_REMOTE(SegfaultAfterReading);

}  // namespace fleet_it
