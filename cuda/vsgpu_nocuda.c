/*-------------------------------------------------------------------------
 *
 * vsgpu_nocuda.c
 *	  The device layer of a helper built without the CUDA toolkit
 *	  (WITH_CUDA=no): it finds no device, and says why.  Such a helper
 *	  still serves the CPU emulation mode the tests use.
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_nocuda.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "vsgpu_helper.h"

int
vsgpu_built_with_cuda(void)
{
	return 0;
}

int
vsgpu_device_open(VsGpuDeviceInfo *info, char *err, size_t errlen)
{
	memset(info, 0, sizeof(*info));
	snprintf(err, errlen, "the GPU helper was built without CUDA");
	return -1;
}

int
vsgpu_device_assign(const float *centroids, const float *bias, const float *scale,
					int k, int dim, const float *x, int n, int32_t *out,
					uint64_t memory_limit, char *err, size_t errlen)
{
	snprintf(err, errlen, "the GPU helper was built without CUDA");
	return -1;
}

int
vsgpu_device_knn(const float *x, int n, int dim, const float *bias,
				 const float *scale, int k, uint32_t *out,
				 uint64_t memory_limit, char *err, size_t errlen)
{
	snprintf(err, errlen, "the GPU helper was built without CUDA");
	return -1;
}

void *
vsgpu_device_upload(const float *x, int n, int dim, char *err, size_t errlen)
{
	snprintf(err, errlen, "the GPU helper was built without CUDA");
	return NULL;
}

void
vsgpu_device_release(void *cluster)
{
}

int
vsgpu_device_bounds(const VsGpuBoundsTask *tasks, int ntasks, const float *queries,
					size_t nqueries, float *keys, size_t nkeys, char *err, size_t errlen)
{
	snprintf(err, errlen, "the GPU helper was built without CUDA");
	return -1;
}

uint64_t
vsgpu_device_used(void)
{
	return 0;
}

void
vsgpu_device_close(void)
{
}
