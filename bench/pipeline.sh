#!/usr/bin/env bash
# Pipeline benchmark: the vecstore index against pgvector's HNSW (and
# ivfflat) and the exact scan, on every shared dataset, in one run on one
# throwaway server: build time, index size, recall@10, queries per second,
# latency and the querying backend's resident memory for each
# configuration, then per dataset the fastest configuration of each engine
# that reaches recall@10 >= 0.95 and vecstore's ratios to pgvector HNSW.
# It prints figures and asserts nothing.  It uses the vecstore that is
# installed (it builds and installs nothing but tools/fvecs2pg when that is
# missing); run "make install" first.
#
#   ./bench/pipeline.sh             everything (3-4 min on a 2-core VM, about
#                                   70 s of it the pgvector HNSW builds)
#   BENCH_QUERIES=30 BENCH_DATASETS=sift BENCH_PROBES="1 4" BENCH_EF=40 \
#     BENCH_HNSW_EF="40 80" ./bench/pipeline.sh        a quick look
#   BENCH_DATASETS=none BENCH_1M=1 ./bench/pipeline.sh  only the 1M build test
#
# Knobs (environment):
#   BENCH_QUERIES     queries per configuration (default 200; the first ones
#                     of query.fvecs)
#   BENCH_DATASETS    dataset directory names, or parts of them, separated by
#                     spaces or commas (default: every set in ../shared/data;
#                     a word matching none, e.g. "none", runs no dataset)
#   BENCH_PROBES      vecstore.probes sweep (default "1 2 4 8 16 32"); values
#                     at or above the index's clusters become one value,
#                     the number of clusters (every cluster)
#   BENCH_EF          vecstore.ef_search sweep (default "10 20 40 80 160"),
#                     crossed with the probes; when the installed vecstore
#                     has no vecstore.ef_search GUC the sweep is skipped
#                     (one run per probes value, with a note)
#   BENCH_VS_OPTIONS  extra vecstore indexes besides the default one (no WITH
#                     clause), each a WITH-clause body without spaces,
#                     separated by spaces: "lists=10 lists=25,m=16"
#   BENCH_HNSW_EF     hnsw.ef_search sweep (default "10 20 40 80 120 200 400")
#   BENCH_HNSW_M, BENCH_HNSW_EFC  pgvector HNSW m and ef_construction
#                     (default 16 and 64)
#   BENCH_IVF_PROBES  ivfflat.probes sweep (default "1 2 4 8 16 32", capped
#                     the same way); lists = rows / 1000
#   BENCH_IVFFLAT     0 leaves ivfflat out
#   BENCH_PGVECTOR    0 leaves pgvector out even when it is installed
#   BENCH_MWM         maintenance_work_mem of every build (default 256MB:
#                     pgvector's HNSW graph of each shared set fits in it;
#                     a graph that does not fit builds much more slowly)
#   BENCH_RECALL      the recall@10 the summary asks for (default 0.95)
#   BENCH_FORCE_INDEX 1 sets enable_seqscan = off for the index runs; by
#                     default the planner decides, and a configuration whose
#                     plan is not an index scan is listed but not measured
#   BENCH_1M          1 adds the build time of a synthetic clustered
#                     1,000,000 x 128 set (tools/fvecs2pg --random), vecstore
#                     default against pgvector HNSW (about 12 min more on a
#                     2-core VM: load 1 min, pgvector HNSW 10 min)
#   BENCH_1M_ROWS     its rows (default 1000000)
#   BENCH_1M_MWM      its maintenance_work_mem (default 2GB: pgvector's graph
#                     of 1M x 128 needs about 1.3 GB to be built in memory)
#   VECSTORE_PGPORT   the throwaway server's port (default 54391; its
#                     directory is tmp_check/bench-pipeline)
#
# Method.  The two extensions both define a type named vector, so each gets
# its own database (bench_vecstore, bench_pgvector); the pgvector database
# receives the same rows through COPY (FORMAT binary) from the vecstore one.
# Per dataset: base.fvecs into items(id, embedding), the first
# BENCH_QUERIES rows of query.fvecs, their top-10 ground truth.  The exact
# scan (no index, vecstore database) is measured first; then each index in
# turn, alone on the table: vecstore with no WITH clause (its own choice
# of lists, shown in the index column, and graph defaults) and each
# BENCH_VS_OPTIONS variant, pgvector HNSW, pgvector ivfflat.  Build =
# CREATE INDEX wall time (psql included) after a CHECKPOINT, with
# max_parallel_maintenance_workers = 0 and maintenance_work_mem =
# BENCH_MWM.  Index MiB: vecstore fork bytes + segment file bytes from
# vecstore_index_info; pgvector pg_relation_size.
#
# Queries: `SELECT id FROM items ORDER BY embedding <op> q LIMIT 10` (<->
# with vector_l2_ops on the euclidean sets, <=> with vector_cosine_ops on
# GloVe), each timed in the server with clock_timestamp() in a plpgsql loop
# after 10 untimed warm-up queries (bench/lib.sh, as bench/ivf.sh does),
# max_parallel_workers_per_gather = 0 (one core).  QPS = queries / summed
# query time; p50 and p99 are of the per-query times.  recall@10 counts a
# returned id as a hit when it is a true top-10 neighbour or is no farther
# than the 10th one (ties).
#
# Memory: in the same psql session (so the same backend) right after the
# timed queries, the script gets pg_backend_pid() and has psql's \! read
# /proc/<pid>/status and /proc/<pid>/smaps of that backend (the script runs
# as root, or as the server's user): VmRSS, RssAnon (private memory: caches,
# work memory), RssFile (file mappings: the postgres binary and libraries,
# about 8-12 MiB, and vecstore's segment file) and RssShmem (the pages of
# shared memory this backend has touched: shared_buffers pages of tables
# and indexes).  For vecstore the same session then reads
# vecstore_index_info: bytes_mapped (the segment bytes this backend maps),
# and smaps gives "segment RSS", the resident part of that mapping.  The
# segment holds the full vectors; it is read through the page cache, so it
# is in no backend's anonymous memory and not in shared_buffers.  Full
# vectors MiB = rows * dim * 4.  Both RSS figures count pages mapped, not
# bytes read: the kernel also maps the neighbours (fault-around, 64 kB by
# default) of each page a backend faults on when they are in memory, so
# RssShmem and segment RSS overstate what the queries read, and RssShmem
# includes neighbouring buffers of other relations.  "buffers / query" is
# what the queries read through shared_buffers: the mean of the shared
# blocks (hit + read) of EXPLAIN (ANALYZE, BUFFERS) over the first 20
# queries, run in that session after the memory was read (heap and TOAST
# pages of the rows returned included).
#
# Summary: per dataset and engine (each index variant apart), the
# configuration with the highest QPS among those measured with an index
# scan that reach recall@10 >= BENCH_RECALL, and the ratios QPS / HNSW's
# and build time / HNSW's (vecstore's targets: >= 2x and <= 0.2x).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-200}
datasets=${BENCH_DATASETS:-}
probes_spec=${BENCH_PROBES:-1 2 4 8 16 32}
ef_spec=${BENCH_EF:-10 20 40 80 160}
vs_options=${BENCH_VS_OPTIONS:-}
hnsw_ef_spec=${BENCH_HNSW_EF:-10 20 40 80 120 200 400}
hnsw_m=${BENCH_HNSW_M:-16}
hnsw_efc=${BENCH_HNSW_EFC:-64}
ivf_probes_spec=${BENCH_IVF_PROBES:-1 2 4 8 16 32}
want_ivfflat=${BENCH_IVFFLAT:-1}
want_pgvector=${BENCH_PGVECTOR:-1}
mwm=${BENCH_MWM:-256MB}
target=${BENCH_RECALL:-0.95}
force_index=${BENCH_FORCE_INDEX:-0}
do_1m=${BENCH_1M:-0}
rows_1m=${BENCH_1M_ROWS:-1000000}
mwm_1m=${BENCH_1M_MWM:-2GB}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54391}
k=10
warm=10
nbuf=$((nq < 20 ? nq : 20))
vsdb=bench_vecstore
pvdb=bench_pgvector
hnsw_with="m = $hnsw_m, ef_construction = $hnsw_efc"

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

bench_server bench-pipeline

work=$(mktemp -d /tmp/vecstore-pipeline.XXXXXX)
VS_TMPDIRS+=("$work")
# dataset engine index probes ef recall qps p50 p99 build_s bytes scan
# (scan: index, exact, none = planner chose another plan, failed)
results=$work/results.tsv
: >"$results"

bench_databases
ef_now=$(sqld "$vsdb" -tAc "SELECT current_setting('vecstore.ef_search', true)")
rerank_now=$(sqld "$vsdb" -tAc "SELECT current_setting('vecstore.rerank_window', true)")
if [ -n "$ef_now" ]; then
    vs_ef_values=$ef_spec
else
    vs_ef_values=-
fi

so=$VS_PG_PKGLIBDIR/vecstore.so
echo "## Pipeline benchmark: vecstore against pgvector HNSW"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version'), shared_buffers $(sqld postgres -tAc 'SHOW shared_buffers')"
echo "- vecstore $(sqld "$vsdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'") (installed $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'), vecstore.so sha256 $(sha256sum "$so" | cut -c1-12)), kernels $(sqld "$vsdb" -tAc 'SHOW vecstore.simd')"
if [ -n "$ef_now" ]; then
    echo "- vecstore GUCs: ef_search sweep: $ef_spec (default $ef_now); rerank_window ${rerank_now:-(no such GUC)}"
else
    echo "- note: the installed vecstore has no vecstore.ef_search GUC: no ef sweep, one run per probes value"
fi
if [ "$have_pgvector" = 1 ]; then
    echo "- pgvector $(sqld "$pvdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vector'"), in its own database: hnsw ($hnsw_with; hnsw.ef_search: $hnsw_ef_spec)$([ "$want_ivfflat" = 1 ] && echo ", ivfflat (lists = rows/1000; probes: $ivf_probes_spec)")"
elif [ "$want_pgvector" = 1 ]; then
    echo "- pgvector not installed: skipped"
else
    echo "- pgvector left out (BENCH_PGVECTOR=0)"
fi
echo "- $nq queries per configuration (+$warm untimed warm-up), top-$k, one core (max_parallel_workers_per_gather = 0); vecstore.probes: $probes_spec${vs_options:+; extra vecstore indexes: $vs_options}"
if [ "$force_index" = 1 ]; then
    echo "- BENCH_FORCE_INDEX=1: enable_seqscan = off for the index runs"
else
    echo "- the planner chooses the plan; a configuration it runs without the index is listed, not measured"
fi
echo "- build: CREATE INDEX wall time after CHECKPOINT, max_parallel_maintenance_workers = 0, maintenance_work_mem = $mwm (both engines); index MiB = vecstore fork + segment file (pgvector: relation size)"
echo "- memory columns: the querying backend after its queries (/proc/<pid>/status and smaps); mapped = vecstore_index_info.bytes_mapped, segment RSS = resident part of that mapping"
echo

run=0
force_sql=
if [ "$force_index" = 1 ]; then
    force_sql=$'\nSET enable_seqscan = off;'
fi

# kib_mib KB - kB as MiB (1 decimal), "-" for none.
kib_mib() {
    if [ -n "$1" ]; then awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; else echo -; fi
}
# bytes_mib BYTES - bytes as MiB, "-" stays "-".
bytes_mib() {
    if [ "$1" = - ] || [ -z "$1" ]; then echo -; else mib "$1"; fi
}

# measure DB ENGINE INDEX PROBES EF SETTINGS BUILD_S BYTES SEGBYTES - run
# the queries of the current dataset on DB with SETTINGS (SET commands)
# and print one markdown row; appends the figures to $results.  ENGINE is
# exact, vecstore, hnsw or ivfflat; INDEX labels the index (its options).
measure() {
    local db=$1 engine=$2 index=$3 probes=$4 ef=$5 settings=$6 build_s=$7 bytes=$8 segbytes=$9
    local plan row recall qps p50 p99 scan=index mark='' after status
    local vmrss='' anon='' file='' shmem='' mapped=- segfile='' segrss=- bufs
    settings="$settings$force_sql"
    [ "$engine" = exact ] && scan=exact
    if [ "$engine" != exact ] && [ "$force_index" != 1 ]; then
        plan=$(first_plan "$db" "$settings")
        if ! grep -q 'Index Scan using' <<<"$plan"; then
            echo "$engine $index probes=$probes ef_search=$ef: the planner chose $(plan_summary "$plan")" >>"$work/plan_notes"
            printf '%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t%s\t%s\tnone\n' "$name" "$engine" "$index" \
                "$probes" "$ef" "$build_s" "$bytes" >>"$results"
            echo "| $engine | $index | $probes | $ef | no index scan: not measured | | | | $build_s | $(bytes_mib "$bytes") | $(bytes_mib "$segbytes") | | | | | | | |"
            return 0
        fi
    fi
    run=$((run + 1))
    rm -f "$work/status" "$work/smaps" "$work/pid" "$work/info" "$work/buffers"
    # same session: the backend's pid, its /proc files read by psql's \!
    # (this process's user), then what vecstore says it maps
    after="SELECT pg_backend_pid() AS bench_pid \\gset
\\setenv BENCH_PID :bench_pid
\\! echo \$BENCH_PID >'$work/pid'; cat /proc/\$BENCH_PID/status >'$work/status' 2>/dev/null; cat /proc/\$BENCH_PID/smaps >'$work/smaps' 2>/dev/null; true
\\pset tuples_only on
\\pset format unaligned
\\pset fieldsep ' '"
    if [ "$engine" = vecstore ]; then
        after="$after
\\o '$work/info'
SELECT bytes_mapped, segment_file FROM vecstore_index_info('items_emb');
\\o"
    fi
    # then the shared buffers one query reads (hit or read), from EXPLAIN
    # (ANALYZE, BUFFERS) of the first $nbuf queries
    after="$after
CREATE TEMP TABLE bench_buffers (blocks bigint);
DO \$\$
DECLARE
    q record;
    j json;
BEGIN
    FOR q IN SELECT embedding FROM queries ORDER BY id LIMIT $nbuf LOOP
        EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) SELECT id FROM items ORDER BY embedding $op \$1 LIMIT $k'
            INTO j USING q.embedding;
        INSERT INTO bench_buffers
            VALUES ((j->0->'Plan'->>'Shared Hit Blocks')::bigint + (j->0->'Plan'->>'Shared Read Blocks')::bigint);
    END LOOP;
END
\$\$;
\\o '$work/buffers'
SELECT round(avg(blocks), 1) FROM bench_buffers;
\\o"
    if ! run_queries "$db" "$run" "$settings" "$after" 2>"$work/query.err"; then
        echo "$engine $index probes=$probes ef_search=$ef: failed: $(grep -m1 -E 'ERROR|FATAL|server closed' "$work/query.err" || head -n 1 "$work/query.err")" >>"$work/plan_notes"
        printf '%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t%s\t%s\tfailed\n' "$name" "$engine" "$index" \
            "$probes" "$ef" "$build_s" "$bytes" >>"$results"
        echo "| $engine | $index | $probes | $ef | failed (see below) | | | | $build_s | $(bytes_mib "$bytes") | $(bytes_mib "$segbytes") | | | | | | | |"
        return 0
    fi
    plan=$(run_plan "$db" "$run")
    if [ "$engine" != exact ] && ! grep -q 'Index Scan using' <<<"$plan"; then
        mark=' (no index scan!)'
        scan=none
        echo "$engine $index probes=$probes ef_search=$ef: the planner chose $(plan_summary "$plan")" >>"$work/plan_notes"
    fi
    row=$(query_stats "$db" "$run")
    IFS=$'\t' read -r recall qps p50 p99 <<<"$row"
    # the backend's memory, if its status was read (and is that backend's)
    status=$work/status
    if [ -s "$status" ] && [ "$(awk '$1 == "Pid:" { print $2 }' "$status")" = "$(cat "$work/pid")" ]; then
        vmrss=$(awk '$1 == "VmRSS:" { print $2 }' "$status")
        anon=$(awk '$1 == "RssAnon:" { print $2 }' "$status")
        file=$(awk '$1 == "RssFile:" { print $2 }' "$status")
        shmem=$(awk '$1 == "RssShmem:" { print $2 }' "$status")
    fi
    bufs=-
    [ -s "$work/buffers" ] && bufs=$(cat "$work/buffers")
    if [ "$engine" = vecstore ] && [ -s "$work/info" ]; then
        read -r mapped segfile <"$work/info"
        if [ -s "$work/smaps" ] && [ -n "$segfile" ]; then
            segrss=$(awk -v seg="/$segfile" '
                $1 ~ /^[0-9a-f]+-[0-9a-f]+$/ { cur = index($0, seg) > 0; next }
                cur && $1 == "Rss:" { s += $2 }
                END { printf "%.1f", s / 1024 }' "$work/smaps")
        fi
        mapped=$(mib "$mapped")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$engine" "$index" \
        "$probes" "$ef" "$recall" "$qps" "$p50" "$p99" "$build_s" "$bytes" "$scan" >>"$results"
    local ecol=$engine
    [ "$engine" = exact ] && ecol="exact scan"
    echo "| $ecol | $index | $probes$mark | $ef | $recall | $qps | $p50 | $p99 | $build_s | $(bytes_mib "$bytes") | $(bytes_mib "$segbytes") | $mapped | $segrss | $bufs | $(kib_mib "$vmrss") | $(kib_mib "$anon") | $(kib_mib "$file") | $(kib_mib "$shmem") |"
}

# build DB AM WITH [TABLE] [MWM] - CREATE INDEX TABLE_emb ON TABLE (default
# items) USING AM, WITH (WITH) unless empty, at maintenance_work_mem MWM
# (default BENCH_MWM).  Sets build_s, index_bytes, seg_bytes ("-" but for
# vecstore), clusters, index_detail, and on failure build_err (and returns
# 1).  Messages of the build (NOTICEs) go to $work/notes.
build() {
    local db=$1 am=$2 with=$3 table=${4:-items} bmwm=${5:-$mwm} t0 clause=''
    [ -n "$with" ] && clause=" WITH ($with)"
    sqld "$db" -c 'SET client_min_messages = warning' -c "DROP INDEX IF EXISTS ${table}_emb" -c CHECKPOINT
    build_err=
    seg_bytes=-
    clusters=
    index_detail=
    t0=$(now)
    if ! sqld "$db" -c 'SET max_parallel_maintenance_workers = 0' \
        -c "SET maintenance_work_mem = '$bmwm'" \
        -c "CREATE INDEX ${table}_emb ON $table USING $am (embedding $opclass)$clause" \
        2>"$work/build.err"; then
        build_s=$(since "$t0")
        build_err=$(sed -n 's/^ERROR: *//p' "$work/build.err" | head -n 1)
        [ -n "$build_err" ] || build_err=$(head -n 1 "$work/build.err")
        return 1
    fi
    build_s=$(since "$t0")
    sed "s/^/$am${with:+ ($with)}: /" "$work/build.err" >>"$work/notes"
    if [ "$am" = vecstore ]; then
        IFS=$'\t' read -r index_bytes seg_bytes clusters index_detail <<<"$(sqld "$db" -tA -F $'\t' -c \
            "SELECT fork_bytes + segment_bytes, segment_bytes, clusters,
                    format('fork %s MiB + segment %s MiB', round(fork_bytes / 1048576.0, 1),
                           round(segment_bytes / 1048576.0, 1))
               FROM vecstore_index_info('${table}_emb')")"
    else
        index_bytes=$(sqld "$db" -tAc "SELECT pg_relation_size('${table}_emb')")
    fi
    sqld "$db" -c "ANALYZE $table"
}

# failed_build ENGINE INDEX - the row of an index that could not be built.
failed_build() {
    echo "| $1 | $2 | - | - | build failed after $build_s s: $build_err | | | | | | | | | | | | | |"
    printf '%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t%s\t-\tfailed\n' "$name" "$1" "$2" "$build_s" >>"$results"
}

# summary DATASET - the fastest configuration per engine and index that
# reaches the target recall, and its ratios to pgvector HNSW's.
summary() {
    echo "Fastest configuration reaching recall@10 >= $target (index scans only; exact scan for reference):"
    echo
    echo "| engine | index | probes | ef_search | recall@10 | QPS | p50 ms | p99 ms | build s | index MiB | QPS / HNSW | build / HNSW | targets (QPS >= 2x, build <= 0.2x) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F '\t' -v ds="$1" -v target="$target" '
        $1 != ds { next }
        {
            key = $2 SUBSEP $3
            if (!(key in seen)) { seen[key] = 1; order[++n] = key; build[key] = $10; bytes[key] = $11 }
            if (($12 == "index" || $12 == "exact") && $6 + 0 >= target && (!(key in best) || $7 + 0 > bq[key])) {
                best[key] = $4 "\t" $5 "\t" $6 "\t" $7 "\t" $8 "\t" $9
                bq[key] = $7 + 0
            }
            if (($12 == "index" || $12 == "exact") && (!(key in top) || $6 + 0 > top[key])) {
                top[key] = $6 + 0
                topat[key] = ($4 == "-" ? "" : "probes " $4) ($4 != "-" && $5 != "-" ? ", " : "") ($5 == "-" ? "" : "ef " $5)
            }
            if ($12 == "failed" && $4 == "-") failed[key] = 1
            if ($2 == "hnsw" && !(key in failed)) hkey = key
        }
        function mib(b) { return (b == "-" || b == "") ? "-" : sprintf("%.1f", b / 1048576) }
        function ratio(r) { return sprintf(r < 0.1 ? "%.3fx" : "%.2fx", r) }
        END {
            hq = (hkey in best) ? bq[hkey] : 0
            hb = (hkey != "") ? build[hkey] + 0 : 0
            for (i = 1; i <= n; i++) {
                key = order[i]
                split(key, a, SUBSEP)
                eng = (a[1] == "exact") ? "exact scan" : a[1]
                if (key in failed) {
                    printf "| %s | %s | build failed | | | | | | | | | | |\n", eng, a[2]
                    continue
                }
                if (!(key in best)) {
                    printf "| %s | %s | not reached%s | | | | | | %s | %s | | | |\n", eng, a[2],
                           (key in top) ? sprintf(" (best %.3f, at %s)", top[key], topat[key]) : "",
                           build[key], mib(bytes[key])
                    continue
                }
                split(best[key], b, "\t")
                qr = (hq > 0) ? ratio(b[4] / hq) : "-"
                br = (hb > 0 && build[key] != "-") ? ratio(build[key] / hb) : "-"
                tg = "-"
                if (a[1] == "vecstore" && hq > 0 && hb > 0)
                    tg = sprintf("QPS %s, build %s", (b[4] / hq >= 2) ? "met" : "not met",
                                 (build[key] / hb <= 0.2) ? "met" : "not met")
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                       eng, a[2], b[1], b[2], b[3], b[4], b[5], b[6], build[key], mib(bytes[key]), qr, br, tg
            }
        }' "$results"
    echo
}

for dir in "$data_root"/*/; do
    [ -f "$dir/base.fvecs" ] || continue
    selected "$(basename "$dir")" || continue
    dataset_params "$dir"
    load_dataset "$dir"

    echo "### $name ($rows x $dim, $op, $opclass)"
    echo
    echo "(loaded in $load_s s; full vectors $rows x $dim x 4 B = $(mib $((rows * dim * 4))) MiB)"
    echo
    echo "| engine | index | probes | ef_search | recall@10 | QPS | p50 ms | p99 ms | build s | index MiB | segment MiB | mapped MiB | segment RSS MiB | buffers / query | VmRSS MiB | RssAnon MiB | RssFile MiB | RssShmem MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    : >"$work/plan_notes"
    : >"$work/notes"
    details=()

    measure "$vsdb" exact - - - '' - - -

    for opt in default $vs_options; do
        with=
        [ "$opt" = default ] || with=$opt
        if ! build "$vsdb" vecstore "$with"; then
            failed_build vecstore "$opt"
            continue
        fi
        label=$opt
        [ "$opt" = default ] && label="default ($clusters lists)"
        details+=("vecstore $label: built in $build_s s; $index_detail; full vectors $(mib $((rows * dim * 4))) MiB")
        for p in $(probes_for "$clusters"); do
            for ef in $vs_ef_values; do
                settings="SET vecstore.probes = $p;"
                [ "$ef" = - ] || settings="$settings SET vecstore.ef_search = $ef;"
                measure "$vsdb" vecstore "$label" "$p" "$ef" "$settings" "$build_s" "$index_bytes" "$seg_bytes"
            done
        done
        sqld "$vsdb" -c 'DROP INDEX items_emb'
    done

    if [ "$have_pgvector" = 1 ]; then
        if build "$pvdb" hnsw "$hnsw_with"; then
            label="m=$hnsw_m,ef_construction=$hnsw_efc"
            details+=("pgvector hnsw $label: built in $build_s s; $(mib "$index_bytes") MiB")
            for ef in $hnsw_ef_spec; do
                measure "$pvdb" hnsw "$label" - "$ef" "SET hnsw.ef_search = $ef;" "$build_s" "$index_bytes" -
            done
            sqld "$pvdb" -c 'DROP INDEX items_emb'
        else
            failed_build hnsw "$hnsw_with"
        fi
        if [ "$want_ivfflat" = 1 ]; then
            lists=$((rows / 1000))
            [ "$lists" -ge 1 ] || lists=1
            if build "$pvdb" ivfflat "lists = $lists"; then
                for p in $(probes_for "$lists" "$ivf_probes_spec"); do
                    measure "$pvdb" ivfflat "lists=$lists" "$p" - "SET ivfflat.probes = $p;" "$build_s" "$index_bytes" -
                done
                sqld "$pvdb" -c 'DROP INDEX items_emb'
            else
                failed_build ivfflat "lists=$lists"
            fi
        fi
    fi
    echo
    for d in "${details[@]}"; do
        echo "- $d"
    done
    sed 's/^/- build message: /' "$work/notes"
    sed 's/^/- no index scan: /' "$work/plan_notes"
    echo
    summary "$name"
done

# ---------------------------------------------------------------------------
# build time on a synthetic 1M x 128 set

if [ "$do_1m" = 1 ]; then
    seed=42
    name=synthetic-1m
    opclass=vector_l2_ops
    echo "### Build time, synthetic $rows_1m x 128 (fvecs2pg --random $rows_1m 128 $seed)"
    echo
    t0=$(now)
    for db in $vsdb $([ "$have_pgvector" = 1 ] && echo "$pvdb"); do
        sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS items, queries, groundtruth, timings, plans, big' \
            -c 'CREATE TABLE big (id int, embedding vector(128))'
    done
    ./tools/fvecs2pg --random "$rows_1m" 128 "$seed" | sqld "$vsdb" -c '\copy big from pstdin'
    [ "$have_pgvector" = 1 ] && copy_table big
    for db in $vsdb $([ "$have_pgvector" = 1 ] && echo "$pvdb"); do
        sqld "$db" -c 'VACUUM ANALYZE big'
    done
    echo "(loaded in $(since "$t0") s; table $(mib "$(sqld "$vsdb" -tAc "SELECT pg_table_size('big')")") MiB; full vectors $(mib $((rows_1m * 128 * 4))) MiB)"
    echo
    : >"$work/notes"
    echo "| engine | index | maintenance_work_mem | build s | index MiB | build / HNSW |"
    echo "|---|---|---|---|---|---|"
    vs_s=
    if build "$vsdb" vecstore '' big "$mwm_1m"; then
        vs_s=$build_s
        vs_row="| vecstore | default ($clusters lists) | $mwm_1m | $build_s | $(mib "$index_bytes") ($index_detail) |"
    else
        vs_row="| vecstore | default | $mwm_1m | failed after $build_s s: $build_err | - |"
    fi
    hn_s=
    if [ "$have_pgvector" = 1 ]; then
        if build "$pvdb" hnsw "$hnsw_with" big "$mwm_1m"; then
            hn_s=$build_s
            hn_row="| hnsw | $hnsw_with | $mwm_1m | $build_s | $(mib "$index_bytes") | 1.00x |"
        else
            hn_row="| hnsw | $hnsw_with | $mwm_1m | failed after $build_s s: $build_err | - | - |"
        fi
    fi
    ratio=-
    if [ -n "$vs_s" ] && [ -n "$hn_s" ]; then
        ratio=$(awk -v a="$vs_s" -v b="$hn_s" 'BEGIN { printf "%.3fx (target <= 0.2x: %s)", a / b, (a / b <= 0.2) ? "met" : "not met" }')
    fi
    echo "$vs_row $ratio |"
    [ "$have_pgvector" = 1 ] && echo "$hn_row"
    echo
    sed 's/^/- build message: /' "$work/notes"
    for db in $vsdb $([ "$have_pgvector" = 1 ] && echo "$pvdb"); do
        sqld "$db" -c 'DROP TABLE big'
    done
fi

vs_server_stop
