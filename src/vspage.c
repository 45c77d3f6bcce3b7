/*-------------------------------------------------------------------------
 *
 * vspage.c
 *	  Page, metapage and blob-region helpers of the vecstore index, the
 *	  walk over a delta chain, and the per-backend metadata cache.
 *
 * Everything here reads or initialises pages, and every reader of a blob
 * region (VsBlobRead) or of a delta chain (VsDeltaChain*) goes through
 * here; WAL logging is the caller's business (bulk pages are logged with
 * log_newpage_range at the end of a build, single-page changes go through
 * GenericXLog).  Every page carries a CRC-32C in its special space, which
 * writers set (VsPageSeal) and readers check (VsCheckPage, VsPageProblem).
 *
 * IDENTIFICATION
 *	  src/vspage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/smgr.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsam.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VS_CRC_3WAY 1
#include <nmmintrin.h>
#endif

#ifdef VS_CRC_3WAY
/*
 * A blob page's payload in three streams of CRC_STREAM bytes (a multiple
 * of 8) and a tail.
 */
#define CRC_STREAM		(VS_BLOB_PAYLOAD / 24 * 8)

/*
 * An unchecked delta-chain walk asks for the fork's length once it has
 * visited this many pages (VsDeltaChainNext), to tell a loop from a long
 * chain.
 */
#define VS_CHAIN_FIRST_LIMIT	64

static int	crc3_state = 0;		/* 0: not yet decided; 1: in use; -1: not */
static uint32 crc3_shift[32];	/* the state after CRC_STREAM zero bytes from
								 * state 1 << k */

static uint32 payload_crc3(uint32 crc, const char *p);
#endif

/*
 * VsInitPage - initialise an empty page of the given type, sealed
 * (VsPageSeal): a writer that fills it seals it again.
 *
 * Blob pages mark their whole payload as used (pd_lower past it), so that
 * a standard page image has no hole inside the payload: the payload and
 * the special space, which the CRC covers, are always in a full-page
 * image, and the hole that replay zeroes holds nothing.
 */
void
VsInitPage(Page page, uint16 type)
{
	VsPageOpaque opaque;

	PageInit(page, BLCKSZ, sizeof(VsPageOpaqueData));
	opaque = VsPageGetOpaque(page);
	opaque->nextblkno = InvalidBlockNumber;
	opaque->type = type;
	opaque->page_id = VS_PAGE_ID;
	if (type == VS_PAGE_BLOB || type == VS_PAGE_META)
		((PageHeader) page)->pd_lower = MAXALIGN(SizeOfPageHeaderData) + VS_BLOB_PAYLOAD;
	VsPageSeal(page);
}

#ifdef VS_CRC_3WAY
/*
 * crc3_zeros - the CRC state after CRC_STREAM zero bytes from "crc", with
 * the CPU's instruction.
 */
__attribute__((target("sse4.2")))
static uint32
crc3_zeros(uint32 crc)
{
	uint64		c = crc;

	for (int i = 0; i < CRC_STREAM / 8; i++)
		c = _mm_crc32_u64(c, 0);
	return (uint32) c;
}

/*
 * crc3_advance - the same, from the table: a CRC's state after zero bytes
 * is linear in the state before (no bytes of data to add), so it is the
 * XOR of the images of the state's bits.
 */
static inline uint32
crc3_advance(uint32 crc)
{
	uint32		r = 0;

	for (int k = 0; k < 32; k++)
		r ^= crc3_shift[k] & (0U - ((crc >> k) & 1));
	return r;
}

/*
 * payload_crc3 - COMP_CRC32C of a blob page's payload, about three times
 * as fast: PostgreSQL's loop waits for each 8-byte step's result (three
 * cycles) before the next, while three independent streams keep the
 * CPU's CRC unit busy; their states are joined by advancing the earlier
 * ones over the bytes after them (crc3_advance).  The same CRC-32C, bit
 * for bit (crc3_ready checks it before it is used).
 */
__attribute__((target("sse4.2")))
static uint32
payload_crc3(uint32 crc, const char *p)
{
	uint64		c0 = crc;
	uint64		c1 = 0;
	uint64		c2 = 0;
	uint64		w0,
				w1,
				w2;
	const char *tail = p + 3 * CRC_STREAM;

	for (int i = 0; i < CRC_STREAM; i += 8)
	{
		memcpy(&w0, p + i, 8);
		memcpy(&w1, p + CRC_STREAM + i, 8);
		memcpy(&w2, p + 2 * CRC_STREAM + i, 8);
		c0 = _mm_crc32_u64(c0, w0);
		c1 = _mm_crc32_u64(c1, w1);
		c2 = _mm_crc32_u64(c2, w2);
	}
	crc = crc3_advance(crc3_advance((uint32) c0) ^ (uint32) c1) ^ (uint32) c2;
	for (int i = 0; i < VS_BLOB_PAYLOAD - 3 * CRC_STREAM; i += 8)
	{
		uint64		w;

		memcpy(&w, tail + i, 8);
		crc = (uint32) _mm_crc32_u64(crc, w);
	}
	return crc;
}

/*
 * crc3_ready - can payload_crc3 be used?  Decided once per backend: the
 * CPU has the instruction, and the result equals COMP_CRC32C's on a test
 * page (so the fork always holds CRC-32C, whichever way it was computed).
 */
static bool
crc3_ready(void)
{
	if (crc3_state == 0)
	{
		PGAlignedBlock test;
		pg_crc32c	want;
		pg_crc32c	got;

		crc3_state = -1;
		__builtin_cpu_init();
		if (!__builtin_cpu_supports("sse4.2"))
			return false;
		for (int k = 0; k < 32; k++)
			crc3_shift[k] = crc3_zeros(1U << k);
		for (int i = 0; i < VS_BLOB_PAYLOAD; i++)
			test.data[i] = (char) (i * 131 + (i >> 7));
		INIT_CRC32C(want);
		COMP_CRC32C(want, test.data, VS_BLOB_PAYLOAD);
		INIT_CRC32C(got);
		got = payload_crc3(got, test.data);
		if (got == want)
			crc3_state = 1;
		else
			elog(LOG, "vecstore: three-stream CRC-32C differs from PostgreSQL's; not used");
	}
	return crc3_state > 0;
}
#endif

/*
 * VsPageCrc - the CRC-32C a page of ours should carry (vsam.h,
 * VsPageOpaqueData): of a blob page's whole payload, of the metapage's
 * VsMetaPageData (the rest of its payload is unused: not read on every
 * call, which VsReadMeta is, for nothing), of nothing else on a delta or
 * free page (its rows are not covered; inserts and VACUUM change them
 * without a new CRC); then of the special space's fields before the CRC
 * (the type, the delta chain's link).  The page header is not covered:
 * the LSN and PostgreSQL's own checksum change without us.
 *
 * A blob page costs 0.9 us with PostgreSQL's CRC-32C on an AMD EPYC,
 * 0.3 us in three streams (payload_crc3, x86-64); the metapage and delta
 * pages a few nanoseconds.
 */
uint32
VsPageCrc(Page page)
{
	VsPageOpaque opaque = VsPageGetOpaque(page);
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	if (opaque->type == VS_PAGE_BLOB)
	{
#ifdef VS_CRC_3WAY
		if (crc3_ready())
			crc = payload_crc3(crc, PageGetContents(page));
		else
#endif
			COMP_CRC32C(crc, PageGetContents(page), VS_BLOB_PAYLOAD);
	}
	else if (opaque->type == VS_PAGE_META)
		COMP_CRC32C(crc, PageGetContents(page), sizeof(VsMetaPageData));
	COMP_CRC32C(crc, opaque, offsetof(VsPageOpaqueData, crc));
	FIN_CRC32C(crc);
	return crc;
}

/*
 * VsPageSeal - set the CRC of a page of ours after changing it.  Every
 * writer calls it on each page it changed, right before the page is
 * logged (GenericXLogFinish, or log_newpage_range once the pages are
 * written), on the page image it changed (GenericXLogRegisterBuffer's);
 * and reads the page through VsCheckPage before changing it, so that a
 * damaged page is never sealed as good.  A writer that forgets is found
 * by the next read of the page, an error.
 */
void
VsPageSeal(Page page)
{
	VsPageGetOpaque(page)->crc = VsPageCrc(page);
}

/*
 * page_kind - a vecstore page type in words, for errors ("a delta page");
 * a palloc'd "a page of unknown type N" for any other number.
 */
static const char *
page_kind(uint16 type)
{
	switch (type)
	{
		case VS_PAGE_META:
			return "a metapage";
		case VS_PAGE_BLOB:
			return "a blob page";
		case VS_PAGE_DELTA:
			return "a delta page";
		case VS_PAGE_FREE:
			return "a free page";
		case VS_PAGE_LISTED:
			return "a free page of the free list";
	}
	return psprintf("a page of unknown type %u", type);
}

/*
 * VsPageProblem - what is wrong with "page" as a page of ours of type
 * "type" (a palloc'd phrase: "is not a vecstore page", "has type 3",
 * "fails its checksum (...)"), or NULL: a check that reports instead of
 * raising an error (vecstore_verify).
 */
const char *
VsPageProblem(Page page, uint16 type)
{
	VsPageOpaque opaque;
	uint32		crc;

	if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(VsPageOpaqueData)))
		return "is not a vecstore page";
	opaque = VsPageGetOpaque(page);
	if (opaque->page_id != VS_PAGE_ID)
		return "is not a vecstore page";
	if (opaque->type != type)
		return psprintf("is %s where %s was expected", page_kind(opaque->type), page_kind(type));
	crc = VsPageCrc(page);
	if (opaque->crc != crc)
		return psprintf("fails its checksum (CRC-32C %08X, its contents give %08X)",
						opaque->crc, crc);
	return NULL;
}

/*
 * report_damaged - the error for a page whose CRC does not match.
 */
static void
report_damaged(Relation index, Page page, BlockNumber blkno)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has a corrupted page at block %u",
					RelationGetRelationName(index), blkno),
			 errdetail("The page's CRC-32C is %08X but its contents give %08X.",
					   VsPageGetOpaque(page)->crc, VsPageCrc(page)),
			 errhint("Please REINDEX it.")));
}

/*
 * delta_lines_sound - does a delta page's header describe its line
 * pointers as PageAddItem leaves them: pd_lower past the header by whole
 * line pointers, not past pd_upper?  The CRC does not cover a delta page's
 * rows or header (inserts and VACUUM change them), so without this a
 * damaged pd_lower would hide the page's rows from every reader.
 */
static bool
delta_lines_sound(Page page)
{
	PageHeader	ph = (PageHeader) page;

	return ph->pd_lower >= SizeOfPageHeaderData && ph->pd_lower <= ph->pd_upper &&
		(ph->pd_lower - SizeOfPageHeaderData) % sizeof(ItemIdData) == 0;
}

/*
 * delta_items_sound - does every line pointer of a delta page point at a
 * row inside the page's rows (between pd_upper and the special space), of
 * "tupsize" bytes (when not 0), or at least of a row's header?  Inserts
 * only ever add such lines (PageAddItem), and VACUUM marks rows in their
 * flags, not their lines; the CRC covers neither, so a damaged line would
 * otherwise send readers outside the page.
 */
static bool
delta_items_sound(Page page, Size tupsize)
{
	PageHeader	ph = (PageHeader) page;
	OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
	{
		ItemId		id = PageGetItemId(page, off);
		unsigned	start = ItemIdGetOffset(id);
		unsigned	len = ItemIdGetLength(id);

		if (!ItemIdIsNormal(id) || start < ph->pd_upper || start + len > ph->pd_special ||
			len < offsetof(VsDeltaTupleData, x) || (tupsize != 0 && len != tupsize))
			return false;
	}
	return true;
}

static void
report_bad_items(Relation index, BlockNumber blkno)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has a corrupted delta page at block %u",
					RelationGetRelationName(index), blkno),
			 errdetail("A line pointer does not point at a whole row inside the page."),
			 errhint("Please REINDEX it.")));
}

static void
report_bad_lines(Relation index, Page page, BlockNumber blkno)
{
	ereport(ERROR,
			(errcode(ERRCODE_INDEX_CORRUPTED),
			 errmsg("index \"%s\" has a corrupted delta page at block %u",
					RelationGetRelationName(index), blkno),
			 errdetail("Its line pointers end at byte %u and its rows start at byte %u.",
					   (unsigned) ((PageHeader) page)->pd_lower,
					   (unsigned) ((PageHeader) page)->pd_upper),
			 errhint("Please REINDEX it.")));
}

/*
 * check_page_type - error with ERRCODE_INDEX_CORRUPTED unless "page" is a
 * vecstore page of type "type".
 */
static void
check_page_type(Relation index, Page page, BlockNumber blkno, uint16 type)
{
	VsPageOpaque opaque;
	bool		special_ok;

	if (PageIsNew(page))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has an uninitialized page at block %u where %s was expected",
						RelationGetRelationName(index), blkno, page_kind(type)),
				 errhint("Please REINDEX it.")));
	special_ok = PageGetSpecialSize(page) == MAXALIGN(sizeof(VsPageOpaqueData));
	if (!special_ok || VsPageGetOpaque(page)->page_id != VS_PAGE_ID)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a page at block %u that is not a vecstore page",
						RelationGetRelationName(index), blkno),
				 special_ok ?
				 errdetail("Its page id is 0x%04X where a vecstore page has 0x%04X.",
						   VsPageGetOpaque(page)->page_id, VS_PAGE_ID) :
				 errdetail("Its special space has %d bytes where a vecstore page has %d.",
						   (int) PageGetSpecialSize(page),
						   (int) MAXALIGN(sizeof(VsPageOpaqueData))),
				 errhint("Please REINDEX it.")));
	opaque = VsPageGetOpaque(page);
	if (opaque->type != type)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has %s at block %u where %s was expected",
						RelationGetRelationName(index), page_kind(opaque->type), blkno,
						page_kind(type)),
				 errhint("Please REINDEX it.")));
}

/*
 * VsCheckPage - error with ERRCODE_INDEX_CORRUPTED unless "page" is a
 * vecstore page of the expected type whose CRC matches (VsPageCrc).  The
 * caller holds a lock on the page; every read of a page of the fork goes
 * through here (or VsPageProblem), before the page is used or changed.
 */
void
VsCheckPage(Relation index, Page page, BlockNumber blkno, uint16 type)
{
	check_page_type(index, page, blkno, type);
	if (VsPageGetOpaque(page)->crc != VsPageCrc(page))
		report_damaged(index, page, blkno);
	if (type == VS_PAGE_DELTA && !delta_lines_sound(page))
		report_bad_lines(index, page, blkno);
}

/*
 * VsNewBuffer - extend a fork of the index by one page.
 *
 * Returns the new buffer pinned and exclusive-locked; the caller must
 * initialise it.  Takes the relation extension lock briefly, so that
 * concurrent inserts extending the index do not collide.
 */
Buffer
VsNewBuffer(Relation index, ForkNumber forknum)
{
	Buffer		buf;
	bool		needLock = !RELATION_IS_LOCAL(index);

	if (needLock)
		LockRelationForExtension(index, ExclusiveLock);
	buf = ReadBufferExtended(index, forknum, P_NEW, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	if (needLock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return buf;
}

/*
 * VsBlobBegin - start writing a region at the next block of the fork,
 * extending it page by page (CREATE INDEX, where nothing else extends
 * the fork).  The pages go through the buffer manager and are not
 * WAL-logged here: the caller logs them in bulk (log_newpage_range).
 */
void
VsBlobBegin(VsBlobWriter *w, Relation index, ForkNumber forknum)
{
	memset(w, 0, sizeof(VsBlobWriter));
	w->index = index;
	w->forknum = forknum;
	w->first = RelationGetNumberOfBlocksInFork(index, forknum);
	VsInitPage(w->page.data, VS_PAGE_BLOB);
}

/*
 * VsBlobBeginIn - start writing a region into "nblocks" blocks from
 * "start" that VsAllocateBlocks reserved (a live index, where inserts
 * extend the fork meanwhile).
 */
void
VsBlobBeginIn(VsBlobWriter *w, Relation index, BlockNumber start, BlockNumber nblocks)
{
	memset(w, 0, sizeof(VsBlobWriter));
	w->index = index;
	w->forknum = MAIN_FORKNUM;
	w->first = start;
	w->limit = nblocks;
	VsInitPage(w->page.data, VS_PAGE_BLOB);
}

/*
 * VsAllocateBlocks - extend the fork by "n" consecutive blocks (zero
 * pages, which nothing reads until a region written into them is
 * published); the first one's number.  Holds the relation extension lock
 * throughout, so that no insert takes a block in between.
 *
 * Only the last block is written (a page of zeros, straight to the file,
 * as the hash index's _hash_alloc_buckets does): the ones before it read
 * as zeros without being written, and the region's writer fills each one
 * through a buffer it zeroes (RBM_ZERO_AND_LOCK) and WAL-logs with the
 * region.  Extending block by block through the buffer manager wrote
 * every block twice, first as zeros (measured: 8.6 % of a growing index's
 * compactions).  As with P_NEW, the extension itself is not WAL-logged:
 * replay extends the file when it meets a later block.
 */
BlockNumber
VsAllocateBlocks(Relation index, BlockNumber n)
{
	BlockNumber first;
	BlockNumber last;
	bool		needLock = !RELATION_IS_LOCAL(index);
	PGAlignedBlock zero;

	if (n == 0)
		return InvalidBlockNumber;
	if (needLock)
		LockRelationForExtension(index, ExclusiveLock);
	first = RelationGetNumberOfBlocksInFork(index, MAIN_FORKNUM);
	last = first + n - 1;
	if (last < first || last == InvalidBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot extend index \"%s\" beyond %u blocks",
						RelationGetRelationName(index), MaxBlockNumber)));
	memset(zero.data, 0, BLCKSZ);
	smgrextend(RelationGetSmgr(index), MAIN_FORKNUM, last, zero.data, false);
	if (needLock)
		UnlockRelationForExtension(index, ExclusiveLock);
	return first;
}

/*
 * VsBlobCrcStart - start a CRC-32C over the bytes written from now on.
 */
void
VsBlobCrcStart(VsBlobWriter *w)
{
	w->do_crc = true;
	INIT_CRC32C(w->crc);
}

/*
 * VsBlobCrcEnd - the CRC-32C of the bytes written since VsBlobCrcStart.
 */
uint32
VsBlobCrcEnd(VsBlobWriter *w)
{
	w->do_crc = false;
	FIN_CRC32C(w->crc);
	return w->crc;
}

/*
 * VsBlobPatch - overwrite bytes already written to a region (through the
 * buffer manager; the pages are WAL-logged with the rest at the end), and
 * seal each page again.
 */
void
VsBlobPatch(Relation index, ForkNumber forknum, const VsRegion *region, uint64 offset,
			const void *data, Size len)
{
	const char *in = data;

	while (len > 0)
	{
		uint32		poff;
		BlockNumber blkno = VsBlobBlock(region, offset, &poff);
		Size		chunk = Min(len, (Size) (VS_BLOB_PAYLOAD - poff));
		Buffer		buf = ReadBufferExtended(index, forknum, blkno, RBM_NORMAL, NULL);

		LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(buf), blkno, VS_PAGE_BLOB);
		memcpy(PageGetContents(BufferGetPage(buf)) + poff, in, chunk);
		VsPageSeal(BufferGetPage(buf));
		MarkBufferDirty(buf);
		UnlockReleaseBuffer(buf);
		in += chunk;
		offset += chunk;
		len -= chunk;
	}
}

/*
 * blob_flush_page - put the page being filled into the fork: appended, or
 * into the next reserved block.
 */
static void
blob_flush_page(VsBlobWriter *w)
{
	Buffer		buf;

	if (w->limit > 0)
	{
		if (w->nblocks >= w->limit)
			elog(ERROR, "region of index \"%s\" outgrew its %u blocks",
				 RelationGetRelationName(w->index), w->limit);
		buf = ReadBufferExtended(w->index, w->forknum, w->first + w->nblocks, RBM_ZERO_AND_LOCK,
								 NULL);
	}
	else
	{
		buf = VsNewBuffer(w->index, w->forknum);
		if (BufferGetBlockNumber(buf) != w->first + w->nblocks)
			elog(ERROR, "unexpected block %u while building index \"%s\"",
				 BufferGetBlockNumber(buf), RelationGetRelationName(w->index));
	}
	VsPageSeal(w->page.data);
	memcpy(BufferGetPage(buf), w->page.data, BLCKSZ);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);

	w->nblocks++;
	w->used = 0;
	VsInitPage(w->page.data, VS_PAGE_BLOB);
}

/*
 * VsBlobWrite - append "len" bytes (zeros when "data" is NULL).
 */
void
VsBlobWrite(VsBlobWriter *w, const void *data, Size len)
{
	const char *in = data;

	while (len > 0)
	{
		Size		chunk = Min(len, (Size) (VS_BLOB_PAYLOAD - w->used));
		char	   *dst = PageGetContents(w->page.data) + w->used;

		if (in)
		{
			memcpy(dst, in, chunk);
			in += chunk;
		}
		else
			memset(dst, 0, chunk);
		if (w->do_crc)
			COMP_CRC32C(w->crc, dst, chunk);
		w->used += chunk;
		w->total += chunk;
		len -= chunk;
		if (w->used == VS_BLOB_PAYLOAD)
		{
			blob_flush_page(w);
			/* a cluster of many rows is gigabytes of pages */
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/*
 * VsBlobPad - zeros up to the next multiple of "align".
 */
void
VsBlobPad(VsBlobWriter *w, Size align)
{
	Size		rem = w->total % align;

	if (rem != 0)
		VsBlobWrite(w, NULL, align - rem);
}

/*
 * VsBlobEnd - flush the last partial page; the region it wrote.
 */
VsRegion
VsBlobEnd(VsBlobWriter *w)
{
	VsRegion	r;

	if (w->used > 0)
		blob_flush_page(w);
	r.start = w->first;
	r.nblocks = w->nblocks;
	r.nbytes = w->total;
	return r;
}

/*
 * VsDeletionBits - the deletion bits of a cluster's sealed rows, read from
 * the bitmap through "strategy" into palloc'd bytes: row i of the cluster
 * is bit *shift + i (VsRowDeleted).  NULL for a cluster of no rows.
 */
uint8 *
VsDeletionBits(Relation index, VsMetaPage meta, const VsClusterInfo *info,
			   BufferAccessStrategy strategy, uint32 *shift)
{
	uint64		firstbyte = info->first_row / 8;
	Size		nbytes;
	uint8	   *bits;

	*shift = 0;
	if (info->count == 0)
		return NULL;
	nbytes = (info->first_row + info->count - 1) / 8 - firstbyte + 1;
	*shift = (uint32) (info->first_row - firstbyte * 8);
	bits = palloc(nbytes);
	VsBlobRead(index, &meta->bitmap, firstbyte, bits, nbytes, strategy);
	return bits;
}

/*
 * VsReadMeta - copy the metapage into "meta", checking magic, version and
 * CRC (ERRCODE_INDEX_CORRUPTED, or ERRCODE_FEATURE_NOT_SUPPORTED for an
 * index of another format version).
 */
void
VsReadMeta(Relation index, VsMetaPage meta)
{
	(void) VsReadMetaExtended(index, meta, true);
}

/*
 * VsReadMetaExtended - VsReadMeta; with "check_crc" false, a metapage
 * whose CRC does not match is copied all the same, and the result says so
 * (false): vecstore_verify reports it.  Any other problem is an error.
 *
 * The CRC first, so that damage to the version or the magic number reads
 * as damage; the version before the page's layout, because an index of
 * format version 3 or older has a smaller special space (no CRC): it is
 * refused as a format this library does not read, which REINDEX rewrites.
 */
bool
VsReadMetaExtended(Relation index, VsMetaPage meta, bool check_crc)
{
	Buffer		buf;
	Page		page;
	VsMetaPage	m;

	buf = ReadBuffer(index, VS_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	m = (VsMetaPage) PageGetContents(page);
	if (!PageIsNew(page) && PageGetSpecialSize(page) == MAXALIGN(sizeof(VsPageOpaqueData)) &&
		VsPageGetOpaque(page)->crc != VsPageCrc(page))
	{
		if (check_crc)
			report_damaged(index, page, VS_METAPAGE_BLKNO);

		/*
		 * Nothing on a damaged metapage can be believed, not even its
		 * version: the caller (vecstore_verify) reports the damage alone.
		 */
		memcpy(meta, m, sizeof(VsMetaPageData));
		UnlockReleaseBuffer(buf);
		return false;
	}
	if (!PageIsNew(page) && m->magic == VS_MAGIC && m->version != VS_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("index \"%s\" has format version %u, this vecstore reads version %u",
						RelationGetRelationName(index), m->version, VS_VERSION),
				 errhint("Please REINDEX it.")));
	check_page_type(index, page, VS_METAPAGE_BLKNO, VS_PAGE_META);
	if (m->magic != VS_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a vecstore index", RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));
	memcpy(meta, m, sizeof(VsMetaPageData));
	UnlockReleaseBuffer(buf);
	return true;
}

/*
 * VsTryReadMeta - the metapage into "meta" when it is sound (VsReadMeta's
 * checks), false otherwise, never an error: for the planner, which must
 * not make a damaged index fail every query on its table (a sequential
 * scan still answers them).  An index with no blocks yet is not sound.
 */
bool
VsTryReadMeta(Relation index, VsMetaPage meta)
{
	Buffer		buf;
	Page		page;
	VsMetaPage	m;
	bool		sound;

	if (RelationGetNumberOfBlocks(index) == 0)
		return false;
	buf = ReadBuffer(index, VS_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	m = (VsMetaPage) PageGetContents(page);
	sound = !PageIsNew(page) &&
		PageGetSpecialSize(page) == MAXALIGN(sizeof(VsPageOpaqueData)) &&
		VsPageGetOpaque(page)->page_id == VS_PAGE_ID &&
		VsPageGetOpaque(page)->type == VS_PAGE_META &&
		VsPageGetOpaque(page)->crc == VsPageCrc(page) &&
		m->magic == VS_MAGIC && m->version == VS_VERSION;
	if (sound)
		memcpy(meta, m, sizeof(VsMetaPageData));
	UnlockReleaseBuffer(buf);
	return sound;
}

/*
 * VsBlobBlock - the block holding byte "offset" of a region, and the
 * offset within that page's payload.
 */
BlockNumber
VsBlobBlock(const VsRegion *region, uint64 offset, uint32 *page_offset)
{
	*page_offset = (uint32) (offset % VS_BLOB_PAYLOAD);
	return region->start + (BlockNumber) (offset / VS_BLOB_PAYLOAD);
}

/*
 * VsBlobRead - copy "len" bytes at "offset" of a region into "dst".
 *
 * Takes a share lock on each page in turn, read through "strategy" (NULL:
 * the default; a pass over a whole region, such as a segment rebuild or
 * vecstore_verify, passes a BAS_BULKREAD ring so as not to flood
 * shared_buffers, VACUUM its own).  The caller holds a lock on the index
 * that keeps the region in place.  Every reader of a region goes through
 * here.
 */
void
VsBlobRead(Relation index, const VsRegion *region, uint64 offset, void *dst, Size len,
		   BufferAccessStrategy strategy)
{
	char	   *out = dst;

	if (offset + len > region->nbytes)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("read past the end of a region in index \"%s\"",
						RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));

	while (len > 0)
	{
		uint32		poff;
		BlockNumber blkno = VsBlobBlock(region, offset, &poff);
		Size		chunk = Min(len, (Size) (VS_BLOB_PAYLOAD - poff));
		Buffer		buf;
		Page		page;

		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		VsCheckPage(index, page, blkno, VS_PAGE_BLOB);
		memcpy(out, PageGetContents(page) + poff, chunk);
		UnlockReleaseBuffer(buf);

		out += chunk;
		offset += chunk;
		len -= chunk;
	}
}

/*
 * VsDeltaChainBegin - start a walk over a cluster's delta chain, from
 * "head" (VsDirEntry.delta_head; InvalidBlockNumber for none).
 *
 * Each VsDeltaChainNext then leaves the next page of the chain in
 * chain->buf, pinned and locked in "lockmode" (BUFFER_LOCK_SHARE, or
 * BUFFER_LOCK_EXCLUSIVE for a caller that changes it through GenericXLog
 * before moving on), read through "strategy".  The chain's pages are read
 * in order, one lock at a time, which is the lock order inserts follow
 * (src/README).
 *
 * With "nblocks" > 0 (the index's size) the walk reports a damaged chain
 * instead of raising an error: a page past the end, a loop, a page that
 * is not a delta page or fails its CRC (its link) end the walk with
 * chain->problem set (and chain->blkno the block); vecstore_verify uses
 * that.  With 0 such a page is an ERRCODE_INDEX_CORRUPTED error
 * (VsCheckPage), as for any read.
 */
void
VsDeltaChainBegin(VsDeltaChain *chain, Relation index, BlockNumber head, int lockmode,
				  BufferAccessStrategy strategy, BlockNumber nblocks, Size tupsize)
{
	chain->index = index;
	chain->lockmode = lockmode;
	chain->strategy = strategy;
	chain->nblocks = nblocks;
	chain->steps = 0;
	chain->limit = nblocks > 0 ? nblocks : VS_CHAIN_FIRST_LIMIT;
	chain->tupsize = tupsize;
	chain->next = head;
	chain->buf = InvalidBuffer;
	chain->blkno = InvalidBlockNumber;
	chain->problem = VS_DELTA_CHAIN_OK;
	chain->startoff = FirstOffsetNumber;
	chain->first = FirstOffsetNumber;
	chain->started = false;
}

/*
 * VsDeltaChainBeginRows - a walk over the delta rows of cluster "info" of
 * a generation: its chain (directory entry "entry") from the first row
 * the generation did not fold into the cluster's sealed rows (vsam.h,
 * VsClusterInfo).  On each page, the rows to read start at chain->first.
 */
void
VsDeltaChainBeginRows(VsDeltaChain *chain, Relation index, const VsDirEntry *entry,
					  const VsClusterInfo *info, int lockmode, BufferAccessStrategy strategy,
					  BlockNumber nblocks, Size tupsize)
{
	if (!VsDeltaFromHead(entry, info))
	{
		VsDeltaChainBegin(chain, index, info->delta_blk, lockmode, strategy, nblocks, tupsize);
		chain->startoff = Max(info->delta_off, FirstOffsetNumber);
	}
	else
		VsDeltaChainBegin(chain, index, entry->delta_head, lockmode, strategy, nblocks, tupsize);
}

/*
 * VsDeltaChainNext - release the current page (if any) and move to the
 * next one of the chain.  True with the page in chain->buf (and its block
 * in chain->blkno); false at the end of the chain, or at a damaged page
 * of a checked walk (chain->problem), with no buffer held.
 */
bool
VsDeltaChainNext(VsDeltaChain *chain)
{
	Page		page;
	VsPageOpaque opaque;

	if (BufferIsValid(chain->buf))
	{
		chain->next = VsPageGetOpaque(BufferGetPage(chain->buf))->nextblkno;
		UnlockReleaseBuffer(chain->buf);
		chain->buf = InvalidBuffer;
	}
	if (!BlockNumberIsValid(chain->next))
		return false;

	/* VACUUM's walks (exclusive locks) pace themselves as VACUUM does */
	if (chain->lockmode == BUFFER_LOCK_EXCLUSIVE)
		vacuum_delay_point();
	else
		CHECK_FOR_INTERRUPTS();

	chain->blkno = chain->next;
	chain->first = chain->started ? FirstOffsetNumber : chain->startoff;
	chain->started = true;
	if (chain->nblocks > 0 && (chain->blkno >= chain->nblocks || ++chain->steps > chain->nblocks))
	{
		chain->problem = chain->blkno >= chain->nblocks ? VS_DELTA_CHAIN_PAST_END : VS_DELTA_CHAIN_LOOPS;
		return false;
	}

	/*
	 * An unchecked walk longer than the fork is a loop (a page copied over
	 * another: the CRC does not cover a page's block): an error, not a
	 * scan or VACUUM that never ends.  The fork's length is asked for only
	 * when a chain passes the last length known; inserts may lengthen both.
	 */
	if (chain->nblocks == 0 && ++chain->steps > chain->limit)
	{
		chain->limit = RelationGetNumberOfBlocks(chain->index);
		if (chain->steps > chain->limit)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a delta chain that loops at block %u",
							RelationGetRelationName(chain->index), chain->blkno),
					 errhint("Please REINDEX it.")));
	}
	chain->buf = ReadBufferExtended(chain->index, MAIN_FORKNUM, chain->blkno, RBM_NORMAL,
									chain->strategy);
	LockBuffer(chain->buf, chain->lockmode);
	page = BufferGetPage(chain->buf);
	if (chain->nblocks == 0)
	{
		VsCheckPage(chain->index, page, chain->blkno, VS_PAGE_DELTA);
		if (!delta_items_sound(page, chain->tupsize))
		{
			BlockNumber blkno = chain->blkno;

			UnlockReleaseBuffer(chain->buf);
			chain->buf = InvalidBuffer;
			report_bad_items(chain->index, blkno);
		}
	}
	else
	{
		opaque = VsPageGetOpaque(page);
		if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(VsPageOpaqueData)) ||
			opaque->page_id != VS_PAGE_ID || opaque->type != VS_PAGE_DELTA)
			chain->problem = VS_DELTA_CHAIN_NOT_DELTA;
		else if (opaque->crc != VsPageCrc(page) || !delta_lines_sound(page) ||
				 !delta_items_sound(page, chain->tupsize))
			chain->problem = VS_DELTA_CHAIN_DAMAGED;
		if (chain->problem != VS_DELTA_CHAIN_OK)
		{
			UnlockReleaseBuffer(chain->buf);
			chain->buf = InvalidBuffer;
			return false;
		}
	}
	return true;
}

/*
 * VsDeltaChainNextRow - the next row of a walk begun by
 * VsDeltaChainBeginRows, removed ones included (VS_DELTA_DEAD), or NULL at
 * the end (as VsDeltaChainNext).  The row lies on the page in chain->buf,
 * at block chain->blkno and offset chain->off, valid until the next call.
 * A walk goes row by row or page by page (VsDeltaChainNext), not both.
 */
VsDeltaTuple
VsDeltaChainNextRow(VsDeltaChain *chain)
{
	for (;;)
	{
		if (BufferIsValid(chain->buf))
		{
			Page		page = BufferGetPage(chain->buf);

			if (chain->off < PageGetMaxOffsetNumber(page))
			{
				chain->off = OffsetNumberNext(chain->off);
				return (VsDeltaTuple) PageGetItem(page, PageGetItemId(page, chain->off));
			}
		}
		if (!VsDeltaChainNext(chain))
			return NULL;
		chain->off = chain->first - 1;
	}
}

/*
 * VsDeltaChainEnd - release the page of a walk stopped before its end.
 */
void
VsDeltaChainEnd(VsDeltaChain *chain)
{
	if (BufferIsValid(chain->buf))
		UnlockReleaseBuffer(chain->buf);
	chain->buf = InvalidBuffer;
}

/*
 * The backend's metadata caches (VsGetMetaCache), one per index it has
 * read lately, in a list of their own rather than in rd_amcache: the
 * relcache rebuilds an entry with a pfree of rd_amcache, which freed a
 * cache a scan (a cursor) was still reading and left its memory behind.
 * Here an invalidation of the index only marks its cache stale; a stale
 * cache goes when no scan pins it, at the latest when the transaction
 * ends (no scan outlives it; an aborted one never unpins).  Nothing is
 * freed in the invalidation callback itself, so a caller that holds a
 * cache without a pin for the length of one call (an insert, VACUUM)
 * never has it freed under it.
 */
static VsMetaCacheData *meta_caches = NULL;

static void
meta_cache_free(VsMetaCacheData *cache)
{
	for (VsMetaCacheData **p = &meta_caches; *p != NULL; p = &(*p)->next)
	{
		if (*p == cache)
		{
			*p = cache->next;
			break;
		}
	}
	MemoryContextDelete(cache->cxt);
}

static void
meta_cache_invalidate(Datum arg, Oid relid)
{
	for (VsMetaCacheData *c = meta_caches; c != NULL; c = c->next)
	{
		if (!OidIsValid(relid) || c->indexoid == relid)
			c->stale = true;
	}
}

static void
meta_cache_xact_end(XactEvent event, void *arg)
{
	VsMetaCacheData *c = meta_caches;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT)
		return;
	while (c != NULL)
	{
		VsMetaCacheData *next = c->next;

		c->pins = 0;
		if (c->stale)
			meta_cache_free(c);
		c = next;
	}
}

/*
 * VsMetaCacheInit - the callbacks of the metadata caches (from _PG_init).
 */
void
VsMetaCacheInit(void)
{
	CacheRegisterRelcacheCallback(meta_cache_invalidate, (Datum) 0);
	RegisterXactCallback(meta_cache_xact_end, NULL);
}

/*
 * VsMetaCacheRelease - drop a scan's pin on a metadata cache (taken by
 * incrementing cache->pins); a stale cache goes with its last pin.
 */
void
VsMetaCacheRelease(Relation index, VsMetaCache cache)
{
	if (cache->pins > 0)
		cache->pins--;
	if (cache->pins == 0 && cache->stale)
		meta_cache_free(cache);
}

/*
 * VsReadCentroids - the centroids of the generation of "meta" into
 * "centroids" (nclusters * dims floats); returns the hosts of merged
 * clusters (nclusters entries, palloc'd, -1 for a cluster not merged), or
 * NULL when the region has none (no cluster was ever merged).
 */
int32 *
VsReadCentroids(Relation index, const VsMetaPageData *meta, float *centroids,
				BufferAccessStrategy bas)
{
	Size		cbytes = (Size) meta->nclusters * meta->dims * sizeof(float);
	Size		hbytes = (Size) meta->nclusters * sizeof(int32);
	int32	   *hosts;

	if (meta->centroids.nbytes != cbytes && meta->centroids.nbytes != cbytes + hbytes)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a centroid region of " UINT64_FORMAT " bytes where %zu or %zu were expected",
						RelationGetRelationName(index), meta->centroids.nbytes, cbytes, cbytes + hbytes),
				 errhint("Please REINDEX it.")));
	VsBlobRead(index, &meta->centroids, 0, centroids, cbytes, bas);
	if (meta->centroids.nbytes == cbytes)
		return NULL;
	hosts = palloc(Max(hbytes, 1));
	VsBlobRead(index, &meta->centroids, cbytes, hosts, hbytes, bas);
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		int32		h = hosts[c];

		/* a host is a cluster that was not merged itself */
		if (h < -1 || h >= (int32) meta->nclusters || h == (int32) c ||
			(h >= 0 && hosts[h] >= 0))
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("index \"%s\" has a merged cluster %u with host %d",
							RelationGetRelationName(index), c, h),
					 errhint("Please REINDEX it.")));
	}
	return hosts;
}

/*
 * VsMetaCachePrepare - the packed centroids that route rows exactly as the
 * build did (VsNearestCluster), made the first time a row is routed: with
 * merged clusters, those of the others only (live_ids maps them back).
 * Scans never route a row, so a backend that only reads does not pay for
 * them (about a fifth of the cache's cost in a new connection at 1M
 * rows, whose fresh memory the packing faults in).
 */
void
VsMetaCachePrepare(VsMetaCache cache)
{
	const VsMetaPageData *meta = &cache->meta;
	MemoryContext oldcxt;
	float	   *norms;

	if (cache->prepared != NULL)
		return;
	oldcxt = MemoryContextSwitchTo(cache->cxt);
	norms = palloc(sizeof(float) * Max(meta->nclusters, 1));
	if (cache->hosts == NULL)
	{
		VsKmeansCentroidNorms(cache->centroids, meta->nclusters, meta->dims, norms);
		cache->prepared = VsKmeansPrepare(cache->centroids, norms, meta->nclusters, meta->dims,
										  (VsMetric) meta->row_metric, &VsKmeansServerHooks);
	}
	else
	{
		float	   *live = palloc_extended(sizeof(float) * meta->dims * Max(cache->nlive, 1),
										   MCXT_ALLOC_HUGE);
		int		   *live_ids = palloc(sizeof(int) * Max(cache->nlive, 1));
		int			n = 0;

		for (uint32 c = 0; c < meta->nclusters; c++)
		{
			if (cache->hosts[c] >= 0)
				continue;
			live_ids[n] = (int) c;
			memcpy(live + (Size) n * meta->dims, cache->centroids + (Size) c * meta->dims,
				   sizeof(float) * meta->dims);
			n++;
		}
		VsKmeansCentroidNorms(live, n, meta->dims, norms);
		cache->prepared = VsKmeansPrepare(live, norms, n, meta->dims,
										  (VsMetric) meta->row_metric, &VsKmeansServerHooks);
		cache->live_ids = live_ids;
		pfree(live);
	}
	pfree(norms);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * VsGetMetaCache - the metapage and centroids of the index's current
 * generation, cached for the backend (see meta_caches above).  The
 * metapage is re-read on every call, so a new generation is noticed; the
 * centroids are reloaded only when their place changes, or after the
 * index's relcache entry was invalidated.
 */
VsMetaCache
VsGetMetaCache(Relation index)
{
	Oid			indexoid = RelationGetRelid(index);
	VsMetaCache cache = NULL;
	VsMetaPageData meta;
	MemoryContext cxt;
	MemoryContext oldcxt;
	Size		nfloats;

	VsReadMeta(index, &meta);
	for (VsMetaCacheData *c = meta_caches, *next; c != NULL; c = next)
	{
		next = c->next;
		if (c->indexoid != indexoid)
			continue;
		if (!c->stale)
			cache = c;
		else if (c->pins == 0)
		{
			/*
			 * Stale and read by no scan: no caller holds it across this call
			 * (inserts and VACUUM take it for one call, scans pin it), so it
			 * goes now, not at the transaction's end (a long load meets an
			 * invalidation at every VACUUM or ANALYZE of its table).
			 */
			meta_cache_free(c);
		}
	}

	/*
	 * The centroids and the routing graph are kept while their regions are
	 * the same: a compaction changes the generation, not them, and a scan
	 * in progress in this backend (a cursor) keeps reading them.  Blocks
	 * they left may hold them again later: "moves" tells a move from that.
	 */
	if (cache != NULL && RelFileNodeEquals(cache->node, index->rd_node) &&
		cache->meta.nclusters == meta.nclusters &&
		cache->meta.centroids.start == meta.centroids.start &&
		cache->meta.centroids.nbytes == meta.centroids.nbytes &&
		cache->meta.routing.start == meta.routing.start &&
		cache->meta.routing.nbytes == meta.routing.nbytes &&
		cache->meta.moves == meta.moves)
	{
		cache->meta = meta;
		return cache;
	}

	/* a cache a scan still reads goes when that scan ends */
	if (cache != NULL)
	{
		cache->stale = true;
		if (cache->pins == 0)
			meta_cache_free(cache);
	}

	/*
	 * Loaded in a context of the current one, so that an error (a damaged
	 * centroid page, a cancel) takes it along; kept only once complete.
	 */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "vecstore metadata cache",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	cache = palloc0(sizeof(VsMetaCacheData));
	cache->cxt = cxt;
	cache->indexoid = indexoid;
	cache->node = index->rd_node;
	cache->meta = meta;
	nfloats = (Size) meta.nclusters * meta.dims;
	cache->centroids = palloc_extended(Max(nfloats, 1) * sizeof(float), MCXT_ALLOC_HUGE);
	cache->hosts = VsReadCentroids(index, &meta, cache->centroids, NULL);
	cache->nlive = (int) meta.nclusters;
	if (cache->hosts != NULL)
	{
		/* each host's merged clusters, for the scans' delta rows */
		int32	   *next;

		cache->guest_start = palloc0(sizeof(int32) * (meta.nclusters + 1));
		for (uint32 c = 0; c < meta.nclusters; c++)
		{
			if (cache->hosts[c] >= 0)
			{
				cache->nlive--;
				cache->guest_start[cache->hosts[c] + 1]++;
			}
		}
		for (uint32 h = 0; h < meta.nclusters; h++)
			cache->guest_start[h + 1] += cache->guest_start[h];
		cache->guests = palloc(sizeof(int32) * Max(meta.nclusters - cache->nlive, 1));
		next = palloc(sizeof(int32) * meta.nclusters);
		memcpy(next, cache->guest_start, sizeof(int32) * meta.nclusters);
		for (uint32 c = 0; c < meta.nclusters; c++)
		{
			if (cache->hosts[c] >= 0)
				cache->guests[next[cache->hosts[c]]++] = (int32) c;
		}
		pfree(next);
	}

	/* the graph over the centroids, checked once as it is loaded */
	if (meta.routing.nbytes > 0)
	{
		VsMetric	gmetric = meta.metric == VS_METRIC_L2 ? VS_METRIC_L2 : VS_METRIC_IP;
		char	   *mem = palloc_extended(meta.routing.nbytes + VS_HNSW_ALIGN, MCXT_ALLOC_HUGE);
		char	   *graph = (char *) TYPEALIGN(VS_HNSW_ALIGN, mem);
		const char *problem;

		VsBlobRead(index, &meta.routing, 0, graph, meta.routing.nbytes, NULL);
		problem = VsHnswValidate(graph, meta.routing.nbytes, meta.nclusters, meta.dims, gmetric);
		if (problem != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("routing graph of index \"%s\" is not usable",
							RelationGetRelationName(index)),
					 errdetail("%s", problem),
					 errhint("Please REINDEX it.")));
		cache->routing = graph;
	}
	MemoryContextSwitchTo(oldcxt);

	MemoryContextSetParent(cxt, CacheMemoryContext);
	cache->next = meta_caches;
	meta_caches = cache;
	return cache;
}
