/*-------------------------------------------------------------------------
 *
 * vshnsw.h
 *	  HNSW graph over the vectors of one IVF cluster, searched in place.
 *
 * This header is plain C99 plus <stddef.h> and <stdint.h>: it does not
 * include postgres.h, so the unit test (test/kernels/test_hnsw.c) and the
 * benchmark (bench/bench_hnsw.c) link vshnsw.c and vsdistance.c on their
 * own.  The server supplies memory and interrupt handling through the same
 * hooks as k-means (VsHnswHooks is VsKmeansHooks).
 *
 * A graph is built straight into its serialized form: one flat block of
 * VsHnswSerializedSize() bytes that holds offsets, never pointers, and
 * cluster-local node ids, so it can be written into a segment file
 * at any 64-byte-aligned offset, mapped read-only, checked once with
 * VsHnswValidate() and then searched where it lies.  Node i of the graph
 * is vector i of the cluster (row i of the cluster's contiguous float
 * array in the segment).
 *
 * Layout (offsets from the start of the block, all multiples of 64; the
 * block's size too):
 *
 *	0		VsHnswHeaderData (64 bytes)
 *	64		VsHnswLevelData[nlevels] (24 bytes each), then padding
 *	...		level 0 adjacency: n rows of m0 = 2m node ids, uint16 when
 *			  n <= VS_HNSW_ID16_MAX_NODES (VS_HNSW_FLAG_ID16), else uint32
 *	...		for each level l = 1 .. nlevels - 1:
 *			  members: count_l uint32 node ids, strictly ascending
 *			  adjacency: count_l rows of m uint32 member indices
 *	...		cosine only: n float inverse norms (0 for a zero vector)
 *
 * A row lists a node's neighbours (in no particular order: back links
 * are appended) and ends at the first VS_HNSW_NONE or at the row's end;
 * every slot after that holds VS_HNSW_NONE as well.  Rows have a fixed
 * length so that node i's row is found by multiplication; on level 0,
 * with m = 16, a row is 64 bytes, one cache line (128 with 32-bit ids).
 *
 * Level 0 holds almost all of a graph's bytes, and every search reads a
 * row of it per node expanded, so a graph of at most 65,535 nodes (every
 * cluster of an index at its defaults) stores its level-0 ids in 16 bits,
 * with VS_HNSW_NONE16 as the empty slot; the header says so with
 * VS_HNSW_FLAG_ID16.  Graphs written before that flag existed (32-bit
 * ids at any n) are read, searched and extended as they are.  The upper
 * levels (a node in m of them) keep 32-bit ids.
 *
 * On level 0 a neighbour is a node id; on a level l >= 1 it is an index
 * into that level's member array (whose entries are node ids), so each
 * level is searched without a lookup table, and a node is found on the
 * level below by binary search in its members.  Every node of level l is
 * also a member of level l - 1.  Multi-byte fields are in the byte order
 * of the machine that built the graph (the segment is a derived cache,
 * rebuilt rather than converted).
 *
 * Distances.  Graphs are built and searched with the metric's ranking
 * distance, which orders rows as the SQL operator does: squared L2 for
 * L2, the negative inner product for IP, and 1 - cos for cosine (1 for a
 * zero vector; computed with the stored inverse norms).  Searches return
 * these values, not the operator's: the index reranks exactly anyway.
 *
 * IDENTIFICATION
 *	  src/vshnsw.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSHNSW_H
#define VSHNSW_H

#include <stddef.h>
#include <stdint.h>

#include "vsdistance.h"
#include "vskmeans.h"

/* identification of a serialized graph */
#define VS_HNSW_MAGIC			0x4E485356	/* "VSHN" read as bytes */
#define VS_HNSW_VERSION			1

/* alignment of the block and of every section inside it */
#define VS_HNSW_ALIGN			64

/* an empty adjacency slot; also "no entry point" (n == 0) */
#define VS_HNSW_NONE			UINT32_MAX

/* header flags */
#define VS_HNSW_FLAG_NORMS		0x0001	/* inverse norms stored (cosine) */
#define VS_HNSW_FLAG_ID16		0x0002	/* level-0 ids are uint16 */

/* the most nodes a graph with 16-bit level-0 ids has; its empty slot */
#define VS_HNSW_ID16_MAX_NODES	65535
#define VS_HNSW_NONE16			UINT16_MAX

/* levels 0 .. VS_HNSW_MAX_LEVELS - 1; a node drawn higher is capped */
#define VS_HNSW_MAX_LEVELS		32

/* reloption m: neighbours per node on levels >= 1 (2m on level 0) */
#define VS_HNSW_DEFAULT_M		16
#define VS_HNSW_MIN_M			2
#define VS_HNSW_MAX_M			100

/* reloption ef_construction: candidate list while building */
#define VS_HNSW_DEFAULT_EF_CONSTRUCTION	64
#define VS_HNSW_MIN_EF_CONSTRUCTION	4
#define VS_HNSW_MAX_EF_CONSTRUCTION	1000

/* GUC vecstore.ef_search: candidate list while searching */
#define VS_HNSW_DEFAULT_EF_SEARCH	40
#define VS_HNSW_MIN_EF_SEARCH	1
#define VS_HNSW_MAX_EF_SEARCH	1000

/*
 * Clusters with fewer vectors than this are scanned flat (exactly) rather
 * than through their graph, and need no graph.  Measured (bench_hnsw
 * section 4, bench/RESULTS-hnsw.md): clusters of n base vectors nearest
 * a seed, the queries nearest the same seed, the flat scan's time against
 * the graph's at the default ef_search (40), where the graph's recall@10
 * against the flat scan is 0.97-1.00 at these sizes.  The graph became
 * faster from 1000-1500 vectors at 128 dims (SIFT), 1000 at 100 (GloVe)
 * and 500 at 784 (Fashion-MNIST).  At the smallest ef that just reaches
 * recall 0.95 the graph wins earlier (from 100-500 vectors), but the
 * index runs one ef_search for every cluster, and below 1000 vectors the
 * flat scan costs at most 15-40 us at those dims while being exact.
 */
#define VS_HNSW_FLAT_THRESHOLD	1000

/* allocation and interrupt hooks: the same shape and rules as k-means */
typedef VsKmeansHooks VsHnswHooks;

/*
 * Running the independent steps of a build from lists in parallel (on
 * the GPU helper's threads; a backend never has any).  run(ctx, ntasks,
 * fn, arg) must call fn(arg, t) exactly once for each t in 0 .. ntasks -
 * 1, in any order, on any threads, and return when all calls have
 * returned.  The build cuts each step into at most "ntasks" tasks (fewer
 * for small clusters) and its result does not depend on how many or in
 * what order they ran.  Tasks call only the hooks' alloc and free, which
 * must then be thread-safe; check_interrupts and progress are called
 * only from the build's own thread, between steps.
 */
typedef void (*VsHnswTaskFn) (void *arg, int task);

typedef struct VsHnswParallel
{
	void	   *ctx;
	int			ntasks;			/* how many tasks to cut a step into */
	void		(*run) (void *ctx, int ntasks, VsHnswTaskFn fn, void *arg);
} VsHnswParallel;

/* the first 64 bytes of a serialized graph */
typedef struct VsHnswHeaderData
{
	uint32_t	magic;			/* VS_HNSW_MAGIC */
	uint16_t	version;		/* VS_HNSW_VERSION */
	uint16_t	flags;			/* VS_HNSW_FLAG_* */
	uint32_t	n;				/* nodes (vectors of the cluster) */
	uint32_t	dim;			/* dimensions of the vectors */
	uint16_t	metric;			/* VsMetric the graph was built for */
	uint16_t	m;				/* row length on levels >= 1 */
	uint16_t	m0;				/* row length on level 0: 2m */
	uint16_t	nlevels;		/* levels present; 0 when n == 0 */
	uint32_t	entry;			/* node id of the entry point, on the top
								 * level; VS_HNSW_NONE when n == 0 */
	uint32_t	ef_construction;	/* as built (information only) */
	uint64_t	total_size;		/* bytes of the whole block */
	uint64_t	seed;			/* as built (information only) */
	uint8_t		reserved[16];	/* zero */
} VsHnswHeaderData;

/* one entry of the level table, which follows the header */
typedef struct VsHnswLevelData
{
	uint32_t	count;			/* nodes on this level (n on level 0) */
	uint32_t	cap;			/* row length: m0 on level 0, m above */
	uint64_t	members_offset; /* 0 on level 0 (every node is a member) */
	uint64_t	adj_offset;		/* count rows of cap ids (uint32, or uint16
								 * on level 0 with VS_HNSW_FLAG_ID16) */
} VsHnswLevelData;

/* how to build */
typedef struct VsHnswBuildOptions
{
	int			m;				/* VS_HNSW_MIN_M .. VS_HNSW_MAX_M */
	int			ef_construction;	/* raised to m if smaller */
	uint64_t	seed;			/* draws the levels: same input, options
								 * and kernel path => identical bytes */
	const struct VsHnswBuildSource *source; /* NULL: search the float
											 * vectors (see below) */

	/*
	 * Cosine: leave the inverse norms out of the block (4 bytes a node),
	 * for a graph that is only ever searched through a caller's distances
	 * (VsHnswSearchWith, VsHnswSearchBatch: compact codes).  VsHnswSearch
	 * refuses such a graph.  The build computes the norms all the same.
	 */
	int			without_norms;

	/*
	 * Candidate lists for level 0, or NULL.  When given, level 0 is not
	 * built by searching the graph: each node's neighbours are selected
	 * (the same heuristic) from its row of "neighbours": n rows of
	 * "nneighbours" node ids, the node's approximately nearest others in
	 * any order (ids >= n, the node itself, repeats and VS_HNSW_NONE are
	 * skipped, so a list from elsewhere cannot make the build misbehave),
	 * and back links are added afterwards.  The levels above are built
	 * as usual, by searching.  This is how a GPU, which finds exact
	 * k-nearest-neighbour lists with one matrix product per cluster,
	 * builds a graph (vshnsw.c, build_from_lists, says more).  "source"
	 * is then used only above level 0.
	 */
	const uint32_t *neighbours;
	int			nneighbours;	/* 1 .. VS_HNSW_MAX_EF_CONSTRUCTION */

	/*
	 * With "neighbours": the runner for level 0's passes (see
	 * VsHnswParallel), or NULL to run them on the calling thread.
	 */
	const VsHnswParallel *parallel;
} VsHnswBuildOptions;

/* one search result; results come nearest first, ties by id */
typedef struct VsHnswResult
{
	uint32_t	id;				/* node id: row of the cluster */
	float		distance;		/* ranking distance (see above) */
} VsHnswResult;

/*
 * Distance from the caller's query to node "id", for searches over data
 * other than the float vectors (compact codes).  Smaller is nearer; NaN
 * counts as +infinity.  Called only with id < the graph's n.
 */
typedef float (*VsHnswDistanceFn) (void *ctx, uint32_t id);

/*
 * The same for several nodes at once: out[i] = distance to ids[i], for
 * i < n (n <= 2 * VS_HNSW_MAX_M).  A search hands over all the unvisited
 * neighbours of a node in one call, so the callee can prefetch and
 * vectorise (vsquant.c's VsQuantDistancesIds, behind a small adapter).
 */
typedef void (*VsHnswDistancesFn) (void *ctx, const uint32_t *ids, uint32_t n,
								   float *out);

/*
 * Where a build's search distances come from when not from the float
 * vectors: compact codes of the same rows (vsquant.h).  Before each node
 * is inserted, set_query(ctx, node) makes that node's vector the query of
 * the batch calls that follow; batch is as for VsHnswSearchBatch.  The
 * distances must be on the graph's scale (vshnsw.h: ranking distances).
 * The neighbour selection still compares the float vectors.  Measured in
 * CREATE INDEX (src/vsbuild.c passes the SQ8 codes): Fashion-MNIST
 * (784-d) built in 1.9-2.0 s instead of 2.3-2.5 s, SIFT (128-d, 10
 * lists) in 1.9 s instead of about 3.3 s, with recall@10 at each
 * ef_search within 0.001 of the float-built graphs.
 */
typedef struct VsHnswBuildSource
{
	void	   *ctx;
	void		(*set_query) (void *ctx, uint32_t node);
	VsHnswDistancesFn batch;
} VsHnswBuildSource;

/* a search's reusable working memory (opaque; see VsHnswScratchInit) */
typedef struct VsHnswScratch VsHnswScratch;

/*
 * What the searches of one query in one graph have visited, so that a
 * deeper search continues them instead of starting again (opaque; see
 * VsHnswTrailInit and VsHnswSearchBatchOn).
 */
typedef struct VsHnswTrail VsHnswTrail;

/* what VsHnswDescribe reports */
typedef struct VsHnswInfo
{
	uint32_t	n;
	uint32_t	dim;
	VsMetric	metric;
	int			m;
	int			m0;
	int			nlevels;
	uint32_t	entry;
	uint64_t	total_size;
	uint32_t	level_count[VS_HNSW_MAX_LEVELS];	/* nodes per level */
	uint64_t	level_edges[VS_HNSW_MAX_LEVELS];	/* neighbours listed */
} VsHnswInfo;

/* vshnsw_build.c: building */
extern void VsHnswBuildOptionsInit(VsHnswBuildOptions *opt);
extern size_t VsHnswSerializedSize(int n, VsMetric metric,
								   const VsHnswBuildOptions *opt);
extern size_t VsHnswBuildMemory(int n, const VsHnswBuildOptions *opt);
extern size_t VsHnswBuild(const float *vectors, int n, int dim,
						  VsMetric metric, const VsHnswBuildOptions *opt,
						  const VsHnswHooks *hooks, void *dst, size_t dst_size);
extern size_t VsHnswExtend(const void *old, size_t old_size, const float *vectors, int n,
						   int dim, VsMetric metric, const VsHnswBuildOptions *opt,
						   const VsHnswHooks *hooks, void *dst, size_t dst_size);

extern void VsHnswExactNeighbours(const float *vectors, int n, int dim,
								  VsMetric metric, int k,
								  const VsHnswHooks *hooks,
								  const VsHnswParallel *parallel,
								  uint32_t *out);

/* vshnsw.c: checking a block that came from disk */
extern const char *VsHnswValidate(const void *graph, size_t size, int n,
								  int dim, VsMetric metric);

/* vshnsw_search.c: searching */
extern size_t VsHnswScratchSize(int max_n, int max_ef);
extern VsHnswScratch *VsHnswScratchInit(void *mem, size_t size, int max_n,
										int max_ef);
extern int	VsHnswSearch(const void *graph, const float *vectors,
						 const float *query, int k, int ef,
						 VsHnswScratch *scratch, VsHnswResult *out);
extern int	VsHnswSearchWith(const void *graph, VsHnswDistanceFn dist,
							 void *ctx, int k, int ef,
							 VsHnswScratch *scratch, VsHnswResult *out);
extern int	VsHnswSearchBatch(const void *graph, VsHnswDistancesFn dists,
							  void *ctx, int k, int ef,
							  VsHnswScratch *scratch, VsHnswResult *out);
extern size_t VsHnswTrailSize(int max_n, int max_ef);
extern VsHnswTrail *VsHnswTrailInit(void *mem, size_t size, int max_n,
									int max_ef);
extern int	VsHnswTrailEf(const VsHnswTrail *trail);
extern int	VsHnswSearchOn(const void *graph, const float *vectors,
						   const float *query, int k, int ef,
						   VsHnswScratch *scratch, VsHnswTrail *trail,
						   VsHnswResult *out);
extern int	VsHnswSearchBatchOn(const void *graph, VsHnswDistancesFn dists,
								void *ctx, int k, int ef,
								VsHnswScratch *scratch, VsHnswTrail *trail,
								VsHnswResult *out);
extern int	VsHnswFlatSearch(const float *vectors, int n, int dim,
							 VsMetric metric, const float *query, int k,
							 VsHnswResult *out);

/* vshnsw.c: introspection */
extern float VsHnswDistance(VsMetric metric, const float *a, const float *b,
							int dim);
extern const float *VsHnswInvNorms(const void *graph);
extern int	VsHnswNeighbours(const void *graph, int level, uint32_t id,
							 uint32_t *out);
extern void VsHnswDescribe(const void *graph, VsHnswInfo *info);

#endif							/* VSHNSW_H */
