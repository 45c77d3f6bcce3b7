#!/usr/bin/env bash
# Exact top-10 queries per second by sequential scan, on every shared
# dataset, with the SIMD distance kernels and with the scalar ones, side by
# side in one run on one throwaway server.
#
#   ./bench/seqscan.sh                 all datasets in ../shared/data
#   BENCH_QUERIES=50 ./bench/seqscan.sh
#
# For each dataset: load base.fvecs into a table, then run BENCH_QUERIES
# (default 100) queries `ORDER BY embedding <op> q LIMIT 10` (<-> for the
# euclidean sets, <=> for the angular one), each timed in the server with
# clock_timestamp(), once per kernel path (vecstore.simd = scalar, then
# auto).  Parallel query is off so the figures are one core's.  Prints a
# markdown table (median and p95 ms per query, queries per second, ratio)
# and recall@10 of the exact answers against the ground truth (a check that
# the scan is exact; ties at the 10th distance count as hits).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-100}
k=10

sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

./tools/deps.sh >/dev/null
# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"
mkdir -p tmp_check
make -s -j"$(nproc)" >tmp_check/bench-build.log 2>&1
vs_make_install >>tmp_check/bench-build.log 2>&1
make -s tools/fvecs2pg >>tmp_check/bench-build.log 2>&1
vs_server_start bench >/dev/null
sql -c 'CREATE EXTENSION vecstore'

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; PostgreSQL $(sql -tAc 'SHOW server_version')"
echo "kernels: vecstore.simd auto = $(sql -tAc 'SHOW vecstore.simd')"
echo "queries: $nq per dataset, top-$k, exact (sequential scan), max_parallel_workers_per_gather = 0"
echo
echo "| dataset | rows x dim | op | kernels | median ms | p95 ms | QPS | QPS vs scalar | recall@10 |"
echo "|---|---|---|---|---|---|---|---|---|"

for dir in "$data_root"/*/; do
    name=$(basename "$dir")
    [ -f "$dir/base.fvecs" ] || continue
    case $name in
        *angular*) op='<=>' ;;
        *) op='<->' ;;
    esac
    dim=$(od -An -t d4 -N4 "$dir/base.fvecs" | tr -d ' ')
    sql <<EOF
SET client_min_messages = warning;
DROP TABLE IF EXISTS items, queries, groundtruth, timings;
CREATE TABLE items (id int PRIMARY KEY, embedding vector($dim));
CREATE TABLE queries (id int PRIMARY KEY, embedding vector($dim));
CREATE TABLE groundtruth (query_id int PRIMARY KEY, neighbors int[]);
CREATE TABLE timings (kernels text, query_id int, ids int[], ms float8);
EOF
    ./tools/fvecs2pg "$dir/base.fvecs" | sql -c '\copy items from pstdin'
    ./tools/fvecs2pg --limit "$nq" "$dir/query.fvecs" | sql -c '\copy queries from pstdin'
    ./tools/fvecs2pg --ivecs --k "$k" --limit "$nq" "$dir/groundtruth.ivecs" |
        sql -c '\copy groundtruth from pstdin'
    sql -c 'VACUUM ANALYZE items' -c 'ANALYZE queries'
    # warm the table into shared_buffers / the page cache first
    sql -tAc "SELECT count(*) FROM items WHERE vector_dims(embedding) = $dim" >/dev/null

    for kernels in scalar auto; do
        sql <<EOF
SET vecstore.simd = $kernels;
SET max_parallel_workers_per_gather = 0;
DO \$\$
DECLARE
    q record;
    t0 timestamptz;
    r int[];
BEGIN
    FOR q IN SELECT id, embedding FROM queries ORDER BY id LOOP
        t0 := clock_timestamp();
        SELECT array_agg(id) INTO r
          FROM (SELECT id FROM items ORDER BY embedding $op q.embedding LIMIT $k) n;
        INSERT INTO timings VALUES ('$kernels', q.id, r,
            extract(epoch FROM clock_timestamp() - t0) * 1000);
    END LOOP;
END
\$\$;
EOF
    done

    # recall: a returned id is a hit when it is a true neighbour or as near
    # as the k-th one (under the benchmark's own operator)
    sql -tA <<EOF
WITH per AS (
    SELECT t.kernels, t.ms,
           (SELECT count(*) FROM unnest(t.ids) i
             WHERE i = ANY (g.neighbors)
                OR (SELECT it.embedding $op q.embedding FROM items it WHERE it.id = i)
                   <= (SELECT it.embedding $op q.embedding FROM items it WHERE it.id = g.neighbors[$k]) + 1e-6
           ) AS hits
      FROM timings t JOIN groundtruth g ON g.query_id = t.query_id
      JOIN queries q ON q.id = t.query_id),
agg AS (
    SELECT kernels,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS med,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95,
           count(*) / (sum(ms) / 1000) AS qps,
           avg(hits) / $k AS recall
      FROM per GROUP BY kernels)
SELECT format('| %s | %s x %s | %s | %s | %s | %s | %s | %s | %s |',
              '$name', (SELECT count(*) FROM items), $dim, '$op',
              CASE a.kernels WHEN 'auto' THEN 'auto ($(sql -tAc 'SHOW vecstore.simd' | sed 's/auto (\(.*\))/\1/'))' ELSE a.kernels END,
              round(a.med::numeric, 2), round(a.p95::numeric, 2), round(a.qps::numeric, 1),
              round((a.qps / s.qps)::numeric, 2) || 'x', round(a.recall::numeric, 3))
  FROM agg a CROSS JOIN (SELECT qps FROM agg WHERE kernels = 'scalar') s
 ORDER BY a.kernels DESC;
EOF
done
vs_server_stop
