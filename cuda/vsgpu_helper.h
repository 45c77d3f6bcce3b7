/*-------------------------------------------------------------------------
 *
 * vsgpu_helper.h
 *	  The GPU helper's device layer: what the host program (vsgpu_helper.c,
 *	  plain C) asks of the CUDA code (vsgpu_device.cu), or of the stub that
 *	  replaces it when the toolkit is absent.
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_helper.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_HELPER_H
#define VSGPU_HELPER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C"
{
#endif

/* what the device probe found */
typedef struct VsGpuDeviceInfo
{
	char		name[256];		/* device name, or empty */
	uint64_t	total_bytes;	/* device memory */
	uint64_t	free_bytes;		/* free at the probe */
	int			major;			/* compute capability */
	int			minor;
} VsGpuDeviceInfo;

/*
 * vsgpu_device_open - find and initialise the first usable device (CUDA
 * runtime and cuBLAS).  0 on success; else -1 with a one-line reason in
 * "err" (no driver, no device, an old driver, cuBLAS not loadable, or a
 * helper built without CUDA).
 */
extern int	vsgpu_device_open(VsGpuDeviceInfo *info, char *err, size_t errlen);

/*
 * vsgpu_device_assign - for each of n vectors x (row-major, dim floats),
 * out[i] = the j minimising bias[j] + scale[j] * (x_i . c_j) over the k
 * centroids c (ties and non-finite rows: the lowest j), from one GEMM of
 * the vectors against the centroids.  Device memory stays within
 * memory_limit bytes (the vectors go in slices that fit).  0 on success;
 * else a one-line reason in "err" and -1 (out of memory: the next job may
 * fare better) or -2 (the device context is lost: the helper must exit).
 */
extern int	vsgpu_device_assign(const float *centroids, const float *bias,
								const float *scale, int k, int dim,
								const float *x, int n, int32_t *out,
								uint64_t memory_limit, char *err, size_t errlen);

/*
 * vsgpu_device_upload - copy a cluster's n rows (row-major, dim floats)
 * to the device, with their squared norms, to stay resident.  Returns an
 * opaque handle, or NULL with a one-line reason in "err" (out of memory:
 * the caller may evict others and try again).
 */
extern void *vsgpu_device_upload(const float *x, int n, int dim, char *err, size_t errlen);

/* vsgpu_device_release - free what vsgpu_device_upload allocated. */
extern void vsgpu_device_release(void *cluster);

/*
 * One cluster's share of vsgpu_device_bounds: nq queries (row-major, the
 * cluster's dim floats each) at queries + query_off, their keys at keys +
 * keys_off (nq x the cluster's rows, query-major).
 */
typedef struct VsGpuBoundsTask
{
	void	   *cluster;		/* vsgpu_device_upload's handle */
	int			metric;			/* VsMetric */
	int			nq;				/* queries, >= 1 */
	size_t		query_off;		/* floats into "queries" */
	size_t		keys_off;		/* floats into "keys" */
} VsGpuBoundsTask;

/*
 * vsgpu_device_bounds - for each task, keys[keys_off + q * n + i] = a
 * lower bound of the ordering key (VsMetric "metric": squared L2,
 * negative inner product, 1 - cosine) of row i of the task's resident
 * cluster (n rows) for its query q, from one GEMM of its queries against
 * its cluster.  The bound subtracts the worst-case FP32 rounding of that
 * computation, so the exact key (computed later on the CPU) is never
 * below it.  All tasks go to the device together, with one copy of the
 * nqueries query floats in and one of the nkeys keys out, so that a batch
 * of many small clusters waits for the device once, not once a cluster.
 * 0 on success, else -1 (or -2: context lost) with a reason in "err".
 */
extern int	vsgpu_device_bounds(const VsGpuBoundsTask *tasks, int ntasks,
								const float *queries, size_t nqueries,
								float *keys, size_t nkeys, char *err, size_t errlen);

/*
 * vsgpu_device_knn - out[i * k + j] = the k rows r != i of x (n rows,
 * row-major, dim floats) with the smallest bias[r] + scale[r] * (x_i .
 * x_r), in any order; VS_HNSW_NONE for j >= n - 1.  One GEMM of the rows
 * against themselves per slice of rows that fits memory_limit, then a
 * radix selection per row on the device.  0 on success, else -1 (or -2:
 * context lost) with a reason in "err".
 */
extern int	vsgpu_device_knn(const float *x, int n, int dim, const float *bias,
							 const float *scale, int k, uint32_t *out,
							 uint64_t memory_limit, char *err, size_t errlen);

/* vsgpu_device_used - bytes of device memory in use (for the status). */
extern uint64_t vsgpu_device_used(void);

/* vsgpu_device_close - release what vsgpu_device_open set up. */
extern void vsgpu_device_close(void);

/* vsgpu_built_with_cuda - 1 when this helper links the CUDA runtime */
extern int	vsgpu_built_with_cuda(void);

#ifdef __cplusplus
}
#endif

#endif							/* VSGPU_HELPER_H */
