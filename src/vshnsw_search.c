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

/*
 * A trail: every node the searches of one query in one graph have
 * computed a distance for (the descent's too), and the last search's
 * final candidate list (with its expanded flags).  A deeper search starts
 * from all of it
 * (search_graph), so it computes only the distances its larger list
 * reaches beyond them: no node's distance is computed twice for the same
 * query.  Lives at the start of the caller's block (VsHnswTrailInit).
 */
struct VsHnswTrail
{
	uint32_t	max_n;			/* nodes it can hold */
	uint32_t	max_ef;			/* candidates it can hold */
	uint32_t	n;				/* the graph's nodes; 0: empty trail */
	uint32_t	entry;			/* and its entry point (a cheap check) */
	uint32_t	nvisited;		/* entries of "visited" */
	int32_t		npool;			/* entries of "pool" */
	int32_t		ef;				/* the ef of the last search */
	int32_t		overflow;		/* "visited" ran out: start again */
	PoolEntry  *visited;		/* max_n + max_ef entries: distance and node,
								 * in visit order, up to max_n of them, then
								 * the last final candidate list right after
								 * them (trail_pool: one run of memory, so
								 * that a fresh block is touched on as few
								 * pages as can be) */
};

/* a trail's last final candidate list, right after its visited nodes */
static inline PoolEntry *
trail_pool(const VsHnswTrail *trail)
{
	return trail->visited + trail->nvisited;
}

static inline void prefetch_node(const Source *src, uint32_t node);
static inline void prefetch_next_row(const Level *lv, const PoolEntry *pool,
									 int from, int size);
static int	search_graph(const void *graph, const Source *src, int k, int ef,
						 VsHnswScratch *scratch, VsHnswTrail *trail,
						 VsHnswResult *out);

static void heap_sift_down(VsHnswResult *heap, int size, int i);


/* x rounded up to a multiple of 8 */
static inline size_t
align8(size_t x)
{
	return (x + 7) & ~(size_t) 7;
}

/* the limits a scratch or trail is made for: max_n >= 0, max_ef >= 1 */
static inline void
clamp_limits(int *max_n, int *max_ef)
{
	if (*max_n < 0)
		*max_n = 0;
	if (*max_ef < 1)
		*max_ef = 1;
}

/* can a caller's block hold "need" bytes (not NULL, 8-byte aligned)? */
static inline int
block_fits(const void *mem, size_t size, size_t need)
{
	return mem != NULL && ((uintptr_t) mem & 7) == 0 && size >= need;
}

/*
 * VsHnswScratchSize - bytes of scratch for searching graphs of up to
 * max_n nodes with up to max_ef candidates (ef, or k when larger).
 * About 2 bytes per node plus 8 per candidate plus 2.4 kB.
 */
size_t
VsHnswScratchSize(int max_n, int max_ef)
{
	size_t		size;

	clamp_limits(&max_n, &max_ef);
	size = align8(sizeof(VsHnswScratch));
	size += align8((size_t) max_n * sizeof(uint16_t));
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

	clamp_limits(&max_n, &max_ef);
	if (!block_fits(mem, size, VsHnswScratchSize(max_n, max_ef)))
		return NULL;
	p = (char *) mem + align8(sizeof(VsHnswScratch));
	s->max_n = (uint32_t) max_n;
	s->max_ef = (uint32_t) max_ef;
	s->epoch = 0;
	s->tags = (uint16_t *) p;
	p += align8((size_t) max_n * sizeof(uint16_t));
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
 * VsHnswTrailSize - bytes of a trail for graphs of up to max_n nodes and
 * searches of up to max_ef candidates: 8 bytes per node and per
 * candidate, and a header.
 */
size_t
VsHnswTrailSize(int max_n, int max_ef)
{
	clamp_limits(&max_n, &max_ef);
	return align8(sizeof(VsHnswTrail)) +
		((size_t) max_n + (size_t) max_ef) * sizeof(PoolEntry);
}

/*
 * VsHnswTrailInit - lay out an empty trail in mem (size >=
 * VsHnswTrailSize(max_n, max_ef) bytes, 8-byte aligned, owned by the
 * caller).  Returns NULL if it is too small or misaligned.  A trail
 * belongs to one query in one graph: VsHnswSearchBatchOn and
 * VsHnswSearchOn continue the searches it records, and the caller must
 * not hand it a different graph, query or distance function (a trail
 * made for another graph is noticed only by its size and entry point).
 * A node the descent computed and the level-0 search computed again takes
 * two entries, so a trail made for max_n = n can fill up (a search that
 * reads nearly every node); the next search on it is then a fresh one.
 * Nothing in it needs clearing: init it again for another query.
 */
VsHnswTrail *
VsHnswTrailInit(void *mem, size_t size, int max_n, int max_ef)
{
	VsHnswTrail *t = (VsHnswTrail *) mem;

	clamp_limits(&max_n, &max_ef);
	if (!block_fits(mem, size, VsHnswTrailSize(max_n, max_ef)))
		return NULL;
	memset(t, 0, sizeof(VsHnswTrail));
	t->max_n = (uint32_t) max_n;
	t->max_ef = (uint32_t) max_ef;
	t->visited = (PoolEntry *) ((char *) mem + align8(sizeof(VsHnswTrail)));
	return t;
}

/*
 * VsHnswTrailEf - the ef of the last search a trail records (after the
 * limits search_graph put on it); 0 for an empty trail.
 */
int
VsHnswTrailEf(const VsHnswTrail *trail)
{
	return trail->n == 0 ? 0 : trail->ef;
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
	return VsHnswSearchOn(graph, vectors, query, k, ef, scratch, NULL, out);
}

/*
 * VsHnswSearchOn - VsHnswSearch that records what it visits in "trail",
 * or, when the trail already holds searches of this graph for this query,
 * continues them (see VsHnswSearchBatchOn).  A NULL trail is VsHnswSearch.
 */
int
VsHnswSearchOn(const void *graph, const float *vectors, const float *query,
			   int k, int ef, VsHnswScratch *scratch, VsHnswTrail *trail,
			   VsHnswResult *out)
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
	return search_graph(graph, &src, k, ef, scratch, trail, out);
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
	return search_graph(graph, &src, k, ef, scratch, NULL, out);
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
	return VsHnswSearchBatchOn(graph, dists, ctx, k, ef, scratch, NULL, out);
}

/*
 * VsHnswSearchBatchOn - VsHnswSearchBatch on a trail (NULL: none).
 *
 * An empty trail (just made by VsHnswTrailInit): the same search, with
 * the same results, recording every node whose distance it computes and
 * its final candidate list.  A trail that holds searches of
 * this graph for this query, with a larger ef than theirs: the level-0
 * search continues them: its candidate list starts as the best ef of
 * every node they visited, the ones they expanded marked so, and it
 * expands until none of the best ef is left unexpanded, as a search
 * does; it computes the distance of no node visited before, and skips
 * the descent.  Its results are not a fresh search's, bit for bit, but as
 * good (it starts from every candidate the earlier searches found; the
 * unit test asks for at least as many of the exact nearest over a set of
 * queries), at the cost of the difference.  With an ef no larger than the last one's, the last
 * results again (nothing computed).  A trail that fills up makes the
 * next search on it a fresh one.
 */
int
VsHnswSearchBatchOn(const void *graph, VsHnswDistancesFn dists, void *ctx,
					int k, int ef, VsHnswScratch *scratch, VsHnswTrail *trail,
					VsHnswResult *out)
{
	Source		src;

	memset(&src, 0, sizeof(src));
	src.kind = SRC_BATCH;
	src.batch = dists;
	src.ctx = ctx;
	src.ids = scratch->ids;
	src.dists = scratch->dists;
	return search_graph(graph, &src, k, ef, scratch, trail, out);
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
	int			lo = 0;

	if (n == cap &&
		!ranks_before(lv, salt, dist, id, pool[n - 1].dist, pool[n - 1].id & ID_MASK))
		return -1;

	/*
	 * The first entry not nearer than "dist", by a binary search without
	 * branches (the branchy search mispredicted about half its steps, and
	 * this function was a tenth of a query), then past the entries at the
	 * same distance that rank before it.  Each step adds the comparison
	 * times the half: written as a choice of pointers, gcc 12 compiled a
	 * branch on the float comparison.
	 */
	if (n > 0)
	{
		const PoolEntry *b = pool;
		int			len = n;

		while (len > 1)
		{
			int			half = len / 2;

			b += (b[half - 1].dist < dist) * half;
			len -= half;
		}
		lo = (int) (b - pool) + (b->dist < dist);
	}
	while (lo < n && pool[lo].dist == dist &&
		   ranks_before(lv, salt, pool[lo].dist, pool[lo].id & ID_MASK, dist, id))
		lo++;
	if (n == cap)
		n--;					/* the last one falls out */
	memmove(pool + lo + 1, pool + lo, sizeof(PoolEntry) * (size_t) (n - lo));
	pool[lo].dist = dist;
	pool[lo].id = id;
	*size = n + 1;
	return lo;
}

/*
 * log_visit - a trail's record of a level-0 node whose distance was
 * computed (search_layer; NULL: no trail).
 */
static inline void
log_visit(VsHnswTrail *trail, float dist, uint32_t id)
{
	if (trail == NULL)
		return;
	if (trail->nvisited < trail->max_n)
	{
		trail->visited[trail->nvisited].dist = dist;
		trail->visited[trail->nvisited].id = id;
		trail->nvisited++;
	}
	else
		trail->overflow = 1;
}

/*
 * greedy - VsHnswGreedy, recording every node it computes in "trail"
 * (when not NULL) by its node id.
 */
#ifdef __GNUC__
__attribute__((always_inline))
#endif
static inline uint32_t
greedy(const Level *lv, const Source *src, uint32_t cur, float *curdist,
	   uint32_t salt, VsHnswTrail *trail)
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
			log_visit(trail, d, member_node(lv, v));
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
 * VsHnswGreedy - from member "cur" at distance *curdist, move to the nearest
 * neighbour while one is nearer (ef = 1).  Each move goes strictly down
 * the order of ranks_before, so it ends on any graph.  Returns the member reached;
 * *curdist is its distance.
 */
uint32_t
VsHnswGreedy(const Level *lv, const Source *src, uint32_t cur, float *curdist,
			 uint32_t salt)
{
	return greedy(lv, src, cur, curdist, salt, NULL);
}

/*
 * search_layer - the ef search of one level, as VsHnswSearchLayer
 * describes; "keep" leaves the pool's expanded flags as they are (a
 * continued search: those were expanded), and "trail" (not NULL) records
 * every node whose distance it computes.  Inlined into both callers, so
 * that the build's searches carry no trail code.
 */
#ifdef __GNUC__
__attribute__((always_inline))
#endif
static inline int
search_layer(const Level *lv, const Source *src, PoolEntry *pool, int size,
			 int ef, uint16_t *tags, uint16_t epoch, uint32_t *row,
			 uint32_t salt, int keep, VsHnswTrail *trail)
{
	int			cursor = 0;
	const uint32_t cap = lv->cap;
	const uint32_t count = lv->count;

	if (!keep)
	{
		for (int i = 0; i < size; i++)
			pool[i].id &= ID_MASK;
	}
	while (cursor < size && (pool[cursor].id & EXPANDED))
		cursor++;
	while (cursor < size)
	{
		uint32_t	cur = pool[cursor].id;
		int			nnew = 0;
		int			lowest = size;

		pool[cursor].id = cur | EXPANDED;
		prefetch_next_row(lv, pool, cursor + 1, size);

		/*
		 * The unvisited neighbours first, then their distances.  Whether a
		 * neighbour was visited is as likely as not, so it is counted
		 * without a branch (a mispredicted one per neighbour cost more
		 * than the store); cap and count are read once, as stores to
		 * "row" could alias them.
		 */
		if (lv->adj16 != NULL)
		{
			const uint16_t *adj = lv->adj16 + (size_t) cur * cap;

			for (uint32_t j = 0; j < cap; j++)
			{
				uint32_t	v = adj[j];

				if (v >= count)
					break;
				row[nnew] = v;
				nnew += (tags[v] != epoch);
				tags[v] = epoch;
			}
		}
		else
		{
			const uint32_t *adj = lv->adj + (size_t) cur * cap;

			for (uint32_t j = 0; j < cap; j++)
			{
				uint32_t	v = adj[j];

				if (v >= count)
					break;
				row[nnew] = v;
				nnew += (tags[v] != epoch);
				tags[v] = epoch;
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
				log_visit(trail, d, row[j]);
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
				log_visit(trail, d, row[j]);
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
	return search_layer(lv, src, pool, size, ef, tags, epoch, row, salt, 0, NULL);
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
 * continue_trail - the level-0 candidate list of a search that continues
 * the ones "trail" records, into scratch->pool: their last final list as
 * it was (expanded flags kept), then the best of every other node they
 * visited, up to ef; every one of those nodes tagged with "epoch", so
 * that none is computed again.  Returns the list's size.
 */
static int
continue_trail(const Level *lv, VsHnswTrail *trail, int ef, VsHnswScratch *scratch,
			   uint16_t epoch)
{
	PoolEntry  *pool = scratch->pool;
	int			size = trail->npool;

	memcpy(pool, trail_pool(trail), sizeof(PoolEntry) * (size_t) size);
	for (int i = 0; i < size; i++)
		scratch->tags[pool[i].id & ID_MASK] = epoch;
	for (uint32_t i = 0; i < trail->nvisited; i++)
	{
		const PoolEntry *v = &trail->visited[i];

		if (scratch->tags[v->id] == epoch)
			continue;			/* in the list already */
		scratch->tags[v->id] = epoch;
		if (size == ef && v->dist > pool[size - 1].dist)
			continue;
		VsHnswPoolInsert(pool, &size, ef, v->dist, v->id, lv, 0);
	}
	return size;
}

/*
 * search_graph - descend, then the level-0 ef search; the common part of
 * VsHnswSearch and VsHnswSearchWith (same contract), and of the searches
 * on a trail (not NULL: VsHnswSearchBatchOn).
 */
static int
search_graph(const void *graph, const Source *src, int k, int ef,
			 VsHnswScratch *scratch, VsHnswTrail *trail, VsHnswResult *out)
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
	if (trail != NULL && (uint32_t) ef > trail->max_ef)
		ef = (int) trail->max_ef;
	if ((uint32_t) ef > n)
		ef = (int) n;
	if (k > ef)
		k = ef;

	/* a trail of another graph, or one that ran out of room: start again */
	if (trail != NULL &&
		(trail->n != n || trail->entry != h->entry || trail->overflow))
	{
		trail->n = 0;
		trail->nvisited = 0;
		trail->npool = 0;
		trail->ef = 0;
		trail->overflow = 0;
	}

	VsHnswLevelView(base, 0, &lv);
	if (trail != NULL && trail->n != 0)
	{
		/* continue the trail's searches: no descent, no node computed twice */
		if (ef <= trail->ef)
		{
			size = trail->npool;
			memcpy(scratch->pool, trail_pool(trail), sizeof(PoolEntry) * (size_t) size);
		}
		else
		{
			epoch = VsHnswNextEpoch(scratch->tags, scratch->max_n, &scratch->epoch);
			size = continue_trail(&lv, trail, ef, scratch, epoch);
			size = search_layer(&lv, src, scratch->pool, size, ef, scratch->tags, epoch,
								scratch->row, 0, 1, trail);
		}
	}
	else
	{
		/* a fresh search; on a trail, every node it computes is recorded */
		if (trail != NULL)
		{
			trail->n = n;
			trail->entry = h->entry;
			trail->ef = 0;
		}
		curdist = source_distance(src, cur);
		log_visit(trail, curdist, cur);
		for (int l = nlevels - 1; l >= 1; l--)
		{
			Level		up;
			uint32_t	local;

			VsHnswLevelView(base, l, &up);
			local = VsHnswFindMember(&up, cur);
			if (local == VS_HNSW_NONE)
				continue;		/* cannot happen in a validated graph */
			local = greedy(&up, src, local, &curdist, 0, trail);
			cur = up.members[local];
		}

		epoch = VsHnswNextEpoch(scratch->tags, scratch->max_n, &scratch->epoch);
		scratch->tags[cur] = epoch;
		scratch->pool[0].dist = curdist;
		scratch->pool[0].id = cur;
		size = search_layer(&lv, src, scratch->pool, 1, ef, scratch->tags, epoch,
							scratch->row, 0, 0, trail);
	}

	if (trail != NULL)
	{
		/* after the visits (a continued search copied the last list first) */
		memcpy(trail_pool(trail), scratch->pool, sizeof(PoolEntry) * (size_t) size);
		trail->npool = size;
		if (ef > trail->ef)
			trail->ef = ef;
	}

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
