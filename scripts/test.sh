#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds everything (debug), runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
swift build --build-tests
swift test --skip-build --parallel --num-workers 2
