#!/usr/bin/env bash
# The install test: what a user gets from `cmake --install` is enough to build
# and run an application of their own.
#
#   install_test.sh BUILD_DIR SOURCE_DIR [CMAKE]
#
# 1. installs BUILD_DIR into a temporary prefix;
# 2. configures and builds examples/external (a copy, outside the source
#    tree) against that prefix alone, with warnings as errors;
# 3. starts the installed fleet-scheduler and two installed fleet-workers
#    (2 slots each) on 127.0.0.1 with the external task library and the
#    installed libfleet_examples.so;
# 4. runs the external driver and the installed fleet-examples against them
#    and checks their exit codes and output.
# The daemons are always stopped on exit. The scratch directory is removed
# on success and kept (and named) on failure; its logs are printed.
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 BUILD_DIR SOURCE_DIR [CMAKE]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
cmake=${3:-cmake}

readonly START_DEADLINE_S=30     # daemons up and 2 workers registered
readonly DRIVER_TIMEOUT_S=180    # one driver run
readonly STOP_DEADLINE_S=3       # SIGTERM before SIGKILL, when stopping daemons
# Every daemon runs under `timeout` (SIGTERM, then SIGKILL 10 s later), so
# that even a SIGKILLed script (ctest's own timeout) leaves nothing running
# for long. Matches the ctest TIMEOUT.
readonly DAEMON_LIFETIME_S=900

# Where the build installs libraries (GNUInstallDirs: lib, or lib/<multiarch>
# for a /usr prefix on Debian).
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
libdir=${libdir:-lib}

# Installing a partly built tree fails in `cmake --install`; say what is
# missing and skip (ctest SKIP_RETURN_CODE 77) instead of failing obscurely.
missing=()
for f in bin/fleet-scheduler bin/fleet-worker bin/fleet-examples \
  lib/libfleet_task.so lib/libfleet_client.so lib/libfleet_examples.so; do
  [[ -e $build_dir/$f ]] || missing+=("$f")
done
if ((${#missing[@]} > 0)); then
  echo "install_test: SKIPPED: not built in $build_dir: ${missing[*]}; build everything first" \
    "(ninja -C $build_dir)" >&2
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fleet-install-test.XXXXXX")
prefix=$work/prefix
pids=()

log() { echo "install_test: $*"; }
fail() {
  echo "install_test: FAILED: $*" >&2
  exit 1
}

# Stops the daemons one at a time, the last started first: workers while the
# scheduler is still up, then the scheduler. Each pid is a `timeout`, which
# forwards SIGTERM to its daemon. A daemon still there STOP_DEADLINE_S later
# gets SIGKILL (fleet-worker can hang on SIGTERM: its signal thread and its
# main thread both run WorkerServer::Shutdown and join the same threads);
# killing the daemon rather than the `timeout` lets `timeout` reap it.
stop_daemons() {
  local i pid daemon deadline
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    daemon=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_DEADLINE_S))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "install_test: daemon pid ${daemon:-?} ignored SIGTERM for ${STOP_DEADLINE_S}s;" \
        "killing it" >&2
      if [[ -n $daemon ]]; then kill -KILL "$daemon" 2>/dev/null || true; fi
      deadline=$((SECONDS + 5))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
      # Last resort: timeout leads its own process group.
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

cleanup() {
  local status=$?
  trap - EXIT
  stop_daemons
  if ((status == 0)); then
    rm -rf "$work"
  else
    local f
    for f in "$work"/*.log; do
      [[ -f $f ]] || continue
      echo "----- $f (last 40 lines) -----" >&2
      tail -n 40 "$f" >&2
    done
    echo "install_test: scratch directory kept: $work" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until `$1` exists and is non-empty; fails when pid $2 dies first or
# the deadline passes.
wait_for_file() {
  local file=$1 pid=$2 deadline=$((SECONDS + START_DEADLINE_S))
  until [[ -s $file ]]; do
    kill -0 "$pid" 2>/dev/null || fail "process $pid exited before writing $file"
    ((SECONDS < deadline)) || fail "no $file after ${START_DEADLINE_S}s"
    sleep 0.1
  done
}

# --- 1. install ----------------------------------------------------------------
log "installing $build_dir into $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  fail "cmake --install failed (install.log)"
for f in bin/fleet-scheduler bin/fleet-worker bin/fleet-examples \
  include/fleet/fleet.h include/fleet/serialization.h \
  "$libdir"/libfleet_task.so "$libdir"/libfleet_task.so.0 \
  "$libdir"/libfleet_client.so "$libdir"/libfleet_client.so.0 "$libdir"/libfleet_examples.so \
  "$libdir"/cmake/fleet/fleetConfig.cmake "$libdir"/cmake/fleet/fleetConfigVersion.cmake \
  "$libdir"/cmake/fleet/fleetTargets.cmake; do
  [[ -e $prefix/$f ]] || fail "not installed: $f"
done
# Only the two shared libraries: the static ones are inside libfleet_client.so.
if compgen -G "$prefix/$libdir/*.a" >/dev/null; then
  fail "static libraries installed: $(ls "$prefix/$libdir"/*.a)"
fi
# Installed binaries must find the installed libraries, not the build tree's.
for f in bin/fleet-scheduler bin/fleet-worker bin/fleet-examples; do
  if ldd "$prefix/$f" | grep -q 'not found'; then
    fail "$f has unresolved libraries: $(ldd "$prefix/$f" | grep 'not found')"
  fi
  resolved=$(ldd "$prefix/$f" | awk '/libfleet_/ {print $3}')
  for lib in $resolved; do
    [[ $(cd "$(dirname "$lib")" && pwd -P) == $(cd "$prefix/$libdir" && pwd -P) ]] ||
      fail "$f loads $lib instead of the one in $prefix/$libdir"
  done
done

# --- 2. build the external project against the prefix ------------------------
# A copy, so that nothing in the fleet source tree can be picked up by a
# relative path, and so that ccache sees the same relative paths every run.
cp -r "$source_dir/examples/external" "$work/src"
config=(-S "$work/src" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DGEOMETRY_WERROR=ON)
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
[[ -n $compiler ]] && config+=(-DCMAKE_CXX_COMPILER="$compiler")
command -v ninja >/dev/null && config+=(-G Ninja)
if ccache=$(command -v ccache); then
  config+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$cmake;-E;env;CCACHE_BASEDIR=$work;CCACHE_NOHASHDIR=1;CCACHE_SLOPPINESS=pch_defines,time_macros;$ccache")
fi
log "building examples/external against $prefix"
"$cmake" "${config[@]}" >"$work/configure.log" 2>&1 || fail "configuring examples/external failed (configure.log)"
fleet_dir=$(sed -n 's/^fleet_DIR:[A-Z]*=//p' "$work/build/CMakeCache.txt")
[[ $fleet_dir == "$prefix/$libdir/cmake/fleet" ]] ||
  fail "examples/external found fleet in '$fleet_dir', not in $prefix/$libdir/cmake/fleet"
"$cmake" --build "$work/build" >"$work/build.log" 2>&1 || fail "building examples/external failed (build.log)"
task_lib=$work/build/libgeometry_tasks.so
driver=$work/build/geometry_driver
[[ -f $task_lib && -x $driver ]] || fail "examples/external built no $task_lib or $driver"

# --- 3. a cluster of the installed daemons ------------------------------------
timeout --kill-after=10 "$DAEMON_LIFETIME_S" "$prefix/bin/fleet-scheduler" \
  --host=127.0.0.1 --port=0 --http_port=0 --port_file="$work/port" \
  --http_port_file="$work/http_port" >"$work/scheduler.log" 2>&1 &
pids+=($!)
wait_for_file "$work/port" "${pids[0]}"
wait_for_file "$work/http_port" "${pids[0]}"
port=$(<"$work/port")
http_port=$(<"$work/http_port")
log "scheduler on 127.0.0.1:$port (http $http_port)"

for i in 1 2; do
  timeout --kill-after=10 "$DAEMON_LIFETIME_S" "$prefix/bin/fleet-worker" \
    --scheduler="127.0.0.1:$port" --host=127.0.0.1 --slots=2 \
    --task_lib="$task_lib" --task_lib="$prefix/$libdir/libfleet_examples.so" \
    >"$work/worker$i.log" 2>&1 &
  pids+=($!)
done

count_workers() {
  curl -sf --max-time 2 "http://127.0.0.1:$http_port/status" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["workers"]))' 2>/dev/null || echo 0
}
deadline=$((SECONDS + START_DEADLINE_S))
until (($(count_workers) >= 2)); do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || fail "daemon $pid exited during startup"
  done
  ((SECONDS < deadline)) || fail "fewer than 2 workers registered after ${START_DEADLINE_S}s"
  sleep 0.2
done
log "2 workers registered"

# --- 4. run the drivers ----------------------------------------------------------
run_driver() {
  local name=$1 expect=$2
  shift 2
  local status=0
  timeout "$DRIVER_TIMEOUT_S" "$@" >"$work/$name.log" 2>&1 || status=$?
  cat "$work/$name.log"
  ((status == 0)) || fail "$name exited with status $status"
  grep -q -- "$expect" "$work/$name.log" || fail "$name printed no '$expect'"
}
run_driver geometry_driver "geometry_driver: OK" "$driver" --address="127.0.0.1:$port"
run_driver fleet-examples "compute_heavy_task .* ok " \
  "$prefix/bin/fleet-examples" compute_heavy_task --address="127.0.0.1:$port"

finished=$(curl -sf --max-time 2 "http://127.0.0.1:$http_port/status" |
  python3 -c 'import json, sys; print(sum(w["tasks_finished"] for w in json.load(sys.stdin)["workers"]))')
# 32 geometry tasks (plus one that fails on purpose) and 10 fleet-examples tasks.
((finished >= 42)) || fail "the workers report $finished finished tasks, expected at least 42"
log "PASSED ($finished tasks finished on the installed cluster)"
