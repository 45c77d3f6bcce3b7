/*-------------------------------------------------------------------------
 *
 * vsgpu_device.cu
 *	  The CUDA side of the GPU helper: device discovery and set-up.
 *
 * Only the helper program links this file (and with it the CUDA runtime
 * and cuBLAS); vecstore.so never does, so the extension loads on machines
 * without the toolkit or a driver.  Compiled by nvcc for sm_80 and sm_90,
 * with PTX for newer devices (Makefile).
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_device.cu
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime.h>
#include <cublas_v2.h>

#include "vsgpu_helper.h"

static cublasHandle_t handle;
static int	opened;

extern "C" int
vsgpu_built_with_cuda(void)
{
	return 1;
}

extern "C" int
vsgpu_device_open(VsGpuDeviceInfo *info, char *err, size_t errlen)
{
	int			count = 0;
	int			driver = 0;
	cudaError_t rc;
	cudaDeviceProp prop;
	size_t		freeb = 0,
				totalb = 0;

	memset(info, 0, sizeof(*info));
	rc = cudaGetDeviceCount(&count);
	if (rc != cudaSuccess)
	{
		cudaDriverGetVersion(&driver);
		if (driver == 0)
			snprintf(err, errlen, "no NVIDIA driver (%s)", cudaGetErrorString(rc));
		else
			snprintf(err, errlen, "driver %d.%d: %s", driver / 1000, (driver % 1000) / 10,
					 cudaGetErrorString(rc));
		return -1;
	}
	if (count < 1)
	{
		snprintf(err, errlen, "no CUDA device");
		return -1;
	}
	rc = cudaSetDevice(0);
	if (rc == cudaSuccess)
		rc = cudaGetDeviceProperties(&prop, 0);
	if (rc == cudaSuccess)
		rc = cudaMemGetInfo(&freeb, &totalb);
	if (rc != cudaSuccess)
	{
		snprintf(err, errlen, "device 0: %s", cudaGetErrorString(rc));
		return -1;
	}
	if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS)
	{
		snprintf(err, errlen, "cuBLAS could not be initialised");
		return -1;
	}
	opened = 1;
	snprintf(info->name, sizeof(info->name), "%s", prop.name);
	info->total_bytes = totalb;
	info->free_bytes = freeb;
	info->major = prop.major;
	info->minor = prop.minor;
	return 0;
}

extern "C" uint64_t
vsgpu_device_used(void)
{
	size_t		freeb = 0,
				totalb = 0;

	if (!opened || cudaMemGetInfo(&freeb, &totalb) != cudaSuccess)
		return 0;
	return (uint64_t) (totalb - freeb);
}

extern "C" void
vsgpu_device_close(void)
{
	if (opened)
	{
		cublasDestroy(handle);
		opened = 0;
	}
}
