/*-------------------------------------------------------------------------
 *
 * vsdistance.h
 *	  Distance kernels shared by the SQL functions, the index and rerank.
 *
 * This header is plain C99: it does not include postgres.h, so the kernel
 * unit test and the benchmark program can link vsdistance.c on their own.
 *
 * Every kernel exists in several implementations ("paths"): a portable
 * scalar one and SIMD ones for x86-64 (AVX2+FMA, AVX-512F).  The best path
 * the CPU supports is chosen once by VsDistanceInit(); callers go through
 * the VsKernels table.  SIMD paths sum in a different order from the scalar
 * path, so results agree to float rounding, not bit for bit.
 *
 * IDENTIFICATION
 *	  src/vsdistance.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSDISTANCE_H
#define VSDISTANCE_H

/*
 * VS_INTERNAL marks a function of a pure-C module that crosses the
 * module's files but not the module (vshnsw_internal.h,
 * vskmeans_internal.h): hidden from the shared library's symbol table
 * (PostgreSQL 15 exports every non-static symbol), so that calls to it
 * bind locally and stay as cheap as when it was static (no PLT, inlining
 * within a file).
 */
#if defined(__GNUC__)
#define VS_INTERNAL __attribute__((visibility("hidden")))
#else
#define VS_INTERNAL
#endif

typedef enum VsKernelPath
{
	VS_KERNEL_SCALAR = 0,
	VS_KERNEL_AVX2,
	VS_KERNEL_AVX512,
	VS_KERNEL_NPATHS
} VsKernelPath;

/*
 * The distance an index is built for (from its operator class).  L2 and
 * cosine order by distance; IP orders by negative inner product.
 */
typedef enum VsMetric
{
	VS_METRIC_L2 = 1,			/* vector_l2_ops: <-> */
	VS_METRIC_IP = 2,			/* vector_ip_ops: <#> */
	VS_METRIC_COSINE = 3,		/* vector_cosine_ops: <=> */
	VS_METRIC_L1 = 4,			/* vector_l1_ops: <+> (the index orders by it;
								 * its clusters, codes and graphs are L2's) */
	VS_METRIC_HAMMING = 5		/* bit_hamming_ops: <~> (bits as 0s and 1s:
								 * the squared L2 distance) */
} VsMetric;

/*
 * One implementation of every kernel.  "n" is the number of elements and
 * may be any value >= 0; the pointers need no particular alignment.
 */
typedef struct VsDistanceKernelsData
{
	/* sum of (a[i] - b[i])^2 */
	float		(*l2_squared) (const float *a, const float *b, int n);
	/* sum of a[i] * b[i] */
	float		(*inner_product) (const float *a, const float *b, int n);
	/* sum of |a[i] - b[i]| */
	float		(*l1) (const float *a, const float *b, int n);
	/* inner product and both squared norms in one pass, for cosine */
	void		(*dot_norms) (const float *a, const float *b, int n,
							  float *dot, float *norm_a, float *norm_b);
} VsDistanceKernelsData;

typedef const VsDistanceKernelsData *VsDistanceKernels;

/* the path chosen by VsDistanceInit(); scalar until then */
extern VsDistanceKernelsData VsKernels;
extern VsKernelPath VsKernelsActivePath;

extern void VsDistanceInit(void);
extern int	VsKernelPathSupported(VsKernelPath path);
extern VsDistanceKernels VsKernelsForPath(VsKernelPath path);
extern const char *VsKernelPathName(VsKernelPath path);

/*
 * Cosine distance from the three sums dot_norms produces, computed in
 * double like the SQL function.  Zero-norm input gives NaN, as 0/0 does.
 */
static inline double
VsCosineFromSums(float dot, float norm_a, float norm_b)
{
	double		similarity;

	similarity = (double) dot / __builtin_sqrt((double) norm_a * (double) norm_b);
	if (similarity != similarity)
		return similarity;		/* NaN: a zero vector has no direction */
	/* rounding can push the ratio just past +-1 */
	if (similarity > 1.0)
		similarity = 1.0;
	else if (similarity < -1.0)
		similarity = -1.0;
	return 1.0 - similarity;
}

/*
 * VsMetricDistance - the value the ORDER BY operator of "metric" returns
 * (l2_distance, vector_negative_inner_product, cosine_distance,
 * l1_distance), computed
 * the one way both the SQL functions and the index use, so that the
 * index's order and values are exactly the operators'.
 */
static inline double
VsMetricDistance(VsMetric metric, const float *a, const float *b, int n)
{
	float		dot,
				norm_a,
				norm_b;

	switch (metric)
	{
		case VS_METRIC_L2:
			return __builtin_sqrt((double) VsKernels.l2_squared(a, b, n));
		case VS_METRIC_IP:
			return -(double) VsKernels.inner_product(a, b, n);
		case VS_METRIC_COSINE:
			VsKernels.dot_norms(a, b, n, &dot, &norm_a, &norm_b);
			return VsCosineFromSums(dot, norm_a, norm_b);
		case VS_METRIC_L1:
			return (double) VsKernels.l1(a, b, n);
		case VS_METRIC_HAMMING:
			return (double) VsKernels.l2_squared(a, b, n);
	}
	return __builtin_nan("");	/* not a metric: callers pass only these */
}

#endif							/* VSDISTANCE_H */
