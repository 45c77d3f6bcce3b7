-- Casts between vector and arrays.

SELECT ARRAY[1,2,3]::vector;
SELECT ARRAY[1.5,2.25,3]::real[]::vector;
SELECT ARRAY[1.5,2.25,3]::double precision[]::vector;
SELECT ARRAY[1.5,2.25,3]::numeric[]::vector;
SELECT '{4,5,6}'::int[]::vector(3);
SELECT ARRAY[0.1]::double precision[]::vector;          -- rounds to float4
SELECT ARRAY[2147483647]::vector;                      -- rounds to float4
SELECT '[1,2,3]'::vector::real[];
SELECT ('[1,2,3]'::vector::real[])[2];
SELECT array_to_vector('{7,8}'::real[], -1, true);
SELECT vector_to_float4('[7,8]', -1, true);

-- assignment casts into a vector column; implicit cast to real[]
CREATE TABLE ct (v vector(2));
INSERT INTO ct VALUES (ARRAY[1,2]), (ARRAY[1.5,2.5]::real[]), (ARRAY[3,4]::float8[]), (ARRAY[5,6]::numeric[]);
SELECT v FROM ct;
CREATE FUNCTION second_elem(real[]) RETURNS real LANGUAGE sql AS 'SELECT $1[2]';
SELECT second_elem(v) FROM ct;
DROP FUNCTION second_elem(real[]);
SELECT unnest('[3,1,2]'::vector::real[]) AS x ORDER BY x;
DROP TABLE ct;

-- typmod is checked by casts
SELECT '[1,2,3]'::vector::vector(3);
SELECT ARRAY[1,2]::vector(2);

-- round trip through real[] keeps every bit
SELECT v::real[]::vector = v AS same
FROM (SELECT '[0.1,-3.4028235e38,1e-45,7]'::vector AS v) s;

-- the cast catalog: which casts are implicit, assignment or explicit
SELECT castsource::regtype, casttarget::regtype, castcontext
FROM pg_cast WHERE castsource = 'vector'::regtype OR casttarget = 'vector'::regtype
ORDER BY 1::text, 2::text;
