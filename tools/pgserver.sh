# shellcheck shell=bash
# pgserver.sh - throwaway PostgreSQL 15 servers for the demo and the tests.
#
# A library: source it, do not run it.
#
#   . "$repo/tools/pgserver.sh"
#   vs_init "$repo"            # PG_CONFIG, PostgreSQL paths, the OS user
#   vs_server_start demo       # initdb + start; exports PGHOST PGPORT PGUSER PGDATABASE
#   psql -X -c 'select 1'      # clients run as the calling user (root in CI)
#   vs_as_user CMD ...         # run CMD as the unprivileged server user
#   vs_server_stop             # also done by the EXIT trap that vs_init sets
#
# The server runs as an unprivileged OS user, because PostgreSQL refuses to
# run as root: "postgres" if it exists, else a "vecstore" user created with
# useradd (or $VECSTORE_USER).  Not running as root, the current user is it.
#
# The cluster lives in tmp_check/NAME in the repository (removed by
# "make clean"), owned by that user, and is kept after exit for its log.
# When that user cannot reach or write it (a checkout under /root, mode
# 700), or the socket path would be too long, it lives in a
# mktemp -d /tmp/vecstore.XXXXXX directory instead, removed at exit.
#
# The server: UTF8, C locale, trust authentication, no TCP (a Unix socket
# in the cluster directory, port $VECSTORE_PGPORT or 54329),
# shared_buffers 256MB, fsync on, and shared_preload_libraries = 'vecstore'
# when vecstore.so is installed (set VS_PRELOAD=0 to leave it out).
#
# vs_init sets an EXIT trap that stops the server and removes the /tmp
# directories; a caller that needs more clean-up defines vs_on_exit, which
# the trap calls first.  The trap keeps the script's exit status.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "tools/pgserver.sh is a library for the other scripts: source it" >&2
    exit 1
fi

VS_TMPDIRS=()
VS_PGDATA=
VS_DIR=
VS_DIR_IS_TMP=0

# vs_say MSG... - a one-line note on stderr.
vs_say() {
    echo "pgserver: $*" >&2
}

# vs_init REPO - find PostgreSQL 15 and choose the OS user for the server.
#
# Sets and exports PG_CONFIG (so make uses the same installation), sets
# VS_REPO, VS_PG_BINDIR, VS_PG_PKGLIBDIR, VS_USER, VS_IS_ROOT, and installs
# the EXIT/INT/TERM/HUP traps that run vs_cleanup.
vs_init() {
    trap vs_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    VS_REPO=$(cd "$1" && pwd)
    if [ -z "${PG_CONFIG:-}" ]; then
        # Debian's /usr/bin/pg_config picks the newest server-dev package
        # installed; name 15 explicitly when it is there.
        if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
            PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
        else
            PG_CONFIG=pg_config
        fi
    fi
    export PG_CONFIG
    if ! command -v "$PG_CONFIG" >/dev/null 2>&1; then
        vs_say "pg_config not found: run ./tools/deps.sh, or set PG_CONFIG"
        return 1
    fi
    VS_PG_BINDIR=$("$PG_CONFIG" --bindir)
    VS_PG_PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)

    if [ "$(id -u)" -eq 0 ]; then
        VS_IS_ROOT=1
        if [ -n "${VECSTORE_USER:-}" ]; then
            VS_USER=$VECSTORE_USER
        elif getent passwd postgres >/dev/null; then
            VS_USER=postgres
        else
            VS_USER=vecstore
        fi
        if ! getent passwd "$VS_USER" >/dev/null; then
            vs_say "creating OS user $VS_USER"
            useradd --system --user-group --create-home \
                --home-dir "/var/lib/$VS_USER" --shell /bin/bash "$VS_USER"
        fi
    else
        VS_IS_ROOT=0
        VS_USER=$(id -un)
    fi
}

# vs_as_user CMD... - run CMD as VS_USER, with PostgreSQL's bindir first on
# PATH.  The environment (PG* included) is passed on; runuser sets HOME,
# USER and LOGNAME.  CMD runs in the current directory, which the user may
# be unable to read: callers cd somewhere the user can when that matters.
vs_as_user() {
    if [ "$VS_IS_ROOT" = 1 ]; then
        runuser -u "$VS_USER" -- env PATH="$VS_PG_BINDIR:$PATH" "$@"
    else
        env PATH="$VS_PG_BINDIR:$PATH" "$@"
    fi
}

# vs_make_install - "make install" into this PostgreSQL.
# Root installs directly; a user installs directly where the directories
# are writable, else through "sudo -n", else accepts an installed copy
# identical to the build, else says what to do and fails.
vs_make_install() {
    local ext f same=1
    ext=$("$PG_CONFIG" --sharedir)/extension
    if [ "$VS_IS_ROOT" = 1 ] || { [ -w "$VS_PG_PKGLIBDIR" ] && [ -w "$ext" ]; }; then
        make -C "$VS_REPO" install
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n make -C "$VS_REPO" install PG_CONFIG="$PG_CONFIG"
    else
        cmp -s "$VS_REPO/vecstore.so" "$VS_PG_PKGLIBDIR/vecstore.so" || same=0
        for f in "$VS_REPO"/vecstore.control "$VS_REPO"/sql/vecstore--*.sql; do
            cmp -s "$f" "$ext/$(basename "$f")" || same=0
        done
        if [ "$same" = 1 ]; then
            vs_say "cannot install as $(id -un), but the installed vecstore is identical to this build"
            return 0
        fi
        vs_say "make install needs to write $VS_PG_PKGLIBDIR and $ext:" \
            "run this as root, or 'sudo make install' first"
        return 1
    fi
}

# vs_pg_ctl_as OWNER DATADIR ARGS... - pg_ctl -D DATADIR ARGS as OWNER (when
# root; else as ourselves), from /, quietly.
vs_pg_ctl_as() {
    local owner=$1 data=$2
    shift 2
    if [ "$VS_IS_ROOT" = 1 ]; then
        (cd / && runuser -u "$owner" -- "$VS_PG_BINDIR/pg_ctl" -D "$data" "$@") >/dev/null 2>&1
    else
        (cd / && "$VS_PG_BINDIR/pg_ctl" -D "$data" "$@") >/dev/null 2>&1
    fi
}

# vs_stop_cluster DATADIR [MODE] - stop the postmaster of DATADIR, if one
# runs, as the owner of DATADIR: MODE (default fast), then immediate.
# Returns non-zero only if it keeps running.
vs_stop_cluster() {
    local data=$1 mode=${2:-fast} owner
    [ -f "$data/postmaster.pid" ] || return 0
    owner=$(stat -c %U "$data")
    vs_pg_ctl_as "$owner" "$data" -w -t 60 stop -m "$mode" && return 0
    # pg_ctl stop also fails on a stale pid file with no server behind it.
    vs_pg_ctl_as "$owner" "$data" status || return 0
    vs_pg_ctl_as "$owner" "$data" -w -t 60 stop -m immediate
}

# vs_reap_stale - stop servers left running in tmp_check/*/data by runs
# that were killed before their EXIT trap ran (before "make clean"
# removes the directories under them).
vs_reap_stale() {
    local d
    for d in "$VS_REPO"/tmp_check/*/data; do
        if [ -f "$d/postmaster.pid" ]; then
            vs_say "stopping a server left running in $d"
            vs_stop_cluster "$d" immediate || vs_say "could not stop it"
        fi
    done
}

# vs_user_dir NAME - make an empty directory that VS_USER owns and can
# reach: tmp_check/NAME in the repository if possible, else a mktemp -d
# under /tmp (recorded for removal at exit).  Sets REPLY to its path and
# VS_LAST_DIR_IS_TMP to 1 for the /tmp case.
vs_user_dir() {
    local name=$1 d
    d=$VS_REPO/tmp_check/$name
    VS_LAST_DIR_IS_TMP=0
    if [ -d "$d" ]; then
        [ -d "$d/data" ] && { vs_stop_cluster "$d/data" immediate || true; }
        rm -rf "$d"
    fi
    # 107 bytes is the limit for a Unix socket path; "/.s.PGSQL.NNNNN" is 15.
    if [ ${#d} -le 90 ] && mkdir -p "$d" 2>/dev/null; then
        if [ "$VS_IS_ROOT" = 1 ]; then
            chown "$VS_USER:" "$d"
        fi
        if vs_as_user test -x "$d" -a -w "$d" -a -r "$d"; then
            REPLY=$d
            return 0
        fi
        rm -rf "$d"
    fi
    vs_tmpdir
    d=$REPLY
    if [ "$VS_IS_ROOT" = 1 ]; then
        chown "$VS_USER:" "$d"
    fi
    REPLY=$d
    VS_LAST_DIR_IS_TMP=1
}

# vs_tmpdir - a private mktemp -d directory, removed at exit; sets REPLY.
vs_tmpdir() {
    REPLY=$(mktemp -d /tmp/vecstore.XXXXXX)
    VS_TMPDIRS+=("$REPLY")
}

# vs_server_start NAME - initdb and start a throwaway server; see the top
# of this file.  On failure prints the log and returns non-zero.
vs_server_start() {
    local name=$1 port=${VECSTORE_PGPORT:-54329} preload=

    vs_user_dir "$name"
    VS_DIR=$REPLY
    VS_DIR_IS_TMP=$VS_LAST_DIR_IS_TMP
    VS_PGDATA=$VS_DIR/data
    VS_PGLOG=$VS_DIR/server.log

    if ! (cd "$VS_DIR" && vs_as_user initdb -D "$VS_PGDATA" -U "$VS_USER" \
        -E UTF8 --no-locale -A trust --no-sync >"$VS_DIR/initdb.log" 2>&1); then
        cat "$VS_DIR/initdb.log" >&2
        vs_say "initdb failed"
        VS_PGDATA=
        return 1
    fi

    if [ "${VS_PRELOAD:-1}" = 1 ]; then
        if [ -f "$VS_PG_PKGLIBDIR/vecstore.so" ]; then
            preload="shared_preload_libraries = 'vecstore'"
        else
            vs_say "$VS_PG_PKGLIBDIR/vecstore.so is not installed: starting without shared_preload_libraries"
        fi
    fi
    cat >>"$VS_PGDATA/postgresql.conf" <<EOF

# Added by tools/pgserver.sh for a throwaway server.
listen_addresses = ''
unix_socket_directories = '$VS_DIR'
port = $port
shared_buffers = 256MB
max_connections = 40
fsync = on
lc_messages = 'C'
log_min_messages = warning
# tests and benchmarks say when compactions run (VACUUM, vecstore_compact)
vecstore.compaction_worker = off
log_line_prefix = '%m [%p] %q%a '
$preload
EOF

    if ! (cd "$VS_DIR" && vs_as_user pg_ctl -D "$VS_PGDATA" -l "$VS_PGLOG" \
        -w -t 120 start >/dev/null 2>&1); then
        tail -n 30 "$VS_PGLOG" >&2 || true
        vs_say "the server did not start (log: $VS_PGLOG)"
        return 1
    fi

    unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGOPTIONS PGTARGETSESSIONATTRS
    export PGHOST=$VS_DIR PGPORT=$port PGUSER=$VS_USER PGDATABASE=postgres
}

# vs_server_stop - stop the server started by vs_server_start (fast, then
# immediate).  Safe to call twice.
vs_server_stop() {
    [ -n "$VS_PGDATA" ] || return 0
    if ! vs_stop_cluster "$VS_PGDATA" fast; then
        vs_say "could not stop the server in $VS_PGDATA"
        return 1
    fi
}

# vs_server_log_tail [N] - the last N (default 30) lines of the server log.
vs_server_log_tail() {
    [ -n "${VS_PGLOG:-}" ] && [ -f "$VS_PGLOG" ] || return 0
    echo "--- last ${1:-30} lines of $VS_PGLOG ---" >&2
    tail -n "${1:-30}" "$VS_PGLOG" >&2 || true
}

# vs_cleanup - the EXIT trap: the caller's vs_on_exit, stop the server,
# remove /tmp directories (showing the log first if the script failed).
vs_cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if declare -F vs_on_exit >/dev/null; then
        vs_on_exit "$rc"
    fi
    vs_server_stop
    if [ ${#VS_TMPDIRS[@]} -gt 0 ]; then
        if [ "$rc" -ne 0 ] && [ "$VS_DIR_IS_TMP" = 1 ]; then
            vs_server_log_tail 30
        fi
        rm -rf "${VS_TMPDIRS[@]}"
    fi
    exit "$rc"
}
