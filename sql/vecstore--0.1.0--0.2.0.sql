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
    OUT shared_checks boolean)
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
           END AS phase,
           s.param11 AS clusters_total,
           s.param12 AS clusters_done,
           s.param13 AS rows_written
    FROM pg_stat_get_progress_info('VACUUM') s
    LEFT JOIN pg_database d ON d.oid = s.datid
    WHERE s.param14 > 0;

COMMENT ON VIEW vecstore_compaction_progress IS 'compactions of vecstore indexes in progress (VACUUM, vecstore_compact, the compaction worker): phase, clusters to re-seal and done, rows written';
COMMENT ON FUNCTION vecstore_compact(regclass, boolean) IS 'compacts a vecstore index now: folds delta rows into their clusters and drops removed rows, for every cluster that has any (all_clusters) or those past its compaction_threshold';
COMMENT ON FUNCTION vecstore_stats() IS 'this session''s index scans (rows examined, clusters opened, scans cut short by vecstore.max_scan_tuples) and segment checks (done here, or taken from the server''s record)';

-- halfvec: the type, its operators, functions, casts and aggregates
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
-- (end of sparsevec)

-- operator classes added in 0.2.0
-- (end of operator classes)
