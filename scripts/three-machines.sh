#!/usr/bin/env bash
# The original's distributed example on three "machines" made of Linux network namespaces, joined by a bridge:
#
#   db  10.213.0.1  a throw-away PostgreSQL on TCP port 5432; pg_hba admits only a and c, with a password
#   a   10.213.0.2  taskshedd --datastore postgresql://taskshed@10.213.0.1:5432/taskshed, and SayHelloScheduler
#   c   10.213.0.3  another taskshedd on the same database, and SayHelloWorker
#
# The scheduler adds a say_hello task on a's daemon; c's daemon claims it from the shared database and its worker
# prints "Hello!". The script waits for that line (at most 30 s), prints it and stops everything. The password is
# random per run and lives in a .pgpass file in the run's temporary directory, passed to both daemons in PGPASSFILE.
#
#   scripts/three-machines.sh [--bin DIR]   DIR holds the built taskshedd, SayHelloScheduler and SayHelloWorker
#                                           (default: .build/debug of this repository; `swift build` makes them)
#
# Needs root (for ip netns) and Debian's postgresql package (the server runs as the postgres user). Only the
# namespaces it creates are touched: the bridge and the veth pairs live inside them, none in the host's namespace.
# On every exit it kills what it started, stops PostgreSQL, deletes its namespaces and temporary directory; it
# also removes those left by a run that was killed with SIGKILL (namespaces ts3m-PID-*, directories /tmp/ts3m-PID.*).
# Exit status: 0 the worker printed "Hello!"; 1 it did not, or a step failed (the logs' tails on stderr);
# 2 bad usage or missing binaries; 77 skipped (not root, or no network namespaces here), with one line saying why.
set -euo pipefail

me=three-machines
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$repo/.build/debug
timeout=30
subnet=10.213.0
port=5432

usage() { echo "usage: $0 [--bin DIR]" >&2; exit 2; }
say() { echo "$me: $*"; }
die() { echo "$me: $*" >&2; exit 1; }
skip() { echo "skipped: $*" >&2; exit 77; }

while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin) [ "$#" -ge 2 ] || usage; bin=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage ;;
    esac
done
for program in taskshedd SayHelloScheduler SayHelloWorker; do
    [ -x "$bin/$program" ] || { echo "$me: no $program in $bin: run 'swift build' or give --bin DIR" >&2; exit 2; }
done
bin=$(cd "$bin" && pwd)

[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns"
ip netns list >/dev/null 2>&1 || skip "'ip netns list' fails here (is iproute2 installed?)"
id -u postgres >/dev/null 2>&1 || die "no postgres user to run the server as: install Debian's postgresql package"
pgbin=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$pgbin/initdb" ]; then
    pgbin=$(find /usr/lib/postgresql/*/bin -maxdepth 0 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ ! -x "$pgbin/initdb" ] || [ ! -x "$pgbin/pg_ctl" ]; then
    die "no PostgreSQL server binaries (initdb, pg_ctl) found: run scripts/ensure-deps.sh"
fi

# Runs "$@" as the postgres user, from / (it may not enter the caller's working directory).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# Removes what run $1 (its pid) left: its server, its processes (all in its namespaces), namespaces, directory.
remove_run() (
    set +e
    owner=$1
    for dir in /tmp/ts3m-"$owner".*; do
        if [ -f "$dir/pg/data/postmaster.pid" ]; then
            as_postgres "$pgbin/pg_ctl" -D "$dir/pg/data" -m immediate -w -t 20 -s stop >/dev/null 2>&1
        fi
    done
    for ns in ts3m-"$owner"-db ts3m-"$owner"-a ts3m-"$owner"-c; do
        if [ -e "/run/netns/$ns" ]; then
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
            ip netns delete "$ns" 2>/dev/null
        fi
    done
    rm -rf /tmp/ts3m-"$owner".*
)

# Whether any of the pids still runs (they are our children, so not yet reaped ones keep their numbers).
alive() {
    local pid
    for pid in "$@"; do if kill -0 "$pid" 2>/dev/null; then return 0; fi; done
    return 1
}

pids=()
# shellcheck disable=SC2317  # (shellcheck 0.9 takes a function run only by a trap for unreachable)
cleanup() {
    local status=$? pid i
    set +e
    trap '' INT TERM
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for (( i = 0; i < 50; i++ )); do
        alive "${pids[@]}" || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    remove_run $$
    exit "$status"
}

# Runs killed before their cleanup (SIGKILL): a namespace or directory whose owner no longer runs this script.
owners=()
for name in $(ip netns list | awk '{ print $1 }') /tmp/ts3m-*.*; do
    if [[ $name =~ ^(/tmp/)?ts3m-([0-9]+)[-.] ]]; then owners+=("${BASH_REMATCH[2]}"); fi
done
for owner in $(printf '%s\n' "${owners[@]}" | sort -u); do
    if ! grep -qs three-machines "/proc/$owner/cmdline"; then
        echo "$me: removing what run $owner left" >&2
        remove_run "$owner"
    fi
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
unset NOTIFY_SOCKET LISTEN_PID LISTEN_FDS LISTEN_FDNAMES WATCHDOG_USEC WATCHDOG_PID TASKSHED_SOCKET
tmp=$(mktemp -d "/tmp/ts3m-$$.XXXXXX")
chmod 0711 "$tmp"
mkdir -m 0700 "$tmp/a" "$tmp/c" "$tmp/pg"
chown postgres "$tmp/pg"

# The machines: a bridge in db, a veth pair from it to each of a and c.
ns_db=ts3m-$$-db ns_a=ts3m-$$-a ns_c=ts3m-$$-c
if ! error=$(ip netns add "$ns_db" 2>&1); then skip "cannot create a network namespace: $error"; fi
ip netns add "$ns_a"
ip netns add "$ns_c"
ip -n "$ns_db" link add br0 type bridge
ip -n "$ns_db" addr add "$subnet.1/24" dev br0
for ns in "$ns_db" "$ns_a" "$ns_c"; do ip -n "$ns" link set lo up; done
ip -n "$ns_db" link set br0 up
host=2
for ns in "$ns_a" "$ns_c"; do
    ip link add "to$host" netns "$ns_db" type veth peer name eth0 netns "$ns"
    ip -n "$ns_db" link set "to$host" master br0 up
    ip -n "$ns" addr add "$subnet.$host/24" dev eth0
    ip -n "$ns" link set eth0 up
    host=$((host + 1))
done

# The database: password authentication over TCP from a and c only; local connections (the socket in $tmp/pg,
# mode 0700, postgres's) are trusted.
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$password" >"$tmp/pg/password"
chown postgres "$tmp/pg/password"
as_postgres "$pgbin/initdb" -D "$tmp/pg/data" -U taskshed --pwfile="$tmp/pg/password" -A scram-sha-256 \
    -E UTF8 --locale=C --no-sync >"$tmp/pg/initdb.log" 2>&1 || { tail -n 20 "$tmp/pg/initdb.log" >&2; die "initdb failed"; }
rm -f "$tmp/pg/password"
cat >>"$tmp/pg/data/postgresql.conf" <<EOF
listen_addresses = '$subnet.1'
port = $port
unix_socket_directories = '$tmp/pg'
shared_buffers = 32MB
fsync = off
EOF
cat >"$tmp/pg/data/pg_hba.conf" <<EOF
local all         all      trust
host  all         taskshed $subnet.2/32 scram-sha-256
host  all         taskshed $subnet.3/32 scram-sha-256
EOF
if ! (cd / && ip netns exec "$ns_db" runuser -u postgres -- "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" \
    -w -t 30 -s start >/dev/null 2>&1); then
    tail -n 20 "$tmp/pg/log" >&2
    die "PostgreSQL did not start in namespace $ns_db"
fi
as_postgres "$pgbin/createdb" -h "$tmp/pg" -p "$port" -U taskshed taskshed
printf '%s:%s:taskshed:taskshed:%s\n' "$subnet.1" "$port" "$password" >"$tmp/pgpass"
chmod 0600 "$tmp/pgpass"
say "db  $subnet.1  PostgreSQL $("$pgbin/pg_ctl" --version | awk '{ print $3 }') on port $port (namespace $ns_db)"
say "    the password is in $tmp/pgpass (PGPASSFILE)"

# start NS LOG VAR=VALUE... PROGRAM ARGS...: runs it in namespace NS with output to LOG, its pid kept for cleanup.
start() {
    local ns=$1 log=$2
    shift 2
    ip netns exec "$ns" env "$@" >"$log" 2>&1 &
    pids+=("$!")
}

datastore="postgresql://taskshed@$subnet.1:$port/taskshed?connect_timeout=5"
declare -A daemon
for machine in a c; do
    start "ts3m-$$-$machine" "$tmp/$machine/taskshedd.log" PGPASSFILE="$tmp/pgpass" "$bin/taskshedd" \
        --socket "$tmp/$machine/taskshedd.sock" --datastore "$datastore" --daemon-name "machine-$machine"
    daemon[$machine]=${pids[-1]}
done
# The socket appears once the daemon has connected to the database and set up its schema.
for machine in a c; do
    for (( i = 0; i < 200; i++ )); do
        if [ -S "$tmp/$machine/taskshedd.sock" ] || ! alive "${daemon[$machine]}"; then break; fi
        sleep 0.1
    done
    if [ ! -S "$tmp/$machine/taskshedd.sock" ]; then
        tail -n 20 "$tmp/$machine/taskshedd.log" >&2
        die "taskshedd on $machine did not start"
    fi
done
say "a   $subnet.2  taskshedd on $tmp/a/taskshedd.sock, SayHelloScheduler"
say "c   $subnet.3  taskshedd on $tmp/c/taskshedd.sock, SayHelloWorker"

# stdbuf: the worker's print goes to a file, which stdio would otherwise fill 4 KiB at a time before writing.
start "$ns_c" "$tmp/c/worker.log" TASKSHED_SOCKET="$tmp/c/taskshedd.sock" stdbuf -oL "$bin/SayHelloWorker"
start "$ns_a" "$tmp/a/scheduler.log" TASKSHED_SOCKET="$tmp/a/taskshedd.sock" "$bin/SayHelloScheduler"
started=$(date +%s%3N) deadline=$((SECONDS + timeout))
while (( SECONDS < deadline )); do
    if grep -qx 'Hello!' "$tmp/c/worker.log"; then
        ms=$(( $(date +%s%3N) - started ))
        say "c: Hello!   ($((ms / 1000)).$((ms % 1000 / 100)) s after the scheduler started)"
        exit 0
    fi
    for pid in "${pids[@]}"; do alive "$pid" || break 2; done
    sleep 0.2
done
for log in "$tmp/pg/log" "$tmp"/[ac]/*.log; do
    echo "$me: last lines of $log:" >&2
    tail -n 15 "$log" >&2
done
die "no \"Hello!\" from the worker on c within $timeout s (or a process exited)"
