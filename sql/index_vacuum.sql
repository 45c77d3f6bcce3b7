-- VACUUM and vecstore: removed rows leave the index, sealed and delta
-- alike; statistics are reported.

SET enable_seqscan = off;
CREATE TABLE vt (id int PRIMARY KEY, v vector(2));
INSERT INTO vt SELECT i, ARRAY[i, i]::vector FROM generate_series(1, 1000) i;
-- (compaction off: this file is about marking; compaction.sql re-seals)
CREATE INDEX vt_idx ON vt USING vecstore (v) WITH (lists = 4, compaction_threshold = 0);
-- delta rows
INSERT INTO vt SELECT i, ARRAY[i, i]::vector FROM generate_series(1001, 1200) i;
SELECT sealed_rows, delta_rows, dead_rows FROM vecstore_index_info('vt_idx');

-- delete sealed and delta rows, vacuum
DELETE FROM vt WHERE id % 2 = 0;
VACUUM vt;
SELECT sealed_rows, delta_rows, dead_rows FROM vecstore_index_info('vt_idx');
SELECT * FROM vecstore_verify('vt_idx');

-- scans skip them; the survivors are all found
SET vecstore.probes = 4;
SELECT count(*) FROM (SELECT id FROM vt ORDER BY v <-> '[0,0]') s;
SELECT id FROM vt ORDER BY v <-> '[600,600]' LIMIT 4;
SELECT id FROM vt ORDER BY v <-> '[1100,1100]' LIMIT 4;

-- slots reused by new rows are not confused with the removed ones
INSERT INTO vt SELECT i, ARRAY[i, i]::vector FROM generate_series(2001, 2100) i;
SELECT count(*) FROM (SELECT id FROM vt ORDER BY v <-> '[0,0]') s;
SELECT count(*) = (SELECT count(*) FROM vt) AS all_found
FROM (SELECT id FROM vt ORDER BY v <-> '[0,0]') s;

-- index statistics after VACUUM
VACUUM ANALYZE vt;
SELECT reltuples FROM pg_class WHERE relname = 'vt_idx';
DROP TABLE vt;
RESET enable_seqscan;
RESET vecstore.probes;
