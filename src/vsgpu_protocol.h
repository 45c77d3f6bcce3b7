/*-------------------------------------------------------------------------
 *
 * vsgpu_protocol.h
 *	  What the backends, the GPU service's worker and the helper program
 *	  agree on: the job layouts in the shared memory segments that carry a
 *	  request's data.
 *
 * A request travels in three hops (src/vsgpu_client.c has the whole
 * picture):
 * the backend puts its data in a dynamic shared memory segment and a line
 * naming it in a slot of the service's request ring; the worker passes the
 * line to the helper on its standard input; the helper maps the segment by
 * name (POSIX shared memory), does the work, writes the results into the
 * same segment and answers with a line.  Lines, worker -> helper:
 *
 *	ASSIGN <slot> <seq> <segment name> <token>
 *	SCAN <slot> <seq> <segment name> <token>
 *	GRAPH <slot> <seq> <segment name> <token>
 *
 * and helper -> worker: first, once,
 *
 *	READY <protocol version> <total bytes> <memory limit bytes> <device name>
 *	NODEVICE <reason>
 *
 * then for every request, after a line announcing each batch of requests
 * it took from its input together:
 *
 *	BATCH <requests>
 *	DONE <slot> <seq> OK
 *	DONE <slot> <seq> ERROR <one-line reason>
 *
 * The token is also in the job's header: a segment name that a late
 * helper opens after its backend gave up may by then name another job, and
 * the token tells them apart.
 *
 * Both sides check the protocol's version: the worker refuses a helper
 * whose READY line names another (a helper left from another install),
 * and the helper refuses a job whose header does.  Change a layout below
 * or a line above, and VSGPU_PROTOCOL_VERSION goes up.
 *
 * This header is plain C (no postgres.h), included by the GPU service's
 * client (src/vsgpu_client.c), its worker (src/vsgpu_worker.c) and the
 * helper (cuda/); no other file may include it.
 *
 * IDENTIFICATION
 *	  src/vsgpu_protocol.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_PROTOCOL_H
#define VSGPU_PROTOCOL_H

#include <stdint.h>

/* the version of the lines and layouts below */
#define VSGPU_PROTOCOL_VERSION	3

/*
 * The start of every job: what it is, the protocol it was written for, and
 * the token of the request line that carries it.
 */
typedef struct VsGpuJobHead
{
	uint32_t	magic;			/* VSGPU_*_MAGIC */
	uint32_t	version;		/* VSGPU_PROTOCOL_VERSION */
	uint64_t	token;			/* the request line's token */
} VsGpuJobHead;

/* "VSGA": an assignment job */
#define VSGPU_ASSIGN_MAGIC		0x56534741u

/* arrays in a job segment start on this boundary */
#define VSGPU_ALIGN				64

/*
 * ASSIGN: the nearest of k centroids for each of n vectors, as
 * VsKmeansAssign (src/vskmeans.h) computes it.  The segment holds this
 * header, then the arrays at the offsets VsGpuAssignLayout gives.  The
 * backend fills the header and the inputs; the helper writes out[] and,
 * when want_dist, dist[] (the exact distance to the chosen centroid).
 */
typedef struct VsGpuAssignJob
{
	VsGpuJobHead head;			/* VSGPU_ASSIGN_MAGIC */
	int32_t		metric;			/* VsMetric: 1 L2, 2 IP, 3 cosine */
	int32_t		k;
	int32_t		dim;
	int32_t		n;
	int32_t		want_dist;
	int32_t		kernel_path;	/* VsKernelPath of the backend (emulation) */
	uint64_t	centroids_off;	/* float[k * dim] */
	uint64_t	vectors_off;	/* float[n * dim] */
	uint64_t	out_off;		/* int32[n] */
	uint64_t	dist_off;		/* float[n] */
	uint64_t	total;			/* bytes of the whole job */
} VsGpuAssignJob;

static inline uint64_t
vsgpu_align(uint64_t x)
{
	return (x + VSGPU_ALIGN - 1) & ~((uint64_t) VSGPU_ALIGN - 1);
}

/*
 * VsGpuAssignLayout - fill the offsets and total of a job from k, dim and
 * n (the backend to build it, the helper to check it).
 */
static inline void
VsGpuAssignLayout(VsGpuAssignJob *job)
{
	uint64_t	off = vsgpu_align(sizeof(VsGpuAssignJob));

	job->centroids_off = off;
	off = vsgpu_align(off + (uint64_t) job->k * job->dim * sizeof(float));
	job->vectors_off = off;
	off = vsgpu_align(off + (uint64_t) job->n * job->dim * sizeof(float));
	job->out_off = off;
	off = vsgpu_align(off + (uint64_t) job->n * sizeof(int32_t));
	job->dist_off = off;
	off = vsgpu_align(off + (uint64_t) job->n * sizeof(float));
	job->total = off;
}

/* "VSGS": a scan job */
#define VSGPU_SCAN_MAGIC		0x56534753u

/* longest segment file path a scan job carries */
#define VSGPU_PATH_LEN			256

/*
 * SCAN: for one query, the "topk" rows of each listed cluster of an index
 * segment file with the smallest distance keys (squared L2, negative inner
 * product, 1 - cosine: the index scan's ordering keys).  The helper reads
 * the clusters' vectors from the file itself (its working directory is the
 * data directory) and keeps them resident, so a query moves only itself
 * and its answers.  Each answer's key is a lower bound of the exact key
 * the backend computes (the GPU's rounding is bounded and subtracted; the
 * emulation's keys are exact, rounded down to float), so the backend can
 * rerank the rows exactly and still return them in exact order.
 */
typedef struct VsGpuScanCluster
{
	uint64_t	offset;			/* of the cluster's vectors in the file */
	uint32_t	count;			/* rows */
	int32_t		found;			/* out: answers written, <= topk */
} VsGpuScanCluster;

typedef struct VsGpuScanHit
{
	uint32_t	row;			/* row of the cluster */
	float		key;			/* lower bound of its ordering key */
} VsGpuScanHit;

typedef struct VsGpuScanJob
{
	VsGpuJobHead head;			/* VSGPU_SCAN_MAGIC */
	int32_t		kernel_path;	/* VsKernelPath of the backend (emulation) */
	int32_t		metric;			/* VsMetric */
	int32_t		dim;
	int32_t		topk;
	int32_t		nclusters;
	int32_t		reserved;
	uint64_t	file_ino;		/* the file the backend verified ... */
	uint64_t	file_size;		/* ... (a rewritten file is another inode) */
	char		file[VSGPU_PATH_LEN];	/* relative to the data directory */
	uint64_t	query_off;		/* float[dim] */
	uint64_t	clusters_off;	/* VsGpuScanCluster[nclusters] */
	uint64_t	hits_off;		/* VsGpuScanHit[nclusters * topk], per
								 * cluster nearest first */
	uint64_t	total;
} VsGpuScanJob;

static inline void
VsGpuScanLayout(VsGpuScanJob *job)
{
	uint64_t	off = vsgpu_align(sizeof(VsGpuScanJob));

	job->query_off = off;
	off = vsgpu_align(off + (uint64_t) job->dim * sizeof(float));
	job->clusters_off = off;
	off = vsgpu_align(off + (uint64_t) job->nclusters * sizeof(VsGpuScanCluster));
	job->hits_off = off;
	off = vsgpu_align(off + (uint64_t) job->nclusters * job->topk * sizeof(VsGpuScanHit));
	job->total = off;
}

/* "VSGG": a graph job */
#define VSGPU_GRAPH_MAGIC		0x56534747u

/*
 * GRAPH: the HNSW graph of one cluster (src/vshnsw.h), built with the
 * options given (m, ef_construction, seed) from neighbour lists: the
 * helper computes each row's k nearest others (one GEMM of the cluster
 * against itself and a selection per row on the device; exact on the CPU
 * in emulation) and builds the graph from them (VsHnswBuildOptions.
 * neighbours) on up to "threads" CPU threads of its own.  It writes the
 * serialized graph, graph_size bytes (VsHnswSerializedSize of these
 * options), at graph_off.  The backend validates the graph
 * (VsHnswValidate) before it writes it into the index, so a wrong answer
 * can cost recall, never a bad read.
 */
typedef struct VsGpuGraphJob
{
	VsGpuJobHead head;			/* VSGPU_GRAPH_MAGIC */
	int32_t		kernel_path;	/* VsKernelPath of the backend (emulation) */
	int32_t		metric;			/* VsMetric */
	int32_t		dim;
	int32_t		n;
	int32_t		m;				/* the graph's options */
	int32_t		ef_construction;
	int32_t		k;				/* neighbour-list length */
	int32_t		threads;		/* CPU threads the build may use, >= 1 */
	int32_t		without_norms;	/* VsHnswBuildOptions.without_norms, 0 or 1 */
	int32_t		unused;			/* zero */
	uint64_t	seed;
	uint64_t	graph_size;		/* bytes of the serialized graph */
	uint64_t	vectors_off;	/* float[n * dim] */
	uint64_t	graph_off;		/* graph_size bytes */
	uint64_t	total;
} VsGpuGraphJob;

static inline void
VsGpuGraphLayout(VsGpuGraphJob *job)
{
	uint64_t	off = vsgpu_align(sizeof(VsGpuGraphJob));

	job->vectors_off = off;
	off = vsgpu_align(off + (uint64_t) job->n * job->dim * sizeof(float));
	job->graph_off = off;
	off = vsgpu_align(off + job->graph_size);
	job->total = off;
}

#endif							/* VSGPU_PROTOCOL_H */
