# Shell functions the test-server scripts share (scripts/pg-test-server.sh, scripts/pgbouncer-test.sh); sourced.

# Runs "$@" as user $1 when root (postgres and pgbouncer will not run as root), else as the caller. From /: that
# user may not be allowed into the caller's working directory.
as_user() {
    local user=$1
    shift
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$user" -- "$@")
    else
        (cd / && "$@")
    fi
}
