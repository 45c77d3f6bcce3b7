/*-------------------------------------------------------------------------
 *
 * vshnsw.c
 *	  HNSW graph over the vectors of one IVF cluster, searched in place.
 *
 * Owns building a cluster's graph straight into its serialized layout
 * (vshnsw.h), checking such a block without trusting it, and searching it
 * where it lies, over the cluster's float vectors or through a caller's
 * distance function, one node or one row of neighbours at a time
 * (compact codes).  Also the exact flat scan that the
 * index uses for clusters below VS_HNSW_FLAT_THRESHOLD.  Pure C99 plus GCC
 * builtins: no postgres.h.  Memory comes from hooks->alloc and interrupts
 * are polled through hooks->check_interrupts (vskmeans.h).
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
 * always full, so every back link re-selects a row); the block is 128
 * bytes per node on level 0 plus about 4.5 for the levels above (plus 4
 * for cosine), and the build needs 3 bytes per node beside it.  Searching
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
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vsdistance.h"
#include "vshnsw.h"

/* a candidate's flag: expanded already (node ids stay below 2^31) */
#define EXPANDED		0x80000000u
#define ID_MASK			0x7FFFFFFFu

/* longest row of any level, for the scratch that holds one row */
#define MAX_ROW			(2 * VS_HNSW_MAX_M)

/* insertions between interrupt polls, and between progress reports */
#define POLL_NODES		16
#define PROGRESS_NODES	1024

/* fewest nodes a task of a parallel pass gets */
#define MIN_TASK_NODES	256

/* most tasks a parallel pass is cut into */
#define MAX_TASKS		256

/* bytes of the header and of one level table entry */
#define HEADER_SIZE		((uint64_t) sizeof(VsHnswHeaderData))
#define LEVEL_SIZE		((uint64_t) sizeof(VsHnswLevelData))

#define ALIGN_UP(x)		(((x) + (VS_HNSW_ALIGN - 1)) & ~(uint64_t) (VS_HNSW_ALIGN - 1))

/* where a distance comes from */
typedef enum SourceKind
{
	SRC_L2,						/* squared L2 to a float vector */
	SRC_IP,						/* negative inner product */
	SRC_COSINE,					/* 1 - cos, with inverse norms */
	SRC_CALLBACK,				/* the caller's VsHnswDistanceFn */
	SRC_BATCH					/* the caller's VsHnswDistancesFn */
} SourceKind;

/* the query side of every distance a search computes */
typedef struct Source
{
	SourceKind	kind;
	const float *query;
	const float *vectors;		/* row-major, dim floats per node */
	int			dim;
	const float *inv_norms;		/* cosine: per node */
	float		query_inv;		/* cosine: the query's inverse norm */
	VsHnswDistanceFn fn;
	VsHnswDistancesFn batch;
	void	   *ctx;
	uint32_t   *ids;			/* SRC_BATCH: MAX_ROW node ids */
	float	   *dists;			/* SRC_BATCH: MAX_ROW distances */
} Source;

/* a candidate: distance to the query and id (level-local, flag bit) */
typedef struct PoolEntry
{
	float		dist;
	uint32_t	id;
} PoolEntry;

/* one level as a search sees it */
typedef struct Level
{
	const uint32_t *members;	/* node id of each member; NULL on level 0 */
	const uint32_t *adj;		/* count rows of cap ids */
	uint32_t	count;
	uint32_t	cap;
} Level;

/* where every section of a block lies (computed, never read) */
typedef struct Layout
{
	uint64_t	members[VS_HNSW_MAX_LEVELS];
	uint64_t	adj[VS_HNSW_MAX_LEVELS];
	uint64_t	norms;			/* 0 when absent */
	uint64_t	total;
} Layout;

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
 * A neighbour selection's working memory: the candidates of a row being
 * re-selected, and the selection.  The builder has one; each task of a
 * parallel pass has its own.
 */
typedef struct Selection
{
	PoolEntry  *cand;			/* MAX_ROW + 1: a row being re-selected */
	uint32_t   *sel;			/* MAX_ROW: selected member indices */
	uint32_t   *selnode;		/* MAX_ROW: their node ids */
	float	   *seldist;		/* MAX_ROW: their distances to the base */
} Selection;

/* the state of one build */
typedef struct Builder
{
	const float *vectors;
	int			dim;
	VsMetric	metric;
	int			m;
	int			efc;
	uint32_t	n;
	int			nlevels;
	char	   *base;			/* the block being written */
	Level		levels[VS_HNSW_MAX_LEVELS];
	uint64_t	adj_offset[VS_HNSW_MAX_LEVELS];
	const float *inv_norms;		/* inside the block (cosine), or NULL */
	uint8_t    *node_level;		/* n: each node's top level */
	uint32_t	next_local[VS_HNSW_MAX_LEVELS];	/* members placed so far */
	uint32_t	entry;			/* entry point so far */
	int			top;			/* its level; -1 before the first node */
	uint16_t   *tags;			/* n */
	uint16_t	epoch;
	uint64_t	seed;			/* for the tie-breaking salts */
	PoolEntry  *pool;			/* efc */
	Selection	s;				/* the sequential steps' selection */
	uint32_t   *row;			/* MAX_ROW: unvisited neighbours */
	const VsHnswBuildSource *source;	/* or NULL: float distances */
	uint32_t   *src_ids;		/* MAX_ROW: for source->batch */
	float	   *src_dists;		/* MAX_ROW: for source->batch */
	const VsHnswHooks *hooks;
	const VsHnswParallel *parallel; /* or NULL: every step on this thread */
} Builder;

static uint64_t rng_next(uint64_t *state);
static int	draw_levels(int n, int m, uint64_t seed, uint8_t *node_level,
						uint32_t *counts);
static void compute_layout(uint32_t n, int m, int nlevels,
						   const uint32_t *counts, int norms, Layout *lay);
static void options_resolve(const VsHnswBuildOptions *opt, int *m, int *efc,
							uint64_t *seed);
static float inv_norm(const float *x, int dim);
static uint16_t next_epoch(uint16_t *tags, size_t count, uint16_t *epoch);

static inline int before(float da, uint32_t ia, float db, uint32_t ib);
static inline uint32_t mix32(uint32_t x);
static inline uint32_t node_salt(uint64_t seed, uint32_t node);
static inline int ranks_before(const Level *lv, uint32_t salt, float da,
							   uint32_t ia, float db, uint32_t ib);
static inline float source_distance(const Source *src, uint32_t node);
static inline void prefetch_node(const Source *src, uint32_t node);
static inline void prefetch_next_row(const Level *lv, const PoolEntry *pool,
									 int from, int size);
static inline uint32_t member_node(const Level *lv, uint32_t local);
static int	pool_insert(PoolEntry *pool, int *size, int cap, float dist,
						uint32_t id, const Level *lv, uint32_t salt);
static uint32_t find_member(const Level *lv, uint32_t node);
static uint32_t greedy(const Level *lv, const Source *src, uint32_t cur,
					   float *curdist, uint32_t salt);
static int	search_layer(const Level *lv, const Source *src, PoolEntry *pool,
						 int size, int ef, uint16_t *tags, uint16_t epoch,
						 uint32_t *row, uint32_t salt);
static void level_view(const char *base, int l, Level *lv);
static int	search_graph(const void *graph, const Source *src, int k, int ef,
						 VsHnswScratch *scratch, VsHnswResult *out);

static void builder_init(Builder *b, const float *vectors, int n, int dim,
						 VsMetric metric, int m, int efc, uint64_t seed,
						 const VsHnswHooks *hooks, char *dst,
						 const uint32_t *counts, const Layout *lay);
static void builder_free(Builder *b);
static void selection_alloc(const VsHnswHooks *hooks, Selection *s);
static void selection_free(const VsHnswHooks *hooks, Selection *s);
static int	node_tasks(const VsHnswParallel *parallel, uint32_t n);
static float node_distance(const Builder *b, uint32_t a, uint32_t c);
static uint32_t *writable_row(Builder *b, int l, uint32_t local);
static int	select_neighbours(const Builder *b, Selection *s, const Level *lv,
							  const PoolEntry *cand, int ncand, int max);
static int	add_link(Builder *b, Selection *s, int l, uint32_t e, uint32_t q,
					 float dist);
static void insert_node(Builder *b, uint32_t q, int lowest);
static void build_from_lists(Builder *b, const uint32_t *lists, int k);
static void node_source(Builder *b, uint32_t q, int codes, Source *src);
static uint32_t mark_reachable(const Builder *b, uint32_t from, uint8_t *seen,
							   uint32_t *queue);
static void link_in(Builder *b, uint32_t u);

static void heap_sift_down(VsHnswResult *heap, int size, int i);


/*
 * VsHnswBuildOptionsInit - fill *opt with the defaults: m 16,
 * ef_construction 64 (pgvector's defaults), seed 0.
 */
void
VsHnswBuildOptionsInit(VsHnswBuildOptions *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->m = VS_HNSW_DEFAULT_M;
	opt->ef_construction = VS_HNSW_DEFAULT_EF_CONSTRUCTION;
	opt->seed = 0;
}

/*
 * VsHnswSerializedSize - bytes of the block VsHnswBuild will write for n
 * vectors with these options (NULL: defaults) and metric.
 *
 * A multiple of VS_HNSW_ALIGN; at least one header's worth, even for
 * n == 0.  It depends on the levels drawn from the seed, so it costs
 * O(n) random draws and no allocation.  n < 0 counts as 0.
 */
size_t
VsHnswSerializedSize(int n, VsMetric metric, const VsHnswBuildOptions *opt)
{
	uint32_t	counts[VS_HNSW_MAX_LEVELS];
	Layout		lay;
	int			m,
				efc,
				nlevels;
	uint64_t	seed;

	options_resolve(opt, &m, &efc, &seed);
	if (n < 0)
		n = 0;
	nlevels = draw_levels(n, m, seed, NULL, counts);
	compute_layout((uint32_t) n, m, nlevels, counts,
				   metric == VS_METRIC_COSINE, &lay);
	return (size_t) lay.total;
}

/*
 * VsHnswBuildMemory - bytes VsHnswBuild allocates through the hooks,
 * beside the block it writes: 3 per node plus a few kB.
 */
size_t
VsHnswBuildMemory(int n, const VsHnswBuildOptions *opt)
{
	int			m,
				efc;
	uint64_t	seed;

	size_t		lists = 0;

	options_resolve(opt, &m, &efc, &seed);
	if (n < 0)
		n = 0;

	/*
	 * build_from_lists: each node's forward picks, who picked it (and
	 * where that starts), the reachability marks and queue; per task, its
	 * visit tags, one sorted list and a selection
	 */
	if (opt != NULL && opt->neighbours != NULL && opt->nneighbours > 0)
	{
		size_t		ntasks = (size_t) node_tasks(opt->parallel, (uint32_t) n);

		lists = 2 * (size_t) n * (size_t) m * sizeof(uint32_t) +
			((size_t) n + 1) * sizeof(uint32_t) +
			(size_t) n * (sizeof(uint8_t) + sizeof(uint32_t)) +
			ntasks * ((size_t) n * sizeof(uint16_t) +
					  ((size_t) opt->nneighbours + m) * sizeof(PoolEntry) +
					  (MAX_ROW + 1) * sizeof(PoolEntry) + 3 * MAX_ROW * sizeof(uint32_t));
	}
	return (size_t) n * (sizeof(uint8_t) + sizeof(uint16_t)) +
		(size_t) efc * sizeof(PoolEntry) +
		(MAX_ROW + 1) * sizeof(PoolEntry) + 6 * MAX_ROW * sizeof(uint32_t) +
		lists;
}

/*
 * VsHnswBuild - build the graph of n vectors into dst.
 *
 * vectors: n * dim floats, row-major (node i is row i), not modified.
 * metric: how rows are compared (cosine: by angle; zero vectors are at
 * distance 1 from everything).  opt: NULL for the defaults; m and
 * ef_construction outside their ranges are clamped.  dst: writable
 * memory of dst_size bytes, aligned to 8 bytes at least (place it at a
 * VS_HNSW_ALIGN boundary of the segment so that its sections are
 * cache-line aligned); the whole block [0, size) is written, whatever dst
 * held before, and nothing past it.
 *
 * Returns the block's size, VsHnswSerializedSize(n, metric, opt); or 0,
 * writing nothing, when dst_size is smaller than that, dst is misaligned,
 * or n > 0 with dim < 1 or no vectors.  n == 0 gives a valid empty graph.
 *
 * hooks: alloc/free for VsHnswBuildMemory() bytes of scratch, all freed
 * before a normal return; check_interrupts (may be NULL) every 16
 * insertions; progress (may be NULL) every 1024 insertions and at the
 * end, with (progress_arg, nodes inserted, n).  Single-threaded; the cost
 * is O(n log n) distance computations, about ef_construction * m each.
 */
size_t
VsHnswBuild(const float *vectors, int n, int dim, VsMetric metric,
			const VsHnswBuildOptions *opt, const VsHnswHooks *hooks,
			void *dst, size_t dst_size)
{
	uint32_t	counts[VS_HNSW_MAX_LEVELS];
	Layout		lay;
	Builder		b;
	int			m,
				efc,
				nlevels;
	uint64_t	seed;
	VsHnswHeaderData *h = (VsHnswHeaderData *) dst;

	options_resolve(opt, &m, &efc, &seed);
	if (n < 0)
		n = 0;
	if (dst == NULL || ((uintptr_t) dst & 7) != 0)
		return 0;
	if (n > 0 && (dim < 1 || vectors == NULL))
		return 0;
	if (metric != VS_METRIC_L2 && metric != VS_METRIC_IP &&
		metric != VS_METRIC_COSINE)
		return 0;
	if (opt != NULL && opt->neighbours != NULL &&
		(opt->nneighbours < 1 ||
		 opt->nneighbours > VS_HNSW_MAX_EF_CONSTRUCTION))
		return 0;

	nlevels = draw_levels(n, m, seed, NULL, counts);
	compute_layout((uint32_t) n, m, nlevels, counts,
				   metric == VS_METRIC_COSINE, &lay);
	if (lay.total > (uint64_t) dst_size || lay.total > (uint64_t) SIZE_MAX)
		return 0;

	/* every byte defined: zero, then the rows empty */
	memset(dst, 0, (size_t) lay.total);
	h->magic = VS_HNSW_MAGIC;
	h->version = VS_HNSW_VERSION;
	h->flags = (metric == VS_METRIC_COSINE) ? VS_HNSW_FLAG_NORMS : 0;
	h->n = (uint32_t) n;
	h->dim = (uint32_t) (dim > 0 ? dim : 0);
	h->metric = (uint16_t) metric;
	h->m = (uint16_t) m;
	h->m0 = (uint16_t) (2 * m);
	h->nlevels = (uint16_t) nlevels;
	h->entry = VS_HNSW_NONE;
	h->ef_construction = (uint32_t) efc;
	h->total_size = lay.total;
	h->seed = seed;
	if (n == 0)
		return (size_t) lay.total;

	builder_init(&b, vectors, n, dim, metric, m, efc, seed, hooks,
				 (char *) dst, counts, &lay);
	b.source = opt ? opt->source : NULL;
	b.parallel = opt ? opt->parallel : NULL;
	if (opt != NULL && opt->neighbours != NULL)
		build_from_lists(&b, opt->neighbours, opt->nneighbours);
	else
	{
		for (uint32_t q = 0; q < (uint32_t) n; q++)
		{
			insert_node(&b, q, 0);
			if ((q % POLL_NODES) == POLL_NODES - 1 && hooks->check_interrupts)
				hooks->check_interrupts();
			if ((q % PROGRESS_NODES) == PROGRESS_NODES - 1 && hooks->progress)
				hooks->progress(hooks->progress_arg, (int) q + 1, n);
		}
	}
	if (hooks->progress)
		hooks->progress(hooks->progress_arg, n, n);
	h->entry = b.entry;
	builder_free(&b);
	return (size_t) lay.total;
}

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
 * count and no self-link, then only VS_HNSW_NONE, and cosine's inverse
 * norms finite and non-negative.  These are the invariants the search
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
	if ((h->flags & ~VS_HNSW_FLAG_NORMS) != 0)
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
	if (((h->flags & VS_HNSW_FLAG_NORMS) != 0) != (metric == VS_METRIC_COSINE))
		return "inverse norms flag does not match the metric";
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
		compute_layout(0, h->m, 0, counts, metric == VS_METRIC_COSINE, &lay);
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
	compute_layout((uint32_t) n, h->m, nlevels, counts,
				   metric == VS_METRIC_COSINE, &lay);
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

		level_view(base, nlevels - 1, &top);
		if (find_member(&top, h->entry) == VS_HNSW_NONE)
			return "entry point is not on the top level";
	}

	/* rows: ids below the level's count, no self-link, then only NONE */
	for (int l = 0; l < nlevels; l++)
	{
		const uint32_t *adj = (const uint32_t *) (base + lay.adj[l]);
		uint32_t	cap = lt[l].cap;

		for (uint32_t i = 0; i < counts[l]; i++)
		{
			const uint32_t *row = adj + (size_t) i * cap;
			uint32_t	j = 0;

			for (; j < cap && row[j] != VS_HNSW_NONE; j++)
			{
				if (row[j] >= counts[l])
					return "neighbour id out of range";
				if (row[j] == i)
					return "node linked to itself";
			}
			for (; j < cap; j++)
			{
				if (row[j] != VS_HNSW_NONE)
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
 * scratch was made for.  No allocation; reads the graph only.
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
			src.query_inv = inv_norm(query, src.dim);
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
		query_inv = inv_norm(query, dim);

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

/* what the tasks of VsHnswExactNeighbours share */
typedef struct ExactPass
{
	const float *vectors;
	int			n;
	int			dim;
	VsMetric	metric;
	int			k;
	int			ntasks;
	const VsHnswHooks *hooks;	/* check_interrupts only with one task */
	uint32_t   *out;
} ExactPass;

/*
 * exact_rows - the lists of one task's nodes (the range as in
 * build_from_lists' passes).
 */
static void
exact_rows(void *arg, int task)
{
	ExactPass  *ep = (ExactPass *) arg;
	int			first = (int) ((int64_t) ep->n * task / ep->ntasks);
	int			last = (int) ((int64_t) ep->n * (task + 1) / ep->ntasks);
	int			k = ep->k;
	VsHnswResult *res = ep->hooks->alloc(((size_t) k + 1) * sizeof(VsHnswResult));

	for (int i = first; i < last; i++)
	{
		uint32_t   *row = ep->out + (size_t) i * k;
		int			got = VsHnswFlatSearch(ep->vectors, ep->n, ep->dim, ep->metric,
										   ep->vectors + (size_t) i * ep->dim,
										   k + 1, res);
		int			fill = 0;

		for (int j = 0; j < got && fill < k; j++)
		{
			if (res[j].id != (uint32_t) i)
				row[fill++] = res[j].id;
		}
		while (fill < k)
			row[fill++] = VS_HNSW_NONE;
		if (ep->ntasks == 1 && (i % POLL_NODES) == POLL_NODES - 1 &&
			ep->hooks->check_interrupts)
			ep->hooks->check_interrupts();
	}
	ep->hooks->free(res);
}

/*
 * VsHnswExactNeighbours - the exact k nearest other nodes of every node,
 * for VsHnswBuildOptions.neighbours: out gets n rows of k node ids,
 * nearest first (ties by id), padded with VS_HNSW_NONE when n - 1 < k.
 *
 * One VsHnswFlatSearch per node, so O(n^2 dim): this is the reference
 * (and the GPU helper's emulation) for the lists a GPU computes with one
 * matrix product per cluster, not a fast CPU build.  hooks: alloc/free
 * for k + 1 results per task; check_interrupts (may be NULL) every 16
 * nodes when it runs on this thread.  parallel: a runner for the rows
 * (VsHnswParallel's rules), or NULL; the lists are the same either way.
 */
void
VsHnswExactNeighbours(const float *vectors, int n, int dim, VsMetric metric,
					  int k, const VsHnswHooks *hooks,
					  const VsHnswParallel *parallel, uint32_t *out)
{
	ExactPass	ep;

	if (n <= 0 || k <= 0)
		return;
	ep.vectors = vectors;
	ep.n = n;
	ep.dim = dim;
	ep.metric = metric;
	ep.k = k;
	ep.hooks = hooks;
	ep.out = out;
	ep.ntasks = node_tasks(parallel, (uint32_t) n);
	if (ep.ntasks > 1)
		parallel->run(parallel->ctx, ep.ntasks, exact_rows, &ep);
	else
		exact_rows(&ep, 0);
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
				(inv_norm(a, dim) * inv_norm(b, dim));
		default:
			return VsKernels.l2_squared(a, b, dim);
	}
}

/*
 * VsHnswInvNorms - the n inverse norms stored in a validated cosine
 * graph (0 for a zero vector), or NULL for other metrics.
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
	compute_layout(h->n, h->m, nlevels, counts, 1, &lay);
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
	const uint32_t *row;
	int			count = 0;

	if (level < 0 || level >= h->nlevels)
		return -1;
	level_view((const char *) graph, level, &lv);
	local = (level == 0) ? (id < lv.count ? id : VS_HNSW_NONE) : find_member(&lv, id);
	if (local == VS_HNSW_NONE)
		return -1;
	row = lv.adj + (size_t) local * lv.cap;
	for (uint32_t j = 0; j < lv.cap && row[j] < lv.count; j++)
		out[count++] = member_node(&lv, row[j]);
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

		level_view((const char *) graph, l, &lv);
		info->level_count[l] = lv.count;
		for (uint32_t i = 0; i < lv.count; i++)
		{
			const uint32_t *row = lv.adj + (size_t) i * lv.cap;

			for (uint32_t j = 0; j < lv.cap && row[j] < lv.count; j++)
				info->level_edges[l]++;
		}
	}
}

/*
 * rng_next - splitmix64: 64 random bits, advancing *state.
 */
static uint64_t
rng_next(uint64_t *state)
{
	uint64_t	z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/*
 * draw_levels - every node's top level, from the seed.
 *
 * P(level >= l) = m^-l: a node climbs one more level while a uniform draw
 * in [0, m) comes out 0 (the modulo bias is below 2^-57).  Capped at
 * VS_HNSW_MAX_LEVELS - 1.  counts[l] gets the nodes on level l;
 * node_level, unless NULL, each node's level.  Returns the number of
 * levels (0 when n == 0).
 */
static int
draw_levels(int n, int m, uint64_t seed, uint8_t *node_level,
			uint32_t *counts)
{
	uint64_t	state = seed ^ 0x686e7377ull;	/* "hnsw": apart from k-means */
	int			nlevels = 0;

	memset(counts, 0, sizeof(uint32_t) * VS_HNSW_MAX_LEVELS);
	for (int i = 0; i < n; i++)
	{
		int			level = 0;

		while (level < VS_HNSW_MAX_LEVELS - 1 &&
			   rng_next(&state) % (uint64_t) m == 0)
			level++;
		if (node_level)
			node_level[i] = (uint8_t) level;
		for (int l = 0; l <= level; l++)
			counts[l]++;
		if (level + 1 > nlevels)
			nlevels = level + 1;
	}
	return nlevels;
}

/*
 * compute_layout - where each section goes for these level counts; the
 * single definition used by the size computation, the build and the
 * validator.  Sizes cannot overflow 64 bits (n < 2^32, rows <= 200 ids).
 */
static void
compute_layout(uint32_t n, int m, int nlevels, const uint32_t *counts,
			   int norms, Layout *lay)
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
		off = ALIGN_UP(off + (uint64_t) counts[l] * cap * sizeof(uint32_t));
	}
	if (norms && n > 0)
	{
		lay->norms = off;
		off = ALIGN_UP(off + (uint64_t) n * sizeof(float));
	}
	lay->total = off;
}

/*
 * options_resolve - the options in force: defaults for a NULL opt, m and
 * ef_construction clamped to their ranges (ef_construction >= m, so the
 * selection has at least m candidates to choose from).
 */
static void
options_resolve(const VsHnswBuildOptions *opt, int *m, int *efc,
				uint64_t *seed)
{
	VsHnswBuildOptions defaults;

	if (opt == NULL)
	{
		VsHnswBuildOptionsInit(&defaults);
		opt = &defaults;
	}
	*m = opt->m;
	if (*m < VS_HNSW_MIN_M)
		*m = VS_HNSW_MIN_M;
	if (*m > VS_HNSW_MAX_M)
		*m = VS_HNSW_MAX_M;
	*efc = opt->ef_construction;
	if (*efc < VS_HNSW_MIN_EF_CONSTRUCTION)
		*efc = VS_HNSW_MIN_EF_CONSTRUCTION;
	if (*efc > VS_HNSW_MAX_EF_CONSTRUCTION)
		*efc = VS_HNSW_MAX_EF_CONSTRUCTION;
	if (*efc < *m)
		*efc = *m;
	*seed = opt->seed;
}

/*
 * inv_norm - 1 / ||x||, the norm from the inner-product kernel and the
 * root in double; 0 for a zero vector (whose cosine distance is then 1).
 */
static float
inv_norm(const float *x, int dim)
{
	float		nrm = VsKernels.inner_product(x, x, dim);

	return nrm > 0.0f ? (float) (1.0 / sqrt((double) nrm)) : 0.0f;
}

/*
 * next_epoch - a fresh visited mark; on wrap-around every tag is cleared
 * (all "count" of them, so a later search of a larger graph sees no
 * stale mark).
 */
static uint16_t
next_epoch(uint16_t *tags, size_t count, uint16_t *epoch)
{
	if (++(*epoch) == 0)
	{
		memset(tags, 0, count * sizeof(uint16_t));
		*epoch = 1;
	}
	return *epoch;
}

/*
 * before - the candidate order: by distance, then by id.
 */
static inline int
before(float da, uint32_t ia, float db, uint32_t ib)
{
	return da < db || (da == db && ia < ib);
}

/*
 * mix32 - murmur3's finaliser: a fast, well-spread 32-bit hash.
 */
static inline uint32_t
mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85EBCA6Bu;
	x ^= x >> 13;
	x *= 0xC2B2AE35u;
	x ^= x >> 16;
	return x;
}

/*
 * node_salt - the tie-breaking salt of the build's searches and row
 * selections made for "node": never 0 (0 means ties by id).
 */
static inline uint32_t
node_salt(uint64_t seed, uint32_t node)
{
	return mix32((uint32_t) seed ^ (uint32_t) (seed >> 32) ^
				 (node * 0x9E3779B1u)) | 1u;
}

/*
 * ranks_before - the candidate order of one search or selection: by
 * distance; exact ties by id when salt is 0 (searches, so that results
 * are reproducible and documented), else by a hash of the salt and the
 * node id, then by id.
 *
 * Why the build salts its ties: with ties by id, a group of identical
 * vectors links every new copy to the same lowest ids, and a full row
 * re-selected among equals always drops the newest copy, so the copies
 * inserted later get no in-links at all (measured: 34 of 500 identical
 * vectors reachable).  A salt that differs per inserted node (and per
 * row owner) makes each choice among equals a different deterministic
 * pseudo-random one, and the copies form a random, connected graph.
 * Distinct distances are untouched.  The hash is of the node id, not the
 * member index, so the order survives the move to the level below.
 */
static inline int
ranks_before(const Level *lv, uint32_t salt, float da, uint32_t ia,
			 float db, uint32_t ib)
{
	if (da != db)
		return da < db;
	if (salt != 0)
	{
		uint32_t	ka = mix32(member_node(lv, ia) ^ salt);
		uint32_t	kb = mix32(member_node(lv, ib) ^ salt);

		if (ka != kb)
			return ka < kb;
	}
	return ia < ib;
}

/*
 * source_distance - distance from the source's query to a node; NaN (a
 * caller's function, or garbage norms) becomes +infinity so that the
 * candidate order stays a total order.
 */
static inline float
source_distance(const Source *src, uint32_t node)
{
	const float *x;
	float		d;

	switch (src->kind)
	{
		case SRC_L2:
			x = src->vectors + (size_t) node * src->dim;
			d = VsKernels.l2_squared(src->query, x, src->dim);
			break;
		case SRC_IP:
			x = src->vectors + (size_t) node * src->dim;
			d = -VsKernels.inner_product(src->query, x, src->dim);
			break;
		case SRC_COSINE:
			x = src->vectors + (size_t) node * src->dim;
			d = 1.0f - VsKernels.inner_product(src->query, x, src->dim) *
				(src->query_inv * src->inv_norms[node]);
			break;
		case SRC_BATCH:
			src->batch(src->ctx, &node, 1, &d);
			break;
		default:
			d = src->fn(src->ctx, node);
			break;
	}
	return (d == d) ? d : INFINITY;
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
		const char *p = (const char *) (lv->adj + (size_t) pool[from].id * lv->cap);

		__builtin_prefetch(p);
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
 * member_node - the node id of member "local" of a level.
 */
static inline uint32_t
member_node(const Level *lv, uint32_t local)
{
	return lv->members ? lv->members[local] : local;
}

/*
 * pool_insert - put (dist, id) into the sorted candidate array of "*size"
 * entries and capacity "cap", dropping the last entry when full.
 * Returns the position, or -1 when the candidate is not among the best
 * cap.  Ids in the array may carry the EXPANDED flag; "id" must not.
 * The order is ranks_before's with lv's members and salt.
 */
static int
pool_insert(PoolEntry *pool, int *size, int cap, float dist, uint32_t id,
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
 * find_member - index of node "node" in a level's members (binary
 * search; level 0 is the identity), or VS_HNSW_NONE.
 */
static uint32_t
find_member(const Level *lv, uint32_t node)
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

/*
 * greedy - from member "cur" at distance *curdist, move to the nearest
 * neighbour while one is nearer (ef = 1).  Each move goes strictly down
 * the order of ranks_before, so it ends on any graph.  Returns the member reached;
 * *curdist is its distance.
 */
static uint32_t
greedy(const Level *lv, const Source *src, uint32_t cur, float *curdist,
	   uint32_t salt)
{
	int			changed = 1;

	while (changed)
	{
		const uint32_t *row = lv->adj + (size_t) cur * lv->cap;

		changed = 0;
		for (uint32_t j = 0; j < lv->cap; j++)
		{
			uint32_t	v = row[j];
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
 * search_layer - the ef search of one level.
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
static int
search_layer(const Level *lv, const Source *src, PoolEntry *pool, int size,
			 int ef, uint16_t *tags, uint16_t epoch, uint32_t *row,
			 uint32_t salt)
{
	int			cursor = 0;

	for (int i = 0; i < size; i++)
		pool[i].id &= ID_MASK;
	while (cursor < size)
	{
		uint32_t	cur = pool[cursor].id;
		const uint32_t *adj = lv->adj + (size_t) cur * lv->cap;
		int			nnew = 0;
		int			lowest = size;

		pool[cursor].id = cur | EXPANDED;
		prefetch_next_row(lv, pool, cursor + 1, size);

		/* the unvisited neighbours first, then their distances */
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
				pos = pool_insert(pool, &size, ef, d, row[j], lv, salt);
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
				pos = pool_insert(pool, &size, ef, d, row[j], lv, salt);
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
 * level_view - level l of a (validated or being built) block.  The row
 * length is capped to MAX_ROW so no row can overrun the scratch.
 */
static void
level_view(const char *base, int l, Level *lv)
{
	const VsHnswLevelData *lt = (const VsHnswLevelData *) (base + HEADER_SIZE);

	lv->count = lt[l].count;
	lv->cap = lt[l].cap > MAX_ROW ? MAX_ROW : lt[l].cap;
	lv->members = (l > 0) ? (const uint32_t *) (base + lt[l].members_offset) : NULL;
	lv->adj = (const uint32_t *) (base + lt[l].adj_offset);
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

		level_view(base, l, &lv);
		local = find_member(&lv, cur);
		if (local == VS_HNSW_NONE)
			continue;			/* cannot happen in a validated graph */
		local = greedy(&lv, src, local, &curdist, 0);
		cur = lv.members[local];
	}

	level_view(base, 0, &lv);
	epoch = next_epoch(scratch->tags, scratch->max_n, &scratch->epoch);
	scratch->tags[cur] = epoch;
	scratch->pool[0].dist = curdist;
	scratch->pool[0].id = cur;
	size = search_layer(&lv, src, scratch->pool, 1, ef, scratch->tags, epoch,
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
 * builder_init - set up a build over the (zeroed) block at dst: level
 * table, member lists, empty rows, inverse norms; scratch from the hooks.
 */
static void
builder_init(Builder *b, const float *vectors, int n, int dim,
			 VsMetric metric, int m, int efc, uint64_t seed,
			 const VsHnswHooks *hooks, char *dst, const uint32_t *counts,
			 const Layout *lay)
{
	VsHnswLevelData *lt = (VsHnswLevelData *) (dst + HEADER_SIZE);
	uint32_t	fill[VS_HNSW_MAX_LEVELS];
	uint32_t	drawn[VS_HNSW_MAX_LEVELS];

	memset(b, 0, sizeof(*b));
	b->vectors = vectors;
	b->dim = dim;
	b->metric = metric;
	b->m = m;
	b->efc = efc;
	b->n = (uint32_t) n;
	b->base = dst;
	b->hooks = hooks;
	b->entry = VS_HNSW_NONE;
	b->top = -1;
	b->seed = seed;

	b->node_level = hooks->alloc((size_t) n);
	b->tags = hooks->alloc((size_t) n * sizeof(uint16_t));
	b->pool = hooks->alloc((size_t) efc * sizeof(PoolEntry));
	selection_alloc(hooks, &b->s);
	b->row = hooks->alloc(MAX_ROW * sizeof(uint32_t));
	b->src_ids = hooks->alloc(MAX_ROW * sizeof(uint32_t));
	b->src_dists = hooks->alloc(MAX_ROW * sizeof(float));
	memset(b->tags, 0, (size_t) n * sizeof(uint16_t));

	/* the same draw as the caller's size computation */
	b->nlevels = draw_levels(n, m, seed, b->node_level, drawn);
	for (int l = 0; l < b->nlevels; l++)
	{
		uint32_t	cap = (uint32_t) (l == 0 ? 2 * m : m);

		lt[l].count = counts[l];
		lt[l].cap = cap;
		lt[l].members_offset = lay->members[l];
		lt[l].adj_offset = lay->adj[l];
		b->adj_offset[l] = lay->adj[l];
		memset(dst + lay->adj[l], 0xFF, (size_t) counts[l] * cap * sizeof(uint32_t));
		level_view(dst, l, &b->levels[l]);
		fill[l] = 0;
	}

	/* members in ascending node order */
	for (uint32_t i = 0; i < b->n; i++)
	{
		for (int l = 1; l <= b->node_level[i]; l++)
		{
			uint32_t   *mem = (uint32_t *) (dst + lay->members[l]);

			mem[fill[l]++] = i;
		}
	}

	if (lay->norms != 0)
	{
		float	   *norms = (float *) (dst + lay->norms);

		for (uint32_t i = 0; i < b->n; i++)
		{
			norms[i] = inv_norm(vectors + (size_t) i * dim, dim);
			if ((i & 8191) == 8191 && hooks->check_interrupts)
				hooks->check_interrupts();
		}
		b->inv_norms = norms;
	}
}

/*
 * builder_free - give back the build's scratch (not the block).
 */
static void
builder_free(Builder *b)
{
	const VsHnswHooks *hooks = b->hooks;

	hooks->free(b->src_dists);
	hooks->free(b->src_ids);
	hooks->free(b->row);
	selection_free(hooks, &b->s);
	hooks->free(b->pool);
	hooks->free(b->tags);
	hooks->free(b->node_level);
}

/*
 * selection_alloc, selection_free - a selection's working memory.
 */
static void
selection_alloc(const VsHnswHooks *hooks, Selection *s)
{
	s->cand = hooks->alloc((MAX_ROW + 1) * sizeof(PoolEntry));
	s->sel = hooks->alloc(MAX_ROW * sizeof(uint32_t));
	s->selnode = hooks->alloc(MAX_ROW * sizeof(uint32_t));
	s->seldist = hooks->alloc(MAX_ROW * sizeof(float));
}

static void
selection_free(const VsHnswHooks *hooks, Selection *s)
{
	hooks->free(s->seldist);
	hooks->free(s->selnode);
	hooks->free(s->sel);
	hooks->free(s->cand);
}

/*
 * node_tasks - how many tasks a parallel pass over n nodes is cut into:
 * the runner's count, but none under MIN_TASK_NODES nodes (each task has
 * O(n) set-up) and at most MAX_TASKS; 1 without a runner.
 */
static int
node_tasks(const VsHnswParallel *parallel, uint32_t n)
{
	uint32_t	most = n / MIN_TASK_NODES;

	if (most > MAX_TASKS)
		most = MAX_TASKS;
	if (parallel == NULL || parallel->run == NULL || parallel->ntasks <= 1 || most <= 1)
		return 1;
	return (uint32_t) parallel->ntasks < most ? parallel->ntasks : (int) most;
}

/*
 * node_distance - distance between two nodes, symmetric bit for bit
 * (the products of the cosine's inverse norms commute).
 */
static float
node_distance(const Builder *b, uint32_t a, uint32_t c)
{
	const float *x = b->vectors + (size_t) a * b->dim;
	const float *y = b->vectors + (size_t) c * b->dim;
	float		d;

	switch (b->metric)
	{
		case VS_METRIC_IP:
			d = -VsKernels.inner_product(x, y, b->dim);
			break;
		case VS_METRIC_COSINE:
			d = 1.0f - VsKernels.inner_product(x, y, b->dim) *
				(b->inv_norms[a] * b->inv_norms[c]);
			break;
		default:
			d = VsKernels.l2_squared(x, y, b->dim);
			break;
	}
	return (d == d) ? d : INFINITY;
}

/*
 * writable_row - the row of member "local" on level l, for writing.
 */
static uint32_t *
writable_row(Builder *b, int l, uint32_t local)
{
	return (uint32_t *) (b->base + b->adj_offset[l]) +
		(size_t) local * b->levels[l].cap;
}

/*
 * select_neighbours - the diversity heuristic (the paper's algorithm 4,
 * hnswlib's getNeighborsByHeuristic2): walk the candidates nearest first
 * and keep one unless a kept neighbour is strictly nearer to it than the
 * base node is; stop at "max".  With at most "max" candidates, all are
 * kept.  cand: sorted by (distance to the base node, id), ids are member
 * indices of lv (flags allowed).  Result in s->sel (member indices),
 * s->selnode (node ids) and s->seldist (distances to the base node);
 * returns how many.  Reads the builder only, so tasks of a parallel pass
 * may run it at once, each with its own selection.
 *
 * Exact copies of the base node (distance 0; not for IP, where a vector's
 * distance to itself is not 0) pass the heuristic's strict test against
 * each other and against everything else, so among many copies a row
 * could fill up with copies alone and the group would become an island
 * on that level (measured: 60 points with 40 copies each gave recall@10
 * 0.86).  So at most half of a row goes to copies; the rest stays for
 * links out of the group.
 */
static int
select_neighbours(const Builder *b, Selection *s, const Level *lv,
				  const PoolEntry *cand, int ncand, int max)
{
	int			nsel = 0;
	int			ncopies = 0;

	if (ncand <= max)
	{
		for (int i = 0; i < ncand; i++)
		{
			s->sel[i] = cand[i].id & ID_MASK;
			s->selnode[i] = member_node(lv, s->sel[i]);
			s->seldist[i] = cand[i].dist;
		}
		return ncand;
	}
	for (int i = 0; i < ncand && nsel < max; i++)
	{
		uint32_t	id = cand[i].id & ID_MASK;
		uint32_t	node = member_node(lv, id);
		int			good = 1;

		/* copies of the base node: at most half the row (see above) */
		if (cand[i].dist == 0.0f && b->metric != VS_METRIC_IP)
		{
			if (ncopies >= max / 2)
				continue;
			ncopies++;
		}
		for (int j = 0; j < nsel; j++)
		{
			if (node_distance(b, node, s->selnode[j]) < cand[i].dist)
			{
				good = 0;
				break;
			}
		}
		if (good)
		{
			s->sel[nsel] = id;
			s->selnode[nsel] = node;
			s->seldist[nsel] = cand[i].dist;
			nsel++;
		}
	}

	/*
	 * IP: fill the row with the nearest candidates the heuristic dropped
	 * (the paper's keepPrunedConnections).  Under inner product a
	 * large-norm neighbour "covers" nearly everything, so the heuristic
	 * alone leaves rows of one or two links (average degree 1.1 on
	 * Fashion-MNIST's raw vectors, 92% of nodes unreachable, recall@10 at
	 * most 0.73), while plain top-m rows fail on well-separated groups
	 * (0.74 on the synthetic set with log-normal norms).  Filled rows gave
	 * recall@10 0.95-0.996 at ef_search 64 on all four sets tried; see
	 * bench/RESULTS-hnsw.md.  Under L2 and cosine the heuristic alone is
	 * kept, as in hnswlib.
	 */
	if (b->metric == VS_METRIC_IP)
	{
		for (int i = 0; i < ncand && nsel < max; i++)
		{
			uint32_t	id = cand[i].id & ID_MASK;
			int			taken = 0;

			for (int j = 0; j < nsel && !taken; j++)
				taken = (s->sel[j] == id);
			if (taken)
				continue;
			s->sel[nsel] = id;
			s->selnode[nsel] = member_node(lv, id);
			s->seldist[nsel] = cand[i].dist;
			nsel++;
		}
	}
	return nsel;
}

/*
 * add_link - link member e to the new member q on level l (q is at
 * distance "dist" from e).  A full row is re-selected from its members
 * and q by the heuristic, from e's point of view; q may lose.  Returns
 * whether e's row links q afterwards.  Writes only e's row and "s", so
 * tasks of a parallel pass may link into different rows at once.
 */
static int
add_link(Builder *b, Selection *s, int l, uint32_t e, uint32_t q, float dist)
{
	const Level *lv = &b->levels[l];
	uint32_t   *row = writable_row(b, l, e);
	uint32_t	cap = lv->cap;
	uint32_t	enode = member_node(lv, e);
	uint32_t	salt = node_salt(b->seed, enode);
	int			nsel;

	for (uint32_t j = 0; j < cap; j++)
	{
		if (row[j] == VS_HNSW_NONE)
		{
			row[j] = q;
			return 1;
		}
		if (row[j] == q)
			return 1;			/* already linked (build_from_lists) */
	}

	/* full: rank the members and q by distance to e, insertion sort */
	for (uint32_t j = 0; j <= cap; j++)
	{
		uint32_t	id = (j < cap) ? row[j] : q;
		float		d = (j < cap) ? node_distance(b, enode, member_node(lv, id)) : dist;
		uint32_t	at = j;

		while (at > 0 &&
			   ranks_before(lv, salt, d, id, s->cand[at - 1].dist, s->cand[at - 1].id))
		{
			s->cand[at] = s->cand[at - 1];
			at--;
		}
		s->cand[at].dist = d;
		s->cand[at].id = id;
	}
	nsel = select_neighbours(b, s, lv, s->cand, (int) cap + 1, (int) cap);
	for (uint32_t j = 0; j < cap; j++)
		row[j] = (j < (uint32_t) nsel) ? s->sel[j] : VS_HNSW_NONE;
	for (int j = 0; j < nsel; j++)
	{
		if (s->sel[j] == q)
			return 1;
	}
	return 0;
}

/*
 * node_source - the distances from node q's vector, for a search of the
 * build: the caller's (codes) when it gave a source and "codes" is set,
 * else the float vectors'.
 */
static void
node_source(Builder *b, uint32_t q, int codes, Source *src)
{
	memset(src, 0, sizeof(*src));
	src->query = b->vectors + (size_t) q * b->dim;
	src->vectors = b->vectors;
	src->dim = b->dim;
	if (b->source != NULL && codes)
	{
		/* the caller's distances (codes), with q as their query */
		b->source->set_query(b->source->ctx, q);
		src->kind = SRC_BATCH;
		src->batch = b->source->batch;
		src->ctx = b->source->ctx;
		src->ids = b->src_ids;
		src->dists = b->src_dists;
	}
	else if (b->metric == VS_METRIC_IP)
		src->kind = SRC_IP;
	else if (b->metric == VS_METRIC_COSINE)
	{
		src->kind = SRC_COSINE;
		src->inv_norms = b->inv_norms;
		src->query_inv = b->inv_norms[q];
	}
	else
		src->kind = SRC_L2;
}

/*
 * insert_node - add node q (all nodes below q are in the graph) on its
 * levels from "lowest" up; a node whose top level is below "lowest" is
 * skipped, unless it is the first node (the entry point).
 */
static void
insert_node(Builder *b, uint32_t q, int lowest)
{
	int			level = b->node_level[q];
	uint32_t	local[VS_HNSW_MAX_LEVELS];
	uint32_t	linked[VS_HNSW_MAX_M];
	float		linkdist[VS_HNSW_MAX_M];
	Source		src;
	uint32_t	cur;
	float		curdist;
	int			size;
	int			start;
	uint32_t	salt = node_salt(b->seed, q);

	/* q's index on each of its levels: members are placed in node order */
	local[0] = q;
	for (int l = 1; l <= level; l++)
		local[l] = b->next_local[l]++;

	if (b->top < 0)
	{
		b->entry = q;
		b->top = level;
		return;
	}
	if (level < lowest)
		return;

	node_source(b, q, 1, &src);

	/* greedy descent through the levels above q's own */
	cur = b->entry;
	curdist = source_distance(&src, cur);
	for (int l = b->top; l > level; l--)
	{
		const Level *lv = &b->levels[l];
		uint32_t	lc = greedy(lv, &src, find_member(lv, cur), &curdist, salt);

		cur = lv->members ? lv->members[lc] : lc;
	}

	/* from the lower of q's level and the top: search, select, link */
	start = level < b->top ? level : b->top;
	b->pool[0].dist = curdist;
	b->pool[0].id = find_member(&b->levels[start], cur);
	size = 1;
	for (int l = start; l >= lowest; l--)
	{
		const Level *lv = &b->levels[l];
		uint16_t	epoch = next_epoch(b->tags, b->n, &b->epoch);
		uint32_t   *row = writable_row(b, l, local[l]);
		int			nsel;

		for (int i = 0; i < size; i++)
			b->tags[b->pool[i].id & ID_MASK] = epoch;
		size = search_layer(lv, &src, b->pool, size, b->efc, b->tags, epoch,
							b->row, salt);
		nsel = select_neighbours(b, &b->s, lv, b->pool, size, b->m);
		for (int j = 0; j < nsel; j++)
			row[j] = b->s.sel[j];
		/*
		 * Back links.  add_link may re-select a full row, which reuses
		 * b->s, so work from a copy.  The distance is symmetric: q's to
		 * a neighbour is the link's.
		 */
		memcpy(linked, b->s.sel, sizeof(uint32_t) * (size_t) nsel);
		memcpy(linkdist, b->s.seldist, sizeof(float) * (size_t) nsel);
		for (int j = 0; j < nsel; j++)
			add_link(b, &b->s, l, linked[j], local[l], linkdist[j]);

		/*
		 * The candidates go on to the level below as its entry points.
		 * Member indices keep node order, so the array stays sorted.
		 */
		if (l > 0)
		{
			const Level *below = &b->levels[l - 1];

			for (int i = 0; i < size; i++)
			{
				uint32_t	node = lv->members[b->pool[i].id & ID_MASK];

				b->pool[i].id = find_member(below, node);
			}
		}
	}

	if (level > b->top)
	{
		b->entry = q;
		b->top = level;
	}
}

/*
 * What the tasks of build_from_lists' passes A and B share.  A task
 * works on the nodes [n * t / ntasks, n * (t + 1) / ntasks).
 */
typedef struct ListsPass
{
	Builder    *b;
	const uint32_t *lists;		/* n rows of k candidates */
	int			k;
	int			ntasks;			/* 1: on the caller's thread, which polls
								 * interrupts and reports progress */
	uint32_t   *picks;			/* n rows of m: each node's picks (A) */
	uint32_t   *from_start;		/* n + 1: where each node's pickers start */
	uint32_t   *from;			/* n * m: the nodes that picked each node,
								 * in id order (B) */
} ListsPass;

/*
 * run_tasks - fn(arg, t) for t in 0 .. ntasks - 1: on the caller's
 * parallel runner when the build has one, else here in order.
 */
static void
run_tasks(const Builder *b, int ntasks, VsHnswTaskFn fn, void *arg)
{
	if (b->parallel != NULL && ntasks > 1)
		b->parallel->run(b->parallel->ctx, ntasks, fn, arg);
	else
	{
		for (int t = 0; t < ntasks; t++)
			fn(arg, t);
	}
}

/*
 * lists_rows - pass A of build_from_lists for one task's nodes: each
 * node's row from its list.  Writes only those nodes' rows and picks.
 */
static void
lists_rows(void *arg, int task)
{
	ListsPass  *lp = (ListsPass *) arg;
	Builder    *b = lp->b;
	const VsHnswHooks *hooks = b->hooks;
	const Level *lv0 = &b->levels[0];
	uint32_t	n = b->n;
	int			m = b->m;
	int			k = lp->k;
	uint32_t	first = (uint32_t) ((uint64_t) n * task / lp->ntasks);
	uint32_t	last = (uint32_t) ((uint64_t) n * (task + 1) / lp->ntasks);
	uint16_t   *tags = hooks->alloc((size_t) n * sizeof(uint16_t));
	uint16_t	epoch = 0;
	PoolEntry  *cand = hooks->alloc(((size_t) k + m) * sizeof(PoolEntry));
	Selection	s;

	selection_alloc(hooks, &s);
	memset(tags, 0, (size_t) n * sizeof(uint16_t));
	for (uint32_t q = first; q < last; q++)
	{
		const uint32_t *list = lp->lists + (size_t) q * k;
		uint16_t	ep = next_epoch(tags, n, &epoch);
		uint32_t	salt = node_salt(b->seed, q);
		uint32_t   *row = writable_row(b, 0, q);
		int			size = 0;
		int			nsel;

		tags[q] = ep;
		for (int j = 0; j < k; j++)
		{
			uint32_t	c = list[j];

			if (c >= n || tags[c] == ep)
				continue;		/* none, out of range, itself, a repeat */
			tags[c] = ep;
			pool_insert(cand, &size, k + m, node_distance(b, q, c), c, lv0, salt);
		}
		if (b->node_level[q] > 0)
		{
			/* the long links of level 1 (see above) */
			const Level *lv1 = &b->levels[1];
			const uint32_t *up = lv1->adj +
				(size_t) find_member(lv1, q) * lv1->cap;

			for (uint32_t j = 0; j < lv1->cap && up[j] != VS_HNSW_NONE; j++)
			{
				uint32_t	c = lv1->members[up[j]];

				if (tags[c] == ep)
					continue;
				tags[c] = ep;
				pool_insert(cand, &size, k + m, node_distance(b, q, c), c, lv0, salt);
			}
		}
		nsel = select_neighbours(b, &s, lv0, cand, size, m);
		for (int j = 0; j < m; j++)
			lp->picks[(size_t) q * m + j] = (j < nsel) ? s.sel[j] : VS_HNSW_NONE;
		for (int j = 0; j < nsel; j++)
			row[j] = s.sel[j];
		if (lp->ntasks == 1 && (q % POLL_NODES) == POLL_NODES - 1 && hooks->check_interrupts)
			hooks->check_interrupts();
		if (lp->ntasks == 1 && (q % PROGRESS_NODES) == PROGRESS_NODES - 1 && hooks->progress)
			hooks->progress(hooks->progress_arg, (int) (q / 2), (int) n);
	}
	selection_free(hooks, &s);
	hooks->free(cand);
	hooks->free(tags);
}

/*
 * lists_links - pass B of build_from_lists for one task's nodes: link
 * each of them to every node that picked it, in the pickers' id order.
 * add_link writes only the row it links into, so this is the sequential
 * pass's result, byte for byte, however the nodes are cut into tasks.
 */
static void
lists_links(void *arg, int task)
{
	ListsPass  *lp = (ListsPass *) arg;
	Builder    *b = lp->b;
	const VsHnswHooks *hooks = b->hooks;
	uint32_t	n = b->n;
	uint32_t	first = (uint32_t) ((uint64_t) n * task / lp->ntasks);
	uint32_t	last = (uint32_t) ((uint64_t) n * (task + 1) / lp->ntasks);
	Selection	s;

	selection_alloc(hooks, &s);
	for (uint32_t e = first; e < last; e++)
	{
		for (uint32_t i = lp->from_start[e]; i < lp->from_start[e + 1]; i++)
		{
			uint32_t	q = lp->from[i];

			add_link(b, &s, 0, e, q, node_distance(b, e, q));
		}
		if (lp->ntasks == 1 && (e % POLL_NODES) == POLL_NODES - 1 && hooks->check_interrupts)
			hooks->check_interrupts();
		if (lp->ntasks == 1 && (e % PROGRESS_NODES) == PROGRESS_NODES - 1 && hooks->progress)
			hooks->progress(hooks->progress_arg, (int) (n / 2 + e / 2), (int) n);
	}
	selection_free(hooks, &s);
}

/*
 * build_from_lists - the graph from given candidate lists (the options'
 * "neighbours"; vshnsw.h).
 *
 * The levels above 0 are built as VsHnswBuild builds them, by inserting
 * their nodes (about n / m of them) in id order with searches.  Level 0
 * is built in two passes instead of n searches:
 *	A. each node's list is ranked by exact distance (the lists may come
 *	   from float32 matrix products on a GPU, whose order near ties is not
 *	   the CPU's) and the same heuristic as an insertion picks at most m
 *	   neighbours from it into the node's row (2m slots);
 *	B. every pick is linked back (add_link: appended, or the target's full
 *	   row re-selected), in id order, after all rows hold their picks.
 * With exact lists this is the graph an insertion would get if its
 * search returned the exact ef_construction nearest among all nodes, not
 * only among those inserted before it (measured against the incremental
 * build in bench/bench_hnsw section 6).  Cost: k + about 2m distances per
 * node plus the selection's, no search: the lists' computation is the
 * work a GPU takes over.
 *
 * A and B are 75-90% of the work (measured at 2000-20000 rows: the
 * levels above took 8-15%, C under 1%), and each node's part of them is
 * independent of the others': A writes only the node's own row, and B is
 * done per target row (each row gets its back links in the pickers' id
 * order, as a sequential pass in picker order gives them).  So with the
 * options' "parallel" both run as tasks over ranges of nodes, and the
 * graph is the same bytes for any number of tasks.
 */
static void
build_from_lists(Builder *b, const uint32_t *lists, int k)
{
	const VsHnswHooks *hooks = b->hooks;
	uint32_t	n = b->n;
	int			m = b->m;
	ListsPass	lp;

	/* levels >= 1 (and the entry point) by searching, as usual */
	for (uint32_t q = 0; q < n; q++)
	{
		if (b->node_level[q] > 0 || b->top < 0)
			insert_node(b, q, 1);
		if ((q % (POLL_NODES * 16)) == POLL_NODES * 16 - 1 &&
			hooks->check_interrupts)
			hooks->check_interrupts();
	}

	memset(&lp, 0, sizeof(lp));
	lp.b = b;
	lp.lists = lists;
	lp.k = k;
	lp.ntasks = node_tasks(b->parallel, n);
	lp.picks = hooks->alloc((size_t) n * (size_t) m * sizeof(uint32_t));
	lp.from_start = hooks->alloc(((size_t) n + 1) * sizeof(uint32_t));
	lp.from = hooks->alloc((size_t) n * (size_t) m * sizeof(uint32_t));

	/* A: each node's row from its list */
	run_tasks(b, lp.ntasks, lists_rows, &lp);
	if (hooks->check_interrupts)
		hooks->check_interrupts();

	/* who picked whom, by target: a counting sort of the picks */
	memset(lp.from_start, 0, ((size_t) n + 1) * sizeof(uint32_t));
	for (size_t i = 0; i < (size_t) n * m; i++)
		if (lp.picks[i] != VS_HNSW_NONE)
			lp.from_start[lp.picks[i] + 1]++;
	for (uint32_t e = 0; e < n; e++)
		lp.from_start[e + 1] += lp.from_start[e];
	/* filled in picker order: from_start[e] runs to e's end, then shifts */
	for (uint32_t q = 0; q < n; q++)
	{
		const uint32_t *mine = lp.picks + (size_t) q * m;

		for (int j = 0; j < m && mine[j] != VS_HNSW_NONE; j++)
			lp.from[lp.from_start[mine[j]]++] = q;
	}
	for (uint32_t e = n; e > 0; e--)
		lp.from_start[e] = lp.from_start[e - 1];
	lp.from_start[0] = 0;

	/* B: the back links */
	run_tasks(b, lp.ntasks, lists_links, &lp);
	hooks->free(lp.from);
	hooks->free(lp.from_start);
	hooks->free(lp.picks);
	if (hooks->check_interrupts)
		hooks->check_interrupts();

	/*
	 * C: every node reachable on level 0 from the entry point.  Exact
	 * lists never leave a group of points that lie closer to each other
	 * than to anything else, so such a group would be an island
	 * (measured: 137 of 5000 nodes reachable on 40 well-separated
	 * clusters).  The first node not reached is linked in from its
	 * nearest reached nodes, found by a search from the entry point as an
	 * insertion would find them, and everything it reaches is marked;
	 * then the next.  One search per island, not per node.  Not under
	 * inner product: there about half the nodes can never be a
	 * near-maximum and stay unreachable in any build (the file header),
	 * so this would cost a search per such node and the rows' heuristic
	 * would drop most of the links again.
	 */
	if (b->metric != VS_METRIC_IP)
	{
		uint8_t    *seen = hooks->alloc((size_t) n);
		uint32_t   *queue = hooks->alloc((size_t) n * sizeof(uint32_t));

		memset(seen, 0, (size_t) n);
		mark_reachable(b, b->entry, seen, queue);
		for (uint32_t u = 0; u < n; u++)
		{
			if (seen[u])
				continue;
			link_in(b, u);
			mark_reachable(b, u, seen, queue);
			if (hooks->check_interrupts)
				hooks->check_interrupts();
		}
		hooks->free(queue);
		hooks->free(seen);
	}
}

/*
 * mark_reachable - mark in "seen" every node reachable on level 0 from
 * "from" (breadth first; nodes marked already are not entered again).
 * Returns how many were newly marked.
 */
static uint32_t
mark_reachable(const Builder *b, uint32_t from, uint8_t *seen,
			   uint32_t *queue)
{
	const Level *lv = &b->levels[0];
	uint32_t	head = 0,
				tail = 0;

	if (seen[from])
		return 0;
	seen[from] = 1;
	queue[tail++] = from;
	while (head < tail)
	{
		const uint32_t *row = lv->adj + (size_t) queue[head++] * lv->cap;

		for (uint32_t j = 0; j < lv->cap && row[j] != VS_HNSW_NONE; j++)
		{
			if (!seen[row[j]])
			{
				seen[row[j]] = 1;
				queue[tail++] = row[j];
			}
		}
	}
	return tail;
}

/*
 * link_in - give node u, not reachable on level 0 from the entry point,
 * a link from a node that is: search level 0 from the entry point for
 * u's nearest (a search only reaches reachable nodes) and link the
 * nearest whose row keeps u (add_link may re-select it away).  If every
 * row drops it, u takes the nearest's first free slot, or its last.
 */
static void
link_in(Builder *b, uint32_t u)
{
	const Level *lv = &b->levels[0];
	uint32_t	salt = node_salt(b->seed, u);
	uint16_t	epoch = next_epoch(b->tags, b->n, &b->epoch);
	Source		src;
	int			size;

	node_source(b, u, 0, &src);
	b->pool[0].dist = source_distance(&src, b->entry);
	b->pool[0].id = b->entry;
	b->tags[b->entry] = epoch;
	size = search_layer(lv, &src, b->pool, 1, b->efc, b->tags, epoch,
						b->row, salt);
	for (int i = 0; i < size; i++)
	{
		if (add_link(b, &b->s, 0, b->pool[i].id & ID_MASK, u, b->pool[i].dist))
			return;
	}
	{
		/* the first free slot (a re-selection can leave some), else the last */
		uint32_t   *row = writable_row(b, 0, b->pool[0].id & ID_MASK);
		uint32_t	j = 0;

		while (j < lv->cap - 1 && row[j] != VS_HNSW_NONE)
			j++;
		row[j] = u;
	}
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
