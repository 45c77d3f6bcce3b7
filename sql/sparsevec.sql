-- The sparsevec type: text form, limits, typmod, binary form, distances,
-- norms, casts, comparisons and the btree operator class.  Distances and
-- the order are also checked against the same values as vector.

-- text form: {index:value,...}/dimensions, indices from 1
SELECT '{2:0.5,4:-3}/6'::sparsevec;
SELECT '{1:7}/1'::sparsevec, '{}/4'::sparsevec, '{ }/4'::sparsevec;
-- any order in, ascending out; zeros (and -0) are not stored
SELECT '{5:5,1:1,3:3}/5'::sparsevec;
SELECT '{1:0,2:-0,3:0.25,4:0e10}/4'::sparsevec;
-- a zero does not count as a repeat of its index
SELECT '{2:0,2:8}/3'::sparsevec;
-- whitespace between tokens, signs, exponents, shortest round-trip output
SELECT E'\t{ 3 :\n1e2 , +1: -2.50 }\r/ 7 '::sparsevec;
SELECT '{1:0.1,2:3.4028235e38,3:1.5e-45,4:0.333333333}/4'::sparsevec;
SELECT '{1000000000:1}/1000000000'::sparsevec;

-- malformed text
SELECT ''::sparsevec;
SELECT '[1,2]'::sparsevec;
SELECT '{1:1}'::sparsevec;
SELECT '{1:1}x/2'::sparsevec;
SELECT '{1:1}/'::sparsevec;
SELECT '{1:1}/two'::sparsevec;
SELECT '{1:1}/2 3'::sparsevec;
SELECT '{1:1}/2.0'::sparsevec;
SELECT '{1:1'::sparsevec;
SELECT '{1:1,'::sparsevec;
SELECT '{1:1,,2:2}/2'::sparsevec;
SELECT '{1:1,2:2,}/2'::sparsevec;
SELECT '{1 1}/2'::sparsevec;
SELECT '{1:}/2'::sparsevec;
SELECT '{:1}/2'::sparsevec;
SELECT '{1.5:1}/2'::sparsevec;
SELECT '{x:1}/2'::sparsevec;
SELECT '{1:1x}/2'::sparsevec;
SELECT '{1:1;2:2}/2'::sparsevec;

-- limits of dimensions, indices and values
SELECT '{}/0'::sparsevec;
SELECT '{}/-3'::sparsevec;
SELECT '{}/1000000001'::sparsevec;
SELECT '{}/99999999999999999999'::sparsevec;
SELECT '{}/-99999999999999999999'::sparsevec;
SELECT '{0:1}/3'::sparsevec;
SELECT '{4:1}/3'::sparsevec;
SELECT '{-1:1}/3'::sparsevec;
SELECT '{99999999999:1}/3'::sparsevec;
SELECT '{2:1,3:1,2:5}/3'::sparsevec;
SELECT '{3:1,9:1,3:1}/3'::sparsevec;
SELECT '{1:nan}/3'::sparsevec;
SELECT '{1:-inf}/3'::sparsevec;
SELECT '{1:1e39}/3'::sparsevec;
SELECT '{1:-1e-50}/3'::sparsevec;
-- 16000 stored elements, and one more (counted before parsing)
SELECT l2_norm(('{' || string_agg(i || ':1', ',') || '}/16000')::sparsevec)
FROM generate_series(1, 16000) i;
SELECT ('{' || string_agg(i || ':1', ',') || '}/16001')::sparsevec
FROM generate_series(1, 16001) i;

-- typmod
SELECT '{1:1}/5'::sparsevec(5);
SELECT '{1:1}/5'::sparsevec(4);
SELECT '{1:1}/5'::sparsevec(0);
SELECT '{1:1}/5'::sparsevec(1000000001);
SELECT '{1:1}/5'::sparsevec(5, 1);
CREATE TABLE sv_typmod (v sparsevec(3));
INSERT INTO sv_typmod VALUES ('{1:1}/3'), (NULL);
INSERT INTO sv_typmod VALUES ('{1:1}/4');
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'sv_typmod'::regclass AND attname = 'v';
DROP TABLE sv_typmod;

-- binary form: int32 dims, int32 nnz, int32 zero, 0-based indices, values
SELECT encode(sparsevec_send('{2:1,4:-2.5}/4'), 'hex');
SELECT encode(sparsevec_send('{}/1'), 'hex');
CREATE TABLE sv_src (id int, v sparsevec);
INSERT INTO sv_src VALUES (1, '{1:1.5,1000:-2}/1000'), (2, '{}/3'), (3, NULL),
    (4, '{1:3.4028235e38,2:1e-45}/2');
CREATE TABLE sv_dst (id int, v sparsevec);
\copy sv_src TO 'results/sparsevec.bin' WITH (FORMAT binary)
\copy sv_dst FROM 'results/sparsevec.bin' WITH (FORMAT binary)
SELECT s.id, d.v, s.v = d.v AS same FROM sv_src s JOIN sv_dst d USING (id) ORDER BY id;

-- malformed binary input, fed to COPY FROM through a shell printf
CREATE FUNCTION copy_cmd(field bytea) RETURNS text LANGUAGE sql AS $$
    -- a binary COPY stream with one row of one field, as octal escapes
    SELECT 'printf ''' || string_agg('\' || (b / 64)::text || ((b / 8) % 8)::text || (b % 8)::text, '' ORDER BY i) || ''''
    FROM (SELECT i, get_byte(s, i) AS b
          FROM (SELECT '\x5047434f50590aff0d0a00'::bytea || '\x0000000000000000'::bytea
                       || '\x0001'::bytea || int4send(length(field)) || field || '\xffff'::bytea AS s) x,
               generate_series(0, length(s) - 1) i) y;
$$;
CREATE TABLE sv_bad (v sparsevec);
CREATE TABLE sv_bad2 (v sparsevec(2));
-- a good row: {1:1,3:2}/3
SELECT copy_cmd('\x00000003000000020000000000000000000000023f80000040000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT v FROM sv_bad;
-- zero dimensions
SELECT copy_cmd('\x000000000000000000000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- negative, too many, and more elements than dimensions
SELECT copy_cmd('\x00000003ffffffff00000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x3b9aca0000003e8100000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x000000010000000200000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- nonzero reserved field
SELECT copy_cmd('\x000000030000000000000007') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- index out of bounds, descending, repeated
SELECT copy_cmd('\x0000000300000001000000000000000340000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x00000003000000020000000000000002000000003f80000040000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x00000003000000020000000000000001000000013f80000040000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- zero, -0 and NaN values
SELECT copy_cmd('\x0000000300000001000000000000000000000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x0000000300000001000000000000000080000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x000000030000000100000000000000007fc00000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- one element announced, none sent; a trailing byte
SELECT copy_cmd('\x000000030000000100000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT copy_cmd('\x00000003000000000000000000') AS cmd \gset
COPY sv_bad FROM PROGRAM :'cmd' WITH (FORMAT binary);
-- the column's typmod
SELECT copy_cmd('\x000000030000000000000000') AS cmd \gset
COPY sv_bad2 FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT count(*) AS rows_after_errors FROM sv_bad;
DROP FUNCTION copy_cmd(bytea);
DROP TABLE sv_src, sv_dst, sv_bad, sv_bad2;

-- distances: disjoint, interleaved, shared and empty index sets
SELECT l2_distance('{1:3}/4'::sparsevec, '{4:4}/4') AS disjoint,
       l2_distance('{1:1,3:1}/4'::sparsevec, '{2:1,3:3,4:1}/4') AS mixed,
       l2_distance('{}/4'::sparsevec, '{2:-6,3:8}/4') AS one_empty,
       l2_distance('{2:5}/4'::sparsevec, '{2:5}/4') AS same;
SELECT inner_product('{1:2,3:4}/5'::sparsevec, '{2:9,3:0.5,5:7}/5') AS shared_one,
       inner_product('{1:1,2:1}/2'::sparsevec, '{}/2') AS empty,
       sparsevec_negative_inner_product('{1:2,2:3}/2', '{1:4,2:-1}/2') AS negative;
SELECT cosine_distance('{1:1}/3'::sparsevec, '{1:7}/3') AS parallel,
       cosine_distance('{1:1,2:1}/3'::sparsevec, '{1:-2,2:-2}/3') AS opposite,
       cosine_distance('{1:5}/3'::sparsevec, '{3:5}/3') AS orthogonal,
       cosine_distance('{2:1}/3'::sparsevec, '{}/3') AS zero;
SELECT l1_distance('{1:-1,2:2}/3'::sparsevec, '{2:-2,3:3}/3') AS mixed,
       l1_distance('{}/3'::sparsevec, '{}/3') AS empty,
       sparsevec_l2_squared_distance('{1:1,2:2}/3', '{3:2}/3') AS squared;
-- float4 sums, as pgvector's: overflow gives infinity (and NaN for cosine)
SELECT inner_product('{1:2e38,2:2e38}/2'::sparsevec, '{1:1,2:1}/2') AS ip,
       l2_distance('{1:3e38}/2'::sparsevec, '{2:3e38}/2') AS l2,
       l1_distance('{1:3e38}/2'::sparsevec, '{1:-3e38}/2') AS l1,
       cosine_distance('{1:2e19,2:2e19}/2'::sparsevec, '{1:2e19,2:2e19}/2') AS cosine;
-- different dimensions
SELECT l2_distance('{1:1}/2'::sparsevec, '{1:1}/3');
SELECT inner_product('{1:1}/3'::sparsevec, '{1:1}/2');
SELECT cosine_distance('{}/10'::sparsevec, '{}/9');
SELECT l1_distance('{}/1'::sparsevec, '{}/2');
SELECT sparsevec_l2_squared_distance('{}/1', '{}/2');
SELECT '{}/1'::sparsevec <#> '{}/5';
-- the operators
SELECT '{1:1,2:2}/3'::sparsevec <-> '{2:2,3:2}/3' AS l2,
       '{1:1,2:2}/3'::sparsevec <#> '{2:2,3:2}/3' AS neg_ip,
       round(('{1:1,2:2}/3'::sparsevec <=> '{2:2,3:2}/3')::numeric, 6) AS cosine,
       '{1:1,2:2}/3'::sparsevec <+> '{2:2,3:2}/3' AS l1;
-- a vector on either side is cast to sparsevec
SELECT '[3,0,0]'::vector <-> '{2:4}/3'::sparsevec AS l2_mixed,
       '{2:4}/3'::sparsevec <+> '[3,0,0]'::vector AS l1_mixed;

-- norms
SELECT l2_norm('{1:3,5:4}/5'::sparsevec) AS norm, l2_norm('{}/5'::sparsevec) AS zero,
       l2_norm('{1:3e38,2:3e38}/2'::sparsevec) AS large;
SELECT l2_normalize('{1:-3,4:4}/4'::sparsevec);
SELECT l2_normalize('{3:0.001}/3'::sparsevec);
SELECT l2_normalize('{}/3'::sparsevec);
-- a value negligible next to the norm rounds to zero and is dropped
SELECT l2_normalize('{1:1e30,2:1e-30,3:1e30}/3'::sparsevec);
SELECT l2_norm(l2_normalize('{1:1,2:2,3:3,9:4}/9'::sparsevec)) BETWEEN 0.999999 AND 1.000001 AS unit;

-- casts with vector
SELECT '[0,-1.5,0,0,2]'::vector::sparsevec, '[0,0]'::vector::sparsevec;
SELECT '[-0,1]'::vector::sparsevec;
SELECT '[1,0,2]'::vector::sparsevec(3);
SELECT '[1,0,2]'::vector::sparsevec(4);
SELECT '{3:1.5}/4'::sparsevec::vector, '{}/2'::sparsevec::vector;
SELECT '{3:1.5}/4'::sparsevec::vector(4);
SELECT '{3:1.5}/4'::sparsevec::vector(3);
SELECT '{16001:1}/16001'::sparsevec::vector;
SELECT ('{16000:1}/16000'::sparsevec::vector)::sparsevec;
-- sparsevec to vector is an assignment cast, vector to sparsevec implicit
CREATE TABLE sv_cast (v vector(3), s sparsevec(3));
INSERT INTO sv_cast VALUES ('{1:1}/3'::sparsevec, '[0,2,0]'::vector);
SELECT * FROM sv_cast;
SELECT castcontext, castsource::regtype, casttarget::regtype FROM pg_cast
WHERE castsource = 'sparsevec'::regtype OR casttarget = 'sparsevec'::regtype
ORDER BY castsource::regtype::text, casttarget::regtype::text;
DROP TABLE sv_cast;
-- casts with halfvec: halfvec to sparsevec keeps the non-zero halves
-- exactly (-0 is not stored, a subnormal is); sparsevec to halfvec rounds
-- each value to the nearest half, zeros where nothing is stored
SELECT '[0,-1.5,0,65504,-0,6e-8]'::halfvec::sparsevec, '[0,0]'::halfvec::sparsevec;
SELECT '{1:0.1,3:-2,4:65519}/5'::sparsevec::halfvec, '{}/2'::sparsevec::halfvec;
-- values too small for a half round to zero, keeping their sign
SELECT '{1:1e-9,2:-1e-9,3:1}/3'::sparsevec::halfvec;
SELECT ('{1:1e-9,2:-1e-9,3:1}/3'::sparsevec::halfvec)::sparsevec;
-- typmods on either side
SELECT '[1,0,2]'::halfvec::sparsevec(3);
SELECT '[1,0,2]'::halfvec::sparsevec(4);
SELECT '{3:1.5}/4'::sparsevec::halfvec(4);
SELECT '{3:1.5}/4'::sparsevec::halfvec(3);
-- out of range for a half, too many dimensions for a halfvec
SELECT '{2:65520}/3'::sparsevec::halfvec;
SELECT '{1:1,2:-1e10}/2'::sparsevec::halfvec;
SELECT '{16001:1}/16001'::sparsevec::halfvec;
SELECT '{1:1}/1000000000'::sparsevec::halfvec;
-- 16000 dimensions, all stored, both ways
SELECT (array_fill(1, ARRAY[16000])::halfvec::sparsevec)::halfvec = array_fill(1, ARRAY[16000])::halfvec AS round_trip,
       ('{16000:1}/16000'::sparsevec::halfvec)::sparsevec = '{16000:1}/16000'::sparsevec AS round_trip_sparse;
-- sparsevec to halfvec is an assignment cast, halfvec to sparsevec
-- implicit (so a halfvec meets a sparsevec in its operators)
CREATE TABLE shv_cast (h halfvec(3), s sparsevec(3));
INSERT INTO shv_cast VALUES ('{1:1.0001}/3'::sparsevec, '[0,2,0]'::halfvec);
SELECT * FROM shv_cast;
INSERT INTO shv_cast (h) VALUES ('{1:1}/4'::sparsevec);
INSERT INTO shv_cast (s) VALUES ('[1,2]'::halfvec);
SELECT '{1:3}/2'::sparsevec <-> '[0,4]'::halfvec AS l2_mixed,
       '[0,4]'::halfvec <+> '{1:3}/2'::sparsevec AS l1_mixed;
DROP TABLE shv_cast;
-- casts from arrays
SELECT ARRAY[0,4,0,-1]::sparsevec AS int4, ARRAY[0.5,0,0]::numeric[]::sparsevec AS numeric;
SELECT '{0,1.25,0}'::real[]::sparsevec AS float4, '{1e-50,2,0}'::float8[]::sparsevec AS float8;
SELECT '{1,0}'::real[]::sparsevec(2);
SELECT '{1,0}'::real[]::sparsevec(3);
SELECT '{}'::int[]::sparsevec;
SELECT '{{1,2},{3,4}}'::int[]::sparsevec;
SELECT '{1,NULL}'::float8[]::sparsevec;
SELECT '{1,NaN}'::float8[]::sparsevec;
SELECT '{1e300}'::float8[]::sparsevec;
SELECT array_agg(i)::sparsevec FROM generate_series(1, 16001) i;
SELECT l2_norm(array_agg(CASE WHEN i % 2 = 0 THEN 1 ELSE 0 END)::sparsevec)
FROM generate_series(1, 32000) i;

-- comparisons: the order of the dense vectors, then fewer dimensions first
SELECT '{1:1,2:2}/2'::sparsevec = '{2:2,1:1}/2' AS eq,
       '{1:1}/2'::sparsevec = '{1:1}/3' AS eq_dims,
       '{1:1}/3'::sparsevec <> '{1:1}/3' AS ne,
       '{2:1}/3'::sparsevec < '{1:1}/3' AS lt,
       '{1:-1}/3'::sparsevec < '{}/3' AS lt_negative,
       '{}/3'::sparsevec <= '{3:-1}/3' AS le,
       '{1:1}/2'::sparsevec > '{1:1}/9' AS gt_dims,
       '{2:1}/2'::sparsevec >= '{1:0.5,2:1}/9' AS ge;
SELECT sparsevec_cmp('{1:1}/5', '{1:1}/5') AS same,
       sparsevec_cmp('{5:1}/5', '{4:1}/5') AS later_index,
       sparsevec_cmp('{3:1}/3', '{}/2') AS beyond_shorter,
       sparsevec_cmp('{2:-1}/2', '{3:1}/3') AS negative_first;
-- against vector_cmp on every pair of a small set
CREATE TABLE sv_cmp AS
SELECT v::sparsevec AS s, v FROM (VALUES ('[0]'::vector), ('[1]'), ('[-1]'), ('[0,0]'),
    ('[0,1]'), ('[1,0]'), ('[0,-2]'), ('[1,1,0]'), ('[0,0,0]'), ('[0,0,3]'), ('[-1,0,5]'),
    ('[2,-1,0,0]'), ('[0,0,0,1]')) t(v);
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE sign(sparsevec_cmp(a.s, b.s)) <> sign(vector_cmp(a.v, b.v))) AS disagree
FROM sv_cmp a, sv_cmp b;
DROP TABLE sv_cmp;

-- the btree operator class: index scans, ORDER BY, uniqueness
CREATE TABLE sv_btree (id int, v sparsevec);
INSERT INTO sv_btree VALUES (1, '{2:1}/3'), (2, '{1:1}/3'), (3, '{}/3'), (4, '{1:-1}/3'),
    (5, '{1:1}/2'), (6, NULL), (7, '{1:1,3:1}/3');
CREATE UNIQUE INDEX sv_btree_v ON sv_btree (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM sv_btree WHERE v = '{1:1}/3';
SELECT id FROM sv_btree WHERE v = '{1:1}/3';
SELECT id, v FROM sv_btree ORDER BY v;
SELECT id FROM sv_btree WHERE v > '{}/3' ORDER BY v DESC;
RESET enable_seqscan;
INSERT INTO sv_btree VALUES (8, '{3:0,1:1}/3');
DROP TABLE sv_btree;

-- distances against vector on random sparse data (float rounding apart:
-- vector sums in another order)
SELECT setseed(0.25);
CREATE TEMP TABLE sv_rand AS
SELECT i, array_agg(CASE WHEN random() < 0.3 THEN round((random() * 20 - 10)::numeric, 2) ELSE 0 END)::vector AS v
FROM generate_series(1, 40) i, generate_series(1, 37) d GROUP BY i;
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE abs((a.v::sparsevec <-> b.v::sparsevec) - (a.v <-> b.v)) > 1e-4) AS l2_off,
       count(*) FILTER (WHERE abs((a.v::sparsevec <#> b.v::sparsevec) - (a.v <#> b.v)) > 1e-3) AS ip_off,
       count(*) FILTER (WHERE abs((a.v::sparsevec <=> b.v::sparsevec) - (a.v <=> b.v)) > 1e-5) AS cosine_off,
       count(*) FILTER (WHERE abs((a.v::sparsevec <+> b.v::sparsevec) - (a.v <+> b.v)) > 1e-3) AS l1_off,
       count(*) FILTER (WHERE a.v::sparsevec::vector <> a.v) AS round_trip_off
FROM sv_rand a, sv_rand b;
