# shellcheck shell=bash
# A local fleet cluster for the benchmark scripts (bench/run,
# bench/instructions): one fleet-scheduler and two fleet-worker processes on
# 127.0.0.1, as deploy/quickstart.sh starts them. Sourced, not run.
#
# The caller sets: bin and lib (the build's bin/ and lib/), out (a directory
# for the clusters' files and logs) and me (its name, for messages).
# Environment read by start_cluster:
#   FLEET_DURABLE=1        the scheduler commits its state to RocksDB (--state_dir)
#   FLEET_SCHEDULER_FLAGS  more flags for the scheduler
#   FLEET_WORKER_FLAGS     more flags for each worker
#   FLEET_SCHEDULER_WRAP   a command to run the scheduler under (e.g. valgrind ...)
#   FLEET_WORKER_WRAP      the same for each worker
#   FLEET_START_TICKS      how many 50 ms waits for each daemon to start
#                          (default 200 for the scheduler, 300 for the workers)
# After start_cluster: address (host:port), http (its status URL), startup_s,
# and cluster_pids (the scheduler's, then the workers').
# shellcheck disable=SC2034,SC2154  # set and read by the caller (see above)

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

in_cgroup() {  # DIR COMMAND...: runs COMMAND inside cgroup DIR (none when DIR is empty)
  local dir=$1
  shift
  if [[ -z $dir ]]; then
    exec "$@"
  fi
  echo "$BASHPID" >"$dir/cgroup.procs"
  exec "$@"
}

cluster_pids=()
stop_cluster() {
  local pid
  for pid in "${cluster_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${cluster_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  cluster_pids=()
}

wait_for_file() {  # FILE WHAT LOG
  for _ in $(seq 1 "${FLEET_START_TICKS:-200}"); do
    [[ -s $1 ]] && return 0
    sleep 0.05
  done
  echo "$me: $2 did not start; its log:" >&2
  cat "$3" >&2
  exit 1
}

address="" http="" startup_s=""
start_cluster() {  # NAME SLOTS [CGROUP]: a scheduler and 2 workers with SLOTS slots each
  local name=$1 slots=$2 cg=${3:-}
  local dir=$out/clusters/$name
  mkdir -p "$dir"
  local t0
  t0=$(now)
  local durable=()
  [[ -n ${FLEET_DURABLE:-} ]] && durable=(--state_dir="$dir/state")
  # Word-split on purpose: a command and its flags.
  # shellcheck disable=SC2086
  (in_cgroup "$cg" ${FLEET_SCHEDULER_WRAP:-} "$bin/fleet-scheduler" --host=127.0.0.1 --port=0 \
     --http_port=0 --port_file="$dir/port" --http_port_file="$dir/http_port" --log_level=warn \
     "${durable[@]}" ${FLEET_SCHEDULER_FLAGS:-}) >"$dir/scheduler.log" 2>&1 &
  cluster_pids=($!)
  wait_for_file "$dir/port" fleet-scheduler "$dir/scheduler.log"
  wait_for_file "$dir/http_port" fleet-scheduler "$dir/scheduler.log"
  address=127.0.0.1:$(cat "$dir/port")
  http=http://127.0.0.1:$(cat "$dir/http_port")
  local i
  for i in 1 2; do
    # shellcheck disable=SC2086
    (in_cgroup "$cg" ${FLEET_WORKER_WRAP:-} "$bin/fleet-worker" --scheduler="$address" \
       --slots="$slots" --host=127.0.0.1 --task_lib="$lib/libfleet_examples.so" \
       --task_lib="$lib/libfleet_bench_tasks.so" --log_level=warn ${FLEET_WORKER_FLAGS:-}) \
      >"$dir/worker$i.log" 2>&1 &
    cluster_pids+=($!)
  done
  local workers=0
  for _ in $(seq 1 "${FLEET_START_TICKS:-300}"); do
    workers=$(curl -fsS "$http/status" 2>/dev/null | grep -o '"address"' | wc -l || true)
    ((workers >= 2)) && break
    sleep 0.05
  done
  if ((workers < 2)); then
    echo "$me: the workers of cluster $name did not register; logs in $dir" >&2
    cat "$dir"/worker*.log >&2
    exit 1
  fi
  startup_s=$(elapsed "$t0")
}
