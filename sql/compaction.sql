-- Compaction: vecstore_compact and VACUUM re-seal the clusters that have
-- delta rows (inserted after CREATE INDEX) or removed rows (marked by
-- VACUUM) as a new generation; the compaction_threshold reloption; scans,
-- TRUNCATE and REINDEX after a compaction.  Vectors come from
-- generate_series arithmetic (id i is [i % 97, i % 89], every pair once up
-- to 8633), so every number printed is fixed; cluster counts, which follow
-- the layout, are not printed where they could vary.

CREATE TABLE ct (id int PRIMARY KEY, v vector(2)) WITH (autovacuum_enabled = off);
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(1, 2000) i;

-- compaction_threshold: a real, 0 .. 1
CREATE INDEX ON ct USING vecstore (v) WITH (compaction_threshold = -0.1);
CREATE INDEX ON ct USING vecstore (v) WITH (compaction_threshold = 1.5);
CREATE INDEX ON ct USING vecstore (v) WITH (compaction_threshold = 'often');
CREATE INDEX ct_idx ON ct USING vecstore (v) WITH (lists = 4, compaction_threshold = 0.25);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
ALTER INDEX ct_idx SET (compaction_threshold = 1.5);
ALTER INDEX ct_idx SET (compaction_threshold = -0.1);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
ALTER INDEX ct_idx SET (compaction_threshold = 1);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
ALTER INDEX ct_idx RESET (compaction_threshold);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
-- 0: VACUUM marks removed rows and does not compact
ALTER INDEX ct_idx SET (compaction_threshold = 0);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
-- min_cluster_rows: an integer, -1 (a tenth of the split bound, the
-- default) .. 100000000; 0 never merges
ALTER INDEX ct_idx SET (min_cluster_rows = -2);
ALTER INDEX ct_idx SET (min_cluster_rows = 'few');
ALTER INDEX ct_idx SET (min_cluster_rows = 0);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
ALTER INDEX ct_idx RESET (min_cluster_rows);
-- at most half of an explicit max_cluster_rows (a split's parts are not
-- merged again)
ALTER INDEX ct_idx SET (max_cluster_rows = 1000, min_cluster_rows = 600);
ALTER INDEX ct_idx SET (max_cluster_rows = 1000, min_cluster_rows = 500);
ALTER INDEX ct_idx SET (max_cluster_rows = 999);
SELECT reloptions FROM pg_class WHERE relname = 'ct_idx';
ALTER INDEX ct_idx RESET (max_cluster_rows, min_cluster_rows);

-- vecstore_compact takes a vecstore index only
SELECT * FROM vecstore_compact('ct');
SELECT * FROM vecstore_compact('ct_pkey');
CREATE SEQUENCE ct_seq;
SELECT * FROM vecstore_compact('ct_seq');
DROP SEQUENCE ct_seq;
SELECT * FROM vecstore_compact('no_such_index');
SELECT * FROM vecstore_compact(NULL);
-- a partitioned index has no storage of its own; its partitions' do
CREATE TABLE cpt (id int, v vector(2)) PARTITION BY RANGE (id);
CREATE TABLE cpt1 PARTITION OF cpt FOR VALUES FROM (1) TO (1001) WITH (autovacuum_enabled = off);
INSERT INTO cpt SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(1, 1000) i;
CREATE INDEX cpt_idx ON cpt USING vecstore (v) WITH (lists = 2);
INSERT INTO cpt SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(901, 1000) i;
SELECT * FROM vecstore_compact('cpt_idx');
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('cpt1_v_idx');
SELECT sealed_rows, delta_rows FROM vecstore_index_info('cpt1_v_idx');
DROP TABLE cpt;

-- it needs the table's owner, as VACUUM does
CREATE ROLE regress_vs_compact;
GRANT SELECT, INSERT, DELETE ON ct TO regress_vs_compact;
SET ROLE regress_vs_compact;
SELECT * FROM vecstore_compact('ct_idx');
SELECT * FROM vecstore_compact('ct_idx', all_clusters => false);
RESET ROLE;
REVOKE ALL ON ct FROM regress_vs_compact;
DROP ROLE regress_vs_compact;

-- delta rows and removed rows: VACUUM (threshold 0) marks, does not compact
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(2001, 2300) i;
DELETE FROM ct WHERE id % 5 = 0;
VACUUM (INDEX_CLEANUP ON) ct;
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, segment_pieces, compactions
FROM vecstore_index_info('ct_idx');

-- every cluster re-sealed: the 240 live delta rows folded, the 400 removed
-- sealed rows and 60 removed delta rows dropped
SELECT clusters, rows_folded, rows_removed, generation
FROM vecstore_compact('ct_idx', all_clusters => true);
SELECT sealed_rows, sealed_rows = (SELECT count(*) FROM ct) AS all_live, delta_rows, dead_rows,
       segment_generation, segment_pieces, compactions
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');

-- an exact index scan finds every row once, in the table's order
SET enable_seqscan = off;
SET vecstore.effort = 10;
SET vecstore.max_scan_tuples = 1000000;
EXPLAIN (COSTS OFF) SELECT id FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 5;
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
SELECT id, v FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 5;
SELECT id, v FROM ct ORDER BY v <-> '[90.2,3.1]' LIMIT 5;
RESET enable_seqscan;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 5;
SELECT id, v FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 5;
SELECT id, v FROM ct ORDER BY v <-> '[90.2,3.1]' LIMIT 5;
RESET enable_indexscan;
SET enable_seqscan = off;

-- nothing left to do: no cluster, the same generation
SELECT clusters, rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
SELECT segment_generation, compactions FROM vecstore_index_info('ct_idx');

-- all_clusters => false: only clusters past the threshold and 64 changed
-- rows.  Rows at one corner all go to one cluster: 10 are over a hundredth
-- of its rows, but under 64, for vecstore_compact and VACUUM alike
ALTER INDEX ct_idx SET (compaction_threshold = 0.01);
INSERT INTO ct SELECT i, ARRAY[i % 5, i % 3]::vector FROM generate_series(3001, 3010) i;
SELECT clusters, rows_folded, rows_removed, generation
FROM vecstore_compact('ct_idx', all_clusters => false);
VACUUM ct;
SELECT delta_rows, segment_generation, compactions FROM vecstore_index_info('ct_idx');
INSERT INTO ct SELECT i, ARRAY[i % 5, i % 3]::vector FROM generate_series(3011, 3110) i;
-- 110 rows are under a threshold of 1 ...
ALTER INDEX ct_idx SET (compaction_threshold = 1);
SELECT clusters, rows_folded, rows_removed, generation
FROM vecstore_compact('ct_idx', all_clusters => false);
-- ... and over one of 0.1: that cluster alone (the new threshold counts
-- in the transaction that sets it)
BEGIN;
ALTER INDEX ct_idx SET (compaction_threshold = 0.1);
SELECT clusters, rows_folded, rows_removed, generation
FROM vecstore_compact('ct_idx', all_clusters => false);
COMMIT;
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, compactions
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[2,1]') s;
-- the 7 copies of [2,1] come first (their order is not defined)
SELECT array_agg(id ORDER BY id) AS ids
FROM (SELECT id FROM ct ORDER BY v <-> '[2.2,1.1]' LIMIT 7) s;

-- VACUUM compacts with the default threshold: 1000 new rows are over a
-- tenth and 64 rows of every cluster
ALTER INDEX ct_idx RESET (compaction_threshold);
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(4001, 5000) i;
SELECT delta_rows, compactions FROM vecstore_index_info('ct_idx');
VACUUM ct;
SELECT sealed_rows, sealed_rows = (SELECT count(*) FROM ct) AS all_live, delta_rows, dead_rows,
       segment_generation, compactions
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;

-- ... and does not with threshold 0
ALTER INDEX ct_idx SET (compaction_threshold = 0);
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(5001, 6000) i;
DELETE FROM ct WHERE id BETWEEN 4001 AND 4500;
VACUUM (INDEX_CLEANUP ON) ct;
SELECT delta_rows, dead_rows, segment_generation, compactions FROM vecstore_index_info('ct_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
SELECT sealed_rows, delta_rows, dead_rows, segment_pieces, compactions
FROM vecstore_index_info('ct_idx');

-- a compaction in a transaction that rolls back: it folded the aborted
-- rows, which VACUUM then removes, and the next compaction drops
BEGIN;
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(7001, 7100) i;
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
SELECT count(*) AS rows FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
ROLLBACK;
SELECT sealed_rows, delta_rows, dead_rows, segment_generation FROM vecstore_index_info('ct_idx');
SELECT count(*) AS rows FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
VACUUM (INDEX_CLEANUP ON) ct;
SELECT sealed_rows, delta_rows, dead_rows FROM vecstore_index_info('ct_idx');
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
SELECT sealed_rows, sealed_rows = (SELECT count(*) FROM ct) AS all_live, delta_rows, dead_rows
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');

-- a compaction splits clusters grown past max_cluster_rows; the scan
-- still finds every row once
ALTER INDEX ct_idx SET (max_cluster_rows = 300);
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx', all_clusters => false);
SELECT clusters > 4 AS split, sealed_rows, delta_rows, dead_rows, segment_pieces
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
SELECT id, v FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 5;
ALTER INDEX ct_idx RESET (max_cluster_rows);

-- TRUNCATE after a compaction: a new, empty index that takes rows again
TRUNCATE ct;
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, compactions
FROM vecstore_index_info('ct_idx');
SELECT clusters, rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(1, 500) i;
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, compactions
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
SELECT id, v FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 3;

-- REINDEX after a compaction: a new build, generation 1
REINDEX INDEX ct_idx;
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, compactions
FROM vecstore_index_info('ct_idx');
INSERT INTO ct SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(501, 600) i;
DELETE FROM ct WHERE id % 10 = 0;
VACUUM (INDEX_CLEANUP ON) ct;
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('ct_idx');
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, compactions
FROM vecstore_index_info('ct_idx');
SELECT * FROM vecstore_verify('ct_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
SELECT id, v FROM ct ORDER BY v <-> '[10.3,20.6]' LIMIT 3;
REINDEX TABLE ct;
SELECT segment_generation, compactions FROM vecstore_index_info('ct_idx');
SELECT count(*) AS rows FROM (SELECT id FROM ct ORDER BY v <-> '[10,10]') s;
DROP TABLE ct;

-- an unlogged table's index compacts too
CREATE UNLOGGED TABLE cu (id int PRIMARY KEY, v vector(2)) WITH (autovacuum_enabled = off);
INSERT INTO cu SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(1, 1000) i;
CREATE INDEX cu_idx ON cu USING vecstore (v) WITH (lists = 2, compaction_threshold = 0);
INSERT INTO cu SELECT i, ARRAY[i % 97, i % 89]::vector FROM generate_series(1001, 1500) i;
DELETE FROM cu WHERE id % 3 = 0;
VACUUM (INDEX_CLEANUP ON) cu;
SELECT sealed_rows, delta_rows, dead_rows FROM vecstore_index_info('cu_idx');
SELECT rows_folded, rows_removed, generation FROM vecstore_compact('cu_idx');
SELECT sealed_rows, delta_rows, dead_rows, segment_generation, compactions
FROM vecstore_index_info('cu_idx');
SELECT * FROM vecstore_verify('cu_idx');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM cu ORDER BY v <-> '[10,10]') s;
SELECT id, v FROM cu ORDER BY v <-> '[10.3,20.6]' LIMIT 3;
DROP TABLE cu;

-- space goes back: after most rows are deleted, VACUUM re-seals every
-- cluster, and (no other session using the index) the relation's free end
-- is truncated; the delta chains folded whole go, and new rows start new ones
CREATE TABLE cg (id int PRIMARY KEY, v vector(16)) WITH (autovacuum_enabled = off);
INSERT INTO cg SELECT i, (SELECT array_agg(((i * 7919 + d * 104729) % 1000) / 10.0)
                          FROM generate_series(1, 16) d)::vector
FROM generate_series(1, 4000) i;
CREATE INDEX cg_idx ON cg USING vecstore (v) WITH (lists = 4);
INSERT INTO cg SELECT i, (SELECT array_agg(((i * 7919 + d * 104729) % 1000) / 10.0)
                          FROM generate_series(1, 16) d)::vector
FROM generate_series(4001, 12000) i;
VACUUM cg;
SELECT pg_relation_size('cg_idx') AS size_before \gset
DELETE FROM cg WHERE id % 8 <> 0;
VACUUM cg;
SELECT pg_relation_size('cg_idx') < :size_before / 2 AS truncated, sealed_rows, delta_rows, dead_rows
FROM vecstore_index_info('cg_idx');
SELECT * FROM vecstore_verify('cg_idx');
INSERT INTO cg SELECT i, (SELECT array_agg(((i * 7919 + d * 104729) % 1000) / 10.0)
                          FROM generate_series(1, 16) d)::vector
FROM generate_series(12001, 12100) i;
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows, count(*) FILTER (WHERE id > 12000) AS new_rows
FROM (SELECT id FROM cg ORDER BY v <-> (SELECT v FROM cg WHERE id = 8)) s;
SELECT delta_rows FROM vecstore_index_info('cg_idx');
SELECT * FROM vecstore_verify('cg_idx');
DROP TABLE cg;

-- an index created on an empty table has no codes (nothing to train them
-- on); its first compaction with rows enough for a graph trains them and
-- re-seals every cluster with them, as CREATE INDEX would have
CREATE TABLE ce (id int PRIMARY KEY, v vector(16)) WITH (autovacuum_enabled = off);
CREATE INDEX ce_idx ON ce USING vecstore (v);
SELECT quantizer FROM vecstore_index_info('ce_idx');
INSERT INTO ce SELECT i, (SELECT array_agg(((i * 7919 + d * 104729) % 9973) / 100.0)
                          FROM generate_series(1, 16) d)::vector
FROM generate_series(1, 600) i;
VACUUM ce;
-- 600 rows: no graph yet, no codes yet
SELECT quantizer, graph_clusters, delta_rows FROM vecstore_index_info('ce_idx');
INSERT INTO ce SELECT i, (SELECT array_agg(((i * 7919 + d * 104729) % 9973) / 100.0)
                          FROM generate_series(1, 16) d)::vector
FROM generate_series(601, 3000) i;
VACUUM ce;
SELECT quantizer, graph_clusters > 0 AS graphs, code_bytes > 0 AS codes, sealed_rows, delta_rows
FROM vecstore_index_info('ce_idx');
SELECT * FROM vecstore_verify('ce_idx');
-- exact at effort 10 (set above): the same rows as a scan without the index
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM ce ORDER BY v <-> (SELECT v FROM ce WHERE id = 8)) s;
-- and at the defaults, through the codes and graphs
BEGIN;
SET LOCAL vecstore.effort = 4;
SELECT array_agg(id ORDER BY rn) = (SELECT array_agg(id ORDER BY d, id) FROM
         (SELECT id, (v <-> (SELECT v FROM ce WHERE id = 8)) + 0 AS d FROM ce
          ORDER BY d, id LIMIT 5) e) AS top5_exact
FROM (SELECT id, row_number() OVER () AS rn FROM
      (SELECT id FROM ce ORDER BY v <-> (SELECT v FROM ce WHERE id = 8) LIMIT 5) s) t;
COMMIT;
-- later compactions keep them
INSERT INTO ce SELECT i, (SELECT array_agg(((i * 7919 + d * 104729) % 9973) / 100.0)
                          FROM generate_series(1, 16) d)::vector
FROM generate_series(3001, 3500) i;
VACUUM ce;
SELECT quantizer, delta_rows FROM vecstore_index_info('ce_idx');
SELECT * FROM vecstore_verify('ce_idx');
DROP TABLE ce;

RESET enable_seqscan;
RESET vecstore.effort;
RESET vecstore.max_scan_tuples;
