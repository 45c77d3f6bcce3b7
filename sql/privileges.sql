-- Privileges: vecstore_index_info, vecstore_index_memory, vecstore_cluster_access and vecstore_verify read an index's
-- structure, so they need the SELECT privilege on its table or ownership
-- of the index; vecstore_verify(..., repair => true) and vecstore_compact
-- change files or pages and need ownership.  Roles are cluster-wide:
-- regress_vecstore_ names, dropped at the end.

CREATE TABLE priv_t (id int, v vector(3));
INSERT INTO priv_t SELECT i, ARRAY[i % 7, i % 5, i % 3]::vector FROM generate_series(1, 200) i;
CREATE INDEX priv_idx ON priv_t USING vecstore (v) WITH (lists = 2);
CREATE ROLE regress_vecstore_reader;

-- no privilege on the table: every function refuses, naming the table
SET ROLE regress_vecstore_reader;
SELECT clusters FROM vecstore_index_info('priv_idx');
SELECT * FROM vecstore_verify('priv_idx');
SELECT * FROM vecstore_verify('priv_idx', repair => true);
SELECT * FROM vecstore_compact('priv_idx');
SELECT * FROM vecstore_index_memory('priv_idx');
SELECT * FROM vecstore_cluster_access('priv_idx');
-- an INSERT or UPDATE privilege is not enough
RESET ROLE;
GRANT INSERT, UPDATE ON priv_t TO regress_vecstore_reader;
SET ROLE regress_vecstore_reader;
SELECT clusters FROM vecstore_index_info('priv_idx');
SELECT * FROM vecstore_verify('priv_idx');
RESET ROLE;

-- with SELECT: reading works, repairing and compacting still need the owner
GRANT SELECT ON priv_t TO regress_vecstore_reader;
SET ROLE regress_vecstore_reader;
SELECT clusters, dimensions, sealed_rows FROM vecstore_index_info('priv_idx');
SELECT count(*) FROM vecstore_index_memory('priv_idx');
SELECT count(*) FROM vecstore_cluster_access('priv_idx');
SELECT * FROM vecstore_verify('priv_idx');
SELECT * FROM vecstore_verify('priv_idx', repair => true);
SELECT * FROM vecstore_compact('priv_idx');
RESET ROLE;

-- the owner needs no SELECT privilege, and may repair
REVOKE ALL ON priv_t FROM regress_vecstore_reader;
ALTER TABLE priv_t OWNER TO regress_vecstore_reader;
SET ROLE regress_vecstore_reader;
REVOKE SELECT ON priv_t FROM regress_vecstore_reader;
SELECT has_table_privilege('priv_t', 'SELECT');
SELECT clusters, dimensions, sealed_rows FROM vecstore_index_info('priv_idx');
SELECT * FROM vecstore_verify('priv_idx', repair => true);
-- the progress view is everyone's, as pg_stat_progress_vacuum is
SELECT count(*) FROM vecstore_compaction_progress;
-- compacting writes: not in a read-only transaction
BEGIN READ ONLY;
SELECT * FROM vecstore_compact('priv_idx');
ROLLBACK;
RESET ROLE;

DROP TABLE priv_t;
DROP ROLE regress_vecstore_reader;
