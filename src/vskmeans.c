/*-------------------------------------------------------------------------
 *
 * vskmeans.c
 *	  IVF training (k-means): seeding and Lloyd rounds.
 *
 * Owns k-means++ seeding and Lloyd's iterations with empty-cluster
 * re-seeding, the training's memory bound, the inertia, and the hooks
 * helpers both files use.  The blocked nearest-centroid search that both
 * training and the index (build, insert, query routing) use is in
 * vskmeans_assign.c, whose header describes it.  Pure C99: no postgres.h.
 * Memory comes from hooks->alloc and interrupts are polled through
 * hooks->check_interrupts (vskmeans.h).
 *
 * Training.  k-means++ seeding (D^2 sampling, splitmix64 PRNG), then Lloyd
 * rounds until at most opt->tolerance of the samples change cluster or
 * opt->max_iterations.  Centroid means are summed in double, members in
 * sample order, so a run is bit-for-bit reproducible on a given kernel
 * path (the seeding's distances use VsKernels.l2_squared, whose rounding
 * differs between paths, so different paths may seed differently).  On
 * 50,000 SIFT vectors at k = 1000: 1.8-2.6 s with AVX-512 (15 rounds; 10
 * rounds end 0.5% above the inertia of 40, 15 rounds 0.2%).
 *
 * Cheaper seeding.  Full k-means++ costs n * k distances.  We run it on a
 * random subsample of m = max(4096, 8k) samples (all if fewer), skipping
 * a distance whenever the triangle inequality shows the new centre cannot
 * be closer (||c_new - c_near||^2 >= 4 D(x)).  Lloyd then runs on all n.
 * Measured (k = 100 and 1000 on SIFT 50k, GloVe 100k, Fashion-MNIST 20k
 * and a synthetic set): the inertia after Lloyd is within -1.1% .. +0.14%
 * of full k-means++ seeding (the seeds alone within 3.2%), while seeding at
 * k = 1000 takes 0.14-0.6 s instead of 0.8-2.0 s.  If the subsample holds
 * fewer than k distinct points, the seeding goes on over all samples.
 *
 * Metrics.
 *	- L2: Euclidean k-means, centroid = mean.
 *	- COSINE: spherical k-means on a normalised copy of the samples; zero
 *	  vectors are left out (they have no direction); centroids are unit
 *	  length after every update.  Assignment ranks by cosine.
 *	- IP: by default, Euclidean k-means on the raw vectors; rows go to
 *	  their nearest centroid by L2 (VsKmeansRowMetric) and queries rank the
 *	  lists by inner product with the centroids.  Routing rows by inner
 *	  product with unnormalised centroids degenerates as feared: the
 *	  large-norm centroids take everything (GloVe with log-normal norms,
 *	  k = 316: 188 lists empty, the largest 73x the mean; Fashion-MNIST:
 *	  119 of 141 empty).  Measured as recall@10 of the maximum inner
 *	  product within a budget of 5% of the rows scanned (bench section 4):
 *	  L2 rows 0.969 / 0.872 / 0.914 on GloVe-lognormal / Fashion-MNIST /
 *	  SIFT, against 0.452 / 0.268 / 0.920 for spherical training (unit
 *	  centroids, rows by inner product, pgvector's choice); Euclidean
 *	  centroids with rows by inner product reach 0.380 / 0.491 / 0.897 and
 *	  Lloyd by inner product 0.316 / 0.753 / 0.884, the first two of each
 *	  while scanning 13-52% of the rows, as their first list alone is that
 *	  large.
 *	  Spherical only matches it when norms hardly vary (SIFT).  The other
 *	  trainings remain selectable (opt->ip_training).
 *
 * Empty clusters.  After each update, a centroid with no members takes
 * the member farthest from its centroid in the largest cluster (ties to
 * the lowest index); the next round splits that cluster.  A centroid is
 * dropped (and fewer returned) only when no cluster has two distinct
 * members, i.e. the samples have fewer distinct points than centroids.
 *
 * IDENTIFICATION
 *	  src/vskmeans.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vsdistance.h"
#include "vskmeans_internal.h"

/* deterministic PRNG state (splitmix64) */
typedef struct Rng
{
	uint64_t	state;
} Rng;

/* a training run's working state */
typedef struct Trainer
{
	const VsKmeansHooks *hooks;
	const float *x;				/* the samples trained on */
	int			n;
	int			dim;
	VsMetric	assign_metric;	/* L2, IP or COSINE: how Lloyd assigns */
	int			spherical;		/* renormalise centroids after updates */
	VsKmeansStats *stats;
	Rng			rng;
} Trainer;

static void rng_init(Rng *rng, uint64_t seed);
static uint64_t rng_next(Rng *rng);
static double rng_unit(Rng *rng);
static uint64_t rng_below(Rng *rng, uint64_t bound);

static void normalise_into(const float *src, int dim, float *dst);
static int	normalised_copy(const VsKmeansHooks *hooks, const float *samples, int n,
							int dim, float **copy);
static void train_setup(Trainer *tr, const float *samples, int n, int dim,
						VsMetric metric, const VsKmeansOptions *opt,
						const VsKmeansHooks *hooks, VsKmeansStats *stats,
						float **copy);
static int	seed_plus_plus(Trainer *tr, int k, int sample, float *centroids);
static int	seed_continue(Trainer *tr, const int32_t *idx, int m, float *dist,
						  int32_t *near, int have, int k, float *centroids);
static int	lloyd(Trainer *tr, int k, const VsKmeansOptions *opt, float *centroids);
static int	update_centroids(Trainer *tr, int k, const int32_t *asg,
							 const float *dist, int32_t *order, int32_t *start,
							 double *sum, float *centroids, int32_t *members);
static int	seed_sample_size(int n, int k, const VsKmeansOptions *opt);


/*
 * VsKmeansOptionsInit - fill *opt with the defaults.
 *
 * max_iterations VS_KMEANS_DEFAULT_ITERATIONS, tolerance 0.001 (stop when
 * fewer than 0.1% of the samples change cluster), seed 0, the default
 * seeding subsample and IP training.
 */
void
VsKmeansOptionsInit(VsKmeansOptions *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->max_iterations = VS_KMEANS_DEFAULT_ITERATIONS;
	opt->tolerance = 0.001;
	opt->seed = 0;
	opt->seed_sample = 0;
	opt->ip_training = VS_KMEANS_IP_DEFAULT;
}

/*
 * VsKmeansTrain - train up to k centroids from n samples.
 *
 * samples: n * dim floats, row-major, not modified.  centroids: room for
 * k * dim floats; the first r rows are written, r being the return value.
 * opt may be NULL (defaults); stats may be NULL.
 *
 * Returns r, the number of centroids produced: k, unless the samples have
 * fewer than k distinct points (bitwise, after normalisation for cosine
 * and spherical IP training), in which case r is that number and the
 * centroids are those points, each once.  Returns 0 when n == 0 or, for
 * cosine and spherical IP training, when every sample is the zero vector:
 * the caller then has no data to train on and must choose its own
 * centroids.  Returns 0 as well for k < 1 or dim < 1.
 *
 * Requires 1 <= dim, 1 <= k <= VS_KMEANS_MAX_K, n >= 0 (the caller checks;
 * this function does not report errors).  All memory comes from
 * hooks->alloc and is freed before a normal return; about
 * VsKmeansTrainMemory() bytes at the peak.
 */
int
VsKmeansTrain(const float *samples, int n, int dim, int k, VsMetric metric,
			  const VsKmeansOptions *opt, const VsKmeansHooks *hooks,
			  float *centroids, VsKmeansStats *stats)
{
	VsKmeansOptions defaults;
	VsKmeansStats local_stats;
	Trainer		tr;
	float	   *copy = NULL;
	int			r;

	if (opt == NULL)
	{
		VsKmeansOptionsInit(&defaults);
		opt = &defaults;
	}
	if (stats == NULL)
		stats = &local_stats;
	memset(stats, 0, sizeof(*stats));

	if (k <= 0 || dim <= 0)
		return 0;
	train_setup(&tr, samples, n, dim, metric, opt, hooks, stats, &copy);
	if (tr.n == 0)
	{
		if (copy)
			hooks->free(copy);
		return 0;
	}

	r = seed_plus_plus(&tr, k, seed_sample_size(tr.n, k, opt), centroids);
	r = lloyd(&tr, r, opt, centroids);

	if (copy)
		hooks->free(copy);
	stats->centroids = r;
	return r;
}

/*
 * VsKmeansRefine - run Lloyd rounds from the k centroids given.
 *
 * Like VsKmeansTrain without the seeding: "centroids" holds k starting
 * centroids on entry and the result on return (normalised first for
 * cosine and spherical IP training; a zero one then starts empty and is
 * re-seeded).  For rebalancing an existing index, and for tests.  Returns
 * the number of centroids kept, k unless some had to be dropped (see the
 * file header); 0 if the samples are empty (centroids untouched).
 */
int
VsKmeansRefine(const float *samples, int n, int dim, int k, VsMetric metric,
			   const VsKmeansOptions *opt, const VsKmeansHooks *hooks,
			   float *centroids, VsKmeansStats *stats)
{
	VsKmeansOptions defaults;
	VsKmeansStats local_stats;
	Trainer		tr;
	float	   *copy = NULL;
	int			r;

	if (opt == NULL)
	{
		VsKmeansOptionsInit(&defaults);
		opt = &defaults;
	}
	if (stats == NULL)
		stats = &local_stats;
	memset(stats, 0, sizeof(*stats));

	if (k <= 0 || dim <= 0)
		return 0;
	train_setup(&tr, samples, n, dim, metric, opt, hooks, stats, &copy);
	if (tr.n == 0)
	{
		if (copy)
			hooks->free(copy);
		return 0;
	}
	if (tr.spherical)
	{
		for (int j = 0; j < k; j++)
			normalise_into(centroids + (size_t) j * dim, dim,
						   centroids + (size_t) j * dim);
	}
	r = lloyd(&tr, k, opt, centroids);

	if (copy)
		hooks->free(copy);
	stats->centroids = r;
	return r;
}

/*
 * VsKmeansInertia - sum over the samples of the distance to the nearest
 * centroid (L2: squared distance; IP: negative inner product; COSINE:
 * 1 - cos, 1 for zero vectors), summed in double in sample order.
 */
double
VsKmeansInertia(const float *samples, int n, int dim, const float *centroids,
				int k, VsMetric metric, const VsKmeansHooks *hooks)
{
	float	   *norms;
	int32_t    *asg;
	float	   *dist;
	double		total = 0.0;

	if (n <= 0 || k <= 0)
		return 0.0;
	norms = VsKmeansAllocArray(hooks, k, sizeof(float));
	asg = VsKmeansAllocArray(hooks, BLOCK_ROWS, sizeof(int32_t));
	dist = VsKmeansAllocArray(hooks, BLOCK_ROWS, sizeof(float));
	VsKmeansCentroidNorms(centroids, k, dim, norms);

	/* a block at a time, so the scratch stays small for any n */
	for (int i0 = 0; i0 < n; i0 += BLOCK_ROWS)
	{
		int			rows = (n - i0 < BLOCK_ROWS) ? n - i0 : BLOCK_ROWS;

		VsKmeansAssign(centroids, norms, k, dim, metric,
					   samples + (size_t) i0 * dim, rows, asg, dist, hooks);
		for (int i = 0; i < rows; i++)
			total += dist[i];
	}
	hooks->free(dist);
	hooks->free(asg);
	hooks->free(norms);
	return total;
}

/*
 * VsKmeansRowMetric - the metric by which rows (index build, insert) pick
 * their list, for an index of metric "metric" whose centroids were
 * trained with "opt" (NULL: the defaults).
 *
 * L2 and COSINE: the metric itself.  IP: L2 with the default Euclidean
 * training (rows go to their nearest centroid, so lists stay compact and
 * the inner product of a query with a centroid predicts the best inner
 * product in the list; routing rows by inner product instead empties
 * most lists, see the file header), IP with spherical or mean training.
 * Queries always rank the lists by the index's own metric.
 */
VsMetric
VsKmeansRowMetric(VsMetric metric, const VsKmeansOptions *opt)
{
	if (metric != VS_METRIC_IP)
		return metric;
	if (opt == NULL || opt->ip_training == VS_KMEANS_IP_DEFAULT ||
		opt->ip_training == VS_KMEANS_IP_EUCLIDEAN)
		return VS_METRIC_L2;
	return VS_METRIC_IP;
}

/*
 * VsKmeansTrainMemory - an upper bound on the bytes VsKmeansTrain
 * allocates at its peak (for sizing the sample by maintenance_work_mem).
 * Not counted: the samples and the centroids, which the caller owns.
 */
size_t
VsKmeansTrainMemory(int n, int dim, int k, VsMetric metric,
					const VsKmeansOptions *opt)
{
	VsKmeansOptions defaults;
	size_t		copy = 0,
				seed,
				lloyd_bytes,
				assign_bytes,
				kpad;
	int			spherical;
	int			m;

	if (opt == NULL)
	{
		VsKmeansOptionsInit(&defaults);
		opt = &defaults;
	}
	spherical = (metric == VS_METRIC_COSINE ||
				 (metric == VS_METRIC_IP &&
				  opt->ip_training == VS_KMEANS_IP_SPHERICAL));
	if (spherical)
		copy = (size_t) n * dim * sizeof(float) + 64;
	kpad = ((size_t) k + 31) / 32 * 32;
	m = seed_sample_size(n, k, opt);

	/* plan_init (inside every VsKmeansAssign of n >= SMALL_ROWS rows) */
	assign_bytes = 2 * kpad * sizeof(float) +
		VsKmeansChunkSize(k, dim) * dim * sizeof(float) + 64 +
		BLOCK_ROWS * sizeof(float);
	/*
	 * Seeding: index list, distances and nearest centroid per subsampled
	 * point, distances between centroids; or, when the seeding has to go
	 * on over all samples (rare), distances and nearest for all of them
	 * while an assignment runs.
	 */
	seed = (size_t) m * (sizeof(int32_t) + sizeof(float) + sizeof(int32_t)) +
		(size_t) k * sizeof(float);
	if (seed < (size_t) n * (sizeof(float) + sizeof(int32_t)) + k * sizeof(float) + assign_bytes)
		seed = (size_t) n * (sizeof(float) + sizeof(int32_t)) + k * sizeof(float) + assign_bytes;
	/* Lloyd: two assignments, order, distances; per-centroid arrays */
	lloyd_bytes = (size_t) n * (3 * sizeof(int32_t) + sizeof(float)) +
		(size_t) (k + 1) * sizeof(int32_t) +
		(size_t) k * (sizeof(float) + sizeof(int32_t)) +
		(size_t) dim * sizeof(double) + assign_bytes;
	return copy + (seed > lloyd_bytes ? seed : lloyd_bytes);
}


/*
 * rng_init - seed splitmix64.
 */
static void
rng_init(Rng *rng, uint64_t seed)
{
	rng->state = seed ^ 0x5DEECE66Dull;
}

/*
 * rng_next - next 64 random bits (splitmix64).
 */
static uint64_t
rng_next(Rng *rng)
{
	uint64_t	z = (rng->state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/*
 * rng_unit - uniform double in [0, 1), 53 random bits.
 */
static double
rng_unit(Rng *rng)
{
	return (double) (rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * rng_below - uniform integer in [0, bound), 1 <= bound <= 2^31: 53
 * random bits scaled, so the bias is below 2^-22 (irrelevant here).
 */
static uint64_t
rng_below(Rng *rng, uint64_t bound)
{
	uint64_t	r = (uint64_t) (rng_unit(rng) * (double) bound);

	return (r < bound) ? r : bound - 1;
}

/*
 * VsKmeansAllocArray - hooks->alloc of count * size bytes, computed in size_t
 * (count * size can pass 2^31 for a large sample).
 */
void *
VsKmeansAllocArray(const VsKmeansHooks *hooks, size_t count, size_t size)
{
	size_t		bytes = count * size;

	/* a zero-byte request is legal but useless; keep pointers valid */
	return hooks->alloc(bytes > 0 ? bytes : 1);
}

/*
 * VsKmeansPollInterrupts - let the server abort us (may longjmp).
 */
void
VsKmeansPollInterrupts(const VsKmeansHooks *hooks)
{
	if (hooks->check_interrupts)
		hooks->check_interrupts();
}

/*
 * normalise_into - dst = src / ||src|| (norm summed in double, in order);
 * a zero vector stays zero.  src and dst may be the same.
 */
static void
normalise_into(const float *src, int dim, float *dst)
{
	double		s = 0.0;
	double		inv;

	for (int d = 0; d < dim; d++)
		s += (double) src[d] * (double) src[d];
	if (s <= 0.0)
	{
		for (int d = 0; d < dim; d++)
			dst[d] = 0.0f;
		return;
	}
	inv = 1.0 / sqrt(s);
	for (int d = 0; d < dim; d++)
		dst[d] = (float) (src[d] * inv);
}

/*
 * normalised_copy - the non-zero samples, normalised, in sample order.
 *
 * *copy is allocated with hooks->alloc (n rows; NULL when no sample is
 * non-zero).  Returns how many rows it holds.
 */
static int
normalised_copy(const VsKmeansHooks *hooks, const float *samples, int n,
				int dim, float **copy)
{
	float	   *dst = VsKmeansAllocArray(hooks, (size_t) n * dim, sizeof(float));
	int			kept = 0;

	for (int i = 0; i < n; i++)
	{
		const float *src = samples + (size_t) i * dim;
		float	   *row = dst + (size_t) kept * dim;
		int			nonzero = 0;

		for (int d = 0; d < dim && !nonzero; d++)
			nonzero = (src[d] != 0.0f);
		if (!nonzero)
			continue;			/* no direction: it cannot pull a centroid */
		normalise_into(src, dim, row);
		kept++;
		if ((i & 4095) == 4095)
			VsKmeansPollInterrupts(hooks);
	}
	if (kept == 0)
	{
		hooks->free(dst);
		dst = NULL;
	}
	*copy = dst;
	return kept;
}

/*
 * train_setup - decide how a metric trains and prepare the samples.
 *
 * Fills *tr.  For spherical training (COSINE, and IP unless asked
 * otherwise) *copy receives the normalised copy (caller frees it) and tr
 * trains on it; tr->n is then the number of non-zero samples.
 */
static void
train_setup(Trainer *tr, const float *samples, int n, int dim,
			VsMetric metric, const VsKmeansOptions *opt,
			const VsKmeansHooks *hooks, VsKmeansStats *stats, float **copy)
{
	VsKmeansIpTraining ipt = opt->ip_training;

	memset(tr, 0, sizeof(*tr));
	tr->hooks = hooks;
	tr->x = samples;
	tr->n = n > 0 ? n : 0;
	tr->dim = dim;
	tr->stats = stats;
	rng_init(&tr->rng, opt->seed);
	*copy = NULL;

	if (ipt == VS_KMEANS_IP_DEFAULT)
		ipt = VS_KMEANS_IP_EUCLIDEAN;

	if (metric == VS_METRIC_COSINE ||
		(metric == VS_METRIC_IP && ipt == VS_KMEANS_IP_SPHERICAL))
	{
		tr->assign_metric = VS_METRIC_COSINE;
		tr->spherical = 1;
		if (tr->n > 0)
			tr->n = normalised_copy(hooks, samples, n, dim, copy);
		tr->x = *copy;
	}
	else if (metric == VS_METRIC_IP && ipt == VS_KMEANS_IP_MEAN)
		tr->assign_metric = VS_METRIC_IP;
	else
		tr->assign_metric = VS_METRIC_L2;
}

/*
 * seed_sample_size - how many samples k-means++ seeding looks at.
 */
static int
seed_sample_size(int n, int k, const VsKmeansOptions *opt)
{
	int64_t		m;

	if (opt->seed_sample > 0)
		m = opt->seed_sample;
	else
	{
		m = (int64_t) VS_KMEANS_SEED_PER_CENTROID * k;
		if (m < VS_KMEANS_SEED_MIN_SAMPLE)
			m = VS_KMEANS_SEED_MIN_SAMPLE;
	}
	return (m < n) ? (int) m : n;
}

/*
 * seed_plus_plus - k-means++ seeding into centroids; returns the number
 * of seeds (k unless the samples have fewer distinct points).
 *
 * Runs on a random subsample of "sample" samples (Knuth's selection
 * sampling, so the indices come out sorted); if the subsample has fewer
 * than k distinct points but the whole set may have more, the seeding
 * goes on over all samples from the seeds found so far.
 */
static int
seed_plus_plus(Trainer *tr, int k, int sample, float *centroids)
{
	const VsKmeansHooks *hooks = tr->hooks;
	int			n = tr->n;
	int32_t    *idx = NULL;
	float	   *dist;
	int32_t    *near;
	int			have;

	if (sample < n)
	{
		int			chosen = 0;

		idx = VsKmeansAllocArray(hooks, sample, sizeof(int32_t));
		/* Algorithm S: take i with probability (still needed)/(left) */
		for (int i = 0; i < n && chosen < sample; i++)
		{
			if ((double) (n - i) * rng_unit(&tr->rng) < (double) (sample - chosen))
				idx[chosen++] = i;
		}
	}
	tr->stats->seed_sample = sample;

	dist = VsKmeansAllocArray(hooks, sample, sizeof(float));
	near = VsKmeansAllocArray(hooks, sample, sizeof(int32_t));
	have = seed_continue(tr, idx, sample, dist, near, 0, k, centroids);
	hooks->free(near);
	hooks->free(dist);
	if (idx)
		hooks->free(idx);

	if (have < k && sample < n)
	{
		/*
		 * The subsample ran out of distinct points.  Rare (heavy
		 * duplication), so the simple way: distances of all samples to the
		 * seeds so far, then D^2 sampling over all of them.
		 */
		float	   *norms = VsKmeansAllocArray(hooks, have, sizeof(float));

		dist = VsKmeansAllocArray(hooks, n, sizeof(float));
		near = VsKmeansAllocArray(hooks, n, sizeof(int32_t));
		VsKmeansCentroidNorms(centroids, have, tr->dim, norms);
		VsKmeansAssign(centroids, norms, have, tr->dim, VS_METRIC_L2, tr->x, n,
					   near, dist, hooks);
		hooks->free(norms);
		tr->stats->seed_sample = n;
		have = seed_continue(tr, NULL, n, dist, near, have, k, centroids);
		hooks->free(near);
		hooks->free(dist);
	}
	return have;
}

/*
 * seed_continue - D^2 sampling over m points (sample idx[i], or i when idx
 * is NULL) until k centroids or no point is left at a positive distance.
 *
 * With have == 0, picks the first centroid uniformly and initialises
 * dist/near; otherwise dist/near must hold each point's squared distance
 * to, and index of, its nearest centroid among the first "have".  Returns
 * the number of centroids now in "centroids".
 *
 * A new centre c can only come closer to point x than x's current
 * centre c' if ||c - c'|| < 2 ||x - c'|| (triangle inequality), so points
 * with ||c - c'||^2 >= 4 D(x) are skipped without a distance computation;
 * late in the seeding that is most of them.
 */
static int
seed_continue(Trainer *tr, const int32_t *idx, int m, float *dist,
			  int32_t *near, int have, int k, float *centroids)
{
	const VsKmeansHooks *hooks = tr->hooks;
	int			dim = tr->dim;
	float	   *cc;
	double		total = 0.0;

#define POINT(i) (tr->x + (size_t) (idx ? idx[i] : (i)) * dim)

	if (m <= 0)
		return have;
	if (have == 0)
	{
		int			first = (int) rng_below(&tr->rng, (uint64_t) m);

		memcpy(centroids, POINT(first), sizeof(float) * dim);
		for (int i = 0; i < m; i++)
		{
			dist[i] = VsKernels.l2_squared(POINT(i), centroids, dim);
			near[i] = 0;
			if ((i & 8191) == 8191)
				VsKmeansPollInterrupts(hooks);
		}
		have = 1;
	}
	for (int i = 0; i < m; i++)
		total += dist[i];

	cc = VsKmeansAllocArray(hooks, k, sizeof(float));
	while (have < k && total > 0.0)
	{
		double		target = rng_unit(&tr->rng) * total;
		double		cum = 0.0;
		int			pick = -1;
		float	   *c = centroids + (size_t) have * dim;

		/* the first point whose cumulative weight passes the target */
		for (int i = 0; i < m; i++)
		{
			if (dist[i] <= 0.0f)
				continue;
			pick = i;
			cum += dist[i];
			if (cum > target)
				break;
		}
		/* pick >= 0: total > 0 means some dist is positive */
		memcpy(c, POINT(pick), sizeof(float) * dim);

		for (int j = 0; j < have; j++)
			cc[j] = VsKernels.l2_squared(c, centroids + (size_t) j * dim, dim);

		total = 0.0;
		for (int i = 0; i < m; i++)
		{
			float		di = dist[i];

			/* at a centroid already, or provably not nearer to c */
			if (di > 0.0f && cc[near[i]] < 4.0f * di)
			{
				float		dnew = VsKernels.l2_squared(POINT(i), c, dim);

				if (dnew < di)
				{
					dist[i] = di = dnew;
					near[i] = have;
				}
			}
			total += di;
			/* the extension pass can cover millions of long vectors */
			if ((i & 8191) == 8191)
				VsKmeansPollInterrupts(hooks);
		}
		have++;
		VsKmeansPollInterrupts(hooks);
	}
	hooks->free(cc);
#undef POINT
	return have;
}

/*
 * lloyd - Lloyd rounds from the k centroids in "centroids"; returns how
 * many centroids are left (k unless some were dropped, see the file
 * header).  With max_iterations 0 the centroids are returned unchanged.
 */
static int
lloyd(Trainer *tr, int k, const VsKmeansOptions *opt, float *centroids)
{
	const VsKmeansHooks *hooks = tr->hooks;
	int			n = tr->n;
	int			dim = tr->dim;
	int			max_it = opt->max_iterations;
	int32_t    *asg,
			   *prev,
			   *order,
			   *start,
			   *members;
	float	   *dist,
			   *norms;
	double	   *sum;

	if (max_it <= 0 || k <= 0 || n <= 0)
		return k;

	asg = VsKmeansAllocArray(hooks, n, sizeof(int32_t));
	prev = VsKmeansAllocArray(hooks, n, sizeof(int32_t));
	order = VsKmeansAllocArray(hooks, n, sizeof(int32_t));
	dist = VsKmeansAllocArray(hooks, n, sizeof(float));
	start = VsKmeansAllocArray(hooks, (size_t) k + 1, sizeof(int32_t));
	members = VsKmeansAllocArray(hooks, k, sizeof(int32_t));
	norms = VsKmeansAllocArray(hooks, k, sizeof(float));
	sum = VsKmeansAllocArray(hooks, dim, sizeof(double));

	for (int it = 1; it <= max_it; it++)
	{
		int64_t		changed = 0;
		double		inertia = 0.0;
		int32_t    *tmp;

		VsKmeansCentroidNorms(centroids, k, dim, norms);
		VsKmeansAssign(centroids, norms, k, dim, tr->assign_metric, tr->x, n,
					   asg, dist, hooks);
		for (int i = 0; i < n; i++)
		{
			changed += (it == 1 || asg[i] != prev[i]);
			inertia += dist[i];
		}
		tr->stats->iterations = it;
		tr->stats->changed = changed;
		tr->stats->inertia = inertia;

		k = update_centroids(tr, k, asg, dist, order, start, sum, centroids,
							 members);

		if (hooks->progress)
			hooks->progress(hooks->progress_arg, it, max_it);
		VsKmeansPollInterrupts(hooks);
		if ((double) changed <= opt->tolerance * n)
			break;
		/* asg may have been edited by re-seeding; that is the new "prev" */
		tmp = prev;
		prev = asg;
		asg = tmp;
	}

	hooks->free(sum);
	hooks->free(norms);
	hooks->free(members);
	hooks->free(start);
	hooks->free(dist);
	hooks->free(order);
	hooks->free(prev);
	hooks->free(asg);
	return k;
}

/*
 * update_centroids - one Lloyd update: every centroid becomes the mean of
 * its members (renormalised if spherical), empty ones are re-seeded.
 *
 * asg/dist: this round's assignment; asg is edited to record re-seeded
 * points (and renumbered if centroids are dropped).  order, start, sum and
 * members are scratch: n, k + 1, dim and k entries.  Returns the new k.
 */
static int
update_centroids(Trainer *tr, int k, const int32_t *asg_in, const float *dist,
				 int32_t *order, int32_t *start, double *sum,
				 float *centroids, int32_t *members)
{
	int			n = tr->n;
	int			dim = tr->dim;
	int32_t    *asg = (int32_t *) asg_in;
	int			dropped = 0;

	/* counting sort of the samples by cluster, in sample order */
	memset(start, 0, sizeof(int32_t) * ((size_t) k + 1));
	for (int i = 0; i < n; i++)
		start[asg[i] + 1]++;
	for (int j = 0; j < k; j++)
		start[j + 1] += start[j];
	for (int j = 0; j < k; j++)
		members[j] = start[j];
	for (int i = 0; i < n; i++)
		order[members[asg[i]]++] = i;
	for (int j = 0; j < k; j++)
		members[j] = start[j + 1] - start[j];

	for (int j = 0; j < k; j++)
	{
		float	   *c = centroids + (size_t) j * dim;
		int			cnt = members[j];

		if (cnt == 0)
			continue;
		memset(sum, 0, sizeof(double) * dim);
		for (int t = start[j]; t < start[j + 1]; t++)
		{
			const float *x = tr->x + (size_t) order[t] * dim;

			for (int d = 0; d < dim; d++)
				sum[d] += x[d];
			if (((t - start[j]) & 8191) == 8191)
				VsKmeansPollInterrupts(tr->hooks);
		}
		if (tr->spherical && cnt == 1)
		{
			/* a unit sample already: renormalising would move its bits */
			memcpy(c, tr->x + (size_t) order[start[j]] * dim, sizeof(float) * dim);
		}
		else if (tr->spherical)
		{
			double		s = 0.0;

			for (int d = 0; d < dim; d++)
				s += sum[d] * sum[d];
			/* members that cancel out exactly: keep the old direction */
			if (s > 0.0)
			{
				double		inv = 1.0 / sqrt(s);

				for (int d = 0; d < dim; d++)
					c[d] = (float) (sum[d] * inv);
			}
		}
		else
		{
			for (int d = 0; d < dim; d++)
				c[d] = (float) (sum[d] / cnt);
		}
		if ((j & 255) == 255)
			VsKmeansPollInterrupts(tr->hooks);
	}

	/*
	 * Re-seed empty clusters from the largest cluster that can be split:
	 * its farthest member (by this round's distance, to the old centroid)
	 * that is not equal to its new mean.  "members" counts down as points
	 * move; a cluster found unsplittable gets -1 so it is not tried again.
	 */
	for (int j = 0; j < k; j++)
	{
		if (start[j + 1] != start[j])
			continue;			/* had members this round */
		for (;;)
		{
			int			big = -1;
			int			far = -1;

			for (int l = 0; l < k; l++)
			{
				if (members[l] > 1 && (big < 0 || members[l] > members[big]))
					big = l;
			}
			if (big < 0)
				break;
			for (int t = start[big]; t < start[big + 1]; t++)
			{
				int			i = order[t];

				if (asg[i] != big)
					continue;	/* already moved to another empty cluster */
				if (far < 0 || dist[i] > dist[far])
					far = i;
			}
			if (far >= 0 &&
				VsKernels.l2_squared(tr->x + (size_t) far * dim,
									 centroids + (size_t) big * dim, dim) == 0.0f)
			{
				float		fard = 0.0f;

				/*
				 * The farthest by the old distances is the new mean itself:
				 * rare, so just take the member farthest from the new mean.
				 */
				far = -1;
				for (int t = start[big]; t < start[big + 1]; t++)
				{
					int			i = order[t];
					float		d2;

					if (asg[i] != big)
						continue;
					d2 = VsKernels.l2_squared(tr->x + (size_t) i * dim,
											  centroids + (size_t) big * dim, dim);
					if (d2 > fard)
					{
						fard = d2;
						far = i;
					}
				}
			}
			if (far >= 0)
			{
				memcpy(centroids + (size_t) j * dim, tr->x + (size_t) far * dim,
					   sizeof(float) * dim);
				asg[far] = j;
				members[big]--;
				members[j] = 1;
				tr->stats->reseeded++;
				VsKmeansPollInterrupts(tr->hooks);
				break;
			}
			/* every member sits on the mean: all equal, cannot split */
			members[big] = -1;
		}
		if (members[j] == 0)
		{
			members[j] = -2;	/* no distinct point left: drop it */
			dropped++;
		}
	}

	if (dropped > 0)
	{
		int			live = 0;

		/* close the gaps, keeping the order; renumber the assignment */
		for (int j = 0; j < k; j++)
		{
			if (members[j] == -2)
				continue;
			if (live != j)
				memmove(centroids + (size_t) live * dim,
						centroids + (size_t) j * dim, sizeof(float) * dim);
			start[j] = live++;	/* start[] is free now: old -> new index */
		}
		for (int i = 0; i < n; i++)
			asg[i] = start[asg[i]];
		tr->stats->dropped += dropped;
		k = live;
	}
	return k;
}
