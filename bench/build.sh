#!/usr/bin/env bash
# (globals are shared with bench/lib.sh)
# shellcheck disable=SC2034,SC2154
# CREATE INDEX with 0, 1 and 2 parallel workers (issue 18): vecstore at its
# defaults, and pgvector HNSW at its defaults with the same workers, on
# one synthetic table.  Wall time (median of the repeats), the CPU the
# server's processes used, the speed-up over no workers, and whether
# vecstore's parallel builds wrote the same bytes as its serial one.  One
# throwaway server.  It prints figures and asserts nothing.  It uses the
# vecstore that is installed (it builds and installs nothing but
# tools/fvecs2pg when that is missing); run "make install" first.
#
#   ./bench/build.sh                    300,000 x 128, 3 vecstore builds
#                                       per setting, 1 pgvector build per
#                                       setting (about 20 min on a 2-core
#                                       VM, 13 of them pgvector's)
#   BENCH_PGVECTOR=0 ./bench/build.sh   vecstore alone (about 6 min)
#   BENCH_ROWS=1000000 BENCH_PGVECTOR=0 ./bench/build.sh
#
# Knobs (environment):
#   BENCH_ROWS        rows (default 300000): tools/fvecs2pg --random ROWS DIM 7
#                     (16 gaussian blobs)
#   BENCH_DIM         dimensions (default 128)
#   BENCH_REPEAT      vecstore builds per setting (default 3), interleaved
#                     (0, 1, 2 workers, 0, 1, 2, ...) so that the machine's
#                     drift falls on every setting alike
#   BENCH_PG_REPEAT   pgvector builds per setting (default 1)
#   BENCH_WORKERS     the settings (default "0 1 2")
#   BENCH_MWM         maintenance_work_mem (default 512MB: room for
#                     pgvector's graph and PostgreSQL's 32 MB per participant)
#   BENCH_PGVECTOR    0 leaves pgvector out even when it is installed
#   VECSTORE_PGPORT   the throwaway server's port (default 54398; its
#                     directory is tmp_check/bench-build)
#
# Method.  Each build: DROP INDEX, CHECKPOINT, then CREATE INDEX with
# max_parallel_maintenance_workers = W and the table's parallel_workers = W
# (so that PostgreSQL's rule of thumb for the table's size does not choose
# fewer), wall time in the client.  CPU: the user + system time of every
# process of the server (/proc/PID/stat of the postmaster's children, the
# parallel workers included, before and after; exited workers counted
# through the postmaster's cutime/cstime).  vecstore's bytes: md5 of the
# fork (every page, LSN and checksum zeroed, as tools/index-digest.sh) and
# of the segment file's body, compared with the first serial build.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rows=${BENCH_ROWS:-300000}
dim=${BENCH_DIM:-128}
repeat=${BENCH_REPEAT:-3}
pg_repeat=${BENCH_PG_REPEAT:-1}
workers_list=${BENCH_WORKERS:-0 1 2}
mwm=${BENCH_MWM:-512MB}
want_pgvector=${BENCH_PGVECTOR:-1}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54398}
vsdb=bench_vecstore
pvdb=bench_pgvector
datasets=

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

bench_server bench-build
work=$(mktemp -d /tmp/vecstore-build.XXXXXX)
VS_TMPDIRS+=("$work")
progress() { echo "build.sh: $(date +%H:%M:%S) $*" >&2; }

bench_databases
for db in $vsdb $( [ "$have_pgvector" = 1 ] && echo $pvdb); do
    sqld "$db" -c "CREATE TABLE items (id int PRIMARY KEY, embedding vector($dim))"
done
progress "loading $rows x $dim"
./tools/fvecs2pg --random "$rows" "$dim" 7 | sqld "$vsdb" -c '\copy items from pstdin'
sqld "$vsdb" -c 'VACUUM ANALYZE items'
if [ "$have_pgvector" = 1 ]; then
    sqld "$vsdb" -c '\copy items to pstdout (format binary)' |
        sqld "$pvdb" -c '\copy items from pstdin (format binary)'
    sqld "$pvdb" -c 'VACUUM ANALYZE items'
    sqld "$pvdb" -c 'CREATE EXTENSION IF NOT EXISTS pageinspect' >/dev/null 2>&1 || true
fi
sqld "$vsdb" -c 'CREATE EXTENSION pageinspect'

pm_pid=$(head -n 1 "$VS_PGDATA/postmaster.pid")
# server_cpu - user + system seconds of the postmaster, its live children
# and the children it has reaped
server_cpu() {
    local total=0 pid f
    for pid in $pm_pid $(pgrep -P "$pm_pid" || true); do
        f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        f=${f##*) }
        # fields after the name: 12 utime, 13 stime, 14 cutime, 15 cstime
        total=$(awk -v t="$total" -v s="$f" 'BEGIN { split(s, a, " "); print t + a[12] + a[13] + a[14] + a[15] }')
    done
    awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}

# digest - md5 of vecstore's fork pages (LSN and checksum zeroed) and of its
# segment body
digest() {
    local path bytes
    IFS='|' read -r path bytes <<<"$(sqld "$vsdb" -tAc \
        "SELECT segment_file, segment_bytes FROM vecstore_index_info('items_emb')")"
    sqld "$vsdb" -tAc "SELECT md5(string_agg('\\x00000000000000000000'::bytea
                                             || substr(get_raw_page('items_emb', b::int), 11),
                                             ''::bytea ORDER BY b))
                        || ' ' || md5(pg_read_binary_file('$path', 4096, $bytes - 4096))
                       FROM generate_series(0, pg_relation_size('items_emb') / 8192 - 1) b"
}

# build DB AM W - one build; prints "wall cpu workers_launched"
build() {
    local db=$1 am=$2 w=$3 t0 c0 wall cpu opc=vector_l2_ops launched
    sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS items_emb' \
        -c "ALTER TABLE items SET (parallel_workers = $w)" -c CHECKPOINT
    c0=$(server_cpu)
    t0=$(now)
    sqld "$db" -c "SET max_parallel_maintenance_workers = $w" \
        -c "SET maintenance_work_mem = '$mwm'" -c 'SET client_min_messages = debug1' \
        -c "CREATE INDEX items_emb ON items USING $am (embedding $opc)" 2>"$work/build.err"
    wall=$(since "$t0")
    cpu=$(awk -v a="$c0" -v b="$(server_cpu)" 'BEGIN { printf "%.1f", b - a }')
    launched=$(sed -n 's/.*shared with \([0-9]*\) parallel workers.*/\1/p;
                       s/.*using \([0-9]*\) parallel workers.*/\1/p' "$work/build.err" | head -n 1)
    echo "$wall $cpu ${launched:-0}"
}

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "## CREATE INDEX with parallel workers: vecstore and pgvector HNSW at their defaults"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version'), shared_buffers $(sqld postgres -tAc 'SHOW shared_buffers'), maintenance_work_mem $mwm, parallel_leader_participation $(sqld postgres -tAc 'SHOW parallel_leader_participation')"
echo "- data: tools/fvecs2pg --random $rows $dim 7; vecstore with no WITH clause; pgvector hnsw with no WITH clause (m 16, ef_construction 64)"
echo "- each build after a CHECKPOINT, max_parallel_maintenance_workers = W and ALTER TABLE items SET (parallel_workers = W); vecstore $repeat builds per W (interleaved), pgvector $pg_repeat; wall: median; cpu: the server's processes, median"
echo

declare -A walls cpus launched_of
serial_digest=
same=yes
for ((r = 1; r <= repeat; r++)); do
    for w in $workers_list; do
        progress "vecstore, $w workers, build $r of $repeat"
        read -r wall cpu launched <<<"$(build "$vsdb" vecstore "$w")"
        walls[vs$w]+="$wall "
        cpus[vs$w]+="$cpu "
        launched_of[vs$w]=$launched
        d=$(digest)
        if [ -z "$serial_digest" ] && [ "$w" = 0 ]; then
            serial_digest=$d
        elif [ -n "$serial_digest" ] && [ "$d" != "$serial_digest" ]; then
            same="NO (build $r with $w workers)"
        fi
    done
done
if [ "$have_pgvector" = 1 ]; then
    for ((r = 1; r <= pg_repeat; r++)); do
        for w in $workers_list; do
            progress "pgvector hnsw, $w workers, build $r of $pg_repeat"
            read -r wall cpu launched <<<"$(build "$pvdb" hnsw "$w")"
            walls[pv$w]+="$wall "
            cpus[pv$w]+="$cpu "
            launched_of[pv$w]=$launched
        done
    done
fi

echo "| engine | workers asked | workers launched | wall s (median) | all walls | server CPU s | speed-up over 0 workers |"
echo "|---|---:|---:|---:|---|---:|---:|"
for e in vs pv; do
    [ "$e" = pv ] && [ "$have_pgvector" != 1 ] && continue
    base=
    for w in $workers_list; do
        # shellcheck disable=SC2086
        m=$(median ${walls[$e$w]})
        # shellcheck disable=SC2086
        c=$(median ${cpus[$e$w]})
        [ "$w" = 0 ] && base=$m
        up=-
        [ -n "$base" ] && up=$(awk -v a="$base" -v b="$m" 'BEGIN { printf "%.2fx", a / b }')
        name=vecstore
        [ "$e" = pv ] && name="pgvector hnsw"
        echo "| $name | $w | ${launched_of[$e$w]} | $m | ${walls[$e$w]% } | $c | $up |"
    done
done
echo
echo "vecstore's parallel builds wrote the same bytes as the serial one (fork and segment): $same"
