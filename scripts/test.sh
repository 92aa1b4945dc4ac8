#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds everything (debug), starts one throw-away
# PostgreSQL server for the run (scripts/pg-test-server.sh; its connection string goes to the tests in
# TASKSHED_TEST_POSTGRES, and it is stopped however the script ends), runs every test target in three passes
# (below).
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

# Three passes, so that no test's waiting starves another's. Every Swift Testing suite of a pass runs in one
# process, on a cooperative pool as wide as the machine has cores (2 in CI): a synchronous test blocks one of
# those threads while it waits for a daemon or a child, and the library's workers (TaskShedTests) need the pool
# to deliver on time. The suites that build (the .deb, `make install`, the DocC archive) or run a script of
# machines keep both cores busy for a minute or more and come last. All three passes always run; the script
# fails if any does.
library='^TaskShedTests\.'
heavy='DebianPackageTests|InstallTargetTests|DocumentationScriptTests|ThreeMachinesScriptTests'
status=0
swift test --skip-build --skip "$library" --skip "$heavy" || status=$?
swift test --skip-build --filter "$library" --skip "$heavy" || status=$?
swift test --skip-build --filter "$heavy" || status=$?
exit "$status"
