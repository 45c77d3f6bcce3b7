-- vecstore indexes on halfvec: every operator class, the exact answer at
-- effort 10, graphs over the codes, inserts and compaction, the segment's
-- 16-bit vectors (half the bytes of a vector index's), options.

SET enable_seqscan = off;

CREATE TABLE h (id int PRIMARY KEY, v halfvec(16));
INSERT INTO h
SELECT i, ARRAY(SELECT ('x' || substr(md5(i || ':' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 16) j)::halfvec
FROM generate_series(1, 3000) i;
CREATE TABLE hq AS
SELECT q, ARRAY(SELECT ('x' || substr(md5('q' || q || ':' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 16) j)::halfvec AS v
FROM generate_series(1, 10) q;

-- same ids and distances (rounded) as a scan without the index, LIMIT lim
CREATE FUNCTION h_check(op text, lim int) RETURNS TABLE (queries bigint, identical bigint, ordered bool)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    via int[];
    ex int[];
    ds float8[];
BEGIN
    queries := 0; identical := 0; ordered := true;
    FOR r IN SELECT * FROM hq ORDER BY q LOOP
        SET LOCAL enable_seqscan = off;
        EXECUTE format('SELECT array_agg(id ORDER BY n), array_agg(d ORDER BY n) FROM
                        (SELECT id, v %s $1 AS d, row_number() OVER () AS n FROM
                         (SELECT id, v FROM h ORDER BY v %s $1 LIMIT %s) s) s2', op, op, lim)
            INTO via, ds USING r.v;
        SET LOCAL enable_seqscan = on;
        SET LOCAL enable_indexscan = off;
        EXECUTE format('SELECT array_agg(id ORDER BY n) FROM
                        (SELECT id, row_number() OVER () AS n FROM
                         (SELECT id FROM h ORDER BY v %s $1, id LIMIT %s) s) s2', op, lim)
            INTO ex USING r.v;
        SET LOCAL enable_indexscan = on;
        queries := queries + 1;
        IF via = ex THEN identical := identical + 1; END IF;
        IF EXISTS (SELECT 1 FROM generate_series(2, cardinality(ds)) i WHERE ds[i] < ds[i - 1]) THEN
            ordered := false;
        END IF;
    END LOOP;
    RETURN NEXT;
END $$;

-- one cluster of 3000 rows: a graph over SQ8 codes, reranked on the
-- 16-bit vectors; at effort 10 (every row) the exact answer
CREATE INDEX h_l2 ON h USING vecstore (v) WITH (lists = 1);
EXPLAIN (COSTS OFF) SELECT id FROM h ORDER BY v <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 3;
SELECT clusters, graph_clusters, quantizer FROM vecstore_index_info('h_l2');
SELECT * FROM vecstore_verify('h_l2');
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM h_check('<->', 10);
COMMIT;
BEGIN;
SELECT identical >= 8 AS nearly_all_exact, ordered FROM h_check('<->', 10);
SELECT ordered FROM h_check('<->', 300);
COMMIT;

-- the same rows as vector: the segment's vectors take half the bytes
CREATE TABLE hv AS SELECT id, v::vector(16) AS v FROM h;
CREATE INDEX hv_l2 ON hv USING vecstore (v) WITH (lists = 1);
SELECT (SELECT segment_bytes FROM vecstore_index_info('hv_l2')) -
       (SELECT segment_bytes FROM vecstore_index_info('h_l2')) = 3000 * 16 * 2 AS half_the_vector_bytes;
-- and the same distances
SELECT (SELECT array_agg(round(d::numeric, 5)) FROM (SELECT v <-> (SELECT v FROM hq WHERE q = 1) AS d FROM h ORDER BY 1 LIMIT 5) s) =
       (SELECT array_agg(round(d::numeric, 5)) FROM (SELECT v <-> (SELECT v::vector FROM hq WHERE q = 1) AS d FROM hv ORDER BY 1 LIMIT 5) s)
       AS same_distances;
DROP TABLE hv;

-- rows inserted after the build, then folded in by VACUUM
INSERT INTO h SELECT id + 10000, v FROM h WHERE id <= 500;
SELECT delta_rows FROM vecstore_index_info('h_l2');
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM h_check('<->', 10);
COMMIT;
DELETE FROM h WHERE id > 10000 AND id % 2 = 0;
VACUUM h;
SELECT delta_rows, dead_rows, compactions > 0 AS compacted FROM vecstore_index_info('h_l2');
SELECT * FROM vecstore_verify('h_l2');
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM h_check('<->', 10);
COMMIT;
-- a copy of a row is found with it
SELECT count(*) AS copies_found FROM (SELECT id FROM h ORDER BY v <-> (SELECT v FROM h WHERE id = 7) LIMIT 2) s;
DROP INDEX h_l2;

-- the other operator classes, several clusters
CREATE INDEX h_ip ON h USING vecstore (v halfvec_ip_ops) WITH (lists = 4);
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM h_check('<#>', 10);
COMMIT;
SELECT ordered FROM h_check('<#>', 100);
DROP INDEX h_ip;
CREATE INDEX h_cos ON h USING vecstore (v halfvec_cosine_ops) WITH (lists = 4);
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM h_check('<=>', 10);
COMMIT;
SELECT ordered FROM h_check('<=>', 100);
DROP INDEX h_cos;
CREATE INDEX h_l1 ON h USING vecstore (v halfvec_l1_ops) WITH (lists = 4);
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM h_check('<+>', 10);
COMMIT;
SELECT ordered FROM h_check('<+>', 100);
DROP INDEX h_l1;

-- an expression index: a vector column searched as halfvec
CREATE TABLE e (id int, v vector(16));
INSERT INTO e SELECT id, v::vector FROM h;
CREATE INDEX e_half ON e USING vecstore ((v::halfvec(16)) halfvec_l2_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM e ORDER BY v::halfvec(16) <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 3;
SELECT count(*) FROM (SELECT id FROM e ORDER BY v::halfvec(16) <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 5) s;
DROP TABLE e;

-- an index built on an empty table has no codes (nothing to train them
-- on) until its first compaction with rows enough for a graph trains them
-- (before, its graphs were searched with the 16-bit rows read as float4:
-- 6 of 10 queries got the exact answer, or the backend crashed)
CREATE TABLE he (id int, v halfvec(16));
CREATE INDEX he_v ON he USING vecstore (v) WITH (lists = 1, max_cluster_rows = 100000);
INSERT INTO he SELECT id, v FROM h;
SELECT clusters FROM vecstore_compact('he_v');
SELECT graph_clusters, quantizer FROM vecstore_index_info('he_v');
SELECT count(*) FILTER (WHERE via = ex) >= 9 AS nearly_all_exact
FROM hq,
     LATERAL (SELECT array_agg(id) AS via FROM
              (SELECT id FROM he ORDER BY v <-> hq.v LIMIT 10) s) a,
     LATERAL (SELECT array_agg(id) AS ex FROM
              (SELECT id FROM he ORDER BY (v <-> hq.v) + 0, id LIMIT 10) s) b;
DROP TABLE he;

-- options and limits
CREATE INDEX ON h USING vecstore (v) WITH (quantizer = none);
-- up to 4000 dimensions: a row inserted later waits in one index page,
-- in 16 bits
CREATE TABLE big (id int, v halfvec(4000));
INSERT INTO big SELECT i, array_fill(i::real / 100, ARRAY[4000])::halfvec FROM generate_series(1, 50) i;
CREATE INDEX big_v ON big USING vecstore (v);
INSERT INTO big SELECT i, array_fill(i::real / 100, ARRAY[4000])::halfvec FROM generate_series(51, 60) i;
SELECT array_agg(id) FROM (SELECT id FROM big ORDER BY v <-> array_fill(0.555::real, ARRAY[4000])::halfvec LIMIT 4) s;
SELECT clusters FROM vecstore_compact('big_v');
SELECT delta_rows, sealed_rows FROM vecstore_index_info('big_v');
SELECT array_agg(id) FROM (SELECT id FROM big ORDER BY v <-> array_fill(0.555::real, ARRAY[4000])::halfvec LIMIT 4) s;
CREATE TABLE bigger (v halfvec(4001));
CREATE INDEX ON bigger USING vecstore (v);
DROP TABLE bigger;
-- a query of other dimensions
SELECT id FROM h ORDER BY v <-> '[1,2,3]' LIMIT 1;
CREATE INDEX h_l2 ON h USING vecstore (v);
SELECT id FROM h ORDER BY v <-> '[1,2,3]' LIMIT 1;
DROP TABLE h, hq, big;
DROP FUNCTION h_check(text, int);
RESET enable_seqscan;
