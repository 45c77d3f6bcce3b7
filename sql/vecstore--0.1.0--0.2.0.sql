-- vecstore 0.1.0 -> 0.2.0: what was added since 0.1.0 was released.
-- sql/vecstore--0.2.0.sql is the same extension installed fresh; the
-- upgrade TAP test (test/t/031_upgrade.pl) checks that both give the same
-- catalog objects.

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION vecstore UPDATE TO '0.2.0'" to load this file. \quit

-- pgvector's aggregate support functions on its array state
-- ({count, sum_1, ..., sum_n}), for applications that call them by name
CREATE FUNCTION vector_accum(double precision[], vector) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vs_vector_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_combine(double precision[], double precision[]) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vs_vector_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_avg(double precision[]) RETURNS vector
    AS 'MODULE_PATHNAME', 'vs_vector_avg' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_accum(double precision[], vector) IS 'adds a vector to an array state {count, sums...} (pgvector''s avg transition function)';
COMMENT ON FUNCTION vector_combine(double precision[], double precision[]) IS 'combines two array states {count, sums...} (pgvector''s avg combine function)';
COMMENT ON FUNCTION vector_avg(double precision[]) IS 'the mean an array state {count, sums...} holds (pgvector''s avg final function)';

CREATE FUNCTION binary_quantize(vector) RETURNS bit
    AS 'MODULE_PATHNAME', 'vs_binary_quantize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION binary_quantize(vector) IS 'one bit per element, set where the element is positive';

CREATE FUNCTION vector_spherical_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_vector_spherical_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_spherical_distance(vector, vector) IS 'angle between two unit vectors, as a fraction of pi (pgvector''s)';

-- vecstore_index_info gains segment_pieces, compactions, fork_free_bytes
-- and fork_reads: its row type changes, so it is dropped and made again.
DROP FUNCTION vecstore_index_info(regclass);
CREATE FUNCTION vecstore_index_info(index regclass,
    OUT clusters integer,
    OUT dimensions integer,
    OUT sealed_rows bigint,
    OUT min_cluster_rows bigint,
    OUT avg_cluster_rows double precision,
    OUT max_cluster_rows bigint,
    OUT delta_rows bigint,
    OUT dead_rows bigint,
    OUT segment_file text,
    OUT segment_generation integer,
    OUT segment_bytes bigint,
    OUT bytes_mapped bigint,
    OUT fork_bytes bigint,
    OUT quantizer text,
    OUT graph_clusters integer,
    OUT code_bytes bigint,
    OUT graph_bytes bigint,
    OUT routing_graph_bytes bigint,
    OUT segment_pieces integer,
    OUT compactions integer,
    OUT fork_free_bytes bigint,
    OUT fork_reads bigint)
    AS 'MODULE_PATHNAME', 'vecstore_index_info' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

CREATE FUNCTION vecstore_index_size(index regclass) RETURNS bigint
    AS 'MODULE_PATHNAME', 'vecstore_index_size' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE FUNCTION vecstore_database_size() RETURNS bigint
    AS 'MODULE_PATHNAME', 'vecstore_database_size' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION vecstore_index_size(regclass) IS 'bytes of an index on disk: pg_total_relation_size plus its segment files under pg_vecstore';
COMMENT ON FUNCTION vecstore_database_size() IS 'bytes of the current database''s segment files under pg_vecstore, which pg_database_size leaves out';

CREATE FUNCTION vecstore_compact(index regclass, all_clusters boolean DEFAULT true,
    OUT clusters integer,
    OUT rows_folded bigint,
    OUT rows_removed bigint,
    OUT generation integer)
    AS 'MODULE_PATHNAME', 'vecstore_compact' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION vecstore_stats(
    OUT scans bigint,
    OUT rows_examined bigint,
    OUT clusters_opened bigint,
    OUT scans_cut_short bigint,
    OUT files_checked bigint,
    OUT files_trusted bigint,
    OUT clusters_checked bigint,
    OUT clusters_trusted bigint,
    OUT shared_checks boolean,
    OUT vectors_read bigint,
    OUT vectors_read_from_files bigint,
    OUT rows_skipped_late bigint)
    AS 'MODULE_PATHNAME', 'vecstore_stats' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION vecstore_index_info(regclass) IS 'clusters, rows per cluster, delta and dead rows, segment file and bytes mapped by this session, codes and graphs, of a vecstore index';
CREATE VIEW vecstore_compaction_progress AS
    SELECT s.pid,
           s.datid,
           d.datname,
           s.relid,
           s.param15::oid AS indexrelid,
           CASE s.param14
               WHEN 1 THEN 'counting rows'
               WHEN 2 THEN 'splitting clusters'
               WHEN 3 THEN 'writing clusters'
               WHEN 4 THEN 'logging pages'
               WHEN 5 THEN 'switching generation'
               WHEN 6 THEN 'building graphs'
           END AS phase,
           s.param11 AS clusters_total,
           s.param12 AS clusters_done,
           s.param13 AS rows_written
    FROM pg_stat_get_progress_info('VACUUM') s
    LEFT JOIN pg_database d ON d.oid = s.datid
    WHERE s.param14 > 0;

COMMENT ON VIEW vecstore_compaction_progress IS 'compactions of vecstore indexes in progress (VACUUM, vecstore_compact, the compaction worker): phase, clusters to re-seal and done, rows written';
-- as pg_stat_progress_vacuum: every user may read it; the progress of
-- other users' backends reads as NULL there, and their rows are left out
GRANT SELECT ON vecstore_compaction_progress TO PUBLIC;
COMMENT ON FUNCTION vecstore_compact(regclass, boolean) IS 'compacts a vecstore index now: folds delta rows into their clusters and drops removed rows, for every cluster that has any (all_clusters) or those past its compaction_threshold';
COMMENT ON FUNCTION vecstore_stats() IS 'this session''s index scans (rows examined, clusters opened, scans cut short by vecstore.max_scan_tuples, full vectors read, and of those read from the files while reading ahead, rows left out because they were found after a farther one was returned) and segment checks (done here, or taken from the server''s record)';

-- halfvec: the type, its operators, functions, casts and aggregates

CREATE TYPE halfvec;

CREATE FUNCTION halfvec_in(cstring, oid, integer) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_out(halfvec) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vs_halfvec_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_typmod_in(cstring[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'vs_halfvec_typmod_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_recv(internal, oid, integer) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_send(halfvec) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vs_halfvec_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE halfvec (
    INPUT     = halfvec_in,
    OUTPUT    = halfvec_out,
    TYPMOD_IN = halfvec_typmod_in,
    RECEIVE   = halfvec_recv,
    SEND      = halfvec_send,
    STORAGE   = external
);

COMMENT ON TYPE halfvec IS 'vector of half-precision (binary16) elements, 1 to 16000 dimensions; text form [1,2,3]';
COMMENT ON FUNCTION halfvec_in(cstring, oid, integer) IS 'text input of halfvec: [x1,x2,...], each rounded to the nearest half';
COMMENT ON FUNCTION halfvec_out(halfvec) IS 'text output of halfvec, each element''s exact value as a shortest round-trip float4';
COMMENT ON FUNCTION halfvec_typmod_in(cstring[]) IS 'typmod input of halfvec(n): the number of dimensions';
COMMENT ON FUNCTION halfvec_recv(internal, oid, integer) IS 'binary input of halfvec: int16 dims, int16 zero, binary16 values';
COMMENT ON FUNCTION halfvec_send(halfvec) IS 'binary output of halfvec: int16 dims, int16 zero, binary16 values';

CREATE FUNCTION l2_distance(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l1_distance(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_l1_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_l2_squared_distance(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_negative_inner_product(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION l2_distance(halfvec, halfvec) IS 'Euclidean (L2) distance';
COMMENT ON FUNCTION inner_product(halfvec, halfvec) IS 'inner (dot) product';
COMMENT ON FUNCTION cosine_distance(halfvec, halfvec) IS 'cosine distance: 1 - cosine similarity, NaN for a zero vector';
COMMENT ON FUNCTION l1_distance(halfvec, halfvec) IS 'taxicab (L1) distance';
COMMENT ON FUNCTION halfvec_l2_squared_distance(halfvec, halfvec) IS 'squared Euclidean distance';
COMMENT ON FUNCTION halfvec_negative_inner_product(halfvec, halfvec) IS 'negative inner product, so that smaller means more similar';
CREATE FUNCTION halfvec_spherical_distance(halfvec, halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_spherical_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfvec_spherical_distance(halfvec, halfvec) IS 'angle between two unit vectors, as a fraction of pi (pgvector''s)';

CREATE FUNCTION vector_dims(halfvec) RETURNS integer
    AS 'MODULE_PATHNAME', 'vs_halfvec_vector_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_norm(halfvec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_halfvec_l2_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(halfvec) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION subvector(halfvec, integer, integer) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_subvector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION binary_quantize(halfvec) RETURNS bit
    AS 'MODULE_PATHNAME', 'vs_halfvec_binary_quantize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION vector_dims(halfvec) IS 'number of dimensions';
COMMENT ON FUNCTION l2_norm(halfvec) IS 'Euclidean norm';
COMMENT ON FUNCTION l2_normalize(halfvec) IS 'halfvec scaled to unit Euclidean norm (a zero vector is returned unchanged)';
COMMENT ON FUNCTION subvector(halfvec, integer, integer) IS 'subvector(v, start, count): count elements from position start (1-based)';
COMMENT ON FUNCTION binary_quantize(halfvec) IS 'one bit per element, set where the element is positive';

CREATE FUNCTION halfvec_add(halfvec, halfvec) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_sub(halfvec, halfvec) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_mul(halfvec, halfvec) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_concat(halfvec, halfvec) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_concat' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION halfvec_add(halfvec, halfvec) IS 'element-wise sum, rounded to half';
COMMENT ON FUNCTION halfvec_sub(halfvec, halfvec) IS 'element-wise difference, rounded to half';
COMMENT ON FUNCTION halfvec_mul(halfvec, halfvec) IS 'element-wise product, rounded to half';
COMMENT ON FUNCTION halfvec_concat(halfvec, halfvec) IS 'concatenation';

CREATE FUNCTION halfvec_lt(halfvec, halfvec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_halfvec_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_le(halfvec, halfvec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_halfvec_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_eq(halfvec, halfvec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_halfvec_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_ne(halfvec, halfvec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_halfvec_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_ge(halfvec, halfvec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_halfvec_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_gt(halfvec, halfvec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_halfvec_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_cmp(halfvec, halfvec) RETURNS integer
    AS 'MODULE_PATHNAME', 'vs_halfvec_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_hash(halfvec) RETURNS integer
    AS 'MODULE_PATHNAME', 'vs_halfvec_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_hash_extended(halfvec, bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'vs_halfvec_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION halfvec_lt(halfvec, halfvec) IS 'less than, in halfvec_cmp order';
COMMENT ON FUNCTION halfvec_le(halfvec, halfvec) IS 'less than or equal, in halfvec_cmp order';
COMMENT ON FUNCTION halfvec_eq(halfvec, halfvec) IS 'equal: same dimensions and equal elements';
COMMENT ON FUNCTION halfvec_ne(halfvec, halfvec) IS 'not equal';
COMMENT ON FUNCTION halfvec_ge(halfvec, halfvec) IS 'greater than or equal, in halfvec_cmp order';
COMMENT ON FUNCTION halfvec_gt(halfvec, halfvec) IS 'greater than, in halfvec_cmp order';
COMMENT ON FUNCTION halfvec_cmp(halfvec, halfvec) IS 'btree order: element by element, then the shorter vector first';
COMMENT ON FUNCTION halfvec_hash(halfvec) IS 'hash consistent with =';
COMMENT ON FUNCTION halfvec_hash_extended(halfvec, bigint) IS 'seeded 64-bit hash consistent with =';

-- aggregates: vector's internal state (count and double sums) and its
-- combine, serial and deserial functions; halfvec's own transition and
-- final functions
CREATE FUNCTION halfvec_agg_accum(internal, halfvec) RETURNS internal
    AS 'MODULE_PATHNAME', 'vs_halfvec_agg_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION halfvec_avg_final(internal) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_avg_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION halfvec_sum_final(internal) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_sum_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION halfvec_agg_accum(internal, halfvec) IS 'transition function of avg(halfvec) and sum(halfvec)';
COMMENT ON FUNCTION halfvec_avg_final(internal) IS 'final function of avg(halfvec)';
COMMENT ON FUNCTION halfvec_sum_final(internal) IS 'final function of sum(halfvec)';

CREATE AGGREGATE avg(halfvec) (
    SFUNC = halfvec_agg_accum,
    STYPE = internal,
    SSPACE = 4096,
    FINALFUNC = halfvec_avg_final,
    COMBINEFUNC = vector_agg_combine,
    SERIALFUNC = vector_agg_serialize,
    DESERIALFUNC = vector_agg_deserialize,
    PARALLEL = SAFE
);

CREATE AGGREGATE sum(halfvec) (
    SFUNC = halfvec_agg_accum,
    STYPE = internal,
    SSPACE = 4096,
    FINALFUNC = halfvec_sum_final,
    COMBINEFUNC = vector_agg_combine,
    SERIALFUNC = vector_agg_serialize,
    DESERIALFUNC = vector_agg_deserialize,
    PARALLEL = SAFE
);

COMMENT ON AGGREGATE avg(halfvec) IS 'element-wise mean, summed in double precision';
COMMENT ON AGGREGATE sum(halfvec) IS 'element-wise sum, summed in double precision';

-- pgvector's halfvec aggregate support functions on its array state
-- ({count, sum_1, ..., sum_n}); halfvec_combine is vector_combine
CREATE FUNCTION halfvec_accum(double precision[], halfvec) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vs_halfvec_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_avg(double precision[]) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec_avg' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_combine(double precision[], double precision[]) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vs_vector_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfvec_accum(double precision[], halfvec) IS 'adds a halfvec to an array state {count, sums...} (pgvector''s avg transition function)';
COMMENT ON FUNCTION halfvec_avg(double precision[]) IS 'the mean an array state {count, sums...} holds, as a halfvec (pgvector''s avg final function)';
COMMENT ON FUNCTION halfvec_combine(double precision[], double precision[]) IS 'combines two array states {count, sums...} (pgvector''s avg combine function; vector_combine)';

CREATE FUNCTION halfvec(halfvec, integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_to_vector(halfvec, integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vs_halfvec_to_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_halfvec(vector, integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_vector_to_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_halfvec(integer[], integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_array_to_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_halfvec(real[], integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_array_to_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_halfvec(double precision[], integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_array_to_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_halfvec(numeric[], integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_array_to_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_to_float4(halfvec, integer, boolean) RETURNS real[]
    AS 'MODULE_PATHNAME', 'vs_halfvec_to_float4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION halfvec(halfvec, integer, boolean) IS 'cast of halfvec to halfvec(n), checking the dimensions';
COMMENT ON FUNCTION halfvec_to_vector(halfvec, integer, boolean) IS 'cast of halfvec to vector (exact)';
COMMENT ON FUNCTION vector_to_halfvec(vector, integer, boolean) IS 'cast of vector to halfvec, rounding each element to the nearest half';
COMMENT ON FUNCTION array_to_halfvec(integer[], integer, boolean) IS 'cast of integer[] to halfvec';
COMMENT ON FUNCTION array_to_halfvec(real[], integer, boolean) IS 'cast of real[] to halfvec';
COMMENT ON FUNCTION array_to_halfvec(double precision[], integer, boolean) IS 'cast of double precision[] to halfvec';
COMMENT ON FUNCTION array_to_halfvec(numeric[], integer, boolean) IS 'cast of numeric[] to halfvec';
COMMENT ON FUNCTION halfvec_to_float4(halfvec, integer, boolean) IS 'cast of halfvec to real[]';

CREATE CAST (halfvec AS halfvec)
    WITH FUNCTION halfvec(halfvec, integer, boolean) AS IMPLICIT;
CREATE CAST (halfvec AS vector)
    WITH FUNCTION halfvec_to_vector(halfvec, integer, boolean) AS ASSIGNMENT;
CREATE CAST (vector AS halfvec)
    WITH FUNCTION vector_to_halfvec(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (halfvec AS real[])
    WITH FUNCTION halfvec_to_float4(halfvec, integer, boolean) AS ASSIGNMENT;
CREATE CAST (integer[] AS halfvec)
    WITH FUNCTION array_to_halfvec(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS halfvec)
    WITH FUNCTION array_to_halfvec(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS halfvec)
    WITH FUNCTION array_to_halfvec(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS halfvec)
    WITH FUNCTION array_to_halfvec(numeric[], integer, boolean) AS ASSIGNMENT;

COMMENT ON CAST (halfvec AS halfvec) IS 'applies the halfvec(n) type modifier';
COMMENT ON CAST (halfvec AS vector) IS 'halfvec to vector (exact)';
COMMENT ON CAST (vector AS halfvec) IS 'vector to halfvec (rounds to the nearest half)';
COMMENT ON CAST (halfvec AS real[]) IS 'halfvec to real[]';
COMMENT ON CAST (integer[] AS halfvec) IS 'integer[] to halfvec';
COMMENT ON CAST (real[] AS halfvec) IS 'real[] to halfvec';
COMMENT ON CAST (double precision[] AS halfvec) IS 'double precision[] to halfvec';
COMMENT ON CAST (numeric[] AS halfvec) IS 'numeric[] to halfvec';

CREATE OPERATOR <-> (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = l2_distance,
    COMMUTATOR = '<->'
);
CREATE OPERATOR <#> (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_negative_inner_product,
    COMMUTATOR = '<#>'
);
CREATE OPERATOR <=> (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = cosine_distance,
    COMMUTATOR = '<=>'
);
CREATE OPERATOR <+> (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = l1_distance,
    COMMUTATOR = '<+>'
);
CREATE OPERATOR + (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_add,
    COMMUTATOR = +
);
CREATE OPERATOR - (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_sub
);
CREATE OPERATOR * (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_mul,
    COMMUTATOR = *
);
CREATE OPERATOR || (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_concat
);
CREATE OPERATOR < (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_lt,
    COMMUTATOR = >, NEGATOR = >=,
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR <= (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_le,
    COMMUTATOR = >=, NEGATOR = >,
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR = (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_eq,
    COMMUTATOR = =, NEGATOR = <>,
    RESTRICT = eqsel, JOIN = eqjoinsel,
    HASHES, MERGES
);
CREATE OPERATOR <> (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_ne,
    COMMUTATOR = <>, NEGATOR = =,
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR >= (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_ge,
    COMMUTATOR = <=, NEGATOR = <,
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR > (
    LEFTARG = halfvec, RIGHTARG = halfvec, PROCEDURE = halfvec_gt,
    COMMUTATOR = <, NEGATOR = <=,
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

COMMENT ON OPERATOR <-> (halfvec, halfvec) IS 'Euclidean (L2) distance';
COMMENT ON OPERATOR <#> (halfvec, halfvec) IS 'negative inner product';
COMMENT ON OPERATOR <=> (halfvec, halfvec) IS 'cosine distance';
COMMENT ON OPERATOR <+> (halfvec, halfvec) IS 'taxicab (L1) distance';
COMMENT ON OPERATOR + (halfvec, halfvec) IS 'element-wise sum';
COMMENT ON OPERATOR - (halfvec, halfvec) IS 'element-wise difference';
COMMENT ON OPERATOR * (halfvec, halfvec) IS 'element-wise product';
COMMENT ON OPERATOR || (halfvec, halfvec) IS 'concatenation';
COMMENT ON OPERATOR < (halfvec, halfvec) IS 'less than';
COMMENT ON OPERATOR <= (halfvec, halfvec) IS 'less than or equal';
COMMENT ON OPERATOR = (halfvec, halfvec) IS 'equal';
COMMENT ON OPERATOR <> (halfvec, halfvec) IS 'not equal';
COMMENT ON OPERATOR >= (halfvec, halfvec) IS 'greater than or equal';
COMMENT ON OPERATOR > (halfvec, halfvec) IS 'greater than';

CREATE OPERATOR CLASS halfvec_ops
    DEFAULT FOR TYPE halfvec USING btree AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    FUNCTION 1 halfvec_cmp(halfvec, halfvec);

CREATE OPERATOR CLASS halfvec_ops
    DEFAULT FOR TYPE halfvec USING hash AS
    OPERATOR 1 =,
    FUNCTION 1 halfvec_hash(halfvec),
    FUNCTION 2 halfvec_hash_extended(halfvec, bigint);

COMMENT ON OPERATOR CLASS halfvec_ops USING btree IS 'btree ordering of halfvecs';
COMMENT ON OPERATOR CLASS halfvec_ops USING hash IS 'hashing of halfvecs';

-- (end of halfvec)

-- bit: Hamming and Jaccard distances

CREATE FUNCTION hamming_distance(bit, bit) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_hamming_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION jaccard_distance(bit, bit) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_jaccard_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION hamming_distance(bit, bit) IS 'Hamming distance: the number of positions where the bits differ';
COMMENT ON FUNCTION jaccard_distance(bit, bit) IS 'Jaccard distance: 1 - |a & b| / |a | b|, 1 when no bit is set in both';

CREATE OPERATOR <~> (
    LEFTARG = bit, RIGHTARG = bit, PROCEDURE = hamming_distance,
    COMMUTATOR = '<~>'
);
CREATE OPERATOR <%> (
    LEFTARG = bit, RIGHTARG = bit, PROCEDURE = jaccard_distance,
    COMMUTATOR = '<%>'
);

COMMENT ON OPERATOR <~> (bit, bit) IS 'Hamming distance';
COMMENT ON OPERATOR <%> (bit, bit) IS 'Jaccard distance';

-- (end of bit)

-- sparsevec: the type, its operators, functions and casts

CREATE TYPE sparsevec;

CREATE FUNCTION sparsevec_in(cstring, oid, integer) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_sparsevec_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_out(sparsevec) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vs_sparsevec_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_typmod_in(cstring[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'vs_sparsevec_typmod_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_recv(internal, oid, integer) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_sparsevec_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_send(sparsevec) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vs_sparsevec_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE sparsevec (
    INPUT     = sparsevec_in,
    OUTPUT    = sparsevec_out,
    TYPMOD_IN = sparsevec_typmod_in,
    RECEIVE   = sparsevec_recv,
    SEND      = sparsevec_send,
    STORAGE   = external
);

COMMENT ON TYPE sparsevec IS 'sparse vector of float4 elements, up to 1000000000 dimensions and 16000 non-zero elements; text form {1:1.5,3:2}/5';
COMMENT ON FUNCTION sparsevec_in(cstring, oid, integer) IS 'text input of sparsevec: {index:value,...}/dimensions, indices from 1';
COMMENT ON FUNCTION sparsevec_out(sparsevec) IS 'text output of sparsevec, ascending indices, shortest round-trip floats';
COMMENT ON FUNCTION sparsevec_typmod_in(cstring[]) IS 'typmod input of sparsevec(n): the number of dimensions';
COMMENT ON FUNCTION sparsevec_recv(internal, oid, integer) IS 'binary input of sparsevec: int32 dims, int32 nnz, int32 zero, int32 indices from 0, float4 values';
COMMENT ON FUNCTION sparsevec_send(sparsevec) IS 'binary output of sparsevec: int32 dims, int32 nnz, int32 zero, int32 indices from 0, float4 values';

CREATE FUNCTION l2_distance(sparsevec, sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(sparsevec, sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(sparsevec, sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l1_distance(sparsevec, sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_l1_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_l2_squared_distance(sparsevec, sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_negative_inner_product(sparsevec, sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_norm(sparsevec) RETURNS float8
    AS 'MODULE_PATHNAME', 'vs_sparsevec_l2_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(sparsevec) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_sparsevec_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION l2_distance(sparsevec, sparsevec) IS 'Euclidean (L2) distance';
COMMENT ON FUNCTION inner_product(sparsevec, sparsevec) IS 'inner (dot) product';
COMMENT ON FUNCTION cosine_distance(sparsevec, sparsevec) IS 'cosine distance: 1 - cosine similarity, NaN for a zero vector';
COMMENT ON FUNCTION l1_distance(sparsevec, sparsevec) IS 'taxicab (L1) distance';
COMMENT ON FUNCTION sparsevec_l2_squared_distance(sparsevec, sparsevec) IS 'squared Euclidean distance';
COMMENT ON FUNCTION sparsevec_negative_inner_product(sparsevec, sparsevec) IS 'negative inner product, so that smaller means more similar';
COMMENT ON FUNCTION l2_norm(sparsevec) IS 'Euclidean norm';
COMMENT ON FUNCTION l2_normalize(sparsevec) IS 'sparsevec scaled to unit Euclidean norm (a zero vector is returned unchanged)';

CREATE FUNCTION sparsevec_lt(sparsevec, sparsevec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_sparsevec_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_le(sparsevec, sparsevec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_sparsevec_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_eq(sparsevec, sparsevec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_sparsevec_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_ne(sparsevec, sparsevec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_sparsevec_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_ge(sparsevec, sparsevec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_sparsevec_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_gt(sparsevec, sparsevec) RETURNS bool
    AS 'MODULE_PATHNAME', 'vs_sparsevec_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_cmp(sparsevec, sparsevec) RETURNS integer
    AS 'MODULE_PATHNAME', 'vs_sparsevec_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION sparsevec_lt(sparsevec, sparsevec) IS 'less than, in sparsevec_cmp order';
COMMENT ON FUNCTION sparsevec_le(sparsevec, sparsevec) IS 'less than or equal, in sparsevec_cmp order';
COMMENT ON FUNCTION sparsevec_eq(sparsevec, sparsevec) IS 'equal: same dimensions and equal elements';
COMMENT ON FUNCTION sparsevec_ne(sparsevec, sparsevec) IS 'not equal';
COMMENT ON FUNCTION sparsevec_ge(sparsevec, sparsevec) IS 'greater than or equal, in sparsevec_cmp order';
COMMENT ON FUNCTION sparsevec_gt(sparsevec, sparsevec) IS 'greater than, in sparsevec_cmp order';
COMMENT ON FUNCTION sparsevec_cmp(sparsevec, sparsevec) IS 'btree order: that of the dense vectors, element by element, then fewer dimensions first';

CREATE FUNCTION sparsevec(sparsevec, integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_sparsevec(vector, integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_vector_to_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_to_vector(sparsevec, integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vs_sparsevec_to_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_to_sparsevec(halfvec, integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_halfvec_to_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION sparsevec_to_halfvec(sparsevec, integer, boolean) RETURNS halfvec
    AS 'MODULE_PATHNAME', 'vs_sparsevec_to_halfvec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_sparsevec(integer[], integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_array_to_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_sparsevec(real[], integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_array_to_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_sparsevec(double precision[], integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_array_to_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_sparsevec(numeric[], integer, boolean) RETURNS sparsevec
    AS 'MODULE_PATHNAME', 'vs_array_to_sparsevec' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION sparsevec(sparsevec, integer, boolean) IS 'cast of sparsevec to sparsevec(n), checking the dimensions';
COMMENT ON FUNCTION vector_to_sparsevec(vector, integer, boolean) IS 'cast of vector to sparsevec: its non-zero elements';
COMMENT ON FUNCTION sparsevec_to_vector(sparsevec, integer, boolean) IS 'cast of sparsevec to vector: zeros where nothing is stored';
COMMENT ON FUNCTION halfvec_to_sparsevec(halfvec, integer, boolean) IS 'cast of halfvec to sparsevec: its non-zero elements (exact)';
COMMENT ON FUNCTION sparsevec_to_halfvec(sparsevec, integer, boolean) IS 'cast of sparsevec to halfvec: zeros where nothing is stored, values rounded to the nearest half';
COMMENT ON FUNCTION array_to_sparsevec(integer[], integer, boolean) IS 'cast of integer[] to sparsevec';
COMMENT ON FUNCTION array_to_sparsevec(real[], integer, boolean) IS 'cast of real[] to sparsevec';
COMMENT ON FUNCTION array_to_sparsevec(double precision[], integer, boolean) IS 'cast of double precision[] to sparsevec';
COMMENT ON FUNCTION array_to_sparsevec(numeric[], integer, boolean) IS 'cast of numeric[] to sparsevec';

CREATE CAST (sparsevec AS sparsevec)
    WITH FUNCTION sparsevec(sparsevec, integer, boolean) AS IMPLICIT;
CREATE CAST (sparsevec AS vector)
    WITH FUNCTION sparsevec_to_vector(sparsevec, integer, boolean) AS ASSIGNMENT;
CREATE CAST (vector AS sparsevec)
    WITH FUNCTION vector_to_sparsevec(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (sparsevec AS halfvec)
    WITH FUNCTION sparsevec_to_halfvec(sparsevec, integer, boolean) AS ASSIGNMENT;
CREATE CAST (halfvec AS sparsevec)
    WITH FUNCTION halfvec_to_sparsevec(halfvec, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS sparsevec)
    WITH FUNCTION array_to_sparsevec(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS sparsevec)
    WITH FUNCTION array_to_sparsevec(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS sparsevec)
    WITH FUNCTION array_to_sparsevec(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS sparsevec)
    WITH FUNCTION array_to_sparsevec(numeric[], integer, boolean) AS ASSIGNMENT;

COMMENT ON CAST (sparsevec AS sparsevec) IS 'applies the sparsevec(n) type modifier';
COMMENT ON CAST (sparsevec AS vector) IS 'sparsevec to vector';
COMMENT ON CAST (vector AS sparsevec) IS 'vector to sparsevec';
COMMENT ON CAST (sparsevec AS halfvec) IS 'sparsevec to halfvec (rounds to the nearest half)';
COMMENT ON CAST (halfvec AS sparsevec) IS 'halfvec to sparsevec (exact)';
COMMENT ON CAST (integer[] AS sparsevec) IS 'integer[] to sparsevec';
COMMENT ON CAST (real[] AS sparsevec) IS 'real[] to sparsevec';
COMMENT ON CAST (double precision[] AS sparsevec) IS 'double precision[] to sparsevec';
COMMENT ON CAST (numeric[] AS sparsevec) IS 'numeric[] to sparsevec';

CREATE OPERATOR <-> (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = l2_distance,
    COMMUTATOR = '<->'
);
CREATE OPERATOR <#> (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_negative_inner_product,
    COMMUTATOR = '<#>'
);
CREATE OPERATOR <=> (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = cosine_distance,
    COMMUTATOR = '<=>'
);
CREATE OPERATOR <+> (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = l1_distance,
    COMMUTATOR = '<+>'
);
CREATE OPERATOR < (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_lt,
    COMMUTATOR = >, NEGATOR = >=,
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR <= (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_le,
    COMMUTATOR = >=, NEGATOR = >,
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR = (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_eq,
    COMMUTATOR = =, NEGATOR = <>,
    RESTRICT = eqsel, JOIN = eqjoinsel,
    MERGES
);
CREATE OPERATOR <> (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_ne,
    COMMUTATOR = <>, NEGATOR = =,
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR >= (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_ge,
    COMMUTATOR = <=, NEGATOR = <,
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR > (
    LEFTARG = sparsevec, RIGHTARG = sparsevec, PROCEDURE = sparsevec_gt,
    COMMUTATOR = <, NEGATOR = <=,
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

COMMENT ON OPERATOR <-> (sparsevec, sparsevec) IS 'Euclidean (L2) distance';
COMMENT ON OPERATOR <#> (sparsevec, sparsevec) IS 'negative inner product';
COMMENT ON OPERATOR <=> (sparsevec, sparsevec) IS 'cosine distance';
COMMENT ON OPERATOR <+> (sparsevec, sparsevec) IS 'taxicab (L1) distance';
COMMENT ON OPERATOR < (sparsevec, sparsevec) IS 'less than';
COMMENT ON OPERATOR <= (sparsevec, sparsevec) IS 'less than or equal';
COMMENT ON OPERATOR = (sparsevec, sparsevec) IS 'equal';
COMMENT ON OPERATOR <> (sparsevec, sparsevec) IS 'not equal';
COMMENT ON OPERATOR >= (sparsevec, sparsevec) IS 'greater than or equal';
COMMENT ON OPERATOR > (sparsevec, sparsevec) IS 'greater than';

CREATE OPERATOR CLASS sparsevec_ops
    DEFAULT FOR TYPE sparsevec USING btree AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    FUNCTION 1 sparsevec_cmp(sparsevec, sparsevec);

COMMENT ON OPERATOR CLASS sparsevec_ops USING btree IS 'btree ordering of sparse vectors';

-- (end of sparsevec)

-- operator classes added in 0.2.0
CREATE OPERATOR CLASS vector_l1_ops
    FOR TYPE vector USING vecstore AS
    OPERATOR 1 <+> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(vector, vector);
COMMENT ON OPERATOR CLASS vector_l1_ops USING vecstore IS 'vecstore index for taxicab (L1) distance (<+>)';

-- halfvec: the index widens the values to float4 for its clusters, codes
-- and graphs, and keeps its full vectors in 16 bits (half the bytes)
CREATE OPERATOR CLASS halfvec_l2_ops
    DEFAULT FOR TYPE halfvec USING vecstore AS
    OPERATOR 1 <-> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_ip_ops
    FOR TYPE halfvec USING vecstore AS
    OPERATOR 1 <#> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 halfvec_negative_inner_product(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_cosine_ops
    FOR TYPE halfvec USING vecstore AS
    OPERATOR 1 <=> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_l1_ops
    FOR TYPE halfvec USING vecstore AS
    OPERATOR 1 <+> (halfvec, halfvec) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(halfvec, halfvec);
COMMENT ON OPERATOR CLASS halfvec_l2_ops USING vecstore IS 'vecstore index of halfvec for Euclidean distance (<->)';
COMMENT ON OPERATOR CLASS halfvec_ip_ops USING vecstore IS 'vecstore index of halfvec for negative inner product (<#>)';
COMMENT ON OPERATOR CLASS halfvec_cosine_ops USING vecstore IS 'vecstore index of halfvec for cosine distance (<=>)';
COMMENT ON OPERATOR CLASS halfvec_l1_ops USING vecstore IS 'vecstore index of halfvec for taxicab (L1) distance (<+>)';

-- bit: Hamming distance is the squared L2 distance of the bits as 0s and
-- 1s; the index keeps the rows packed and searches its graphs on them
CREATE OPERATOR CLASS bit_hamming_ops
    FOR TYPE bit USING vecstore AS
    OPERATOR 1 <~> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 hamming_distance(bit, bit);
COMMENT ON OPERATOR CLASS bit_hamming_ops USING vecstore IS 'vecstore index of bit strings for Hamming distance (<~>)';
-- (end of operator classes)

-- what an index's segment holds, hot and cold, and how much of it is in memory
CREATE FUNCTION vecstore_index_memory(index regclass)
    RETURNS TABLE (part text, hot boolean, bytes bigint, resident_bytes bigint, pinned_bytes bigint)
    AS 'MODULE_PATHNAME', 'vecstore_index_memory' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION vecstore_index_memory(regclass) IS 'the parts of a vecstore index''s segment (head, tids, codes, graphs: hot; vectors: cold): bytes, bytes in the page cache, bytes pinned';

CREATE FUNCTION vecstore_cluster_access(index regclass)
    RETURNS TABLE (cluster integer, rows bigint, accesses bigint, last_access timestamptz,
                   hot_bytes bigint, hot_resident_bytes bigint,
                   cold_bytes bigint, cold_resident_bytes bigint, pinned_bytes bigint)
    AS 'MODULE_PATHNAME', 'vecstore_cluster_access' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION vecstore_cluster_access(regclass) IS 'per cluster of a vecstore index: rows, how many scans opened it and when last (with shared_preload_libraries), and its hot (TIDs, codes, graph) and cold (vectors) bytes, the bytes of each in the page cache, and the bytes locked by vecstore.pin_memory';
