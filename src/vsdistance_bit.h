/*-------------------------------------------------------------------------
 *
 * vsdistance_bit.h
 *	  Popcount kernels for the distances between bit strings (Hamming and
 *	  Jaccard), with runtime CPU dispatch.
 *
 * Plain C99 like vsdistance.h: no postgres.h, so the unit test
 * (test/kernels/test_bit.c) links vsdistance_bit.c on its own.
 *
 * The kernels count bits over "bytes" bytes of two bit strings of the same
 * length.  Bits past the string's length in its last byte must be zero on
 * both sides (PostgreSQL's bit and varbit types guarantee it), so whole
 * bytes can be counted.  Every path returns exactly the same counts: a
 * count of bits has no rounding, so the paths are compared bit for bit.
 *
 * Paths: a portable scalar one (a byte at a time), "popcnt" (64-bit words
 * through the POPCNT instruction on x86-64, the compiler's popcount
 * elsewhere) and "avx512" (AVX-512 VPOPCNTDQ on 64-byte blocks).  The best
 * path the CPU supports is chosen once by VsBitDistanceInit(); callers go
 * through the VsBitKernels table.
 *
 * IDENTIFICATION
 *	  src/vsdistance_bit.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSDISTANCE_BIT_H
#define VSDISTANCE_BIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum VsBitPath
{
	VS_BIT_SCALAR = 0,
	VS_BIT_POPCNT,
	VS_BIT_AVX512,
	VS_BIT_NPATHS
} VsBitPath;

/*
 * One implementation of every kernel.  "bytes" may be any value >= 0; the
 * pointers need no particular alignment, and nothing past a + bytes or
 * b + bytes is read.
 */
typedef struct VsBitKernelsData
{
	/* number of bits set in a XOR b */
	uint64_t	(*hamming) (const unsigned char *a, const unsigned char *b,
							size_t bytes);
	/* bits set in a AND b, in a, and in b, in one pass */
	void		(*jaccard_counts) (const unsigned char *a, const unsigned char *b,
								   size_t bytes, uint64_t *both,
								   uint64_t *in_a, uint64_t *in_b);
} VsBitKernelsData;

typedef const VsBitKernelsData *VsBitKernelsPtr;

/* the path chosen by VsBitDistanceInit(); scalar until then */
extern VsBitKernelsData VsBitKernels;
extern VsBitPath VsBitActivePath;

extern void VsBitDistanceInit(void);
extern int	VsBitPathSupported(VsBitPath path);
extern VsBitKernelsPtr VsBitKernelsForPath(VsBitPath path);
extern const char *VsBitPathName(VsBitPath path);

/*
 * VsJaccardFromCounts - Jaccard distance, 1 - |a & b| / |a | b|, from the
 * counts jaccard_counts produces.  Strings with no bit in common are at
 * distance 1, two strings of zeros included (pgvector's definition: no
 * NaN for the empty union).
 */
static inline double
VsJaccardFromCounts(uint64_t both, uint64_t in_a, uint64_t in_b)
{
	if (both == 0)
		return 1.0;
	/* |a | b| = |a| + |b| - |a & b|, which is >= both > 0 */
	return 1.0 - (double) both / (double) (in_a + in_b - both);
}

#endif							/* VSDISTANCE_BIT_H */
