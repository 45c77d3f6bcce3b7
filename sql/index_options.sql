-- vecstore reloptions and settings at and past their bounds; bad columns.

CREATE TABLE o (v vector(3));
INSERT INTO o SELECT ARRAY[i, i % 7, -i]::vector FROM generate_series(1, 100) i;

-- lists: auto (the default: from the row count) or 1 .. 32768; 0 is
-- refused, as pgvector refuses it
CREATE INDEX ON o USING vecstore (v) WITH (lists = -1);
CREATE INDEX ON o USING vecstore (v) WITH (lists = 0);
CREATE INDEX o_auto ON o USING vecstore (v) WITH (lists = auto);
SELECT clusters FROM vecstore_index_info('o_auto');
DROP INDEX o_auto;
CREATE INDEX o_min ON o USING vecstore (v) WITH (lists = 1);
CREATE INDEX o_max ON o USING vecstore (v) WITH (lists = 32768);
CREATE INDEX ON o USING vecstore (v) WITH (lists = 32769);
CREATE INDEX ON o USING vecstore (v) WITH (lists = 'many');
CREATE INDEX ON o USING vecstore (v) WITH (nosuchoption = 1);
SELECT clusters FROM vecstore_index_info('o_min');
SELECT clusters FROM vecstore_index_info('o_max');
ALTER INDEX o_min SET (lists = 40000);
DROP INDEX o_min, o_max;

-- m: 2 .. 100; ef_construction: 4 .. 1000; quantizer: sq8 | sq4 | none
CREATE INDEX ON o USING vecstore (v) WITH (m = 1);
CREATE INDEX ON o USING vecstore (v) WITH (m = 101);
CREATE INDEX ON o USING vecstore (v) WITH (ef_construction = 3);
CREATE INDEX ON o USING vecstore (v) WITH (ef_construction = 1001);
-- ef_construction must cover the bottom level's 2 * m neighbours
CREATE INDEX ON o USING vecstore (v) WITH (m = 16, ef_construction = 31);
CREATE INDEX ON o USING vecstore (v) WITH (m = 40);
CREATE INDEX ON o USING vecstore (v) WITH (quantizer = 'pq');
CREATE INDEX ON o USING vecstore (v) WITH (quantizer = '');
CREATE INDEX o_g1 ON o USING vecstore (v) WITH (m = 2, ef_construction = 4, quantizer = 'none');
CREATE INDEX o_g2 ON o USING vecstore (v) WITH (m = 100, ef_construction = 1000, quantizer = sq8);
SELECT quantizer, graph_clusters FROM vecstore_index_info('o_g1');
SELECT quantizer, graph_clusters, code_bytes > 0 AS has_codes FROM vecstore_index_info('o_g2');
CREATE INDEX o_g3 ON o USING vecstore (v) WITH (quantizer = sq4);
SELECT quantizer, code_bytes > 0 AS has_codes FROM vecstore_index_info('o_g3');
SELECT * FROM vecstore_verify('o_g3');
DROP INDEX o_g3;
ALTER INDEX o_g1 SET (m = 0);
ALTER INDEX o_g1 SET (quantizer = 'binary');
DROP INDEX o_g1, o_g2;

-- vecstore.probes: auto (the default) or 1 .. 32768
SET vecstore.probes = 0;
SET vecstore.probes = 'ten';
SET vecstore.probes = 1;
SHOW vecstore.probes;
SET vecstore.probes = AUTO;
SHOW vecstore.probes;
SET vecstore.probes = 32768;
SET vecstore.probes = 32769;
RESET vecstore.probes;
SHOW vecstore.probes;

-- vecstore.max_scan_tuples: 1 .. 2147483647
SET vecstore.max_scan_tuples = 0;
SET vecstore.max_scan_tuples = 1;
SET vecstore.max_scan_tuples = 2147483647;
SET vecstore.max_scan_tuples = 2147483648;
RESET vecstore.max_scan_tuples;
SHOW vecstore.max_scan_tuples;

-- vecstore.ef_search: auto (from vecstore.effort, the default) or 1 .. 1000
SET vecstore.ef_search = -1;
SET vecstore.ef_search = 0;
SET vecstore.ef_search = 1;
SET vecstore.ef_search = auto;
SET vecstore.ef_search = 1000;
SET vecstore.ef_search = 1001;
RESET vecstore.ef_search;
SHOW vecstore.ef_search;

-- vecstore.effort: 1 .. 10 (10: an exact search)
SET vecstore.effort = 0;
SET vecstore.effort = 1;
SET vecstore.effort = 10;
SET vecstore.effort = 11;
SET vecstore.effort = 'high';
RESET vecstore.effort;
SHOW vecstore.effort;

-- vecstore.rerank_window: 1 .. 100000
SET vecstore.rerank_window = 0;
SET vecstore.rerank_window = 1;
SET vecstore.rerank_window = 100000;
SET vecstore.rerank_window = 100001;
RESET vecstore.rerank_window;
SHOW vecstore.rerank_window;

-- vecstore.readahead: auto, on, off (and the boolean spellings)
SET vecstore.readahead = on;
SET vecstore.readahead = false;
SET vecstore.readahead = sometimes;
RESET vecstore.readahead;
SHOW vecstore.readahead;

-- vecstore.direct_reads: the same values
SET vecstore.direct_reads = on;
SET vecstore.direct_reads = off;
SET vecstore.direct_reads = always;
RESET vecstore.direct_reads;
SHOW vecstore.direct_reads;

-- vecstore.pin_memory and vecstore.pin_naptime: the server's, not a session's
SHOW vecstore.pin_memory;
SET vecstore.pin_memory = '64MB';
SHOW vecstore.pin_naptime;

-- a misspelt setting in the reserved prefix
SET vecstore.probe = 3;

-- SET LOCAL lasts until the end of the transaction
BEGIN;
SET LOCAL vecstore.probes = 7;
SHOW vecstore.probes;
COMMIT;
SHOW vecstore.probes;

-- columns the index cannot take
CREATE TABLE bad (id int, v vector(2001), w vector, x real[]);
CREATE INDEX ON bad USING vecstore (v);
CREATE INDEX ON bad USING vecstore (w);
CREATE INDEX ON bad USING vecstore (x);
CREATE INDEX ON bad USING vecstore (w, w);
INSERT INTO bad (w) VALUES ('[1,2]'), ('[1,2,3]');
CREATE INDEX ON bad USING vecstore (w);
CREATE INDEX ON o USING vecstore (v vector_ops);
CREATE UNIQUE INDEX ON o USING vecstore (v);
DROP TABLE bad;

-- inserting a vector of the wrong size into an index without typmod
CREATE TABLE nt (w vector);
INSERT INTO nt VALUES ('[1,2]'), ('[3,4]');
CREATE INDEX nt_idx ON nt USING vecstore (w);
INSERT INTO nt VALUES ('[1,2,3]');
SET enable_seqscan = off;
SELECT w FROM nt ORDER BY w <-> '[1,2,3]' LIMIT 1;
SELECT w FROM nt ORDER BY w <-> '[1,2]' LIMIT 1;
-- rebuilt on an empty table, it keeps its dimensions (from the files of
-- the relfilenode it replaces): TRUNCATE, VACUUM FULL, REINDEX
TRUNCATE nt;
SELECT dimensions FROM vecstore_index_info('nt_idx');
INSERT INTO nt VALUES ('[5,6]');
INSERT INTO nt VALUES ('[1,2,3]');
SELECT w FROM nt ORDER BY w <-> '[5,5]' LIMIT 1;
DELETE FROM nt;
VACUUM FULL nt;
REINDEX INDEX nt_idx;
SELECT dimensions FROM vecstore_index_info('nt_idx');
RESET enable_seqscan;
DROP TABLE nt;

-- the opclass validator
SELECT amvalidate(opc.oid), opc.opcname
FROM pg_opclass opc JOIN pg_am am ON am.oid = opc.opcmethod
WHERE am.amname = 'vecstore' ORDER BY opc.opcname;

DROP TABLE o;

-- pgvector's query settings do nothing here: a scan says so, once per
-- session and setting
CREATE TABLE pgv (id int, v vector(2));
INSERT INTO pgv SELECT g, ARRAY[g, g % 7]::real[]::vector FROM generate_series(1, 100) g;
CREATE INDEX pgv_idx ON pgv USING vecstore (v);
SET enable_seqscan = off;
SET hnsw.ef_search = 100;
SET ivfflat.probes = 10;
SELECT id FROM pgv ORDER BY v <-> '[3,3]' LIMIT 1;
SELECT id FROM pgv ORDER BY v <-> '[3,3]' LIMIT 1;
SET hnsw.iterative_scan = relaxed_order;
SELECT id FROM pgv ORDER BY v <-> '[3,3]' LIMIT 1;
RESET enable_seqscan;
RESET hnsw.ef_search;
RESET ivfflat.probes;
RESET hnsw.iterative_scan;
DROP TABLE pgv;
