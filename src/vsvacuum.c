/*-------------------------------------------------------------------------
 *
 * vsvacuum.c
 *	  VACUUM for vecstore: mark removed rows in the deletion bitmap (sealed
 *	  rows) or on their delta page, before the heap may reuse their slots.
 *
 * Emits WAL: one GenericXLog record per bitmap or delta page that
 * changes.  Each page is exclusive-locked on its own while the callback
 * is asked about its rows; no other lock is held meanwhile, so inserts
 * and scans keep running.  Space is not reclaimed: marked rows keep their
 * bytes in the fork and the segment file, and scans skip them, until the
 * index is rebuilt (REINDEX).  Nothing seals a new generation yet; when
 * compaction does (DESIGN.md section 4), it will drop the marked rows.
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

/* walks the sealed rows in row-number order, cluster by cluster */
typedef struct SealedCursor
{
	Relation	index;
	VsMetaPage	meta;
	const char *body;			/* pinned mapping; may be replaced */
	int			nclusters;
	int			cluster;
	uint32		i;				/* row within the cluster */
} SealedCursor;

/*
 * cursor_next_tid - the TID of the next sealed row; false at the end.
 */
static bool
cursor_next_tid(SealedCursor *cur, ItemPointer tid)
{
	const VsClusterInfo *info = (const VsClusterInfo *) (cur->body + sizeof(VsSealedHeader));

	while (cur->cluster < cur->nclusters && cur->i >= info[cur->cluster].count)
	{
		cur->cluster++;
		cur->i = 0;
	}
	if (cur->cluster >= cur->nclusters)
		return false;
	if (cur->i == 0)
	{
		/* a new cluster: check it the first time this backend reads it */
		cur->body = VsSegmentCluster(cur->index, cur->meta, cur->body, cur->cluster);
		info = (const VsClusterInfo *) (cur->body + sizeof(VsSealedHeader));
	}
	memcpy(tid, cur->body + info[cur->cluster].tid_offset + sizeof(ItemPointerData) * cur->i,
		   sizeof(ItemPointerData));
	cur->i++;
	return true;
}

/*
 * vacuum_delta_chain - mark the removed rows of one cluster's delta chain,
 * starting at "head": each page exclusive-locked in turn (through "bas",
 * VACUUM's strategy), changed and WAL-logged through GenericXLog only when
 * a row on it is marked.
 */
static void
vacuum_delta_chain(Relation index, BlockNumber head, IndexBulkDeleteResult *stats,
				   IndexBulkDeleteCallback callback, void *callback_state,
				   BufferAccessStrategy bas)
{
	VsDeltaChain chain;

	VsDeltaChainBegin(&chain, index, head, BUFFER_LOCK_EXCLUSIVE, bas, 0);
	while (VsDeltaChainNext(&chain))
	{
		GenericXLogState *state = GenericXLogStart(index);
		Page		page = GenericXLogRegisterBuffer(state, chain.buf, 0);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
		bool		changed = false;

		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
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
		if (changed)
			GenericXLogFinish(state);
		else
			GenericXLogAbort(state);
	}
}

/*
 * vsbulkdelete - mark the rows "callback" names as removed, so that scans
 * skip them before the heap reuses their slots.
 *
 * Caller (VACUUM) holds RowExclusiveLock on the index, so inserts and
 * scans run meanwhile.  Sealed rows: each bitmap page of the deletion
 * bitmap is exclusive-locked in turn (read through info->strategy) while
 * the callback is asked about the rows it covers, whose TIDs come from the
 * segment file (mapped and pinned for the call, each cluster checked
 * against its CRC as it is reached).  Delta rows: each cluster's chain,
 * one exclusive-locked page at a time (vacuum_delta_chain).  No two page
 * locks are held at once.  A page changes, and is WAL-logged (one
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
	SealedCursor cur;
	uint64		row = 0;

	if (stats == NULL)
		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));

	meta = VsGetMetaCache(index)->meta;
	cur.index = index;
	cur.meta = &meta;
	cur.body = VsSegmentBody(index, &meta);
	cur.nclusters = meta.nclusters;
	cur.cluster = 0;
	cur.i = 0;

	/* sealed rows: one bitmap page at a time */
	for (BlockNumber p = 0; p < meta.bitmap.nblocks; p++)
	{
		BlockNumber blkno = meta.bitmap.start + p;
		uint64		end = Min(meta.sealed_rows, (p + 1) * ROWS_PER_BITMAP_PAGE);
		Buffer		buf;
		GenericXLogState *state;
		uint8	   *bits;
		bool		changed = false;

		vacuum_delay_point();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, info->strategy);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(buf), blkno, VS_PAGE_BLOB);
		state = GenericXLogStart(index);
		bits = (uint8 *) PageGetContents(GenericXLogRegisterBuffer(state, buf, 0));
		for (; row < end; row++)
		{
			uint64		bit = row - p * ROWS_PER_BITMAP_PAGE;
			ItemPointerData tid;

			if (!cursor_next_tid(&cur, &tid))
				elog(ERROR, "index \"%s\" has fewer sealed rows than its metapage says",
					 RelationGetRelationName(index));
			if (bits[bit / 8] & (1 << (bit % 8)))
				continue;
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
			GenericXLogFinish(state);
		else
			GenericXLogAbort(state);
		UnlockReleaseBuffer(buf);
	}

	/* delta rows, cluster by cluster */
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		VsDirEntry	entry;

		VsBlobRead(index, &meta.directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry),
				   info->strategy);
		vacuum_delta_chain(index, entry.delta_head, stats, callback, callback_state,
						   info->strategy);
	}

	VsSegmentRelease(cur.body);
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
	uint64		remaining = (meta->sealed_rows + 7) / 8;

	*sealed_dead = 0;
	*delta_live = 0;
	*delta_dead = 0;

	for (BlockNumber p = 0; p < meta->bitmap.nblocks && remaining > 0; p++)
	{
		PGAlignedBlock bits;
		uint64		n = Min(remaining, (uint64) VS_BLOB_PAYLOAD);

		VsBlobRead(index, &meta->bitmap, (uint64) p * VS_BLOB_PAYLOAD, bits.data, n, strategy);
		*sealed_dead += pg_popcount(bits.data, n);
		remaining -= n;
	}

	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		VsDirEntry	entry;
		VsDeltaChain chain;

		VsBlobRead(index, &meta->directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry),
				   strategy);
		VsDeltaChainBegin(&chain, index, entry.delta_head, BUFFER_LOCK_SHARE, strategy, 0);
		while (VsDeltaChainNext(&chain))
		{
			Page		page = BufferGetPage(chain.buf);
			OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
			{
				VsDeltaTuple tup = (VsDeltaTuple) PageGetItem(page, PageGetItemId(page, off));

				if (tup->flags & VS_DELTA_DEAD)
					(*delta_dead)++;
				else
					(*delta_live)++;
			}
		}
	}
}

/*
 * vsvacuumcleanup - statistics after VACUUM (or instead of bulkdelete when
 * nothing was removed).
 */
IndexBulkDeleteResult *
vsvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats)
{
	if (info->analyze_only)
		return stats;

	if (stats == NULL)
	{
		VsMetaPageData meta = VsGetMetaCache(info->index)->meta;
		uint64		sealed_dead,
					delta_live,
					delta_dead;

		stats = (IndexBulkDeleteResult *) palloc0(sizeof(IndexBulkDeleteResult));
		VsCountRows(info->index, &meta, info->strategy, &sealed_dead, &delta_live, &delta_dead);
		stats->num_index_tuples = (double) (meta.sealed_rows - sealed_dead + delta_live);
	}
	stats->num_pages = RelationGetNumberOfBlocks(info->index);
	return stats;
}
