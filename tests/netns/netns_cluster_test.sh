#!/usr/bin/env bash
# Several hosts on one machine: the scheduler, two workers and a client each
# in their own network namespace (own address, joined by a bridge), with
# their own IPC, mount and UTS namespaces (a private /dev/shm and hostname
# each), so nothing works by accident through 127.0.0.1, a shared /dev/shm
# or a shared hostname. The client runs the example job; every result is
# checked by fleet-examples, and /status must list the workers at their own
# addresses. The cluster requires a token (FLEET_TOKEN): a worker without it
# is refused. A second client, "outside", is linked to the scheduler's host
# only and has no route to the workers, as a program on the host of a
# compose cluster may not: its large results and Puts must go through the
# scheduler's object relay.
#
#   netns_cluster_test.sh BUILD_DIR
#
# Needs root (network namespaces); exits 77 (skipped) without it. Traffic
# stays inside the namespaces this script creates.
set -euo pipefail

build_dir=$(cd "$1" && pwd)
bin=$build_dir/bin
lib=$build_dir/lib

if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
  echo "netns test: needs root, ip (iproute2) and unshare; skipped" >&2
  exit 77
fi
for f in "$bin/fleet-scheduler" "$bin/fleet-worker" "$bin/fleet-examples" "$lib/libfleet_examples.so"; do
  [[ -e $f ]] || { echo "netns test: $f is not built; skipped" >&2; exit 77; }
done

tag=fl$$                      # unique per run: parallel runs do not collide
subnet=10.213.$(( $$ % 200 + 20 ))
hub=$tag-hub
hosts=(sched w1 w2 client)
declare -A address=([sched]=$subnet.1 [w1]=$subnet.2 [w2]=$subnet.3 [client]=$subnet.4)
# The outside link: its own subnet between the scheduler's host and the
# outside client, not bridged to the workers; nothing forwards between the
# two (a new namespace does not route).
outside_subnet=10.214.$(( $$ % 200 + 20 ))
outside_ns=$tag-outside
work=$(mktemp -d /tmp/fleet-netns.XXXXXX)
pids=()

cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for h in "${hosts[@]}" outside; do ip netns del "$tag-$h" 2>/dev/null || true; done
  ip netns del "$hub" 2>/dev/null || true
  if [[ $rc -ne 0 ]]; then
    for log in "$work"/*.log; do echo "--- $log"; tail -n 40 "$log"; done >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

# The hub namespace holds the bridge; every host gets a veth pair into it.
ip netns add "$hub"
ip -n "$hub" link add br0 type bridge
ip -n "$hub" link set br0 up
for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  ns=$tag-$h
  ip netns add "$ns"
  # Interface names have at most 15 characters.
  ip link add "$tag-${i}b" type veth peer name "$tag-${i}i"
  ip link set "$tag-${i}b" netns "$hub"
  ip link set "$tag-${i}i" netns "$ns"
  ip -n "$ns" link set "$tag-${i}i" name eth0
  ip -n "$ns" addr add "${address[$h]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$hub" link set "$tag-${i}b" master br0 up
done

ip netns add "$outside_ns"
ip link add "$tag-ob" type veth peer name "$tag-oi"
ip link set "$tag-ob" netns "$tag-sched"
ip link set "$tag-oi" netns "$outside_ns"
ip -n "$tag-sched" addr add "$outside_subnet.1/24" dev "$tag-ob"
ip -n "$tag-sched" link set "$tag-ob" up
ip -n "$outside_ns" addr add "$outside_subnet.2/24" dev "$tag-oi"
ip -n "$outside_ns" link set "$tag-oi" up
ip -n "$outside_ns" link set lo up

# Every process of the cluster gets the token through its environment.
export FLEET_TOKEN=netns-$RANDOM$RANDOM$RANDOM

# Runs a command as host $1: its own network, IPC, mount and UTS namespaces,
# a fresh /dev/shm and its own hostname. Every step execs the next, so a
# background `on_host ... &` has the daemon's pid in $!.
on_host() {
  local h=$1
  shift
  exec ip netns exec "$tag-$h" unshare --ipc --mount --uts --propagation private \
    bash -c 'mount -t tmpfs -o size=512m tmpfs /dev/shm && hostname "$0" && exec "$@"' \
    "fleet-$h" "$@"
}

on_host sched "$bin/fleet-scheduler" --host=0.0.0.0 --port=50051 --http_port=8265 \
  >"$work/scheduler.log" 2>&1 &
pids+=($!)
scheduler=${address[sched]}:50051
status_url=http://${address[sched]}:8265/status

status() { ip netns exec "$tag-client" curl -fsS --max-time 2 "$status_url"; }
for _ in $(seq 1 100); do status >/dev/null 2>&1 && break; sleep 0.1; done

for h in w1 w2; do
  on_host "$h" "$bin/fleet-worker" --scheduler="$scheduler" --slots=2 \
    --task_lib="$lib/libfleet_examples.so" >"$work/$h.log" 2>&1 &
  pids+=($!)
done

# A worker without the token is refused, and says why.
if (on_host w1 env -u FLEET_TOKEN "$bin/fleet-worker" --scheduler="$scheduler" --slots=1 \
    --connect_timeout_s=5 --task_lib="$lib/libfleet_examples.so") >"$work/stranger.log" 2>&1; then
  echo "netns test: a worker without the cluster token was let in" >&2
  exit 1
fi
if ! grep -q "requires the cluster token" "$work/stranger.log"; then
  echo "netns test: a worker without the token failed without saying why:" >&2
  cat "$work/stranger.log" >&2
  exit 1
fi

workers_seen() {
  status 2>/dev/null | python3 -c '
import json, sys
print(" ".join(sorted(w["address"].rsplit(":", 1)[0] for w in json.load(sys.stdin)["workers"])))'
}
want="${address[w1]} ${address[w2]}"
seen=""
for _ in $(seq 1 100); do
  seen=$(workers_seen || true)
  [[ $seen == "$want" ]] && break
  sleep 0.1
done
if [[ $seen != "$want" ]]; then
  echo "netns test: /status lists workers at '$seen', expected '$want'" >&2
  exit 1
fi
echo "netns test: scheduler at $scheduler; workers registered from their own addresses: $seen"

# The example job from the client host: small and large results, a Put
# uploaded to a worker, arguments fetched worker to worker.
(on_host client "$bin/fleet-examples" all --address="$scheduler") | tee "$work/client.out"

# From outside: results of 16 MB fetched, and an 80 MB Put uploaded, through
# the scheduler's relay, since the workers' addresses lead nowhere from there.
if ip -n "$outside_ns" route get "${address[w1]}" >/dev/null 2>&1; then
  echo "netns test: the outside client has a route to a worker; the relay would not be tested" >&2
  exit 1
fi
outside_scheduler=$outside_subnet.1:50051
for workload in return_big_object slow_mean; do
  (ip netns exec "$outside_ns" "$bin/fleet-examples" "$workload" --address="$outside_scheduler" \
     --log_level=info) 2>&1 | tee -a "$work/outside.out"
done
read -r relay_calls relay_failed relay_bytes < <(status | python3 -c '
import json, sys
r = json.load(sys.stdin)["relay"]
print(r["calls"], r["failed"], r["bytes"])')
# 20 results of 16 MB and one 80 MB Put at least.
if (( relay_calls < 21 || relay_failed != 0 || relay_bytes < 20 * 16000000 + 80000000 )); then
  echo "netns test: relay figures calls=$relay_calls failed=$relay_failed bytes=$relay_bytes;" \
       "expected >= 21 calls, none failed, >= 400 MB" >&2
  exit 1
fi
if ! grep -q "event=object_relay" "$work/outside.out"; then
  echo "netns test: the outside client did not say it relays" >&2
  exit 1
fi
echo "netns test: outside client relayed $relay_calls transfers ($relay_bytes bytes)"

hostnames=$(status | python3 -c '
import json, sys
print(" ".join(sorted(w["hostname"] for w in json.load(sys.stdin)["workers"])))')
if [[ $hostnames != "fleet-w1 fleet-w2" ]]; then
  echo "netns test: workers report hostnames '$hostnames', expected 'fleet-w1 fleet-w2'" >&2
  exit 1
fi
finished=$(status | python3 -c '
import json, sys
print(sum(w["tasks_finished"] for w in json.load(sys.stdin)["workers"]))')
echo "netns test: ok ($finished tasks finished across two hosts)"
