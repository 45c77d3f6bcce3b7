/*-------------------------------------------------------------------------
 *
 * vsgpu_client.c
 *	  The GPU service seen from a backend: the offload operations of
 *	  vsoffload.h, carried as requests through the ring to the helper.
 *
 * The index reaches this file only through the table at its end
 * (VsGpuOffloadRoutine, registered as VsOffloadService), and names
 * segment files by relfilenode and generation (VsSegmentId); the job
 * layouts (vsgpu_protocol.h) stay inside the service.
 *
 * Requests.  A backend puts a job's data in a dynamic shared memory
 * segment (POSIX: the helper maps it by name), takes a free slot of the
 * ring in VsGpuShared, sets the worker's latch and waits on its own, up to
 * vecstore.gpu_timeout.  The worker sends queued slots to a ready helper
 * as lines (vsgpu_protocol.h) and, on the helper's DONE line, marks
 * the slot answered and sets the backend's latch.  A helper that dies
 * fails its outstanding slots at once; a backend that stops waiting
 * (timeout, cancel) withdraws a queued slot or abandons a sent one, whose
 * late answer the worker then drops.  Every failure sends the work back to
 * the CPU.  What goes to the GPU: the nearest-centroid searches of CREATE
 * INDEX (k-means rounds and row assignment, gpu_assign) and its clusters'
 * graphs (graph_begin/graph_end), and the probed clusters of approximate
 * index scans (gpu_scan), which the helper keeps resident and answers in
 * batches grouped by cluster.
 *
 * IDENTIFICATION
 *	  src/vsgpu_client.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/dsm.h"
#include "storage/dsm_impl.h"
#include "utils/timestamp.h"

#include "vsgpu_internal.h"
#include "vsgpu_protocol.h"

/*
 * Bytes of one transfer segment: the centroids and a slice of vectors of
 * an assignment job.  Small enough for a container's default /dev/shm
 * (64 MB) with the server's own segments beside it.
 */
#define VS_GPU_SEGMENT_BYTES	((Size) 8 * 1024 * 1024)

/*
 * Assignments smaller than this many multiply-adds stay on the CPU: they
 * take there (about 0.3 ms on one core) what the round trip through the
 * worker and the helper costs.
 */
#define VS_GPU_MIN_ASSIGN_WORK	((double) (1 << 22))

/*
 * A cluster whose graph job (its vectors and its graph) would take more
 * than this builds its graph on the CPU.  The job must fit /dev/shm twice
 * over (job_segment checks); 1 GB is a cluster of about 1.5 million
 * 128-dimensional rows.
 */
#define VS_GPU_MAX_GRAPH_BYTES	((Size) 1024 * 1024 * 1024)

/*
 * gpu_check - called where index work could use the GPU ("what" names
 * it).  Under vecstore.gpu = on, an error when no GPU is usable; under
 * auto, "count" records that the work ran on the CPU, and why.
 */
static void
gpu_check(const char *what, bool count)
{
	VsGpuState state;
	char		error[256];

	/* under auto, only counted work needs the shared state: scans skip it */
	if (vecstore_gpu == VS_GPU_OFF || (vecstore_gpu == VS_GPU_AUTO && !count))
		return;
	if (vs_gpu_shared == NULL)
	{
		if (vecstore_gpu == VS_GPU_ON)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("vecstore.gpu is \"on\" but the GPU service is not running"),
					 errdetail("The GPU service starts only when vecstore is in shared_preload_libraries."),
					 errhint("Add vecstore to shared_preload_libraries, or set vecstore.gpu to \"auto\".")));
		return;
	}

	SpinLockAcquire(&vs_gpu_shared->mutex);
	state = vs_gpu_shared->state;
	strlcpy(error, vs_gpu_shared->last_error, sizeof(error));
	if (state != VS_GPU_STATE_RUNNING && count && vecstore_gpu == VS_GPU_AUTO)
	{
		vs_gpu_shared->fallbacks++;
		snprintf(vs_gpu_shared->fallback_reason, sizeof(vs_gpu_shared->fallback_reason),
				 "%s ran on the CPU: the GPU service is \"%s\"", what, VsGpuStateNames[state]);
	}
	SpinLockRelease(&vs_gpu_shared->mutex);

	if (state != VS_GPU_STATE_RUNNING && vecstore_gpu == VS_GPU_ON)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vecstore.gpu is \"on\" but no GPU is usable for %s", what),
				 errdetail("The GPU service is \"%s\"%s%s.", VsGpuStateNames[state],
						   error[0] ? ": " : "", error),
				 errhint("Set vecstore.gpu to \"auto\" to run on the CPU when no GPU is usable.")));
}

/* ---- requests from backends ---- */

/*
 * gpu_usable - whether work may go to the GPU now: vecstore.gpu is not
 * off and the service has a running helper.
 *
 * Every approximate index scan asks, so this reads the state without the
 * spinlock (one aligned int; every querying backend taking the lock would
 * share one cache line, see gpu_check).  A stale answer costs nothing:
 * gpu_request checks the state again under the lock, and a scan that finds
 * the service gone falls back to the CPU.
 */
static bool
gpu_usable(void)
{
	if (vecstore_gpu == VS_GPU_OFF || vs_gpu_shared == NULL)
		return false;
	return *((volatile VsGpuState *) &vs_gpu_shared->state) == VS_GPU_STATE_RUNNING;
}

/* an open scan's count, given back when its memory context goes */
typedef struct OpenScan
{
	MemoryContextCallback cb;
	bool		counted;
} OpenScan;

static void
open_scan_end(void *arg)
{
	OpenScan   *os = (OpenScan *) arg;

	if (os->counted && vs_gpu_shared != NULL)
		pg_atomic_fetch_sub_u32(&vs_gpu_shared->open_scans, 1);
	os->counted = false;
}

/*
 * scan_start - VsOffloadRoutine.scan_start: whether an approximate index
 * scan should ask the GPU service.  Under on, whenever it is usable.  Under auto, only when at
 * least vecstore.gpu_min_scans such scans are open in the server, this
 * one included (0: as many as the server has CPUs): below that, each
 * scan has a core of its own, and searching its graphs there answers
 * one query sooner than a round trip to the GPU, whose gain is batching
 * many.  So a lone query's latency is the CPU's.  The scan counts as
 * open from here until "cxt" (its per-scan memory) is reset or deleted,
 * which an error does too.
 */
static bool
scan_start(VsOffload *off, MemoryContext cxt)
{
	OpenScan   *os;
	uint32		open;
	int			min_scans = vecstore_gpu_min_scans;

	if (!gpu_usable())
		return false;
	os = MemoryContextAllocZero(cxt, sizeof(OpenScan));
	os->cb.func = open_scan_end;
	os->cb.arg = os;
	MemoryContextRegisterResetCallback(cxt, &os->cb);
	open = pg_atomic_add_fetch_u32(&vs_gpu_shared->open_scans, 1);
	os->counted = true;
	if (vecstore_gpu == VS_GPU_ON)
		return true;
	if (min_scans == 0)
	{
		/* read once: glibc reads a file in /sys for it each time */
		static int	cpus = 0;

		if (cpus == 0)
		{
			long		online = sysconf(_SC_NPROCESSORS_ONLN);

			cpus = online > 0 ? (int) online : 1;
		}
		min_scans = cpus;
	}
	return open >= (uint32) min_scans;
}

/*
 * count_fallback - record (under auto) that work ran on the CPU, and why.
 */
static void
count_fallback(const char *what, const char *why)
{
	if (vs_gpu_shared == NULL)
		return;
	SpinLockAcquire(&vs_gpu_shared->mutex);
	vs_gpu_shared->fallbacks++;
	snprintf(vs_gpu_shared->fallback_reason, sizeof(vs_gpu_shared->fallback_reason),
			 "%s ran on the CPU: %s", what, why);
	SpinLockRelease(&vs_gpu_shared->mutex);
}

/*
 * offload_failed - an operation's request failed for "why": under on an
 * error; under auto the fallback is counted and the rest of the operation
 * stays on the CPU.  Returns -1, for the caller to return.
 */
static int
offload_failed(VsOffload *off, const char *why)
{
	off->disabled = true;
	if (vecstore_gpu == VS_GPU_ON)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vecstore.gpu is \"on\" but the GPU could not do the work of %s", off->what),
				 errdetail("%s.", why),
				 errhint("Set vecstore.gpu to \"auto\" to run on the CPU when the GPU cannot.")));
	count_fallback(off->what, why);
	return -1;
}

/*
 * offload_open - whether an operation's next job may go to the GPU:
 * vecstore.gpu is not off, the service exists, and it is usable or was
 * when the operation's first job went (a failure since then is the
 * request's to report).  An operation that finds it unusable from the
 * start stays on the CPU (gpu_check counted that already).
 */
static bool
offload_open(VsOffload *off)
{
	if (vecstore_gpu == VS_GPU_OFF || vs_gpu_shared == NULL)
		return false;
	if (!gpu_usable() && off->jobs == 0 && vecstore_gpu == VS_GPU_AUTO)
	{
		off->disabled = true;
		return false;
	}
	return true;
}

/* a queued request: its slot and the sequence number it was given */
typedef struct GpuTicket
{
	int			slotno;
	uint32		seq;
} GpuTicket;

/*
 * gpu_submit - queue one request (verb, job segment and the token in its
 * header) and wake the worker.  True with the request's ticket, for
 * gpu_wait (or gpu_abandon); false with the reason in "why" (no free
 * slot, or the service not running).
 */
static bool
gpu_submit(const char *verb, const char *segment, uint64 token, GpuTicket *ticket,
		   char *why, size_t whylen)
{
	Latch	   *worker_latch;

	ticket->slotno = -1;
	ticket->seq = 0;
	SpinLockAcquire(&vs_gpu_shared->mutex);
	worker_latch = vs_gpu_shared->worker_latch;
	if (vs_gpu_shared->state == VS_GPU_STATE_RUNNING && worker_latch != NULL)
	{
		for (int i = 0; i < VS_GPU_SLOTS; i++)
		{
			VsGpuSlot  *slot = &vs_gpu_shared->slots[i];

			if (slot->state != VS_SLOT_FREE)
				continue;
			ticket->slotno = i;
			ticket->seq = ++vs_gpu_shared->next_seq;
			slot->seq = ticket->seq;
			slot->latch = MyLatch;
			strlcpy(slot->verb, verb, sizeof(slot->verb));
			strlcpy(slot->segment, segment, sizeof(slot->segment));
			slot->token = token;
			slot->ok = false;
			slot->error[0] = '\0';
			slot->state = VS_SLOT_QUEUED;
			vs_gpu_shared->requests++;
			break;
		}
		if (ticket->slotno < 0)
			snprintf(why, whylen, "all %d GPU request slots are busy", VS_GPU_SLOTS);
	}
	else
		snprintf(why, whylen, "the GPU service is \"%s\"", VsGpuStateNames[vs_gpu_shared->state]);
	SpinLockRelease(&vs_gpu_shared->mutex);
	if (ticket->slotno < 0)
		return false;
	SetLatch(worker_latch);
	return true;
}

/*
 * gpu_abandon - give up a queued request without its answer: a request
 * not yet sent is withdrawn, a sent one's answer will be dropped by the
 * worker.  Safe to call during abort (a spinlock, no allocation).
 */
static void
gpu_abandon(const GpuTicket *ticket)
{
	VsGpuSlot  *slot = &vs_gpu_shared->slots[ticket->slotno];

	SpinLockAcquire(&vs_gpu_shared->mutex);
	if (slot->seq == ticket->seq)
	{
		if (slot->state == VS_SLOT_QUEUED || slot->state == VS_SLOT_DONE)
			slot->state = VS_SLOT_FREE;
		else if (slot->state == VS_SLOT_SENT)
			slot->state = VS_SLOT_ABANDONED;
	}
	SpinLockRelease(&vs_gpu_shared->mutex);
}

/*
 * gpu_wait - wait for a submitted request's answer, at most
 * vecstore.gpu_timeout from now.  True when the helper did the job; false
 * with the reason in "why" (the helper's error, or no answer in time).
 * An error (a cancel) while waiting leaves the slot to the worker, which
 * drops the late answer.
 */
static bool
gpu_wait(const GpuTicket *ticket, char *why, size_t whylen)
{
	TimestampTz deadline;
	volatile bool done = false;
	volatile bool ok = false;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), vecstore_gpu_timeout);
	PG_TRY();
	{
		for (;;)
		{
			VsGpuSlot  *slot = &vs_gpu_shared->slots[ticket->slotno];
			long		left;

			SpinLockAcquire(&vs_gpu_shared->mutex);
			if (slot->state == VS_SLOT_DONE && slot->seq == ticket->seq)
			{
				ok = slot->ok;
				if (!ok)
					snprintf(why, whylen, "the GPU helper failed: %s", slot->error);
				slot->state = VS_SLOT_FREE;
				done = true;
			}
			SpinLockRelease(&vs_gpu_shared->mutex);
			if (done)
				break;

			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (left <= 0)
			{
				snprintf(why, whylen, "no answer from the GPU service within %d ms",
						 vecstore_gpu_timeout);
				break;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 left, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		if (!done)
			gpu_abandon(ticket);
	}
	PG_END_TRY();
	return ok;
}

/*
 * gpu_request - one request, submitted and waited for: true when the
 * helper did the job, false with the reason in "why".
 */
static bool
gpu_request(const char *verb, const char *segment, uint64 token, char *why, size_t whylen)
{
	GpuTicket	ticket;

	if (!gpu_submit(verb, segment, token, &ticket, why, whylen))
		return false;
	return gpu_wait(&ticket, why, whylen);
}

/*
 * next_token - a token no other job of this cluster's lifetime carries:
 * the backend's pid and a counter.
 */
static uint64
next_token(void)
{
	static uint32 counter = 0;

	return ((uint64) MyProcPid << 32) | ++counter;
}

/*
 * job_segment - a dynamic shared memory segment of "size" bytes that the
 * helper can map by name (into *name), or NULL with the reason in "why".
 * The helper opens POSIX shared memory, so other implementations (and
 * segments carved from the main shared memory by min_dynamic_shared_memory)
 * cannot carry jobs.
 */
static dsm_segment *
job_segment(Size size, char *name, size_t namelen, char *why, size_t whylen)
{
	struct statvfs vfs;
	dsm_segment *seg;
	dsm_handle	handle;

	if (dynamic_shared_memory_type != DSM_IMPL_POSIX)
	{
		snprintf(why, whylen, "dynamic_shared_memory_type is not \"posix\"");
		return NULL;
	}
	/* a full /dev/shm would make dsm_create fail the whole statement */
	if (statvfs("/dev/shm", &vfs) == 0 &&
		(double) vfs.f_bavail * vfs.f_frsize < 2.0 * size)
	{
		snprintf(why, whylen, "/dev/shm has less than %zu MB free", (2 * size) >> 20);
		return NULL;
	}
	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
	{
		snprintf(why, whylen, "too many dynamic shared memory segments");
		return NULL;
	}
	handle = dsm_segment_handle(seg);
	if (handle & 1)
	{
		/* from the main region (min_dynamic_shared_memory): no file */
		dsm_detach(seg);
		snprintf(why, whylen, "min_dynamic_shared_memory is in use");
		return NULL;
	}
	snprintf(name, namelen, "/PostgreSQL.%u", handle);
	return seg;
}

/*
 * assign_slice - how many vectors of "dim" dimensions one transfer segment
 * carries along with k centroids; 0 when the centroids alone do not fit.
 */
static int
assign_slice(int k, int dim)
{
	Size		cbytes = (Size) k * dim * sizeof(float);
	Size		row_bytes = (Size) dim * sizeof(float) + sizeof(int32) + sizeof(float);

	if (cbytes + 8192 + row_bytes > VS_GPU_SEGMENT_BYTES)
		return 0;
	return (int) Min((Size) INT_MAX, (VS_GPU_SEGMENT_BYTES - cbytes - 8192) / row_bytes);
}

/*
 * assign_rows - VsOffloadRoutine.assign_rows: the batch of vectors an assignment should hand to
 * VsKmeansAssign for the GPU to do it well: a transfer segment's worth,
 * or 0 when no GPU is usable.
 */
static int
assign_rows(VsOffload *off, int k, int dim)
{
	if (!gpu_usable())
		return 0;
	return assign_slice(k, dim);
}

/*
 * gpu_assign - VsOffloadRoutine.assign, VsKmeansHooks.offload_assign for
 * index builds: the
 * nearest centroid of each vector, computed by the GPU helper (cuBLAS GEMM
 * and an arg-min; in emulation, the same CPU code as VsKmeansAssign).  The
 * vectors go in slices of one transfer segment.  0 when the helper
 * answered all of them; -1 sends the caller to the CPU: vecstore.gpu off,
 * no service, a small job, or a failure.  A failure turns the offload off
 * for the rest of the build (it is counted as a fallback, with its reason)
 * under auto, and is an error under on.
 */
static int
gpu_assign(void *arg, const float *centroids, int k, int dim,
		   VsMetric metric, const float *vectors, int n,
		   int32_t *out, float *out_dist)
{
	VsOffload *off = (VsOffload *) arg;
	Size		cbytes = (Size) k * dim * sizeof(float);
	char		why[256] = "";
	char		name[64];
	dsm_segment *seg = NULL;
	VsGpuAssignJob job;
	int			slice;
	int			done = 0;

	if (off == NULL || off->disabled || n <= 0 || (double) n * k * dim < VS_GPU_MIN_ASSIGN_WORK)
		return -1;
	if (!offload_open(off))
		return -1;

	slice = Min(assign_slice(k, dim), n);
	if (slice == 0)
		snprintf(why, sizeof(why), "%d centroids of %d dimensions do not fit a transfer segment",
				 k, dim);
	else
	{
		memset(&job, 0, sizeof(job));
		job.head.magic = VSGPU_ASSIGN_MAGIC;
		job.head.version = VSGPU_PROTOCOL_VERSION;
		job.metric = (int32) metric;
		job.k = k;
		job.dim = dim;
		job.n = slice;
		job.want_dist = (out_dist != NULL);
		job.kernel_path = (int32) VsKernelsActivePath;
		VsGpuAssignLayout(&job);
		seg = job_segment(job.total, name, sizeof(name), why, sizeof(why));
	}

	if (seg != NULL)
	{
		char	   *base = dsm_segment_address(seg);

		memcpy(base + job.centroids_off, centroids, cbytes);
		for (done = 0; done < n; done += slice)
		{
			int			rows = Min(slice, n - done);

			job.n = rows;
			job.head.token = next_token();
			VsGpuAssignLayout(&job);
			memcpy(base, &job, sizeof(job));
			memcpy(base + job.vectors_off, vectors + (Size) done * dim,
				   (Size) rows * dim * sizeof(float));
			if (!gpu_request("ASSIGN", name, job.head.token, why, sizeof(why)))
				break;
			memcpy(out + done, base + job.out_off, (Size) rows * sizeof(int32));
			if (out_dist)
				memcpy(out_dist + done, base + job.dist_off, (Size) rows * sizeof(float));
			/* the answer is the helper's: check it before anyone uses it */
			for (int i = 0; i < rows; i++)
			{
				if (out[done + i] < 0 || out[done + i] >= k)
				{
					snprintf(why, sizeof(why), "the GPU helper assigned a vector to centroid %d of %d",
							 out[done + i], k);
					rows = -1;
					break;
				}
			}
			if (rows < 0)
				break;
			off->jobs++;
		}
		dsm_detach(seg);
	}
	if (seg != NULL && done >= n)
		return 0;

	return offload_failed(off, why);
}

/* a graph job between graph_begin and graph_end */
struct VsOffloadGraph
{
	VsOffload *off;
	dsm_segment *seg;
	VsGpuGraphJob job;
	GpuTicket	ticket;
	bool		outstanding;	/* submitted, not yet waited for */
	MemoryContextCallback cb;	/* abandons it if an error comes first */
};

/* the memory context callback: an error between begin and end */
static void
graph_request_reset(void *arg)
{
	VsOffloadGraph *req = (VsOffloadGraph *) arg;

	if (req->outstanding && vs_gpu_shared != NULL)
		gpu_abandon(&req->ticket);
	req->outstanding = false;
}

/*
 * graph_begin - VsOffloadRoutine.graph_begin: send the HNSW graph of one cluster's n vectors to be
 * built by the GPU service, and return at once: the helper computes each
 * row's nearest others (one GEMM of the cluster against itself and a
 * selection per row; exact on the CPU in emulation) and assembles the
 * graph from those lists on up to "threads" threads of its own
 * (VsHnswBuildOptions.neighbours and .parallel), instead of one search per
 * row on this backend's one core.  opt: the graph's m, ef_construction
 * and seed; the lists are max(ef_construction, m) long, the candidates an
 * insertion would consider.  graph_size: VsHnswSerializedSize(n, metric,
 * opt).  The caller goes on with other work (the next cluster) and
 * collects the graph with graph_end.
 *
 * NULL means the CPU builds this graph: GPU off or unusable, a cluster
 * too large for one job (not counted), or a failure, which ends the
 * offload for the rest of the build and is counted under auto (an error
 * under on), as for the assignment.  The request lives in the current
 * memory context; an error before graph_end abandons it when that
 * context goes.
 */
static VsOffloadGraph *
graph_begin(VsOffload *off, const float *vectors, int n, int dim,
			VsMetric metric, const VsHnswBuildOptions *opt, int threads,
			Size graph_size)
{
	char		why[256] = "";
	char		name[64];
	VsOffloadGraph *req;
	VsGpuGraphJob *job;

	if (off == NULL || off->disabled || n < 2)
		return NULL;
	if (!offload_open(off))
		return NULL;

	req = palloc0(sizeof(VsOffloadGraph));
	req->off = off;
	job = &req->job;
	job->head.magic = VSGPU_GRAPH_MAGIC;
	job->head.version = VSGPU_PROTOCOL_VERSION;
	job->kernel_path = (int32) VsKernelsActivePath;
	job->metric = (int32) metric;
	job->dim = dim;
	job->n = n;
	job->m = opt->m;
	job->ef_construction = opt->ef_construction;
	job->k = Max(opt->ef_construction, opt->m);
	job->threads = Max(threads, 1);
	job->without_norms = opt->without_norms ? 1 : 0;
	job->seed = opt->seed;
	job->graph_size = graph_size;
	VsGpuGraphLayout(job);
	if (job->total > VS_GPU_MAX_GRAPH_BYTES)
	{
		pfree(req);
		return NULL;
	}
	req->seg = job_segment(job->total, name, sizeof(name), why, sizeof(why));
	if (req->seg == NULL)
	{
		pfree(req);
		offload_failed(off, why);
		return NULL;
	}

	job->head.token = next_token();
	memcpy(dsm_segment_address(req->seg), job, sizeof(*job));
	memcpy((char *) dsm_segment_address(req->seg) + job->vectors_off, vectors,
		   (Size) n * dim * sizeof(float));
	req->cb.func = graph_request_reset;
	req->cb.arg = req;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &req->cb);
	if (!gpu_submit("GRAPH", name, job->head.token, &req->ticket, why, sizeof(why)))
	{
		dsm_detach(req->seg);
		offload_failed(off, why);
		return NULL;
	}
	req->outstanding = true;
	return req;
}

/*
 * graph_end - VsOffloadRoutine.graph_end: wait for a graph graph_begin sent and copy it into
 * "graph" (the job's graph_size bytes).  The answer is validated
 * (VsHnswValidate) first, so a helper's fault can cost recall, never a
 * bad read.  0 on success; -1 means the CPU builds this graph (the failure
 * is counted, or an error under on, as graph_begin's; after another
 * job of the build failed, it is not waited for).
 */
static int
graph_end(VsOffloadGraph *req, void *graph)
{
	char		why[256] = "";
	const char *bad = NULL;
	bool		ok;

	/* an earlier job of the build failed: the CPU builds the rest */
	if (req->off->disabled)
	{
		gpu_abandon(&req->ticket);
		req->outstanding = false;
		dsm_detach(req->seg);
		return -1;
	}
	ok = gpu_wait(&req->ticket, why, sizeof(why));
	req->outstanding = false;
	if (ok)
	{
		memcpy(graph, (char *) dsm_segment_address(req->seg) + req->job.graph_off,
			   req->job.graph_size);
		bad = VsHnswValidate(graph, req->job.graph_size, req->job.n, req->job.dim,
							 (VsMetric) req->job.metric);
	}
	dsm_detach(req->seg);
	if (ok && bad != NULL)
	{
		snprintf(why, sizeof(why), "the GPU helper returned a graph that is not valid: %s", bad);
		ok = false;
	}
	if (!ok)
		return offload_failed(req->off, why);
	req->off->jobs++;
	req->off->graphs++;
	return 0;
}

/*
 * gpu_scan - VsOffloadRoutine.scan: the "topk" rows with the smallest
 * ordering keys of each of "ncl" clusters of segment file "file", for one
 * query, from the GPU helper (resident clusters; see VsGpuScanJob for
 * what the keys are).  offsets: where each cluster's vectors start in the
 * file; counts: its rows.  found[i] answers go to hits + i * topk,
 * nearest first.  0 on success; -1 sends the caller to the CPU (a failure
 * is counted and ends the offload for the scan under auto, and is an
 * error under on).
 */
static int
gpu_scan(VsOffload *off, const VsSegmentId *file, VsMetric metric, int dim,
		 const float *query, int topk, int ncl, const uint64 *offsets,
		 const uint32 *counts, int32 *found, VsOffloadHit *hits)
{
	char		why[256] = "";
	char		name[64];
	char	   *path;
	dsm_segment *seg = NULL;
	VsGpuScanJob job;
	bool		ok = false;

	if (off->disabled || ncl <= 0)
		return -1;

	/* the helper reads the file by its path, relative to the data directory */
	path = VsSegmentPath(file->node, file->generation);
	memset(&job, 0, sizeof(job));
	if (strlen(path) >= VSGPU_PATH_LEN)
		snprintf(why, sizeof(why), "the segment file's path is too long");
	else
	{
		job.head.magic = VSGPU_SCAN_MAGIC;
		job.head.version = VSGPU_PROTOCOL_VERSION;
		job.head.token = next_token();
		job.kernel_path = (int32) VsKernelsActivePath;
		job.metric = (int32) metric;
		job.dim = dim;
		job.topk = topk;
		job.nclusters = ncl;
		job.file_ino = file->ino;
		job.file_size = file->size;
		strlcpy(job.file, path, sizeof(job.file));
		VsGpuScanLayout(&job);
		seg = job_segment(job.total, name, sizeof(name), why, sizeof(why));
	}

	if (seg != NULL)
	{
		char	   *base = dsm_segment_address(seg);
		VsGpuScanCluster *cl = (VsGpuScanCluster *) (base + job.clusters_off);
		const VsGpuScanHit *h = (const VsGpuScanHit *) (base + job.hits_off);

		memcpy(base, &job, sizeof(job));
		memcpy(base + job.query_off, query, sizeof(float) * dim);
		for (int i = 0; i < ncl; i++)
		{
			cl[i].offset = offsets[i];
			cl[i].count = counts[i];
			cl[i].found = -1;
		}
		ok = gpu_request("SCAN", name, job.head.token, why, sizeof(why));
		/* the answers are the helper's: check them before the scan uses them */
		for (int i = 0; ok && i < ncl; i++)
		{
			if (cl[i].found < 0 || cl[i].found > Min((int64) topk, (int64) counts[i]) ||
				(cl[i].found < topk && (uint32) cl[i].found < counts[i]))
			{
				snprintf(why, sizeof(why), "the GPU helper answered %d rows for a cluster of %u",
						 cl[i].found, counts[i]);
				ok = false;
				break;
			}
			found[i] = cl[i].found;
			for (int j = 0; j < found[i]; j++)
			{
				const VsGpuScanHit *x = &h[(Size) i * topk + j];

				if (x->row >= counts[i])
				{
					snprintf(why, sizeof(why), "the GPU helper answered row %u of a cluster of %u",
							 x->row, counts[i]);
					ok = false;
					break;
				}
				hits[(Size) i * topk + j].row = x->row;
				hits[(Size) i * topk + j].key = x->key;
			}
		}
		dsm_detach(seg);
	}
	pfree(path);
	if (ok)
	{
		off->jobs++;
		return 0;
	}

	return offload_failed(off, why);
}

/*
 * gpu_begin - VsOffloadRoutine.begin: check that the work may run as
 * vecstore.gpu asks (gpu_check: an error under on without a usable GPU;
 * under auto, "count" records a fallback), and start an operation unless
 * vecstore.gpu is off or the service does not run in this server.
 */
static VsOffload *
gpu_begin(const char *what, bool count)
{
	VsOffload  *off;

	gpu_check(what, count);
	if (vecstore_gpu == VS_GPU_OFF || vs_gpu_shared == NULL)
		return NULL;
	off = palloc0(sizeof(VsOffload));
	off->ops = &VsGpuOffloadRoutine;
	off->what = what;
	return off;
}

/*
 * usable - VsOffloadRoutine.usable.
 */
static bool
usable(VsOffload *off)
{
	return gpu_usable();
}

/* the GPU service's offload table, registered by VsGpuInit */
const VsOffloadRoutine VsGpuOffloadRoutine = {
	.begin = gpu_begin,
	.usable = usable,
	.assign_rows = assign_rows,
	.assign = gpu_assign,
	.graph_begin = graph_begin,
	.graph_end = graph_end,
	.scan_start = scan_start,
	.scan = gpu_scan,
};
