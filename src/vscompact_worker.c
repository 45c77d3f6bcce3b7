/*-------------------------------------------------------------------------
 *
 * vscompact_worker.c
 *	  The compaction worker: compacts vecstore indexes without anyone
 *	  running VACUUM (with shared_preload_libraries).
 *
 * VACUUM compacts the clusters past each index's compaction_threshold at
 * its end (vsvacuum.c), and autovacuum runs VACUUM after enough inserts or
 * deletes.  The worker covers the rest: tables autovacuum leaves alone for
 * long (few changes relative to their size, autovacuum off for them) while
 * their vecstore indexes gather delta rows, and servers with autovacuum
 * off.
 *
 * A launcher (one background worker, started with the server once
 * recovery has finished, and again 10 s after it dies or is terminated)
 * wakes every
 * vecstore.compaction_naptime seconds and, for each database that allows
 * connections, starts a worker for that database and waits for it: one
 * database at a time.  The worker finds the database's vecstore indexes
 * (none when the extension is not installed there) and, for each, in its
 * own transaction, takes the table's ShareUpdateExclusiveLock without
 * waiting (a table being vacuumed is skipped: VACUUM compacts it) and runs
 * the compaction VACUUM would (vscompact.c, VsCompact), at the index's
 * threshold, paced by the cost-based delay with
 * vecstore.compaction_cost_delay and vecstore.compaction_cost_limit (as
 * autovacuum paces itself).  What it did is logged and counted in each
 * index's vecstore_index_info().compactions.  vecstore.compaction_worker =
 * off stops it (a reload suffices).
 *
 * IDENTIFICATION
 *	  src/vscompact_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "vsam.h"

/* GUCs */
static bool vecstore_compaction_worker = true;
static int	vecstore_compaction_naptime = 60;
static double vecstore_compaction_cost_delay = 2;
static int	vecstore_compaction_cost_limit = -1;

PGDLLEXPORT void vs_compact_launcher_main(Datum arg);
PGDLLEXPORT void vs_compact_worker_main(Datum arg);

/*
 * VsCompactWorkerInit - the worker's settings, and with
 * shared_preload_libraries its launcher (from _PG_init).
 */
void
VsCompactWorkerInit(void)
{
	BackgroundWorker worker;

	DefineCustomBoolVariable("vecstore.compaction_worker",
							 "Runs the compaction worker (with shared_preload_libraries)",
							 "It compacts vecstore indexes past their compaction_threshold every vecstore.compaction_naptime seconds, without anyone running VACUUM.",
							 &vecstore_compaction_worker, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("vecstore.compaction_naptime",
							"Sets the time between the compaction worker's rounds",
							NULL,
							&vecstore_compaction_naptime, 60, 1, 86400,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomRealVariable("vecstore.compaction_cost_delay",
							 "Sets the cost delay of the compaction worker, as autovacuum_vacuum_cost_delay",
							 "0 runs it unthrottled.",
							 &vecstore_compaction_cost_delay, 2, 0, 100,
							 PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("vecstore.compaction_cost_limit",
							"Sets the cost limit of the compaction worker, as autovacuum_vacuum_cost_limit",
							"-1 takes vacuum_cost_limit.",
							&vecstore_compaction_cost_limit, -1, -1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "vecstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "vs_compact_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "vecstore compaction launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "vecstore compaction launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * databases - the databases that allow connections, palloc'd in the
 * caller's context.
 */
static Oid *
databases(int *n)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid		   *oids = NULL;
	int			max = 0;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	*n = 0;
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		old = MemoryContextSwitchTo(cxt);
		if (*n == max)
		{
			max = Max(16, max * 2);
			oids = oids ? repalloc(oids, sizeof(Oid) * max) : palloc(sizeof(Oid) * max);
		}
		oids[(*n)++] = db->oid;
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return oids;
}

/*
 * vs_compact_launcher_main - every naptime, one worker per database, one
 * at a time.
 */
void
vs_compact_launcher_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	cxt = AllocSetContextCreate(TopMemoryContext, "vecstore compaction launcher",
								ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		Oid		   *oids;
		int			n;

		/*
		 * A shutdown request that came while a worker ran was taken by the
		 * wait for that worker (which resets the latch): leave before
		 * sleeping a whole naptime on it.
		 */
		if (ShutdownRequestPending)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 vecstore_compaction_naptime * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* absorbs procsignal barriers (DROP DATABASE waits for them) */
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!vecstore_compaction_worker || RecoveryInProgress())
			continue;

		MemoryContextReset(cxt);
		MemoryContextSwitchTo(cxt);
		oids = databases(&n);
		/* its transaction's end left TopMemoryContext current */
		MemoryContextSwitchTo(cxt);
		for (int i = 0; i < n && !ShutdownRequestPending; i++)
		{
			BackgroundWorker worker;
			BackgroundWorkerHandle *handle;
			pid_t		pid;

			/* vecstore.compaction_worker = off stops the round, too */
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			if (!vecstore_compaction_worker)
				break;

			memset(&worker, 0, sizeof(worker));
			worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
			worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
			worker.bgw_restart_time = BGW_NEVER_RESTART;
			snprintf(worker.bgw_library_name, BGW_MAXLEN, "vecstore");
			snprintf(worker.bgw_function_name, BGW_MAXLEN, "vs_compact_worker_main");
			snprintf(worker.bgw_name, BGW_MAXLEN, "vecstore compaction worker");
			snprintf(worker.bgw_type, BGW_MAXLEN, "vecstore compaction worker");
			worker.bgw_main_arg = ObjectIdGetDatum(oids[i]);
			worker.bgw_notify_pid = MyProcPid;
			if (!RegisterDynamicBackgroundWorker(&worker, &handle))
			{
				ereport(LOG,
						(errmsg("vecstore compaction launcher could not start a worker"),
						 errhint("Raise max_worker_processes.")));
				break;
			}
			if (WaitForBackgroundWorkerStartup(handle, &pid) != BGWH_STARTED)
				continue;
			if (WaitForBackgroundWorkerShutdown(handle) == BGWH_POSTMASTER_DIED)
				proc_exit(1);
		}
		MemoryContextSwitchTo(TopMemoryContext);
	}

	/*
	 * Exit 1, as PostgreSQL's logical replication launcher does: the
	 * postmaster starts it again after bgw_restart_time unless it is
	 * shutting down, so that a pg_terminate_backend() does not stop
	 * compactions for good (vecstore.compaction_worker = off does).
	 */
	proc_exit(1);
}

/*
 * vecstore_indexes - this database's vecstore indexes, palloc'd in the
 * caller's context (none when the extension is not installed).
 */
static Oid *
vecstore_indexes(int *n)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid		   *oids = NULL;
	int			max = 0;
	Oid			amoid;

	*n = 0;
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	amoid = get_index_am_oid("vecstore", true);
	if (OidIsValid(amoid))
	{
		Relation	rel = table_open(RelationRelationId, AccessShareLock);
		SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
		HeapTuple	tup;

		while ((tup = systable_getnext(scan)) != NULL)
		{
			Form_pg_class form = (Form_pg_class) GETSTRUCT(tup);
			MemoryContext old;

			/* other sessions' temporary indexes cannot be read here */
			if (form->relkind != RELKIND_INDEX || form->relam != amoid ||
				form->relpersistence == RELPERSISTENCE_TEMP)
				continue;
			old = MemoryContextSwitchTo(cxt);
			if (*n == max)
			{
				max = Max(16, max * 2);
				oids = oids ? repalloc(oids, sizeof(Oid) * max) : palloc(sizeof(Oid) * max);
			}
			oids[(*n)++] = form->oid;
			MemoryContextSwitchTo(old);
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	return oids;
}

/*
 * compact_index - one index, in its own transaction: skipped when its
 * table is being vacuumed (or dropped, or the index is gone).
 */
static void
compact_index(Oid indexoid)
{
	Oid			heapoid;
	Relation	heap;
	Relation	index;
	VsCompactResult res;
	BufferAccessStrategy bas;

	StartTransactionCommand();

	/*
	 * As a lazy VACUUM does: the others' horizons ignore this transaction's
	 * xmin, so that a long compaction does not keep VACUUM from removing
	 * rows elsewhere.  It reads no table rows with its snapshot, only the
	 * index's pages (not MVCC) and the catalogs, as VACUUM does.  Set
	 * before the snapshot is taken; the transaction's end clears it.
	 */
	LWLockAcquire(ProcArrayLock, LW_EXCLUSIVE);
	MyProc->statusFlags |= PROC_IN_VACUUM;
	ProcGlobal->statusFlags[MyProc->pgxactoff] = MyProc->statusFlags;
	LWLockRelease(ProcArrayLock);
	PushActiveSnapshot(GetTransactionSnapshot());
	heapoid = IndexGetRelation(indexoid, true);
	if (!OidIsValid(heapoid) || !ConditionalLockRelationOid(heapoid, ShareUpdateExclusiveLock))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return;
	}
	heap = table_open(heapoid, NoLock);
	index = try_relation_open(indexoid, RowExclusiveLock);
	if (index != NULL && index->rd_rel->relkind == RELKIND_INDEX &&
		VsGetCompactionThreshold(index) > 0 &&
		RelationGetNumberOfBlocks(index) > 0)
	{
		pgstat_report_activity(STATE_RUNNING, RelationGetRelationName(index));
		bas = GetAccessStrategy(BAS_VACUUM);
		VsCompactProgressBegin(heap);
		VsCompact(index, VsGetCompactionThreshold(index), false, bas, &res);
		VsCompactProgressEnd();
		FreeAccessStrategy(bas);
		if (res.clusters > 0)
			ereport(LOG,
					(errmsg("vecstore compaction worker compacted index \"%s.%s\": %d clusters, %d split, %d merged, " INT64_FORMAT " new rows folded, " INT64_FORMAT " removed rows dropped, " INT64_FORMAT " rows moved to a nearer centroid's cluster",
							get_database_name(MyDatabaseId), RelationGetRelationName(index),
							res.clusters, res.splits, res.merges, res.rows_folded, res.rows_removed,
							res.rows_moved)));
	}
	if (index != NULL)
		relation_close(index, RowExclusiveLock);
	table_close(heap, NoLock);
	UnlockRelationOid(heapoid, ShareUpdateExclusiveLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * vs_compact_worker_main - compact one database's vecstore indexes.
 */
void
vs_compact_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	Oid		   *volatile oids;
	int			n;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/*
	 * It yields as an autovacuum worker does: a session that has waited
	 * deadlock_timeout for a lock it holds (ALTER TABLE, DROP INDEX behind
	 * its SHARE UPDATE EXCLUSIVE) cancels the compaction of that index
	 * (ProcSleep; the index stays as it was, for a later round), DROP
	 * DATABASE ends it (CountOtherDBBackends), and CREATE INDEX
	 * CONCURRENTLY does not wait for its snapshot (it changes no table).
	 */
	LWLockAcquire(ProcArrayLock, LW_EXCLUSIVE);
	MyProc->statusFlags |= PROC_IS_AUTOVACUUM;
	ProcGlobal->statusFlags[MyProc->pgxactoff] = MyProc->statusFlags;
	LWLockRelease(ProcArrayLock);

	/* paced as autovacuum paces itself */
	VacuumCostDelay = vecstore_compaction_cost_delay;
	VacuumCostLimit = vecstore_compaction_cost_limit > 0 ? vecstore_compaction_cost_limit :
		VacuumCostLimit;
	VacuumCostActive = VacuumCostDelay > 0;
	VacuumCostBalance = 0;

	oids = vecstore_indexes(&n);
	for (int i = 0; i < n; i++)
	{
		MemoryContext cxt = CurrentMemoryContext;

		CHECK_FOR_INTERRUPTS();
		/* vecstore.compaction_worker = off (a reload) stops it between indexes */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!vecstore_compaction_worker)
			break;
		/* an index that fails (damaged, too old) does not stop the others */
		PG_TRY();
		{
			compact_index(oids[i]);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
	}
	proc_exit(0);
}
