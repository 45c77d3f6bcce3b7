-- vecstore index scans: every operator class, NULLs, EXPLAIN, exact order,
-- and the same rows as an exact scan when every cluster is probed.

SET enable_seqscan = off;

CREATE TABLE t (id int PRIMARY KEY, v vector(3));
INSERT INTO t VALUES (1, '[1,1,1]'), (2, '[2,2,2]'), (3, '[1,1,2]'), (4, NULL),
                     (5, '[-1,0,1]'), (6, '[0,0,0]'), (7, '[10,-3,4]');

-- L2
CREATE INDEX t_l2 ON t USING vecstore (v vector_l2_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v <-> '[1,1,1]' LIMIT 3;
SET vecstore.probes = 2;
SELECT id, round((v <-> '[1,1,1]')::numeric, 6) AS dist FROM t ORDER BY v <-> '[1,1,1]' LIMIT 10;
DROP INDEX t_l2;

-- inner product
CREATE INDEX t_ip ON t USING vecstore (v vector_ip_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v <#> '[1,1,1]' LIMIT 3;
SELECT id, v <#> '[1,1,1]' AS dist FROM t ORDER BY v <#> '[1,1,1]' LIMIT 10;
DROP INDEX t_ip;

-- cosine (on vectors that are not unit length; a zero vector has no angle:
-- the index leaves it out, as pgvector does)
CREATE INDEX t_cos ON t USING vecstore (v vector_cosine_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v <=> '[1,1,1]' LIMIT 3;
SELECT id, round((v <=> '[1,1,1]')::numeric, 6) AS dist FROM t ORDER BY v <=> '[1,1,1]' LIMIT 10;
DROP INDEX t_cos;

-- L1: the index searches through L2's clusters, codes and graphs and
-- ranks by the exact taxicab distance
CREATE INDEX t_l1 ON t USING vecstore (v vector_l1_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v <+> '[1,1,1]' LIMIT 3;
SELECT id, v <+> '[1,1,1]' AS dist FROM t ORDER BY v <+> '[1,1,1]' LIMIT 10;
DROP INDEX t_l1;

-- an operator the index cannot order by is not served by it
CREATE INDEX t_l2 ON t USING vecstore (v vector_l2_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v <+> '[1,1,1]' LIMIT 3;
-- no ORDER BY: no index
EXPLAIN (COSTS OFF) SELECT id FROM t WHERE v = '[1,1,1]';

-- a NULL query (a parameter: a NULL constant is folded away) returns
-- every indexed row, at a NULL distance
SET plan_cache_mode = force_generic_plan;
PREPARE knn(vector) AS SELECT id FROM t ORDER BY v <-> $1 LIMIT 10;
EXPLAIN (COSTS OFF) EXECUTE knn(NULL);
SELECT count(*) FROM (SELECT 1 FROM t WHERE v IS NOT NULL) s;
EXECUTE knn(NULL);
EXECUTE knn('[1,1,1]');
DEALLOCATE knn;
RESET plan_cache_mode;

-- a query of the wrong dimension is a clear error
SELECT id FROM t ORDER BY v <-> '[1,1]' LIMIT 3;

-- rows inserted after the build are found, NULLs stay out
INSERT INTO t VALUES (8, '[1,1,1.5]'), (9, NULL);
SELECT id FROM t ORDER BY v <-> '[1,1,1]' LIMIT 4;
SELECT count(*) FROM (SELECT id FROM t ORDER BY v <-> '[5,5,5]') s;
DROP TABLE t;

-- a larger table: with every cluster probed the index returns exactly
-- what an exact scan returns, in the same order
CREATE TABLE big (id int PRIMARY KEY, v vector(8), label int);
INSERT INTO big
SELECT i, ARRAY(SELECT ((i * 7919 + j * 104729) % 1000) / 100.0 FROM generate_series(1, 8) j)::vector,
       i % 20
FROM generate_series(1, 3000) i;
CREATE INDEX big_idx ON big USING vecstore (v) WITH (lists = 16);
CREATE TABLE queries AS
SELECT q, ARRAY(SELECT ((q * 31 + j * 17) % 1000) / 100.0 FROM generate_series(1, 8) j)::vector AS v
FROM generate_series(1, 20) q;
SET vecstore.probes = 16;
CREATE TABLE via_index AS
SELECT q.q, (SELECT array_agg(id ORDER BY rn) FROM
             (SELECT id, row_number() OVER () AS rn
              FROM (SELECT id FROM big ORDER BY v <-> q.v LIMIT 10) s) s2) AS ids
FROM queries q;
SET enable_indexscan = off;
SET enable_seqscan = on;
CREATE TABLE exact AS
SELECT q.q, (SELECT array_agg(id ORDER BY rn) FROM
             (SELECT id, row_number() OVER () AS rn
              FROM (SELECT id FROM big ORDER BY v <-> q.v, id LIMIT 10) s) s2) AS ids
FROM queries q;
RESET enable_indexscan;
SET enable_seqscan = off;
-- distances are distinct enough here that the orders agree exactly
SELECT count(*) AS queries, count(*) FILTER (WHERE i.ids = e.ids) AS identical
FROM via_index i JOIN exact e USING (q);
-- with one probe, every returned row is still in exact distance order
SET vecstore.probes = 1;
SELECT bool_and(ordered) AS always_ordered FROM (
    SELECT q.q, (SELECT bool_and(d >= coalesce(prev, d)) FROM (
        SELECT d, lag(d) OVER () AS prev FROM (
            SELECT v <-> q.v AS d FROM big ORDER BY v <-> q.v LIMIT 50) s) s2) AS ordered
    FROM queries q) s3;
-- a filter that keeps 5% of the rows: the scan widens past the one probed
-- cluster and still returns LIMIT rows, in order; a tight max_scan_tuples
-- stops it early
SELECT count(*) AS queries,
       count(*) FILTER (WHERE n = 10) AS got_10,
       bool_and(ordered) AS always_ordered
FROM (SELECT q.q,
             (SELECT count(*) FROM (SELECT id FROM big WHERE label = 3
                                    ORDER BY v <-> q.v LIMIT 10) s) AS n,
             (SELECT bool_and(d >= coalesce(prev, d)) FROM (
                 SELECT d, lag(d) OVER () AS prev FROM (
                     SELECT v <-> q.v AS d FROM big WHERE label = 3
                     ORDER BY v <-> q.v LIMIT 10) s) s2) AS ordered
      FROM queries q) r;
-- (each such scan says so in a NOTICE: one shown, the others silenced)
SET vecstore.max_scan_tuples = 100;
SELECT count(*) AS n FROM (SELECT id FROM big WHERE label = 3
                           ORDER BY v <-> (SELECT v FROM queries WHERE q = 1) LIMIT 10) s;
SET client_min_messages = warning;
SELECT count(*) FILTER (WHERE n = 10) AS got_10
FROM (SELECT (SELECT count(*) FROM (SELECT id FROM big WHERE label = 3
                                    ORDER BY v <-> q.v LIMIT 10) s) AS n
      FROM queries q) r;
RESET client_min_messages;
RESET vecstore.max_scan_tuples;
RESET vecstore.probes;
DROP TABLE big, queries, via_index, exact;
RESET enable_seqscan;

-- a cluster big enough for a graph (VS_HNSW_FLAT_THRESHOLD = 1000 rows):
-- the scan searches its graph over the codes and reranks; with a wide
-- enough search the result equals the exact one, and a long LIMIT, which
-- makes the scan search deeper, still comes in exact order without
-- duplicates, for every operator class and for both quantizers
CREATE TABLE g (id int PRIMARY KEY, v vector(16));
INSERT INTO g
SELECT i, ARRAY(SELECT ('x' || substr(md5(i || ':' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 16) j)::vector
FROM generate_series(1, 4000) i;
CREATE TABLE gq AS
SELECT q, ARRAY(SELECT ('x' || substr(md5('q' || q || ':' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 16) j)::vector AS v
FROM generate_series(1, 10) q;
CREATE FUNCTION g_check(op text, lim int) RETURNS TABLE (queries bigint, identical bigint, ordered bool, distinct_rows bool)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    via int[];
    ex int[];
    ds float8[];
BEGIN
    queries := 0; identical := 0; ordered := true; distinct_rows := true;
    FOR r IN SELECT * FROM gq ORDER BY q LOOP
        SET LOCAL enable_seqscan = off;
        EXECUTE format('SELECT array_agg(id ORDER BY n), array_agg(d ORDER BY n) FROM
                        (SELECT id, v %s $1 AS d, row_number() OVER () AS n FROM
                         (SELECT id, v FROM g ORDER BY v %s $1 LIMIT %s) s) s2', op, op, lim)
            INTO via, ds USING r.v;
        SET LOCAL enable_seqscan = on;
        SET LOCAL enable_indexscan = off;
        EXECUTE format('SELECT array_agg(id ORDER BY n) FROM
                        (SELECT id, row_number() OVER () AS n FROM
                         (SELECT id FROM g ORDER BY v %s $1, id LIMIT %s) s) s2', op, lim)
            INTO ex USING r.v;
        SET LOCAL enable_indexscan = on;
        queries := queries + 1;
        IF via = ex THEN identical := identical + 1; END IF;
        IF EXISTS (SELECT 1 FROM generate_series(2, cardinality(ds)) i WHERE ds[i] < ds[i - 1]) THEN
            ordered := false;
        END IF;
        IF (SELECT count(DISTINCT x) FROM unnest(via) x) <> lim THEN
            distinct_rows := false;
        END IF;
    END LOOP;
    RETURN NEXT;
END $$;
CREATE INDEX g_l2 ON g USING vecstore (v vector_l2_ops) WITH (lists = 1);
SELECT clusters, graph_clusters, quantizer, code_bytes > 0 AS has_codes, graph_bytes > 0 AS has_graph
FROM vecstore_index_info('g_l2');
SELECT * FROM vecstore_verify('g_l2');
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<->', 10);
COMMIT;
BEGIN;
SELECT identical >= 8 AS nearly_all_exact, ordered, distinct_rows FROM g_check('<->', 10);
SELECT ordered, distinct_rows FROM g_check('<->', 500);
SET LOCAL vecstore.rerank_window = 1;
SELECT ordered, distinct_rows FROM g_check('<->', 500);
RESET vecstore.rerank_window;
-- read-ahead asks the kernel for pages; the answers are the same
SET LOCAL vecstore.readahead = on;
CREATE TEMP TABLE ra_on AS SELECT * FROM g_check('<->', 10);
SET LOCAL vecstore.readahead = off;
SELECT a.identical = b.identical AS same_answers, b.ordered, b.distinct_rows
FROM ra_on a, g_check('<->', 10) b;
SET LOCAL vecstore.readahead = on;
SELECT ordered, distinct_rows FROM g_check('<->', 500);
-- the graph search is what finds the rows: a tiny ef_search misses some
-- (on the CPU: a GPU service answers each cluster exactly instead)
SET LOCAL vecstore.ef_search = 1;
SET LOCAL vecstore.gpu = off;
SELECT identical < queries AS ef_search_matters, ordered, distinct_rows FROM g_check('<->', 10);
COMMIT;
DROP INDEX g_l2;
CREATE INDEX g_ip ON g USING vecstore (v vector_ip_ops) WITH (lists = 1);
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<#>', 10);
SELECT ordered, distinct_rows FROM g_check('<#>', 500);
COMMIT;
DROP INDEX g_ip;
CREATE INDEX g_cos ON g USING vecstore (v vector_cosine_ops) WITH (lists = 1);
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<=>', 10);
SELECT ordered, distinct_rows FROM g_check('<=>', 500);
COMMIT;
DROP INDEX g_cos;
CREATE INDEX g_l1 ON g USING vecstore (v vector_l1_ops) WITH (lists = 1);
SELECT quantizer, graph_bytes > 0 AS has_graph FROM vecstore_index_info('g_l1');
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<+>', 10);
SELECT ordered, distinct_rows FROM g_check('<+>', 500);
COMMIT;
BEGIN;
SELECT identical >= 8 AS nearly_all_exact, ordered, distinct_rows FROM g_check('<+>', 10);
COMMIT;
DROP INDEX g_l1;
CREATE INDEX g_none ON g USING vecstore (v) WITH (lists = 1, quantizer = none, m = 8);
SELECT graph_clusters, quantizer, code_bytes FROM vecstore_index_info('g_none');
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<->', 10);
SELECT ordered, distinct_rows FROM g_check('<->', 500);
COMMIT;
DROP INDEX g_none;
-- 4-bit codes (at 16 dimensions a record is 4 bytes of factor and 8 of
-- nibbles, 12 bytes a row against SQ8's 20):
-- coarser estimates, the same exact answers once the search is wide
-- enough, and the exact order however narrow it is
CREATE INDEX g_sq4 ON g USING vecstore (v) WITH (lists = 1, quantizer = sq4);
SELECT graph_clusters, quantizer, code_bytes FROM vecstore_index_info('g_sq4');
SELECT * FROM vecstore_verify('g_sq4');
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<->', 10);
SELECT ordered, distinct_rows FROM g_check('<->', 500);
COMMIT;
BEGIN;
SELECT identical >= 8 AS nearly_all_exact, ordered, distinct_rows FROM g_check('<->', 10);
SET LOCAL vecstore.rerank_window = 1;
SELECT ordered, distinct_rows FROM g_check('<->', 500);
COMMIT;
DROP INDEX g_sq4;
CREATE INDEX g_sq4_ip ON g USING vecstore (v vector_ip_ops) WITH (lists = 1, quantizer = sq4);
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<#>', 10);
SELECT ordered, distinct_rows FROM g_check('<#>', 500);
COMMIT;
DROP INDEX g_sq4_ip;
CREATE INDEX g_sq4_cos ON g USING vecstore (v vector_cosine_ops) WITH (lists = 1, quantizer = sq4);
BEGIN;
SET LOCAL vecstore.ef_search = 1000;
SELECT * FROM g_check('<=>', 10);
SELECT ordered, distinct_rows FROM g_check('<=>', 500);
COMMIT;
DROP INDEX g_sq4_cos;
CREATE INDEX g_none ON g USING vecstore (v) WITH (lists = 1, quantizer = none, m = 8);
-- rows deleted from the table stay out; rows inserted after the build are found
DELETE FROM g WHERE id % 2 = 0;
VACUUM g;
INSERT INTO g SELECT id + 10000, v FROM g WHERE id <= 100;
SELECT count(*) AS even_rows FROM (SELECT id FROM g ORDER BY v <-> (SELECT v FROM gq WHERE q = 1) LIMIT 200) s
WHERE id % 2 = 0 AND id < 10000;
SELECT count(*) AS copies_found FROM (SELECT id FROM g ORDER BY v <-> (SELECT v FROM g WHERE id = 7) LIMIT 2) s;
DROP TABLE g, gq;
DROP FUNCTION g_check(text, int);

-- routing at scale: with 4096 clusters or more the index routes through
-- an HNSW graph over the centroids.  The adaptive search opens every
-- cluster whose bound is below the next row's distance at effort 9, so
-- the results are those of an exact scan; at the default effort nearly
-- all of them are found (recall@10 >= 0.95)
CREATE TABLE r (id int PRIMARY KEY, v vector(4));
INSERT INTO r
SELECT i, ARRAY(SELECT ('x' || substr(md5(i || '/' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 4) j)::vector
FROM generate_series(1, 41000) i;
SET maintenance_work_mem = '64MB';
CREATE INDEX r_idx ON r USING vecstore (v) WITH (lists = 4096);
RESET maintenance_work_mem;
SELECT clusters, routing_graph_bytes > 0 AS has_routing_graph FROM vecstore_index_info('r_idx');
SELECT * FROM vecstore_verify('r_idx');
CREATE TABLE rq AS
SELECT q, ARRAY(SELECT ('x' || substr(md5('rq' || q || '/' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 4) j)::vector AS v
FROM generate_series(1, 20) q;
SET enable_indexscan = off;
CREATE TABLE rex AS
SELECT q.q, (SELECT array_agg(id) FROM (SELECT id FROM r ORDER BY v <-> q.v, id LIMIT 10) s) AS ex
FROM rq q;
RESET enable_indexscan;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM r ORDER BY v <-> '[0,0,0,0]' LIMIT 10;
SELECT count(*) AS queries,
       sum((SELECT count(*) FROM unnest(via) x WHERE x = ANY (ex))) >= 0.95 * 10 * count(*) AS recall_095
FROM (SELECT q.q,
             (SELECT array_agg(id) FROM (SELECT id FROM r ORDER BY v <-> q.v LIMIT 10) s) AS via
      FROM rq q) t JOIN rex USING (q);
SET vecstore.effort = 9;
SELECT count(*) AS queries, count(*) FILTER (WHERE via = ex) AS identical
FROM (SELECT q.q,
             (SELECT array_agg(id) FROM (SELECT id FROM r ORDER BY v <-> q.v LIMIT 10) s) AS via
      FROM rq q) t JOIN rex USING (q);
RESET vecstore.effort;
RESET enable_seqscan;
DROP TABLE r, rq, rex;
-- a scan keeps, per cluster it searches by graph, what its searches
-- visited, in memory the backend keeps for its next scans: a scan
-- stopped by an error gives it back too (200 scans stopped by a division
-- by zero; without giving back, each would keep 57 kB)
CREATE TABLE tr AS
SELECT i AS id, ARRAY(SELECT ('x' || substr(md5('tr' || i || '/' || j), 1, 8))::bit(32)::int / 2147483648.0
                      FROM generate_series(1, 16) j)::vector(16) AS v
FROM generate_series(1, 3000) i;
CREATE INDEX tr_idx ON tr USING vecstore (v) WITH (lists = 1);
SELECT graph_clusters FROM vecstore_index_info('tr_idx');
SET enable_seqscan = off;
CREATE TEMP TABLE tr_mem AS
SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext';
DO $$
DECLARE
    stopped int := 0;
BEGIN
    FOR i IN 1..200 LOOP
        BEGIN
            PERFORM id, 1 / (id % 7) FROM tr ORDER BY v <-> (SELECT v FROM tr WHERE id = i) LIMIT 50;
        EXCEPTION WHEN division_by_zero THEN
            stopped := stopped + 1;
        END;
    END LOOP;
    RAISE NOTICE 'scans stopped by an error: more than 150: %', stopped > 150;
END $$;
SELECT m.total_bytes - t.total_bytes < 2 * 1024 * 1024 AS given_back
FROM pg_backend_memory_contexts m, tr_mem t WHERE m.name = 'TopMemoryContext';
RESET enable_seqscan;
DROP TABLE tr;

-- the planner: the index serves a LIMIT; a query that wants every row in
-- distance order (no LIMIT), or more rows than vecstore.max_scan_tuples
-- lets a scan examine, sorts the table and gets them all (rows whose
-- vector is NULL too, which the index does not hold); a cursor may stop
-- early, and gets the index
CREATE TABLE tp (id int PRIMARY KEY, v vector(8));
INSERT INTO tp SELECT i, ARRAY(SELECT ((i * 31 + j * 17) % 97)::real FROM generate_series(1, 8) j)
FROM generate_series(1, 20000) i;
UPDATE tp SET v = NULL WHERE id % 1000 = 0;
CREATE INDEX tp_v ON tp USING vecstore (v vector_l2_ops);
ANALYZE tp;
EXPLAIN (COSTS OFF) SELECT id FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]';
SELECT count(*), count(v) FROM (SELECT id, v FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]') s;
SET vecstore.max_scan_tuples = 1000;
EXPLAIN (COSTS OFF) SELECT id FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 500;
EXPLAIN (COSTS OFF) SELECT id FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]' LIMIT 5000;
RESET vecstore.max_scan_tuples;
EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]';
-- enable_seqscan = off still forces the index
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM tp ORDER BY v <-> '[1,2,3,4,5,6,7,8]';
RESET enable_seqscan;
DROP TABLE tp;

-- a scan that runs through every row returns each one, or counts it as
-- found too late (nearer than a row already returned: left out to keep
-- the order) in vecstore_stats().rows_skipped_late
CREATE TABLE tl (id int PRIMARY KEY, v vector(16));
INSERT INTO tl SELECT i, ARRAY(SELECT (hashint4(i * 16 + j) % 1000) / 1000.0
                               FROM generate_series(1, 16) j)::real[]::vector
FROM generate_series(1, 20000) i;
CREATE INDEX tl_v ON tl USING vecstore (v);
SET enable_seqscan = off;
SET vecstore.max_scan_tuples = 1000000;
CREATE TEMP TABLE tl_before AS SELECT rows_skipped_late AS n FROM vecstore_stats();
CREATE TEMP TABLE tl_returned AS
SELECT count(*) AS n FROM (SELECT id FROM tl ORDER BY v <-> array_fill(0.5::real, ARRAY[16])::vector) s;
SELECT r.n + s.rows_skipped_late - b.n AS returned_or_skipped
FROM tl_returned r, vecstore_stats() s, tl_before b;
RESET vecstore.max_scan_tuples;
RESET enable_seqscan;
DROP TABLE tl, tl_before, tl_returned;
