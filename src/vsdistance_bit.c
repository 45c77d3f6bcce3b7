/*-------------------------------------------------------------------------
 *
 * vsdistance_bit.c
 *	  Popcount kernels (Hamming, Jaccard counts) with runtime CPU dispatch.
 *
 * Owns the scalar reference implementation (one byte at a time), the word
 * path (64-bit words, POPCNT on x86-64 through a per-function target
 * attribute, so the module still runs on a CPU without it) and the
 * AVX-512 VPOPCNTDQ path.  VsBitDistanceInit() asks the CPU (through the
 * compiler's cpuid support, which also checks that the OS saves the wide
 * registers) which paths it can run and installs the fastest in
 * VsBitKernels, as vsdistance.c does for the float kernels.
 *
 * Pure C: no postgres.h, no palloc, no elog.  test/kernels/test_bit.c
 * links this file and compares every path with the scalar one.
 *
 * IDENTIFICATION
 *	  src/vsdistance_bit.c
 *
 *-------------------------------------------------------------------------
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vsdistance_bit.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define VS_BIT_X86 1
#include <immintrin.h>
#define VS_POPCNT __attribute__((target("popcnt")))
#define VS_AVX512_POPCNT __attribute__((target("popcnt,avx512f,avx512vpopcntdq")))
#elif defined(__GNUC__)
/* the compiler's popcount is the CPU's own instruction where one exists */
#define VS_POPCNT
#endif

/*
 * popcount8 - bits set in one byte, without a table or a builtin: the
 * reference the other paths are checked against.
 */
static inline unsigned
popcount8(unsigned char x)
{
	unsigned	v = x;

	v = v - ((v >> 1) & 0x55u);
	v = (v & 0x33u) + ((v >> 2) & 0x33u);
	return (v + (v >> 4)) & 0x0Fu;
}

/*
 * hamming_scalar - bits set in a XOR b, a byte at a time.
 */
static uint64_t
hamming_scalar(const unsigned char *a, const unsigned char *b, size_t bytes)
{
	uint64_t	distance = 0;

	for (size_t i = 0; i < bytes; i++)
		distance += popcount8(a[i] ^ b[i]);
	return distance;
}

/*
 * jaccard_counts_scalar - bits set in a AND b, in a and in b.
 */
static void
jaccard_counts_scalar(const unsigned char *a, const unsigned char *b,
					  size_t bytes, uint64_t *both, uint64_t *in_a,
					  uint64_t *in_b)
{
	uint64_t	ab = 0,
				aa = 0,
				bb = 0;

	for (size_t i = 0; i < bytes; i++)
	{
		ab += popcount8(a[i] & b[i]);
		aa += popcount8(a[i]);
		bb += popcount8(b[i]);
	}
	*both = ab;
	*in_a = aa;
	*in_b = bb;
}

#ifdef VS_POPCNT

/*
 * load64 - eight bytes from any address (memcpy: the bytes of a varbit
 * start 4 bytes into its header, so they are not 8-byte aligned).
 */
static inline uint64_t
load64(const unsigned char *p)
{
	uint64_t	w;

	memcpy(&w, p, sizeof(w));
	return w;
}

/*
 * hamming_words - 64-bit words through the popcount instruction; the
 * last bytes (under eight) one at a time.  The word's byte order does
 * not matter: the count of a word is that of its bytes.
 */
VS_POPCNT static uint64_t
hamming_words(const unsigned char *a, const unsigned char *b, size_t bytes)
{
	uint64_t	distance = 0;
	size_t		i = 0;

	for (; i + 8 <= bytes; i += 8)
		distance += (uint64_t) __builtin_popcountll(load64(a + i) ^ load64(b + i));
	for (; i < bytes; i++)
		distance += (uint64_t) __builtin_popcount((unsigned) (a[i] ^ b[i]));
	return distance;
}

/*
 * jaccard_counts_words - see hamming_words.
 */
VS_POPCNT static void
jaccard_counts_words(const unsigned char *a, const unsigned char *b,
					 size_t bytes, uint64_t *both, uint64_t *in_a,
					 uint64_t *in_b)
{
	uint64_t	ab = 0,
				aa = 0,
				bb = 0;
	size_t		i = 0;

	for (; i + 8 <= bytes; i += 8)
	{
		uint64_t	wa = load64(a + i);
		uint64_t	wb = load64(b + i);

		ab += (uint64_t) __builtin_popcountll(wa & wb);
		aa += (uint64_t) __builtin_popcountll(wa);
		bb += (uint64_t) __builtin_popcountll(wb);
	}
	for (; i < bytes; i++)
	{
		ab += (uint64_t) __builtin_popcount((unsigned) (a[i] & b[i]));
		aa += (uint64_t) __builtin_popcount((unsigned) a[i]);
		bb += (uint64_t) __builtin_popcount((unsigned) b[i]);
	}
	*both = ab;
	*in_a = aa;
	*in_b = bb;
}
#endif							/* VS_POPCNT */

#ifdef VS_BIT_X86

/*
 * AVX-512 kernels: 64-byte blocks, one 64-bit lane count per lane
 * (VPOPCNTDQ), summed across lanes at the end; the remainder (under 64
 * bytes) goes through the word loop, compiled here with POPCNT too.  A
 * masked byte load would need AVX-512BW as well, for at most one block.
 */
VS_AVX512_POPCNT static uint64_t
hamming_avx512(const unsigned char *a, const unsigned char *b, size_t bytes)
{
	__m512i		acc = _mm512_setzero_si512();
	uint64_t	distance;
	size_t		i = 0;

	for (; i + 64 <= bytes; i += 64)
	{
		__m512i		va = _mm512_loadu_si512((const void *) (a + i));
		__m512i		vb = _mm512_loadu_si512((const void *) (b + i));

		acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(va, vb)));
	}
	distance = (uint64_t) _mm512_reduce_add_epi64(acc);
	for (; i + 8 <= bytes; i += 8)
		distance += (uint64_t) __builtin_popcountll(load64(a + i) ^ load64(b + i));
	for (; i < bytes; i++)
		distance += (uint64_t) __builtin_popcount((unsigned) (a[i] ^ b[i]));
	return distance;
}

/*
 * jaccard_counts_avx512 - three lane accumulators; see hamming_avx512.
 */
VS_AVX512_POPCNT static void
jaccard_counts_avx512(const unsigned char *a, const unsigned char *b,
					  size_t bytes, uint64_t *both, uint64_t *in_a,
					  uint64_t *in_b)
{
	__m512i		acc_ab = _mm512_setzero_si512();
	__m512i		acc_a = _mm512_setzero_si512();
	__m512i		acc_b = _mm512_setzero_si512();
	uint64_t	ab,
				aa,
				bb;
	size_t		i = 0;

	for (; i + 64 <= bytes; i += 64)
	{
		__m512i		va = _mm512_loadu_si512((const void *) (a + i));
		__m512i		vb = _mm512_loadu_si512((const void *) (b + i));

		acc_ab = _mm512_add_epi64(acc_ab, _mm512_popcnt_epi64(_mm512_and_si512(va, vb)));
		acc_a = _mm512_add_epi64(acc_a, _mm512_popcnt_epi64(va));
		acc_b = _mm512_add_epi64(acc_b, _mm512_popcnt_epi64(vb));
	}
	ab = (uint64_t) _mm512_reduce_add_epi64(acc_ab);
	aa = (uint64_t) _mm512_reduce_add_epi64(acc_a);
	bb = (uint64_t) _mm512_reduce_add_epi64(acc_b);
	for (; i + 8 <= bytes; i += 8)
	{
		uint64_t	wa = load64(a + i);
		uint64_t	wb = load64(b + i);

		ab += (uint64_t) __builtin_popcountll(wa & wb);
		aa += (uint64_t) __builtin_popcountll(wa);
		bb += (uint64_t) __builtin_popcountll(wb);
	}
	for (; i < bytes; i++)
	{
		ab += (uint64_t) __builtin_popcount((unsigned) (a[i] & b[i]));
		aa += (uint64_t) __builtin_popcount((unsigned) a[i]);
		bb += (uint64_t) __builtin_popcount((unsigned) b[i]);
	}
	*both = ab;
	*in_a = aa;
	*in_b = bb;
}
#endif							/* VS_BIT_X86 */

static const VsBitKernelsData bit_kernel_table[VS_BIT_NPATHS] = {
	[VS_BIT_SCALAR] = {hamming_scalar, jaccard_counts_scalar},
#ifdef VS_POPCNT
	[VS_BIT_POPCNT] = {hamming_words, jaccard_counts_words},
#endif
#ifdef VS_BIT_X86
	[VS_BIT_AVX512] = {hamming_avx512, jaccard_counts_avx512},
#endif
};

static const char *const bit_path_names[VS_BIT_NPATHS] = {
	[VS_BIT_SCALAR] = "scalar",
	[VS_BIT_POPCNT] = "popcnt",
	[VS_BIT_AVX512] = "avx512",
};

VsBitKernelsData VsBitKernels = {hamming_scalar, jaccard_counts_scalar};
VsBitPath	VsBitActivePath = VS_BIT_SCALAR;

/*
 * VsBitPathSupported - can this CPU (and OS) run the given path?
 */
int
VsBitPathSupported(VsBitPath path)
{
	switch (path)
	{
		case VS_BIT_SCALAR:
			return 1;
#if defined(VS_BIT_X86)
		case VS_BIT_POPCNT:
			__builtin_cpu_init();
			return __builtin_cpu_supports("popcnt");
		case VS_BIT_AVX512:
			__builtin_cpu_init();
			return __builtin_cpu_supports("popcnt") &&
				__builtin_cpu_supports("avx512f") &&
				__builtin_cpu_supports("avx512vpopcntdq");
#elif defined(VS_POPCNT)
		case VS_BIT_POPCNT:
			return 1;
#endif
		default:
			return 0;
	}
}

/*
 * VsBitKernelsForPath - the kernel table of one path, or NULL when this
 * CPU cannot run it (so the unit test can compare paths side by side).
 */
VsBitKernelsPtr
VsBitKernelsForPath(VsBitPath path)
{
	if (path < 0 || path >= VS_BIT_NPATHS || !VsBitPathSupported(path))
		return NULL;
	return &bit_kernel_table[path];
}

/*
 * VsBitPathName - short name of a path ("scalar", "popcnt", "avx512").
 */
const char *
VsBitPathName(VsBitPath path)
{
	if (path < 0 || path >= VS_BIT_NPATHS)
		return "unknown";
	return bit_path_names[path];
}

/*
 * VsBitDistanceInit - install the fastest supported path in VsBitKernels.
 *
 * Idempotent; called from _PG_init in the server and by the unit test.
 */
void
VsBitDistanceInit(void)
{
	VsBitPath	best = VS_BIT_SCALAR;

	for (int p = VS_BIT_NPATHS - 1; p > VS_BIT_SCALAR; p--)
	{
		if (VsBitPathSupported((VsBitPath) p))
		{
			best = (VsBitPath) p;
			break;
		}
	}
	VsBitKernels = bit_kernel_table[best];
	VsBitActivePath = best;
}
