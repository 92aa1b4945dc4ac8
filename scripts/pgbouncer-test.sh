#!/usr/bin/env bash
# Starts and stops a throw-away PgBouncer in transaction pooling mode in front of a test PostgreSQL server
# (scripts/pg-test-server.sh), for the tests of taskshedd behind a connection pooler (--datastore-pooler).
#
#   pgbouncer-test.sh start DIR SERVER_SOCKET_DIR SERVER_PORT   creates DIR (missing or empty), starts PgBouncer
#                                                            listening only on the Unix socket DIR/.s.PGSQL.6432,
#                                                            prints its connection string (database postgres,
#                                                            user taskshed, trust authentication)
#   pgbouncer-test.sh stop DIR                              stops it if it runs and removes DIR
#
# As root, PgBouncer runs as the postgres user (it refuses to run as root). The log is DIR/log.
# Exit status: 0 on success, 1 on failure (with the log's tail on stderr), 2 on bad usage.
set -euo pipefail

me=pgbouncer-test
marker=.pgbouncer-test

die() {
    echo "$me: $*" >&2
    exit 1
}

# shellcheck source=scripts/test-server-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-server-lib.sh"

cmd_start() {
    local dir=$1 server_dir=$2 server_port=$3 user bin
    bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    [ -x "$bin" ] || die "pgbouncer is not installed: run scripts/ensure-deps.sh"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    if [ -n "$(ls -A "$dir")" ]; then die "$dir is not empty"; fi
    touch "$dir/$marker"
    cat >"$dir/pgbouncer.ini" <<INI
; Written by scripts/pgbouncer-test.sh: a throw-away pooler for tests.
[databases]
postgres = host=$server_dir port=$server_port user=taskshed dbname=postgres
[pgbouncer]
listen_addr =
unix_socket_dir = $dir
listen_port = 6432
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 4
logfile = $dir/log
pidfile = $dir/pid
INI
    echo '"taskshed" ""' >"$dir/users.txt"
    if [ "$(id -u)" -eq 0 ]; then
        user=postgres
        chown -R "$user" "$dir"
    else
        user=$(id -un)
    fi
    chmod 0755 "$dir"
    if ! as_user "$user" "$bin" -d "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1; then
        cat "$dir/start.log" >&2
        die "pgbouncer did not start"
    fi
    local i
    for (( i = 0; i < 100; i++ )); do
        if [ -S "$dir/.s.PGSQL.6432" ]; then
            echo "host=$dir port=6432 user=taskshed dbname=postgres"
            return 0
        fi
        sleep 0.05
    done
    tail -n 20 "$dir/log" >&2 || true
    die "pgbouncer's socket $dir/.s.PGSQL.6432 did not appear"
}

cmd_stop() {
    local dir=$1 pid i
    [ -e "$dir/$marker" ] || die "$dir was not made by $me start"
    if [ -s "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill -INT "$pid" 2>/dev/null || true
        for (( i = 0; i < 100; i++ )); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) [ $# -eq 4 ] || { echo "usage: $0 start DIR SERVER_SOCKET_DIR SERVER_PORT" >&2; exit 2; }; cmd_start "$2" "$3" "$4" ;;
    stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; cmd_stop "$2" ;;
    *) echo "usage: $0 start DIR SERVER_SOCKET_DIR SERVER_PORT | stop DIR" >&2; exit 2 ;;
esac
