/*-------------------------------------------------------------------------
 *
 * test_kernels.c
 *	  Unit test: every supported kernel path agrees with the scalar path.
 *
 * Links src/vsdistance.c without the server (see the Makefile target
 * test/kernels/test_kernels).  Owns nothing but its own checks, which fall
 * into groups; each group prints one line and is counted once in the
 * summary, "N passed, N failed, N skipped", on the last line.  Groups for
 * a path the CPU cannot run are skipped.  Exit status 1 on any failure.
 *
 * The checks, per path:
 *	- exact: small hand-worked cases and integer-valued vectors, whose sums
 *	  are exact in float whatever the summation order, so every path must
 *	  give the exact answer bit for bit (catches a dropped or doubled tail
 *	  element at any length);
 *	- random: several value distributions, every length 0..70 and larger
 *	  ones, unaligned pointers, compared with the scalar path and with a
 *	  double-precision reference within a rounding-error bound;
 *	- bounds: the elements around each vector are NaN, and vectors also
 *	  end right before an unreadable page, so reading past "n" shows up as
 *	  a NaN result or a caught SIGSEGV.
 *
 * The error bound.  With u = FLT_EPSILON / 2, each term t_i (a product,
 * a squared or absolute difference) is formed with relative error at most
 * 3u (l2: u for the difference, doubled by squaring, plus u for the
 * product; with FMA the product is exact), and summing n terms in any
 * binary-tree order (the scalar loop, SIMD lanes plus horizontal
 * reduction, a scalar tail) adds at most (n - 1) u sum|t_i|.  So every path
 * lies within (n + 2) u sum|t_i| of the exact sum, to first order.  We
 * allow (n + 3) FLT_EPSILON sum|t_i| against the double reference (a
 * factor 2 for second-order terms and the reference's own rounding) and
 * twice that between a path and scalar.  sum|t_i| is computed in double.
 *
 * IDENTIFICATION
 *	  test/kernels/test_kernels.c
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vsdistance.h"

/* room around each vector for offsets and NaN poison, in floats */
#define PAD			16
/* largest vector length tested */
#define MAX_DIM		16000
/* failure details printed per group before going quiet */
#define MAX_DETAILS 5

/* the lengths tested besides every n in 0..SMALL_DIMS */
#define SMALL_DIMS	70
static const int big_dims[] = {
	100, 127, 128, 129, 255, 256, 257, 768, 1000, 1023, 1536, 4096, MAX_DIM
};
#define NBIG_DIMS	((int) (sizeof(big_dims) / sizeof(big_dims[0])))

/* (offset of a, offset of b) in floats from a 64-byte aligned base */
static const int offsets[][2] = {{0, 0}, {1, 1}, {1, 2}, {3, 0}, {7, 5}};
#define NOFFSETS	((int) (sizeof(offsets) / sizeof(offsets[0])))

#define NSEEDS		4

typedef enum Distribution
{
	DIST_UNIFORM,				/* uniform in [-1, 1] */
	DIST_LARGE,					/* uniform in [-1000, 1000] */
	DIST_TINY,					/* uniform in [-0.001, 0.001] */
	DIST_SPARSE,				/* uniform in [-1, 1], about 40% exact zeros */
	DIST_MIXED,					/* log-uniform magnitude in [1e-3, 1e3], both
								 * signs, some zeros */
	NDISTS
} Distribution;

static const char *const dist_names[NDISTS] = {
	"uniform [-1,1]", "large ~1e3", "tiny ~1e-3", "sparse (zeros)",
	"mixed magnitudes"
};

/* the kernels, for loops and messages */
enum
{
	K_L2, K_IP, K_L1, K_DOT, K_NORM_A, K_NORM_B, NKERNELS
};
static const char *const kernel_names[NKERNELS] = {
	"l2_squared", "inner_product", "l1", "dot_norms.dot",
	"dot_norms.norm_a", "dot_norms.norm_b"
};

/* state of the group being run */
static const char *group_name;
static long group_checks;
static long group_failures;
static char group_details[MAX_DETAILS][512];

static int	groups_passed;
static int	groups_failed;
static int	groups_skipped;

static uint64_t rng_state;

/* SIGSEGV recovery for the out-of-bounds group */
static sigjmp_buf segv_jump;
static volatile sig_atomic_t segv_armed;

/*
 * rng_seed - restart the generator (splitmix64) from a seed.
 */
static void
rng_seed(uint64_t seed)
{
	rng_state = seed * 0x9E3779B97F4A7C15ull + 12345;
}

/*
 * rng_next - next 64 random bits.
 */
static uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/*
 * rng_unit - uniform double in [0, 1).
 */
static double
rng_unit(void)
{
	return (double) (rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * random_value - one float drawn from distribution "dist".
 */
static float
random_value(Distribution dist)
{
	double		sign = (rng_next() & 1) ? 1.0 : -1.0;

	switch (dist)
	{
		case DIST_UNIFORM:
			return (float) (2.0 * rng_unit() - 1.0);
		case DIST_LARGE:
			return (float) (2000.0 * rng_unit() - 1000.0);
		case DIST_TINY:
			return (float) (0.002 * rng_unit() - 0.001);
		case DIST_SPARSE:
			if (rng_unit() < 0.4)
				return 0.0f;
			return (float) (2.0 * rng_unit() - 1.0);
		case DIST_MIXED:
			if (rng_unit() < 0.1)
				return 0.0f;
			return (float) (sign * pow(10.0, 6.0 * rng_unit() - 3.0));
		default:
			abort();
	}
}

/*
 * group_begin - start a group of checks; group_end reports it.
 */
static void
group_begin(const char *name)
{
	group_name = name;
	group_checks = 0;
	group_failures = 0;
}

/*
 * group_end - print the group's line and count it as passed or failed.
 */
static void
group_end(const char *path_name)
{
	if (group_failures == 0)
	{
		printf("ok   - %s [%s] (%ld checks)\n", group_name, path_name, group_checks);
		groups_passed++;
	}
	else
	{
		printf("FAIL - %s [%s] (%ld of %ld checks failed)\n",
			   group_name, path_name, group_failures, group_checks);
		for (long i = 0; i < group_failures && i < MAX_DETAILS; i++)
			printf("         %s\n", group_details[i]);
		groups_failed++;
	}
	fflush(stdout);
}

/*
 * group_skip - report a group that cannot run on this CPU.
 */
static void
group_skip(const char *name, const char *path_name)
{
	printf("skip - %s [%s] (path not supported by this CPU)\n", name, path_name);
	groups_skipped++;
}

/*
 * check - count one check; on failure keep its details (the first few),
 * which group_end prints under the group's line.
 */
static void
check(int ok, const char *fmt,...)
{
	group_checks++;
	if (ok)
		return;
	if (group_failures < MAX_DETAILS)
	{
		va_list		args;

		va_start(args, fmt);
		vsnprintf(group_details[group_failures], sizeof(group_details[0]), fmt, args);
		va_end(args);
	}
	group_failures++;
}

/*
 * run_kernels - every kernel of "k" on (a, b, n), results in out[NKERNELS].
 */
static void
run_kernels(VsDistanceKernels k, const float *a, const float *b, int n,
			float *out)
{
	out[K_L2] = k->l2_squared(a, b, n);
	out[K_IP] = k->inner_product(a, b, n);
	out[K_L1] = k->l1(a, b, n);
	k->dot_norms(a, b, n, &out[K_DOT], &out[K_NORM_A], &out[K_NORM_B]);
}

/*
 * reference - exact-ish results in double, and the sum of absolute terms
 * of each kernel (for the error bound) in abs_terms[NKERNELS].
 *
 * Differences and products of two floats are exact in double for the
 * ranges used here; only the double summation rounds, far below the
 * float bound.
 */
static void
reference(const float *a, const float *b, int n, double *out, double *abs_terms)
{
	for (int k = 0; k < NKERNELS; k++)
		out[k] = abs_terms[k] = 0.0;

	for (int i = 0; i < n; i++)
	{
		double		x = a[i],
					y = b[i],
					d = x - y;

		out[K_L2] += d * d;
		abs_terms[K_L2] += d * d;
		out[K_IP] += x * y;
		abs_terms[K_IP] += fabs(x * y);
		out[K_L1] += fabs(d);
		abs_terms[K_L1] += fabs(d);
		out[K_NORM_A] += x * x;
		abs_terms[K_NORM_A] += x * x;
		out[K_NORM_B] += y * y;
		abs_terms[K_NORM_B] += y * y;
	}
	out[K_DOT] = out[K_IP];
	abs_terms[K_DOT] = abs_terms[K_IP];
}

/*
 * error_bound - how far a float kernel result may lie from the exact sum
 * of n terms whose absolute values add up to abs_terms (file header).
 */
static double
error_bound(int n, double abs_terms)
{
	return (double) (n + 3) * FLT_EPSILON * abs_terms;
}

/*
 * fill_poisoned - fill buf (PAD + n + PAD floats) with NaN, then n values
 * of "dist" starting at buf + PAD + offset; returns that start.
 */
static float *
fill_poisoned(float *buf, int offset, int n, Distribution dist)
{
	float	   *v = buf + PAD + offset;

	for (int i = 0; i < PAD + MAX_DIM + PAD; i++)
		buf[i] = NAN;
	for (int i = 0; i < n; i++)
		v[i] = random_value(dist);
	return v;
}

/*
 * test_dispatch - VsDistanceInit picks the best supported path and
 * installs its table; the path functions answer sensibly.
 */
static void
test_dispatch(void)
{
	VsKernelPath best = VS_KERNEL_SCALAR;
	VsDistanceKernels active;

	group_begin("dispatch: VsDistanceInit, VsKernelsForPath, VsKernelPathName");

	check(VsKernelsActivePath == VS_KERNEL_SCALAR,
		  "active path before VsDistanceInit is %d, want scalar",
		  (int) VsKernelsActivePath);
	check(VsKernelPathSupported(VS_KERNEL_SCALAR), "scalar path unsupported");
	check(VsKernelsForPath(VS_KERNEL_SCALAR) != NULL,
		  "VsKernelsForPath(scalar) is NULL");
	check(VsKernelsForPath(VS_KERNEL_NPATHS) == NULL,
		  "VsKernelsForPath(VS_KERNEL_NPATHS) is not NULL");
	check(!VsKernelPathSupported(VS_KERNEL_NPATHS),
		  "VsKernelPathSupported(VS_KERNEL_NPATHS) is true");
	check(strcmp(VsKernelPathName(VS_KERNEL_SCALAR), "scalar") == 0 &&
		  strcmp(VsKernelPathName(VS_KERNEL_AVX2), "avx2") == 0 &&
		  strcmp(VsKernelPathName(VS_KERNEL_AVX512), "avx512") == 0 &&
		  strcmp(VsKernelPathName(VS_KERNEL_NPATHS), "unknown") == 0,
		  "unexpected path names");

	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		int			supported = VsKernelPathSupported((VsKernelPath) p);

		/* a table exactly when supported */
		check((VsKernelsForPath((VsKernelPath) p) != NULL) == (supported != 0),
			  "path %s: supported=%d but table %s", VsKernelPathName((VsKernelPath) p),
			  supported, VsKernelsForPath((VsKernelPath) p) ? "present" : "NULL");
		if (supported)
			best = (VsKernelPath) p;
	}

	VsDistanceInit();
	VsDistanceInit();			/* idempotent */

	check(VsKernelsActivePath == best,
		  "VsDistanceInit chose %s, best supported is %s",
		  VsKernelPathName(VsKernelsActivePath), VsKernelPathName(best));
	check(VsKernelPathSupported(VsKernelsActivePath),
		  "VsDistanceInit chose unsupported path %s",
		  VsKernelPathName(VsKernelsActivePath));
	active = VsKernelsForPath(VsKernelsActivePath);
	check(active != NULL &&
		  VsKernels.l2_squared == active->l2_squared &&
		  VsKernels.inner_product == active->inner_product &&
		  VsKernels.l1 == active->l1 &&
		  VsKernels.dot_norms == active->dot_norms,
		  "VsKernels differs from VsKernelsForPath(%s)",
		  VsKernelPathName(VsKernelsActivePath));

	group_end(VsKernelPathName(VsKernelsActivePath));
	printf("       supported paths:");
	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
		if (VsKernelPathSupported((VsKernelPath) p))
			printf(" %s", VsKernelPathName((VsKernelPath) p));
	printf("; active: %s\n", VsKernelPathName(VsKernelsActivePath));
}

/*
 * check_exact - every kernel of "k" on (a, b, n) equals want[] exactly.
 */
static void
check_exact(VsDistanceKernels k, const char *what, const float *a,
			const float *b, int n, const double *want)
{
	float		got[NKERNELS];

	run_kernels(k, a, b, n, got);
	for (int j = 0; j < NKERNELS; j++)
		check((double) got[j] == want[j],
			  "%s n=%d %s: got %.9g, want exactly %.9g",
			  what, n, kernel_names[j], (double) got[j], want[j]);
}

/*
 * test_exact - results that must be exact on every path: hand-worked
 * cases, n = 0 (reading nothing: the pointers are unreadable), and
 * integer-valued vectors of every tested length.
 */
static void
test_exact(VsKernelPath path, float *buf_a, float *buf_b, float *noaccess)
{
	VsDistanceKernels k = VsKernelsForPath(path);
	static const float a3[] = {1, 2, 3},
				b3[] = {4, 5, 6};
	static const double want3[NKERNELS] = {27, 32, 9, 32, 14, 77};
	static const float a4[] = {-1.5f, 0.25f, 0, 2},
				b4[] = {0.5f, -0.75f, 0, -2};
	/* l2 4+1+0+16, ip -0.75-0.1875+0-4, l1 2+1+0+4 */
	static const double want4[NKERNELS] = {21, -4.9375, 7, -4.9375, 6.3125, 4.8125};
	static const double zeros[NKERNELS] = {0};
	double		want[NKERNELS];

	group_begin("exact: hand cases, n=0, integer vectors at every length");

	check_exact(k, "[1,2,3] vs [4,5,6]", a3, b3, 3, want3);
	check_exact(k, "quarters", a4, b4, 4, want4);
	/* n = 0 must return 0 without touching memory */
	check_exact(k, "n=0 (unreadable pointers)", noaccess, noaccess, 0, zeros);
	check_exact(k, "n=0", a3, b3, 0, zeros);
	check_exact(k, "n=1", a3, b3, 1, (const double[NKERNELS]) {9, 4, 3, 4, 1, 16});

	/*
	 * Integers in [-8, 8]: every partial sum is an integer below 2^24 for
	 * n <= 16000 (16000 * 16^2 < 2^24), so any summation order is exact.
	 */
	rng_seed(7);
	for (int di = 0; di < SMALL_DIMS + 1 + NBIG_DIMS; di++)
	{
		int			n = di <= SMALL_DIMS ? di : big_dims[di - SMALL_DIMS - 1];
		float	   *a = buf_a + PAD + (di % 4);
		float	   *b = buf_b + PAD + ((di / 4) % 4);
		int64_t		l2 = 0,
					ip = 0,
					l1 = 0,
					na = 0,
					nb = 0;

		for (int i = 0; i < n; i++)
		{
			int			x = (int) (rng_next() % 17) - 8;
			int			y = (int) (rng_next() % 17) - 8;

			a[i] = (float) x;
			b[i] = (float) y;
			l2 += (int64_t) (x - y) * (x - y);
			ip += (int64_t) x * y;
			l1 += x > y ? x - y : y - x;
			na += (int64_t) x * x;
			nb += (int64_t) y * y;
		}
		want[K_L2] = (double) l2;
		want[K_IP] = want[K_DOT] = (double) ip;
		want[K_L1] = (double) l1;
		want[K_NORM_A] = (double) na;
		want[K_NORM_B] = (double) nb;
		check_exact(k, "integers", a, b, n, want);

		/* x - x = 0 exactly, so l2 and l1 of a vector with itself are 0 */
		{
			float		got_l2 = k->l2_squared(a, a, n);
			float		got_l1 = k->l1(a, a, n);

			check(got_l2 == 0.0f && got_l1 == 0.0f,
				  "n=%d a vs a: l2 %g l1 %g, want 0", n, got_l2, got_l1);
		}
	}

	group_end(VsKernelPathName(path));
}

/*
 * test_random - random inputs of every distribution, length, offset and
 * seed: within the rounding bound of the double reference and of the
 * scalar path; and exactly symmetric in (a, b).
 *
 * The floats around each vector are NaN, so a read past either end turns
 * the result into NaN and fails the bound check.
 */
static void
test_random(VsKernelPath path, Distribution dist, float *buf_a, float *buf_b)
{
	VsDistanceKernels k = VsKernelsForPath(path);
	VsDistanceKernels scalar = VsKernelsForPath(VS_KERNEL_SCALAR);
	char		name[128];

	snprintf(name, sizeof(name), "random %s: vs scalar and double reference",
			 dist_names[dist]);
	group_begin(name);

	for (int seed = 1; seed <= NSEEDS; seed++)
	{
		for (int di = 0; di < SMALL_DIMS + 1 + NBIG_DIMS; di++)
		{
			int			n = di <= SMALL_DIMS ? di : big_dims[di - SMALL_DIMS - 1];

			for (int oi = 0; oi < NOFFSETS; oi++)
			{
				float	   *a,
						   *b;
				float		got[NKERNELS],
							ref_scalar[NKERNELS],
							swapped[NKERNELS];
				double		ref[NKERNELS],
							abs_terms[NKERNELS];

				/* big vectors: fewer offsets, the tails are covered above */
				if (n > 300 && oi >= 2)
					continue;

				rng_seed((uint64_t) seed * 1000003u + (uint64_t) n * 101u +
						 (uint64_t) oi * 7u + (uint64_t) dist);
				a = fill_poisoned(buf_a, offsets[oi][0], n, dist);
				b = fill_poisoned(buf_b, offsets[oi][1], n, dist);

				reference(a, b, n, ref, abs_terms);
				run_kernels(scalar, a, b, n, ref_scalar);
				run_kernels(k, a, b, n, got);
				run_kernels(k, b, a, n, swapped);

				for (int j = 0; j < NKERNELS; j++)
				{
					double		tol = error_bound(n, abs_terms[j]);
					double		err_ref = fabs((double) got[j] - ref[j]);
					double		err_scalar = fabs((double) got[j] - (double) ref_scalar[j]);

					check(err_ref <= tol,
						  "seed=%d n=%d offsets=(%d,%d) %s: got %.9g, double ref %.17g, |err| %.3g > bound %.3g",
						  seed, n, offsets[oi][0], offsets[oi][1], kernel_names[j],
						  (double) got[j], ref[j], err_ref, tol);
					check(err_scalar <= 2.0 * tol,
						  "seed=%d n=%d offsets=(%d,%d) %s: got %.9g, scalar %.9g, |diff| %.3g > bound %.3g",
						  seed, n, offsets[oi][0], offsets[oi][1], kernel_names[j],
						  (double) got[j], (double) ref_scalar[j], err_scalar, 2.0 * tol);
				}

				/* (a-b)^2 = (b-a)^2, |a-b| = |b-a|, ab = ba, all exactly */
				check(got[K_L2] == swapped[K_L2] && got[K_IP] == swapped[K_IP] &&
					  got[K_L1] == swapped[K_L1] && got[K_DOT] == swapped[K_DOT] &&
					  got[K_NORM_A] == swapped[K_NORM_B] &&
					  got[K_NORM_B] == swapped[K_NORM_A],
					  "seed=%d n=%d: not exactly symmetric in (a, b)", seed, n);
			}
		}
	}

	group_end(VsKernelPathName(path));
}

/*
 * segv_handler - jump back into test_bounds when a kernel faults.
 */
static void
segv_handler(int signo)
{
	if (segv_armed)
		siglongjmp(segv_jump, 1);
	signal(signo, SIG_DFL);
	raise(signo);
}

/*
 * test_bounds - vectors that end right before an unreadable page (and,
 * separately, start right after one): no kernel may fault, and the
 * results must match those of a copy in ordinary memory bit for bit.
 */
static void
test_bounds(VsKernelPath path, float *region, size_t region_floats,
			float *buf_a, float *buf_b)
{
	VsDistanceKernels k = VsKernelsForPath(path);
	/* the usable floats lie between two PROT_NONE pages */
	float	   *end = region + region_floats;
	struct sigaction sa,
				old_segv,
				old_bus;

	group_begin("bounds: vectors touching unreadable pages");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = segv_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	for (int di = 1; di < SMALL_DIMS + 1 + NBIG_DIMS; di++)
	{
		int			n = di <= SMALL_DIMS ? di : big_dims[di - SMALL_DIMS - 1];

		for (int at_start = 0; at_start <= 1; at_start++)
		{
			/* a at one edge, b at the other, so each edge is touched */
			float	   *a = at_start ? region : end - n;
			float	   *b = at_start ? end - n : region;
			float		got[NKERNELS],
						want[NKERNELS];

			if ((size_t) n > region_floats)
				continue;
			rng_seed((uint64_t) n * 31u + (uint64_t) at_start);
			for (int i = 0; i < n; i++)
			{
				a[i] = random_value(DIST_UNIFORM);
				b[i] = random_value(DIST_UNIFORM);
			}
			memcpy(buf_a + PAD, a, n * sizeof(float));
			memcpy(buf_b + PAD, b, n * sizeof(float));
			run_kernels(k, buf_a + PAD, buf_b + PAD, n, want);

			if (sigsetjmp(segv_jump, 1) == 0)
			{
				segv_armed = 1;
				run_kernels(k, a, b, n, got);
				segv_armed = 0;
				for (int j = 0; j < NKERNELS; j++)
					check(got[j] == want[j],
						  "n=%d %s at %s of a page: got %.9g, same data elsewhere %.9g",
						  n, kernel_names[j], at_start ? "start" : "end",
						  (double) got[j], (double) want[j]);
			}
			else
			{
				segv_armed = 0;
				check(0, "n=%d: fault with a vector at the %s of a page",
					  n, at_start ? "start" : "end");
			}
		}
	}

	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	group_end(VsKernelPathName(path));
}

/*
 * test_cosine - VsCosineFromSums on dot_norms of each path: parallel,
 * opposite and orthogonal vectors, clamping, and NaN for a zero vector.
 */
static void
test_cosine(VsKernelPath path, float *buf_a, float *buf_b)
{
	VsDistanceKernels k = VsKernelsForPath(path);
	float	   *a = buf_a + PAD + 1;
	float	   *b = buf_b + PAD + 2;
	float		dot,
				na,
				nb;
	double		cos;

	group_begin("cosine: VsCosineFromSums over dot_norms");

	for (int n = 1; n <= 300; n += (n < 40 ? 1 : 37))
	{
		/*
		 * All terms of dot, norm_a and norm_b are >= 0 here, so each sum
		 * is within (n + 2) u of exact, relatively; the similarity within
		 * about twice that.
		 */
		double		tol = 2.0 * (n + 3) * FLT_EPSILON;

		rng_seed((uint64_t) n + 99u);
		for (int i = 0; i < n; i++)
		{
			a[i] = random_value(DIST_MIXED);
			if (a[i] == 0.0f)
				a[i] = 1.0f;	/* keep the vector non-zero */
			b[i] = a[i] * 4.0f;	/* exact scaling: same direction */
		}
		k->dot_norms(a, b, n, &dot, &na, &nb);
		cos = VsCosineFromSums(dot, na, nb);
		check(cos >= 0.0 && cos <= tol, "n=%d parallel: cosine distance %.9g, want ~0", n, cos);

		for (int i = 0; i < n; i++)
			b[i] = -a[i];
		k->dot_norms(a, b, n, &dot, &na, &nb);
		cos = VsCosineFromSums(dot, na, nb);
		check(cos <= 2.0 && cos >= 2.0 - tol, "n=%d opposite: cosine distance %.9g, want ~2", n, cos);

		for (int i = 0; i < n; i++)
			b[i] = 0.0f;
		k->dot_norms(a, b, n, &dot, &na, &nb);
		cos = VsCosineFromSums(dot, na, nb);
		check(isnan(cos), "n=%d zero vector: cosine distance %.9g, want NaN", n, cos);
	}

	/* orthogonal, exactly */
	a[0] = 1, a[1] = 0, a[2] = 2;
	b[0] = 0, b[1] = 3, b[2] = 0;
	k->dot_norms(a, b, 3, &dot, &na, &nb);
	check(VsCosineFromSums(dot, na, nb) == 1.0, "orthogonal: %.9g, want 1",
		  VsCosineFromSums(dot, na, nb));
	/* sums that round past +-1 are clamped */
	check(VsCosineFromSums(1.0f, 0.999f, 0.999f) == 0.0, "no clamp at +1");
	check(VsCosineFromSums(-1.0f, 0.999f, 0.999f) == 2.0, "no clamp at -1");

	group_end(VsKernelPathName(path));
}

/*
 * alloc_floats - n floats, 64-byte aligned, or exit.
 */
static float *
alloc_floats(size_t n)
{
	void	   *p = NULL;

	if (posix_memalign(&p, 64, n * sizeof(float)) != 0)
	{
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

/*
 * main - run every group on every path; see the file header.
 */
int
main(void)
{
	size_t		page = (size_t) sysconf(_SC_PAGESIZE);
	size_t		region_bytes = ((MAX_DIM * sizeof(float) + page - 1) / page) * page;
	char	   *map;
	float	   *region;
	float	   *buf_a = alloc_floats(PAD + MAX_DIM + PAD);
	float	   *buf_b = alloc_floats(PAD + MAX_DIM + PAD);

	/* [PROT_NONE page][region][PROT_NONE page] */
	map = mmap(NULL, region_bytes + 2 * page, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED ||
		mprotect(map, page, PROT_NONE) != 0 ||
		mprotect(map + page + region_bytes, page, PROT_NONE) != 0)
	{
		perror("mmap");
		return 2;
	}
	region = (float *) (map + page);

	test_dispatch();

	for (int p = 0; p < VS_KERNEL_NPATHS; p++)
	{
		VsKernelPath path = (VsKernelPath) p;
		const char *pname = VsKernelPathName(path);

		if (!VsKernelPathSupported(path))
		{
			group_skip("exact, random, bounds and cosine groups", pname);
			continue;
		}
		/* an unreadable pointer for the n = 0 case: the guard page */
		test_exact(path, buf_a, buf_b, (float *) map);
		for (int d = 0; d < NDISTS; d++)
			test_random(path, (Distribution) d, buf_a, buf_b);
		test_bounds(path, region, region_bytes / sizeof(float), buf_a, buf_b);
		test_cosine(path, buf_a, buf_b);
	}

	printf("%d passed, %d failed", groups_passed, groups_failed);
	if (groups_skipped > 0)
		printf(", %d skipped", groups_skipped);
	printf("\n");

	munmap(map, region_bytes + 2 * page);
	free(buf_a);
	free(buf_b);
	return groups_failed > 0 ? 1 : 0;
}
