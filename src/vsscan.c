/*-------------------------------------------------------------------------
 *
 * vsscan.c
 *	  Index scans of vecstore: route to the nearest clusters, search each
 *	  cluster's graph over compact codes, rerank the candidates on the full
 *	  vectors of the mapped segment, stream rows in exact distance order.
 *
 * The pipeline of one query (../shared/DESIGN.md section 3).  This file
 * is its mechanics; every decision of which clusters to open, how deep to
 * search them and when to look further is the policy's (vsscan_policy.c,
 * through vsscan.h), so that either can be read and changed alone.
 *
 *	1. Routing (vsroute.c).  The clusters are ordered by the distance of
 *	   their centroid to the query: through the HNSW graph over the
 *	   centroids when the index has one (VS_ROUTE_GRAPH_THRESHOLD clusters
 *	   or more; the full order is computed only if the scan goes past what
 *	   the graph gave), else by comparing with every centroid.
 *	2. Opening a cluster (the policy chooses which: VsPolicyFirst, then
 *	   VsPolicyBefore before each row returned, VsPolicyMore when the
 *	   candidates run out).  A cluster the policy searches by its graph
 *	   (VsPolicyUseGraph) is searched over its codes (or its full vectors
 *	   with quantizer = none): the ef nearest by code distance become
 *	   "pending" candidates.  A cluster with a graph that the policy reads
 *	   in full instead (an ef near its size) gives every row's code
 *	   distance, and every row becomes a pending candidate (codes_flat):
 *	   its codes are read, and only the full vectors of the rows the
 *	   rerank reaches.  Any other cluster is scanned flat, exactly; so is
 *	   every cluster of an exact search.  Every cluster's delta rows
 *	   (inserted after the build, on fork pages) get exact distances.  Rows
 *	   with exact distances go into the "ready" heap.
 *	3. Rerank.  Pending candidates are taken nearest-code first,
 *	   vecstore.rerank_window at a time (twice as many the first time),
 *	   and given their exact distance on the full vector.  A row leaves the ready heap only once no pending
 *	   candidate has a code distance below its exact distance (code and
 *	   exact distances share a scale: squared L2, negative inner product,
 *	   1 - cosine), less the most a code distance has exceeded its row's
 *	   exact one so far in the scan ("code_error").
 *	   With a usable offload service (vsoffload.h: the GPU service under
 *	   vecstore.gpu; under auto, only while vecstore.gpu_min_scans scans
 *	   are open: its scan_start), an approximate scan sends the clusters
 *	   it opens to the service in one request instead: each cluster's
 *	   first-ef rows with the smallest lower bounds of their keys,
 *	   computed exactly on resident clusters, become the pending
 *	   candidates, and the last answer's bound is the cluster's frontier;
 *	   deepening such a cluster reads the rest of it flat.
 *	4. Deeper, before each row returned.  A graph search found a cluster's
 *	   rows up to its "frontier" (the code distance of its last trusted
 *	   result, VsPolicyTrusted); before a row beyond a cluster's frontier
 *	   (less code_error) is returned, that cluster is searched again with
 *	   twice the ef (VsPolicyDeeper: past a quarter of the cluster, every
 *	   remaining row, by its code as above), since it may hold nearer rows.  In an adaptive
 *	   search, a cluster that holds rows about to be returned is also
 *	   searched twice as deep once, and again until the deeper search
 *	   misses few enough of its rows (VsPolicyConfirmed); in many
 *	   dimensions, once one such check found its search nearly complete,
 *	   searches of other clusters at least as deep are taken as
 *	   confirmed (VsPolicyShareConfirmation).  A deeper search continues
 *	   the cluster's earlier ones from its trail (VsHnswSearchBatchOn): it
 *	   starts from every row they computed and computes no row twice.
 *	5. Wider.  The adaptive search opens clusters by their bounds before
 *	   each row (2.); the fixed search (vecstore.probes) opens the next
 *	   probes clusters in routing order before the scan runs dry, once the
 *	   rows returned reach 1/VS_WIDEN_FRACTION of the rows examined flat
 *	   plus 1/VS_WIDEN_FRACTION_GRAPH of the graph candidates
 *	   (VsPolicyWidenEarly).  Either stops looking further once
 *	   vecstore.max_scan_tuples rows were examined; a scan that ends there
 *	   with rows left unexamined says so in a NOTICE (cut_short).

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
#include <sys/resource.h>

#include "access/relscan.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsdistance_bit.h"
#include "vsdistance_half.h"
#include "vsoffload.h"
#include "vsscan.h"

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
	VsHnswTrail *trail;			/* ... and what its graph searches visited,
								 * which a deeper search continues */
	bool		offloaded;		/* its nearest rows came from the offload
								 * service (the GPU) */
	bool		unmapped;		/* first read by this backend: none of its
								 * pages is mapped here yet, so the rerank
								 * reads its vectors from the file */
	bool		counted;		/* every row counted as examined already */
	bool		confirmed;		/* a deeper search found (nearly) nothing
								 * the last one should have */
	int			trusted;		/* results of the last search up to its
								 * frontier */
	double		best;			/* the nearest key found in it so far */
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
	VsMetaCache cache;			/* the metadata cache, pinned (VsMetaCacheRelease) */
	float	   *query;			/* dims floats; NULL for a NULL query */
	VsMetric	order;			/* the operator class's metric; meta.metric
								 * is the structures' (VsGetMetric) */
	int			elem;			/* how rows are stored: VS_ELEM_*
								 * (VsMetaElemSize) */
	uint8	   *qbits;			/* a bit index: the query, packed */
	float	   *rowbuf;			/* dims floats: a delta row, widened */
	bool		skip_nan;		/* leave out rows at a NaN distance: zero
								 * rows under cosine, as pgvector does */
	bool		use_graphs;		/* a query the graphs can search for */
	VsOffload  *offload;		/* the scan's requests to the offload service
								 * (the GPU), or NULL */
	bool		use_offload;	/* ... which searches the clusters instead */

	/* routing (vsroute.c) and the policy (vsscan_policy.c) */
	VsRoute		route;			/* clusters, nearest centroid first */
	VsScanPolicy policy;		/* which clusters, how deep */
	int		   *opening;		/* nclusters entries: clusters to open */

	/* opened clusters */
	VsProbe    *probes;
	int			nprobes;
	int			maxprobes;

	/* codes */
	const VsQuantParams *params;	/* NULL: graphs search the full vectors;
									 * in the mapping, which a cluster's
									 * failed check maps anew
									 * (VsSegmentCluster): not read after
									 * start_scan */
	uint32		code_record;	/* ... their record size */
	VsQuantQuery *qquery;		/* the query, prepared for the codes */

	/* graph search */
	VsHnswScratch *scratch;		/* in the scan's long-lived context */
	int			scratch_n;
	VsHnswResult *results;		/* VS_HNSW_MAX_EF_SEARCH entries */
	struct VsTrailHold *trails;	/* the blocks its probes' trails lie in, in
								 * scanCtx (NULL: none taken since the last
								 * reset) */

	/* candidates */
	VsPending  *pending;		/* min-heap by code distance */
	int			npending;
	int			maxpending;
	VsCandidate *cands;			/* min-heap of exact distances ("ready") */
	int			ncands;
	int			ncands_heap;	/* entries [0, ncands_heap) form a heap */
	int			maxcands;

	bool		started;
	bool		exhausted;		/* every row of every cluster examined */
	bool		have_last;
	double		last_distance;
	int64		scanned;		/* rows examined so far */
	int64		cover;			/* eighths of a row: when to extend */
	int64		returned;		/* rows returned so far */
	int64		reranked;		/* candidates reranked so far: the first
								 * batch takes twice vecstore.rerank_window,
								 * so that code_error is learned from enough
								 * rows before the first row is returned */
	double		code_error;		/* the most a code distance exceeded its
								 * row's exact distance, in this scan */
	bool		readahead;		/* ask the kernel for what is about to be
								 * read (see note_faults) */
	int			confirmed_ef;	/* the least ef of a graph search that a
								 * deeper one confirmed without a miss in
								 * this scan, when that speaks for other
								 * clusters (0: none) */
	VsPending  *batch;			/* rerank's batch, in scanCtx */
	const char **wants;			/* "rows" as asked for ahead (sorted there) */
	const char **rows;			/* where each one's vector is read from */
	VsReadRequest *reads;		/* those read from the files ... */
	char	   *readbuf;		/* ... into here, maxbatch rows */
	char	   *flatbuf;		/* rows read flat from the files, in scanCtx */
	int			maxbatch;
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
add_candidate(VsScanOpaque so, ItemPointer tid, double distance, double skey)
{
	if (so->have_last && VsCompareDistance(distance, so->last_distance) < 0)
	{
		VsStats.rows_skipped_late++;
		return;
	}
	if (so->skip_nan && isnan(distance))
		return;
	if (so->ncands == so->maxcands)
	{
		so->maxcands *= 2;
		so->cands = repalloc_huge(so->cands, sizeof(VsCandidate) * so->maxcands);
	}
	so->cands[so->ncands].tid = *tid;
	so->cands[so->ncands].distance = distance;
	so->cands[so->ncands].skey = skey;
	so->ncands++;
}

/*
 * found_row - a row of opened cluster "p" with its exact ordering and
 * search keys (row_distance): into the ready heap, and the policy learns
 * what the cluster holds.
 */
static inline void
found_row(VsScanOpaque so, VsProbe *p, ItemPointer tid, double distance, double skey)
{
	add_candidate(so, tid, distance, skey);
	if (skey < p->best)
	{
		p->best = skey;
		VsPolicyObserve(&so->policy, p->cluster, skey);
	}
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
 * for a NULL query (every row is as near as any other).  Into "skey" the
 * search key, the one the policy, the codes and the graphs compare with:
 * the ordering key, except under L1, where it is the squared L2 distance
 * (under Hamming both are that of the bits as 0s and 1s).
 */
static inline double
row_distance(VsScanOpaque so, const float *x, double *skey)
{
	double		d;

	if (so->query == NULL)
	{
		*skey = 0.0;
		return 0.0;
	}
	if (so->meta.metric == VS_METRIC_L2)
	{
		d = (double) VsKernels.l2_squared(so->query, x, so->meta.dims);
		*skey = d;
		if (so->order == VS_METRIC_L1)
			return (double) VsKernels.l1(so->query, x, so->meta.dims);
		return d;
	}
	d = VsMetricDistance((VsMetric) so->meta.metric, so->query, x, so->meta.dims);
	*skey = d;
	return d;
}

/*
 * half_row_distance - row_distance of a binary16 row of a halfvec index's
 * sealed vectors, against the query widened to float4.
 */
static inline double
half_row_distance(VsScanOpaque so, const uint16 *x, double *skey)
{
	int			dims = so->meta.dims;
	double		d;
	float		dot,
				norm_q,
				norm_x;

	if (so->query == NULL)
	{
		*skey = 0.0;
		return 0.0;
	}
	switch ((VsMetric) so->meta.metric)
	{
		case VS_METRIC_IP:
			d = -(double) VsHalfKernels.inner_product_fh(so->query, x, dims);
			break;
		case VS_METRIC_COSINE:
			VsHalfKernels.dot_norms_fh(so->query, x, dims, &dot, &norm_q, &norm_x);
			d = VsCosineFromSums(dot, norm_q, norm_x);
			break;
		default:				/* L2, and L1's structures */
			d = (double) VsHalfKernels.l2_squared_fh(so->query, x, dims);
			*skey = d;
			if (so->order == VS_METRIC_L1)
				return (double) VsHalfKernels.l1_fh(so->query, x, dims);
			return d;
	}
	*skey = d;
	return d;
}

/*
 * bit_row_distance - row_distance of a packed row of a bit index's sealed
 * vectors: the Hamming distance, which is also the squared L2 distance of
 * the bits as 0s and 1s, the structures' metric.
 */
static inline double
bit_row_distance(VsScanOpaque so, const uint8 *x, double *skey)
{
	double		d;

	if (so->query == NULL)
	{
		*skey = 0.0;
		return 0.0;
	}
	d = (double) VsBitKernels.hamming(so->qbits, x, VsRowBytes(VS_ELEM_BIT, so->meta.dims));
	*skey = d;
	return d;
}

/*
 * stored_distance - row_distance of a row as the index stores it (float4,
 * binary16 or packed bits), at "x".
 */
static inline double
stored_distance(VsScanOpaque so, const char *x, double *skey)
{
	if (so->elem == VS_ELEM_HALF)
		return half_row_distance(so, (const uint16 *) x, skey);
	if (so->elem == VS_ELEM_BIT)
		return bit_row_distance(so, (const uint8 *) x, skey);
	return row_distance(so, (const float *) x, skey);
}

/*
 * sealed_row - where row "row" of an opened cluster's sealed vectors is
 * mapped.
 */
static inline const char *
sealed_row(VsScanOpaque so, const VsClusterInfo *info, uint32 row)
{
	return so->body + info->vec_offset + VsRowBytes(so->elem, so->meta.dims) * row;
}


/*
 * key_to_distance - the operator's value from an ordering key: the same
 * float8 l2_distance() returns, sqrt of the float sum.
 */
static inline double
key_to_distance(VsScanOpaque so, double key)
{
	if (so->order == VS_METRIC_L2 && so->query != NULL)
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
	return VsRowDeleted(p->deleted, p->delshift, i);
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
 * examine_row - row "i" of an opened cluster read in full: false when a
 * graph search examined it already; else it counts as examined ("cover"
 * toward widening), unless the cluster was counted in full before, and
 * the answer is whether it is live (not deleted).
 */
static inline bool
examine_row(VsScanOpaque so, VsProbe *p, uint32 i, int cover)
{
	if (p->seen != NULL && (p->seen[i / 8] & (1 << (i % 8))))
		return false;
	if (!p->counted)
	{
		so->scanned++;
		so->cover += cover;
	}
	return !probe_deleted(p, i);
}

/*
 * reads_from_files - are an opened cluster's full vectors read from the
 * files rather than through the mapping (VsSegmentRead says why): while
 * the scan reads ahead ("Read-ahead" below), and in a cluster this
 * backend reads for the first time, whose pages it has not mapped.
 */
static inline bool
reads_from_files(VsScanOpaque so, const VsProbe *p)
{
	return so->readahead || p->unmapped;
}

/*
 * scan_rows_flat - exact distances of every live row of an opened cluster
 * not examined yet, into the ready heap.  Where the cluster's pages are
 * unlikely to be mapped (as the rerank's, see "Read-ahead"), its rows are
 * read from the file VS_FLAT_CHUNK bytes at a time instead.
 */
#define VS_FLAT_CHUNK	(64 * 1024)

static void
scan_rows_flat(VsScanOpaque so, VsProbe *p)
{
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	Size		rowbytes = VsRowBytes(so->elem, so->meta.dims);
	bool		from_files = reads_from_files(so, p);
	uint32		chunk = from_files ? Max(1, VS_FLAT_CHUNK / rowbytes) : Max(info->count, 1);

	for (uint32 first = 0; first < info->count; first += chunk)
	{
		uint32		last = Min(info->count, first + chunk);
		const char *rows = sealed_row(so, info, first);
		bool		read = false;

		if (from_files)
		{
			if (so->flatbuf == NULL)
				so->flatbuf = MemoryContextAlloc(so->scanCtx, rowbytes * chunk);
			read = VsSegmentRead(rows, rowbytes * (last - first), so->flatbuf);
			rows = so->flatbuf;
		}
		for (uint32 i = first; i < last; i++)
		{
			ItemPointerData tid;
			double		d,
						skey;

			/* a cluster read through the mapping is one chunk */
			if ((i & 4095) == 0)
				CHECK_FOR_INTERRUPTS();
			if (!examine_row(so, p, i, VS_COVER_FLAT))
				continue;
			sealed_tid(so, info, i, &tid);
			d = stored_distance(so, rows + rowbytes * (i - first), &skey);
			VsStats.vectors_read++;
			if (read)
				VsStats.vectors_read_from_files++;
			found_row(so, p, &tid, d, skey);
		}
	}
	p->full = true;
}

/*
 * codes_flat - is an opened cluster that is to be read in full (or the rest
 * of it) read through its codes?  For a cluster with a graph (1000 rows
 * or more) in an approximate scan: every row not examined yet gets its
 * code distance and waits among the pending candidates, which the rerank
 * takes nearest first, as far as the scan needs them.  Smaller clusters,
 * and every cluster of an exact scan, are read exactly.
 */
static inline bool
codes_flat(VsScanOpaque so, const VsClusterInfo *info)
{
	return so->params != NULL && !so->policy.exact &&
		info->code_offset != 0 && info->graph_offset != 0;
}

/*
 * scan_codes_flat - the code distance of every live row of an opened
 * cluster not examined yet, into the pending heap (codes_flat).  It reads
 * the cluster's codes, part of what every probed cluster's search reads,
 * instead of every row's full vector: on data of low contrast, where the
 * scan goes through whole clusters, only the rows that may come before
 * the next one returned are read in full, and the vectors of a table
 * larger than memory are read that much less.
 */
static void
scan_codes_flat(VsScanOpaque so, VsProbe *p)
{
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	const uint8 *block = (const uint8 *) (so->body + info->code_offset);
	int			probe = (int) (p - so->probes);
	float		dist[256];

	for (uint32 i0 = 0; i0 < info->count; i0 += lengthof(dist))
	{
		uint32		n = Min(info->count - i0, (uint32) lengthof(dist));

		CHECK_FOR_INTERRUPTS();
		VsQuantDistances(so->qquery, VsQuantRecord(block, so->code_record, i0), n, dist);
		for (uint32 j = 0; j < n; j++)
		{
			if (examine_row(so, p, i0 + j, VS_COVER_GRAPH))
				add_pending(so, probe, i0 + j, dist[j]);
		}
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

/* a bit index's graph search: the packed rows are their own codes */
typedef struct VsBitScan
{
	const uint8 *query;
	const uint8 *rows;
	Size		rowbytes;
} VsBitScan;

static void
bit_distances(void *ctx, const uint32_t *ids, uint32_t n, float *out)
{
	VsBitScan  *bs = (VsBitScan *) ctx;

	for (uint32_t i = 0; i < n; i++)
		out[i] = (float) VsBitKernels.hamming(bs->query, bs->rows + bs->rowbytes * ids[i],
											  bs->rowbytes);
}

/*
 * A halfvec index without codes (built on an empty table: nothing to
 * train them on; compactions keep what the build chose) searches its
 * graphs over the binary16 rows themselves, by the structures' metric.
 */
typedef struct VsHalfScan
{
	VsScanOpaque so;
	const uint16 *rows;
} VsHalfScan;

static void
half_distances(void *ctx, const uint32_t *ids, uint32_t n, float *out)
{
	VsHalfScan *hs = (VsHalfScan *) ctx;
	int			dims = hs->so->meta.dims;

	for (uint32_t i = 0; i < n; i++)
	{
		double		skey;

		half_row_distance(hs->so, hs->rows + (Size) dims * ids[i], &skey);
		/* a zero row under cosine: as the float graphs rank it (1) */
		out[i] = isnan(skey) ? 1.0f : (float) skey;
	}
}

/*
 * Trails.  Each opened cluster searched by its graph keeps a trail
 * (vshnsw.h, VsHnswTrail) so that its deeper searches continue the
 * earlier ones.  A trail lies in a block of one size, for up to
 * VS_TRAIL_VISITS rows visited (a search of ef visits about 13 ef rows at
 * m = 16, so continued searches up to ef 450 or so fit; past that one
 * starts again, as every deeper search did before trails).  A backend
 * keeps up to VS_TRAILS_KEPT blocks (57 kB each, 0.9 MB in all) for its
 * next scans: allocating and first touching them in every scan cost more
 * than the trails saved (15 % of a SIFT query, 80 % of a Fashion-MNIST
 * one, in page faults); a scan that opens more clusters allocates the
 * rest and frees them at its end.
 * A scan's blocks go back when its scanCtx is reset or deleted, on error
 * too (a reset callback).
 */
#define VS_TRAIL_VISITS		6144
#define VS_TRAILS_KEPT		16
#define VS_TRAIL_BLOCK		VsHnswTrailSize(VS_TRAIL_VISITS, VS_HNSW_MAX_EF_SEARCH)

typedef struct VsTrailHold
{
	MemoryContextCallback callback;
	void	  **blocks;
	int			nblocks;
	int			maxblocks;
} VsTrailHold;

static void *kept_trails[VS_TRAILS_KEPT];
static int	nkept_trails;

/* a scan's scanCtx is reset or deleted: its trail blocks go back */
static void
trails_return(void *arg)
{
	VsTrailHold *hold = (VsTrailHold *) arg;

	for (int i = 0; i < hold->nblocks; i++)
	{
		if (nkept_trails < VS_TRAILS_KEPT)
			kept_trails[nkept_trails++] = hold->blocks[i];
		else
			pfree(hold->blocks[i]);
	}
	hold->nblocks = 0;
}

/*
 * take_trail - an empty trail for an opened cluster of "count" rows, in a
 * block kept from an earlier scan or a new one (in scanCtx's care).
 */
static VsHnswTrail *
take_trail(VsScanOpaque so, uint32 count)
{
	VsTrailHold *hold = so->trails;
	void	   *block;
	VsHnswTrail *trail;

	if (hold == NULL)
	{
		hold = MemoryContextAllocZero(so->scanCtx, sizeof(VsTrailHold));
		hold->maxblocks = 8;
		hold->blocks = MemoryContextAlloc(so->scanCtx, sizeof(void *) * hold->maxblocks);
		hold->callback.func = trails_return;
		hold->callback.arg = hold;
		MemoryContextRegisterResetCallback(so->scanCtx, &hold->callback);
		so->trails = hold;
	}
	if (hold->nblocks == hold->maxblocks)
	{
		hold->maxblocks *= 2;
		hold->blocks = repalloc(hold->blocks, sizeof(void *) * hold->maxblocks);
	}
	block = nkept_trails > 0 ? kept_trails[--nkept_trails] :
		MemoryContextAlloc(TopMemoryContext, VS_TRAIL_BLOCK);
	hold->blocks[hold->nblocks++] = block;
	trail = VsHnswTrailInit(block, VS_TRAIL_BLOCK, (int) Min(count, VS_TRAIL_VISITS),
							VS_HNSW_MAX_EF_SEARCH);
	if (trail == NULL)
		elog(ERROR, "could not set up a graph search of %u rows", count);
	return trail;
}

/*
 * graph_results - the graph search itself: the "ef" nearest rows of
 * opened cluster "p" into so->results (by codes, bits or full vectors),
 * continuing the cluster's trail; returns how many.
 */
static int
graph_results(IndexScanDesc scan, VsProbe *p, const void *graph, const VsClusterInfo *info,
			  int ef)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	int			found;

	if (so->params != NULL)
	{
		VsQuantScan qs;

		qs.query = so->qquery;
		qs.block = (const uint8 *) (so->body + info->code_offset);
		found = VsHnswSearchBatchOn(graph, code_distances, &qs, ef, ef, so->scratch, p->trail,
									so->results);
	}
	else if (so->elem == VS_ELEM_BIT)
	{
		VsBitScan	bs;

		bs.query = so->qbits;
		bs.rows = (const uint8 *) (so->body + info->vec_offset);
		bs.rowbytes = VsRowBytes(VS_ELEM_BIT, so->meta.dims);
		found = VsHnswSearchBatchOn(graph, bit_distances, &bs, ef, ef, so->scratch, p->trail,
									so->results);
	}
	else if (so->elem == VS_ELEM_HALF)
	{
		VsHalfScan	hs;

		hs.so = so;
		hs.rows = (const uint16 *) (so->body + info->vec_offset);
		found = VsHnswSearchBatchOn(graph, half_distances, &hs, ef, ef, so->scratch, p->trail,
									so->results);
	}
	else
		found = VsHnswSearchOn(graph, (const float *) (so->body + info->vec_offset), so->query,
							   ef, ef, so->scratch, p->trail, so->results);
	if (found < 0)
		elog(ERROR, "graph search of cluster %d of index \"%s\" failed",
			 p->cluster, RelationGetRelationName(scan->indexRelation));
	return found;
}

/*
 * search_graph - the "ef" nearest rows of an opened cluster by its graph,
 * those not examined yet into the pending heap.  Returns how many of
 * those lie within the frontier of the cluster's previous search (rows
 * that search should have found).
 */
static int
search_graph(IndexScanDesc scan, VsProbe *p, int ef, double within)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	const void *graph = so->body + info->graph_offset;
	int			found;
	int			missed = 0;
	int			live_ef;

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

	/*
	 * The cluster's trail: a deeper search of it (a raised ef, a check, a
	 * row past its frontier) continues the searches before it, computing
	 * only the distances they did not.
	 */
	if (p->trail == NULL)
		p->trail = take_trail(so, info->count);

	/*
	 * Rows removed from the cluster but kept in its graph (deleted ones,
	 * and those an extended re-seal kept after giving them to the parts of
	 * a split neighbour: src/vscompact.c) take places among the results
	 * that live rows would have had.  They gather where the cluster lost
	 * rows, near the border with a new neighbour, so a query there got
	 * fewer live rows and a shallower frontier.  The search goes on with
	 * ef raised by as many as it found (the trail computes nothing twice)
	 * until ef of its results are live.
	 */
	live_ef = ef;
	for (;;)
	{
		int			dead = 0;

		found = graph_results(scan, p, graph, info, ef);
		for (int i = 0; i < found; i++)
		{
			uint32		row = so->results[i].id;
			bool		deleted = probe_deleted(p, row);

			dead += deleted;
			if (p->seen[row / 8] & (1 << (row % 8)))
				continue;
			p->seen[row / 8] |= (1 << (row % 8));
			so->scanned++;
			so->cover += VS_COVER_GRAPH;
			if (so->results[i].distance < within)
				missed++;
			if (deleted)
				continue;
			add_pending(so, (int) (p - so->probes), row, so->results[i].distance);
		}
		if (dead == 0 || found < ef || found - dead >= live_ef ||
			ef >= VS_HNSW_MAX_EF_SEARCH)
			break;
		/* found == ef here, so this raises ef: the loop ends */
		ef = Min(live_ef + dead, VS_HNSW_MAX_EF_SEARCH);
	}

	p->ef = ef;
	if (found > 0)
		VsPolicyObserve(&so->policy, p->cluster, so->results[0].distance);
	/* a search that found fewer than ef rows has run out of graph */
	if (found < ef)
	{
		p->frontier = INFINITY;
		p->confirmed = true;
	}
	else
	{
		p->trusted = VsPolicyTrusted(&so->policy, found, so->returned);
		p->frontier = so->results[p->trusted - 1].distance;
	}

	/*
	 * The scan's first graph search tells the policy how much the nearest
	 * rows stand out; on data of low contrast it searches deeper, this
	 * cluster at once.
	 */
	if (found > 1 && !so->policy.calibrated &&
		VsPolicyCalibrate(&so->policy, so->results[0].distance, so->results[found - 1].distance) &&
		so->policy.ef > ef && !p->confirmed && VsPolicySearchAgain(&so->policy))
		return missed + search_graph(scan, p, so->policy.ef, within);
	return missed;
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
	if (!VsPolicyUseGraph(&so->policy, info->count, info->graph_offset != 0))
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
 * delta_rows - the unfolded delta rows of cluster "cluster", exactly, into
 * probe "p".
 *
 * Page by page, with each next row's lines asked for while the current
 * one is compared: a delta row is a whole vector read from a page that is
 * seldom in the CPU's caches, and a grown index's queries spent a third of
 * their time here (bench/RESULTS.md, "Delta rows read page by page").
 */
static void
delta_rows(IndexScanDesc scan, VsProbe *p, int cluster)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	Relation	index = scan->indexRelation;
	VsDirEntry	entry;
	VsDeltaChain chain;
	VsDeltaTuple tup;
	double		d,
				skey;

	VsBlobRead(index, &so->meta.directory, (uint64) cluster * sizeof(VsDirEntry),
			   &entry, sizeof(entry), NULL);
	VsDeltaChainBeginRows(&chain, index, &entry, cluster_info(so, cluster), BUFFER_LOCK_SHARE,
						  NULL, 0, VS_DELTA_TUPLE_SIZE(so->elem, so->meta.dims));
	while (VsDeltaChainNext(&chain))
	{
		Page		page = BufferGetPage(chain.buf);
		OffsetNumber maxoff = PageGetMaxOffsetNumber(page);
		Size		tupbytes = VS_DELTA_TUPLE_SIZE(so->elem, so->meta.dims);

		for (OffsetNumber off = chain.first; off <= maxoff; off++)
		{
			tup = (VsDeltaTuple) PageGetItem(page, PageGetItemId(page, off));

			/* the next row's lines, while this one is compared */
			if (off < maxoff)
			{
				const char *next = PageGetItem(page, PageGetItemId(page, off + 1));

				for (Size b = 0; b < tupbytes; b += 64)
					__builtin_prefetch(next + b);
				__builtin_prefetch(next + tupbytes - 1);
			}
			if (tup->flags & VS_DELTA_DEAD)
				continue;
			if (so->elem == VS_ELEM_FLOAT4)
				d = row_distance(so, tup->x, &skey);
			else
			{
				VsDecodeRow(so->elem, tup->x, so->meta.dims, so->rowbuf);
				d = row_distance(so, so->rowbuf, &skey);
			}
			found_row(so, p, &tup->tid, d, skey);
			so->scanned++;
			so->cover += VS_COVER_FLAT;
		}
	}
}

/*
 * Read-ahead (vecstore.readahead).  A scan reads the mapped segment file
 * at random: the graph and codes of each cluster it opens, then one full
 * vector per candidate it reranks.  When those pages are not in memory
 * (after a restart, or with data larger than memory), each read waits for
 * one page from disk in turn.  So while a backend meets pages that are not
 * there (major faults, counted by the kernel for the process), its scans
 * tell the kernel first what they will read (madvise MADV_WILLNEED, which
 * starts the reads and returns): a cluster's TIDs, codes and graph when it
 * is opened (the whole cluster when it is scanned flat), and each batch of
 * candidates' vectors before they are reranked.  The disk then serves
 * many reads at once.  The rerank then reads those vectors from the files
 * (VsSegmentReadMany) rather than through the mapping: a page the backend
 * has not mapped costs a fault on first touch, about four times a read of
 * it from the page cache on a virtual machine.  It does so too in a
 * cluster the backend reads for the first time, whose pages it has not
 * mapped (a new connection's first queries).  A backend whose pages are
 * all in memory makes no such calls: it only counts its faults, once per
 * cluster opened.  "on" asks always, "off" never.
 *
 * Once a count has found faults, the backend's scans that start within
 * VS_READAHEAD_KEEP_MS of it read ahead from their first cluster on (each
 * scan counts once as it starts, so a few faults a second keep it so).
 * Before, every scan of a backend serving from disk read its first
 * cluster's graph and codes one page at a time, about 100 major faults a
 * query at 1M x 256 under a memory cap (bench/RESULTS.md, "Read-ahead
 * kept between scans").  A backend whose faults stop goes back to making
 * no calls a second later.
 */
static long vs_last_majflt = -1;	/* this backend's major faults at the
									 * last count; -1: none yet */
static instr_time vs_last_count;	/* when that count was taken */
static instr_time vs_last_faults;	/* when a count last found faults
									 * (zero: never) */

#define VS_READAHEAD_KEEP_MS	1000

/*
 * Counts are taken at most this often (microseconds).  getrusage() takes
 * the process's locks to sum its CPU times, about 1.5 us on a KVM guest:
 * once per opened cluster it was a tenth of a small index's query.  A
 * cluster whose pages come from disk takes longer than this to read, so
 * the count after it still sees its faults.
 */
#define VS_FAULT_COUNT_US	1000

/* this backend's major faults so far */
static long
major_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return ru.ru_majflt;
}

/*
 * note_faults - with vecstore.readahead = auto, count the backend's major
 * faults; read ahead from now on in this scan if there were any since the
 * last count.  The first count of a backend only starts counting, so that
 * a new connection's first query makes no calls for pages in memory; it
 * reads ahead from its second cluster on if its first one was missing.
 * A count within VS_FAULT_COUNT_US of the last one is not taken.
 */
static void
note_faults(VsScanOpaque so)
{
	long		n;
	instr_time	now;

	if (vecstore_readahead != VS_READAHEAD_AUTO)
	{
		so->readahead = vecstore_readahead == VS_READAHEAD_ON;
		return;
	}
	INSTR_TIME_SET_CURRENT(now);
	if (vs_last_majflt >= 0)
	{
		instr_time	since = now;

		INSTR_TIME_SUBTRACT(since, vs_last_count);
		if (INSTR_TIME_GET_MICROSEC(since) < VS_FAULT_COUNT_US)
			return;
	}
	n = major_faults();
	if (vs_last_majflt >= 0 && n > vs_last_majflt)
	{
		so->readahead = true;
		vs_last_faults = now;
	}
	vs_last_majflt = n;
	vs_last_count = now;
}

/*
 * readahead_kept - whether a scan starting now reads ahead from its first
 * cluster on: with vecstore.readahead = auto, when a count found faults
 * within the last VS_READAHEAD_KEEP_MS (see above).  With "on" and "off",
 * false: note_faults, called next, sets the scan's read-ahead from the
 * setting.
 */
static bool
readahead_kept(void)
{
	instr_time	since;

	if (vecstore_readahead != VS_READAHEAD_AUTO || INSTR_TIME_IS_ZERO(vs_last_faults))
		return false;
	INSTR_TIME_SET_CURRENT(since);
	INSTR_TIME_SUBTRACT(since, vs_last_faults);
	return INSTR_TIME_GET_MILLISEC(since) < VS_READAHEAD_KEEP_MS;
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

	if (so->nprobes == so->maxprobes)
	{
		so->maxprobes *= 2;
		so->probes = repalloc_huge(so->probes, sizeof(VsProbe) * so->maxprobes);
	}
	p = &so->probes[so->nprobes++];
	memset(p, 0, sizeof(VsProbe));
	p->cluster = cluster;
	p->best = INFINITY;
	VsStats.clusters_opened++;
	VsAccessNote(index->rd_node, (uint32) cluster);

	/* what it will read, when pages have been missing ("Read-ahead" above) */
	info = cluster_info(so, cluster);
	if (so->readahead && info->count > 0)
	{
		if ((VsPolicyUseGraph(&so->policy, info->count, info->graph_offset != 0) ||
			 codes_flat(so, info)) && hits == NULL)
			VsSegmentWillNeed(so->body + info->tid_offset,
							  info->vec_offset + info->nbytes - info->tid_offset);
		else
			VsSegmentWillNeed(so->body + info->vec_offset, info->nbytes);
	}

	/* the mapping, checked the first time we read the cluster */
	so->body = VsSegmentCluster(index, &so->meta, so->body, cluster);
	info = cluster_info(so, cluster);
	p->unmapped = VsSegmentFirstRead(so->body, (uint32) cluster);

	/* the deletion bits of its rows */
	p->deleted = VsDeletionBits(index, &so->meta, info, NULL, &p->delshift);

	if (info->count == 0)
		p->full = true;
	else if (hits != NULL)
		offload_rows(so, p, hits, nhits, topk);
	else if (VsPolicyUseGraph(&so->policy, info->count, info->graph_offset != 0))
	{
		p->seen = palloc0((info->count + 7) / 8);
		search_graph(scan, p, so->policy.ef, -INFINITY);
	}
	else if (codes_flat(so, info))
		scan_codes_flat(so, p);
	else
		scan_rows_flat(so, p);
	if (!so->readahead && vecstore_readahead == VS_READAHEAD_AUTO)
		note_faults(so);

	/*
	 * Delta rows, from the fork: its own, and those of the clusters merged
	 * into it (rows inserted before the merge was published).
	 */
	delta_rows(scan, p, cluster);
	if (so->cache->hosts != NULL)
	{
		for (int g = so->cache->guest_start[cluster]; g < so->cache->guest_start[cluster + 1]; g++)
			delta_rows(scan, p, so->cache->guests[g]);
	}
}

/*
 * deepen - look further into an opened cluster: the graph search again
 * with twice the ef, or, once that would cover a good part of the
 * cluster, every remaining row.
 */
static int
deepen(IndexScanDesc scan, VsProbe *p, double within)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	const VsClusterInfo *info = cluster_info(so, p->cluster);
	int			ef = VsPolicyDeeper(&so->policy, p->ef, info->count);

	/* the service answered exactly: the rest of the cluster, exactly too */
	if (p->offloaded || ef < 0)
	{
		if (!p->offloaded && codes_flat(so, info))
			scan_codes_flat(so, p);
		else
			scan_rows_flat(so, p);
		return 0;
	}
	return search_graph(scan, p, ef, within);
}

/*
 * confirm_before - before a row at ordering key "key" is returned, check
 * the graph search of every opened cluster that contributed rows up to
 * "key" and has not been confirmed: search it again, twice as deep; it is
 * confirmed when the rows that finds within the previous search's
 * frontier are few enough (VsPolicyConfirmed: a graph search on data of
 * low contrast misses rows, and a deeper one finds them).  Within
 * max_scan_tuples.  True when it searched any.
 */
static bool
confirm_before(IndexScanDesc scan, double key)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	bool		searched = false;

	if (!VsPolicyConfirm(&so->policy, so->returned))
		return false;
	for (int i = 0; i < so->nprobes; i++)
	{
		VsProbe    *p = &so->probes[i];

		if (p->seen == NULL || p->full || p->confirmed || p->offloaded ||
			VsCompareDistance(p->best, key) > 0 || so->scanned >= vecstore_max_scan_tuples)
			continue;

		/*
		 * A search as deep as one that a deeper search found nearly
		 * complete, in another cluster of this scan, is taken as
		 * confirmed too, where the policy says such a check speaks for the
		 * index (VsPolicyShareConfirmation), and not once the scan is
		 * filtered (VsPolicyFiltered: the check vouched for the nearest
		 * rows, not for the rows far past them a filtered scan needs).
		 */
		if (so->confirmed_ef > 0 && p->ef >= so->confirmed_ef &&
			!VsPolicyFiltered(&so->policy, so->returned))
		{
			p->confirmed = true;
			continue;
		}
		CHECK_FOR_INTERRUPTS();
		{
			float		frontier = p->frontier;
			int			trusted = p->trusted;
			int			ef = p->ef;
			int			missed = deepen(scan, p, frontier);

			if (p->full || VsPolicyConfirmed(&so->policy, trusted, missed))
			{
				p->confirmed = true;
				if (!p->full && VsPolicyShareConfirmation(&so->policy, trusted, missed, so->returned) &&
					(so->confirmed_ef == 0 || ef < so->confirmed_ef))
					so->confirmed_ef = ef;
			}
		}
		searched = true;
	}
	return searched;
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
	int			topk = Min(so->policy.ef, VS_HNSW_MAX_EF_SEARCH);
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
	/*
	 * The service reads the file this backend verified; it maps one file,
	 * so a generation of several pieces (a compaction) is read here.
	 */
	if (!VsSegmentGetId(so->body, &file))
	{
		pfree(hits);
		pfree(found);
		pfree(counts);
		pfree(offsets);
		return false;
	}
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
 * open_clusters - open "n" clusters the policy chose, through the offload
 * service when the scan uses it, else here.
 */
static void
open_clusters(IndexScanDesc scan, const int *clusters, int n)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;

	if (n <= 0)
		return;
	if (so->use_offload && !so->offload->disabled && offload_open(scan, clusters, n))
		return;
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		open_cluster(scan, clusters[i], NULL, 0, 0);
	}
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
		if (!p->full &&
			VsCompareDistance(p->frontier - so->code_error * VsPolicyCodeMargin(&so->policy, so->returned),
							  key) < 0 &&
			(p->counted || so->scanned < vecstore_max_scan_tuples))
		{
			CHECK_FOR_INTERRUPTS();
			deepen(scan, p, -INFINITY);
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
	int			n = VsPolicyMore(&so->policy, so->opening, so->meta.nclusters);

	if (n > 0)
	{
		open_clusters(scan, so->opening, n);
		return true;
	}
	for (int i = 0; i < so->nprobes; i++)
	{
		if (!so->probes[i].full)
		{
			CHECK_FOR_INTERRUPTS();
			deepen(scan, &so->probes[i], -INFINITY);
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
	VsPending  *batch;
	int			nbatch = 0;
	Size		rowbytes = VsRowBytes(so->elem, so->meta.dims);
	bool		direct;

	/* the batch, in the order of the heap */
	if (n > so->maxbatch)
	{
		so->batch = MemoryContextAlloc(so->scanCtx, sizeof(VsPending) * n);
		so->wants = MemoryContextAlloc(so->scanCtx, sizeof(const char *) * n);
		so->rows = MemoryContextAlloc(so->scanCtx, sizeof(const char *) * n);
		so->reads = MemoryContextAlloc(so->scanCtx, sizeof(VsReadRequest) * n);
		so->readbuf = MemoryContextAllocHuge(so->scanCtx, rowbytes * n);
		so->maxbatch = n;
	}
	batch = so->batch;
	while (nbatch < n && so->npending > 0)
	{
		batch[nbatch++] = so->pending[0];
		so->npending--;
		if (so->npending > 0)
		{
			so->pending[0] = so->pending[so->npending];
			pending_sift_down(so->pending, so->npending, 0);
		}
	}

	VsStats.vectors_read += nbatch;
	so->reranked += nbatch;

	/*
	 * Their vectors, all asked for before the first is read; then those
	 * whose pages are unlikely to be mapped read together from the files,
	 * not through the mapping (VsSegmentRead says why).  Read around the
	 * page cache (VsSegmentDirectReads), they are not asked for first.
	 */
	for (int i = 0; i < nbatch; i++)
	{
		const VsClusterInfo *info = cluster_info(so, so->probes[batch[i].probe].cluster);

		so->rows[i] = sealed_row(so, info, batch[i].row);
	}
	direct = so->readahead && VsSegmentDirectReads(so->body);
	if (so->readahead && !direct)
	{
		/* a copy: VsSegmentWillNeedMany sorts the addresses it is given */
		memcpy(so->wants, so->rows, sizeof(const char *) * nbatch);
		VsSegmentWillNeedMany(so->wants, nbatch, rowbytes);
	}
	{
		int			nread = 0;

		for (int i = 0; i < nbatch; i++)
		{
			const VsProbe *p = &so->probes[batch[i].probe];

			if (reads_from_files(so, p))
			{
				so->reads[nread].addr = so->rows[i];
				so->reads[nread].buf = so->readbuf + rowbytes * nread;
				so->rows[i] = so->reads[nread].buf;
				nread++;
			}
		}
		if (nread > 0)
			VsStats.vectors_read_from_files += VsSegmentReadMany(so->reads, nread, rowbytes, direct);
	}

	for (int i = 0; i < nbatch; i++)
	{
		VsPending	top = batch[i];
		VsProbe    *p = &so->probes[top.probe];
		const VsClusterInfo *info = cluster_info(so, p->cluster);
		ItemPointerData tid;

		sealed_tid(so, info, top.row, &tid);
		{
			double		skey;
			double		exact = stored_distance(so, so->rows[i], &skey);

			/* how far the codes overstate a distance, at most, so far */
			if (top.distance - skey > so->code_error)
				so->code_error = top.distance - skey;
			found_row(so, p, &tid, exact, skey);
		}
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
	cache->pins++;				/* its centroids are read until the scan ends */
	so->cache = cache;
	so->meta = cache->meta;
	so->order = VsGetOrderMetric(scan->indexRelation);
	so->elem = VsMetaElemSize(&so->meta);
	so->rowbuf = palloc(sizeof(float) * Max(so->meta.dims, 1));
	if (!(scan->orderByData[0].sk_flags & SK_ISNULL))
	{
		Vector	   *q = VsDatumToVector(scan->indexRelation,
										scan->orderByData[0].sk_argument,
										so->meta.dims, so->elem);

		so->query = palloc(sizeof(float) * so->meta.dims);
		memcpy(so->query, q->x, sizeof(float) * so->meta.dims);
		if (so->elem == VS_ELEM_BIT)
		{
			so->qbits = palloc(VsRowBytes(VS_ELEM_BIT, so->meta.dims));
			VsEncodeRow(VS_ELEM_BIT, so->query, so->meta.dims, so->qbits);
		}
	}

	/*
	 * The graphs cannot rank a NULL query, or a zero query under cosine (it
	 * has no angle to rank by): those are exact searches.  So is a search
	 * the settings ask to be exact (vsscan_policy.c).
	 */
	so->use_graphs = so->query != NULL;
	if (so->use_graphs && so->meta.metric == VS_METRIC_COSINE)
		so->use_graphs = VsKernels.inner_product(so->query, so->query, so->meta.dims) > 0.0f;

	/*
	 * A zero row has no angle to any query: pgvector leaves it out of a
	 * cosine index, so a scan for a query that has one does too (a zero
	 * query, whose every distance is NaN, still returns every row).
	 */
	so->skip_nan = so->meta.metric == VS_METRIC_COSINE && so->use_graphs;
	VsRouteBegin(&so->route, cache, so->query);
	VsPolicyBegin(&so->policy, cache, &so->route, so->use_graphs);
	so->use_graphs = !so->policy.exact;

	/*
	 * An approximate search the offload service can do (exactly, per
	 * cluster), when it should: the scan counts as open until scanCtx goes.
	 * The service reads float4 vectors: a halfvec or bit index searches here.
	 */
	so->use_offload = so->use_graphs && so->offload != NULL && so->elem == VS_ELEM_FLOAT4 &&
		so->offload->ops->scan_start(so->offload, so->scanCtx);

	so->body = VsSegmentBody(scan->indexRelation, &so->meta);
	so->params = VsSegmentParams(&so->meta, so->body);
	so->code_record = so->params != NULL ? so->params->record_size : 0;
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

	so->opening = palloc(sizeof(int) * Max(so->meta.nclusters, 1));

	pgstat_count_index_scan(scan->indexRelation);
	VsStats.scans++;
	so->started = true;
	so->readahead = readahead_kept();
	note_faults(so);
	open_clusters(scan, so->opening,
				  VsPolicyFirst(&so->policy, so->opening, so->meta.nclusters));
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

	VsWarnForeignSettings();

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
	if (so->cache)
		VsMetaCacheRelease(scan->indexRelation, so->cache);
	so->cache = NULL;
	MemoryContextReset(so->scanCtx);
	so->trails = NULL;
	so->query = NULL;
	memset(&so->route, 0, sizeof(so->route));
	memset(&so->policy, 0, sizeof(so->policy));
	so->opening = NULL;
	so->probes = NULL;
	so->nprobes = so->maxprobes = 0;
	so->params = NULL;
	so->qquery = NULL;
	so->results = NULL;
	so->pending = NULL;
	so->npending = so->maxpending = 0;
	so->cands = NULL;
	so->ncands = so->ncands_heap = so->maxcands = 0;
	so->batch = NULL;
	so->wants = NULL;
	so->rows = NULL;
	so->reads = NULL;
	so->readbuf = NULL;
	so->flatbuf = NULL;
	so->maxbatch = 0;
	so->readahead = false;
	so->confirmed_ef = 0;
	VsStats.rows_examined += so->scanned;
	so->started = false;
	so->exhausted = false;
	so->have_last = false;
	so->scanned = 0;
	so->cover = 0;
	so->returned = 0;
	so->code_error = 0.0;
	so->reranked = 0;

	if (orderbys && scan->numberOfOrderBys > 0)
		memmove(scan->orderByData, orderbys, scan->numberOfOrderBys * sizeof(ScanKeyData));
}

/*
 * pending_may_precede - may the nearest pending candidate by code come
 * before the nearest exact one (so->ncands > 0)?  Its code distance, less
 * the most the codes have overstated one, is a lower bound of its squared
 * L2 distance; under L1, whose distance is at least the L2 one, its root
 * is a lower bound of the L1 distance: every pending row that may precede
 * the next row returned is reranked first.
 */
static inline bool
pending_may_precede(VsScanOpaque so)
{
	double		bound = so->pending[0].distance -
		so->code_error * VsPolicyCodeMargin(&so->policy, so->returned);

	if (so->order == VS_METRIC_L1)
		return VsCompareDistance(sqrt(Max(bound, 0.0)), so->cands[0].distance) <= 0;
	return VsCompareDistance(bound, so->cands[0].distance) <= 0;
}

/*
 * cut_short - the scan ran out of vecstore.max_scan_tuples with rows left
 * unexamined: say so, once (a filter may have discarded rows the executor
 * still needs, and the ones it would have kept may exist).
 */
static void
cut_short(IndexScanDesc scan)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	bool		left = so->nprobes < so->cache->nlive;

	for (int i = 0; !left && i < so->nprobes; i++)
		left = !so->probes[i].full;
	so->exhausted = true;		/* once per scan */
	if (!left)
		return;
	VsStats.scans_cut_short++;
	ereport(NOTICE,
			(errmsg("vecstore index scan of \"%s\" stopped after examining %lld rows",
					RelationGetRelationName(scan->indexRelation), (long long) so->scanned),
			 errdetail("vecstore.max_scan_tuples is %d; rows the query's conditions would keep may be missing from its result.",
					   vecstore_max_scan_tuples),
			 errhint("Raise vecstore.max_scan_tuples to let scans look further.")));
}

/*
 * gettuple - the next row in distance order.
 */
static bool
gettuple(IndexScanDesc scan, ScanDirection dir)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;
	MemoryContext oldcxt;
	bool		found = false;

	if (!so->started)
		start_scan(scan);

	oldcxt = MemoryContextSwitchTo(so->scanCtx);
	for (;;)
	{
		bool		more = !so->exhausted && so->scanned < vecstore_max_scan_tuples;

		/*
		 * Look further when the candidates ran out, or (a fixed search)
		 * before they run low.
		 */
		if (more && ((so->ncands == 0 && so->npending == 0) ||
					 (VsPolicyWidenEarly(&so->policy) && so->returned * 8 >= so->cover)))
		{
			if (extend(scan))
				continue;
			/* nothing left to open or deepen */
			so->exhausted = true;
			continue;
		}

		/*
		 * Rerank until the nearest pending candidate by code is farther than
		 * the nearest exact one.
		 */
		ready_fix(so);
		while (so->npending > 0 && (so->ncands == 0 || pending_may_precede(so)))
		{
			CHECK_FOR_INTERRUPTS();
			rerank(so, so->reranked == 0 ? 2 * vecstore_rerank_window : vecstore_rerank_window);
			ready_fix(so);
		}

		/*
		 * An opened cluster whose graph search stopped short of the next row
		 * may hold nearer rows: search it deeper first (within
		 * max_scan_tuples).
		 */
		if (so->ncands > 0 && deepen_before(scan, so->cands[0].skey))
			continue;
		if (so->ncands > 0 && confirm_before(scan, so->cands[0].skey))
			continue;

		/* clusters that may hold a row nearer than the next one: open them */
		if (so->ncands > 0 && more)
		{
			int			n = VsPolicyBefore(&so->policy, so->cands[0].skey, so->returned,
										   so->opening, so->meta.nclusters);

			if (n > 0)
			{
				open_clusters(scan, so->opening, n);
				continue;
			}
		}

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
			{
				VsStats.rows_skipped_late++;
				continue;
			}
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
		{
			if (!so->exhausted)
				cut_short(scan);
			break;
		}
	}
	MemoryContextSwitchTo(oldcxt);
	return found;
}

/* vsgettuple's call of gettuple, for VsMappedRun */
typedef struct GettupleCall
{
	IndexScanDesc scan;
	ScanDirection dir;
	bool		found;
} GettupleCall;

static void
gettuple_call(void *arg)
{
	GettupleCall *call = arg;

	call->found = gettuple(call->scan, call->dir);
}

/*
 * vsgettuple - the next row in distance order; a segment file that
 * shrinks under the scan's mapping ends the statement with an error
 * (vssegment_fault.c), not the backend.
 */
bool
vsgettuple(IndexScanDesc scan, ScanDirection dir)
{
	GettupleCall call = {scan, dir, false};

	if (!VsMappedRun(gettuple_call, &call))
		VsSegmentFaulted(scan->indexRelation);
	return call.found;
}

/*
 * vsendscan - free the scan state.
 */
void
vsendscan(IndexScanDesc scan)
{
	VsScanOpaque so = (VsScanOpaque) scan->opaque;

	VsStats.rows_examined += so->scanned;
	if (so->body)
		VsSegmentRelease(so->body);
	if (so->cache)
		VsMetaCacheRelease(scan->indexRelation, so->cache);
	MemoryContextDelete(so->scanCtx);
	if (so->scratch)
		pfree(so->scratch);
	pfree(so);
	scan->opaque = NULL;
}
