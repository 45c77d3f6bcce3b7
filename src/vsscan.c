/*-------------------------------------------------------------------------
 *
 * vsscan.c
 *	  Index scans of vecstore: route to the nearest clusters, search each
 *	  cluster's graph over compact codes, rerank the candidates on the full
 *	  vectors of the mapped segment, stream rows in exact distance order.
 *
 * The pipeline of one query (../shared/DESIGN.md section 3):
 *
 *	1. Routing (vsroute.c).  The clusters are ordered by the distance of
 *	   their centroid to the query: through the HNSW graph over the centroids when the
 *	   index has one (VS_ROUTE_GRAPH_THRESHOLD clusters or more; the full
 *	   order is computed only if the scan goes past what the graph gave),
 *	   else by comparing with every centroid.
 *	2. Probing.  The vecstore.probes nearest clusters are opened.  A cluster
 *	   with a graph (VS_HNSW_FLAT_THRESHOLD rows or more, and at least
 *	   VS_DEEPEN_FLAT * ef_search) is searched with vecstore.ef_search over
 *	   its codes (or its full vectors with quantizer = none): the ef_search
 *	   nearest by code distance become "pending" candidates.  A smaller
 *	   cluster is scanned flat, exactly; so is every cluster when probes
 *	   covers all of several clusters (an exact search, as in a plain IVF
 *	   index).  Every cluster's delta rows (inserted after the build, on
 *	   fork pages) get exact distances.  Rows with exact distances go into
 *	   the "ready" heap.
 *	3. Rerank.  Pending candidates are taken nearest-code first,
 *	   vecstore.rerank_window at a time, and given their exact distance on
 *	   the full vector.  A row leaves the ready heap only once no pending
 *	   candidate has a code distance below its exact distance (code and
 *	   exact distances share a scale: squared L2, negative inner product,
 *	   1 - cosine), so a window's worth of slack absorbs the codes' error.
 *	   With a usable offload service (vsoffload.h: the GPU service under
 *	   vecstore.gpu; under auto, only while vecstore.gpu_min_scans scans
 *	   are open: its scan_start), an approximate scan sends the clusters
 *	   it opens to the service in one request instead: each cluster's
 *	   ef_search rows with the smallest lower bounds of their keys,
 *	   computed exactly on resident clusters, become the pending
 *	   candidates, and the last answer's bound is the
 *	   cluster's frontier; deepening such a cluster reads the rest of it
 *	   flat.
 *	4. Extension.  When the executor keeps asking (a WHERE clause discards
 *	   rows, or a large LIMIT), the scan looks further, within
 *	   vecstore.max_scan_tuples rows examined.  Deeper: a cluster's graph
 *	   search found its rows up to a "frontier" (the code distance of its
 *	   farthest result); before a row beyond a cluster's frontier is
 *	   returned, that cluster is searched again with twice the ef (past a
 *	   quarter of the cluster or ef 1000, every remaining row flat), since
 *	   it may hold nearer rows.  Wider: the next vecstore.probes clusters
 *	   in routing order, opened before the scan runs dry, once the rows
 *	   returned reach 1/VS_WIDEN_FRACTION of the rows examined flat plus
 *	   1/VS_WIDEN_FRACTION_GRAPH of the graph candidates.
 *
 * The executor always sees non-decreasing distances: a row found after a
 * farther row was returned is dropped, never returned out of order (it
 * can only come from an extension, and costs recall, not correctness).
 * The order is exact; the set of rows is approximate.
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
#include "vsoffload.h"

/*
 * Extend once the rows returned reach 1/VS_WIDEN_FRACTION of the rows
 * examined flat, plus 1/VS_WIDEN_FRACTION_GRAPH of the graph candidates
 * (which are already the nearest of their cluster).  Kept in eighths of a
 * row, in "cover".
 */
#define VS_WIDEN_FRACTION	8
#define VS_WIDEN_FRACTION_GRAPH	2
#define VS_COVER_FLAT		(8 / VS_WIDEN_FRACTION)
#define VS_COVER_GRAPH		(8 / VS_WIDEN_FRACTION_GRAPH)

/* a graph search deeper than 1/VS_DEEPEN_FLAT of its cluster scans it flat */
#define VS_DEEPEN_FLAT		4

/* a cluster the scan has opened */
typedef struct VsProbe
{
	int			cluster;
	int			ef;				/* ef of its last graph search */
	float		frontier;		/* code distance of that search's farthest
								 * result: rows nearer than it were likely
								 * found, rows beyond it may not have been */
	bool		full;			/* every row has been examined */
	uint8	   *deleted;		/* the deletion bits of its rows ... */
	uint32		delshift;		/* ... row i is bit delshift + i */
	uint8	   *seen;			/* graph clusters: rows already examined */
	bool		offloaded;		/* its nearest rows came from the offload
								 * service (the GPU) */
	bool		counted;		/* every row counted as examined already */
} VsProbe;

/* a graph candidate waiting for its exact distance */
typedef struct VsPending
{
	float		distance;		/* code distance */
	int32		probe;			/* index into "probes" */
	uint32		row;			/* row of the cluster */
} VsPending;

typedef struct VsScanOpaqueData
{
	MemoryContext scanCtx;		/* lives from rescan to rescan */
	VsMetaPageData meta;
	const char *body;			/* sealed region, mapped and pinned */
	float	   *query;			/* dims floats; NULL for a NULL query */
	bool		use_graphs;		/* a query the graphs can search for */
	VsOffload  *offload;		/* the scan's requests to the offload service
								 * (the GPU), or NULL */
	bool		use_offload;	/* ... which searches the clusters instead */

	/* routing (vsroute.c) */
	VsRoute		route;			/* clusters, nearest centroid first */
	int			next_cluster;	/* next position in route.order */

	/* opened clusters */
	VsProbe    *probes;
	int			nprobes;
	int			maxprobes;

	/* codes */
	const VsQuantParams *params;	/* NULL: graphs search the full vectors */
	VsQuantQuery *qquery;		/* the query, prepared for the codes */

	/* graph search */
	VsHnswScratch *scratch;		/* in the scan's long-lived context */
	int			scratch_n;
	VsHnswResult *results;		/* VS_HNSW_MAX_EF_SEARCH entries */

	/* candidates */
	VsPending  *pending;		/* min-heap by code distance */
	int			npending;
	int			maxpending;
	VsCandidate *cands;			/* min-heap of exact distances ("ready") */
	int			ncands;
	int			ncands_heap;	/* entries [0, ncands_heap) form a heap */
	int			maxcands;

	bool		started;
	bool		have_last;
	double		last_distance;
	int64		scanned;		/* rows examined so far */
	int64		cover;			/* eighths of a row: when to extend */
	int64		returned;		/* rows returned so far */
} VsScanOpaqueData;

typedef VsScanOpaqueData *VsScanOpaque;

/*
 * compare_candidates - by distance, then TID (a stable, repeatable order).
 */
static inline int
compare_candidates(const VsCandidate *ca, const VsCandidate *cb)
{
	int			c = VsCompareDistance(ca->distance, cb->distance);

	if (c != 0)
		return c;
	return ItemPointerCompare((ItemPointer) &ca->tid, (ItemPointer) &cb->tid);
}

/*
 * compare_pending - by code distance, then position (repeatable).
 */
static inline int
compare_pending(const VsPending *a, const VsPending *b)
{
	int			c = VsCompareDistance(a->distance, b->distance);

	if (c != 0)
		return c;
	if (a->probe != b->probe)
		return (a->probe > b->probe) - (a->probe < b->probe);
	return (a->row > b->row) - (a->row < b->row);
}

/*
 * Binary min-heaps of candidates and of pending candidates: sift down,
 * sift up, pop.  Written out twice rather than through a comparator
 * pointer: they are the hottest loops of a scan after the distances.
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

static void
heap_sift_up(VsCandidate *heap, int i)
{
	VsCandidate item = heap[i];

	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (compare_candidates(&heap[parent], &item) <= 0)
			break;
		heap[i] = heap[parent];
		i = parent;
	}
	heap[i] = item;
}

static void
pending_sift_down(VsPending *heap, int n, int i)
{
	VsPending	item = heap[i];

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= n)
			break;
		if (child + 1 < n && compare_pending(&heap[child + 1], &heap[child]) < 0)
			child++;
		if (compare_pending(&heap[child], &item) >= 0)
			break;
		heap[i] = heap[child];
		i = child;
	}
	heap[i] = item;
}

static void
pending_sift_up(VsPending *heap, int i)
{
	VsPending	item = heap[i];

	while (i > 0)
	{
		int			parent = (i - 1) / 2;

		if (compare_pending(&heap[parent], &item) <= 0)
			break;
		heap[i] = heap[parent];
		i = parent;
	}
	heap[i] = item;
}

/*
 * ready_fix - make every candidate appended since the last call part of
 * the heap: one by one when they are few, else by rebuilding the heap.
 */
static void
ready_fix(VsScanOpaque so)
{
	int			added = so->ncands - so->ncands_heap;

	if (added <= 0)
		return;
	if (added <= so->ncands / 8)
	{
		for (int i = so->ncands_heap; i < so->ncands; i++)
			heap_sift_up(so->cands, i);
	}
	else
	{
		for (int i = so->ncands / 2 - 1; i >= 0; i--)
			heap_sift_down(so->cands, so->ncands, i);
	}
	so->ncands_heap = so->ncands;
}

/*
 * add_candidate - a row with its exact distance, into the ready heap
 * (appended; ready_fix orders it), unless it is nearer than a row already
 * returned (it would break the order).
 */
static inline void
add_candidate(VsScanOpaque so, ItemPointer tid, double distance)
{
	if (so->have_last && VsCompareDistance(distance, so->last_distance) < 0)
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
 * add_pending - a graph candidate with its code distance.
 */
static inline void
add_pending(VsScanOpaque so, int probe, uint32 row, float distance)
{
	if (so->npending == so->maxpending)
	{
		so->maxpending *= 2;
		so->pending = repalloc_huge(so->pending, sizeof(VsPending) * so->maxpending);
	}
	so->pending[so->npending].distance = distance;
	so->pending[so->npending].probe = probe;
	so->pending[so->npending].row = row;
	pending_sift_up(so->pending, so->npending);
	so->npending++;
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

/* the cluster table entry of cluster "c" in the current mapping */
static inline const VsClusterInfo *
cluster_info(VsScanOpaque so, int c)
{
	return ((const VsClusterInfo *) (so->body + sizeof(VsSealedHeader))) + c;
}

/* is row "i" of an opened cluster deleted? */
static inline bool
probe_deleted(const VsProbe *p, uint32 i)
{
	uint64		bit = (uint64) p->delshift + i;

	return (p->deleted[bit / 8] & (1 << (bit % 8))) != 0;
}

/*
 * sealed_tid - the heap TID of row "i" of a cluster.
 */
static inline void
sealed_tid(VsScanOpaque so, const VsClusterInfo *info, uint32 i, ItemPointer tid)
{
	memcpy(tid, so->body + info->tid_offset + sizeof(ItemPointerData) * i,
		   sizeof(ItemPointerData));
}

/*
 * scan_rows_flat - exact distances of every live row of an opened cluster
 * not examined yet, into the ready heap.
 */
static void
scan_rows_flat(VsScanOpaque so, VsProbe *p)
{
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	const float *vecs = (const float *) (so->body + info->vec_offset);
	int			dims = so->meta.dims;

	for (uint32 i = 0; i < info->count; i++)
	{
		ItemPointerData tid;

		if (p->seen != NULL && (p->seen[i / 8] & (1 << (i % 8))))
			continue;
		if (!p->counted)
		{
			so->scanned++;
			so->cover += VS_COVER_FLAT;
		}
		if (probe_deleted(p, i))
			continue;
		sealed_tid(so, info, i, &tid);
		add_candidate(so, &tid, row_distance(so, vecs + (Size) i * dims));
	}
	p->full = true;
}

/* the HNSW distance callback over a cluster's code block */
static void
code_distances(void *ctx, const uint32_t *ids, uint32_t n, float *out)
{
	VsQuantScan *qs = (VsQuantScan *) ctx;

	VsQuantDistancesIds(qs->query, qs->block, ids, n, out);
}

/*
 * search_graph - the "ef" nearest rows of an opened cluster by its graph,
 * those not examined yet into the pending heap.
 */
static void
search_graph(IndexScanDesc scan, VsProbe *p, int ef)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	const void *graph = so->body + info->graph_offset;
	int			found;

	/* the scratch covers the largest cluster seen so far */
	if (so->scratch == NULL || (int) info->count > so->scratch_n)
	{
		MemoryContext cxt = GetMemoryChunkContext(so);
		Size		size = VsHnswScratchSize((int) info->count, VS_HNSW_MAX_EF_SEARCH);
		void	   *mem;

		if (so->scratch)
			pfree(so->scratch);
		so->scratch = NULL;
		mem = MemoryContextAllocHuge(cxt, size);
		so->scratch = VsHnswScratchInit(mem, size, (int) info->count, VS_HNSW_MAX_EF_SEARCH);
		if (so->scratch == NULL)
			elog(ERROR, "could not set up a graph search of %u rows", info->count);
		so->scratch_n = (int) info->count;
	}

	ef = Min(ef, VS_HNSW_MAX_EF_SEARCH);
	if (so->params != NULL)
	{
		VsQuantScan qs;

		qs.query = so->qquery;
		qs.block = (const uint8 *) (so->body + info->code_offset);
		found = VsHnswSearchBatch(graph, code_distances, &qs, ef, ef, so->scratch, so->results);
	}
	else
		found = VsHnswSearch(graph, (const float *) (so->body + info->vec_offset), so->query,
							 ef, ef, so->scratch, so->results);
	if (found < 0)
		elog(ERROR, "graph search of cluster %d of index \"%s\" failed",
			 p->cluster, RelationGetRelationName(scan->indexRelation));

	for (int i = 0; i < found; i++)
	{
		uint32		row = so->results[i].id;

		if (p->seen[row / 8] & (1 << (row % 8)))
			continue;
		p->seen[row / 8] |= (1 << (row % 8));
		so->scanned++;
		so->cover += VS_COVER_GRAPH;
		if (probe_deleted(p, row))
			continue;
		add_pending(so, (int) (p - so->probes), row, so->results[i].distance);
	}
	p->ef = ef;
	/* a search that found fewer than ef rows has run out of graph */
	p->frontier = (found < ef) ? INFINITY : so->results[found - 1].distance;
}

/*
 * offload_rows - the offload service's (the GPU's) answers for an opened
 * cluster: its "topk" rows with the smallest lower bounds of their keys
 * (fewer only when the cluster has no more), into the pending heap like a graph search's, to be
 * reranked exactly.  Every row not answered has a bound, and so an exact
 * key, of at least the last answer's: that is the cluster's frontier.
 */
static void
offload_rows(VsScanOpaque so, VsProbe *p, const VsOffloadHit *hits, int nhits, int topk)
{
	const VsClusterInfo *info = cluster_info(so, p->cluster);

	p->offloaded = true;
	p->seen = palloc0((info->count + 7) / 8);

	/*
	 * A cluster the CPU would scan flat is counted as examined in full, as
	 * the CPU counts it, so that the scan widens at the same moments and
	 * returns the same rows; the others count as graph candidates.
	 */
	if (info->graph_offset == 0 || (int64) vecstore_ef_search * VS_DEEPEN_FLAT > info->count)
	{
		p->counted = true;
		so->scanned += info->count;
		so->cover += (int64) info->count * VS_COVER_FLAT;
	}
	for (int i = 0; i < nhits; i++)
	{
		uint32		row = hits[i].row;

		if (p->seen[row / 8] & (1 << (row % 8)))
			continue;
		p->seen[row / 8] |= (1 << (row % 8));
		if (!p->counted)
		{
			so->scanned++;
			so->cover += VS_COVER_GRAPH;
		}
		if (probe_deleted(p, row))
			continue;
		add_pending(so, (int) (p - so->probes), row, hits[i].key);
	}
	p->ef = topk;
	if ((uint32) nhits >= info->count)
		p->full = true;
	else
		p->frontier = hits[nhits - 1].key;
}

/*
 * open_cluster - start on a cluster: its delta rows exactly, then its
 * sealed rows: the offload service's answers ("hits", when not NULL),
 * through the graph (when it has one and the query can use it) or flat.
 */
static void
open_cluster(IndexScanDesc scan, int cluster, const VsOffloadHit *hits, int nhits, int topk)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	const VsClusterInfo *info;
	VsProbe    *p;
	VsDirEntry	entry;
	VsDeltaChain chain;

	if (so->nprobes == so->maxprobes)
	{
		so->maxprobes *= 2;
		so->probes = repalloc_huge(so->probes, sizeof(VsProbe) * so->maxprobes);
	}
	p = &so->probes[so->nprobes++];
	memset(p, 0, sizeof(VsProbe));
	p->cluster = cluster;

	/* the mapping, checked the first time we read the cluster */
	so->body = VsSegmentCluster(index, &so->meta, so->body, cluster);
	info = cluster_info(so, cluster);

	/* the deletion bits of its rows */
	if (info->count > 0)
	{
		uint64		firstbyte = info->first_row / 8;
		uint64		lastbyte = (info->first_row + info->count - 1) / 8;
		Size		nbytes = lastbyte - firstbyte + 1;

		p->deleted = palloc(nbytes);
		p->delshift = (uint32) (info->first_row - firstbyte * 8);
		VsBlobRead(index, &so->meta.bitmap, firstbyte, p->deleted, nbytes, NULL);
	}

	if (info->count == 0)
		p->full = true;
	else if (hits != NULL)
		offload_rows(so, p, hits, nhits, topk);
	else if (so->use_graphs && info->graph_offset != 0 &&
			 (int64) vecstore_ef_search * VS_DEEPEN_FLAT <= info->count)
	{
		p->seen = palloc0((info->count + 7) / 8);
		search_graph(scan, p, vecstore_ef_search);
	}
	else
		scan_rows_flat(so, p);

	/* delta rows, from the fork */
	VsBlobRead(index, &so->meta.directory, (uint64) cluster * sizeof(VsDirEntry),
			   &entry, sizeof(entry), NULL);
	VsDeltaChainBegin(&chain, index, entry.delta_head, BUFFER_LOCK_SHARE, NULL, 0);
	while (VsDeltaChainNext(&chain))
	{
		Page		page = BufferGetPage(chain.buf);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);

		for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
		{
			VsDeltaTuple tup = (VsDeltaTuple) PageGetItem(page, PageGetItemId(page, off));

			if (tup->flags & VS_DELTA_DEAD)
				continue;
			add_candidate(so, &tup->tid, row_distance(so, tup->x));
			so->scanned++;
			so->cover += VS_COVER_FLAT;
		}
	}
}

/*
 * deepen - look further into an opened cluster: the graph search again
 * with twice the ef, or, once that would cover a good part of the
 * cluster, every remaining row.
 */
static void
deepen(IndexScanDesc scan, VsProbe *p)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	int			ef = p->ef * 2;

	/* the service answered exactly: the rest of the cluster, exactly too */
	if (p->offloaded || ef > VS_HNSW_MAX_EF_SEARCH || (int64) ef * VS_DEEPEN_FLAT > info->count)
		scan_rows_flat(so, p);
	else
		search_graph(scan, p, ef);
}

/*
 * offload_open - open "n" clusters with the offload service's answers (one
 * request for all of them); false, with nothing opened, when the CPU must
 * do it.
 */
static bool
offload_open(IndexScanDesc scan, const int *clusters, int n)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	int			topk = Min(vecstore_ef_search, VS_HNSW_MAX_EF_SEARCH);
	uint64	   *offsets = palloc(sizeof(uint64) * n);
	uint32	   *counts = palloc(sizeof(uint32) * n);
	int32	   *found = palloc(sizeof(int32) * n);
	VsOffloadHit *hits = palloc_extended(sizeof(VsOffloadHit) * n * (Size) topk, MCXT_ALLOC_HUGE);
	VsSegmentId file;
	bool		ok;

	/* each cluster's bytes checked here before another process reads them */
	for (int i = 0; i < n; i++)
		so->body = VsSegmentCluster(index, &so->meta, so->body, clusters[i]);
	for (int i = 0; i < n; i++)
	{
		const VsClusterInfo *info = cluster_info(so, clusters[i]);

		offsets[i] = VS_SEGMENT_HEADER_SIZE + info->vec_offset;
		counts[i] = info->count;
	}
	/* the service reads the file this backend verified */
	if (!VsSegmentGetId(so->body, &file))
		elog(ERROR, "segment of index \"%s\" is not mapped", RelationGetRelationName(index));
	ok = so->offload->ops->scan(so->offload, &file, (VsMetric) so->meta.metric, so->meta.dims,
								so->query, topk, n, offsets, counts, found, hits) == 0;
	for (int i = 0; ok && i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		open_cluster(scan, clusters[i], hits + (Size) i * topk, found[i], topk);
	}
	pfree(hits);
	pfree(found);
	pfree(counts);
	pfree(offsets);
	return ok;
}

/*
 * open_next - open up to "n" more clusters in routing order; false when
 * every cluster is open.
 */
static bool
open_next(IndexScanDesc scan, int n)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	int		   *clusters;
	int			ncl = 0;

	clusters = palloc(sizeof(int) * Max(n, 1));
	while (ncl < n)
	{
		if (so->next_cluster >= so->route.norder && !so->route.all)
			VsRouteAll(&so->route, VsGetMetaCache(scan->indexRelation));
		if (so->next_cluster >= so->route.norder)
			break;
		clusters[ncl++] = so->route.order[so->next_cluster++];
	}
	if (ncl > 0 && !(so->use_offload && !so->offload->disabled && offload_open(scan, clusters, ncl)))
	{
		for (int i = 0; i < ncl; i++)
		{
			CHECK_FOR_INTERRUPTS();
			open_cluster(scan, clusters[i], NULL, 0, 0);
		}
	}
	pfree(clusters);
	return ncl > 0;
}

/*
 * deepen_before - before a row at ordering key "key" is returned, search
 * deeper every opened cluster whose graph search stopped short of it: its
 * unexamined rows may be nearer.  Within max_scan_tuples, except for
 * clusters already counted in full (answered by the GPU where the CPU
 * would have scanned them flat).  True when it deepened any.
 */
static bool
deepen_before(IndexScanDesc scan, double key)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	bool		deepened = false;

	for (int i = 0; i < so->nprobes; i++)
	{
		VsProbe    *p = &so->probes[i];

		/* a cluster counted as examined in full is read whatever the budget */
		if (!p->full && VsCompareDistance(p->frontier, key) < 0 &&
			(p->counted || so->scanned < vecstore_max_scan_tuples))
		{
			CHECK_FOR_INTERRUPTS();
			deepen(scan, p);
			deepened = true;
		}
	}
	return deepened;
}

/*
 * extend - look further when the candidates run low: the next clusters in
 * routing order, else deeper into every opened cluster not examined
 * fully.  False when there is nothing left.
 */
static bool
extend(IndexScanDesc scan)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	bool		deepened = false;

	if (open_next(scan, VsEffectiveProbes(so->meta.nclusters)))
		return true;
	for (int i = 0; i < so->nprobes; i++)
	{
		if (!so->probes[i].full)
		{
			CHECK_FOR_INTERRUPTS();
			deepen(scan, &so->probes[i]);
			deepened = true;
		}
	}
	return deepened;
}

/*
 * rerank - exact distances for the "n" pending candidates nearest by code.
 */
static void
rerank(VsScanOpaque so, int n)
{
	int			dims = so->meta.dims;

	while (n-- > 0 && so->npending > 0)
	{
		VsPending	top = so->pending[0];
		const VsProbe *p = &so->probes[top.probe];
		const VsClusterInfo *info = cluster_info(so, p->cluster);
		const float *x = (const float *) (so->body + info->vec_offset) + (Size) top.row * dims;
		ItemPointerData tid;

		so->npending--;
		if (so->npending > 0)
		{
			so->pending[0] = so->pending[so->npending];
			pending_sift_down(so->pending, so->npending, 0);
		}
		sealed_tid(so, info, top.row, &tid);
		add_candidate(so, &tid, row_distance(so, x));
	}
}

/*
 * start_scan - the work of the first vsgettuple after a rescan.
 */
static void
start_scan(IndexScanDesc scan)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	MemoryContext oldcxt = MemoryContextSwitchTo(so->scanCtx);
	VsMetaCache cache;

	if (scan->numberOfOrderBys == 0 || scan->orderByData[0].sk_attno != 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("vecstore index scans need an ORDER BY distance operator")));

	/* an error here when vecstore.gpu = on and no GPU is usable */
	so->offload = VsOffloadBegin("index scans", false);
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

	/*
	 * Probing every one of several clusters asks for an exact search: every
	 * row gets its exact distance, and the graphs are not used (with one
	 * cluster the index is a plain graph index, and the graph serves).  Nor
	 * are they for a NULL query, or a zero query under cosine (it has no
	 * angle to rank by).
	 */
	so->use_graphs = so->query != NULL &&
		(so->meta.nclusters == 1 || VsEffectiveProbes(so->meta.nclusters) < (int) so->meta.nclusters);
	if (so->use_graphs && so->meta.metric == VS_METRIC_COSINE)
		so->use_graphs = VsKernels.inner_product(so->query, so->query, so->meta.dims) > 0.0f;

	/*
	 * An approximate search the offload service can do (exactly, per
	 * cluster), when it should: the scan counts as open until scanCtx goes.
	 */
	so->use_offload = so->use_graphs && so->offload != NULL &&
		so->offload->ops->scan_start(so->offload, so->scanCtx);

	VsRouteBegin(&so->route, cache, so->query);
	so->body = VsSegmentBody(scan->indexRelation, &so->meta);
	so->params = VsSegmentParams(&so->meta, so->body);
	if (so->params != NULL && so->use_graphs)
	{
		so->qquery = VsQuantPrepareQuery(so->params, so->query, NULL,
										 palloc(VsQuantQuerySize(so->params)));
		if (so->qquery == NULL)
			elog(ERROR, "could not prepare the query for the codes");
	}
	so->results = palloc(sizeof(VsHnswResult) * VS_HNSW_MAX_EF_SEARCH);
	so->maxprobes = 16;
	so->probes = palloc(sizeof(VsProbe) * so->maxprobes);
	so->maxcands = 1024;
	so->cands = palloc_extended(sizeof(VsCandidate) * so->maxcands, MCXT_ALLOC_HUGE);
	so->maxpending = 256;
	so->pending = palloc_extended(sizeof(VsPending) * so->maxpending, MCXT_ALLOC_HUGE);

	pgstat_count_index_scan(scan->indexRelation);
	so->started = true;
	open_next(scan, VsEffectiveProbes(so->meta.nclusters));
	MemoryContextSwitchTo(oldcxt);
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
	memset(&so->route, 0, sizeof(so->route));
	so->probes = NULL;
	so->nprobes = so->maxprobes = 0;
	so->params = NULL;
	so->qquery = NULL;
	so->results = NULL;
	so->pending = NULL;
	so->npending = so->maxpending = 0;
	so->cands = NULL;
	so->ncands = so->ncands_heap = so->maxcands = 0;
	so->next_cluster = 0;
	so->started = false;
	so->have_last = false;
	so->scanned = 0;
	so->cover = 0;
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
	MemoryContext oldcxt;
	bool		found = false;

	if (!so->started)
		start_scan(scan);

	oldcxt = MemoryContextSwitchTo(so->scanCtx);
	for (;;)
	{
		bool		more = so->scanned < vecstore_max_scan_tuples;

		/* look further before the candidates run low, or when they ran out */
		if (more && ((so->ncands == 0 && so->npending == 0) ||
					 so->returned * 8 >= so->cover))
		{
			if (extend(scan))
				continue;
			/* nothing left to open: keep "returned" from asking again */
			so->scanned = Max(so->scanned, (int64) vecstore_max_scan_tuples);
			continue;
		}

		/*
		 * Rerank until the nearest pending candidate by code is farther than
		 * the nearest exact one.
		 */
		ready_fix(so);
		while (so->npending > 0 &&
			   (so->ncands == 0 ||
				VsCompareDistance(so->pending[0].distance, so->cands[0].distance) <= 0))
		{
			rerank(so, vecstore_rerank_window);
			ready_fix(so);
		}

		/*
		 * An opened cluster whose graph search stopped short of the next row
		 * may hold nearer rows: search it deeper first (within
		 * max_scan_tuples).
		 */
		if (so->ncands > 0 && deepen_before(scan, so->cands[0].distance))
			continue;

		if (so->ncands > 0)
		{
			VsCandidate c = so->cands[0];

			so->ncands--;
			so->ncands_heap--;
			if (so->ncands > 0)
			{
				so->cands[0] = so->cands[so->ncands];
				heap_sift_down(so->cands, so->ncands, 0);
			}

			/* rows nearer than the last returned came too late: skip them */
			if (so->have_last && VsCompareDistance(c.distance, so->last_distance) < 0)
				continue;
			so->have_last = true;
			so->last_distance = c.distance;
			so->returned++;

			scan->xs_heaptid = c.tid;
			scan->xs_recheck = false;
			scan->xs_recheckorderby = false;
			scan->xs_orderbyvals[0] = Float8GetDatum(key_to_distance(so, c.distance));
			scan->xs_orderbynulls[0] = (so->query == NULL);
			found = true;
			break;
		}
		if (!more)
			break;
	}
	MemoryContextSwitchTo(oldcxt);
	return found;
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
	if (so->scratch)
		pfree(so->scratch);
	pfree(so);
	scan->opaque = NULL;
}
