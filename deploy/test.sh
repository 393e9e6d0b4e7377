#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: unit tests
# beside the code, the integration suites that start real daemons, and the
# chaos suite (label `chaos`), then the Docker end-to-end test (label `e2e`).
# Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/build.sh
build=${FLEET_BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j 2 -LE 'chaos|e2e' "$@"
# The chaos seeds next, one at a time: each keeps the machine busy alone.
ctest --test-dir "$build" --output-on-failure -L chaos "$@"
# Docker last, alone: it installs Docker, builds an image and runs a cluster
# in containers (tests/e2e/).
ctest --test-dir "$build" --output-on-failure -L e2e "$@"
