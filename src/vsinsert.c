/*-------------------------------------------------------------------------
 *
 * vsinsert.c
 *	  aminsert for vecstore: route a new row to its nearest cluster and
 *	  append it to that cluster's delta chain.
 *
 * Emits WAL: one GenericXLog record per insert, covering the directory
 * page (when the chain's tail moves), the old tail page and a new page.
 * Lock order, to stay deadlock-free with other inserts: the directory
 * page, then the tail page, then a new page.  Scans and vacuum lock one
 * page at a time.
 *
 * IDENTIFICATION
 *	  src/vsinsert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsam.h"

/*
 * append_delta - add one row (heap TID "heap_tid", vector "v" of the
 * index's dims) to the delta chain of "cluster", crash-safe.
 *
 * Locks, in the index's lock order (src/README): the directory page that
 * holds the cluster's VsDirEntry, exclusive; then the chain's tail page,
 * exclusive; then, when the tail is full or the chain empty, a new page
 * (VsNewDeltaBuffer: a free page, conditionally locked, or a new one with
 * the relation extension lock only while extending).  All
 * of them are changed in one GenericXLog record: the row on its page, a
 * new page linked after the old tail, and the entry's tail, head and
 * count, so a crash leaves either all of it or none; each page changed
 * is sealed (VsPageSeal) before.  Every lock and pin
 * is released before returning.  The caller holds RowExclusiveLock on the
 * index, and "meta" is its current metapage (the directory's place).
 * Errors out with ERRCODE_INDEX_CORRUPTED when a page is not of the
 * expected type.
 */
static void
append_delta(Relation index, VsMetaPage meta, int cluster, ItemPointer heap_tid,
			 const Vector *v)
{
	int			elem = VsMetaElemSize(meta);
	Size		itemsz = VS_DELTA_TUPLE_SIZE(elem, meta->dims);
	VsDeltaTuple tup = palloc0(itemsz);
	uint32		poff;
	BlockNumber dirblk = VsBlobBlock(&meta->directory,
									 (uint64) cluster * sizeof(VsDirEntry), &poff);
	Buffer		dirbuf;
	Buffer		tailbuf = InvalidBuffer;
	Buffer		newbuf = InvalidBuffer;
	GenericXLogState *state;
	Page		dirpage;
	Page		tailpage = NULL;
	VsDirEntry *entry;
	Page		target;

	tup->tid = *heap_tid;
	tup->flags = 0;
	VsEncodeRow(elem, v->x, meta->dims, tup->x);

	dirbuf = ReadBuffer(index, dirblk);
	LockBuffer(dirbuf, BUFFER_LOCK_EXCLUSIVE);
	VsCheckPage(index, BufferGetPage(dirbuf), dirblk, VS_PAGE_BLOB);

	state = GenericXLogStart(index);
	dirpage = GenericXLogRegisterBuffer(state, dirbuf, 0);
	entry = (VsDirEntry *) (PageGetContents(dirpage) + poff);

	target = NULL;
	if (BlockNumberIsValid(entry->delta_tail))
	{
		tailbuf = ReadBuffer(index, entry->delta_tail);
		LockBuffer(tailbuf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(tailbuf), entry->delta_tail, VS_PAGE_DELTA);
		if (PageGetFreeSpace(BufferGetPage(tailbuf)) >= itemsz)
			target = GenericXLogRegisterBuffer(state, tailbuf, 0);
		else
		{
			/* the tail is full: link a new page after it */
			Page		newpage;

			tailpage = GenericXLogRegisterBuffer(state, tailbuf, 0);
			newbuf = VsNewDeltaBuffer(index);
			newpage = GenericXLogRegisterBuffer(state, newbuf, GENERIC_XLOG_FULL_IMAGE);
			VsInitPage(newpage, VS_PAGE_DELTA);
			VsPageGetOpaque(tailpage)->nextblkno = BufferGetBlockNumber(newbuf);
			VsPageSeal(tailpage);
			entry->delta_tail = BufferGetBlockNumber(newbuf);
			target = newpage;
		}
	}
	else
	{
		/* the cluster's first delta row */
		newbuf = VsNewDeltaBuffer(index);
		target = GenericXLogRegisterBuffer(state, newbuf, GENERIC_XLOG_FULL_IMAGE);
		VsInitPage(target, VS_PAGE_DELTA);
		entry->delta_head = BufferGetBlockNumber(newbuf);
		entry->delta_tail = BufferGetBlockNumber(newbuf);
	}

	if (PageAddItem(target, (Item) tup, itemsz, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
		elog(ERROR, "failed to add delta row to index \"%s\"", RelationGetRelationName(index));
	entry->delta_count++;

	/* the rows on delta pages are not covered: a new page is sealed as it is */
	VsPageSeal(dirpage);
	GenericXLogFinish(state);

	if (BufferIsValid(newbuf))
		UnlockReleaseBuffer(newbuf);
	if (BufferIsValid(tailbuf))
		UnlockReleaseBuffer(tailbuf);
	UnlockReleaseBuffer(dirbuf);
	pfree(tup);
}

/*
 * vsinsert - index one new row (NULLs are not indexed).
 *
 * Runs in a temporary memory context, deleted on every return path.
 */
bool
vsinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
		 Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
		 IndexInfo *indexInfo)
{
	MemoryContext insertCtx;
	MemoryContext oldcxt;
	VsMetaCache cache;
	VsMetaPageData meta;
	Vector	   *v;
	int			cluster;

	if (isnull[0])
		return false;

	insertCtx = AllocSetContextCreate(CurrentMemoryContext, "vecstore insert context",
									  ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(insertCtx);

	cache = VsGetMetaCache(index);
	meta = cache->meta;			/* a copy: the cache may be rebuilt meanwhile */
	v = VsDatumToVector(index, values[0], meta.dims, VsIndexElem(index));
	cluster = VsNearestCluster(cache, v->x);
	append_delta(index, &meta, cluster, heap_tid, v);

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(insertCtx);
	return false;
}
