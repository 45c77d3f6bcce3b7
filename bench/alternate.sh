#!/usr/bin/env bash
# Configurations side by side on a noisy machine: one session runs each
# configuration on a batch of queries in turn, round after round, so that
# the machine's drift (20-50 % from one minute to the next on the shared
# 2-core VMs) falls on every configuration alike, and prints each one's
# recall@K and queries per second.  A configuration is SQL run before its
# batch (SET commands), after RESET ALL.  It asserts nothing and changes
# nothing but its session's temporary tables.
#
# It works on tables that exist, on the server that libpq's environment
# names (PGHOST, PGPORT, PGUSER, PGDATABASE): a table with an integer id
# column and a vector column, and a table of queries of the same shape.
# The exact top K of each query (by sequential scan) is computed first.
#
#   ./bench/alternate.sh TABLE QUERIES OPERATOR CONFIG [CONFIG...]
#
#   PGDATABASE=bench ./bench/alternate.sh items queries '<->' \
#       'RESET vecstore.effort' 'SET vecstore.effort = 3' \
#       'SET vecstore.probes = 4; SET vecstore.ef_search = 32'
#
# Knobs (environment):
#   BENCH_ROUNDS    rounds (default 10): each runs every configuration once
#   BENCH_BATCH     queries per configuration per round (default 100)
#   BENCH_QUERIES   queries used, the first by id (default 200); a round's
#                   batch is the next BENCH_BATCH of them, wrapping around
#   BENCH_K         LIMIT (default 10)
#   BENCH_ID, BENCH_COLUMN   the id and vector columns (default id, v)
#
# Method.  Every configuration runs the same queries the same number of
# times; the order of the configurations rotates from round to round.
# Each query is timed with clock_timestamp() around it in a PL/pgSQL loop
# (plan start, scan and fetch; no client round trip); its answer is kept
# outside the timing.  QPS = queries / summed query time.  Recall@K: the share of the exact top K
# found, over each configuration's first answer to every query (ties are
# not counted as hits).  enable_seqscan is off and
# max_parallel_workers_per_gather 0 for every configuration, including
# after its RESET ALL.  Every query is run once untimed under the first
# configuration before the rounds (mapping, caches, pages), so that the
# configuration that comes first is not the one that pays for them.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
table=$1 queries=$2 op=$3
shift 3
rounds=${BENCH_ROUNDS:-10}
batch=${BENCH_BATCH:-100}
nq=${BENCH_QUERIES:-200}
k=${BENCH_K:-10}
idc=${BENCH_ID:-id}
col=${BENCH_COLUMN:-v}
for n in "$rounds" "$batch" "$nq" "$k"; do
    case $n in
        '' | *[!0-9]* | 0) echo "alternate.sh: BENCH_ROUNDS, BENCH_BATCH, BENCH_QUERIES and BENCH_K must be positive integers" >&2; exit 2 ;;
    esac
done

# the configurations as a SQL array of dollar-quoted strings (a tag that
# no configuration contains)
tag=cfg
for c in "$@"; do
    while [[ $c == *"\$$tag\$"* ]]; do tag="${tag}x"; done
done
arr=
for c in "$@"; do arr="$arr, \$$tag\$$c\$$tag\$"; done
arr="ARRAY[${arr#, }]::text[]"

psql -X -q -v ON_ERROR_STOP=1 <<SQL
SET client_min_messages = warning;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE alt_q AS
    SELECT row_number() OVER (ORDER BY $idc) - 1 AS rn, $idc AS qid, $col AS vec
      FROM $queries ORDER BY $idc LIMIT $nq;
SET enable_indexscan = off; SET enable_bitmapscan = off;
CREATE TEMP TABLE alt_gt AS
    SELECT q.qid, ARRAY(SELECT t.$idc FROM $table t ORDER BY t.$col $op q.vec LIMIT $k) AS ids
      FROM alt_q q;
RESET enable_indexscan; RESET enable_bitmapscan;
CREATE TEMP TABLE alt_res (cfg int, qid int8, ids int8[], PRIMARY KEY (cfg, qid));
CREATE TEMP TABLE alt_time (cfg int PRIMARY KEY, secs float8, n int8);
DO \$do\$
<<alternate>>
DECLARE
    cfg  text[] := $arr;
    ncfg int := array_length(cfg, 1);
    nq   int := (SELECT count(*) FROM alt_q);
    q    record;
    r    int8[];
    t0   timestamptz;
    secs float8;
    c    int;
    st   text;
BEGIN
    IF nq = 0 THEN
        RAISE EXCEPTION 'no queries in $queries';
    END IF;
    FOR c IN 1 .. ncfg LOOP
        INSERT INTO alt_time VALUES (c, 0, 0);
    END LOOP;
    FOR rd IN 0 .. $rounds - 1 LOOP
        FOR j IN 0 .. ncfg - 1 LOOP
            c := ((rd + j) % ncfg) + 1;
            RESET ALL;
            SET max_parallel_workers_per_gather = 0;
            SET enable_seqscan = off;
            FOREACH st IN ARRAY string_to_array(cfg[c], ';') LOOP
                IF btrim(st) <> '' THEN
                    EXECUTE st;
                END IF;
            END LOOP;
            IF rd = 0 AND j = 0 THEN
                FOR q IN SELECT vec FROM alt_q ORDER BY rn LOOP
                    SELECT array_agg($idc) INTO r
                      FROM (SELECT $idc FROM $table ORDER BY $col $op q.vec LIMIT $k) s;
                END LOOP;
            END IF;
            secs := 0;
            FOR q IN SELECT qid, vec FROM alt_q
                      WHERE (rn - (rd::int8 * $batch) % nq + nq) % nq < $batch
                      ORDER BY rn LOOP
                t0 := clock_timestamp();
                SELECT array_agg($idc) INTO r
                  FROM (SELECT $idc FROM $table ORDER BY $col $op q.vec LIMIT $k) s;
                secs := secs + extract(epoch FROM clock_timestamp() - t0);
                IF rd * $batch < nq THEN
                    INSERT INTO alt_res VALUES (c, q.qid, r) ON CONFLICT DO NOTHING;
                END IF;
            END LOOP;
            UPDATE alt_time
               SET secs = alt_time.secs + alternate.secs, n = n + LEAST($batch, nq)
             WHERE alt_time.cfg = c;
        END LOOP;
    END LOOP;
END
\$do\$;
RESET ALL;
\pset format unaligned
\pset tuples_only on
\echo '### $table, $op: $rounds rounds of $batch queries per configuration, top $k'
\echo
\echo '| configuration | recall@$k | QPS | queries timed |'
\echo '|---|---:|---:|---:|'
SELECT format('| %s | %s | %s | %s |', (${arr})[t.cfg],
              round(avg((SELECT count(*) FROM unnest(res.ids) i WHERE i = ANY (g.ids))::numeric) / $k, 4),
              round((t.n / t.secs)::numeric), t.n)
  FROM alt_time t
  JOIN alt_res res ON res.cfg = t.cfg
  JOIN alt_gt g ON g.qid = res.qid
 GROUP BY t.cfg, t.n, t.secs
 ORDER BY t.cfg;
SQL
