// The remote functions of the integration tests, built as the task library
// libfleet_test_tasks.so: the workers load it with --task_lib and the test
// binary links it, so fleet::Task(fn) can name them.
#ifndef FLEET_TESTS_INTEGRATION_TEST_TASKS_H_
#define FLEET_TESTS_INTEGRATION_TEST_TASKS_H_

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "fleet/serialization.h"

namespace fleet_it {

// The user exception that ThrowInvalidInput throws; the tests expect its
// demangled name, "fleet_it::InvalidInput", in TaskError::exception_type().
class InvalidInput : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

int Square(int x);
int64_t Add(int64_t a, int64_t b);
int64_t Multiply(int64_t a, int64_t b);
void Noop();
// Throws InvalidInput(message).
int ThrowInvalidInput(std::string message);
// Counts its runs in the file at `path` (created if missing) and throws
// InvalidInput on runs 1..failures; then returns the run number.
int FailTimesThenCount(std::string path, int failures);
// Sleeps `ms` milliseconds, then returns `ms`.
int SleepMs(int ms);
// Sleeps `ms` milliseconds, appends "<i>\n" to the file at `log_path` (one
// line per run that finished: an execution log), and returns i * i.
int64_t LoggedSquare(std::string log_path, int64_t i, int ms);
// The pid of the fleet-worker daemon that ran the task (not of its
// executor process).
int WorkerPid();
// Sleeps `ms` milliseconds, then returns WorkerPid().
int SleepThenPid(int ms);
// The pid of the process the task ran in (an executor, or the daemon with
// --isolation=thread).
int ProcessPid();

// Prints "<tag> <i>" for i in [0, count) to stdout and "<tag> done" to
// stderr; returns count.
int PrintLines(std::string tag, int count);

// Crash tests. Each returns `value` when it does not end its process.
// Writes through a null pointer: SIGSEGV.
int Segfault(int value);
// Calls std::exit(status).
int ExitWith(int status);
// Crashes (SIGSEGV) on its first run, marked by creating the file at
// `path`; returns `value` on later runs.
int SegfaultOnce(std::string path, int value);
// Allocates and touches `mib` MiB of heap, holds it for `hold_ms`, and
// returns the number of bytes touched.
int64_t TouchHeapMiB(int64_t mib, int hold_ms);

// An array of `size` doubles, a[i] = i, except a[0]: 1 when the task built
// it in its worker's object store (a shared mapping of it), 0 on its heap.
fleet::Array<double> ArrayNotingWhereBuilt(int64_t size);
// Makes `count` arrays of `size` doubles, all live at once, filled with 1,
// and drops them; returns {the sum of every element, how many of the arrays
// were built in the worker's object store}.
std::vector<double> SumOfTemporaryArrays(int64_t size, int count);

// Sleeps `ms` milliseconds, then returns x * x.
int SleepThenSquare(int x, int ms);

// The pattern of MakeBigArray's result: element 0 holds the producer's pid,
// element i >= 1 holds BigArrayValue(seed, i).
inline double BigArrayValue(double seed, uint64_t i) {
  return seed + static_cast<double>(i % 1000);
}
fleet::Array<double> MakeBigArray(int64_t size, double seed);

// What DigestBigArray found in an array from MakeBigArray.
struct ArrayDigest {
  uint64_t size = 0;
  double sum = 0;           // of elements 1..size-1
  bool pattern_ok = false;  // every element i >= 1 is BigArrayValue(seed, i)
  int producer_pid = 0;     // element 0
  int consumer_pid = 0;     // the process that ran DigestBigArray
  MSGPACK_DEFINE(size, sum, pattern_ok, producer_pid, consumer_pid);
};
// Checks `a` against the pattern for `seed`, then sleeps `sleep_ms` (so
// several consumers overlap and spread over the workers).
ArrayDigest DigestBigArray(fleet::Array<double> a, double seed, int sleep_ms);

// An array like `a` whose elements i >= 1 are shifted by `shift` (so one
// of MakeBigArray(size, seed) becomes one for seed + shift); element 0
// holds the pid of the process that ran it.
fleet::Array<double> ShiftArray(fleet::ArrayView<double> a, double shift);

double SumArray(fleet::Array<double> a);
std::string Repeat(std::string s, int times);
uint64_t Length(std::string s);

// MakeBigArray(kFourMiBOfDoubles, seed): a 4 MiB result from one argument.
inline constexpr int64_t kFourMiBOfDoubles = 4 * 1024 * 1024 / sizeof(double);
fleet::Array<double> FourMiBArray(int seed);

// Returns x * x; throws InvalidInput when x is negative.
int SquareNonNegative(int x);

// Sleeps 10 ms (the seed's slow_mean), then returns the mean of
// data[start, end), read in place; also where it ran.
struct WindowMeanResult {
  double mean = 0;
  int pid = 0;
  MSGPACK_DEFINE(mean, pid);
};
WindowMeanResult WindowMean(fleet::ArrayView<double> data, int64_t start, int64_t end);
// Reads `data` in place (pinned in the store), then crashes like Segfault.
int SegfaultAfterReading(fleet::ArrayView<double> data);

// An input whose task waits at a gate: the file `gate_path`, which the test
// creates when it wants the task to finish. An empty path means no gate.
struct GatedInput {
  int value = 0;
  std::string gate_path;
  MSGPACK_DEFINE(value, gate_path);
};
// Waits until input.gate_path exists (polling, at most kGateTimeoutMs), then
// returns value * value; throws InvalidInput when the gate never opened.
inline constexpr int kGateTimeoutMs = 60'000;
int GatedSquare(GatedInput input);

}  // namespace fleet_it

#endif  // FLEET_TESTS_INTEGRATION_TEST_TASKS_H_
