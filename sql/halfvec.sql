-- halfvec: half-precision vectors.  Text and binary I/O, rounding and
-- range, typmod, errors, distances, functions, arithmetic, comparison and
-- btree/hash, casts, aggregates (serial and parallel), the kernel paths.

-- text input: elements round to the nearest half; output prints the
-- half's exact value, shortest round-trip as float4
SELECT '[0.5,-2,3.25]'::halfvec, ' [ 7 ,8,  9 ] '::halfvec;
SELECT '[0.1,3.14159,-1000.3,2049]'::halfvec;
SELECT '[65504,-65504,65519.9]'::halfvec AS largest;
SELECT '[6e-8,-6e-8,3e-8,2.9e-8,1e-10]'::halfvec AS subnormals_and_underflow;
SELECT '[-0,0]'::halfvec;
SELECT '[1e1,  2E-1 ,+3]'::halfvec;
-- round to nearest even: 2049 and 2051 are ties between representable
-- neighbours (even multiples of 2 win)
SELECT '[2049,2051,2050]'::halfvec;
-- the text form reads back to the same halfvec
SELECT v::text::halfvec = v AS round_trips
FROM (SELECT '[0.1,0.2,0.3,-1e-5,60000.5,1.0009765625]'::halfvec AS v) s;

-- out of range, non-finite, malformed
SELECT '[65520]'::halfvec;
SELECT '[1,-70000]'::halfvec;
SELECT '[1e39]'::halfvec;
SELECT '[nan]'::halfvec;
SELECT '[1,inf]'::halfvec;
SELECT '[-Infinity]'::halfvec;
SELECT '(1,2)'::halfvec;
SELECT '[1 2]'::halfvec;
SELECT '[1,2'::halfvec;
SELECT '[1,2] x'::halfvec;
SELECT '[1,,2]'::halfvec;
SELECT '[x]'::halfvec;
SELECT '[]'::halfvec;
SELECT ('[' || repeat('1,', 16000) || '1]')::halfvec;
SELECT vector_dims(('[' || repeat('1,', 15999) || '1]')::halfvec) AS max_dims;

-- typmod
SELECT '[1,2]'::halfvec(2), '[1,2,3]'::halfvec(3);
SELECT '[1,2]'::halfvec(3);
SELECT '[1]'::halfvec(0);
SELECT '[1]'::halfvec(16001);
SELECT '[1]'::halfvec(1, 1);
CREATE TABLE ht (id int, v halfvec(3));
INSERT INTO ht VALUES (1, '[1,2,3]'), (2, '[-1,0.5,4]'), (3, NULL);
INSERT INTO ht VALUES (4, '[1,2]');
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'ht'::regclass AND attname = 'v';

-- binary form: int16 dims, int16 zero, binary16 elements, network order
SELECT encode(halfvec_send('[1,-2,0.5]'), 'hex');
SELECT encode(halfvec_send('[65504,-0,6e-8]'), 'hex');
-- COPY round trips, text and binary
CREATE TABLE ht_text (LIKE ht);
CREATE TABLE ht_bin (LIKE ht);
\copy ht TO 'results/halfvec.txt'
\copy ht_text FROM 'results/halfvec.txt'
\copy ht TO 'results/halfvec.bin' WITH (FORMAT binary)
\copy ht_bin FROM 'results/halfvec.bin' WITH (FORMAT binary)
SELECT a.id, a.v, b.v IS NOT DISTINCT FROM a.v AS text_same, c.v IS NOT DISTINCT FROM a.v AS bin_same
FROM ht a JOIN ht_text b USING (id) JOIN ht_bin c USING (id) ORDER BY id;
DROP TABLE ht_text, ht_bin;

-- malformed binary input, through COPY FROM PROGRAM (one row, one field)
CREATE FUNCTION half_copy_cmd(field bytea) RETURNS text LANGUAGE sql AS $$
    SELECT 'printf ''' || string_agg('\' || (b / 64)::text || ((b / 8) % 8)::text || (b % 8)::text, '' ORDER BY i) || ''''
    FROM (SELECT i, get_byte(s, i) AS b
          FROM (SELECT '\x5047434f50590aff0d0a00'::bytea || '\x0000000000000000'::bytea
                       || '\x0001'::bytea || int4send(length(field)) || field || '\xffff'::bytea AS s) x,
               generate_series(0, length(s) - 1) i) y;
$$;
CREATE TABLE hbad (v halfvec);
CREATE TABLE hbad2 (v halfvec(2));
SELECT half_copy_cmd('\x000200003c00c000') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT v FROM hbad;
-- zero and too many dimensions, reserved field, short, NaN, infinity, typmod
SELECT half_copy_cmd('\x00000000') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT half_copy_cmd('\x3e810000') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT half_copy_cmd('\x000100013c00') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT half_copy_cmd('\x000200003c00') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT half_copy_cmd('\x000100007e00') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT half_copy_cmd('\x00010000fc00') AS cmd \gset
COPY hbad FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT half_copy_cmd('\x000100003c00') AS cmd \gset
COPY hbad2 FROM PROGRAM :'cmd' WITH (FORMAT binary);
SELECT count(*) AS rows_after_errors FROM hbad;
DROP FUNCTION half_copy_cmd(bytea);
DROP TABLE hbad, hbad2;

-- distances: operators and functions agree; exact on small integers
SELECT l2_distance('[1,2,2]'::halfvec, '[3,4,3]'), '[1,2,2]'::halfvec <-> '[3,4,3]';
SELECT halfvec_l2_squared_distance('[1,2,2]', '[3,4,3]');
SELECT inner_product('[1,-2,3]'::halfvec, '[4,5,6]'), '[1,-2,3]'::halfvec <#> '[4,5,6]';
SELECT halfvec_negative_inner_product('[1,-2,3]', '[4,5,6]');
SELECT halfvec_spherical_distance('[1,0]', '[0,1]'), round(halfvec_spherical_distance('[0.6,0.8]', '[0.6,0.8]')::numeric, 4);
SELECT cosine_distance('[2,0]'::halfvec, '[0,5]'), '[1,1]'::halfvec <=> '[3,3]',
       cosine_distance('[1,2]'::halfvec, '[-2,-4]'), cosine_distance('[0,0]'::halfvec, '[1,1]');
SELECT l1_distance('[1,-2,3]'::halfvec, '[-1,2,-3]'), '[1,-2,3]'::halfvec <+> '[-1,2,-3]';
-- sums are in float: the largest half squared is fine
SELECT inner_product('[65504,65504]'::halfvec, '[65504,65504]');
-- distances of the halves, not of the decimals typed: 0.1 is 0.0999755859375
SELECT inner_product('[0.1]'::halfvec, '[1]') = 0.0999755859375 AS exact_half;
SELECT l2_distance('[1,2]'::halfvec, '[1,2,3]');
SELECT '[1,2]'::halfvec <#> '[1]';
SELECT cosine_distance('[1]'::halfvec, '[1,2]');
SELECT '[1]'::halfvec <+> '[1,2]';
-- a long vector crosses the SIMD kernels' steps and remainder
SELECT halfvec_l2_squared_distance(array_fill(1, ARRAY[1003])::halfvec, array_fill(2, ARRAY[1003])::halfvec) AS l2sq,
       inner_product(array_fill(2, ARRAY[1003])::halfvec, array_fill(3, ARRAY[1003])::halfvec) AS ip,
       l1_distance(array_fill(0.5, ARRAY[1003])::halfvec, array_fill(-1, ARRAY[1003])::halfvec) AS l1;

-- every kernel path this CPU has gives the scalar path's results to
-- float rounding (vecstore.simd switches the half kernels too)
CREATE TABLE hk (id int, a halfvec, b halfvec);
INSERT INTO hk SELECT n, ARRAY(SELECT sin(n * 7 + i) * 3 FROM generate_series(1, n) i)::halfvec,
                         ARRAY(SELECT cos(n * 5 + i) * 2 FROM generate_series(1, n) i)::halfvec
FROM generate_series(1, 70) n;
CREATE TABLE hk_auto AS
SELECT id, a <-> b AS l2, a <#> b AS ip, a <=> b AS cos, a <+> b AS l1 FROM hk;
SET vecstore.simd = scalar;
SELECT count(*) AS rows_differ_beyond_rounding FROM hk_auto s JOIN hk USING (id)
WHERE abs(s.l2 - (hk.a <-> hk.b)) > 1e-5 * (1 + s.l2) OR abs(s.ip - (hk.a <#> hk.b)) > 1e-5 * (1 + abs(s.ip))
   OR abs(s.cos - (hk.a <=> hk.b)) > 1e-5 OR abs(s.l1 - (hk.a <+> hk.b)) > 1e-5 * (1 + s.l1);
RESET vecstore.simd;
DROP TABLE hk, hk_auto;

-- functions
SELECT vector_dims('[1,2,3,4]'::halfvec);
SELECT l2_norm('[3,4]'::halfvec), l2_norm('[0,0]'::halfvec), l2_norm('[-5]'::halfvec);
SELECT l2_norm(array_fill(65504, ARRAY[4])::halfvec) AS no_float_overflow;
SELECT l2_normalize('[3,0,4]'::halfvec), l2_normalize('[0,0]'::halfvec), l2_normalize('[-7]'::halfvec);
SELECT l2_normalize('[6e-8,0]'::halfvec) AS subnormal_input;
SELECT subvector('[1,2,3,4,5]'::halfvec, 2, 3), subvector('[1,2,3,4,5]'::halfvec, -1, 4),
       subvector('[1,2,3,4,5]'::halfvec, 4, 2147483647);
SELECT subvector('[1,2,3]'::halfvec, 4, 1);
SELECT subvector('[1,2,3]'::halfvec, 1, 0);
SELECT subvector('[1,2,3]'::halfvec, -2147483648, 2147483647);
SELECT binary_quantize('[1,-1,0,-0,6e-8,-6e-8,0.5,2,-3]'::halfvec);
SELECT pg_typeof(binary_quantize('[1]'::halfvec));

-- arithmetic, rounded to half once
SELECT '[1,2,3]'::halfvec + '[0.5,-2,10]', '[1,2,3]'::halfvec - '[0.5,-2,10]', '[1,2,3]'::halfvec * '[0.5,-2,10]';
SELECT '[2048]'::halfvec + '[1]' AS tie_to_even, '[2048]'::halfvec + '[3]' AS tie_up;
SELECT '[0.1]'::halfvec * '[0.1]' AS product;
SELECT '[60000]'::halfvec + '[10000]';
SELECT '[-60000]'::halfvec - '[10000]';
SELECT '[300]'::halfvec * '[300]';
SELECT '[0.001]'::halfvec * '[0.00001]';
SELECT '[0]'::halfvec * '[0.00001]' AS zero_is_not_underflow;
SELECT '[1,2]'::halfvec + '[1]';
SELECT '[1,2]'::halfvec - '[1]';
SELECT '[1,2]'::halfvec * '[1]';
SELECT '[1,2]'::halfvec || '[3]', vector_dims(array_fill(1, ARRAY[8000])::halfvec || array_fill(2, ARRAY[8000])::halfvec);
SELECT array_fill(1, ARRAY[8000])::halfvec || array_fill(2, ARRAY[8001])::halfvec;

-- comparison, btree and hash
SELECT '[1,2]'::halfvec < '[1,3]', '[1,2]'::halfvec <= '[1,2]', '[1,2]'::halfvec = '[1,2]',
       '[1,2]'::halfvec <> '[1,2,0]', '[2]'::halfvec >= '[1,9]', '[1,2,3]'::halfvec > '[1,2]';
SELECT '[-0]'::halfvec = '[0]' AS signed_zeros_equal, '[0.1]'::halfvec = '[0.09997]' AS same_half;
SELECT halfvec_cmp('[1,2]', '[1,2]'), halfvec_cmp('[1,2]', '[1,3]'), halfvec_cmp('[1,2,3]', '[1,2]'),
       halfvec_cmp('[-1]', '[-2]');
INSERT INTO ht VALUES (5, '[1,2,3]'), (6, '[-0,0,0]'), (7, '[0,-0,0]'), (8, '[1,2,2.999]');
SELECT id, v FROM ht ORDER BY v, id;
CREATE INDEX ht_v_btree ON ht (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM ht WHERE v = '[1,2,3]';
SELECT id FROM ht WHERE v = '[1,2,3]' ORDER BY id;
SELECT id FROM ht WHERE v < '[0,1,0]' ORDER BY id;
RESET enable_seqscan;
DROP INDEX ht_v_btree;
-- hashing: -0 and +0 hash alike, so hash joins, DISTINCT and GROUP BY agree
SELECT halfvec_hash('[-0,1]') = halfvec_hash('[0,1]') AS hash_zero,
       halfvec_hash_extended('[-0,1]', 7) = halfvec_hash_extended('[0,1]', 7) AS hash_ext_zero;
SET enable_sort = off;
SELECT v, count(*) FROM ht WHERE v IS NOT NULL GROUP BY v ORDER BY v;
RESET enable_sort;
CREATE INDEX ht_v_hash ON ht USING hash (v);
SET enable_seqscan = off;
SELECT id FROM ht WHERE v = '[0,0,0]' ORDER BY id;
RESET enable_seqscan;
DROP TABLE ht;

-- casts: vector -> halfvec is implicit (rounds), halfvec -> vector is
-- assignment (exact); arrays -> halfvec assignment, halfvec -> real[]
SELECT '[0.1,65504,1e-8]'::vector::halfvec, '[0.1,2]'::halfvec::vector;
SELECT '[1,2,3]'::vector::halfvec(3);
SELECT '[1,2,3]'::vector::halfvec(2);
SELECT '[65520]'::vector::halfvec;
SELECT '[1,2]'::halfvec::vector(3);
SELECT '[0.1,-2]'::halfvec::real[];
SELECT '{1,2,3}'::int[]::halfvec, '{1.5,-2.5}'::real[]::halfvec, '{0.1,1e-9}'::float8[]::halfvec,
       '{3.14159,100}'::numeric[]::halfvec;
SELECT '{1,2}'::real[]::halfvec(2);
SELECT '{1,2}'::real[]::halfvec(3);
SELECT '{70000}'::int[]::halfvec;
SELECT '{1e30}'::real[]::halfvec;
SELECT '{1e300}'::float8[]::halfvec;
SELECT '{NaN}'::real[]::halfvec;
SELECT '{1,Infinity}'::float8[]::halfvec;
SELECT '{1e40}'::numeric[]::halfvec;
SELECT '{{1,2},{3,4}}'::real[]::halfvec;
SELECT '{1,NULL}'::real[]::halfvec;
SELECT '{}'::real[]::halfvec;
SELECT array_fill(1, ARRAY[16001])::halfvec;
-- assignment casts in INSERT, implicit vector -> halfvec in a call
CREATE TABLE hc (v halfvec(2));
INSERT INTO hc VALUES (ARRAY[1, 2]), ('[3,4]'::vector), (ARRAY[0.5, 0.25]::float8[]);
SELECT v FROM hc ORDER BY v;
SELECT l2_distance(v, '[0,0]'::vector) FROM hc ORDER BY 1;
DROP TABLE hc;
SELECT castsource::regtype, casttarget::regtype, castcontext
FROM pg_cast WHERE castsource = 'halfvec'::regtype OR casttarget = 'halfvec'::regtype
ORDER BY castsource::regtype::text, casttarget::regtype::text;

-- aggregates: summed in double, NULLs skipped, NULL for no rows
SELECT avg(v), sum(v) FROM (VALUES ('[1,2]'::halfvec), ('[2,3]'), (NULL), ('[4,-1]')) t(v);
SELECT avg(v), sum(v) FROM (SELECT '[1]'::halfvec AS v WHERE false) t;
-- 3000 ones: a running half sum would stall at 2048
SELECT sum(v) FROM (SELECT '[1]'::halfvec AS v FROM generate_series(1, 3000)) t;
SELECT sum(v) FROM (VALUES ('[60000]'::halfvec), ('[60000]'), ('[-60000]')) t(v);
SELECT avg(v) FROM (VALUES ('[65504]'::halfvec), ('[65504]')) t(v);
SELECT sum(v) FROM (VALUES ('[65504]'::halfvec), ('[65504]')) t(v);
SELECT avg(v) FROM (VALUES ('[1,2]'::halfvec), ('[1]')) t(v);
SELECT sum(v) FROM (VALUES ('[1,2]'::halfvec), ('[1]')) t(v);
SELECT g, avg(v), sum(v) FROM (VALUES (1, '[1,1]'::halfvec), (1, '[2,4]'), (2, '[0.5,0.5]')) t(g, v)
GROUP BY g ORDER BY g;
-- parallel aggregation gives the serial answer
CREATE TABLE hagg (g int, v halfvec(2));
INSERT INTO hagg SELECT i % 3, ARRAY[(i % 10) * 0.25, (i % 7) * -0.5]::halfvec FROM generate_series(1, 30000) i;
ANALYZE hagg;
SELECT avg(v), sum(v) FROM hagg;
SELECT g, avg(v), sum(v) FROM hagg GROUP BY g ORDER BY g;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(v), sum(v) FROM hagg;
SELECT avg(v), sum(v) FROM hagg;
SELECT g, avg(v), sum(v) FROM hagg GROUP BY g ORDER BY g;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE hagg;
SELECT aggfnoid::regprocedure, aggtransfn, aggfinalfn, aggcombinefn, aggserialfn, aggdeserialfn, p.proparallel
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
WHERE aggfnoid IN ('avg(halfvec)'::regprocedure, 'sum(halfvec)'::regprocedure)
ORDER BY 1::regprocedure::text;

-- pgvector's array-state functions
SELECT halfvec_accum('{0}', '[1,2.5]');
SELECT halfvec_accum(halfvec_accum('{0}', '[1,2.5]'), '[3,0.5]');
SELECT halfvec_avg(halfvec_accum(halfvec_accum('{0}', '[1,2.5]'), '[3,0.5]'));
SELECT halfvec_combine('{1,1,2}', '{2,3,4}'), halfvec_combine('{0}', '{1,5,5}');
SELECT halfvec_avg('{0}') IS NULL AS empty_is_null;
SELECT halfvec_avg('{2,200000}');
SELECT halfvec_avg('{1,1e300}');
SELECT halfvec_avg('{1}');
SELECT halfvec_avg('{{1,2}}');
SELECT halfvec_accum('{1,2}', '[1,2]');
SELECT halfvec_accum('{NULL}', '[1]');
SELECT halfvec_accum('{1,1.7e308}', '[65504]') IS NOT NULL AS fits;
