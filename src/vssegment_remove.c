/*-------------------------------------------------------------------------
 *
 * vssegment_remove.c
 *	  The removal life cycle of segment files: which files go, and when.
 *
 * Segment files are outside PostgreSQL's storage, so nothing removes them
 * unless we do (the lesson of cstore_fdw, STYLE.md 2.7).  Owns:
 *	- files of dropped indexes, removed at commit (kept on abort), through
 *	  object_access_hook, which sees DROP of the index directly or through
 *	  its table, schema or extension;
 *	- files of an index's old relfilenode, removed at the commit of the
 *	  TRUNCATE, REINDEX, VACUUM FULL or ALTER ... SET TABLESPACE that
 *	  replaced it;
 *	- files of a build that is rolled back, removed at abort (also of a
 *	  subtransaction);
 *	- the directory of a dropped database, right after DROP DATABASE
 *	  (ProcessUtility_hook);
 *	- orphans left by a crash in between, or by a backend that had not
 *	  loaded the library, by a sweep (VsSegmentSweep) at each CREATE INDEX
 *	  and in vecstore_verify(repair); never a file that a transaction
 *	  still in progress wrote (its index is not visible yet).
 *
 * Removals wait in a list in TopMemoryContext until the end of their
 * (sub)transaction.  Unlinking a mapped file is safe: the mapping keeps
 * the inode until it is unmapped.  The hooks run only in backends that
 * have loaded the library; with shared_preload_libraries = 'vecstore'
 * that is every backend, otherwise the sweep catches what they missed.
 *
 * IDENTIFICATION
 *	  src/vssegment_remove.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/procarray.h"
#include "tcop/utility.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "vsam.h"

/* an orphan must be this old before the sweep removes it (seconds) */
#define VS_SWEEP_MIN_AGE		60

/* a file removal waiting for the end of a (sub)transaction */
typedef enum VsPendingKind
{
	VS_PENDING_NODE_ON_COMMIT,	/* all files of a relfilenode, at commit */
	VS_PENDING_NODE_ON_ABORT,	/* all files of a relfilenode, at abort */
	VS_PENDING_OTHERS_ON_COMMIT /* files of an index oid but another relfilenode */
} VsPendingKind;

typedef struct VsPending
{
	VsPendingKind kind;
	RelFileNode node;
	Oid			indexoid;
	int			nestlevel;
	struct VsPending *next;
} VsPending;

static VsPending *pending = NULL;

/*
 * The removals of transactions this session prepared, by GID, until this
 * session finishes them (COMMIT or ROLLBACK PREPARED, as Citus does on the
 * connection that prepared them).  A prepared transaction finished by
 * another session, or after this one exits, leaves its files to the sweep.
 */
typedef struct VsPrepared
{
	char		gid[GIDSIZE];
	VsPending  *list;
	struct VsPrepared *next;
} VsPrepared;

static VsPrepared *prepared = NULL;
static char preparing_gid[GIDSIZE];	/* PREPARE TRANSACTION's, until its
										 * end; "" when none */
static object_access_hook_type prev_object_access_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void remove_files(Oid dboid, RelFileNode *node, Oid other_than_index, Oid keep_relfilenode);
static void xact_callback(XactEvent event, void *arg);
static void subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg);
static void object_access(ObjectAccessType access, Oid classId, Oid objectId,
						  int subId, void *arg);
static void process_utility(PlannedStmt *pstmt, const char *queryString,
							bool readOnlyTree, ProcessUtilityContext context,
							ParamListInfo params, QueryEnvironment *queryEnv,
							DestReceiver *dest, QueryCompletion *qc);

/*
 * VsSegmentRemoveInit - install the transaction callbacks and the DROP
 * hooks (from _PG_init).
 */
void
VsSegmentRemoveInit(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	prev_object_access_hook = object_access_hook;
	object_access_hook = object_access;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}

/*
 * add_pending - remember a removal for the end of the (sub)transaction.
 */
static void
add_pending(VsPendingKind kind, RelFileNode node, Oid indexoid)
{
	VsPending  *p = MemoryContextAlloc(TopMemoryContext, sizeof(VsPending));

	p->kind = kind;
	p->node = node;
	p->indexoid = indexoid;
	p->nestlevel = GetCurrentTransactionNestLevel();
	p->next = pending;
	pending = p;
}

/*
 * VsSegmentRemoveOnAbort - the files of this (new) relfilenode go if the
 * transaction that is building it aborts.
 */
void
VsSegmentRemoveOnAbort(RelFileNode node)
{
	add_pending(VS_PENDING_NODE_ON_ABORT, node, InvalidOid);
}

/*
 * VsSegmentForgetIndexFiles - at commit, remove the files of this index
 * that belong to another relfilenode (the one a TRUNCATE, REINDEX or
 * VACUUM FULL is replacing).
 */
void
VsSegmentForgetIndexFiles(Relation index)
{
	add_pending(VS_PENDING_OTHERS_ON_COMMIT, index->rd_node, RelationGetRelid(index));
}

/*
 * remove_files - unlink segment files in a database's directory: those of
 * relfilenode "node" (when given), or those whose header names index
 * "other_than_index" with a relfilenode other than "keep_relfilenode".
 * Errors are only logged: the files are a cache, and this runs at commit.
 */
static void
remove_files(Oid dboid, RelFileNode *node, Oid other_than_index, Oid keep_relfilenode)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;

	VsSegmentDir(dboid, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d == NULL)
		return;
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		unsigned int relnode,
					gen;
		char		path[MAXPGPATH];
		bool		doit = false;

		if (sscanf(de->d_name, "%u.%u.seg", &relnode, &gen) != 2)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (node != NULL)
			doit = (relnode == node->relNode);
		else if (relnode != keep_relfilenode)
		{
			Oid			indexoid;

			/* a temporary file's header is not final yet: leave it */
			if (strstr(de->d_name, ".tmp.") == NULL &&
				VsSegmentFileIndex(path, &indexoid, NULL) && indexoid == other_than_index)
				doit = true;
		}
		if (doit && unlink(path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
	}
	FreeDir(d);
}

/*
 * VsSegmentRemoveUnused - remove the files of this index's relfilenode
 * that its current generation (metapage "meta", checked head "head") does
 * not read: pieces a compaction dropped, and files of older generations.
 * Files of later generations are left (a compaction writes its file before
 * it publishes the generation), and so are temporary files (the sweep's
 * business).  A backend that still maps a removed file keeps its mapping;
 * one that reaches a removed file through an older metapage rebuilds it
 * from the fork, and a later call removes it again.  Returns the number of
 * files removed; errors are only logged: the files are a cache.
 */
int
VsSegmentRemoveUnused(Relation index, VsMetaPage meta, const char *head)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	int			removed = 0;

	VsSegmentDir(index->rd_node.dbNode, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d == NULL)
		return 0;
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		Oid			relnode;
		uint32		gen;
		char		path[MAXPGPATH];

		/* not a temporary file */
		if (!VsSegmentFileName(de->d_name, &relnode, &gen) ||
			relnode != index->rd_node.relNode || gen >= meta->generation ||
			VsHeadPiece(head, gen) != NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
	}
	FreeDir(d);
	return removed;
}

/*
 * VsSegmentRemoveUnpublished - a compaction that wrote files for the
 * generations after "published" (the metapage's), up to "last", and failed
 * before it published them: remove this relfilenode's files of those
 * generations, its own (its lock on the table keeps other compactions
 * out).  Called while an error is being handled: failures are logged.
 */
void
VsSegmentRemoveUnpublished(Relation index, uint32 published, uint32 last)
{
	for (uint32 gen = published + 1; gen <= last; gen++)
	{
		char	   *path = VsSegmentPath(index->rd_node, gen);

		if (unlink(path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
		pfree(path);
	}
}

/*
 * finish_pending - carry out the removals of "list" for a transaction that
 * committed ("commit") or aborted, and free them.
 */
static void
finish_pending(VsPending *list, bool commit)
{
	Oid			handled[64];
	int			nhandled = 0;

	while (list != NULL)
	{
		VsPending  *p = list;
		bool		newer = false;

		list = p->next;
		switch (p->kind)
		{
			case VS_PENDING_NODE_ON_COMMIT:
				if (commit)
					remove_files(p->node.dbNode, &p->node, InvalidOid, InvalidOid);
				break;
			case VS_PENDING_NODE_ON_ABORT:
				if (!commit)
					remove_files(p->node.dbNode, &p->node, InvalidOid, InvalidOid);
				break;
			case VS_PENDING_OTHERS_ON_COMMIT:

				/*
				 * Only the newest entry of an index knows its final
				 * relfilenode (the list is newest first, and entries are
				 * freed as they are handled, so look at what was handled).
				 */
				for (int i = 0; i < nhandled; i++)
					newer |= (handled[i] == p->indexoid);
				if (commit && !newer)
					remove_files(p->node.dbNode, NULL, p->indexoid, p->node.relNode);
				if (!newer && nhandled < lengthof(handled))
					handled[nhandled++] = p->indexoid;
				break;
		}
		pfree(p);
	}
}

/*
 * xact_callback - carry out the removals at the end of the transaction;
 * a prepared one's wait for this session's COMMIT or ROLLBACK PREPARED.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
		event == XACT_EVENT_PRE_PREPARE)
	{
		/*
		 * The catalog can still be read: learn each altered or rebuilt
		 * index's final relfilenode (a hook that ran before the command's
		 * catalog update became visible saw the old one).
		 */
		for (VsPending *p = pending; p != NULL; p = p->next)
		{
			HeapTuple	tup;

			if (p->kind != VS_PENDING_OTHERS_ON_COMMIT)
				continue;
			tup = SearchSysCache1(RELOID, ObjectIdGetDatum(p->indexoid));
			if (HeapTupleIsValid(tup))
			{
				p->node.relNode = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
				ReleaseSysCache(tup);
			}
		}
		return;
	}
	if (event == XACT_EVENT_PREPARE)
	{
		/*
		 * The transaction ends later, by its GID: its removals must not
		 * go with this session's next transaction (a ROLLBACK PREPARED of
		 * a DROP INDEX would then lose the index's files).  Kept for this
		 * session's COMMIT or ROLLBACK PREPARED (process_utility).
		 */
		VsSegmentEndOfXact();
		if (pending != NULL && preparing_gid[0] != '\0')
		{
			VsPrepared *pr = MemoryContextAllocZero(TopMemoryContext, sizeof(VsPrepared));

			strlcpy(pr->gid, preparing_gid, sizeof(pr->gid));
			pr->list = pending;
			pr->next = prepared;
			prepared = pr;
			pending = NULL;
		}
		/* no GID known: forgotten (the sweep takes what is left unused) */
		while (pending != NULL)
		{
			VsPending  *p = pending;

			pending = p->next;
			pfree(p);
		}
		preparing_gid[0] = '\0';
		return;
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		VsPending  *list = pending;

		preparing_gid[0] = '\0';
		/* every scan of the transaction is over: drop pins, unmap the stale */
		VsSegmentEndOfXact();
		pending = NULL;
		finish_pending(list, event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT);
	}
}

/*
 * subxact_callback - a subtransaction's removals move to its parent on
 * commit; on abort, its builds' files go and its drops are forgotten.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	VsPending **link = &pending;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;

	while (*link != NULL)
	{
		VsPending  *p = *link;

		if (p->nestlevel < level)
		{
			link = &p->next;
			continue;
		}
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			p->nestlevel = level - 1;
			link = &p->next;
			continue;
		}
		/* aborting: act on build files now, forget the rest */
		if (p->kind == VS_PENDING_NODE_ON_ABORT)
			remove_files(p->node.dbNode, &p->node, InvalidOid, InvalidOid);
		*link = p->next;
		pfree(p);
	}
}

/*
 * object_access - on DROP of a vecstore index (directly, or through its
 * table, schema or extension), remove its files at commit; after an ALTER
 * of one (SET TABLESPACE copies it to a new relfilenode without a build),
 * remove the files of its other relfilenodes at commit.
 */
static void
object_access(ObjectAccessType access, Oid classId, Oid objectId,
			  int subId, void *arg)
{
	HeapTuple	tup;
	Form_pg_class form;
	Oid			amoid;

	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if ((access != OAT_DROP && access != OAT_POST_ALTER) ||
		classId != RelationRelationId || subId != 0)
		return;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(objectId));
	if (!HeapTupleIsValid(tup))
		return;
	form = (Form_pg_class) GETSTRUCT(tup);
	amoid = get_index_am_oid("vecstore", true);
	if (form->relkind == RELKIND_INDEX && OidIsValid(amoid) && form->relam == amoid)
	{
		RelFileNode node;

		node.spcNode = OidIsValid(form->reltablespace) ? form->reltablespace : MyDatabaseTableSpace;
		node.dbNode = MyDatabaseId;
		node.relNode = form->relfilenode;
		add_pending(access == OAT_DROP ? VS_PENDING_NODE_ON_COMMIT : VS_PENDING_OTHERS_ON_COMMIT,
					node, objectId);
	}
	ReleaseSysCache(tup);
}

/*
 * process_utility - after DROP DATABASE succeeds, remove the database's
 * segment directory.  (DROP DATABASE cannot run in a transaction block,
 * so once it returns the drop is committed.)
 */
static void
process_utility(PlannedStmt *pstmt, const char *queryString,
				bool readOnlyTree, ProcessUtilityContext context,
				ParamListInfo params, QueryEnvironment *queryEnv,
				DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			dropped_db = InvalidOid;
	TransactionStmt *finish = NULL;

	if (IsA(parsetree, DropdbStmt))
		dropped_db = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
	if (IsA(parsetree, TransactionStmt))
	{
		TransactionStmt *ts = (TransactionStmt *) parsetree;

		if (ts->kind == TRANS_STMT_PREPARE)
			strlcpy(preparing_gid, ts->gid, sizeof(preparing_gid));
		else if (ts->kind == TRANS_STMT_COMMIT_PREPARED ||
				 ts->kind == TRANS_STMT_ROLLBACK_PREPARED)
			finish = ts;
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);

	/* a transaction this session prepared, finished: its removals now */
	if (finish != NULL)
	{
		for (VsPrepared **link = &prepared; *link != NULL; link = &(*link)->next)
		{
			VsPrepared *pr = *link;

			if (strcmp(pr->gid, finish->gid) != 0)
				continue;
			*link = pr->next;
			finish_pending(pr->list, finish->kind == TRANS_STMT_COMMIT_PREPARED);
			pfree(pr);
			break;
		}
	}

	if (OidIsValid(dropped_db))
	{
		char		dir[MAXPGPATH];
		struct stat st;

		/* a database that never had a segment file has no directory */
		VsSegmentDir(dropped_db, dir, sizeof(dir));
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			rmtree(dir, true);
	}
}

/*
 * file_age - seconds since a file was last modified (large when unknown).
 */
static double
file_age(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return 1e9;
	return difftime(time(NULL), st.st_mtime);
}

/*
 * writer_in_progress - is "xid", the writer a segment file's header names,
 * a transaction still in progress (a prepared one included)?
 * InvalidTransactionId (a file of an older version, or written without a
 * transaction id) is not.  Nor is an xid that does not precede the next
 * one: it is not of this cluster's recent past (a file older than a
 * wraparound), and TransactionIdIsInProgress might look it up in
 * pg_subtrans.
 */
static bool
writer_in_progress(TransactionId xid)
{
	if (!TransactionIdIsNormal(xid) ||
		!TransactionIdPrecedes(xid, ReadNextTransactionId()))
		return false;
	return TransactionIdIsInProgress(xid);
}

/*
 * index_has_relfilenode - does index "indexoid" exist, committed, with
 * relfilenode "relnode"?
 *
 * Reads pg_class under a new catalog snapshot, not through the syscache:
 * the caller has just seen the file's writer finish, and a snapshot taken
 * before that, or a cache entry not yet invalidated by its commit (the
 * invalidations are sent after the transaction leaves the proc array),
 * would still show the index missing or with its old relfilenode.
 */
static bool
index_has_relfilenode(Oid indexoid, Oid relnode)
{
	Relation	pg_class;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	InvalidateCatalogSnapshot();
	pg_class = table_open(RelationRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_class_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(indexoid));
	scan = systable_beginscan(pg_class, ClassOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		found = ((Form_pg_class) GETSTRUCT(tup))->relfilenode == relnode;
	systable_endscan(scan);
	table_close(pg_class, AccessShareLock);
	return found;
}

/*
 * temp_writer_alive - is the process named by a temporary file's name
 * ("<file>.tmp.<pid>", write_piece in vssegment.c) a live backend?
 *
 * Age alone is not enough for a temporary file: its writer stops changing
 * it once the bytes are written, while it checks them (a pass over the
 * whole file) and fsyncs it, which for a large index on a busy disk can
 * take longer than VS_SWEEP_MIN_AGE; removing it then would make the
 * rename fail, and the CREATE INDEX with it.  A writer that dies removes
 * its file (or the server restarts after a crash, and the pid names no
 * backend).  A pid that names a backend by reuse only keeps a stale file
 * until that backend exits.
 */
static bool
temp_writer_alive(const char *name)
{
	const char *tmp = strstr(name, ".tmp.");
	int			pid;
	char		extra;

	if (tmp == NULL || sscanf(tmp + 5, "%d%c", &pid, &extra) != 1 || pid <= 0)
		return false;
	return BackendPidGetProc(pid) != NULL;
}

/*
 * VsSegmentSweep - remove orphans: in this database's directory, files
 * whose header names no live index with that relfilenode (a crash between
 * a build and its commit, a drop in a backend without the library), stale
 * temporary files; and directories of databases that no longer exist.
 *
 * A file is never removed while its writer may still need it:
 *	- files younger than VS_SWEEP_MIN_AGE are left alone;
 *	- a file whose header names an index this transaction cannot see, or
 *	  one with another relfilenode, is kept while the transaction that
 *	  wrote it is in progress: a CREATE INDEX, REINDEX, TRUNCATE or VACUUM
 *	  FULL that has not committed yet, however long ago it wrote the file;
 *	- a temporary file is kept while its writer is a live backend.
 * Returns the number of files and directories removed.
 */
int
VsSegmentSweep(void)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	int			removed = 0;

	VsSegmentDir(MyDatabaseId, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d != NULL)
	{
		while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
		{
			char		path[MAXPGPATH];
			unsigned int relnode,
						gen;
			bool		orphan = false;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (file_age(path) < VS_SWEEP_MIN_AGE)
				continue;
			if (strstr(de->d_name, ".tmp.") != NULL)
				orphan = !temp_writer_alive(de->d_name);
			else if (sscanf(de->d_name, "%u.%u.seg", &relnode, &gen) == 2)
			{
				Oid			indexoid;
				TransactionId writer;

				/*
				 * The writer first, the catalog second: a writer that
				 * commits in between is then visible to the catalog's
				 * snapshot.
				 */
				if (!VsSegmentFileIndex(path, &indexoid, &writer))
					orphan = true;
				else if (writer_in_progress(writer))
					orphan = false;
				else
					orphan = !index_has_relfilenode(indexoid, relnode);
			}
			if (orphan && unlink(path) == 0)
				removed++;
		}
		FreeDir(d);
	}

	/* directories of dropped databases */
	d = AllocateDir(VS_SEGMENT_DIR);
	if (d != NULL)
	{
		while ((de = ReadDirExtended(d, VS_SEGMENT_DIR, LOG)) != NULL)
		{
			unsigned int dboid;
			char		extra;

			if (sscanf(de->d_name, "%u%c", &dboid, &extra) != 1)
				continue;
			if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum((Oid) dboid)))
			{
				VsSegmentDir(dboid, dir, sizeof(dir));
				if (file_age(dir) >= VS_SWEEP_MIN_AGE && rmtree(dir, true))
					removed++;
			}
		}
		FreeDir(d);
	}
	return removed;
}
