/*-------------------------------------------------------------------------
 *
 * vspage.c
 *	  Page, metapage and blob-region helpers of the vecstore index, and
 *	  the per-backend metadata cache.
 *
 * Everything here reads or initialises pages; WAL logging is the caller's
 * business (bulk pages are logged with log_newpage_range at the end of a
 * build, single-page changes go through GenericXLog).
 *
 * IDENTIFICATION
 *	  src/vspage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsam.h"

/*
 * VsInitPage - initialise an empty page of the given type.
 *
 * Blob pages mark their whole payload as used (pd_lower past it), so that
 * a standard page image has no hole inside the payload.
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
}

/*
 * VsCheckPage - error with ERRCODE_INDEX_CORRUPTED unless "page" is a
 * vecstore page of the expected type.
 */
void
VsCheckPage(Relation index, Page page, BlockNumber blkno, uint16 type)
{
	VsPageOpaque opaque;

	if (PageIsNew(page) || PageGetSpecialSize(page) != MAXALIGN(sizeof(VsPageOpaqueData)))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" contains an unexpected page at block %u",
						RelationGetRelationName(index), blkno),
				 errhint("Please REINDEX it.")));
	opaque = VsPageGetOpaque(page);
	if (opaque->page_id != VS_PAGE_ID || opaque->type != type)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a page of type %u at block %u where type %u was expected",
						RelationGetRelationName(index), opaque->type, blkno, type),
				 errhint("Please REINDEX it.")));
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
 * VsReadMeta - copy the metapage into "meta", checking magic and version.
 */
void
VsReadMeta(Relation index, VsMetaPage meta)
{
	Buffer		buf;
	Page		page;
	VsMetaPage	m;

	buf = ReadBuffer(index, VS_METAPAGE_BLKNO);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	VsCheckPage(index, page, VS_METAPAGE_BLKNO, VS_PAGE_META);
	m = (VsMetaPage) PageGetContents(page);
	if (m->magic != VS_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a vecstore index", RelationGetRelationName(index)),
				 errhint("Please REINDEX it.")));
	if (m->version != VS_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has format version %u, this vecstore reads version %u",
						RelationGetRelationName(index), m->version, VS_VERSION),
				 errhint("Please REINDEX it.")));
	memcpy(meta, m, sizeof(VsMetaPageData));
	UnlockReleaseBuffer(buf);
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
 * Takes a share lock on each page in turn.  The caller holds a lock on
 * the index that keeps the region in place.
 */
void
VsBlobRead(Relation index, const VsRegion *region, uint64 offset, void *dst, Size len)
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

		buf = ReadBuffer(index, blkno);
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

/* palloc and CHECK_FOR_INTERRUPTS for vskmeans.c, without progress */
static void *
server_alloc(size_t size)
{
	return palloc_extended(Max(size, 1), MCXT_ALLOC_HUGE);
}

static void
server_free(void *ptr)
{
	pfree(ptr);
}

static void
server_check_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

const VsKmeansHooks VsKmeansServerHooks = {
	server_alloc, server_free, server_check_interrupts, NULL, NULL, NULL, NULL
};

/*
 * VsGetMetaCache - the metapage and centroids of the index's current
 * generation, cached in rd_amcache (in a child of rd_indexcxt, so a
 * relcache rebuild frees it).  The metapage is re-read on every call, so a
 * new generation is noticed; the centroids are reloaded only when it
 * changes.
 */
VsMetaCache
VsGetMetaCache(Relation index)
{
	VsMetaCache cache = (VsMetaCache) index->rd_amcache;
	VsMetaPageData meta;
	MemoryContext cxt;
	MemoryContext oldcxt;
	Size		nfloats;
	float	   *norms;

	VsReadMeta(index, &meta);
	if (cache != NULL && cache->meta.generation == meta.generation &&
		cache->meta.nclusters == meta.nclusters)
	{
		cache->meta = meta;
		return cache;
	}

	if (cache != NULL)
	{
		index->rd_amcache = NULL;
		MemoryContextDelete(cache->cxt);
	}

	cxt = AllocSetContextCreate(index->rd_indexcxt, "vecstore metadata cache",
								ALLOCSET_SMALL_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	cache = palloc0(sizeof(VsMetaCacheData));
	cache->cxt = cxt;
	cache->meta = meta;
	nfloats = (Size) meta.nclusters * meta.dims;
	cache->centroids = palloc_extended(Max(nfloats, 1) * sizeof(float), MCXT_ALLOC_HUGE);
	VsBlobRead(index, &meta.centroids, 0, cache->centroids, nfloats * sizeof(float));

	/* the packed centroids that route rows exactly as the build did */
	norms = palloc(sizeof(float) * Max(meta.nclusters, 1));
	VsKmeansCentroidNorms(cache->centroids, meta.nclusters, meta.dims, norms);
	cache->prepared = VsKmeansPrepare(cache->centroids, norms, meta.nclusters, meta.dims,
									  (VsMetric) meta.row_metric, &VsKmeansServerHooks);

	/* the graph over the centroids, checked once as it is loaded */
	if (meta.routing.nbytes > 0)
	{
		VsMetric	gmetric = meta.metric == VS_METRIC_L2 ? VS_METRIC_L2 : VS_METRIC_IP;
		char	   *mem = palloc_extended(meta.routing.nbytes + VS_HNSW_ALIGN, MCXT_ALLOC_HUGE);
		char	   *graph = (char *) TYPEALIGN(VS_HNSW_ALIGN, mem);
		const char *problem;

		VsBlobRead(index, &meta.routing, 0, graph, meta.routing.nbytes);
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

	index->rd_amcache = cache;
	return cache;
}

/*
 * VsNormalize - scale "x" to unit length in place (a zero vector stays
 * zero).  Used for cosine routing.
 */
void
VsNormalize(float *x, int dims)
{
	double		norm = 0.0;

	for (int i = 0; i < dims; i++)
		norm += (double) x[i] * (double) x[i];
	if (norm > 0.0)
	{
		norm = sqrt(norm);
		for (int i = 0; i < dims; i++)
			x[i] = (float) (x[i] / norm);
	}
}

/*
 * VsDatumToVector - detoast an indexed or query value and check that it
 * has the index's "dims" dimensions.
 *
 * Result is palloc'd in the current context (or points into the datum).
 */
Vector *
VsDatumToVector(Relation index, Datum value, int dims)
{
	Vector	   *v = DatumGetVector(value);

	if (v->dim != dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions but index \"%s\" has %d",
						v->dim, RelationGetRelationName(index), dims),
				 errhint("Cast the value to vector(%d).", dims)));
	return v;
}

/*
 * VsNearestCluster - the cluster a new row goes to: the one the build
 * would have put it in (same centroids, same metric, same arithmetic).
 */
int
VsNearestCluster(VsMetaCache cache, const float *x)
{
	int32		cluster = 0;

	if (cache->meta.nclusters <= 1)
		return 0;
	VsKmeansAssignPrepared(cache->prepared, x, 1, &cluster, NULL, &VsKmeansServerHooks);
	return cluster;
}
