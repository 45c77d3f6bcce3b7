/*-------------------------------------------------------------------------
 *
 * vsbuild_parallel.c
 *	  CREATE INDEX with parallel workers: the clusters' graphs built by
 *	  several processes.  A compaction shares the graphs it builds anew the
 *	  same way (vscompact.c, "Parallel graphs"), over the pieces it writes.
 *
 * A serial build spends most of its time in the clusters' graphs (about
 * three quarters at 300,000 x 128 rows; bench/RESULTS.md, "Parallel
 * CREATE INDEX").  Each graph depends only on its cluster's rows and
 * codes, and is built the same way from the same input on any backend
 * (VsBuildGraph: the seed is the cluster's number), so the graphs are
 * what this file hands to PostgreSQL's parallel workers
 * (access/parallel.h, as many as plan_create_index_workers gives: the
 * setting max_parallel_maintenance_workers, the table's parallel_workers,
 * its size and maintenance_work_mem).
 *
 * The exchange goes through the fork itself, whose pages every process
 * reads and writes through shared buffers:
 *
 *	- the leader writes the sealed region as a serial build does (vsbuild.c,
 *	  write_index), every cluster's vectors, TIDs and codes, but with its
 *	  graph's bytes left zero (VsClusterExtras.defer_graphs); after each
 *	  cluster it publishes how many of the region's bytes are in flushed
 *	  pages (VsBuildParallelReady), pages it will not write again;
 *	- every participant (the workers from the start, the leader once it has
 *	  written the last cluster) takes the next cluster with a graph, waits
 *	  until the leader has published all of its bytes, reads them
 *	  (VsBlobRead), builds the graph, writes it into its place
 *	  (VsBlobPatch: a page at a time under its buffer lock, so two clusters
 *	  sharing a page patch it in turn) and the CRC-32C of the cluster's
 *	  bytes into shared memory;
 *	- the leader waits until every graph is built, takes the CRCs into the
 *	  cluster table, and goes on as a serial build: the head, the metapage,
 *	  WAL (log_newpage_range), the segment file.
 *
 * So a parallel build writes the same bytes as a serial one (TAP
 * 035_parallel_build.pl compares them), and the work the leader does
 * alone is what a serial build does besides the graphs: the heap passes,
 * k-means, the sort and writing the pages.  With a GPU (the offload
 * service builds the graphs on threads of its own) the build stays
 * serial.
 *
 * IDENTIFICATION
 *	  src/vsbuild_parallel.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "commands/progress.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "portability/instr_time.h"
#include "storage/condition_variable.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsam.h"
#include "vsutil.h"

/* shm_toc keys */
#define VS_PB_KEY_SHARED		UINT64CONST(0x7653000000000001)
#define VS_PB_KEY_INFO			UINT64CONST(0x7653000000000002)
#define VS_PB_KEY_CRCS			UINT64CONST(0x7653000000000003)
#define VS_PB_KEY_PARAMS		UINT64CONST(0x7653000000000004)

/* the regions one parallel pass may write into */
#define VS_PB_MAX_PIECES		8

/* how often the waiting leader reports progress, in milliseconds */
#define VS_PB_PROGRESS_MS		1000

/*
 * What the participants share.  The first part is set by the leader before
 * the workers start and read-only afterwards; the rest is under "mutex".
 */
typedef struct VsBuildShared
{
	Oid			indexrelid;
	int			nclusters;
	int			dims;
	int			metric;
	int			elem_size;
	int			m;
	int			ef_construction;
	int			graph_threshold;
	bool		has_params;
	int			npieces;		/* the pieces being written */
	VsPieceInfo pieces[VS_PB_MAX_PIECES];
	int			njobs;			/* clusters whose graph is shared */
	int64		job_rows;		/* their rows */

	slock_t		mutex;
	uint64		ready[VS_PB_MAX_PIECES];	/* bytes of each region in
											 * flushed pages */
	int			next;			/* the next cluster to look at */
	int			done;			/* graphs built */
	int64		rows_done;		/* their rows */
	ConditionVariable cv;		/* "ready" or "done" moved */
} VsBuildShared;

/* the leader's handle */
struct VsBuildParallel
{
	ParallelContext *pcxt;
	VsBuildShared *shared;
	VsClusterInfo *info;		/* in shared memory (graph_offset 0 for the
								 * clusters not shared) */
	bool		report;			/* CREATE INDEX's progress */
	uint32	   *crcs;			/* in shared memory: the graph clusters' CRCs */
	VsClusterExtras ex;
	Relation	index;
	instr_time	start;			/* when the workers were launched */
};

PGDLLEXPORT void VsParallelBuildMain(dsm_segment *seg, shm_toc *toc);

/*
 * piece_index - the place in shared->pieces of the piece written by
 * "generation" (VsClusterInfo.piece); VsBuildParallelBegin checked that
 * every shared cluster's is there.
 */
static int
piece_index(const VsBuildShared *shared, uint32 generation)
{
	int			q = VsPieceIndex(shared->pieces, (uint32) shared->npieces, generation);

	if (q < 0)
		elog(ERROR, "vecstore parallel graphs: no piece of generation %u", generation);
	return q;
}

/*
 * build_one - cluster c's graph, from its bytes in the fork, written back
 * into its place; returns the CRC-32C of the cluster's bytes.
 */
static uint32
build_one(Relation index, const VsBuildShared *shared, const VsClusterExtras *ex,
		  const VsClusterInfo *info, int c)
{
	char	   *bytes = palloc_extended(info->nbytes, MCXT_ALLOC_HUGE);
	const float *vecs;
	const uint8 *codes = NULL;
	char	   *graph = bytes + (info->graph_offset - info->vec_offset);
	const VsPieceInfo *piece = &shared->pieces[piece_index(shared, info->piece)];
	const VsRegion *region = &piece->region;
	uint64		base = piece->base;
	pg_crc32c	crc;

	VsBlobRead(index, region, info->vec_offset - base, bytes, info->nbytes, NULL);
	if (ex->elem_size == VS_ELEM_FLOAT4)
		vecs = (const float *) bytes;
	else
	{
		/* halfvec or bit: widened to float4, exactly, as the serial build has them */
		Size		rowbytes = VsRowBytes(ex->elem_size, shared->dims);
		float	   *wide = palloc_extended(sizeof(float) * shared->dims * (Size) info->count,
										   MCXT_ALLOC_HUGE);

		for (uint32 i = 0; i < info->count; i++)
			VsDecodeRow(ex->elem_size, bytes + rowbytes * i, shared->dims,
						wide + (Size) i * shared->dims);
		vecs = wide;
	}
	if (info->code_offset != 0)
		codes = (const uint8 *) bytes + (info->code_offset - info->vec_offset);

	VsBuildGraph(index, c, vecs, codes, info->count, shared->dims, ex, info, graph);
	VsBlobPatch(index, MAIN_FORKNUM, region, info->graph_offset - base, graph,
				info->graph_size);

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, bytes, info->nbytes);
	FIN_CRC32C(crc);
	return crc;
}

/*
 * take_jobs - build graphs until none is left to take.  "leader" says
 * whether this is the leader, which reports progress.
 */
static void
take_jobs(Relation index, VsBuildShared *shared, const VsClusterExtras *ex,
		  const VsClusterInfo *info, uint32 *crcs, bool leader)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "vecstore parallel graph",
											  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		int			c;
		int			q;
		uint64		end;
		MemoryContext oldcxt;
		uint32		crc;

		SpinLockAcquire(&shared->mutex);
		while (shared->next < shared->nclusters && info[shared->next].graph_offset == 0)
			shared->next++;
		c = shared->next;
		if (c < shared->nclusters)
			shared->next++;
		SpinLockRelease(&shared->mutex);
		if (c >= shared->nclusters)
			break;

		/* wait until the leader has put every page of the cluster */
		q = piece_index(shared, info[c].piece);
		end = info[c].vec_offset - shared->pieces[q].base + info[c].nbytes;
		ConditionVariablePrepareToSleep(&shared->cv);
		for (;;)
		{
			uint64		ready;

			SpinLockAcquire(&shared->mutex);
			ready = shared->ready[q];
			SpinLockRelease(&shared->mutex);
			if (ready >= end)
				break;
			ConditionVariableSleep(&shared->cv, WAIT_EVENT_PARALLEL_CREATE_INDEX_SCAN);
		}
		ConditionVariableCancelSleep();

		oldcxt = MemoryContextSwitchTo(cxt);
		crc = build_one(index, shared, ex, &info[c], c);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(cxt);

		SpinLockAcquire(&shared->mutex);
		crcs[c] = crc;
		shared->done++;
		shared->rows_done += info[c].count;
		SpinLockRelease(&shared->mutex);
		ConditionVariableBroadcast(&shared->cv);
		if (leader)
			pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, shared->rows_done);
	}
	MemoryContextDelete(cxt);
}

/*
 * shared_extras - the graphs' options, as the leader has them.
 */
static void
shared_extras(const VsBuildShared *shared, const VsQuantParams *params, VsClusterExtras *ex)
{
	memset(ex, 0, sizeof(VsClusterExtras));
	ex->params = params;
	ex->metric = (VsMetric) shared->metric;
	ex->elem_size = shared->elem_size;
	ex->m = shared->m;
	ex->ef_construction = shared->ef_construction;
	ex->graph_threshold = shared->graph_threshold;
}

/*
 * VsBuildParallelBegin - start "nworkers" workers on the graphs of the
 * clusters "info" lays out, about to be written: cluster c into the
 * region of the piece of "pieces" (of "npieces", at most VS_PB_MAX_PIECES)
 * whose generation is info[c].piece, at its offset less the piece's base.
 * "jobs": the clusters whose graph is shared (NULL: every cluster with a
 * graph); the caller builds the others' itself.  "report": CREATE INDEX's
 * progress is reported.  NULL when there is nothing to share (fewer than
 * two graphs), or no worker could be started: the caller then builds
 * serially.  Otherwise the caller writes the shared clusters with
 * ex->defer_graphs, calls VsBuildParallelReady as it goes and
 * VsBuildParallelFinish at the end.
 */
VsBuildParallel *
VsBuildParallelBegin(Relation index, int nworkers, const VsClusterInfo *info, int nclusters,
					 int dims, const VsClusterExtras *ex, const VsPieceInfo *pieces,
					 int npieces, const bool *jobs, bool report)
{
	VsBuildParallel *bp;
	ParallelContext *pcxt;
	VsBuildShared *shared;
	VsClusterInfo *sinfo;
	Size		info_size = sizeof(VsClusterInfo) * (Size) nclusters;
	Size		crcs_size = sizeof(uint32) * (Size) nclusters;
	Size		params_size = ex->params ? ex->params->size : 0;
	int			njobs = 0;
	int64		job_rows = 0;
	void	   *p;

	for (int c = 0; c < nclusters; c++)
		if (info[c].graph_offset != 0 && (jobs == NULL || jobs[c]))
		{
			njobs++;
			job_rows += info[c].count;
		}
	if (nworkers <= 0 || njobs < 2 || npieces < 1 || npieces > VS_PB_MAX_PIECES)
		return NULL;

	EnterParallelMode();
	pcxt = CreateParallelContext("vecstore", "VsParallelBuildMain", nworkers);
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(VsBuildShared));
	shm_toc_estimate_chunk(&pcxt->estimator, info_size);
	shm_toc_estimate_chunk(&pcxt->estimator, crcs_size);
	shm_toc_estimate_keys(&pcxt->estimator, 3);
	if (params_size > 0)
	{
		shm_toc_estimate_chunk(&pcxt->estimator, params_size);
		shm_toc_estimate_keys(&pcxt->estimator, 1);
	}
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		/* no dynamic shared memory to be had */
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return NULL;
	}

	shared = shm_toc_allocate(pcxt->toc, sizeof(VsBuildShared));
	memset(shared, 0, sizeof(VsBuildShared));
	shared->indexrelid = RelationGetRelid(index);
	shared->nclusters = nclusters;
	shared->dims = dims;
	shared->metric = ex->metric;
	shared->elem_size = ex->elem_size;
	shared->m = ex->m;
	shared->ef_construction = ex->ef_construction;
	shared->graph_threshold = ex->graph_threshold;
	shared->has_params = params_size > 0;
	shared->npieces = npieces;
	for (int q = 0; q < npieces; q++)
		shared->pieces[q] = pieces[q];
	shared->njobs = njobs;
	shared->job_rows = job_rows;
	SpinLockInit(&shared->mutex);
	ConditionVariableInit(&shared->cv);
	shm_toc_insert(pcxt->toc, VS_PB_KEY_SHARED, shared);

	/* the clusters not shared look like clusters without a graph there */
	sinfo = shm_toc_allocate(pcxt->toc, info_size);
	memcpy(sinfo, info, info_size);
	for (int c = 0; c < nclusters; c++)
	{
		if (jobs != NULL && !jobs[c])
			sinfo[c].graph_offset = 0;
		else if (sinfo[c].graph_offset != 0)
			(void) piece_index(shared, sinfo[c].piece);
	}
	shm_toc_insert(pcxt->toc, VS_PB_KEY_INFO, sinfo);
	p = shm_toc_allocate(pcxt->toc, crcs_size);
	memset(p, 0, crcs_size);
	shm_toc_insert(pcxt->toc, VS_PB_KEY_CRCS, p);
	if (params_size > 0)
	{
		p = shm_toc_allocate(pcxt->toc, params_size);
		memcpy(p, ex->params, params_size);
		shm_toc_insert(pcxt->toc, VS_PB_KEY_PARAMS, p);
	}

	LaunchParallelWorkers(pcxt);
	if (pcxt->nworkers_launched == 0)
	{
		WaitForParallelWorkersToFinish(pcxt);
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return NULL;
	}
	elog(DEBUG1, "vecstore: %d graphs of index \"%s\" shared with %d parallel workers",
		 njobs, RelationGetRelationName(index), pcxt->nworkers_launched);

	bp = palloc0(sizeof(VsBuildParallel));
	bp->pcxt = pcxt;
	bp->shared = shared;
	bp->info = sinfo;
	bp->report = report;
	bp->crcs = shm_toc_lookup(pcxt->toc, VS_PB_KEY_CRCS, false);
	bp->ex = *ex;
	bp->index = index;
	INSTR_TIME_SET_CURRENT(bp->start);
	return bp;
}

/*
 * VsBuildParallelReady - the leader has flushed the pages of the region of
 * pieces[piece] (as given to VsBuildParallelBegin) up to byte "bytes" and will not write them again (but for the
 * head's patch at the end, which no graph touches).  A negative "piece":
 * every region, whole.
 */
void
VsBuildParallelReady(VsBuildParallel *bp, int piece, uint64 bytes)
{
	SpinLockAcquire(&bp->shared->mutex);
	for (int q = 0; q < bp->shared->npieces; q++)
	{
		if (piece < 0)
			bp->shared->ready[q] = PG_UINT64_MAX;
		else if (q == piece)
			bp->shared->ready[q] = Max(bp->shared->ready[q], bytes);
	}
	SpinLockRelease(&bp->shared->mutex);
	ConditionVariableBroadcast(&bp->shared->cv);
}

/*
 * VsBuildParallelFinish - the leader, every cluster written: builds graphs
 * beside the workers until none is left (unless parallel_leader_participation
 * is off), waits for the last ones (the phase "building graphs in
 * parallel", rows of the graph clusters done / total), sets the CRCs of
 * the graph clusters in "info", and ends the parallel mode.
 */
void
VsBuildParallelFinish(VsBuildParallel *bp, VsClusterInfo *info)
{
	VsBuildShared *shared = bp->shared;
	instr_time	written,
				joined,
				finished;
	int			leader_done;

	INSTR_TIME_SET_CURRENT(written);
	VsBuildParallelReady(bp, -1, PG_UINT64_MAX);
	if (bp->report)
	{
		const int	params[] = {PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_CREATEIDX_TUPLES_TOTAL,
		PROGRESS_CREATEIDX_TUPLES_DONE};
		int64		values[3];

		values[0] = VS_PHASE_GRAPHS;
		values[1] = shared->job_rows;
		SpinLockAcquire(&shared->mutex);
		values[2] = shared->rows_done;
		SpinLockRelease(&shared->mutex);
		pgstat_progress_update_multi_param(3, params, values);
	}

	bp->ex.defer_graphs = false;
	SpinLockAcquire(&shared->mutex);
	leader_done = shared->done;
	SpinLockRelease(&shared->mutex);
	if (parallel_leader_participation)
	{
		take_jobs(bp->index, shared, &bp->ex, bp->info, bp->crcs, bp->report);
		INSTR_TIME_SET_CURRENT(joined);

		/* the workers' last graphs */
		ConditionVariablePrepareToSleep(&shared->cv);
		for (;;)
		{
			int			done;
			int64		rows_done;

			SpinLockAcquire(&shared->mutex);
			done = shared->done;
			rows_done = shared->rows_done;
			SpinLockRelease(&shared->mutex);
			if (bp->report)
				pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, rows_done);
			if (done >= shared->njobs)
				break;
			(void) ConditionVariableTimedSleep(&shared->cv, VS_PB_PROGRESS_MS,
											   WAIT_EVENT_PARALLEL_CREATE_INDEX_SCAN);
		}
		ConditionVariableCancelSleep();
		WaitForParallelWorkersToFinish(bp->pcxt);
	}
	else
	{
		/*
		 * parallel_leader_participation = off: the workers build every
		 * graph; the leader waits for them to exit (an error if one could
		 * not start), then builds what none took.
		 */
		INSTR_TIME_SET_CURRENT(joined);
		WaitForParallelWorkersToFinish(bp->pcxt);
		take_jobs(bp->index, shared, &bp->ex, bp->info, bp->crcs, bp->report);
	}
	if (shared->done != shared->njobs)
		elog(ERROR, "parallel build of index \"%s\" built %d graphs of %d",
			 RelationGetRelationName(bp->index), shared->done, shared->njobs);
	INSTR_TIME_SET_CURRENT(finished);
	INSTR_TIME_SUBTRACT(finished, joined);
	INSTR_TIME_SUBTRACT(joined, written);
	INSTR_TIME_SUBTRACT(written, bp->start);
	elog(DEBUG1, "vecstore parallel graphs: %d by %d workers while the leader wrote for %.1f ms; then the leader built graphs for %.1f ms, and waited %.1f ms for the workers' last",
		 leader_done, bp->pcxt->nworkers_launched, INSTR_TIME_GET_MILLISEC(written),
		 INSTR_TIME_GET_MILLISEC(joined), INSTR_TIME_GET_MILLISEC(finished));

	for (int c = 0; c < shared->nclusters; c++)
		if (bp->info[c].graph_offset != 0)
			info[c].crc = bp->crcs[c];

	DestroyParallelContext(bp->pcxt);
	ExitParallelMode();
	pfree(bp);
}

/*
 * VsParallelBuildMain - a parallel worker of CREATE INDEX: graphs until
 * none is left.
 */
void
VsParallelBuildMain(dsm_segment *seg, shm_toc *toc)
{
	VsBuildShared *shared = shm_toc_lookup(toc, VS_PB_KEY_SHARED, false);
	VsClusterInfo *info = shm_toc_lookup(toc, VS_PB_KEY_INFO, false);
	uint32	   *crcs = shm_toc_lookup(toc, VS_PB_KEY_CRCS, false);
	const VsQuantParams *params = NULL;
	VsClusterExtras ex;
	Relation	index;

	if (shared->has_params)
		params = shm_toc_lookup(toc, VS_PB_KEY_PARAMS, false);
	shared_extras(shared, params, &ex);

	/* the leader holds a stronger lock, in the same lock group */
	index = index_open(shared->indexrelid, RowExclusiveLock);
	take_jobs(index, shared, &ex, info, crcs, false);
	index_close(index, RowExclusiveLock);
}
