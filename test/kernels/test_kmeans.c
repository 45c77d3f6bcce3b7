/*-------------------------------------------------------------------------
 *
 * test_kmeans.c
 *	  Unit test: IVF training (k-means) and nearest-centroid assignment.
 *
 * Links src/vskmeans.c and src/vsdistance.c without the server (see the
 * Makefile target test/kernels/test_kmeans).  Each group of checks prints
 * one line, "ok - ..." or "FAIL - ..." with up to MAX_DETAILS reasons; a
 * group that cannot run (a path this CPU lacks, no real data) prints
 * "skip - ..." and is not counted.  The last line is "N passed, N failed";
 * the exit status is 1 on any failure.
 *
 * The groups:
 *	- assignment against a double-precision brute force, for every metric,
 *	  every kernel path and many (n, k, dim) shapes (dims 1..2000, several
 *	  centroid chunks, the one-vector path), data near and far from the
 *	  origin; a different choice is accepted only on a near-tie;
 *	- the choice does not depend on the batch (bit for bit), AVX2 and
 *	  AVX-512 agree bit for bit, exact ties go to the lowest index;
 *	- training: gaussian blobs recovered (L2, cosine, each IP training),
 *	  k = 1, n < k, n == k, duplicate points (also when the seeding
 *	  subsample misses one), zero vectors under cosine, determinism,
 *	  empty-cluster re-seeding and dropping, early stop;
 *	- the hooks: interrupts polled, progress once per round, a longjmp out
 *	  of check_interrupts, every allocation freed, the peak within
 *	  VsKmeansTrainMemory();
 *	- real data, if present (../shared/data or $VECSTORE_DATA): the cheap
 *	  seeding ends within a few percent of full k-means++ in inertia.
 *
 * The allocator hands out blocks 8 bytes off 16-byte alignment, like
 * palloc's MAXALIGN, so the module cannot depend on more.
 *
 * IDENTIFICATION
 *	  test/kernels/test_kmeans.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vsdistance.h"
#include "vskmeans.h"

/* failure details printed per group */
#define MAX_DETAILS		5

#include "vstest.h"
#include "vsfvecs.h"

/* where the shared data lives, relative to the repository root */
#define DEFAULT_DATA	"../shared/data"



static long interrupt_calls;
static long interrupt_limit;	/* longjmp after this many; 0 = never */
static jmp_buf interrupt_jump;

static int	progress_calls;
static int	progress_last;
static int	progress_max;
static int	progress_bad;



/* vectors checked by assign_vs_brute, for the near-tie summary */
static int	assign_vectors;

/*
 * test_interrupts - count; longjmp once the limit is reached.
 */
static void
test_interrupts(void)
{
	interrupt_calls++;
	if (interrupt_limit > 0 && interrupt_calls >= interrupt_limit)
		longjmp(interrupt_jump, 1);
}

/*
 * test_progress - check the iteration numbers come 1, 2, 3, ...
 */
static void
test_progress(void *arg, int iteration, int max_iterations)
{
	(void) arg;
	progress_calls++;
	if (iteration != progress_last + 1)
		progress_bad++;
	progress_last = iteration;
	progress_max = max_iterations;
}

static const VsKmeansHooks hooks = {
	test_alloc, test_free, test_interrupts, test_progress, NULL, NULL, NULL
};

/*
 * reset_counters - before a group that checks the hooks.
 */
static void
reset_counters(void)
{
	peak_bytes = live_bytes;
	interrupt_calls = 0;
	interrupt_limit = 0;
	progress_calls = 0;
	progress_last = 0;
	progress_max = 0;
	progress_bad = 0;
}

/*
 * set_path - make "path" the active kernel path; 0 if unsupported.
 */
static int
set_path(VsKernelPath path)
{
	VsDistanceKernels k = VsKernelsForPath(path);

	if (k == NULL)
		return 0;
	VsKernels = *k;
	VsKernelsActivePath = path;
	return 1;
}

static const char *const metric_names[] = {"?", "l2", "ip", "cosine"};

/*
 * exact_dist - the metric's distance in double (cosine: 1 for zero).
 */
static double
exact_dist(VsMetric metric, const float *x, const float *c, int dim)
{
	double		dot = 0,
				nx = 0,
				nc = 0,
				l2 = 0;

	for (int d = 0; d < dim; d++)
	{
		double		diff = (double) x[d] - c[d];

		dot += (double) x[d] * c[d];
		nx += (double) x[d] * x[d];
		nc += (double) c[d] * c[d];
		l2 += diff * diff;
	}
	if (metric == VS_METRIC_L2)
		return l2;
	if (metric == VS_METRIC_IP)
		return -dot;
	if (nx == 0 || nc == 0)
		return 1.0;
	return 1.0 - dot / sqrt(nx * nc);
}

/*
 * near_tie_tol - how far apart two candidates' exact distances may be
 * for the kernel's float ranking to order them either way.  The ranking
 * value's error is about dim * FLT_EPSILON times the magnitudes involved.
 */
static double
near_tie_tol(VsMetric metric, const float *x, const float *c1,
			 const float *c2, int dim)
{
	double		nx = 0,
				n1 = 0,
				n2 = 0;

	for (int d = 0; d < dim; d++)
	{
		nx += (double) x[d] * x[d];
		n1 += (double) c1[d] * c1[d];
		n2 += (double) c2[d] * c2[d];
	}
	if (metric == VS_METRIC_COSINE)
		return 4e-6 * (dim + 8);
	return 4e-7 * (dim + 8) * (nx + n1 + n2 + sqrt(nx * (n1 + n2)));
}

/*
 * fill_random - n * dim values: uniform [-1, 1] plus "offset" (far from
 * the origin when large).
 */
static void
fill_random(float *v, size_t count, double offset)
{
	for (size_t i = 0; i < count; i++)
		v[i] = (float) (2.0 * rng_unit() - 1.0 + offset);
}

/*
 * assign_vs_brute - VsKmeansAssign against the brute force for one shape;
 * returns the number of near-tie disagreements (not failures).
 */
static int
assign_vs_brute(VsMetric metric, int n, int k, int dim, double offset,
				int zero_centroid)
{
	float	   *c = malloc(sizeof(float) * k * dim);
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *norms = malloc(sizeof(float) * k);
	float	   *dist = malloc(sizeof(float) * n);
	int32_t    *out = malloc(sizeof(int32_t) * n);
	int			ties = 0;

	assign_vectors += n;
	fill_random(c, (size_t) k * dim, offset);
	fill_random(x, (size_t) n * dim, offset);
	if (zero_centroid && k > 1)
		memset(c, 0, sizeof(float) * dim);
	VsKmeansCentroidNorms(c, k, dim, norms);
	VsKmeansAssign(c, metric == VS_METRIC_IP ? NULL : norms, k, dim, metric,
				   x, n, out, dist, &hooks);

	for (int i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * dim;
		double		best = INFINITY;
		int			bi = 0;
		double		got;

		for (int j = 0; j < k; j++)
		{
			double		d;

			if (metric == VS_METRIC_COSINE && zero_centroid && j == 0 && k > 1)
				continue;		/* a zero centroid is never chosen */
			d = exact_dist(metric, xi, c + (size_t) j * dim, dim);
			if (d < best)
			{
				best = d;
				bi = j;
			}
		}
		if (!check(out[i] >= 0 && out[i] < k, "%s n=%d k=%d dim=%d: out[%d] = %d",
				   metric_names[metric], n, k, dim, i, out[i]))
			continue;
		got = exact_dist(metric, xi, c + (size_t) out[i] * dim, dim);
		if (out[i] != bi)
		{
			double		tol = near_tie_tol(metric, xi, c + (size_t) out[i] * dim,
										   c + (size_t) bi * dim, dim);

			if (check(got - best <= tol,
					  "%s n=%d k=%d dim=%d off=%g: vector %d got %d (%.9g), best %d (%.9g)",
					  metric_names[metric], n, k, dim, offset, i, out[i], got,
					  bi, best))
				ties++;
		}
		/* out_dist: the exact distance to the chosen centroid */
		check(fabs(dist[i] - got) <= 1e-5 * (fabs(got) + 1.0) +
			  (metric == VS_METRIC_L2 ? 1e-6 * dim * (offset + 1) * (offset + 1) : 0),
			  "%s n=%d k=%d dim=%d: out_dist[%d] = %.9g, exact %.9g",
			  metric_names[metric], n, k, dim, i, dist[i], got);
		if (metric == VS_METRIC_L2)
			check(dist[i] >= 0.0f, "negative L2 distance %g", dist[i]);
	}
	free(c);
	free(x);
	free(norms);
	free(dist);
	free(out);
	return ties;
}

/*
 * test_assign_brute - the shapes, for one path.
 */
static void
test_assign_brute(VsKernelPath path)
{
	static const int shapes[][3] = {
		/* n, k, dim */
		{1000, 333, 128}, {517, 100, 1}, {300, 37, 7}, {200, 50, 129},
		{64, 1000, 100}, {40, 20, 2000}, {33, 300, 2000}, {5, 3, 3},
		{3, 100, 17}, {2, 1, 5}, {1, 1, 1}, {1, 70, 33}, {9, 17, 15},
		{100, 16, 16}, {100, 32, 31}, {100, 48, 64}
	};
	int			ties = 0,
				far_ties = 0;

	assign_vectors = 0;
	group_begin("assign = brute force, 3 metrics x %d shapes [%s]",
				(int) (sizeof(shapes) / sizeof(shapes[0])), VsKernelPathName(path));
	if (!set_path(path))
	{
		group_skip("path not supported");
		return;
	}
	rng_seed(1000 + path);
	for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
	{
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		{
			ties += assign_vs_brute((VsMetric) m, shapes[s][0], shapes[s][1],
									shapes[s][2], 0.0, 0);
			/* far from the origin: the decomposition's weak spot */
			far_ties += assign_vs_brute((VsMetric) m, shapes[s][0], shapes[s][1],
										shapes[s][2], 100.0, 0);
		}
		ties += assign_vs_brute((VsMetric) m, 200, 40, 24, 0.0, 1);
	}
	group_end();
	if (ties + far_ties > 0)
		printf("       (choices unlike the brute force, all near-ties within tolerance: %d of %d vectors\n"
			   "        near the origin, nearly all cosine at dim 1 where every centroid of the\n"
			   "        same sign ties; %d of %d at offset 100, where ||x||^2 swamps the gaps)\n",
			   ties, assign_vectors / 2, far_ties, assign_vectors / 2);
}

/*
 * test_assign_consistency - the choice for a vector is the same bits in
 * any batch, and AVX2 equals AVX-512; exact ties go to the lowest index.
 */
static void
test_assign_consistency(void)
{
	const int	n = 300,
				k = 200,
				dim = 45;
	float	   *c = malloc(sizeof(float) * k * dim);
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *norms = malloc(sizeof(float) * k);
	int32_t    *ref[VS_KERNEL_NPATHS];
	float	   *refd = malloc(sizeof(float) * n);
	int32_t    *out = malloc(sizeof(int32_t) * n);
	float	   *dist = malloc(sizeof(float) * n);

	group_begin("assign: batch-independent, prepared = unprepared, AVX2 == AVX-512, ties to lowest index");
	rng_seed(77);
	fill_random(c, (size_t) k * dim, 0.0);
	fill_random(x, (size_t) n * dim, 0.0);
	/* exact ties: centroid 150 = 20 = 7, vectors 0..9 sit on them */
	memcpy(c + 20 * dim, c + 150 * dim, sizeof(float) * dim);
	memcpy(c + 7 * dim, c + 150 * dim, sizeof(float) * dim);
	for (int i = 0; i < 10; i++)
		memcpy(x + (size_t) i * dim, c + 150 * dim, sizeof(float) * dim);
	VsKmeansCentroidNorms(c, k, dim, norms);

	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		ref[p] = NULL;
		if (!set_path((VsKernelPath) p))
			continue;
		for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
		{
			int32_t    *r = malloc(sizeof(int32_t) * n);

			VsKmeansAssign(c, norms, k, dim, (VsMetric) m, x, n, r, refd, &hooks);
			for (int i = 0; i < 10; i++)
				check(r[i] == 7, "[%s] %s: exact tie went to %d, not 7",
					  VsKernelPathName(p), metric_names[m], r[i]);
			/* every batch size, including the one-vector path */
			for (int b = 1; b <= 9; b++)
			{
				for (int i0 = 0; i0 < n; i0 += b)
				{
					int			cnt = (n - i0 < b) ? n - i0 : b;

					VsKmeansAssign(c, norms, k, dim, (VsMetric) m,
								   x + (size_t) i0 * dim, cnt, out + i0,
								   dist + i0, &hooks);
				}
				check(memcmp(out, r, sizeof(int32_t) * n) == 0 &&
					  memcmp(dist, refd, sizeof(float) * n) == 0,
					  "[%s] %s: batches of %d differ from one batch",
					  VsKernelPathName(p), metric_names[m], b);
			}
			/* prepared centroids: the same bits, any batch size */
			{
				VsKmeansPrepared *prep = VsKmeansPrepare(c, norms, k, dim,
														 (VsMetric) m, &hooks);

				for (int b = 1; b <= 300; b = b * 3 + 1)
				{
					for (int i0 = 0; i0 < n; i0 += b)
					{
						int			cnt = (n - i0 < b) ? n - i0 : b;

						VsKmeansAssignPrepared(prep, x + (size_t) i0 * dim, cnt,
											   out + i0, dist + i0, &hooks);
					}
					check(memcmp(out, r, sizeof(int32_t) * n) == 0 &&
						  memcmp(dist, refd, sizeof(float) * n) == 0,
						  "[%s] %s: prepared, batches of %d differ",
						  VsKernelPathName(p), metric_names[m], b);
				}
				hooks.free(prep);
			}
			if (m == VS_METRIC_L2)
				ref[p] = r;
			else
				free(r);
		}
	}
	if (ref[VS_KERNEL_AVX2] && ref[VS_KERNEL_AVX512])
		check(memcmp(ref[VS_KERNEL_AVX2], ref[VS_KERNEL_AVX512],
					 sizeof(int32_t) * n) == 0,
			  "AVX2 and AVX-512 chose differently");
	/* every centroid equal: all go to 0, on every path */
	for (int j = 1; j < k; j++)
		memcpy(c + (size_t) j * dim, c, sizeof(float) * dim);
	VsKmeansCentroidNorms(c, k, dim, norms);
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		int			bad = 0;

		if (!set_path((VsKernelPath) p))
			continue;
		VsKmeansAssign(c, norms, k, dim, VS_METRIC_L2, x, n, out, NULL, &hooks);
		for (int i = 0; i < n; i++)
			bad += (out[i] != 0);
		check(bad == 0, "[%s] equal centroids: %d vectors not at 0",
			  VsKernelPathName(p), bad);
	}
	VsDistanceInit();
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
		free(ref[p]);
	free(c);
	free(x);
	free(norms);
	free(refd);
	free(out);
	free(dist);
	group_end();
}

/*
 * test_prepared_chunks - prepared centroids spanning several chunks
 * (k * dim well over the chunk size) give the same bits as VsKmeansAssign,
 * on every path.
 */
static void
test_prepared_chunks(void)
{
	const int	n = 50,
				k = 333,
				dim = 1500;
	float	   *c = malloc(sizeof(float) * k * dim);
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *norms = malloc(sizeof(float) * k);
	int32_t		out1[50],
				out2[50];
	float		d1[50],
				d2[50];

	group_begin("prepared centroids over several chunks (k=%d, dim=%d)", k, dim);
	rng_seed(31);
	fill_random(c, (size_t) k * dim, 0.0);
	fill_random(x, (size_t) n * dim, 0.0);
	/* a tie across chunks: centroid 300 = centroid 5 */
	memcpy(c + (size_t) 300 * dim, c + (size_t) 5 * dim, sizeof(float) * dim);
	memcpy(x, c + (size_t) 5 * dim, sizeof(float) * dim);
	VsKmeansCentroidNorms(c, k, dim, norms);
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		if (!set_path((VsKernelPath) p))
			continue;
		for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
		{
			VsKmeansPrepared *prep = VsKmeansPrepare(c, norms, k, dim,
													 (VsMetric) m, &hooks);

			VsKmeansAssign(c, norms, k, dim, (VsMetric) m, x, n, out1, d1, &hooks);
			VsKmeansAssignPrepared(prep, x, n, out2, d2, &hooks);
			check(memcmp(out1, out2, sizeof(out1)) == 0 &&
				  memcmp(d1, d2, sizeof(d1)) == 0,
				  "[%s] %s: prepared differs", VsKernelPathName(p), metric_names[m]);
			check(out1[0] == 5, "[%s] %s: tie across chunks went to %d",
				  VsKernelPathName(p), metric_names[m], out1[0]);
			hooks.free(prep);
		}
	}
	VsDistanceInit();
	free(c);
	free(x);
	free(norms);
	group_end();
}

/*
 * make_blobs - "nc" centres (uniform in [-spread, spread]^dim, or random
 * unit directions when "directions"), "per" points each: centre times a
 * random scale in [0.5, 5] if directions, plus gaussian noise "sigma".
 */
static float *
make_blobs(int nc, int per, int dim, double spread, double sigma,
		   int directions, float **centres_out)
{
	float	   *centres = malloc(sizeof(float) * nc * dim);
	float	   *x = malloc(sizeof(float) * (size_t) nc * per * dim);

	for (int j = 0; j < nc; j++)
	{
		double		s = 0;

		for (int d = 0; d < dim; d++)
		{
			centres[j * dim + d] = (float) (directions ? rng_gauss()
											: spread * (2 * rng_unit() - 1));
			s += (double) centres[j * dim + d] * centres[j * dim + d];
		}
		if (directions)
			for (int d = 0; d < dim; d++)
				centres[j * dim + d] = (float) (centres[j * dim + d] / sqrt(s));
	}
	/* interleave the clusters, so no cluster is a contiguous run */
	for (int i = 0; i < nc * per; i++)
	{
		int			j = i % nc;
		double		scale = directions ? 0.5 + 4.5 * rng_unit() : 1.0;

		for (int d = 0; d < dim; d++)
			x[(size_t) i * dim + d] =
				(float) (scale * (centres[j * dim + d] + sigma * rng_gauss()));
	}
	*centres_out = centres;
	return x;
}

/*
 * match_centres - every true centre has a distinct centroid within "tol"
 * (L2 distance, or 1 - cos for directions).  Returns the worst distance.
 */
static double
match_centres(const float *centres, int nc, const float *centroids, int k,
			  int dim, int directions, int *distinct)
{
	double		worst = 0;
	int		   *used = calloc(k, sizeof(int));

	*distinct = 1;
	for (int j = 0; j < nc; j++)
	{
		double		best = INFINITY;
		int			bi = -1;

		for (int t = 0; t < k; t++)
		{
			double		d = exact_dist(directions ? VS_METRIC_COSINE : VS_METRIC_L2,
									   centres + j * dim, centroids + t * dim, dim);

			if (!directions)
				d = sqrt(d);
			if (d < best)
			{
				best = d;
				bi = t;
			}
		}
		if (used[bi]++)
			*distinct = 0;
		if (best > worst)
			worst = best;
	}
	free(used);
	return worst;
}

/*
 * test_blobs - known centres recovered, per metric and IP training.
 */
static void
test_blobs(void)
{
	const int	nc = 10,
				per = 300,
				dim = 32;
	float	   *centres,
			   *x;
	float	   *cent = malloc(sizeof(float) * nc * dim);
	VsKmeansOptions opt;
	VsKmeansStats st;
	int			r,
				distinct;
	double		worst;

	group_begin("training recovers gaussian blobs (L2, cosine, IP x 3 trainings, dim 2000)");
	VsDistanceInit();
	VsKmeansOptionsInit(&opt);
	opt.tolerance = 0.0;
	opt.max_iterations = 50;

	rng_seed(5);
	x = make_blobs(nc, per, dim, 5.0, 0.05, 0, &centres);
	r = VsKmeansTrain(x, nc * per, dim, nc, VS_METRIC_L2, &opt, &hooks, cent, &st);
	worst = match_centres(centres, nc, cent, r, dim, 0, &distinct);
	check(r == nc && distinct && worst < 0.02,
		  "L2: r=%d distinct=%d worst centre error %g", r, distinct, worst);
	check(st.iterations < opt.max_iterations && st.changed == 0,
		  "L2: did not converge (%d rounds, %lld changed)", st.iterations,
		  (long long) st.changed);

	for (int t = VS_KMEANS_IP_EUCLIDEAN; t <= VS_KMEANS_IP_MEAN; t++)
	{
		int			ok = 1;

		opt.ip_training = (VsKmeansIpTraining) t;
		r = VsKmeansTrain(x, nc * per, dim, nc, VS_METRIC_IP, &opt, &hooks, cent, &st);
		for (int i = 0; i < r * dim; i++)
			ok &= isfinite(cent[i]);
		check(r == nc && ok, "IP training %d: r=%d finite=%d", t, r, ok);
		if (t == VS_KMEANS_IP_EUCLIDEAN)
		{
			worst = match_centres(centres, nc, cent, r, dim, 0, &distinct);
			check(distinct && worst < 0.02, "IP euclidean: worst %g", worst);
		}
		if (t == VS_KMEANS_IP_SPHERICAL)
		{
			for (int j = 0; j < r; j++)
			{
				double		s = 0;

				for (int d = 0; d < dim; d++)
					s += (double) cent[j * dim + d] * cent[j * dim + d];
				check(fabs(s - 1.0) < 1e-5, "IP spherical: centroid %d norm^2 %g", j, s);
			}
		}
	}
	opt.ip_training = VS_KMEANS_IP_DEFAULT;
	/* how rows are put in lists: IP rows go by L2 unless asked otherwise */
	check(VsKmeansRowMetric(VS_METRIC_IP, NULL) == VS_METRIC_L2 &&
		  VsKmeansRowMetric(VS_METRIC_IP, &opt) == VS_METRIC_L2 &&
		  VsKmeansRowMetric(VS_METRIC_L2, NULL) == VS_METRIC_L2 &&
		  VsKmeansRowMetric(VS_METRIC_COSINE, NULL) == VS_METRIC_COSINE,
		  "VsKmeansRowMetric defaults");
	opt.ip_training = VS_KMEANS_IP_SPHERICAL;
	check(VsKmeansRowMetric(VS_METRIC_IP, &opt) == VS_METRIC_IP,
		  "VsKmeansRowMetric, spherical IP training");
	opt.ip_training = VS_KMEANS_IP_DEFAULT;
	free(x);
	free(centres);

	/*
	 * Tight blobs: k-means++ may put two seeds in one blob with
	 * probability about (within-blob D^2) / (between-blob D^2) per seed,
	 * and Lloyd cannot repair that; at sigma 0.005 that is negligible.
	 */
	x = make_blobs(nc, per, dim, 0.0, 0.005, 1, &centres);
	r = VsKmeansTrain(x, nc * per, dim, nc, VS_METRIC_COSINE, &opt, &hooks, cent, &st);
	worst = match_centres(centres, nc, cent, r, dim, 1, &distinct);
	check(r == nc && distinct && worst < 1e-3,
		  "cosine: r=%d distinct=%d worst 1-cos %g", r, distinct, worst);
	for (int j = 0; j < r; j++)
	{
		double		s = 0;

		for (int d = 0; d < dim; d++)
			s += (double) cent[j * dim + d] * cent[j * dim + d];
		check(fabs(s - 1.0) < 1e-5, "cosine: centroid %d norm^2 %g", j, s);
	}
	free(x);
	free(centres);

	/* the index's largest dimension, with an odd tail */
	{
		const int	bigdim = 2000,
					bk = 6;
		float	   *bc = malloc(sizeof(float) * bk * bigdim);

		x = make_blobs(bk, 50, bigdim, 1.0, 0.02, 0, &centres);
		r = VsKmeansTrain(x, bk * 50, bigdim, bk, VS_METRIC_L2, &opt, &hooks, bc, &st);
		worst = match_centres(centres, bk, bc, r, bigdim, 0, &distinct);
		check(r == bk && distinct && worst < 0.2,
			  "L2 dim %d: r=%d distinct=%d worst %g", bigdim, r, distinct, worst);
		free(x);
		free(centres);
		free(bc);
	}
	free(cent);
	group_end();
}

/*
 * same_set - the r rows of a are the rows of b in some order (bitwise).
 */
static int
same_set(const float *a, int r, const float *b, int nb, int dim)
{
	for (int i = 0; i < r; i++)
	{
		int			found = 0;

		for (int j = 0; j < nb && !found; j++)
			found = memcmp(a + (size_t) i * dim, b + (size_t) j * dim,
						   sizeof(float) * dim) == 0;
		if (!found)
			return 0;
		for (int j = 0; j < i; j++)
			if (memcmp(a + (size_t) i * dim, a + (size_t) j * dim,
					   sizeof(float) * dim) == 0)
				return 0;		/* a duplicate centroid */
	}
	return 1;
}

/*
 * test_small_cases - k = 1, n < k, n == k, duplicate points.
 */
static void
test_small_cases(void)
{
	const int	dim = 6;
	float		pts[64 * 6];
	float		cent[100 * 6];
	float	   *x;
	VsKmeansOptions opt;
	VsKmeansStats st;
	int			r;

	group_begin("k = 1, n < k, n == k, duplicates, n = 0");
	VsDistanceInit();
	VsKmeansOptionsInit(&opt);
	rng_seed(9);
	fill_random(pts, 64 * dim, 0.0);

	/* k = 1: the mean */
	for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
	{
		double		mean[6] = {0};
		double		err = 0,
					s = 0;
		int			sph = (m == VS_METRIC_COSINE);	/* IP default: Euclidean */

		r = VsKmeansTrain(pts, 64, dim, 1, (VsMetric) m, &opt, &hooks, cent, &st);
		for (int i = 0; i < 64; i++)
		{
			double		nrm = 0;

			for (int d = 0; d < dim; d++)
				nrm += (double) pts[i * dim + d] * pts[i * dim + d];
			nrm = sph ? sqrt(nrm) : 1.0;
			for (int d = 0; d < dim; d++)
				mean[d] += pts[i * dim + d] / nrm / (sph ? 1 : 64);
		}
		for (int d = 0; d < dim; d++)
			s += mean[d] * mean[d];
		for (int d = 0; d < dim; d++)
			err = fmax(err, fabs(cent[d] - (sph ? mean[d] / sqrt(s) : mean[d])));
		check(r == 1 && err < 1e-5, "%s k=1: r=%d error %g", metric_names[m], r, err);
	}

	/* n < k and n == k: the points themselves */
	for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m += 2)
	{
		float		normed[64 * 6];

		memcpy(normed, pts, sizeof(pts));
		if (m == VS_METRIC_COSINE)
		{
			/* bitwise what the module computes: norm in double, in order */
			for (int i = 0; i < 64; i++)
			{
				double		s = 0;

				for (int d = 0; d < dim; d++)
					s += (double) pts[i * dim + d] * (double) pts[i * dim + d];
				for (int d = 0; d < dim; d++)
					normed[i * dim + d] = (float) (pts[i * dim + d] * (1.0 / sqrt(s)));
			}
		}
		r = VsKmeansTrain(pts, 5, dim, 10, (VsMetric) m, &opt, &hooks, cent, &st);
		check(r == 5 && same_set(cent, r, normed, 5, dim),
			  "%s n=5 k=10: r=%d, or centroids are not the points", metric_names[m], r);
		r = VsKmeansTrain(pts, 64, dim, 64, (VsMetric) m, &opt, &hooks, cent, &st);
		check(r == 64 && same_set(cent, r, normed, 64, dim),
			  "%s n=k=64: r=%d, or centroids are not the points", metric_names[m], r);
	}

	/* 300 samples of 4 distinct points, k = 10 */
	x = malloc(sizeof(float) * 300 * dim);
	for (int i = 0; i < 300; i++)
		memcpy(x + i * dim, pts + (i * 7 % 4) * dim, sizeof(float) * dim);
	r = VsKmeansTrain(x, 300, dim, 10, VS_METRIC_L2, &opt, &hooks, cent, &st);
	check(r == 4 && same_set(cent, r, pts, 4, dim),
		  "4 distinct points, k=10: r=%d", r);
	free(x);

	/*
	 * 20000 samples of 7 points, one of them present once: the seeding
	 * subsample (4096) most likely misses it, so the seeding must go on
	 * over all samples to find 7.
	 */
	x = malloc(sizeof(float) * 20000 * dim);
	for (int i = 0; i < 20000; i++)
		memcpy(x + (size_t) i * dim, pts + (i == 12345 ? 6 : i % 6) * dim,
			   sizeof(float) * dim);
	r = VsKmeansTrain(x, 20000, dim, 20, VS_METRIC_L2, &opt, &hooks, cent, &st);
	check(r == 7 && same_set(cent, r, pts, 7, dim),
		  "7 distinct points in 20000, one rare, k=20: r=%d (seeded from %d)",
		  r, st.seed_sample);
	free(x);

	r = VsKmeansTrain(pts, 0, dim, 10, VS_METRIC_L2, &opt, &hooks, cent, &st);
	check(r == 0, "n=0: r=%d", r);
	group_end();
}

/*
 * test_zero_cosine - zero vectors under cosine.
 */
static void
test_zero_cosine(void)
{
	const int	dim = 12,
				n = 400;
	float	   *x = calloc((size_t) n * dim, sizeof(float));
	float		cent[8 * 12];
	float		norms[8];
	float		dist[4];
	int32_t		out[4];
	VsKmeansOptions opt;
	int			r,
				ok = 1;

	group_begin("cosine: zero vectors");
	VsDistanceInit();
	VsKmeansOptionsInit(&opt);
	rng_seed(11);
	/* every third sample is zero */
	for (int i = 0; i < n; i++)
		if (i % 3)
			fill_random(x + (size_t) i * dim, dim, 0.0);
	r = VsKmeansTrain(x, n, dim, 8, VS_METRIC_COSINE, &opt, &hooks, cent, NULL);
	for (int i = 0; i < r * dim; i++)
		ok &= isfinite(cent[i]);
	check(r == 8 && ok, "with zeros: r=%d finite=%d", r, ok);
	for (int j = 0; j < r; j++)
	{
		double		s = 0;

		for (int d = 0; d < dim; d++)
			s += (double) cent[j * dim + d] * cent[j * dim + d];
		check(fabs(s - 1) < 1e-5, "centroid %d norm^2 %g", j, s);
	}

	/* a zero query: a valid index, distance 1 */
	VsKmeansCentroidNorms(cent, 8, dim, norms);
	for (int b = 1; b <= 4; b += 3)
	{
		VsKmeansAssign(cent, norms, 8, dim, VS_METRIC_COSINE, x, b, out, dist, &hooks);
		check(out[0] == 0 && dist[0] == 1.0f,
			  "zero vector (batch %d): out %d dist %g", b, out[0], dist[0]);
	}

	/* nothing but zeros: nothing to train on */
	memset(x, 0, sizeof(float) * n * dim);
	r = VsKmeansTrain(x, n, dim, 8, VS_METRIC_COSINE, &opt, &hooks, cent, NULL);
	check(r == 0, "all zero: r=%d", r);
	free(x);
	group_end();
}

/*
 * test_determinism - same input and seed, same bits; per metric and per
 * kernel path (training runs on the active path).
 */
static void
test_determinism(void)
{
	const int	n = 3000,
				dim = 20,
				k = 50;
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *c1 = malloc(sizeof(float) * k * dim);
	float	   *c2 = malloc(sizeof(float) * k * dim);
	VsKmeansOptions opt;

	group_begin("determinism: two runs give identical centroids, every path");
	VsKmeansOptionsInit(&opt);
	opt.seed = 42;
	rng_seed(13);
	fill_random(x, (size_t) n * dim, 0.0);
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		if (!set_path((VsKernelPath) p))
			continue;
		for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
		{
			int			r1,
						r2;

			/* dirty the outputs differently: no reliance on their contents */
			memset(c1, 0x55, sizeof(float) * k * dim);
			memset(c2, 0xAA, sizeof(float) * k * dim);
			r1 = VsKmeansTrain(x, n, dim, k, (VsMetric) m, &opt, &hooks, c1, NULL);
			r2 = VsKmeansTrain(x, n, dim, k, (VsMetric) m, &opt, &hooks, c2, NULL);
			check(r1 == k && r1 == r2 &&
				  memcmp(c1, c2, sizeof(float) * r1 * dim) == 0,
				  "[%s] %s: runs differ", VsKernelPathName(p), metric_names[m]);
			opt.seed = 43;
			r2 = VsKmeansTrain(x, n, dim, k, (VsMetric) m, &opt, &hooks, c2, NULL);
			check(memcmp(c1, c2, sizeof(float) * r1 * dim) != 0,
				  "[%s] %s: seed 43 gives the same centroids as 42",
				  VsKernelPathName(p), metric_names[m]);
			opt.seed = 42;
		}
	}
	VsDistanceInit();
	free(x);
	free(c1);
	free(c2);
	group_end();
}

/*
 * test_empty_clusters - re-seeding and dropping (via VsKmeansRefine).
 */
static void
test_empty_clusters(void)
{
	const int	nc = 5,
				per = 200,
				dim = 8;
	float	   *centres,
			   *x;
	float		cent[6 * 8];
	float	   *norms = malloc(sizeof(float) * 6);
	int32_t    *out = malloc(sizeof(int32_t) * nc * per);
	float	   *dist = malloc(sizeof(float) * nc * per);
	int		   *count = calloc(6, sizeof(int));
	VsKmeansOptions opt;
	VsKmeansStats st;
	int			r,
				distinct,
				empty = 0;
	double		worst;

	group_begin("empty clusters: re-seeded (or dropped when impossible)");
	VsDistanceInit();
	VsKmeansOptionsInit(&opt);
	opt.tolerance = 0;
	opt.max_iterations = 30;
	rng_seed(17);
	x = make_blobs(nc, per, dim, 5.0, 0.1, 0, &centres);

	/*
	 * Start from four of the five true centres and one far away: that one
	 * gets no member in the first round, so it must be re-seeded, and the
	 * run must then find the fifth blob.
	 */
	memcpy(cent, centres, sizeof(float) * 4 * dim);
	for (int d = 0; d < dim; d++)
		cent[4 * dim + d] = 1000.0f;
	for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
	{
		memcpy(cent, centres, sizeof(float) * 4 * dim);
		for (int d = 0; d < dim; d++)
			cent[4 * dim + d] = (m == VS_METRIC_L2) ? 1000.0f : 0.0f;
		r = VsKmeansRefine(x, nc * per, dim, 5, (VsMetric) m, &opt, &hooks, cent, &st);
		check(r == 5 && st.reseeded >= 1, "%s: r=%d reseeded=%d",
			  metric_names[m], r, st.reseeded);
		if (m == VS_METRIC_L2)
		{
			worst = match_centres(centres, nc, cent, r, dim, 0, &distinct);
			check(distinct && worst < 0.05, "L2: fifth blob not found (worst %g)", worst);
		}
		/* and no centroid is left without members */
		VsKmeansCentroidNorms(cent, r, dim, norms);
		VsKmeansAssign(cent, norms, r, dim, (VsMetric) m, x, nc * per, out, dist, &hooks);
		memset(count, 0, sizeof(int) * 6);
		for (int i = 0; i < nc * per; i++)
			count[out[i]]++;
		for (int j = 0; j < r; j++)
			empty += (count[j] == 0);
		check(empty == 0, "%s: %d centroids without members", metric_names[m], empty);
	}

	/* three equal samples, two centroids: the far one must be dropped */
	for (int i = 0; i < 3; i++)
		memcpy(x + i * dim, centres, sizeof(float) * dim);
	memcpy(cent, centres, sizeof(float) * dim);
	for (int d = 0; d < dim; d++)
		cent[dim + d] = 1000.0f;
	r = VsKmeansRefine(x, 3, dim, 2, VS_METRIC_L2, &opt, &hooks, cent, &st);
	check(r == 1 && st.dropped == 1 &&
		  memcmp(cent, centres, sizeof(float) * dim) == 0,
		  "identical samples: r=%d dropped=%d", r, st.dropped);

	free(x);
	free(centres);
	free(norms);
	free(out);
	free(dist);
	free(count);
	group_end();
}

/*
 * test_hooks - interrupts, progress, a longjmp out, allocation balance,
 * the memory bound.
 */
static void
test_hooks(void)
{
	const int	n = 20000,
				dim = 64,
				k = 200;
	float	   *x = malloc(sizeof(float) * n * dim);
	float	   *c = malloc(sizeof(float) * k * dim);
	float	   *norms = malloc(sizeof(float) * k);
	int32_t    *out = malloc(sizeof(int32_t) * n);
	VsKmeansOptions opt;
	VsKmeansStats st;
	long		before;
	size_t		bound;
	int			r;

	group_begin("hooks: interrupts, progress, longjmp out, allocations");
	VsDistanceInit();
	VsKmeansOptionsInit(&opt);
	opt.max_iterations = 7;
	opt.tolerance = 0;
	rng_seed(19);
	fill_random(x, (size_t) n * dim, 0.0);

	for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
	{
		reset_counters();
		before = n_allocs - n_frees;
		r = VsKmeansTrain(x, n, dim, k, (VsMetric) m, &opt, &hooks, c, &st);
		check(r == k, "%s: r=%d", metric_names[m], r);
		/* 7 rounds of 20000 x 200 x 64 = 1.8e9 multiply-adds, at 2^23 */
		check(interrupt_calls >= 200, "%s: only %ld interrupt polls",
			  metric_names[m], interrupt_calls);
		check(progress_calls == st.iterations && progress_calls == 7 &&
			  progress_bad == 0 && progress_max == 7,
			  "%s: progress %d calls (bad %d, max %d), %d rounds",
			  metric_names[m], progress_calls, progress_bad, progress_max,
			  st.iterations);
		check(n_allocs - n_frees == before && live_bytes == 0 && n_bad_frees == 0,
			  "%s: %ld blocks (%zu bytes) left, %ld bad frees",
			  metric_names[m], n_allocs - n_frees - before, live_bytes, n_bad_frees);
		bound = VsKmeansTrainMemory(n, dim, k, (VsMetric) m, &opt);
		check(peak_bytes <= bound && peak_bytes * 2 >= bound,
			  "%s: peak %zu bytes, estimate %zu", metric_names[m], peak_bytes, bound);
	}

	/* assignment polls too, and frees its scratch */
	reset_counters();
	VsKmeansCentroidNorms(c, k, dim, norms);
	VsKmeansAssign(c, norms, k, dim, VS_METRIC_L2, x, n, out, NULL, &hooks);
	check(interrupt_calls >= 20, "assign: %ld interrupt polls", interrupt_calls);
	check(live_bytes == 0, "assign: %zu bytes left", live_bytes);

	/* an error (longjmp) in the middle, then a context reset */
	for (long limit = 1; limit <= 200; limit *= 7)
	{
		volatile int finished = 0;

		reset_counters();
		interrupt_limit = limit;
		if (setjmp(interrupt_jump) == 0)
		{
			VsKmeansTrain(x, n, dim, k, VS_METRIC_COSINE, &opt, &hooks, c, NULL);
			finished = 1;
		}
		interrupt_limit = 0;
		check(!finished, "longjmp at poll %ld: training finished anyway", limit);
		free_all_live();
		check(live_bytes == 0 && n_bad_frees == 0, "after reset: %zu bytes", live_bytes);
	}
	/* and it still works afterwards */
	r = VsKmeansTrain(x, n, dim, k, VS_METRIC_L2, &opt, &hooks, c, NULL);
	check(r == k && live_bytes == 0, "after longjmps: r=%d", r);

	free(x);
	free(c);
	free(norms);
	free(out);
	group_end();
}

/*
 * test_early_stop - tolerance ends the rounds; 0 rounds gives the seeds.
 */
static void
test_early_stop(void)
{
	float	   *centres,
			   *x;
	float		cent[10 * 16];
	VsKmeansOptions opt;
	VsKmeansStats st;
	int			r;

	group_begin("early stop and max_iterations = 0");
	VsDistanceInit();
	VsKmeansOptionsInit(&opt);
	rng_seed(23);
	x = make_blobs(10, 100, 16, 5.0, 0.1, 0, &centres);
	opt.max_iterations = 100;
	opt.tolerance = 0;
	r = VsKmeansTrain(x, 1000, 16, 10, VS_METRIC_L2, &opt, &hooks, cent, &st);
	check(r == 10 && st.iterations < 100 && st.changed == 0,
		  "tolerance 0: %d rounds, %lld changed", st.iterations, (long long) st.changed);
	opt.max_iterations = 0;
	r = VsKmeansTrain(x, 1000, 16, 10, VS_METRIC_L2, &opt, &hooks, cent, &st);
	check(r == 10 && st.iterations == 0 && same_set(cent, r, x, 1000, 16),
		  "0 rounds: r=%d rounds=%d, or centroids are not samples", r, st.iterations);
	free(x);
	free(centres);
	group_end();
}

/*
 * test_real_seeding - the cheap seeding vs full k-means++ on real data.
 */
static void
test_real_seeding(void)
{
	const char *dir = getenv("VECSTORE_DATA");
	char		path[1024];
	int			n,
				dim;
	float	   *x;

	group_begin("real data: subsampled seeding within 3%% of full k-means++");
	snprintf(path, sizeof(path), "%s/sift128-photos-euclidean/base.fvecs",
			 dir ? dir : DEFAULT_DATA);
	x = load_fvecs(path, 20000, &n, &dim);
	if (x == NULL)
	{
		char		why[1100];

		snprintf(why, sizeof(why), "no %s; set VECSTORE_DATA to the data directory", path);
		group_skip(why);
		return;
	}
	VsDistanceInit();
	for (int k = 100; k <= 1000; k *= 10)
	{
		VsKmeansOptions opt;
		float	   *c = malloc(sizeof(float) * k * dim);
		double		cheap[2],
					full[2];

		VsKmeansOptionsInit(&opt);
		opt.max_iterations = 10;
		for (int s = 0; s < 2; s++)
		{
			/* seeds 1, 2; the averages of two runs */
			opt.seed = s + 1;
			opt.seed_sample = 0;
			VsKmeansTrain(x, n, dim, k, VS_METRIC_L2, &opt, &hooks, c, NULL);
			cheap[s] = VsKmeansInertia(x, n, dim, c, k, VS_METRIC_L2, &hooks);
			opt.seed_sample = n;
			VsKmeansTrain(x, n, dim, k, VS_METRIC_L2, &opt, &hooks, c, NULL);
			full[s] = VsKmeansInertia(x, n, dim, c, k, VS_METRIC_L2, &hooks);
		}
		check((cheap[0] + cheap[1]) <= 1.03 * (full[0] + full[1]),
			  "k=%d: subsampled %.6g vs full %.6g", k,
			  (cheap[0] + cheap[1]) / 2, (full[0] + full[1]) / 2);
		printf("       k=%d n=%d: inertia subsampled seeding %.5g, full k-means++ %.5g (%+.2f%%)\n",
			   k, n, (cheap[0] + cheap[1]) / 2, (full[0] + full[1]) / 2,
			   100.0 * ((cheap[0] + cheap[1]) / (full[0] + full[1]) - 1.0));
		free(c);
	}
	free(x);
	group_end();
}

/*
 * main - run every group; exit 1 on any failure.
 */
int
main(void)
{
	VsDistanceInit();
	printf("kernel path in use: %s\n", VsKernelPathName(VsKernelsActivePath));

	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
		test_assign_brute((VsKernelPath) p);
	VsDistanceInit();
	test_assign_consistency();
	test_prepared_chunks();
	test_blobs();
	test_small_cases();
	test_zero_cosine();
	test_determinism();
	test_empty_clusters();
	test_early_stop();
	test_hooks();
	test_real_seeding();

	/* nothing may be left allocated by the module */
	group_all_freed();

	printf("%d passed, %d failed\n", groups_passed, groups_failed);
	return groups_failed > 0 ? 1 : 0;
}
