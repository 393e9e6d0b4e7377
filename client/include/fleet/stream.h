// Streams of task results with bounded memory: fleet::Map, fleet::MapUnordered
// and fleet::AsCompleted.
//
//   for (int sq : fleet::Map(Square, inputs, {.max_in_flight = 64})) ...  // input order
//   for (auto& [i, sq] : fleet::MapUnordered(Square, inputs)) ...          // completion order
//   for (auto& done : fleet::AsCompleted(std::move(refs))) done.Get();    // completion order
//
// Each returns a fleet::Stream: a lazily evaluated, single-pass input range.
//
// - Lazy: Map and MapUnordered submit nothing when called; begin() submits
//   the first inputs (up to `max_in_flight` of them), and every later
//   submission happens as the loop takes results, so the loop body runs
//   while the cluster works on the next inputs. `inputs` may even be
//   infinite (std::views::iota(0)).
// - Single pass: all iterators of a stream share its position; incrementing
//   one moves them all, and a second begin() continues where the stream is
//   (it never restarts). Iterators are input iterators (std::input_iterator,
//   with std::default_sentinel as end(); with GCC a Stream is also a
//   std::ranges::input_range, which Clang 14 cannot check against
//   libstdc++ 12) and stay valid while the Stream lives, including after the
//   Stream is moved.
// - Taking an element: the first `*it` at a position waits for that element
//   (and for Map and MapUnordered fetches and decodes its value, or its
//   batch's); `*it` again returns the same element without waiting. `++it`
//   moves past it; at an element never dereferenced, `++it` first waits for
//   it to be ready, so a loop that skips elements still never has more than
//   `max_in_flight` inputs out. `*it` and `++it` at the end of the stream
//   throw fleet::Error.
// - Batches: Map and MapUnordered send many inputs per task when inputs are
//   cheap (MapOptions::batch_size; automatic by default), to the batched
//   form of fn that FLEET_REMOTE registers (see fleet/remote.h). Batching
//   changes no result, order, count or error: each input still yields its
//   own element. When a batch fails (one of its inputs threw, say), its
//   inputs are run again one per task, so each gets its own result or its
//   own TaskError, the same as without batching; the inputs up to the one
//   that threw therefore run twice, and a TaskCancelled (a batch cancelled
//   with `fleet cancel`) is given to every input of the batch instead.
//   Automatic batching also shrinks batches after a failure, and stops
//   batching when the workers lack the batched form (a task library built
//   before it existed).
// - Errors: a failed task throws its fleet::TaskError from `*it` when the
//   loop reaches that element (each time it is dereferenced), as Get does;
//   elements before it were delivered, and `++it` moves past it so that a
//   hand-written loop may go on. `*it` and `++it` throw fleet::GetTimeout
//   when the options' timeout passes first (the position is unchanged, so
//   they may be retried), and fleet::Error when fleet is not initialized or
//   the connection to the cluster is lost. begin() may throw what
//   submitting throws (fleet::Error).
// - Memory: the stream has at most `max_in_flight` inputs out at a time
//   (submitted, their results not yet taken by the loop). A task's ObjectRef
//   is dropped the moment its value (or its batch's values) is fetched (the
//   decoded values stay in the stream until the loop moves past them), and
//   destroying the stream (a `break` out of the loop, an exception) drops
//   every ref still in flight and submits nothing more. Tasks already
//   submitted are not cancelled: they run to the end and the cluster frees
//   their results; automatic batching keeps that leftover work short
//   (batches of ~10 ms).
//
// Thread-compatible: use one stream (and its iterators) from one thread at a
// time. Included by fleet/fleet.h; users include that.
#ifndef FLEET_STREAM_H_
#define FLEET_STREAM_H_

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fleet/errors.h"
#include "fleet/fleet.h"
#include "fleet/object_ref.h"

namespace fleet {

// The tasks a Map stream keeps in flight by default (MapOptions::
// max_in_flight unset): each of up to the batch size's inputs. The ideal is
// about twice the cluster's task slots, which the client does not know, so
// this is a fixed, moderate number: it keeps a cluster of up to ~32-64
// slots busy, and bounds what a stream holds to 64 tasks' results.
inline constexpr std::size_t kDefaultMaxInFlight = 64;

// How far a Map or MapUnordered loop has got.
struct MapProgress {
  std::size_t done = 0;  // elements the loop has taken
  std::optional<std::size_t> total = std::nullopt;  // when the inputs have a size
  double per_second = 0;  // since the loop began
  // When the total is known and the rate is not 0.
  std::optional<double> eta_seconds = std::nullopt;
};

struct MapOptions {
  // The most inputs of the stream that are submitted and whose results the
  // loop has not taken yet (in the cluster, or fetched with their batch and
  // waiting in the stream); at least 1 (Map and MapUnordered throw
  // fleet::Error otherwise). It bounds both the work queued on the cluster
  // and the stream's results held there: for large results, set it to what
  // the stores can hold. With automatic batching, a batch then has at most
  // a quarter of it, so that several tasks are in flight. Unset (the
  // default): kDefaultMaxInFlight tasks, as many inputs as 64 batches hold
  // (64 inputs when each input is a task of its own).
  std::optional<std::size_t> max_in_flight = std::nullopt;
  // How long taking one element may wait for it; nullopt waits as long as it
  // takes. When it passes, `*it` or `++it` throws fleet::GetTimeout.
  // (Initialized explicitly so that {.max_in_flight = 8} compiles quietly
  // under GCC's -Wmissing-field-initializers.)
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
  // A progress bar (done/total, rate, ETA) on stderr while the loop runs,
  // when stderr is a terminal and the loop lasts more than half a second.
  // It counts inputs, batched or not.
  bool show_progress = true;
  // Called as the loop takes elements (at most ten times a second, and for
  // the last one): for programs that report progress their own way.
  std::function<void(const MapProgress&)> on_progress = nullptr;
  // Inputs per task. 0 (the default): automatic, for cheap inputs: batches
  // grow (by doubling, from one input) while a batch runs under ~5 ms on
  // its worker, aiming at ~10 ms, up to 10,000 inputs and ~1 MiB of inputs
  // and results; inputs that take ~10 ms or more go one per task. 1: one
  // task per input, fn itself (no batching). N: up to N inputs per task
  // (never more than max_in_flight). Inputs that are ObjectRefs always go
  // one per task. See "Batches" at the top of this file.
  std::size_t batch_size = 0;
};

struct AsCompletedOptions {
  // As MapOptions::timeout.
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
};

// A single-pass input range over the elements a Source produces; see the top
// of this file. Move-only. Returned by Map, MapUnordered and AsCompleted.
template <typename Source>
class Stream {
 public:
  using value_type = typename Source::value_type;

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = Stream::value_type;
    using difference_type = std::ptrdiff_t;
    using reference = value_type&;
    using pointer = value_type*;

    iterator() = default;

    // Takes the element at the stream's position (waiting for it the first
    // time) and returns it; it lives until the stream moves past it.
    reference operator*() const { return source_->Current(); }
    pointer operator->() const { return &source_->Current(); }
    // Moves the stream past its current element.
    iterator& operator++() {
      source_->Advance();
      return *this;
    }
    void operator++(int) { source_->Advance(); }

    // True once every element has been moved past. Never waits.
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.source_ == nullptr || it.source_->Done();
    }

   private:
    friend class Stream;
    explicit iterator(Source* source) : source_(source) {}

    Source* source_ = nullptr;
  };

  explicit Stream(std::unique_ptr<Source> source) : source_(std::move(source)) {}
  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&&) noexcept = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Starts the stream the first time (submits the first inputs) and returns
  // an iterator at its current position. A moved-from Stream is empty.
  iterator begin() {
    if (source_ == nullptr) return iterator();
    source_->Fill();
    return iterator(source_.get());
  }
  std::default_sentinel_t end() const { return std::default_sentinel; }

 private:
  std::unique_ptr<Source> source_;
};

namespace internal {

inline std::string DescribeTimeout(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return "the wait";  // only when the wait was cut short
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count()) +
         " ms";
}

template <typename T>
T GetWithin(const ObjectRef<T>& ref, std::optional<std::chrono::nanoseconds> timeout) {
  return timeout ? ref.Get(*timeout) : ref.Get();
}

// Waits until `handle` is ready (finished or failed) without fetching it.
// Throws GetTimeout when `timeout` passes first.
inline void WaitReady(const ObjectHandle& handle, std::optional<std::chrono::nanoseconds> timeout) {
  if (!WaitObjects({handle}, 1, timeout).front()) {
    throw GetTimeout("fleet stream: object " + ObjectIdHex(handle).substr(0, 16) +
                     " was not ready within " + DescribeTimeout(timeout));
  }
}

// Counts the elements a Map loop takes and reports them (MapOptions). Not
// thread-safe: one loop's.
class ProgressReporter {
 public:
  ProgressReporter(const MapOptions& options, std::optional<std::size_t> total);
  ~ProgressReporter();  // ends a drawn bar's line
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  void Took();  // one more element taken by the loop

 private:
  MapProgress Now() const;

  const bool draw_;
  const std::function<void(const MapProgress&)> on_progress_;
  const std::optional<std::size_t> total_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_report_;
  std::size_t done_ = 0;
  bool drawn_ = false;
};

// The bar ProgressReporter draws, for a terminal `width` columns wide.
std::string FormatProgress(const MapProgress& progress, int width);

// The number of inputs, when the range knows it.
template <typename Inputs>
std::optional<std::size_t> SizeOf(const Inputs& inputs) {
  if constexpr (requires { std::size(inputs); }) {
    return static_cast<std::size_t>(std::size(inputs));
  } else {
    return std::nullopt;
  }
}

[[noreturn]] inline void ThrowPastEnd() {
  throw Error("fleet stream: an iterator was dereferenced or incremented at the end");
}

inline void CheckMapOptions(const MapOptions& options, const char* function) {
  if (options.max_in_flight && *options.max_in_flight == 0) {
    throw Error(std::string(function) + ": MapOptions::max_in_flight must be at least 1");
  }
}

// Objects in flight, each with a key, handed out in the order they become
// ready. Each refill of the ready queue waits on every pending handle at
// once (WaitObjects, O(pending)) and takes all that are ready by then, so a
// burst of completions costs one wait. Thread-compatible.
template <typename Key>
class InFlightSet {
 public:
  using Entry = std::pair<Key, ObjectHandle>;

  void Add(Key key, ObjectHandle handle) {
    pending_.emplace_back(std::move(key), std::move(handle));
  }
  // An entry that is ready already, with no object to wait for.
  void AddReady(Key key) { ready_.emplace_back(std::move(key), nullptr); }
  bool empty() const { return pending_.empty() && ready_.empty(); }
  std::size_t size() const { return pending_.size() + ready_.size(); }

  // Removes and returns a ready entry, waiting up to `timeout` for one.
  // Throws GetTimeout when none is ready in time, Error when the cluster
  // cannot be reached. REQUIRES: !empty().
  Entry TakeNext(std::optional<std::chrono::nanoseconds> timeout) {
    if (ready_.empty()) Harvest(timeout);
    Entry next = std::move(ready_.front());
    ready_.pop_front();
    return next;
  }

 private:
  void Harvest(std::optional<std::chrono::nanoseconds> timeout) {
    std::vector<ObjectHandle> handles;
    handles.reserve(pending_.size());
    for (const Entry& entry : pending_) handles.push_back(entry.second);
    const std::vector<bool> is_ready = WaitObjects(handles, 1, timeout);
    // Ready ones go to the queue in submission order; the rest stay, in order.
    std::size_t kept = 0;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (is_ready[i]) {
        ready_.push_back(std::move(pending_[i]));
      } else if (kept != i) {
        pending_[kept++] = std::move(pending_[i]);
      } else {
        ++kept;
      }
    }
    pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(kept), pending_.end());
    if (ready_.empty()) {
      throw GetTimeout("fleet stream: none of " + std::to_string(pending_.size()) +
                       " tasks in flight finished within " + DescribeTimeout(timeout));
    }
  }

  std::vector<Entry> pending_;
  std::deque<Entry> ready_;
};

// begin(r) and end(r) as a range-for finds them (members, std:: or ADL).
// Plain functions rather than std::ranges so that Clang 14, which cannot
// compile libstdc++ 12's <ranges>, can use these streams too.
namespace range_access {
using std::begin;
using std::end;
template <typename Range>
auto Begin(Range& r) -> decltype(begin(r)) {
  return begin(r);
}
template <typename Range>
auto End(Range& r) -> decltype(end(r)) {
  return end(r);
}
}  // namespace range_access

template <typename Range>
using InputIterator =
    decltype(range_access::Begin(std::declval<std::remove_reference_t<Range>&>()));

// What Map and MapUnordered accept as inputs for a parameter of type P: a
// range whose elements (or the values of ObjectRef elements) convert to P.
template <typename Inputs, typename P>
concept MapInputsFor =
    requires(std::remove_reference_t<Inputs>& r, InputIterator<Inputs>& it) {
      { range_access::Begin(r) != range_access::End(r) } -> std::convertible_to<bool>;
      ++it;
      *it;
    } && (ArgFits<P, decltype(*std::declval<InputIterator<Inputs>&>())>());

// How many inputs a Map stream puts in each task, and how many it keeps in
// flight (MapOptions::batch_size and max_in_flight). Automatic sizing
// starts at one input per task and, from the time each batch's calls took
// on the worker (BatchResult::elapsed_ns, so queueing does not count),
// doubles the batch while a batch takes under kGrowBelow, and cuts it to
// kTargetBatchTime's worth when one takes over kShrinkAbove; a batch never
// exceeds kMaxBatchItems inputs, about kMaxBatchBytes of inputs and results,
// a quarter of the task timeout, nor (with an explicit max_in_flight) a
// quarter of max_in_flight. Not thread-safe: one stream's.
class BatchSizer {
 public:
  static constexpr std::chrono::milliseconds kTargetBatchTime{10};
  static constexpr std::chrono::milliseconds kGrowBelow{5};
  static constexpr std::chrono::milliseconds kShrinkAbove{20};
  static constexpr std::size_t kMaxBatchItems = 10'000;
  static constexpr std::size_t kMaxBatchBytes = 1 << 20;
  // While single inputs are too slow to batch, one task in this many still
  // goes to the batched form, to keep measuring.
  static constexpr std::size_t kProbeInterval = 16;

  // `batchable`: whether the function and the inputs allow batches at all.
  BatchSizer(const MapOptions& options, bool batchable, std::chrono::milliseconds task_timeout);

  // Inputs for the next task.
  std::size_t Size() const;
  // How many inputs may be in flight at once.
  std::size_t MaxInFlight() const;
  // Whether a task of `inputs` inputs goes to the batched form (which
  // reports its time); called once per task submitted.
  bool UseBatchedForm(std::size_t inputs);
  // A batched task of `inputs` inputs finished: its calls took
  // `elapsed_ns`, its inputs and result are `bytes` long.
  void Observe(std::size_t inputs, uint64_t elapsed_ns, std::size_t bytes);
  // A batched task failed with a TaskError of `kind`: its inputs are re-run
  // one per task. The batch size halves; batching stops for good when the
  // workers lack the batched form (an older task library).
  void BatchFailed(const std::string& kind);

  bool batching() const { return batching_; }

 private:
  const std::size_t fixed_;  // MapOptions::batch_size; 0: automatic
  const std::optional<std::size_t> max_in_flight_;
  const std::chrono::milliseconds task_timeout_;
  bool batching_;
  std::size_t size_ = 1;
  bool measured_ = false;
  bool probe_in_flight_ = false;
  std::size_t since_probe_ = 0;
};

// The serialized inputs of a batch: a msgpack array (always with a 5-byte
// array32 header) and where each input ends, so that each can be re-sent
// alone.
inline constexpr std::size_t kBatchHeaderBytes = 5;

// One task a Map stream submitted: inputs [first, first + count).
struct MapTask {
  std::size_t first = 0;
  std::size_t count = 1;
  // Sent to the batched form: the result is a BatchResult<R>. Otherwise a
  // task of fn itself, of one input.
  bool batched = false;
  std::string inputs = {};             // batched: the serialized inputs
  std::vector<std::size_t> ends = {};  // batched: where each input ends in `inputs`
  // A failure already known for this input (a cancelled batch's), with no
  // task: thrown when the loop reaches it.
  std::exception_ptr error = nullptr;
};

// Whether the inputs of a Map may go in batches: values, not ObjectRefs
// (each of those is resolved by the cluster as an argument of its own).
template <typename Inputs>
inline constexpr bool kInputsAreValues =
    !IsObjectRef<std::decay_t<decltype(*std::declval<InputIterator<Inputs>&>())>>::value;

// A msgpack output stream appending to a std::string.
struct StringStream {
  std::string* out;
  void write(const char* data, std::size_t n) { out->append(data, n); }
};

// Reads the inputs in order and submits them in tasks of one or more, as
// the BatchSizer says; fetches batches' results and re-submits the inputs
// of a failed batch one per task. `Inputs` is as Map deduced it: an lvalue
// reference (the caller's range is referenced) or a value (the range was
// moved in). `inputs` is begun on the first call that needs it, never before.
template <typename R, typename P, typename Inputs>
class MapFeeder {
 public:
  static constexpr bool kBatchable = kHasBatchedForm<R, P> && kInputsAreValues<Inputs>;

  MapFeeder(TaskCaller<R, P> task, Inputs&& inputs, const MapOptions& options)
      : task_(std::move(task)),
        batch_name_(task_.function_name() + std::string(kBatchSuffix)),
        inputs_(std::forward<Inputs>(inputs)),
        sizer_(options, kBatchable, task_.options().timeout) {}

  bool exhausted() {
    if (unsent_) return false;
    Begin();
    return !(*next_ != range_access::End(inputs_));
  }

  // Inputs for the next task, and how many may be in flight.
  std::size_t NextSize() const { return sizer_.Size(); }
  std::size_t MaxInFlight() const { return sizer_.MaxInFlight(); }

  // Submits the next (up to) `size` inputs as one task; returns it and the
  // handle of its result. Throws what submitting throws; the inputs it had
  // read are then sent by the next call. REQUIRES: !exhausted(), size >= 1.
  std::pair<MapTask, ObjectHandle> SubmitNext(std::size_t size) {
    if (unsent_) {
      MapTask task = std::move(*unsent_);
      unsent_.reset();
      return SendBatch(std::move(task));
    }
    Begin();
    if constexpr (kBatchable) {
      if (sizer_.UseBatchedForm(size)) return SendBatch(PackBatch(size));
    }
    ObjectRef<R> ref = task_.Remote(**next_);
    ++*next_;
    return {MapTask{.first = next_index_++}, ref.handle()};
  }

  // The values of the finished batched task `task`; throws what Get
  // throws (TaskError when it failed, GetTimeout).
  std::vector<R> FetchBatch(const MapTask& task, const ObjectHandle& handle,
                            std::optional<std::chrono::nanoseconds> timeout) {
    ObjectBytes bytes = GetObjectBytes(handle, timeout);
    BatchResult<R> result = DecodeResult<BatchResult<R>>(bytes.bytes);
    if (result.values.size() != task.count) {
      throw Error("fleet stream: the batched form of " + task_.function_name() + " returned " +
                  std::to_string(result.values.size()) + " results for " +
                  std::to_string(task.count) + " inputs");
    }
    sizer_.Observe(task.count, result.elapsed_ns, task.inputs.size() + bytes.bytes.size());
    return std::move(result.values);
  }

  // Call while handling the TaskError of the batched task `task`: returns
  // what replaces it, one entry per input in order. Normally each input is
  // submitted again as a task of its own, so that it gets its own result
  // or its own TaskError (as without batching); a cancelled batch's inputs
  // each get its TaskCancelled instead. Throws what submitting throws.
  std::vector<std::pair<MapTask, ObjectHandle>> SplitFailed(const MapTask& task,
                                                            const TaskError& error) {
    std::vector<std::pair<MapTask, ObjectHandle>> singles;
    singles.reserve(task.count);
    if (error.kind() == "cancelled") {
      const std::exception_ptr failure = std::current_exception();
      for (std::size_t i = 0; i < task.count; ++i) {
        singles.emplace_back(MapTask{.first = task.first + i, .error = failure}, nullptr);
      }
      return singles;
    }
    sizer_.BatchFailed(error.kind());
    for (std::size_t i = 0; i < task.count; ++i) {
      const std::size_t begin = i == 0 ? kBatchHeaderBytes : task.ends[i - 1];
      std::vector<SubmitArg> args;
      args.push_back(SubmitArg{task.inputs.substr(begin, task.ends[i] - begin), nullptr});
      singles.emplace_back(MapTask{.first = task.first + i},
                           SubmitTask(task_.function_name(), task_.signature_hash(),
                                      std::move(args), task_.options()));
    }
    return singles;
  }

 private:
  void Begin() {
    if (!next_) next_.emplace(range_access::Begin(inputs_));
  }

  // Reads up to `size` inputs into a batched task (not sent yet).
  MapTask PackBatch(std::size_t size) {
    MapTask task{.first = next_index_, .count = 0, .batched = true};
    task.inputs.reserve(kBatchHeaderBytes + size * 4);
    task.inputs.resize(kBatchHeaderBytes);
    task.ends.reserve(size);
    StringStream stream{&task.inputs};
    msgpack::packer<StringStream> packer(stream);
    while (task.count < size && *next_ != range_access::End(inputs_)) {
      using D = std::decay_t<decltype(**next_)>;
      if constexpr (std::is_same_v<D, std::decay_t<P>>) {
        packer.pack(**next_);
      } else {
        packer.pack(std::decay_t<P>(**next_));
      }
      ++*next_;
      ++task.count;
      task.ends.push_back(task.inputs.size());
    }
    next_index_ += task.count;
    const uint32_t count = static_cast<uint32_t>(task.count);
    task.inputs[0] = static_cast<char>(0xdd);  // array32, big-endian count
    for (int i = 0; i < 4; ++i) task.inputs[1 + i] = static_cast<char>(count >> (24 - 8 * i));
    return task;
  }

  std::pair<MapTask, ObjectHandle> SendBatch(MapTask task) {
    std::vector<SubmitArg> args;
    args.push_back(SubmitArg{task.inputs, nullptr});
    try {
      ObjectHandle handle = SubmitTask(batch_name_, BatchSignatureHash<R, P>(), std::move(args),
                                       task_.options());
      return {std::move(task), std::move(handle)};
    } catch (...) {
      unsent_.emplace(std::move(task));
      throw;
    }
  }

  TaskCaller<R, P> task_;
  const std::string batch_name_;
  Inputs inputs_;  // a reference to the caller's range, or the range itself
  // Engaged once inputs_ is begun (an input range may be begun only once).
  std::optional<InputIterator<Inputs>> next_;
  std::size_t next_index_ = 0;
  BatchSizer sizer_;
  std::optional<MapTask> unsent_;  // read, but submitting it threw
};

// The fetched values of one batch task (inputs first, first + 1, ...),
// taken in input order; the values are freed once all are taken.
template <typename R>
class FetchedBatch {
 public:
  void Set(std::vector<R> values, std::size_t first) {
    values_ = std::move(values);
    first_ = first;
    next_ = 0;
  }
  bool empty() const { return next_ == values_.size(); }
  std::size_t size() const { return values_.size() - next_; }  // not yet taken
  std::size_t next_input() const { return first_ + next_; }
  R Take() {
    R value = std::move(values_[next_]);
    Skip();
    return value;
  }
  void Skip() {
    if (++next_ == values_.size()) Set({}, 0);
  }

 private:
  std::vector<R> values_;
  std::size_t first_ = 0;
  std::size_t next_ = 0;
};

// Map's source: results in input order. window_ holds the tasks submitted
// whose results were not fetched, oldest first; fetched_ holds the values
// of the batch at the head not yet taken. Invariant: the inputs of both
// together are at most the feeder's MaxInFlight() (when
// Fill returns).
template <typename R, typename P, typename Inputs>
class OrderedMapSource {
 public:
  static_assert(!std::is_void_v<R>, "fleet::Map needs a remote function that returns a value");
  using value_type = R;

  OrderedMapSource(TaskCaller<R, P> task, Inputs&& inputs, MapOptions options)
      : progress_(options, SizeOf(inputs)),
        feeder_(std::move(task), std::forward<Inputs>(inputs), options),
        timeout_(options.timeout) {}

  void Fill() {
    while (!feeder_.exhausted()) {
      const std::size_t in_flight = window_items_ + fetched_.size();
      const std::size_t limit = feeder_.MaxInFlight();
      const std::size_t size = feeder_.NextSize();
      // Wait for room for a whole batch, unless nothing is in flight.
      if (in_flight >= limit || (in_flight > 0 && limit - in_flight < size)) break;
      auto submitted = feeder_.SubmitNext(std::min(size, limit - in_flight));
      window_items_ += submitted.first.count;
      window_.push_back(std::move(submitted));
    }
  }

  R& Current() {
    if (!current_) {
      Resolve();
      if (!fetched_.empty()) {
        current_.emplace(fetched_.Take());
      } else {  // a task of this input alone, at the head
        const auto& [task, handle] = window_.front();
        if (task.error) std::rethrow_exception(task.error);
        current_.emplace(GetWithin(ObjectRef<R>(handle), timeout_));
        PopHead();  // the value is here: let the cluster free it
      }
      Took();  // the next inputs run while the loop body handles this one
    }
    return *current_;
  }

  void Advance() {
    if (current_) {
      current_.reset();
      return;
    }
    Resolve();
    if (!fetched_.empty()) {
      fetched_.Skip();
    } else {
      const auto& [task, handle] = window_.front();
      if (!task.error) WaitReady(handle, timeout_);
      PopHead();
    }
    Took();
  }

  bool Done() {
    return !current_ && fetched_.empty() && window_.empty() && feeder_.exhausted();
  }

 private:
  // Makes the element at the position available: in fetched_, or as the task
  // of that input alone at the head of window_ (not fetched). Fetches the
  // batch at the head when needed; a failed batch is replaced by tasks of
  // one input each.
  void Resolve() {
    while (fetched_.empty()) {
      if (window_.empty()) Fill();
      if (window_.empty()) ThrowPastEnd();
      if (!window_.front().first.batched) return;
      auto& [task, handle] = window_.front();
      try {
        fetched_.Set(feeder_.FetchBatch(task, handle, timeout_), task.first);
        PopHead();
      } catch (const TaskError& error) {
        auto singles = feeder_.SplitFailed(task, error);
        PopHead();
        window_items_ += singles.size();
        for (auto it = singles.rbegin(); it != singles.rend(); ++it) {
          window_.push_front(std::move(*it));
        }
      }
    }
  }

  void PopHead() {
    window_items_ -= window_.front().first.count;
    window_.pop_front();
  }

  // One more element taken: count it, and submit what there is room for.
  void Took() {
    progress_.Took();
    Fill();
  }

  ProgressReporter progress_;  // first: it sizes the inputs before the feeder may take them
  MapFeeder<R, P, Inputs> feeder_;
  const std::optional<std::chrono::nanoseconds> timeout_;
  std::deque<std::pair<MapTask, ObjectHandle>> window_;
  std::size_t window_items_ = 0;  // inputs of the tasks in window_
  FetchedBatch<R> fetched_;
  std::optional<R> current_;  // the taken value at the position
};

// MapUnordered's source: (input index, result) in completion order: tasks
// as they finish, the inputs of a batch in input order. in_flight_ and
// head_ hold the tasks submitted whose results were not fetched; fetched_
// holds the values of a batch not yet taken. Invariant: their inputs together are at most the
// feeder's MaxInFlight() (when Fill returns).
template <typename R, typename P, typename Inputs>
class UnorderedMapSource {
 public:
  static_assert(!std::is_void_v<R>,
                "fleet::MapUnordered needs a remote function that returns a value");
  using value_type = std::pair<std::size_t, R>;

  UnorderedMapSource(TaskCaller<R, P> task, Inputs&& inputs, MapOptions options)
      : progress_(options, SizeOf(inputs)),
        feeder_(std::move(task), std::forward<Inputs>(inputs), options),
        timeout_(options.timeout) {}

  void Fill() {
    while (!feeder_.exhausted()) {
      const std::size_t in_flight = pending_items_ + fetched_.size();
      const std::size_t limit = feeder_.MaxInFlight();
      const std::size_t size = feeder_.NextSize();
      if (in_flight >= limit || (in_flight > 0 && limit - in_flight < size)) break;
      auto [task, handle] = feeder_.SubmitNext(std::min(size, limit - in_flight));
      pending_items_ += task.count;
      in_flight_.Add(std::move(task), std::move(handle));
    }
  }

  value_type& Current() {
    if (!current_) {
      Resolve();
      if (!fetched_.empty()) {
        const std::size_t input = fetched_.next_input();
        current_.emplace(input, fetched_.Take());
      } else {  // a task of one input, ready
        const auto& [task, handle] = *head_;
        if (task.error) std::rethrow_exception(task.error);
        current_.emplace(task.first, GetWithin(ObjectRef<R>(handle), timeout_));
        DropHead();  // the value is here: let the cluster free it
      }
      Took();
    }
    return *current_;
  }

  void Advance() {
    if (current_) {
      current_.reset();
      return;
    }
    Resolve();
    if (!fetched_.empty()) {
      fetched_.Skip();
    } else {
      DropHead();
    }
    Took();
  }

  bool Done() {
    return !current_ && fetched_.empty() && !head_ && in_flight_.empty() &&
           feeder_.exhausted();
  }

 private:
  // Makes the next element available: in fetched_, or as head_, a task of
  // one input that finished (or failed). Fetches batches as they finish; a
  // failed batch is replaced by tasks of one input each.
  void Resolve() {
    while (fetched_.empty()) {
      if (!head_) {
        if (in_flight_.empty()) Fill();
        if (in_flight_.empty()) ThrowPastEnd();
        head_ = in_flight_.TakeNext(timeout_);
      }
      if (!head_->first.batched) return;
      auto& [task, handle] = *head_;
      try {
        fetched_.Set(feeder_.FetchBatch(task, handle, timeout_), task.first);
        DropHead();
      } catch (const TaskError& error) {
        auto singles = feeder_.SplitFailed(task, error);
        DropHead();
        for (auto& [single, single_handle] : singles) {
          pending_items_ += single.count;
          if (single_handle) {
            in_flight_.Add(std::move(single), std::move(single_handle));
          } else {
            in_flight_.AddReady(std::move(single));
          }
        }
      }
    }
  }

  void DropHead() {
    pending_items_ -= head_->first.count;
    head_.reset();
  }

  void Took() {
    progress_.Took();
    Fill();
  }

  ProgressReporter progress_;  // first: it sizes the inputs before the feeder may take them
  MapFeeder<R, P, Inputs> feeder_;
  const std::optional<std::chrono::nanoseconds> timeout_;
  InFlightSet<MapTask> in_flight_;
  // A task that finished (or failed), taken from in_flight_, not fetched.
  std::optional<std::pair<MapTask, ObjectHandle>> head_;
  std::size_t pending_items_ = 0;  // inputs of the tasks in in_flight_ and head_
  FetchedBatch<R> fetched_;
  std::optional<value_type> current_;  // the taken value at the position
};

// AsCompleted's source: the refs it was given, in completion order.
template <typename T>
class CompletedRefSource {
 public:
  using value_type = ObjectRef<T>;

  CompletedRefSource(std::vector<ObjectRef<T>> refs, AsCompletedOptions options)
      : options_(options) {
    for (std::size_t i = 0; i < refs.size(); ++i) in_flight_.Add(i, refs[i].handle());
  }

  void Fill() {}

  ObjectRef<T>& Current() {
    if (!current_) {
      if (in_flight_.empty()) ThrowPastEnd();
      current_.emplace(in_flight_.TakeNext(options_.timeout).second);
    }
    return *current_;
  }

  void Advance() {
    if (current_) {
      current_.reset();
      return;
    }
    if (in_flight_.empty()) ThrowPastEnd();
    in_flight_.TakeNext(options_.timeout);
  }

  bool Done() const { return !current_ && in_flight_.empty(); }

 private:
  const AsCompletedOptions options_;
  InFlightSet<std::size_t> in_flight_;
  std::optional<ObjectRef<T>> current_;  // the yielded ref at the position
};

}  // namespace internal

// Map: fn(input) for each element of `inputs`, as a Stream of the results in
// input order; see the top of this file. At most options.max_in_flight
// inputs are submitted and not yet taken: as the loop takes results, the
// next inputs are submitted (a whole batch once there is room for it). A
// slow element holds the loop up (later results wait, ready or not);
// MapUnordered does not. Cheap inputs go many per task (options.batch_size).
//
// `task` is fleet::Task(fn) for a remote function of one parameter P, or a
// TaskCaller such as fleet::Task<R(P)>("Name"). `inputs` is any input range
// whose elements convert to P, or ObjectRefs whose values do (passed as
// references; those go one per task). An lvalue range is referenced, not
// copied: it must outlive the stream and not change while it runs; an
// rvalue range is moved into the stream. Elements are read (and
// serialized) only when submitted. A task named by string gets batches only
// when the workers' function has the same signature (else the batches fail
// with a signature mismatch, and each input runs alone and fails the same).
//
// Throws fleet::Error at the call when options.max_in_flight is 0 or fn is
// not a registered remote function; nothing is submitted until begin().
template <typename R, typename P, internal::MapInputsFor<P> Inputs>
Stream<internal::OrderedMapSource<R, P, Inputs>> Map(const TaskCaller<R, P>& task, Inputs&& inputs,
                                                     MapOptions options = {}) {
  internal::CheckMapOptions(options, "fleet::Map");
  using Source = internal::OrderedMapSource<R, P, Inputs>;
  return Stream<Source>(std::make_unique<Source>(task, std::forward<Inputs>(inputs), options));
}

template <typename R, typename P, internal::MapInputsFor<P> Inputs>
auto Map(R (*fn)(P), Inputs&& inputs, MapOptions options = {}) {
  return Map(Task(fn), std::forward<Inputs>(inputs), options);
}

// Map over a braced list: fleet::Map(Square, {1, 2, 3}). The list is copied.
template <typename R, typename P>
auto Map(R (*fn)(P), std::initializer_list<std::decay_t<P>> inputs, MapOptions options = {}) {
  return Map(fn, std::vector<std::decay_t<P>>(inputs), options);
}

template <typename R, typename... P, typename Inputs>
  requires(sizeof...(P) != 1)
void Map(R (*)(P...), Inputs&&, MapOptions = {}) {
  static_assert(sizeof...(P) == 1, "fleet::Map takes a remote function of exactly one parameter");
}

// MapUnordered: as Map, but the Stream yields std::pair<std::size_t, R>
// (the input's index in `inputs`, fn(input)) in the order the tasks finish
// (the inputs of one batch in input order), so a slow element does not hold
// the others up. As the loop takes results, the next inputs are submitted. Same inputs, options and errors as
// Map; a failed task's TaskError is thrown when the loop reaches it in
// completion order.
template <typename R, typename P, internal::MapInputsFor<P> Inputs>
Stream<internal::UnorderedMapSource<R, P, Inputs>> MapUnordered(const TaskCaller<R, P>& task,
                                                                Inputs&& inputs,
                                                                MapOptions options = {}) {
  internal::CheckMapOptions(options, "fleet::MapUnordered");
  using Source = internal::UnorderedMapSource<R, P, Inputs>;
  return Stream<Source>(std::make_unique<Source>(task, std::forward<Inputs>(inputs), options));
}

template <typename R, typename P, internal::MapInputsFor<P> Inputs>
auto MapUnordered(R (*fn)(P), Inputs&& inputs, MapOptions options = {}) {
  return MapUnordered(Task(fn), std::forward<Inputs>(inputs), options);
}

template <typename R, typename P>
auto MapUnordered(R (*fn)(P), std::initializer_list<std::decay_t<P>> inputs,
                  MapOptions options = {}) {
  return MapUnordered(fn, std::vector<std::decay_t<P>>(inputs), options);
}

template <typename R, typename... P, typename Inputs>
  requires(sizeof...(P) != 1)
void MapUnordered(R (*)(P...), Inputs&&, MapOptions = {}) {
  static_assert(sizeof...(P) == 1,
                "fleet::MapUnordered takes a remote function of exactly one parameter");
}

// AsCompleted: takes the refs and yields each of them once, as an
// ObjectRef<T>&, in the order their objects become ready (finished or
// failed; ready at the same moment: in `refs` order). It yields refs, not
// values, so the loop chooses how to Get each one and sees a failure as the
// TaskError its Get throws; yielding never throws a TaskError. The stream
// drops its copy of a ref when the loop moves past it, so the object is
// freed unless the loop kept a copy (copy or move from the yielded ref to
// keep it). Each wait for the next ready ref costs O(refs not yet ready).
//
// Throws fleet::Error at the call when a ref is empty (default-constructed).
template <typename T>
Stream<internal::CompletedRefSource<T>> AsCompleted(std::vector<ObjectRef<T>>&& refs,
                                                    AsCompletedOptions options = {}) {
  for (std::size_t i = 0; i < refs.size(); ++i) {
    if (!refs[i].valid()) {
      throw Error("fleet::AsCompleted: ref " + std::to_string(i) + " is empty");
    }
  }
  std::vector<ObjectRef<T>> owned = std::move(refs);
  refs.clear();  // the stream owns them now, whatever the moved-from state
  return Stream<internal::CompletedRefSource<T>>(
      std::make_unique<internal::CompletedRefSource<T>>(std::move(owned), options));
}

}  // namespace fleet

#endif  // FLEET_STREAM_H_
