/*-------------------------------------------------------------------------
 *
 * vshnsw_build.c
 *	  Building an HNSW graph straight into its serialized layout.
 *
 * Owns the build options and the level draw that fixes a block's size
 * (VsHnswSerializedSize, VsHnswBuildMemory), the incremental build
 * (insert_node: descent, layer search, heuristic neighbour selection,
 * back links), the build from precomputed neighbour lists and its
 * parallel passes (build_from_lists), and the exact neighbour lists those
 * builds take (VsHnswExactNeighbours).  The searches it runs come from
 * vshnsw_search.c, the layout from vshnsw.c, whose header describes the
 * algorithm, its departures from hnswlib and its measured costs.  Pure
 * C99 plus GCC builtins: no postgres.h.  Memory comes from hooks->alloc
 * and interrupts are polled through hooks->check_interrupts (vskmeans.h).
 *
 * IDENTIFICATION
 *	  src/vshnsw_build.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vshnsw_internal.h"

/* insertions between interrupt polls, and between progress reports */
#define POLL_NODES		16
#define PROGRESS_NODES	1024

/* fewest nodes a task of a parallel pass gets */
#define MIN_TASK_NODES	256

/* most tasks a parallel pass is cut into */
#define MAX_TASKS		256

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
	uint32_t   *wide0;			/* a 16-bit graph's level-0 rows, 32-bit
								 * while it is built, or NULL */
	const float *inv_norms;		/* cosine: inside the block, or in
								 * own_norms; else NULL */
	float	   *own_norms;		/* cosine without_norms: scratch */
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
static void options_resolve(const VsHnswBuildOptions *opt, int *m, int *efc,
							uint64_t *seed);
static inline uint32_t node_salt(uint64_t seed, uint32_t node);
static int	stores_norms(VsMetric metric, const VsHnswBuildOptions *opt);

static void builder_init(Builder *b, const float *vectors, int n, int dim,
						 VsMetric metric, int m, int efc, uint64_t seed,
						 const VsHnswHooks *hooks, char *dst,
						 const uint32_t *counts, const Layout *lay);
static void builder_finish(Builder *b);
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
	VsHnswComputeLayout((uint32_t) n, m, nlevels, counts,
						stores_norms(metric, opt), n <= VS_HNSW_ID16_MAX_NODES, &lay);
	return (size_t) lay.total;
}

/*
 * VsHnswBuildMemory - bytes VsHnswBuild allocates through the hooks,
 * beside the block it writes: 3 per node plus a few kB, for a graph of
 * 16-bit ids its level-0 rows in 32 bits (8m bytes per node) while they
 * are built, and 4 per node for the inverse norms of a graph built
 * without_norms.
 */
size_t
VsHnswBuildMemory(int n, const VsHnswBuildOptions *opt)
{
	int			m,
				efc;
	uint64_t	seed;

	size_t		lists = 0;
	size_t		wide0 = 0;
	size_t		norms = 0;

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
	/* builder_init: a 16-bit graph's level 0, in 32 bits while built */
	if (n <= VS_HNSW_ID16_MAX_NODES)
		wide0 = (size_t) n * 2 * (size_t) m * sizeof(uint32_t);
	/* the inverse norms of a graph that does not keep them */
	if (opt != NULL && opt->without_norms)
		norms = (size_t) n * sizeof(float);
	return (size_t) n * (sizeof(uint8_t) + sizeof(uint16_t)) + norms +
		(size_t) efc * sizeof(PoolEntry) +
		(MAX_ROW + 1) * sizeof(PoolEntry) + 6 * MAX_ROW * sizeof(uint32_t) +
		lists + wide0;
}

/*
 * init_block - a block of "total" bytes zeroed, with its header: a graph
 * of no node yet.
 */
static void
init_block(void *dst, int n, int dim, VsMetric metric, int m, int efc, int nlevels,
		   uint64_t seed, uint64_t total, int norms)
{
	VsHnswHeaderData *h = (VsHnswHeaderData *) dst;

	memset(dst, 0, (size_t) total);
	h->magic = VS_HNSW_MAGIC;
	h->version = VS_HNSW_VERSION;
	h->flags = norms ? VS_HNSW_FLAG_NORMS : 0;
	if (n <= VS_HNSW_ID16_MAX_NODES)
		h->flags |= VS_HNSW_FLAG_ID16;
	h->n = (uint32_t) n;
	h->dim = (uint32_t) (dim > 0 ? dim : 0);
	h->metric = (uint16_t) metric;
	h->m = (uint16_t) m;
	h->m0 = (uint16_t) (2 * m);
	h->nlevels = (uint16_t) nlevels;
	h->entry = VS_HNSW_NONE;
	h->ef_construction = (uint32_t) efc;
	h->total_size = total;
	h->seed = seed;
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
	VsHnswComputeLayout((uint32_t) n, m, nlevels, counts,
						stores_norms(metric, opt), n <= VS_HNSW_ID16_MAX_NODES, &lay);
	if (lay.total > (uint64_t) dst_size || lay.total > (uint64_t) SIZE_MAX)
		return 0;

	/* every byte defined: zero, then the rows empty */
	init_block(dst, n, dim, metric, m, efc, nlevels, seed, lay.total,
			   stores_norms(metric, opt));
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
	builder_finish(&b);
	builder_free(&b);
	return (size_t) lay.total;
}

/*
 * VsHnswExtend - the graph of "n" vectors whose first ones are the nodes
 * of "old" (a checked graph of the same vectors, built with the same
 * options): its nodes, levels and rows are taken over and only the new
 * nodes are inserted.  A build inserts nodes in id order and draws their
 * levels from the seed in id order too, so the result is the graph
 * VsHnswBuild would give for the same options (when "old" came from it
 * and not from neighbour lists), at the cost of the new nodes only.
 * Returns the block's size, or 0 when "old" does not fit these options,
 * vectors or "dst" (the caller then builds the graph anew).
 */
size_t
VsHnswExtend(const void *old, size_t old_size, const float *vectors, int n, int dim,
			 VsMetric metric, const VsHnswBuildOptions *opt, const VsHnswHooks *hooks,
			 void *dst, size_t dst_size)
{
	const VsHnswHeaderData *oh = (const VsHnswHeaderData *) old;
	VsHnswHeaderData *h = (VsHnswHeaderData *) dst;
	uint32_t	counts[VS_HNSW_MAX_LEVELS];
	Layout		lay;
	Builder		b;
	int			m,
				efc,
				nlevels;
	uint64_t	seed;

	options_resolve(opt, &m, &efc, &seed);
	if (old == NULL || old_size < HEADER_SIZE || dst == NULL || ((uintptr_t) dst & 7) != 0 ||
		vectors == NULL || dim < 1 || n < 1 || (opt != NULL && opt->neighbours != NULL))
		return 0;
	if (oh->magic != VS_HNSW_MAGIC || oh->version != VS_HNSW_VERSION ||
		oh->n == 0 || oh->n > (uint32_t) n || oh->dim != (uint32_t) dim ||
		oh->metric != (uint16_t) metric || oh->m != (uint16_t) m ||
		oh->ef_construction != (uint32_t) efc || oh->seed != seed ||
		oh->total_size != (uint64_t) old_size || oh->nlevels == 0 ||
		oh->nlevels > VS_HNSW_MAX_LEVELS || oh->entry >= oh->n)
		return 0;

	nlevels = draw_levels(n, m, seed, NULL, counts);
	VsHnswComputeLayout((uint32_t) n, m, nlevels, counts, stores_norms(metric, opt),
						n <= VS_HNSW_ID16_MAX_NODES, &lay);
	if (lay.total > (uint64_t) dst_size || lay.total > (uint64_t) SIZE_MAX)
		return 0;

	init_block(dst, n, dim, metric, m, efc, nlevels, seed, lay.total,
			   stores_norms(metric, opt));
	builder_init(&b, vectors, n, dim, metric, m, efc, seed, hooks, (char *) dst, counts, &lay);
	b.source = opt ? opt->source : NULL;

	/* the old nodes: the same levels, members and rows */
	if (b.node_level[oh->entry] != oh->nlevels - 1)
	{
		builder_free(&b);
		return 0;
	}
	for (int l = 0; l < oh->nlevels; l++)
	{
		Level		ol;

		VsHnswLevelView((const char *) old, l, &ol);
		if (ol.cap != b.levels[l].cap || ol.count > b.levels[l].count ||
			(l > 0 && memcmp(ol.members, b.levels[l].members, sizeof(uint32_t) * ol.count) != 0))
		{
			builder_free(&b);
			return 0;
		}
		if (l > 0)
		{
			memcpy((char *) dst + b.adj_offset[l], ol.adj, sizeof(uint32_t) * (size_t) ol.count * ol.cap);
			b.next_local[l] = ol.count;
		}
		else
		{
			/* in either width, into the rows the build works on */
			uint32_t   *rows = writable_row(&b, 0, 0);

			for (size_t pos = 0; pos < (size_t) ol.count * ol.cap; pos++)
			{
				uint32_t	v = level_id(&ol, pos);

				rows[pos] = (v < ol.count) ? v : VS_HNSW_NONE;
			}
		}
	}
	b.entry = oh->entry;
	b.top = oh->nlevels - 1;

	for (uint32_t q = oh->n; q < (uint32_t) n; q++)
	{
		insert_node(&b, q, 0);
		if ((q % POLL_NODES) == POLL_NODES - 1 && hooks->check_interrupts)
			hooks->check_interrupts();
	}
	h->entry = b.entry;
	builder_finish(&b);
	builder_free(&b);
	return (size_t) lay.total;
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
 * stores_norms - whether a graph of "metric" built with "opt" keeps its
 * inverse norms in the block: under cosine, unless opt->without_norms.
 */
static int
stores_norms(VsMetric metric, const VsHnswBuildOptions *opt)
{
	return metric == VS_METRIC_COSINE && !(opt != NULL && opt->without_norms);
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
		VsHnswLevelView(dst, l, &b->levels[l]);
		if (b->levels[l].adj16 != NULL)
		{
			/* built in 32 bits, then narrowed (builder_finish) */
			memset(dst + lay->adj[l], 0xFF, (size_t) counts[l] * cap * sizeof(uint16_t));
			b->wide0 = hooks->alloc((size_t) counts[l] * cap * sizeof(uint32_t));
			memset(b->wide0, 0xFF, (size_t) counts[l] * cap * sizeof(uint32_t));
			b->levels[l].adj = b->wide0;
			b->levels[l].adj16 = NULL;
		}
		else
			memset(dst + lay->adj[l], 0xFF, (size_t) counts[l] * cap * sizeof(uint32_t));
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

	if (metric == VS_METRIC_COSINE)
	{
		float	   *norms;

		/* in the block, or (without_norms) in scratch of the build's own */
		if (lay->norms != 0)
			norms = (float *) (dst + lay->norms);
		else
			norms = b->own_norms = hooks->alloc((size_t) n * sizeof(float));

		for (uint32_t i = 0; i < b->n; i++)
		{
			norms[i] = VsHnswInvNorm(vectors + (size_t) i * dim, dim);
			if ((i & 8191) == 8191 && hooks->check_interrupts)
				hooks->check_interrupts();
		}
		b->inv_norms = norms;
	}
}

/*
 * builder_finish - a 16-bit graph's level-0 rows into the block.
 */
static void
builder_finish(Builder *b)
{
	uint16_t   *dst;
	size_t		total;

	if (b->wide0 == NULL)
		return;
	dst = (uint16_t *) (b->base + b->adj_offset[0]);
	total = (size_t) b->levels[0].count * b->levels[0].cap;
	for (size_t pos = 0; pos < total; pos++)
		dst[pos] = (b->wide0[pos] < b->n) ? (uint16_t) b->wide0[pos] : VS_HNSW_NONE16;
}

/*
 * builder_free - give back the build's scratch (not the block).
 */
static void
builder_free(Builder *b)
{
	const VsHnswHooks *hooks = b->hooks;

	if (b->wide0 != NULL)
		hooks->free(b->wide0);
	if (b->own_norms != NULL)
		hooks->free(b->own_norms);
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
	if (l == 0 && b->wide0 != NULL)
		return b->wide0 + (size_t) local * b->levels[0].cap;
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
		uint32_t	lc = VsHnswGreedy(lv, &src, VsHnswFindMember(lv, cur), &curdist, salt);

		cur = lv->members ? lv->members[lc] : lc;
	}

	/* from the lower of q's level and the top: search, select, link */
	start = level < b->top ? level : b->top;
	b->pool[0].dist = curdist;
	b->pool[0].id = VsHnswFindMember(&b->levels[start], cur);
	size = 1;
	for (int l = start; l >= lowest; l--)
	{
		const Level *lv = &b->levels[l];
		uint16_t	epoch = VsHnswNextEpoch(b->tags, b->n, &b->epoch);
		uint32_t   *row = writable_row(b, l, local[l]);
		int			nsel;

		for (int i = 0; i < size; i++)
			b->tags[b->pool[i].id & ID_MASK] = epoch;
		size = VsHnswSearchLayer(lv, &src, b->pool, size, b->efc, b->tags, epoch,
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

				b->pool[i].id = VsHnswFindMember(below, node);
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
		uint16_t	ep = VsHnswNextEpoch(tags, n, &epoch);
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
			VsHnswPoolInsert(cand, &size, k + m, node_distance(b, q, c), c, lv0, salt);
		}
		if (b->node_level[q] > 0)
		{
			/* the long links of level 1 (see above) */
			const Level *lv1 = &b->levels[1];
			const uint32_t *up = lv1->adj +
				(size_t) VsHnswFindMember(lv1, q) * lv1->cap;

			for (uint32_t j = 0; j < lv1->cap && up[j] != VS_HNSW_NONE; j++)
			{
				uint32_t	c = lv1->members[up[j]];

				if (tags[c] == ep)
					continue;
				tags[c] = ep;
				VsHnswPoolInsert(cand, &size, k + m, node_distance(b, q, c), c, lv0, salt);
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
	uint16_t	epoch = VsHnswNextEpoch(b->tags, b->n, &b->epoch);
	Source		src;
	int			size;

	node_source(b, u, 0, &src);
	b->pool[0].dist = source_distance(&src, b->entry);
	b->pool[0].id = b->entry;
	b->tags[b->entry] = epoch;
	size = VsHnswSearchLayer(lv, &src, b->pool, 1, b->efc, b->tags, epoch,
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
