#!/usr/bin/env bash
# End to end with Docker: the README's "Run a cluster with Docker", on a
# fresh Debian 12 machine with root.
#
#   e2e_test.sh BUILD_DIR SOURCE_DIR
#
# 1. Installs docker.io, docker-compose and debootstrap if missing; starts
#    dockerd (vfs storage, no iptables) if none answers, and stops it again at
#    the end.
# 2. Makes the base image debian:bookworm-slim with debootstrap if absent
#    (deploy/docker-base-image.sh).
# 3. Builds the image (fleet:e2e): by default the Dockerfile's `prebuilt`
#    target from BUILD_DIR (deploy/docker-stage.sh); FLEET_E2E_FULL=1 builds
#    it from source instead (target `runtime`, several minutes more).
# 4. Starts a scheduler and three workers with docker-compose (its own project
#    name, free host ports, a random FLEET_TOKEN), waits for /healthz and for
#    the three workers in /status.
# 5. Checks the token: the workers got in with it, and `fleet status` and the
#    example job with a wrong or no token are refused.
# 6. Runs the example job in a container (`docker-compose run example`) and
#    from the host (BUILD_DIR/bin/fleet-examples, big results fetched from the
#    workers' containers); fleet-examples checks every result and exits
#    non-zero on a wrong one.
# 7. Kills one worker container in the middle of a job: the job must still
#    finish with every result right, the killed worker's tasks re-run, and
#    /status must drop it.
# Tears everything down on exit, printing the containers' logs on failure.
# Exits 77 (skipped) only when not root.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: e2e_test.sh BUILD_DIR SOURCE_DIR" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "e2e test: needs root (installs Docker, starts dockerd, runs debootstrap); skipped" >&2
  exit 77
fi
build_dir=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
full=${FLEET_E2E_FULL:-0}

fail() {
  echo "e2e test: FAILED: $*" >&2
  exit 1
}

# Where the time goes, printed at the end (the budget for CI is ~15 min on a
# fresh machine).
timings=()
t_last=$(date +%s)
lap() {
  local now
  now=$(date +%s)
  timings+=("$(printf '%-28s %4d s' "$1" $((now - t_last)))")
  t_last=$now
}

work=$(mktemp -d /tmp/fleet-e2e.XXXXXX)
project=fleete2e$$                # unique per run: parallel runs do not collide
dockerd_pid=""
compose_up=0

compose() {
  docker-compose -p "$project" -f "$src/docker-compose.yml" -f "$src/deploy/$override" "$@"
}

cleanup() {
  local rc=$?
  set +e
  if [[ $compose_up == 1 ]]; then
    if [[ $rc -ne 0 ]]; then
      echo "--- e2e test: containers and their logs" >&2
      compose ps >&2
      compose logs --no-color --tail=80 >&2
    fi
    compose down -v --remove-orphans --timeout 20 >"$work/down.log" 2>&1 ||
      { echo "e2e test: docker-compose down failed:" >&2; cat "$work/down.log" >&2; }
    lap "teardown"
  fi
  if [[ $rc -ne 0 ]]; then
    for log in "$work"/*.out; do
      [[ -e $log ]] && { echo "--- $log"; tail -n 40 "$log"; } >&2
    done
  fi
  if [[ -n $dockerd_pid ]]; then
    # Ours: stop it as we found the machine (its images stay in /var/lib/docker).
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -rf "$work"
  echo "e2e test: timings" >&2
  printf '  %s\n' "${timings[@]}" >&2
  exit "$rc"
}
trap cleanup EXIT

for f in bin/fleet-examples bin/fleet bin/fleet-scheduler bin/fleet-worker lib/libfleet_examples.so; do
  [[ -e $build_dir/$f ]] || fail "$build_dir/$f is not built; run bash deploy/build.sh first"
done

# --- 1. Docker ----------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]} > 0)); then
  echo "e2e test: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$work/apt.out" 2>&1 ||
    { cat "$work/apt.out" >&2; fail "apt-get install ${missing[*]} failed (above)"; }
fi
lap "install docker"

if ! docker info >/dev/null 2>&1; then
  # No daemon (no systemd here, or it is not started): run one for this test.
  # vfs works on any file system, overlay-in-overlay included; without
  # iptables rules containers still reach each other on a compose network
  # and ports published on 127.0.0.1 go through docker-proxy.
  dockerd_log=/var/log/fleet-e2e-dockerd.log
  echo "e2e test: starting dockerd (log: $dockerd_log)" >&2
  dockerd --storage-driver=vfs --iptables=false </dev/null >"$dockerd_log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 150); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.2
  done
  if ! docker info >/dev/null 2>&1; then
    tail -n 20 "$dockerd_log" >&2
    fail "dockerd did not start (its log above, all of it in $dockerd_log)"
  fi
fi
# The client may be newer than Debian's dockerd 20.10 (API 1.41): it
# negotiates the API version down; say which pair this is, and fail here,
# clearly, when they do not agree.
versions=$(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}}) / {{.Server.Version}} (API {{.Server.APIVersion}})' 2>&1) ||
  fail "the docker client ($(command -v docker)) cannot talk to dockerd: $versions"
echo "e2e test: docker client / server: $versions; $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')" >&2
lap "start dockerd"

# --- 2. Base image --------------------------------------------------------------
bash "$src/deploy/docker-base-image.sh" || fail "could not make the base image debian:bookworm-slim"
lap "base image"

# --- 3. fleet's image -------------------------------------------------------------
# The classic builder (docker-compose 1.29's own), on the host's network: a
# dockerd without iptables gives build containers on the bridge no way out to
# Debian's archive.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
export FLEET_IMAGE=fleet:e2e
if [[ $full == 1 ]]; then
  override=compose.build-host.yml
  echo "e2e test: building $FLEET_IMAGE from source (FLEET_E2E_FULL=1)" >&2
else
  override=compose.prebuilt.yml
  export FLEET_PREBUILT_CONTEXT=$work/context
  bash "$src/deploy/docker-stage.sh" "$build_dir" "$FLEET_PREBUILT_CONTEXT"
  echo "e2e test: building $FLEET_IMAGE from $build_dir (target prebuilt)" >&2
fi
# One build: the three services share the image.
(cd "$src" && compose build --force-rm scheduler) >"$work/build.out" 2>&1 ||
  fail "the image build failed; the end of its output is below"
lap "image build"

# --- 4. The cluster -----------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
FLEET_PORT=$(free_port)
FLEET_HTTP_PORT=$(free_port)
while [[ $FLEET_HTTP_PORT == "$FLEET_PORT" ]]; do FLEET_HTTP_PORT=$(free_port); done
FLEET_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export FLEET_PORT FLEET_HTTP_PORT FLEET_TOKEN
export FLEET_BIND=127.0.0.1 FLEET_WORKER_SLOTS=2 FLEET_LOG_LEVEL=info
# The compose file's defaults for the rest, whatever this shell or a .env
# file in the checkout says (empty means the default there).
export FLEET_SCHEDULER_FLAGS="" FLEET_WORKER_FLAGS="" FLEET_WORKER_STORE_MEMORY="" \
  FLEET_WORKER_SHM_SIZE="" FLEET_TASK_LIB="" FLEET_EXAMPLE=""
address=127.0.0.1:$FLEET_PORT
http=http://127.0.0.1:$FLEET_HTTP_PORT

compose_up=1
(cd "$src" && compose up -d --no-build --scale worker=3) >"$work/up.out" 2>&1 ||
  fail "docker-compose up failed"

status() { curl -fsS --max-time 3 "$http/status"; }
# "ID HOSTNAME STATE TASKS_ASSIGNED" per worker in /status.
workers() {
  status | python3 -c '
import json, sys
for w in json.load(sys.stdin)["workers"]:
    print(w["id"], w["hostname"], w["state"], w["tasks_assigned"])'
}
task_total() {
  status | python3 -c "import json, sys; print(json.load(sys.stdin)['tasks']['$1'])"
}

healthy=0
for _ in $(seq 1 120); do
  curl -fsS --max-time 2 "$http/healthz" >/dev/null 2>&1 && { healthy=1; break; }
  sleep 0.5
done
[[ $healthy == 1 ]] || fail "the scheduler's $http/healthz did not answer within 60 s"
alive=0
for _ in $(seq 1 120); do
  alive=$(workers 2>/dev/null | awk '$3 == "alive"' | wc -l || true)
  [[ $alive -ge 3 ]] && break
  sleep 0.5
done
[[ $alive == 3 ]] || fail "/status lists $alive alive workers after 60 s, expected 3: $(workers 2>&1 | tr '\n' ';')"
# Each worker is one of this project's containers (its hostname is the
# container's short id).
containers=$(compose ps -q worker | cut -c1-12 | sort | tr '\n' ' ')
hostnames=$(workers | awk '{print $2}' | sort | tr '\n' ' ')
[[ $containers == "$hostnames" ]] ||
  fail "/status lists workers on hosts '$hostnames', the worker containers are '$containers'"
echo "e2e test: scheduler at $address ($http), 3 workers: $hostnames" >&2
lap "cluster up"

# --- 5. The token -----------------------------------------------------------------
# The workers registered, so they sent the right token. A wrong or missing
# one must be refused with a clear message.
fleet_cli=$build_dir/bin/fleet
"$fleet_cli" status --address="$address" >"$work/status-ok.out" 2>&1 ||
  fail "fleet status with the cluster's token failed: $(cat "$work/status-ok.out")"
grep -Eq '^workers +3$' "$work/status-ok.out" ||
  fail "fleet status does not say 'workers 3': $(cat "$work/status-ok.out")"
for token in "wrong-$FLEET_TOKEN" ""; do
  if FLEET_TOKEN=$token "$fleet_cli" status --address="$address" >"$work/status-bad.out" 2>&1; then
    fail "fleet status with token '$token' was let in; the scheduler requires '$FLEET_TOKEN'"
  fi
  grep -q 'cluster token' "$work/status-bad.out" ||
    fail "fleet status with token '$token' failed without naming the token: $(cat "$work/status-bad.out")"
done
# The client library in a container: the example job with a wrong token
# must fail, saying why.
rc=0
(cd "$src" && compose run --rm -e FLEET_TOKEN="wrong-$FLEET_TOKEN" example) \
  >"$work/example-bad-token.out" 2>&1 || rc=$?
[[ $rc != 0 ]] || fail "the example job with a wrong token ran; the scheduler requires '$FLEET_TOKEN'"
grep -q 'cluster token' "$work/example-bad-token.out" ||
  fail "the example job with a wrong token failed without naming the token: $(tail -n 5 "$work/example-bad-token.out")"
echo "e2e test: a wrong or missing token is refused: $(head -n 1 "$work/status-bad.out")" >&2

# fleet-examples prints a summary row per workload, "ok" or "FAILED", and
# exits non-zero when a result was wrong. Checks both: exit status 0 and
# every one of the six workloads "ok".
check_example_output() {
  local out=$1 what=$2 rows
  rows=$(awk '/^workload +tasks/ {s = 1; next} s && NF' "$out")
  [[ $(grep -c ' ok ' <<<"$rows") == 6 && $(grep -c . <<<"$rows") == 6 ]] ||
    fail "$what: expected six workloads 'ok' in the summary, got: $rows"
}

# --- 6. The example job -----------------------------------------------------------
# `docker-compose run` must pass the container's exit status on, or a failed
# job would pass here.
rc=0
(cd "$src" && compose run --rm --no-deps example false) >"$work/run-false.out" 2>&1 || rc=$?
[[ $rc != 0 ]] || fail "docker-compose run did not pass on a failing container's exit status"

(cd "$src" && compose run --rm example) >"$work/example-container.out" 2>&1 ||
  fail "the example job in a container (docker-compose run --rm example) failed"
check_example_output "$work/example-container.out" "the example job in a container"
echo "e2e test: the example job in a container: every result right" >&2
lap "example (container)"

bytes_sent() {
  status | python3 -c 'import json, sys; print(sum(w["bytes_sent"] for w in json.load(sys.stdin)["workers"]))'
}
sent_before=$(bytes_sent)
"$build_dir/bin/fleet-examples" all --address="$address" >"$work/example-host.out" 2>&1 ||
  fail "the example job from the host (fleet-examples all --address=$address) failed"
check_example_output "$work/example-host.out" "the example job from the host"
grep -q 'return_big_object .* 320 MB received' "$work/example-host.out" ||
  fail "the host's job did not receive return_big_object's 20 x 16 MB results"
# Big results came from the workers' containers over gRPC (the host shares no
# memory with them). Workers report their counts with each heartbeat, so the
# last fetches may show up a heartbeat after the job ends.
for _ in $(seq 1 50); do
  sent=$(($(bytes_sent) - sent_before))
  [[ $sent -ge 320000000 ]] && break
  sleep 0.2
done
[[ $sent -ge 320000000 ]] ||
  fail "the workers sent $sent bytes during the host's job (counted by their heartbeats for 10 s after it), which fetched 320 MB of results from them"
echo "e2e test: the example job from the host: every result right, $((sent / 1000000)) MB fetched from the workers" >&2
lap "example (host)"

# --- 7. A worker killed mid-job ---------------------------------------------------
# compute_heavy_task: 10 tasks of 1 s on 6 slots, two waves; every worker gets
# tasks at once. The kill lands as soon as the victim holds some, so its
# tasks must run again elsewhere.
victim=$(compose ps -q worker | sed -n 1p)
victim_id=$(workers | awk -v h="${victim:0:12}" '$2 == h {print $1}')
[[ -n $victim_id ]] || fail "no worker in /status runs in container ${victim:0:12}"
retried_before=$(task_total retried)
"$build_dir/bin/fleet-examples" compute_heavy_task --address="$address" >"$work/example-kill.out" 2>&1 &
job=$!
held=0
for _ in $(seq 1 100); do
  held=$(workers | awk -v id="$victim_id" '$1 == id {print $4}' || true)
  [[ ${held:-0} -gt 0 ]] && break
  kill -0 "$job" 2>/dev/null || break
  sleep 0.05
done
[[ ${held:-0} -gt 0 ]] || fail "worker ${victim_id:0:8} (container ${victim:0:12}) was never given a task"
docker kill "$victim" >/dev/null
kill -0 "$job" 2>/dev/null ||
  fail "the job ended before the kill landed; it cannot show that a dead worker's tasks re-run"
echo "e2e test: killed worker ${victim_id:0:8} (container ${victim:0:12}) holding $held task(s), job still running" >&2
rc=0
wait "$job" || rc=$?
[[ $rc == 0 ]] || fail "the job with a worker killed under it failed (exit $rc)"
grep -q '^compute_heavy_task .* ok .*all exact' "$work/example-kill.out" ||
  fail "the job with a worker killed under it did not report every result exact"
retried=$(task_total retried)
[[ $retried -gt $retried_before ]] ||
  fail "tasks.retried stayed $retried: the killed worker's tasks did not run again"

# /status drops the dead worker (its stream broke, or after the heartbeat
# timeout, 10 s). Docker may restart the container (restart: unless-stopped;
# 20.10 does not after `docker kill`): it comes back as a new worker.
survivors=$(workers | awk -v id="$victim_id" '$1 != id && $3 == "alive"' | wc -l)
listed=1
for _ in $(seq 1 60); do
  ids=$(workers | awk '{print $1}') || true
  [[ -n $ids ]] && ! grep -qx "$victim_id" <<<"$ids" && { listed=0; break; }
  sleep 0.5
done
[[ $listed == 0 ]] || fail "/status still lists the killed worker ${victim_id:0:8} 30 s after the kill"
restarted=$(docker inspect -f '{{.State.Running}}' "$victim")
now=$(workers | awk '$3 == "alive"' | wc -l)
if [[ $restarted == true ]]; then
  expected=3
else
  expected=2
fi
[[ $survivors -ge 2 && $now == "$expected" ]] ||
  fail "/status lists $now alive workers after the kill, expected $expected (container restarted: $restarted)"
echo "e2e test: the job finished, every result exact; tasks retried $retried_before -> $retried;" \
  "/status lists $now workers without ${victim_id:0:8}" >&2
lap "worker killed mid-job"

echo "e2e test: ok" >&2
