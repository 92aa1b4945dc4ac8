#!/usr/bin/env bash
# Sets up and runs the daemon: installs missing Debian packages, builds taskshedd (release) and runs it in the
# foreground with its embedded LMDB datastore. Arguments are passed to taskshedd (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
swift build -c release --product taskshedd
exec .build/release/taskshedd "$@"
