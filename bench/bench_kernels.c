/*-------------------------------------------------------------------------
 *
 * bench_kernels.c
 *	  Benchmark: nanoseconds per distance call, per kernel and path.
 *
 * Not a test: it checks nothing and always exits 0 (2 on bad usage).  For
 * 128, 768 and 1536 dimensions, every kernel (l2_squared, inner_product,
 * l1, dot_norms, the pass behind cosine distance) and every path this CPU
 * supports, it prints a markdown table of the time per call and the
 * speed-up over the scalar path, in two settings:
 *
 *	- "set": one query against a working set of NVECTORS stored vectors in
 *	  order, like a sequential scan; at 1536 dimensions the set is 24 MiB,
 *	  far beyond L1 and L2, so this includes the cost of streaming memory;
 *	- "hot": one pair of vectors over and over, both in L1: the kernel's
 *	  arithmetic throughput alone.
 *
 * Methodology: CLOCK_MONOTONIC; the repetition count calibrated (which
 * warms up) so that one run lasts at least the target time; the median of
 * several runs, with the runs of the different paths interleaved so that
 * noise from other load hits them alike, and the speed-up taken as the
 * median of the per-round ratios.  Every result goes into a volatile sink
 * so the calls cannot be optimised away (they go through a function
 * pointer into another translation unit anyway).
 *
 * Usage: bench_kernels [--quick] [--runs N]
 *
 * IDENTIFICATION
 *	  bench/bench_kernels.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vsdistance.h"

/* stored vectors in the "set" setting */
#define NVECTORS	4096
#define MAX_RUNS	99

static const int dims[] = {128, 768, 1536};
#define NDIMS		((int) (sizeof(dims) / sizeof(dims[0])))
#define MAX_DIM		1536

typedef enum BenchKernel
{
	BK_L2, BK_IP, BK_L1, BK_DOT_NORMS, NBENCH_KERNELS
} BenchKernel;

static const char *const bench_kernel_names[NBENCH_KERNELS] = {
	"l2_squared", "inner_product", "l1", "dot_norms (cosine)"
};

/* results go here; volatile so no call is dead code */
static volatile float sink;

/* options */
static int	nruns = 7;
static double target_seconds = 0.05;

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
 * KERNEL_LOOP - run "body_call" (an expression using pointers qa and qb)
 * in the loop "loop_head" for the kernel "which" of "k", summing results
 * into acc.  The switch sits outside the loop, so the timed loop holds
 * nothing but the indirect call and the sum.
 */
#define KERNEL_LOOP(loop_head, qa, qb) \
	switch (which) \
	{ \
		case BK_L2: \
			loop_head acc += k->l2_squared(qa, qb, n); \
			break; \
		case BK_IP: \
			loop_head acc += k->inner_product(qa, qb, n); \
			break; \
		case BK_L1: \
			loop_head acc += k->l1(qa, qb, n); \
			break; \
		case BK_DOT_NORMS: \
			loop_head \
			{ \
				float		dot, na, nb; \
				k->dot_norms(qa, qb, n, &dot, &na, &nb); \
				acc += dot + na + nb; \
			} \
			break; \
		default: \
			abort(); \
	}

/*
 * time_set - seconds for "passes" passes of the query against every
 * vector of the set; the number of calls made goes to *calls.
 */
static double
time_set(VsDistanceKernels k, BenchKernel which, const float *query,
		 const float *set, int n, long passes, long *calls)
{
	float		acc = 0.0f;
	double		start = now_seconds();

	KERNEL_LOOP(for (long p = 0; p < passes; p++)
				for (int v = 0; v < NVECTORS; v++),
				query, set + (size_t) v * n);
	sink = acc;
	*calls = passes * NVECTORS;
	return now_seconds() - start;
}

/*
 * time_hot - seconds for "reps" calls on the same pair of vectors.
 */
static double
time_hot(VsDistanceKernels k, BenchKernel which, const float *a,
		 const float *b, int n, long reps, long *calls)
{
	float		acc = 0.0f;
	double		start = now_seconds();

	KERNEL_LOOP(for (long r = 0; r < reps; r++), a, b);
	sink = acc;
	*calls = reps;
	return now_seconds() - start;
}

/*
 * compare_doubles - qsort comparator.
 */
static int
compare_doubles(const void *x, const void *y)
{
	double		a = *(const double *) x,
				b = *(const double *) y;

	return (a > b) - (a < b);
}

/*
 * one_run - nanoseconds per call of one timed run of "reps" repetitions
 * (calls on the hot pair, or passes over the set).
 */
static double
one_run(VsDistanceKernels k, BenchKernel which, int hot, const float *query,
		const float *set, int n, long reps)
{
	long		calls = 0;
	double		elapsed;

	elapsed = hot ? time_hot(k, which, query, set, n, reps, &calls)
		: time_set(k, which, query, set, n, reps, &calls);
	return elapsed * 1e9 / (double) calls;
}

/*
 * calibrate - the repetition count that makes one run last at least
 * target_seconds.  Doubling from 1 also serves as the warm-up: it faults
 * in the set and brings it into whatever cache it fits.
 */
static long
calibrate(VsDistanceKernels k, BenchKernel which, int hot, const float *query,
		  const float *set, int n)
{
	long		reps = 1;

	for (;;)
	{
		double		ns = one_run(k, which, hot, query, set, n, reps);
		double		calls = (double) reps * (hot ? 1 : NVECTORS);

		if (ns * calls * 1e-9 >= target_seconds || reps > (1L << 40))
			return reps;
		reps *= 2;
	}
}

/*
 * measure_paths - median nanoseconds per call of one kernel and setting,
 * for every supported path, into ns_out[path], and the median speed-up
 * over scalar into speedup_out[path] (both 0 for unsupported paths).
 *
 * The runs of the paths are interleaved (run 1 of every path, then run 2
 * ...), so a burst of noise from other load on the machine tends to hit
 * one round of all paths alike.  The speed-up is therefore the median of
 * the per-round ratios, not the ratio of the medians.
 */
static void
measure_paths(BenchKernel which, int hot, const float *query, const float *set,
			  int n, double *ns_out, double *speedup_out)
{
	double		ns[VS_KERNEL_NPATHS][MAX_RUNS];
	double		ratio[MAX_RUNS];
	long		reps[VS_KERNEL_NPATHS];

	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		VsDistanceKernels k = VsKernelsForPath((VsKernelPath) p);

		if (k != NULL)
			reps[p] = calibrate(k, which, hot, query, set, n);
	}
	for (int r = 0; r < nruns; r++)
		for (int p = 0; p < VS_KERNEL_NPATHS; p++)
		{
			VsDistanceKernels k = VsKernelsForPath((VsKernelPath) p);

			if (k != NULL)
				ns[p][r] = one_run(k, which, hot, query, set, n, reps[p]);
		}
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		ns_out[p] = speedup_out[p] = 0.0;
		if (VsKernelsForPath((VsKernelPath) p) == NULL)
			continue;
		for (int r = 0; r < nruns; r++)
			ratio[r] = ns[VS_KERNEL_SCALAR][r] / ns[p][r];
		qsort(ratio, nruns, sizeof(double), compare_doubles);
		speedup_out[p] = ratio[nruns / 2];
	}
	/* sorting last: the ratios above need the runs in round order */
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		if (VsKernelsForPath((VsKernelPath) p) == NULL)
			continue;
		qsort(ns[p], nruns, sizeof(double), compare_doubles);
		ns_out[p] = ns[p][nruns / 2];
	}
}

/*
 * usage - print the options and exit with "status".
 */
static void
usage(const char *progname, int status)
{
	fprintf(status ? stderr : stdout,
			"Usage: %s [--quick] [--runs N]\n"
			"  --quick   3 runs of >= 10 ms each instead of 7 of >= 50 ms\n"
			"  --runs N  median of N runs (1..%d)\n",
			progname, MAX_RUNS);
	exit(status);
}

/*
 * main - parse options, fill the data, print the table.
 */
int
main(int argc, char **argv)
{
	float	   *set;
	float	   *query;
	uint64_t	x = 88172645463325252ull;
	int			runs_given = 0;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--quick") == 0)
		{
			if (!runs_given)
				nruns = 3;
			target_seconds = 0.01;
		}
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
		{
			nruns = atoi(argv[++i]);
			runs_given = 1;
			if (nruns < 1 || nruns > MAX_RUNS)
				usage(argv[0], 2);
		}
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			usage(argv[0], 0);
		else
			usage(argv[0], 2);
	}

	VsDistanceInit();

	/* uniform [-1, 1) from xorshift64; the values do not affect timing */
	set = malloc((size_t) NVECTORS * MAX_DIM * sizeof(float));
	query = malloc(MAX_DIM * sizeof(float));
	if (set == NULL || query == NULL)
	{
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < (size_t) NVECTORS * MAX_DIM + MAX_DIM; i++)
	{
		float		v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v = (float) ((double) (x >> 11) / 4503599627370496.0 - 1.0);
		if (i < (size_t) NVECTORS * MAX_DIM)
			set[i] = v;
		else
			query[i - (size_t) NVECTORS * MAX_DIM] = v;
	}

	printf("Paths supported:");
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
		if (VsKernelPathSupported((VsKernelPath) p))
			printf(" %s", VsKernelPathName((VsKernelPath) p));
	printf("; VsDistanceInit picks %s.\n", VsKernelPathName(VsKernelsActivePath));
	printf("Median of %d interleaved runs of >= %.0f ms; \"x scalar\" is the median "
		   "of the per-run ratios.\n\"set\": one query against %d stored vectors in "
		   "order (%.1f MiB at %d dims); \"hot\": one pair in L1.  Compiler: gcc %s.\n\n",
		   nruns, target_seconds * 1e3, NVECTORS,
		   (double) NVECTORS * MAX_DIM * sizeof(float) / (1024 * 1024), MAX_DIM,
		   __VERSION__);

	printf("| dims | kernel | path | set ns/call | set GB/s | set x scalar | hot ns/call | hot x scalar |\n");
	printf("|-----:|--------|------|------------:|---------:|-------------:|------------:|-------------:|\n");

	for (int d = 0; d < NDIMS; d++)
	{
		int			n = dims[d];

		for (int kk = 0; kk < NBENCH_KERNELS; kk++)
		{
			double		set_ns[VS_KERNEL_NPATHS],
						set_x[VS_KERNEL_NPATHS],
						hot_ns[VS_KERNEL_NPATHS],
						hot_x[VS_KERNEL_NPATHS];

			measure_paths((BenchKernel) kk, 0, query, set, n, set_ns, set_x);
			/* the hot pair: the query and the first stored vector */
			measure_paths((BenchKernel) kk, 1, query, set, n, hot_ns, hot_x);

			for (int p = 0; p < VS_KERNEL_NPATHS; p++)
			{
				if (!VsKernelPathSupported((VsKernelPath) p))
				{
					printf("| %d | %s | %s | skipped (not supported) | | | | |\n",
						   n, bench_kernel_names[kk], VsKernelPathName((VsKernelPath) p));
					continue;
				}
				/* GB/s: bytes of one stored vector streamed per call */
				printf("| %d | %s | %s | %.1f | %.1f | %.2f | %.1f | %.2f |\n",
					   n, bench_kernel_names[kk], VsKernelPathName((VsKernelPath) p),
					   set_ns[p], (double) n * sizeof(float) / set_ns[p],
					   set_x[p], hot_ns[p], hot_x[p]);
			}
			fflush(stdout);
		}
	}

	free(set);
	free(query);
	return 0;
}
