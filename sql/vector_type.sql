-- The vector type: text form, typmod, storage, comparison, btree and hash.

-- text input: whitespace, signs, exponents, shortest round-trip output
SELECT '[1,2,3]'::vector;
SELECT ' [ 1 , -2.5 ,3e2 ] '::vector;
SELECT E'[\t1,\n2\r,3 ]'::vector;
SELECT '[-0,0.1,1e-7,123456789,3.4028235e38,1.17549435e-38]'::vector;
SELECT '[0.1,0.2,0.30000001]'::vector;
SELECT '[1e-45]'::vector;   -- smallest denormal is kept, as float4in keeps it
SELECT '[+1.5,.5,5.]'::vector;

-- output round-trips exactly
SELECT v::text::vector = v AS round_trip
FROM (SELECT '[0.1,0.7,3.14159265,2.7182817e-12,-9.999999e30]'::vector AS v) s;

-- typmod
CREATE TABLE vt (id int, v vector(3));
INSERT INTO vt VALUES (1, '[1,2,3]'), (2, '[-1,-2,-3]'), (3, NULL), (4, '[1,2,3.5]');
SELECT * FROM vt ORDER BY id;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'vt'::regclass AND attname = 'v';
SELECT '[1,2,3]'::vector(3);
SELECT '[1,2]'::vector::vector(2);

-- a typmod from 1 to 16000 dimensions
SELECT vector_dims(array_fill(1.5::real, ARRAY[16000])::vector(16000));
SELECT vector_dims('[42]'::vector(1));

-- comparison operators and vector_cmp (element-wise, then shorter first)
SELECT a, b, a < b AS lt, a <= b AS le, a = b AS eq, a <> b AS ne,
       a >= b AS ge, a > b AS gt, vector_cmp(a, b) AS cmp
FROM (VALUES ('[1,2,3]'::vector, '[1,2,3]'::vector),
             ('[1,2,3]', '[1,2,4]'),
             ('[1,2]', '[1,2,3]'),
             ('[2]', '[1,2,3]'),
             ('[-0]', '[0]')) t(a, b);

-- btree: ORDER BY, a unique index, merge join
SELECT v FROM (VALUES ('[3,1]'::vector), ('[1,2]'), ('[1,2,0]'), ('[1]'), ('[-5,9]')) t(v) ORDER BY v;
CREATE TABLE vu (v vector PRIMARY KEY);
INSERT INTO vu VALUES ('[1,2]'), ('[1,2,3]');
INSERT INTO vu VALUES ('[1,2]');
INSERT INTO vu VALUES ('[-0,1]'), ('[0,1]');
SET enable_hashjoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM vt JOIN vu ON vt.v = vu.v;
RESET enable_hashjoin;
RESET enable_nestloop;

-- hash: -0 and +0 are equal and hash alike, GROUP BY, hash join, hash index
SELECT vector_hash('[0,1]') = vector_hash('[-0,1]') AS zero_hashes_alike;
SELECT vector_hash_extended('[0,1]', 7) = vector_hash_extended('[-0,1]', 7) AS seeded_alike;
SELECT (vector_hash_extended('[1,2,3]', 0) & 4294967295)::bit(32) = vector_hash('[1,2,3]')::bit(32)
    AS seed_zero_matches;
SELECT vector_hash('[1,2]') <> vector_hash('[1,2,0]') AS prefix_differs;
SELECT v, count(*) FROM (VALUES ('[1,2]'::vector), ('[1,2]'), ('[-0]'), ('[0]'), ('[1,2,0]')) t(v)
GROUP BY v ORDER BY v;
CREATE INDEX vt_hash ON vt USING hash (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM vt WHERE v = '[1,2,3]';
SELECT id FROM vt WHERE v = '[1,2,3]';
RESET enable_seqscan;
SET enable_mergejoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM vt JOIN vu ON vt.v = vu.v;
SELECT count(*) FROM vt a JOIN vt b ON a.v = b.v;
RESET enable_mergejoin;
RESET enable_nestloop;

-- large vectors are stored out of line and come back intact
CREATE TABLE vbig (v vector(4000));
INSERT INTO vbig SELECT array_agg(i::real / 7)::vector FROM generate_series(1, 4000) i;
SELECT vector_dims(v), v = (SELECT array_agg(i::real / 7)::vector FROM generate_series(1, 4000) i)
FROM vbig;
SELECT pg_column_size(v) FROM vbig;

-- the SIMD setting changes no result
SET vecstore.simd = scalar;
SELECT '[1,2,3]'::vector <-> '[4,5,6]' AS l2;
RESET vecstore.simd;
SELECT '[1,2,3]'::vector <-> '[4,5,6]' AS l2;
SET vecstore.simd = 'no_such_path';
-- only a superuser changes it (the operators are immutable; paths differ in
-- the last bits of a sum)
CREATE ROLE regress_vs_simd_user;
SET ROLE regress_vs_simd_user;
SET vecstore.simd = scalar;
RESET ROLE;
DROP ROLE regress_vs_simd_user;

DROP TABLE vt, vu, vbig;
