/*-------------------------------------------------------------------------
 *
 * vsoffload.h
 *	  What index builds and scans may hand to an accelerator: a table of
 *	  operations that a service fills in, and the state of one operation.
 *
 * The index's phases (vsbuild.c, vsscan.c) call an accelerator only
 * through this header, never through the service's own headers or its
 * wire format.  A service registers its table in VsOffloadService from
 * _PG_init (the GPU service, src/vsgpu.c, does); without one the pointer
 * is NULL and everything runs on the CPU.  Every operation may decline
 * (return NULL or -1): the caller then does the work itself, with the
 * same result.
 *
 * Dependencies point one way: the index phases and the service both
 * include this header; neither includes the other's.
 *
 * IDENTIFICATION
 *	  src/vsoffload.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSOFFLOAD_H
#define VSOFFLOAD_H

#include "utils/palloc.h"

#include "vsdistance.h"
#include "vshnsw.h"
#include "vssegment.h"

typedef struct VsOffloadRoutine VsOffloadRoutine;

/*
 * One operation's requests (a CREATE INDEX, an index scan), from
 * VsOffloadRoutine.begin, palloc'd in the caller's memory context.
 */
typedef struct VsOffload
{
	const VsOffloadRoutine *ops;	/* the service that answers it */
	const char *what;			/* "CREATE INDEX": for messages */
	bool		disabled;		/* a request failed: the CPU does the rest */
	int64		jobs;			/* requests the service answered */
	int64		graphs;			/* of them, graphs it built */
} VsOffload;

/* a graph being built by the service, between graph_begin and graph_end */
typedef struct VsOffloadGraph VsOffloadGraph;

/* one row a scan request answers: its row in the cluster, and its key */
typedef struct VsOffloadHit
{
	uint32		row;			/* row of the cluster */
	float		key;			/* lower bound of its exact ordering key */
} VsOffloadHit;

struct VsOffloadRoutine
{
	/*
	 * begin - start an operation ("what" names it for messages).  NULL when
	 * nothing of it may go to the service (the service is off or not
	 * running in this server).  May raise an error when a setting demands
	 * the accelerator and none is usable.  "count": the operation is one
	 * whose running on the CPU is recorded (a build; scans are too many).
	 */
	VsOffload  *(*begin) (const char *what, bool count);

	/* usable - whether work may go to the service now */
	bool		(*usable) (VsOffload *off);

	/*
	 * assign_rows - how many rows an assignment should hand to "assign" at
	 * a time to make good use of the service (0: no preference).
	 */
	int			(*assign_rows) (VsOffload *off, int k, int dim);

	/*
	 * assign - VsKmeansHooks.offload_assign: the nearest of k centroids
	 * for each of n vectors ("arg" is the VsOffload).  0 when answered,
	 * -1 sends the caller to the CPU.
	 */
	int			(*assign) (void *arg, const float *centroids, int k, int dim,
						   VsMetric metric, const float *vectors, int n,
						   int32_t *out, float *out_dist);

	/*
	 * graph_begin - send one cluster's n vectors to have its HNSW graph
	 * (graph_size bytes, built with "opt") built, and return at once; the
	 * service may use up to "threads" threads.  NULL: the caller builds
	 * it.  The request lives in the current memory context; an error
	 * before graph_end abandons it.
	 */
	VsOffloadGraph *(*graph_begin) (VsOffload *off, const float *vectors, int n, int dim,
									VsMetric metric, const VsHnswBuildOptions *opt,
									int threads, Size graph_size);

	/*
	 * graph_end - wait for a graph_begin request and copy the validated
	 * graph into "graph".  0 on success, -1: the caller builds it.
	 */
	int			(*graph_end) (VsOffloadGraph *req, void *graph);

	/*
	 * scan_start - whether an approximate index scan should send its
	 * clusters to the service (load, settings).  The scan counts as open
	 * until "cxt" is reset or deleted.
	 */
	bool		(*scan_start) (VsOffload *off, MemoryContext cxt);

	/*
	 * scan - for one query, the "topk" rows with the smallest ordering
	 * keys in each of "ncl" clusters of segment file "file": offsets[i]
	 * is where cluster i's vectors start in the file, counts[i] its rows.
	 * found[i] answers go to hits + i * topk, nearest first.  0 on
	 * success; -1 sends the caller to the CPU for the rest of the scan.
	 */
	int			(*scan) (VsOffload *off, const VsSegmentId *file, VsMetric metric,
						 int dim, const float *query, int topk, int ncl,
						 const uint64 *offsets, const uint32 *counts,
						 int32 *found, VsOffloadHit *hits);
};

/* the registered service, or NULL (src/vsoffload.c) */
extern const VsOffloadRoutine *VsOffloadService;

/*
 * VsOffloadBegin - an operation with the registered service, or NULL when
 * there is none or it declines.
 */
static inline VsOffload *
VsOffloadBegin(const char *what, bool count)
{
	return VsOffloadService != NULL ? VsOffloadService->begin(what, count) : NULL;
}

#endif							/* VSOFFLOAD_H */
