-- avg(vector) and sum(vector): plain, grouped, NULLs, empty input,
-- precision, and parallel aggregation through combine/serialize.

SELECT avg(v), sum(v) FROM (VALUES ('[1,2,3]'::vector), ('[3,5,7]')) t(v);
SELECT avg(v), sum(v) FROM (VALUES ('[1,2]'::vector), (NULL), ('[2,3]')) t(v);
SELECT avg(v), sum(v) FROM (VALUES (NULL::vector)) t(v);
SELECT avg(v) IS NULL AS avg_null, sum(v) IS NULL AS sum_null
FROM (SELECT '[1]'::vector AS v WHERE false) t;

-- grouped
SELECT g, avg(v), sum(v)
FROM (VALUES (1, '[1,1]'::vector), (1, '[3,5]'), (2, '[10,20]'), (2, '[0,0]'), (2, '[2,-2]')) t(g, v)
GROUP BY g ORDER BY g;

-- sums run in double precision: large terms that cancel do not swamp small ones
SELECT sum(v) FROM (VALUES ('[1e8,1]'::vector), ('[1,1]'), ('[-1e8,1]')) t(v);
SELECT avg(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]'), ('[-3e38]')) t(v);

-- parallel aggregation over a real table gives the serial answer
CREATE TABLE agg_t (g int, v vector(3));
INSERT INTO agg_t SELECT i % 4, ARRAY[i, i % 7, -i]::vector FROM generate_series(1, 100000) i;
ANALYZE agg_t;
SELECT g, avg(v), sum(v) FROM agg_t GROUP BY g ORDER BY g;
SELECT avg(v), sum(v) FROM agg_t;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(v), sum(v) FROM agg_t;
SELECT avg(v), sum(v) FROM agg_t;
SELECT g, avg(v), sum(v) FROM agg_t GROUP BY g ORDER BY g;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE agg_t;

-- the aggregates are declared parallel safe with combine and serial functions
SELECT aggfnoid::regprocedure, aggcombinefn, aggserialfn, aggdeserialfn, p.proparallel
FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
WHERE aggfnoid IN ('avg(vector)'::regprocedure, 'sum(vector)'::regprocedure)
ORDER BY 1::text;

-- pgvector's array-state functions, callable by name: a state is
-- {count, sum_1, ..., sum_n}, '{0}' when empty
SELECT vector_accum('{0}', '[1,2,3]');
SELECT vector_accum(vector_accum('{0}', '[1,2,3]'), '[3,4,5]');
SELECT vector_avg(vector_accum(vector_accum('{0}', '[1,2,3]'), '[3,4,5]'));
SELECT vector_avg('{0}') IS NULL AS empty_is_null;
SELECT vector_combine('{2,4,6}', '{1,1,1}');
SELECT vector_combine('{0}', '{1,1,1}'), vector_combine('{1,1,1}', '{0}');
-- two empty states (workers of a parallel aggregate that saw no rows)
SELECT vector_combine('{0}', '{0}');
-- a state of a count without sums keeps its count
SELECT vector_accum('{3}', '[1,2]');
-- a state given by hand cannot make a vector of NaN
SELECT vector_avg('{1,NaN}');
SELECT vector_avg('{1,Infinity}');
-- the same mean as avg(vector), folded by hand
SELECT vector_avg(s) = (SELECT avg(v) FROM unnest(ARRAY['[1,5]'::vector, '[2,6]', '[6,1]']) v) AS same
FROM (SELECT vector_accum(vector_accum(vector_accum('{0}', '[1,5]'), '[2,6]'), '[6,1]') AS s) t;
-- errors: not a state, dimensions, overflow
SELECT vector_accum('{}', '[1]');
SELECT vector_accum('{{0}}', '[1]');
SELECT vector_accum('{NULL}', '[1]');
SELECT vector_accum('{1,2}', '[1,2,3]');
SELECT vector_combine('{1,2}', '{1,2,3}');
SELECT vector_avg('{1}');
SELECT vector_avg('{1,1e300,1e300}'::float8[] || ARRAY[1e300]::float8[]);
SELECT vector_accum('{1,1e308}', '[1e38]') IS NOT NULL AS fits;
SELECT vector_combine('{1,1.7e308}', '{1,1.7e308}');
-- rows of different dimensions: avg and sum say it as pgvector does
SELECT avg(v) FROM unnest(ARRAY['[1,2]'::vector, '[3]']) v;
SELECT sum(v) FROM unnest(ARRAY['[1,2]'::vector, '[3]']) v;

-- the sign of a zero survives, as pgvector's running sums keep it
SELECT sum(v), avg(v) FROM (VALUES ('[-0,1]'::vector), ('[-0,2]')) t(v);
SELECT sum(v), avg(v) FROM (VALUES ('[-0,1]'::halfvec), ('[-0,2]')) t(v);
SELECT sum(v) FROM (VALUES ('[0,1]'::vector), ('[-0,2]')) t(v);
