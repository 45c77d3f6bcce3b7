/*-------------------------------------------------------------------------
 *
 * vsdistance_half.h
 *	  IEEE binary16 ("half") conversion and distance kernels on half arrays.
 *
 * Plain C99 like vsdistance.h: no postgres.h, so the unit test
 * (test/kernels/test_half.c) links vsdistance_half.c on its own.  A half
 * is carried as its bit pattern in a uint16_t (the element type of the
 * halfvec type, src/halfvec.h).
 *
 * Two kinds of kernels, each with the four sums of VsDistanceKernelsData:
 *	- half against half (the SQL functions on two halfvecs);
 *	- float against half ("_fh"), for a full-precision query against
 *	  stored half vectors (the index's rerank of halfvec columns).
 * Every element is widened to float exactly and summed in float, so the
 * result equals the float kernel on the widened arrays up to summation
 * order.  Bulk conversions in both directions round to nearest, ties to
 * even, as the scalar VsFloatToHalf does (overflow gives infinity; the
 * caller decides whether that is an error).
 *
 * Paths: scalar, AVX2+FMA+F16C, AVX-512F (whose VCVTPH2PS/VCVTPS2PH need
 * nothing beyond AVX-512F), chosen once by VsHalfDistanceInit() or forced
 * by VsHalfDistanceSetPath() (vecstore.simd), as for VsKernels.
 *
 * IDENTIFICATION
 *	  src/vsdistance_half.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSDISTANCE_HALF_H
#define VSDISTANCE_HALF_H

#include <stdint.h>

#include "vsdistance.h"

/* the largest finite half, 65504; 65520 and up round to infinity */
#define VS_HALF_MAX			65504.0f

/*
 * One implementation of every half kernel.  "n" may be any value >= 0;
 * the pointers need no particular alignment (halves only their own).
 */
typedef struct VsHalfKernelsData
{
	/* half against half: see VsDistanceKernelsData */
	float		(*l2_squared) (const uint16_t *a, const uint16_t *b, int n);
	float		(*inner_product) (const uint16_t *a, const uint16_t *b, int n);
	float		(*l1) (const uint16_t *a, const uint16_t *b, int n);
	void		(*dot_norms) (const uint16_t *a, const uint16_t *b, int n,
							  float *dot, float *norm_a, float *norm_b);

	/* float query "q" against half vector "h" */
	float		(*l2_squared_fh) (const float *q, const uint16_t *h, int n);
	float		(*inner_product_fh) (const float *q, const uint16_t *h, int n);
	float		(*l1_fh) (const float *q, const uint16_t *h, int n);
	void		(*dot_norms_fh) (const float *q, const uint16_t *h, int n,
								 float *dot, float *norm_q, float *norm_h);

	/* bulk conversions; src and dst must not overlap */
	void		(*half_to_float) (const uint16_t *src, float *dst, int n);
	void		(*float_to_half) (const float *src, uint16_t *dst, int n);
} VsHalfKernelsData;

typedef const VsHalfKernelsData *VsHalfDistanceKernels;

/* the path chosen by VsHalfDistanceInit(); scalar until then */
extern VsHalfKernelsData VsHalfKernels;
extern VsKernelPath VsHalfKernelsActivePath;

extern void VsHalfDistanceInit(void);
extern VsKernelPath VsHalfDistanceSetPath(VsKernelPath path);
extern int	VsHalfKernelPathSupported(VsKernelPath path);
extern VsHalfDistanceKernels VsHalfKernelsForPath(VsKernelPath path);

/* the scalar reference conversions (exact, round to nearest even) */
extern float VsHalfToFloat(uint16_t h);
extern uint16_t VsFloatToHalf(float f);

/* classification on the bit pattern */
static inline int
VsHalfIsNan(uint16_t h)
{
	return (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0;
}

static inline int
VsHalfIsInf(uint16_t h)
{
	return (h & 0x7FFF) == 0x7C00;
}

static inline int
VsHalfIsZero(uint16_t h)
{
	return (h & 0x7FFF) == 0;
}

#endif							/* VSDISTANCE_HALF_H */
