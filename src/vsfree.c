/*-------------------------------------------------------------------------
 *
 * vsfree.c
 *	  The fork's free space: pages a compaction no longer needs, kept until
 *	  no scan can read them, then reused by later compactions.
 *
 * A compaction replaces pieces of sealed data and folds delta rows into
 * sealed rows; the pages of a dropped piece and the delta pages before a
 * cluster's new fold position are no longer part of the new generation,
 * but a scan that began on the one before may still read them (a piece
 * when it rebuilds a missing segment file, the delta pages always).  So
 * they are "retired" first, in the free list (a region of VsFreeExtent
 * entries the metapage points at, rewritten by each compaction), with the
 * transaction horizon at the switch; once the horizon has passed it
 * (GlobalVisCheckRemovableFullXid: no snapshot that was running then is
 * left, as nbtree recycles its deleted pages), a later compaction reuses
 * them before it extends the fork.
 *
 * The stamp can only be taken after the switch (a scan whose snapshot
 * predates the switch must hold it back), but the list is written before
 * it: entries are written as pending and stamped in place right after the
 * switch (VsFreeListStamp); a crash in between leaves them pending, and
 * the next compaction stamps them (it runs after that switch, so its
 * horizon is later still).
 *
 * Retired delta pages are a chain's front, from its head to the page a
 * fold stopped in.  When they ripen, the cluster's directory entry is
 * moved to that page first (the chain is walked from its head by
 * vecstore_verify and by scans of generations that folded nothing), and
 * the rows left behind are counted in the entry, so its counts still add
 * up; then the pages are marked free (VS_PAGE_FREE) and given to the free
 * space map, where inserts find them (VsNewDeltaBuffer).  The page a
 * chain's tail is on is never retired.  The runs of blocks the list keeps
 * (pieces) are for compactions, which need them contiguous.
 *
 * Not reused: old deletion bitmaps, centroids and routing graphs (small;
 * a scan of an old generation on a standby reads them with no way for the
 * primary to know, and reused bytes there would give wrong answers rather
 * than an error).  On a standby, a query that runs across the reuse of a
 * page it still reads fails with an error about an unexpected page type
 * or checksum; hot_standby_feedback = on lets the primary's horizon
 * include the standby's queries, as for any index.
 *
 * IDENTIFICATION
 *	  src/vsfree.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "access/transam.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/indexfsm.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "vsam.h"

/* VsFreeExtent.stamp: reusable now; retired, not yet stamped */
#define STAMP_FREE				UINT64CONST(0)
#define STAMP_PENDING			UINT64CONST(1)

static void
add_entry(VsFreeList *fl, const VsFreeExtent *e)
{
	if (fl->n == fl->cap)
	{
		fl->cap = Max(16, fl->cap * 2);
		fl->ext = fl->ext ? repalloc_huge(fl->ext, sizeof(VsFreeExtent) * fl->cap) :
			palloc_extended(sizeof(VsFreeExtent) * fl->cap, MCXT_ALLOC_HUGE);
	}
	fl->ext[fl->n++] = *e;
}

/*
 * VsFreeListLoad - the index's free list, from the fork.
 */
void
VsFreeListLoad(Relation index, VsMetaPage meta, VsFreeList *fl, BufferAccessStrategy bas)
{
	memset(fl, 0, sizeof(VsFreeList));
	if (meta->freelist.nbytes == 0)
		return;
	if (meta->freelist.nbytes % sizeof(VsFreeExtent) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a free list of " UINT64_FORMAT " bytes",
						RelationGetRelationName(index), meta->freelist.nbytes),
				 errhint("Please REINDEX it.")));
	fl->n = fl->cap = (int) (meta->freelist.nbytes / sizeof(VsFreeExtent));
	fl->ext = palloc_extended(meta->freelist.nbytes, MCXT_ALLOC_HUGE);
	VsBlobRead(index, &meta->freelist, 0, fl->ext, meta->freelist.nbytes, bas);
}

/*
 * ripen_chain - the retired front of a delta chain has ripened: move the
 * cluster's directory entry to the page the front ends at, then give the
 * front's pages to the free space map (*recorded counts them).  False
 * (nothing freed, with a WARNING) when the chain does not lead there.
 */
static bool
ripen_chain(Relation index, VsMetaPage meta, const VsFreeExtent *e, BlockNumber *recorded)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	BlockNumber *pages = palloc(sizeof(BlockNumber) * 64);
	int			npages = 0,
				maxpages = 64;
	uint32		rows = 0;
	BlockNumber blk = e->start;
	uint32		poff;
	BlockNumber dirblk;
	Buffer		buf;
	GenericXLogState *state;
	VsDirEntry *entry;

	/*
	 * Only a front still at the head of its chain: a compaction that moved
	 * the head and gave the pages away, then failed before it published
	 * its free list, leaves the entry behind, and those pages may be in
	 * another chain by now.
	 */
	dirblk = VsBlobBlock(&meta->directory, (uint64) e->cluster * sizeof(VsDirEntry), &poff);
	buf = ReadBuffer(index, dirblk);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	VsCheckPage(index, BufferGetPage(buf), dirblk, VS_PAGE_BLOB);
	entry = (VsDirEntry *) (PageGetContents(BufferGetPage(buf)) + poff);
	blk = entry->delta_head;
	UnlockReleaseBuffer(buf);
	if (blk == e->new_head)
	{
		pfree(pages);
		return true;			/* done before */
	}
	if (blk != e->start)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("delta chain of cluster %u of index \"%s\" starts at block %u, not %u; its pages are not reused",
						e->cluster, RelationGetRelationName(index), blk, e->start)));
		pfree(pages);
		return false;
	}

	/* the front, page by page (nothing changes it: no scan can read it) */
	while (blk != e->new_head)
	{
		Page		page;

		if (!BlockNumberIsValid(blk) || blk >= nblocks || npages >= (int) nblocks)
		{
			ereport(WARNING,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("delta chain of cluster %u of index \"%s\" does not lead from block %u to %u; its pages are not reused",
							e->cluster, RelationGetRelationName(index), e->start, e->new_head)));
			pfree(pages);
			return false;
		}
		buf = ReadBuffer(index, blk);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		VsCheckPage(index, page, blk, VS_PAGE_DELTA);
		rows += PageGetMaxOffsetNumber(page);
		if (npages == maxpages)
		{
			maxpages *= 2;
			pages = repalloc(pages, sizeof(BlockNumber) * maxpages);
		}
		pages[npages++] = blk;
		blk = VsPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}

	/* the directory entry moves past it */
	buf = ReadBuffer(index, dirblk);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	VsCheckPage(index, BufferGetPage(buf), dirblk, VS_PAGE_BLOB);
	state = GenericXLogStart(index);
	entry = (VsDirEntry *) (PageGetContents(GenericXLogRegisterBuffer(state, buf, 0)) + poff);
	if (entry->delta_head != e->start)
		elog(ERROR, "delta chain of cluster %u of index \"%s\" moved during a compaction",
			 e->cluster, RelationGetRelationName(index));
	entry->delta_head = e->new_head;
	entry->delta_skipped += rows;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);

	/*
	 * The pages themselves go to inserts, which take one page at a time:
	 * marked free (so a page the free space map hands out twice, or after
	 * a crash, is recognised) and recorded in the free space map.
	 */
	for (int i = 0; i < npages; i++)
	{
		buf = ReadBuffer(index, pages[i]);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		state = GenericXLogStart(index);
		VsPageGetOpaque(GenericXLogRegisterBuffer(state, buf, 0))->type = VS_PAGE_FREE;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		RecordFreeIndexPage(index, pages[i]);
	}
	*recorded += npages;
	pfree(pages);
	return true;
}

static int
extent_cmp(const void *a, const void *b)
{
	const VsFreeExtent *x = a;
	const VsFreeExtent *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

/*
 * VsFreeListRipen - at the start of a compaction (which runs after the
 * switch of the one that wrote the list): stamp what is still pending,
 * and make reusable what no scan can read any more; free extents are
 * sorted and merged.
 */
void
VsFreeListRipen(Relation index, VsMetaPage meta, VsFreeList *fl)
{
	VsFreeList	out;
	FullTransactionId now = ReadNextFullTransactionId();
	BlockNumber recorded = 0;

	memset(&out, 0, sizeof(out));
	for (int i = 0; i < fl->n; i++)
	{
		VsFreeExtent e = fl->ext[i];

		if (e.stamp == STAMP_PENDING)
			e.stamp = U64FromFullTransactionId(now);
		if (e.stamp != STAMP_FREE &&
			GlobalVisCheckRemovableFullXid(NULL, FullTransactionIdFromU64(e.stamp)))
		{
			if (e.cluster != VS_NO_CLUSTER)
			{
				ripen_chain(index, meta, &e, &recorded);
				continue;
			}
			e.stamp = STAMP_FREE;
		}
		add_entry(&out, &e);
	}

	/*
	 * Free extents first, by block, merged; the retired ones after, in the
	 * order they were retired (a chain's fronts must go in that order).
	 */
	fl->n = 0;
	{
		VsFreeList	freed;

		memset(&freed, 0, sizeof(freed));
		for (int i = 0; i < out.n; i++)
		{
			if (out.ext[i].stamp == STAMP_FREE)
				add_entry(&freed, &out.ext[i]);
		}
		if (freed.n > 1)
			qsort(freed.ext, freed.n, sizeof(VsFreeExtent), extent_cmp);
		for (int i = 0; i < freed.n; i++)
		{
			if (fl->n > 0 && fl->ext[fl->n - 1].start + fl->ext[fl->n - 1].nblocks == freed.ext[i].start)
				fl->ext[fl->n - 1].nblocks += freed.ext[i].nblocks;
			else
				add_entry(fl, &freed.ext[i]);
		}
		for (int i = 0; i < out.n; i++)
		{
			if (out.ext[i].stamp != STAMP_FREE)
				add_entry(fl, &out.ext[i]);
		}
		if (freed.ext)
			pfree(freed.ext);
	}
	if (out.ext)
		pfree(out.ext);
	if (recorded > 0)
		IndexFreeSpaceMapVacuum(index);
}

/*
 * VsNewDeltaBuffer - a page for a delta chain, exclusive-locked: one the
 * free space map offers (a folded chain's page, marked free), else a new
 * one at the end of the fork.  The caller initialises it.
 */
Buffer
VsNewDeltaBuffer(Relation index)
{
	for (;;)
	{
		BlockNumber blk = GetFreeIndexPage(index);
		Buffer		buf;

		if (blk == InvalidBlockNumber)
			break;
		buf = ReadBuffer(index, blk);
		/* another backend may have taken it; never wait for a page lock */
		if (ConditionalLockBuffer(buf))
		{
			Page		page = BufferGetPage(buf);

			if (!PageIsNew(page) && PageGetSpecialSize(page) == MAXALIGN(sizeof(VsPageOpaqueData)) &&
				VsPageGetOpaque(page)->page_id == VS_PAGE_ID &&
				VsPageGetOpaque(page)->type == VS_PAGE_FREE)
				return buf;
			LockBuffer(buf, BUFFER_LOCK_UNLOCK);
		}
		ReleaseBuffer(buf);
	}
	return VsNewBuffer(index, MAIN_FORKNUM);
}

/*
 * VsFreeListAllocate - "n" consecutive blocks for a new region: the first
 * free extent large enough, else the end of the fork (VsAllocateBlocks).
 */
BlockNumber
VsFreeListAllocate(Relation index, VsFreeList *fl, BlockNumber n)
{
	for (int i = 0; i < fl->n; i++)
	{
		VsFreeExtent *e = &fl->ext[i];

		if (e->stamp == STAMP_FREE && e->cluster == VS_NO_CLUSTER && e->nblocks >= n && n > 0)
		{
			BlockNumber start = e->start;

			e->start += n;
			e->nblocks -= n;
			fl->reused += n;
			return start;
		}
	}
	return VsAllocateBlocks(index, n);
}

/*
 * VsFreeListRetire - the blocks of a region the new generation does not
 * read, to be reused once no scan can read them.
 */
void
VsFreeListRetire(VsFreeList *fl, const VsRegion *region)
{
	VsFreeExtent e;

	if (region->nblocks == 0)
		return;
	e.start = region->start;
	e.nblocks = region->nblocks;
	e.cluster = VS_NO_CLUSTER;
	e.new_head = InvalidBlockNumber;
	e.stamp = STAMP_PENDING;
	e.pad = 0;
	add_entry(fl, &e);
}

/*
 * VsFreeListRetireChain - the front of cluster "cluster"'s delta chain,
 * from "start" (its head once earlier fronts have gone) up to the page
 * "new_head", whose rows are all folded into sealed rows.
 */
void
VsFreeListRetireChain(VsFreeList *fl, uint32 cluster, BlockNumber start, BlockNumber new_head)
{
	VsFreeExtent e;

	if (!BlockNumberIsValid(start) || start == new_head)
		return;
	e.start = start;
	e.nblocks = 0;
	e.cluster = cluster;
	e.new_head = new_head;
	e.stamp = STAMP_PENDING;
	e.pad = 0;
	add_entry(fl, &e);
}

/*
 * VsFreeListWrite - write the list (empty extents dropped) as a region,
 * into blocks it allocates from itself; the caller WAL-logs it and retires
 * the previous one.
 */
VsRegion
VsFreeListWrite(Relation index, VsFreeList *fl)
{
	VsBlobWriter w;
	BlockNumber nblocks;
	VsRegion	empty = {0, 0, 0};
	int			n = 0;

	for (int i = 0; i < fl->n; i++)
	{
		if (fl->ext[i].nblocks > 0 || fl->ext[i].cluster != VS_NO_CLUSTER)
			fl->ext[n++] = fl->ext[i];
	}
	fl->n = n;
	if (n == 0)
		return empty;
	/* one entry more at most: taking blocks never adds one */
	nblocks = (BlockNumber) ((sizeof(VsFreeExtent) * (uint64) n + VS_BLOB_PAYLOAD - 1) / VS_BLOB_PAYLOAD);
	VsBlobBeginIn(&w, index, VsFreeListAllocate(index, fl, nblocks), nblocks);
	n = 0;
	for (int i = 0; i < fl->n; i++)
	{
		if (fl->ext[i].nblocks > 0 || fl->ext[i].cluster != VS_NO_CLUSTER)
			fl->ext[n++] = fl->ext[i];
	}
	fl->n = n;
	VsBlobWrite(&w, fl->ext, sizeof(VsFreeExtent) * n);
	return VsBlobEnd(&w);
}

/*
 * VsFreeListStamp - right after the switch to "meta"'s generation: stamp
 * its free list's pending entries with the transaction horizon now, in
 * place (one GenericXLog record per page).
 */
void
VsFreeListStamp(Relation index, VsMetaPage meta)
{
	uint64		stamp = U64FromFullTransactionId(ReadNextFullTransactionId());
	uint64		n = meta->freelist.nbytes / sizeof(VsFreeExtent);
	uint64		per_page = VS_BLOB_PAYLOAD / sizeof(VsFreeExtent);

	StaticAssertStmt(VS_BLOB_PAYLOAD % sizeof(VsFreeExtent) == 0,
					 "free list entries must not straddle pages");
	for (BlockNumber p = 0; p < meta->freelist.nblocks; p++)
	{
		BlockNumber blk = meta->freelist.start + p;
		Buffer		buf = ReadBuffer(index, blk);
		GenericXLogState *state;
		VsFreeExtent *ext;
		bool		changed = false;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(buf), blk, VS_PAGE_BLOB);
		state = GenericXLogStart(index);
		ext = (VsFreeExtent *) PageGetContents(GenericXLogRegisterBuffer(state, buf, 0));
		for (uint64 i = p * per_page; i < Min(n, (p + 1) * per_page); i++)
		{
			if (ext[i - p * per_page].stamp == STAMP_PENDING)
			{
				ext[i - p * per_page].stamp = stamp;
				changed = true;
			}
		}
		if (changed)
			GenericXLogFinish(state);
		else
			GenericXLogAbort(state);
		UnlockReleaseBuffer(buf);
	}
}

/*
 * VsFreeListBlocks - blocks free now, and blocks retired and not yet
 * reusable, in a list.
 */
void
VsFreeListBlocks(const VsFreeList *fl, uint64 *free_blocks, uint64 *retired_blocks)
{
	*free_blocks = 0;
	*retired_blocks = 0;
	for (int i = 0; i < fl->n; i++)
	{
		if (fl->ext[i].stamp == STAMP_FREE)
			*free_blocks += fl->ext[i].nblocks;
		else
			*retired_blocks += fl->ext[i].nblocks;
	}
}
