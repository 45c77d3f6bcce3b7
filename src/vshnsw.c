/*-------------------------------------------------------------------------
 *
 * vshnsw.c
 *	  HNSW graph over the vectors of one IVF cluster, searched in place.
 *
 * Owns the serialized format: the layout of a block (VsHnswComputeLayout,
 * the single definition of where each section lies), checking a block
 * without trusting it (VsHnswValidate), and reading one (its inverse
 * norms, a node's neighbours, a summary).  The graph is built straight
 * into that layout by vshnsw_build.c (incremental, or from neighbour
 * lists, and the exact lists themselves) and searched where it lies by
 * vshnsw_search.c, over the cluster's float vectors or through a caller's
 * distance function, one node or one row of neighbours at a time
 * (compact codes); that file also has the exact flat scan that the index
 * uses for clusters below VS_HNSW_FLAT_THRESHOLD.  vshnsw_internal.h holds
 * what the three share.  This header describes the algorithm for all
 * three.  Pure C99 plus GCC builtins: no postgres.h.  Memory comes from
 * hooks->alloc and interrupts are polled through hooks->check_interrupts
 * (vskmeans.h).
 *
 * The algorithm is HNSW as published (Malkov and Yashunin, 2016) and as
 * hnswlib implements it:
 *	- a node's top level is drawn with P(level >= l) = m^-l, which is the
 *	  paper's mL = 1 / ln(m); it is drawn by counting how many uniform
 *	  draws in [0, m) in a row come out 0, so it needs no floating point
 *	  and is the same on every machine.  All levels are drawn before the
 *	  first insertion, which fixes the layout, hence the block's size
 *	  before anything is built (VsHnswSerializedSize);
 *	- nodes are inserted in id order: greedy descent (ef 1) through the
 *	  levels above the node's own, then on each of its levels a search
 *	  with ef_construction that starts from the previous level's
 *	  candidates, the heuristic neighbour selection (a candidate is kept
 *	  unless a neighbour already kept is strictly nearer to it than the new
 *	  node is), m neighbours on every level, and back links; a full row
 *	  (m, or 2m on level 0) is re-selected with the same heuristic;
 *	- a search descends greedily to level 0 and runs one ef search there.
 *
 * Where this departs from hnswlib, each for a measured reason (the
 * functions say more):
 *	- exact distance ties inside the build are broken by a hash salted
 *	  per inserted node, not by id, or a group of identical vectors links
 *	  everything to its lowest ids and strands the rest (ranks_before);
 *	- at most half of a row goes to exact copies of its node, or groups of
 *	  copies become islands (select_neighbours);
 *	- inner-product rows are filled up with the nearest candidates the
 *	  heuristic dropped (the paper's keepPrunedConnections), which the
 *	  heuristic alone leaves at one or two links (select_neighbours);
 *	- the next candidate's row is prefetched while the current one's
 *	  distances are computed (prefetch_next_row, as hnswlib does) and each
 *	  neighbour's vector just before its distance.
 * Searches order ties by id, so their results are reproducible.
 *
 * The candidate list of a layer search is one array of at most ef
 * entries sorted by (distance, id), each marked once expanded: the next
 * node to expand is the first unmarked entry, and the search ends when
 * every entry is marked.  This is the paper's pair of heaps folded into
 * one bounded structure (a candidate that falls out of the best ef could
 * never be expanded anyway), so a search needs only ef entries of scratch
 * and its order, ties included, is fully defined.  The visited set is an
 * array of 16-bit epochs, one per node, advanced per layer search and
 * cleared only when the epoch wraps.
 *
 * Determinism: the build makes no allocation-dependent or time-dependent
 * choice and writes every byte of the block, so the same vectors, options
 * and kernel path give identical bytes.  Different kernel paths round
 * distances differently and may build different graphs.
 *
 * Cost (bench/RESULTS-hnsw.md, one core of a shared 2-core VM; m 16,
 * ef_construction 64): building takes 16-33 us per vector at 128 dims in
 * clusters of 10^3-10^4 vectors, 50-100 at 10^5 and 187 at 10^6, about
 * 2x that at 784 dims, and 2.5-6x that under inner product (its rows are
 * always full, so every back link re-selects a row); the block is 64
 * bytes per node on level 0 (16-bit ids; 128 above 65,535 nodes) plus
 * about 4.5 for the levels above (plus 4 for cosine), and the build needs
 * 3 bytes per node beside it, and 128 per node for level 0's rows in 32
 * bits while a graph of 16-bit ids is built.  Searching
 * costs 50-70 ns per distance at 100-128 dims in clusters of 10^4-10^5
 * (the vectors and rows are cache misses), 2-3 times a sequential scan's.
 *
 * Limits, measured:
 *	- heavy duplication: when every point has 40 exact copies, the copies
 *	  fill the candidate list (the effective ef is ef / 40) and recall@10
 *	  at ef 64 falls to about 0.9; one vector making up half of a cluster
 *	  costs 0.03.  XXX Merging exact copies into one node with a list of
 *	  rows, as pgvector does, would remove this (a layout change);
 *	- many well-separated groups inside one graph (which IVF would have
 *	  put into different clusters) make recall plateau near 0.98 until ef
 *	  256 (L2) or 0.90-0.96 (IP);
 *	- under inner product, nodes that can never be a near-maximum are left
 *	  unreachable (about half of them); a scan that must see every row of
 *	  a cluster (filters) should fall back to the flat scan.
 *
 * Flat or graph: below VS_HNSW_FLAT_THRESHOLD vectors an exact scan of
 * the cluster measured as fast as or faster than the graph at the default
 * ef_search (vshnsw.h says how it was measured).
 *
 * IDENTIFICATION
 *	  src/vshnsw.c
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vshnsw_internal.h"

#define ALIGN_UP(x)		(((x) + (VS_HNSW_ALIGN - 1)) & ~(uint64_t) (VS_HNSW_ALIGN - 1))


/*
 * VsHnswValidate - check a serialized graph without trusting it.
 *
 * graph: the block as mapped (8-byte aligned), of "size" readable bytes;
 * n, dim, metric: what the cluster says the graph must cover.  Reads only
 * inside [graph, graph + size) whatever the bytes are.  Returns NULL when
 * the graph may be searched, otherwise a constant string naming the first
 * problem found (for an errdetail).
 *
 * Checked: magic, version, flags, the header against n/dim/metric, m and
 * the level count in range, every section offset equal to the layout the
 * level counts imply and inside the block, member lists strictly
 * ascending, below n and nested (each level within the one below), the
 * entry point on the top level, every row holding ids below its level's
 * count and no self-link, then only VS_HNSW_NONE (VS_HNSW_NONE16 in
 * 16-bit rows, which only a graph of at most VS_HNSW_ID16_MAX_NODES
 * nodes may have), and cosine's inverse norms finite and non-negative.  These are the invariants the search
 * relies on; a graph that passes them can give poor results if its links
 * were altered, but no search of it reads outside it or fails to end.
 * Cost: one pass over the block (about 40 ms for a million nodes).
 */
const char *
VsHnswValidate(const void *graph, size_t size, int n, int dim,
			   VsMetric metric)
{
	const char *base = (const char *) graph;
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) graph;
	const VsHnswLevelData *lt;
	uint32_t	counts[VS_HNSW_MAX_LEVELS];
	Layout		lay;
	int			nlevels;
	int			id16;

	if (graph == NULL)
		return "no graph";
	if (((uintptr_t) graph & 7) != 0)
		return "graph is not aligned to 8 bytes";
	if (size < HEADER_SIZE)
		return "block is shorter than a graph header";
	if (h->magic != VS_HNSW_MAGIC)
		return "bad magic number";
	if (h->version != VS_HNSW_VERSION)
		return "unsupported graph version";
	if ((h->flags & ~(VS_HNSW_FLAG_NORMS | VS_HNSW_FLAG_ID16)) != 0)
		return "unknown flags";
	for (size_t i = 0; i < sizeof(h->reserved); i++)
	{
		if (h->reserved[i] != 0)
			return "reserved header bytes are not zero";
	}
	if (n < 0 || h->n != (uint32_t) n)
		return "node count does not match the cluster";
	if (dim < 0 || h->dim != (uint32_t) dim)
		return "dimensions do not match the cluster";
	if (h->metric != (uint16_t) metric ||
		(metric != VS_METRIC_L2 && metric != VS_METRIC_IP &&
		 metric != VS_METRIC_COSINE))
		return "metric does not match the index";
	/* cosine graphs may leave them out (VsHnswBuildOptions.without_norms) */
	if ((h->flags & VS_HNSW_FLAG_NORMS) != 0 && metric != VS_METRIC_COSINE)
		return "inverse norms flag does not match the metric";
	id16 = (h->flags & VS_HNSW_FLAG_ID16) != 0;
	if (id16 && h->n > VS_HNSW_ID16_MAX_NODES)
		return "too many nodes for 16-bit ids";
	if (h->m < VS_HNSW_MIN_M || h->m > VS_HNSW_MAX_M || h->m0 != 2 * h->m)
		return "neighbour counts m/m0 out of range";
	if (h->total_size > (uint64_t) size)
		return "graph runs past the end of its block";

	memset(counts, 0, sizeof(counts));
	nlevels = h->nlevels;
	if (n == 0)
	{
		if (nlevels != 0 || h->entry != VS_HNSW_NONE)
			return "empty graph has levels or an entry point";
		VsHnswComputeLayout(0, h->m, 0, counts, (h->flags & VS_HNSW_FLAG_NORMS) != 0,
							id16, &lay);
		if (h->total_size != lay.total)
			return "size does not match the layout";
		return NULL;
	}
	if (nlevels < 1 || nlevels > VS_HNSW_MAX_LEVELS)
		return "level count out of range";
	if (HEADER_SIZE + (uint64_t) nlevels * LEVEL_SIZE > h->total_size)
		return "level table runs past the end of the graph";

	/* the level table: counts shrink upwards, rows have the right length */
	lt = (const VsHnswLevelData *) (base + HEADER_SIZE);
	for (int l = 0; l < nlevels; l++)
	{
		counts[l] = lt[l].count;
		if (l == 0 ? counts[0] != (uint32_t) n :
			(counts[l] < 1 || counts[l] > counts[l - 1]))
			return "level node counts are inconsistent";
		if (lt[l].cap != (uint32_t) (l == 0 ? h->m0 : h->m))
			return "row length of a level does not match m";
	}
	VsHnswComputeLayout((uint32_t) n, h->m, nlevels, counts,
						(h->flags & VS_HNSW_FLAG_NORMS) != 0, id16, &lay);
	if (h->total_size != lay.total)
		return "size does not match the layout";
	for (int l = 0; l < nlevels; l++)
	{
		if (lt[l].adj_offset != lay.adj[l] ||
			lt[l].members_offset != lay.members[l])
			return "section offsets do not match the layout";
	}
	/* from here on every section lies inside [0, total_size) */

	/* members: strictly ascending node ids, each also on the level below */
	for (int l = 1; l < nlevels; l++)
	{
		const uint32_t *mem = (const uint32_t *) (base + lay.members[l]);
		const uint32_t *below = (const uint32_t *) (base + lay.members[l - 1]);
		uint32_t	j = 0;

		for (uint32_t i = 0; i < counts[l]; i++)
		{
			if (mem[i] >= (uint32_t) n || (i > 0 && mem[i] <= mem[i - 1]))
				return "level members are not ascending node ids";
			if (l == 1)
				continue;		/* level 0 holds every node */
			while (j < counts[l - 1] && below[j] < mem[i])
				j++;
			if (j == counts[l - 1] || below[j] != mem[i])
				return "a node is missing from the level below";
		}
	}

	/* the entry point is a node of the top level */
	if (h->entry >= (uint32_t) n)
		return "entry point out of range";
	if (nlevels > 1)
	{
		Level		top;

		VsHnswLevelView(base, nlevels - 1, &top);
		if (VsHnswFindMember(&top, h->entry) == VS_HNSW_NONE)
			return "entry point is not on the top level";
	}

	/* rows: ids below the level's count, no self-link, then only NONE */
	for (int l = 0; l < nlevels; l++)
	{
		Level		lv;
		uint32_t	cap = lt[l].cap;
		uint32_t	none;

		VsHnswLevelView(base, l, &lv);
		none = (lv.adj16 != NULL) ? VS_HNSW_NONE16 : VS_HNSW_NONE;
		for (uint32_t i = 0; i < counts[l]; i++)
		{
			size_t		row = (size_t) i * cap;
			uint32_t	j = 0;

			for (; j < cap && level_id(&lv, row + j) != none; j++)
			{
				if (level_id(&lv, row + j) >= counts[l])
					return "neighbour id out of range";
				if (level_id(&lv, row + j) == i)
					return "node linked to itself";
			}
			for (; j < cap; j++)
			{
				if (level_id(&lv, row + j) != none)
					return "neighbour after the end of a row";
			}
		}
	}

	if (lay.norms != 0)
	{
		const float *norms = (const float *) (base + lay.norms);

		for (uint32_t i = 0; i < (uint32_t) n; i++)
		{
			/* NaN fails both comparisons */
			if (!(norms[i] >= 0.0f && norms[i] <= FLT_MAX))
				return "inverse norm not finite";
		}
	}
	return NULL;
}

/*
 * VsHnswInvNorms - the n inverse norms stored in a validated cosine
 * graph (0 for a zero vector), or NULL for other metrics and for a graph
 * built without them (VsHnswBuildOptions.without_norms).
 */
const float *
VsHnswInvNorms(const void *graph)
{
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) graph;
	const VsHnswLevelData *lt = (const VsHnswLevelData *) ((const char *) graph + HEADER_SIZE);
	uint32_t	counts[VS_HNSW_MAX_LEVELS];
	Layout		lay;
	int			nlevels = h->nlevels;

	if (!(h->flags & VS_HNSW_FLAG_NORMS) || h->n == 0)
		return NULL;
	if (nlevels > VS_HNSW_MAX_LEVELS)
		nlevels = VS_HNSW_MAX_LEVELS;
	for (int l = 0; l < nlevels; l++)
		counts[l] = lt[l].count;
	VsHnswComputeLayout(h->n, h->m, nlevels, counts, 1,
						(h->flags & VS_HNSW_FLAG_ID16) != 0, &lay);
	return (const float *) ((const char *) graph + lay.norms);
}

/*
 * VsHnswNeighbours - the node ids linked from node "id" on "level" of a
 * validated graph, into out (room for 2 * VS_HNSW_MAX_M).  Returns their
 * number, or -1 when the level does not exist or the node is not on it.
 */
int
VsHnswNeighbours(const void *graph, int level, uint32_t id, uint32_t *out)
{
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) graph;
	Level		lv;
	uint32_t	local;
	size_t		row;
	int			count = 0;

	if (level < 0 || level >= h->nlevels)
		return -1;
	VsHnswLevelView((const char *) graph, level, &lv);
	local = (level == 0) ? (id < lv.count ? id : VS_HNSW_NONE) : VsHnswFindMember(&lv, id);
	if (local == VS_HNSW_NONE)
		return -1;
	row = (size_t) local * lv.cap;
	for (uint32_t j = 0; j < lv.cap && level_id(&lv, row + j) < lv.count; j++)
		out[count++] = member_node(&lv, level_id(&lv, row + j));
	return count;
}

/*
 * VsHnswDescribe - sizes and per-level counts of a validated graph, for
 * the introspection functions and the benchmark (one pass over the rows).
 */
void
VsHnswDescribe(const void *graph, VsHnswInfo *info)
{
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) graph;

	memset(info, 0, sizeof(*info));
	info->n = h->n;
	info->dim = h->dim;
	info->metric = (VsMetric) h->metric;
	info->m = h->m;
	info->m0 = h->m0;
	info->nlevels = h->nlevels;
	info->entry = h->entry;
	info->total_size = h->total_size;
	for (int l = 0; l < h->nlevels && l < VS_HNSW_MAX_LEVELS; l++)
	{
		Level		lv;

		VsHnswLevelView((const char *) graph, l, &lv);
		info->level_count[l] = lv.count;
		for (uint32_t i = 0; i < lv.count; i++)
		{
			size_t		row = (size_t) i * lv.cap;

			for (uint32_t j = 0; j < lv.cap && level_id(&lv, row + j) < lv.count; j++)
				info->level_edges[l]++;
		}
	}
}

/*
 * VsHnswComputeLayout - where each section goes for these level counts; the
 * single definition used by the size computation, the build and the
 * validator.  id16: level 0's ids are 16-bit (VS_HNSW_FLAG_ID16).  Sizes
 * cannot overflow 64 bits (n < 2^32, rows <= 200 ids).
 */
void
VsHnswComputeLayout(uint32_t n, int m, int nlevels, const uint32_t *counts,
					int norms, int id16, Layout *lay)
{
	uint64_t	off = ALIGN_UP(HEADER_SIZE + (uint64_t) nlevels * LEVEL_SIZE);

	memset(lay, 0, sizeof(*lay));
	for (int l = 0; l < nlevels; l++)
	{
		uint64_t	cap = (uint64_t) (l == 0 ? 2 * m : m);

		if (l > 0)
		{
			lay->members[l] = off;
			off = ALIGN_UP(off + (uint64_t) counts[l] * sizeof(uint32_t));
		}
		lay->adj[l] = off;
		off = ALIGN_UP(off + (uint64_t) counts[l] * cap *
					   ((l == 0 && id16) ? sizeof(uint16_t) : sizeof(uint32_t)));
	}
	if (norms && n > 0)
	{
		lay->norms = off;
		off = ALIGN_UP(off + (uint64_t) n * sizeof(float));
	}
	lay->total = off;
}

/*
 * VsHnswLevelView - level l of a (validated or being built) block.  The row
 * length is capped to MAX_ROW so no row can overrun the scratch.
 */
void
VsHnswLevelView(const char *base, int l, Level *lv)
{
	const VsHnswHeaderData *h = (const VsHnswHeaderData *) base;
	const VsHnswLevelData *lt = (const VsHnswLevelData *) (base + HEADER_SIZE);

	lv->count = lt[l].count;
	lv->cap = lt[l].cap > MAX_ROW ? MAX_ROW : lt[l].cap;
	lv->members = (l > 0) ? (const uint32_t *) (base + lt[l].members_offset) : NULL;
	if (l == 0 && (h->flags & VS_HNSW_FLAG_ID16))
	{
		lv->adj = NULL;
		lv->adj16 = (const uint16_t *) (base + lt[l].adj_offset);
	}
	else
	{
		lv->adj = (const uint32_t *) (base + lt[l].adj_offset);
		lv->adj16 = NULL;
	}
}

/*
 * VsHnswFindMember - index of node "node" in a level's members (binary
 * search; level 0 is the identity), or VS_HNSW_NONE.
 */
uint32_t
VsHnswFindMember(const Level *lv, uint32_t node)
{
	uint32_t	lo = 0,
				hi = lv->count;

	if (lv->members == NULL)
		return node < lv->count ? node : VS_HNSW_NONE;
	while (lo < hi)
	{
		uint32_t	mid = lo + (hi - lo) / 2;

		if (lv->members[mid] < node)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < lv->count && lv->members[lo] == node) ? lo : VS_HNSW_NONE;
}
