#!/usr/bin/env bash
# Stages a host build (deploy/build.sh) into a small Docker build context for
# the Dockerfile's `prebuilt` target: `cmake --install --strip` into
# CONTEXT/deploy/prebuilt (bin/ and lib/, RUNPATH $ORIGIN/../lib, no debug
# info; headers and CMake files left out), plus the Dockerfile itself.
#
#   bash deploy/docker-stage.sh [BUILD_DIR [CONTEXT]]   (default: build, BUILD_DIR/docker-prebuilt)
#   docker build --network host -f CONTEXT/deploy/Dockerfile --target prebuilt -t fleet:latest CONTEXT
#
# (deploy/compose.prebuilt.yml points docker-compose at build/docker-prebuilt.)
# The image's libraries are Debian 12's, so the host build must be too.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-${FLEET_BUILD_DIR:-build}}
context=${2:-$build_dir/docker-prebuilt}
for f in bin/fleet-scheduler bin/fleet-worker bin/fleet-executor bin/fleet bin/fleet-examples \
  lib/libfleet_examples.so; do
  if [[ ! -e $build_dir/$f ]]; then
    echo "docker-stage: $build_dir/$f is missing; build first (bash deploy/build.sh)" >&2
    exit 1
  fi
done

rm -rf "$context"
mkdir -p "$context/deploy"
cmake --install "$build_dir" --prefix "$context/deploy/prebuilt" --strip >/dev/null
rm -rf "$context/deploy/prebuilt/include" "$context/deploy/prebuilt/lib/cmake"
cp deploy/Dockerfile "$context/deploy/Dockerfile"
for f in fleet-scheduler fleet-worker fleet-executor fleet fleet-examples; do
  if [[ ! -x $context/deploy/prebuilt/bin/$f ]]; then
    echo "docker-stage: cmake --install did not install bin/$f" >&2
    exit 1
  fi
done
echo "docker-stage: staged $build_dir into $context ($(du -sh "$context" | cut -f1))" >&2
