/*-------------------------------------------------------------------------
 *
 * vsgpu.h
 *	  The GPU service (src/vsgpu.c): settings and the checks index work
 *	  makes.
 *
 * IDENTIFICATION
 *	  src/vsgpu.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_H
#define VSGPU_H

#include "vsdistance.h"
#include "vsgpu_protocol.h"
#include "vshnsw.h"

/* vecstore.gpu */
typedef enum VsGpuMode
{
	VS_GPU_OFF = 0,
	VS_GPU_AUTO,
	VS_GPU_ON
} VsGpuMode;

extern int	vecstore_gpu;

/* the state of one operation's offload (VsKmeansHooks.offload_arg) */
typedef struct VsGpuOffload
{
	const char *what;			/* "CREATE INDEX": for messages */
	bool		disabled;		/* a request failed: the CPU does the rest */
	int64		jobs;			/* jobs the GPU did */
	int64		graphs;			/* of them, graphs built there */
} VsGpuOffload;

extern void VsGpuInit(void);
extern void VsGpuCheck(const char *what, bool count);
extern int	VsGpuOffloadAssign(void *arg, const float *centroids, int k, int dim,
							   VsMetric metric, const float *vectors, int n,
							   int32_t *out, float *out_dist);
extern int	VsGpuScan(VsGpuOffload *off, const char *body, int metric, int dim,
					  const float *query, int topk, int ncl, const uint64 *offsets,
					  const uint32 *counts, int32 *found, VsGpuScanHit *hits);
typedef struct VsGpuGraphRequest VsGpuGraphRequest;
extern VsGpuGraphRequest *VsGpuGraphBegin(VsGpuOffload *off, const float *vectors,
										  int n, int dim, VsMetric metric,
										  const VsHnswBuildOptions *opt, int threads,
										  Size graph_size);
extern int	VsGpuGraphEnd(VsGpuGraphRequest *req, void *graph);
extern bool VsGpuUsable(void);
extern bool VsGpuScanStart(MemoryContext cxt);
extern int	VsGpuAssignRows(int k, int dim);

#endif							/* VSGPU_H */
