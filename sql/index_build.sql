-- Building vecstore indexes: empty and NULL-only tables, unlogged tables,
-- CREATE INDEX CONCURRENTLY, REINDEX, TRUNCATE, introspection.

SET enable_seqscan = off;

-- an empty table gets one cluster; rows inserted later are found
CREATE TABLE e (id int, v vector(2));
CREATE INDEX e_idx ON e USING vecstore (v);
SELECT clusters, sealed_rows, delta_rows FROM vecstore_index_info('e_idx');
INSERT INTO e VALUES (1, '[1,1]'), (2, '[5,5]'), (3, NULL);
SELECT id FROM e ORDER BY v <-> '[4,4]' LIMIT 5;
SELECT clusters, sealed_rows, delta_rows FROM vecstore_index_info('e_idx');
DROP TABLE e;

-- a table of NULLs only
CREATE TABLE n (v vector(2));
INSERT INTO n VALUES (NULL), (NULL);
CREATE INDEX n_idx ON n USING vecstore (v);
SELECT clusters, sealed_rows FROM vecstore_index_info('n_idx');
SELECT count(*) FROM (SELECT v FROM n ORDER BY v <-> '[1,1]' LIMIT 5) s;
DROP TABLE n;

-- fewer rows than lists: as many clusters as distinct rows, with a notice
CREATE TABLE f (v vector(2));
INSERT INTO f VALUES ('[1,1]'), ('[2,2]'), ('[3,3]');
CREATE INDEX f_idx ON f USING vecstore (v) WITH (lists = 10);
SELECT clusters, sealed_rows FROM vecstore_index_info('f_idx');
DROP TABLE f;

-- automatic lists follow the row count (rows / 5000)
CREATE TABLE a (v vector(2));
INSERT INTO a SELECT ARRAY[i % 97, i % 89]::vector FROM generate_series(1, 10000) i;
CREATE INDEX a_idx ON a USING vecstore (v);
SELECT clusters, sealed_rows, min_cluster_rows > 0 AS no_empty_cluster,
       segment_bytes > 0 AS segment_written, fork_bytes > segment_bytes AS fork_holds_more
FROM vecstore_index_info('a_idx');
SELECT * FROM vecstore_verify('a_idx');

-- REINDEX, REINDEX CONCURRENTLY, TRUNCATE keep the index usable
REINDEX INDEX a_idx;
SELECT clusters, sealed_rows FROM vecstore_index_info('a_idx');
REINDEX INDEX CONCURRENTLY a_idx;
SELECT clusters, sealed_rows FROM vecstore_index_info('a_idx');
SELECT count(*) FROM (SELECT v FROM a ORDER BY v <-> '[3,3]' LIMIT 7) s;
TRUNCATE a;
SELECT clusters, sealed_rows, delta_rows FROM vecstore_index_info('a_idx');
INSERT INTO a VALUES ('[1,2]');
SELECT v FROM a ORDER BY v <-> '[3,3]' LIMIT 7;
DROP TABLE a;

-- CREATE INDEX CONCURRENTLY
CREATE TABLE c (v vector(2));
INSERT INTO c SELECT ARRAY[i, -i]::vector FROM generate_series(1, 300) i;
CREATE INDEX CONCURRENTLY c_idx ON c USING vecstore (v) WITH (lists = 3);
SELECT indisvalid FROM pg_index WHERE indexrelid = 'c_idx'::regclass;
SELECT v FROM c ORDER BY v <-> '[10,-10]' LIMIT 3;
DROP TABLE c;

-- unlogged tables (an init fork is written)
CREATE UNLOGGED TABLE u (v vector(2));
INSERT INTO u SELECT ARRAY[i, i]::vector FROM generate_series(1, 200) i;
CREATE INDEX u_idx ON u USING vecstore (v) WITH (lists = 4);
SELECT clusters, sealed_rows FROM vecstore_index_info('u_idx');
SELECT v FROM u ORDER BY v <-> '[50,50]' LIMIT 3;
SELECT pg_relation_size('u_idx', 'init') > 0 AS has_init_fork;
DROP TABLE u;

-- a rolled-back CREATE INDEX leaves the table as it was
CREATE TABLE r (v vector(2));
INSERT INTO r VALUES ('[1,1]');
BEGIN;
CREATE INDEX r_idx ON r USING vecstore (v);
ROLLBACK;
SELECT count(*) FROM pg_class WHERE relname = 'r_idx';
DROP TABLE r;

-- introspection on something that is not a vecstore index
CREATE TABLE x (id int PRIMARY KEY);
SELECT * FROM vecstore_index_info('x_pkey');
SELECT * FROM vecstore_verify('x');
DROP TABLE x;
RESET enable_seqscan;

-- dropping a database that never had a vecstore index says nothing
-- (it has no directory of segment files to remove)
CREATE DATABASE vecstore_regress_nosegments;
DROP DATABASE vecstore_regress_nosegments;

-- sizes: the core functions leave the segment files out
CREATE TABLE sz (id int, v vector(8));
INSERT INTO sz SELECT g, array_fill(g::real, ARRAY[8])::vector FROM generate_series(1, 3000) g;
CREATE INDEX sz_idx ON sz USING vecstore (v);
CREATE INDEX sz_id ON sz (id);
SELECT vecstore_index_size('sz_idx') = pg_total_relation_size('sz_idx')
         + (SELECT segment_bytes FROM vecstore_index_info('sz_idx')) AS index_and_segment,
       (SELECT segment_bytes FROM vecstore_index_info('sz_idx')) > 3000 * 8 * 4 AS segment_holds_vectors,
       vecstore_index_size('sz_id') = pg_total_relation_size('sz_id') AS btree_as_core,
       vecstore_database_size() >= (SELECT segment_bytes FROM vecstore_index_info('sz_idx')) AS database_counts_it;
SELECT vecstore_index_size('sz');
SELECT vecstore_index_size(0) IS NULL AS missing_is_null;
DROP TABLE sz;
-- a partitioned index: no bytes of its own (as the core functions say),
-- and the per-index functions point at its partitions' indexes
CREATE TABLE szp (id int, v vector(2)) PARTITION BY RANGE (id);
CREATE TABLE szp1 PARTITION OF szp FOR VALUES FROM (1) TO (1001);
INSERT INTO szp SELECT g, ARRAY[g, g]::real[]::vector FROM generate_series(1, 1000) g;
CREATE INDEX szp_idx ON szp USING vecstore (v);
SELECT vecstore_index_size('szp_idx') = pg_total_relation_size('szp_idx') AS partitioned_as_core;
SELECT clusters FROM vecstore_index_info('szp_idx');
SELECT * FROM vecstore_compact('szp_idx');
SELECT count(*) FROM vecstore_index_info((SELECT relid FROM pg_partition_tree('szp_idx') WHERE isleaf));
DROP TABLE szp;

-- the memory report: the segment's parts, hot and cold, and what the page
-- cache holds of them (everything, right after the build wrote it: not
-- asserted, the cache is the kernel's)
CREATE TABLE mem (id int, v vector(8));
INSERT INTO mem SELECT i, ARRAY(SELECT sin(i * j) FROM generate_series(1, 8) j) FROM generate_series(1, 3000) i;
CREATE INDEX mem_v ON mem USING vecstore (v) WITH (lists = 2);
SELECT part, hot, bytes > 0 AS has_bytes, resident_bytes BETWEEN 0 AND bytes AS resident_within,
       pinned_bytes
FROM vecstore_index_memory('mem_v');
SELECT (SELECT bytes FROM vecstore_index_memory('mem_v') WHERE part = 'vectors') = 3000 * 8 * 4 AS vector_bytes,
       (SELECT bytes FROM vecstore_index_memory('mem_v') WHERE part = 'tids') = 3000 * 6 AS tid_bytes,
       (SELECT bytes FROM vecstore_index_memory('mem_v') WHERE part = 'graphs') =
       (SELECT graph_bytes FROM vecstore_index_info('mem_v')) AS graph_bytes,
       (SELECT sum(bytes) FROM vecstore_index_memory('mem_v')) <=
       (SELECT segment_bytes FROM vecstore_index_info('mem_v')) AS within_segment;
-- per cluster: its rows, hot part (TIDs, codes, graph) and cold part
-- (vectors), and how many scans opened it (counted with
-- shared_preload_libraries, NULL without)
SELECT count(*) AS clusters, sum(rows) = 3000 AS all_rows,
       sum(cold_bytes) = 3000 * 8 * 4 AS cold_is_vectors,
       sum(hot_bytes) = (SELECT sum(bytes) FROM vecstore_index_memory('mem_v')
                         WHERE hot AND part <> 'head') AS hot_is_tids_codes_graphs,
       bool_and(hot_resident_bytes BETWEEN 0 AND hot_bytes
                AND cold_resident_bytes BETWEEN 0 AND cold_bytes) AS resident_within
FROM vecstore_cluster_access('mem_v');
CREATE TEMP TABLE acc0 AS SELECT cluster, accesses FROM vecstore_cluster_access('mem_v');
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM mem ORDER BY v <-> (SELECT v FROM mem WHERE id = 1) LIMIT 5) s;
SELECT count(*) FROM (SELECT id FROM mem ORDER BY v <-> (SELECT v FROM mem WHERE id = 2000) LIMIT 5) s;
RESET enable_seqscan;
SELECT coalesce(sum(b.accesses - a.accesses) >= 2, true) AS two_scans_counted,
       bool_and(b.accesses IS NULL OR (b.accesses > a.accesses) = (b.last_access IS NOT NULL))
         AS opened_have_last_access
FROM acc0 a JOIN vecstore_cluster_access('mem_v') b USING (cluster);
SELECT * FROM vecstore_cluster_access('mem');
-- a halfvec index's vectors take half the bytes
CREATE INDEX mem_h ON mem USING vecstore ((v::halfvec(8))) WITH (lists = 2);
SELECT bytes = 3000 * 8 * 2 AS half_vector_bytes FROM vecstore_index_memory('mem_h') WHERE part = 'vectors';
SELECT * FROM vecstore_index_memory('mem');
DROP TABLE mem;
