#!/usr/bin/env bash
# Quick start: installs what is missing, builds, starts a local cluster (one
# scheduler and two workers as real processes on 127.0.0.1) and runs the
# example job against it, printing its results. Stops the cluster on exit.
#
#   bash deploy/quickstart.sh [WORKLOAD]    (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/build.sh
bin=build/bin
lib=build/lib
run_dir=$(mktemp -d /tmp/fleet-quickstart.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

wait_for_file() {
  for _ in $(seq 1 100); do
    [[ -s "$1" ]] && return 0
    sleep 0.1
  done
  echo "quickstart: $2 did not start; its log:" >&2
  cat "$3" >&2
  exit 1
}

"$bin/fleet-scheduler" --host=127.0.0.1 --port=0 --http_port=0 \
  --port_file="$run_dir/port" --http_port_file="$run_dir/http_port" \
  >"$run_dir/scheduler.log" 2>&1 &
pids+=($!)
wait_for_file "$run_dir/port" "fleet-scheduler" "$run_dir/scheduler.log"
wait_for_file "$run_dir/http_port" "fleet-scheduler" "$run_dir/scheduler.log"
address="127.0.0.1:$(cat "$run_dir/port")"
http="http://127.0.0.1:$(cat "$run_dir/http_port")"

for i in 1 2; do
  "$bin/fleet-worker" --scheduler="$address" --slots=4 --host=127.0.0.1 \
    --task_lib="$lib/libfleet_examples.so" >"$run_dir/worker$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 100); do
  workers=$(curl -fsS "$http/status" 2>/dev/null | grep -c '"address"' || true)
  [[ "$workers" -ge 2 ]] && break
  sleep 0.1
done
echo "fleet cluster: scheduler at $address, status at $http/status, 2 workers x 4 slots"

"$bin/fleet-examples" "${1:-all}" --address="$address"
echo
echo "cluster status after the job ($http/status):"
curl -fsS "$http/status"
echo
