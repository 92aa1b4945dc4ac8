#!/usr/bin/env bash
# Starts and stops a throw-away PostgreSQL server for the test suite: a fresh cluster in a directory of its own,
# reached through a Unix socket in that directory, trust authentication, superuser `taskshed`. scripts/test.sh
# starts one for the whole run; TaskShedTestSupport's PostgresTestServer uses this script for tests run by hand
# and for tests that restart or stop a server of their own.
#
#   pg-test-server.sh start [--tcp] DIR   creates DIR (missing or empty) and the cluster DIR/data, starts the server and
#                                         prints its connection string, also written to DIR/conninfo;
#                                         --tcp also listens on 127.0.0.1 (same port)
#   pg-test-server.sh restart DIR         restarts it (as pg_ctl restart -m fast does; also after a kill) on the
#                                         same port and settings
#   pg-test-server.sh stop DIR            stops it if it runs (-m immediate: nothing in it is kept) and removes DIR
#   pg-test-server.sh start-standby PRIMARY_DIR DIR
#                                         creates DIR as start does, copies the running server of PRIMARY_DIR into
#                                         DIR/data (pg_basebackup -R) and starts it there as a streaming hot standby
#                                         on a port of its own; then makes the primary's commits synchronous: a
#                                         commit is acknowledged only once the standby applied it. Prints the
#                                         standby's connection string (also in DIR/conninfo)
#   pg-test-server.sh promote DIR         promotes the standby in DIR (pg_ctl promote) and waits until it takes writes
#
# A primary has at most one standby. A standby is stopped and restarted as any server (stop, restart). It connects
# to its primary as application_name pg_test_standby, the name the primary's synchronous_standby_names gives; the
# standby's own settings have none, so that once promoted it commits without waiting for a standby of its own. A
# primary whose standby is gone waits at every commit: a test that stops the standby stops its primary too.
#
# The connection string is libpq keyword/value: `host=DIR port=PORT user=taskshed dbname=postgres`; a host that
# is a directory means the Unix socket DIR/.s.PGSQL.PORT. Without --tcp the port only names that socket, but it
# is still chosen free (no TCP listener and no other .s.PGSQL.PORT socket), so a port names one server.
# The server log is DIR/log. fsync stays on so that durability tests mean something; only initdb skips flushing
# the fresh cluster (--no-sync). postgres refuses to run as root: as root, DIR is given to the `postgres` user
# (made by Debian's postgresql package) and initdb, pg_ctl and the server run as that user.
# Exit status: 0 on success, 1 on failure (with the reason, and the server log's tail, on stderr), 2 on bad usage.
set -euo pipefail

me=pg-test-server
marker=.pg-test-server    # in DIR: stop removes only a directory that start made

usage() {
    echo "usage: $0 start [--tcp] DIR | restart DIR | stop DIR | start-standby PRIMARY_DIR DIR | promote DIR" >&2
    exit 2
}

die() {
    echo "$me: $*" >&2
    exit 1
}

# The directory holding initdb and pg_ctl: pg_config's, else the highest /usr/lib/postgresql/VERSION/bin.
find_bindir() {
    local candidate
    if command -v pg_config >/dev/null 2>&1; then
        candidate=$(pg_config --bindir 2>/dev/null || true)
        if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
            echo "$candidate"
            return
        fi
    fi
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
            echo "$candidate"
            return
        fi
    done
    die "no PostgreSQL server binaries (initdb, pg_ctl) found: run scripts/ensure-deps.sh"
}

# shellcheck source=scripts/test-server-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-server-lib.sh"

# Whether a port is taken: a listening TCP socket on any address (state 0A), or a Unix socket named .s.PGSQL.PORT
# in any directory. Read from /proc so that no extra package (iproute2's ss) is needed.
port_in_use() {
    local port=$1 tables=() table
    for table in /proc/net/tcp /proc/net/tcp6; do
        if [ -r "$table" ]; then tables+=("$table"); fi
    done
    if [ "${#tables[@]}" -gt 0 ] && awk -v want="$(printf ':%04X' "$port")" \
        'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == want { found = 1 } END { exit !found }' \
        "${tables[@]}"; then
        return 0
    fi
    awk -v want=".s.PGSQL.$port" \
        'FNR > 1 && NF >= 8 { n = split($NF, part, "/"); if (part[n] == want) found = 1 } END { exit !found }' \
        /proc/net/unix
}

# A free port, scanning up from a random base in 20000-60000 (several suites may start servers at once).
free_port() {
    local base port i
    base=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40001 ))
    for (( i = 0; i < 2000; i++ )); do
        port=$(( 20000 + (base - 20000 + i) % 40001 ))
        if ! port_in_use "$port"; then
            echo "$port"
            return
        fi
    done
    die "no free port found in 2000 tries from $base"
}

# The settings of a test server, in their own file (included from postgresql.conf) so that a retry can rewrite them.
write_settings() {
    local dir=$1 port=$2 listen=$3 shared_buffers=$4
    cat >"$dir/data/pg-test-server.conf" <<EOF
# Written by scripts/pg-test-server.sh: a throw-away server for tests.
listen_addresses = '$listen'
port = $port
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
max_connections = 200
shared_buffers = $shared_buffers
log_min_messages = warning
# Durability tests rely on commits reaching the disk.
fsync = on
EOF
}

log_tail() {
    local file=$1
    if [ -s "$file" ]; then
        echo "$me: last lines of $file:" >&2
        tail -n 40 "$file" >&2
    fi
}

check_path() {
    case "$1" in
        *[!A-Za-z0-9._/+-]*) die "$1: use a path of letters, digits and . _ + - / only" ;;
    esac
}

# Makes $1 the fresh, marked directory of a new server, given to the user who will run it. Sets `dir` (the
# absolute path) and `user` (that user) in the caller.
prepare_dir() {
    dir=$1
    # The path goes unquoted into postgresql.conf's list of socket directories and into the connection string.
    check_path "$dir"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    check_path "$dir"
    # sun_path holds 107 bytes and a NUL; "/.s.PGSQL.65535" takes 15 of them.
    if [ $(( ${#dir} + 15 )) -gt 107 ]; then
        die "$dir: too long for a Unix socket path inside it (at most 92 characters)"
    fi
    # It is given away (chown, chmod) and later removed whole: never take a directory that holds anything.
    if [ -n "$(ls -A "$dir")" ]; then
        die "$dir is not empty: start wants a fresh directory (missing, or empty as from mktemp -d)"
    fi
    touch "$dir/$marker"

    if [ "$(id -u)" -eq 0 ]; then
        user=postgres
        id -u "$user" >/dev/null 2>&1 || die "running as root and there is no postgres user to run the server as"
        chown "$user" "$dir"
    else
        user=$(id -un)
    fi
    # Other users (a test run as someone else) reach the socket through the directory; the socket itself is 0777.
    chmod 0755 "$dir"
    as_user "$user" test -w "$dir" || die "$user cannot write $dir (is a parent directory closed to it?)"
}

# Starts the cluster DIR/data as user $2 on a free port, listening on TCP address $3 too unless it is empty; writes
# its settings first (replacing any the cluster holds) and tries other ports, or less shared memory, when the
# server cannot have them. Prints the connection string and writes it to DIR/conninfo.
start_server() {
    local dir=$1 user=$2 listen=$3
    local bindir data=$dir/data log=$dir/log port shared_buffers=128MB attempt
    bindir=$(find_bindir)
    for attempt in 1 2 3 4 5; do
        port=$(free_port)
        write_settings "$dir" "$port" "$listen" "$shared_buffers"
        rm -f "$log"    # pg_ctl creates it as the server's user
        if as_user "$user" "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start >&2; then
            local conninfo="host=$dir port=$port user=taskshed dbname=postgres"
            echo "$conninfo" >"$dir/conninfo"
            echo "$conninfo"
            return 0
        fi
        # pg_ctl gives up after its timeout with the server possibly still starting: make sure it is gone.
        as_user "$user" "$bindir/pg_ctl" -D "$data" -m immediate -w -s stop >/dev/null 2>&1 || true
        if grep -q -e 'could not bind' -e 'Address already in use' "$log" 2>/dev/null; then
            echo "$me: port $port was taken meanwhile (attempt $attempt), trying another" >&2
        elif [ "$shared_buffers" != 32MB ] && grep -q -i -e 'shared memory' -e 'shared_buffers' "$log" 2>/dev/null; then
            echo "$me: the server could not get shared_buffers=$shared_buffers, trying 32MB" >&2
            shared_buffers=32MB
        else
            break
        fi
    done
    log_tail "$log"
    die "the server in $data did not start"
}

cmd_start() {
    local tcp=0 path="" arg
    for arg in "$@"; do
        case "$arg" in
            --tcp) tcp=1 ;;
            -*) usage ;;
            *) if [ -n "$path" ]; then usage; fi; path=$arg ;;
        esac
    done
    if [ -z "$path" ]; then usage; fi

    local dir user bindir
    prepare_dir "$path"
    bindir=$(find_bindir)
    if ! as_user "$user" "$bindir/initdb" -D "$dir/data" -U taskshed -A trust -E UTF8 --locale=C --no-sync \
        >"$dir/initdb.log" 2>&1; then
        log_tail "$dir/initdb.log"
        die "initdb -D $dir/data failed"
    fi
    echo "include 'pg-test-server.conf'" >>"$dir/data/postgresql.conf"

    local listen=""
    if [ "$tcp" -eq 1 ]; then listen=127.0.0.1; fi
    start_server "$dir" "$user" "$listen"
}

# The user owning an existing cluster (pg_ctl must run as that user).
cluster_owner() {
    stat -c %U "$1"
}

# The pid in DATA/postmaster.pid, or nothing.
postmaster_pid() {
    if [ -f "$1/postmaster.pid" ]; then head -n 1 "$1/postmaster.pid"; fi
}

# Whether process $1 exists and is not a zombie. A postmaster killed with SIGKILL leaves its pid file behind and
# stays a zombie until its parent (init, which may reap only every few seconds) reaps it; pg_ctl, and postgres'
# own lock-file check, take such a zombie for a running server.
process_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }    # after "PID (COMM) ": the state letter
    [ "${stat%% *}" != Z ]
}

cmd_restart() {
    if [ "$#" -ne 1 ]; then usage; fi
    local dir=$1
    local data=$dir/data
    [ -f "$data/PG_VERSION" ] || die "$data: not a cluster made by start"
    local bindir owner pid i
    bindir=$(find_bindir)
    owner=$(cluster_owner "$data")
    # What `pg_ctl restart -m fast` does, but it also restarts a server that was killed: pg_ctl restart fails on a
    # killed postmaster that is still a zombie.
    pid=$(postmaster_pid "$data")
    if [ -n "$pid" ] && process_alive "$pid"; then
        if ! as_user "$owner" "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 -s stop >&2 && process_alive "$pid"; then
            log_tail "$dir/log"
            die "stopping the server in $data for a restart failed"
        fi
    fi
    # A pid file left by a killed postmaster counts as a running server until that process is reaped (waited for
    # here up to 30 s); a clean stop has removed the pid file.
    for (( i = 0; i < 600; i++ )); do
        if [ "$(postmaster_pid "$data")" != "$pid" ] || [ ! -e "/proc/$pid" ]; then break; fi
        sleep 0.05
    done
    # After a kill, backends of the old postmaster may still hold its shared memory for a moment: postgres then
    # refuses to start ("pre-existing shared memory block is still in use") until they are gone.
    for i in 1 2 3 4 5 6 7 8 9 10; do
        if as_user "$owner" "$bindir/pg_ctl" -D "$data" -l "$dir/log" -w -t 60 -s start >&2; then
            return 0
        fi
        if ! tail -n 5 "$dir/log" | grep -q 'still in use'; then break; fi
        sleep 0.5
    done
    log_tail "$dir/log"
    die "restart of the server in $data failed"
}

cmd_stop() {
    if [ "$#" -ne 1 ]; then usage; fi
    local dir=$1
    if [ ! -e "$dir" ]; then return 0; fi
    [ -d "$dir" ] || die "$dir is not a directory"
    [ -e "$dir/$marker" ] || die "$dir was not made by '$0 start' (no $marker in it): not removing it"
    local data=$dir/data pid
    pid=$(postmaster_pid "$data")
    if [ -n "$pid" ] && process_alive "$pid"; then
        local bindir
        bindir=$(find_bindir)
        # A failed stop is a failure only if the server still runs: it may have died meanwhile, pid file left.
        if ! as_user "$(cluster_owner "$data")" "$bindir/pg_ctl" -D "$data" -m immediate -w -t 60 -s stop \
            >/dev/null 2>&1 && process_alive "$pid"; then
            log_tail "$dir/log"
            die "stopping the server in $data failed; $dir is left in place"
        fi
    fi
    rm -rf "$dir"
}

# The name a standby connects to its primary with, and the one the primary's synchronous_standby_names waits for.
standby_name=pg_test_standby

# Runs one SQL command on the server of connection string $1 and prints its bare rows (psql -A -t).
sql_at() {
    "$(find_bindir)/psql" -X -A -t -q -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# Waits up to 30 s until SQL $2 run on $1 prints $3.
wait_for_sql() {
    local i
    for (( i = 0; i < 300; i++ )); do
        if [ "$(sql_at "$1" "$2" 2>/dev/null || true)" = "$3" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}

cmd_start_standby() {
    if [ "$#" -ne 2 ]; then usage; fi
    local primary=$1 path=$2
    [ -f "$primary/data/PG_VERSION" ] && [ -f "$primary/conninfo" ] || die "$primary: not a server made by start"
    primary=$(cd "$primary" && pwd -P)
    local primary_conninfo
    primary_conninfo=$(cat "$primary/conninfo")

    local dir user bindir
    prepare_dir "$path"
    bindir=$(find_bindir)
    # -R writes standby.signal and primary_conninfo (with this application_name) into the copy; -X stream brings
    # the WAL written during the copy. The copy's own settings are the primary's: start_server replaces them.
    # --no-sync as initdb's: only a crash of the machine during a test could make the flush matter.
    if ! as_user "$user" "$bindir/pg_basebackup" -D "$dir/data" -R -X stream -c fast --no-sync \
        -d "$primary_conninfo application_name=$standby_name" >"$dir/basebackup.log" 2>&1; then
        log_tail "$dir/basebackup.log"
        die "pg_basebackup from $primary failed"
    fi
    local conninfo
    conninfo=$(start_server "$dir" "$user" "")

    local streaming="SELECT sync_state FROM pg_stat_replication
                     WHERE application_name = '$standby_name' AND state = 'streaming'"
    if ! wait_for_sql "$primary_conninfo" "$streaming" async; then
        log_tail "$dir/log"
        die "the standby in $dir/data did not start streaming from $primary within 30 s"
    fi
    # Only now, with the standby streaming: from here every commit on the primary waits for it. The standby's
    # settings were written anew, so they do not hold this line.
    local settings=$primary/data/pg-test-server.conf
    if ! grep -q '^synchronous_standby_names' "$settings"; then
        {
            echo "# Written by pg-test-server.sh start-standby: a commit is acknowledged once the standby applied it"
            echo "# (remote_apply: flushed is not enough for a test that reads it there at once)."
            echo "synchronous_standby_names = '$standby_name'"
            echo "synchronous_commit = remote_apply"
        } >>"$settings"
    fi
    as_user "$(cluster_owner "$primary/data")" "$bindir/pg_ctl" -D "$primary/data" -s reload >&2 \
        || die "reloading the settings of $primary/data failed"
    if ! wait_for_sql "$primary_conninfo" "$streaming" sync; then
        log_tail "$primary/log"
        die "the standby in $dir/data did not become synchronous within 30 s"
    fi
    echo "$conninfo"
}

cmd_promote() {
    if [ "$#" -ne 1 ]; then usage; fi
    local dir=$1
    local data=$dir/data
    [ -f "$data/standby.signal" ] || die "$data: not a standby (no standby.signal)"
    local bindir
    bindir=$(find_bindir)
    if ! as_user "$(cluster_owner "$data")" "$bindir/pg_ctl" -D "$data" -w -t 60 -s promote >&2; then
        log_tail "$dir/log"
        die "promoting the standby in $data failed"
    fi
    # pg_ctl has seen the control file leave recovery; wait until sessions see it too.
    if ! wait_for_sql "$(cat "$dir/conninfo")" "SELECT pg_is_in_recovery()" f; then
        log_tail "$dir/log"
        die "the server in $data still is in recovery 30 s after its promotion"
    fi
}

if [ "$#" -lt 1 ]; then usage; fi
command=$1
shift
case "$command" in
    start) cmd_start "$@" ;;
    restart) cmd_restart "$@" ;;
    stop) cmd_stop "$@" ;;
    start-standby) cmd_start_standby "$@" ;;
    promote) cmd_promote "$@" ;;
    *) usage ;;
esac
