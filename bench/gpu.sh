#!/usr/bin/env bash
# bench/gpu.sh - the GPU service's figures, side by side in one run:
# CREATE INDEX with vecstore.gpu = off and on, and query throughput and
# latency with vecstore.gpu off, auto and on at several client counts.
#
#   make install && ./bench/gpu.sh            (on a machine with a GPU)
#   VECSTORE_GPU_EMULATE=1 ./bench/gpu.sh     (anywhere: the helper's CPU
#                                              emulation, to test the script)
#
# Needs vecstore installed, psql, pgbench and tools/fvecs2pg (built here if
# make can); no Perl.  Prints Markdown for bench/RESULTS.md.
#
# Sets: a synthetic clustered BENCH_GPU_ROWS x 128 set (tools/fvecs2pg
# --random, default 1,000,000 rows) and every set under ../shared/data
# that BENCH_DATASETS selects (empty: all; "none": only the synthetic one).
# Per set:
#   - builds: BENCH_GPU_RUNS (default 1) rounds of builds with
#     vecstore.gpu = off, on, and on with the table's parallel_workers set
#     to the machine's cores - 1 (the GPU service assembles graphs on as
#     many threads as PostgreSQL would give a parallel B-tree build, plus
#     one: plan_create_index_workers; the CPU build uses one core either
#     way); total seconds and, from the build's DEBUG1 lines, the k-means,
#     assignment, cluster-writing and graph milliseconds, the graphs the
#     GPU service built and on how many threads, and the inertia;
#   - throughput: pgbench, each client running kNN queries (LIMIT 10, a
#     random one of the set's queries each time) for BENCH_GPU_SECONDS
#     (default 15) at each of BENCH_GPU_CLIENTS (default "1 8 32") clients,
#     with vecstore.gpu off, auto (scans go to the GPU only when
#     vecstore.gpu_min_scans are open: by default the server's CPUs) and on
#     (every scan goes); TPS and mean latency.  One client's
#     latency is the single-query latency.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
rows_syn=${BENCH_GPU_ROWS:-1000000}
datasets=${BENCH_DATASETS:-}
runs=${BENCH_GPU_RUNS:-1}
seconds=${BENCH_GPU_SECONDS:-15}
clients_spec=${BENCH_GPU_CLIENTS:-1 8 32}
mwm=${BENCH_GPU_MWM:-2GB}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54393}

# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"
if [ ! -f "$VS_PG_PKGLIBDIR/vecstore.so" ]; then
    echo "gpu.sh: vecstore is not installed in $VS_PG_PKGLIBDIR: run make install first" >&2
    exit 1
fi
if [ ! -x tools/fvecs2pg ] || [ tools/fvecs2pg.c -nt tools/fvecs2pg ]; then
    make -s tools/fvecs2pg
fi
vs_server_start bench-gpu >/dev/null
work=$(mktemp -d /tmp/vecstore-gpu.XXXXXX)
VS_TMPDIRS+=("$work")
chmod 755 "$work"

sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
status() { sql -c "SELECT $1 FROM vecstore_gpu_status()"; }

sql -c "ALTER SYSTEM SET max_connections = 100" >/dev/null
[ "${VECSTORE_GPU_EMULATE:-0}" = 1 ] && sql -c "ALTER SYSTEM SET vecstore.gpu_emulate = on" >/dev/null
vs_as_user pg_ctl -D "$VS_PGDATA" -l "$VS_PGLOG" -w restart >/dev/null
sql -c 'CREATE EXTENSION vecstore'
for _ in $(seq 1 120); do
    case $(status state) in starting | restarting | disabled) sleep 0.5 ;; *) break ;; esac
done

echo "## GPU service (bench/gpu.sh)"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
    "GPU service: $(status "state || coalesce(' on ' || device, '') || coalesce(' (' || last_error || ')', '')")."
echo "Command: BENCH_GPU_ROWS=$rows_syn BENCH_DATASETS=${datasets:-all} BENCH_GPU_RUNS=$runs" \
    "BENCH_GPU_SECONDS=$seconds BENCH_GPU_CLIENTS=\"$clients_spec\" ./bench/gpu.sh"
echo
gpu_ok=$([ "$(status state)" = running ] && echo 1 || echo 0)

# build MODE [WORKERS] - CREATE INDEX items_v with vecstore.gpu = MODE and,
# when given, the table's parallel_workers = WORKERS (and as many
# max_parallel_maintenance_workers); sets b_s, km_ms, as_ms, cl_ms, gr_ms,
# graphs, threads, inertia, jobs.
build() {
    local out t0 workers=${2:-}
    sql -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS items_v' -c CHECKPOINT
    if [ -n "$workers" ]; then
        sql -c "ALTER TABLE items SET (parallel_workers = $workers)"
    else
        sql -c "ALTER TABLE items RESET (parallel_workers)"
    fi
    t0=$EPOCHREALTIME
    out=$(sql 2>&1 -c "SET maintenance_work_mem = '$mwm'" -c "SET vecstore.gpu = $1" \
        -c "SET max_parallel_maintenance_workers = ${workers:-2}" \
        -c 'SET client_min_messages = debug1' \
        -c "CREATE INDEX items_v ON items USING vecstore (embedding $opclass)")
    b_s=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    km_ms=$(echo "$out" | sed -n 's/.*vecstore k-means: .*, \([0-9.]*\) ms$/\1/p')
    as_ms=$(echo "$out" | sed -n 's/.*vecstore assignment: .*, \([0-9.]*\) ms with the table scan$/\1/p')
    inertia=$(echo "$out" | sed -n 's/.*vecstore k-means: .* inertia \([0-9.e+]*\),.*/\1/p')
    jobs=$(echo "$out" | sed -n 's/.*vecstore assignment: [0-9]* rows, \([0-9]*\) jobs.*/\1/p')
    graphs=$(echo "$out" | sed -n 's/.*vecstore clusters: [0-9]*, \([0-9]*\) graphs built by the GPU service.*/\1/p')
    threads=$(echo "$out" | sed -n 's/.*graphs built by the GPU service on \([0-9]*\) threads.*/\1/p')
    cl_ms=$(echo "$out" | sed -n 's/.* threads, \([0-9.]*\) ms with codes, graphs and the fork.*/\1/p')
    gr_ms=$(echo "$out" | sed -n 's/.*, \([0-9.]*\) ms of it in graphs.*/\1/p')
}

# throughput - pgbench at each client count, vecstore.gpu off, auto and on
throughput() {
    local nq c mode out tps lat
    nq=$(sql -c 'SELECT count(*) FROM queries')
    cat >"$work/knn.sql" <<EOF
\\set q random(0, $nq - 1)
SELECT id FROM items ORDER BY embedding $op (SELECT embedding FROM queries WHERE id = :q) LIMIT 10;
EOF
    echo
    echo "| clients | gpu | TPS | mean latency ms | / off |"
    echo "|---|---|---|---|---|"
    for c in $clients_spec; do
        local off_tps=
        for mode in off auto on; do
            out=$(PGOPTIONS="-c vecstore.gpu=$mode -c max_parallel_workers_per_gather=0" \
                pgbench -n -f "$work/knn.sql" -c "$c" -j "$(( c < $(nproc) ? c : $(nproc) ))" \
                -T "$seconds" 2>&1) || { echo "| $c | $mode | pgbench failed: $(echo "$out" | tail -n 1) | | |"; continue; }
            tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
            if [ "$mode" = off ]; then
                off_tps=$tps
                echo "| $c | off | $tps | $lat | |"
            else
                echo "| $c | $mode | $tps | $lat | $(awk -v a="$tps" -v b="$off_tps" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }') |"
            fi
        done
    done
}

# median X... - the median of the numbers (the lower middle one of an even
# count)
median() {
    printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# one_set NAME ROWS DIM - the builds and the throughput of the loaded set
one_set() {
    local name=$1 r i
    echo "### $name ($2 x $3, $opclass)"
    echo
    echo "| run | gpu | build s | k-means ms | assignment ms (with the table scan) | clusters ms (codes, graphs, fork) | of it graphs ms | graphs by the GPU service | on threads | k-means inertia | GPU jobs |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    declare -A tot=()
    local all=$(( $(nproc) - 1 ))
    for r in $(seq 1 "$runs"); do
        for i in off on on-all; do
            [ "$i" != off ] && [ "$gpu_ok" != 1 ] && continue
            case $i in
                on-all) build on "$all" ;;
                *) build "$i" ;;
            esac
            echo "| $r | $i | $b_s | $km_ms | $as_ms | $cl_ms | $gr_ms | $graphs | $threads | $inertia | $jobs |"
            tot[$i]="${tot[$i]:-} $b_s"
        done
    done
    if [ -n "${tot[on]:-}" ]; then
        echo
        echo "Median build: off $(median ${tot[off]}) s, on $(median ${tot[on]}) s" \
            "($(awk -v a="$(median ${tot[off]})" -v b="$(median ${tot[on]})" 'BEGIN { printf "%.1fx", a / b }')), on with parallel_workers = $all $(median ${tot[on-all]}) s" \
            "($(awk -v a="$(median ${tot[off]})" -v b="$(median ${tot[on-all]})" 'BEGIN { printf "%.1fx", a / b }'))."
    fi
    throughput
    echo
}

load() {
    sql -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS items, queries' \
        -c "CREATE TABLE items (id int PRIMARY KEY, embedding vector($1))" \
        -c "CREATE TABLE queries (id int PRIMARY KEY, embedding vector($1))"
}

# the synthetic set; its queries are 1000 rows of another seed
if [ "$rows_syn" -gt 0 ]; then
    opclass=vector_l2_ops op='<->'
    load 128
    ./tools/fvecs2pg --random "$rows_syn" 128 42 | sql -c '\copy items from pstdin'
    ./tools/fvecs2pg --random 1000 128 43 | sql -c '\copy queries (id, embedding) from pstdin'
    sql -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    one_set "synthetic" "$rows_syn" 128
fi

if [ "$datasets" != none ] && [ -d "$data_root" ]; then
    for dir in "$data_root"/*/; do
        [ -f "$dir/base.fvecs" ] || continue
        name=$(basename "$dir")
        if [ -n "$datasets" ]; then
            case ",$datasets," in *",$name,"* | *"$datasets"*) ;; *) continue ;; esac
        fi
        case $name in *angular*) op='<=>' opclass=vector_cosine_ops ;; *) op='<->' opclass=vector_l2_ops ;; esac
        dim=$(od -An -t d4 -N4 "$dir/base.fvecs" | tr -d ' ')
        load "$dim"
        ./tools/fvecs2pg "$dir/base.fvecs" | sql -c '\copy items from pstdin'
        ./tools/fvecs2pg --limit 1000 "$dir/query.fvecs" | sql -c '\copy queries from pstdin'
        sql -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
        one_set "$name" "$(sql -c 'SELECT count(*) FROM items')" "$dim"
    done
fi

echo "Status after the run: $(status "'requests ' || requests || ', batches ' || batches || ', average batch ' || coalesce(round(avg_batch_size::numeric, 2)::text, '-') || ', fallbacks ' || fallbacks || coalesce(' (' || fallback_reason || ')', '')")."
