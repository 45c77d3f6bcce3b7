-- vecstore indexes on bit strings (bit_hamming_ops): the rows stay packed,
-- the graphs search them by Hamming distance; the exact answer at effort
-- 10, in order with ties, inserts and compaction, limits.

SET enable_seqscan = off;

CREATE TABLE b (id int PRIMARY KEY, v bit(64));
INSERT INTO b
SELECT i, ('x' || substr(md5(i::text), 1, 16))::bit(64) FROM generate_series(1, 3000) i;
CREATE TABLE bq AS
SELECT q, ('x' || substr(md5('q' || q), 1, 16))::bit(64) AS v FROM generate_series(1, 10) q;

-- the index's distances against a scan without it: the same multiset of
-- the LIMIT nearest distances (Hamming ties are many), in order
CREATE FUNCTION b_check(lim int) RETURNS TABLE (queries bigint, same_distances bigint, ordered bool)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    via float8[];
    ex float8[];
BEGIN
    queries := 0; same_distances := 0; ordered := true;
    FOR r IN SELECT * FROM bq ORDER BY q LOOP
        SET LOCAL enable_seqscan = off;
        EXECUTE format('SELECT array_agg(d ORDER BY n) FROM (SELECT v <~> $1 AS d, row_number() OVER () AS n
                        FROM (SELECT v FROM b ORDER BY v <~> $1 LIMIT %s) s) s2', lim) INTO via USING r.v;
        SET LOCAL enable_seqscan = on;
        SET LOCAL enable_indexscan = off;
        EXECUTE format('SELECT array_agg(d ORDER BY d) FROM (SELECT v <~> $1 AS d FROM b ORDER BY v <~> $1 LIMIT %s) s', lim)
            INTO ex USING r.v;
        SET LOCAL enable_indexscan = on;
        queries := queries + 1;
        IF via = ex THEN same_distances := same_distances + 1; END IF;
        IF EXISTS (SELECT 1 FROM generate_series(2, cardinality(via)) i WHERE via[i] < via[i - 1]) THEN
            ordered := false;
        END IF;
    END LOOP;
    RETURN NEXT;
END $$;

CREATE INDEX b_ham ON b USING vecstore (v bit_hamming_ops) WITH (lists = 2);
EXPLAIN (COSTS OFF) SELECT id FROM b ORDER BY v <~> (SELECT v FROM bq WHERE q = 1) LIMIT 3;
-- no codes: the packed rows are what the graphs search
SELECT clusters, graph_clusters, code_bytes, quantizer FROM vecstore_index_info('b_ham');
SELECT * FROM vecstore_verify('b_ham');
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM b_check(10);
COMMIT;
SELECT same_distances >= 8 AS nearly_all_exact, ordered FROM b_check(10);
SELECT ordered FROM b_check(200);
-- the distance the index returns is the operator's
SELECT id, v <~> (SELECT v FROM b WHERE id = 42) AS d FROM b ORDER BY v <~> (SELECT v FROM b WHERE id = 42) LIMIT 1;

-- inserted rows (delta rows, packed) and a compaction
INSERT INTO b SELECT id + 10000, v FROM b WHERE id <= 300;
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM b_check(10);
COMMIT;
SELECT count(*) AS copies_found FROM (SELECT id FROM b ORDER BY v <~> (SELECT v FROM b WHERE id = 7) LIMIT 2) s;
SELECT clusters FROM vecstore_compact('b_ham');
SELECT delta_rows, compactions > 0 AS compacted FROM vecstore_index_info('b_ham');
SELECT * FROM vecstore_verify('b_ham');
BEGIN;
SET LOCAL vecstore.effort = 10;
SELECT * FROM b_check(10);
COMMIT;
SELECT count(*) AS copies_found FROM (SELECT id FROM b ORDER BY v <~> (SELECT v FROM b WHERE id = 7) LIMIT 2) s;

-- binary quantization, then the exact rerank on the vectors
CREATE TABLE items (id int, embedding vector(8));
INSERT INTO items SELECT i, ARRAY(SELECT sin(i * j) FROM generate_series(1, 8) j) FROM generate_series(1, 500) i;
CREATE INDEX ON items USING vecstore ((binary_quantize(embedding)::bit(8)) bit_hamming_ops);
EXPLAIN (COSTS OFF)
SELECT id FROM (SELECT id, embedding FROM items ORDER BY binary_quantize(embedding)::bit(8) <~> binary_quantize('[1,-1,1,-1,1,-1,1,-1]'::vector) LIMIT 20) s
ORDER BY embedding <=> '[1,-1,1,-1,1,-1,1,-1]' LIMIT 5;
SELECT count(*) FROM (SELECT id, embedding FROM items ORDER BY binary_quantize(embedding)::bit(8) <~> binary_quantize('[1,-1,1,-1,1,-1,1,-1]'::vector) LIMIT 20) s;
DROP TABLE items;

-- limits
CREATE TABLE wide (v bit(4097));
CREATE INDEX ON wide USING vecstore (v bit_hamming_ops);
CREATE TABLE ok (v bit(4096));
INSERT INTO ok SELECT repeat('10', 2048)::bit(4096);
CREATE INDEX ok_v ON ok USING vecstore (v bit_hamming_ops);
SELECT count(*) FROM (SELECT v FROM ok ORDER BY v <~> repeat('01', 2048)::bit(4096) LIMIT 1) s;
SELECT v <~> repeat('01', 2048)::bit(4096) FROM ok;
-- a bit string of another length
SELECT count(*) FROM (SELECT id FROM b ORDER BY v <~> B'101' LIMIT 1) s;
DROP TABLE b, bq, wide, ok;
DROP FUNCTION b_check(int);
RESET enable_seqscan;
