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
//   the first `max_in_flight` inputs, and every later submission happens as
//   the loop takes results, so the loop body runs while the cluster works on
//   the next inputs. `inputs` may even be infinite (std::views::iota(0)).
// - Single pass: all iterators of a stream share its position; incrementing
//   one moves them all, and a second begin() continues where the stream is
//   (it never restarts). Iterators are input iterators (std::input_iterator,
//   with std::default_sentinel as end(); with GCC a Stream is also a
//   std::ranges::input_range, which Clang 14 cannot check against
//   libstdc++ 12) and stay valid while the Stream lives, including after the
//   Stream is moved.
// - Taking an element: the first `*it` at a position waits for that element
//   (and for Map and MapUnordered fetches and decodes its value); `*it` again
//   returns the same element without waiting. `++it` moves past it; at an
//   element never dereferenced, `++it` first waits for it to be ready, so a
//   loop that skips elements still never has more than `max_in_flight` tasks
//   out. `*it` and `++it` at the end of the stream throw fleet::Error.
// - Errors: a failed task throws its fleet::TaskError from `*it` when the
//   loop reaches that element (each time it is dereferenced), as Get does;
//   elements before it were delivered, and `++it` moves past it so that a
//   hand-written loop may go on. `*it` and `++it` throw fleet::GetTimeout
//   when the options' timeout passes first (the position is unchanged, so
//   they may be retried), and fleet::Error when fleet is not initialized or
//   the connection to the cluster is lost. begin() may throw what
//   submitting throws (fleet::Error).
// - Memory: the cluster holds at most `max_in_flight` results of a stream at
//   a time. A result's ObjectRef is dropped the moment its value is taken
//   (the decoded value stays in the stream until the loop moves past it),
//   and destroying the stream (a `break` out of the loop, an exception)
//   drops every ref still in flight. Tasks already submitted are not
//   cancelled: they run to the end and the cluster frees their results.
//
// Thread-compatible: use one stream (and its iterators) from one thread at a
// time. Included by fleet/fleet.h; users include that.
#ifndef FLEET_STREAM_H_
#define FLEET_STREAM_H_

#include <chrono>
#include <concepts>
#include <cstddef>
#include <deque>
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

// The default of MapOptions::max_in_flight. The ideal is about twice the
// cluster's task slots, which the client does not know, so this is a fixed,
// moderate number: it keeps a cluster of up to ~32-64 slots busy with short
// tasks, and bounds what a stream holds to 64 results.
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
  // The most tasks of the stream that are submitted and whose results the
  // loop has not taken yet; at least 1 (Map and MapUnordered throw
  // fleet::Error otherwise). It bounds both the work queued on the cluster
  // and the stream's results held there. For throughput, about twice the
  // cluster's task slots; for large results, what the stores can hold.
  std::size_t max_in_flight = kDefaultMaxInFlight;
  // How long taking one element may wait for it; nullopt waits as long as it
  // takes. When it passes, `*it` or `++it` throws fleet::GetTimeout.
  // (Initialized explicitly so that {.max_in_flight = 8} compiles quietly
  // under GCC's -Wmissing-field-initializers.)
  std::optional<std::chrono::nanoseconds> timeout = std::nullopt;
  // A progress bar (done/total, rate, ETA) on stderr while the loop runs,
  // when stderr is a terminal and the loop lasts more than half a second.
  bool show_progress = true;
  // Called as the loop takes elements (at most ten times a second, and for
  // the last one): for programs that report progress their own way.
  std::function<void(const MapProgress&)> on_progress = nullptr;
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
  if (options.max_in_flight == 0) {
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

// Submits fn(input) for the elements of `inputs`, one at a time, in order.
// `Inputs` is as Map deduced it: an lvalue reference (the caller's range is
// referenced) or a value (the range was moved in). `inputs` is begun on the
// first call that needs it, never before.
template <typename R, typename P, typename Inputs>
class InputFeeder {
 public:
  InputFeeder(TaskCaller<R, P> task, Inputs&& inputs)
      : task_(std::move(task)), inputs_(std::forward<Inputs>(inputs)) {}

  bool exhausted() {
    Begin();
    return !(*next_ != range_access::End(inputs_));
  }

  // Submits the next input; returns its index in `inputs` and the handle of
  // its result. Throws what Remote throws (then nothing was consumed).
  // REQUIRES: !exhausted().
  std::pair<std::size_t, ObjectHandle> SubmitNext() {
    Begin();
    ObjectRef<R> ref = task_.Remote(**next_);
    ++*next_;
    return {next_index_++, ref.handle()};
  }

 private:
  void Begin() {
    if (!next_) next_.emplace(range_access::Begin(inputs_));
  }

  TaskCaller<R, P> task_;
  Inputs inputs_;  // a reference to the caller's range, or the range itself
  // Engaged once inputs_ is begun (an input range may be begun only once).
  std::optional<InputIterator<Inputs>> next_;
  std::size_t next_index_ = 0;
};

// Map's source: results in input order. Invariant: window_ holds the
// results submitted and not yet taken, oldest first, at most max_in_flight.
template <typename R, typename P, typename Inputs>
class OrderedMapSource {
 public:
  static_assert(!std::is_void_v<R>, "fleet::Map needs a remote function that returns a value");
  using value_type = R;

  OrderedMapSource(TaskCaller<R, P> task, Inputs&& inputs, MapOptions options)
      : progress_(options, SizeOf(inputs)),
        feeder_(std::move(task), std::forward<Inputs>(inputs)),
        options_(options) {}

  void Fill() {
    while (window_.size() < options_.max_in_flight && !feeder_.exhausted()) {
      window_.push_back(feeder_.SubmitNext().second);
    }
  }

  R& Current() {
    if (!current_) {
      if (window_.empty()) Fill();
      if (window_.empty()) ThrowPastEnd();
      current_.emplace(GetWithin(ObjectRef<R>(window_.front()), options_.timeout));
      window_.pop_front();  // the value is here: let the cluster free it
      progress_.Took();
      Fill();               // the next input runs while the loop body handles this one
    }
    return *current_;
  }

  void Advance() {
    if (current_) {
      current_.reset();
      return;
    }
    if (window_.empty()) Fill();
    if (window_.empty()) ThrowPastEnd();
    WaitReady(window_.front(), options_.timeout);
    window_.pop_front();
    progress_.Took();
    Fill();
  }

  bool Done() { return !current_ && window_.empty() && feeder_.exhausted(); }

 private:
  ProgressReporter progress_;  // first: it sizes the inputs before the feeder may take them
  InputFeeder<R, P, Inputs> feeder_;
  const MapOptions options_;
  std::deque<ObjectHandle> window_;
  std::optional<R> current_;  // the taken value at the position
};

// MapUnordered's source: (input index, result) in completion order.
// Invariant: in_flight_ plus head_ hold at most max_in_flight results.
template <typename R, typename P, typename Inputs>
class UnorderedMapSource {
 public:
  static_assert(!std::is_void_v<R>,
                "fleet::MapUnordered needs a remote function that returns a value");
  using value_type = std::pair<std::size_t, R>;

  UnorderedMapSource(TaskCaller<R, P> task, Inputs&& inputs, MapOptions options)
      : progress_(options, SizeOf(inputs)),
        feeder_(std::move(task), std::forward<Inputs>(inputs)),
        options_(options) {}

  void Fill() {
    while (in_flight_.size() + (head_ ? 1 : 0) < options_.max_in_flight && !feeder_.exhausted()) {
      auto [index, handle] = feeder_.SubmitNext();
      in_flight_.Add(index, std::move(handle));
    }
  }

  value_type& Current() {
    if (!current_) {
      Select();
      current_.emplace(head_->first, GetWithin(ObjectRef<R>(head_->second), options_.timeout));
      head_.reset();  // the value is here: let the cluster free it
      progress_.Took();
      Fill();
    }
    return *current_;
  }

  void Advance() {
    if (current_) {
      current_.reset();
      return;
    }
    Select();
    head_.reset();
    progress_.Took();
    Fill();
  }

  bool Done() { return !current_ && !head_ && in_flight_.empty() && feeder_.exhausted(); }

 private:
  // Makes head_ the next finished (or failed) element, waiting for one.
  void Select() {
    if (head_) return;
    if (in_flight_.empty()) Fill();
    if (in_flight_.empty()) ThrowPastEnd();
    head_ = in_flight_.TakeNext(options_.timeout);
  }

  ProgressReporter progress_;  // first: it sizes the inputs before the feeder may take them
  InputFeeder<R, P, Inputs> feeder_;
  const MapOptions options_;
  InFlightSet<std::size_t> in_flight_;
  // The element at the position, ready but not taken (or failed).
  std::optional<std::pair<std::size_t, ObjectHandle>> head_;
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
// input order; see the top of this file. At most options.max_in_flight tasks
// are submitted and not yet taken: when the loop takes result i, input
// i + max_in_flight is submitted. A slow element holds the loop up (later
// results wait, ready or not); MapUnordered does not.
//
// `task` is fleet::Task(fn) for a remote function of one parameter P, or a
// TaskCaller such as fleet::Task<R(P)>("Name"). `inputs` is any input range
// whose elements convert to P, or ObjectRefs whose values do (passed as
// references). An lvalue range is referenced, not copied: it must outlive
// the stream and not change while it runs; an rvalue range is moved into the
// stream. Elements are read (and serialized) only when submitted.
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
// (the input's index in `inputs`, fn(input)) in the order the tasks finish,
// so a slow element does not hold the others up. When the loop takes a
// result, the next input is submitted. Same inputs, options and errors as
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
