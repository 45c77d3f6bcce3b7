-- Distance functions and operators, norms, arithmetic, subvector.

SELECT l2_distance('[0,0]'::vector, '[3,4]'), '[0,0]'::vector <-> '[3,4]';
SELECT l2_distance('[1,2,3]'::vector, '[1,2,3]');
SELECT vector_l2_squared_distance('[0,0]', '[3,4]');
SELECT inner_product('[1,2]'::vector, '[3,4]'), '[1,2]'::vector <#> '[3,4]';
SELECT vector_negative_inner_product('[1,2]', '[3,4]');
-- pgvector's spherical distance: the angle of unit vectors over pi,
-- clamped where rounding leaves the inner product past 1
SELECT vector_spherical_distance('[1,0]', '[0,1]'), vector_spherical_distance('[1,0]', '[1,0]'),
       vector_spherical_distance('[1,0]', '[-1,0]'), vector_spherical_distance('[1.0000001,0]', '[1,0]');
SELECT vector_spherical_distance('[1,0]', '[1,0,0]');
SELECT cosine_distance('[1,2]'::vector, '[2,4]'), cosine_distance('[1,2]'::vector, '[0,0]');
SELECT cosine_distance('[1,1]'::vector, '[1,1]'), cosine_distance('[1,1]'::vector, '[-1,-1]'), cosine_distance('[1,0]'::vector, '[0,2]');
SELECT '[1,2]'::vector <=> '[2,4]';
SELECT l1_distance('[0,0]'::vector, '[3,4]'), '[0,0]'::vector <+> '[3,4]';
SELECT l1_distance('[1,-2,3]'::vector, '[-1,2,-3]');

-- cosine is scale-invariant and stays within [0, 2] despite rounding
SELECT cosine_distance('[0.1,0.2,0.3]'::vector, '[1,2,3]') BETWEEN 0 AND 1e-7 AS same_direction;
SELECT cosine_distance(v, v) >= 0 AS never_negative
FROM (SELECT '[0.3333333,0.1111111,7.7777777]'::vector AS v) s;

-- distances over longer vectors (every SIMD tail length) equal a plain SQL sum
WITH d AS (SELECT n FROM generate_series(1, 40) n),
     v AS (SELECT n, array_agg(((i * 7) % 11)::real ORDER BY i)::vector AS a,
                     array_agg(((i * 5) % 13 - 6)::real ORDER BY i)::vector AS b,
                     sum((((i * 7) % 11) - ((i * 5) % 13 - 6))^2) AS l2sq,
                     sum(((i * 7) % 11) * ((i * 5) % 13 - 6)) AS ip,
                     sum(abs(((i * 7) % 11) - ((i * 5) % 13 - 6))) AS l1
           FROM d, generate_series(1, n) i GROUP BY n)
SELECT count(*) AS dims_checked,
       count(*) FILTER (WHERE vector_l2_squared_distance(a, b) = l2sq) AS l2_ok,
       count(*) FILTER (WHERE inner_product(a, b) = ip) AS ip_ok,
       count(*) FILTER (WHERE l1_distance(a, b) = l1) AS l1_ok
FROM v;

-- norms and normalisation
SELECT vector_dims('[1,2,3]'::vector), vector_norm('[3,4]'), vector_norm('[0,0,0]');
SELECT l2_normalize('[3,4]'::vector), l2_normalize('[0,0]'::vector), l2_normalize('[-5]'::vector);
SELECT abs(vector_norm(l2_normalize('[1,2,3,4,5]'::vector)) - 1) < 1e-6 AS unit;

-- arithmetic
SELECT '[1,2,3]'::vector + '[4,5,6]', '[1,2,3]'::vector - '[4,5,6]', '[1,2,3]'::vector * '[4,5,6]';
SELECT '[1,2]'::vector || '[3]', '[1]'::vector || '[2]' || '[3,4]';
SELECT '[1e-30]'::vector * '[0]';

-- subvector: 1-based, clipped like substring
SELECT subvector('[1,2,3,4,5]'::vector, 1, 3), subvector('[1,2,3,4,5]'::vector, 3, 2), subvector('[1,2,3,4,5]'::vector, 4, 10);
SELECT subvector('[1,2,3,4,5]'::vector, 0, 2), subvector('[1,2,3,4,5]'::vector, -1, 3), subvector('[1,2,3,4,5]'::vector, 5, 2147483647);
SELECT subvector('[1,2,3,4,5]'::vector, -2147483648, 2147483647);

-- operators in a kNN query: exact ORDER BY distance
CREATE TABLE items (id int, embedding vector(3));
INSERT INTO items VALUES (1, '[1,1,1]'), (2, '[2,2,2]'), (3, '[1,1,2]'), (4, NULL), (5, '[-1,0,1]');
SELECT id, embedding <-> '[1,1,1]' AS dist FROM items ORDER BY embedding <-> '[1,1,1]', id LIMIT 3;
SELECT id FROM items ORDER BY embedding <#> '[1,1,1]', id LIMIT 3;
SELECT id FROM items ORDER BY embedding <=> '[1,1,1]', id LIMIT 3;
SELECT id FROM items ORDER BY embedding <+> '[1,1,1]', id LIMIT 3;
DROP TABLE items;

-- binary_quantize: one bit per element, set where it is positive
SELECT binary_quantize('[1,-2,0,3.5,-0.1,7,0,0,1]'::vector);
SELECT binary_quantize('[1,-2,0,3.5,-0.1,7,0,0,1]'::vector)::text = '100101001' AS bits;
SELECT length(binary_quantize(array_fill(1, ARRAY[16000])::vector)) AS bits;
SELECT pg_typeof(binary_quantize('[1]'::vector));
-- an element that underflows float4 reads as zero (as pgvector reads it)
SELECT '[1e-46,1]'::vector, '[-1e-46,1]'::vector, '[1e-40]'::vector;
