#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: unit tests
# beside the code, the integration suites that start real daemons, and the
# chaos suite (label `chaos`). Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/build.sh
build=${FLEET_BUILD_DIR:-build}
ctest --test-dir "$build" --output-on-failure -j 2 -LE chaos "$@"
# The chaos seeds last, one at a time: each keeps the machine busy alone.
ctest --test-dir "$build" --output-on-failure -L chaos "$@"
