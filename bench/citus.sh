#!/usr/bin/env bash
# (globals are shared with bench/lib.sh)
# shellcheck disable=SC2034,SC2154
# Scaling out on Citus: the same data on one node and sharded over Citus
# workers, with vecstore indexes on the shards.  Three throwaway servers
# on this machine (a coordinator and two workers, 127.0.0.1), each with
# shared_preload_libraries = 'citus,vecstore'.  It prints figures and
# asserts nothing.  It uses the vecstore and the Citus that are installed
# (run "make install" and ../shared/deps/citus/build.sh first); it builds
# tools/fvecs2pg when missing.
#
#   ./bench/citus.sh                          about 7 minutes on 2 cores
#   BENCH_SECONDS=5 BENCH_CLIENTS="1 4" ./bench/citus.sh     a smoke run
#
# Knobs (environment):
#   BENCH_DATASET   a directory of ../shared/data (default
#                   sift128-photos-euclidean: 50,000 x 128, L2)
#   BENCH_QUERIES   queries (default 200; the first ones of query.fvecs)
#   BENCH_CLIENTS   pgbench client counts (default "1 4 16")
#   BENCH_SECONDS   seconds per pgbench run (default 15)
#   BENCH_SHARDS    shards of each distributed table (default 4)
#   VECSTORE_PGPORT the coordinator's port (default 56150); the workers
#                   take the next two
#   BENCH_KEEP      1 leaves the three servers running at the end (in
#                   tmp_check/bench-citus/{coord,w1,w2}; stop them with
#                   pg_ctl -D .../data stop)
#
# Configurations, the same rows in each (tables on the coordinator's
# postgres database):
#   1 node         items_one: a plain table on the coordinator (Citus loaded,
#                  not involved);
#   2 workers      items: distributed by id over both workers
#                  (BENCH_SHARDS shards, half on each);
#   1 worker       items_w1: BENCH_SHARDS shards, all on worker 1 (worker 2
#                  marked shouldhaveshards = false while it is created);
#   the two distributed ones again with the clients' sessions at
#   citus.max_adaptive_executor_pool_size = 1 ("pool size 1": one
#   connection per worker per query, that worker's tasks one after another;
#   by default the executor opens more when tasks wait, and caches only one
#   per worker and session, so busy clients keep opening worker backends).
# Each gets CREATE INDEX ... USING vecstore (embedding vector_l2_ops) with
# no WITH clause (lists = auto, per shard on the distributed ones); build
# time is the CREATE INDEX wall time on the coordinator after a CHECKPOINT
# on every node (Citus builds the shard indexes in parallel, one connection
# per shard).  Queries: `SELECT id FROM <table> ORDER BY embedding <-> q
# LIMIT 10` at the default settings (vecstore.effort 4).
#   recall@10: the BENCH_QUERIES queries in one session (a plpgsql loop),
#     against the files' ground truth, tie-aware (a returned id is a hit
#     when its distance is <= the 10th true distance + 1e-6);
#   QPS: pgbench -M prepared, BENCH_SECONDS per client count, each
#     transaction one lookup of a random query vector in a local table of
#     the coordinator (\gset) and the kNN query with it as a parameter;
#     QPS = pgbench's tps (the lookup is in each of them, the same for
#     every configuration);
#   per shard: the same pgbench, 1 client, on worker 1 directly against
#     one shard table of items (the query vectors copied there);
#   fan-out: the same pgbench, 1 client, on items with `WHERE id < 0`
#     added (one task per shard, each an empty primary-key range scan): what
#     the coordinator, the round trips and the parameter cost without any
#     vector work;
#   work per query: vecstore_stats()'s rows examined and clusters opened
#     per scan over the queries, on the single node and on one shard; index
#     bytes per row (fork, segment, codes, graphs) of the single node's.
# Every pgbench run follows an untimed 2-second one with the same clients
# (connections, and the worker backends Citus opens for them, warm).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
dataset=${BENCH_DATASET:-sift128-photos-euclidean}
nq=${BENCH_QUERIES:-200}
clients_spec=${BENCH_CLIENTS:-1 4 16}
secs=${BENCH_SECONDS:-15}
shards=${BENCH_SHARDS:-4}
port0=${VECSTORE_PGPORT:-56150}
k=10
host=127.0.0.1
dir=$data_root/$dataset

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
./tools/deps.sh >/dev/null
# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"
for so in vecstore citus; do
    if [ ! -f "$VS_PG_PKGLIBDIR/$so.so" ]; then
        echo "citus.sh: $so is not installed in $VS_PG_PKGLIBDIR" \
            "(make install; ../shared/deps/citus/build.sh)" >&2
        exit 1
    fi
done
if [ ! -r "$dir/base.fvecs" ]; then
    echo "citus.sh: no data set in $dir" >&2
    exit 1
fi
mkdir -p tmp_check
if [ ! -x tools/fvecs2pg ] || [ tools/fvecs2pg.c -nt tools/fvecs2pg ]; then
    make -s tools/fvecs2pg >tmp_check/bench-citus-build.log 2>&1
fi

# progress MSG - a note on stderr (the figures go to stdout).
progress() {
    echo "citus.sh: $(date +%H:%M:%S) $*" >&2
}

vs_user_dir bench-citus
top=$REPLY
nodes=(coord w1 w2)
node_dirs=()
vs_on_exit() {
    local d
    [ "${BENCH_KEEP:-0}" = 0 ] || return 0
    for d in "${node_dirs[@]}"; do
        vs_stop_cluster "$d/data" fast || true
    done
}

# node_start NAME PORT - initdb and start a node in $top/NAME.
node_start() {
    local name=$1 port=$2 d=$top/$1
    vs_as_user mkdir -p "$d"
    node_dirs+=("$d")
    (cd "$d" && vs_as_user initdb -D "$d/data" -U "$VS_USER" -E UTF8 --no-locale \
        -A trust --no-sync >"$d/initdb.log" 2>&1)
    cat >>"$d/data/postgresql.conf" <<EOF

# Added by bench/citus.sh
listen_addresses = '$host'
unix_socket_directories = '$d'
port = $port
shared_preload_libraries = 'citus,vecstore'
vecstore.gpu = off
vecstore.compaction_worker = off
shared_buffers = 256MB
max_connections = 200
max_prepared_transactions = 50
max_parallel_workers_per_gather = 0
max_parallel_maintenance_workers = 0
maintenance_work_mem = 512MB
lc_messages = 'C'
log_min_messages = warning
citus.node_conninfo = 'sslmode=prefer'
citus.shard_count = $shards
EOF
    (cd "$d" && vs_as_user pg_ctl -D "$d/data" -l "$d/server.log" -w -t 120 start >/dev/null)
}

# on NODE ARGS... - psql on the postgres database of node NODE.
on() {
    local n=$1 i
    shift
    for i in "${!nodes[@]}"; do
        [ "${nodes[$i]}" = "$n" ] || continue
        PGHOST=$top/$n PGPORT=$((port0 + i)) PGUSER=$VS_USER sqld postgres "$@"
        return
    done
}

unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGOPTIONS PGDATABASE PGHOST PGPORT PGUSER
for i in "${!nodes[@]}"; do
    node_start "${nodes[$i]}" $((port0 + i))
    on "${nodes[$i]}" -c 'CREATE EXTENSION citus'
done
on coord -c "SELECT citus_set_coordinator_host('$host', $port0)" \
    -c "SELECT citus_add_node('$host', $((port0 + 1)))" \
    -c "SELECT citus_add_node('$host', $((port0 + 2)))" \
    -c 'CREATE EXTENSION vecstore' >/dev/null

dim=$(od -An -t d4 -N4 "$dir/base.fvecs" | tr -d ' ')
rows=$(($(stat -c %s "$dir/base.fvecs") / (4 + 4 * dim)))
progress "loading $rows x $dim rows of $dataset"
t0=$(now)
on coord -c "CREATE TABLE queries (id int PRIMARY KEY, embedding vector($dim))" \
    -c 'CREATE TABLE groundtruth (query_id int PRIMARY KEY, neighbors int[])' \
    -c 'CREATE TABLE results (cfg text, query_id int, ids int[])'
for t in items_one items items_w1; do
    on coord -c "CREATE TABLE $t (id int PRIMARY KEY, embedding vector($dim))"
done
on coord -c "SELECT create_distributed_table('items', 'id')" >/dev/null
on coord -c "SELECT citus_set_node_property('$host', $((port0 + 2)), 'shouldhaveshards', false)" \
    -c "SELECT create_distributed_table('items_w1', 'id', colocate_with => 'none')" \
    -c "SELECT citus_set_node_property('$host', $((port0 + 2)), 'shouldhaveshards', true)" >/dev/null
./tools/fvecs2pg "$dir/base.fvecs" | on coord -c '\copy items_one from pstdin'
./tools/fvecs2pg --limit "$nq" "$dir/query.fvecs" | on coord -c '\copy queries from pstdin'
./tools/fvecs2pg --ivecs --k "$k" --limit "$nq" "$dir/groundtruth.ivecs" |
    on coord -c '\copy groundtruth from pstdin'
on coord -c 'INSERT INTO items SELECT * FROM items_one' -c 'INSERT INTO items_w1 SELECT * FROM items_one' \
    -c 'VACUUM ANALYZE items_one' -c 'VACUUM ANALYZE items' -c 'VACUUM ANALYZE items_w1' \
    -c 'ANALYZE queries'
progress "loaded in $(since "$t0") s"

# placement TABLE - "shards on node:port ..." of a distributed table.
placement() {
    on coord -tAc "SELECT string_agg(n || ' on :' || nodeport, ', ' ORDER BY nodeport)
                     FROM (SELECT nodeport, count(*) AS n FROM citus_shards
                            WHERE table_name = '$1'::regclass GROUP BY nodeport) s"
}

declare -A build_s
for t in items_one items items_w1; do
    for n in "${nodes[@]}"; do on "$n" -c CHECKPOINT; done
    progress "CREATE INDEX on $t"
    t0=$(now)
    on coord -c "CREATE INDEX ${t}_emb ON $t USING vecstore (embedding vector_l2_ops)"
    build_s[$t]=$(since "$t0")
done

# a shard of items on worker 1, its rows and clusters, and the single node's
read -r shard shard_rows <<<"$(on coord -tA -F ' ' -c "SELECT shard_name, shard_size FROM citus_shards
    WHERE table_name = 'items'::regclass AND nodeport = $((port0 + 1)) ORDER BY shardid LIMIT 1")"
shard_rows=$(on w1 -tAc "SELECT count(*) FROM $shard")
shard_clusters=$(on w1 -tAc "SELECT clusters FROM vecstore_index_info('items_emb_${shard##*_}')")
one_clusters=$(on coord -tAc "SELECT clusters FROM vecstore_index_info('items_one_emb')")

# recall CFG TABLE - run the queries in one session into results.
recall() {
    local cfg=$1 table=$2
    on coord <<EOF
DO \$\$
DECLARE
    q record;
    r int[];
BEGIN
    FOR q IN SELECT id, embedding FROM queries ORDER BY id LOOP
        SELECT array_agg(id) INTO r
          FROM (SELECT id FROM $table ORDER BY embedding <-> q.embedding LIMIT $k) n;
        INSERT INTO results VALUES ('$cfg', q.id, r);
    END LOOP;
END
\$\$;
EOF
    on coord -tA <<EOF
WITH per AS (
    SELECT (SELECT count(*) FROM unnest(r.ids) i
             WHERE i = ANY (g.neighbors)
                OR (SELECT it.embedding <-> q.embedding FROM items_one it WHERE it.id = i)
                   <= (SELECT it.embedding <-> q.embedding FROM items_one it
                        WHERE it.id = g.neighbors[$k]) + 1e-6) AS hits
      FROM results r JOIN groundtruth g ON g.query_id = r.query_id
      JOIN queries q ON q.id = r.query_id
     WHERE r.cfg = '$cfg')
SELECT round((avg(hits) / $k)::numeric, 3) FROM per;
EOF
}

work=$(mktemp -d /tmp/vecstore-citus.XXXXXX)
VS_TMPDIRS+=("$work")
chmod 755 "$work"

# qps NODE FILE CLIENTS - pgbench's tps of FILE on NODE (with the
# server options $pgopts, when set).
qps() {
    local n=$1 f=$2 c=$3 i j
    j=$((c < 4 ? c : 4))
    for i in "${!nodes[@]}"; do
        [ "${nodes[$i]}" = "$n" ] || continue
        # untimed first: the connections, and the worker backends they open
        PGHOST=$top/$n PGPORT=$((port0 + i)) PGUSER=$VS_USER PGOPTIONS=${pgopts:-} \
            "$VS_PG_BINDIR/pgbench" -n -M prepared -f "$f" -c "$c" -j "$j" -T 2 postgres >/dev/null 2>&1 || true
        PGHOST=$top/$n PGPORT=$((port0 + i)) PGUSER=$VS_USER PGOPTIONS=${pgopts:-} \
            "$VS_PG_BINDIR/pgbench" -n -M prepared -f "$f" -c "$c" -j "$j" -T "$secs" postgres \
            >"$work/pgbench.out" 2>&1 || true
        if grep -q -e 'aborted' -e 'error' "$work/pgbench.out"; then
            grep -m1 error "$work/pgbench.out" >&2
            printf 'failed'
        else
            sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/pgbench.out" | awk '{ printf "%.0f", $1 }'
        fi
    done
}

# script TABLE QTABLE - a pgbench script querying TABLE with a random vector of QTABLE.
script() {
    cat >"$work/$1.sql" <<EOF
\\set qid random(0, $((nq - 1)))
SELECT embedding::text AS q FROM $2 WHERE id = :qid \\gset
SELECT id FROM $1 ORDER BY embedding <-> :q LIMIT $k;
EOF
    echo "$work/$1.sql"
}

machine="$(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
citus_v=$(on coord -tAc "SELECT extversion FROM pg_extension WHERE extname = 'citus'")
vs_v=$(on coord -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'")

echo "## Scaling out on Citus: one node against a coordinator and workers"
echo
echo "- machine: $machine; the three servers share it; PostgreSQL $(on coord -tAc 'SHOW server_version'), Citus $citus_v, vecstore $vs_v; shared_buffers 256MB each, max_parallel_workers_per_gather = 0"
echo "- data: $dataset, $rows x $dim, L2; $nq queries, recall@10 against the files' ground truth (tie-aware)"
echo "- index: no WITH clause (lists = auto): $one_clusters clusters on the single node, $shard_clusters on a shard of $shard_rows rows; default query settings (vecstore.effort 4)"
echo "- QPS: pgbench -M prepared, $secs s per run, each transaction a lookup of a random query vector (\\gset) and the kNN query with it as a parameter"
echo

header="| configuration | shards | build s | recall@10 |"
sep="|---|---|---|---|"
for c in $clients_spec; do
    header="$header QPS $c client$([ "$c" = 1 ] || echo s) |"
    sep="$sep---|"
done
echo "$header"
echo "$sep"
pool1='-c citus.max_adaptive_executor_pool_size=1'
for cfg in one items items_p1 items_w1 items_w1_p1; do
    pgopts=
    case $cfg in
        one) t=items_one label="1 node (plain table)" sh=- ;;
        items) t=items label="coordinator + 2 workers" sh=$(placement items) ;;
        items_p1) t=items label="coordinator + 2 workers, pool size 1" sh=$(placement items) pgopts=$pool1 ;;
        items_w1) t=items_w1 label="coordinator + 1 worker" sh=$(placement items_w1) ;;
        items_w1_p1) t=items_w1 label="coordinator + 1 worker, pool size 1" sh=$(placement items_w1) pgopts=$pool1 ;;
    esac
    progress "$label: recall"
    rec=$(recall "$cfg" "$t")
    f=$(script "$t" queries)
    line="| $label | $sh | ${build_s[$t]} | $rec |"
    for c in $clients_spec; do
        progress "$label: pgbench, $c clients"
        line="$line $(qps coord "$f" "$c") |"
    done
    echo "$line"
done
pgopts=
echo
echo "(pool size 1: the clients run with citus.max_adaptive_executor_pool_size = 1, one connection per worker per query, the tasks of a worker one after another on it; otherwise the executor opens more connections per worker when tasks wait, and keeps one per worker per session, citus.max_cached_conns_per_worker = 1)"
echo

progress "per shard and fan-out"
on w1 -c "CREATE TABLE bench_queries (id int PRIMARY KEY, embedding vector($dim))"
on coord -c '\copy queries to pstdout' | on w1 -c '\copy bench_queries from pstdin'
per_shard=$(qps w1 "$(script "$shard" bench_queries)" 1)
cat >"$work/fanout.sql" <<EOF
\\set qid random(0, $((nq - 1)))
SELECT embedding::text AS q FROM queries WHERE id = :qid \\gset
SELECT id FROM items WHERE id < 0 ORDER BY embedding <-> :q LIMIT $k;
EOF
fanout=$(qps coord "$work/fanout.sql" 1)
one1=$(qps coord "$(script items_one queries)" 1)
dist1=$(qps coord "$(script items queries)" 1)
# work NODE TABLE QTABLE - rows examined and clusters opened per query
# (vecstore_stats) over the queries, in one session.
work() {
    on "$1" -tA -F ' / ' <<EOF
DO \$\$
DECLARE q record; r int[];
BEGIN
    FOR q IN SELECT id, embedding FROM $3 ORDER BY id LOOP
        SELECT array_agg(id) INTO r FROM (SELECT id FROM $2 ORDER BY embedding <-> q.embedding LIMIT $k) n;
    END LOOP;
END
\$\$;
SELECT round(rows_examined::numeric / scans), round(clusters_opened::numeric / scans, 1) FROM vecstore_stats();
EOF
}
work_one=$(work coord items_one queries)
work_shard=$(work w1 "$shard" bench_queries)
bytes=$(on coord -tA -F ' / ' -c "SELECT round(fork_bytes::numeric / $rows), round(segment_bytes::numeric / $rows),
    round(code_bytes::numeric / $rows), round(graph_bytes::numeric / $rows) FROM vecstore_index_info('items_one_emb')")
echo "| measure (1 client) | QPS | ms per query |"
echo "|---|---|---|"
for m in "one shard ($shard, $shard_rows rows), on worker 1 directly:$per_shard" \
    "1 node, items_one ($rows rows), again:$one1" \
    "coordinator + 2 workers, items, again:$dist1" \
    "fan-out without vector work (items, WHERE id < 0 added: $shards tasks, no rows):$fanout"; do
    awk -v m="${m%:*}" -v q="${m##*:}" 'BEGIN { printf "| %s | %s | %.2f |\n", m, q, (q > 0 ? 1000 / q : 0) }'
done
echo
echo "- per query (vecstore_stats(), rows examined / clusters opened): 1 node $work_one; one shard $work_shard"
echo "- index bytes per row (items_one, $dim dimensions): fork / segment / codes / graphs = $bytes"
echo
progress finished
