#!/usr/bin/env bash
# (globals are shared with bench/lib.sh; psql's backslash commands and the
# markdown's backquotes are literal in single quotes)
# shellcheck disable=SC2034,SC2154,SC2016
# A living index: built on the first tenth of a table that then receives
# the other nine tenths in ten batches, each followed by VACUUM (where
# vecstore compacts: it re-seals the clusters whose delta and removed rows
# pass the index's compaction_threshold, and splits clusters grown past
# max_cluster_rows).  Side by side, in one run on one throwaway server:
#   (a) vecstore, compaction on (no WITH clause: the default reloptions),
#   (b) vecstore, compaction off (WITH (compaction_threshold = 0)),
#   (c) after the last batch, a fresh REINDEX on the same rows,
#   (d) pgvector HNSW (m = 16, ef_construction = 64), built on the same
#       tenth and receiving the same inserts (and VACUUMs).
# Per batch: INSERT and VACUUM wall time (and the backend's CPU time), the
# index's clusters, rows per cluster, delta rows and bytes, queries per
# second and median latency of (a) and (b) at the defaults and at a fixed
# setting.  After the last batch: recall@10 and QPS of (a) to (d), and the
# ratios.  Then half the rows are deleted and VACUUMed: (a)'s bytes and
# cluster sizes against a fresh build of the rows left.  It prints figures
# and asserts nothing.  It uses the vecstore that is installed (it builds
# and installs nothing but tools/fvecs2pg when that is missing); run
# "make install" first.
#
#   ./bench/living.sh               SIFT and GloVe
#   BENCH_1M=1 ./bench/living.sh    and the 1,000,000 x 128 synthetic set
#                                   (pgvector's 900,000 HNSW inserts alone
#                                   take a long while)
#   BENCH_DATASETS=sift BENCH_QUERIES=20 ./bench/living.sh     a smoke run
#
# Knobs (environment):
#   BENCH_DATASETS    dataset names, or parts of them, separated by spaces
#                     or commas (default "sift glove": the shared
#                     sift128-photos-euclidean and glove6b-100-angular);
#                     synth1m is the synthetic set (with BENCH_1M=1)
#   BENCH_1M          1 adds synth1m: tools/fvecs2pg --random 1000000 128 1
#                     (queries --random N 128 2), L2, as bench/defaults.sh
#                     makes it; BENCH_DATASETS, when set, must select it too
#   BENCH_1M_ROWS     its rows (default 1000000)
#   BENCH_QUERIES     queries per configuration (default 200)
#   BENCH_BUILD_PCT   the percentage of the rows the indexes are built on
#                     (default 10)
#   BENCH_BATCHES     batches the other rows are inserted in (default 10)
#   BENCH_FIXED       the fixed setting (default "SET vecstore.probes = 4;
#                     SET vecstore.ef_search = 40")
#   BENCH_DELETE      0 leaves the deletion step out (default 1)
#   BENCH_PGVECTOR    0 leaves pgvector out even when it is installed
#   BENCH_WORKERS     max_parallel_maintenance_workers of the timed
#                     statements (default 0): with more, a VACUUM that
#                     builds graphs anew shares them with parallel workers
#                     (src/vscompact.c); CPU is then the leader's alone
#   BENCH_MWM         maintenance_work_mem of every session (default 512MB;
#                     synth1m gets 2GB)
#   VECSTORE_PGPORT   the throwaway server's port (default 54396; its
#                     directory is tmp_check/bench-living)
#
# Method.  The two extensions both define a type named vector, so each
# engine gets its own database, and so does each vecstore configuration
# (every INSERT and VACUUM then updates one index, and its time is that
# index's): bench_living_on (a), bench_living_off (b, then c),
# bench_living_pgvector (d).  Each receives the same rows: base.fvecs into
# a table "stage" (COPY, the pgvector and off databases through COPY
# (FORMAT binary)); items (id int PRIMARY KEY, embedding) gets the first
# BENCH_BUILD_PCT % of the rows in file order (the shared sets are
# shuffled enough that their first rows sample the rest); CREATE INDEX
# (timed); then each batch is `INSERT INTO items SELECT * FROM stage WHERE
# id >= lo AND id < hi` (consecutive equal ranges of ids, the last takes
# the remainder) and `VACUUM items`, each in its own session after a
# CHECKPOINT (untimed), with max_parallel_maintenance_workers =
# BENCH_WORKERS, 0 by default (the compaction runs in vacuumcleanup, in
# the backend).  Times: wall clock
# between two psql \! marks around the statement (psql round trip
# included), and the backend's CPU time (user + system, from
# /proc/<pid>/stat: "-" when it cannot be read; the script must run as
# root or as the server's user).  The primary key's btree is updated by
# every INSERT in every database alike.  autovacuum is off on the server
# and the compaction worker too (tools/pgserver.sh): compactions happen
# in the VACUUMs timed here and nowhere else.
#
# Queries, after the build and after each batch, in (a) and (b), then (c)
# and (d) after the last batch: bench/lib.sh's run_queries (`SELECT id
# FROM items ORDER BY embedding <op> q LIMIT 10`, timed in the server with
# clock_timestamp() after 10 untimed warm-up queries, one core), with
# enable_seqscan = off; "default" sets nothing else (vecstore.probes 0:
# the index decides; pgvector hnsw.ef_search 40), "fixed" is BENCH_FIXED.
# QPS = queries / summed query time; p50 = median query time.  Recall@10
# (tie-aware, bench/lib.sh's query_stats) needs the ground truth of the
# rows present, and the files' ground truth is of the whole set: recall is
# therefore measured only after the last batch, when every row is in the
# table; after the other batches only QPS and latency.  synth1m's ground
# truth: tools/fvecs2pg --knn (exact L2).
#
# (c) is REINDEX of (b)'s index once (b) is measured, with its
# compaction_threshold reset first, so it is (a)'s definition freshly built
# on the same rows in the same heap (both tables received the same
# statements), while (a)'s compacted index stays for the deletion step.
# Ratios: QPS and recall of (a) against (c); insert throughput = rows
# inserted / summed time: vecstore with its VACUUMs (the compaction's
# cost), against pgvector's INSERTs alone and with its VACUUMs.
#
# Deletion (BENCH_DELETE): `DELETE FROM items WHERE id % 2 = 0` and VACUUM
# in (a) (timed as above); in (b) the same DELETE and VACUUM (with
# compaction_threshold = 0), then the threshold reset and REINDEX: the
# fresh build of the rows left.  Index bytes = fork_bytes + segment_bytes
# of vecstore_index_info (the whole generation's segment files), also
# shown apart: fork MiB with its fork_free_bytes (pages compactions
# retired, reused by later ones and by inserts, never returned: the
# relation does not shrink) and segment MiB with segment_pieces (files the
# generation reads); rows per cluster min / mean / max.  The ground truth of the rows left is computed
# in SQL (exact top-10 by sequential scan, ties by lower id) and recall
# and QPS of both are measured again.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-200}
datasets=${BENCH_DATASETS:-sift glove}
do_1m=${BENCH_1M:-0}
rows_1m=${BENCH_1M_ROWS:-1000000}
build_pct=${BENCH_BUILD_PCT:-10}
nbatches=${BENCH_BATCHES:-10}
fixed=${BENCH_FIXED:-SET vecstore.probes = 4; SET vecstore.ef_search = 40}
do_delete=${BENCH_DELETE:-1}
want_pgvector=${BENCH_PGVECTOR:-1}
mwm=${BENCH_MWM:-512MB}
workers=${BENCH_WORKERS:-0}
mwm_1m=2GB
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54396}
k=10
warm=10
vsdb=bench_living_on
offdb=bench_living_off
pvdb=bench_living_pgvector
hnsw_with="m = 16, ef_construction = 64"
default_sql='SET enable_seqscan = off;'
fixed_sql="SET enable_seqscan = off; $fixed;"
# BENCH_1M with the default dataset filter: the shared sets and synth1m
[ "$do_1m" = 1 ] && [ -z "${BENCH_DATASETS:-}" ] && datasets="$datasets synth1m"

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

bench_server bench-living

work=$(mktemp -d /tmp/vecstore-living.XXXXXX)
VS_TMPDIRS+=("$work")
clk_tck=$(getconf CLK_TCK)
# the mark of a timed statement: wall clock and the backend's CPU ticks
cat >"$work/mark.sh" <<'EOF'
c=$(awk '{ print $14 + $15 }' "/proc/$BENCH_PID/stat" 2>/dev/null)
echo "$(date +%s.%N) ${c:--}"
EOF

# progress MSG - a note on stderr (the figures go to stdout).
progress() {
    echo "living.sh: $(date +%H:%M:%S) $*" >&2
}

# the server is ours: no autovacuum (VACUUM runs when this script says)
sqld postgres -c 'ALTER SYSTEM SET autovacuum = off' -c 'SELECT pg_reload_conf()' >/dev/null
bench_databases
sqld postgres -c "CREATE DATABASE $offdb"
sqld "$offdb" -c 'CREATE EXTENSION vecstore'
engines="$vsdb $offdb"
[ "$have_pgvector" = 1 ] && engines="$engines $pvdb"

guc() {
    sqld "$vsdb" -tAc "SELECT coalesce(current_setting('$1', true), '(none)')"
}
so=$VS_PG_PKGLIBDIR/vecstore.so
echo "## A living index: inserts in batches, VACUUM (compaction), deletes"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version'), shared_buffers $(sqld postgres -tAc 'SHOW shared_buffers'), autovacuum $(sqld postgres -tAc 'SHOW autovacuum'), vecstore.compaction_worker $(guc vecstore.compaction_worker)"
echo "- vecstore $(sqld "$vsdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'") (installed $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'), vecstore.so sha256 $(sha256sum "$so" | cut -c1-12)), kernels $(guc vecstore.simd); defaults: effort $(guc vecstore.effort), probes $(guc vecstore.probes), ef_search $(guc vecstore.ef_search)"
echo "- (a) on: no WITH clause (compaction_threshold 0.05, max_cluster_rows 0 = automatic); (b) off: WITH (compaction_threshold = 0); (c) fresh: REINDEX after the last batch; (d) pgvector"
if [ "$have_pgvector" = 1 ]; then
    echo "- (d) pgvector $(sqld "$pvdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vector'") hnsw ($hnsw_with), hnsw.ef_search $(sqld "$pvdb" -tA -c "SELECT '[1]'::vector" -c "SELECT current_setting('hnsw.ef_search', true)" | tail -n 1), in its own database"
elif [ "$want_pgvector" = 1 ]; then
    echo "- pgvector not installed: (d) skipped"
else
    echo "- pgvector left out (BENCH_PGVECTOR=0)"
fi
echo "- build on the first $build_pct % of the rows (file order), the rest in $nbatches INSERT batches, each followed by VACUUM; times are wall seconds (psql round trip included) after a CHECKPOINT, CPU = the backend's user + system seconds; max_parallel_maintenance_workers = $workers, maintenance_work_mem $mwm"
echo "- queries: $nq per configuration (+$warm untimed warm-up), top-$k, one core, enable_seqscan = off; default = no other SET; fixed = \`$fixed\`; recall@10 (tie-aware) only once every row is in (after the last batch): the ground truth is of the whole set"
echo "- index MiB = fork_bytes + segment_bytes (vecstore_index_info), pgvector pg_relation_size"
echo

run=0

# add A B - A + B (2 decimals; "-" when either is "-").
add() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.2f", a + b }'
}
# div A B [FMT] - A / B in FMT (default %.2f), "-" when B is 0 or either "-".
div() {
    awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf f, a / b }'
}
# sub A B - A - B (3 decimals, signed).
sub() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "") print "-"; else printf "%+.3f", a - b }'
}

# timed DB SQL - SQL in one session on DB after a CHECKPOINT, between two
# marks: sets t_wall (s) and t_cpu (the backend's CPU s, or "-").
timed() {
    local db=$1 sql=$2 w0 c0 w1 c1
    sqld "$db" -c CHECKPOINT
    sqld "$db" <<EOF
SET max_parallel_maintenance_workers = $workers;
SET client_min_messages = warning;
SELECT pg_backend_pid() AS bench_pid \\gset
\\setenv BENCH_PID :bench_pid
\\! sh '$work/mark.sh' >'$work/mark0'
$sql
\\! sh '$work/mark.sh' >'$work/mark1'
EOF
    read -r w0 c0 <"$work/mark0"
    read -r w1 c1 <"$work/mark1"
    t_wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')
    t_cpu=-
    if [ "$c0" != - ] && [ "$c1" != - ]; then
        t_cpu=$(awk -v a="$c0" -v b="$c1" -v t="$clk_tck" 'BEGIN { printf "%.2f", (b - a) / t }')
    fi
}

# vs_read PREFIX DB - the vecstore index of DB into PREFIX_cl (clusters),
# PREFIX_min, _mean, _max (rows per cluster), _sealed, _delta, _dead
# (rows), _comp (compactions), _bytes (fork + segment), _fork, _free
# (fork_free_bytes), _seg (segment_bytes), _pieces (segment files).
vs_read() {
    local p=$1
    IFS=$'\t' read -r "${p}_cl" "${p}_min" "${p}_mean" "${p}_max" "${p}_sealed" "${p}_delta" \
        "${p}_dead" "${p}_comp" "${p}_bytes" "${p}_fork" "${p}_free" "${p}_seg" "${p}_pieces" <<<"$(
        sqld "$2" -tA -F $'\t' -c "SELECT clusters, min_cluster_rows, round(avg_cluster_rows::numeric), max_cluster_rows,
                                          sealed_rows, delta_rows, dead_rows, compactions,
                                          fork_bytes + coalesce(segment_bytes, 0), fork_bytes,
                                          fork_free_bytes, coalesce(segment_bytes, 0), segment_pieces
                                     FROM vecstore_index_info('items_emb')")"
}
# space PREFIX - "fork MiB (free MiB) + segment MiB (N files)" of vs_read's
# PREFIX.
space() {
    local f=${1}_fork r=${1}_free s=${1}_seg n=${1}_pieces
    echo "$(mib "${!f}") ($(mib "${!r}") free) + $(mib "${!s}") (${!n} file$([ "${!n}" = 1 ] || echo s))"
}

# measure DB SETTINGS - one configuration's queries; sets m_recall, m_qps,
# m_p50 (a note in $work/notes when the plan is not an index scan or the
# run failed).
measure() {
    local db=$1 settings=$2 plan p99
    run=$((run + 1))
    m_recall=- m_qps=- m_p50=-
    if ! run_queries "$db" "$run" "$settings" 2>"$work/query.err"; then
        echo "- $name, $db, \`$settings\`: failed: $(grep -m1 -E 'ERROR|FATAL|server closed' "$work/query.err" || head -n 1 "$work/query.err")" >>"$work/notes"
        return 0
    fi
    plan=$(run_plan "$db" "$run")
    if ! grep -q 'Index Scan using' <<<"$plan"; then
        echo "- $name, $db, \`$settings\`: the plan is not an index scan: $(plan_summary "$plan")" >>"$work/notes"
    fi
    IFS=$'\t' read -r m_recall m_qps m_p50 p99 <<<"$(query_stats "$db" "$run")"
}

# copy_to SRC DST TABLE - TABLE from database SRC to DST (binary COPY).
copy_to() {
    sqld "$1" -c "\\copy $3 to pstdout (format binary)" |
        sqld "$2" -c "\\copy $3 from pstdin (format binary)"
}

# load_synth - synth1m (rows_1m x 128, L2) into the vecstore and pgvector
# databases, its ground truth by tools/fvecs2pg --knn (lib.sh's
# load_finish does the rest).  Sets dbs and load_s.
load_synth() {
    local t0
    t0=$(now)
    setup_db "$vsdb" "$dim"
    ./tools/fvecs2pg --random "$rows" "$dim" 1 | sqld "$vsdb" -c '\copy items from pstdin'
    ./tools/fvecs2pg --random "$nq" "$dim" 2 | sqld "$vsdb" -c '\copy queries from pstdin'
    ./tools/fvecs2pg --random "$rows" "$dim" 1 --fvecs >"$work/base.fvecs"
    ./tools/fvecs2pg --random "$nq" "$dim" 2 --fvecs >"$work/query.fvecs"
    ./tools/fvecs2pg --knn "$k" "$work/base.fvecs" "$work/query.fvecs" |
        sqld "$vsdb" -c '\copy groundtruth from pstdin'
    rm -f "$work/base.fvecs" "$work/query.fvecs"
    load_finish "$t0"
}

# refresh_gt - the exact top-k of every query among the rows of items
# (bench/lib.sh's exact_gt) into a fresh groundtruth, in the vecstore
# database; copied to the off database.
refresh_gt() {
    sqld "$vsdb" -c 'TRUNCATE groundtruth'
    exact_gt groundtruth items
    sqld "$offdb" -c 'TRUNCATE groundtruth'
    copy_to "$vsdb" "$offdb" groundtruth
}

# ---------------------------------------------------------------------------
# per dataset

all_sets="sift128-photos-euclidean glove6b-100-angular"
[ "$do_1m" = 1 ] && all_sets="$all_sets synth1m"
for name in $all_sets; do
    selected "$name" || continue
    bmwm=$mwm
    if [ "$name" = synth1m ]; then
        rows=$rows_1m dim=128 op='<->' opclass=vector_l2_ops bmwm=$mwm_1m
        src="tools/fvecs2pg --random $rows $dim 1; ground truth: fvecs2pg --knn"
        progress "$name: loading"
        load_synth
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
    : >"$work/notes"
    # the off database gets the same rows
    setup_db "$offdb" "$dim"
    copy_to "$vsdb" "$offdb" items
    copy_to "$vsdb" "$offdb" queries
    copy_to "$vsdb" "$offdb" groundtruth
    nbuild=$((rows * build_pct / 100))
    per=$(((rows - nbuild) / nbatches))
    for db in $engines; do
        sqld "$db" -c "ALTER DATABASE $db SET maintenance_work_mem = '$bmwm'"
        sqld "$db" -c 'SET client_min_messages = warning' \
            -c 'DROP TABLE IF EXISTS stage' \
            -c 'ALTER TABLE items RENAME TO stage' \
            -c 'ALTER INDEX items_pkey RENAME TO stage_pkey' \
            -c "CREATE TABLE items (id int PRIMARY KEY, embedding vector($dim))" \
            -c "INSERT INTO items SELECT * FROM stage WHERE id < $nbuild" \
            -c 'VACUUM ANALYZE items' -c 'VACUUM ANALYZE stage' -c 'ANALYZE queries'
    done

    echo "### $name ($rows x $dim, \`$op\`, $opclass)"
    echo
    echo "($src; loaded in $load_s s; built on $nbuild rows, then $nbatches batches of $per rows$([ $((rows - nbuild - per * nbatches)) = 0 ] || echo " (the last $((rows - nbuild - per * (nbatches - 1))))"); $nq queries)"
    echo

    # the builds
    progress "$name: CREATE INDEX on $nbuild rows"
    timed "$vsdb" "CREATE INDEX items_emb ON items USING vecstore (embedding $opclass);"
    build_on=$t_wall
    timed "$offdb" "CREATE INDEX items_emb ON items USING vecstore (embedding $opclass) WITH (compaction_threshold = 0);"
    build_off=$t_wall
    build_pg=-
    if [ "$have_pgvector" = 1 ]; then
        timed "$pvdb" "CREATE INDEX items_emb ON items USING hnsw (embedding $opclass) WITH ($hnsw_with);"
        build_pg=$t_wall
    fi
    echo "CREATE INDEX on the first $nbuild rows: (a) on $build_on s, (b) off $build_off s$([ "$have_pgvector" = 1 ] && echo ", (d) pgvector $build_pg s") (wall)."
    echo
    echo "| batch | rows | INSERT s (on / off / pgvector) | VACUUM s (on / off / pgvector) | VACUUM CPU s (on / off) | clusters (on / off) | rows per cluster, on: max / mean | delta rows (on / off) | compactions (on) | index MiB (on / off) | QPS default (on / off) | p50 ms default (on / off) | QPS fixed (on / off) | p50 ms fixed (on / off) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

    tot_ins_on=0 tot_vac_on=0 tot_cpu_on=0 tot_ins_off=0 tot_vac_off=0 tot_ins_pg=0 tot_vac_pg=0
    for ((b = 0; b <= nbatches; b++)); do
        ins_on=- vac_on=- cpu_on=- ins_off=- vac_off=- cpu_off=- ins_pg=- vac_pg=-
        if [ "$b" -gt 0 ]; then
            lo=$((nbuild + (b - 1) * per))
            hi=$((nbuild + b * per))
            [ "$b" = "$nbatches" ] && hi=$rows
            progress "$name: batch $b of $nbatches: ids $lo .. $((hi - 1))"
            ins="INSERT INTO items SELECT * FROM stage WHERE id >= $lo AND id < $hi;"
            timed "$vsdb" "$ins"
            ins_on=$t_wall
            timed "$vsdb" 'VACUUM items;'
            vac_on=$t_wall cpu_on=$t_cpu
            timed "$offdb" "$ins"
            ins_off=$t_wall
            timed "$offdb" 'VACUUM items;'
            vac_off=$t_wall cpu_off=$t_cpu
            tot_ins_on=$(add "$tot_ins_on" "$ins_on")
            tot_vac_on=$(add "$tot_vac_on" "$vac_on")
            tot_cpu_on=$(add "$tot_cpu_on" "$cpu_on")
            tot_ins_off=$(add "$tot_ins_off" "$ins_off")
            tot_vac_off=$(add "$tot_vac_off" "$vac_off")
            if [ "$have_pgvector" = 1 ]; then
                timed "$pvdb" "$ins"
                ins_pg=$t_wall
                timed "$pvdb" 'VACUUM items;'
                vac_pg=$t_wall
                tot_ins_pg=$(add "$tot_ins_pg" "$ins_pg")
                tot_vac_pg=$(add "$tot_vac_pg" "$vac_pg")
            fi
        else
            hi=$nbuild
        fi
        vs_read on "$vsdb"
        vs_read off "$offdb"
        progress "$name: batch $b: queries"
        measure "$vsdb" "$default_sql"
        r_on_def=$m_recall q_on_def=$m_qps p_on_def=$m_p50
        measure "$offdb" "$default_sql"
        r_off_def=$m_recall q_off_def=$m_qps p_off_def=$m_p50
        measure "$vsdb" "$fixed_sql"
        r_on_fix=$m_recall q_on_fix=$m_qps p_on_fix=$m_p50
        measure "$offdb" "$fixed_sql"
        r_off_fix=$m_recall q_off_fix=$m_qps p_off_fix=$m_p50
        echo "| $b | $hi | $ins_on / $ins_off / $ins_pg | $vac_on / $vac_off / $vac_pg | $cpu_on / $cpu_off | $on_cl / $off_cl | $on_max / $on_mean | $on_delta / $off_delta | $on_comp | $(mib "$on_bytes") / $(mib "$off_bytes") | $q_on_def / $q_off_def | $p_on_def / $p_off_def | $q_on_fix / $q_off_fix | $p_on_fix / $p_off_fix |"
    done
    echo
    inserted=$((rows - nbuild))
    # (a)'s state after the last batch stays in on_*: the deletion step's
    # "before"

    # (c) fresh: REINDEX of (b)'s index with (a)'s definition
    progress "$name: (c) REINDEX"
    sqld "$offdb" -c 'ALTER INDEX items_emb RESET (compaction_threshold)'
    timed "$offdb" 'REINDEX INDEX items_emb;'
    reindex_s=$t_wall
    vs_read fr "$offdb"
    measure "$offdb" "$default_sql"
    r_fr_def=$m_recall q_fr_def=$m_qps p_fr_def=$m_p50
    measure "$offdb" "$fixed_sql"
    r_fr_fix=$m_recall q_fr_fix=$m_qps p_fr_fix=$m_p50

    # (d) pgvector at its defaults
    r_pg=- q_pg=- p_pg=- bytes_pg=-
    if [ "$have_pgvector" = 1 ]; then
        progress "$name: (d) pgvector queries"
        measure "$pvdb" "$default_sql"
        r_pg=$m_recall q_pg=$m_qps p_pg=$m_p50
        bytes_pg=$(sqld "$pvdb" -tAc "SELECT pg_relation_size('items_emb')")
    fi

    echo "After the last batch ($rows rows; recall@10 against the files' ground truth):"
    echo
    echo "| configuration | index MiB | fork MiB (free) + segment MiB (files) | clusters | rows per cluster max / mean | delta rows | recall@10 default | QPS default | p50 ms default | recall@10 fixed | QPS fixed | p50 ms fixed |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    echo "| (a) compaction on | $(mib "$on_bytes") | $(space on) | $on_cl | $on_max / $on_mean | $on_delta | $r_on_def | $q_on_def | $p_on_def | $r_on_fix | $q_on_fix | $p_on_fix |"
    echo "| (b) compaction off | $(mib "$off_bytes") | $(space off) | $off_cl | $off_max / $off_mean | $off_delta | $r_off_def | $q_off_def | $p_off_def | $r_off_fix | $q_off_fix | $p_off_fix |"
    echo "| (c) fresh REINDEX ($reindex_s s) | $(mib "$fr_bytes") | $(space fr) | $fr_cl | $fr_max / $fr_mean | $fr_delta | $r_fr_def | $q_fr_def | $p_fr_def | $r_fr_fix | $q_fr_fix | $p_fr_fix |"
    if [ "$have_pgvector" = 1 ]; then
        echo "| (d) pgvector hnsw, ef_search 40 | $(mib "$bytes_pg") | relation | - | - | - | $r_pg | $q_pg | $p_pg | - | - | - |"
    fi
    echo
    vs_all_on=$(add "$tot_ins_on" "$tot_vac_on")
    vs_all_off=$(add "$tot_ins_off" "$tot_vac_off")
    echo "- QPS (a) on / (c) fresh: default $(div "$q_on_def" "$q_fr_def" '%.2fx'), fixed $(div "$q_on_fix" "$q_fr_fix" '%.2fx'); (b) off / (c) fresh: default $(div "$q_off_def" "$q_fr_def" '%.2fx'), fixed $(div "$q_off_fix" "$q_fr_fix" '%.2fx')"
    echo "- recall@10 (a) on - (c) fresh: default $(sub "$r_on_def" "$r_fr_def"), fixed $(sub "$r_on_fix" "$r_fr_fix"); (b) off - (c) fresh: default $(sub "$r_off_def" "$r_fr_def"), fixed $(sub "$r_off_fix" "$r_fr_fix")"
    echo "- $inserted rows inserted: (a) on INSERT $tot_ins_on s + VACUUM $tot_vac_on s (CPU $tot_cpu_on s) = $vs_all_on s, $(div "$inserted" "$vs_all_on" '%.0f') rows/s; (b) off INSERT $tot_ins_off s + VACUUM $tot_vac_off s = $vs_all_off s, $(div "$inserted" "$vs_all_off" '%.0f') rows/s"
    if [ "$have_pgvector" = 1 ]; then
        pg_all=$(add "$tot_ins_pg" "$tot_vac_pg")
        echo "- (d) pgvector INSERT $tot_ins_pg s ($(div "$inserted" "$tot_ins_pg" '%.0f') rows/s) + VACUUM $tot_vac_pg s = $pg_all s"
        echo "- insert throughput vecstore (a) (INSERT + VACUUM) / pgvector: $(div "$tot_ins_pg" "$vs_all_on" '%.2fx') against its INSERTs alone, $(div "$pg_all" "$vs_all_on" '%.2fx') against INSERT + VACUUM"
    fi
    echo "- (a) after the last VACUUM: $on_delta delta rows ($(div "$((on_delta * 100))" "$rows" '%.1f') % of the rows), $on_dead dead rows, $on_comp compactions$([ "$on_delta" = 0 ] || echo ' (clusters whose new rows are under compaction_threshold, or 64 rows, are not re-sealed)')"
    echo "- compaction's cost: VACUUM (a) on $tot_vac_on s against (b) off $tot_vac_off s (wall), $(div "$tot_vac_on" "$vs_all_on" '%.2f') of (a)'s insert + VACUUM time"
    echo

    # deletion: half the rows
    if [ "$do_delete" = 1 ]; then
        progress "$name: deleting half the rows"
        timed "$vsdb" 'DELETE FROM items WHERE id % 2 = 0;'
        del_s=$t_wall
        timed "$vsdb" 'VACUUM items;'
        dvac_s=$t_wall dvac_cpu=$t_cpu
        vs_read d "$vsdb"
        sqld "$offdb" -c 'ALTER INDEX items_emb SET (compaction_threshold = 0)' \
            -c 'DELETE FROM items WHERE id % 2 = 0' -c 'VACUUM items' \
            -c 'ALTER INDEX items_emb RESET (compaction_threshold)'
        timed "$offdb" 'REINDEX INDEX items_emb;'
        dreindex_s=$t_wall
        vs_read df "$offdb"
        left=$(sqld "$vsdb" -tAc 'SELECT count(*) FROM items')
        progress "$name: exact ground truth of the $left rows left"
        refresh_gt
        measure "$vsdb" "$default_sql"
        r_d_def=$m_recall q_d_def=$m_qps
        measure "$vsdb" "$fixed_sql"
        r_d_fix=$m_recall q_d_fix=$m_qps
        measure "$offdb" "$default_sql"
        r_df_def=$m_recall q_df_def=$m_qps
        measure "$offdb" "$fixed_sql"
        r_df_fix=$m_recall q_df_fix=$m_qps
        echo "Half the rows deleted (\`DELETE FROM items WHERE id % 2 = 0\`, $del_s s; VACUUM $dvac_s s wall, CPU $dvac_cpu s); recall@10 against the exact ground truth of the $left rows left:"
        echo
        echo "| index | live rows | index MiB | fork MiB (free) + segment MiB (files) | clusters | rows per cluster min / mean / max | delta rows | dead rows | recall@10 default | QPS default | recall@10 fixed | QPS fixed |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
        echo "| (a) before the DELETE | $rows | $(mib "$on_bytes") | $(space on) | $on_cl | $on_min / $on_mean / $on_max | $on_delta | $on_dead | $r_on_def | $q_on_def | $r_on_fix | $q_on_fix |"
        echo "| (a) after DELETE + VACUUM | $left | $(mib "$d_bytes") | $(space d) | $d_cl | $d_min / $d_mean / $d_max | $d_delta | $d_dead | $r_d_def | $q_d_def | $r_d_fix | $q_d_fix |"
        echo "| fresh build of the rows left (REINDEX $dreindex_s s) | $left | $(mib "$df_bytes") | $(space df) | $df_cl | $df_min / $df_mean / $df_max | $df_delta | $df_dead | $r_df_def | $q_df_def | $r_df_fix | $q_df_fix |"
        echo
        echo "- index bytes after / before the DELETE: $(div "$d_bytes" "$on_bytes" '%.2f'); (a) after / fresh build: $(div "$d_bytes" "$df_bytes" '%.2fx') ($(mib "$d_bytes") MiB against $(mib "$df_bytes") MiB); without the fork's free pages (reusable, not returned): $(div "$((d_bytes - d_free))" "$((df_bytes - df_free))" '%.2fx')"
        echo "- mean rows per cluster: (a) before $on_mean, after $d_mean, fresh $df_mean; max: before $on_max, after $d_max, fresh $df_max"
        echo
    fi
    if [ -s "$work/notes" ]; then
        cat "$work/notes"
        echo
    fi
    for db in $engines; do
        sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS items, stage'
    done
done

progress finished
vs_server_stop
