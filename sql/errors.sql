-- Bad input: every mistake is an error with a clear message and the
-- right SQLSTATE, never a crash.  sqlstate_of() runs a statement and
-- returns the SQLSTATE and message it fails with.

CREATE FUNCTION sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- malformed literals (the plain error output shows detail lines too)
SELECT '1,2,3'::vector;
SELECT '[1,2,3'::vector;
SELECT '[1,2,3]x'::vector;
SELECT '['::vector;
SELECT ''::vector;
SELECT '[1,,2]'::vector;
SELECT '[1,2,]'::vector;
SELECT '[,1]'::vector;
SELECT '[1 2]'::vector;
SELECT '[a]'::vector;
SELECT '[1,2];'::vector;
SELECT '[[1,2]]'::vector;

-- empty, NaN, infinity, out of float4 range
SELECT '[]'::vector;
SELECT '[ ]'::vector;
SELECT '[NaN]'::vector;
SELECT '[1,nan]'::vector;
SELECT '[Infinity]'::vector;
SELECT '[-inf,1]'::vector;
SELECT '[1e39]'::vector;
SELECT '[-1e39]'::vector;
SELECT '[1e-50]'::vector;

-- too many dimensions, bad typmods
SELECT sqlstate_of($$SELECT ('[' || repeat('1,', 16000) || '1]')::vector$$);
SELECT vector_dims(('[' || repeat('1,', 15999) || '1]')::vector);
SELECT sqlstate_of($$SELECT '[1]'::vector(16001)$$);
SELECT sqlstate_of($$SELECT '[1]'::vector(0)$$);
SELECT sqlstate_of($$SELECT '[1]'::vector(2, 3)$$);
SELECT sqlstate_of($$SELECT '[1]'::vector('a')$$);

-- typmod mismatch: input, cast, insert, update
SELECT '[1,2]'::vector(3);
SELECT '[1,2,3]'::vector::vector(2);
SELECT ARRAY[1,2]::vector(3);
CREATE TABLE et (v vector(3));
INSERT INTO et VALUES ('[1,2]');
INSERT INTO et VALUES ('[1,2,3]');
UPDATE et SET v = '[1,2,3,4]';
SELECT * FROM et;
DROP TABLE et;

-- operands of different dimensions
SELECT '[1,2]'::vector <-> '[1,2,3]';
SELECT '[1,2]'::vector <#> '[1,2,3]';
SELECT '[1,2]'::vector <=> '[1,2,3]';
SELECT '[1,2]'::vector <+> '[1,2,3]';
SELECT '[1,2]'::vector + '[1,2,3]';
SELECT '[1,2]'::vector - '[1,2,3]';
SELECT '[1,2]'::vector * '[1,2,3]';
SELECT sqlstate_of($$SELECT l2_distance('[1]'::vector, '[1,2]')$$);
SELECT sqlstate_of($$SELECT inner_product('[1]'::vector, '[1,2]')$$);
SELECT sqlstate_of($$SELECT cosine_distance('[1]'::vector, '[1,2]')$$);
SELECT sqlstate_of($$SELECT l1_distance('[1]'::vector, '[1,2]')$$);
SELECT sqlstate_of($$SELECT vector_l2_squared_distance('[1]', '[1,2]')$$);

-- arithmetic that leaves float4's range
SELECT '[3e38]'::vector + '[3e38]';
SELECT '[-3e38]'::vector - '[3e38]';
SELECT '[1e20]'::vector * '[1e20]';
SELECT '[1e-30]'::vector * '[1e-30]';
SELECT sqlstate_of($$SELECT '[3e38,1]'::vector + '[3e38,1]'$$);
SELECT sqlstate_of($$SELECT '[1,1e-30]'::vector * '[1,1e-30]'$$);
SELECT sqlstate_of($$SELECT ('[' || repeat('1,', 9999) || '1]')::vector || ('[' || repeat('1,', 9999) || '1]')::vector$$);

-- aggregates that overflow, or mix dimensions
SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v);
SELECT sqlstate_of($$SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v)$$);
SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) t(v);
SELECT sum(v) FROM (VALUES ('[1,2]'::vector), ('[1,2,3]')) t(v);

-- subvector that selects nothing
SELECT subvector('[1,2,3]'::vector, 4, 1);
SELECT subvector('[1,2,3]'::vector, 1, 0);
SELECT subvector('[1,2,3]'::vector, -5, 3);
SELECT sqlstate_of($$SELECT subvector('[1,2,3]'::vector, 2, -1)$$);

-- casts from arrays: NULLs, several dimensions, empty, non-finite, range
SELECT ARRAY[1,NULL,3]::vector;
SELECT '{{1,2},{3,4}}'::int[]::vector;
SELECT '{}'::real[]::vector;
SELECT ARRAY['NaN']::real[]::vector;
SELECT ARRAY['Infinity']::double precision[]::vector;
SELECT ARRAY['NaN']::numeric[]::vector;
SELECT ARRAY[1e39]::double precision[]::vector;
SELECT ARRAY[1e39]::numeric[]::vector;
SELECT sqlstate_of($$SELECT ARRAY[1,NULL]::vector$$);
SELECT sqlstate_of($$SELECT '{{1,2},{3,4}}'::real[]::vector$$);
SELECT sqlstate_of($$SELECT '{}'::real[]::vector$$);
SELECT sqlstate_of($$SELECT array_fill(1, ARRAY[16001])::vector$$);
SELECT sqlstate_of($$SELECT ARRAY[1e39]::double precision[]::vector$$);

-- a selection of the above with their SQLSTATEs
SELECT stmt, sqlstate_of(stmt) FROM (VALUES
    ($$SELECT '[1,2'::vector$$),
    ($$SELECT '[1,2]x'::vector$$),
    ($$SELECT '[a]'::vector$$),
    ($$SELECT '[]'::vector$$),
    ($$SELECT '[NaN]'::vector$$),
    ($$SELECT '[inf]'::vector$$),
    ($$SELECT '[1e39]'::vector$$),
    ($$SELECT '[1,2]'::vector(3)$$),
    ($$SELECT '[1]'::vector <-> '[1,2]'$$),
    ($$SELECT '[3e38]'::vector + '[3e38]'$$),
    ($$SELECT '[1e-30]'::vector * '[1e-30]'$$)
) s(stmt);

DROP FUNCTION sqlstate_of(text);

-- a declaration out of step with the library (binaries newer than the
-- extension's SQL objects): an error with a hint, not a crashed backend
CREATE FUNCTION stale_gpu_status(OUT state text, OUT device text)
    AS '$libdir/vecstore', 'vecstore_gpu_status' LANGUAGE C;
SELECT * FROM stale_gpu_status();
CREATE FUNCTION stale_index_info(regclass, OUT clusters int, OUT dims int)
    AS '$libdir/vecstore', 'vecstore_index_info' LANGUAGE C;
SELECT * FROM stale_index_info('pg_class');
DROP FUNCTION stale_gpu_status();
DROP FUNCTION stale_index_info(regclass);
