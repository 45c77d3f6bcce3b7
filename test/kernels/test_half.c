/*-------------------------------------------------------------------------
 *
 * test_half.c
 *	  Unit test of src/vsdistance_half.c: half <-> float conversion and the
 *	  half distance kernels, every path against the scalar one.
 *
 * Links src/vsdistance_half.c and src/vsdistance.c without the server
 * (Makefile target test/kernels/test_half).  Groups of checks, one line
 * each, and "N passed, N failed" last (vstest.h); a path this CPU cannot
 * run prints "skip".  Exit status 1 on any failure.
 *
 * The groups:
 *	- widening: all 65536 halves against a value computed independently
 *	  from the bit fields in double (ldexp), bit for bit, NaNs quiet;
 *	- round trip: half -> float -> half gives back every non-NaN half;
 *	- rounding: VsFloatToHalf against an oracle that searches the sorted
 *	  table of halves for the nearest (ties to the even pattern), on every
 *	  midpoint between adjacent halves and the floats on either side of
 *	  it, on the overflow and underflow edges, and on random floats; plus
 *	  hand-worked cases;
 *	- per SIMD path: the bulk conversions equal the scalar ones bit for
 *	  bit (all halves; midpoints and random floats; every length 0..40 at
 *	  odd offsets, the element after the end untouched); the kernels, half
 *	  against half and float against half, are exact on small integers and
 *	  within a rounding bound of the scalar path and of a double
 *	  reference on random data; and a float-half kernel on a widened half
 *	  array equals the half-half kernel bit for bit (same loads, same
 *	  order);
 *	- bounds: every kernel on arrays that end right before an unreadable
 *	  page (a read past "n" kills the test).
 *
 * The error bound is test_kernels.c's: (n + 3) FLT_EPSILON sum|t_i| from
 * the double reference, twice that between two paths.
 *
 * IDENTIFICATION
 *	  test/kernels/test_half.c
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vstest.h"
#include "vsdistance_half.h"

#define MAX_DIM		16000
#define PAD			16

static const int big_dims[] = {100, 127, 128, 129, 255, 256, 257, 768, 1536, MAX_DIM};
#define NBIG_DIMS	((int) (sizeof(big_dims) / sizeof(big_dims[0])))

enum
{
	K_L2, K_IP, K_L1, K_DOT, K_NA, K_NB, NKERNELS
};
static const char *const kernel_names[NKERNELS] = {
	"l2_squared", "inner_product", "l1", "dot", "norm_a", "norm_b"
};

/* value of every finite non-negative half pattern 0 .. 0x7BFF, and 2^16 */
static double half_values[0x7C01];

/*
 * float_bits / bits_float - the bit pattern of a float and back.
 */
static uint32_t
float_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static float
bits_float(uint32_t u)
{
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * ref_half_value - the value of a non-NaN half from its fields, in double.
 */
static double
ref_half_value(uint16_t h)
{
	int			sign = (h & 0x8000) ? -1 : 1;
	int			exponent = (h >> 10) & 0x1F;
	int			mantissa = h & 0x3FF;

	if (exponent == 0x1F)
		return sign * INFINITY;
	if (exponent == 0)
		return sign * ldexp((double) mantissa, -24);
	return sign * ldexp((double) (1024 + mantissa), exponent - 25);
}

/*
 * ref_float_to_half - the nearest half by search, ties to the even
 * pattern.  The pattern after 0x7BFF is 0x7C00 (infinity), standing for
 * 2^16 in the search, which is exactly how IEEE rounding treats overflow.
 */
static uint16_t
ref_float_to_half(float f)
{
	double		x = fabs((double) f);
	uint16_t	sign = signbit(f) ? 0x8000 : 0;
	int			lo = 0,
				hi = 0x7C00;

	if (isnan(f))
		return 0x7E00;			/* compared as "some NaN" by the caller */
	if (x >= half_values[0x7C00])
		return sign | 0x7C00;
	/* largest pattern whose value is <= x */
	while (lo < hi)
	{
		int			mid = (lo + hi + 1) / 2;

		if (half_values[mid] <= x)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (half_values[lo] == x)
		return sign | lo;
	{
		double		below = x - half_values[lo];
		double		above = half_values[lo + 1] - x;

		if (below < above || (below == above && (lo & 1) == 0))
			return sign | lo;
		return sign | (lo + 1);
	}
}

/*
 * test_widening - VsHalfToFloat on all 65536 patterns.
 */
static void
test_widening(void)
{
	group_begin("half -> float: all 65536 halves, exact");
	for (uint32_t h = 0; h <= 0xFFFF; h++)
	{
		float		got = VsHalfToFloat((uint16_t) h);

		if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0)
		{
			/* NaN: quiet, sign and payload kept */
			uint32_t	want = ((h & 0x8000) << 16) | 0x7FC00000 | ((h & 0x3FF) << 13);

			check(float_bits(got) == want, "NaN 0x%04x -> 0x%08x, want 0x%08x",
				  h, float_bits(got), want);
			continue;
		}
		{
			float		want = (float) ref_half_value((uint16_t) h);

			check(float_bits(got) == float_bits(want), "0x%04x -> %a, want %a",
				  h, got, want);
		}
	}
	group_end();

	group_begin("half -> float -> half: every non-NaN half comes back");
	for (uint32_t h = 0; h <= 0xFFFF; h++)
	{
		uint16_t	back = VsFloatToHalf(VsHalfToFloat((uint16_t) h));

		if (VsHalfIsNan((uint16_t) h))
			check(VsHalfIsNan(back) && (back & 0x8000) == (h & 0x8000),
				  "NaN 0x%04x came back as 0x%04x", h, back);
		else
			check(back == h, "0x%04x came back as 0x%04x", h, back);
	}
	group_end();
}

/*
 * check_rounding - one float through VsFloatToHalf against the oracle.
 */
static void
check_rounding(float f)
{
	uint16_t	got = VsFloatToHalf(f);
	uint16_t	want = ref_float_to_half(f);

	if (isnan(f))
		check(VsHalfIsNan(got), "%a -> 0x%04x, want a NaN", f, got);
	else
		check(got == want, "%a (%.9g) -> 0x%04x, want 0x%04x", f, f, got, want);
}

/*
 * test_rounding - float -> half rounding against the oracle.
 */
static void
test_rounding(void)
{
	static const struct
	{
		float		in;
		uint16_t	out;
	}			cases[] = {
		{0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3C00}, {-2.0f, 0xC000},
		{65504.0f, 0x7BFF}, {65519.0f, 0x7BFF}, {65519.996f, 0x7BFF},
		{65520.0f, 0x7C00}, {-65520.0f, 0xFC00}, {1e30f, 0x7C00},
		{INFINITY, 0x7C00}, {-INFINITY, 0xFC00},
		{1e-8f, 0x0000}, {-1e-8f, 0x8000},
		{0x1p-24f, 0x0001},		/* smallest subnormal */
		{0x1p-25f, 0x0000},		/* tie between 0 and it: even is 0 */
		{0x1.000002p-25f, 0x0001},	/* just past the tie */
		{0x1.8p-24f, 0x0002},	/* 1.5 units: tie, to even 2 */
		{0x1.4p-24f, 0x0001},	/* 1.25 units */
		{0x1.ff8p-15f, 0x03FF},	/* the largest subnormal */
		{0x1.ffcp-15f, 0x0400},	/* tie with the smallest normal: even */
		{0x1p-14f, 0x0400},
		{0x1.004p+0f, 0x3C01},	/* 1 + 2^-10: exact */
		{0x1.002p+0f, 0x3C00},	/* 1 + 2^-11: tie, to even 1 */
		{0x1.006p+0f, 0x3C02},	/* 1 + 3 * 2^-11: tie, to even 1 + 2^-9 */
		{0x1.002002p+0f, 0x3C01},	/* just past the tie */
		{1.23456f, 0x3CF0},		/* 1.234375 */
		{0.1f, 0x2E66},
		{0x1p-149f, 0x0000},	/* float subnormal */
		{-0x1p-149f, 0x8000},
	};

	for (int i = 0; i <= 0x7C00; i++)
		half_values[i] = i == 0x7C00 ? 65536.0 : ref_half_value((uint16_t) i);

	group_begin("float -> half: hand-worked cases");
	for (int i = 0; i < (int) (sizeof(cases) / sizeof(cases[0])); i++)
		check(VsFloatToHalf(cases[i].in) == cases[i].out, "%a -> 0x%04x, want 0x%04x",
			  cases[i].in, VsFloatToHalf(cases[i].in), cases[i].out);
	check(VsHalfIsNan(VsFloatToHalf(NAN)), "NaN -> 0x%04x", VsFloatToHalf(NAN));
	group_end();

	group_begin("float -> half: every midpoint and its neighbours, both signs");
	for (int i = 0; i < 0x7C00; i++)
	{
		/* midpoints of halves need 12 significant bits: exact in float */
		float		mid = (float) ((half_values[i] + half_values[i + 1]) / 2.0);

		for (int s = 0; s < 2; s++)
		{
			float		m = s ? -mid : mid;

			check_rounding(m);
			check_rounding(nextafterf(m, 0.0f));
			check_rounding(nextafterf(m, s ? -INFINITY : INFINITY));
			check_rounding(s ? -(float) half_values[i] : (float) half_values[i]);
		}
	}
	group_end();

	group_begin("float -> half: 4M random float bit patterns");
	rng_seed(1);
	for (int i = 0; i < 4000000; i++)
	{
		uint32_t	u = (uint32_t) rng_next();

		/* half of them in or near the half range, where rounding matters */
		if (i & 1)
			u = (u & 0x80FFFFFF) | ((uint32_t) (97 + (u >> 24) % 48) << 23);
		check_rounding(bits_float(u));
	}
	group_end();
}

/*
 * random_value - a float from distribution "dist": 0 uniform in [-1,1],
 * 1 uniform in [-100,100], 2 the first with 40% exact zeros, 3 both signs
 * of a log-uniform magnitude in [1e-5,10] (half subnormals included).
 */
static float
random_value(int dist)
{
	switch (dist)
	{
		case 0:
			return (float) (2.0 * rng_unit() - 1.0);
		case 1:
			return (float) (200.0 * rng_unit() - 100.0);
		case 2:
			return rng_unit() < 0.4 ? 0.0f : (float) (2.0 * rng_unit() - 1.0);
		default:
			return (float) ((rng_next() & 1 ? 1 : -1) * pow(10.0, 6.0 * rng_unit() - 5.0));
	}
}

/*
 * reference - the kernels' sums in double on widened values, and the sums
 * of |term| for the error bound.
 */
static void
reference(const float *a, const float *b, int n, double *sums, double *abs_sums)
{
	for (int k = 0; k < NKERNELS; k++)
		sums[k] = abs_sums[k] = 0.0;
	for (int i = 0; i < n; i++)
	{
		double		x = a[i],
					y = b[i],
					d = x - y;

		sums[K_L2] += d * d;
		abs_sums[K_L2] += d * d;
		sums[K_IP] += x * y;
		abs_sums[K_IP] += fabs(x * y);
		sums[K_L1] += fabs(d);
		abs_sums[K_L1] += fabs(d);
		sums[K_DOT] += x * y;
		abs_sums[K_DOT] += fabs(x * y);
		sums[K_NA] += x * x;
		abs_sums[K_NA] += x * x;
		sums[K_NB] += y * y;
		abs_sums[K_NB] += y * y;
	}
}

/*
 * run_kernels - every kernel of "k" on (a or q, b), into out[NKERNELS].
 */
static void
run_kernels(VsHalfDistanceKernels k, const uint16_t *a, const float *q,
			const uint16_t *b, int n, float *out)
{
	if (q == NULL)
	{
		out[K_L2] = k->l2_squared(a, b, n);
		out[K_IP] = k->inner_product(a, b, n);
		out[K_L1] = k->l1(a, b, n);
		k->dot_norms(a, b, n, &out[K_DOT], &out[K_NA], &out[K_NB]);
	}
	else
	{
		out[K_L2] = k->l2_squared_fh(q, b, n);
		out[K_IP] = k->inner_product_fh(q, b, n);
		out[K_L1] = k->l1_fh(q, b, n);
		k->dot_norms_fh(q, b, n, &out[K_DOT], &out[K_NA], &out[K_NB]);
	}
}

/*
 * test_path_conversions - bulk conversions of "path" equal the scalar
 * ones bit for bit.
 */
static void
test_path_conversions(VsHalfDistanceKernels k, VsHalfDistanceKernels s, const char *name)
{
	static uint16_t halves[65536 + PAD];
	static float floats[65536 + PAD];
	static float want_f[65536 + PAD];
	static uint16_t want_h[65536 + PAD];
	int			nf = 0;

	group_begin("[%s] bulk half -> float: all halves, every length 0..40", name);
	for (int i = 0; i < 65536; i++)
		halves[i] = (uint16_t) i;
	k->half_to_float(halves, floats, 65536);
	s->half_to_float(halves, want_f, 65536);
	for (int i = 0; i < 65536; i++)
		check(float_bits(floats[i]) == float_bits(want_f[i]), "0x%04x -> 0x%08x, scalar 0x%08x",
			  i, float_bits(floats[i]), float_bits(want_f[i]));
	for (int n = 0; n <= 40; n++)
		for (int off = 0; off < 3; off++)
		{
			float		out[48];

			for (int i = 0; i < 48; i++)
				out[i] = -7.0f;
			k->half_to_float(halves + 0x3C00 + off, out + off, n);
			for (int i = 0; i < 48; i++)
			{
				if (i >= off && i < off + n)
					check(out[i] == VsHalfToFloat(0x3C00 + i), "length %d offset %d element %d", n, off, i);
				else
					check(out[i] == -7.0f, "length %d offset %d: element %d written", n, off, i);
			}
		}
	group_end();

	group_begin("[%s] bulk float -> half: midpoints, random floats, every length 0..40", name);
	rng_seed(2);
	for (int i = 0; i < 0x7C00 && nf + 2 <= 65536; i += 1)
	{
		float		mid = (float) ((half_values[i] + half_values[i + 1]) / 2.0);

		floats[nf++] = (i & 1) ? -mid : mid;
		floats[nf++] = nextafterf(mid, INFINITY);
	}
	while (nf < 65536)
	{
		uint32_t	u = (uint32_t) rng_next();

		floats[nf++] = bits_float((u & 0x80FFFFFF) | ((uint32_t) (97 + (u >> 24) % 50) << 23));
	}
	k->float_to_half(floats, halves, 65536);
	s->float_to_half(floats, want_h, 65536);
	for (int i = 0; i < 65536; i++)
		check(halves[i] == want_h[i], "%a -> 0x%04x, scalar 0x%04x", floats[i], halves[i], want_h[i]);
	for (int n = 0; n <= 40; n++)
		for (int off = 0; off < 3; off++)
		{
			uint16_t	out[48];

			for (int i = 0; i < 48; i++)
				out[i] = 0xABCD;
			k->float_to_half(floats + off, out + off, n);
			for (int i = 0; i < 48; i++)
			{
				if (i >= off && i < off + n)
					check(out[i] == VsFloatToHalf(floats[i]), "length %d offset %d element %d", n, off, i);
				else
					check(out[i] == 0xABCD, "length %d offset %d: element %d written", n, off, i);
			}
		}
	group_end();
}

/*
 * test_path_kernels - the kernels of "k" against the scalar path "s".
 */
static void
test_path_kernels(VsHalfDistanceKernels k, VsHalfDistanceKernels s, const char *name)
{
	uint16_t   *a = malloc(sizeof(uint16_t) * (MAX_DIM + PAD));
	uint16_t   *b = malloc(sizeof(uint16_t) * (MAX_DIM + PAD));
	float	   *q = malloc(sizeof(float) * (MAX_DIM + PAD));
	float	   *wa = malloc(sizeof(float) * (MAX_DIM + PAD));
	float	   *wb = malloc(sizeof(float) * (MAX_DIM + PAD));
	int			lengths[71 + NBIG_DIMS];
	int			nlengths = 0;

	for (int n = 0; n <= 70; n++)
		lengths[nlengths++] = n;
	for (int i = 0; i < NBIG_DIMS; i++)
		lengths[nlengths++] = big_dims[i];

	/* small integers: every sum is exact in float, in any order */
	group_begin("[%s] kernels exact on integers in [-8,8], every length", name);
	rng_seed(3);
	for (int li = 0; li < nlengths; li++)
	{
		int			n = lengths[li];
		int			off = li % 3;
		float		got[NKERNELS],
					got_fh[NKERNELS];
		double		want[NKERNELS],
					abs_sums[NKERNELS];

		for (int i = 0; i < n; i++)
		{
			wa[i] = (float) ((int) (rng_next() % 17) - 8);
			wb[i] = (float) ((int) (rng_next() % 17) - 8);
			a[off + i] = VsFloatToHalf(wa[i]);
			b[i] = VsFloatToHalf(wb[i]);
		}
		reference(wa, wb, n, want, abs_sums);
		run_kernels(k, a + off, NULL, b, n, got);
		run_kernels(k, NULL, wa, b, n, got_fh);
		for (int j = 0; j < NKERNELS; j++)
		{
			check(got[j] == (float) want[j], "%s n=%d: %.9g, want %.9g",
				  kernel_names[j], n, got[j], want[j]);
			check(got_fh[j] == (float) want[j], "%s_fh n=%d: %.9g, want %.9g",
				  kernel_names[j], n, got_fh[j], want[j]);
		}
	}
	group_end();

	group_begin("[%s] kernels within the rounding bound on random data", name);
	for (int dist = 0; dist < 4; dist++)
	{
		rng_seed(10 + dist);
		for (int li = 0; li < nlengths; li++)
		{
			int			n = lengths[li];
			int			off = li % 4;
			float		got[NKERNELS],
						sc[NKERNELS],
						got_fh[NKERNELS],
						sc_fh[NKERNELS],
						got_w[NKERNELS];
			double		want[NKERNELS],
						abs_sums[NKERNELS],
						want_fh[NKERNELS],
						abs_fh[NKERNELS];

			for (int i = 0; i < n; i++)
			{
				a[off + i] = VsFloatToHalf(random_value(dist));
				b[i] = VsFloatToHalf(random_value(dist));
				wa[i] = VsHalfToFloat(a[off + i]);
				wb[i] = VsHalfToFloat(b[i]);
				q[off + i] = random_value(dist);	/* not a half: a query */
			}
			reference(wa, wb, n, want, abs_sums);
			reference(q + off, wb, n, want_fh, abs_fh);
			run_kernels(k, a + off, NULL, b, n, got);
			run_kernels(s, a + off, NULL, b, n, sc);
			run_kernels(k, NULL, q + off, b, n, got_fh);
			run_kernels(s, NULL, q + off, b, n, sc_fh);
			/* the widened half array as a query: the same loads, the same sums */
			run_kernels(k, NULL, wa, b, n, got_w);
			for (int j = 0; j < NKERNELS; j++)
			{
				double		bound = (n + 3) * FLT_EPSILON * abs_sums[j];
				double		bound_fh = (n + 3) * FLT_EPSILON * abs_fh[j];

				check(fabs(got[j] - want[j]) <= bound, "%s dist %d n=%d: %.9g, reference %.9g",
					  kernel_names[j], dist, n, got[j], want[j]);
				check(fabs(got[j] - sc[j]) <= 2 * bound, "%s dist %d n=%d: %.9g, scalar %.9g",
					  kernel_names[j], dist, n, got[j], sc[j]);
				check(fabs(got_fh[j] - want_fh[j]) <= bound_fh, "%s_fh dist %d n=%d: %.9g, reference %.9g",
					  kernel_names[j], dist, n, got_fh[j], want_fh[j]);
				check(fabs(got_fh[j] - sc_fh[j]) <= 2 * bound_fh, "%s_fh dist %d n=%d: %.9g, scalar %.9g",
					  kernel_names[j], dist, n, got_fh[j], sc_fh[j]);
				check(float_bits(got_w[j]) == float_bits(got[j]), "%s dist %d n=%d: fh on widened %.9g, hh %.9g",
					  kernel_names[j], dist, n, got_w[j], got[j]);
			}
		}
	}
	group_end();

	free(a);
	free(b);
	free(q);
	free(wa);
	free(wb);
}

/*
 * guarded - "n" elements of "size" bytes that end right before an
 * unreadable page (NULL if the mapping fails).
 */
static void *
guarded(int n, size_t size)
{
	long		page = sysconf(_SC_PAGESIZE);
	char	   *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
						   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED || mprotect(mem + page, page, PROT_NONE) != 0)
		return NULL;
	return mem + page - n * size;
}

/*
 * unguard - unmap what guarded returned.
 */
static void
unguard(void *p, int n, size_t size)
{
	long		page = sysconf(_SC_PAGESIZE);

	if (p != NULL)
		munmap((char *) p + n * size - page, 2 * page);
}

/*
 * test_bounds - every kernel and conversion on arrays that end at an
 * unreadable page: a read past "n" is a SIGSEGV, which ends the test.
 */
static void
test_bounds(VsHalfDistanceKernels k, const char *name)
{
	group_begin("[%s] no read past n (arrays end at an unreadable page)", name);
	for (int n = 0; n <= 70; n++)
	{
		uint16_t   *h = guarded(n, sizeof(uint16_t));
		uint16_t   *h2 = guarded(n, sizeof(uint16_t));
		float	   *f = guarded(n, sizeof(float));
		float		out[NKERNELS];
		float		fo[72];
		uint16_t	ho[72];

		if (!check(h != NULL && h2 != NULL && f != NULL, "mmap or mprotect failed"))
			break;
		for (int i = 0; i < n; i++)
		{
			h[i] = VsFloatToHalf((float) (i % 5));
			h2[i] = VsFloatToHalf((float) (i % 3));
			f[i] = (float) (i % 7);
		}
		run_kernels(k, h2, NULL, h, n, out);
		check(out[K_L2] >= 0, "n=%d", n);
		run_kernels(k, NULL, f, h, n, out);
		check(out[K_L2] >= 0, "n=%d", n);
		k->half_to_float(h, fo, n);
		k->float_to_half(f, ho, n);
		check(n == 0 || (fo[n - 1] == (float) ((n - 1) % 5) &&
						 ho[n - 1] == VsFloatToHalf((float) ((n - 1) % 7))), "n=%d", n);
		unguard(h, n, sizeof(uint16_t));
		unguard(h2, n, sizeof(uint16_t));
		unguard(f, n, sizeof(float));
	}
	group_end();
}

int
main(void)
{
	VsHalfDistanceInit();

	test_widening();
	test_rounding();

	for (int p = VS_KERNEL_SCALAR; p < VS_KERNEL_NPATHS; p++)
	{
		VsHalfDistanceKernels k = VsHalfKernelsForPath((VsKernelPath) p);
		VsHalfDistanceKernels s = VsHalfKernelsForPath(VS_KERNEL_SCALAR);
		const char *name = VsKernelPathName((VsKernelPath) p);

		if (k == NULL)
		{
			group_begin("[%s] conversions and kernels", name);
			group_skip("path not supported by this CPU");
			continue;
		}
		test_path_conversions(k, s, name);
		test_path_kernels(k, s, name);
		test_bounds(k, name);
	}

	group_begin("VsHalfDistanceInit installs the fastest supported path");
	{
		VsKernelPath best = VS_KERNEL_SCALAR;

		for (int p = VS_KERNEL_SCALAR; p < VS_KERNEL_NPATHS; p++)
			if (VsHalfKernelPathSupported((VsKernelPath) p))
				best = (VsKernelPath) p;
		check(VsHalfKernelsActivePath == best, "active %s, best %s",
			  VsKernelPathName(VsHalfKernelsActivePath), VsKernelPathName(best));
		check(VsHalfDistanceSetPath(VS_KERNEL_SCALAR) == VS_KERNEL_SCALAR &&
			  VsHalfKernels.l2_squared == VsHalfKernelsForPath(VS_KERNEL_SCALAR)->l2_squared,
			  "forcing the scalar path");
		VsHalfDistanceInit();
	}
	group_end();

	printf("%d passed, %d failed\n", groups_passed, groups_failed);
	return groups_failed > 0 ? 1 : 0;
}
