// gRPC's async API for fleet-bench-floor's chain: one thread draining one
// completion queue carries every read and write of a process, so no
// message is handed from one gRPC thread to another (as the callback API's
// pollers do).
#ifndef FLEET_BENCH_FLOOR_ASYNC_H_
#define FLEET_BENCH_FLOOR_ASYNC_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "fleet/bench/v1/echo.pb.h"

namespace fleet::bench {

// Turns a message read into the answer written back (false ends the call).
using Answer = absl::AnyInvocable<bool(v1::EchoMessage&)>;

struct AsyncOptions {
  // Also registers a callback service that no call reaches. The callback
  // API's own threads then poll too, and a message that one of them reads
  // is handed to the completion queue's thread.
  bool with_idle_callback_service = false;
};

// Serves Echo.Stream calls, one after another, on 127.0.0.1: writes the
// port to `port_fd` and closes it, then answers each message of a call with
// `answer`, inline on the thread that drains the completion queue. Runs in
// a child process; never returns.
[[noreturn]] void ServeAsyncAnswering(int port_fd, Answer answer, AsyncOptions options);

// As ServeAsyncAnswering, but each message is forwarded over one long-lived
// Echo.Stream call to `downstream` and its answer from there written back,
// the two calls on the same completion queue and thread.
[[noreturn]] void ServeAsyncRelay(int port_fd, const std::string& downstream,
                                  AsyncOptions options);

}  // namespace fleet::bench

#endif  // FLEET_BENCH_FLOOR_ASYNC_H_
