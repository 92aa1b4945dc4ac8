#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds everything (debug), starts one throw-away
# PostgreSQL server for the run (scripts/pg-test-server.sh; its connection string goes to the tests in
# TASKSHED_TEST_POSTGRES, and it is stopped however the script ends), runs every test target.
# With TASKSHED_TEST_POSTGRES already set, the tests use that server and none is started.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
swift build --build-tests

if [ -z "${TASKSHED_TEST_POSTGRES:-}" ]; then
    pg_dir=$(mktemp -d /tmp/tspg-XXXXXX)
    trap 'scripts/pg-test-server.sh stop "$pg_dir"' EXIT
    # An exit from a signal trap runs the EXIT trap too.
    trap 'exit 130' INT
    trap 'exit 143' TERM
    TASKSHED_TEST_POSTGRES=$(scripts/pg-test-server.sh start "$pg_dir")
    export TASKSHED_TEST_POSTGRES
fi

swift test --skip-build --parallel --num-workers 2
