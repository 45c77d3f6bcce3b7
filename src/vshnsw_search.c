/*-------------------------------------------------------------------------
 *
 * vshnsw_search.c
 *	  Searching an HNSW graph where it lies, and the exact flat scan.
 *
 * Owns the search scratch (VsHnswScratch), the searches over a cluster's
 * float vectors or through a caller's distance functions, the layer
 * search and greedy descent that the build reuses (vshnsw_build.c), the
 * candidate list (VsHnswPoolInsert), and the exact flat scan used below
 * VS_HNSW_FLAT_THRESHOLD.  vshnsw.c's header describes the candidate list,
 * the visited epochs and what a search costs.  Pure C99 plus GCC
 * builtins: no postgres.h.  Searches allocate nothing.
 *
 * IDENTIFICATION
 *	  src/vshnsw_search.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vshnsw_internal.h"

/* a search's reusable memory; lives at the start of the caller's block */
struct VsHnswScratch
{
	uint32_t	max_n;
	uint32_t	max_ef;
	uint16_t	epoch;			/* tags[i] == epoch: i visited */
	uint16_t   *tags;			/* max_n */
	PoolEntry  *pool;			/* max_ef */
	uint32_t   *row;			/* MAX_ROW: unvisited neighbours */
	uint32_t   *ids;			/* MAX_ROW: their node ids (batch path) */
	float	   *dists;			/* MAX_ROW: their distances (batch path) */
};

static inline void prefetch_node(const Source *src, uint32_t node);
static inline void prefetch_next_row(const Level *lv, const PoolEntry *pool,
									 int from, int size);
static int	search_graph(const void *graph, const Source *src, int k, int ef,
						 VsHnswScratch *scratch, VsHnswResult *out);

static void heap_sift_down(VsHnswResult *heap, int size, int i);


/*
 * VsHnswScratchSize - bytes of scratch for searching graphs of up to
 * max_n nodes with up to max_ef candidates (ef, or k when larger).
 * About 2 bytes per node plus 8 per candidate plus 2.4 kB.
 */
size_t
VsHnswScratchSize(int max_n, int max_ef)
{
	size_t		size;

	if (max_n < 0)
		max_n = 0;
	if (max_ef < 1)
		max_ef = 1;
	size = (sizeof(VsHnswScratch) + 7) & ~(size_t) 7;
	size += ((size_t) max_n * sizeof(uint16_t) + 7) & ~(size_t) 7;
	size += (size_t) max_ef * sizeof(PoolEntry);
	size += MAX_ROW * (2 * sizeof(uint32_t) + sizeof(float));
	return size;
}

/*
 * VsHnswScratchInit - lay out a search scratch in mem.
 *
 * mem: size >= VsHnswScratchSize(max_n, max_ef) bytes, 8-byte aligned,
 * owned by the caller (palloc it in the scan's context; free it as a
 * whole).  Returns mem as a VsHnswScratch, or NULL if it is too small or
 * misaligned.  One scratch serves any number of searches, one at a time,
 * on graphs of up to max_n nodes; searches allocate nothing.
 */
VsHnswScratch *
VsHnswScratchInit(void *mem, size_t size, int max_n, int max_ef)
{
	VsHnswScratch *s = (VsHnswScratch *) mem;
	char	   *p;

	if (max_n < 0)
		max_n = 0;
	if (max_ef < 1)
		max_ef = 1;
	if (mem == NULL || ((uintptr_t) mem & 7) != 0 ||
		size < VsHnswScratchSize(max_n, max_ef))
		return NULL;
	p = (char *) mem + ((sizeof(VsHnswScratch) + 7) & ~(size_t) 7);
	s->max_n = (uint32_t) max_n;
	s->max_ef = (uint32_t) max_ef;
	s->epoch = 0;
	s->tags = (uint16_t *) p;
	p += ((size_t) max_n * sizeof(uint16_t) + 7) & ~(size_t) 7;
	s->pool = (PoolEntry *) p;
	p += (size_t) max_ef * sizeof(PoolEntry);
	s->row = (uint32_t *) p;
	p += MAX_ROW * sizeof(uint32_t);
	s->ids = (uint32_t *) p;
	p += MAX_ROW * sizeof(uint32_t);
	s->dists = (float *) p;
	memset(s->tags, 0, (size_t) max_n * sizeof(uint16_t));
	return s;
}

/*
 * VsHnswSearch - the k nearest nodes to "query" by the graph's metric,
 * over the cluster's float vectors.
 *
 * graph: a block VsHnswValidate accepted; vectors: its n * dim floats
 * (the cluster's rows in node order); query: dim floats.  ef: the
 * candidate list (raised to k, then cut to the scratch's max_ef and to
 * n).  Writes min(k, ef, nodes found) results to out, nearest first, ties
 * by id, with the ranking distance (vshnsw.h), and returns that count; 0
 * for an empty graph or k < 1; -1 if the graph has more nodes than the
 * scratch was made for, or is a cosine graph built without its inverse
 * norms.  No allocation; reads the graph only.
 */
int
VsHnswSearch(const void *graph, const float *vectors, const float *query,
			 int k, int ef, VsHnswScratch *scratch, VsHnswResult *out)
{
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) graph;
	Source		src;

	if (h->n == 0 || k < 1)
		return 0;
	memset(&src, 0, sizeof(src));
	src.query = query;
	src.vectors = vectors;
	src.dim = (int) h->dim;
	switch ((VsMetric) h->metric)
	{
		case VS_METRIC_IP:
			src.kind = SRC_IP;
			break;
		case VS_METRIC_COSINE:
			src.kind = SRC_COSINE;
			src.inv_norms = VsHnswInvNorms(graph);
			src.query_inv = VsHnswInvNorm(query, src.dim);
			if (src.inv_norms == NULL)
				return -1;
			break;
		default:
			src.kind = SRC_L2;
			break;
	}
	return search_graph(graph, &src, k, ef, scratch, out);
}

/*
 * VsHnswSearchWith - VsHnswSearch with the caller's distance function
 * (compact codes, or anything else indexed by node id).
 *
 * dist(ctx, id) gives the distance from the caller's query to node id
 * (id < n); the graph's metric and inverse norms are not used.  Same
 * results contract as VsHnswSearch.  With a dist that computes exactly
 * what VsHnswSearch computes, the results are identical.
 */
int
VsHnswSearchWith(const void *graph, VsHnswDistanceFn dist, void *ctx, int k,
				 int ef, VsHnswScratch *scratch, VsHnswResult *out)
{
	Source		src;

	memset(&src, 0, sizeof(src));
	src.kind = SRC_CALLBACK;
	src.fn = dist;
	src.ctx = ctx;
	return search_graph(graph, &src, k, ef, scratch, out);
}

/*
 * VsHnswSearchBatch - VsHnswSearchWith with a function that computes the
 * distances of a node's unvisited neighbours in one call.
 *
 * dists(ctx, ids, n, out) fills out[i] for node ids[i] (each < the
 * graph's n); it gets at most 2 * VS_HNSW_MAX_M ids, and single ids
 * during the descent.  NaN counts as +infinity.  Same results contract as
 * VsHnswSearch, and the same results as VsHnswSearchWith given the same
 * distances.
 */
int
VsHnswSearchBatch(const void *graph, VsHnswDistancesFn dists, void *ctx,
				  int k, int ef, VsHnswScratch *scratch, VsHnswResult *out)
{
	Source		src;

	memset(&src, 0, sizeof(src));
	src.kind = SRC_BATCH;
	src.batch = dists;
	src.ctx = ctx;
	src.ids = scratch->ids;
	src.dists = scratch->dists;
	return search_graph(graph, &src, k, ef, scratch, out);
}

/*
 * VsHnswFlatSearch - the exact k nearest of n vectors: the scan used for
 * clusters below VS_HNSW_FLAT_THRESHOLD, and the reference for recall.
 *
 * Same output as VsHnswSearch: min(k, n) results, nearest first, ties by
 * id, ranking distances.  For cosine the vector's norm comes from the
 * same pass as the dot product (dot_norms), so distances agree with the
 * graph's to float rounding only.  No allocation: out is the heap.
 */
int
VsHnswFlatSearch(const float *vectors, int n, int dim, VsMetric metric,
				 const float *query, int k, VsHnswResult *out)
{
	int			size = 0;
	float		query_inv = 0.0f;

	if (k > n)
		k = n;
	if (k <= 0)
		return 0;
	if (metric == VS_METRIC_COSINE)
		query_inv = VsHnswInvNorm(query, dim);

	/* a max-heap of the best k so far: out[0] is the worst of them */
	for (int i = 0; i < n; i++)
	{
		const float *x = vectors + (size_t) i * dim;
		float		d;

		if (metric == VS_METRIC_L2)
			d = VsKernels.l2_squared(query, x, dim);
		else if (metric == VS_METRIC_IP)
			d = -VsKernels.inner_product(query, x, dim);
		else
		{
			float		dot,
						nq,
						nx;
			float		xinv;

			VsKernels.dot_norms(query, x, dim, &dot, &nq, &nx);
			xinv = nx > 0.0f ? (float) (1.0 / sqrt((double) nx)) : 0.0f;
			d = 1.0f - dot * (query_inv * xinv);
		}
		if (d != d)
			d = INFINITY;

		if (size < k)
		{
			/* sift up */
			int			j = size++;

			while (j > 0)
			{
				int			parent = (j - 1) / 2;

				if (!before(out[parent].distance, out[parent].id, d, (uint32_t) i))
					break;
				out[j] = out[parent];
				j = parent;
			}
			out[j].id = (uint32_t) i;
			out[j].distance = d;
		}
		else if (before(d, (uint32_t) i, out[0].distance, out[0].id))
		{
			out[0].id = (uint32_t) i;
			out[0].distance = d;
			heap_sift_down(out, size, 0);
		}
	}
	/* heap sort: the worst goes to the end, repeatedly */
	for (int end = size - 1; end > 0; end--)
	{
		VsHnswResult tmp = out[0];

		out[0] = out[end];
		out[end] = tmp;
		heap_sift_down(out, end, 0);
	}
	return size;
}

/*
 * VsHnswDistance - the ranking distance the graph uses between two
 * vectors: squared L2, negative inner product, or 1 - a.b/(|a||b|) with
 * each inverse norm rounded to float as the graph stores it (1 when
 * either vector is zero).
 */
float
VsHnswDistance(VsMetric metric, const float *a, const float *b, int dim)
{
	switch (metric)
	{
		case VS_METRIC_IP:
			return -VsKernels.inner_product(a, b, dim);
		case VS_METRIC_COSINE:
			return 1.0f - VsKernels.inner_product(a, b, dim) *
				(VsHnswInvNorm(a, dim) * VsHnswInvNorm(b, dim));
		default:
			return VsKernels.l2_squared(a, b, dim);
	}
}

/*
 * VsHnswInvNorm - 1 / ||x||, the norm from the inner-product kernel and the
 * root in double; 0 for a zero vector (whose cosine distance is then 1).
 */
float
VsHnswInvNorm(const float *x, int dim)
{
	float		nrm = VsKernels.inner_product(x, x, dim);

	return nrm > 0.0f ? (float) (1.0 / sqrt((double) nrm)) : 0.0f;
}

/*
 * VsHnswNextEpoch - a fresh visited mark; on wrap-around every tag is cleared
 * (all "count" of them, so a later search of a larger graph sees no
 * stale mark).
 */
uint16_t
VsHnswNextEpoch(uint16_t *tags, size_t count, uint16_t *epoch)
{
	if (++(*epoch) == 0)
	{
		memset(tags, 0, count * sizeof(uint16_t));
		*epoch = 1;
	}
	return *epoch;
}

/*
 * VsHnswPoolInsert - put (dist, id) into the sorted candidate array of "*size"
 * entries and capacity "cap", dropping the last entry when full.
 * Returns the position, or -1 when the candidate is not among the best
 * cap.  Ids in the array may carry the EXPANDED flag; "id" must not.
 * The order is ranks_before's with lv's members and salt.
 */
int
VsHnswPoolInsert(PoolEntry *pool, int *size, int cap, float dist, uint32_t id,
				 const Level *lv, uint32_t salt)
{
	int			n = *size;
	int			lo = 0,
				hi = n;

	if (n == cap &&
		!ranks_before(lv, salt, dist, id, pool[n - 1].dist, pool[n - 1].id & ID_MASK))
		return -1;
	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (ranks_before(lv, salt, pool[mid].dist, pool[mid].id & ID_MASK, dist, id))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (n == cap)
		n--;					/* the last one falls out */
	memmove(pool + lo + 1, pool + lo, sizeof(PoolEntry) * (size_t) (n - lo));
	pool[lo].dist = dist;
	pool[lo].id = id;
	*size = n + 1;
	return lo;
}

/*
 * VsHnswGreedy - from member "cur" at distance *curdist, move to the nearest
 * neighbour while one is nearer (ef = 1).  Each move goes strictly down
 * the order of ranks_before, so it ends on any graph.  Returns the member reached;
 * *curdist is its distance.
 */
uint32_t
VsHnswGreedy(const Level *lv, const Source *src, uint32_t cur, float *curdist,
			 uint32_t salt)
{
	int			changed = 1;

	while (changed)
	{
		size_t		row = (size_t) cur * lv->cap;

		changed = 0;
		for (uint32_t j = 0; j < lv->cap; j++)
		{
			uint32_t	v = level_id(lv, row + j);
			float		d;

			if (v >= lv->count)
				break;			/* VS_HNSW_NONE ends the row */
			d = source_distance(src, member_node(lv, v));
			if (ranks_before(lv, salt, d, v, *curdist, cur))
			{
				*curdist = d;
				cur = v;
				changed = 1;
			}
		}
	}
	return cur;
}

/*
 * VsHnswSearchLayer - the ef search of one level.
 *
 * pool holds "size" sorted candidates (member indices of this level, each
 * already tagged with "epoch"; flags ignored, they are cleared here);
 * ef >= size is the capacity.  Expands the nearest unexpanded candidate
 * until none is left; returns the final size.  "row" is scratch for one
 * row.  salt: see ranks_before.  Every id read from a row is compared
 * with the level's count
 * before use, so even a row altered after validation is not followed out
 * of the level.
 */
int
VsHnswSearchLayer(const Level *lv, const Source *src, PoolEntry *pool, int size,
				  int ef, uint16_t *tags, uint16_t epoch, uint32_t *row,
				  uint32_t salt)
{
	int			cursor = 0;

	for (int i = 0; i < size; i++)
		pool[i].id &= ID_MASK;
	while (cursor < size)
	{
		uint32_t	cur = pool[cursor].id;
		int			nnew = 0;
		int			lowest = size;

		pool[cursor].id = cur | EXPANDED;
		prefetch_next_row(lv, pool, cursor + 1, size);

		/* the unvisited neighbours first, then their distances */
		if (lv->adj16 != NULL)
		{
			const uint16_t *adj = lv->adj16 + (size_t) cur * lv->cap;

			for (uint32_t j = 0; j < lv->cap; j++)
			{
				uint32_t	v = adj[j];

				if (v >= lv->count)
					break;
				if (tags[v] == epoch)
					continue;
				tags[v] = epoch;
				row[nnew++] = v;
			}
		}
		else
		{
			const uint32_t *adj = lv->adj + (size_t) cur * lv->cap;

			for (uint32_t j = 0; j < lv->cap; j++)
			{
				uint32_t	v = adj[j];

				if (v >= lv->count)
					break;
				if (tags[v] == epoch)
					continue;
				tags[v] = epoch;
				row[nnew++] = v;
			}
		}
		if (src->kind == SRC_BATCH)
		{
			/* the caller's function does the whole row at once */
			for (int j = 0; j < nnew; j++)
				src->ids[j] = member_node(lv, row[j]);
			if (nnew > 0)
				src->batch(src->ctx, src->ids, (uint32_t) nnew, src->dists);
			for (int j = 0; j < nnew; j++)
			{
				float		d = src->dists[j];
				int			pos;

				if (d != d)
					d = INFINITY;
				if (size == ef && d > pool[size - 1].dist)
					continue;	/* farther than the full pool's last */
				pos = VsHnswPoolInsert(pool, &size, ef, d, row[j], lv, salt);
				if (pos >= 0 && pos <= lowest)
					lowest = pos;
			}
		}
		else
		{
			if (nnew > 0)
				prefetch_node(src, member_node(lv, row[0]));
			for (int j = 0; j < nnew; j++)
			{
				float		d;
				int			pos;

				if (j + 1 < nnew)
					prefetch_node(src, member_node(lv, row[j + 1]));
				d = source_distance(src, member_node(lv, row[j]));
				if (size == ef && d > pool[size - 1].dist)
					continue;	/* farther than the full pool's last */
				pos = VsHnswPoolInsert(pool, &size, ef, d, row[j], lv, salt);
				if (pos >= 0 && pos <= lowest)
					lowest = pos;
			}
		}

		/*
		 * Entries before the old cursor were all expanded; new ones went
		 * in at "lowest" or later, and shifted the rest right.
		 */
		if (lowest < cursor)
			cursor = lowest;
		while (cursor < size && (pool[cursor].id & EXPANDED))
			cursor++;
	}
	return size;
}

/*
 * prefetch_node - start loading a node's vector (its first two cache
 * lines; the hardware prefetcher follows the rest) while the previous
 * distance is computed.
 */
static inline void
prefetch_node(const Source *src, uint32_t node)
{
#ifdef __GNUC__
	if (src->kind != SRC_CALLBACK && src->kind != SRC_BATCH)
	{
		const char *p = (const char *) (src->vectors + (size_t) node * src->dim);

		__builtin_prefetch(p);
		__builtin_prefetch(p + 64);
	}
#else
	(void) src;
	(void) node;
#endif
}

/*
 * prefetch_next_row - start loading the row of the candidate likely to be
 * expanded next (the first unexpanded one from "from"), while the current
 * row's distances are computed, as hnswlib does.  The row is the one
 * cache miss the vector prefetches do not cover; measured 6% faster
 * searches on SIFT 50,000 at ef 64.
 */
static inline void
prefetch_next_row(const Level *lv, const PoolEntry *pool, int from, int size)
{
#ifdef __GNUC__
	while (from < size && (pool[from].id & EXPANDED))
		from++;
	if (from < size)
	{
		const char *p = lv->adj16 ?
			(const char *) (lv->adj16 + (size_t) pool[from].id * lv->cap) :
			(const char *) (lv->adj + (size_t) pool[from].id * lv->cap);

		__builtin_prefetch(p);
		if (lv->adj16 == NULL || lv->cap > 32)
			__builtin_prefetch(p + 64);
	}
#else
	(void) lv;
	(void) pool;
	(void) from;
	(void) size;
#endif
}

/*
 * search_graph - descend, then the level-0 ef search; the common part of
 * VsHnswSearch and VsHnswSearchWith (same contract).
 */
static int
search_graph(const void *graph, const Source *src, int k, int ef,
			 VsHnswScratch *scratch, VsHnswResult *out)
{
	const char *base = (const char *) graph;
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) graph;
	uint32_t	n = h->n;
	uint32_t	cur = h->entry;
	float		curdist;
	uint16_t	epoch;
	Level		lv;
	int			size;
	int			nlevels = h->nlevels;

	if (n == 0 || k < 1)
		return 0;
	if (n > scratch->max_n || cur >= n)
		return -1;
	if (nlevels > VS_HNSW_MAX_LEVELS)
		nlevels = VS_HNSW_MAX_LEVELS;
	if (ef < k)
		ef = k;
	if ((uint32_t) ef > scratch->max_ef)
		ef = (int) scratch->max_ef;
	if ((uint32_t) ef > n)
		ef = (int) n;
	if (k > ef)
		k = ef;

	curdist = source_distance(src, cur);
	for (int l = nlevels - 1; l >= 1; l--)
	{
		uint32_t	local;

		VsHnswLevelView(base, l, &lv);
		local = VsHnswFindMember(&lv, cur);
		if (local == VS_HNSW_NONE)
			continue;			/* cannot happen in a validated graph */
		local = VsHnswGreedy(&lv, src, local, &curdist, 0);
		cur = lv.members[local];
	}

	VsHnswLevelView(base, 0, &lv);
	epoch = VsHnswNextEpoch(scratch->tags, scratch->max_n, &scratch->epoch);
	scratch->tags[cur] = epoch;
	scratch->pool[0].dist = curdist;
	scratch->pool[0].id = cur;
	size = VsHnswSearchLayer(&lv, src, scratch->pool, 1, ef, scratch->tags, epoch,
						scratch->row, 0);

	if (k > size)
		k = size;
	for (int i = 0; i < k; i++)
	{
		out[i].id = scratch->pool[i].id & ID_MASK;
		out[i].distance = scratch->pool[i].dist;
	}
	return k;
}

/*
 * heap_sift_down - restore the max-heap (worst result on top) below i.
 */
static void
heap_sift_down(VsHnswResult *heap, int size, int i)
{
	VsHnswResult x = heap[i];

	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= size)
			break;
		if (child + 1 < size &&
			before(heap[child].distance, heap[child].id,
				   heap[child + 1].distance, heap[child + 1].id))
			child++;
		if (!before(x.distance, x.id, heap[child].distance, heap[child].id))
			break;
		heap[i] = heap[child];
		i = child;
	}
	heap[i] = x;
}
