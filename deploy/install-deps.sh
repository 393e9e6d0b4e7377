#!/usr/bin/env bash
# Installs the Debian 12 packages fleet needs to build and test. Idempotent:
# installs only what is missing and runs apt-get update at most once.
# FLEET_DEPS_BUILD_ONLY=1 leaves out what only tests use (the browser, the
# manifest linters, promtool): the Docker image's build stage installs that.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev libmsgpack-cxx-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev nlohmann-json3-dev libssl-dev librocksdb-dev libgoogle-perftools-dev
  curl procps python3 util-linux iproute2
)
if [[ ${FLEET_DEPS_BUILD_ONLY:-0} != 1 ]]; then
  packages+=(
    chromium chromium-driver   # the dashboard's browser test (tests/browser/)
    yamllint python3-yaml python3-kubernetes   # deploy/k8s/validate.sh
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool (the tests check /metrics with it) comes out of Debian's
# prometheus package, unpacked rather than installed: installing it would
# also set up and start a Prometheus server.
if [[ ${FLEET_DEPS_BUILD_ONLY:-0} != 1 ]] && ! command -v promtool >/dev/null 2>&1; then
  echo "install-deps: unpacking promtool from Debian's prometheus package" >&2
  unpacked=$(mktemp -d)
  (cd "$unpacked" && apt-get download prometheus >/dev/null 2>&1 ||
     { $sudo apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; })
  dpkg-deb -x "$unpacked"/prometheus_*.deb "$unpacked/root"
  $sudo install -m 0755 "$unpacked/root/usr/bin/promtool" /usr/local/bin/promtool
  rm -rf "$unpacked"
fi
