#!/usr/bin/env bash
# (globals are shared with bench/lib.sh)
# shellcheck disable=SC2034,SC2154
# Serving from less memory than the index (issue 18): the server runs in a
# memory cgroup whose limit is a fraction of the table's raw vector bytes
# (page cache, shared buffers and backends all count against it), and the
# same queries run cold (the first ones after the page cache was dropped)
# and then again once the cache has settled, against the same queries with
# no limit.  vecstore at its defaults and with 4-bit codes and a sparser
# graph (quantizer = sq4, m = 8: a smaller hot part), and pgvector HNSW at
# its defaults, on one synthetic table.  One throwaway server.  It prints
# figures and asserts nothing.  It uses the vecstore that is installed (it
# builds and installs nothing but tools/fvecs2pg when that is missing); run
# "make install" first.  The capped runs need root and a writable cgroup v1
# memory controller (/sys/fs/cgroup/memory); without them only the
# uncapped figures are printed.
#
#   ./bench/memory.sh                       1,000,000 x 256 (about 45 min
#                                           on a 2-core VM: pgvector's HNSW
#                                           build 10, its capped runs 15)
#   BENCH_PGVECTOR=0 ./bench/memory.sh      vecstore alone (about 15 min
#                                           for three indexes)
#   BENCH_ROWS=100000 BENCH_DIM=128 BENCH_CAP=2 BENCH_PGVECTOR=0 \
#     ./bench/memory.sh                     a smoke run (1 min)
#
# Knobs (environment):
#   BENCH_ROWS        rows (default 1000000): tools/fvecs2pg --random ROWS DIM 1
#   BENCH_DIM         dimensions (default 256)
#   BENCH_QUERIES     timed queries per run (default 1000): --random N DIM 2
#   BENCH_GT_QUERIES  of them, the first ones whose exact top 10 is computed
#                     (by sequential scan) for recall (default 200)
#   BENCH_CAP         memory limits as fractions of the raw vector bytes
#                     (rows x dim x 4), separated by spaces (default "0.3
#                     0.5"); each capped run is one row of the table.
#                     A limit must leave room for the shared buffers and
#                     the server's processes (together about 80 MB): below
#                     about 100 MB the server does not start
#   BENCH_VS_WITH     vecstore indexes, WITH-clause bodies without spaces
#                     separated by spaces, "default" for none (default
#                     "default quantizer=sq4,m=8")
#   BENCH_VS_SET      query settings for each vecstore index, separated by
#                     spaces, each "default" (no SET) or NAME=VALUE pairs
#                     joined by commas (default "default"; e.g.
#                     "default vecstore.effort=2": a lower recall, to meet
#                     pgvector's at equal recall)
#   BENCH_HNSW_EF     hnsw.ef_search values for pgvector (default "40 100")
#   BENCH_PGVECTOR    0 leaves pgvector out even when it is installed
#   BENCH_MWM         maintenance_work_mem of the builds (default 4GB: room
#                     for pgvector's graph of the default table)
#   VECSTORE_PGPORT   the throwaway server's port (default 54399; its
#                     directory is tmp_check/bench-memory)
#
# Method.  shared_buffers = 32MB for every run (the page cache does the
# caching; it and the buffers count against the limit alike), vecstore.gpu
# = off (without a GPU the idle CUDA helper process alone holds about
# 40 MB), autovacuum off.  Builds with 2 parallel workers.  For each index, alone in its database: (a)
# uncapped: the server restarted, the queries run once untimed and once
# timed; (b) capped: the server stopped, the page cache dropped
# (/proc/sys/vm/drop_caches), the server started inside the cgroup, the
# queries run timed (cold: the first BENCH_QUERIES after the drop) and
# again (capped, settled).  Each run is one session: `SELECT id FROM items
# ORDER BY embedding <-> q LIMIT 10` per query, timed in a plpgsql loop
# (bench/lib.sh's run_queries, no warm-up); QPS = queries / summed time;
# recall@10 over the first BENCH_GT_QUERIES, tie-aware.  Hot MiB: the
# vecstore_index_memory() parts every probed cluster reads (TIDs, codes,
# graphs, the head); "hot resident": of them, in the page cache after the
# capped runs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rows=${BENCH_ROWS:-1000000}
dim=${BENCH_DIM:-256}
nq=${BENCH_QUERIES:-1000}
ngt=${BENCH_GT_QUERIES:-200}
caps=${BENCH_CAP:-0.3 0.5}
vs_with=${BENCH_VS_WITH:-default quantizer=sq4,m=8}
vs_set_spec=${BENCH_VS_SET:-default}
hnsw_ef_spec=${BENCH_HNSW_EF:-40 100}
want_pgvector=${BENCH_PGVECTOR:-1}
mwm=${BENCH_MWM:-4GB}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54399}
k=10
warm=0
op='<->'
vsdb=bench_vecstore
pvdb=bench_pgvector
datasets=
cgroot=/sys/fs/cgroup/memory
cg=

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

progress() {
    echo "memory.sh: $(date +%H:%M:%S) $*" >&2
}

bench_server bench-memory
sqld postgres -c "ALTER SYSTEM SET shared_buffers = '32MB'" -c 'ALTER SYSTEM SET vecstore.gpu = off' \
    -c 'ALTER SYSTEM SET autovacuum = off'

raw_bytes=$((rows * dim * 4))
can_cap=0
if [ "$(id -u)" = 0 ] && [ -w "$cgroot" ] && [ -w /proc/sys/vm/drop_caches ]; then
    cg=$cgroot/vecstore-bench-memory.$$
    mkdir "$cg" 2>/dev/null && can_cap=1
fi
# vs_on_exit - the EXIT trap's hook (tools/pgserver.sh): the server leaves
# the cgroup with its stop; the cgroup goes once it is empty.
vs_on_exit() {
    if [ -n "$cg" ] && [ -d "$cg" ]; then
        vs_server_stop || true
        rmdir "$cg" 2>/dev/null || true
    fi
}

# cap_bytes FRACTION - that fraction of the raw vector bytes
cap_bytes() {
    awk -v r="$raw_bytes" -v f="$1" 'BEGIN { printf "%d", r * f }'
}

# restart [LIMIT] - stop the server; with a LIMIT (bytes), drop the page
# cache and start it inside the cgroup limited to LIMIT, else start it as
# usual.
restart() {
    vs_server_stop
    if [ -n "${1:-}" ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
        echo "$1" >"$cg/memory.limit_in_bytes"
        echo 0 >"$cg/memory.max_usage_in_bytes" 2>/dev/null || true
        # shellcheck disable=SC2016
        sh -c 'echo $$ >"$1/cgroup.procs" && cd / && exec runuser -u "$2" -- "$3/pg_ctl" -D "$4" -l "$5" -w -t 120 start' \
            _ "$cg" "$VS_USER" "$VS_PG_BINDIR" "$VS_PGDATA" "$VS_PGLOG" >/dev/null
    else
        vs_pg_ctl_as "$VS_USER" "$VS_PGDATA" -l "$VS_PGLOG" -w -t 120 start
    fi
}

restart
bench_databases

echo "## Serving under a memory limit: vecstore against pgvector HNSW"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version'), shared_buffers $(sqld postgres -tAc 'SHOW shared_buffers')"
echo "- table: tools/fvecs2pg --random $rows $dim 1 ($(mib "$raw_bytes") MiB of raw vectors); $nq queries (--random $nq $dim 2), recall@10 over the first $ngt"
if [ "$can_cap" = 1 ]; then
    echo "- memory limits: $(for c in $caps; do printf '%s x the raw vector bytes = %s MiB; ' "$c" "$(mib "$(cap_bytes "$c")")"; done)cgroup v1 memory.limit_in_bytes: page cache, shared buffers and backends count"
else
    echo "- memory limit: not measured (needs root and a writable $cgroot)"
fi
echo

progress "loading $rows x $dim"
t0=$(now)
setup_db "$vsdb" "$dim"
./tools/fvecs2pg --random "$rows" "$dim" 1 | sqld "$vsdb" -c '\copy items from pstdin'
./tools/fvecs2pg --random "$nq" "$dim" 2 | sqld "$vsdb" -c '\copy queries from pstdin'
progress "exact top $k of $ngt queries"
exact_gt groundtruth items "$ngt"
load_finish "$t0"
echo "(loaded with ground truth in $load_s s)"
echo

# stats DB RUN - recall@k over the queries with ground truth, QPS over all,
# p50 and p95 ms, tab-separated (hits tie-aware, as bench/lib.sh's
# query_stats).
stats() {
    sqld "$1" -tA -F $'\t' <<EOF
WITH per AS (
    SELECT t.ms, g.neighbors,
           (SELECT count(DISTINCT i) FROM unnest(t.ids) i
             WHERE i = ANY (g.neighbors)
                OR (SELECT it.embedding $op q.embedding FROM items it WHERE it.id = i)
                   <= (SELECT it.embedding $op q.embedding FROM items it
                        WHERE it.id = g.neighbors[$k]) + 1e-6) AS hits
      FROM timings t JOIN queries q ON q.id = t.query_id
      LEFT JOIN groundtruth g ON g.query_id = t.query_id
     WHERE t.run = $2)
SELECT round((avg(hits) FILTER (WHERE neighbors IS NOT NULL) / $k)::numeric, 3),
       round((count(*) / (sum(ms) / 1000))::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2)
  FROM per;
EOF
}

run=0
# measure DB SETTINGS - one timed run of every query: "recall qps p50 p95"
measure() {
    run=$((run + 1))
    run_queries "$1" "$run" "$2" >/dev/null
    stats "$1" "$run" | tr '\t' ' '
}

# hot_bytes - vecstore_index_memory's hot bytes and their resident bytes
hot_bytes() {
    sqld "$vsdb" -tA -F ' ' -c "SELECT sum(bytes) FILTER (WHERE hot), sum(resident_bytes) FILTER (WHERE hot),
                                       sum(bytes) FILTER (WHERE NOT hot)
                                  FROM vecstore_index_memory('items_emb')"
}

out=$(mktemp /tmp/vecstore-memory.XXXXXX)
VS_TMPDIRS+=("$out")

# serve ENGINE DB SETTINGS - the uncapped run of one index and one
# setting, then a capped one per limit: one line of $out each.
serve() {
    local engine=$1 db=$2 settings=$3 u c s hot=- res=- cold=- cap
    restart
    measure "$db" "$settings" >/dev/null
    u=$(measure "$db" "$settings")
    if [ "$db" = "$vsdb" ]; then
        read -r hot res cold <<<"$(hot_bytes)"
    fi
    echo "$engine|$settings|none|$u|- - - -|- - - -|$hot|$res|$cold|-" >>"$out"
    [ "$can_cap" = 1 ] || return 0
    for cap in $caps; do
        restart "$(cap_bytes "$cap")"
        c=$(measure "$db" "$settings")
        s=$(measure "$db" "$settings")
        if [ "$db" = "$vsdb" ]; then
            read -r hot res cold <<<"$(hot_bytes)"
        fi
        echo "$engine|$settings|$cap|$u|$c|$s|$hot|$res|$cold|$(cat "$cg/memory.max_usage_in_bytes")" >>"$out"
    done
    restart
}

builds=()
for with in $vs_with; do
    clause=
    [ "$with" = default ] || clause=" WITH (${with//,/, })"
    progress "vecstore$clause: CREATE INDEX"
    sqld "$vsdb" -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS items_emb' -c CHECKPOINT
    t0=$(now)
    sqld "$vsdb" -c 'SET max_parallel_maintenance_workers = 2' -c "SET maintenance_work_mem = '$mwm'" \
        -c "CREATE INDEX items_emb ON items USING vecstore (embedding vector_l2_ops)$clause"
    builds+=("vecstore$clause: built in $(since "$t0") s; $(sqld "$vsdb" -tAc "
        SELECT format('%s clusters, fork %s MiB + segment %s MiB, quantizer %s, codes %s MiB, graphs %s MiB',
                      clusters, round(fork_bytes / 1048576.0, 1), round(segment_bytes / 1048576.0, 1),
                      quantizer, round(code_bytes / 1048576.0, 1), round(graph_bytes / 1048576.0, 1))
          FROM vecstore_index_info('items_emb')")")
    for set in $vs_set_spec; do
        settings=
        if [ "$set" != default ]; then
            IFS=, read -ra pairs <<<"$set"
            for pair in "${pairs[@]}"; do
                settings+="SET ${pair%%=*} = '${pair#*=}'; "
            done
        fi
        progress "vecstore$clause: queries ${settings:-at the defaults}"
        serve "vecstore ${with}" "$vsdb" "$settings"
    done
done
sqld "$vsdb" -c 'DROP INDEX IF EXISTS items_emb'

if [ "$have_pgvector" = 1 ]; then
    progress "pgvector hnsw: CREATE INDEX"
    sqld "$pvdb" -c CHECKPOINT
    t0=$(now)
    sqld "$pvdb" -c 'SET max_parallel_maintenance_workers = 2' -c "SET maintenance_work_mem = '$mwm'" \
        -c 'CREATE INDEX items_emb ON items USING hnsw (embedding vector_l2_ops)'
    builds+=("pgvector hnsw (m 16, ef_construction 64): built in $(since "$t0") s; $(mib "$(sqld "$pvdb" -tAc "SELECT pg_relation_size('items_emb')")") MiB")
    for ef in $hnsw_ef_spec; do
        progress "pgvector hnsw: queries at ef_search $ef"
        serve "pgvector hnsw" "$pvdb" "SET hnsw.ef_search = $ef;"
    done
fi

echo "Uncapped: the second of two runs.  Capped: the page cache dropped, the server started in the cgroup, then the first run (cold) and a second (settled).  Recall is the settled run's (the uncapped one's without a limit).  Hot: TIDs, codes, graphs and the head; resident: in the page cache after the run."
echo
echo "| engine | settings | limit | recall@10 | QPS uncapped | p50 ms | QPS cold | p50 ms | p95 ms | QPS settled | p50 ms | p95 ms | settled / uncapped | hot MiB | hot resident MiB | vectors MiB | cgroup peak MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F '|' '
    function mib(b) { return (b == "-" || b == "") ? "-" : sprintf("%.0f", b / 1048576) }
    {
        split($4, u, " "); split($5, c, " "); split($6, s, " ")
        capped = ($3 != "none")
        ratio = (capped && u[2] > 0 && s[2] > 0) ? sprintf("%.2fx", s[2] / u[2]) : "-"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            $1, ($2 == "" ? "defaults" : $2), (capped ? $3 " x raw" : "none"),
            (capped ? s[1] : u[1]), u[2], u[3], c[2], c[3], c[4], s[2], s[3], s[4], ratio,
            mib($7), mib($8), mib($9), mib($10)
    }' "$out"
echo
for b in "${builds[@]}"; do
    echo "- $b"
done
