#!/usr/bin/env bash
# Install what building, testing and the demo need (Debian 12), idempotently.
#
#   ./tools/deps.sh            as root: apt-get install whatever is missing
#                              as a user: say what is missing and exit 1
#
# When everything is present it touches nothing (no apt-get update) and
# prints one line.  On a system without dpkg it only checks the commands
# and Perl modules the scripts use.
set -euo pipefail

# Debian packages, and what in them the scripts use.
packages=(
    build-essential             # gcc, make
    postgresql-15               # server: initdb, pg_ctl, postgres, pgbench
    postgresql-client-15        # psql, pg_regress, pg_isolation_regress, TAP modules
    postgresql-server-dev-15    # pg_config, PGXS, server headers
    perl                        # prove, Test::More
    libipc-run-perl             # IPC::Run, needed by PostgreSQL::Test::Cluster
    util-linux                  # runuser
    passwd                      # useradd
    liburing-dev                # io_uring, linked statically: the rerank's batched reads
)

pg_bindir=/usr/lib/postgresql/15/bin

# Commands that must work whatever the package manager.
check_commands() {
    local missing=() c
    for c in gcc make perl prove; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    if [ "$(id -u)" -eq 0 ]; then
        for c in runuser useradd; do
            command -v "$c" >/dev/null 2>&1 || missing+=("$c")
        done
    fi
    local pgc=pg_config
    if [ -n "${PG_CONFIG:-}" ]; then
        pgc=$PG_CONFIG
    elif [ -x "$pg_bindir/pg_config" ]; then
        pgc=$pg_bindir/pg_config
    fi
    if ! command -v "$pgc" >/dev/null 2>&1; then
        missing+=("pg_config")
    elif ! "$pgc" --version | grep -q '^PostgreSQL 15\.'; then
        missing+=("PostgreSQL 15 (pg_config says: $("$pgc" --version))")
    fi
    perl -MIPC::Run -e 1 >/dev/null 2>&1 || missing+=("perl IPC::Run")
    printf '%s\n' "${missing[@]+"${missing[@]}"}"
}

# die_listing HEADER LINES - print HEADER and the LINES as a list, exit 1.
die_listing() {
    echo "deps: $1" >&2
    printf '%s\n' "$2" | sed 's/^/  - /' >&2
    exit 1
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    broken=$(check_commands)
    [ -z "$broken" ] || die_listing "missing (not a Debian system, install them yourself):" "$broken"
    echo "deps: all present"
    exit 0
fi

missing_pkgs=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing_pkgs+=("$p")
    fi
done

if [ ${#missing_pkgs[@]} -eq 0 ]; then
    # The packages are there; say so if something in them does not work.
    broken=$(check_commands)
    [ -z "$broken" ] || die_listing "packages installed but these do not work:" "$broken"
    echo "deps: all present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing_pkgs[*]}" >&2
    echo "deps: as root, run: apt-get update && apt-get install -y ${missing_pkgs[*]}" >&2
    echo "deps: (or run this script as root: sudo $0)" >&2
    exit 1
fi

echo "deps: installing ${missing_pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
install=(apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}")
# Package lists that are absent (fresh images) or stale (404s) need an update.
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || ! "${install[@]}"; then
    apt-get update -q
    "${install[@]}"
fi

broken=$(check_commands)
[ -z "$broken" ] || die_listing "still missing after apt-get install:" "$broken"
echo "deps: installed ${missing_pkgs[*]}"
