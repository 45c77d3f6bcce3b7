/*-------------------------------------------------------------------------
 *
 * bench_hnsw.c
 *	  Benchmark: the HNSW graph inside a cluster (src/vshnsw.c).
 *
 * Not a test: it exits 0 (2 on bad usage; 1 if section 6's parallel
 * build gives other bytes than the sequential one).  It prints
 * markdown tables (bench/RESULTS-hnsw.md is made from them):
 *
 *	1. synthetic clusters of 1,000 to 100,000 vectors (1,000,000 with
 *	   --big), 128 dims, L2: build time per vector, bytes per vector of the
 *	   block, build scratch, validation time, recall@10 and queries per
 *	   second against ef_search;
 *	2. the real sets (../shared/data or $VECSTORE_DATA) taken as single
 *	   clusters: SIFT (L2) first 20,000 and all 50,000, GloVe (cosine)
 *	   first 20,000 and all 100,000, Fashion-MNIST (L2) all 20,000; the
 *	   same figures, and the flat scan's speed beside them;
 *	3. build options on SIFT 50,000: m and ef_construction against build
 *	   time, size, and the ef_search (and speed) that reaches recall 0.95
 *	   and 0.99;
 *	4. flat scan or graph: for cluster sizes 100 .. 100,000 at 100 (GloVe),
 *	   128 (SIFT) and 784 (Fashion-MNIST) dims, the time of an exact flat
 *	   scan of the cluster against the graph search at the smallest
 *	   ef_search whose recall@10 (against that flat scan) is >= 0.95; the
 *	   crossover is the size from which the graph is faster;
 *	5. the distance-callback and batch paths against the float path (with
 *	   callbacks that compute the same float distances), and inner
 *	   product graphs (raw Fashion-MNIST and SIFT, GloVe with log-normal
 *	   norms);
 *	6. graphs whose level 0 comes from exact neighbour lists (the GPU
 *	   service's build) against the incremental build, on IVF-cell-shaped
 *	   clusters (below) of 2,000, 5,000 and 20,000 rows of each real set:
 *	   build times (the lists' CPU reference time apart), the same build
 *	   on a pool of one thread per CPU (cuda/vsgpu_pool.c, as the helper
 *	   runs it; it must give the same bytes, or the benchmark exits 1),
 *	   recall@10 and time per query at each ef_search.
 *
 * Method.  CLOCK_MONOTONIC.  A timing runs every query of the set once to
 * warm the caches, then whole passes over the queries until at least
 * 100 ms (25 ms with --quick) have passed; the figure is the median over
 * --runs such timings (default 3) of the time per query.  Data and graph
 * are in memory and warm (the index reads them from a mapped segment in
 * the page cache, which after the first touch is the same).  Recall@10 is
 * tie-aware: a result counts if its distance is within the 10th exact
 * distance (plus 1e-6 relative, for cosine's rounding).  One thread,
 * except section 6's parallel builds.
 *
 * Section 4's clusters are the n base vectors nearest (by the set's
 * metric) to a seed vector of the base set, which is the shape of an IVF
 * cell, and its queries are the set's queries nearest to the same seed
 * (those a router would send there): 200 of them, or all if fewer.  Three
 * seeds; the times are summed over them and the ef is the largest of the
 * three (each seed's smallest ef reaching 0.95).
 *
 * Usage: bench_hnsw [--quick] [--big] [--runs N] [--data DIR]
 *					 [--sections 123456]
 *
 * IDENTIFICATION
 *	  bench/bench_hnsw.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vsdistance.h"
#include "vsgpu_pool.h"
#include "vshnsw.h"
#include "../test/kernels/vsfvecs.h"
#include "../test/kernels/vsrng.h"

#define MAX_RUNS		15
#define K				10
#define MAX_EF			512
#define NQ_SYNTH		500
#define NQ_REAL			1000
#define NQ_CROSS		200
#define CROSS_SEEDS		3

/* ef_search values tried, in order */
static const int ef_ladder[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
#define N_EF ((int) (sizeof(ef_ladder) / sizeof(ef_ladder[0])))

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
	{"SIFT", "sift128-photos-euclidean", VS_METRIC_L2, NULL, 0, 0, NULL, 0},
	{"GloVe", "glove6b-100-angular", VS_METRIC_COSINE, NULL, 0, 0, NULL, 0},
	{"Fashion-MNIST", "fashion-mnist-784-euclidean", VS_METRIC_L2, NULL, 0, 0, NULL, 0},
};
#define N_SETS ((int) (sizeof(sets) / sizeof(sets[0])))

static int	quick;
static int	big;
static int	runs = 3;
static double min_time = 0.1;
static const char *data_dir;
static const char *const metric_names[] = {"?", "L2", "IP", "cosine"};

/*
 * now - seconds from CLOCK_MONOTONIC.
 */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * plain_alloc / plain_free / no_interrupts - the hooks.
 */
static void *
plain_alloc(size_t size)
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
plain_free(void *p)
{
	free(p);
}

static const VsHnswHooks hooks = {plain_alloc, plain_free, NULL, NULL, NULL, NULL, NULL};

/*
 * compare_doubles - for qsort.
 */
static int
compare_doubles(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * load_sets - read every real set that is present.
 */
static void
load_sets(void)
{
	for (int s = 0; s < N_SETS; s++)
	{
		char		path[1024];
		int			qdim;

		snprintf(path, sizeof(path), "%s/%s/base.fvecs", data_dir, sets[s].dir);
		sets[s].base = load_fvecs(path, 1000000, &sets[s].n, &sets[s].dim);
		snprintf(path, sizeof(path), "%s/%s/query.fvecs", data_dir, sets[s].dir);
		sets[s].query = load_fvecs(path, 100000, &sets[s].nq, &qdim);
		if (sets[s].base == NULL || sets[s].query == NULL || qdim != sets[s].dim)
		{
			free(sets[s].base);
			free(sets[s].query);
			sets[s].base = NULL;
			sets[s].query = NULL;
		}
	}
}

/*
 * make_synthetic - n (+ nq queries) vectors of "dim" dims shaped like one
 * IVF cell of embeddings: a low intrinsic dimension (a mixture of "nc"
 * gaussians in a 24-dim latent space, centres "spread" apart per latent
 * dimension, mapped by a fixed random linear map, plus a little isotropic
 * noise).  Section 1 uses 8 overlapping components (spread 1.5); with 50
 * components 3 apart (well-separated groups, which IVF would have split
 * into different cells) recall plateaus near 0.98 from ef 48 to 192 at
 * 100,000 vectors.  malloc'd, queries after the n base rows.
 */
static float *
make_synthetic(int n, int nq, int dim, uint64_t seed, int nc, double spread)
{
	const int	latent = 24;
	float	   *map = malloc(sizeof(float) * latent * dim);
	float	   *centres = malloc(sizeof(float) * (size_t) nc * latent);
	float	   *x = malloc(sizeof(float) * (size_t) (n + nq) * dim);
	float		z[24];

	rng_state = seed;
	for (int i = 0; i < latent * dim; i++)
		map[i] = (float) (rng_gauss() / sqrt((double) latent));
	for (int i = 0; i < nc * latent; i++)
		centres[i] = (float) (spread * rng_gauss());
	for (int i = 0; i < n + nq; i++)
	{
		int			c = (int) (rng_next() % nc);
		float	   *row = x + (size_t) i * dim;

		for (int l = 0; l < latent; l++)
			z[l] = centres[c * latent + l] + (float) rng_gauss();
		for (int d = 0; d < dim; d++)
		{
			double		s = 0.05 * rng_gauss();

			for (int l = 0; l < latent; l++)
				s += z[l] * map[l * dim + d];
			row[d] = (float) s;
		}
	}
	free(centres);
	free(map);
	return x;
}

/* a graph with what it took to build */
typedef struct Built
{
	void	   *graph;
	size_t		size;
	double		seconds;
} Built;

/*
 * build_graph - build with timing; m/efc <= 0 mean the defaults.
 */
static Built
build_graph_par(const float *x, int n, int dim, VsMetric metric, int m,
				int efc, const uint32_t *lists, int nlists,
				const VsHnswParallel *parallel)
{
	VsHnswBuildOptions opt;
	Built		b;
	double		t0;

	VsHnswBuildOptionsInit(&opt);
	if (m > 0)
		opt.m = m;
	if (efc > 0)
		opt.ef_construction = efc;
	opt.neighbours = lists;
	opt.nneighbours = nlists;
	opt.parallel = parallel;
	b.size = VsHnswSerializedSize(n, metric, &opt);
	b.graph = aligned_alloc(64, (b.size + 63) / 64 * 64);
	t0 = now();
	VsHnswBuild(x, n, dim, metric, &opt, &hooks, b.graph, b.size);
	b.seconds = now() - t0;
	return b;
}

static Built
build_graph_lists(const float *x, int n, int dim, VsMetric metric, int m,
				  int efc, const uint32_t *lists, int nlists)
{
	return build_graph_par(x, n, dim, metric, m, efc, lists, nlists, NULL);
}

static Built
build_graph(const float *x, int n, int dim, VsMetric metric, int m, int efc)
{
	return build_graph_lists(x, n, dim, metric, m, efc, NULL, 0);
}

/* a VsHnswParallel on a thread pool, as the GPU helper runs builds */
static void
pool_run(void *ctx, int ntasks, VsHnswTaskFn fn, void *arg)
{
	vs_pool_run((VsPool *) ctx, 0, ntasks, fn, arg);
}

/* a set of queries with its exact answers */
typedef struct Truth
{
	const float *x;				/* base */
	int			n;
	int			dim;
	VsMetric	metric;
	const float *q;				/* queries, row-major */
	int			nq;
	float	   *kth;			/* nq: the K-th exact distance */
} Truth;

/*
 * truth_init - exact answers by the flat scan.
 */
static void
truth_init(Truth *t, const float *x, int n, int dim, VsMetric metric,
		   const float *q, int nq)
{
	VsHnswResult res[K];

	t->x = x;
	t->n = n;
	t->dim = dim;
	t->metric = metric;
	t->q = q;
	t->nq = nq;
	t->kth = malloc(sizeof(float) * nq);
	for (int i = 0; i < nq; i++)
	{
		int			c = VsHnswFlatSearch(x, n, dim, metric, q + (size_t) i * dim, K, res);

		t->kth[i] = res[c - 1].distance;
	}
}

/*
 * graph_recall - tie-aware recall@K of the graph at one ef.
 */
static double
graph_recall(const Truth *t, const void *g, int ef, VsHnswScratch *scratch)
{
	VsHnswResult res[MAX_EF];
	long		hits = 0;

	for (int i = 0; i < t->nq; i++)
	{
		int			c = VsHnswSearch(g, t->x, t->q + (size_t) i * t->dim, K, ef, scratch, res);
		float		lim = t->kth[i] + 1e-6f * (fabsf(t->kth[i]) + 1.0f);

		for (int j = 0; j < c; j++)
			hits += (res[j].distance <= lim);
	}
	return (double) hits / ((double) t->nq * (t->n < K ? t->n : K));
}

/* what a timed pass runs */
typedef enum Mode
{
	MODE_GRAPH,
	MODE_CALLBACK,
	MODE_BATCH,
	MODE_FLAT
} Mode;

/* the callback path's context: what VsHnswSearch computes */
typedef struct FloatCtx
{
	const float *x;
	const float *q;
	int			dim;
	VsMetric	metric;
	const float *inv;
	float		qinv;
} FloatCtx;

/*
 * float_distance - the float path's distance through the callback.
 */
static float
float_distance(void *arg, uint32_t id)
{
	FloatCtx   *c = arg;
	const float *v = c->x + (size_t) id * c->dim;

	if (c->metric == VS_METRIC_L2)
		return VsKernels.l2_squared(c->q, v, c->dim);
	if (c->metric == VS_METRIC_IP)
		return -VsKernels.inner_product(c->q, v, c->dim);
	return 1.0f - VsKernels.inner_product(c->q, v, c->dim) * (c->qinv * c->inv[id]);
}

/*
 * float_distances - the batch form of float_distance.
 */
static void
float_distances(void *arg, const uint32_t *ids, uint32_t n, float *out)
{
	for (uint32_t i = 0; i < n; i++)
		out[i] = float_distance(arg, ids[i]);
}

/*
 * one_pass - run every query once; returns a checksum so nothing is
 * optimised away.
 */
static uint64_t
one_pass(const Truth *t, const void *g, int ef, VsHnswScratch *scratch, Mode mode)
{
	VsHnswResult res[MAX_EF];
	uint64_t	sum = 0;

	for (int i = 0; i < t->nq; i++)
	{
		const float *q = t->q + (size_t) i * t->dim;
		int			c;

		if (mode == MODE_FLAT)
			c = VsHnswFlatSearch(t->x, t->n, t->dim, t->metric, q, K, res);
		else if (mode == MODE_GRAPH)
			c = VsHnswSearch(g, t->x, q, K, ef, scratch, res);
		else
		{
			float		nrm = VsKernels.inner_product(q, q, t->dim);
			FloatCtx	ctx = {t->x, q, t->dim, t->metric, VsHnswInvNorms(g),
			nrm > 0.0f ? (float) (1.0 / sqrt((double) nrm)) : 0.0f};

			if (mode == MODE_CALLBACK)
				c = VsHnswSearchWith(g, float_distance, &ctx, K, ef, scratch, res);
			else
				c = VsHnswSearchBatch(g, float_distances, &ctx, K, ef, scratch, res);
		}
		sum += (uint64_t) c + (c > 0 ? res[0].id : 0);
	}
	return sum;
}

static volatile uint64_t sink;

/*
 * time_per_query - median seconds per query (see the file header).
 */
static double
time_per_query(const Truth *t, const void *g, int ef, VsHnswScratch *scratch, Mode mode)
{
	double		samples[MAX_RUNS];

	sink += one_pass(t, g, ef, scratch, mode);	/* warm */
	for (int r = 0; r < runs; r++)
	{
		double		t0 = now(),
					el;
		long		passes = 0;

		do
		{
			sink += one_pass(t, g, ef, scratch, mode);
			passes++;
			el = now() - t0;
		} while (el < min_time);
		samples[r] = el / ((double) passes * t->nq);
	}
	qsort(samples, runs, sizeof(double), compare_doubles);
	return samples[runs / 2];
}

/*
 * ef_table - recall and QPS against ef_search for one graph, one row per
 * ef until recall reaches 0.999 (or the ladder ends).
 */
static void
ef_table(const char *label, const Truth *t, const void *g, VsHnswScratch *scratch,
		 double flat_qps)
{
	for (int e = 0; e < N_EF; e++)
	{
		double		recall = graph_recall(t, g, ef_ladder[e], scratch);
		double		tq = time_per_query(t, g, ef_ladder[e], scratch, MODE_GRAPH);

		printf("| %s | %d | %.4f | %.0f | %.1f | %.1fx |\n", label, ef_ladder[e], recall,
			   1.0 / tq, tq * 1e6, flat_qps > 0 ? (1.0 / tq) / flat_qps : 0.0);
		fflush(stdout);
		if (recall >= 0.999)
			break;
	}
}

/*
 * describe_row - build and size figures of one graph.
 */
static void
describe_row(const char *label, const Built *b, int n, int dim, VsMetric metric, int m, int efc)
{
	VsHnswInfo info;
	double		t0,
				tv;
	const char *why;

	t0 = now();
	why = VsHnswValidate(b->graph, b->size, n, dim, metric);
	tv = now() - t0;
	VsHnswDescribe(b->graph, &info);
	printf("| %s | %d | %d | %s | %d/%d | %.1f | %.1f | %.1f | %.2f | %d | %.1f | %s |\n",
		   label, n, dim, metric_names[metric], m, efc,
		   b->seconds, b->seconds / n * 1e6, (double) b->size / n,
		   (double) VsHnswBuildMemory(n, NULL) / n, info.nlevels,
		   (double) info.level_edges[0] / (n > 0 ? n : 1), why ? why : "ok");
	printf("|  | validation: %.2f ms (%.1f ns per node) |||||||||||\n", tv * 1e3, tv / n * 1e9);
	fflush(stdout);
}

/*
 * section_synthetic - section 1.
 */
static void
section_synthetic(void)
{
	int			sizes[] = {1000, 10000, 100000, 1000000};
	int			nsizes = big ? 4 : 3;

	printf("\n## 1. Synthetic clusters (128 dims, L2, m 16, ef_construction 64)\n\n");
	printf("IVF-cell-shaped data: 8 overlapping gaussians in a 24-dim latent space, mapped to 128 dims.\n\n");
	printf("| cluster | n | dim | metric | m/efc | build s | build us/vector | bytes/vector | build scratch B/vector | levels | level-0 degree | valid |\n");
	printf("|---|--:|--:|---|---|--:|--:|--:|--:|--:|--:|---|\n");
	for (int s = 0; s < nsizes; s++)
	{
		int			n = sizes[s];
		int			nq = quick ? NQ_SYNTH / 5 : NQ_SYNTH;
		float	   *x = make_synthetic(n, nq, 128, 1000 + s, 8, 1.5);
		Built		b = build_graph(x, n, 128, VS_METRIC_L2, 0, 0);
		char		label[64];

		snprintf(label, sizeof(label), "synthetic %d", n);
		describe_row(label, &b, n, 128, VS_METRIC_L2, 16, 64);
		free(b.graph);
		free(x);
	}

	printf("\n| cluster | ef_search | recall@10 | QPS | us/query | x flat |\n|---|--:|--:|--:|--:|--:|\n");
	for (int s = 0; s < nsizes; s++)
	{
		int			n = sizes[s];
		int			nq = quick ? NQ_SYNTH / 5 : NQ_SYNTH;
		float	   *x = make_synthetic(n, nq, 128, 1000 + s, 8, 1.5);
		Built		b = build_graph(x, n, 128, VS_METRIC_L2, 0, 0);
		size_t		ss = VsHnswScratchSize(n, MAX_EF);
		VsHnswScratch *scratch = VsHnswScratchInit(malloc(ss), ss, n, MAX_EF);
		Truth		t;
		double		flat;
		char		label[64];

		truth_init(&t, x, n, 128, VS_METRIC_L2, x + (size_t) n * 128, nq);
		flat = time_per_query(&t, NULL, 0, NULL, MODE_FLAT);
		snprintf(label, sizeof(label), "synthetic %d", n);
		printf("| %s | flat | 1.0000 | %.0f | %.1f | 1.0x |\n", label, 1.0 / flat, flat * 1e6);
		ef_table(label, &t, b.graph, scratch, 1.0 / flat);
		free(t.kth);
		free(scratch);
		free(b.graph);
		free(x);
	}
}

/*
 * section_real - section 2.
 */
static void
section_real(void)
{
	static const struct
	{
		int			set;
		int			n;
	}			cfg[] = {{0, 20000}, {0, 50000}, {1, 20000}, {1, 100000}, {2, 20000}};
	int			ncfg = sizeof(cfg) / sizeof(cfg[0]);
	Built		built[8];

	printf("\n## 2. Real sets as single clusters (m 16, ef_construction 64)\n\n");
	printf("| cluster | n | dim | metric | m/efc | build s | build us/vector | bytes/vector | build scratch B/vector | levels | level-0 degree | valid |\n");
	printf("|---|--:|--:|---|---|--:|--:|--:|--:|--:|--:|---|\n");
	for (int c = 0; c < ncfg; c++)
	{
		DataSet    *d = &sets[cfg[c].set];
		int			n = cfg[c].n < d->n ? cfg[c].n : d->n;
		char		label[64];

		built[c].graph = NULL;
		if (d->base == NULL)
			continue;
		built[c] = build_graph(d->base, n, d->dim, d->metric, 0, 0);
		snprintf(label, sizeof(label), "%s %d", d->name, n);
		describe_row(label, &built[c], n, d->dim, d->metric, 16, 64);
	}

	printf("\n| cluster | ef_search | recall@10 | QPS | us/query | x flat |\n|---|--:|--:|--:|--:|--:|\n");
	for (int c = 0; c < ncfg; c++)
	{
		DataSet    *d = &sets[cfg[c].set];
		int			n = cfg[c].n < d->n ? cfg[c].n : d->n;
		int			nq = d->nq < NQ_REAL ? d->nq : NQ_REAL;
		size_t		ss;
		VsHnswScratch *scratch;
		Truth		t;
		double		flat;
		char		label[64];

		if (built[c].graph == NULL)
			continue;
		if (quick)
			nq /= 5;
		ss = VsHnswScratchSize(n, MAX_EF);
		scratch = VsHnswScratchInit(malloc(ss), ss, n, MAX_EF);
		truth_init(&t, d->base, n, d->dim, d->metric, d->query, nq);
		flat = time_per_query(&t, NULL, 0, NULL, MODE_FLAT);
		snprintf(label, sizeof(label), "%s %d", d->name, n);
		printf("| %s | flat | 1.0000 | %.0f | %.1f | 1.0x |\n", label, 1.0 / flat, flat * 1e6);
		ef_table(label, &t, built[c].graph, scratch, 1.0 / flat);
		free(t.kth);
		free(scratch);
		free(built[c].graph);
	}
}

/*
 * ef_for_recall - the smallest ladder ef reaching "target" (0 if none),
 * with its time per query.
 */
static int
ef_for_recall(const Truth *t, const void *g, VsHnswScratch *scratch, double target,
			  double *tq, double *recall_out)
{
	for (int e = 0; e < N_EF; e++)
	{
		double		recall = graph_recall(t, g, ef_ladder[e], scratch);

		if (recall >= target)
		{
			*tq = time_per_query(t, g, ef_ladder[e], scratch, MODE_GRAPH);
			*recall_out = recall;
			return ef_ladder[e];
		}
	}
	*tq = 0.0;
	*recall_out = 0.0;
	return 0;
}

/*
 * section_options - section 3.
 */
static void
section_options(void)
{
	DataSet    *d = &sets[0];
	static const int ms[] = {8, 12, 16, 24, 32};
	static const int efcs[] = {32, 64, 128};
	int			nq;
	Truth		t;
	size_t		ss;
	VsHnswScratch *scratch;

	if (d->base == NULL)
	{
		printf("\n## 3. Build options: skipped (no SIFT data)\n");
		return;
	}
	nq = d->nq < NQ_REAL ? d->nq : NQ_REAL;
	if (quick)
		nq /= 5;
	printf("\n## 3. Build options on SIFT %d (L2)\n\n", d->n);
	printf("| m | ef_construction | build us/vector | bytes/vector | ef for 0.95 | us/query | ef for 0.99 | us/query |\n");
	printf("|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	ss = VsHnswScratchSize(d->n, MAX_EF);
	scratch = VsHnswScratchInit(malloc(ss), ss, d->n, MAX_EF);
	truth_init(&t, d->base, d->n, d->dim, d->metric, d->query, nq);
	for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); mi++)
	{
		for (size_t ei = 0; ei < sizeof(efcs) / sizeof(efcs[0]); ei++)
		{
			Built		b;
			double		t95,
						t99,
						r95,
						r99;
			int			e95,
						e99;

			if (quick && !(ms[mi] == 16 || efcs[ei] == 64))
				continue;
			b = build_graph(d->base, d->n, d->dim, d->metric, ms[mi], efcs[ei]);
			e95 = ef_for_recall(&t, b.graph, scratch, 0.95, &t95, &r95);
			e99 = ef_for_recall(&t, b.graph, scratch, 0.99, &t99, &r99);
			printf("| %d | %d | %.1f | %.1f | %d | %.1f | %d | %.1f |\n", ms[mi], efcs[ei],
				   b.seconds / d->n * 1e6, (double) b.size / d->n, e95, t95 * 1e6, e99, t99 * 1e6);
			fflush(stdout);
			free(b.graph);
		}
	}
	free(t.kth);
	free(scratch);
}

/* a vector's distance to the seed, for sorting a ball */
typedef struct Ranked
{
	float		dist;
	int			id;
} Ranked;

/*
 * compare_ranked - by distance, then id.
 */
static int
compare_ranked(const void *a, const void *b)
{
	const Ranked *x = a,
			   *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * ball - the "count" rows of src nearest to seed, copied into a new
 * malloc'd array, nearest first.
 */
static float *
ball(const float *src, int n, int dim, VsMetric metric, const float *seed, int count)
{
	Ranked	   *r = malloc(sizeof(Ranked) * n);
	float	   *out = malloc(sizeof(float) * (size_t) count * dim);

	for (int i = 0; i < n; i++)
	{
		r[i].dist = VsHnswDistance(metric, seed, src + (size_t) i * dim, dim);
		r[i].id = i;
	}
	qsort(r, n, sizeof(Ranked), compare_ranked);
	for (int i = 0; i < count; i++)
		memcpy(out + (size_t) i * dim, src + (size_t) r[i].id * dim, sizeof(float) * dim);
	free(r);
	return out;
}

/*
 * section_crossover - section 4.
 */
static void
section_crossover(void)
{
	static const int sizes[] = {100, 200, 500, 1000, 1500, 2000, 3000, 5000, 10000,
	20000, 50000, 100000};
	int			nsizes = sizeof(sizes) / sizeof(sizes[0]);

	printf("\n## 4. Flat scan or graph (m 16, ef_construction 64; recall@10 >= 0.95 against the flat scan)\n\n");
	printf("| set | dim | cluster size | flat us/query | ef_search for 0.95 | recall@10 | graph us/query | flat/graph | recall@10 at ef %d | graph us/query at ef %d | flat/graph at ef %d |\n",
		   VS_HNSW_DEFAULT_EF_SEARCH, VS_HNSW_DEFAULT_EF_SEARCH, VS_HNSW_DEFAULT_EF_SEARCH);
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int s = 0; s < N_SETS; s++)
	{
		DataSet    *d = &sets[s];
		int			crossover = 0,
					crossover_def = 0;

		if (d->base == NULL)
			continue;
		for (int z = 0; z < nsizes && sizes[z] <= d->n; z++)
		{
			int			n = sizes[z];
			double		flat = 0.0,
						graph = 0.0,
						rmin = 1.0,
						graph_def = 0.0,
						rdef = 0.0;
			int			efmax = 0;
			int			seeds = quick ? 1 : CROSS_SEEDS;

			for (int sd = 0; sd < seeds; sd++)
			{
				const float *seed = d->base + (size_t) ((sd * 7919 + 13) % d->n) * d->dim;
				float	   *x = ball(d->base, d->n, d->dim, d->metric, seed, n);
				int			nq = d->nq < NQ_CROSS ? d->nq : NQ_CROSS;
				float	   *q = ball(d->query, d->nq, d->dim, d->metric, seed, nq);
				Built		b = build_graph(x, n, d->dim, d->metric, 0, 0);
				size_t		ss = VsHnswScratchSize(n, MAX_EF);
				VsHnswScratch *scratch = VsHnswScratchInit(malloc(ss), ss, n, MAX_EF);
				Truth		t;
				double		tq,
							r;
				int			ef;

				truth_init(&t, x, n, d->dim, d->metric, q, nq);
				flat += time_per_query(&t, NULL, 0, NULL, MODE_FLAT);
				ef = ef_for_recall(&t, b.graph, scratch, 0.95, &tq, &r);
				if (ef == 0)
				{
					/* never reached: price it at the largest ef */
					ef = ef_ladder[N_EF - 1];
					tq = time_per_query(&t, b.graph, ef, scratch, MODE_GRAPH);
					r = graph_recall(&t, b.graph, ef, scratch);
				}
				graph += tq;
				graph_def += time_per_query(&t, b.graph, VS_HNSW_DEFAULT_EF_SEARCH, scratch, MODE_GRAPH);
				rdef += graph_recall(&t, b.graph, VS_HNSW_DEFAULT_EF_SEARCH, scratch) / seeds;
				if (ef > efmax)
					efmax = ef;
				if (r < rmin)
					rmin = r;
				free(t.kth);
				free(scratch);
				free(b.graph);
				free(q);
				free(x);
			}
			printf("| %s | %d | %d | %.1f | %d | %.3f | %.1f | %.2f | %.3f | %.1f | %.2f |\n",
				   d->name, d->dim, n, flat / seeds * 1e6, efmax, rmin, graph / seeds * 1e6,
				   flat / graph, rdef, graph_def / seeds * 1e6, flat / graph_def);
			fflush(stdout);
			if (graph < flat && crossover == 0)
				crossover = n;
			else if (graph >= flat)
				crossover = 0;
			if (graph_def < flat && crossover_def == 0)
				crossover_def = n;
			else if (graph_def >= flat)
				crossover_def = 0;
		}
		printf("| %s | %d | crossover: graph faster from %d vectors on at the ef for 0.95, from %d on at ef %d |||||||||\n",
			   d->name, d->dim, crossover, crossover_def, VS_HNSW_DEFAULT_EF_SEARCH);
	}
}

/*
 * section_paths - section 5.
 */
static void
section_paths(void)
{
	DataSet    *d = &sets[0];

	printf("\n## 5. Callback path, and inner-product graphs\n\n");
	if (d->base != NULL)
	{
		int			nq = d->nq < NQ_REAL ? d->nq : NQ_REAL;
		Built		b = build_graph(d->base, d->n, d->dim, d->metric, 0, 0);
		size_t		ss = VsHnswScratchSize(d->n, MAX_EF);
		VsHnswScratch *scratch = VsHnswScratchInit(malloc(ss), ss, d->n, MAX_EF);
		Truth		t;

		truth_init(&t, d->base, d->n, d->dim, d->metric, d->query, nq);
		printf("| SIFT %d | ef_search | float path us/query | callback us/query | batch us/query | callback/float | batch/float |\n|---|--:|--:|--:|--:|--:|--:|\n", d->n);
		for (int ef = 32; ef <= 128; ef *= 2)
		{
			double		tf = time_per_query(&t, b.graph, ef, scratch, MODE_GRAPH);
			double		tc = time_per_query(&t, b.graph, ef, scratch, MODE_CALLBACK);
			double		tb = time_per_query(&t, b.graph, ef, scratch, MODE_BATCH);

			printf("| | %d | %.1f | %.1f | %.1f | %.2f | %.2f |\n", ef, tf * 1e6, tc * 1e6,
				   tb * 1e6, tc / tf, tb / tf);
		}
		free(t.kth);
		free(scratch);
		free(b.graph);
	}

	/* inner product on vectors whose norms vary */
	printf("\n| IP cluster | n | dim | build us/vector | ef_search | recall@10 | us/query |\n|---|--:|--:|--:|--:|--:|--:|\n");
	for (int s = 0; s < N_SETS; s++)
	{
		DataSet    *d = &sets[s];
		int			n = d->n < 20000 ? d->n : 20000;
		int			nq = d->nq < NQ_REAL ? d->nq : NQ_REAL;
		float	   *x;
		Built		b;
		size_t		ss;
		VsHnswScratch *scratch;
		Truth		t;
		const char *what;

		if (d->base == NULL)
			continue;
		if (quick)
			nq /= 5;
		x = malloc(sizeof(float) * (size_t) n * d->dim);
		memcpy(x, d->base, sizeof(float) * (size_t) n * d->dim);
		what = "raw";
		if (d->metric == VS_METRIC_COSINE)
		{
			/* unit vectors: give them log-normal norms (sigma 0.5) */
			rng_state = 99;
			for (int i = 0; i < n; i++)
			{
				float		scale = (float) exp(0.5 * rng_gauss());

				for (int j = 0; j < d->dim; j++)
					x[(size_t) i * d->dim + j] *= scale;
			}
			what = "log-normal norms";
		}
		b = build_graph(x, n, d->dim, VS_METRIC_IP, 0, 0);
		ss = VsHnswScratchSize(n, MAX_EF);
		scratch = VsHnswScratchInit(malloc(ss), ss, n, MAX_EF);
		truth_init(&t, x, n, d->dim, VS_METRIC_IP, d->query, nq);
		for (int ef = 16; ef <= 256; ef *= 2)
		{
			double		r = graph_recall(&t, b.graph, ef, scratch);
			double		tq = time_per_query(&t, b.graph, ef, scratch, MODE_GRAPH);

			printf("| %s %s | %d | %d | %.1f | %d | %.4f | %.1f |\n", d->name, what, n, d->dim,
				   b.seconds / n * 1e6, ef, r, tq * 1e6);
		}
		fflush(stdout);
		free(t.kth);
		free(scratch);
		free(b.graph);
		free(x);
	}
}

/*
 * section_lists - section 6: graphs built from exact neighbour lists
 * (VsHnswBuildOptions.neighbours, the GPU build's path) against the
 * incremental build, on IVF-cell-shaped clusters of the real sets.
 */
static void
section_lists(void)
{
	static const int sizes[] = {2000, 5000, 20000};
	static const int efs[] = {10, 16, 24, 32, 40, 64, 96, 128};
	int			nsizes = quick ? 2 : 3;

	long		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	VsPool	   *pool = vs_pool_create(ncpu > 1 ? (int) ncpu : 1);
	VsHnswParallel par = {pool, 4 * vs_pool_threads(pool), pool_run};

	printf("\n## 6. Level 0 from exact neighbour lists (the GPU build) against the incremental build (m 16, ef_construction 64)\n\n");
	printf("\"From lists on %d threads\" is the same build with its passes on a pool of threads (cuda/vsgpu_pool.c), as the GPU helper runs it; it gives the same bytes.\n\n",
		   vs_pool_threads(pool));
	printf("| set | cluster size | incremental build s | exact lists s (CPU reference) | build from lists s | from lists on %d threads s | ef_search | recall@10 incremental | recall@10 from lists | us/query incremental | us/query from lists |\n",
		   vs_pool_threads(pool));
	printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (int s = 0; s < N_SETS; s++)
	{
		DataSet    *d = &sets[s];

		if (d->base == NULL)
			continue;
		for (int z = 0; z < nsizes && sizes[z] <= d->n; z++)
		{
			int			n = sizes[z];
			const float *seed = d->base + (size_t) (13 % d->n) * d->dim;
			float	   *x = ball(d->base, d->n, d->dim, d->metric, seed, n);
			int			nq = d->nq < NQ_CROSS ? d->nq : NQ_CROSS;
			float	   *q = ball(d->query, d->nq, d->dim, d->metric, seed, nq);
			int			kl = VS_HNSW_DEFAULT_EF_CONSTRUCTION;
			uint32_t   *lists = malloc(sizeof(uint32_t) * (size_t) n * kl);
			Built		bi = build_graph(x, n, d->dim, d->metric, 0, 0);
			Built		bl,
						bp;
			double		t0 = now(),
						tlists;
			size_t		ss = VsHnswScratchSize(n, MAX_EF);
			VsHnswScratch *scratch = VsHnswScratchInit(malloc(ss), ss, n, MAX_EF);
			Truth		t;

			VsHnswExactNeighbours(x, n, d->dim, d->metric, kl, &hooks, NULL, lists);
			tlists = now() - t0;
			bl = build_graph_lists(x, n, d->dim, d->metric, 0, 0, lists, kl);
			bp = build_graph_par(x, n, d->dim, d->metric, 0, 0, lists, kl, &par);
			if (bp.size != bl.size || memcmp(bp.graph, bl.graph, bl.size) != 0)
			{
				fprintf(stderr, "bench_hnsw: the parallel build differs from the sequential one\n");
				exit(1);
			}
			truth_init(&t, x, n, d->dim, d->metric, q, nq);
			for (int e = 0; e < (int) (sizeof(efs) / sizeof(efs[0])); e++)
			{
				printf("| %s | %d | %.3f | %.3f | %.3f | %.3f | %d | %.4f | %.4f | %.1f | %.1f |\n",
					   d->name, n, bi.seconds, tlists, bl.seconds, bp.seconds, efs[e],
					   graph_recall(&t, bi.graph, efs[e], scratch),
					   graph_recall(&t, bl.graph, efs[e], scratch),
					   time_per_query(&t, bi.graph, efs[e], scratch, MODE_GRAPH) * 1e6,
					   time_per_query(&t, bl.graph, efs[e], scratch, MODE_GRAPH) * 1e6);
				fflush(stdout);
			}
			free(t.kth);
			free(scratch);
			free(bp.graph);
			free(bl.graph);
			free(bi.graph);
			free(lists);
			free(q);
			free(x);
		}
	}
	vs_pool_destroy(pool);
}

/*
 * main - parse the options and run the chosen sections.
 */
int
main(int argc, char **argv)
{
	const char *sections = "123456";

	data_dir = getenv("VECSTORE_DATA") ? getenv("VECSTORE_DATA") : "../shared/data";
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--big") == 0)
			big = 1;
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
			data_dir = argv[++i];
		else if (strcmp(argv[i], "--sections") == 0 && i + 1 < argc)
			sections = argv[++i];
		else
		{
			fprintf(stderr, "usage: %s [--quick] [--big] [--runs N] [--data DIR] [--sections 123456]\n",
					argv[0]);
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS)
		runs = 3;
	if (quick)
	{
		runs = 1;
		min_time = 0.025;
	}

	VsDistanceInit();
	printf("# bench_hnsw: kernel path %s, %d run(s) per timing, %s\n",
		   VsKernelPathName(VsKernelsActivePath), runs, quick ? "quick" : "full");
	load_sets();
	if (strchr(sections, '1'))
		section_synthetic();
	if (strchr(sections, '2'))
		section_real();
	if (strchr(sections, '3'))
		section_options();
	if (strchr(sections, '4'))
		section_crossover();
	if (strchr(sections, '5'))
		section_paths();
	if (strchr(sections, '6'))
		section_lists();
	return 0;
}
