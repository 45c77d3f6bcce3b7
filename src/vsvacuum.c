/*-------------------------------------------------------------------------
 *
 * vsvacuum.c
 *	  VACUUM for vecstore: mark removed rows in the deletion bitmap (sealed
 *	  rows) or on their delta page, before the heap may reuse their slots.
 *
 * Emits WAL: one GenericXLog record per bitmap or delta page that
 * changes.  Each page is exclusive-locked on its own while the callback
 * is asked about its rows; no other lock is held meanwhile, so inserts
 * and scans keep running.  Marked rows keep their bytes, and scans skip
 * them, until a compaction re-seals their cluster without them
 * (vscompact.c): vsvacuumcleanup runs one for the clusters past the
 * index's compaction_threshold.
 *
 * IDENTIFICATION
 *	  src/vsvacuum.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"

#include "vsam.h"

/* sealed rows whose deletion bits share one bitmap page */
#define ROWS_PER_BITMAP_PAGE	((uint64) VS_BLOB_PAYLOAD * 8)

/*
 * vacuum_delta_chain - mark the removed rows of one cluster's delta chain,
 * starting at "head": each page exclusive-locked in turn (through "bas",
 * VACUUM's strategy), changed and WAL-logged through GenericXLog only when
 * a row on it is marked.
 */
static void
vacuum_delta_chain(Relation index, const VsDirEntry *entry, const VsClusterInfo *info,
				   IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback,
				   void *callback_state, BufferAccessStrategy bas)
{
	VsDeltaChain chain;

	VsDeltaChainBeginRows(&chain, index, entry, info, BUFFER_LOCK_EXCLUSIVE, bas, 0, 0);
	while (VsDeltaChainNext(&chain))
	{
		GenericXLogState *state = GenericXLogStart(index);
		Page		page = GenericXLogRegisterBuffer(state, chain.buf, 0);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
		bool		changed = false;

		for (OffsetNumber off = chain.first; off <= maxoff; off = OffsetNumberNext(off))
		{
			VsDeltaTuple tup = (VsDeltaTuple) PageGetItem(page, PageGetItemId(page, off));

			if (tup->flags & VS_DELTA_DEAD)
				continue;
			if (callback(&tup->tid, callback_state))
			{
				tup->flags |= VS_DELTA_DEAD;
				stats->tuples_removed += 1;
				changed = true;
			}
			else
				stats->num_index_tuples += 1;
		}
		/* the flags of rows are not under the page's CRC: no VsPageSeal */
		if (changed)
			GenericXLogFinish(state);
		else
			GenericXLogAbort(state);
	}
}

/*
 * vacuum_sealed - mark the removed sealed rows of cluster "c" (pinned
 * mapping "body"; returns it, or the one VsSegmentCluster replaced it
 * with): its deletion bits, one bitmap page at a time.
 */
static const char *
vacuum_sealed(Relation index, VsMetaPage meta, const char *body, uint32 c,
			  IndexBulkDeleteResult *stats, IndexBulkDeleteCallback callback,
			  void *callback_state, BufferAccessStrategy bas)
{
	const VsClusterInfo *info;
	const ItemPointerData *tids;
	uint64		row;
	uint64		end;
	uint32		i = 0;

	/* check the cluster the first time this backend reads it */
	body = VsSegmentCluster(index, meta, body, c);
	info = VsHeadClusters(body) + c;
	tids = (const ItemPointerData *) (body + info->tid_offset);
	row = info->first_row;
	end = row + info->count;
	while (row < end)
	{
		BlockNumber p = (BlockNumber) (row / ROWS_PER_BITMAP_PAGE);
		BlockNumber blkno = meta->bitmap.start + p;
		uint64		pend = Min(end, ((uint64) p + 1) * ROWS_PER_BITMAP_PAGE);
		Buffer		buf;
		GenericXLogState *state;
		Page		page;
		uint8	   *bits;
		bool		changed = false;

		if (p >= meta->bitmap.nblocks)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has rows past the end of its deletion bitmap",
							RelationGetRelationName(index)),
					 errhint("Please REINDEX it.")));
		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(buf), blkno, VS_PAGE_BLOB);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		bits = (uint8 *) PageGetContents(page);
		for (; row < pend; row++, i++)
		{
			uint64		bit = row - (uint64) p * ROWS_PER_BITMAP_PAGE;
			ItemPointerData tid;

			if (bits[bit / 8] & (1 << (bit % 8)))
				continue;
			memcpy(&tid, &tids[i], sizeof(ItemPointerData));
			if (callback(&tid, callback_state))
			{
				bits[bit / 8] |= (1 << (bit % 8));
				stats->tuples_removed += 1;
				changed = true;
			}
			else
				stats->num_index_tuples += 1;
		}
		if (changed)
		{
			VsPageSeal(page);
			GenericXLogFinish(state);
		}
		else
			GenericXLogAbort(state);
		UnlockReleaseBuffer(buf);
	}
	return body;
}

/* vsbulkdelete's pass over the clusters, for VsMappedRun */
typedef struct BulkDeleteCall
{
	IndexVacuumInfo *info;
	IndexBulkDeleteResult *stats;
	IndexBulkDeleteCallback callback;
	void	   *callback_state;
	VsMetaPage	meta;
	const char *body;			/* pinned; VsSegmentCluster may replace it */
} BulkDeleteCall;

/* cluster by cluster: sealed rows, then delta rows */
static void
bulkdelete_call(void *arg)
{
	BulkDeleteCall *call = arg;
	Relation	index = call->info->index;

	for (uint32 c = 0; c < call->meta->nclusters; c++)
	{
		VsDirEntry	entry;

		call->body = vacuum_sealed(index, call->meta, call->body, c, call->stats, call->callback,
								   call->callback_state, call->info->strategy);
		VsBlobRead(index, &call->meta->directory, (uint64) c * sizeof(VsDirEntry), &entry,
				   sizeof(entry), call->info->strategy);
		vacuum_delta_chain(index, &entry, VsHeadClusters(call->body) + c, call->stats,
						   call->callback, call->callback_state, call->info->strategy);
	}
}

/*
 * vsbulkdelete - mark the rows "callback" names as removed, so that scans
 * skip them before the heap reuses their slots.
 *
 * Caller (VACUUM) holds RowExclusiveLock on the index, so inserts and
 * scans run meanwhile, and ShareUpdateExclusiveLock on the table, so no
 * compaction does.  Cluster by cluster: its sealed rows, whose deletion
 * bits (a cluster's rows have consecutive bits) are on one or two bitmap
 * pages, each exclusive-locked in turn (read through info->strategy)
 * while the callback is asked about the rows it covers, whose TIDs come
 * from the segment files (mapped and pinned for the call, each cluster
 * checked against its CRC as it is reached) (vacuum_sealed); then its
 * delta rows from the generation's fold position, one exclusive-locked
 * page at a time (vacuum_delta_chain).  No two page locks are held at
 * once.  A page changes, and is WAL-logged (one
 * GenericXLog record), only when one of its rows is newly marked; rows
 * marked before are not asked about again and are not counted.
 *
 * Returns "stats" (allocated when NULL) with tuples_removed and
 * num_index_tuples added to, and num_pages set.
 */
IndexBulkDeleteResult *
vsbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
			 IndexBulkDeleteCallback callback, void *callback_state)
{
	Relation	index = info->index;
	VsMetaPageData meta;
	BulkDeleteCall call;

	if (stats == NULL)
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));

	meta = VsGetMetaCache(index)->meta;

	call.info = info;
	call.stats = stats;
	call.callback = callback;
	call.callback_state = callback_state;
	call.meta = &meta;
	call.body = VsSegmentBody(index, &meta);
	if (!VsMappedRun(bulkdelete_call, &call))
		VsSegmentFaulted(index);
	VsSegmentRelease(call.body);
	stats->num_pages = RelationGetNumberOfBlocks(index);
	return stats;
}

/*
 * VsCountRows - live and removed rows, sealed and delta (for statistics
 * and vecstore_index_info).  Reads every bitmap and delta page, share-
 * locked one at a time, through "strategy" (a whole-index pass: VACUUM's
 * own, or a bulk-read ring).
 */
void
VsCountRows(Relation index, VsMetaPage meta, BufferAccessStrategy strategy,
			uint64 *sealed_dead, uint64 *delta_live, uint64 *delta_dead)
{
	char	   *head = VsSealedHeadOrError(index, meta, strategy);
	const VsClusterInfo *info;

	info = VsHeadClusters(head);
	*sealed_dead = 0;
	*delta_live = 0;
	*delta_dead = 0;

	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		VsDirEntry	entry;
		VsDeltaChain chain;
		VsDeltaTuple tup;

		*sealed_dead += VsCountDeleted(index, meta, &info[c], strategy);
		VsBlobRead(index, &meta->directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry),
				   strategy);
		VsDeltaChainBeginRows(&chain, index, &entry, &info[c], BUFFER_LOCK_SHARE, strategy, 0, 0);
		while ((tup = VsDeltaChainNextRow(&chain)) != NULL)
		{
			if (tup->flags & VS_DELTA_DEAD)
				(*delta_dead)++;
			else
				(*delta_live)++;
		}
	}
	pfree(head);
}

/*
 * VsCountDeleted - how many of a cluster's sealed rows the deletion bitmap
 * marks.
 */
uint64
VsCountDeleted(Relation index, VsMetaPage meta, const VsClusterInfo *info,
			   BufferAccessStrategy strategy)
{
	uint32		shift;
	uint8	   *bits = VsDeletionBits(index, meta, info, strategy, &shift);
	uint64		dead = 0;

	for (uint64 i = 0; i < info->count; i++)
	{
		if (VsRowDeleted(bits, shift, i))
			dead++;
	}
	if (bits)
		pfree(bits);
	return dead;
}

/*
 * vsvacuumcleanup - after VACUUM (or instead of bulkdelete when nothing
 * was removed): re-seal the clusters whose delta and removed rows passed
 * the index's compaction_threshold (vscompact.c; VACUUM holds the locks a
 * compaction needs), then the statistics.
 */
IndexBulkDeleteResult *
vsvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	double		threshold;
	VsMetaPageData meta;
	uint64		sealed_dead,
				delta_live,
				delta_dead;

	if (info->analyze_only)
		return stats;

	threshold = VsGetCompactionThreshold(info->index);
	if (threshold > 0)
	{
		VsCompactResult res;

		VsCompact(info->index, threshold, false, info->strategy, &res);
		if (res.clusters > 0)
			ereport(info->message_level,
					(errmsg("index \"%s\": compacted %d clusters, " INT64_FORMAT " new rows folded, " INT64_FORMAT " removed rows dropped, %d split, %d merged, " INT64_FORMAT " rows moved to a nearer centroid's cluster",
							RelationGetRelationName(info->index), res.clusters, res.rows_folded,
							res.rows_removed, res.splits, res.merges, res.rows_moved)));
	}

	if (stats == NULL)
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));
	meta = VsGetMetaCache(info->index)->meta;
	VsCountRows(info->index, &meta, info->strategy, &sealed_dead, &delta_live, &delta_dead);
	stats->num_index_tuples = (double) (meta.sealed_rows - sealed_dead + delta_live);
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	return stats;
}
