/*-------------------------------------------------------------------------
 *
 * vsscan.c
 *	  Index scans of vecstore: route to the nearest clusters, compute exact
 *	  distances through the segment mapping and the delta pages, stream
 *	  rows in distance order.
 *
 * A scan works in batches of clusters.  The first batch is the
 * vecstore.probes clusters nearest to the query; every row in them (sealed
 * rows through the mapped segment, skipping those the deletion bitmap
 * marks; delta rows from the fork) gets its exact distance and goes into a
 * min-heap, from which rows are returned nearest first.
 *
 * When the executor keeps asking (a WHERE clause is discarding rows), the
 * scan widens: the next clusters in order of centroid distance are added
 * to the heap, until vecstore.max_scan_tuples rows have been examined.
 * Rows of the new clusters that are nearer than a row already returned
 * cannot be returned any more (the executor must see non-decreasing
 * distances), so the scan widens early, once the rows returned reach
 * 1/VS_WIDEN_FRACTION of the rows examined, rather than after draining the
 * batch: draining a cluster would take the last distance out to its
 * farthest row, past most rows of the clusters that follow.  A query with
 * a small LIMIT and no filter never gets there.  The order is exact; the
 * set of rows is approximate, as for every IVF index.
 *
 * IDENTIFICATION
 *	  src/vsscan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsam.h"

/* widen once the rows returned reach 1/VS_WIDEN_FRACTION of those examined */
#define VS_WIDEN_FRACTION	8

typedef struct VsScanOpaqueData
{
	MemoryContext scanCtx;		/* lives from rescan to rescan */
	VsMetaPageData meta;
	const char *body;			/* sealed region, mapped and pinned */
	float	   *query;			/* dims floats; NULL for a NULL query */
	int		   *order;			/* clusters, nearest centroid first */
	int			next_cluster;	/* next position in "order" */
	VsCandidate *cands;			/* a min-heap of the batch's rows */
	int			ncands;
	int			maxcands;
	bool		started;
	bool		have_last;
	double		last_distance;
	int64		scanned;		/* rows examined so far */
	int64		returned;		/* rows returned so far */
	uint8	   *bitmap;			/* scratch for deletion bits */
	Size		bitmap_size;
} VsScanOpaqueData;

typedef VsScanOpaqueData *VsScanOpaque;

/* a cluster with its centroid distance, for ordering */
typedef struct ClusterDist
{
	int			cluster;
	double		distance;
} ClusterDist;

/*
 * compare_distance - float8 order with NaN last (as ORDER BY sorts it).
 */
static inline int
compare_distance(double a, double b)
{
	if (isnan(a))
		return isnan(b) ? 0 : 1;
	if (isnan(b))
		return -1;
	return (a > b) - (a < b);
}

/*
 * compare_candidates - by distance, then TID (a stable, repeatable order).
 */
static int
compare_candidates(const void *a, const void *b)
{
	const VsCandidate *ca = a;
	const VsCandidate *cb = b;
	int			c = compare_distance(ca->distance, cb->distance);

	if (c != 0)
		return c;
	return ItemPointerCompare((ItemPointer) &ca->tid, (ItemPointer) &cb->tid);
}

/*
 * heap_sift_down - restore the min-heap property below position "i".
 */
static void
heap_sift_down(VsCandidate *heap, int n, int i)
{
	VsCandidate item = heap[i];

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= n)
			break;
		if (child + 1 < n && compare_candidates(&heap[child + 1], &heap[child]) < 0)
			child++;
		if (compare_candidates(&heap[child], &item) >= 0)
			break;
		heap[i] = heap[child];
		i = child;
	}
	heap[i] = item;
}

/*
 * heap_pop - remove and return the nearest candidate of a non-empty heap.
 */
static VsCandidate
heap_pop(VsCandidate *heap, int *n)
{
	VsCandidate top = heap[0];

	(*n)--;
	if (*n > 0)
	{
		heap[0] = heap[*n];
		heap_sift_down(heap, *n, 0);
	}
	return top;
}

/*
 * compare_clusters - by centroid distance, then cluster number.
 */
static int
compare_clusters(const void *a, const void *b)
{
	const ClusterDist *ca = a;
	const ClusterDist *cb = b;
	int			c = compare_distance(ca->distance, cb->distance);

	if (c != 0)
		return c;
	return (ca->cluster > cb->cluster) - (ca->cluster < cb->cluster);
}

/*
 * add_candidate - append a row to the batch, unless it is nearer than a
 * row already returned (it would break the order).
 */
static inline void
add_candidate(VsScanOpaque so, ItemPointer tid, double distance)
{
	if (so->have_last && compare_distance(distance, so->last_distance) < 0)
		return;
	if (so->ncands == so->maxcands)
	{
		so->maxcands *= 2;
		so->cands = repalloc_huge(so->cands, sizeof(VsCandidate) * so->maxcands);
	}
	so->cands[so->ncands].tid = *tid;
	so->cands[so->ncands].distance = distance;
	so->ncands++;
}

/*
 * row_distance - the ordering key of a row: for L2 the squared distance
 * (the square root, which keeps the order, is taken when the row is
 * returned, see key_to_distance), for the others the distance itself; 0
 * for a NULL query (every row is as near as any other).
 */
static inline double
row_distance(VsScanOpaque so, const float *x)
{
	if (so->query == NULL)
		return 0.0;
	if (so->meta.metric == VS_METRIC_L2)
		return (double) VsKernels.l2_squared(so->query, x, so->meta.dims);
	return VsMetricDistance((VsMetric) so->meta.metric, so->query, x, so->meta.dims);
}

/*
 * key_to_distance - the operator's value from an ordering key: the same
 * float8 l2_distance() returns, sqrt of the float sum.
 */
static inline double
key_to_distance(VsScanOpaque so, double key)
{
	if (so->meta.metric == VS_METRIC_L2 && so->query != NULL)
		return sqrt(key);
	return key;
}

/*
 * scan_cluster - every live row of one cluster into the batch.
 */
static void
scan_cluster(IndexScanDesc scan, int cluster)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	int			dims = so->meta.dims;
	const VsClusterInfo *info;
	VsDirEntry	entry;
	BlockNumber blkno;

	/* sealed rows, through the mapping (checked the first time we read them) */
	so->body = VsSegmentCluster(index, &so->meta, so->body, cluster);
	info = ((const VsClusterInfo *) (so->body + sizeof(VsSealedHeader))) + cluster;
	if (info->count > 0)
	{
		const float *vecs = (const float *) (so->body + info->vec_offset);
		const char *tids = so->body + info->tid_offset;
		uint64		firstbyte = info->first_row / 8;
		uint64		lastbyte = (info->first_row + info->count - 1) / 8;
		Size		nbytes = lastbyte - firstbyte + 1;

		/* the deletion bits of this cluster's rows */
		if (nbytes > so->bitmap_size)
		{
			so->bitmap = so->bitmap ? repalloc(so->bitmap, nbytes) : palloc(nbytes);
			so->bitmap_size = nbytes;
		}
		VsBlobRead(index, &so->meta.bitmap, firstbyte, so->bitmap, nbytes);

		for (uint32 i = 0; i < info->count; i++)
		{
			uint64		row = info->first_row + i - firstbyte * 8;
			ItemPointerData tid;

			if (so->bitmap[row / 8] & (1 << (row % 8)))
				continue;
			memcpy(&tid, tids + sizeof(ItemPointerData) * i, sizeof(ItemPointerData));
			add_candidate(so, &tid, row_distance(so, vecs + (Size) i * dims));
		}
		so->scanned += info->count;
	}

	/* delta rows, from the fork */
	VsBlobRead(index, &so->meta.directory, (uint64) cluster * sizeof(VsDirEntry),
			   &entry, sizeof(entry));
	blkno = entry.delta_head;
	while (BlockNumberIsValid(blkno))
	{
		Buffer		buf;
		Page		page;
		OffsetNumber maxoff;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBuffer(index, blkno);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		VsCheckPage(index, page, blkno, VS_PAGE_DELTA);
		maxoff = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
		{
			VsDeltaTuple tup = (VsDeltaTuple) PageGetItem(page, PageGetItemId(page, off));

			if (tup->flags & VS_DELTA_DEAD)
				continue;
			add_candidate(so, &tup->tid, row_distance(so, tup->x));
			so->scanned++;
		}
		blkno = VsPageGetOpaque(page)->nextblkno;
		UnlockReleaseBuffer(buf);
	}
}

/*
 * load_batch - scan the next "n" clusters and add their rows to the heap
 * (a heap rather than a sort: the executor usually wants only the first
 * few rows).
 */
static void
load_batch(IndexScanDesc scan, int n)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	MemoryContext oldcxt = MemoryContextSwitchTo(so->scanCtx);

	while (n-- > 0 && so->next_cluster < (int) so->meta.nclusters)
	{
		CHECK_FOR_INTERRUPTS();
		scan_cluster(scan, so->order[so->next_cluster++]);
	}
	for (int i = so->ncands / 2 - 1; i >= 0; i--)
		heap_sift_down(so->cands, so->ncands, i);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * route - order the clusters by the distance of their centroid to the
 * query (by angle for cosine; any order for a NULL query).
 */
static void
route(IndexScanDesc scan)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	VsMetaCache cache = VsGetMetaCache(scan->indexRelation);
	int			nclusters = cache->meta.nclusters;
	int			dims = cache->meta.dims;
	ClusterDist *cd = palloc(sizeof(ClusterDist) * nclusters);
	float	   *q = NULL;

	if (so->query != NULL && cache->meta.metric == VS_METRIC_COSINE)
	{
		q = palloc(sizeof(float) * dims);
		memcpy(q, so->query, sizeof(float) * dims);
		VsNormalize(q, dims);
	}
	for (int c = 0; c < nclusters; c++)
	{
		const float *cx = cache->centroids + (Size) c * dims;

		cd[c].cluster = c;
		if (so->query == NULL)
			cd[c].distance = 0.0;
		else if (cache->meta.metric == VS_METRIC_L2)
			cd[c].distance = VsKernels.l2_squared(so->query, cx, dims);
		else if (cache->meta.metric == VS_METRIC_COSINE)
			cd[c].distance = -(double) VsKernels.inner_product(q, cx, dims);
		else
			cd[c].distance = -(double) VsKernels.inner_product(so->query, cx, dims);
	}
	qsort(cd, nclusters, sizeof(ClusterDist), compare_clusters);
	for (int c = 0; c < nclusters; c++)
		so->order[c] = cd[c].cluster;
	pfree(cd);
	if (q)
		pfree(q);
}

/*
 * vsbeginscan - allocate the scan state.
 */
IndexScanDesc
vsbeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	VsScanOpaque so = palloc0(sizeof(VsScanOpaqueData));

	so->scanCtx = AllocSetContextCreate(CurrentMemoryContext, "vecstore scan context",
										ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc(sizeof(bool) * Max(norderbys, 1));
	for (int i = 0; i < Max(norderbys, 1); i++)
		scan->xs_orderbynulls[i] = true;
	return scan;
}

/*
 * vsrescan - start (again) with a new query.  The work happens on the
 * first vsgettuple, so a rescan that is never read costs nothing.
 */
void
vsrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;

	if (so->body)
		VsSegmentRelease(so->body);
	so->body = NULL;
	MemoryContextReset(so->scanCtx);
	so->query = NULL;
	so->order = NULL;
	so->cands = NULL;
	so->bitmap = NULL;
	so->bitmap_size = 0;
	so->ncands = so->maxcands = 0;
	so->next_cluster = 0;
	so->started = false;
	so->have_last = false;
	so->scanned = 0;
	so->returned = 0;

	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
}

/*
 * vsgettuple - the next row in distance order.
 */
bool
vsgettuple(IndexScanDesc scan, ScanDirection dir)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;

	if (!so->started)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(so->scanCtx);
		VsMetaCache cache;

		if (scan->numberOfOrderBys == 0 || scan->orderByData[0].sk_attno != 1)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("vecstore index scans need an ORDER BY distance operator")));

		cache = VsGetMetaCache(scan->indexRelation);
		so->meta = cache->meta;
		if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
		{
			Vector	   *q = VsDatumToVector(scan->indexRelation,
											scan->orderByData[0].sk_argument,
											so->meta.dims);

			so->query = palloc(sizeof(float) * so->meta.dims);
			memcpy(so->query, q->x, sizeof(float) * so->meta.dims);
		}
		so->order = palloc(sizeof(int) * so->meta.nclusters);
		route(scan);
		so->body = VsSegmentBody(scan->indexRelation, &so->meta);
		so->maxcands = 1024;
		so->cands = palloc_extended(sizeof(VsCandidate) * so->maxcands, MCXT_ALLOC_HUGE);
		MemoryContextSwitchTo(oldcxt);

		pgstat_count_index_scan(scan->indexRelation);
		so->started = true;
		load_batch(scan, Min(vecstore_probes, (int) so->meta.nclusters));
	}

	for (;;)
	{
		bool		more = so->next_cluster < (int) so->meta.nclusters &&
			so->scanned < vecstore_max_scan_tuples;

		/* widen before the heap runs low (see the file header), or when empty */
		if (more && (so->ncands == 0 ||
					 so->returned >= so->scanned / VS_WIDEN_FRACTION))
		{
			load_batch(scan, Max(1, Min(vecstore_probes, (int) so->meta.nclusters)));
			continue;
		}

		while (so->ncands > 0)
		{
			VsCandidate c = heap_pop(so->cands, &so->ncands);

			/* rows nearer than the last returned came too late: skip them */
			if (so->have_last && compare_distance(c.distance, so->last_distance) < 0)
				continue;
			so->have_last = true;
			so->last_distance = c.distance;
			so->returned++;

			scan->xs_heaptid = c.tid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			scan->xs_orderbyvals[0] = Float8GetDatum(key_to_distance(so, c.distance));
			scan->xs_orderbynulls[0] = (so->query == NULL);
			return true;
		}
		if (!more)
			return false;
	}
}

/*
 * vsendscan - free the scan state.
 */
void
vsendscan(IndexScanDesc scan)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;

	if (so->body)
		VsSegmentRelease(so->body);
	MemoryContextDelete(so->scanCtx);
	pfree(so);
	scan->opaque = NULL;
}
