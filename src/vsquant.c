/*-------------------------------------------------------------------------
 *
 * vsquant.c
 *	  Compact codes for graph traversal: 8-bit and 4-bit scalar
 *	  quantization (SQ8, SQ4).
 *
 * Owns training of the per-dimension ranges, encoding, the serialisable
 * parameter struct and its validation, and the asymmetric distance between
 * a float query and a code, with runtime dispatch over scalar, AVX2,
 * AVX-512BW and AVX-512 VNNI paths.  Pure C99 plus GCC target attributes:
 * no postgres.h, no palloc, no elog.  Memory for training comes from
 * hooks->alloc (vsquant.h); nothing else allocates.
 *
 * The code.  Dimension d has a range [lo_d, lo_d + 255 s_d]; a value v is
 * stored as c = round((v - lo_d) / s_d) clipped to 0..255 and stands for
 * lo_d + s_d c.  Writing m_d = lo_d + 127.5 s_d for the middle of the
 * range, the decoded vector is x^_d = m_d + s_d (c_d - 127.5).
 *
 * The distance.  With a = q - m (per query), and w_d = a_d s_d:
 *
 *	 |q - x^|^2 = |a|^2 - 2 sum_d w_d (c_d - 127.5) + V,
 *	 V = sum_d s_d^2 (c_d - 127.5)^2 = |x^ - m|^2	(per vector, stored)
 *
 * and for inner product, with w_d = q_d s_d,
 *
 *	 q . x^ = q . m + sum_d w_d (c_d - 127.5).
 *
 * So every metric needs one dot product between per-query weights and the
 * codes.  The weights are rounded once per query to integers W_d with
 * |W_d| <= L (L = 16383, less for very long vectors, so that the sum can
 * never leave int32), w_d ~ delta W_d, and the kernel computes the exact
 * integer S = sum_d W_d c_d.  Being exact, S is the same on every path
 * (vpdpbusd, vpmaddwd or a C loop sum the same integers), and so is the
 * finish in double: all paths return bit-identical distances.  The rounding
 * of the weights moves the inner-product sum by at most delta/2 * 127.5 =
 * 63.75 delta per dimension (the c - 127.5 factor is centred; squared L2
 * takes it twice), and delta = max|w| / L, so at L = 16383 that is
 * max|w| / 257 per dimension, against up to max|w| / 2 from rounding the
 * values to 8 bits; test_quant checks the bound.
 *
 * The kernels.  AVX-512 VNNI splits each weight into W = 128 Wh + Wl with
 * Wh in -128..127 and Wl in 0..127 and runs two vpdpbusd (u8 x s8, four
 * products per 32-bit lane) over 64 codes at a time, with no widening;
 * AVX-512BW and AVX2 widen the codes to 16 bits and use vpmaddwd; the
 * scalar path is a plain loop.  Every path reads a record's codes in
 * steps of 16 bytes and queries pad their weights with zeros to a
 * multiple of 64, so no path needs a scalar tail: the bytes read past a
 * record's codes (its own zero padding, or with packed records the next
 * record's first bytes or the block's zero tail, vsquant.h) meet zero
 * weights and add nothing.
 *
 * SQ4.  The same code with L = 15 levels instead of 255: c in 0..15, the
 * middle of the range at 7.5 steps, two codes per byte (dimension 2i in
 * the low nibble of byte i).  Every formula above holds with 127.5 -> 7.5
 * and 255 -> 15.  A prepared SQ4 query splits its weights into two
 * streams, the even dimensions' and the odd ones', each indexed by code
 * byte: the kernels mask the low nibbles and shift out the high ones and
 * run the SQ8 kernel's multiply-add on each stream (two vpdpbusd pairs per
 * 64 bytes, that is per 128 dimensions, with VNNI).  A record takes about
 * half the bytes of SQ8's (68 instead of 132 at 128 dimensions), and the
 * per-dimension error of the values is 17 times larger.  So an index
 * build clips SQ4's ranges under L2 and cosine (VsQuantBuildClip): 0.3 %
 * of the sample at each end of each dimension.  With 15 steps, a range
 * from min to max puts a Gaussian dimension's step at about 0.55 sigma
 * (the extremes of tens of thousands of samples are near 4 sigma), where
 * the squared error is lowest at about 0.34 sigma, a range of about 2.7
 * sigma each side, which clipping 0.3 % gives: the few clipped values
 * cost less than the finer step gains for all the others.  Measured
 * (bench_quant section 2b, recall@10 after reranking the best 10 by
 * code, min/max against 0.3 %): SIFT L2 0.896 -> 0.909, GloVe (cosine)
 * 0.813 -> 0.855, Fashion-MNIST 0.967 -> 0.966.  SIFT under inner
 * product: 0.761 -> 0.767 at 10, but 1.000 -> 0.997 at 200 (its largest
 * products belong to the extreme values clipping flattens), so inner
 * product keeps min/max.  Whole indexes (sq4, m 8, the defaults): 1M x
 * 256 Gaussian blobs 0.845 -> 0.869 at the same speed, GloVe 0.934 ->
 * 0.939, SIFT and Fashion-MNIST within 0.001 (bench/RESULTS.md, "SQ4
 * ranges clipped").  SQ8's 255 steps gain nothing from clipping (Ranges,
 * below).
 * The weights' rounding adds at most delta/2 * 7.5 per dimension.
 *
 * Cosine.  Vectors are normalised before encoding (zero vectors stay
 * zero), so one set of ranges fits every row, and the record stores
 * 1 / |x^| of the decoded (normalised, plus centroid) vector: the estimate
 * is 1 - (q/|q|) . x^ / |x^|, which removes the length error of the code.
 * A zero vector stores 0 there, and a zero query prepares zero weights, so
 * either gives distance 1 (the SQL operator gives NaN; the rerank decides).
 *
 * Measurements (bench/RESULTS-quant.md: a shared 2-core VM with AVX-512
 * VNNI; 1000 queries per set; recall@10 against the exact top 10 of the
 * same candidate pool, so only the codes' loss shows):
 *	- Ranking.  On SIFT (128 dims, L2 and IP), GloVe (100, cosine) and
 *	  Fashion-MNIST (784, L2), ranking a pool (the whole base set, or the
 *	  10 000-14 000 rows of 10 probed IVF lists) by code distance and
 *	  reranking the best R exactly gives recall@10 of 0.98-1.00 already at
 *	  R = 10, >= 0.99 at R = 10-11 on every set, and 0.999-1.000 at R = 20.
 *	  So the rerank window can be small (2k); the graph search, not the
 *	  codes, decides how many candidates must be found.
 *	- Ranges.  Min/max (clip 0, the default) is best or tied everywhere.
 *	  Clipping 0.1% at each end costs inner product on SIFT (R for 0.99:
 *	  24 instead of 11: the largest inner products belong to rows with
 *	  extreme values, which clipping flattens) and changes nothing
 *	  elsewhere; clipping 1% costs every set (SIFT IP: 0.99 needs R = 252).
 *	- Residual codes (x - centroid) measured no better than global codes at
 *	  8 bits (within 0.005 at R = 10 on every set), so the index should use
 *	  global codes: one quantizer per index, codes independent of which
 *	  list a row is in, one query preparation per scan.
 *	- Speed per distance, best path, float (vsdistance.c) vs code: a scan
 *	  of 4096 rows in order 8.1 vs 5.5 ns at 100 dims, 10.0 vs 4.6 at 128,
 *	  105 vs 26 at 784, 195 vs 47 at 1536 (1.5-4.0x); random rows of a
 *	  256 MiB pool through the HNSW callback, 2.2-3.2x; batched with
 *	  prefetching (VsQuantDistancesIds), 3.2-4.0x.  VNNI is the fastest
 *	  code path from 128 dimensions on; at 100 all SIMD paths tie.
 *	- A 1-bit RaBitQ-style code (random rotation, sign bits, per-vector
 *	  corrections, popcount estimator; prototyped in bench_quant.c) needs
 *	  R = 55 / 109 for recall 0.95 / 0.99 on SIFT, 225 / 575 on GloVe and
 *	  14 / 20 on Fashion-MNIST, against 10-11 for SQ8, and its estimator
 *	  was faster than SQ8 only from 784 dimensions (14 vs 26 ns).  Not
 *	  kept: at 100-128 dimensions the rerank it needs costs more than it
 *	  saves, and a graph navigating on its noisy estimates is untested.
 *
 * IDENTIFICATION
 *	  src/vsquant.c
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vsdistance.h"
#include "vsquant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VS_HAVE_X86_SIMD 1
#include <immintrin.h>
#endif

/* largest magnitude of an integer query weight (Wh must fit in int8) */
#define WEIGHT_MAX		16383

/* columns transposed at a time while training (one cache line of floats) */
#define TRAIN_COLUMNS	16

/* exchange two floats (select_kth) */
#define SWAP_FLOAT(a, b) \
	do { float swap_tmp_ = (a); (a) = (b); (b) = swap_tmp_; } while (0)

/*
 * Keep "x" a rounded double: stops the compiler from fusing the multiply
 * and add of the finish into an FMA on the paths compiled with FMA, which
 * would make their results differ from the scalar path's in the last bit.
 */
#if defined(__GNUC__) && defined(__x86_64__)
#define FP_BARRIER(x)	__asm__("" : "+x"(x))
#else
#define FP_BARRIER(x)	((void) 0)
#endif

/* the kernels of one path */
typedef struct QuantKernels
{
	int32_t		(*dot) (const VsQuantQuery *query, const uint8_t *codes);
	void		(*block) (const VsQuantQuery *query, const uint8_t *block,
						  uint32_t n, float *out);
	void		(*ids) (const VsQuantQuery *query, const uint8_t *block,
						const uint32_t *ids, uint32_t n, float *out);
} QuantKernels;

/*
 * A prepared query.  It lives at the first 64-byte boundary of the
 * caller's buffer, followed by the weight arrays, each padded with zeros
 * to pd64 entries and 64-byte aligned.
 */
struct VsQuantQuery
{
	const QuantKernels *kernels;
	VsQuantPath path;
	VsMetric	metric;
	int			dims;
	int			pd;				/* code bytes read per record, a multiple of 16 */
	int			header;			/* where a record's codes start */
	uint32_t	read_size;		/* bytes a distance reads from a record's
								 * start: header + pd, at least the record */
	int			levels;			/* L: 255 (SQ8) or 15 (SQ4) */
	size_t		record_size;
	double		k;				/* distance = finish(k + coef * S, aux) */
	double		coef;
	double		delta;			/* the weight quantum: w_d ~ delta W_d */
	const int16_t *w16;			/* W, for vpmaddwd and scalar */
	const int8_t *wh;			/* W = 128 wh + wl, for vpdpbusd */
	const int8_t *wl;
	/* SQ4: w16, wh, wl weigh the low nibbles, these the high ones */
	const int16_t *w16_hi;
	const int8_t *wh_hi;
	const int8_t *wl_hi;
};

static size_t pad_to(size_t x, size_t align);
static int	kind_levels(int kind);
static size_t code_bytes(int kind, int dims);
static size_t raw_code_bytes(int kind, int dims);
static size_t record_header(const VsQuantParams *params);
static inline int code_at(int kind, const uint8_t *codes, int d);
static uint8_t quantize(double v, float lo, float step, int levels);
static double input_scale(const VsQuantParams *params, const float *x);
static float input_value(const float *x, int d, double scale,
						 const float *centroid);
static float select_kth(float *a, int n, int k);
static int	weight_limit(int levels, int nweights);
static float finish(const VsQuantQuery *query, int32_t s, const uint8_t *record);
static float record_aux(const uint8_t *record);

/*
 * Scalar kernels: a plain loop.  This is the definition; the SIMD paths
 * must return exactly the same integer.
 */
static int32_t
dot_scalar(const VsQuantQuery *query, const uint8_t *codes)
{
	const int16_t *w = query->w16;
	int32_t		s = 0;

	for (int i = 0; i < query->pd; i++)
		s += (int32_t) codes[i] * w[i];
	return s;
}

/*
 * dot4_scalar - SQ4: each code byte's low nibble against the first
 * weight stream, its high nibble against the second.
 */
static int32_t
dot4_scalar(const VsQuantQuery *query, const uint8_t *codes)
{
	const int16_t *wlo = query->w16;
	const int16_t *whi = query->w16_hi;
	int32_t		s = 0;

	for (int i = 0; i < query->pd; i++)
		s += (int32_t) (codes[i] & 15) * wlo[i] + (int32_t) (codes[i] >> 4) * whi[i];
	return s;
}

/*
 * The block and id loops of each path, with its kernel inlined.  The id
 * loop's records (a graph row's neighbours) are scattered, and a miss
 * costs more than a distance: it asks for every cache line of as many
 * records as fit in IDS_PREFETCH_BYTES (a whole row of 128-dimension
 * codes) before the first distance, so that their misses overlap, then
 * one more record per distance.  It asks for every line a distance
 * reads, which for a packed record may include the next record's first
 * line (read_size).  Measured against prefetching the first
 * two lines of the record two ahead (a 144-byte SQ8 record spans three
 * lines): bench/RESULTS.md, "Code records prefetched whole".
 */
#define IDS_PREFETCH_BYTES	8192

#if defined(__GNUC__)
#define PREFETCH(p)		__builtin_prefetch(p)
#else
#define PREFETCH(p)		((void) (p))
#endif

/* every cache line of the "size" bytes at "p" */
static inline void
prefetch_record(const char *p, uint32_t size)
{
	for (uint32_t off = 0; off < size; off += 64)
		PREFETCH(p + off);
	PREFETCH(p + size - 1);
}

#define DEFINE_LOOPS(name, dot, ATTR) \
ATTR static void \
block_##name(const VsQuantQuery *query, const uint8_t *block, uint32_t n, \
			 float *out) \
{ \
	for (uint32_t i = 0; i < n; i++) \
	{ \
		const uint8_t *rec = block + (size_t) i * query->record_size; \
		out[i] = finish(query, dot(query, rec + query->header), rec); \
	} \
} \
ATTR static void \
ids_##name(const VsQuantQuery *query, const uint8_t *block, \
		   const uint32_t *ids, uint32_t n, float *out) \
{ \
	uint32_t	ahead = IDS_PREFETCH_BYTES / query->record_size; \
 \
	if (ahead < 1) \
		ahead = 1; \
	if (ahead > n) \
		ahead = n; \
	for (uint32_t i = 0; i < ahead; i++) \
		prefetch_record((const char *) block + (size_t) ids[i] * query->record_size, \
						query->read_size); \
	for (uint32_t i = 0; i < n; i++) \
	{ \
		const uint8_t *rec = block + (size_t) ids[i] * query->record_size; \
		if (i + ahead < n) \
			prefetch_record((const char *) block + \
							(size_t) ids[i + ahead] * query->record_size, \
							query->read_size); \
		out[i] = finish(query, dot(query, rec + query->header), rec); \
	} \
}

DEFINE_LOOPS(scalar, dot_scalar, )
DEFINE_LOOPS(4_scalar, dot4_scalar, )

#ifdef VS_HAVE_X86_SIMD

#define VS_AVX2 __attribute__((target("avx2")))
#define VS_AVX512 __attribute__((target("avx512f,avx512bw")))
#define VS_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

/*
 * hsum256_epi32 - sum of the eight 32-bit lanes (wrapping, like the lanes).
 */
VS_AVX2 static inline int32_t
hsum256_epi32(__m256i v)
{
	__m128i		x = _mm_add_epi32(_mm256_castsi256_si128(v),
								  _mm256_extracti128_si256(v, 1));

	x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
	x = _mm_add_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(x);
}

/*
 * dot_avx2 - codes widened to 16 bits, vpmaddwd with the weights: 16
 * dimensions per instruction, two accumulators.  pd is a multiple of 16.
 */
VS_AVX2 static inline int32_t
dot_avx2_inline(const VsQuantQuery *query, const uint8_t *codes)
{
	const int16_t *w = query->w16;
	const int	pd = query->pd;
	__m256i		a0 = _mm256_setzero_si256();
	__m256i		a1 = _mm256_setzero_si256();
	int			i = 0;

	for (; i + 32 <= pd; i += 32)
	{
		__m256i		c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *) (codes + i)));
		__m256i		c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *) (codes + i + 16)));

		a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, _mm256_load_si256((const __m256i *) (w + i))));
		a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(c1, _mm256_load_si256((const __m256i *) (w + i + 16))));
	}
	if (i < pd)
	{
		__m256i		c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *) (codes + i)));

		a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(c0, _mm256_load_si256((const __m256i *) (w + i))));
	}
	return hsum256_epi32(_mm256_add_epi32(a0, a1));
}

/* dot_avx2 - the kernel table's out-of-line copy */
VS_AVX2 static int32_t
dot_avx2(const VsQuantQuery *query, const uint8_t *codes)
{
	return dot_avx2_inline(query, codes);
}

/*
 * dot_avx512 - as dot_avx2 with 32 dimensions per vpmaddwd.  A remainder
 * of 16 codes is zero-extended into a half register (the other half meets
 * zero weights either way).
 */
VS_AVX512 static inline int32_t
dot_avx512_inline(const VsQuantQuery *query, const uint8_t *codes)
{
	const int16_t *w = query->w16;
	const int	pd = query->pd;
	__m512i		a0 = _mm512_setzero_si512();
	__m512i		a1 = _mm512_setzero_si512();
	int			i = 0;

	for (; i + 64 <= pd; i += 64)
	{
		__m512i		c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *) (codes + i)));
		__m512i		c1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *) (codes + i + 32)));

		a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(c0, _mm512_load_si512((const void *) (w + i))));
		a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(c1, _mm512_load_si512((const void *) (w + i + 32))));
	}
	for (; i + 32 <= pd; i += 32)
	{
		__m512i		c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *) (codes + i)));

		a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(c0, _mm512_load_si512((const void *) (w + i))));
	}
	if (i < pd)
	{
		__m256i		half = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) (codes + i)));
		__m512i		c0 = _mm512_cvtepu8_epi16(half);

		a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(c0, _mm512_load_si512((const void *) (w + i))));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
}

/* dot_avx512 - the kernel table's out-of-line copy */
VS_AVX512 static int32_t
dot_avx512(const VsQuantQuery *query, const uint8_t *codes)
{
	return dot_avx512_inline(query, codes);
}

/*
 * dot_avx512vnni - 64 codes per step, two vpdpbusd against the split
 * weights (S = 128 Sh + Sl), no widening.  The remainder (16, 32 or 48
 * codes) is a masked load: the bytes past pd are never read.  Lanes and
 * the combination wrap modulo 2^32, which is harmless because the true S
 * fits in int32 (weight_limit).
 */
VS_AVX512VNNI static inline int32_t
dot_avx512vnni_inline(const VsQuantQuery *query, const uint8_t *codes)
{
	const int8_t *wh = query->wh;
	const int8_t *wl = query->wl;
	const int	pd = query->pd;
	__m512i		ah = _mm512_setzero_si512();
	__m512i		al = _mm512_setzero_si512();
	int			i = 0;

	for (; i + 64 <= pd; i += 64)
	{
		__m512i		c = _mm512_loadu_si512((const void *) (codes + i));

		ah = _mm512_dpbusd_epi32(ah, c, _mm512_load_si512((const void *) (wh + i)));
		al = _mm512_dpbusd_epi32(al, c, _mm512_load_si512((const void *) (wl + i)));
	}
	if (i < pd)
	{
		__mmask64	m = ((__mmask64) 1 << (pd - i)) - 1;
		__m512i		c = _mm512_maskz_loadu_epi8(m, (const void *) (codes + i));

		ah = _mm512_dpbusd_epi32(ah, c, _mm512_load_si512((const void *) (wh + i)));
		al = _mm512_dpbusd_epi32(al, c, _mm512_load_si512((const void *) (wl + i)));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(ah, 7), al));
}

/* dot_avx512vnni - the kernel table's out-of-line copy */
VS_AVX512VNNI static int32_t
dot_avx512vnni(const VsQuantQuery *query, const uint8_t *codes)
{
	return dot_avx512vnni_inline(query, codes);
}

/*
 * dot4_avx2 - SQ4: 16 code bytes widened to 16 bits, the low nibbles
 * masked and the high ones shifted down, one vpmaddwd per stream.
 */
VS_AVX2 static inline int32_t
dot4_avx2_inline(const VsQuantQuery *query, const uint8_t *codes)
{
	const int16_t *wlo = query->w16;
	const int16_t *whi = query->w16_hi;
	const int	pd = query->pd;
	const __m256i mask = _mm256_set1_epi16(15);
	__m256i		a0 = _mm256_setzero_si256();
	__m256i		a1 = _mm256_setzero_si256();

	for (int i = 0; i < pd; i += 16)
	{
		__m256i		c = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *) (codes + i)));

		a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_and_si256(c, mask),
													 _mm256_load_si256((const __m256i *) (wlo + i))));
		a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_srli_epi16(c, 4),
													 _mm256_load_si256((const __m256i *) (whi + i))));
	}
	return hsum256_epi32(_mm256_add_epi32(a0, a1));
}

VS_AVX2 static int32_t
dot4_avx2(const VsQuantQuery *query, const uint8_t *codes)
{
	return dot4_avx2_inline(query, codes);
}

/*
 * dot4_avx512 - as dot4_avx2 with 32 code bytes per step; a remainder of
 * 16 is zero-extended into a half register.
 */
VS_AVX512 static inline int32_t
dot4_avx512_inline(const VsQuantQuery *query, const uint8_t *codes)
{
	const int16_t *wlo = query->w16;
	const int16_t *whi = query->w16_hi;
	const int	pd = query->pd;
	const __m512i mask = _mm512_set1_epi16(15);
	__m512i		a0 = _mm512_setzero_si512();
	__m512i		a1 = _mm512_setzero_si512();
	int			i = 0;

	for (; i + 32 <= pd; i += 32)
	{
		__m512i		c = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *) (codes + i)));

		a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_and_si512(c, mask),
													 _mm512_load_si512((const void *) (wlo + i))));
		a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_srli_epi16(c, 4),
													 _mm512_load_si512((const void *) (whi + i))));
	}
	if (i < pd)
	{
		__m256i		half = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) (codes + i)));
		__m512i		c = _mm512_cvtepu8_epi16(half);

		a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_and_si512(c, mask),
													 _mm512_load_si512((const void *) (wlo + i))));
		a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_srli_epi16(c, 4),
													 _mm512_load_si512((const void *) (whi + i))));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1));
}

VS_AVX512 static int32_t
dot4_avx512(const VsQuantQuery *query, const uint8_t *codes)
{
	return dot4_avx512_inline(query, codes);
}

/*
 * dot4_avx512vnni - 64 code bytes (128 dimensions) per step: the nibbles
 * split into two byte vectors, each through two vpdpbusd against its
 * stream's split weights; the remainder is a masked load as for SQ8.
 */
VS_AVX512VNNI static inline int32_t
dot4_avx512vnni_inline(const VsQuantQuery *query, const uint8_t *codes)
{
	const int	pd = query->pd;
	const __m512i mask = _mm512_set1_epi8(15);
	__m512i		ah = _mm512_setzero_si512();
	__m512i		al = _mm512_setzero_si512();
	int			i = 0;

	for (; i < pd; i += 64)
	{
		__m512i		c;
		__m512i		lo;
		__m512i		hi;

		if (i + 64 <= pd)
			c = _mm512_loadu_si512((const void *) (codes + i));
		else
			c = _mm512_maskz_loadu_epi8(((__mmask64) 1 << (pd - i)) - 1,
										(const void *) (codes + i));
		lo = _mm512_and_si512(c, mask);
		hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), mask);
		ah = _mm512_dpbusd_epi32(ah, lo, _mm512_load_si512((const void *) (query->wh + i)));
		al = _mm512_dpbusd_epi32(al, lo, _mm512_load_si512((const void *) (query->wl + i)));
		ah = _mm512_dpbusd_epi32(ah, hi, _mm512_load_si512((const void *) (query->wh_hi + i)));
		al = _mm512_dpbusd_epi32(al, hi, _mm512_load_si512((const void *) (query->wl_hi + i)));
	}
	return _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(ah, 7), al));
}

VS_AVX512VNNI static int32_t
dot4_avx512vnni(const VsQuantQuery *query, const uint8_t *codes)
{
	return dot4_avx512vnni_inline(query, codes);
}

DEFINE_LOOPS(avx2, dot_avx2_inline, VS_AVX2)
DEFINE_LOOPS(avx512, dot_avx512_inline, VS_AVX512)
DEFINE_LOOPS(avx512vnni, dot_avx512vnni_inline, VS_AVX512VNNI)
DEFINE_LOOPS(4_avx2, dot4_avx2_inline, VS_AVX2)
DEFINE_LOOPS(4_avx512, dot4_avx512_inline, VS_AVX512)
DEFINE_LOOPS(4_avx512vnni, dot4_avx512vnni_inline, VS_AVX512VNNI)

#endif							/* VS_HAVE_X86_SIMD */

static const QuantKernels kernel_table[VS_QUANT_NPATHS] = {
	[VS_QUANT_PATH_SCALAR] = {dot_scalar, block_scalar, ids_scalar},
#ifdef VS_HAVE_X86_SIMD
	[VS_QUANT_PATH_AVX2] = {dot_avx2, block_avx2, ids_avx2},
	[VS_QUANT_PATH_AVX512] = {dot_avx512, block_avx512, ids_avx512},
	[VS_QUANT_PATH_AVX512VNNI] = {dot_avx512vnni, block_avx512vnni, ids_avx512vnni},
#endif
};

static const QuantKernels kernel_table4[VS_QUANT_NPATHS] = {
	[VS_QUANT_PATH_SCALAR] = {dot4_scalar, block_4_scalar, ids_4_scalar},
#ifdef VS_HAVE_X86_SIMD
	[VS_QUANT_PATH_AVX2] = {dot4_avx2, block_4_avx2, ids_4_avx2},
	[VS_QUANT_PATH_AVX512] = {dot4_avx512, block_4_avx512, ids_4_avx512},
	[VS_QUANT_PATH_AVX512VNNI] = {dot4_avx512vnni, block_4_avx512vnni, ids_4_avx512vnni},
#endif
};

static const char *const path_names[VS_QUANT_NPATHS] = {
	[VS_QUANT_PATH_SCALAR] = "scalar",
	[VS_QUANT_PATH_AVX2] = "avx2",
	[VS_QUANT_PATH_AVX512] = "avx512bw",
	[VS_QUANT_PATH_AVX512VNNI] = "avx512vnni",
};

VsQuantPath VsQuantActivePath = VS_QUANT_PATH_SCALAR;

/*
 * VsQuantPathSupported - can this CPU (and OS) run the given path?
 *
 * The same test as VsKernelPathSupported in vsdistance.c: the compiler's
 * cpuid support, which also checks that the OS saves the wide registers.
 */
int
VsQuantPathSupported(VsQuantPath path)
{
	switch (path)
	{
		case VS_QUANT_PATH_SCALAR:
			return 1;
#ifdef VS_HAVE_X86_SIMD
		case VS_QUANT_PATH_AVX2:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx2");
		case VS_QUANT_PATH_AVX512:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx512f") &&
				__builtin_cpu_supports("avx512bw");
		case VS_QUANT_PATH_AVX512VNNI:
			__builtin_cpu_init();
			return __builtin_cpu_supports("avx512f") &&
				__builtin_cpu_supports("avx512bw") &&
				__builtin_cpu_supports("avx512vnni");
#endif
		default:
			return 0;
	}
}

/*
 * VsQuantPathName - short name of a path, for logs and benchmarks.
 */
const char *
VsQuantPathName(VsQuantPath path)
{
	if ((int) path < 0 || path >= VS_QUANT_NPATHS)
		return "unknown";
	return path_names[path];
}

/*
 * VsQuantInit - make the fastest supported path the one that
 * VsQuantPrepareQuery uses.  Idempotent; call it where VsDistanceInit is
 * called (_PG_init, test and benchmark programs).  Until then queries use
 * the scalar path, which returns the same distances, only slower.
 */
void
VsQuantInit(void)
{
	VsQuantPath best = VS_QUANT_PATH_SCALAR;

	for (int p = VS_QUANT_NPATHS - 1; p > VS_QUANT_PATH_SCALAR; p--)
	{
		if (VsQuantPathSupported((VsQuantPath) p))
		{
			best = (VsQuantPath) p;
			break;
		}
	}
	VsQuantActivePath = best;
}

/*
 * VsQuantOptionsInit - the defaults: SQ8, VS_QUANT_DEFAULT_CLIP.
 */
void
VsQuantOptionsInit(VsQuantOptions *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->kind = VS_QUANT_SQ8;
	opt->clip = VS_QUANT_DEFAULT_CLIP;
	opt->packed = 1;
}

/*
 * VsQuantParamsSize - bytes of a VsQuantParams for "dims" dimensions
 * (header, lo[] and step[]).
 */
size_t
VsQuantParamsSize(int dims)
{
	return sizeof(VsQuantParams) + 2 * sizeof(float) * (size_t) dims;
}

/*
 * VsQuantRecordSize - bytes of one record of a code "kind" in the layout
 * "flags" selects (vsquant.h, "Record layouts"): with VS_QUANT_PACKED the
 * 4-byte header and the code bytes, padded to a multiple of 4; without,
 * the 16-byte header and the codes padded to VS_QUANT_CODE_ALIGN.
 */
size_t
VsQuantRecordSize(int kind, int dims, uint32_t flags)
{
	if (flags & VS_QUANT_PACKED)
		return pad_to(VS_QUANT_PACKED_HEADER + raw_code_bytes(kind, dims),
					  VS_QUANT_PACKED_ALIGN);
	return VS_QUANT_RECORD_HEADER + code_bytes(kind, dims);
}

/*
 * VsQuantRecordSpace - bytes a buffer for one record must have, so that
 * VsQuantDistance may read its last step of codes whole: the record and
 * VS_QUANT_CODE_ALIGN bytes of slack (packed), or the record.
 */
size_t
VsQuantRecordSpace(const VsQuantParams *params)
{
	if (params->flags & VS_QUANT_PACKED)
		return params->record_size + VS_QUANT_CODE_ALIGN;
	return params->record_size;
}

/*
 * VsQuantBlockSize - bytes that "n" consecutive records take in a segment,
 * padded so that the next block starts VS_QUANT_BLOCK_ALIGN-aligned too;
 * packed, with VS_QUANT_CODE_ALIGN bytes of slack after the last record
 * (vsquant.h, "Record layouts").  0 for no records.
 */
size_t
VsQuantBlockSize(const VsQuantParams *params, uint64_t n)
{
	size_t		used = (size_t) n * params->record_size;

	if (n == 0)
		return 0;
	if (params->flags & VS_QUANT_PACKED)
		used += VS_QUANT_CODE_ALIGN;
	return pad_to(used, VS_QUANT_BLOCK_ALIGN);
}

/*
 * VsQuantBuildClip - the clip fraction an index build trains codes of
 * "kind" with under "metric" (see "SQ4" above).
 */
double
VsQuantBuildClip(int kind, VsMetric metric)
{
	if (kind == VS_QUANT_SQ4 && metric != VS_METRIC_IP)
		return VS_QUANT_SQ4_CLIP;
	return VS_QUANT_DEFAULT_CLIP;
}

/*
 * VsQuantTrain - fit the per-dimension ranges to a sample.
 *
 * "samples" is n row-major vectors of "dims" floats, all finite.  With
 * "centroids" (k * dims, row-major) and "assign" (n cluster numbers), the
 * ranges are fitted to the residuals x - centroids[assign[i]] and the
 * params get VS_QUANT_RESIDUAL; pass both or neither.  For cosine the
 * samples are normalised first (zero vectors are left out).  Each range
 * runs from the opt->clip-quantile to the (1 - opt->clip)-quantile of the
 * sample (min and max when clip is 0 or fewer than 2 samples remain).
 * With no samples every dimension is constant 0.
 *
 * "params" must have room for VsQuantParamsSize(dims) bytes; it is filled
 * in and sealed.  Memory: one block of TRAIN_COLUMNS * n floats (plus n
 * for cosine) from hooks->alloc, freed before returning.  Polls
 * hooks->check_interrupts once per TRAIN_COLUMNS dimensions.
 *
 * Returns 0, or -1 for invalid arguments (params then untouched).
 */
int
VsQuantTrain(const float *samples, int n, int dims, VsMetric metric,
			 const float *centroids, const int32_t *assign,
			 const VsQuantOptions *opt, const VsQuantHooks *hooks,
			 VsQuantParams *params)
{
	VsQuantOptions defaults;
	float	   *lo;
	float	   *step;
	float	   *columns = NULL;
	double	   *scales = NULL;
	int			used = 0;		/* samples that take part */
	int			klo,
				khi;

	if (opt == NULL)
	{
		VsQuantOptionsInit(&defaults);
		opt = &defaults;
	}
	if (dims < 1 || dims > VS_QUANT_MAX_DIM || n < 0 ||
		(n > 0 && samples == NULL) ||
		(metric != VS_METRIC_L2 && metric != VS_METRIC_IP &&
		 metric != VS_METRIC_COSINE) ||
		(opt->kind != VS_QUANT_SQ8 && opt->kind != VS_QUANT_SQ4) ||
		!(opt->clip >= 0.0 && opt->clip <= VS_QUANT_MAX_CLIP) ||
		((centroids == NULL) != (assign == NULL)) ||
		(n > 0 && hooks == NULL))
		return -1;

	memset(params, 0, VsQuantParamsSize(dims));
	params->magic = VS_QUANT_MAGIC;
	params->version = VS_QUANT_VERSION;
	params->kind = (uint16_t) opt->kind;
	params->dims = (uint32_t) dims;
	params->metric = (uint32_t) metric;
	params->flags = (centroids ? VS_QUANT_RESIDUAL : 0) |
		(opt->packed ? VS_QUANT_PACKED : 0);
	params->size = (uint32_t) VsQuantParamsSize(dims);
	params->record_size = (uint32_t) VsQuantRecordSize(opt->kind, dims, params->flags);
	params->clip_ppm = (uint32_t) floor(opt->clip * 1e6 + 0.5);
	lo = params->data;
	step = params->data + dims;

	if (n > 0)
	{
		/*
		 * One block: the scale of each sample (1 or 1/|x|), then the
		 * transposed columns.  Cosine drops zero samples here.
		 */
		size_t		bytes = sizeof(double) * (size_t) n +
			sizeof(float) * (size_t) TRAIN_COLUMNS * n;
		char	   *mem = hooks->alloc(bytes);

		scales = (double *) mem;
		columns = (float *) (mem + sizeof(double) * (size_t) n);
		for (int i = 0; i < n; i++)
		{
			scales[i] = input_scale(params, samples + (size_t) i * dims);
			if (scales[i] > 0.0)
				used++;
		}
	}
	params->nsamples = (uint32_t) used;

	/* the ranks of the range's ends; equal when there is one sample */
	klo = 0;
	khi = used > 0 ? used - 1 : 0;
	if (opt->clip > 0.0 && used >= 2)
	{
		klo = (int) floor(opt->clip * (used - 1));
		khi = (int) ceil((1.0 - opt->clip) * (used - 1));
		if (khi < klo)
			khi = klo;
	}

	for (int d0 = 0; d0 < dims; d0 += TRAIN_COLUMNS)
	{
		int			width = dims - d0 < TRAIN_COLUMNS ? dims - d0 : TRAIN_COLUMNS;

		if (used > 0)
		{
			/* transpose: each row's 16 values are one or two cache lines */
			int			row = 0;

			for (int i = 0; i < n; i++)
			{
				const float *x = samples + (size_t) i * dims;
				const float *c = centroids ? centroids + (size_t) assign[i] * dims : NULL;

				if (scales[i] == 0.0)
					continue;
				for (int j = 0; j < width; j++)
					columns[(size_t) j * n + row] = input_value(x, d0 + j, scales[i], c);
				row++;
			}
		}

		for (int j = 0; j < width; j++)
		{
			float	   *col = columns ? columns + (size_t) j * n : NULL;
			double		vlo = 0.0,
						vhi = 0.0;
			double		s;

			if (used > 0 && klo == 0 && khi == used - 1)
			{
				vlo = vhi = col[0];
				for (int i = 1; i < used; i++)
				{
					if (col[i] < vlo)
						vlo = col[i];
					if (col[i] > vhi)
						vhi = col[i];
				}
			}
			else if (used > 0)
			{
				/* select klo, then khi among the elements at or after it */
				vlo = select_kth(col, used, klo);
				vhi = select_kth(col + klo, used - klo, khi - klo);
			}

			/*
			 * A range too narrow for its step to be a normal float (this
			 * includes a constant dimension) is stored as constant: step 0
			 * and every code 0, decoding to the middle of the range.
			 */
			s = (vhi - vlo) / kind_levels(opt->kind);
			if (!(s >= FLT_MIN) || !isfinite(s) || (float) s == 0.0f)
			{
				lo[d0 + j] = (float) (0.5 * (vlo + vhi));
				step[d0 + j] = 0.0f;
			}
			else
			{
				lo[d0 + j] = (float) vlo;
				step[d0 + j] = (float) s;
			}
		}
		if (hooks && hooks->check_interrupts)
			hooks->check_interrupts();
	}

	if (scales)
		hooks->free(scales);
	VsQuantSeal(params);
	return 0;
}

/*
 * VsQuantSeal - compute and store the CRC of "params" (after training or
 * after the caller changed a field).
 */
void
VsQuantSeal(VsQuantParams *params)
{
	params->crc = 0;
	params->crc = VsQuantCrc32c(0, params, params->size);
}

/*
 * VsQuantValidate - check a VsQuantParams read from storage.
 *
 * "avail" is how many bytes the caller has at "params" (the struct must
 * fit in them).  Checks the identification, that every field is one this
 * version writes, the CRC-32C, and that every range is finite.  Returns
 * NULL when the struct is usable, else a constant full sentence naming
 * the first problem found, ready for an errdetail (the caller reports
 * ERRCODE_INDEX_CORRUPTED or ERRCODE_DATA_CORRUPTED with a REINDEX hint).
 */
const char *
VsQuantValidate(const VsQuantParams *params, size_t avail)
{
	const float *lo;
	const float *step;
	uint32_t	crc;
	VsQuantParams header;

	if (params == NULL || avail < sizeof(VsQuantParams))
		return "Quantizer parameters are truncated.";
	if (params->magic != VS_QUANT_MAGIC)
		return "Quantizer parameters have a wrong magic number.";
	if (params->version != VS_QUANT_VERSION)
		return "Quantizer parameters have an unsupported version.";
	if (params->kind != VS_QUANT_SQ8 && params->kind != VS_QUANT_SQ4)
		return "Quantizer parameters have an unknown code kind.";
	if (params->dims < 1 || params->dims > VS_QUANT_MAX_DIM)
		return "Quantizer parameters have an invalid dimension count.";
	if (params->metric != VS_METRIC_L2 && params->metric != VS_METRIC_IP &&
		params->metric != VS_METRIC_COSINE)
		return "Quantizer parameters have an unknown metric.";
	if ((params->flags & ~(uint32_t) VS_QUANT_KNOWN_FLAGS) != 0)
		return "Quantizer parameters have unknown flags.";
	if (params->size != VsQuantParamsSize((int) params->dims))
		return "Quantizer parameters have a wrong size.";
	if (params->size > avail)
		return "Quantizer parameters are truncated.";
	if (params->record_size != VsQuantRecordSize(params->kind, (int) params->dims,
												 params->flags))
		return "Quantizer parameters have a wrong record size.";
	if (params->clip_ppm > (uint32_t) (VS_QUANT_MAX_CLIP * 1e6))
		return "Quantizer parameters have an invalid clip fraction.";
	for (int i = 0; i < (int) (sizeof(params->reserved) / sizeof(params->reserved[0])); i++)
		if (params->reserved[i] != 0)
			return "Quantizer parameters have nonzero reserved fields.";

	/* the CRC, computed with the crc field as zero */
	memcpy(&header, params, sizeof(header));
	header.crc = 0;
	crc = VsQuantCrc32c(0, &header, sizeof(header));
	crc = VsQuantCrc32c(crc, params->data, params->size - sizeof(header));
	if (crc != params->crc)
		return "Quantizer parameters fail their checksum.";

	lo = params->data;
	step = params->data + params->dims;
	for (uint32_t d = 0; d < params->dims; d++)
	{
		if (!isfinite(lo[d]) || !isfinite(step[d]) || step[d] < 0.0f ||
			(step[d] > 0.0f && step[d] < FLT_MIN) ||
			!isfinite((double) lo[d] + kind_levels(params->kind) * (double) step[d]) ||
			fabs((double) lo[d] + kind_levels(params->kind) * (double) step[d]) > FLT_MAX)
			return "Quantizer parameters have an invalid range.";
	}
	return NULL;
}

/*
 * VsQuantCrc32c - CRC-32C (Castagnoli) of "len" bytes, continuing "crc"
 * (0 to start).  Same values as PostgreSQL's pg_crc32c (INIT, COMP, FIN),
 * bit at a time: the params are a few kB and checked once per load.
 */
uint32_t
VsQuantCrc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;

	crc = ~crc;
	for (size_t i = 0; i < len; i++)
	{
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/*
 * VsQuantEncode - write the record of vector "x" (dims floats, finite).
 *
 * "centroid" is the vector's cluster centroid for residual params, else
 * NULL.  "record" receives params->record_size bytes: the header (float
 * aux; without VS_QUANT_PACKED, then three floats of zero), the codes,
 * zero padding.  Values
 * outside a dimension's range get its nearest end (0 or L).
 */
void
VsQuantEncode(const VsQuantParams *params, const float *x,
			  const float *centroid, uint8_t *record)
{
	const int	dims = (int) params->dims;
	const int	kind = params->kind;
	const int	levels = kind_levels(kind);
	const double mid = levels / 2.0;
	const float *lo = params->data;
	const float *step = params->data + dims;
	const size_t hbytes = record_header(params);
	uint8_t    *codes = record + hbytes;
	double		scale = input_scale(params, x);
	double		acc = 0.0;
	float		header[VS_QUANT_RECORD_HEADER / sizeof(float)] = {0};

	memset(codes, 0, params->record_size - hbytes);
	for (int d = 0; d < dims; d++)
	{
		uint8_t		c = quantize(input_value(x, d, scale, centroid), lo[d], step[d], levels);

		if (kind == VS_QUANT_SQ4)
			codes[d >> 1] |= (uint8_t) (c << (4 * (d & 1)));
		else
			codes[d] = c;
	}

	if (params->metric == VS_METRIC_L2)
	{
		/* V = |x^ - m|^2 */
		for (int d = 0; d < dims; d++)
		{
			double		e = (double) step[d] * ((double) code_at(kind, codes, d) - mid);

			acc += e * e;
		}
	}
	else if (params->metric == VS_METRIC_COSINE)
	{
		/* |x^|^2 of the decoded vector, centroid added back */
		for (int d = 0; d < dims; d++)
		{
			double		xh = (double) lo[d] + (double) step[d] * code_at(kind, codes, d) +
				(centroid ? (double) centroid[d] : 0.0);

			acc += xh * xh;
		}
	}

	if (params->metric == VS_METRIC_L2)
		header[0] = (float) acc;
	else if (params->metric == VS_METRIC_COSINE)
		header[0] = (scale > 0.0 && acc > 0.0) ? (float) (1.0 / sqrt(acc)) : 0.0f;
	memcpy(record, header, hbytes);
}

/*
 * VsQuantEncodeBlock - records of "n" vectors, back to back, and zeros up
 * to VsQuantBlockSize (so a block's bytes, and its CRC, are deterministic).
 * All vectors share "centroid" (one cluster), which may be NULL.
 */
void
VsQuantEncodeBlock(const VsQuantParams *params, const float *x, uint64_t n,
				   const float *centroid, uint8_t *block)
{
	size_t		used = (size_t) n * params->record_size;

	for (uint64_t i = 0; i < n; i++)
		VsQuantEncode(params, x + (size_t) i * params->dims, centroid,
					  block + (size_t) i * params->record_size);
	memset(block + used, 0, VsQuantBlockSize(params, n) - used);
}

/*
 * VsQuantDecode - the vector a record stands for, into "x" (dims floats):
 * lo + step * code (+ centroid).  For cosine that is the normalised
 * vector's approximation.
 */
void
VsQuantDecode(const VsQuantParams *params, const uint8_t *record,
			  const float *centroid, float *x)
{
	const int	dims = (int) params->dims;
	const float *lo = params->data;
	const float *step = params->data + dims;
	const uint8_t *codes = record + record_header(params);

	for (int d = 0; d < dims; d++)
		x[d] = lo[d] + step[d] * (float) code_at(params->kind, codes, d) +
			(centroid ? centroid[d] : 0.0f);
}

/*
 * VsQuantQuerySize - bytes of buffer VsQuantPrepareQuery needs (any
 * alignment: the query aligns itself inside it).
 */
size_t
VsQuantQuerySize(const VsQuantParams *params)
{
	size_t		pd64 = pad_to(code_bytes(params->kind, (int) params->dims), 64);
	int			streams = params->kind == VS_QUANT_SQ4 ? 2 : 1;

	return VS_QUANT_BLOCK_ALIGN + pad_to(sizeof(VsQuantQuery), 64) +
		streams * pd64 * (sizeof(int16_t) + 2 * sizeof(int8_t));
}

/*
 * VsQuantPrepareQuery - VsQuantPrepareQueryPath on VsQuantActivePath.
 */
VsQuantQuery *
VsQuantPrepareQuery(const VsQuantParams *params, const float *q,
					const float *centroid, void *buf)
{
	return VsQuantPrepareQueryPath(params, q, centroid, VsQuantActivePath, buf);
}

/*
 * VsQuantPrepareQueryPath - turn query "q" (dims floats) into the weights
 * and constants the distance kernels use, in "buf" (VsQuantQuerySize
 * bytes).  "centroid" is the probed cluster's centroid for residual
 * params, else NULL.  O(dims).  The query holds no pointer into "params"
 * or "q": both may go away afterwards; it lives as long as "buf".
 *
 * Returns the query (inside buf), or NULL if this CPU cannot run "path".
 */
VsQuantQuery *
VsQuantPrepareQueryPath(const VsQuantParams *params, const float *q,
						const float *centroid, VsQuantPath path, void *buf)
{
	const int	dims = (int) params->dims;
	const int	sq4 = params->kind == VS_QUANT_SQ4;
	const int	levels = kind_levels(params->kind);
	const double mid = levels / 2.0;
	const int	pd = (int) code_bytes(params->kind, dims);
	const size_t pd64 = pad_to((size_t) pd, 64);
	const int	streams = sq4 ? 2 : 1;
	const float *lo = params->data;
	const float *step = params->data + dims;
	const VsMetric metric = (VsMetric) params->metric;
	VsQuantQuery *query;
	char	   *p;
	int16_t    *w16[2];
	int8_t	   *wh[2];
	int8_t	   *wl[2];
	double		scale = 1.0;
	double		konst = 0.0;	/* |a|^2 (L2) or q . (centroid + m) */
	double		maxw = 0.0;
	double		delta = 0.0;
	int64_t		sumw = 0;
	int			limit = weight_limit(levels, streams * pd);

	if ((int) path < 0 || path >= VS_QUANT_NPATHS || !VsQuantPathSupported(path))
		return NULL;

	/*
	 * The weight arrays, each pd64 entries: SQ8 has one stream indexed by
	 * dimension, SQ4 two indexed by code byte (even dimensions, odd ones).
	 * Entries no dimension fills stay zero.
	 */
	p = (char *) pad_to((size_t) (uintptr_t) buf, VS_QUANT_BLOCK_ALIGN);
	query = (VsQuantQuery *) p;
	p += pad_to(sizeof(VsQuantQuery), 64);
	memset(p, 0, streams * pd64 * (sizeof(int16_t) + 2 * sizeof(int8_t)));
	for (int st = 0; st < 2; st++)
	{
		int			sp = st < streams ? st : 0;

		w16[st] = (int16_t *) p + sp * pd64;
		wh[st] = (int8_t *) (p + streams * pd64 * sizeof(int16_t)) + sp * pd64;
		wl[st] = wh[st] + streams * pd64;
	}

	if (metric == VS_METRIC_COSINE)
	{
		double		nn = 0.0;

		for (int d = 0; d < dims; d++)
			nn += (double) q[d] * q[d];
		scale = nn > 0.0 ? 1.0 / sqrt(nn) : 0.0;
	}

	/*
	 * Two passes: the first finds the largest weight, which sets delta,
	 * and the constant; the second recomputes each weight the same way
	 * and rounds it (cheaper than a buffer of doubles).
	 */
	for (int d = 0; d < dims; d++)
	{
		double		qd = (double) q[d] * scale;
		double		md = (double) lo[d] + mid * step[d];
		double		cd = centroid ? (double) centroid[d] : 0.0;
		double		w;

		if (metric == VS_METRIC_L2)
		{
			double		a = qd - cd - md;

			konst += a * a;
			w = a * step[d];
		}
		else
		{
			konst += qd * (cd + md);
			w = qd * step[d];
		}
		if (fabs(w) > maxw)
			maxw = fabs(w);
	}
	if (maxw > 0.0)
		delta = maxw / limit;

	for (int d = 0; d < dims; d++)
	{
		double		qd = (double) q[d] * scale;
		double		w;
		int			wi = 0;

		int			st = sq4 ? (d & 1) : 0;
		int			at = sq4 ? (d >> 1) : d;

		if (metric == VS_METRIC_L2)
			w = (qd - (centroid ? (double) centroid[d] : 0.0) -
				 ((double) lo[d] + mid * step[d])) * step[d];
		else
			w = qd * step[d];
		if (delta > 0.0)
		{
			double		r = floor(w / delta + 0.5);

			wi = r > limit ? limit : (r < -limit ? -limit : (int) r);
		}
		w16[st][at] = (int16_t) wi;
		/* W = 128 wh + wl, wl in 0..127: an arithmetic floor split */
		wl[st][at] = (int8_t) (wi & 127);
		wh[st][at] = (int8_t) ((wi - (wi & 127)) / 128);
		sumw += wi;
	}

	query->kernels = sq4 ? &kernel_table4[path] : &kernel_table[path];
	query->path = path;
	query->metric = metric;
	query->dims = dims;
	query->pd = pd;
	query->header = (int) record_header(params);
	query->read_size = (uint32_t) (record_header(params) + (size_t) pd);
	if (query->read_size < params->record_size)
		query->read_size = params->record_size;
	query->levels = levels;
	query->record_size = params->record_size;
	query->delta = delta;
	query->w16 = w16[0];
	query->wh = wh[0];
	query->wl = wl[0];
	query->w16_hi = sq4 ? w16[1] : NULL;
	query->wh_hi = sq4 ? wh[1] : NULL;
	query->wl_hi = sq4 ? wl[1] : NULL;

	/*
	 * With w^_d = delta W_d, S = sum W_d c_d and the middle level L/2:
	 *	L2:  |a|^2 - 2 sum w^_d (c_d - L/2) + V = |a|^2 + L delta sum W - 2 delta S + V
	 *	IP:  -(q.(cent + m) + sum w^_d (c_d - L/2))
	 *	cos: 1 - (q'.(cent + m) + sum w^_d (c_d - L/2)) aux
	 */
	switch (metric)
	{
		case VS_METRIC_L2:
		case VS_METRIC_L1:		/* not a codes' metric: an L1 index's are L2's */
		case VS_METRIC_HAMMING:
			query->k = konst + levels * delta * (double) sumw;
			query->coef = -2.0 * delta;
			break;
		case VS_METRIC_IP:
			query->k = -(konst - mid * delta * (double) sumw);
			query->coef = -delta;
			break;
		case VS_METRIC_COSINE:
			query->k = konst - mid * delta * (double) sumw;
			query->coef = delta;
			break;
	}
	return query;
}

/*
 * VsQuantDistance - the estimated distance between a prepared query and
 * one record (see vsquant.h for what the value means).
 */
float
VsQuantDistance(const VsQuantQuery *query, const uint8_t *record)
{
	return finish(query, query->kernels->dot(query, record + query->header),
				  record);
}

/*
 * VsQuantDistances - distances to the "n" consecutive records at "block"
 * into out[0..n-1] (a flat scan of a cluster).
 */
void
VsQuantDistances(const VsQuantQuery *query, const uint8_t *block,
				 uint32_t n, float *out)
{
	query->kernels->block(query, block, n, out);
}

/*
 * VsQuantDistancesIds - distances to records ids[0..n-1] of the block at
 * "block" into out[0..n-1] (a graph node's neighbours), with prefetching.
 */
void
VsQuantDistancesIds(const VsQuantQuery *query, const uint8_t *block,
					const uint32_t *ids, uint32_t n, float *out)
{
	query->kernels->ids(query, block, ids, n, out);
}

/*
 * VsQuantDistanceById - the HNSW distance callback: "ctx" is a
 * VsQuantScan, "id" the record number within its block.
 */
float
VsQuantDistanceById(void *ctx, uint32_t id)
{
	const VsQuantScan *scan = ctx;
	const VsQuantQuery *query = scan->query;
	const uint8_t *record = scan->block + (size_t) id * query->record_size;

	return finish(query, query->kernels->dot(query, record + query->header),
				  record);
}

/*
 * VsQuantQueryDelta - the weight quantum of a prepared query (0 when all
 * its weights are zero): each distance may differ from the exact distance
 * to the decoded vector by up to L/4 * delta * dims (63.75 for SQ8, 3.75
 * for SQ4; times 2 for L2, times the stored 1/|x^| for cosine), plus
 * float rounding.  For tests and diagnostics.
 */
double
VsQuantQueryDelta(const VsQuantQuery *query)
{
	return query->delta;
}

/*
 * pad_to - "x" rounded up to a multiple of "align" (a power of two).
 */
static size_t
pad_to(size_t x, size_t align)
{
	return (x + align - 1) & ~(align - 1);
}

/*
 * kind_levels - L, the highest code of a kind (SQ8 unless SQ4).
 */
static int
kind_levels(int kind)
{
	return kind == VS_QUANT_SQ4 ? 15 : 255;
}

/*
 * raw_code_bytes - bytes of a vector's codes: one per dimension (SQ8) or
 * one per two (SQ4).
 */
static size_t
raw_code_bytes(int kind, int dims)
{
	return kind == VS_QUANT_SQ4 ? ((size_t) dims + 1) / 2 : (size_t) dims;
}

/*
 * code_bytes - the code bytes the kernels read per record: raw_code_bytes
 * padded to VS_QUANT_CODE_ALIGN (the weights past the raw bytes are zero).
 */
static size_t
code_bytes(int kind, int dims)
{
	return pad_to(raw_code_bytes(kind, dims), VS_QUANT_CODE_ALIGN);
}

/*
 * record_header - where the codes of a record of "params" start.
 */
static size_t
record_header(const VsQuantParams *params)
{
	return (params->flags & VS_QUANT_PACKED) ? VS_QUANT_PACKED_HEADER : VS_QUANT_RECORD_HEADER;
}

/*
 * code_at - the code of dimension d in a record's code bytes.
 */
static inline int
code_at(int kind, const uint8_t *codes, int d)
{
	if (kind == VS_QUANT_SQ4)
		return (codes[d >> 1] >> (4 * (d & 1))) & 15;
	return codes[d];
}

/*
 * quantize - the code of value "v" in the range [lo, lo + levels * step]:
 * nearest level, ends clipped, a constant dimension (step 0) always 0.
 * In double, so that the only error is the rounding to a level.
 */
static uint8_t
quantize(double v, float lo, float step, int levels)
{
	double		t;

	if (step == 0.0f)
		return 0;
	t = (v - (double) lo) / (double) step;
	if (!(t > 0.0))				/* also NaN */
		return 0;
	if (t >= levels)
		return (uint8_t) levels;
	return (uint8_t) (t + 0.5);
}

/*
 * input_scale - what a vector is multiplied by before it is encoded (or
 * trained on): 1/|x| for cosine (0 for a zero vector), else 1.
 */
static double
input_scale(const VsQuantParams *params, const float *x)
{
	double		nn = 0.0;

	if (params->metric != VS_METRIC_COSINE)
		return 1.0;
	for (uint32_t d = 0; d < params->dims; d++)
		nn += (double) x[d] * x[d];
	return nn > 0.0 ? 1.0 / sqrt(nn) : 0.0;
}

/*
 * input_value - dimension d of the vector a code stands for: x scaled,
 * minus the centroid if any.  Training and encoding both use this, so
 * they see the same float.
 */
static float
input_value(const float *x, int d, double scale, const float *centroid)
{
	double		v = (double) x[d] * scale;

	if (centroid)
		v -= (double) centroid[d];
	return (float) v;
}

/*
 * select_kth - the k-th smallest (0-based) of a[0..n-1], reordering a:
 * quickselect with a median-of-three pivot and Hoare partitioning, which
 * stays balanced on the runs of equal values that real data has (pixel
 * zeros).  0 <= k < n.
 */
static float
select_kth(float *a, int n, int k)
{
	int			left = 0,
				right = n - 1;

	while (right > left)
	{
		int			mid = left + (right - left) / 2;
		float		pivot;
		int			i = left,
					j = right;

		/* order a[left], a[mid], a[right]; the median is the pivot */
		if (a[mid] < a[left])
			SWAP_FLOAT(a[mid], a[left]);
		if (a[right] < a[left])
			SWAP_FLOAT(a[right], a[left]);
		if (a[right] < a[mid])
			SWAP_FLOAT(a[right], a[mid]);
		pivot = a[mid];

		while (i <= j)
		{
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j)
			{
				SWAP_FLOAT(a[i], a[j]);
				i++;
				j--;
			}
		}
		/* now a[left..j] <= pivot <= a[i..right], and j < i */
		if (k <= j)
			right = j;
		else if (k >= i)
			left = i;
		else
			return a[k];		/* between j and i: equal to the pivot */
	}
	return a[k];
}

/*
 * weight_limit - the largest |W| for "nweights" weights against codes up
 * to "levels" such that levels * |W| * nweights, a bound on every partial
 * sum of S, stays in int32.
 */
static int
weight_limit(int levels, int nweights)
{
	int64_t		limit = (int64_t) INT32_MAX / (levels * (int64_t) nweights);

	return limit > WEIGHT_MAX ? WEIGHT_MAX : (int) limit;
}

/*
 * record_aux - the per-vector factor in a record's header (memcpy: packed
 * records are only 4-byte aligned, and a caller may hand any record).
 */
static inline float
record_aux(const uint8_t *record)
{
	float		aux;

	memcpy(&aux, record, sizeof(aux));
	return aux;
}

/*
 * finish - the distance from the integer dot product "s" and the record's
 * factor, in double and then rounded to float once.  The same on every
 * path (FP_BARRIER keeps the product from being fused with the sum).
 */
static inline float
finish(const VsQuantQuery *query, int32_t s, const uint8_t *record)
{
	double		t = query->coef * (double) s;

	FP_BARRIER(t);
	t = query->k + t;
	switch (query->metric)
	{
		case VS_METRIC_L2:
		case VS_METRIC_L1:		/* not a codes' metric (see above) */
		case VS_METRIC_HAMMING:
			return (float) (t + (double) record_aux(record));
		case VS_METRIC_IP:
			return (float) t;
		case VS_METRIC_COSINE:
			{
				double		u = t * (double) record_aux(record);

				FP_BARRIER(u);
				return (float) (1.0 - u);
			}
	}
	return 0.0f;
}
