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
 * Giving space back (VsFreeReclaim, after a compaction): under a brief
 * AccessExclusiveLock, taken only when no one uses the index, everything
 * retired ripens at once, fully folded chains go, the free space map's
 * pages join the list's runs, and the end of the fork is truncated; pieces
 * are moved down into earlier runs while much of the fork is free.  Not
 * when the table's vacuum_truncate is off (truncation_allowed).
 *
 * Not reused: old centroids and routing graphs written by a compaction
 * (small); those that a truncation moves down are.  Old deletion bitmaps
 * are (vscompact.c retires them: they grow with the rows).
 *
 * Standbys.  The horizon above is the primary's: a standby's query that
 * began on a generation may still read its pages when the primary reuses
 * them, and would then read a page of another kind (an error) or, worse,
 * a sound page of the same kind (a bitmap's blob page, a delta page) with
 * other bits or rows.  GenericXLog records carry no horizon, so before
 * anything retired at horizon H is reused, a compaction writes a recovery
 * conflict point for H (log_reuse_conflict): a standby cancels its queries
 * whose snapshots are as old as H (after max_standby_streaming_delay), as
 * it does for a btree's recycled pages.  What ripens under
 * AccessExclusiveLock needs none: the lock itself is replayed and
 * conflicts with every standby query using the index (hence the table's
 * vacuum_truncate = off turns it off, truncation_allowed).
 * hot_standby_feedback = on lets the primary's horizon include the
 * standby's queries, so that they are not cancelled.
 *
 * IDENTIFICATION
 *	  src/vsfree.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "access/genam.h"
#include "access/nbtxlog.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "catalog/storage.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/indexfsm.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
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
 * add_extent - add_entry of an extent given by its fields.
 */
static void
add_extent(VsFreeList *fl, BlockNumber start, BlockNumber nblocks, uint32 cluster,
		   BlockNumber new_head, uint64 stamp)
{
	VsFreeExtent e;

	memset(&e, 0, sizeof(e));
	e.start = start;
	e.nblocks = nblocks;
	e.cluster = cluster;
	e.new_head = new_head;
	e.stamp = stamp;
	add_entry(fl, &e);
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
 * set_page_type - make the page in "buf" (exclusive-locked) one of type
 * "type", in one WAL record.
 */
static void
set_page_type(Relation index, Buffer buf, uint16 type)
{
	GenericXLogState *state = GenericXLogStart(index);
	Page		page = GenericXLogRegisterBuffer(state, buf, 0);

	VsPageGetOpaque(page)->type = type;
	VsPageSeal(page);
	GenericXLogFinish(state);
}

/*
 * free_pages - delta pages cut from their chain go to inserts, which take
 * one page at a time: marked free (so that a page the free space map hands
 * out twice, or after a crash, is recognised) and recorded in the free
 * space map.
 */
static void
free_pages(Relation index, const BlockNumber *pages, int npages)
{
	for (int i = 0; i < npages; i++)
	{
		Buffer		buf = ReadBuffer(index, pages[i]);

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		set_page_type(index, buf, VS_PAGE_FREE);
		UnlockReleaseBuffer(buf);
		RecordFreeIndexPage(index, pages[i]);
	}
}

/*
 * chain_pages - the pages of a delta chain from block "from" up to, not
 * including, block "to" (InvalidBlockNumber: to the chain's end), into
 * *pages (palloc'd), and the rows on them.  False when the walk leaves
 * the fork, ends before "to", or is longer than the fork (a loop).
 */
static bool
chain_pages(Relation index, BlockNumber from, BlockNumber to, BufferAccessStrategy bas,
			BlockNumber **pages, int *npages, uint32 *rows)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	int			maxpages = 64;

	*pages = palloc(sizeof(BlockNumber) * maxpages);
	*npages = 0;
	*rows = 0;
	for (BlockNumber blk = from; blk != to;)
	{
		Buffer		buf;
		Page		page;

		if (!BlockNumberIsValid(blk) || blk >= nblocks || *npages >= (int) nblocks)
			return false;
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, bas);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		VsCheckPage(index, page, blk, VS_PAGE_DELTA);
		*rows += PageGetMaxOffsetNumber(page);
		if (*npages == maxpages)
		{
			maxpages *= 2;
			*pages = repalloc(*pages, sizeof(BlockNumber) * maxpages);
		}
		(*pages)[(*npages)++] = blk;
		blk = VsPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}
	return true;
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
	BlockNumber *pages;
	int			npages;
	uint32		rows;
	BlockNumber blk;
	uint32		poff;
	BlockNumber dirblk;
	Buffer		buf;
	GenericXLogState *state;
	Page		dirpage;
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
		return true;			/* done before */
	if (blk != e->start)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("delta chain of cluster %u of index \"%s\" starts at block %u, not %u; its pages are not reused",
						e->cluster, RelationGetRelationName(index), blk, e->start)));
		return false;
	}

	/* the front, page by page (nothing changes it: no scan can read it) */
	if (!chain_pages(index, e->start, e->new_head, NULL, &pages, &npages, &rows))
	{
		ereport(WARNING,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("delta chain of cluster %u of index \"%s\" does not lead from block %u to %u; its pages are not reused",
						e->cluster, RelationGetRelationName(index), e->start, e->new_head)));
		pfree(pages);
		return false;
	}

	/* the directory entry moves past it */
	buf = ReadBuffer(index, dirblk);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	VsCheckPage(index, BufferGetPage(buf), dirblk, VS_PAGE_BLOB);
	state = GenericXLogStart(index);
	dirpage = GenericXLogRegisterBuffer(state, buf, 0);
	entry = (VsDirEntry *) (PageGetContents(dirpage) + poff);
	if (entry->delta_head != e->start)
		elog(ERROR, "delta chain of cluster %u of index \"%s\" moved during a compaction",
			 e->cluster, RelationGetRelationName(index));
	entry->delta_head = e->new_head;
	entry->delta_skipped += rows;
	VsPageSeal(dirpage);
	GenericXLogFinish(state);
	UnlockReleaseBuffer(buf);

	free_pages(index, pages, npages);
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
 * log_reuse_conflict - pages retired at "horizon" are about to be reused
 * (the comment at the top, "Standbys"): a recovery conflict point for it.
 * The record is btree's REUSE_PAGE, whose replay does nothing but resolve
 * that conflict (btree_xlog_reuse_page: ResolveRecoveryConflictWithSnapshot-
 * FullXid for the database of "node"); it names this index and touches no
 * page.  Core has no such record of its own for an index access method
 * outside it, and a custom resource manager would fail the replay of a
 * standby that does not preload vecstore.
 */
static void
log_reuse_conflict(Relation index, FullTransactionId horizon)
{
	xl_btree_reuse_page xlrec;

	if (!RelationNeedsWAL(index) || !XLogStandbyInfoActive())
		return;
	memset(&xlrec, 0, sizeof(xlrec));
	xlrec.node = index->rd_node;
	xlrec.block = VS_METAPAGE_BLKNO;
	xlrec.latestRemovedFullXid = horizon;
	XLogBeginInsert();
	XLogRegisterData((char *) &xlrec, SizeOfBtreeReusePage);
	XLogInsert(RM_BTREE_ID, XLOG_BTREE_REUSE_PAGE);
}

/*
 * VsFreeListRipen - at the start of a compaction (which runs after the
 * switch of the one that wrote the list): stamp what is still pending,
 * and make reusable what no scan can read any more ("all": everything
 * retired, for a caller that holds AccessExclusiveLock on the index, so
 * that no scan can read any of it); free extents are sorted and merged.
 */
void
VsFreeListRipen(Relation index, VsMetaPage meta, VsFreeList *fl, bool all)
{
	VsFreeList	out;
	FullTransactionId now = ReadNextFullTransactionId();
	BlockNumber recorded = 0;
	bool	   *ripe = palloc0(sizeof(bool) * Max(fl->n, 1));
	uint64		horizon = STAMP_FREE;

	/* what ripens, and the latest horizon among it */
	for (int i = 0; i < fl->n; i++)
	{
		uint64		stamp = fl->ext[i].stamp;

		if (stamp == STAMP_PENDING)
			stamp = U64FromFullTransactionId(now);
		if (stamp != STAMP_FREE &&
			(all || GlobalVisCheckRemovableFullXid(NULL, FullTransactionIdFromU64(stamp))))
		{
			ripe[i] = true;
			horizon = Max(horizon, stamp);
		}
	}
	if (horizon != STAMP_FREE && !all)
		log_reuse_conflict(index, FullTransactionIdFromU64(horizon));

	memset(&out, 0, sizeof(out));
	for (int i = 0; i < fl->n; i++)
	{
		VsFreeExtent e = fl->ext[i];

		if (e.stamp == STAMP_PENDING)
			e.stamp = U64FromFullTransactionId(now);
		if (ripe[i])
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
	pfree(ripe);
	if (recorded > 0)
		IndexFreeSpaceMapVacuum(index);
}

/*
 * is "page" one of ours, of type "type" (VS_PAGE_*), and with "sound" its
 * CRC matching too?  Never an error.  A free page is taken for reuse only
 * when sound: one whose type or link is damaged may be in a chain still.
 */
static inline bool
page_is(Page page, uint16 type, bool sound)
{
	return !PageIsNew(page) && PageGetSpecialSize(page) == MAXALIGN(sizeof(VsPageOpaqueData)) &&
		VsPageGetOpaque(page)->page_id == VS_PAGE_ID && VsPageGetOpaque(page)->type == type &&
		(!sound || VsPageGetOpaque(page)->crc == VsPageCrc(page));
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

			if (page_is(page, VS_PAGE_FREE, true))
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
 * VsFreeListRuns - the free runs of blocks in a ripened list, by block
 * (palloc'd, *n of them): where a compaction may place its pieces.
 */
VsRegion *
VsFreeListRuns(const VsFreeList *fl, int *n)
{
	VsRegion   *runs = palloc(sizeof(VsRegion) * Max(fl->n, 1));

	*n = 0;
	for (int i = 0; i < fl->n; i++)
	{
		if (fl->ext[i].stamp == STAMP_FREE && fl->ext[i].cluster == VS_NO_CLUSTER &&
			fl->ext[i].nblocks > 0)
		{
			runs[*n].start = fl->ext[i].start;
			runs[*n].nblocks = fl->ext[i].nblocks;
			runs[*n].nbytes = (uint64) fl->ext[i].nblocks * VS_BLOB_PAYLOAD;
			(*n)++;
		}
	}
	return runs;
}

/*
 * VsFreeListTake - "n" blocks from the start of the free run that starts
 * at block "start" (one VsFreeListRuns returned).
 */
void
VsFreeListTake(VsFreeList *fl, BlockNumber start, BlockNumber n)
{
	for (int i = 0; i < fl->n; i++)
	{
		VsFreeExtent *e = &fl->ext[i];

		if (e->stamp == STAMP_FREE && e->cluster == VS_NO_CLUSTER && e->start == start)
		{
			if (e->nblocks < n)
				break;
			e->start += n;
			e->nblocks -= n;
			fl->reused += n;
			return;
		}
	}
	elog(ERROR, "no free run of %u blocks at block %u", n, start);
}

/*
 * VsFreeListRetire - the blocks of a region the new generation does not
 * read, to be reused once no scan can read them.
 */
void
VsFreeListRetire(VsFreeList *fl, const VsRegion *region)
{
	if (region->nblocks == 0)
		return;
	add_extent(fl, region->start, region->nblocks, VS_NO_CLUSTER, InvalidBlockNumber,
			   STAMP_PENDING);
}

/*
 * VsFreeListRetireChain - the front of cluster "cluster"'s delta chain,
 * from "start" (its head once earlier fronts have gone) up to the page
 * "new_head", whose rows are all folded into sealed rows.
 */
void
VsFreeListRetireChain(VsFreeList *fl, uint32 cluster, BlockNumber start, BlockNumber new_head)
{
	if (!BlockNumberIsValid(start) || start == new_head)
		return;
	add_extent(fl, start, 0, cluster, new_head, STAMP_PENDING);
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
		Page		page;
		VsFreeExtent *ext;
		bool		changed = false;

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(buf), blk, VS_PAGE_BLOB);
		state = GenericXLogStart(index);
		page = GenericXLogRegisterBuffer(state, buf, 0);
		ext = (VsFreeExtent *) PageGetContents(page);
		for (uint64 i = p * per_page; i < Min(n, (p + 1) * per_page); i++)
		{
			if (ext[i - p * per_page].stamp == STAMP_PENDING)
			{
				ext[i - p * per_page].stamp = stamp;
				changed = true;
			}
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

/* free or retired blocks worth reclaiming (1 MB), and rounds of it */
#define VS_RECLAIM_MIN_BLOCKS	128
#define VS_RECLAIM_ROUNDS		12

/* the block after a region, or 0 for an empty one */
static inline BlockNumber
region_end(const VsRegion *r)
{
	return r->nblocks > 0 ? r->start + r->nblocks : 0;
}

/*
 * live_end - the block after the last one the current generation's
 * regions use (metapage, directory, bitmap, centroids, routing graph,
 * free list, every piece of "head", its checked head); delta pages are
 * not counted.
 */
static BlockNumber
live_end(VsMetaPage meta, const char *head)
{
	BlockNumber end = VS_METAPAGE_BLKNO + 1;

	end = Max(end, region_end(&meta->centroids));
	end = Max(end, region_end(&meta->directory));
	end = Max(end, region_end(&meta->bitmap));
	end = Max(end, region_end(&meta->sealed));
	end = Max(end, region_end(&meta->routing));
	end = Max(end, region_end(&meta->freelist));
	for (uint32 p = 1; head != NULL && p < meta->npieces; p++)
		end = Max(end, region_end(&VsHeadPieces(head)[p].region));
	return end;
}

/*
 * block_is - is block "blk" a page of ours of type "type" (VS_PAGE_*)
 * (and sound)?  (page_is under a share lock.)
 */
static bool
block_is(Relation index, BlockNumber blk, uint16 type, bool sound, BufferAccessStrategy bas)
{
	Buffer		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, bas);
	bool		is;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	is = page_is(BufferGetPage(buf), type, sound);
	UnlockReleaseBuffer(buf);
	return is;
}

/*
 * take_fsm_pages - with AccessExclusiveLock on the index (no insert can
 * take a page meanwhile): the free delta pages the free space map offers
 * go to the free list instead, where they join the runs around them for
 * compactions and the end of the fork; inserts extend it meanwhile.
 * Each is marked as the list's (VS_PAGE_LISTED, WAL-logged): the free
 * space map is not WAL-logged, and one that a crash, a promoted standby
 * or a restored backup brings back from before may offer the page again,
 * which an insert must then refuse (VsNewDeltaBuffer takes free pages
 * only), as a compaction may write a piece over it.  Returns the pages
 * taken.
 */
static int
take_fsm_pages(Relation index, VsFreeList *fl, BufferAccessStrategy bas)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	int			taken = 0;

	for (;;)
	{
		BlockNumber blk = GetFreeIndexPage(index);
		Buffer		buf;

		if (!BlockNumberIsValid(blk))
			break;
		if (blk >= nblocks)
			continue;
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, bas);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		if (!page_is(BufferGetPage(buf), VS_PAGE_FREE, true))
		{
			UnlockReleaseBuffer(buf);
			continue;
		}
		set_page_type(index, buf, VS_PAGE_LISTED);
		UnlockReleaseBuffer(buf);
		add_extent(fl, blk, 1, VS_NO_CLUSTER, InvalidBlockNumber, STAMP_FREE);
		taken++;
	}
	return taken;
}

/*
 * cut_folded_chains - with AccessExclusiveLock on the index: every delta
 * chain all of whose rows the current generation ("head", its checked
 * head) folded goes altogether
 * (the cluster's next insert starts a new one).  Its directory entry is
 * emptied and its rows counted as skipped, so that the generation reads
 * the cluster's delta rows from the (new) chain's head (VsDeltaFromHead);
 * its pages are marked free and given to the free space map.  Returns the
 * pages freed.
 */
static BlockNumber
cut_folded_chains(Relation index, VsMetaPage meta, const char *head, BufferAccessStrategy bas)
{
	BlockNumber freed = 0;
	const VsClusterInfo *info;

	if (meta->nclusters == 0)
		return 0;
	info = VsHeadClusters(head);
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		VsDirEntry	entry;
		uint32		poff;
		BlockNumber dirblk;
		BlockNumber *pages;
		uint32		rows;
		int			npages;
		bool		sound;
		Buffer		buf;
		GenericXLogState *state;
		Page		dirpage;
		VsDirEntry *e;

		VsBlobRead(index, &meta->directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry), bas);
		if (!BlockNumberIsValid(entry.delta_head) || entry.delta_count != info[c].delta_folded)
			continue;
		sound = chain_pages(index, entry.delta_head, InvalidBlockNumber, bas, &pages, &npages, &rows);
		if (!sound || entry.delta_skipped + rows != entry.delta_count)
		{
			ereport(WARNING,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("delta chain of cluster %u of index \"%s\" does not hold the rows its directory entry counts; its pages are not reused",
							c, RelationGetRelationName(index))));
			pfree(pages);
			continue;
		}

		dirblk = VsBlobBlock(&meta->directory, (uint64) c * sizeof(VsDirEntry), &poff);
		buf = ReadBuffer(index, dirblk);
		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(buf), dirblk, VS_PAGE_BLOB);
		state = GenericXLogStart(index);
		dirpage = GenericXLogRegisterBuffer(state, buf, 0);
		e = (VsDirEntry *) (PageGetContents(dirpage) + poff);
		e->delta_head = InvalidBlockNumber;
		e->delta_tail = InvalidBlockNumber;
		e->delta_skipped = e->delta_count;
		VsPageSeal(dirpage);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		free_pages(index, pages, npages);
		freed += npages;
		pfree(pages);
	}
	if (freed > 0)
		IndexFreeSpaceMapVacuum(index);
	return freed;
}

/*
 * move_region - with AccessExclusiveLock on the index: a small region of
 * the metapage's (centroids, routing graph, deletion bitmap) is copied into
 * the first free run before it that holds it, so that the end of the fork
 * can go (from the fork's second half only); the copy is WAL-logged in full, the old blocks are retired (the
 * caller publishes the metapage before anything reuses them).  False when
 * no run before it holds it.
 */
static bool
move_region(Relation index, VsFreeList *fl, VsRegion *region)
{
	int			nruns;
	VsRegion   *runs;
	BlockNumber to = InvalidBlockNumber;

	/* only from the fork's second half: elsewhere it is in nobody's way */
	if (region->nblocks == 0 || region->start < RelationGetNumberOfBlocks(index) / 2)
		return false;
	runs = VsFreeListRuns(fl, &nruns);
	for (int r = 0; r < nruns && !BlockNumberIsValid(to); r++)
	{
		if (runs[r].start < region->start && runs[r].nblocks >= region->nblocks)
			to = runs[r].start;
	}
	pfree(runs);
	if (!BlockNumberIsValid(to))
		return false;
	VsFreeListTake(fl, to, region->nblocks);
	for (BlockNumber i = 0; i < region->nblocks; i++)
	{
		Buffer		src = ReadBuffer(index, region->start + i);
		Buffer		dst = ReadBufferExtended(index, MAIN_FORKNUM, to + i, RBM_ZERO_AND_LOCK, NULL);

		LockBuffer(src, BUFFER_LOCK_SHARE);
		VsCheckPage(index, BufferGetPage(src), region->start + i, VS_PAGE_BLOB);
		memcpy(BufferGetPage(dst), BufferGetPage(src), BLCKSZ);
		MarkBufferDirty(dst);
		UnlockReleaseBuffer(src);
		UnlockReleaseBuffer(dst);
	}
	if (RelationNeedsWAL(index))
		log_newpage_range(index, MAIN_FORKNUM, to, to + region->nblocks, true);
	VsFreeListRetire(fl, region);
	region->start = to;
	return true;
}

/*
 * Moving delta pages down.  With AccessExclusiveLock on the index (no
 * insert or scan meanwhile), the delta pages at or past the end of the
 * live regions move into free blocks before it, so that they do not hold
 * the end of the fork (an insert takes new pages at the end once the free
 * space map is empty).  The page a generation's fold position names
 * (VsClusterInfo.delta_blk) stays.
 *
 * The moves are planned first (plan_delta_moves: their blocks taken from
 * the free list), and made only after the metapage that publishes the new
 * free list, without those blocks, is in the WAL (do_delta_move).  Made
 * before it, a move that a cancel, an error or a crash left without the
 * list's switch had a live delta page in a block the published list still
 * called free, for the next compaction to write a piece over.  The other
 * way round, what such an interruption can leave is a free block that no
 * list names (a planned target not moved into), and moved-from pages
 * past the live regions, which the next truncation cuts off.
 */
typedef struct DeltaMove
{
	BlockNumber from;			/* the delta page ... */
	BlockNumber to;				/* ... goes here, a free block before the limit */
	BlockNumber prev;			/* the page that links to it by then, or
								 * invalid: it is its chain's head */
	BlockNumber dirblk;			/* its cluster's directory entry: block ... */
	uint32		poff;			/* ... and offset there */
	bool		tail;			/* it is its chain's tail */
} DeltaMove;

/*
 * plan_delta_moves - the delta pages at or past block "limit" and the free
 * blocks of "fl" before it that they move into (taken from "fl"), in the
 * order they are to be moved, into *moves; returns how many.
 */
static int
plan_delta_moves(Relation index, VsMetaPage meta, const char *head, VsFreeList *fl,
				 BlockNumber limit, BufferAccessStrategy bas, DeltaMove **moves)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(index);
	int			n = 0;
	int			max = 0;
	const VsClusterInfo *info;

	*moves = NULL;
	if (meta->nclusters == 0 || limit >= nblocks)
		return 0;
	info = VsHeadClusters(head);
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		VsDirEntry	entry;
		uint32		poff;
		BlockNumber dirblk = VsBlobBlock(&meta->directory, (uint64) c * sizeof(VsDirEntry), &poff);
		BlockNumber prev = InvalidBlockNumber;
		BlockNumber blk;
		BlockNumber fixed;
		int			steps = 0;

		VsBlobRead(index, &meta->directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry), bas);
		fixed = VsDeltaFromHead(&entry, &info[c]) ? InvalidBlockNumber : info[c].delta_blk;
		for (blk = entry.delta_head; BlockNumberIsValid(blk) && blk < nblocks && steps++ < (int) nblocks;)
		{
			Buffer		buf;
			BlockNumber next;
			BlockNumber to = InvalidBlockNumber;

			buf = ReadBufferExtended(index, MAIN_FORKNUM, blk, RBM_NORMAL, bas);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			VsCheckPage(index, BufferGetPage(buf), blk, VS_PAGE_DELTA);
			next = VsPageGetOpaque(BufferGetPage(buf))->nextblkno;
			UnlockReleaseBuffer(buf);
			if (blk >= limit && blk != fixed)
			{
				int			nruns;
				VsRegion   *runs = VsFreeListRuns(fl, &nruns);

				if (nruns > 0 && runs[0].start < limit)
					to = runs[0].start;
				pfree(runs);
			}
			if (BlockNumberIsValid(to))
			{
				DeltaMove  *mv;

				VsFreeListTake(fl, to, 1);
				if (n == max)
				{
					max = Max(64, max * 2);
					*moves = *moves ? repalloc(*moves, sizeof(DeltaMove) * max) :
						palloc(sizeof(DeltaMove) * max);
				}
				mv = &(*moves)[n++];
				mv->from = blk;
				mv->to = to;
				mv->prev = prev;
				mv->dirblk = dirblk;
				mv->poff = poff;
				mv->tail = entry.delta_tail == blk;
				blk = to;
			}
			prev = blk;
			blk = next;
		}
	}
	return n;
}

/*
 * do_delta_move - make a planned move, in one WAL record: the copy, the
 * link to it (the previous page's, or the directory entry's head) and the
 * entry's tail, and the old page marked free.
 */
static void
do_delta_move(Relation index, const DeltaMove *mv)
{
	GenericXLogState *state;
	Buffer		src = ReadBuffer(index, mv->from);
	Buffer		dst = ReadBufferExtended(index, MAIN_FORKNUM, mv->to, RBM_ZERO_AND_LOCK, NULL);
	Buffer		link = InvalidBuffer;
	Buffer		dir = InvalidBuffer;
	Page		srcpage;
	Page		linkpage;
	Page		dirpage = NULL;
	VsDirEntry *e = NULL;

	LockBuffer(src, BUFFER_LOCK_EXCLUSIVE);
	VsCheckPage(index, BufferGetPage(src), mv->from, VS_PAGE_DELTA);
	if (BlockNumberIsValid(mv->prev))
	{
		link = ReadBuffer(index, mv->prev);
		LockBuffer(link, BUFFER_LOCK_EXCLUSIVE);
	}
	if (!BlockNumberIsValid(mv->prev) || mv->tail)
	{
		dir = ReadBuffer(index, mv->dirblk);
		LockBuffer(dir, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(dir), mv->dirblk, VS_PAGE_BLOB);
	}
	state = GenericXLogStart(index);
	srcpage = GenericXLogRegisterBuffer(state, src, 0);
	/* the copy keeps the page's CRC: it covers no block number */
	memcpy(GenericXLogRegisterBuffer(state, dst, GENERIC_XLOG_FULL_IMAGE), srcpage, BLCKSZ);
	if (BufferIsValid(link))
	{
		linkpage = GenericXLogRegisterBuffer(state, link, 0);
		VsPageGetOpaque(linkpage)->nextblkno = mv->to;
		VsPageSeal(linkpage);
	}
	if (BufferIsValid(dir))
	{
		dirpage = GenericXLogRegisterBuffer(state, dir, 0);
		e = (VsDirEntry *) (PageGetContents(dirpage) + mv->poff);
		if (!BlockNumberIsValid(mv->prev))
			e->delta_head = mv->to;
		if (mv->tail)
			e->delta_tail = mv->to;
		VsPageSeal(dirpage);
	}
	VsPageGetOpaque(srcpage)->type = VS_PAGE_FREE;
	VsPageGetOpaque(srcpage)->nextblkno = InvalidBlockNumber;
	VsPageSeal(srcpage);
	GenericXLogFinish(state);
	if (BufferIsValid(dir))
		UnlockReleaseBuffer(dir);
	if (BufferIsValid(link))
		UnlockReleaseBuffer(link);
	UnlockReleaseBuffer(dst);
	UnlockReleaseBuffer(src);
}

/* BlockNumber order, for qsort and bsearch */
static int
block_cmp(const void *a, const void *b)
{
	BlockNumber x = *(const BlockNumber *) a;
	BlockNumber y = *(const BlockNumber *) b;

	return (x > y) - (x < y);
}

/* what truncate_tail read, given back (it runs up to VS_RECLAIM_ROUNDS times) */
static void
tail_free(VsFreeList *fl, char *head)
{
	if (fl->ext)
		pfree(fl->ext);
	if (head)
		pfree(head);
}

/*
 * truncate_tail - give the free blocks at the end of the fork back to the
 * file system, as VACUUM truncates a table: only under AccessExclusiveLock
 * on the index, taken only if no one holds a lock on it (a scan, an
 * insert; a cursor), and given up as soon as someone waits for one.  With
 * no scan on the index, nothing retired can be read any more (a standby's
 * queries conflict with the lock when it replays it), so everything the
 * free list holds ripens now, and the delta chains whose rows are all
 * folded go; then the blocks after the last one that the current regions
 * or a delta page use are cut off, and the free list and the free space
 * map forget them.  The caller holds RowExclusiveLock on the index and
 * ShareUpdateExclusiveLock on its table (no compaction meanwhile).
 *
 * Returns TAIL_IDLE when there was nothing to gain, TAIL_BUSY when the
 * index was in use, TAIL_DONE when it ran; the blocks it removed in
 * *removed, and the free blocks left in the fork (in the free list) in
 * *free_left, of *nblocks_left.
 */
typedef enum TailResult
{
	TAIL_IDLE,
	TAIL_BUSY,
	TAIL_DONE
} TailResult;

static TailResult
truncate_tail(Relation index, BufferAccessStrategy bas, BlockNumber *removed,
			  uint64 *free_left, BlockNumber *nblocks_left)
{
	VsMetaPageData meta;
	VsMetaPageData newmeta;
	VsFreeList	fl;
	BlockNumber nblocks;
	BlockNumber live;
	BlockNumber end;
	BlockNumber listblocks;
	uint64		free_blocks;
	uint64		retired_blocks;
	bool		locked = false;
	bool		changed = false;
	bool		tail_ok = true;
	char	   *head = NULL;
	DeltaMove  *moves = NULL;
	BlockNumber *from = NULL;
	int			nmoves = 0;
	BlockNumber blk;

	*removed = 0;
	*free_left = 0;
	*nblocks_left = 0;
	/* a scan of this backend's own (a cursor) would lose its pages */
	if (index->rd_refcnt > 1)
		return TAIL_BUSY;
	/*
	 * The metapage, its head and its free list stay as read: the caller's
	 * lock on the table keeps compactions out, and inserts change none of
	 * them.
	 */
	VsReadMeta(index, &meta);
	if (meta.nclusters > 0)
	{
		char	   *problem;

		head = VsSealedHead(index, &meta, bas, &problem);
		if (head == NULL)
			return TAIL_IDLE;
	}
	nblocks = RelationGetNumberOfBlocks(index);
	live = live_end(&meta, head);
	VsFreeListLoad(index, &meta, &fl, bas);
	VsFreeListBlocks(&fl, &free_blocks, &retired_blocks);
	*free_left = free_blocks;
	*nblocks_left = nblocks;

	/*
	 * Worth a lock: a free end of 1000 blocks or a sixteenth of the fork
	 * (as for a table), or 1 MB retired, which ripens under the lock (and
	 * may be at the end, or join free runs).
	 */
	if (!((nblocks > live &&
		   (nblocks - live >= 1000 || nblocks - live >= Max(nblocks / 16, 8))) ||
		  retired_blocks >= VS_RECLAIM_MIN_BLOCKS))
	{
		tail_free(&fl, head);
		return TAIL_IDLE;
	}
	for (int tries = 0; tries < 10 && !locked; tries++)
	{
		locked = ConditionalLockRelation(index, AccessExclusiveLock);
		if (!locked)
		{
			CHECK_FOR_INTERRUPTS();
			pg_usleep(20000L);
		}
	}
	if (!locked)
	{
		elog(DEBUG1, "vecstore: index \"%s\" is in use; its free blocks are not truncated",
			 RelationGetRelationName(index));
		tail_free(&fl, head);
		return TAIL_BUSY;
	}

	/* everything retired ripens: delta pages marked free, runs free */
	for (int i = 0; i < fl.n; i++)
		changed = changed || fl.ext[i].stamp != STAMP_FREE;
	VsFreeListRipen(index, &meta, &fl, true);
	{
		BlockNumber cut = cut_folded_chains(index, &meta, head, bas);
		int			taken = take_fsm_pages(index, &fl, bas);

		if (cut > 0 || taken > 0)
		{
			VsFreeListRipen(index, &meta, &fl, true);	/* sorted and merged again */
			changed = true;
		}
	}

	/* the metapage's small regions move down when they can */
	newmeta = meta;
	{
		bool		moved = move_region(index, &fl, &newmeta.centroids);

		moved = move_region(index, &fl, &newmeta.routing) || moved;
		if (moved)
			newmeta.moves++;
		changed = move_region(index, &fl, &newmeta.bitmap) || moved || changed;
	}

	/*
	 * The end: past the live regions, back to the last delta page that
	 * does not move (the moves are made after the switch, see "Moving
	 * delta pages down" above).
	 */
	nblocks = RelationGetNumberOfBlocks(index);
	live = live_end(&newmeta, head);
	nmoves = plan_delta_moves(index, &newmeta, head, &fl, live, bas, &moves);
	if (nmoves > 0)
	{
		elog(DEBUG1, "vecstore: index \"%s\": %d delta pages move down",
			 RelationGetRelationName(index), nmoves);
		from = palloc(sizeof(BlockNumber) * nmoves);
		for (int i = 0; i < nmoves; i++)
			from[i] = moves[i].from;
		qsort(from, nmoves, sizeof(BlockNumber), block_cmp);
		changed = true;
	}
	end = nblocks;
	while (end > live)
	{
		bool		listed = false;

		if ((nblocks - end) % 64 == 0)
		{
			CHECK_FOR_INTERRUPTS();
			if (LockHasWaitersRelation(index, AccessExclusiveLock))
				break;
		}
		/* a run of the list is free without reading it */
		for (int i = fl.n - 1; i >= 0 && !listed; i--)
		{
			const VsFreeExtent *e = &fl.ext[i];

			if (e->cluster == VS_NO_CLUSTER && e->nblocks > 0 &&
				e->start < end && end <= e->start + e->nblocks)
			{
				end = Max(e->start, live);
				listed = true;
			}
		}
		if (listed)
			continue;
		/*
		 * a page of any other kind past the live regions is garbage (a
		 * delta page is kept even when damaged, unless it moves)
		 */
		blk = end - 1;
		if ((nmoves == 0 || bsearch(&blk, from, nmoves, sizeof(BlockNumber), block_cmp) == NULL) &&
			block_is(index, blk, VS_PAGE_DELTA, false, bas))
			break;
		end--;
	}

	if (!changed && end == nblocks)
	{
		UnlockRelation(index, AccessExclusiveLock);
		VsFreeListBlocks(&fl, &free_blocks, &retired_blocks);
		*free_left = free_blocks;
		tail_free(&fl, head);
		return TAIL_DONE;
	}

	VsCompactDebugStop(VS_COMPACT_STOP_RECLAIM);

	/*
	 * A new free list without the blocks cut off, in a free run below the
	 * end, else in the first blocks past it (they are free, and a page a
	 * free space map entry still names is recognised as taken: it is not
	 * marked free).
	 */
	listblocks = (BlockNumber) ((sizeof(VsFreeExtent) * (uint64) (fl.n + 2) + VS_BLOB_PAYLOAD - 1) /
								VS_BLOB_PAYLOAD);
	/*
	 * The blocks just past the end may hold the list only when no retired
	 * region the published metapage still names is there (a crash before
	 * the switch must find that intact).
	 */
	for (int i = 0; i < fl.n; i++)
	{
		if (fl.ext[i].stamp != STAMP_FREE && fl.ext[i].cluster == VS_NO_CLUSTER &&
			fl.ext[i].start < end + listblocks && fl.ext[i].start + fl.ext[i].nblocks > end)
			tail_ok = false;
	}
	/* ... nor a delta page that moves only after the switch */
	for (int i = 0; i < nmoves; i++)
	{
		if (from[i] >= end && from[i] < end + listblocks)
			tail_ok = false;
	}
	for (int i = 0; i < fl.n; i++)
	{
		VsFreeExtent *e = &fl.ext[i];

		if (e->cluster != VS_NO_CLUSTER)
			continue;
		if (e->start >= end)
			e->nblocks = 0;
		else if (e->start + e->nblocks > end)
			e->nblocks = end - e->start;
	}
	VsFreeListRetire(&fl, &meta.freelist);
	{
		bool		fits = false;

		for (int i = 0; i < fl.n && !fits; i++)
			fits = fl.ext[i].stamp == STAMP_FREE && fl.ext[i].cluster == VS_NO_CLUSTER &&
				fl.ext[i].nblocks >= listblocks;
		if (!fits && tail_ok && end + listblocks <= nblocks)
		{
			/* the list's own run, just past the end */
			add_extent(&fl, end, listblocks, VS_NO_CLUSTER, InvalidBlockNumber, STAMP_FREE);
			end += listblocks;
		}
	}
	newmeta.freelist = VsFreeListWrite(index, &fl);
	end = Max(end, region_end(&newmeta.freelist));
	if (RelationNeedsWAL(index) && newmeta.freelist.nblocks > 0)
		log_newpage_range(index, MAIN_FORKNUM, newmeta.freelist.start,
						  region_end(&newmeta.freelist), true);
	{
		Buffer		metabuf = ReadBuffer(index, VS_METAPAGE_BLKNO);
		GenericXLogState *state;
		Page		metapage;

		LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(metabuf), VS_METAPAGE_BLKNO, VS_PAGE_META);
		state = GenericXLogStart(index);
		metapage = GenericXLogRegisterBuffer(state, metabuf, 0);
		memcpy(PageGetContents(metapage), &newmeta, sizeof(VsMetaPageData));
		VsPageSeal(metapage);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(metabuf);
	}
	VsFreeListStamp(index, &newmeta);

	/*
	 * The delta pages move now, into blocks the published list no longer
	 * names; a page moved from before the end goes to the free space map
	 * (the next truncation takes it into the list).  Not cancelled
	 * halfway: a planned block not moved into would be lost.
	 */
	HOLD_INTERRUPTS();
	for (int i = 0; i < nmoves; i++)
		do_delta_move(index, &moves[i]);
	{
		bool		recorded = false;

		for (int i = 0; i < nmoves; i++)
		{
			if (moves[i].from < end)
			{
				RecordFreeIndexPage(index, moves[i].from);
				recorded = true;
			}
		}
		if (recorded)
			IndexFreeSpaceMapVacuum(index);
	}
	if (end < nblocks)
	{
		elog(DEBUG1, "vecstore: index \"%s\" truncated from %u to %u blocks",
			 RelationGetRelationName(index), nblocks, end);
		RelationTruncate(index, end);
	}
	RESUME_INTERRUPTS();
	UnlockRelation(index, AccessExclusiveLock);
	if (moves)
	{
		pfree(moves);
		pfree(from);
	}
	VsFreeListBlocks(&fl, &free_blocks, &retired_blocks);
	tail_free(&fl, head);
	*removed = nblocks - Min(end, nblocks);
	*free_left = free_blocks;
	*nblocks_left = Min(end, nblocks);
	return TAIL_DONE;
}

/*
 * truncation_allowed - may VACUUM truncate the index's table (its
 * vacuum_truncate storage parameter, on unless set off)?  A truncation's
 * AccessExclusiveLock is replayed on standbys, where it cancels the
 * queries using the index (after max_standby_streaming_delay) whatever
 * hot_standby_feedback says; a table whose owner turned truncation off for
 * that reason keeps its vecstore indexes' blocks too: later compactions
 * reuse them once no query can read them.  The caller holds a lock on the
 * table.
 */
static bool
truncation_allowed(Relation index)
{
	Relation	heap = table_open(index->rd_index->indrelid, NoLock);
	bool		allowed = true;

	if (heap->rd_options != NULL)
		allowed = ((StdRdOptions *) heap->rd_options)->vacuum_truncate;
	table_close(heap, NoLock);
	return allowed;
}

/*
 * VsFreeReclaim - after a compaction: the fork's free end goes back to the
 * file system (truncate_tail); then, while a fifth of what is left is
 * still free, the last piece that fits into free runs before it is moved
 * down (a compaction that copies its clusters' bytes as they are,
 * rebuilding nothing), and the end is given back again.  A few rounds at
 * most, and none once the index is found in use, or when its table's
 * vacuum_truncate is off.  Returns the blocks removed.
 */
BlockNumber
VsFreeReclaim(Relation index, BufferAccessStrategy bas)
{
	BlockNumber total = 0;

	if (!truncation_allowed(index))
		return 0;
	for (int round = 0; round < VS_RECLAIM_ROUNDS; round++)
	{
		BlockNumber removed;
		BlockNumber nblocks;
		uint64		free_left;
		VsCompactResult res;

		if (truncate_tail(index, bas, &removed, &free_left, &nblocks) == TAIL_BUSY)
			break;
		total += removed;
		if (free_left < VS_RECLAIM_MIN_BLOCKS || free_left * 5 < nblocks ||
			round == VS_RECLAIM_ROUNDS - 1)
			break;
		VsCompact(index, 0, true, bas, &res);
		if (res.generation == 0 || res.clusters == 0)
			break;
	}
	return total;
}

/*
 * Truncation after a parallel VACUUM: the index is cleaned up inside
 * parallel mode (by the leader), where AccessExclusiveLock cannot be
 * logged (it needs a transaction id), so the truncation waits for the
 * VACUUM's transaction to reach its commit, out of parallel mode.
 */
static List *truncate_later = NIL;	/* OIDs, in TopTransactionContext */
static bool truncate_callback_registered = false;

static void
truncate_xact_callback(XactEvent event, void *arg)
{
	List	   *oids = truncate_later;
	ListCell   *lc;

	if (event != XACT_EVENT_PRE_COMMIT)
	{
		if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
			event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
			event == XACT_EVENT_PREPARE)
			truncate_later = NIL;
		return;
	}
	truncate_later = NIL;
	foreach(lc, oids)
	{
		Relation	index = try_index_open(lfirst_oid(lc), RowExclusiveLock);

		if (index == NULL)
			continue;
		VsFreeReclaim(index, NULL);
		index_close(index, RowExclusiveLock);
	}
}

/*
 * VsFreeReclaimSoon - VsFreeReclaim now, or, in parallel mode, just
 * before the transaction commits.  Returns the blocks removed now.
 */
BlockNumber
VsFreeReclaimSoon(Relation index, BufferAccessStrategy bas)
{
	MemoryContext old;

	if (!IsInParallelMode())
		return VsFreeReclaim(index, bas);
	if (IsParallelWorker())
		return 0;
	if (!truncate_callback_registered)
	{
		RegisterXactCallback(truncate_xact_callback, NULL);
		truncate_callback_registered = true;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	truncate_later = list_append_unique_oid(truncate_later, RelationGetRelid(index));
	MemoryContextSwitchTo(old);
	return 0;
}
