#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need when any is missing (libuv, LMDB, libhttp-parser for the
# metrics endpoint's HTTP requests, pkg-config; libpq and
# the PostgreSQL server and PgBouncer, which scripts/pg-test-server.sh and scripts/pgbouncer-test.sh run for the
# tests; make, which runs the Makefile's install target for its test; lintian, which checks the .deb that
# scripts/build-deb.sh builds, about 17 MB of Perl modules; tmux, in which a test runs `taskshedctl top`;
# prometheus, whose promtool checks the daemon's metrics text and whose server scrapes a test daemon), so that
# the run and test commands in README.md work on a fresh Debian machine with only the Swift toolchain.
set -euo pipefail

packages=(libuv1-dev liblmdb-dev libhttp-parser-dev pkg-config postgresql libpq-dev pgbouncer make lintian tmux prometheus)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "ensure-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "ensure-deps: ${missing[*]} missing and not root (and no sudo): install them with apt-get" >&2
        exit 1
    fi
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
