# shellcheck shell=bash
# (globals come from, and go to, the sourcing script)
# shellcheck disable=SC2034,SC2154
# bench/lib.sh - helpers shared by the database benchmarks (bench/ivf.sh,
# bench/pipeline.sh).  A library: source it, do not run it.
#
# The functions read these globals of the calling script:
#   vsdb, pvdb       the vecstore and the pgvector database
#   have_pgvector    1 when the pgvector database exists
#   datasets         the BENCH_DATASETS filter (empty: every set)
#   nq, k, warm      queries per configuration, top-k, untimed warm-up queries
#   op               the current dataset's distance operator (<-> or <=>)
#   probes_spec      the default probes sweep of probes_for
# dataset_params sets name, op, opclass, dim and rows; load_dataset sets
# dbs and load_s.  Commands run from the repository root (tools/fvecs2pg).

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "bench/lib.sh is a library for the benchmarks: source it" >&2
    exit 1
fi

# sqld DB ARGS... - psql on database DB, quiet, stop at the first error.
sqld() {
    local db=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}
# now / since T0 - wall clock in seconds, elapsed seconds (2 decimals).
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# selected NAME - whether dataset NAME passes the BENCH_DATASETS filter.
selected() {
    local want
    [ -n "$datasets" ] || return 0
    for want in ${datasets//,/ }; do
        case $1 in *"$want"*) return 0 ;; esac
    done
    return 1
}

# setup_db DB DIM - (re)create the per-dataset tables in DB.
setup_db() {
    sqld "$1" <<EOF
SET client_min_messages = warning;
DROP TABLE IF EXISTS items, queries, groundtruth, timings, plans;
CREATE TABLE items (id int PRIMARY KEY, embedding vector($2));
CREATE TABLE queries (id int PRIMARY KEY, embedding vector($2));
CREATE TABLE groundtruth (query_id int PRIMARY KEY, neighbors int[]);
CREATE TABLE timings (run int, query_id int, ids int[], ms float8);
CREATE TABLE plans (run int, plan text);
EOF
}

# copy_table TABLE - copy TABLE from the vecstore database to the pgvector
# one in the binary COPY format.
copy_table() {
    sqld "$vsdb" -c "\\copy $1 to pstdout (format binary)" |
        sqld "$pvdb" -c "\\copy $1 from pstdin (format binary)"
}

# dataset_params DIR - set name, op, opclass, dim and rows for the dataset
# in DIR (<=> with vector_cosine_ops for the angular sets, else <-> with
# vector_l2_ops).
dataset_params() {
    local dir=$1
    name=$(basename "$dir")
    case $name in
        *angular*) op='<=>' opclass=vector_cosine_ops ;;
        *) op='<->' opclass=vector_l2_ops ;;
    esac
    dim=$(od -An -t d4 -N4 "$dir/base.fvecs" | tr -d ' ')
    rows=$(($(stat -c %s "$dir/base.fvecs") / (4 + 4 * dim)))
}

# load_dataset DIR - base.fvecs into items, the first nq queries and their
# top-k ground truth, in the vecstore database and (have_pgvector = 1) the
# pgvector one; VACUUM ANALYZE, and a read of the table to warm it.  Sets
# dbs (the databases loaded) and load_s.  Call dataset_params first.
load_dataset() {
    local dir=$1 t0
    t0=$(now)
    setup_db "$vsdb" "$dim"
    ./tools/fvecs2pg "$dir/base.fvecs" | sqld "$vsdb" -c '\copy items from pstdin'
    ./tools/fvecs2pg --limit "$nq" "$dir/query.fvecs" | sqld "$vsdb" -c '\copy queries from pstdin'
    ./tools/fvecs2pg --ivecs --k "$k" --limit "$nq" "$dir/groundtruth.ivecs" |
        sqld "$vsdb" -c '\copy groundtruth from pstdin'
    load_finish "$t0"
}

# load_finish T0 - after items, queries and groundtruth are in the vecstore
# database: the same into the pgvector one (have_pgvector = 1), VACUUM
# ANALYZE, and a read of the table to warm it.  Sets dbs (the databases
# loaded) and load_s (seconds since T0).
load_finish() {
    local db
    dbs=$vsdb
    if [ "$have_pgvector" = 1 ]; then
        setup_db "$pvdb" "$dim"
        copy_table items
        copy_table queries
        copy_table groundtruth
        dbs="$vsdb $pvdb"
    fi
    for db in $dbs; do
        sqld "$db" -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
        sqld "$db" -tAc "SELECT count(*) FROM items WHERE vector_dims(embedding) = $dim" >/dev/null
    done
    load_s=$(since "$1")
}

# exact_gt GT SOURCE [N] - the exact top-k of the first N queries (every
# query without N) among the rows of SOURCE (a table with id and
# embedding) into GT, by sequential scan (ties by lower id), in the
# vecstore database.
exact_gt() {
    local first=
    [ -z "${3:-}" ] || first="ORDER BY id LIMIT $3"
    sqld "$vsdb" <<EOF
SET enable_indexscan = off;
SET enable_bitmapscan = off;
INSERT INTO $1 (query_id, neighbors)
SELECT q.id, (SELECT array_agg(id ORDER BY d, id)
                FROM (SELECT id, embedding $op q.embedding AS d
                        FROM $2 ORDER BY d, id LIMIT $k) n)
  FROM (SELECT * FROM queries $first) q;
EOF
}

# run_queries DB RUN SETTINGS [AFTER] - in one session on DB: SETTINGS (SET
# commands, after max_parallel_workers_per_gather = 0), then a plpgsql
# block that stores the plan of the first query in plans, runs warm
# untimed warm-up queries (so the first query of a session, which maps and
# checks a segment file, is not counted), then times each of the queries
# with clock_timestamp() into timings under RUN; then AFTER, psql input run
# in the same session (the same backend) once the queries are done.  When
# the caller's variable "where" is set, every query has that WHERE clause.
run_queries() {
    local db=$1 run=$2 settings=$3 after=${4:-} w=
    [ -z "${where:-}" ] || w="WHERE $where"
    sqld "$db" <<EOF
SET max_parallel_workers_per_gather = 0;
$settings
DO \$\$
DECLARE
    q record;
    t0 timestamptz;
    r int[];
    line text;
    p text;
BEGIN
    -- the plan the first query gets (its value as a parameter)
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT id FROM items $w ORDER BY embedding $op \$1 LIMIT $k'
            USING (SELECT embedding FROM queries ORDER BY id LIMIT 1) LOOP
        p := coalesce(p || E'\n', '') || line;
    END LOOP;
    INSERT INTO plans VALUES ($run, p);
    -- warm-up: maps the segment, loads the centroids, fills the caches
    FOR q IN SELECT id, embedding FROM queries ORDER BY id LIMIT $warm LOOP
        SELECT array_agg(id) INTO r
          FROM (SELECT id FROM items $w ORDER BY embedding $op q.embedding LIMIT $k) n;
    END LOOP;
    FOR q IN SELECT id, embedding FROM queries ORDER BY id LOOP
        t0 := clock_timestamp();
        SELECT array_agg(id) INTO r
          FROM (SELECT id FROM items $w ORDER BY embedding $op q.embedding LIMIT $k) n;
        INSERT INTO timings VALUES ($run, q.id, r,
            extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
END
\$\$;
$after
EOF
}

# run_plan DB RUN - the plan run_queries stored for RUN.
run_plan() {
    sqld "$1" -tAc "SELECT plan FROM plans WHERE run = $2"
}

# first_plan DB SETTINGS - the plan of the first query under SETTINGS (the
# query vector a constant, as in run_queries' EXPLAIN; runs no query).
first_plan() {
    local db=$1 settings=$2
    sqld "$db" -tA <<EOF
SET max_parallel_workers_per_gather = 0;
$settings
SELECT embedding AS bench_q FROM queries ORDER BY id LIMIT 1 \\gset
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY embedding $op :'bench_q' LIMIT $k;
EOF
}

# plan_summary PLAN - a plan on one line ("Limit > Index Scan using ...").
plan_summary() {
    grep -v 'Key:' <<<"$1" | sed 's/^ *\(-> *\)\{0,1\}//' | cut -c1-60 | paste -sd '>' | sed 's/>/ > /g'
}

# query_stats DB RUN - recall@k, QPS, p50 and p99 ms of RUN, tab-separated.
# A returned id is a hit when it is a true neighbour or as near as the k-th
# one (under the benchmark's own operator: ties count).  QPS = queries /
# summed query time.
query_stats() {
    local db=$1 run=$2
    sqld "$db" -tA -F $'\t' <<EOF
WITH per AS (
    SELECT t.ms,
           (SELECT count(*) FROM unnest(t.ids) i
             WHERE i = ANY (g.neighbors)
                OR (SELECT it.embedding $op q.embedding FROM items it WHERE it.id = i)
                   <= (SELECT it.embedding $op q.embedding FROM items it WHERE it.id = g.neighbors[$k]) + 1e-6
           ) AS hits
      FROM timings t JOIN groundtruth g ON g.query_id = t.query_id
      JOIN queries q ON q.id = t.query_id
     WHERE t.run = $run)
SELECT round((avg(hits) / $k)::numeric, 3),
       round((count(*) / (sum(ms) / 1000))::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2)
  FROM per;
EOF
}

# probes_for LIMIT [SPEC] - the probes sweep SPEC (default probes_spec),
# values at or above LIMIT replaced by one LIMIT.
probes_for() {
    local p out='' capped=0
    for p in ${2:-$probes_spec}; do
        if [ "$p" -ge "$1" ]; then
            [ "$capped" = 1 ] || out="$out $1"
            capped=1
        else
            out="$out $p"
        fi
    done
    echo "$out"
}

# bench_server NAME - the benchmark's throwaway server: tools/pgserver.sh's
# vs_init and vs_server_start NAME (tmp_check/NAME), after checking that
# vecstore is installed and building tools/fvecs2pg when it is missing or
# older than its source.  The caller sets VECSTORE_PGPORT first.
bench_server() {
    local name=$1
    ./tools/deps.sh >/dev/null
    # shellcheck source=tools/pgserver.sh
    . "$repo/tools/pgserver.sh"
    vs_init "$repo"
    if [ ! -f "$VS_PG_PKGLIBDIR/vecstore.so" ]; then
        echo "$(basename "$0"): vecstore is not installed in $VS_PG_PKGLIBDIR: run make install first" >&2
        exit 1
    fi
    mkdir -p tmp_check
    if [ ! -x tools/fvecs2pg ] || [ tools/fvecs2pg.c -nt tools/fvecs2pg ]; then
        make -s tools/fvecs2pg >"tmp_check/$name-build.log" 2>&1
    fi
    vs_server_start "$name" >/dev/null
}

# bench_databases - vsdb with vecstore, and pvdb with pgvector when
# want_pgvector is 1 and the server has it; sets have_pgvector.
bench_databases() {
    sqld postgres -c "CREATE DATABASE $vsdb"
    sqld "$vsdb" -c 'CREATE EXTENSION vecstore'
    have_pgvector=0
    if [ "$want_pgvector" = 1 ] &&
        [ "$(sqld postgres -tAc "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")" = 1 ]; then
        sqld postgres -c "CREATE DATABASE $pvdb"
        sqld "$pvdb" -c 'CREATE EXTENSION vector'
        have_pgvector=1
    fi
}
