#!/usr/bin/env bash
# (globals are shared with bench/lib.sh; psql's backslash commands and the
# markdown's backquotes are literal in single quotes)
# shellcheck disable=SC2034,SC2154,SC2016
# halfvec against vector (issue 17): the vecstore index on a `vector`
# column and on a `halfvec` column holding the same rows (cast with
# ::halfvec), both at their defaults (no WITH clause, no SET), and pgvector
# HNSW on the same two columns at its defaults, on the three shared sets
# and the synthetic text set.  Build time, index size, recall@10 against
# the ground truth of the float data, queries per second.  One run, one
# throwaway server.  It prints figures and asserts nothing.  It uses the
# vecstore that is installed (it builds and installs nothing but
# tools/fvecs2pg when that is missing); run "make install" first.
#
#   ./bench/halfvec.sh              everything (about 9 min on a 2-core VM,
#                                   6 of them the eight pgvector HNSW
#                                   builds)
#   BENCH_QUERIES=20 BENCH_DATASETS=sift ./bench/halfvec.sh
#                                   a smoke run (about 1 min)
#   BENCH_PGVECTOR=0 ./bench/halfvec.sh   vecstore alone (about 3 min)
#
# Knobs (environment):
#   BENCH_QUERIES     queries per configuration (default 200): the first ones
#                     of query.fvecs, or that many generated
#   BENCH_DATASETS    dataset names, or parts of them, separated by spaces
#                     or commas (default: all): sift128-photos-euclidean,
#                     fashion-mnist-784-euclidean, glove6b-100-angular, text
#                     (run in that order); a word matching none runs none
#   BENCH_MWM         maintenance_work_mem of every build (default 512MB, as
#                     bench/defaults.sh: pgvector's HNSW graphs fit in it)
#   BENCH_PGVECTOR    0 leaves pgvector out even when it is installed
#   VECSTORE_PGPORT   the throwaway server's port (default 54397; its
#                     directory is tmp_check/bench-halfvec)
#
# Datasets.  The three shared sets (../shared/data), with their files'
# ground truth (exact, computed in float64 on the float32 data): SIFT and
# Fashion-MNIST L2 (<->, *_l2_ops), GloVe angular (<=>, *_cosine_ops).
# text: tools/fvecs2pg --text 60000 256 1, queries --text N 256 2, cosine;
# its ground truth is the exact top-10 of each query by sequential scan in
# SQL on the `vector` column (no index yet, enable_indexscan and
# enable_bitmapscan off, ties broken by lower id), in the vecstore database.
#
# Method.  The two extensions both define a type named vector, so each gets
# its own database (bench_vecstore, bench_pgvector); the pgvector database
# receives the same rows through COPY (FORMAT binary).  Per dataset, first
# with the items and queries columns of type vector(DIM), then, in each
# database, ALTER TABLE ... TYPE halfvec(DIM) USING embedding::halfvec(DIM)
# on both tables (the same rows and queries, each element rounded to the
# nearest half; VACUUM ANALYZE after): CREATE INDEX (wall time after a
# CHECKPOINT, max_parallel_maintenance_workers = 0, maintenance_work_mem =
# BENCH_MWM) of vecstore with no WITH clause (vector_*_ops or
# halfvec_*_ops), then of pgvector HNSW at its defaults (no WITH clause: m
# = 16, ef_construction = 64; the same operator classes).  Each index is
# dropped once measured.  Index MiB: vecstore_index_size() (relation, fork
# and segment files) and vecstore_index_info()'s segment_bytes; pgvector
# pg_total_relation_size.  Queries: `SELECT id FROM items ORDER BY
# embedding <op> q LIMIT 10` (q from the queries table: a halfvec in the
# halfvec runs), each timed in the server with clock_timestamp() in a
# plpgsql loop (bench/lib.sh's run_queries), after 10 untimed warm-up
# queries (the first ten of the same queries),
# max_parallel_workers_per_gather = 0 (one core), no other SET (pgvector:
# hnsw.ef_search 40).  When the planner does not choose the index scan,
# the same again with enable_seqscan = off (and the summary uses that
# line, marked).  QPS = queries / summed query time; p50 and p95 of the
# per-query times.  "clusters / query" and "rows / query" (vecstore) are
# vecstore_stats()'s clusters_opened and rows_examined per scan of that
# session (warm-up included).
#
# Recall@10: the ids returned that are among the 10 true nearest neighbours
# of the float data (not tie-aware), / 10, averaged over the queries.  The
# summary: per dataset, vecstore's halfvec / vector ratios of index size,
# segment bytes, QPS, recall and build time, pgvector's of size and QPS,
# and vecstore halfvec QPS / pgvector halfvec QPS.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-200}
datasets=${BENCH_DATASETS:-}
mwm=${BENCH_MWM:-512MB}
want_pgvector=${BENCH_PGVECTOR:-1}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54397}
k=10
warm=10
vsdb=bench_vecstore
pvdb=bench_pgvector

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

bench_server bench-halfvec

work=$(mktemp -d /tmp/vecstore-halfvec.XXXXXX)
VS_TMPDIRS+=("$work")
# results: dataset engine type build_s index_bytes segment_bytes kind plan
#   recall qps p50 p95 (kind: default, forced (enable_seqscan = off);
#   plan: index, the plan in short, or failed; bytes "-" when none)
results=$work/results.tsv
: >"$results"

# progress MSG - a note on stderr (the figures go to stdout).
progress() {
    echo "halfvec.sh: $(date +%H:%M:%S) $*" >&2
}

bench_databases
guc() {
    sqld "$vsdb" -tAc "SELECT coalesce(current_setting('$1', true), '(none)')"
}

so=$VS_PG_PKGLIBDIR/vecstore.so
echo "## halfvec against vector: vecstore and pgvector HNSW at their defaults"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version'), shared_buffers $(sqld postgres -tAc 'SHOW shared_buffers'), shared_preload_libraries = '$(sqld postgres -tAc 'SHOW shared_preload_libraries')'"
echo "- vecstore $(sqld "$vsdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'") (installed $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'), vecstore.so sha256 $(sha256sum "$so" | cut -c1-12)), kernels $(guc vecstore.simd); defaults: effort $(guc vecstore.effort), probes $(guc vecstore.probes), ef_search $(guc vecstore.ef_search), rerank_window $(guc vecstore.rerank_window)"
if [ "$have_pgvector" = 1 ]; then
    echo "- pgvector $(sqld "$pvdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vector'") in its own database: hnsw with no WITH clause (m 16, ef_construction 64); $(sqld "$pvdb" -tA -c "SELECT '[1]'::vector" -c "SELECT format('hnsw.ef_search %s', current_setting('hnsw.ef_search', true))" | tail -n 1)"
elif [ "$want_pgvector" = 1 ]; then
    echo "- pgvector not installed: skipped"
else
    echo "- pgvector left out (BENCH_PGVECTOR=0)"
fi
echo "- $nq queries per configuration (+$warm untimed warm-up), top-$k, one core (max_parallel_workers_per_gather = 0), timed in the server (clock_timestamp()); recall@10 against the float data's true top-10, not tie-aware"
echo "- build: CREATE INDEX wall time after CHECKPOINT, max_parallel_maintenance_workers = 0, maintenance_work_mem = $mwm; index MiB = vecstore_index_size() (segment MiB: vecstore_index_info().segment_bytes), pgvector pg_total_relation_size"
echo

run=0

# build_index DB AM TYPE - CREATE INDEX items_emb ON items USING AM with
# TYPE's operator class for the dataset's metric, no WITH clause.  Sets
# build_s, index_bytes, segment_bytes, index_detail, and on failure
# build_err (returns 1).  Build messages go to $work/notes.
build_index() {
    local db=$1 am=$2 type=$3 t0 opc=${3}_${metric}_ops
    sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS items_emb' -c CHECKPOINT
    build_err=
    index_detail=
    index_bytes=-
    segment_bytes=-
    progress "$name: CREATE INDEX USING $am ($type, $opc)"
    t0=$(now)
    if ! sqld "$db" -c 'SET max_parallel_maintenance_workers = 0' \
        -c "SET maintenance_work_mem = '$mwm'" \
        -c "CREATE INDEX items_emb ON items USING $am (embedding $opc)" \
        2>"$work/build.err"; then
        build_s=$(since "$t0")
        build_err=$(sed -n 's/^ERROR: *//p' "$work/build.err" | head -n 1)
        [ -n "$build_err" ] || build_err=$(head -n 1 "$work/build.err")
        return 1
    fi
    build_s=$(since "$t0")
    sed "s/^/$am $type: /" "$work/build.err" >>"$work/notes"
    if [ "$am" = vecstore ]; then
        IFS=$'\t' read -r index_bytes segment_bytes index_detail <<<"$(sqld "$db" -tA -F $'\t' -c \
            "SELECT vecstore_index_size('items_emb'), coalesce(segment_bytes, 0),
                    format('%s clusters (%s with a graph), fork %s MiB + segment %s MiB (codes %s MiB, graphs %s MiB), quantizer %s',
                           clusters, graph_clusters, round(fork_bytes / 1048576.0, 1),
                           round(segment_bytes / 1048576.0, 1), round(code_bytes / 1048576.0, 1),
                           round(graph_bytes / 1048576.0, 1), quantizer)
               FROM vecstore_index_info('items_emb')")"
    else
        index_bytes=$(sqld "$db" -tAc "SELECT pg_total_relation_size('items_emb')")
        index_detail="$(mib "$index_bytes") MiB"
    fi
    sqld "$db" -c 'ANALYZE items'
}

# stats DB RUN - recall@k (the ids among the first k true neighbours, not
# tie-aware), mean rows returned, QPS, p50 and p95 ms of RUN,
# tab-separated.
stats() {
    local db=$1 run=$2
    sqld "$db" -tA -F $'\t' <<EOF
WITH per AS (
    SELECT t.ms,
           coalesce(cardinality(t.ids), 0) AS n,
           (SELECT count(DISTINCT i) FROM unnest(t.ids) i
             WHERE i = ANY (g.neighbors[1:$k])) AS hits
      FROM timings t JOIN groundtruth g ON g.query_id = t.query_id
     WHERE t.run = $run)
SELECT round(avg(hits::float8 / $k)::numeric, 3),
       round(avg(n)::numeric, 1),
       round((count(*) / (sum(ms) / 1000))::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2)
  FROM per;
EOF
}

# plan_kind PLAN - "index" for an index scan, else the plan in short.
plan_kind() {
    if grep -q 'Index Scan using' <<<"$1"; then
        echo index
    else
        plan_summary "$1" | cut -c1-50
    fi
}

# vs_after FILE - psql input for run_queries' AFTER: this session's
# vecstore_stats() into FILE.
vs_after() {
    printf '%s\n' '\pset tuples_only on' '\pset format unaligned' "\\pset fieldsep ' '" \
        "\\o '$1'" 'SELECT scans, rows_examined, clusters_opened FROM vecstore_stats();' '\o'
}

# measure DB ENGINE TYPE KIND SETTINGS - the queries of the current
# dataset and index: one markdown row, one line in $results.
measure() {
    local db=$1 engine=$2 type=$3 kind=$4 settings=$5
    local plan recall rows qps p50 p95 label=defaults after='' per='- | -'
    [ "$kind" = forced ] && label='enable_seqscan = off'
    run=$((run + 1))
    progress "$name: $engine $type queries ($label)"
    rm -f "$work/vsstats"
    [ "$engine" = vecstore ] && after=$(vs_after "$work/vsstats")
    if ! run_queries "$db" "$run" "$settings" "$after" 2>"$work/query.err"; then
        echo "$engine $type $label: failed: $(grep -m1 -E 'ERROR|FATAL|server closed' "$work/query.err" || head -n 1 "$work/query.err")" >>"$work/notes"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\tfailed\t-\t-\t-\t-\n' "$name" "$engine" "$type" \
            "$build_s" "$index_bytes" "$segment_bytes" "$kind" >>"$results"
        echo "| $engine | $type | $build_s | $(mib "$index_bytes") | $seg_mib | $label | failed (see below) | | | | | | |"
        last_plan=failed
        return 0
    fi
    plan=$(plan_kind "$(run_plan "$db" "$run")")
    last_plan=$plan
    IFS=$'\t' read -r recall rows qps p50 p95 <<<"$(stats "$db" "$run")"
    if [ "$rows" != "$k.0" ]; then
        echo "$engine $type $label: $rows rows per query on average" >>"$work/notes"
    fi
    if [ -s "$work/vsstats" ]; then
        per=$(awk '$1 > 0 { printf "%.1f | %.0f", $3 / $1, $2 / $1 }' "$work/vsstats")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$engine" "$type" \
        "$build_s" "$index_bytes" "$segment_bytes" "$kind" "$plan" "$recall" "$qps" "$p50" "$p95" >>"$results"
    echo "| $engine | $type | $build_s | $(mib "$index_bytes") | $seg_mib | $label | $plan | $recall | $qps | $p50 | $p95 | $per |"
}

# bench_index DB ENGINE AM TYPE - build, measure at the defaults (and with
# enable_seqscan = off when the planner did not take the index), drop.
bench_index() {
    local db=$1 engine=$2 am=$3 type=$4
    if build_index "$db" "$am" "$type"; then
        details+=("$engine $type: built in $build_s s; $index_detail")
        seg_mib=-
        [ "$segment_bytes" = - ] || seg_mib=$(mib "$segment_bytes")
        measure "$db" "$engine" "$type" default ''
        if [ "$last_plan" != index ]; then
            measure "$db" "$engine" "$type" forced 'SET enable_seqscan = off;'
        fi
    else
        printf '%s\t%s\t%s\t%s\t-\t-\tdefault\tfailed\t-\t-\t-\t-\n' "$name" "$engine" "$type" "$build_s" >>"$results"
        echo "| $engine | $type | build failed after $build_s s: $build_err | | | | | | | | | | |"
    fi
    sqld "$db" -c 'DROP INDEX IF EXISTS items_emb'
}

# load_text - the text set into both databases, its ground truth computed
# in SQL.  Sets dbs and load_s.
load_text() {
    local t0
    t0=$(now)
    setup_db "$vsdb" "$dim"
    ./tools/fvecs2pg --text "$rows" "$dim" 1 | sqld "$vsdb" -c '\copy items from pstdin'
    ./tools/fvecs2pg --text "$nq" "$dim" 2 | sqld "$vsdb" -c '\copy queries from pstdin'
    sqld "$vsdb" -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    progress "$name: exact ground truth"
    exact_gt groundtruth items
    load_finish "$t0"
}

# to_halfvec - the items and queries columns to halfvec(dim) in every
# loaded database (the same rows, rounded to halves).
to_halfvec() {
    local db t0
    t0=$(now)
    for db in $dbs; do
        sqld "$db" -c "ALTER TABLE items ALTER COLUMN embedding TYPE halfvec($dim) USING embedding::halfvec($dim)" \
            -c "ALTER TABLE queries ALTER COLUMN embedding TYPE halfvec($dim) USING embedding::halfvec($dim)" \
            -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
        sqld "$db" -tAc "SELECT count(*) FROM items WHERE vector_dims(embedding) = $dim" >/dev/null
    done
    convert_s=$(since "$t0")
}

# summary_table - one row per dataset: halfvec / vector ratios, vecstore
# halfvec against pgvector halfvec.  Per engine and type, the defaults
# line when its plan is an index scan, else the enable_seqscan = off line
# (marked *).
summary_table() {
    echo "| dataset | vecstore recall@10 vector / halfvec | recall halfvec / vector | index size halfvec / vector | segment halfvec / vector | QPS halfvec / vector | build halfvec / vector | pgvector recall@10 vector / halfvec | pgvector size halfvec / vector | pgvector QPS halfvec / vector | QPS vecstore halfvec / pgvector halfvec |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F '\t' '
        function ratio(a, b, p) { return (a + 0 > 0 && b + 0 > 0) ? sprintf("%." p "fx", a / b) : "-" }
        function get(ds, e, t, f) { return ((ds, e, t) in have) ? val[ds, e, t, f] : "-" }
        function mark(ds, e, t) { return (((ds, e, t) in forced) ? "*" : "") }
        {
            key = $1 SUBSEP $2 SUBSEP $3
            if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
            # the defaults line if it is an index scan, else the forced one
            if ($8 == "index" && !(key in have)) {
                have[key] = 1
                if ($7 == "forced") forced[key] = 1
                val[key, "build"] = $4; val[key, "size"] = $5; val[key, "seg"] = $6
                val[key, "recall"] = $9; val[key, "qps"] = $10
            }
        }
        END {
            for (i = 1; i <= n; i++) {
                ds = order[i]
                vr = get(ds, "vecstore", "vector", "recall"); hr = get(ds, "vecstore", "halfvec", "recall")
                pr = get(ds, "pgvector", "vector", "recall"); phr = get(ds, "pgvector", "halfvec", "recall")
                printf "| %s | %s%s / %s%s | %s | %s | %s | %s%s | %s | %s%s / %s%s | %s | %s | %s |\n", ds,
                    vr, mark(ds, "vecstore", "vector"), hr, mark(ds, "vecstore", "halfvec"),
                    ratio(hr, vr, 3),
                    ratio(get(ds, "vecstore", "halfvec", "size"), get(ds, "vecstore", "vector", "size"), 2),
                    ratio(get(ds, "vecstore", "halfvec", "seg"), get(ds, "vecstore", "vector", "seg"), 2),
                    ratio(get(ds, "vecstore", "halfvec", "qps"), get(ds, "vecstore", "vector", "qps"), 2),
                    ((ds, "vecstore", "vector") in forced || (ds, "vecstore", "halfvec") in forced) ? " (*)" : "",
                    ratio(get(ds, "vecstore", "halfvec", "build"), get(ds, "vecstore", "vector", "build"), 2),
                    pr, mark(ds, "pgvector", "vector"), phr, mark(ds, "pgvector", "halfvec"),
                    ratio(get(ds, "pgvector", "halfvec", "size"), get(ds, "pgvector", "vector", "size"), 2),
                    ratio(get(ds, "pgvector", "halfvec", "qps"), get(ds, "pgvector", "vector", "qps"), 2),
                    ratio(get(ds, "vecstore", "halfvec", "qps"), get(ds, "pgvector", "halfvec", "qps"), 2)
            }
        }' "$results"
}

# ---------------------------------------------------------------------------
# per dataset

all_sets="sift128-photos-euclidean fashion-mnist-784-euclidean glove6b-100-angular text"
for name in $all_sets; do
    selected "$name" || continue
    if [ "$name" = text ]; then
        rows=60000 dim=256 op='<=>' opclass=vector_cosine_ops
        src="fvecs2pg --text $rows $dim 1, queries --text $nq $dim 2; ground truth: exact scan in SQL on the vector column"
        progress "$name: loading"
        load_text
    else
        dir=$data_root/$name
        if [ ! -f "$dir/base.fvecs" ]; then
            progress "$name: $dir/base.fvecs is missing: skipped"
            continue
        fi
        dataset_params "$dir"
        src="../shared/data/$name; ground truth from its files"
        progress "$name: loading"
        load_dataset "$dir"
    fi
    metric=${opclass#vector_}
    metric=${metric%_ops}

    echo "### $name ($rows x $dim, \`$op\`, *_${metric}_ops)"
    echo
    : >"$work/notes"
    details=()
    echo "($src; loaded in $load_s s; $nq queries)"
    echo
    echo "| engine | column | build s | index MiB | segment MiB | queries | plan | recall@10 | QPS | p50 ms | p95 ms | clusters / query | rows / query |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for type in vector halfvec; do
        if [ "$type" = halfvec ]; then
            progress "$name: to halfvec"
            to_halfvec
            echo "halfvec: ALTER TABLE ... TYPE halfvec($dim) of items and queries, with VACUUM ANALYZE, in $convert_s s" >>"$work/notes"
        fi
        bench_index "$vsdb" vecstore vecstore "$type"
        if [ "$have_pgvector" = 1 ]; then
            bench_index "$pvdb" pgvector hnsw "$type"
        fi
    done
    echo
    for d in "${details[@]}"; do
        echo "- $d"
    done
    sed 's/^/- note: /' "$work/notes"
    echo
done

if [ -s "$results" ]; then
    echo "### Summary: halfvec / vector at the defaults"
    echo
    summary_table
    echo
    if awk -F '\t' '$7 == "forced" { f = 1 } END { exit !f }' "$results"; then
        echo "(* the planner did not choose the index with no SET: the line with enable_seqscan = off)"
        echo
    fi
fi

progress finished
vs_server_stop
