/*-------------------------------------------------------------------------
 *
 * vskmeans_assign.c
 *	  Nearest-centroid assignment of vectors to IVF lists.
 *
 * Owns the blocked nearest-centroid search that both training
 * (vskmeans.c) and the index (build, insert, query routing) use: the
 * ranking transform, centroids packed in panels (per call, or once:
 * VsKmeansPrepare), and the scalar, AVX2 and AVX-512 micro-kernels with
 * the arg-min fused in.  Pure C99 plus GCC target attributes: no
 * postgres.h.  Memory comes from hooks->alloc and interrupts are polled
 * through hooks->check_interrupts (vskmeans.h).
 *
 * Nearest-centroid search.  For L2, ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2
 * and ||x||^2 is the same for every centroid, so the search ranks
 * bias_j + scale_j * (x . c_j) with bias = ||c||^2, scale = -2.  Inner
 * product uses bias 0, scale -1; cosine uses bias 0, scale -1/||c_j||,
 * which ranks by cosine without normalising x (so callers pass raw
 * vectors).  Padding lanes and zero centroids under cosine get bias
 * +infinity.  The dot products come from a register-blocked micro-kernel
 * over centroids packed in panels of 16 (panel p holds, for each
 * dimension d, the d-th element of 16 consecutive centroids): AVX-512
 * does 8 vectors x 32 centroids per step, AVX2 6 x 16, scalar 4 x 16.
 * The arg-min is fused into the kernel, so no k-sized distance array is
 * written.  Ties go to the lowest centroid index.  The ranking values
 * lose precision for L2 when vectors are far from the origin (relative
 * error about FLT_EPSILON * ||x||^2 / ||x - c||^2), which only matters
 * for near-ties; out_dist is recomputed exactly with VsKernels for the
 * winner.
 *
 * Every dot product is summed sequentially over the dimensions, one FMA
 * per element on the AVX2 and AVX-512 paths (one multiply and one add on
 * the scalar path), whichever way the centroids are grouped.  So:
 *	- the centroid chosen for a vector does not depend on the other
 *	  vectors in the call, nor on the entry point: fewer than 4 vectors
 *	  gather from the unpacked centroids instead of packing them, and
 *	  VsKmeansAssignPrepared reuses centroids packed once (an insert: 5 us
 *	  instead of 25 us at k = 1000, 128 dims); all compute the same bits;
 *	- AVX2 and AVX-512 choose the same centroid for every vector; the
 *	  scalar path can differ on near-ties only.
 * Speed (bench/RESULTS-kmeans.md, one core): 1,000,000 x 128 vectors to
 * 1000 centroids in 1.7-1.8 s with AVX-512 (about 145 GFLOP/s), 3.4 s
 * with AVX2, 25-35 s scalar.
 *
 * XXX The L2 ranking loses precision far from the origin (see above);
 * centring data and centroids on their mean would fix it at the cost of
 * a copy of each block of vectors.
 *
 * IDENTIFICATION
 *	  src/vskmeans_assign.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vsdistance.h"
#include "vskmeans_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VS_HAVE_X86_SIMD 1
#include <immintrin.h>
#endif

/* centroids per packed panel: one AVX-512 register, two AVX2 ones */
#define PANEL			16

/* bytes of packed centroids per chunk: the chunk stays in L2 */
#define PACK_BYTES		(512 * 1024)

/* multiply-adds between two calls of hooks->check_interrupts */
#define INTERRUPT_WORK	((int64_t) 1 << 23)

/* rows per micro-kernel call, per path */
#define ROWS_AVX512		8
#define ROWS_AVX2		6
#define ROWS_SCALAR		4

/* a far-away bias: the lane can never win */
#define NEVER			INFINITY

/*
 * Everything a nearest-centroid search needs, set up once per call of
 * assign_rows (the packed chunk is reused across vector blocks when all
 * centroids fit in one chunk).
 */
typedef struct AssignPlan
{
	const float *centroids;
	int			k;
	int			dim;
	VsMetric	metric;
	VsKernelPath path;
	const VsKmeansHooks *hooks;
	float	   *bias;			/* kpad ranking biases (NULL: small path) */
	float	   *scale;			/* kpad ranking scales */
	float	   *pack;			/* one chunk of packed panels, 64-aligned */
	void	   *pack_raw;		/* what to free for pack */
	int			chunk;			/* centroids per chunk, a multiple of 32 */
	int			packed_chunk;	/* first centroid of the packed chunk or -1 */
	const float *prepacked;		/* all k packed (VsKmeansPrepared) or NULL */
	float	   *bestv;			/* BLOCK_ROWS running minima */
	int64_t		work;			/* multiply-adds since the last interrupt poll */
} AssignPlan;

/*
 * Centroids packed once for many searches (VsKmeansPrepare): one block
 * from hooks->alloc holding this header, bias and scale (kpad floats
 * each) and the panels of all k centroids, 64-byte aligned.
 */
struct VsKmeansPrepared
{
	const float *centroids;		/* the caller's, for the exact distances */
	int			k;
	int			dim;
	VsMetric	metric;
	float	   *bias;
	float	   *scale;
	float	   *pack;
};

static void plan_init(AssignPlan *plan, const float *centroids, const float *norms,
					  int k, int dim, VsMetric metric, int nrows,
					  const VsKmeansHooks *hooks);
static void plan_free(AssignPlan *plan);
static void assign_rows(AssignPlan *plan, const float *vectors, int n,
						int32_t *out, float *out_dist);
static void assign_block(AssignPlan *plan, const float *x, int rows, int32_t *out);
static void assign_small(AssignPlan *plan, const float *x, const float *norms,
						 int32_t *out);
static void pack_chunk(const float *centroids, int first, int count, int dim,
					   float *pack);
static void panels_scalar(const float *x, int dim, int rows, const float *pack,
						  int npanels, const float *bias, const float *scale,
						  int32_t base, float *bestv, int32_t *besti);
static void small_scalar(const float *x, const float *centroids, int k, int dim,
						 VsMetric metric, const float *norms, int32_t *out);

#ifdef VS_HAVE_X86_SIMD
static void panels_avx512_rows(const float *x, int dim, int rows, const float *pack,
							   int npanels, const float *bias, const float *scale,
							   int32_t base, float *bestv, int32_t *besti);
static void small_avx512(const float *x, const float *centroids, int k, int dim,
						 VsMetric metric, const float *norms, int32_t *out);
static void panels_avx2_rows(const float *x, int dim, int rows, const float *pack,
							 int npanels, const float *bias, const float *scale,
							 int32_t base, float *bestv, int32_t *besti);
static void small_avx2(const float *x, const float *centroids, int k, int dim,
					   VsMetric metric, const float *norms, int32_t *out);
#endif


/*
 * VsKmeansCentroidNorms - squared norm of each of k centroids.
 *
 * Summed in double in element order, so the values (and the assignments
 * that use them) do not depend on the kernel path.  norms: k floats.
 */
void
VsKmeansCentroidNorms(const float *centroids, int k, int dim, float *norms)
{
	for (int j = 0; j < k; j++)
	{
		const float *c = centroids + (size_t) j * dim;
		double		s = 0.0;

		for (int d = 0; d < dim; d++)
			s += (double) c[d] * (double) c[d];
		norms[j] = (float) s;
	}
}

/*
 * VsKmeansAssign - the nearest of k centroids for each of n vectors.
 *
 * centroid_norms: the k squared norms from VsKmeansCentroidNorms; used for
 * L2 and COSINE, ignored (may be NULL) for IP.  Vectors are raw: cosine
 * ranks by x.c / ||c||, which does not need x normalised.
 *
 * out[i] gets the index of the nearest centroid (ties: the lowest index).
 * A vector whose distances are all NaN or infinite (non-finite input)
 * gets 0.  out_dist, unless NULL, gets the exact distance to that
 * centroid, computed with VsKernels: L2 squared distance; IP negative
 * inner product; COSINE 1 - cos in [0, 2], and 1 for a zero vector (or a
 * zero centroid), whose cosine is undefined.
 *
 * hooks: alloc/free for scratch (at most about 600 kB plus 8 bytes per
 * centroid, none when n < 4), check_interrupts every few milliseconds.
 */
void
VsKmeansAssign(const float *centroids, const float *centroid_norms, int k,
			   int dim, VsMetric metric, const float *vectors, int n,
			   int32_t *out, float *out_dist, const VsKmeansHooks *hooks)
{
	AssignPlan	plan;

	if (n <= 0 || k <= 0)
		return;
	if (hooks->offload_assign &&
		hooks->offload_assign(hooks->offload_arg, centroids, k, dim, metric,
							  vectors, n, out, out_dist) == 0)
		return;
	plan_init(&plan, centroids, centroid_norms, k, dim, metric, n, hooks);
	if (plan.bias == NULL)
	{
		/* few vectors: no packing (see assign_small) */
		for (int i = 0; i < n; i++)
		{
			const float *x = vectors + (size_t) i * dim;

			assign_small(&plan, x, centroid_norms, &out[i]);
			if (out_dist)
				out_dist[i] = VsKmeansDistance(metric, x,
											 centroids + (size_t) out[i] * dim,
											 dim);
		}
		VsKmeansPollInterrupts(hooks);
		return;
	}
	assign_rows(&plan, vectors, n, out, out_dist);
	plan_free(&plan);
}

/*
 * VsKmeansPrepare - pack k centroids once for VsKmeansAssignPrepared.
 *
 * For callers that search the same centroids again and again with one or
 * a few vectors at a time (inserts, query routing): VsKmeansAssign packs
 * or gathers the centroids on every call, which costs as much as the
 * search itself for one vector.  The result is one block from
 * hooks->alloc of VsKmeansPreparedSize(k, dim) bytes (free it with
 * hooks->free); it keeps a pointer to "centroids" (for out_dist), which
 * must stay valid and unchanged while it is used.  centroid_norms as for
 * VsKmeansAssign.
 */
VsKmeansPrepared *
VsKmeansPrepare(const float *centroids, const float *centroid_norms, int k,
				int dim, VsMetric metric, const VsKmeansHooks *hooks)
{
	size_t		kpad = ((size_t) k + 31) / 32 * 32;
	char	   *raw = VsKmeansAllocArray(hooks, VsKmeansPreparedSize(k, dim), 1);
	VsKmeansPrepared *prep = (VsKmeansPrepared *) raw;
	uintptr_t	at = (uintptr_t) (raw + sizeof(VsKmeansPrepared));

	prep->centroids = centroids;
	prep->k = k;
	prep->dim = dim;
	prep->metric = metric;
	prep->bias = (float *) at;
	prep->scale = prep->bias + kpad;
	at = ((uintptr_t) (prep->scale + kpad) + 63) & ~(uintptr_t) 63;
	prep->pack = (float *) at;
	for (size_t j = 0; j < kpad; j++)
	{
		if (j < (size_t) k)
			VsKmeansRankTransform(metric, metric == VS_METRIC_IP ? 0.0f : centroid_norms[j],
					   &prep->bias[j], &prep->scale[j]);
		else
		{
			prep->bias[j] = NEVER;
			prep->scale[j] = 0.0f;
		}
	}
	/* panel p of the whole set is panel p of chunk 0: one call does all */
	pack_chunk(centroids, 0, k, dim, prep->pack);
	/* pack_chunk zeroes only the last panel's padding; pad to kpad */
	if (kpad / PANEL > ((size_t) k + PANEL - 1) / PANEL)
		memset(prep->pack + ((size_t) k + PANEL - 1) / PANEL * PANEL * dim, 0,
			   sizeof(float) * PANEL * dim);
	return prep;
}

/*
 * VsKmeansPreparedSize - bytes of the block VsKmeansPrepare allocates.
 */
size_t
VsKmeansPreparedSize(int k, int dim)
{
	size_t		kpad = ((size_t) k + 31) / 32 * 32;

	return sizeof(VsKmeansPrepared) + 2 * kpad * sizeof(float) + 64 +
		kpad * (size_t) dim * sizeof(float);
}

/*
 * VsKmeansAssignPrepared - VsKmeansAssign against prepared centroids.
 *
 * Same results, bit for bit, as VsKmeansAssign with the same centroids,
 * norms and metric on the same kernel path.  Allocates only a little
 * scratch (4 bytes per vector, at most 4 kB).
 */
void
VsKmeansAssignPrepared(const VsKmeansPrepared *prep, const float *vectors,
					   int n, int32_t *out, float *out_dist,
					   const VsKmeansHooks *hooks)
{
	AssignPlan	plan;

	if (n <= 0 || prep->k <= 0)
		return;
	memset(&plan, 0, sizeof(plan));
	plan.centroids = prep->centroids;
	plan.k = prep->k;
	plan.dim = prep->dim;
	plan.metric = prep->metric;
	plan.path = VsKernelsActivePath;
	plan.hooks = hooks;
	plan.bias = prep->bias;
	plan.scale = prep->scale;
	plan.prepacked = prep->pack;
	/* chunks are windows on the packed set, sized for the cache as usual */
	plan.chunk = (int) VsKmeansChunkSize(prep->k, prep->dim);
	plan.packed_chunk = -1;
	plan.bestv = VsKmeansAllocArray(hooks, n < BLOCK_ROWS ? n : BLOCK_ROWS, sizeof(float));
	assign_rows(&plan, vectors, n, out, out_dist);
	hooks->free(plan.bestv);
	if (n < SMALL_ROWS)
		VsKmeansPollInterrupts(hooks);
}

/*
 * VsKmeansRankTransform - the ranking transform of one centroid (see the
 * file header): the nearest centroid minimises bias + scale * (x . c).
 * "norm" is the centroid's squared norm (VsKmeansCentroidNorms; ignored
 * for IP).  One scalar function for every path, and for the GPU helper,
 * so they all rank with identical biases and scales.
 */
void
VsKmeansRankTransform(VsMetric metric, float norm, float *bias, float *scale)
{
	switch (metric)
	{
		case VS_METRIC_L2:
			*bias = norm;
			*scale = -2.0f;
			break;
		case VS_METRIC_IP:
			*bias = 0.0f;
			*scale = -1.0f;
			break;
		case VS_METRIC_COSINE:
		default:
			if (norm > 0.0f)
			{
				*bias = 0.0f;
				*scale = (float) (-1.0 / sqrt((double) norm));
			}
			else
			{
				/* a zero centroid has no direction: never the nearest */
				*bias = NEVER;
				*scale = 0.0f;
			}
			break;
	}
}

/*
 * VsKmeansDistance - the metric's distance from x to c through VsKernels
 * (the same kernels as the SQL operators), for out_dist.
 */
float
VsKmeansDistance(VsMetric metric, const float *x, const float *c, int dim)
{
	switch (metric)
	{
		case VS_METRIC_L2:
			return VsKernels.l2_squared(x, c, dim);
		case VS_METRIC_IP:
			return -VsKernels.inner_product(x, c, dim);
		case VS_METRIC_COSINE:
		default:
			{
				float		dot,
							na,
							nb;
				double		dist;

				VsKernels.dot_norms(x, c, dim, &dot, &na, &nb);
				dist = VsCosineFromSums(dot, na, nb);
				/* a zero vector: call it orthogonal rather than NaN */
				if (dist != dist)
					dist = 1.0;
				return (float) dist;
			}
	}
}

/*
 * plan_init - prepare a search of k centroids for nrows vectors.
 *
 * With nrows < SMALL_ROWS nothing is allocated (plan->bias stays NULL) and
 * the caller uses assign_small; otherwise bias/scale for every centroid,
 * a 64-byte aligned chunk buffer and the running minima are allocated
 * (plan_free releases them).
 */
static void
plan_init(AssignPlan *plan, const float *centroids, const float *norms,
		  int k, int dim, VsMetric metric, int nrows,
		  const VsKmeansHooks *hooks)
{
	size_t		kpad = ((size_t) k + 31) / 32 * 32;
	size_t		chunk;

	memset(plan, 0, sizeof(*plan));
	plan->centroids = centroids;
	plan->k = k;
	plan->dim = dim;
	plan->metric = metric;
	plan->path = VsKernelsActivePath;
	plan->hooks = hooks;
	plan->packed_chunk = -1;
	if (nrows < SMALL_ROWS)
		return;

	plan->bias = VsKmeansAllocArray(hooks, kpad, sizeof(float));
	plan->scale = VsKmeansAllocArray(hooks, kpad, sizeof(float));
	for (size_t j = 0; j < kpad; j++)
	{
		if (j < (size_t) k)
			VsKmeansRankTransform(metric, metric == VS_METRIC_IP ? 0.0f : norms[j],
					   &plan->bias[j], &plan->scale[j]);
		else
		{
			/* padding lanes: zero data, never chosen */
			plan->bias[j] = NEVER;
			plan->scale[j] = 0.0f;
		}
	}

	chunk = VsKmeansChunkSize(k, dim);
	plan->chunk = (int) chunk;
	plan->pack_raw = VsKmeansAllocArray(hooks, chunk * dim * sizeof(float) + 64, 1);
	/* aligned panels: every 16-float load is exactly one cache line */
	plan->pack = (float *) (((uintptr_t) plan->pack_raw + 63) & ~(uintptr_t) 63);
	plan->bestv = VsKmeansAllocArray(hooks, BLOCK_ROWS, sizeof(float));
}

/*
 * VsKmeansChunkSize - centroids per packed chunk: as many whole panel pairs as
 * fit in PACK_BYTES, at least one pair, at most k rounded up to a pair.
 */
size_t
VsKmeansChunkSize(int k, int dim)
{
	size_t		kpad = ((size_t) k + 31) / 32 * 32;
	size_t		chunk = PACK_BYTES / ((size_t) dim * sizeof(float));

	chunk = chunk / 32 * 32;
	if (chunk < 32)
		chunk = 32;
	if (chunk > kpad)
		chunk = kpad;
	return chunk;
}

/*
 * plan_free - release what plan_init allocated.
 */
static void
plan_free(AssignPlan *plan)
{
	if (plan->bias == NULL)
		return;
	plan->hooks->free(plan->bestv);
	plan->hooks->free(plan->pack_raw);
	plan->hooks->free(plan->scale);
	plan->hooks->free(plan->bias);
	plan->bias = NULL;
}

/*
 * assign_rows - nearest centroid (and optionally exact distance) of n
 * vectors, BLOCK_ROWS at a time, with a plan from plan_init(nrows >=
 * SMALL_ROWS).
 */
static void
assign_rows(AssignPlan *plan, const float *vectors, int n, int32_t *out,
			float *out_dist)
{
	int			dim = plan->dim;

	for (int i0 = 0; i0 < n; i0 += BLOCK_ROWS)
	{
		int			rows = (n - i0 < BLOCK_ROWS) ? n - i0 : BLOCK_ROWS;
		const float *x = vectors + (size_t) i0 * dim;

		assign_block(plan, x, rows, out + i0);
		if (out_dist)
		{
			for (int i = 0; i < rows; i++)
				out_dist[i0 + i] =
					VsKmeansDistance(plan->metric, x + (size_t) i * dim,
								   plan->centroids + (size_t) out[i0 + i] * dim,
								   dim);
		}
	}
}

/*
 * assign_block - nearest centroid of up to BLOCK_ROWS vectors.
 *
 * Chunks of centroids are packed in turn (once per call when they all fit
 * in one chunk) and every group of rows runs the path's micro-kernel over
 * the chunk; running minima in plan->bestv carry over between chunks,
 * which go in increasing centroid order so ties keep the lower index.
 */
static void
assign_block(AssignPlan *plan, const float *x, int rows, int32_t *out)
{
	int			dim = plan->dim;
	int			k = plan->k;
	float	   *bestv = plan->bestv;

	for (int i = 0; i < rows; i++)
	{
		bestv[i] = INFINITY;
		out[i] = 0;
	}

	for (int c0 = 0; c0 < k; c0 += plan->chunk)
	{
		int			count = (k - c0 < plan->chunk) ? k - c0 : plan->chunk;
		int			npanels = (count + PANEL - 1) / PANEL;
		int			step;

		const float *pack;

		if (plan->prepacked)
			pack = plan->prepacked + (size_t) c0 * dim;	/* panels in order */
		else
		{
			if (plan->packed_chunk != c0)
			{
				pack_chunk(plan->centroids, c0, count, dim, plan->pack);
				plan->packed_chunk = c0;
			}
			pack = plan->pack;
		}

		switch (plan->path)
		{
#ifdef VS_HAVE_X86_SIMD
			case VS_KERNEL_AVX512:
				step = ROWS_AVX512;
				break;
			case VS_KERNEL_AVX2:
				step = ROWS_AVX2;
				break;
#endif
			default:
				step = ROWS_SCALAR;
				break;
		}

		for (int r = 0; r < rows; r += step)
		{
			int			nr = (rows - r < step) ? rows - r : step;
			const float *xr = x + (size_t) r * dim;

			switch (plan->path)
			{
#ifdef VS_HAVE_X86_SIMD
				case VS_KERNEL_AVX512:
					panels_avx512_rows(xr, dim, nr, pack, npanels,
									   plan->bias + c0, plan->scale + c0, c0,
									   bestv + r, out + r);
					break;
				case VS_KERNEL_AVX2:
					panels_avx2_rows(xr, dim, nr, pack, npanels,
									 plan->bias + c0, plan->scale + c0, c0,
									 bestv + r, out + r);
					break;
#endif
				default:
					panels_scalar(xr, dim, nr, pack, npanels,
								  plan->bias + c0, plan->scale + c0, c0,
								  bestv + r, out + r);
					break;
			}

			/* poll by work done, not by rows: k * dim varies 10^6-fold */
			plan->work += (int64_t) nr * npanels * PANEL * dim;
			if (plan->work >= INTERRUPT_WORK)
			{
				plan->work = 0;
				VsKmeansPollInterrupts(plan->hooks);
			}
		}
	}
}

/*
 * assign_small - nearest centroid of one vector without packing.
 *
 * Packing costs k * dim stores, as much as the search itself for a single
 * vector, so an insert or a query goes here instead.  The SIMD versions
 * gather 16 (8) centroids' d-th elements per step, which yields the same
 * sequential FMA sums, hence the same choice, as the packed kernels.
 */
static void
assign_small(AssignPlan *plan, const float *x, const float *norms, int32_t *out)
{
	switch (plan->path)
	{
#ifdef VS_HAVE_X86_SIMD
		case VS_KERNEL_AVX512:
			small_avx512(x, plan->centroids, plan->k, plan->dim, plan->metric,
						 norms, out);
			break;
		case VS_KERNEL_AVX2:
			small_avx2(x, plan->centroids, plan->k, plan->dim, plan->metric,
					   norms, out);
			break;
#endif
		default:
			small_scalar(x, plan->centroids, plan->k, plan->dim, plan->metric,
						 norms, out);
			break;
	}
}

/*
 * pack_chunk - copy centroids first .. first+count-1 into panels.
 *
 * Panel p holds dim rows of PANEL floats: element d of centroids
 * first + p*PANEL + l, l = 0..15.  Lanes past "count" are zero.
 */
static void
pack_chunk(const float *centroids, int first, int count, int dim, float *pack)
{
	int			npanels = (count + PANEL - 1) / PANEL;

	for (int p = 0; p < npanels; p++)
	{
		float	   *dst = pack + (size_t) p * dim * PANEL;

		for (int l = 0; l < PANEL; l++)
		{
			int			j = p * PANEL + l;

			if (j < count)
			{
				const float *src = centroids + (size_t) (first + j) * dim;

				for (int d = 0; d < dim; d++)
					dst[(size_t) d * PANEL + l] = src[d];
			}
			else
			{
				for (int d = 0; d < dim; d++)
					dst[(size_t) d * PANEL + l] = 0.0f;
			}
		}
	}
}

/*
 * panels_scalar - portable micro-kernel: up to ROWS_SCALAR vectors
 * against npanels panels.  Lanes are visited in index order with a strict
 * comparison, so ties keep the lowest index.  bestv/besti hold the running
 * minimum of each row and are updated in place.  The loop over lanes is
 * left for the compiler to vectorise.
 */
static void
panels_scalar(const float *x, int dim, int rows, const float *pack,
			  int npanels, const float *bias, const float *scale,
			  int32_t base, float *bestv, int32_t *besti)
{
	for (int p = 0; p < npanels; p++)
	{
		const float *pk = pack + (size_t) p * dim * PANEL;
		float		acc[ROWS_SCALAR][PANEL];

		memset(acc, 0, sizeof(acc));
		for (int d = 0; d < dim; d++)
		{
			const float *col = pk + (size_t) d * PANEL;

			for (int r = 0; r < rows; r++)
			{
				float		xv = x[(size_t) r * dim + d];

				for (int l = 0; l < PANEL; l++)
					acc[r][l] += xv * col[l];
			}
		}
		for (int r = 0; r < rows; r++)
		{
			for (int l = 0; l < PANEL; l++)
			{
				float		v = acc[r][l] * scale[p * PANEL + l] + bias[p * PANEL + l];

				if (v < bestv[r])
				{
					bestv[r] = v;
					besti[r] = base + p * PANEL + l;
				}
			}
		}
	}
}

/*
 * small_scalar - assign_small for the scalar path: the same sums, in the
 * same order, as panels_scalar.
 */
static void
small_scalar(const float *x, const float *centroids, int k, int dim,
			 VsMetric metric, const float *norms, int32_t *out)
{
	float		best = INFINITY;
	int32_t		besti = 0;

	for (int j = 0; j < k; j++)
	{
		const float *c = centroids + (size_t) j * dim;
		float		acc = 0.0f;
		float		b,
					s,
					v;

		for (int d = 0; d < dim; d++)
			acc += x[d] * c[d];
		VsKmeansRankTransform(metric, metric == VS_METRIC_IP ? 0.0f : norms[j], &b, &s);
		v = acc * s + b;
		if (v < best)
		{
			best = v;
			besti = j;
		}
	}
	*out = besti;
}

#ifdef VS_HAVE_X86_SIMD

#define VS_AVX2 __attribute__((target("avx2,fma")))
#define VS_AVX512 __attribute__((target("avx512f")))
#define VS_INLINE __attribute__((always_inline)) inline
/* unroll the loops over rows, so that the accumulators are registers */
#define VS_UNROLL _Pragma("GCC unroll 8")

/*
 * reduce_lanes - fold per-lane minima (value, index) into the row's
 * running minimum: lowest value, then lowest index among equal values.
 * The chunk's indices are all above the earlier ones, so a strict
 * comparison against the running minimum keeps ties at the lower index.
 */
static inline void
reduce_lanes(const float *v, const int32_t *idx, int lanes,
			 float *bestv, int32_t *besti)
{
	float		bv = INFINITY;
	int32_t		bi = INT32_MAX;

	for (int l = 0; l < lanes; l++)
	{
		if (v[l] < bv || (v[l] == bv && idx[l] < bi))
		{
			bv = v[l];
			bi = idx[l];
		}
	}
	if (bv < *bestv)
	{
		*bestv = bv;
		*besti = bi;
	}
}

/*
 * panels_avx512 - the AVX-512 micro-kernel, "rows" (a constant after
 * inlining) vectors against npanels panels, two panels (32 centroids) a
 * step: 2 * rows accumulators, 2 panel loads and "rows" broadcasts per
 * dimension.  Lane minima live across panels and are reduced once.
 */
VS_AVX512 static VS_INLINE void
panels_avx512(const float *x, int dim, const int rows, const float *pack,
			  int npanels, const float *bias, const float *scale,
			  int32_t base, float *bestv, int32_t *besti)
{
	const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7,
										   8, 9, 10, 11, 12, 13, 14, 15);
	const size_t pstride = (size_t) dim * PANEL;
	__m512		bv[ROWS_AVX512];
	__m512i		bi[ROWS_AVX512];
	int			p = 0;

	VS_UNROLL
	for (int r = 0; r < rows; r++)
	{
		bv[r] = _mm512_set1_ps(INFINITY);
		bi[r] = _mm512_setzero_si512();
	}

	for (; p + 2 <= npanels; p += 2)
	{
		const float *p0 = pack + (size_t) p * pstride;
		const float *p1 = p0 + pstride;
		__m512		a0[ROWS_AVX512],
					a1[ROWS_AVX512];
		__m512		s0,
					s1,
					b0,
					b1;
		__m512i		i0,
					i1;

		VS_UNROLL
		for (int r = 0; r < rows; r++)
		{
			a0[r] = _mm512_setzero_ps();
			a1[r] = _mm512_setzero_ps();
		}
		for (int d = 0; d < dim; d++)
		{
			__m512		c0 = _mm512_load_ps(p0 + (size_t) d * PANEL);
			__m512		c1 = _mm512_load_ps(p1 + (size_t) d * PANEL);

			VS_UNROLL
			for (int r = 0; r < rows; r++)
			{
				__m512		xv = _mm512_set1_ps(x[(size_t) r * dim + d]);

				a0[r] = _mm512_fmadd_ps(xv, c0, a0[r]);
				a1[r] = _mm512_fmadd_ps(xv, c1, a1[r]);
			}
		}
		s0 = _mm512_loadu_ps(scale + p * PANEL);
		s1 = _mm512_loadu_ps(scale + p * PANEL + PANEL);
		b0 = _mm512_loadu_ps(bias + p * PANEL);
		b1 = _mm512_loadu_ps(bias + p * PANEL + PANEL);
		i0 = _mm512_add_epi32(_mm512_set1_epi32(base + p * PANEL), iota);
		i1 = _mm512_add_epi32(_mm512_set1_epi32(base + p * PANEL + PANEL), iota);
		VS_UNROLL
		for (int r = 0; r < rows; r++)
		{
			/* lower panel first: on a tie it keeps the lower index */
			__m512		v0 = _mm512_fmadd_ps(a0[r], s0, b0);
			__m512		v1 = _mm512_fmadd_ps(a1[r], s1, b1);
			__mmask16	m0 = _mm512_cmp_ps_mask(v0, bv[r], _CMP_LT_OQ);
			__mmask16	m1;

			bv[r] = _mm512_mask_mov_ps(bv[r], m0, v0);
			bi[r] = _mm512_mask_mov_epi32(bi[r], m0, i0);
			m1 = _mm512_cmp_ps_mask(v1, bv[r], _CMP_LT_OQ);
			bv[r] = _mm512_mask_mov_ps(bv[r], m1, v1);
			bi[r] = _mm512_mask_mov_epi32(bi[r], m1, i1);
		}
	}

	if (p < npanels)
	{
		/* an odd panel at the end */
		const float *p0 = pack + (size_t) p * pstride;
		__m512		a0[ROWS_AVX512];
		__m512		s0 = _mm512_loadu_ps(scale + p * PANEL);
		__m512		b0 = _mm512_loadu_ps(bias + p * PANEL);
		__m512i		i0 = _mm512_add_epi32(_mm512_set1_epi32(base + p * PANEL), iota);

		VS_UNROLL
		for (int r = 0; r < rows; r++)
			a0[r] = _mm512_setzero_ps();
		for (int d = 0; d < dim; d++)
		{
			__m512		c0 = _mm512_load_ps(p0 + (size_t) d * PANEL);

			VS_UNROLL
			for (int r = 0; r < rows; r++)
				a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[(size_t) r * dim + d]),
										c0, a0[r]);
		}
		VS_UNROLL
		for (int r = 0; r < rows; r++)
		{
			__m512		v0 = _mm512_fmadd_ps(a0[r], s0, b0);
			__mmask16	m0 = _mm512_cmp_ps_mask(v0, bv[r], _CMP_LT_OQ);

			bv[r] = _mm512_mask_mov_ps(bv[r], m0, v0);
			bi[r] = _mm512_mask_mov_epi32(bi[r], m0, i0);
		}
	}

	VS_UNROLL
	for (int r = 0; r < rows; r++)
	{
		float		v[16];
		int32_t		idx[16];

		_mm512_storeu_ps(v, bv[r]);
		_mm512_storeu_si512((void *) idx, bi[r]);
		reduce_lanes(v, idx, 16, &bestv[r], &besti[r]);
	}
}

/*
 * panels_avx512_rows - panels_avx512 with "rows" made a compile-time
 * constant, so the accumulators stay in registers.
 */
VS_AVX512 static void
panels_avx512_rows(const float *x, int dim, int rows, const float *pack,
				   int npanels, const float *bias, const float *scale,
				   int32_t base, float *bestv, int32_t *besti)
{
	switch (rows)
	{
#define CASE(R) case R: panels_avx512(x, dim, R, pack, npanels, bias, scale, base, bestv, besti); break
			CASE(1);
			CASE(2);
			CASE(3);
			CASE(4);
			CASE(5);
			CASE(6);
			CASE(7);
		default:
			CASE(8);
#undef CASE
	}
}

/*
 * small_avx512 - assign_small for AVX-512: 16 centroids at a time, their
 * d-th elements gathered (masked for the last group), one FMA per
 * dimension, exactly like panels_avx512.
 */
VS_AVX512 static void
small_avx512(const float *x, const float *centroids, int k, int dim,
			 VsMetric metric, const float *norms, int32_t *out)
{
	const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7,
										   8, 9, 10, 11, 12, 13, 14, 15);
	const __m512i vindex = _mm512_mullo_epi32(iota, _mm512_set1_epi32(dim));
	__m512		bv = _mm512_set1_ps(INFINITY);
	__m512i		bi = _mm512_setzero_si512();
	float		v[16];
	int32_t		idx[16];
	float		best = INFINITY;

	for (int j0 = 0; j0 < k; j0 += 16)
	{
		int			count = (k - j0 < 16) ? k - j0 : 16;
		__mmask16	mask = (__mmask16) ((1u << count) - 1u);
		const float *c = centroids + (size_t) j0 * dim;
		__m512		acc = _mm512_setzero_ps();
		float		bb[16],
					ss[16];
		__m512		val;
		__mmask16	m;

		for (int d = 0; d < dim; d++)
		{
			__m512		cv = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask,
													  vindex, c + d, 4);

			acc = _mm512_fmadd_ps(_mm512_set1_ps(x[d]), cv, acc);
		}
		for (int l = 0; l < 16; l++)
		{
			if (l < count)
				VsKmeansRankTransform(metric, metric == VS_METRIC_IP ? 0.0f : norms[j0 + l],
						   &bb[l], &ss[l]);
			else
			{
				bb[l] = NEVER;
				ss[l] = 0.0f;
			}
		}
		val = _mm512_fmadd_ps(acc, _mm512_loadu_ps(ss), _mm512_loadu_ps(bb));
		m = _mm512_cmp_ps_mask(val, bv, _CMP_LT_OQ);
		bv = _mm512_mask_mov_ps(bv, m, val);
		bi = _mm512_mask_mov_epi32(bi, m,
								   _mm512_add_epi32(_mm512_set1_epi32(j0), iota));
	}
	_mm512_storeu_ps(v, bv);
	_mm512_storeu_si512((void *) idx, bi);
	*out = 0;
	reduce_lanes(v, idx, 16, &best, out);
}

/*
 * panels_avx2 - the AVX2 micro-kernel: "rows" vectors against one panel
 * (two 8-lane registers) a step, 2 * rows accumulators (16 ymm registers
 * in all at 6 rows).
 */
VS_AVX2 static VS_INLINE void
panels_avx2(const float *x, int dim, const int rows, const float *pack,
			int npanels, const float *bias, const float *scale,
			int32_t base, float *bestv, int32_t *besti)
{
	const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	const size_t pstride = (size_t) dim * PANEL;
	__m256		bv[ROWS_AVX2][2];
	__m256i		bi[ROWS_AVX2][2];

	VS_UNROLL
	for (int r = 0; r < rows; r++)
	{
		bv[r][0] = bv[r][1] = _mm256_set1_ps(INFINITY);
		bi[r][0] = bi[r][1] = _mm256_setzero_si256();
	}

	for (int p = 0; p < npanels; p++)
	{
		const float *p0 = pack + (size_t) p * pstride;
		__m256		a0[ROWS_AVX2],
					a1[ROWS_AVX2];
		__m256		s0 = _mm256_loadu_ps(scale + p * PANEL);
		__m256		s1 = _mm256_loadu_ps(scale + p * PANEL + 8);
		__m256		b0 = _mm256_loadu_ps(bias + p * PANEL);
		__m256		b1 = _mm256_loadu_ps(bias + p * PANEL + 8);
		__m256i		i0 = _mm256_add_epi32(_mm256_set1_epi32(base + p * PANEL), iota);
		__m256i		i1 = _mm256_add_epi32(_mm256_set1_epi32(base + p * PANEL + 8), iota);

		VS_UNROLL
		for (int r = 0; r < rows; r++)
		{
			a0[r] = _mm256_setzero_ps();
			a1[r] = _mm256_setzero_ps();
		}
		for (int d = 0; d < dim; d++)
		{
			__m256		c0 = _mm256_load_ps(p0 + (size_t) d * PANEL);
			__m256		c1 = _mm256_load_ps(p0 + (size_t) d * PANEL + 8);

			VS_UNROLL
			for (int r = 0; r < rows; r++)
			{
				__m256		xv = _mm256_broadcast_ss(x + (size_t) r * dim + d);

				a0[r] = _mm256_fmadd_ps(xv, c0, a0[r]);
				a1[r] = _mm256_fmadd_ps(xv, c1, a1[r]);
			}
		}
		VS_UNROLL
		for (int r = 0; r < rows; r++)
		{
			__m256		v0 = _mm256_fmadd_ps(a0[r], s0, b0);
			__m256		v1 = _mm256_fmadd_ps(a1[r], s1, b1);
			__m256		m0 = _mm256_cmp_ps(v0, bv[r][0], _CMP_LT_OQ);
			__m256		m1 = _mm256_cmp_ps(v1, bv[r][1], _CMP_LT_OQ);

			/* the two halves track different lanes: no ordering issue */
			bv[r][0] = _mm256_blendv_ps(bv[r][0], v0, m0);
			bi[r][0] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi[r][0]),
															_mm256_castsi256_ps(i0), m0));
			bv[r][1] = _mm256_blendv_ps(bv[r][1], v1, m1);
			bi[r][1] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi[r][1]),
															_mm256_castsi256_ps(i1), m1));
		}
	}

	VS_UNROLL
	for (int r = 0; r < rows; r++)
	{
		float		v[16];
		int32_t		idx[16];

		_mm256_storeu_ps(v, bv[r][0]);
		_mm256_storeu_ps(v + 8, bv[r][1]);
		_mm256_storeu_si256((__m256i *) idx, bi[r][0]);
		_mm256_storeu_si256((__m256i *) (idx + 8), bi[r][1]);
		reduce_lanes(v, idx, 16, &bestv[r], &besti[r]);
	}
}

/*
 * panels_avx2_rows - panels_avx2 with a constant row count.
 */
VS_AVX2 static void
panels_avx2_rows(const float *x, int dim, int rows, const float *pack,
				 int npanels, const float *bias, const float *scale,
				 int32_t base, float *bestv, int32_t *besti)
{
	switch (rows)
	{
#define CASE(R) case R: panels_avx2(x, dim, R, pack, npanels, bias, scale, base, bestv, besti); break
			CASE(1);
			CASE(2);
			CASE(3);
			CASE(4);
			CASE(5);
		default:
			CASE(6);
#undef CASE
	}
}

/*
 * small_avx2 - assign_small for AVX2: 8 centroids at a time, gathered.
 */
VS_AVX2 static void
small_avx2(const float *x, const float *centroids, int k, int dim,
		   VsMetric metric, const float *norms, int32_t *out)
{
	const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	const __m256i vindex = _mm256_mullo_epi32(iota, _mm256_set1_epi32(dim));
	__m256		bv = _mm256_set1_ps(INFINITY);
	__m256i		bi = _mm256_setzero_si256();
	float		v[8];
	int32_t		idx[8];
	float		best = INFINITY;

	for (int j0 = 0; j0 < k; j0 += 8)
	{
		int			count = (k - j0 < 8) ? k - j0 : 8;
		__m256		mask = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(count), iota));
		const float *c = centroids + (size_t) j0 * dim;
		__m256		acc = _mm256_setzero_ps();
		float		bb[8],
					ss[8];
		__m256		val,
					m;

		for (int d = 0; d < dim; d++)
		{
			__m256		cv = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), c + d,
													  vindex, mask, 4);

			acc = _mm256_fmadd_ps(_mm256_set1_ps(x[d]), cv, acc);
		}
		for (int l = 0; l < 8; l++)
		{
			if (l < count)
				VsKmeansRankTransform(metric, metric == VS_METRIC_IP ? 0.0f : norms[j0 + l],
						   &bb[l], &ss[l]);
			else
			{
				bb[l] = NEVER;
				ss[l] = 0.0f;
			}
		}
		val = _mm256_fmadd_ps(acc, _mm256_loadu_ps(ss), _mm256_loadu_ps(bb));
		m = _mm256_cmp_ps(val, bv, _CMP_LT_OQ);
		bv = _mm256_blendv_ps(bv, val, m);
		bi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi),
												  _mm256_castsi256_ps(_mm256_add_epi32(_mm256_set1_epi32(j0), iota)),
												  m));
	}
	_mm256_storeu_ps(v, bv);
	_mm256_storeu_si256((__m256i *) idx, bi);
	*out = 0;
	reduce_lanes(v, idx, 8, &best, out);
}
#endif							/* VS_HAVE_X86_SIMD */
