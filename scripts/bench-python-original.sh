#!/usr/bin/env bash
# Runs bench/python-original/bench.py: the scenarios of taskshed-bench (lag, add, drain, and the asyncio timer
# floor) on the Python original, PyPI's taskshed 0.10.0, for BENCHMARKS.md's "same scenario on the Python original".
#
#   scripts/bench-python-original.sh lag -n 1000 -s 10                      EventDrivenWorker, in-memory store
#   scripts/bench-python-original.sh lag -n 1000 -s 10 --worker polling     PollingWorker, 3 s (its default)
#   scripts/bench-python-original.sh lag -n 1000 -s 10 --worker polling --polling-interval 0.1
#   scripts/bench-python-original.sh floor -n 1000 -s 10                    bare asyncio timer, same instants
#   scripts/bench-python-original.sh add -n 100000
#   scripts/bench-python-original.sh drain -n 50000
#   scripts/bench-python-original.sh --with-redis lag -n 1000 -s 10         the same on its RedisDataStore
#
# Makes (or reuses) a venv in .build/python-original with the pinned requirements, prints the Python and package
# versions, then passes every argument to bench.py (`bench.py SUBCOMMAND --help` lists the options; --json prints
# one JSON object). The venv is reinstalled only when requirements.txt changes. PYTHON names the interpreter
# (default python3); on Debian, `python3 -m venv` needs the python3-venv package.
#
# --with-redis, as the first argument, starts a throw-away redis-server (from PATH: Debian's redis-server
# package; no persistence, a Unix socket in a fresh temporary directory, no TCP port) for this run only, passes
# --store redis --redis-socket to bench.py, and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.build/python-original
requirements=bench/python-original/requirements.txt
python=${PYTHON:-python3}

with_redis=0
if [ "${1:-}" = "--with-redis" ]; then
    with_redis=1
    shift
fi
if [ "$#" -eq 0 ]; then
    set -- --help
fi

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p .build
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        echo "bench-python-original: '$python -m venv' failed; on Debian install python3-venv" >&2
        exit 1
    fi
fi
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bench-python-original: installing $requirements into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" >"$stamp"
fi

# The versions go first; to stderr with --json, so that stdout stays one JSON object.
header_fd=1
for a in "$@"; do
    if [ "$a" = "--json" ]; then header_fd=2; fi
done
"$venv/bin/python" - >&"$header_fd" <<'EOF'
import platform
from importlib import metadata
names = ("taskshed", "redis", "aiomysql", "PyMySQL")
print("# " + platform.python_implementation() + " " + platform.python_version() + " (" + platform.platform() + "); "
      + ", ".join(f"{n} {metadata.version(n)}" for n in names))
EOF

if [ "$with_redis" -eq 0 ]; then
    exec "$venv/bin/python" bench/python-original/bench.py "$@"
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "bench-python-original: --with-redis needs redis-server on PATH (apt-get install redis-server)" >&2
    exit 1
fi
dir=$(mktemp -d /tmp/taskshed-pyorig-redis-XXXXXX)
redis_pid=""
cleanup() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Unix socket only (port 0: no TCP listener), nothing persisted: the store the original's Redis figures assume,
# minus the network. The bench removes the original's "scheduler*" keys before each run.
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --daemonize no &
redis_pid=$!
for _ in $(seq 100); do
    [ -S "$dir/redis.sock" ] && break
    sleep 0.05
done
if [ ! -S "$dir/redis.sock" ]; then
    echo "bench-python-original: redis-server did not start; its log:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
fi
echo "# $(redis-server --version | cut -d' ' -f1-3), Unix socket, no persistence" >&"$header_fd"
subcommand=$1
shift
if [ "$subcommand" = floor ]; then  # no datastore in it
    "$venv/bin/python" bench/python-original/bench.py "$subcommand" "$@"
else
    "$venv/bin/python" bench/python-original/bench.py "$subcommand" --store redis --redis-socket "$dir/redis.sock" "$@"
fi
