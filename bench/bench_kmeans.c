/*-------------------------------------------------------------------------
 *
 * bench_kmeans.c
 *	  Benchmark: IVF training (k-means) and nearest-centroid assignment.
 *
 * Not a test: it checks nothing and exits 0 (2 on bad usage).  It prints
 * markdown tables (bench/RESULTS-kmeans.md is made from them):
 *
 *	1. assignment throughput per kernel path: 1,000,000 synthetic clustered
 *	   128-d vectors to 1000 centroids (vectors/s, ns per vector-centroid
 *	   pair, GFLOP/s), the one-vector latency (an insert), and the real sets;
 *	2. training on the real sets (../shared/data or $VECSTORE_DATA: SIFT and
 *	   Fashion-MNIST under L2, GloVe under cosine) and on a 50,000 sample of
 *	   the synthetic set, k = 100 and 1000: seeding and total time, Lloyd
 *	   rounds, inertia of the seeds and of the result, against full
 *	   k-means++ seeding;
 *	3. the index-build equivalent: train on 50,000 samples, assign 1,000,000;
 *	4. how to train for inner product (IP): spherical, Euclidean and
 *	   mean-of-members training, rows put in lists by inner product or by
 *	   L2, queries routed by inner product, on real sets with a brute-force
 *	   maximum-inner-product ground truth: recall@10 at equal scan budgets,
 *	   the lists' balance;
 *	5. inertia and time against the number of Lloyd rounds (SIFT, k = 1000).
 *
 * Methodology: CLOCK_MONOTONIC; assignment timings are the median of
 * --runs runs; training runs once per configuration (seed 1).  The
 * machine is shared, so single figures can be off by tens of percent.
 *
 * Usage: bench_kmeans [--quick] [--runs N] [--data DIR] [--sections 12345]
 *
 * --quick: a fifth of the synthetic set, one run, full k-means++ only for
 * k = 100; --sections: which of the numbered sections to run.
 *
 * IDENTIFICATION
 *	  bench/bench_kmeans.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vsdistance.h"
#include "vskmeans.h"
#include "../test/kernels/vsfvecs.h"
#include "../test/kernels/vsrng.h"

#define MAX_RUNS		15
#define SYNTH_N			1000000
#define SYNTH_DIM		128
#define SYNTH_CLUSTERS	1000
#define TRAIN_SAMPLE	50000
#define IP_QUERIES		500

/* one real data set */
typedef struct DataSet
{
	const char *name;
	const char *dir;
	VsMetric	metric;
	float	   *base;
	int			n;
	int			dim;
	float	   *query;
	int			nq;
} DataSet;

static DataSet sets[] = {
	{"sift128-photos", "sift128-photos-euclidean", VS_METRIC_L2, NULL, 0, 0, NULL, 0},
	{"glove6b-100", "glove6b-100-angular", VS_METRIC_COSINE, NULL, 0, 0, NULL, 0},
	{"fashion-mnist-784", "fashion-mnist-784-euclidean", VS_METRIC_L2, NULL, 0, 0, NULL, 0},
};
#define NSETS ((int) (sizeof(sets) / sizeof(sets[0])))

static int	nruns = 3;
static int	quick = 0;
static const char *data_dir;
static const char *sections = "12345";

static const char *const metric_names[] = {"?", "L2", "IP", "cosine"};

/*
 * now_seconds - CLOCK_MONOTONIC as a double.
 */
static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/*
 * bench_alloc / bench_free / bench_interrupts - the hooks.
 */
static void *
bench_alloc(size_t size)
{
	void	   *p = malloc(size);

	if (p == NULL)
	{
		fprintf(stderr, "out of memory (%zu bytes)\n", size);
		exit(2);
	}
	return p;
}

static void
bench_free(void *p)
{
	free(p);
}

static void
bench_interrupts(void)
{
}

static const VsKmeansHooks hooks = {bench_alloc, bench_free, bench_interrupts, NULL, NULL, NULL, NULL};

/*
 * median - of n doubles (sorts them).
 */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return (n % 2) ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * make_synthetic - n clustered vectors: SYNTH_CLUSTERS gaussian clusters
 * with centres N(0, 1) per coordinate, sizes drawn from an exponential
 * distribution (so some clusters are several times larger than others)
 * and per-cluster spreads from 0.2 to 0.6.  Rows come in random cluster
 * order, so any prefix is a random sample.
 */
static float *
make_synthetic(int n, int dim)
{
	float	   *centres = malloc(sizeof(float) * SYNTH_CLUSTERS * dim);
	double	   *cum = malloc(sizeof(double) * SYNTH_CLUSTERS);
	double	   *sigma = malloc(sizeof(double) * SYNTH_CLUSTERS);
	float	   *x = malloc(sizeof(float) * (size_t) n * dim);
	double		total = 0;

	for (int j = 0; j < SYNTH_CLUSTERS; j++)
	{
		for (int d = 0; d < dim; d++)
			centres[j * dim + d] = (float) rng_gauss();
		total += -log(rng_unit() + 1e-12);
		cum[j] = total;
		sigma[j] = 0.2 + 0.4 * rng_unit();
	}
	for (int i = 0; i < n; i++)
	{
		double		r = rng_unit() * total;
		int			lo = 0,
					hi = SYNTH_CLUSTERS - 1;

		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (cum[mid] > r)
				hi = mid;
			else
				lo = mid + 1;
		}
		for (int d = 0; d < dim; d++)
			x[(size_t) i * dim + d] =
				(float) (centres[lo * dim + d] + sigma[lo] * rng_gauss());
	}
	free(centres);
	free(cum);
	free(sigma);
	return x;
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

/*
 * time_assign - median seconds of nruns assignments of n vectors.
 */
static double
time_assign(const float *c, const float *norms, int k, int dim, VsMetric metric,
			const float *x, int n, int runs, int32_t *out)
{
	double		t[MAX_RUNS];

	for (int r = 0; r < runs; r++)
	{
		double		t0 = now_seconds();

		VsKmeansAssign(c, norms, k, dim, metric, x, n, out, NULL, &hooks);
		t[r] = now_seconds() - t0;
	}
	return median(t, runs);
}

/*
 * time_single - microseconds per one-vector assignment (an insert) over
 * the first "n" vectors of x, median of runs; through VsKmeansAssign, or
 * through VsKmeansAssignPrepared when "prep" is not NULL.
 */
static double
time_single(const float *c, const float *norms, int k, int dim,
			const VsKmeansPrepared *prep, const float *x, int n, int runs)
{
	double		t[MAX_RUNS];
	int32_t		out;

	for (int r = 0; r < runs; r++)
	{
		double		t0 = now_seconds();

		for (int i = 0; i < n; i++)
		{
			if (prep)
				VsKmeansAssignPrepared(prep, x + (size_t) i * dim, 1, &out, NULL,
									   &hooks);
			else
				VsKmeansAssign(c, norms, k, dim, VS_METRIC_L2, x + (size_t) i * dim,
							   1, &out, NULL, &hooks);
		}
		t[r] = (now_seconds() - t0) / n * 1e6;
	}
	return median(t, runs);
}

/*
 * bench_assign - section 1.
 */
static void
bench_assign(const float *synth, int nsynth, const float *cent, int k)
{
	const int	dim = SYNTH_DIM;
	float	   *norms = malloc(sizeof(float) * k);
	int32_t    *out = malloc(sizeof(int32_t) * nsynth);
	int32_t    *ref = malloc(sizeof(int32_t) * nsynth);
	int			nvec[VS_KERNEL_NPATHS];
	double		secs[VS_KERNEL_NPATHS];
	long		same[VS_KERNEL_NPATHS];
	int			ref_path = -1;

	VsKmeansCentroidNorms(cent, k, dim, norms);

	/* AVX-512 first: the reference for "same lists" */
	for (int p = VS_KERNEL_NPATHS - 1; p >= 0; p--)
	{
		int			runs = nruns;

		nvec[p] = 0;
		if (!set_path((VsKernelPath) p))
			continue;
		nvec[p] = nsynth;
		if (p == VS_KERNEL_SCALAR)
		{
			/* about 10x slower: a tenth of the vectors, one run */
			nvec[p] = nsynth / 10;
			runs = 1;
		}
		secs[p] = time_assign(cent, norms, k, dim, VS_METRIC_L2, synth, nvec[p],
							  runs, out);
		if (ref_path < 0)
		{
			ref_path = p;
			memcpy(ref, out, sizeof(int32_t) * nsynth);
		}
		same[p] = 0;
		for (int i = 0; i < nvec[p]; i++)
			same[p] += (out[i] == ref[i]);
	}

	printf("\n### 1. Assignment throughput (%d x %d synthetic, k = %d, L2)\n\n",
		   nsynth, dim, k);
	printf("| path | vectors timed | median s | vectors/s | ns per vector-centroid pair | GFLOP/s | s per 1M vectors | x scalar | same list as %s |\n",
		   ref_path >= 0 ? VsKernelPathName(ref_path) : "-");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int p = VS_KERNEL_NPATHS - 1; p >= 0; p--)
	{
		double		per_vec;

		if (nvec[p] == 0)
		{
			printf("| %s | - | not supported | | | | | | |\n", VsKernelPathName(p));
			continue;
		}
		per_vec = secs[p] / nvec[p];
		printf("| %s | %d | %.3f | %.0f | %.3f | %.1f | %.2f | %.1f | %.5f |\n",
			   VsKernelPathName(p), nvec[p], secs[p], 1.0 / per_vec,
			   per_vec / k * 1e9, 2.0 * k * dim / per_vec * 1e-9, per_vec * 1e6,
			   nvec[VS_KERNEL_SCALAR] ? (secs[VS_KERNEL_SCALAR] / nvec[VS_KERNEL_SCALAR]) / per_vec : 0.0,
			   (double) same[p] / nvec[p]);
	}
	fflush(stdout);

	printf("\n#### One vector per call (an insert), k = %d, %d dims\n\n", k, dim);
	printf("| path | VsKmeansAssign us | VsKmeansAssignPrepared us |\n|---|---:|---:|\n");
	for (int p = VS_KERNEL_NPATHS - 1; p >= 0; p--)
	{
		VsKmeansPrepared *prep;

		if (!set_path((VsKernelPath) p))
			continue;
		prep = VsKmeansPrepare(cent, norms, k, dim, VS_METRIC_L2, &hooks);
		printf("| %s | %.1f | %.1f |\n", VsKernelPathName(p),
			   time_single(cent, norms, k, dim, NULL, synth, 2000, nruns),
			   time_single(cent, norms, k, dim, prep, synth, 2000, nruns));
		hooks.free(prep);
	}
	VsDistanceInit();
	free(norms);
	free(out);
	free(ref);
}

/*
 * bench_assign_real - assignment of each real set to k = 1000 centroids
 * (its first 1000 vectors, which is all this needs), active path.
 */
static void
bench_assign_real(void)
{
	const int	k = 1000;

	printf("\n#### Real sets, k = %d, path %s\n\n", k, VsKernelPathName(VsKernelsActivePath));
	printf("| data | metric | n x dim | median s | vectors/s | ns per pair | GFLOP/s |\n");
	printf("|---|---|---|---:|---:|---:|---:|\n");
	for (int s = 0; s < NSETS; s++)
	{
		DataSet    *ds = &sets[s];
		float	   *norms;
		int32_t    *out;
		double		t;

		if (ds->base == NULL)
			continue;
		norms = malloc(sizeof(float) * k);
		out = malloc(sizeof(int32_t) * ds->n);
		VsKmeansCentroidNorms(ds->base, k, ds->dim, norms);
		t = time_assign(ds->base, norms, k, ds->dim, ds->metric, ds->base,
						ds->n, nruns, out);
		printf("| %s | %s | %d x %d | %.3f | %.0f | %.3f | %.1f |\n",
			   ds->name, metric_names[ds->metric], ds->n, ds->dim, t,
			   ds->n / t, t / ds->n / k * 1e9,
			   2.0 * ds->n * (double) k * ds->dim / t * 1e-9);
		free(norms);
		free(out);
	}
}

/*
 * train_row - one line of section 2: the default (subsampled) seeding
 * and, if "full", full k-means++, both followed by the default Lloyd.
 */
static void
train_row(const char *name, const float *x, int n, int dim, int k,
		  VsMetric metric, int full)
{
	float	   *c = malloc(sizeof(float) * k * dim);
	double		final_inertia[2] = {0, 0};
	double		seeds_inertia[2] = {0, 0};

	for (int f = 0; f <= full; f++)
	{
		VsKmeansOptions opt;
		VsKmeansStats st;
		double		t0,
					t_seed,
					t_all;
		int			r;

		VsKmeansOptionsInit(&opt);
		opt.seed = 1;
		opt.seed_sample = f ? n : 0;

		opt.max_iterations = 0;
		t0 = now_seconds();
		r = VsKmeansTrain(x, n, dim, k, metric, &opt, &hooks, c, &st);
		t_seed = now_seconds() - t0;
		seeds_inertia[f] = VsKmeansInertia(x, n, dim, c, r, metric, &hooks);

		opt.max_iterations = VS_KMEANS_DEFAULT_ITERATIONS;
		t0 = now_seconds();
		r = VsKmeansTrain(x, n, dim, k, metric, &opt, &hooks, c, &st);
		t_all = now_seconds() - t0;
		final_inertia[f] = VsKmeansInertia(x, n, dim, c, r, metric, &hooks);

		printf("| %s | %s | %d x %d | %d | %s (%d) | %.2f | %.2f | %d | %d | %.5g | %.5g |\n",
			   name, metric_names[metric], n, dim, k,
			   f ? "full k-means++" : "subsample", st.seed_sample,
			   t_seed, t_all, st.iterations, st.reseeded, seeds_inertia[f],
			   final_inertia[f]);
		fflush(stdout);
	}
	if (full)
		printf("| | | | | subsample / full | | | | | %+.2f%% | %+.2f%% |\n",
			   100.0 * (seeds_inertia[0] / seeds_inertia[1] - 1.0),
			   100.0 * (final_inertia[0] / final_inertia[1] - 1.0));
	free(c);
}

/*
 * bench_train - section 2.
 */
static void
bench_train(const float *synth)
{
	static const int ks[] = {100, 1000};

	printf("\n### 2. Training (defaults: %d Lloyd rounds at most, tolerance 0.001, seed 1; path %s)\n\n",
		   VS_KMEANS_DEFAULT_ITERATIONS, VsKernelPathName(VsKernelsActivePath));
	printf("| data | metric | n x dim | k | seeding (samples) | seeding s | total s | rounds | re-seeded | inertia of seeds | final inertia |\n");
	printf("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|\n");
	for (int s = 0; s < NSETS; s++)
	{
		DataSet    *ds = &sets[s];

		if (ds->base == NULL)
			continue;
		for (int i = 0; i < 2; i++)
			train_row(ds->name, ds->base, ds->n, ds->dim, ks[i], ds->metric,
					  !quick || ks[i] == 100);
	}
	for (int i = 0; i < 2; i++)
		train_row("synthetic (sample)", synth, TRAIN_SAMPLE, SYNTH_DIM, ks[i],
				  VS_METRIC_L2, !quick || ks[i] == 100);
}

/*
 * bench_build - section 3: what an index build spends in this module.
 */
static void
bench_build(const float *synth, int nsynth, float *cent_out)
{
	const int	k = SYNTH_CLUSTERS;
	VsKmeansOptions opt;
	VsKmeansStats st;
	float	   *norms = malloc(sizeof(float) * k);
	int32_t    *out = malloc(sizeof(int32_t) * nsynth);
	double		t0,
				t_train,
				t_assign;
	int			r;

	VsKmeansOptionsInit(&opt);
	opt.seed = 1;
	t0 = now_seconds();
	r = VsKmeansTrain(synth, TRAIN_SAMPLE, SYNTH_DIM, k, VS_METRIC_L2, &opt,
					  &hooks, cent_out, &st);
	t_train = now_seconds() - t0;
	VsKmeansCentroidNorms(cent_out, r, SYNTH_DIM, norms);
	t0 = now_seconds();
	VsKmeansAssign(cent_out, norms, r, SYNTH_DIM, VS_METRIC_L2, synth, nsynth,
				   out, NULL, &hooks);
	t_assign = now_seconds() - t0;

	printf("\n### 3. Index-build equivalent (path %s)\n\n", VsKernelPathName(VsKernelsActivePath));
	printf("| step | s |\n|---|---:|\n");
	printf("| train k = %d on %d of the %d x %d synthetic vectors (%d rounds) | %.2f |\n",
		   r, TRAIN_SAMPLE, nsynth, SYNTH_DIM, st.iterations, t_train);
	printf("| assign all %d vectors | %.2f |\n", nsynth, t_assign);
	printf("| **total** | **%.2f** |\n", t_train + t_assign);
	free(norms);
	free(out);
}

/*
 * top10_ip - ids of the 10 largest inner products of q with the base.
 */
static void
top10_ip(const float *q, const float *base, int n, int dim, int32_t *ids)
{
	float		best[10];

	for (int t = 0; t < 10; t++)
	{
		best[t] = -INFINITY;
		ids[t] = -1;
	}
	for (int i = 0; i < n; i++)
	{
		float		v = VsKernels.inner_product(q, base + (size_t) i * dim, dim);
		int			t;

		if (v <= best[9])
			continue;
		for (t = 9; t > 0 && best[t - 1] < v; t--)
		{
			best[t] = best[t - 1];
			ids[t] = ids[t - 1];
		}
		best[t] = v;
		ids[t] = i;
	}
}

/*
 * list_rank - rank[j] = position of list j when the lists are sorted by
 * decreasing inner product of q with their centroids.
 */
static void
list_rank(const float *q, const float *cent, int k, int dim, int *rank,
		  float *score, int *order)
{
	for (int j = 0; j < k; j++)
	{
		score[j] = VsKernels.inner_product(q, cent + (size_t) j * dim, dim);
		order[j] = j;
	}
	/* insertion sort: k is a few hundred */
	for (int a = 1; a < k; a++)
	{
		int			j = order[a],
					b = a;

		while (b > 0 && score[order[b - 1]] < score[j])
		{
			order[b] = order[b - 1];
			b--;
		}
		order[b] = j;
	}
	for (int a = 0; a < k; a++)
		rank[order[a]] = a;
}

/* the IP set-ups compared in section 4 */
typedef struct IpSetup
{
	const char *name;
	VsKmeansIpTraining training;
	VsMetric	rows;			/* how rows are assigned to lists */
} IpSetup;

static const IpSetup ip_setups[] = {
	{"spherical, rows by IP", VS_KMEANS_IP_SPHERICAL, VS_METRIC_IP},
	{"euclidean, rows by IP", VS_KMEANS_IP_EUCLIDEAN, VS_METRIC_IP},
	{"mean (IP Lloyd), rows by IP", VS_KMEANS_IP_MEAN, VS_METRIC_IP},
	{"euclidean, rows by L2", VS_KMEANS_IP_EUCLIDEAN, VS_METRIC_L2},
};
#define NIP_SETUPS ((int) (sizeof(ip_setups) / sizeof(ip_setups[0])))

/* scan budgets, as fractions of the rows */
static const double ip_budgets[] = {0.01, 0.02, 0.05, 0.10};
#define NIP_BUDGETS ((int) (sizeof(ip_budgets) / sizeof(ip_budgets[0])))

/*
 * ip_study - section 4 for one base set.
 *
 * For each set-up: train k = sqrt(n) lists, put every row in a list, then
 * for each query visit the lists in decreasing inner product of the query
 * with their centroids, as long as the rows visited stay within the
 * budget (the first list is always visited, however large), and count
 * the true top-10 found.  An index's scan cost is the rows it visits, so
 * set-ups are compared at equal budgets.
 */
static void
ip_study(const char *name, const float *base, int n, int dim,
		 const float *queries, int nq)
{
	const int	k = (int) (sqrt((double) n) + 0.5);
	int32_t    *truth = malloc(sizeof(int32_t) * 10 * nq);
	float	   *cent = malloc(sizeof(float) * k * dim);
	float	   *norms = malloc(sizeof(float) * k);
	int32_t    *list = malloc(sizeof(int32_t) * n);
	int		   *size = malloc(sizeof(int) * k);
	int		   *rank = malloc(sizeof(int) * k);
	int		   *order = malloc(sizeof(int) * k);
	float	   *score = malloc(sizeof(float) * k);

	for (int q = 0; q < nq; q++)
		top10_ip(queries + (size_t) q * dim, base, n, dim, truth + 10 * q);

	for (int t = 0; t < NIP_SETUPS; t++)
	{
		VsKmeansOptions opt;
		double		t0,
					secs,
					sumsq = 0,
					recall[NIP_BUDGETS] = {0},
					scanned[NIP_BUDGETS] = {0};
		int			r,
					largest = 0,
					empty = 0;

		VsKmeansOptionsInit(&opt);
		opt.seed = 1;
		opt.ip_training = ip_setups[t].training;
		t0 = now_seconds();
		r = VsKmeansTrain(base, n, dim, k, VS_METRIC_IP, &opt, &hooks, cent, NULL);
		secs = now_seconds() - t0;
		VsKmeansCentroidNorms(cent, r, dim, norms);
		VsKmeansAssign(cent, norms, r, dim, ip_setups[t].rows, base, n, list,
					   NULL, &hooks);
		memset(size, 0, sizeof(int) * r);
		for (int i = 0; i < n; i++)
			size[list[i]]++;
		for (int j = 0; j < r; j++)
		{
			sumsq += (double) size[j] * size[j];
			if (size[j] > largest)
				largest = size[j];
			empty += (size[j] == 0);
		}
		for (int q = 0; q < nq; q++)
		{
			list_rank(queries + (size_t) q * dim, cent, r, dim, rank, score, order);
			for (int b = 0; b < NIP_BUDGETS; b++)
			{
				double		budget = ip_budgets[b] * n;
				long		seen = 0;
				int			probes = 0;

				while (probes < r &&
					   (probes == 0 || seen + size[order[probes]] <= budget))
					seen += size[order[probes++]];
				scanned[b] += seen;
				for (int h = 0; h < 10; h++)
					recall[b] += (rank[list[truth[10 * q + h]]] < probes);
			}
		}
		printf("| %s | %s | %d | %.2f |", name, ip_setups[t].name, r, secs);
		for (int b = 0; b < NIP_BUDGETS; b++)
			printf(" %.3f (%.1f%%) |", recall[b] / (10.0 * nq),
				   100.0 * scanned[b] / nq / n);
		printf(" %.2f | %.1f | %d |\n", sumsq * r / ((double) n * n),
			   (double) largest * r / n, empty);
		fflush(stdout);
	}
	free(truth);
	free(cent);
	free(norms);
	free(list);
	free(size);
	free(rank);
	free(order);
	free(score);
}

/*
 * bench_ip - section 4.
 */
static void
bench_ip(void)
{
	printf("\n### 4. Training for inner product\n\n");
	printf("k = round(sqrt(n)) lists; queries (the first %d of each set) are routed by inner product with the centroids in every set-up; recall@10 against a brute-force maximum-inner-product top-10 when visiting lists in that order within a budget of 1%%, 2%%, 5%%, 10%% of the rows (in brackets: the rows actually visited, which exceed the budget when the first list alone does); imbalance = k * sum(size^2) / n^2 (1 = even); largest = largest list / mean list.\n\n",
		   IP_QUERIES);
	printf("| data | set-up | k | train s | recall @1%% | recall @2%% | recall @5%% | recall @10%% | imbalance | largest | empty lists |\n");
	printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");

	for (int s = 0; s < NSETS; s++)
	{
		DataSet    *ds = &sets[s];
		int			nq;

		if (ds->base == NULL || ds->query == NULL)
			continue;
		nq = ds->nq < IP_QUERIES ? ds->nq : IP_QUERIES;
		if (ds->metric == VS_METRIC_COSINE)
		{
			/*
			 * GloVe comes normalised, where IP = cosine; give each row a
			 * log-normal norm (sigma 0.5) to make a maximum-inner-product
			 * set with varied norms.  Semi-synthetic: the directions are
			 * real, the norms are not.
			 */
			float	   *scaled = malloc(sizeof(float) * (size_t) ds->n * ds->dim);
			uint64_t	saved = rng_state;

			rng_state = 777;
			for (int i = 0; i < ds->n; i++)
			{
				double		f = exp(0.5 * rng_gauss());

				for (int d = 0; d < ds->dim; d++)
					scaled[(size_t) i * ds->dim + d] =
						(float) (ds->base[(size_t) i * ds->dim + d] * f);
			}
			rng_state = saved;
			ip_study("glove6b-100, log-normal norms", scaled, ds->n, ds->dim,
					 ds->query, nq);
			free(scaled);
		}
		else
			ip_study(ds->name, ds->base, ds->n, ds->dim, ds->query, nq);
	}
}

/*
 * bench_rounds - section 5: inertia and time after 5 .. 40 Lloyd rounds
 * (tolerance 0, so no early stop), SIFT at k = 1000, to choose the
 * default number of rounds.  Each line is a fresh run with the same
 * seed, so it passes through the states of the shorter runs.
 */
static void
bench_rounds(void)
{
	static const int rounds[] = {0, 5, 10, 15, 20, 25, 40};
	DataSet    *ds = &sets[0];
	const int	k = 1000;
	float	   *c;
	double		base_inertia = 0;

	if (ds->base == NULL)
		return;
	c = malloc(sizeof(float) * k * ds->dim);
	printf("\n### 5. Lloyd rounds (%s, k = %d, tolerance 0, seed 1)\n\n", ds->name, k);
	printf("| rounds | total s | inertia | vs 40 rounds | samples that changed list in the last round |\n");
	printf("|---:|---:|---:|---:|---:|\n");
	for (int i = (int) (sizeof(rounds) / sizeof(rounds[0])) - 1; i >= 0; i--)
	{
		VsKmeansOptions opt;
		VsKmeansStats st;
		double		t0,
					secs,
					inertia;
		int			r;

		VsKmeansOptionsInit(&opt);
		opt.seed = 1;
		opt.tolerance = 0;
		opt.max_iterations = rounds[i];
		t0 = now_seconds();
		r = VsKmeansTrain(ds->base, ds->n, ds->dim, k, ds->metric, &opt, &hooks, c, &st);
		secs = now_seconds() - t0;
		inertia = VsKmeansInertia(ds->base, ds->n, ds->dim, c, r, ds->metric, &hooks);
		if (base_inertia == 0)
			base_inertia = inertia;
		printf("| %d | %.2f | %.5g | %+.2f%% | %lld |\n", st.iterations, secs, inertia,
			   100.0 * (inertia / base_inertia - 1.0), (long long) st.changed);
		fflush(stdout);
	}
	free(c);
}

/*
 * main - parse options, load data, run the sections.
 */
int
main(int argc, char **argv)
{
	int			nsynth;
	float	   *synth;
	float	   *cent;
	int			have_data = 0;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
		{
			nruns = atoi(argv[++i]);
			if (nruns < 1 || nruns > MAX_RUNS)
			{
				fprintf(stderr, "--runs: 1 to %d\n", MAX_RUNS);
				return 2;
			}
		}
		else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
			data_dir = argv[++i];
		else if (strcmp(argv[i], "--sections") == 0 && i + 1 < argc)
			sections = argv[++i];
		else
		{
			fprintf(stderr, "usage: %s [--quick] [--runs N] [--data DIR] [--sections 12345]\n",
					argv[0]);
			return 2;
		}
	}
	if (data_dir == NULL)
		data_dir = getenv("VECSTORE_DATA");
	if (data_dir == NULL)
		data_dir = "../shared/data";
	if (quick)
		nruns = 1;

	VsDistanceInit();
	printf("## IVF training and assignment (bench_kmeans%s)\n\n", quick ? " --quick" : "");
	printf("Kernel path in use: %s. Data: %s.\n", VsKernelPathName(VsKernelsActivePath),
		   data_dir);

	for (int s = 0; s < NSETS; s++)
	{
		char		path[1024];

		snprintf(path, sizeof(path), "%s/%s/base.fvecs", data_dir, sets[s].dir);
		sets[s].base = load_fvecs(path, -1, &sets[s].n, &sets[s].dim);
		snprintf(path, sizeof(path), "%s/%s/query.fvecs", data_dir, sets[s].dir);
		sets[s].query = load_fvecs(path, -1, &sets[s].nq, &sets[s].dim);
		have_data |= (sets[s].base != NULL);
	}
	if (!have_data)
		printf("No real data found: real-data sections skipped.\n");

	nsynth = quick ? SYNTH_N / 5 : SYNTH_N;
	synth = make_synthetic(nsynth, SYNTH_DIM);
	cent = malloc(sizeof(float) * SYNTH_CLUSTERS * SYNTH_DIM);

	/* section 1 uses the centroids section 3 trains */
	if (strchr(sections, '1') || strchr(sections, '3'))
		bench_build(synth, nsynth, cent);
	if (strchr(sections, '1'))
	{
		bench_assign(synth, nsynth, cent, SYNTH_CLUSTERS);
		bench_assign_real();
	}
	if (strchr(sections, '2'))
		bench_train(synth);
	if (strchr(sections, '4'))
		bench_ip();
	if (strchr(sections, '5'))
		bench_rounds();

	free(synth);
	free(cent);
	for (int s = 0; s < NSETS; s++)
	{
		free(sets[s].base);
		free(sets[s].query);
	}
	return 0;
}
