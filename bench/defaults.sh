#!/usr/bin/env bash
# (globals are shared with bench/lib.sh; psql's backslash commands and the
# markdown's backquotes are literal in single quotes)
# shellcheck disable=SC2034,SC2154,SC2016
# Fast by default: what vecstore gives with no tuning at all (an index with
# no WITH clause, no SET), against its own tuned best and against pgvector
# HNSW at its defaults and tuned, on the shared sets and on synthetic ones
# (small shards, 3-d points, text embeddings, optionally 1M rows); then
# filtered queries (WHERE on 1 % and 0.1 % of the rows) and the cost of the
# first query of a new connection.  One run, one throwaway server.  It
# prints figures and asserts nothing.  It uses the vecstore that is
# installed (it builds and installs nothing but tools/fvecs2pg when that is
# missing); run "make install" first.
#
#   ./bench/defaults.sh             everything but the 1M set (about 15-20
#                                   min on a 2-core VM: 3 min of it the
#                                   pgvector HNSW builds of the seven sets,
#                                   5-6 min the filtered part, 1 min the
#                                   connections)
#   BENCH_1M=1 ./bench/defaults.sh  and the 1M set (about 15-20 min more:
#                                   pgvector's HNSW build alone ~10 min, the
#                                   SQL ground truth ~1 min)
#   BENCH_QUERIES=20 BENCH_DATASETS=small5k,random3d BENCH_FILTER_ROWS=20000 \
#     ./bench/defaults.sh           a smoke run (about 2 min)
#   BENCH_DATASETS=glove BENCH_FILTER=0 BENCH_CONNECT=0 ./bench/defaults.sh
#                                   one set, no extras (about 2-3 min)
#
# Knobs (environment):
#   BENCH_QUERIES     queries per configuration (default 200): the first ones
#                     of query.fvecs, or that many generated
#   BENCH_DATASETS    dataset names, or parts of them, separated by spaces
#                     or commas (default: all): small5k, random3d, small20k,
#                     fashion-mnist-784-euclidean, sift128-photos-euclidean,
#                     text, glove6b-100-angular, synth1m (run in that order);
#                     a word matching none, e.g. "none", runs no dataset
#   BENCH_1M          1 adds synth1m (which BENCH_DATASETS must select too:
#                     BENCH_DATASETS=synth1m BENCH_1M=1 runs it alone)
#   BENCH_FILTER      0 leaves the filtered queries out (default 1)
#   BENCH_FILTER_ROWS rows of the filtered table (default 200000)
#   BENCH_CONNECT     0 leaves the connection benchmark out (default 1)
#   BENCH_CONNECTIONS new connections (and warm queries) it times (default
#                     200)
#   BENCH_CONN_OPTIONS settings for both of its runs, as PGOPTIONS (default
#                     none: the defaults), e.g. '-c vecstore.readahead=off'
#   BENCH_RECALL      the recall@10 the summaries ask for (default 0.95)
#   BENCH_MWM         maintenance_work_mem of every build (default 512MB:
#                     pgvector's HNSW graph of the 200,000 x 384 filter
#                     table fits in it; synth1m's builds get 2GB)
#   BENCH_PGVECTOR    0 leaves pgvector out even when it is installed
#   BENCH_ALTERNATE   rounds of the alternated measurement of the defaults
#                     against vecstore's fastest setting at BENCH_RECALL,
#                     per dataset (default 6; 0 leaves it out): both run
#                     their batch of BENCH_ALTERNATE_BATCH queries (default
#                     100) in turn in one session (bench/alternate.sh), so
#                     that a noisy machine's drift falls on both alike
#   BENCH_REFINE      1 (the default) tries, after the probes x ef_search
#                     grid, three cheaper settings around the grid's
#                     fastest at BENCH_RECALL (three quarters of its probes,
#                     of its ef_search, of both), so that "fastest" is not
#                     only where the grid's coarse steps fall; 0 leaves
#                     them out
#   BENCH_VS_WITH     extra vecstore indexes, each a WITH-clause body
#                     without spaces, separated by spaces (default none):
#                     "quantizer=sq4 quantizer=sq4,m=8".  Each is built and
#                     swept like the default index, before it, as engine
#                     "vecstore BODY"; the default index is built last, so
#                     the connection benchmark still meets it
#   VECSTORE_PGPORT   the throwaway server's port (default 54393; its
#                     directory is tmp_check/bench-defaults)
#
# Datasets.  The three shared sets (../shared/data), with their files'
# ground truth: SIFT and Fashion-MNIST L2 (<->, vector_l2_ops), GloVe
# angular (<=>, vector_cosine_ops).  small5k and small20k: the first 5,000
# and 20,000 rows of SIFT (a shard, a tenant's partition), SIFT's queries.
# random3d: the shape of pgvector's build-recall tests, 10,000 points
# uniform in [0,1)^3 (SQL random() after setseed(0.42); the queries after
# setseed(0.24)), L2.  text: tools/fvecs2pg --text 60000 256 1, queries
# --text N 256 2, cosine.  synth1m: fvecs2pg --random 1000000 128 1, queries
# --random N 128 2, L2.  Every set but the three shared ones gets its
# ground truth in SQL: the exact top-10 of each query by sequential scan
# (no index yet, enable_indexscan and enable_bitmapscan off, ties broken by
# lower id), in the vecstore database.
#
# Method.  The two extensions both define a type named vector, so each gets
# its own database (bench_vecstore, bench_pgvector); the pgvector database
# receives the same rows through COPY (FORMAT binary).  Per dataset: CREATE
# INDEX (wall time after a CHECKPOINT, max_parallel_maintenance_workers = 0,
# maintenance_work_mem = BENCH_MWM) of vecstore with no WITH clause, then
# of pgvector HNSW (m = 16, ef_construction = 64).  Index MiB: vecstore
# fork_bytes + segment_bytes (vecstore_index_info); pgvector
# pg_relation_size.  Configurations, each one session (bench/lib.sh's
# run_queries):
#   vecstore "defaults": no SET at all, the planner decides (the line users
#     get; when its plan is not an index scan, the same again with
#     enable_seqscan = off);
#   vecstore.effort = 1 .. 9 (10 is exact), with enable_seqscan = off;
#   vecstore.probes {1,2,4,8,16} (values at or above the index's clusters
#     become one value, the clusters) x vecstore.ef_search {16,32,64,128},
#     with enable_seqscan = off; then (BENCH_REFINE) 3/4 of the probes, of
#     the ef_search and of both of the grid's fastest at BENCH_RECALL;
#   pgvector "defaults": no SET (hnsw.ef_search 40), then hnsw.ef_search
#     {10,20,40,80,120,200,400} with enable_seqscan = off.
# Queries: `SELECT id FROM items ORDER BY embedding <op> q LIMIT 10`, each
# timed in the server with clock_timestamp() in a plpgsql loop, after 10
# untimed warm-up queries (the first ten of the same queries),
# max_parallel_workers_per_gather = 0 (one core).  QPS = queries / summed
# query time; p50 and p95 of the per-query times.  "clusters / query" and
# "rows / query" are vecstore_stats()'s clusters_opened and rows_examined
# per scan of that session (warm-up included).
#
# Recall@10: a returned id is a hit when it is one of the true top 10 or
# its distance (each engine's own operator) is <= the 10th true distance +
# abs(that) * 1e-6 (ties; abs() keeps the margin outward for negative
# inner-product distances); hits / 10 per query, averaged.  Summaries: per
# engine, the defaults line, and the configuration with the highest QPS
# among the index scans reaching recall@10 >= BENCH_RECALL; defaults QPS /
# that QPS; vecstore's over pgvector's.  Then, since each configuration
# above is timed once and a noisy machine drifts between them, the
# vecstore defaults and vecstore's fastest setting again, alternated in
# one session (BENCH_ALTERNATE, bench/alternate.sh): recall@10 there is
# tie-unaware, against the exact ids.
#
# Filtered queries (BENCH_FILTER): fvecs2pg --text BENCH_FILTER_ROWS 384 3
# (cosine) with category = id % 100 (1 % of the rows pass category = 7) and
# rare = id % 1000 (0.1 %: rare = 7), both stored generated columns, no
# index on them; 100 queries (--text 100 384 4).  Ground truth: the exact
# filtered top-10 (the rows that pass, by sequential scan).  Queries
# `SELECT id FROM items WHERE category = 7 ORDER BY embedding <=> q LIMIT
# 10` (and rare = 7), timed as above, with enable_seqscan = off (a warning
# line when the first query's plan is not an index scan anyway): vecstore at
# its defaults; pgvector HNSW with hnsw.iterative_scan off (its default),
# relaxed_order and strict_order (hnsw.max_scan_tuples at its default).
# relaxed_order may return rows slightly out of order: recall counts the id
# set.  "rows" = mean rows returned (10 unless the scan gave up); "cut
# short" = vecstore_stats().scans_cut_short of the session (warm-up
# included).
#
# Connections (BENCH_CONNECT), on the last (largest) dataset measured,
# vecstore and pgvector HNSW at their defaults: (a) BENCH_CONNECTIONS new
# connections one after another, each `psql -X` with \timing on running
# exactly one query `SELECT id FROM items ORDER BY embedding <op>
# '<literal>' LIMIT 10` (round-robin over the queries); (b) one connection
# running the same queries with \timing on after 10 untimed warm-up
# queries.  psql's "Time:" (client side: send to result) of each; medians,
# p95 and median(a) / median(b).  The server preloads vecstore
# (shared_preload_libraries, as tools/pgserver.sh sets); pgvector is
# loaded by each new backend.  vecstore_stats() is read at the end of the
# first and of the last new connection: files_trusted / clusters_trusted
# count the segment checks taken from the server's record.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-200}
datasets=${BENCH_DATASETS:-}
do_1m=${BENCH_1M:-0}
do_filter=${BENCH_FILTER:-1}
filter_rows=${BENCH_FILTER_ROWS:-200000}
do_connect=${BENCH_CONNECT:-1}
nconn=${BENCH_CONNECTIONS:-200}
target=${BENCH_RECALL:-0.95}
mwm=${BENCH_MWM:-512MB}
mwm_1m=2GB
want_pgvector=${BENCH_PGVECTOR:-1}
vs_with=${BENCH_VS_WITH:-}
alternate_rounds=${BENCH_ALTERNATE:-6}
alternate_batch=${BENCH_ALTERNATE_BATCH:-100}
refine=${BENCH_REFINE:-1}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54393}
k=10
warm=10
vsdb=bench_vecstore
pvdb=bench_pgvector
effort_spec="1 2 3 4 5 6 7 8 9"
probes_spec="1 2 4 8 16"
grid_ef_spec="16 32 64 128"
hnsw_ef_spec="10 20 40 80 120 200 400"
hnsw_with="m = 16, ef_construction = 64"
filter_nq=100
sift_dir=$data_root/sift128-photos-euclidean

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

bench_server bench-defaults

work=$(mktemp -d /tmp/vecstore-defaults.XXXXXX)
VS_TMPDIRS+=("$work")
# results: dataset engine label kind plan recall qps p50 p95
#   (kind: default, sweep; plan: index, or the plan's first node, or failed)
# builds: dataset engine build_s bytes (bytes "-" when the build failed)
results=$work/results.tsv
builds=$work/builds.tsv
: >"$results"
: >"$builds"
: >"$work/settings"

# progress MSG - a note on stderr (the figures go to stdout).
progress() {
    echo "defaults.sh: $(date +%H:%M:%S) $*" >&2
}

bench_databases
guc() {
    sqld "$vsdb" -tAc "SELECT coalesce(current_setting('$1', true), '(none)')"
}
have_effort=1
[ "$(guc vecstore.effort)" != '(none)' ] || have_effort=0
have_ef=1
[ "$(guc vecstore.ef_search)" != '(none)' ] || have_ef=0

so=$VS_PG_PKGLIBDIR/vecstore.so
echo "## Fast by default: vecstore with no tuning, against its tuned best and pgvector HNSW"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version'), shared_buffers $(sqld postgres -tAc 'SHOW shared_buffers'), shared_preload_libraries = '$(sqld postgres -tAc 'SHOW shared_preload_libraries')'"
echo "- vecstore $(sqld "$vsdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'") (installed $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'), vecstore.so sha256 $(sha256sum "$so" | cut -c1-12)), kernels $(guc vecstore.simd); defaults: effort $(guc vecstore.effort), probes $(guc vecstore.probes), ef_search $(guc vecstore.ef_search), rerank_window $(guc vecstore.rerank_window), max_scan_tuples $(guc vecstore.max_scan_tuples)"
if [ "$have_pgvector" = 1 ]; then
    echo "- pgvector $(sqld "$pvdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vector'") in its own database: hnsw ($hnsw_with); defaults: $(sqld "$pvdb" -tA -c "SELECT '[1]'::vector" -c "SELECT format('hnsw.ef_search %s, hnsw.iterative_scan %s, hnsw.max_scan_tuples %s', current_setting('hnsw.ef_search', true), current_setting('hnsw.iterative_scan', true), current_setting('hnsw.max_scan_tuples', true))" | tail -n 1); sweep hnsw.ef_search: $hnsw_ef_spec"
elif [ "$want_pgvector" = 1 ]; then
    echo "- pgvector not installed: skipped"
else
    echo "- pgvector left out (BENCH_PGVECTOR=0)"
fi
echo "- $nq queries per configuration (+$warm untimed warm-up), top-$k, one core (max_parallel_workers_per_gather = 0); recall@10 tie-aware (distance <= 10th true distance + 1e-6 relative)"
echo "- vecstore sweeps (enable_seqscan = off): effort $effort_spec$([ "$have_effort" = 1 ] || echo ' (no vecstore.effort GUC in this build: skipped)'); probes {${probes_spec// /,}} x ef_search {${grid_ef_spec// /,}}$([ "$have_ef" = 1 ] || echo ' (no vecstore.ef_search GUC: probes only)')$([ "$refine" = 1 ] && [ "$have_ef" = 1 ] && echo '; then 3/4 of the probes and/or ef_search of the grid'"'"'s fastest at the target')"
echo "- build: CREATE INDEX wall time after CHECKPOINT, max_parallel_maintenance_workers = 0, maintenance_work_mem = $mwm; index MiB = vecstore fork + segment file, pgvector relation size"
echo

run=0

# build_index DB AM WITH [MWM] - CREATE INDEX items_emb ON items USING AM,
# WITH (WITH) unless empty.  Sets build_s, index_bytes, clusters,
# index_detail, and on failure build_err (returns 1).  Build messages go
# to $work/notes.
build_index() {
    local db=$1 am=$2 with=$3 bmwm=${4:-$mwm} t0 clause=''
    [ -n "$with" ] && clause=" WITH ($with)"
    sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS items_emb' -c CHECKPOINT
    build_err=
    clusters=
    index_detail=
    index_bytes=-
    progress "$name: CREATE INDEX USING $am"
    t0=$(now)
    if ! sqld "$db" -c 'SET max_parallel_maintenance_workers = 0' \
        -c "SET maintenance_work_mem = '$bmwm'" \
        -c "CREATE INDEX items_emb ON items USING $am (embedding $opclass)$clause" \
        2>"$work/build.err"; then
        build_s=$(since "$t0")
        build_err=$(sed -n 's/^ERROR: *//p' "$work/build.err" | head -n 1)
        [ -n "$build_err" ] || build_err=$(head -n 1 "$work/build.err")
        return 1
    fi
    build_s=$(since "$t0")
    sed "s/^/$am: /" "$work/build.err" >>"$work/notes"
    if [ "$am" = vecstore ]; then
        IFS=$'\t' read -r index_bytes clusters index_detail <<<"$(sqld "$db" -tA -F $'\t' -c \
            "SELECT fork_bytes + coalesce(segment_bytes, 0), clusters,
                    format('%s clusters (%s with a graph), fork %s MiB + segment %s MiB, quantizer %s: codes %s MiB, graphs %s MiB',
                           clusters, graph_clusters, round(fork_bytes / 1048576.0, 1),
                           round(segment_bytes / 1048576.0, 1), quantizer,
                           round(code_bytes / 1048576.0, 1), round(graph_bytes / 1048576.0, 1))
               FROM vecstore_index_info('items_emb')")"
    else
        index_bytes=$(sqld "$db" -tAc "SELECT pg_relation_size('items_emb')")
        index_detail="$hnsw_with, $(mib "$index_bytes") MiB"
    fi
    sqld "$db" -c 'ANALYZE items'
}

# run_where DB RUN SETTINGS WHERE [AFTER] - bench/lib.sh's run_queries with
# a WHERE clause: `SELECT id FROM items WHERE <WHERE> ORDER BY ...`
# (run_queries reads the variable "where").
run_where() {
    local where=$4
    run_queries "$1" "$2" "$3" "${5:-}"
}

# stats DB RUN [GT] - recall@k, mean rows returned, QPS, p50 and p95 ms of
# RUN against the ground truth table GT (default groundtruth: query_id,
# neighbors, kth), and the number of duplicate ids returned, tab-separated.
stats() {
    local db=$1 run=$2 gt=${3:-groundtruth}
    sqld "$db" -tA -F $'\t' <<EOF
WITH per AS (
    SELECT t.ms,
           coalesce(cardinality(t.ids), 0) AS n,
           coalesce(cardinality(t.ids), 0)
             - (SELECT count(DISTINCT i) FROM unnest(t.ids) i) AS dups,
           greatest(cardinality(g.neighbors), 1) AS want,
           (SELECT count(DISTINCT i) FROM unnest(t.ids) i
             WHERE i = ANY (g.neighbors)
                OR (SELECT it.embedding $op q.embedding FROM items it WHERE it.id = i)
                   <= g.kth + abs(g.kth) * 1e-6) AS hits
      FROM timings t JOIN $gt g ON g.query_id = t.query_id
      JOIN queries q ON q.id = t.query_id
     WHERE t.run = $run)
SELECT round(avg(least(hits, want)::float8 / want)::numeric, 3),
       round(avg(n)::numeric, 1),
       round((count(*) / (sum(ms) / 1000))::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       sum(dups)
  FROM per;
EOF
}

# vs_after FILE - psql input for run_queries' AFTER: this session's
# vecstore_stats() into FILE.
vs_after() {
    printf '%s\n' '\pset tuples_only on' '\pset format unaligned' "\\pset fieldsep ' '" \
        "\\o '$1'" 'SELECT scans, rows_examined, clusters_opened, scans_cut_short FROM vecstore_stats();' '\o'
}

# plan_kind PLAN - "index" for an index scan, else the plan in short.
plan_kind() {
    if grep -q 'Index Scan using' <<<"$1"; then
        echo index
    else
        plan_summary "$1" | cut -c1-50
    fi
}

# measure DB ENGINE LABEL KIND SETTINGS - one configuration of the current
# dataset: one markdown row, one line in $results.
measure() {
    local db=$1 engine=$2 label=$3 kind=$4 settings=$5
    local after='' plan recall rows qps p50 p95 dups per='- | -'
    run=$((run + 1))
    rm -f "$work/vsstats"
    case $engine in vecstore*) after=$(vs_after "$work/vsstats") ;; esac
    if ! run_queries "$db" "$run" "$settings" "$after" 2>"$work/query.err"; then
        echo "$engine $label: failed: $(grep -m1 -E 'ERROR|FATAL|server closed' "$work/query.err" || head -n 1 "$work/query.err")" >>"$work/plan_notes"
        printf '%s\t%s\t%s\t%s\tfailed\t-\t-\t-\t-\n' "$name" "$engine" "$label" "$kind" >>"$results"
        echo "| $engine | $label | failed (see below) | | | | | | |"
        last_plan=failed
        return 0
    fi
    plan=$(plan_kind "$(run_plan "$db" "$run")")
    last_plan=$plan
    IFS=$'\t' read -r recall rows qps p50 p95 dups <<<"$(stats "$db" "$run")"
    if [ "$dups" != 0 ]; then
        echo "$engine $label: $dups duplicate ids returned" >>"$work/plan_notes"
    fi
    if [ -s "$work/vsstats" ]; then
        per=$(awk '$1 > 0 { printf "%.1f | %.0f", $3 / $1, $2 / $1 }' "$work/vsstats")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$engine" "$label" "$kind" \
        "$plan" "$recall" "$qps" "$p50" "$p95" >>"$results"
    printf '%s\t%s\t%s\t%s\n' "$name" "$engine" "$label" "$settings" >>"$work/settings"
    echo "| $engine | $label | $plan | $recall | $qps | $p50 | $p95 | $per |"
}

# fastest_label ENGINE [PATTERN] - the label of ENGINE's fastest index scan
# reaching the target recall on the current dataset (among the labels
# matching the awk regex PATTERN, when given), or nothing.
fastest_label() {
    awk -F '\t' -v ds="$name" -v en="$1" -v pat="${2:-}" -v target="$target" '
        $1 == ds && $2 == en && $5 == "index" && (pat == "" || $3 ~ pat) &&
        $6 + 0 >= target && $7 + 0 > best { best = $7 + 0; label = $3 }
        END { print label }' "$results"
}

# refine_grid ENGINE - three cheaper settings around ENGINE's fastest
# "probes = P, ef_search = E" at the target on this dataset: 3/4 of P, of
# E, of both (rounded down, at least 1; those the grid measured, or equal
# to P and E, are skipped).
refine_grid() {
    local engine=$1 best p e rp re
    best=$(fastest_label "$engine" '^probes = [0-9]+, ef_search = [0-9]+$')
    [ -n "$best" ] || return 0
    p=${best#probes = }
    p=${p%%,*}
    e=${best##*= }
    for pair in "$((p * 3 / 4)) $e" "$p $((e * 3 / 4))" "$((p * 3 / 4)) $((e * 3 / 4))"; do
        read -r rp re <<<"$pair"
        [ "$rp" -ge 1 ] && [ "$re" -ge 1 ] || continue
        [ "$rp" = "$p" ] && [ "$re" = "$e" ] && continue
        if awk -F '\t' -v ds="$name" -v en="$engine" -v l="probes = $rp, ef_search = $re" \
            '$1 == ds && $2 == en && $3 == l { found = 1 } END { exit !found }' "$results"; then
            continue
        fi
        measure "$vsdb" "$engine" "probes = $rp, ef_search = $re" sweep \
            "SET enable_seqscan = off; SET vecstore.probes = $rp; SET vecstore.ef_search = $re;"
    done
}

# alternated - the vecstore defaults against vecstore's fastest setting
# reaching the target recall on the current dataset, again, alternated in
# one session (bench/alternate.sh): each runs a batch of queries in turn,
# BENCH_ALTERNATE rounds, so that the machine's drift falls on both alike.
# The sweep above times each configuration once, and on a noisy machine
# its ratio can be off by half.
alternated() {
    local fastest settings
    fastest=$(fastest_label vecstore)
    [ -n "$fastest" ] || return 0
    settings=$(awk -F '\t' -v ds="$name" -v l="$fastest" \
        '$1 == ds && $2 == "vecstore" && $3 == l { print $4; exit }' "$work/settings")
    settings=${settings//SET enable_seqscan = off;/}
    settings=${settings#"${settings%%[! ]*}"}
    [ -n "$settings" ] || return 0
    echo "Defaults against the fastest setting, alternated in one session ($alternate_rounds rounds of $alternate_batch queries each):"
    echo
    if ! PGDATABASE=$vsdb BENCH_ROUNDS=$alternate_rounds BENCH_BATCH=$alternate_batch \
        BENCH_QUERIES=$nq BENCH_COLUMN=embedding \
        ./bench/alternate.sh items queries "$op" 'RESET vecstore.effort' "$settings" \
        2>"$work/alternate.err" | sed -n '/^|/p'; then
        echo "(failed: $(head -n 1 "$work/alternate.err"))"
    fi
    echo
}

# measure_filtered DB ENGINE LABEL WHERE GT SETTINGS - one filtered
# configuration: one markdown row.
measure_filtered() {
    local db=$1 engine=$2 label=$3 where=$4 gt=$5 settings=$6
    local after='' plan recall rows qps p50 p95 dups cut=-
    run=$((run + 1))
    rm -f "$work/vsstats"
    [ "$engine" = vecstore ] && after=$(vs_after "$work/vsstats")
    if ! run_where "$db" "$run" "$settings" "$where" "$after" 2>"$work/query.err"; then
        echo "- $engine $label $where: failed: $(grep -m1 -E 'ERROR|FATAL|server closed' "$work/query.err" || head -n 1 "$work/query.err")" >>"$work/plan_notes"
        echo "| $where | $engine | $label | failed (see below) | | | | | | |"
        return 0
    fi
    plan=$(run_plan "$db" "$run")
    if ! grep -q 'Index Scan using' <<<"$plan"; then
        echo "- WARNING: $engine $label, $where: the plan is not an index scan: $(plan_summary "$plan")" >>"$work/plan_notes"
    fi
    plan=$(plan_kind "$plan")
    IFS=$'\t' read -r recall rows qps p50 p95 dups <<<"$(stats "$db" "$run" "$gt")"
    if [ "$dups" != 0 ]; then
        echo "- $engine $label $where: $dups duplicate ids returned" >>"$work/plan_notes"
    fi
    if [ -s "$work/vsstats" ]; then
        cut=$(awk '{ printf "%d of %d", $4, $1 }' "$work/vsstats")
    fi
    echo "| \`$where\` | $engine | $label | $plan | $recall | $rows | $qps | $p50 | $p95 | $cut |"
}

# set_kth DB GT - the k-th true distance of each ground-truth row, under
# DB's own operator.
set_kth() {
    sqld "$1" -c 'SET client_min_messages = warning' -c "ALTER TABLE $2 ADD COLUMN IF NOT EXISTS kth float8" -c "
        UPDATE $2 g SET kth = (SELECT it.embedding $op q.embedding
                                 FROM items it, queries q
                                WHERE it.id = g.neighbors[cardinality(g.neighbors)]
                                  AND q.id = g.query_id)"
}

# gen_base / gen_queries - the generated datasets' rows and queries, as
# COPY rows (or SQL, for random3d: see load_generated).
gen_base() {
    case $name in
        small5k) ./tools/fvecs2pg --limit 5000 "$sift_dir/base.fvecs" ;;
        small20k) ./tools/fvecs2pg --limit 20000 "$sift_dir/base.fvecs" ;;
        text) ./tools/fvecs2pg --text 60000 256 1 ;;
        synth1m) ./tools/fvecs2pg --random 1000000 128 1 ;;
    esac
}
gen_queries() {
    case $name in
        small5k | small20k) ./tools/fvecs2pg --limit "$nq" "$sift_dir/query.fvecs" ;;
        text) ./tools/fvecs2pg --text "$nq" 256 2 ;;
        synth1m) ./tools/fvecs2pg --random "$nq" 128 2 ;;
    esac
}

# load_generated - the current generated dataset into both databases, with
# its ground truth computed in SQL.  Sets load_s.
load_generated() {
    local t0 db
    t0=$(now)
    setup_db "$vsdb" "$dim"
    if [ "$name" = random3d ]; then
        sqld "$vsdb" -o /dev/null <<EOF
SELECT setseed(0.42);
INSERT INTO items
SELECT i, format('[%s,%s,%s]', random()::real, random()::real, random()::real)::vector
  FROM generate_series(0, 9999) i;
SELECT setseed(0.24);
INSERT INTO queries
SELECT i, format('[%s,%s,%s]', random()::real, random()::real, random()::real)::vector
  FROM generate_series(0, $nq - 1) i;
EOF
    else
        gen_base | sqld "$vsdb" -c '\copy items from pstdin'
        gen_queries | sqld "$vsdb" -c '\copy queries from pstdin'
    fi
    sqld "$vsdb" -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    progress "$name: exact ground truth"
    exact_gt groundtruth items
    if [ "$have_pgvector" = 1 ]; then
        setup_db "$pvdb" "$dim"
        copy_table items
        copy_table queries
        copy_table groundtruth
        sqld "$pvdb" -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    fi
    load_s=$(since "$t0")
}

# summary_table [DATASET] - per dataset (all, or DATASET) and engine: build,
# size, defaults, fastest configuration reaching the target recall, ratios.
summary_table() {
    echo "| dataset | engine | build s | index MiB | defaults: plan | recall@10 | QPS | fastest at recall@10 >= $target | recall@10 | QPS | defaults QPS / fastest | fastest / pgvector fastest | defaults / pgvector fastest |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F '\t' -v only="${1:-}" -v target="$target" '
        function ratio(a, b) { return (a > 0 && b > 0) ? sprintf("%.2fx", a / b) : "-" }
        function mib(b) { return (b == "-" || b == "") ? "-" : sprintf("%.1f", b / 1048576) }
        FNR == NR {
            if (only != "" && $1 != only) next
            key = $1 SUBSEP $2
            bs[key] = $3; by[key] = $4
            if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
            if (!(key in eseen)) { eseen[key] = 1; engs[$1, ++ne[$1]] = $2 }
            next
        }
        only != "" && $1 != only { next }
        {
            key = $1 SUBSEP $2
            if ($4 == "default" && !(key in dq)) { dq[key] = $7 + 0; ds_[key] = $7; dr[key] = $6; dp[key] = $5 }
            if ($5 == "index" && $6 + 0 >= target && $7 + 0 > fq[key]) {
                fq[key] = $7 + 0; fs[key] = $7; fr[key] = $6; fl[key] = $3
            }
            if ($5 == "index" && $6 + 0 > top[key]) { top[key] = $6 + 0; topl[key] = $3 }
        }
        END {
            for (i = 1; i <= n; i++) {
                ds = order[i]
                pk = ds SUBSEP "pgvector"
                pq = (pk in fq) ? fq[pk] : 0
                for (e = 1; e <= ne[ds]; e++) {
                    eng = engs[ds, e]
                    key = ds SUBSEP eng
                    if (!(key in bs)) continue
                    if (by[key] == "-") {
                        printf "| %s | %s | build failed after %s s | | | | | | | | | | |\n", ds, eng, bs[key]
                        continue
                    }
                    best = (key in fq) ? fl[key] : (key in top) ? sprintf("not reached (best %.3f: %s)", top[key], topl[key]) : "not reached (no index scan measured)"
                    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                        ds, eng, bs[key], mib(by[key]),
                        (key in dp) ? dp[key] : "-", (key in dr) ? dr[key] : "-", (key in dq) ? ds_[key] : "-",
                        best, (key in fq) ? fr[key] : "-", (key in fq) ? fs[key] : "-",
                        ratio(dq[key], fq[key]), ratio(fq[key], pq), ratio(dq[key], pq)
                }
            }
        }' "$builds" "$results"
}

# ---------------------------------------------------------------------------
# per dataset

all_sets="small5k random3d small20k fashion-mnist-784-euclidean sift128-photos-euclidean text glove6b-100-angular"
[ "$do_1m" = 1 ] && all_sets="$all_sets synth1m"
conn_name=
conn_op=
conn_pg=0
for name in $all_sets; do
    selected "$name" || continue
    bmwm=$mwm
    case $name in
        small5k | small20k | random3d | text | synth1m)
            case $name in
                small5k) rows=5000 dim=128 src="first 5,000 rows of sift128-photos-euclidean" ;;
                small20k) rows=20000 dim=128 src="first 20,000 rows of sift128-photos-euclidean" ;;
                random3d) rows=10000 dim=3 src="uniform in [0,1)^3, SQL random() after setseed" ;;
                text) rows=60000 dim=256 src="fvecs2pg --text 60000 256 1" ;;
                synth1m) rows=1000000 dim=128 src="fvecs2pg --random 1000000 128 1" bmwm=$mwm_1m ;;
            esac
            op='<->' opclass=vector_l2_ops
            [ "$name" = text ] && op='<=>' opclass=vector_cosine_ops
            if { [ "$name" = small5k ] || [ "$name" = small20k ]; } && [ ! -f "$sift_dir/base.fvecs" ]; then
                progress "$name: $sift_dir/base.fvecs is missing: skipped"
                continue
            fi
            progress "$name: loading"
            load_generated
            src="$src; ground truth: exact scan in SQL"
            ;;
        *)
            dir=$data_root/$name
            [ -f "$dir/base.fvecs" ] || continue
            dataset_params "$dir"
            src="../shared/data/$name; ground truth from its files"
            progress "$name: loading"
            load_dataset "$dir"
            ;;
    esac
    set_kth "$vsdb" groundtruth
    [ "$have_pgvector" = 1 ] && set_kth "$pvdb" groundtruth

    echo "### $name ($rows x $dim, \`$op\`, $opclass)"
    echo
    echo "($src; loaded in $load_s s; $nq queries)"
    echo
    echo "| engine | configuration | plan | recall@10 | QPS | p50 ms | p95 ms | clusters / query | rows / query |"
    echo "|---|---|---|---|---|---|---|---|---|"
    : >"$work/plan_notes"
    : >"$work/notes"
    details=()
    conn_name=

    for with in $vs_with ''; do
        engine=vecstore${with:+ $with}
        if build_index "$vsdb" vecstore "${with//,/, }" "$bmwm"; then
            printf '%s\t%s\t%s\t%s\n' "$name" "$engine" "$build_s" "$index_bytes" >>"$builds"
            if [ -n "$with" ]; then
                details+=("vecstore WITH ($with): built in $build_s s; $index_detail")
            else
                details+=("vecstore (no WITH clause): built in $build_s s; $index_detail")
            fi
            progress "$name: $engine queries"
            measure "$vsdb" "$engine" 'defaults (no SET)' default ''
            if [ "$last_plan" != index ]; then
                measure "$vsdb" "$engine" 'defaults, enable_seqscan = off' sweep 'SET enable_seqscan = off;'
            fi
            if [ "$have_effort" = 1 ]; then
                for e in $effort_spec; do
                    measure "$vsdb" "$engine" "effort = $e" sweep "SET enable_seqscan = off; SET vecstore.effort = $e;"
                done
            fi
            for p in $(probes_for "$clusters"); do
                if [ "$have_ef" = 1 ]; then
                    for ef in $grid_ef_spec; do
                        measure "$vsdb" "$engine" "probes = $p, ef_search = $ef" sweep \
                            "SET enable_seqscan = off; SET vecstore.probes = $p; SET vecstore.ef_search = $ef;"
                    done
                else
                    measure "$vsdb" "$engine" "probes = $p" sweep "SET enable_seqscan = off; SET vecstore.probes = $p;"
                fi
            done
            if [ "$refine" = 1 ] && [ "$have_ef" = 1 ]; then
                refine_grid "$engine"
            fi
            if [ -z "$with" ]; then
                conn_name=$name
                conn_op=$op
            fi
        else
            printf '%s\t%s\t%s\t-\n' "$name" "$engine" "$build_s" >>"$builds"
            echo "| $engine | build failed after $build_s s: $build_err | | | | | | | |"
        fi
    done

    conn_pg=0
    if [ "$have_pgvector" = 1 ]; then
        if build_index "$pvdb" hnsw "$hnsw_with" "$bmwm"; then
            printf '%s\tpgvector\t%s\t%s\n' "$name" "$build_s" "$index_bytes" >>"$builds"
            details+=("pgvector hnsw: built in $build_s s; $index_detail")
            progress "$name: pgvector queries"
            measure "$pvdb" pgvector 'hnsw.ef_search = 40 (defaults, no SET)' default ''
            for ef in $hnsw_ef_spec; do
                measure "$pvdb" pgvector "hnsw.ef_search = $ef" sweep "SET enable_seqscan = off; SET hnsw.ef_search = $ef;"
            done
            conn_pg=1
        else
            printf '%s\tpgvector\t%s\t-\n' "$name" "$build_s" >>"$builds"
            echo "| pgvector | build failed after $build_s s: $build_err | | | | | | | |"
        fi
    fi
    echo
    for d in "${details[@]}"; do
        echo "- $d"
    done
    sed 's/^/- build message: /' "$work/notes"
    sed 's/^/- note: /' "$work/plan_notes"
    echo
    summary_table "$name"
    echo
    if [ "$alternate_rounds" -gt 0 ]; then
        progress "$name: defaults and fastest, alternated"
        alternated
    fi
done

if [ -s "$results" ]; then
    echo "### Summary, every dataset"
    echo
    summary_table
    echo
fi

# ---------------------------------------------------------------------------
# connections: the first query of a new connection against a warm one

# pct FILE - median and p95 of the numbers in FILE (one a line), tab-separated.
pct() {
    sort -g "$1" | awk '{ v[NR] = $1 }
        function q(p,   i, f) { i = 1 + p * (NR - 1); f = int(i); return v[f] + (i - f) * (v[f + 1 < NR ? f + 1 : NR] - v[f]) }
        END { if (NR == 0) { print "-\t-"; exit } printf "%.2f\t%.2f\n", q(0.5), q(0.95) }'
}

# conn_bench ENGINE DB - the new-connection and the warm-connection runs on
# DB; one markdown row.  For vecstore also prints vecstore_stats() of the
# first and the last new connection (into $work/conn_stats).
conn_bench() {
    local engine=$1 db=$2 i n q opts=${BENCH_CONN_OPTIONS:-} plan new warm_ ratio extra
    n=${#lits[@]}
    [ -n "$opts" ] && echo "$engine: both runs use PGOPTIONS='$opts' (BENCH_CONN_OPTIONS)" >>"$work/conn_notes"
    plan=$(sqld "$db" -tAc "EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding $conn_op '${lits[0]}' LIMIT $k")
    if ! grep -q 'Index Scan using' <<<"$plan"; then
        opts="$opts -c enable_seqscan=off"
        echo "$engine: with no SET the plan is $(plan_summary "$plan"); both runs use PGOPTIONS='$opts'" >>"$work/conn_notes"
    fi
    progress "connections: $engine, $nconn new connections"
    : >"$work/new_ms"
    for ((i = 0; i < nconn; i++)); do
        q="SELECT id FROM items ORDER BY embedding $conn_op '${lits[i % n]}' LIMIT $k"
        extra=()
        if [ "$engine" = vecstore ] && { [ "$i" = 0 ] || [ "$i" = $((nconn - 1)) ]; }; then
            extra=(-c '\timing off' -c "\\o '$work/stats_$i'" -c 'SELECT * FROM vecstore_stats()')
        fi
        PGOPTIONS=$opts psql -X -q -A -P footer=off -v ON_ERROR_STOP=1 -d "$db" -o /dev/null \
            -c '\timing on' -c "$q" "${extra[@]}" >"$work/conn.out"
        sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$work/conn.out" | head -n 1 >>"$work/new_ms"
    done
    progress "connections: $engine, one warm connection"
    {
        for ((i = 0; i < warm; i++)); do
            echo "SELECT id FROM items ORDER BY embedding $conn_op '${lits[i % n]}' LIMIT $k;"
        done
        printf '%s\n' '\timing on'
        for ((i = 0; i < nconn; i++)); do
            echo "SELECT id FROM items ORDER BY embedding $conn_op '${lits[i % n]}' LIMIT $k;"
        done
    } >"$work/warm.sql"
    PGOPTIONS=$opts psql -X -q -v ON_ERROR_STOP=1 -d "$db" -o /dev/null -f "$work/warm.sql" |
        sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' >"$work/warm_ms"
    new=$(pct "$work/new_ms")
    warm_=$(pct "$work/warm_ms")
    ratio=$(awk -v a="${new%%$'\t'*}" -v b="${warm_%%$'\t'*}" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
    echo "| $engine | $(wc -l <"$work/new_ms") | ${new//$'\t'/ | } | $(wc -l <"$work/warm_ms") | ${warm_//$'\t'/ | } | $ratio |"
}

if [ "$do_connect" = 1 ]; then
    if [ -z "$conn_name" ]; then
        echo "### Connections: skipped (no dataset with a vecstore index was measured)"
        echo
    else
        : >"$work/conn_notes"
        mapfile -t lits < <(sqld "$vsdb" -tAc 'SELECT embedding::text FROM queries ORDER BY id')
        echo "### Connections: the first query of a new connection ($conn_name, defaults)"
        echo
        printf '%s\n' "(psql \\timing of \`SELECT id FROM items ORDER BY embedding $conn_op '<literal>' LIMIT $k\`: (a) one query in each of $nconn new connections, one after another; (b) the same $nconn queries in one connection after $warm warm-up queries)"
        echo
        echo "| engine | new connections | median ms | p95 ms | warm queries | median ms | p95 ms | new / warm (medians) |"
        echo "|---|---|---|---|---|---|---|---|"
        conn_bench vecstore "$vsdb"
        if [ "$have_pgvector" = 1 ] && [ "$conn_pg" = 1 ]; then
            conn_bench pgvector "$pvdb"
        fi
        echo
        sed 's/^/- /' "$work/conn_notes"
        for i in 0 $((nconn - 1)); do
            [ -s "$work/stats_$i" ] || continue
            echo "vecstore_stats() at the end of new connection $((i + 1)) of $nconn:"
            echo
            awk -F '|' 'NR == 1 { h = "|"; s = "|"; for (j = 1; j <= NF; j++) { h = h " " $j " |"; s = s "---|" } print h; print s; next }
                { r = "|"; for (j = 1; j <= NF; j++) r = r " " $j " |"; print r }' "$work/stats_$i"
            echo
        done
    fi
fi

# ---------------------------------------------------------------------------
# filtered queries

if [ "$do_filter" = 1 ]; then
    name=filter
    dim=384
    op='<=>'
    opclass=vector_cosine_ops
    progress "filter: loading $filter_rows rows"
    t0=$(now)
    for db in $vsdb $([ "$have_pgvector" = 1 ] && echo "$pvdb"); do
        setup_db "$db" "$dim"
        sqld "$db" -c 'ALTER TABLE items ADD COLUMN category int GENERATED ALWAYS AS (id % 100) STORED,
                                          ADD COLUMN rare int GENERATED ALWAYS AS (id % 1000) STORED' \
            -c 'SET client_min_messages = warning' \
            -c 'DROP TABLE IF EXISTS gt_category, gt_rare' \
            -c 'CREATE TABLE gt_category (query_id int PRIMARY KEY, neighbors int[], kth float8)' \
            -c 'CREATE TABLE gt_rare (query_id int PRIMARY KEY, neighbors int[], kth float8)'
    done
    ./tools/fvecs2pg --text "$filter_rows" "$dim" 3 | sqld "$vsdb" -c '\copy items (id, embedding) from pstdin'
    ./tools/fvecs2pg --text "$filter_nq" "$dim" 4 | sqld "$vsdb" -c '\copy queries from pstdin'
    sqld "$vsdb" -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    progress "filter: exact ground truth"
    for f in category rare; do
        sqld "$vsdb" -c "CREATE TABLE pass_$f AS SELECT id, embedding FROM items WHERE $f = 7"
        exact_gt "gt_$f" "pass_$f"
        sqld "$vsdb" -c "DROP TABLE pass_$f"
    done
    if [ "$have_pgvector" = 1 ]; then
        copy_table items
        copy_table queries
        copy_table gt_category
        copy_table gt_rare
        sqld "$pvdb" -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    fi
    for db in $vsdb $([ "$have_pgvector" = 1 ] && echo "$pvdb"); do
        set_kth "$db" gt_category
        set_kth "$db" gt_rare
    done
    load_s=$(since "$t0")
    : >"$work/plan_notes"
    : >"$work/notes"
    details=()
    echo "### Filtered queries (fvecs2pg --text $filter_rows $dim 3, cosine; $filter_nq queries)"
    echo
    echo "(loaded with ground truth in $load_s s; category = id % 100, rare = id % 1000, no index on them; enable_seqscan = off)"
    echo
    vs_ok=0
    pv_ok=0
    if build_index "$vsdb" vecstore ''; then
        vs_ok=1
        details+=("vecstore (no WITH clause): built in $build_s s; $index_detail")
    else
        details+=("vecstore: build failed after $build_s s: $build_err")
    fi
    if [ "$have_pgvector" = 1 ]; then
        if build_index "$pvdb" hnsw "$hnsw_with"; then
            pv_ok=1
            details+=("pgvector hnsw: built in $build_s s; $index_detail")
        else
            details+=("pgvector hnsw: build failed after $build_s s: $build_err")
        fi
    fi
    echo "| filter | engine | setting | plan | recall@10 | rows | QPS | p50 ms | p95 ms | cut short |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for f in category rare; do
        progress "filter: $f = 7"
        if [ "$vs_ok" = 1 ]; then
            measure_filtered "$vsdb" vecstore defaults "$f = 7" "gt_$f" 'SET enable_seqscan = off;'
        fi
        if [ "$pv_ok" = 1 ]; then
            for it in off relaxed_order strict_order; do
                measure_filtered "$pvdb" pgvector "hnsw.iterative_scan = $it" "$f = 7" "gt_$f" \
                    "SET enable_seqscan = off; SET hnsw.iterative_scan = $it;"
            done
        fi
    done
    echo
    for d in "${details[@]}"; do
        echo "- $d"
    done
    sed 's/^/- build message: /' "$work/notes"
    cat "$work/plan_notes"
    echo
fi

progress finished
vs_server_stop
