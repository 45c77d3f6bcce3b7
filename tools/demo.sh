#!/usr/bin/env bash
# The vecstore demo: build, install, start a throwaway server, load a real
# vector set and run k-nearest-neighbour queries, with timings and recall.
#
#   ./tools/demo.sh            (or: make demo)
#
# Runs as root on a fresh Debian 12 (installs what is missing) or as a user
# with the dependencies present.  Data: ../shared/data/sift128-photos-
# euclidean beside the repository (or $VECSTORE_DATA/sift128-...); without
# it, 20000 synthetic 128-d vectors with exact ground truth from fvecs2pg.
# DEMO_QUERIES (default 100) sets how many queries run.  The server is
# stopped at exit; its log stays in tmp_check/demo/server.log when the
# repository is reachable by the server user.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
dataset=sift128-photos-euclidean
nq=${DEMO_QUERIES:-100}
k=10

# now - seconds since the epoch, with microseconds.
now() { echo "$EPOCHREALTIME"; }
# since T0 - seconds elapsed since T0, two decimals.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# quietly LOG CMD... - run CMD with its output in LOG; show the end of LOG
# and stop if it fails.
quietly() {
    local log=$1
    shift
    if ! "$@" >>"$log" 2>&1; then
        echo "FAILED: $* (last lines of $log):" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

# sql - psql quietly, stop at the first error, no ~/.psqlrc.
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

echo "== vecstore demo =="
./tools/deps.sh

# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"

mkdir -p tmp_check
buildlog=$repo/tmp_check/demo-build.log
: >"$buildlog"
t0=$(now)
quietly "$buildlog" make -j"$(nproc)"
quietly "$buildlog" vs_make_install
quietly "$buildlog" make tools/fvecs2pg
echo "build: make, make install, tools/fvecs2pg: ok in $(since "$t0") s (log: tmp_check/demo-build.log)"

vs_server_start demo
echo "server: PostgreSQL $(sql -tAc 'SHOW server_version'), socket in $PGHOST," \
    "port $PGPORT, OS user $VS_USER"

# The vectors: the real set, or synthetic data with computed ground truth.
if [ -f "$data_root/$dataset/base.fvecs" ]; then
    base=$data_root/$dataset/base.fvecs
    query=$data_root/$dataset/query.fvecs
    gt=(./tools/fvecs2pg --ivecs --k "$k" --limit "$nq" "$data_root/$dataset/groundtruth.ivecs")
    source_note="$dataset ($data_root/$dataset)"
else
    vs_tmpdir
    base=$REPLY/base.fvecs
    query=$REPLY/query.fvecs
    ./tools/fvecs2pg --random 20000 128 1 --fvecs >"$base"
    ./tools/fvecs2pg --random "$nq" 128 2 --fvecs >"$query"
    gt=(./tools/fvecs2pg --knn "$k" "$base" "$query")
    source_note="synthetic: 20000 x 128, 16 gaussian clusters ($data_root/$dataset not found)"
fi
dim=$(od -An -t d4 -N4 "$base" | tr -d ' ')

sql <<EOF
CREATE EXTENSION vecstore;
CREATE TABLE items (id int PRIMARY KEY, embedding vector($dim));
CREATE TABLE queries (id int PRIMARY KEY, embedding vector($dim));
CREATE TABLE groundtruth (query_id int PRIMARY KEY, neighbors int[]);
CREATE TABLE results (query_id int PRIMARY KEY, ids int[], distances float8[], ms float8);
EOF

t0=$(now)
./tools/fvecs2pg "$base" | sql -c '\copy items (id, embedding) from pstdin'
load_s=$(since "$t0")
t0=$(now)
sql -c 'VACUUM ANALYZE items'
vacuum_s=$(since "$t0")
./tools/fvecs2pg --limit "$nq" "$query" | sql -c '\copy queries (id, embedding) from pstdin'
"${gt[@]}" | sql -c '\copy groundtruth (query_id, neighbors) from pstdin'
sql -c 'ANALYZE queries; ANALYZE groundtruth'

echo "data: $source_note"
sql -tA <<EOF
SELECT format('load: %s vectors of %s dimensions in $load_s s (%s rows/s), VACUUM ANALYZE $vacuum_s s, table %s',
              count(*), $dim, round(count(*) / greatest($load_s, 0.001)),
              pg_size_pretty(pg_total_relation_size('items')))
FROM items;
EOF

# The index, once the access method exists; until then, exact scans.
if [ "$(sql -tAc "SELECT 1 FROM pg_am WHERE amname = 'vecstore'")" = 1 ]; then
    t0=$(now)
    sql -c 'CREATE INDEX items_embedding_idx ON items USING vecstore (embedding vector_l2_ops)'
    echo "index: CREATE INDEX ... USING vecstore in $(since "$t0") s"
else
    echo "index: none (no vecstore access method yet): exact search by sequential scan"
fi
echo "plan:"
sql -tA <<'EOF' | sed -E "/^$/d; s/'\[[^]]*\]'/'[...]'/g; s/^/    /"
SELECT embedding AS q FROM queries ORDER BY id LIMIT 1 \gset
EXPLAIN (COSTS OFF)
SELECT id, embedding <-> :'q'::vector AS distance
FROM items ORDER BY embedding <-> :'q'::vector LIMIT 10;
EOF

# Each query on its own, timed in the server (clock_timestamp), so neither
# psql nor the client connection is counted.
sql <<EOF
DO \$\$
DECLARE
    q record;
    t0 timestamptz;
    ms float8;
    r_ids int[];
    r_dist float8[];
BEGIN
    FOR q IN SELECT id, embedding FROM queries ORDER BY id LOOP
        t0 := clock_timestamp();
        SELECT array_agg(n.id ORDER BY n.distance, n.id),
               array_agg(n.distance ORDER BY n.distance, n.id)
          INTO r_ids, r_dist
          FROM (SELECT id, embedding <-> q.embedding AS distance
                  FROM items
                 ORDER BY embedding <-> q.embedding
                 LIMIT $k) n;
        ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
        INSERT INTO results VALUES (q.id, r_ids, r_dist, ms);
    END LOOP;
END
\$\$;
EOF

echo "first 3 queries, $k nearest neighbours (id, L2 distance):"
sql -tA <<'EOF'
SELECT format('  query %-4s ids  %s', query_id,
              (SELECT string_agg(lpad(i::text, 7), ' ') FROM unnest(ids) i))
       || E'\n' ||
       format('             dist %s',
              (SELECT string_agg(lpad(to_char(d, 'FM99990.00'), 7), ' ') FROM unnest(distances) d))
FROM results ORDER BY query_id LIMIT 3;
EOF

sql -tA <<'EOF'
SELECT format('timing: %s queries, median %s ms, p95 %s ms, mean %s ms, %s queries/s',
              count(*),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 2),
              round(avg(ms)::numeric, 2),
              round((count(*) / (sum(ms) / 1000))::numeric, 1))
FROM results;
EOF

# Recall against the ground truth.  Ties: a returned row also counts when
# it is as near as the k-th true neighbour (the data has exact duplicates).
sql -tA <<EOF
WITH per_query AS (
    SELECT r.query_id,
           (SELECT count(*) FROM unnest(r.ids) i WHERE i = ANY (g.neighbors[1:$k])) AS hits,
           (SELECT count(*) FROM unnest(r.ids, r.distances) AS x(i, d)
             WHERE i = ANY (g.neighbors[1:$k])
                OR d <= (SELECT it.embedding <-> q.embedding FROM items it
                          WHERE it.id = g.neighbors[$k]) * (1 + 1e-9)) AS tie_hits
      FROM results r
      JOIN groundtruth g ON g.query_id = r.query_id
      JOIN queries q ON q.id = r.query_id)
SELECT CASE WHEN sum(hits) = sum(tie_hits)
            THEN format('recall@$k: %s (%s queries)', round(avg(hits) / $k, 3), count(*))
            ELSE format('recall@$k: %s counting ties at the $k-th distance, %s by id alone (%s queries)',
                        round(avg(tie_hits) / $k, 3), round(avg(hits) / $k, 3), count(*))
       END
FROM per_query;
EOF

vs_server_stop
if [ "$VS_DIR_IS_TMP" = 1 ]; then
    echo "done: server stopped"
else
    echo "done: server stopped (log: ${VS_PGLOG#"$repo"/})"
fi
