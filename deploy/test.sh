#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: unit tests
# beside the code and the integration suites that start real daemons.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/build.sh
ctest --test-dir "${FLEET_BUILD_DIR:-build}" --output-on-failure -j 2 "$@"
