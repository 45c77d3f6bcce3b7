/*-------------------------------------------------------------------------
 *
 * vsdistance.c
 *	  Distance kernels with runtime CPU dispatch.
 *
 * Owns the scalar reference implementation of every kernel and the x86-64
 * SIMD implementations (AVX2+FMA and AVX-512F), compiled with per-function
 * target attributes so that the module as a whole still runs on any
 * x86-64 CPU.  VsDistanceInit() asks the CPU (through the compiler's
 * cpuid support, which also checks that the OS saves the wide registers)
 * which paths it can run and installs the fastest in VsKernels.
 *
 * Pure C: no postgres.h, no palloc, no elog.  The kernel unit test
 * (test/kernels) and the benchmark (bench/bench_kernels.c) link this file
 * directly and call every path through VsKernelsForPath().
 *
 * IDENTIFICATION
 *	  src/vsdistance.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>
#include <math.h>

#include "vsdistance.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VS_HAVE_X86_SIMD 1
#include <immintrin.h>
#endif

/*
 * Scalar reference kernels.  One accumulator, elements in order: this is
 * the definition the SIMD paths are tested against.
 */
static float
l2_squared_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
	{
		float		d = a[i] - b[i];

		sum += d * d;
	}
	return sum;
}

/*
 * inner_product_scalar - sum of products, in element order.
 */
static float
inner_product_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

/*
 * l1_scalar - sum of absolute differences.
 */
static float
l1_scalar(const float *a, const float *b, int n)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
		sum += fabsf(a[i] - b[i]);
	return sum;
}

/*
 * dot_norms_scalar - a.b, a.a and b.b in one pass.
 */
static void
dot_norms_scalar(const float *a, const float *b, int n,
				 float *dot, float *norm_a, float *norm_b)
{
	float		d = 0.0f,
				na = 0.0f,
				nb = 0.0f;

	for (int i = 0; i < n; i++)
	{
		d += a[i] * b[i];
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	*dot = d;
	*norm_a = na;
	*norm_b = nb;
}

#ifdef VS_HAVE_X86_SIMD

#define VS_AVX2 __attribute__((target("avx2,fma")))
#define VS_AVX512 __attribute__((target("avx512f")))

/*
 * hsum256 - horizontal sum of the eight lanes.
 */
VS_AVX2 static inline float
hsum256(__m256 v)
{
	__m128		lo = _mm256_castps256_ps128(v);
	__m128		hi = _mm256_extractf128_ps(v, 1);

	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

/*
 * AVX2 kernels: two 8-lane accumulators (16 floats a step) hide the FMA
 * latency; a remainder under 8 elements is summed by scalar code.
 */
VS_AVX2 static float
l2_squared_avx2(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
	}
	sum = hsum256(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
	{
		float		d = a[i] - b[i];

		sum += d * d;
	}
	return sum;
}

/*
 * inner_product_avx2 - see l2_squared_avx2 for the loop structure.
 */
VS_AVX2 static float
inner_product_avx2(const float *a, const float *b, int n)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	sum = hsum256(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		sum += a[i] * b[i];
	return sum;
}

/*
 * l1_avx2 - absolute value by clearing the sign bit.
 */
VS_AVX2 static float
l1_avx2(const float *a, const float *b, int n)
{
	const __m256 signmask = _mm256_set1_ps(-0.0f);
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	float		sum;
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
		__m256		d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(signmask, d0));
		s1 = _mm256_add_ps(s1, _mm256_andnot_ps(signmask, d1));
	}
	for (; i + 8 <= n; i += 8)
	{
		__m256		d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(signmask, d0));
	}
	sum = hsum256(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		sum += fabsf(a[i] - b[i]);
	return sum;
}

/*
 * dot_norms_avx2 - three accumulators, one 8-float step at a time.
 */
VS_AVX2 static void
dot_norms_avx2(const float *a, const float *b, int n,
			   float *dot, float *norm_a, float *norm_b)
{
	__m256		sd = _mm256_setzero_ps();
	__m256		sa = _mm256_setzero_ps();
	__m256		sb = _mm256_setzero_ps();
	float		d,
				na,
				nb;
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		va = _mm256_loadu_ps(a + i);
		__m256		vb = _mm256_loadu_ps(b + i);

		sd = _mm256_fmadd_ps(va, vb, sd);
		sa = _mm256_fmadd_ps(va, va, sa);
		sb = _mm256_fmadd_ps(vb, vb, sb);
	}
	d = hsum256(sd);
	na = hsum256(sa);
	nb = hsum256(sb);
	for (; i < n; i++)
	{
		d += a[i] * b[i];
		na += a[i] * a[i];
		nb += b[i] * b[i];
	}
	*dot = d;
	*norm_a = na;
	*norm_b = nb;
}

/*
 * AVX-512 kernels: two 16-lane accumulators, and the remainder loaded
 * with a mask (masked-off lanes read as zero and are never touched in
 * memory), so there is no scalar tail.
 */
VS_AVX512 static inline __mmask16
tail_mask(int remaining)
{
	return (__mmask16) ((1u << remaining) - 1u);
}

/*
 * l2_squared_avx512 - see the comment above.
 */
VS_AVX512 static float
l2_squared_avx512(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
	}
	for (; i + 16 <= n; i += 16)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);
		__m512		d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
									   _mm512_maskz_loadu_ps(m, b + i));

		s1 = _mm512_fmadd_ps(d0, d0, s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/*
 * inner_product_avx512 - see l2_squared_avx512.
 */
VS_AVX512 static float
inner_product_avx512(const float *a, const float *b, int n)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);

		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
							 _mm512_maskz_loadu_ps(m, b + i), s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/*
 * l1_avx512 - absolute value by clearing the sign bit (AVX-512F has no
 * float abs instruction of its own; andnot on the integer view does it).
 */
VS_AVX512 static float
l1_avx512(const float *a, const float *b, int n)
{
	const __m512i signmask = _mm512_set1_epi32(0x7fffffff);
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
		__m512		d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));

		s0 = _mm512_add_ps(s0, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d0), signmask)));
		s1 = _mm512_add_ps(s1, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d1), signmask)));
	}
	for (; i + 16 <= n; i += 16)
	{
		__m512		d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));

		s0 = _mm512_add_ps(s0, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d0), signmask)));
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);
		__m512		d0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i),
									   _mm512_maskz_loadu_ps(m, b + i));

		s1 = _mm512_add_ps(s1, _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(d0), signmask)));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/*
 * dot_norms_avx512 - three accumulators, masked remainder.
 */
VS_AVX512 static void
dot_norms_avx512(const float *a, const float *b, int n,
				 float *dot, float *norm_a, float *norm_b)
{
	__m512		sd = _mm512_setzero_ps();
	__m512		sa = _mm512_setzero_ps();
	__m512		sb = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		va = _mm512_loadu_ps(a + i);
		__m512		vb = _mm512_loadu_ps(b + i);

		sd = _mm512_fmadd_ps(va, vb, sd);
		sa = _mm512_fmadd_ps(va, va, sa);
		sb = _mm512_fmadd_ps(vb, vb, sb);
	}
	if (i < n)
	{
		__mmask16	m = tail_mask(n - i);
		__m512		va = _mm512_maskz_loadu_ps(m, a + i);
		__m512		vb = _mm512_maskz_loadu_ps(m, b + i);

		sd = _mm512_fmadd_ps(va, vb, sd);
		sa = _mm512_fmadd_ps(va, va, sa);
		sb = _mm512_fmadd_ps(vb, vb, sb);
	}
	*dot = _mm512_reduce_add_ps(sd);
	*norm_a = _mm512_reduce_add_ps(sa);
	*norm_b = _mm512_reduce_add_ps(sb);
}
#endif							/* VS_HAVE_X86_SIMD */

static const VsDistanceKernelsData kernel_table[VS_KERNEL_NPATHS] = {
	[VS_KERNEL_SCALAR] = {l2_squared_scalar, inner_product_scalar, l1_scalar, dot_norms_scalar},
#ifdef VS_HAVE_X86_SIMD
	[VS_KERNEL_AVX2] = {l2_squared_avx2, inner_product_avx2, l1_avx2, dot_norms_avx2},
	[VS_KERNEL_AVX512] = {l2_squared_avx512, inner_product_avx512, l1_avx512, dot_norms_avx512},
#endif
};

static const char *const path_names[VS_KERNEL_NPATHS] = {
	[VS_KERNEL_SCALAR] = "scalar",
	[VS_KERNEL_AVX2] = "avx2",
	[VS_KERNEL_AVX512] = "avx512",
};

VsDistanceKernelsData VsKernels = {l2_squared_scalar, inner_product_scalar, l1_scalar, dot_norms_scalar};
VsKernelPath VsKernelsActivePath = VS_KERNEL_SCALAR;

/*
 * VsKernelPathSupported - can this CPU (and OS) run the given path?
 */
int
VsKernelPathSupported(VsKernelPath path)
{
	switch (path)
	{
		case VS_KERNEL_SCALAR:
			return 1;
#ifdef VS_HAVE_X86_SIMD
		case VS_KERNEL_AVX2:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		case VS_KERNEL_AVX512:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx512f");
#endif
		default:
			return 0;
	}
}

/*
 * VsKernelsForPath - the kernel table of one path, or NULL when this CPU
 * cannot run it (so tests and benchmarks can compare paths side by side).
 */
VsDistanceKernels
VsKernelsForPath(VsKernelPath path)
{
	if (path < 0 || path >= VS_KERNEL_NPATHS || !VsKernelPathSupported(path))
		return NULL;
	return &kernel_table[path];
}

/*
 * VsKernelPathName - short name of a path ("scalar", "avx2", "avx512").
 */
const char *
VsKernelPathName(VsKernelPath path)
{
	if (path < 0 || path >= VS_KERNEL_NPATHS)
		return "unknown";
	return path_names[path];
}

/*
 * VsDistanceInit - install the fastest supported path in VsKernels.
 *
 * Idempotent; called from _PG_init in the server and by the test and
 * benchmark programs.
 */
void
VsDistanceInit(void)
{
	VsKernelPath best = VS_KERNEL_SCALAR;

	for (int p = VS_KERNEL_NPATHS - 1; p > VS_KERNEL_SCALAR; p--)
	{
		if (VsKernelPathSupported((VsKernelPath) p))
		{
			best = (VsKernelPath) p;
			break;
		}
	}
	VsKernels = kernel_table[best];
	VsKernelsActivePath = best;
}
