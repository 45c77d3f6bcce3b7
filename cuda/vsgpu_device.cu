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
 * Assignment (vsgpu_device_assign): the distance matrix of a slice of
 * vectors against all centroids is one cuBLAS SGEMM (FP32, no TF32: the
 * ranking must match the CPU's up to near-ties); a warp per vector then
 * takes the arg-min of bias + scale * dot, lowest index on ties, as the
 * CPU kernels rank (src/vskmeans.c).  Device buffers grow to the largest
 * job seen and stay allocated for the next one.
 *
 * Neighbour lists (vsgpu_device_knn): a cluster's rows against themselves
 * in one SGEMM per slice of rows, then a block per row selects its k
 * smallest keys exactly by radix selection (knn_select); the graph of the
 * cluster is then built from those lists on the host (src/vshnsw.c).
 *
 * Resident clusters (vsgpu_device_upload/_bounds): a cluster's rows and
 * their squared norms stay in device memory; the helper decides which
 * (LRU within vecstore.gpu_memory).  A batch of queries against one
 * cluster is one SGEMM (queries x rows), then a kernel turns each dot
 * product into the ordering key minus its worst-case FP32 error, so that
 * the backend's exact rerank can keep the exact order.  All the clusters
 * of a batch are queued together and waited for once.
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_device.cu
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#include <cublas_v2.h>

#include "vsgpu_helper.h"

static cublasHandle_t handle;
static int	opened;

/* device buffers, kept between jobs (grow only) */
typedef struct DevBuf
{
	void	   *ptr;
	size_t		size;
} DevBuf;

static DevBuf d_centroids,
			d_bias,
			d_scale,
			d_x,
			d_g,
			d_out;

/*
 * fail - describe a CUDA error; -2 for an error that leaves the context
 * unusable (the helper then exits and the worker starts a fresh one), -1
 * for one the next job may not meet (out of memory).
 */
static int
fail(cudaError_t rc, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(rc));
	return rc == cudaErrorMemoryAllocation ? -1 : -2;
}

/* reserve - make b hold at least size bytes */
static cudaError_t
reserve(DevBuf *b, size_t size)
{
	cudaError_t rc;

	if (b->size >= size)
		return cudaSuccess;
	if (b->ptr)
		cudaFree(b->ptr);
	b->ptr = NULL;
	b->size = 0;
	rc = cudaMalloc(&b->ptr, size);
	if (rc == cudaSuccess)
		b->size = size;
	else
		(void) cudaGetLastError();	/* clear a non-sticky allocation error */
	return rc;
}

static void
release(DevBuf *b)
{
	if (b->ptr)
		cudaFree(b->ptr);
	b->ptr = NULL;
	b->size = 0;
}

/*
 * argmin_rows - one warp per row of g (rows x k, row-major): out[row] =
 * the j minimising bias[j] + scale[j] * g[row][j]; ties and rows with no
 * finite value go to the lowest j (0).
 */
__global__ void
argmin_rows(const float *g, const float *bias, const float *scale, int k,
			int rows, int32_t *out)
{
	int			row = (int) ((blockIdx.x * (size_t) blockDim.x + threadIdx.x) / 32);
	int			lane = threadIdx.x & 31;
	const float *gr;
	float		best = INFINITY;
	int			bi = k;

	if (row >= rows)
		return;
	gr = g + (size_t) row * k;
	for (int j = lane; j < k; j += 32)
	{
		float		v = fmaf(scale[j], gr[j], bias[j]);

		if (v < best)
		{
			best = v;
			bi = j;
		}
	}
	for (int off = 16; off > 0; off >>= 1)
	{
		float		ov = __shfl_down_sync(0xffffffffu, best, off);
		int			oi = __shfl_down_sync(0xffffffffu, bi, off);

		if (ov < best || (ov == best && oi < bi))
		{
			best = ov;
			bi = oi;
		}
	}
	if (lane == 0)
		out[row] = (bi < k) ? bi : 0;
}

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
	/* FP32 throughout: the scan's error bounds assume it (no TF32) */
	cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);
	opened = 1;
	snprintf(info->name, sizeof(info->name), "%s", prop.name);
	info->total_bytes = totalb;
	info->free_bytes = freeb;
	info->major = prop.major;
	info->minor = prop.minor;
	return 0;
}

extern "C" int
vsgpu_device_assign(const float *centroids, const float *bias, const float *scale,
					int k, int dim, const float *x, int n, int32_t *out,
					uint64_t memory_limit, char *err, size_t errlen)
{
	const float one = 1.0f,
				zero = 0.0f;
	size_t		cbytes = (size_t) k * dim * sizeof(float);
	size_t		per_row = ((size_t) dim + k + 1) * sizeof(float);
	size_t		budget;
	size_t		slice;
	cudaError_t rc;

	if (!opened)
	{
		snprintf(err, errlen, "no device is open");
		return -1;
	}
	/* what the vectors, the distance matrix and the answers may take */
	budget = (size_t) 1 << 30;
	if (memory_limit > 0)
	{
		size_t		fixed = cbytes + 2 * (size_t) k * sizeof(float);
		size_t		avail = memory_limit > fixed ? memory_limit - fixed : 0;

		if (avail < budget)
			budget = avail;
	}
	slice = budget / per_row;
	if (slice < 1)
		slice = 1;
	if (slice > (size_t) n)
		slice = n;

	if ((rc = reserve(&d_centroids, cbytes)) != cudaSuccess ||
		(rc = reserve(&d_bias, k * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_scale, k * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_x, slice * dim * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_g, slice * k * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_out, slice * sizeof(int32_t))) != cudaSuccess)
		return fail(rc, "allocating device memory", err, errlen);

	if ((rc = cudaMemcpy(d_centroids.ptr, centroids, cbytes, cudaMemcpyHostToDevice)) != cudaSuccess ||
		(rc = cudaMemcpy(d_bias.ptr, bias, k * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess ||
		(rc = cudaMemcpy(d_scale.ptr, scale, k * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess)
		return fail(rc, "copying centroids", err, errlen);

	for (size_t first = 0; first < (size_t) n; first += slice)
	{
		int			rows = (int) (((size_t) n - first) < slice ? (size_t) n - first : slice);
		cublasStatus_t st;
		unsigned	blocks = (unsigned) (((size_t) rows * 32 + 255) / 256);

		rc = cudaMemcpy(d_x.ptr, x + first * dim, (size_t) rows * dim * sizeof(float),
						cudaMemcpyHostToDevice);
		if (rc != cudaSuccess)
			return fail(rc, "copying vectors", err, errlen);
		/* g^T (k x rows, column-major) = C (k x dim) * X^T (dim x rows) */
		st = cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, k, rows, dim, &one,
						 (const float *) d_centroids.ptr, dim,
						 (const float *) d_x.ptr, dim, &zero,
						 (float *) d_g.ptr, k);
		if (st != CUBLAS_STATUS_SUCCESS)
		{
			snprintf(err, errlen, "cublasSgemm failed with status %d", (int) st);
			return st == CUBLAS_STATUS_ALLOC_FAILED ? -1 : -2;
		}
		argmin_rows<<<blocks, 256>>>((const float *) d_g.ptr, (const float *) d_bias.ptr,
									 (const float *) d_scale.ptr, k, rows,
									 (int32_t *) d_out.ptr);
		rc = cudaGetLastError();
		if (rc == cudaSuccess)
			rc = cudaMemcpy(out + first, d_out.ptr, (size_t) rows * sizeof(int32_t),
							cudaMemcpyDeviceToHost);
		if (rc != cudaSuccess)
			return fail(rc, "arg-min kernel", err, errlen);
	}
	return 0;
}

/* a resident cluster */
typedef struct DevCluster
{
	float	   *x;				/* n x dim */
	float	   *norms;			/* n squared norms */
	int			n;
	int			dim;
} DevCluster;

static DevBuf d_q,
			d_qn,
			d_keys;

/* row_norms - norms[i] = ||x_i||^2, one warp per row */
__global__ void
row_norms(const float *x, int n, int dim, float *norms)
{
	int			row = (int) ((blockIdx.x * (size_t) blockDim.x + threadIdx.x) / 32);
	int			lane = threadIdx.x & 31;
	float		s = 0.0f;

	if (row >= n)
		return;
	for (int d = lane; d < dim; d += 32)
	{
		float		v = x[(size_t) row * dim + d];

		s = fmaf(v, v, s);
	}
	for (int off = 16; off > 0; off >>= 1)
		s += __shfl_down_sync(0xffffffffu, s, off);
	if (lane == 0)
		norms[row] = s;
}

/*
 * lower_keys - g holds dot products, column-major n x nq (row i of query q
 * at g[q * n + i]); turn each into its ordering key minus "slack" times
 * the scale of its rounding error (see vsgpu_helper.h).
 */
__global__ void
lower_keys(float *g, const float *norms, const float *qnorms, int n, int nq,
		   int metric, float slack)
{
	size_t		idx = blockIdx.x * (size_t) blockDim.x + threadIdx.x;
	int			i,
				q;
	float		dot,
				xn,
				qn,
				key;

	if (idx >= (size_t) n * nq)
		return;
	i = (int) (idx % n);
	q = (int) (idx / n);
	dot = g[idx];
	xn = norms[i];
	qn = qnorms[q];
	if (metric == 1)			/* L2: squared distance */
		key = (xn + qn - 2.0f * dot) - slack * (xn + qn);
	else if (metric == 2)		/* inner product: its negative */
		key = -dot - slack * sqrtf(xn * qn);
	else
	{
		/* cosine: 1 - similarity, NaN for a zero vector as on the CPU */
		float		denom = sqrtf(xn) * sqrtf(qn);
		float		sim = dot / denom;

		if (denom > 0.0f)
			sim = fminf(1.0f, fmaxf(-1.0f, sim));
		key = (1.0f - sim) - slack;
	}
	g[idx] = key;
}

extern "C" void *
vsgpu_device_upload(const float *x, int n, int dim, char *err, size_t errlen)
{
	DevCluster *c;
	cudaError_t rc;

	if (!opened)
	{
		snprintf(err, errlen, "no device is open");
		return NULL;
	}
	c = (DevCluster *) calloc(1, sizeof(DevCluster));
	if (c == NULL)
	{
		snprintf(err, errlen, "out of host memory");
		return NULL;
	}
	c->n = n;
	c->dim = dim;
	rc = cudaMalloc((void **) &c->x, (size_t) n * dim * sizeof(float));
	if (rc == cudaSuccess)
		rc = cudaMalloc((void **) &c->norms, (size_t) n * sizeof(float));
	if (rc == cudaSuccess)
		rc = cudaMemcpy(c->x, x, (size_t) n * dim * sizeof(float), cudaMemcpyHostToDevice);
	if (rc == cudaSuccess)
	{
		row_norms<<<(unsigned) (((size_t) n * 32 + 255) / 256), 256>>>(c->x, n, dim, c->norms);
		rc = cudaGetLastError();
	}
	if (rc != cudaSuccess)
	{
		(void) cudaGetLastError();
		snprintf(err, errlen, "uploading a cluster: %s", cudaGetErrorString(rc));
		vsgpu_device_release(c);
		return NULL;
	}
	return c;
}

extern "C" void
vsgpu_device_release(void *cluster)
{
	DevCluster *c = (DevCluster *) cluster;

	if (c == NULL)
		return;
	if (c->x)
		cudaFree(c->x);
	if (c->norms)
		cudaFree(c->norms);
	free(c);
}

extern "C" int
vsgpu_device_bounds(const VsGpuBoundsTask *tasks, int ntasks, const float *queries,
					size_t nqueries, float *keys, size_t nkeys, char *err, size_t errlen)
{
	const float one = 1.0f,
				zero = 0.0f;
	float	   *qn;
	size_t		nnorms = 0;
	cudaError_t rc;

	if (!opened)
	{
		snprintf(err, errlen, "no device is open");
		return -1;
	}
	if (ntasks < 1)
		return 0;
	/* the queries' squared norms, in task order (in double, as the CPU) */
	for (int t = 0; t < ntasks; t++)
		nnorms += tasks[t].nq;
	qn = (float *) malloc(sizeof(float) * (nnorms ? nnorms : 1));
	if (qn == NULL)
	{
		snprintf(err, errlen, "out of host memory");
		return -1;
	}
	nnorms = 0;
	for (int t = 0; t < ntasks; t++)
	{
		const DevCluster *c = (const DevCluster *) tasks[t].cluster;

		for (int q = 0; q < tasks[t].nq; q++)
		{
			const float *v = queries + tasks[t].query_off + (size_t) q * c->dim;
			double		s = 0.0;

			for (int d = 0; d < c->dim; d++)
				s += (double) v[d] * v[d];
			qn[nnorms++] = (float) s;
		}
	}
	if ((rc = reserve(&d_q, nqueries * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_qn, nnorms * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_keys, nkeys * sizeof(float))) != cudaSuccess)
	{
		free(qn);
		return fail(rc, "allocating device memory", err, errlen);
	}
	rc = cudaMemcpy(d_q.ptr, queries, nqueries * sizeof(float), cudaMemcpyHostToDevice);
	if (rc == cudaSuccess)
		rc = cudaMemcpy(d_qn.ptr, qn, nnorms * sizeof(float), cudaMemcpyHostToDevice);
	free(qn);
	if (rc != cudaSuccess)
		return fail(rc, "copying queries", err, errlen);

	/* every task's GEMM and keys, queued on the one stream */
	nnorms = 0;
	for (int t = 0; t < ntasks; t++)
	{
		const VsGpuBoundsTask *task = &tasks[t];
		const DevCluster *c = (const DevCluster *) task->cluster;
		float		slack = 4.0f * (float) (c->dim + 4) * FLT_EPSILON;
		size_t		cells = (size_t) c->n * task->nq;
		float	   *k = (float *) d_keys.ptr + task->keys_off;
		cublasStatus_t st;

		/* keys^T (n x nq, column-major) = X (n x dim) * Q^T (dim x nq) */
		st = cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, c->n, task->nq, c->dim, &one,
						 c->x, c->dim, (const float *) d_q.ptr + task->query_off, c->dim,
						 &zero, k, c->n);
		if (st != CUBLAS_STATUS_SUCCESS)
		{
			snprintf(err, errlen, "cublasSgemm failed with status %d", (int) st);
			return st == CUBLAS_STATUS_ALLOC_FAILED ? -1 : -2;
		}
		lower_keys<<<(unsigned) ((cells + 255) / 256), 256>>>(k, c->norms,
															(const float *) d_qn.ptr + nnorms,
															c->n, task->nq, task->metric, slack);
		if ((rc = cudaGetLastError()) != cudaSuccess)
			return fail(rc, "computing keys", err, errlen);
		nnorms += task->nq;
	}
	/* the one wait: the copy back follows every launch on the stream */
	rc = cudaMemcpy(keys, d_keys.ptr, nkeys * sizeof(float), cudaMemcpyDeviceToHost);
	if (rc != cudaSuccess)
		return fail(rc, "computing keys", err, errlen);
	return 0;
}

/*
 * order_key - a float's bits as an unsigned key in the float order
 * (negatives flipped, positives with the sign bit set); NaN last.
 */
__device__ __forceinline__ uint32_t
order_key(float v)
{
	uint32_t	u = __float_as_uint(v);

	if (v != v)
		return 0xFFFFFFFFu;
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

#define KNN_THREADS		256
#define KNN_WARPS		(KNN_THREADS / 32)

/*
 * knn_select - one block of KNN_THREADS per row of g (rows x n,
 * row-major; row r is vector first + r): out[r * k ..] = the k columns
 * j != first + r with the smallest bias[j] + scale[j] * g[r][j].
 *
 * An exact radix selection: four passes of an 8-bit histogram (in shared
 * memory) over the row's keys narrow down the k-th smallest key T and how
 * many keys equal to it are needed; one more pass writes the columns
 * below T, then the first needed ones equal to T, in column order (warp
 * ballots and per-warp counts give each its place), so the lists do not
 * depend on thread timing.  Padded with 0xFFFFFFFF past n - 1.
 */
__global__ void
knn_select(const float *g, const float *bias, const float *scale, int n, int k,
		   int first, uint32_t *out)
{
	__shared__ unsigned hist[256];
	__shared__ uint32_t s_prefix;
	__shared__ unsigned s_left;
	__shared__ unsigned w_less[KNN_WARPS],
				w_eq[KNN_WARPS];
	int			row = blockIdx.x;
	int			self = first + row;
	int			tid = threadIdx.x;
	int			lane = tid & 31;
	int			warp = tid >> 5;
	const float *gr = g + (size_t) row * n;
	uint32_t   *o = out + (size_t) row * k;
	int			want = (n - 1 < k) ? n - 1 : k;
	uint32_t	prefix = 0,
				mask = 0;
	unsigned	left = (unsigned) want;
	unsigned	base_less = 0,
				base_eq = 0,
				nless;

	for (int j = want + tid; j < k; j += KNN_THREADS)
		o[j] = 0xFFFFFFFFu;
	if (want <= 0)
		return;

	for (int shift = 24; shift >= 0; shift -= 8)
	{
		for (int i = tid; i < 256; i += KNN_THREADS)
			hist[i] = 0;
		__syncthreads();
		for (int j = tid; j < n; j += KNN_THREADS)
		{
			uint32_t	key;

			if (j == self)
				continue;
			key = order_key(fmaf(scale[j], gr[j], bias[j]));
			if ((key & mask) == prefix)
				atomicAdd(&hist[(key >> shift) & 255u], 1u);
		}
		__syncthreads();
		if (tid == 0)
		{
			unsigned	cum = 0;
			int			b;

			/* the keys matching the prefix number at least "left" */
			for (b = 0; b < 255; b++)
			{
				if (cum + hist[b] >= left)
					break;
				cum += hist[b];
			}
			s_prefix = prefix | ((uint32_t) b << shift);
			s_left = left - cum;
		}
		__syncthreads();
		prefix = s_prefix;
		left = s_left;
		mask |= 0xFFu << shift;
		__syncthreads();
	}

	/* prefix is the k-th smallest key; "left" of the keys equal to it go */
	nless = (unsigned) want - left;
	for (int chunk = 0; chunk < n; chunk += KNN_THREADS)
	{
		int			j = chunk + tid;
		uint32_t	key = 0xFFFFFFFFu;
		int			valid = (j < n && j != self);
		int			isless,
					iseq;
		unsigned	bl,
					be,
					lt = (1u << lane) - 1u,
					off_less = base_less,
					off_eq = base_eq;

		if (valid)
			key = order_key(fmaf(scale[j], gr[j], bias[j]));
		isless = valid && key < prefix;
		iseq = valid && key == prefix;
		bl = __ballot_sync(0xffffffffu, isless);
		be = __ballot_sync(0xffffffffu, iseq);
		if (lane == 0)
		{
			w_less[warp] = __popc(bl);
			w_eq[warp] = __popc(be);
		}
		__syncthreads();
		for (int w = 0; w < warp; w++)
		{
			off_less += w_less[w];
			off_eq += w_eq[w];
		}
		if (isless)
			o[off_less + __popc(bl & lt)] = (uint32_t) j;
		if (iseq && off_eq + __popc(be & lt) < left)
			o[nless + off_eq + __popc(be & lt)] = (uint32_t) j;
		for (int w = 0; w < KNN_WARPS; w++)
		{
			base_less += w_less[w];
			base_eq += w_eq[w];
		}
		__syncthreads();
	}
}

extern "C" int
vsgpu_device_knn(const float *x, int n, int dim, const float *bias,
				 const float *scale, int k, uint32_t *out,
				 uint64_t memory_limit, char *err, size_t errlen)
{
	const float one = 1.0f,
				zero = 0.0f;
	size_t		xbytes = (size_t) n * dim * sizeof(float);
	size_t		per_row = ((size_t) n + k) * sizeof(float);
	size_t		budget = (size_t) 1 << 30;
	size_t		slice;
	cudaError_t rc;

	if (!opened)
	{
		snprintf(err, errlen, "no device is open");
		return -1;
	}
	if (memory_limit > 0)
	{
		size_t		fixed = xbytes + 2 * (size_t) n * sizeof(float);
		size_t		avail = memory_limit > fixed ? memory_limit - fixed : 0;

		if (avail < budget)
			budget = avail;
	}
	slice = budget / per_row;
	if (slice < 1)
	{
		snprintf(err, errlen, "a cluster of %d rows does not fit vecstore.gpu_memory", n);
		return -1;
	}
	if (slice > (size_t) n)
		slice = n;

	if ((rc = reserve(&d_x, xbytes)) != cudaSuccess ||
		(rc = reserve(&d_bias, n * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_scale, n * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_g, slice * n * sizeof(float))) != cudaSuccess ||
		(rc = reserve(&d_out, slice * k * sizeof(uint32_t))) != cudaSuccess)
		return fail(rc, "allocating device memory", err, errlen);
	if ((rc = cudaMemcpy(d_x.ptr, x, xbytes, cudaMemcpyHostToDevice)) != cudaSuccess ||
		(rc = cudaMemcpy(d_bias.ptr, bias, n * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess ||
		(rc = cudaMemcpy(d_scale.ptr, scale, n * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess)
		return fail(rc, "copying the cluster", err, errlen);

	for (size_t first = 0; first < (size_t) n; first += slice)
	{
		int			rows = (int) (((size_t) n - first) < slice ? (size_t) n - first : slice);
		cublasStatus_t st;

		/* g^T (n x rows, column-major) = X (n x dim) * X_slice^T (dim x rows) */
		st = cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, rows, dim, &one,
						 (const float *) d_x.ptr, dim,
						 (const float *) d_x.ptr + first * dim, dim, &zero,
						 (float *) d_g.ptr, n);
		if (st != CUBLAS_STATUS_SUCCESS)
		{
			snprintf(err, errlen, "cublasSgemm failed with status %d", (int) st);
			return st == CUBLAS_STATUS_ALLOC_FAILED ? -1 : -2;
		}
		knn_select<<<rows, KNN_THREADS>>>((const float *) d_g.ptr,
										  (const float *) d_bias.ptr,
										  (const float *) d_scale.ptr, n, k,
										  (int) first, (uint32_t *) d_out.ptr);
		rc = cudaGetLastError();
		if (rc == cudaSuccess)
			rc = cudaMemcpy(out + first * k, d_out.ptr, (size_t) rows * k * sizeof(uint32_t),
							cudaMemcpyDeviceToHost);
		if (rc != cudaSuccess)
			return fail(rc, "neighbour selection kernel", err, errlen);
	}
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
		release(&d_centroids);
		release(&d_bias);
		release(&d_scale);
		release(&d_x);
		release(&d_g);
		release(&d_out);
		release(&d_q);
		release(&d_qn);
		release(&d_keys);
		cublasDestroy(handle);
		opened = 0;
	}
}
