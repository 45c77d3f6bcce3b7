/*-------------------------------------------------------------------------
 *
 * bench_quant.c
 *	  Benchmark: compact codes (SQ8, SQ4) as the first stage of the query
 *	  pipeline, and the speed of a code distance against a float one.
 *
 * Not a test: it checks nothing and exits 0 (2 on bad usage or missing
 * data).  It prints markdown tables (bench/RESULTS-quant.md is made from
 * them):
 *
 *	1. speed: nanoseconds per distance at 100, 128, 784 and 1536 dimensions,
 *	   per path, float (vsdistance.c, squared L2) against SQ8 (vsquant.c,
 *	   squared L2), and SQ4 on the active path, in two settings: "scan", one query against 4096 stored
 *	   vectors in order (a flat scan of a cluster), and "graph", the same
 *	   number of distances to records picked at random in a pool whose
 *	   float vectors take 256 MiB (the access pattern of a graph search on
 *	   data beyond the caches), through the callback one id at a time as the
 *	   HNSW calls it, and batched with prefetching (VsQuantDistancesIds);
 *	2. pipeline quality on the real sets (../shared/data or $VECSTORE_DATA):
 *	   rank a candidate pool by code distance, rerank the best R exactly,
 *	   and measure recall@10 against the exact top 10 of the same pool
 *	   (tie-aware: a hit is a row whose exact distance is <= the 10th).
 *	   Pools: (a) the whole base set, global codes, per clip fraction of
 *	   the training ranges; (b) the rows of the 10 nearest of n/1000 IVF
 *	   lists (the index defaults), global and residual SQ8 codes and
 *	   global SQ4 codes (min/max, and the clip an index build uses,
 *	   VsQuantBuildClip).  Reported:
 *	   recall at several R, and the smallest R reaching 0.95 and 0.99;
 *	3. the 1-bit RaBitQ-style alternative, prototyped here (see its
 *	   section): the same recall tables on the same IVF pools, and its
 *	   distance speed.
 *
 * The quantizer is trained on 10,000 random base rows (VS_MIN_SAMPLE of
 * the index build).  Queries: the first --queries of each query file.
 *
 * Methodology for timings: CLOCK_MONOTONIC; each variant's repetition
 * count is calibrated (which warms up) so that one run lasts at least
 * 20 ms; then --runs rounds, each running every variant of a row once, so
 * that load from elsewhere hits them alike; a figure is the median over
 * rounds, and a ratio the median of the per-round ratios.  The machine is
 * shared, so single figures can still be off by tens of percent.
 *
 * Usage: bench_quant [--quick] [--runs N] [--queries N] [--data DIR]
 *					  [--sections 123]
 *
 * IDENTIFICATION
 *	  bench/bench_quant.c
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
#include "vsquant.h"
#define VSRNG_INITIAL	42
#include "../test/kernels/vsfvecs.h"
#include "../test/kernels/vsrng.h"

#define MAX_RUNS		31
#define SCAN_N			4096
#define GRAPH_BYTES		((size_t) 256 << 20)
#define TRAIN_SAMPLE	10000
#define RMAX			1000
#define PROBES			10
#define KMEANS_ROUNDS	10
#define K				10

/* one real data set under one metric */
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
	{"sift128-photos (ip)", "sift128-photos-euclidean", VS_METRIC_IP, NULL, 0, 0, NULL, 0},
	{"glove6b-100", "glove6b-100-angular", VS_METRIC_COSINE, NULL, 0, 0, NULL, 0},
	{"fashion-mnist-784", "fashion-mnist-784-euclidean", VS_METRIC_L2, NULL, 0, 0, NULL, 0},
};
#define NSETS ((int) (sizeof(sets) / sizeof(sets[0])))


/* R at which the recall tables report */
static const int report_r[] = {10, 20, 30, 40, 50, 100, 200};
#define NREPORT ((int) (sizeof(report_r) / sizeof(report_r[0])))

static int	nruns = 7;
static int	quick = 0;
static int	max_queries = 1000;
static const char *data_dir;
static const char *sections = "123";

static volatile float sink;
/* a candidate: estimated distance and row */
typedef struct Cand
{
	float		dist;
	uint32_t	id;
} Cand;

/*
 * An IVF layout of one data set: lists, their members, their centroids.
 */
typedef struct Ivf
{
	int			k;
	float	   *centroids;		/* k * dim */
	int32_t    *assign;			/* n */
	uint32_t   *members;		/* n, grouped by list */
	int		   *start;			/* k + 1 offsets into members */
} Ivf;

/* what one quality configuration produced */
typedef struct Curve
{
	double		recall[RMAX + 1];	/* mean recall@10 after reranking R */
	double		mean_pool;			/* mean candidates per query */
} Curve;

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
 * xmalloc - aligned malloc or exit.
 */
static void *
xmalloc(size_t size)
{
	void	   *p = NULL;

	if (posix_memalign(&p, 64, size ? size : 64) != 0)
	{
		fprintf(stderr, "out of memory (%zu bytes)\n", size);
		exit(2);
	}
	return p;
}

/*
 * hooks for VsQuantTrain.
 */
static void *
hook_alloc(size_t size)
{
	return xmalloc(size);
}

static void
hook_free(void *p)
{
	free(p);
}

static const VsQuantHooks hooks = {hook_alloc, hook_free, NULL};

/*
 * cmp_double - qsort comparator.
 */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * cmp_cand - order candidates by distance, then row.
 */
static int
cmp_cand(const void *a, const void *b)
{
	const Cand *x = a,
			   *y = b;

	if (x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/*
 * median - of n values (reorders them).
 */
static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * exact - the metric's ranking value between two float vectors with the
 * active kernels (what the rerank computes): squared L2, -IP, 1 - cos.
 */
static double
exact(VsMetric metric, const float *a, const float *b, int dim)
{
	switch (metric)
	{
		case VS_METRIC_L2:
			return VsKernels.l2_squared(a, b, dim);
		case VS_METRIC_IP:
			return -(double) VsKernels.inner_product(a, b, dim);
		case VS_METRIC_COSINE:
			{
				float		dot,
							na,
							nb;

				VsKernels.dot_norms(a, b, dim, &dot, &na, &nb);
				return VsCosineFromSums(dot, na, nb);
			}
		case VS_METRIC_L1:		/* the data sets use none of these */
		case VS_METRIC_HAMMING:
			break;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Section 1: speed
 * ------------------------------------------------------------------------
 */

/* what one timed run measures */
typedef enum SpeedKind
{
	SK_FLOAT_SCAN,				/* float kernel over SCAN_N vectors in order */
	SK_FLOAT_GRAPH,				/* float kernel, random rows of the pool */
	SK_CODE_SCAN,				/* VsQuantDistances over SCAN_N records */
	SK_CODE_GRAPH,				/* VsQuantDistanceById, random records */
	SK_CODE_GRAPH_BATCH			/* VsQuantDistancesIds, random records */
} SpeedKind;

/* the float callback the HNSW would get without codes */
typedef struct FloatCtx
{
	VsDistanceKernels k;
	const float *q;
	const float *base;
	int			dim;
} FloatCtx;

static float
float_by_id(void *ctx, uint32_t id)
{
	FloatCtx   *c = ctx;

	return c->k->l2_squared(c->q, c->base + (size_t) id * c->dim, c->dim);
}

/* one timed variant: a float path or a code path in one setting */
typedef struct Variant
{
	SpeedKind	kind;
	VsDistanceKernels fk;		/* float kinds */
	const VsQuantQuery *query;	/* code kinds */
	const uint8_t *block;		/* code kinds: records other than cblock's */
	int			reps;			/* SCAN_N-distance passes per run */
	double		ns[MAX_RUNS];	/* per run */
} Variant;

/*
 * run_variant - seconds for v->reps passes of SCAN_N distances.
 */
static double
run_variant(const Variant *v, const float *q, const float *fbase,
			const uint8_t *cblock, int dim, const uint32_t *ids, float *out)
{
	FloatCtx	fctx = {v->fk, q, fbase, dim};
	const uint8_t *block = v->block ? v->block : cblock;
	VsQuantScan scan = {v->query, block};
	double		t0 = now_seconds();

	for (int rep = 0; rep < v->reps; rep++)
	{
		switch (v->kind)
		{
			case SK_FLOAT_SCAN:
				for (int i = 0; i < SCAN_N; i++)
					out[i] = v->fk->l2_squared(q, fbase + (size_t) i * dim, dim);
				break;
			case SK_FLOAT_GRAPH:
				for (int i = 0; i < SCAN_N; i++)
					out[i] = float_by_id(&fctx, ids[i]);
				break;
			case SK_CODE_SCAN:
				VsQuantDistances(v->query, block, SCAN_N, out);
				break;
			case SK_CODE_GRAPH:
				for (int i = 0; i < SCAN_N; i++)
					out[i] = VsQuantDistanceById(&scan, ids[i]);
				break;
			case SK_CODE_GRAPH_BATCH:
				VsQuantDistancesIds(v->query, block, ids, SCAN_N, out);
				break;
		}
		sink += out[rep % SCAN_N];
	}
	return now_seconds() - t0;
}

/*
 * time_variants - fill v[i].ns[0..nruns-1]: each variant's repetition
 * count calibrated (a warm-up) to >= 20 ms, then nruns rounds in which
 * every variant runs once, so that load from elsewhere hits all alike.
 */
static void
time_variants(Variant *v, int nv, const float *q, const float *fbase,
			  const uint8_t *cblock, int dim, const uint32_t *ids, float *out)
{
	for (int i = 0; i < nv; i++)
	{
		v[i].reps = 1;
		while (run_variant(&v[i], q, fbase, cblock, dim, ids, out) < 0.02)
			v[i].reps *= 2;
	}
	for (int r = 0; r < nruns; r++)
		for (int i = 0; i < nv; i++)
			v[i].ns[r] = run_variant(&v[i], q, fbase, cblock, dim, ids, out) * 1e9 /
				((double) v[i].reps * SCAN_N);
}

/*
 * section_speed - the table of section 1.
 */
static void
section_speed(void)
{
	static const int dims[] = {100, 128, 784, 1536};
	char		build_notes[4][128];

	printf("\n## 1. Nanoseconds per distance (squared L2), float vs SQ8 code\n\n");
	printf("\"scan\": one query against %d stored vectors/records in order. "
		   "\"graph\": %d distances to rows picked at random among a pool whose float vectors take %zu MiB "
		   "(codes: a quarter of that), float and code one id at a time through the HNSW callback "
		   "signature; \"graph batch\": the code distances through VsQuantDistancesIds (prefetching), "
		   "the float ones as in \"graph\". Median of %d interleaved rounds; the last column is the "
		   "median over rounds of (best float path / best code path).\n\n",
		   SCAN_N, SCAN_N, GRAPH_BYTES >> 20, nruns);
	printf("| dims | setting | float scalar | float avx2 | float avx512 | SQ8 scalar | SQ8 avx2 | SQ8 avx512bw | SQ8 avx512vnni | SQ4 %s | best float / best SQ8 | best SQ8 / SQ4 |\n",
		   VsQuantPathName(VsQuantActivePath));
	printf("|-----:|---------|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|\n");

	for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
	{
		int			dim = dims[di];
		size_t		pool = GRAPH_BYTES / (sizeof(float) * dim);
		float	   *fbase;
		float	   *q = xmalloc(sizeof(float) * dim);
		float	   *out = xmalloc(sizeof(float) * SCAN_N);
		uint32_t   *ids = xmalloc(sizeof(uint32_t) * SCAN_N);
		VsQuantParams *params = xmalloc(VsQuantParamsSize(dim));
		uint8_t    *cblock;
		void	   *qbuf[VS_QUANT_NPATHS];
		VsQuantQuery *queries[VS_QUANT_NPATHS];
		VsQuantParams *params4 = xmalloc(VsQuantParamsSize(dim));
		VsQuantOptions opt4;
		uint8_t    *cblock4;
		void	   *qbuf4;
		VsQuantQuery *query4;

		if (quick)
			pool /= 4;
		fbase = xmalloc(sizeof(float) * pool * dim);
		for (size_t i = 0; i < pool * dim; i++)
			fbase[i] = (float) rng_gauss();
		for (int d = 0; d < dim; d++)
			q[d] = (float) rng_gauss();
		for (int i = 0; i < SCAN_N; i++)
			ids[i] = (uint32_t) (rng_next() % pool);
		if (VsQuantTrain(fbase, 10000, dim, VS_METRIC_L2, NULL, NULL, NULL, &hooks, params) != 0)
			exit(2);
		cblock = xmalloc(VsQuantBlockSize(params, pool));
		VsQuantEncodeBlock(params, fbase, pool, NULL, cblock);
		for (int p = 0; p < VS_QUANT_NPATHS; p++)
		{
			qbuf[p] = xmalloc(VsQuantQuerySize(params));
			queries[p] = VsQuantPrepareQueryPath(params, q, NULL, (VsQuantPath) p, qbuf[p]);
		}
		VsQuantOptionsInit(&opt4);
		opt4.kind = VS_QUANT_SQ4;
		if (VsQuantTrain(fbase, 10000, dim, VS_METRIC_L2, NULL, NULL, &opt4, &hooks, params4) != 0)
			exit(2);
		cblock4 = xmalloc(VsQuantBlockSize(params4, pool));
		VsQuantEncodeBlock(params4, fbase, pool, NULL, cblock4);
		qbuf4 = xmalloc(VsQuantQuerySize(params4));
		query4 = VsQuantPrepareQuery(params4, q, NULL, qbuf4);

		for (int setting = 0; setting < 3; setting++)
		{
			static const char *const names[] = {"scan", "graph", "graph batch"};
			Variant		v[VS_KERNEL_NPATHS + VS_QUANT_NPATHS + 1];
			int			fidx[VS_KERNEL_NPATHS],
						cidx[VS_QUANT_NPATHS],
						idx4;
			int			nv = 0;
			double		ratios[MAX_RUNS],
						ratios4[MAX_RUNS];

			memset(v, 0, sizeof(v));
			for (int p = 0; p < VS_KERNEL_NPATHS; p++)
			{
				VsDistanceKernels fk = VsKernelsForPath((VsKernelPath) p);

				fidx[p] = -1;
				if (fk == NULL)
					continue;
				v[nv].kind = setting == 0 ? SK_FLOAT_SCAN : SK_FLOAT_GRAPH;
				v[nv].fk = fk;
				fidx[p] = nv++;
			}
			for (int p = 0; p < VS_QUANT_NPATHS; p++)
			{
				cidx[p] = -1;
				if (queries[p] == NULL)
					continue;
				v[nv].kind = setting == 0 ? SK_CODE_SCAN :
					setting == 1 ? SK_CODE_GRAPH : SK_CODE_GRAPH_BATCH;
				v[nv].query = queries[p];
				cidx[p] = nv++;
			}
			v[nv].kind = setting == 0 ? SK_CODE_SCAN :
				setting == 1 ? SK_CODE_GRAPH : SK_CODE_GRAPH_BATCH;
			v[nv].query = query4;
			v[nv].block = cblock4;
			idx4 = nv++;
			time_variants(v, nv, q, fbase, cblock, dim, ids, out);
			for (int r = 0; r < nruns; r++)
			{
				double		bf = INFINITY,
							bc = INFINITY;

				for (int p = 0; p < VS_KERNEL_NPATHS; p++)
					if (fidx[p] >= 0 && v[fidx[p]].ns[r] < bf)
						bf = v[fidx[p]].ns[r];
				for (int p = 0; p < VS_QUANT_NPATHS; p++)
					if (cidx[p] >= 0 && v[cidx[p]].ns[r] < bc)
						bc = v[cidx[p]].ns[r];
				ratios[r] = bf / bc;
				ratios4[r] = bc / v[idx4].ns[r];
			}
			printf("| %d | %s |", dim, names[setting]);
			for (int p = 0; p < VS_KERNEL_NPATHS; p++)
				fidx[p] < 0 ? printf(" - |") : printf(" %.1f |", median(v[fidx[p]].ns, nruns));
			for (int p = 0; p < VS_QUANT_NPATHS; p++)
				cidx[p] < 0 ? printf(" - |") : printf(" %.1f |", median(v[cidx[p]].ns, nruns));
			printf(" %.1f |", median(v[idx4].ns, nruns));
			printf(" %.2fx | %.2fx |\n", median(ratios, nruns), median(ratios4, nruns));
			fflush(stdout);
		}

		/* build-side costs: training on 10,000 rows, encoding */
		{
			double		t0 = now_seconds(),
						t_train0,
						t_train1,
						t_enc;
			VsQuantOptions opt;
			size_t		nenc = pool < 100000 ? pool : 100000;

			if (VsQuantTrain(fbase, 10000, dim, VS_METRIC_L2, NULL, NULL, NULL, &hooks, params) != 0)
				exit(2);
			t_train0 = now_seconds() - t0;
			VsQuantOptionsInit(&opt);
			opt.clip = 0.001;
			t0 = now_seconds();
			if (VsQuantTrain(fbase, 10000, dim, VS_METRIC_L2, NULL, NULL, &opt, &hooks, params) != 0)
				exit(2);
			t_train1 = now_seconds() - t0;
			t0 = now_seconds();
			VsQuantEncodeBlock(params, fbase, nenc, NULL, cblock);
			t_enc = now_seconds() - t0;
			snprintf(build_notes[di], sizeof(build_notes[di]),
					 "| %d | %.1f | %.1f | %.0f | %zu |", dim, t_train0 * 1e3, t_train1 * 1e3,
					 t_enc * 1e9 / nenc, VsQuantRecordSize(VS_QUANT_SQ8, dim, VS_QUANT_PACKED));
		}
		for (int p = 0; p < VS_QUANT_NPATHS; p++)
			free(qbuf[p]);
		free(fbase);
		free(q);
		free(out);
		free(ids);
		free(params);
		free(cblock);
		free(params4);
		free(cblock4);
		free(qbuf4);
	}
	printf("\nBuild-side costs (one core): training on 10,000 rows (min/max, and the 0.1%%/99.9%% "
		   "quantiles by quickselect), encoding (ns per vector), and bytes per record:\n\n");
	printf("| dims | train min/max ms | train clip 0.001 ms | encode ns/vector | record bytes |\n");
	printf("|---:|---:|---:|---:|---:|\n");
	for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++)
		printf("%s\n", build_notes[di]);
}

/* ------------------------------------------------------------------------
 * Section 2: pipeline quality
 * ------------------------------------------------------------------------
 */

/*
 * select_best - move the "m" smallest of c[0..n-1] to the front, sorted.
 */
static void
select_best(Cand *c, int n, int m)
{
	int			left = 0,
				right = n - 1;

	if (m >= n)
	{
		qsort(c, n, sizeof(Cand), cmp_cand);
		return;
	}
	/* quickselect the m-th, then sort the front */
	while (right > left)
	{
		Cand		pivot = c[left + (right - left) / 2];
		int			i = left,
					j = right;

		while (i <= j)
		{
			while (cmp_cand(&c[i], &pivot) < 0)
				i++;
			while (cmp_cand(&c[j], &pivot) > 0)
				j--;
			if (i <= j)
			{
				Cand		t = c[i];

				c[i] = c[j];
				c[j] = t;
				i++;
				j--;
			}
		}
		if (m - 1 <= j)
			right = j;
		else if (m - 1 >= i)
			left = i;
		else
			break;
	}
	qsort(c, m, sizeof(Cand), cmp_cand);
}

/*
 * kmeans - a plain Lloyd k-means for the IVF pools (the bench does not
 * link vskmeans.c): random seeds, KMEANS_ROUNDS rounds on "ns" sample
 * rows; spherical (unit centroids) for cosine.  Then every row is assigned
 * to its nearest centroid (L2, or cosine).
 */
static void
kmeans(const DataSet *s, int k, Ivf *ivf)
{
	int			dim = s->dim;
	int			ns = s->n < 20000 ? s->n : 20000;
	uint32_t   *sample = xmalloc(sizeof(uint32_t) * ns);
	double	   *sums = xmalloc(sizeof(double) * (size_t) k * dim);
	int		   *counts = xmalloc(sizeof(int) * k);
	VsMetric	am = s->metric == VS_METRIC_COSINE ? VS_METRIC_COSINE : VS_METRIC_L2;

	ivf->k = k;
	ivf->centroids = xmalloc(sizeof(float) * (size_t) k * dim);
	ivf->assign = xmalloc(sizeof(int32_t) * s->n);
	ivf->members = xmalloc(sizeof(uint32_t) * s->n);
	ivf->start = xmalloc(sizeof(int) * (k + 1));

	for (int i = 0; i < ns; i++)
		sample[i] = (uint32_t) (rng_next() % s->n);
	for (int c = 0; c < k; c++)
		memcpy(ivf->centroids + (size_t) c * dim, s->base + (size_t) sample[c] * dim,
			   sizeof(float) * dim);

	for (int round = 0; round <= KMEANS_ROUNDS; round++)
	{
		int			last = round == KMEANS_ROUNDS;
		int			rows = last ? s->n : ns;

		memset(sums, 0, sizeof(double) * (size_t) k * dim);
		memset(counts, 0, sizeof(int) * k);
		for (int i = 0; i < rows; i++)
		{
			const float *x = s->base + (size_t) (last ? (uint32_t) i : sample[i]) * dim;
			double		best = INFINITY;
			int			bc = 0;

			for (int c = 0; c < k; c++)
			{
				double		d = exact(am, x, ivf->centroids + (size_t) c * dim, dim);

				if (d < best)
				{
					best = d;
					bc = c;
				}
			}
			if (last)
				ivf->assign[i] = bc;
			else
			{
				for (int d = 0; d < dim; d++)
					sums[(size_t) bc * dim + d] += x[d];
				counts[bc]++;
			}
		}
		if (last)
			break;
		for (int c = 0; c < k; c++)
		{
			double		nn = 0;

			if (counts[c] == 0)
				continue;		/* keep the old centroid */
			for (int d = 0; d < dim; d++)
			{
				double		v = sums[(size_t) c * dim + d] / counts[c];

				ivf->centroids[(size_t) c * dim + d] = (float) v;
				nn += v * v;
			}
			if (s->metric == VS_METRIC_COSINE && nn > 0)
				for (int d = 0; d < dim; d++)
					ivf->centroids[(size_t) c * dim + d] /= (float) sqrt(nn);
		}
	}
	/* members grouped by list */
	memset(ivf->start, 0, sizeof(int) * (k + 1));
	for (int i = 0; i < s->n; i++)
		ivf->start[ivf->assign[i] + 1]++;
	for (int c = 0; c < k; c++)
		ivf->start[c + 1] += ivf->start[c];
	memset(counts, 0, sizeof(int) * k);
	for (int i = 0; i < s->n; i++)
	{
		int			c = ivf->assign[i];

		ivf->members[ivf->start[c] + counts[c]++] = (uint32_t) i;
	}
	free(sample);
	free(sums);
	free(counts);
}

/*
 * probe - the PROBES lists nearest to q (by the query metric against the
 * centroids, as the index routes), into lists[].
 */
static int
probe(const DataSet *s, const Ivf *ivf, const float *q, int *lists)
{
	int			np = ivf->k < PROBES ? ivf->k : PROBES;
	Cand	   *c = xmalloc(sizeof(Cand) * ivf->k);

	for (int j = 0; j < ivf->k; j++)
	{
		c[j].dist = (float) exact(s->metric, q, ivf->centroids + (size_t) j * s->dim, s->dim);
		c[j].id = (uint32_t) j;
	}
	select_best(c, ivf->k, np);
	for (int j = 0; j < np; j++)
		lists[j] = (int) c[j].id;
	free(c);
	return np;
}

/*
 * score - add one query's recall curve: "cand" (m candidates sorted by
 * estimated distance) against the exact 10th distance "kth" of the pool.
 * recall[R] += hits among the exact best 10 of the first R.
 */
static void
score(const DataSet *s, const float *q, const Cand *cand, int m, double kth,
	  double *recall)
{
	double		top[K];
	int			filled = 0;

	for (int r = 0; r < RMAX; r++)
	{
		if (r < m)
		{
			double		d = exact(s->metric, q, s->base + (size_t) cand[r].id * s->dim, s->dim);
			int			pos = filled < K ? filled++ : K;

			/* insert into the sorted top-10 */
			while (pos > 0 && top[pos - 1] > d)
			{
				if (pos < K)
					top[pos] = top[pos - 1];
				pos--;
			}
			if (pos < K)
				top[pos] = d;
		}
		if (r + 1 >= K)
		{
			int			hits = 0;

			for (int t = 0; t < filled; t++)
				hits += top[t] <= kth;
			recall[r + 1] += hits / (double) K;
		}
	}
}

/*
 * kth_exact - the exact 10th smallest distance from q to the rows of
 * "ids" (n of them).
 */
static double
kth_exact(const DataSet *s, const float *q, const uint32_t *ids, int n,
		  double *scratch)
{
	for (int i = 0; i < n; i++)
		scratch[i] = exact(s->metric, q, s->base + (size_t) (ids ? ids[i] : (uint32_t) i) * s->dim, s->dim);
	if (n <= K)
	{
		qsort(scratch, n, sizeof(double), cmp_double);
		return scratch[n - 1];
	}
	/* partial: the K smallest by selection */
	{
		double		top[K];

		for (int t = 0; t < K; t++)
			top[t] = INFINITY;
		for (int i = 0; i < n; i++)
		{
			double		v = scratch[i];

			if (v >= top[K - 1])
				continue;
			for (int t = 0; t < K; t++)
				if (v < top[t])
				{
					double		x = top[t];

					top[t] = v;
					v = x;
				}
		}
		return top[K - 1];
	}
}

/*
 * train_params - SQ8 params on TRAIN_SAMPLE random rows, global or
 * residual (with the IVF's centroids).
 */
static VsQuantParams *
train_params(const DataSet *s, int kind, double clip, const Ivf *residual)
{
	int			ns = s->n < TRAIN_SAMPLE ? s->n : TRAIN_SAMPLE;
	float	   *x = xmalloc(sizeof(float) * (size_t) ns * s->dim);
	int32_t    *assign = xmalloc(sizeof(int32_t) * ns);
	VsQuantParams *p = xmalloc(VsQuantParamsSize(s->dim));
	VsQuantOptions opt;
	uint64_t	saved = rng_state;

	rng_state = 4242;			/* the same sample for every configuration */
	for (int i = 0; i < ns; i++)
	{
		uint32_t	row = (uint32_t) (rng_next() % s->n);

		memcpy(x + (size_t) i * s->dim, s->base + (size_t) row * s->dim, sizeof(float) * s->dim);
		assign[i] = residual ? residual->assign[row] : 0;
	}
	rng_state = saved;
	VsQuantOptionsInit(&opt);
	opt.kind = kind;
	opt.clip = clip;
	if (VsQuantTrain(x, ns, s->dim, s->metric, residual ? residual->centroids : NULL,
					 residual ? assign : NULL, &opt, &hooks, p) != 0)
	{
		fprintf(stderr, "training failed\n");
		exit(2);
	}
	free(x);
	free(assign);
	return p;
}

/*
 * print_curve - one row of a recall table.
 */
static void
print_curve(const char *set, const char *config, const Curve *c)
{
	int			r95 = -1,
				r99 = -1;

	for (int r = K; r <= RMAX; r++)
	{
		if (r95 < 0 && c->recall[r] >= 0.95)
			r95 = r;
		if (r99 < 0 && c->recall[r] >= 0.99)
			r99 = r;
	}
	printf("| %s | %s | %.0f |", set, config, c->mean_pool);
	for (int i = 0; i < NREPORT; i++)
		printf(" %.3f |", c->recall[report_r[i]]);
	r95 < 0 ? printf(" >%d |", RMAX) : printf(" %d (%.1fk) |", r95, r95 / (double) K);
	r99 < 0 ? printf(" >%d |\n", RMAX) : printf(" %d (%.1fk) |\n", r99, r99 / (double) K);
	fflush(stdout);
}

/*
 * print_curve_header - the recall table's head.
 */
static void
print_curve_header(void)
{
	printf("| data set | codes | pool | ");
	for (int i = 0; i < NREPORT; i++)
		printf("R=%d | ", report_r[i]);
	printf("R for 0.95 | R for 0.99 |\n|---|---|---:|");
	for (int i = 0; i < NREPORT + 2; i++)
		printf("---:|");
	printf("\n");
}

/*
 * eval_full - pool = the whole base set, one global SQ8 params.
 */
static void
eval_full(const DataSet *s, const VsQuantParams *p, const double *kth, Curve *curve)
{
	uint8_t    *block = xmalloc(VsQuantBlockSize(p, s->n));
	float	   *dist = xmalloc(sizeof(float) * s->n);
	Cand	   *cand = xmalloc(sizeof(Cand) * s->n);
	void	   *qbuf = xmalloc(VsQuantQuerySize(p));

	memset(curve, 0, sizeof(*curve));
	VsQuantEncodeBlock(p, s->base, s->n, NULL, block);
	for (int j = 0; j < s->nq; j++)
	{
		const float *q = s->query + (size_t) j * s->dim;
		VsQuantQuery *query = VsQuantPrepareQuery(p, q, NULL, qbuf);

		VsQuantDistances(query, block, s->n, dist);
		for (int i = 0; i < s->n; i++)
		{
			cand[i].dist = dist[i];
			cand[i].id = (uint32_t) i;
		}
		select_best(cand, s->n, RMAX);
		score(s, q, cand, RMAX < s->n ? RMAX : s->n, kth[j], curve->recall);
	}
	for (int r = 0; r <= RMAX; r++)
		curve->recall[r] /= s->nq;
	curve->mean_pool = s->n;
	free(block);
	free(dist);
	free(cand);
	free(qbuf);
}

/*
 * An IVF-layout encoding: per list, a block of records in member order
 * (the segment's layout), global or residual.
 */
typedef struct IvfCodes
{
	const VsQuantParams *p;
	int			residual;
	uint8_t   **blocks;			/* per list */
} IvfCodes;

/*
 * ivf_encode - the blocks of every list.
 */
static void
ivf_encode(const DataSet *s, const Ivf *ivf, const VsQuantParams *p,
		   int residual, IvfCodes *codes)
{
	float	   *rows = xmalloc(sizeof(float) * (size_t) s->n * s->dim);

	codes->p = p;
	codes->residual = residual;
	codes->blocks = xmalloc(sizeof(uint8_t *) * ivf->k);
	for (int c = 0; c < ivf->k; c++)
	{
		int			m = ivf->start[c + 1] - ivf->start[c];

		for (int i = 0; i < m; i++)
			memcpy(rows + (size_t) i * s->dim,
				   s->base + (size_t) ivf->members[ivf->start[c] + i] * s->dim,
				   sizeof(float) * s->dim);
		codes->blocks[c] = xmalloc(VsQuantBlockSize(p, m));
		VsQuantEncodeBlock(p, rows, m, residual ? ivf->centroids + (size_t) c * s->dim : NULL,
						   codes->blocks[c]);
	}
	free(rows);
}

/*
 * ivf_free - undo ivf_encode.
 */
static void
ivf_free(const Ivf *ivf, IvfCodes *codes)
{
	for (int c = 0; c < ivf->k; c++)
		free(codes->blocks[c]);
	free(codes->blocks);
}

/*
 * eval_ivf - pool = the rows of the probed lists; the codes of each list
 * scanned with the query prepared for it (once, or per list if residual).
 */
static void
eval_ivf(const DataSet *s, const Ivf *ivf, const IvfCodes *codes,
		 int *const *probed, const int *nprobed, const double *kth, Curve *curve)
{
	const VsQuantParams *p = codes->p;
	float	   *dist = xmalloc(sizeof(float) * s->n);
	Cand	   *cand = xmalloc(sizeof(Cand) * s->n);
	void	   *qbuf = xmalloc(VsQuantQuerySize(p));
	double		pool = 0;

	memset(curve, 0, sizeof(*curve));
	for (int j = 0; j < s->nq; j++)
	{
		const float *q = s->query + (size_t) j * s->dim;
		VsQuantQuery *query = NULL;
		int			m = 0;

		for (int l = 0; l < nprobed[j]; l++)
		{
			int			c = probed[j][l];
			int			cnt = ivf->start[c + 1] - ivf->start[c];

			if (query == NULL || codes->residual)
				query = VsQuantPrepareQuery(p, q, codes->residual ?
											ivf->centroids + (size_t) c * s->dim : NULL, qbuf);
			VsQuantDistances(query, codes->blocks[c], cnt, dist);
			for (int i = 0; i < cnt; i++)
			{
				cand[m].dist = dist[i];
				cand[m].id = ivf->members[ivf->start[c] + i];
				m++;
			}
		}
		pool += m;
		select_best(cand, m, RMAX);
		score(s, q, cand, m < RMAX ? m : RMAX, kth[j], curve->recall);
	}
	for (int r = 0; r <= RMAX; r++)
		curve->recall[r] /= s->nq;
	curve->mean_pool = pool / s->nq;
	free(dist);
	free(cand);
	free(qbuf);
}

/*
 * The 1-bit RaBitQ-style prototype (section 3).  Per list: residual
 * r = x - c (cosine: x/|x| - c), rotated by a random orthogonal
 * transform (three rounds of random signs and a normalised Walsh-Hadamard
 * transform over dims padded to a power of two); the code is the sign bits
 * of the rotated unit residual u, with |r| and <xbar, u> = sum|u_i|/sqrt(D)
 * as the per-vector factors.  The query's rotated residual is quantized to
 * 4 bits per dimension, and <xbar, q'> comes from four AND+popcount passes.
 * Estimated |q - x|^2 = |r|^2 + |q - c|^2 - 2 |r| |q - c| <xbar,q'>/<xbar,u>;
 * IP and cosine: q.c + |r| |q| <xbar,q'>/<xbar,u> (negated).
 */
typedef struct RabitqList
{
	int			n;
	uint64_t   *bits;			/* n * words */
	float	   *norm;			/* |r| */
	float	   *ipxu;			/* <xbar, u> */
	float	   *popc;			/* popcount of the bits */
} RabitqList;

typedef struct Rabitq
{
	int			dim;
	int			D;				/* power of two >= dim */
	int			words;			/* D / 64 */
	float	   *signs;			/* 3 * D random +-1 */
	RabitqList *lists;
} Rabitq;

/*
 * fwht - in-place normalised fast Walsh-Hadamard transform of length D.
 */
static void
fwht(float *v, int D)
{
	for (int h = 1; h < D; h *= 2)
		for (int i = 0; i < D; i += 2 * h)
			for (int j = i; j < i + h; j++)
			{
				float		a = v[j],
							b = v[j + h];

				v[j] = a + b;
				v[j + h] = a - b;
			}
	{
		float		s = (float) (1.0 / sqrt((double) D));

		for (int i = 0; i < D; i++)
			v[i] *= s;
	}
}

/*
 * rotate - x (dim) into out (D): padded with zeros, 3 rounds of signs+FWHT.
 */
static void
rotate(const Rabitq *rq, const float *x, float *out)
{
	memset(out, 0, sizeof(float) * rq->D);
	memcpy(out, x, sizeof(float) * rq->dim);
	for (int round = 0; round < 3; round++)
	{
		for (int i = 0; i < rq->D; i++)
			out[i] *= rq->signs[round * rq->D + i];
		fwht(out, rq->D);
	}
}

/*
 * popcount_planes - sum over the 4 query bit planes p of
 * 2^p * popcount(bits AND plane_p): the code's dot product with the 4-bit
 * query.  Three versions giving the same integer: portable, with the
 * popcnt instruction, and AVX-512 VPOPCNTDQ (8 words per instruction,
 * masked for the last words).
 */
static uint64_t
popcount_portable(const uint64_t *bits, const uint64_t *planes, int words)
{
	uint64_t	acc = 0;

	for (int p = 0; p < 4; p++)
	{
		uint64_t	pc = 0;

		for (int w = 0; w < words; w++)
			pc += (uint64_t) __builtin_popcountll(bits[w] & planes[p * words + w]);
		acc += pc << p;
	}
	return acc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("popcnt")))
static uint64_t
popcount_popcnt(const uint64_t *bits, const uint64_t *planes, int words)
{
	uint64_t	acc = 0;

	for (int p = 0; p < 4; p++)
	{
		uint64_t	pc = 0;

		for (int w = 0; w < words; w++)
			pc += (uint64_t) __builtin_popcountll(bits[w] & planes[p * words + w]);
		acc += pc << p;
	}
	return acc;
}

__attribute__((target("avx512f,avx512vpopcntdq")))
static uint64_t
popcount_avx512(const uint64_t *bits, const uint64_t *planes, int words)
{
	__m512i		a[4];

	for (int p = 0; p < 4; p++)
		a[p] = _mm512_setzero_si512();
	for (int w = 0; w < words; w += 8)
	{
		__mmask8	m = words - w >= 8 ? 0xFF : (__mmask8) ((1u << (words - w)) - 1);
		__m512i		b = _mm512_maskz_loadu_epi64(m, bits + w);

		for (int p = 0; p < 4; p++)
			a[p] = _mm512_add_epi64(a[p], _mm512_popcnt_epi64(
				_mm512_and_si512(b, _mm512_maskz_loadu_epi64(m, planes + p * words + w))));
	}
	/* a0 + 2 a1 + 4 a2 + 8 a3 lane-wise, then one reduction */
	a[0] = _mm512_add_epi64(a[0], _mm512_slli_epi64(a[1], 1));
	a[2] = _mm512_add_epi64(a[2], _mm512_slli_epi64(a[3], 1));
	return (uint64_t) _mm512_reduce_add_epi64(_mm512_add_epi64(a[0], _mm512_slli_epi64(a[2], 2)));
}
#endif

typedef uint64_t (*PopcountFn) (const uint64_t *bits, const uint64_t *planes, int words);

static PopcountFn popcount_planes = popcount_portable;

/*
 * rabitq_build - codes of every list.
 */
static void
rabitq_build(const DataSet *s, const Ivf *ivf, Rabitq *rq)
{
	float	   *r = xmalloc(sizeof(float) * s->dim);
	float	   *u;

	rq->dim = s->dim;
	rq->D = 64;
	while (rq->D < s->dim)
		rq->D *= 2;
	rq->words = rq->D / 64;
	rq->signs = xmalloc(sizeof(float) * 3 * rq->D);
	for (int i = 0; i < 3 * rq->D; i++)
		rq->signs[i] = (rng_next() & 1) ? 1.0f : -1.0f;
	u = xmalloc(sizeof(float) * rq->D);
	rq->lists = xmalloc(sizeof(RabitqList) * ivf->k);
	for (int c = 0; c < ivf->k; c++)
	{
		RabitqList *l = &rq->lists[c];
		const float *cent = ivf->centroids + (size_t) c * s->dim;

		l->n = ivf->start[c + 1] - ivf->start[c];
		l->bits = xmalloc(sizeof(uint64_t) * (size_t) (l->n ? l->n : 1) * rq->words);
		l->norm = xmalloc(sizeof(float) * (l->n ? l->n : 1));
		l->ipxu = xmalloc(sizeof(float) * (l->n ? l->n : 1));
		l->popc = xmalloc(sizeof(float) * (l->n ? l->n : 1));
		memset(l->bits, 0, sizeof(uint64_t) * (size_t) (l->n ? l->n : 1) * rq->words);
		for (int i = 0; i < l->n; i++)
		{
			const float *x = s->base + (size_t) ivf->members[ivf->start[c] + i] * s->dim;
			double		nx = 0,
						nr = 0,
						sabs = 0;
			int			pc = 0;

			if (s->metric == VS_METRIC_COSINE)
				for (int d = 0; d < s->dim; d++)
					nx += (double) x[d] * x[d];
			for (int d = 0; d < s->dim; d++)
			{
				r[d] = (float) ((s->metric == VS_METRIC_COSINE && nx > 0 ? x[d] / sqrt(nx) : x[d]) - cent[d]);
				nr += (double) r[d] * r[d];
			}
			nr = sqrt(nr);
			rotate(rq, r, u);
			for (int d = 0; d < rq->D; d++)
			{
				double		ud = nr > 0 ? u[d] / nr : 0;

				sabs += fabs(ud);
				if (ud > 0)
				{
					l->bits[(size_t) i * rq->words + d / 64] |= (uint64_t) 1 << (d % 64);
					pc++;
				}
			}
			l->norm[i] = (float) nr;
			l->ipxu[i] = (float) (sabs / sqrt((double) rq->D));
			l->popc[i] = (float) pc;
		}
	}
	free(r);
	free(u);
}

/*
 * rabitq_query - the 4-bit planes of the query's rotated residual for
 * list c, and its constants; then estimated distances of the list's rows.
 * <xbar, q'> = (2/sqrt(D)) sum_{b_i=1} q'_i - (1/sqrt(D)) sum q'_i with
 * q'_i ~ lo + width * qu_i.
 */
static void
rabitq_distances(const DataSet *s, const Rabitq *rq, const Ivf *ivf, int c,
				 const float *q, float *out, float *scratch_r, float *scratch_u,
				 uint64_t *planes)
{
	const RabitqList *l = &rq->lists[c];
	const float *cent = ivf->centroids + (size_t) c * s->dim;
	double		nq = 0,
				nqr = 0,
				qc = 0,
				vmin = INFINITY,
				vmax = -INFINITY,
				width,
				sumq = 0;
	double		invsqrt = 1.0 / sqrt((double) rq->D);
	double		scale = 1.0;

	if (s->metric == VS_METRIC_COSINE)
	{
		for (int d = 0; d < s->dim; d++)
			nq += (double) q[d] * q[d];
		scale = nq > 0 ? 1.0 / sqrt(nq) : 0;
	}
	for (int d = 0; d < s->dim; d++)
	{
		double		qd = q[d] * scale;

		qc += qd * cent[d];
		/*
		 * L2 and cosine (L2 between unit vectors ranks alike) estimate
		 * <q - c, r>; IP must estimate <q, r>, whose error grows with |q|
		 */
		scratch_r[d] = (float) (s->metric != VS_METRIC_IP ? qd - cent[d] : qd);
		nqr += (double) scratch_r[d] * scratch_r[d];
	}
	nqr = sqrt(nqr);
	rotate(rq, scratch_r, scratch_u);
	for (int d = 0; d < rq->D; d++)
	{
		if (scratch_u[d] < vmin)
			vmin = scratch_u[d];
		if (scratch_u[d] > vmax)
			vmax = scratch_u[d];
	}
	width = (vmax - vmin) / 15.0;
	memset(planes, 0, sizeof(uint64_t) * 4 * rq->words);
	for (int d = 0; d < rq->D; d++)
	{
		int			qu = width > 0 ? (int) floor((scratch_u[d] - vmin) / width + rng_unit()) : 0;

		if (qu > 15)
			qu = 15;
		sumq += qu;
		for (int b = 0; b < 4; b++)
			if (qu & (1 << b))
				planes[b * rq->words + d / 64] |= (uint64_t) 1 << (d % 64);
	}
	for (int i = 0; i < l->n; i++)
	{
		const uint64_t *bits = l->bits + (size_t) i * rq->words;
		uint64_t	acc = popcount_planes(bits, planes, rq->words);
		double		ipq,
					est;
		/* sum_{b_i=1} q'_i and sum q'_i, both from the 4-bit levels */
		ipq = 2.0 * invsqrt * (width * acc + vmin * l->popc[i]) -
			invsqrt * (width * sumq + vmin * rq->D);
		est = l->ipxu[i] > 0 ? ipq / l->ipxu[i] : 0;	/* ~ <u, P q_r> */
		if (s->metric != VS_METRIC_IP)
			out[i] = (float) ((double) l->norm[i] * l->norm[i] + nqr * nqr -
							  2.0 * l->norm[i] * est);
		else
			out[i] = (float) -(qc + l->norm[i] * est);
	}
}

/*
 * eval_rabitq - as eval_ivf with RaBitQ estimates.
 */
static void
eval_rabitq(const DataSet *s, const Ivf *ivf, const Rabitq *rq,
			int *const *probed, const int *nprobed, const double *kth, Curve *curve)
{
	float	   *dist = xmalloc(sizeof(float) * s->n);
	Cand	   *cand = xmalloc(sizeof(Cand) * s->n);
	float	   *sr = xmalloc(sizeof(float) * rq->D);
	float	   *su = xmalloc(sizeof(float) * rq->D);
	uint64_t   *planes = xmalloc(sizeof(uint64_t) * 4 * rq->words);
	double		pool = 0;

	memset(curve, 0, sizeof(*curve));
	for (int j = 0; j < s->nq; j++)
	{
		const float *q = s->query + (size_t) j * s->dim;
		int			m = 0;

		for (int l = 0; l < nprobed[j]; l++)
		{
			int			c = probed[j][l];

			rabitq_distances(s, rq, ivf, c, q, dist, sr, su, planes);
			for (int i = 0; i < rq->lists[c].n; i++)
			{
				cand[m].dist = dist[i];
				cand[m].id = ivf->members[ivf->start[c] + i];
				m++;
			}
		}
		pool += m;
		select_best(cand, m, RMAX);
		score(s, q, cand, m < RMAX ? m : RMAX, kth[j], curve->recall);
	}
	for (int r = 0; r <= RMAX; r++)
		curve->recall[r] /= s->nq;
	curve->mean_pool = pool / s->nq;
	free(dist);
	free(cand);
	free(sr);
	free(su);
	free(planes);
}

/*
 * rabitq_speed - ns per estimated distance of the popcount estimator with
 * "fn", one list of SCAN_N codes in order, with the float finish.
 */
static double
rabitq_speed(int dim, PopcountFn fn)
{
	int			D = 64,
				words;
	uint64_t   *bits,
			   *planes;
	float	   *f;
	double		runs[MAX_RUNS];
	int			reps = 1;

	while (D < dim)
		D *= 2;
	words = D / 64;
	bits = xmalloc(sizeof(uint64_t) * (size_t) SCAN_N * words);
	planes = xmalloc(sizeof(uint64_t) * 4 * words);
	f = xmalloc(sizeof(float) * SCAN_N * 3);
	for (size_t i = 0; i < (size_t) SCAN_N * words; i++)
		bits[i] = rng_next();
	for (int i = 0; i < 4 * words; i++)
		planes[i] = rng_next();
	for (int i = 0; i < SCAN_N * 3; i++)
		f[i] = (float) rng_unit();
	for (int r = -1; r < nruns; r++)
	{
		double		t0,
					t;

		for (;;)
		{
			t0 = now_seconds();
			for (int rep = 0; rep < reps; rep++)
			{
				float		acc = 0;

				for (int i = 0; i < SCAN_N; i++)
				{
					uint64_t	a = fn(bits + (size_t) i * words, planes, words);

					/* the finish: two per-vector factors, per-query constants */
					acc += ((float) a * 0.5f + f[3 * i + 2]) * f[3 * i + 1] + f[3 * i];
				}
				sink += acc;
			}
			t = now_seconds() - t0;
			if (r >= 0 || t >= 0.02)
				break;
			reps *= 2;
		}
		if (r >= 0)
			runs[r] = t * 1e9 / ((double) reps * SCAN_N);
	}
	free(bits);
	free(planes);
	free(f);
	return median(runs, nruns);
}

/*
 * section_quality - sections 2 and 3 for every data set present.
 */
static void
section_quality(int do_sq8, int do_rabitq)
{
	static const double clips[] = {0.0, 1e-4, 1e-3, 1e-2};
	int			loaded = 0;

	for (int si = 0; si < NSETS; si++)
	{
		DataSet    *s = &sets[si];
		char		path[1024];

		snprintf(path, sizeof(path), "%s/%s/base.fvecs", data_dir, s->dir);
		s->base = load_fvecs(path, -1, &s->n, &s->dim);
		snprintf(path, sizeof(path), "%s/%s/query.fvecs", data_dir, s->dir);
		s->query = load_fvecs(path, -1, &s->nq, &s->dim);
		if (s->base == NULL || s->query == NULL)
		{
			printf("\n(%s: no data under %s)\n", s->name, data_dir);
			continue;
		}
		if (s->nq > max_queries)
			s->nq = max_queries;
		loaded++;
	}
	if (loaded == 0)
		return;

	if (do_sq8)
	{
		printf("\n## 2. Recall@10 after an exact rerank of the best R by SQ8 code distance\n\n");
		printf("Recall against the exact top 10 of the same pool (so only the codes' loss shows), "
			   "mean over the first %d queries; the quantizer trained on %d random base rows. "
			   "\"pool\": mean candidates per query.\n\n", max_queries, TRAIN_SAMPLE);
		printf("### 2a. Pool = the whole base set, global codes, by clip fraction\n\n");
		print_curve_header();
		for (int si = 0; si < NSETS; si++)
		{
			DataSet    *s = &sets[si];
			double	   *kth,
					   *scratch;

			if (s->base == NULL || s->query == NULL)
				continue;
			kth = xmalloc(sizeof(double) * s->nq);
			scratch = xmalloc(sizeof(double) * s->n);
			for (int j = 0; j < s->nq; j++)
				kth[j] = kth_exact(s, s->query + (size_t) j * s->dim, NULL, s->n, scratch);
			for (size_t ci = 0; ci < sizeof(clips) / sizeof(clips[0]); ci++)
			{
				VsQuantParams *p = train_params(s, VS_QUANT_SQ8, clips[ci], NULL);
				Curve		curve;
				char		config[64];

				if (quick && ci > 0 && ci != 2)
				{
					free(p);
					continue;
				}
				eval_full(s, p, kth, &curve);
				snprintf(config, sizeof(config), "global, clip %g", clips[ci]);
				print_curve(s->name, config, &curve);
				free(p);
			}
			free(kth);
			free(scratch);
		}
	}

	printf("\n### %s. Pool = the %d nearest of n/1000 IVF lists (lists = %s, probes = %d)\n\n",
		   do_sq8 ? "2b" : "3", PROBES, "n/1000", PROBES);
	print_curve_header();
	for (int si = 0; si < NSETS; si++)
	{
		DataSet    *s = &sets[si];
		Ivf			ivf;
		int		  **probed;
		int		   *nprobed;
		double	   *kth,
				   *scratch;
		uint32_t   *pool;
		char		name[128];

		if (s->base == NULL || s->query == NULL)
			continue;
		kmeans(s, s->n / 1000 > 1 ? s->n / 1000 : 1, &ivf);
		probed = xmalloc(sizeof(int *) * s->nq);
		nprobed = xmalloc(sizeof(int) * s->nq);
		kth = xmalloc(sizeof(double) * s->nq);
		scratch = xmalloc(sizeof(double) * s->n);
		pool = xmalloc(sizeof(uint32_t) * s->n);
		for (int j = 0; j < s->nq; j++)
		{
			const float *q = s->query + (size_t) j * s->dim;
			int			m = 0;

			probed[j] = xmalloc(sizeof(int) * PROBES);
			nprobed[j] = probe(s, &ivf, q, probed[j]);
			for (int l = 0; l < nprobed[j]; l++)
				for (int i = ivf.start[probed[j][l]]; i < ivf.start[probed[j][l] + 1]; i++)
					pool[m++] = ivf.members[i];
			kth[j] = kth_exact(s, q, pool, m, scratch);
		}
		snprintf(name, sizeof(name), "%s (%d lists)", s->name, ivf.k);

		if (do_sq8)
		{
			static const double ivf_clips[] = {0.0, 1e-3};

			for (int residual = 0; residual < 2; residual++)
				for (size_t ci = 0; ci < 2; ci++)
				{
					VsQuantParams *p = train_params(s, VS_QUANT_SQ8, ivf_clips[ci], residual ? &ivf : NULL);
					IvfCodes	codes;
					Curve		curve;
					char		config[64];

					ivf_encode(s, &ivf, p, residual, &codes);
					eval_ivf(s, &ivf, &codes, probed, nprobed, kth, &curve);
					snprintf(config, sizeof(config), "SQ8 %s, clip %g",
							 residual ? "residual" : "global", ivf_clips[ci]);
					print_curve(name, config, &curve);
					ivf_free(&ivf, &codes);
					free(p);
				}
			/* SQ4 at min/max, and at the clip an index build uses */
			for (int bc = 0; bc < 2; bc++)
			{
				double		clip = bc ? VsQuantBuildClip(VS_QUANT_SQ4, s->metric) : 0.0;
				VsQuantParams *p;
				IvfCodes	codes;
				Curve		curve;
				char		config[64];

				if (bc && clip == 0.0)
					continue;
				p = train_params(s, VS_QUANT_SQ4, clip, NULL);
				ivf_encode(s, &ivf, p, 0, &codes);
				eval_ivf(s, &ivf, &codes, probed, nprobed, kth, &curve);
				snprintf(config, sizeof(config), "SQ4 global, clip %g%s", clip,
						 bc ? " (the build's)" : "");
				print_curve(name, config, &curve);
				ivf_free(&ivf, &codes);
				free(p);
			}
		}
		if (do_rabitq)
		{
			Rabitq		rq;
			Curve		curve;

			rabitq_build(s, &ivf, &rq);
			eval_rabitq(s, &ivf, &rq, probed, nprobed, kth, &curve);
			print_curve(name, "RaBitQ 1-bit residual", &curve);
			for (int c = 0; c < ivf.k; c++)
			{
				free(rq.lists[c].bits);
				free(rq.lists[c].norm);
				free(rq.lists[c].ipxu);
				free(rq.lists[c].popc);
			}
			free(rq.lists);
			free(rq.signs);
		}
		for (int j = 0; j < s->nq; j++)
			free(probed[j]);
		free(probed);
		free(nprobed);
		free(kth);
		free(scratch);
		free(pool);
		free(ivf.centroids);
		free(ivf.assign);
		free(ivf.members);
		free(ivf.start);
	}

	if (do_rabitq)
	{
		static const int dims[] = {100, 128, 784, 1536};

		printf("\nRaBitQ 1-bit estimator, ns per distance (%d codes in order, dims padded to a power of two):\n\n", SCAN_N);
		printf("| dims | portable | popcnt | avx512 vpopcntdq |\n|---:|---:|---:|---:|\n");
		for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++)
		{
			printf("| %d | %.1f |", dims[i], rabitq_speed(dims[i], popcount_portable));
#if defined(__x86_64__) && defined(__GNUC__)
			__builtin_cpu_init();
			__builtin_cpu_supports("popcnt") ?
				printf(" %.1f |", rabitq_speed(dims[i], popcount_popcnt)) : printf(" - |");
			__builtin_cpu_supports("avx512vpopcntdq") ?
				printf(" %.1f |\n", rabitq_speed(dims[i], popcount_avx512)) : printf(" - |\n");
#else
			printf(" - | - |\n");
#endif
		}
	}
}

/*
 * main - parse options, run the sections.
 */
int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			nruns = atoi(argv[++i]);
		else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc)
			max_queries = atoi(argv[++i]);
		else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
			data_dir = argv[++i];
		else if (strcmp(argv[i], "--sections") == 0 && i + 1 < argc)
			sections = argv[++i];
		else
		{
			fprintf(stderr,
					"usage: %s [--quick] [--runs N] [--queries N] [--data DIR] [--sections 123]\n"
					"  --quick     1 run, a quarter of the graph pool, 200 queries, fewer configurations\n"
					"  --runs N    median of N timed runs (1..%d)\n"
					"  --queries N queries per data set (default 1000)\n",
					argv[0], MAX_RUNS);
			return 2;
		}
	}
	if (quick)
	{
		nruns = 1;
		if (max_queries > 200)
			max_queries = 200;
	}
	if (nruns < 1 || nruns > MAX_RUNS || max_queries < 1)
	{
		fprintf(stderr, "bad --runs or --queries\n");
		return 2;
	}
	if (data_dir == NULL)
		data_dir = getenv("VECSTORE_DATA");
	if (data_dir == NULL)
		data_dir = "../shared/data";

	VsDistanceInit();
	VsQuantInit();
	printf("# vecstore compact codes (SQ8): bench_quant\n\n");
	printf("Float kernels: %s (vsdistance.c); code kernels: %s (vsquant.c).\n",
		   VsKernelPathName(VsKernelsActivePath), VsQuantPathName(VsQuantActivePath));

	if (strchr(sections, '1'))
		section_speed();
	if (strchr(sections, '2') || strchr(sections, '3'))
		section_quality(strchr(sections, '2') != NULL, strchr(sections, '3') != NULL);
	return 0;
}
