/*-------------------------------------------------------------------------
 *
 * vsdistance_half.c
 *	  Half-precision (IEEE binary16) conversion and distance kernels with
 *	  runtime CPU dispatch.
 *
 * Owns the scalar reference conversions VsHalfToFloat / VsFloatToHalf,
 * the scalar kernels built on them, and x86-64 SIMD versions: AVX2+FMA
 * with F16C's VCVTPH2PS / VCVTPS2PH, and AVX-512F (which has 16-lane forms
 * of both).  As in vsdistance.c, the SIMD code is compiled with
 * per-function target attributes, and VsHalfDistanceInit() installs the
 * fastest path the CPU (and OS) supports in VsHalfKernels.
 *
 * Each kernel is written once per path as an always-inline template whose
 * "fh" argument says whether the first operand is a float array (a query)
 * or a half array; the exported entries pass a constant, so each compiles
 * to its own loop without a branch.  A remainder shorter than a SIMD step
 * is copied into a zeroed buffer and converted like a full step: zero
 * elements add nothing to any of the sums.
 *
 * Pure C: no postgres.h, no palloc, no elog (test/kernels/test_half.c
 * links this file directly).
 *
 * IDENTIFICATION
 *	  src/vsdistance_half.c
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "vsdistance_half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VS_HAVE_X86_SIMD 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define VS_ALWAYS_INLINE inline __attribute__((always_inline))

/*
 * half_to_float - the exact float value of half "h".
 *
 * Every half is exactly a float: the exponent is rebiased (15 -> 127), a
 * subnormal half is normalised (it is a normal float), and a NaN keeps its
 * payload with the quiet bit set, as VCVTPH2PS does, so that every path
 * gives the same bits.
 */
static VS_ALWAYS_INLINE float
half_to_float(uint16_t h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exponent = (h >> 10) & 0x1F;
	uint32_t	mantissa = h & 0x03FF;
	uint32_t	bits;
	float		f;

	if (exponent == 0x1F)
	{
		/* infinity, or NaN made quiet */
		bits = sign | 0x7F800000 | (mantissa != 0 ? 0x00400000 | (mantissa << 13) : 0);
	}
	else if (exponent == 0)
	{
		if (mantissa == 0)
			bits = sign;		/* signed zero */
		else
		{
			/* subnormal: mantissa * 2^-24; shift its leading 1 into place */
			int			e = -14;

			while ((mantissa & 0x0400) == 0)
			{
				mantissa <<= 1;
				e--;
			}
			bits = sign | ((uint32_t) (e + 127) << 23) | ((mantissa & 0x03FF) << 13);
		}
	}
	else
		bits = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);

	memcpy(&f, &bits, sizeof(f));
	return f;
}

/*
 * float_to_half - "f" rounded to the nearest half, ties to even.
 *
 * Values from 65520 (halfway between 65504 and the next power of two) up
 * become infinity; values of magnitude up to 2^-25 become a zero of the
 * same sign, and those between are rounded to subnormal halves.  A NaN
 * stays NaN (quiet, payload truncated) as with VCVTPS2PH.
 */
static VS_ALWAYS_INLINE uint16_t
float_to_half(float f)
{
	uint32_t	bits;
	uint16_t	sign;
	int			e;
	uint32_t	mantissa;

	memcpy(&bits, &f, sizeof(bits));
	sign = (bits >> 16) & 0x8000;
	e = (int) ((bits >> 23) & 0xFF) - 127;
	mantissa = bits & 0x007FFFFF;

	if (e == 128)
		return sign | 0x7C00 | (mantissa != 0 ? 0x0200 | (mantissa >> 13) : 0);
	if (e > 15)
		return sign | 0x7C00;	/* 2^16 and up */

	if (e >= -14)
	{
		/* normal range: keep 10 of the 23 mantissa bits, round on the rest */
		uint32_t	h = ((uint32_t) (e + 15) << 10) | (mantissa >> 13);
		uint32_t	rest = mantissa & 0x1FFF;

		/* a carry out of the mantissa correctly bumps the exponent, to inf */
		if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
			h++;
		return sign | (uint16_t) h;
	}

	if (e < -25)
		return sign;			/* below 2^-25 (float subnormals included) */

	{
		/*
		 * Subnormal result, in units of 2^-24: the 24-bit significand times
		 * 2^(e + 1), i.e. shifted right by -(e + 1), 14 to 24 bits.  A
		 * result of 0x400 is the smallest normal half, correctly encoded.
		 */
		uint32_t	significand = mantissa | 0x00800000;
		int			shift = -(e + 1);
		uint32_t	q = significand >> shift;
		uint32_t	rest = significand & ((1u << shift) - 1);
		uint32_t	halfway = 1u << (shift - 1);

		if (rest > halfway || (rest == halfway && (q & 1)))
			q++;
		return sign | (uint16_t) q;
	}
}

/*
 * VsHalfToFloat - exported form of half_to_float.
 */
float
VsHalfToFloat(uint16_t h)
{
	return half_to_float(h);
}

/*
 * VsFloatToHalf - exported form of float_to_half.
 */
uint16_t
VsFloatToHalf(float f)
{
	return float_to_half(f);
}

/*
 * Scalar kernels: one accumulator, elements in order, each widened by
 * half_to_float.  The reference the SIMD paths are tested against.
 */

/* the i-th element of the first operand, a float or a half array */
static VS_ALWAYS_INLINE float
scalar_a(const void *a, int i, int fh)
{
	return fh ? ((const float *) a)[i] : half_to_float(((const uint16_t *) a)[i]);
}

/*
 * scalar_l2 - sum of squared differences.
 */
static VS_ALWAYS_INLINE float
scalar_l2(const void *a, const uint16_t *b, int n, int fh)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
	{
		float		d = scalar_a(a, i, fh) - half_to_float(b[i]);

		sum += d * d;
	}
	return sum;
}

/*
 * scalar_ip - sum of products.
 */
static VS_ALWAYS_INLINE float
scalar_ip(const void *a, const uint16_t *b, int n, int fh)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
		sum += scalar_a(a, i, fh) * half_to_float(b[i]);
	return sum;
}

/*
 * scalar_l1 - sum of absolute differences.
 */
static VS_ALWAYS_INLINE float
scalar_l1(const void *a, const uint16_t *b, int n, int fh)
{
	float		sum = 0.0f;

	for (int i = 0; i < n; i++)
		sum += fabsf(scalar_a(a, i, fh) - half_to_float(b[i]));
	return sum;
}

/*
 * scalar_dot_norms - a.b, a.a and b.b in one pass.
 */
static VS_ALWAYS_INLINE void
scalar_dot_norms(const void *a, const uint16_t *b, int n, int fh,
				 float *dot, float *norm_a, float *norm_b)
{
	float		d = 0.0f,
				na = 0.0f,
				nb = 0.0f;

	for (int i = 0; i < n; i++)
	{
		float		x = scalar_a(a, i, fh);
		float		y = half_to_float(b[i]);

		d += x * y;
		na += x * x;
		nb += y * y;
	}
	*dot = d;
	*norm_a = na;
	*norm_b = nb;
}

/* the exported scalar entries: half-half, then float-half */
static float
l2_squared_scalar(const uint16_t *a, const uint16_t *b, int n)
{
	return scalar_l2(a, b, n, 0);
}

static float
inner_product_scalar(const uint16_t *a, const uint16_t *b, int n)
{
	return scalar_ip(a, b, n, 0);
}

static float
l1_scalar(const uint16_t *a, const uint16_t *b, int n)
{
	return scalar_l1(a, b, n, 0);
}

static void
dot_norms_scalar(const uint16_t *a, const uint16_t *b, int n,
				 float *dot, float *norm_a, float *norm_b)
{
	scalar_dot_norms(a, b, n, 0, dot, norm_a, norm_b);
}

static float
l2_squared_fh_scalar(const float *q, const uint16_t *h, int n)
{
	return scalar_l2(q, h, n, 1);
}

static float
inner_product_fh_scalar(const float *q, const uint16_t *h, int n)
{
	return scalar_ip(q, h, n, 1);
}

static float
l1_fh_scalar(const float *q, const uint16_t *h, int n)
{
	return scalar_l1(q, h, n, 1);
}

static void
dot_norms_fh_scalar(const float *q, const uint16_t *h, int n,
					float *dot, float *norm_q, float *norm_h)
{
	scalar_dot_norms(q, h, n, 1, dot, norm_q, norm_h);
}

/*
 * half_to_float_scalar / float_to_half_scalar - bulk conversions.
 */
static void
half_to_float_scalar(const uint16_t *src, float *dst, int n)
{
	for (int i = 0; i < n; i++)
		dst[i] = half_to_float(src[i]);
}

static void
float_to_half_scalar(const float *src, uint16_t *dst, int n)
{
	for (int i = 0; i < n; i++)
		dst[i] = float_to_half(src[i]);
}

#ifdef VS_HAVE_X86_SIMD

#define VS_AVX2H __attribute__((target("avx2,fma,f16c")))
#define VS_AVX512H __attribute__((target("avx512f,avx2,fma,f16c")))

/*
 * AVX2 + F16C: 8 lanes.  Loads of the first operand ("a") and of the
 * halves ("b"), a full step and a zero-padded remainder of r < 8 elements.
 */
VS_AVX2H static VS_ALWAYS_INLINE __m256
avx2_load_h(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
}

VS_AVX2H static VS_ALWAYS_INLINE __m256
avx2_tail_h(const uint16_t *p, int r)
{
	uint16_t	buf[8] = {0};

	memcpy(buf, p, sizeof(uint16_t) * r);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) buf));
}

VS_AVX2H static VS_ALWAYS_INLINE __m256
avx2_load_a(const void *a, int i, int fh)
{
	if (fh)
		return _mm256_loadu_ps((const float *) a + i);
	return avx2_load_h((const uint16_t *) a + i);
}

VS_AVX2H static VS_ALWAYS_INLINE __m256
avx2_tail_a(const void *a, int i, int r, int fh)
{
	if (fh)
	{
		float		buf[8] = {0};

		memcpy(buf, (const float *) a + i, sizeof(float) * r);
		return _mm256_loadu_ps(buf);
	}
	return avx2_tail_h((const uint16_t *) a + i, r);
}

/*
 * avx2_hsum - horizontal sum of the eight lanes.
 */
VS_AVX2H static VS_ALWAYS_INLINE float
avx2_hsum(__m256 v)
{
	__m128		lo = _mm256_castps256_ps128(v);
	__m128		hi = _mm256_extractf128_ps(v, 1);

	lo = _mm_add_ps(lo, hi);
	lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
	lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
	return _mm_cvtss_f32(lo);
}

/*
 * avx2_l2 - two accumulators over 16 elements a step (the conversions and
 * FMAs of one overlap the other's), then one 8-element step, then the
 * zero-padded remainder.
 */
VS_AVX2H static VS_ALWAYS_INLINE float
avx2_l2(const void *a, const uint16_t *b, int n, int fh)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(avx2_load_a(a, i, fh), avx2_load_h(b + i));
		__m256		d1 = _mm256_sub_ps(avx2_load_a(a, i + 8, fh), avx2_load_h(b + i + 8));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		s1 = _mm256_fmadd_ps(d1, d1, s1);
	}
	if (i + 8 <= n)
	{
		__m256		d0 = _mm256_sub_ps(avx2_load_a(a, i, fh), avx2_load_h(b + i));

		s0 = _mm256_fmadd_ps(d0, d0, s0);
		i += 8;
	}
	if (i < n)
	{
		__m256		d0 = _mm256_sub_ps(avx2_tail_a(a, i, n - i, fh), avx2_tail_h(b + i, n - i));

		s1 = _mm256_fmadd_ps(d0, d0, s1);
	}
	return avx2_hsum(_mm256_add_ps(s0, s1));
}

/*
 * avx2_ip - see avx2_l2.
 */
VS_AVX2H static VS_ALWAYS_INLINE float
avx2_ip(const void *a, const uint16_t *b, int n, int fh)
{
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		s0 = _mm256_fmadd_ps(avx2_load_a(a, i, fh), avx2_load_h(b + i), s0);
		s1 = _mm256_fmadd_ps(avx2_load_a(a, i + 8, fh), avx2_load_h(b + i + 8), s1);
	}
	if (i + 8 <= n)
	{
		s0 = _mm256_fmadd_ps(avx2_load_a(a, i, fh), avx2_load_h(b + i), s0);
		i += 8;
	}
	if (i < n)
		s1 = _mm256_fmadd_ps(avx2_tail_a(a, i, n - i, fh), avx2_tail_h(b + i, n - i), s1);
	return avx2_hsum(_mm256_add_ps(s0, s1));
}

/*
 * avx2_l1 - absolute value by clearing the sign bit; see avx2_l2.
 */
VS_AVX2H static VS_ALWAYS_INLINE float
avx2_l1(const void *a, const uint16_t *b, int n, int fh)
{
	const __m256 signmask = _mm256_set1_ps(-0.0f);
	__m256		s0 = _mm256_setzero_ps();
	__m256		s1 = _mm256_setzero_ps();
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m256		d0 = _mm256_sub_ps(avx2_load_a(a, i, fh), avx2_load_h(b + i));
		__m256		d1 = _mm256_sub_ps(avx2_load_a(a, i + 8, fh), avx2_load_h(b + i + 8));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(signmask, d0));
		s1 = _mm256_add_ps(s1, _mm256_andnot_ps(signmask, d1));
	}
	if (i + 8 <= n)
	{
		__m256		d0 = _mm256_sub_ps(avx2_load_a(a, i, fh), avx2_load_h(b + i));

		s0 = _mm256_add_ps(s0, _mm256_andnot_ps(signmask, d0));
		i += 8;
	}
	if (i < n)
	{
		__m256		d0 = _mm256_sub_ps(avx2_tail_a(a, i, n - i, fh), avx2_tail_h(b + i, n - i));

		s1 = _mm256_add_ps(s1, _mm256_andnot_ps(signmask, d0));
	}
	return avx2_hsum(_mm256_add_ps(s0, s1));
}

/*
 * avx2_dot_norms - three accumulators, 8 elements a step.
 */
VS_AVX2H static VS_ALWAYS_INLINE void
avx2_dot_norms(const void *a, const uint16_t *b, int n, int fh,
			   float *dot, float *norm_a, float *norm_b)
{
	__m256		sd = _mm256_setzero_ps();
	__m256		sa = _mm256_setzero_ps();
	__m256		sb = _mm256_setzero_ps();
	int			i = 0;

	for (; i + 8 <= n; i += 8)
	{
		__m256		va = avx2_load_a(a, i, fh);
		__m256		vb = avx2_load_h(b + i);

		sd = _mm256_fmadd_ps(va, vb, sd);
		sa = _mm256_fmadd_ps(va, va, sa);
		sb = _mm256_fmadd_ps(vb, vb, sb);
	}
	if (i < n)
	{
		__m256		va = avx2_tail_a(a, i, n - i, fh);
		__m256		vb = avx2_tail_h(b + i, n - i);

		sd = _mm256_fmadd_ps(va, vb, sd);
		sa = _mm256_fmadd_ps(va, va, sa);
		sb = _mm256_fmadd_ps(vb, vb, sb);
	}
	*dot = avx2_hsum(sd);
	*norm_a = avx2_hsum(sa);
	*norm_b = avx2_hsum(sb);
}

/* the exported AVX2 entries */
VS_AVX2H static float
l2_squared_avx2(const uint16_t *a, const uint16_t *b, int n)
{
	return avx2_l2(a, b, n, 0);
}

VS_AVX2H static float
inner_product_avx2(const uint16_t *a, const uint16_t *b, int n)
{
	return avx2_ip(a, b, n, 0);
}

VS_AVX2H static float
l1_avx2(const uint16_t *a, const uint16_t *b, int n)
{
	return avx2_l1(a, b, n, 0);
}

VS_AVX2H static void
dot_norms_avx2(const uint16_t *a, const uint16_t *b, int n,
			   float *dot, float *norm_a, float *norm_b)
{
	avx2_dot_norms(a, b, n, 0, dot, norm_a, norm_b);
}

VS_AVX2H static float
l2_squared_fh_avx2(const float *q, const uint16_t *h, int n)
{
	return avx2_l2(q, h, n, 1);
}

VS_AVX2H static float
inner_product_fh_avx2(const float *q, const uint16_t *h, int n)
{
	return avx2_ip(q, h, n, 1);
}

VS_AVX2H static float
l1_fh_avx2(const float *q, const uint16_t *h, int n)
{
	return avx2_l1(q, h, n, 1);
}

VS_AVX2H static void
dot_norms_fh_avx2(const float *q, const uint16_t *h, int n,
				  float *dot, float *norm_q, float *norm_h)
{
	avx2_dot_norms(q, h, n, 1, dot, norm_q, norm_h);
}

/*
 * half_to_float_avx2 / float_to_half_avx2 - 8 elements a step, the
 * remainder through a buffer.  VCVTPS2PH's immediate 0 rounds to nearest
 * even whatever MXCSR says.
 */
VS_AVX2H static void
half_to_float_avx2(const uint16_t *src, float *dst, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, avx2_load_h(src + i));
	if (i < n)
	{
		float		buf[8];

		_mm256_storeu_ps(buf, avx2_tail_h(src + i, n - i));
		memcpy(dst + i, buf, sizeof(float) * (n - i));
	}
}

VS_AVX2H static void
float_to_half_avx2(const float *src, uint16_t *dst, int n)
{
	int			i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *) (dst + i),
						 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	if (i < n)
	{
		float		in[8] = {0};
		uint16_t	out[8];

		memcpy(in, src + i, sizeof(float) * (n - i));
		_mm_storeu_si128((__m128i *) out,
						 _mm256_cvtps_ph(_mm256_loadu_ps(in), _MM_FROUND_TO_NEAREST_INT));
		memcpy(dst + i, out, sizeof(uint16_t) * (n - i));
	}
}

/*
 * AVX-512F: 16 lanes; the same structure as AVX2.  The float remainder is
 * a masked load (masked-off lanes read as zero and are not touched in
 * memory); the half remainder goes through a buffer (a masked 16-bit load
 * would need AVX-512BW).
 */
VS_AVX512H static VS_ALWAYS_INLINE __m512
avx512_load_h(const uint16_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p));
}

VS_AVX512H static VS_ALWAYS_INLINE __m512
avx512_tail_h(const uint16_t *p, int r)
{
	uint16_t	buf[16] = {0};

	memcpy(buf, p, sizeof(uint16_t) * r);
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) buf));
}

VS_AVX512H static VS_ALWAYS_INLINE __m512
avx512_load_a(const void *a, int i, int fh)
{
	if (fh)
		return _mm512_loadu_ps((const float *) a + i);
	return avx512_load_h((const uint16_t *) a + i);
}

VS_AVX512H static VS_ALWAYS_INLINE __m512
avx512_tail_a(const void *a, int i, int r, int fh)
{
	if (fh)
		return _mm512_maskz_loadu_ps((__mmask16) ((1u << r) - 1u), (const float *) a + i);
	return avx512_tail_h((const uint16_t *) a + i, r);
}

/*
 * avx512_l2 - see avx2_l2.
 */
VS_AVX512H static VS_ALWAYS_INLINE float
avx512_l2(const void *a, const uint16_t *b, int n, int fh)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(avx512_load_a(a, i, fh), avx512_load_h(b + i));
		__m512		d1 = _mm512_sub_ps(avx512_load_a(a, i + 16, fh), avx512_load_h(b + i + 16));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
		s1 = _mm512_fmadd_ps(d1, d1, s1);
	}
	if (i + 16 <= n)
	{
		__m512		d0 = _mm512_sub_ps(avx512_load_a(a, i, fh), avx512_load_h(b + i));

		s0 = _mm512_fmadd_ps(d0, d0, s0);
		i += 16;
	}
	if (i < n)
	{
		__m512		d0 = _mm512_sub_ps(avx512_tail_a(a, i, n - i, fh), avx512_tail_h(b + i, n - i));

		s1 = _mm512_fmadd_ps(d0, d0, s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/*
 * avx512_ip - see avx2_l2.
 */
VS_AVX512H static VS_ALWAYS_INLINE float
avx512_ip(const void *a, const uint16_t *b, int n, int fh)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		s0 = _mm512_fmadd_ps(avx512_load_a(a, i, fh), avx512_load_h(b + i), s0);
		s1 = _mm512_fmadd_ps(avx512_load_a(a, i + 16, fh), avx512_load_h(b + i + 16), s1);
	}
	if (i + 16 <= n)
	{
		s0 = _mm512_fmadd_ps(avx512_load_a(a, i, fh), avx512_load_h(b + i), s0);
		i += 16;
	}
	if (i < n)
		s1 = _mm512_fmadd_ps(avx512_tail_a(a, i, n - i, fh), avx512_tail_h(b + i, n - i), s1);
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/*
 * avx512_abs - |x| by clearing the sign bit on the integer view (AVX-512F
 * has no float andnot).
 */
VS_AVX512H static VS_ALWAYS_INLINE __m512
avx512_abs(__m512 x)
{
	return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x),
												_mm512_set1_epi32(0x7FFFFFFF)));
}

/*
 * avx512_l1 - see avx2_l2.
 */
VS_AVX512H static VS_ALWAYS_INLINE float
avx512_l1(const void *a, const uint16_t *b, int n, int fh)
{
	__m512		s0 = _mm512_setzero_ps();
	__m512		s1 = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 32 <= n; i += 32)
	{
		__m512		d0 = _mm512_sub_ps(avx512_load_a(a, i, fh), avx512_load_h(b + i));
		__m512		d1 = _mm512_sub_ps(avx512_load_a(a, i + 16, fh), avx512_load_h(b + i + 16));

		s0 = _mm512_add_ps(s0, avx512_abs(d0));
		s1 = _mm512_add_ps(s1, avx512_abs(d1));
	}
	if (i + 16 <= n)
	{
		__m512		d0 = _mm512_sub_ps(avx512_load_a(a, i, fh), avx512_load_h(b + i));

		s0 = _mm512_add_ps(s0, avx512_abs(d0));
		i += 16;
	}
	if (i < n)
	{
		__m512		d0 = _mm512_sub_ps(avx512_tail_a(a, i, n - i, fh), avx512_tail_h(b + i, n - i));

		s1 = _mm512_add_ps(s1, avx512_abs(d0));
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/*
 * avx512_dot_norms - three accumulators, 16 elements a step.
 */
VS_AVX512H static VS_ALWAYS_INLINE void
avx512_dot_norms(const void *a, const uint16_t *b, int n, int fh,
				 float *dot, float *norm_a, float *norm_b)
{
	__m512		sd = _mm512_setzero_ps();
	__m512		sa = _mm512_setzero_ps();
	__m512		sb = _mm512_setzero_ps();
	int			i = 0;

	for (; i + 16 <= n; i += 16)
	{
		__m512		va = avx512_load_a(a, i, fh);
		__m512		vb = avx512_load_h(b + i);

		sd = _mm512_fmadd_ps(va, vb, sd);
		sa = _mm512_fmadd_ps(va, va, sa);
		sb = _mm512_fmadd_ps(vb, vb, sb);
	}
	if (i < n)
	{
		__m512		va = avx512_tail_a(a, i, n - i, fh);
		__m512		vb = avx512_tail_h(b + i, n - i);

		sd = _mm512_fmadd_ps(va, vb, sd);
		sa = _mm512_fmadd_ps(va, va, sa);
		sb = _mm512_fmadd_ps(vb, vb, sb);
	}
	*dot = _mm512_reduce_add_ps(sd);
	*norm_a = _mm512_reduce_add_ps(sa);
	*norm_b = _mm512_reduce_add_ps(sb);
}

/* the exported AVX-512 entries */
VS_AVX512H static float
l2_squared_avx512(const uint16_t *a, const uint16_t *b, int n)
{
	return avx512_l2(a, b, n, 0);
}

VS_AVX512H static float
inner_product_avx512(const uint16_t *a, const uint16_t *b, int n)
{
	return avx512_ip(a, b, n, 0);
}

VS_AVX512H static float
l1_avx512(const uint16_t *a, const uint16_t *b, int n)
{
	return avx512_l1(a, b, n, 0);
}

VS_AVX512H static void
dot_norms_avx512(const uint16_t *a, const uint16_t *b, int n,
				 float *dot, float *norm_a, float *norm_b)
{
	avx512_dot_norms(a, b, n, 0, dot, norm_a, norm_b);
}

VS_AVX512H static float
l2_squared_fh_avx512(const float *q, const uint16_t *h, int n)
{
	return avx512_l2(q, h, n, 1);
}

VS_AVX512H static float
inner_product_fh_avx512(const float *q, const uint16_t *h, int n)
{
	return avx512_ip(q, h, n, 1);
}

VS_AVX512H static float
l1_fh_avx512(const float *q, const uint16_t *h, int n)
{
	return avx512_l1(q, h, n, 1);
}

VS_AVX512H static void
dot_norms_fh_avx512(const float *q, const uint16_t *h, int n,
					float *dot, float *norm_q, float *norm_h)
{
	avx512_dot_norms(q, h, n, 1, dot, norm_q, norm_h);
}

/*
 * half_to_float_avx512 / float_to_half_avx512 - 16 elements a step; the
 * float remainder is a masked load, the half one goes through a buffer.
 */
VS_AVX512H static void
half_to_float_avx512(const uint16_t *src, float *dst, int n)
{
	int			i = 0;

	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, avx512_load_h(src + i));
	if (i < n)
		_mm512_mask_storeu_ps(dst + i, (__mmask16) ((1u << (n - i)) - 1u),
							  avx512_tail_h(src + i, n - i));
}

VS_AVX512H static void
float_to_half_avx512(const float *src, uint16_t *dst, int n)
{
	int			i = 0;

	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *) (dst + i),
							_mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
	if (i < n)
	{
		uint16_t	out[16];
		__m512		v = _mm512_maskz_loadu_ps((__mmask16) ((1u << (n - i)) - 1u), src + i);

		_mm256_storeu_si256((__m256i *) out, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
		memcpy(dst + i, out, sizeof(uint16_t) * (n - i));
	}
}
#endif							/* VS_HAVE_X86_SIMD */

static const VsHalfKernelsData half_kernel_table[VS_KERNEL_NPATHS] = {
	[VS_KERNEL_SCALAR] = {
		l2_squared_scalar, inner_product_scalar, l1_scalar, dot_norms_scalar,
		l2_squared_fh_scalar, inner_product_fh_scalar, l1_fh_scalar, dot_norms_fh_scalar,
		half_to_float_scalar, float_to_half_scalar
	},
#ifdef VS_HAVE_X86_SIMD
	[VS_KERNEL_AVX2] = {
		l2_squared_avx2, inner_product_avx2, l1_avx2, dot_norms_avx2,
		l2_squared_fh_avx2, inner_product_fh_avx2, l1_fh_avx2, dot_norms_fh_avx2,
		half_to_float_avx2, float_to_half_avx2
	},
	[VS_KERNEL_AVX512] = {
		l2_squared_avx512, inner_product_avx512, l1_avx512, dot_norms_avx512,
		l2_squared_fh_avx512, inner_product_fh_avx512, l1_fh_avx512, dot_norms_fh_avx512,
		half_to_float_avx512, float_to_half_avx512
	},
#endif
};

VsHalfKernelsData VsHalfKernels = {
	l2_squared_scalar, inner_product_scalar, l1_scalar, dot_norms_scalar,
	l2_squared_fh_scalar, inner_product_fh_scalar, l1_fh_scalar, dot_norms_fh_scalar,
	half_to_float_scalar, float_to_half_scalar
};
VsKernelPath VsHalfKernelsActivePath = VS_KERNEL_SCALAR;

/*
 * VsHalfKernelPathSupported - can this CPU (and OS) run the given path?
 * The float kernels' condition (VsKernelPathSupported, which checks that
 * the OS saves the wide registers) plus F16C.
 */
int
VsHalfKernelPathSupported(VsKernelPath path)
{
	switch (path)
	{
		case VS_KERNEL_SCALAR:
			return 1;
#ifdef VS_HAVE_X86_SIMD
		case VS_KERNEL_AVX2:
		case VS_KERNEL_AVX512:
			{
				unsigned int eax,
							ebx,
							ecx,
							edx;

				if (!VsKernelPathSupported(path))
					return 0;
				if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
					return 0;
				return (ecx & bit_F16C) != 0;
			}
#endif
		default:
			return 0;
	}
}

/*
 * VsHalfKernelsForPath - the kernel table of one path, or NULL when this
 * CPU cannot run it (for the unit test, which compares paths).
 */
VsHalfDistanceKernels
VsHalfKernelsForPath(VsKernelPath path)
{
	if (path < 0 || path >= VS_KERNEL_NPATHS || !VsHalfKernelPathSupported(path))
		return NULL;
	return &half_kernel_table[path];
}

/*
 * VsHalfDistanceSetPath - install the fastest supported path no faster
 * than "path" (vecstore.simd forces a path for the float kernels; the half
 * kernels follow it, falling back where F16C is missing).  Returns the
 * path installed.
 */
VsKernelPath
VsHalfDistanceSetPath(VsKernelPath path)
{
	int			p = (path < 0 || path >= VS_KERNEL_NPATHS) ? VS_KERNEL_NPATHS - 1 : path;

	for (; p > VS_KERNEL_SCALAR; p--)
	{
		if (VsHalfKernelPathSupported((VsKernelPath) p))
			break;
	}
	VsHalfKernels = half_kernel_table[p];
	VsHalfKernelsActivePath = (VsKernelPath) p;
	return (VsKernelPath) p;
}

/*
 * VsHalfDistanceInit - install the fastest supported path.  Idempotent;
 * called from _PG_init and by the unit test.
 */
void
VsHalfDistanceInit(void)
{
	VsHalfDistanceSetPath((VsKernelPath) (VS_KERNEL_NPATHS - 1));
}
