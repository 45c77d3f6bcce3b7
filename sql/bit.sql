-- hamming_distance and jaccard_distance on the bit type, the <~> and <%>
-- operators: hand-worked values, lengths around the kernels' word and
-- block sizes, bit/varbit mixing, errors, and a cross-check against the
-- bit type's own operators on random strings.

-- Hamming: positions that differ
SELECT hamming_distance(B'1011', B'1011') AS same,
       hamming_distance(B'1011', B'0011') AS one,
       hamming_distance(B'1011', B'0100') AS all_four,
       hamming_distance(B'0', B'1') AS single_bit;
SELECT B'110011' <~> B'101010' AS op, B'101010' <~> B'110011' AS swapped;

-- Jaccard: 1 - |a & b| / |a | b|
SELECT jaccard_distance(B'1100', B'1100') AS same,
       jaccard_distance(B'1110', B'0111') AS half,
       jaccard_distance(B'1000', B'0100') AS disjoint,
       jaccard_distance(B'1111', B'1000') AS quarter;
SELECT B'111000' <%> B'011100' AS op, B'011100' <%> B'111000' AS swapped;

-- no bit set in both (two strings of zeros, the empty string): distance 1
SELECT jaccard_distance(B'0000', B'0000') AS zeros,
       jaccard_distance(B'', B'') AS empty,
       hamming_distance(B'', B'') AS empty_hamming;

-- lengths on both sides of a byte, a 64-bit word and a 512-bit block:
-- all ones against a string with one bit set at each end
SELECT n,
       hamming_distance(repeat('1', n)::varbit, ('1' || repeat('0', n - 2) || '1')::varbit) AS hamming,
       round(jaccard_distance(repeat('1', n)::varbit, ('1' || repeat('0', n - 2) || '1')::varbit)::numeric, 6) AS jaccard
FROM unnest(ARRAY[2, 7, 8, 9, 63, 64, 65, 511, 512, 513, 1000, 4097]) n
ORDER BY n;

-- alternating patterns: every bit differs, none shared
SELECT hamming_distance(repeat('10', 300)::varbit, repeat('01', 300)::varbit) AS hamming,
       jaccard_distance(repeat('10', 300)::varbit, repeat('01', 300)::varbit) AS jaccard;

-- bit(n) and varbit mix; only the lengths must agree
SELECT hamming_distance(B'101'::bit(3), B'001'::varbit) AS bit_varbit,
       jaccard_distance(B'101'::varbit(10), B'111'::bit(3)) AS varbit_bit;

-- different lengths
SELECT hamming_distance(B'101', B'10');
SELECT jaccard_distance(B'1', B'');
SELECT B'1111' <~> B'11111'::varbit(8);
SELECT B'1111' <%> B'111';

-- NULL in, NULL out
SELECT hamming_distance(NULL, B'1') IS NULL AS hamming_null,
       (B'1' <%> NULL) IS NULL AS jaccard_null;

-- binary_quantize output compares directly
SELECT binary_quantize('[1,-2,3,0,5]'::vector) <~> binary_quantize('[-1,2,3,4,-5]'::vector) AS hamming,
       binary_quantize('[1,-2,3,0,5]'::vector) <%> binary_quantize('[-1,2,3,4,-5]'::vector) AS jaccard;

-- nearest by Hamming distance, ties broken by id
CREATE TABLE bit_t (id int, b bit(8));
INSERT INTO bit_t VALUES (1, B'00000000'), (2, B'11110000'), (3, B'11111111'),
    (4, B'10101010'), (5, B'11110001'), (6, NULL);
SELECT id, b, b <~> B'11110000' AS hamming, round((b <%> B'11110000')::numeric, 4) AS jaccard
FROM bit_t ORDER BY b <~> B'11110000', id;
DROP TABLE bit_t;

-- random strings of many lengths: the kernels agree with the bit type's
-- own operators (#, &, |) counted one character at a time
SELECT setseed(0.5);
CREATE TEMP TABLE bit_r AS
SELECT i, a, b FROM (
    SELECT i, n,
           (SELECT string_agg(CASE WHEN random() < 0.5 THEN '1' ELSE '0' END, '')
              FROM generate_series(1, n) WHERE i > 0)::varbit AS a,
           (SELECT string_agg(CASE WHEN random() < 0.3 THEN '1' ELSE '0' END, '')
              FROM generate_series(1, n) WHERE i > 0)::varbit AS b
    FROM (SELECT i, 1 + (i * 37) % 1100 AS n FROM generate_series(1, 300) i) s
) t;
SELECT count(*) AS strings,
       count(*) FILTER (WHERE a <~> b <> length(replace((a # b)::text, '0', ''))) AS hamming_wrong,
       count(*) FILTER (WHERE a <%> b IS DISTINCT FROM
           CASE WHEN length(replace((a & b)::text, '0', '')) = 0 THEN 1
                ELSE 1 - length(replace((a & b)::text, '0', ''))::float8 /
                         length(replace((a | b)::text, '0', '')) END) AS jaccard_wrong
FROM bit_r;
