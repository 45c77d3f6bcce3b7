#!/usr/bin/env bash
# IVF index benchmark: recall@10, queries per second and latency against
# vecstore.probes, build time and index size, on every shared dataset, for
# the vecstore index and (when the server has it) pgvector's ivfflat at the
# same lists and probes, in one run on one throwaway server.  It prints
# figures and asserts nothing.
#
#   ./bench/ivf.sh                  everything (about 7 min on a 2-core VM,
#                                   9-11 min with BENCH_PGBENCH=1)
#   BENCH_QUERIES=50 BENCH_SKIP_1M=1 ./bench/ivf.sh   a quick look (1-2 min)
#
# Knobs (environment):
#   BENCH_QUERIES   queries per configuration (default 200; the first ones
#                   of query.fvecs)
#   BENCH_DATASETS  dataset directory names, or parts of them, separated by
#                   spaces or commas (default: every set in ../shared/data)
#   BENCH_LISTS     which lists values to build (default "auto sqrt"):
#                   auto = rows/1000, vecstore's own choice (it is built
#                   with lists = auto) and pgvector's advice up to 1M rows;
#                   sqrt = round(sqrt(rows)), the usual IVF rule of thumb,
#                   more and smaller clusters at these sizes; or numbers.
#                   ivfflat is built with the same number.
#   BENCH_PROBES    the probes sweep (default "1 2 4 8 16 32 64"); values
#                   above lists are replaced by lists (every cluster)
#   BENCH_SKIP_1M   1 skips the 1,000,000 x 128 synthetic build-time test
#   BENCH_1M_ROWS   rows of that synthetic set (default 1000000)
#   BENCH_PGBENCH   1 also runs each configuration through pgbench
#                   (-M prepared, one client) and adds a "pgbench QPS" column
#   BENCH_PGVECTOR  0 leaves pgvector out even when it is installed
#   BENCH_FORCE_INDEX  1 sets enable_seqscan = off for the index runs, to
#                   see the index where the planner would not choose it
#                   (by default the planner decides, and a row whose plan
#                   is not an index scan is marked)
#
# Method.  The two extensions both define a type named vector, so each gets
# its own database (bench_vecstore, bench_pgvector); the pgvector database
# receives the same rows through COPY (FORMAT binary) from the vecstore one
# (the binary forms are the same).  Per dataset: base.fvecs into items(id,
# embedding), the first BENCH_QUERIES rows of query.fvecs, their top-10
# ground truth.  The exact scan (no index) is measured first, then for each
# lists value: CREATE INDEX (wall time, after a CHECKPOINT,
# max_parallel_maintenance_workers = 0, the server's maintenance_work_mem
# of 64MB), the index size (vecstore: fork bytes + segment file bytes from
# vecstore_index_info; ivfflat: pg_relation_size), and for each probes
# value the queries `SELECT id FROM items ORDER BY embedding <op> q LIMIT
# 10` (<-> with vector_l2_ops on the euclidean sets, <=> with
# vector_cosine_ops on GloVe), each timed in the server with
# clock_timestamp() in a plpgsql loop after 10 untimed warm-up queries (so
# the first query of a session, which maps and checks the segment file, is
# not counted), with max_parallel_workers_per_gather = 0 (one core).  QPS = queries / summed
# query time; p50 and p99 are of the per-query times.  recall@10 counts a
# returned id as a hit when it is a true top-10 neighbour or is no farther
# than the 10th one (ties), as bench/seqscan.sh does.  The plan of the
# first query is checked: a configuration whose plan is not an index scan
# is marked "(no index scan!)".
#
# Then the build time of a synthetic clustered 1,000,000 x 128 set
# (tools/fvecs2pg --random, lists = 1000) at maintenance_work_mem 256MB
# and 64MB, with the build phases as pg_stat_progress_create_index shows
# them (vecstore), and for ivfflat also with 2 parallel maintenance
# workers.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-200}
datasets=${BENCH_DATASETS:-}
lists_spec=${BENCH_LISTS:-auto sqrt}
probes_spec=${BENCH_PROBES:-1 2 4 8 16 32 64}
skip_1m=${BENCH_SKIP_1M:-0}
rows_1m=${BENCH_1M_ROWS:-1000000}
use_pgbench=${BENCH_PGBENCH:-0}
force_index=${BENCH_FORCE_INDEX:-0}
want_pgvector=${BENCH_PGVECTOR:-1}
k=10
warm=10
vsdb=bench_vecstore
pvdb=bench_pgvector

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

./tools/deps.sh >/dev/null
# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"
mkdir -p tmp_check
make -s -j"$(nproc)" >tmp_check/bench-build.log 2>&1
vs_make_install >>tmp_check/bench-build.log 2>&1
make -s tools/fvecs2pg >>tmp_check/bench-build.log 2>&1
vs_server_start ivfbench >/dev/null

work=$(mktemp -d /tmp/vecstore-ivf.XXXXXX)
VS_TMPDIRS+=("$work")
# dataset engine label nlists probes recall qps p50 p99 build_s bytes
results=$work/results.tsv
: >"$results"

sqld postgres -c "CREATE DATABASE $vsdb"
sqld "$vsdb" -c 'CREATE EXTENSION vecstore'
have_pgvector=0
if [ "$want_pgvector" = 1 ] &&
    [ "$(sqld postgres -tAc "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")" = 1 ]; then
    sqld postgres -c "CREATE DATABASE $pvdb"
    sqld "$pvdb" -c 'CREATE EXTENSION vector'
    have_pgvector=1
fi

echo "## IVF index benchmark"
echo
echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; PostgreSQL $(sqld postgres -tAc 'SHOW server_version')"
echo "- vecstore $(sqld "$vsdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'"), kernels $(sqld "$vsdb" -tAc 'SHOW vecstore.simd')"
if [ "$have_pgvector" = 1 ]; then
    echo "- pgvector $(sqld "$pvdb" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vector'") (ivfflat), in its own database"
elif [ "$want_pgvector" = 1 ]; then
    echo "- pgvector not installed: skipped"
else
    echo "- pgvector left out (BENCH_PGVECTOR=0)"
fi
echo "- $nq queries per configuration (+$warm untimed warm-up), top-$k, one core (max_parallel_workers_per_gather = 0); lists: $lists_spec; probes: $probes_spec"
if [ "$force_index" = 1 ]; then
    echo "- BENCH_FORCE_INDEX=1: enable_seqscan = off for the index runs"
fi
echo "- build: CREATE INDEX wall time, max_parallel_maintenance_workers = 0, maintenance_work_mem = $(sqld postgres -tAc 'SHOW maintenance_work_mem'); index MiB = vecstore fork + segment file (ivfflat: relation size)"
echo

run=0
force_sql=
if [ "$force_index" = 1 ]; then
    force_sql=$'\nSET enable_seqscan = off;'
fi
# measure DB ENGINE LABEL NLISTS PROBES SETTINGS BUILD_S BYTES - run the
# queries of the current dataset on DB with SETTINGS (SET commands) and
# print one markdown row; appends the figures to $results.  ENGINE is
# vecstore, ivfflat or exact (then LABEL says which extension's scan).
measure() {
    local db=$1 engine=$2 label=$3 nlists=$4 probes=$5 settings=$6 build_s=$7 bytes=$8
    local row plan mark='' pgb='' tps
    run=$((run + 1))
    run_queries "$db" "$run" "$settings"
    plan=$(run_plan "$db" "$run")
    if [ "$engine" != exact ] && ! grep -q 'Index Scan using' <<<"$plan"; then
        mark=' (no index scan!)'
        echo "$engine lists=$label probes=$probes: the planner chose" \
            "$(plan_summary "$plan")" \
            >>"$work/plan_notes"
    fi
    if [ "$use_pgbench" = 1 ]; then
        cat >"$work/pgbench.sql" <<EOF
\\set qid random(0, $((nq - 1)))
SELECT id FROM items ORDER BY embedding $op (SELECT embedding FROM queries WHERE id = :qid) LIMIT $k;
EOF
        tps=$(PGOPTIONS="-c max_parallel_workers_per_gather=0 $(sed -n 's/^SET \([a-z_.]*\) = \(.*\);$/-c \1=\2/p' <<<"$settings" | tr '\n' ' ')" \
            "$VS_PG_BINDIR/pgbench" -n -M prepared -c 1 -t "$nq" -f "$work/pgbench.sql" "$db" 2>&1 |
            sed -n 's/^tps = \([0-9.]*\) .*without initial.*/\1/p')
        pgb=" $(printf '%.1f' "${tps:-0}") |"
    fi
    # a returned id is a hit when it is a true neighbour or as near as the
    # k-th one (under the benchmark's own operator)
    row=$(query_stats "$db" "$run")
    local recall qps p50 p99
    IFS=$'\t' read -r recall qps p50 p99 <<<"$row"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$engine" "$label" "$nlists" \
        "$probes" "$recall" "$qps" "$p50" "$p99" "$build_s" "$bytes" >>"$results"
    local ecol=$engine lcol=$label mcol=-
    if [ "$engine" = exact ]; then
        ecol="exact scan ($label)"
        lcol=-
    fi
    [ "$bytes" != - ] && mcol=$(mib "$bytes")
    echo "| $ecol | $lcol | $probes$mark | $recall | $qps | $p50 | $p99 | $build_s | $mcol |$pgb"
}

# build DB AM LISTS - CREATE INDEX items_emb; sets build_s and index_bytes
# (and index_detail, a breakdown for vecstore).
build() {
    local db=$1 am=$2 lists=$3 t0
    sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS items_emb' -c CHECKPOINT
    t0=$(now)
    sqld "$db" -c 'SET max_parallel_maintenance_workers = 0' \
        -c "CREATE INDEX items_emb ON items USING $am (embedding $opclass) WITH (lists = $lists)"
    build_s=$(since "$t0")
    if [ "$am" = vecstore ]; then
        IFS=$'\t' read -r index_bytes index_detail clusters <<<"$(sqld "$db" -tA -F $'\t' -c \
            "SELECT fork_bytes + segment_bytes,
                    format('fork %s MiB + segment %s MiB', round(fork_bytes / 1048576.0, 1),
                           round(segment_bytes / 1048576.0, 1)), clusters
               FROM vecstore_index_info('items_emb')")"
    else
        index_bytes=$(sqld "$db" -tAc "SELECT pg_relation_size('items_emb')")
        index_detail=
        clusters=$lists
    fi
    sqld "$db" -c 'ANALYZE items'
}

for dir in "$data_root"/*/; do
    [ -f "$dir/base.fvecs" ] || continue
    selected "$(basename "$dir")" || continue
    dataset_params "$dir"
    load_dataset "$dir"

    echo "### $name ($rows x $dim, $op, $opclass)"
    echo
    echo "(loaded in $load_s s)"
    echo
    hdr="| engine | lists | probes | recall@10 | QPS | p50 ms | p99 ms | build s | index MiB |"
    sep="|---|---|---|---|---|---|---|---|---|"
    if [ "$use_pgbench" = 1 ]; then
        hdr="$hdr pgbench QPS |"
        sep="$sep---|"
    fi
    echo "$hdr"
    echo "$sep"

    measure "$vsdb" exact vecstore - - '' - -
    if [ "$have_pgvector" = 1 ]; then
        measure "$pvdb" exact pgvector - - '' - -
    fi

    details=()
    : >"$work/plan_notes"
    for spec in $lists_spec; do
        case $spec in
            auto) lists=$((rows / 1000)); [ "$lists" -ge 1 ] || lists=1; vsopt=0 ;;
            sqrt) lists=$(awk -v n="$rows" 'BEGIN { printf "%d", sqrt(n) + 0.5 }'); vsopt=$lists ;;
            *) lists=$spec; vsopt=$spec ;;
        esac

        build "$vsdb" vecstore "$vsopt"
        label=$lists
        [ "$vsopt" = 0 ] && label="auto ($clusters)"
        details+=("vecstore lists=$label: $index_detail")
        for p in $(probes_for "$clusters"); do
            measure "$vsdb" vecstore "$label" "$lists" "$p" "SET vecstore.probes = $p;$force_sql" "$build_s" "$index_bytes"
        done
        sqld "$vsdb" -c 'DROP INDEX items_emb'

        if [ "$have_pgvector" = 1 ]; then
            build "$pvdb" ivfflat "$lists"
            for p in $(probes_for "$lists"); do
                measure "$pvdb" ivfflat "$lists" "$lists" "$p" "SET ivfflat.probes = $p;$force_sql" "$build_s" "$index_bytes"
            done
            sqld "$pvdb" -c 'DROP INDEX items_emb'
        fi
    done
    echo
    for d in "${details[@]}"; do
        echo "- $d"
    done
    sed 's/^/- no index scan: /' "$work/plan_notes"

    # where each index first reaches recall@10 >= 0.95, against the exact
    # scan and the other engine at the same lists
    awk -F '\t' -v ds="$name" '
        $1 != ds { next }
        $2 == "exact" { exq[$3] = $7; next }
        {
            key = $2 SUBSEP $4
            if (!(key in lab)) { order[++n] = key; lab[key] = $3 }
            if (!(key in hp) && $6 >= 0.95) { hp[key] = $5; hr[key] = $6; hq[key] = $7 }
        }
        END {
            for (i = 1; i <= n; i++) {
                key = order[i]
                split(key, a, SUBSEP)
                ex = (a[1] == "vecstore") ? "vecstore" : "pgvector"
                if (!(key in hp)) {
                    print "- " a[1] " lists=" lab[key] ": recall@10 < 0.95 at every probes value tried"
                    continue
                }
                line = sprintf("- %s lists=%s: recall@10 >= 0.95 from probes %s (recall %s, %s QPS = %.1fx its exact scan)",
                               a[1], lab[key], hp[key], hr[key], hq[key], hq[key] / exq[ex])
                o = "ivfflat" SUBSEP a[2]
                if (a[1] == "vecstore" && (o in hp))
                    line = line sprintf("; ivfflat lists=%s: from probes %s (recall %s, %s QPS); vecstore/ivfflat QPS, each at that point: %.2fx",
                                        a[2], hp[o], hr[o], hq[o], hq[key] / hq[o])
                print line
            }
        }' "$results"
    echo
done

# ---------------------------------------------------------------------------
# build time on a synthetic 1M x 128 set

# build_1m DB AM MWM WORKERS - build big_emb on big, print a table row.
build_1m() {
    local db=$1 am=$2 mwm=$3 workers=$4 t0 s bytes detail='' phases='' poller
    sqld "$db" -c 'SET client_min_messages = warning' -c 'DROP INDEX IF EXISTS big_emb' -c CHECKPOINT
    # poll the build's progress, logging each phase change with its time
    (
        last=
        # (ends when killed, or when the script has gone)
        while [ -d "$work" ] && kill -0 $$ 2>/dev/null; do
            ph=$(sqld "$db" -tAc "SELECT phase FROM pg_stat_progress_create_index WHERE datname = current_database()" 2>/dev/null || true)
            if [ -n "$ph" ] && [ "$ph" != "$last" ]; then
                echo "$EPOCHREALTIME $ph"
                last=$ph
            fi
            sleep 0.2
        done
    ) >"$work/phases" &
    poller=$!
    t0=$(now)
    local ok=1
    sqld "$db" -c "SET maintenance_work_mem = '$mwm'" \
        -c "SET max_parallel_maintenance_workers = $workers" \
        -c "CREATE INDEX big_emb ON big USING $am (embedding vector_l2_ops) WITH (lists = 1000)" \
        2>"$work/build.err" || ok=0
    s=$(since "$t0")
    local tend=$EPOCHREALTIME
    kill "$poller" 2>/dev/null || true
    wait "$poller" 2>/dev/null || true
    # messages (NOTICEs) go below the table
    sed "s/^/$am, $mwm: /" "$work/build.err" >>"$work/notes"
    if [ "$ok" = 0 ]; then
        echo "| $am | $mwm | $workers | failed after $s s: $(sed -n 's/^ERROR: *//p' "$work/build.err" | head -n 1) | - | - |"
        return 0
    fi
    if [ "$am" = vecstore ]; then
        IFS=$'\t' read -r bytes detail <<<"$(sqld "$db" -tA -F $'\t' -c \
            "SELECT fork_bytes + segment_bytes,
                    format('fork %s + segment %s', round(fork_bytes / 1048576.0, 1),
                           round(segment_bytes / 1048576.0, 1))
               FROM vecstore_index_info('big_emb')")"
    else
        bytes=$(sqld "$db" -tAc "SELECT pg_relation_size('big_emb')")
    fi
    # phases: "name from-start" -> "name Xs" durations (first seen to next)
    phases=$(awk -v t0="$t0" -v tend="$tend" '
        { t = $1; $1 = ""; sub(/^ /, ""); sub(/^building index: /, ""); ts[++n] = t; nm[n] = $0 }
        END { for (i = 1; i <= n; i++) { e = (i < n) ? ts[i + 1] : tend
                  out = out sprintf("%s%s %.1f", (i > 1 ? "; " : ""), nm[i], e - ts[i]) }
              print out }' "$work/phases")
    echo "| $am | $mwm | $workers | $s | $(mib "$bytes")${detail:+ ($detail)} | ${phases:--} |"
    sqld "$db" -c 'DROP INDEX big_emb'
}

if [ "$skip_1m" != 1 ]; then
    seed=42
    echo "### Build time, synthetic $rows_1m x 128 (fvecs2pg --random $rows_1m 128 $seed), lists = 1000"
    echo
    t0=$(now)
    sqld "$vsdb" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS items, queries, groundtruth, timings, plans, big' \
        -c 'CREATE TABLE big (id int, embedding vector(128))'
    ./tools/fvecs2pg --random "$rows_1m" 128 "$seed" | sqld "$vsdb" -c '\copy big from pstdin'
    dbs=$vsdb
    if [ "$have_pgvector" = 1 ]; then
        sqld "$pvdb" -c 'SET client_min_messages = warning' -c 'DROP TABLE IF EXISTS items, queries, groundtruth, timings, plans, big' \
            -c 'CREATE TABLE big (id int, embedding vector(128))'
        copy_table big
        dbs="$vsdb $pvdb"
    fi
    for db in $dbs; do
        sqld "$db" -c 'VACUUM ANALYZE big'
    done
    echo "(loaded in $(since "$t0") s; table $(mib "$(sqld "$vsdb" -tAc "SELECT pg_table_size('big')")") MiB)"
    echo
    : >"$work/notes"
    echo "| engine | maintenance_work_mem | parallel workers | build s | index MiB | phases (s, as pg_stat_progress_create_index shows them) |"
    echo "|---|---|---|---|---|---|"
    for mwm in 256MB 64MB; do
        build_1m "$vsdb" vecstore "$mwm" 0
    done
    if [ "$have_pgvector" = 1 ]; then
        for mwm in 256MB 64MB; do
            build_1m "$pvdb" ivfflat "$mwm" 0
        done
        build_1m "$pvdb" ivfflat 256MB 2
    fi
    echo
    if [ -s "$work/notes" ]; then
        sed 's/^/- /' "$work/notes"
        echo
    fi
    for db in $dbs; do
        sqld "$db" -c 'DROP TABLE big'
    done
fi

vs_server_stop
