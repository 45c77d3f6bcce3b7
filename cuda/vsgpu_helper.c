/*-------------------------------------------------------------------------
 *
 * vsgpu_helper.c
 *	  vecstore-gpu-helper: the one process that touches CUDA.
 *
 * The vecstore background worker (src/vsgpu.c) starts this program with
 * its standard input and output on pipes, and talks to it in lines of
 * text.  The helper first opens the device and announces the outcome:
 *
 *	READY <protocol version> <total bytes> <memory limit bytes> <device name>
 *	NODEVICE <reason>
 *
 * (after NODEVICE it exits).  Then it answers the worker's requests until
 * its input ends (the worker stopped or died) or QUIT:
 *
 *	STATUS		->	STATUS <device bytes in use> <resident clusters> <their bytes>
 *	QUIT		->	(exits 0)
 *
 * and the requests that carry work, with their data in a shared memory
 * segment the helper maps by name (src/vsgpu_protocol.h):
 *
 *	ASSIGN <slot> <seq> <segment> <token>
 *	GRAPH <slot> <seq> <segment> <token>
 *	SCAN <slot> <seq> <segment> <token>
 *		->	DONE <slot> <seq> OK | DONE <slot> <seq> ERROR <why>
 *
 * A batch's scans are grouped by cluster: each resident cluster meets all
 * of the batch's queries for it at once (one GEMM on the device), and all
 * the clusters of a batch go to the device together, in rounds that fit
 * its memory; each query's nearest rows are then picked on a pool of
 * threads (cuda/vsgpu_pool.c, started when first needed, one per CPU this
 * process may run on).  A graph is assembled from its neighbour lists on
 * the same pool, on as many threads as the job allows.
 *
 * It reads requests in batches: after the first line of a batch it waits
 * up to the batching delay for more, and announces each batch of work
 * requests with "BATCH <n>" before it answers them.
 *
 * A crash of this process, whatever the driver does, costs the database
 * nothing: the worker sees the exit, records it, and starts a new helper
 * after a backoff while backends use the CPU.
 *
 * Options:
 *	--memory-limit BYTES	the share of device memory it may use
 *							(vecstore.gpu_memory; 0: 80% of the device)
 *	--emulate				no device: announce "CPU emulation" and serve
 *							requests on the CPU, with vecstore's own CPU
 *							code (src/vskmeans.c, src/vshnsw.c), so that the service and
 *							its whole request path can be tested without a
 *							GPU: results are then bit-for-bit those of the
 *							CPU path
 *	--batch-delay USEC		how long a batch waits for more requests
 *							(vecstore.gpu_batch_delay)
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_helper.c
 *
 *-------------------------------------------------------------------------
 */
#define _GNU_SOURCE				/* sched_getaffinity */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vsgpu_helper.h"
#include "vsgpu_pool.h"
#include "vsgpu_protocol.h"
#include "vshnsw.h"
#include "vskmeans.h"

#define LINE_MAX_LEN	1024

/* requests read together at most */
#define BATCH_MAX		128

static int	emulate = 0;
static VsPool *pool = NULL;		/* helper_pool() starts it */
static uint64_t memory_limit = 0;
static long batch_delay_us = 100;

/* the CPU emulation's memory when --memory-limit says nothing */
#define EMULATED_MEMORY		((uint64_t) 1 << 30)

/*
 * A cluster kept resident: its rows on the device (CUDA), or a copy in
 * this process (emulation), found by the file and the offset of its rows.
 * Least recently used ones go first when memory_limit would be passed.
 */
typedef struct Resident
{
	char		path[VSGPU_PATH_LEN];
	uint64_t	ino;
	uint64_t	offset;
	uint32_t	count;
	int			dim;
	void	   *dev;			/* vsgpu_device_upload's handle */
	float	   *host;			/* the emulation's copy */
	uint64_t	bytes;
	uint64_t	last_used;
	uint64_t	pinned;			/* the scan round that uses it */
} Resident;

static Resident *residents = NULL;
static int	nresidents = 0;
static int	maxresidents = 0;
static uint64_t resident_bytes = 0;
static uint64_t use_clock = 0;
static uint64_t scan_round = 0; /* residents of this round stay */

/* standard input, read in lines without stdio (poll needs the raw fd) */
static char inbuf[64 * 1024];
static size_t inlen = 0;
static int	in_eof = 0;

/*
 * reply - one line to the worker; exit when it is gone (a broken pipe).
 */
static void
reply(const char *fmt,...) __attribute__((format(printf, 1, 2)));

static void
reply(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	if (fflush(stdout) != 0 || ferror(stdout))
		exit(0);
}

/* one_line - a reason made fit for one protocol line */
static void
one_line(char *text)
{
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/*
 * next_line - the next complete line of input into "line", if one is
 * buffered (1), else 0.
 */
static int
next_line(char *line, size_t len)
{
	char	   *nl = memchr(inbuf, '\n', inlen);
	size_t		n;

	if (nl == NULL)
	{
		if (inlen == sizeof(inbuf))
			inlen = 0;			/* a line too long to be the worker's */
		return 0;
	}
	n = nl - inbuf;
	if (n >= len)
		n = len - 1;
	memcpy(line, inbuf, n);
	line[n] = '\0';
	line[strcspn(line, "\r")] = '\0';
	inlen -= (nl + 1 - inbuf);
	memmove(inbuf, nl + 1, inlen);
	return 1;
}

/*
 * fill - wait up to timeout_ms (-1: for ever) for input and buffer it.
 */
static void
fill(int timeout_ms)
{
	struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
	ssize_t		n;

	if (in_eof || inlen == sizeof(inbuf))
		return;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return;
	n = read(STDIN_FILENO, inbuf + inlen, sizeof(inbuf) - inlen);
	if (n <= 0)
	{
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			in_eof = 1;
		return;
	}
	inlen += n;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* VsKmeansHooks for the CPU code the emulation runs */
static void *
emu_alloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "vecstore-gpu-helper: out of memory\n");
		exit(1);
	}
	return p;
}

static void
emu_interrupts(void)
{
}

static const VsKmeansHooks emu_hooks = {
	emu_alloc, free, emu_interrupts, NULL, NULL, NULL, NULL
};

/*
 * use_backend_kernels - run the emulation on the backend's kernel path
 * (vecstore.simd), so that its results are bit for bit the backend's; the
 * best path here if this CPU lacks it.
 */
static void
use_backend_kernels(int path)
{
	if (VsKernelsForPath((VsKernelPath) path) != NULL)
	{
		VsKernels = *VsKernelsForPath((VsKernelPath) path);
		VsKernelsActivePath = (VsKernelPath) path;
	}
	else
		VsDistanceInit();
}

/*
 * check_head - the head every job starts with, against the segment it is
 * in ("size" bytes; the job's own struct is "jobsize"), the kind of job
 * expected ("magic", named "what" in the reason), this protocol's version
 * and the request line's token.  NULL when it is sound, else why not.
 */
static const char *
check_head(const char *base, uint64_t size, size_t jobsize, uint32_t magic,
		   const char *what, uint64_t token, char *buf, size_t buflen)
{
	const VsGpuJobHead *head = (const VsGpuJobHead *) base;

	if (size < jobsize || head->magic != magic)
	{
		snprintf(buf, buflen, "not %s job", what);
		return buf;
	}
	if (head->version != VSGPU_PROTOCOL_VERSION)
	{
		snprintf(buf, buflen, "the job is of protocol version %u, the helper speaks %d",
				 head->version, VSGPU_PROTOCOL_VERSION);
		return buf;
	}
	if (head->token != token)
		return "the segment holds another job";
	return NULL;
}

/*
 * run_assign - one ASSIGN job in a mapped segment of "size" bytes.  0 on
 * success, else -1 with the reason in err.
 */
static int
run_assign(char *base, uint64_t size, uint64_t token, char *err, size_t errlen)
{
	VsGpuAssignJob *job = (VsGpuAssignJob *) base;
	VsGpuAssignJob check;
	const char *bad;
	const float *c;
	const float *x;
	int32_t    *out;
	float	   *dist;
	float	   *norms;
	int			rc = 0;

	if ((bad = check_head(base, size, sizeof(VsGpuAssignJob), VSGPU_ASSIGN_MAGIC,
						  "an assignment", token, err, errlen)) != NULL)
	{
		if (bad != err)
			snprintf(err, errlen, "%s", bad);
		return -1;
	}
	if (job->k < 1 || job->k > VS_KMEANS_MAX_K || job->dim < 1 || job->n < 0 ||
		(job->metric != VS_METRIC_L2 && job->metric != VS_METRIC_IP &&
		 job->metric != VS_METRIC_COSINE))
	{
		snprintf(err, errlen, "bad assignment job (k %d, dim %d, n %d, metric %d)",
				 job->k, job->dim, job->n, job->metric);
		return -1;
	}
	check = *job;
	VsGpuAssignLayout(&check);
	if (check.total > size || memcmp(&check, job, sizeof(check)) != 0)
	{
		snprintf(err, errlen, "assignment job layout does not match its segment");
		return -1;
	}
	c = (const float *) (base + job->centroids_off);
	x = (const float *) (base + job->vectors_off);
	out = (int32_t *) (base + job->out_off);
	dist = job->want_dist ? (float *) (base + job->dist_off) : NULL;
	if (job->n == 0)
		return 0;

	norms = emu_alloc(sizeof(float) * job->k);
	VsKmeansCentroidNorms(c, job->k, job->dim, norms);
	if (emulate)
	{
		use_backend_kernels(job->kernel_path);
		VsKmeansAssign(c, norms, job->k, job->dim, (VsMetric) job->metric, x, job->n,
					   out, dist, &emu_hooks);
	}
	else
	{
		float	   *bias = emu_alloc(sizeof(float) * job->k);
		float	   *scale = emu_alloc(sizeof(float) * job->k);

		for (int j = 0; j < job->k; j++)
			VsKmeansRankTransform((VsMetric) job->metric,
								  job->metric == VS_METRIC_IP ? 0.0f : norms[j],
								  &bias[j], &scale[j]);
		rc = vsgpu_device_assign(c, bias, scale, job->k, job->dim, x, job->n, out,
								 memory_limit, err, errlen);
		if (rc == 0 && dist)
		{
			/* the exact distance to the winner, as the CPU path computes it */
			for (int i = 0; i < job->n; i++)
				dist[i] = VsKmeansDistance((VsMetric) job->metric,
										   x + (size_t) i * job->dim,
										   c + (size_t) out[i] * job->dim, job->dim);
		}
		free(scale);
		free(bias);
	}
	free(norms);
	return rc;
}


/* a VsHnswParallel on the pool, "width" threads wide */
typedef struct PoolRunner
{
	VsPool	   *pool;
	int			width;
} PoolRunner;

static void
pool_runner(void *ctx, int ntasks, VsHnswTaskFn fn, void *arg)
{
	PoolRunner *pr = (PoolRunner *) ctx;

	vs_pool_run(pr->pool, pr->width, ntasks, fn, arg);
}

/*
 * cpu_count - the CPUs this process may run on.
 */
static int
cpu_count(void)
{
	cpu_set_t	set;
	long		online;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	online = sysconf(_SC_NPROCESSORS_ONLN);
	return online > 0 ? (int) online : 1;
}

/* helper_pool - the thread pool, one thread per CPU, started when first needed */
static VsPool *
helper_pool(void)
{
	if (pool == NULL)
		pool = vs_pool_create(cpu_count());
	if (pool == NULL)
	{
		fprintf(stderr, "vecstore-gpu-helper: out of memory\n");
		exit(1);
	}
	return pool;
}

/*
 * run_graph - one GRAPH job (a cluster's graph) in a mapped segment of
 * "size" bytes.  0 on success, else -1 (or -2: context lost) with the
 * reason in err.
 */
static int
run_graph(char *base, uint64_t size, uint64_t token, char *err, size_t errlen)
{
	VsGpuGraphJob *job = (VsGpuGraphJob *) base;
	VsGpuGraphJob check;
	const char *bad;
	VsHnswBuildOptions opt;
	PoolRunner	runner;
	VsHnswParallel parallel;
	const float *x;
	uint32_t   *lists;
	size_t		built;
	int			rc = 0;

	if ((bad = check_head(base, size, sizeof(VsGpuGraphJob), VSGPU_GRAPH_MAGIC,
						  "a graph", token, err, errlen)) != NULL)
	{
		if (bad != err)
			snprintf(err, errlen, "%s", bad);
		return -1;
	}
	if (job->k < 1 || job->k > VS_HNSW_MAX_EF_CONSTRUCTION || job->dim < 1 || job->n < 2 ||
		job->m < VS_HNSW_MIN_M || job->m > VS_HNSW_MAX_M ||
		job->ef_construction < VS_HNSW_MIN_EF_CONSTRUCTION ||
		job->ef_construction > VS_HNSW_MAX_EF_CONSTRUCTION || job->threads < 1 ||
		(job->without_norms != 0 && job->without_norms != 1) || job->unused != 0 ||
		(job->metric != VS_METRIC_L2 && job->metric != VS_METRIC_IP &&
		 job->metric != VS_METRIC_COSINE))
	{
		snprintf(err, errlen, "bad graph job (n %d, dim %d, m %d, ef_construction %d, k %d, threads %d, metric %d)",
				 job->n, job->dim, job->m, job->ef_construction, job->k, job->threads,
				 job->metric);
		return -1;
	}
	check = *job;
	VsGpuGraphLayout(&check);
	if (check.total > size || memcmp(&check, job, sizeof(check)) != 0)
	{
		snprintf(err, errlen, "graph job layout does not match its segment");
		return -1;
	}
	VsHnswBuildOptionsInit(&opt);
	opt.m = job->m;
	opt.ef_construction = job->ef_construction;
	opt.seed = job->seed;
	opt.without_norms = job->without_norms;
	if (VsHnswSerializedSize(job->n, (VsMetric) job->metric, &opt) != job->graph_size)
	{
		snprintf(err, errlen, "graph job expects %" PRIu64 " bytes, the options give %zu",
				 job->graph_size, VsHnswSerializedSize(job->n, (VsMetric) job->metric, &opt));
		return -1;
	}
	x = (const float *) (base + job->vectors_off);

	runner.pool = helper_pool();
	runner.width = job->threads;
	parallel.ctx = &runner;
	parallel.run = pool_runner;
	/* more tasks than threads, so that an uneven task holds no one up */
	parallel.ntasks = 4 * (job->threads < vs_pool_threads(pool) ? job->threads : vs_pool_threads(pool));

	/* the lists: the work the device takes over */
	lists = emu_alloc(sizeof(uint32_t) * (size_t) job->n * job->k);
	use_backend_kernels(job->kernel_path);
	if (emulate)
		VsHnswExactNeighbours(x, job->n, job->dim, (VsMetric) job->metric, job->k,
							  &emu_hooks, &parallel, lists);
	else
	{
		/* every row is a "centroid" of the others: the assignment's ranking */
		float	   *norms = emu_alloc(sizeof(float) * job->n);
		float	   *bias = emu_alloc(sizeof(float) * job->n);
		float	   *scale = emu_alloc(sizeof(float) * job->n);

		VsKmeansCentroidNorms(x, job->n, job->dim, norms);
		for (int j = 0; j < job->n; j++)
			VsKmeansRankTransform((VsMetric) job->metric,
								  job->metric == VS_METRIC_IP ? 0.0f : norms[j],
								  &bias[j], &scale[j]);
		rc = vsgpu_device_knn(x, job->n, job->dim, bias, scale, job->k, lists,
							  memory_limit, err, errlen);
		free(scale);
		free(bias);
		free(norms);
	}

	/* then the graph, on the pool */
	if (rc == 0)
	{
		opt.neighbours = lists;
		opt.nneighbours = job->k;
		opt.parallel = &parallel;
		built = VsHnswBuild(x, job->n, job->dim, (VsMetric) job->metric, &opt, &emu_hooks,
							base + job->graph_off, job->graph_size);
		if (built != job->graph_size)
		{
			snprintf(err, errlen, "the graph build gave %zu bytes of %" PRIu64,
					 built, job->graph_size);
			rc = -1;
		}
	}
	free(lists);
	return rc;
}

/*
 * resident_drop - forget resident i (the last one takes its place).
 */
static void
resident_drop(int i)
{
	Resident   *r = &residents[i];

	if (r->dev)
		vsgpu_device_release(r->dev);
	free(r->host);
	resident_bytes -= r->bytes;
	residents[i] = residents[--nresidents];
}

/*
 * drop_lru - forget the least recently used resident that the current
 * scan round does not use; -1 when there is none.
 */
static int
drop_lru(void)
{
	int			lru = -1;

	for (int i = 0; i < nresidents; i++)
		if (residents[i].pinned != scan_round &&
			(lru < 0 || residents[i].last_used < residents[lru].last_used))
			lru = i;
	if (lru < 0)
		return -1;
	resident_drop(lru);
	return 0;
}

/*
 * evict_for - drop least recently used residents until "bytes" more fit
 * in memory_limit; 0 when they do.
 */
static int
evict_for(uint64_t bytes)
{
	while (resident_bytes + bytes > memory_limit)
		if (drop_lru() != 0)
			return -1;
	return 0;
}

/* any_pinned - whether the current scan round holds residents */
static int
any_pinned(void)
{
	for (int i = 0; i < nresidents; i++)
		if (residents[i].pinned == scan_round)
			return 1;
	return 0;
}

/*
 * resident_get - the resident copy of a cluster, loaded from the segment
 * file (which must still be the inode and size the backend verified) when
 * it is not resident yet, and pinned for the current scan round.  NULL
 * with the reason in err, and *busy set when it failed for room that the
 * round's own residents hold (a later round may find it).
 */
static Resident *
resident_get(const VsGpuScanJob *job, const VsGpuScanCluster *cl, int *busy,
			 char *err, size_t errlen)
{
	uint64_t	rowbytes = (uint64_t) job->dim * sizeof(float);
	uint64_t	bytes = (uint64_t) cl->count * (rowbytes + sizeof(float));
	struct stat st;
	Resident   *r;
	Resident	nr;
	char	   *map;
	int			fd;

	for (int i = 0; i < nresidents; i++)
	{
		r = &residents[i];
		if (r->offset == cl->offset && r->ino == job->file_ino && r->count == cl->count &&
			r->dim == job->dim && strcmp(r->path, job->file) == 0)
		{
			r->last_used = ++use_clock;
			r->pinned = scan_round;
			return r;
		}
	}

	*busy = 0;
	if (bytes > memory_limit || evict_for(bytes) != 0)
	{
		*busy = bytes <= memory_limit && any_pinned();
		snprintf(err, errlen, "a cluster of %" PRIu64 " bytes does not fit in GPU memory limit %" PRIu64,
				 bytes, memory_limit);
		return NULL;
	}
	fd = open(job->file, O_RDONLY);
	if (fd < 0)
	{
		snprintf(err, errlen, "cannot open %s: %s", job->file, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || (uint64_t) st.st_ino != job->file_ino ||
		(uint64_t) st.st_size != job->file_size ||
		cl->offset + (uint64_t) cl->count * rowbytes > (uint64_t) st.st_size)
	{
		close(fd);
		snprintf(err, errlen, "%s is not the file the backend mapped", job->file);
		return NULL;
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
	{
		snprintf(err, errlen, "cannot map %s: %s", job->file, strerror(errno));
		return NULL;
	}
	memset(&nr, 0, sizeof(nr));
	snprintf(nr.path, sizeof(nr.path), "%s", job->file);
	nr.ino = job->file_ino;
	nr.offset = cl->offset;
	nr.count = cl->count;
	nr.dim = job->dim;
	nr.bytes = bytes;
	if (emulate)
	{
		nr.host = emu_alloc(cl->count * rowbytes);
		memcpy(nr.host, map + cl->offset, cl->count * rowbytes);
	}
	else
	{
		for (;;)
		{
			nr.dev = vsgpu_device_upload((const float *) (map + cl->offset), (int) cl->count,
										 job->dim, err, errlen);
			/* the device is fuller than our count says: make room, retry */
			if (nr.dev != NULL || drop_lru() != 0)
				break;
		}
	}
	munmap(map, st.st_size);
	if (!emulate && nr.dev == NULL)
	{
		*busy = any_pinned();
		return NULL;
	}

	if (nresidents == maxresidents)
	{
		maxresidents = maxresidents ? maxresidents * 2 : 64;
		residents = realloc(residents, sizeof(Resident) * maxresidents);
		if (residents == NULL)
		{
			fprintf(stderr, "vecstore-gpu-helper: out of memory\n");
			exit(1);
		}
	}
	r = &residents[nresidents++];
	*r = nr;
	r->last_used = ++use_clock;
	r->pinned = scan_round;
	resident_bytes += bytes;
	return r;
}

/* a (job, cluster) pair of a batch of scans */
typedef struct ScanPair
{
	int			work;			/* index into the batch's works */
	int			cluster;		/* index into that job's clusters */
} ScanPair;

/* one scan request of a batch */
typedef struct ScanWork
{
	int			slot;
	unsigned	seq;
	char	   *base;			/* the mapped job segment */
	size_t		size;
	VsGpuScanJob *job;
	int			failed;
	char		err[256];
} ScanWork;

static ScanWork *sort_works;

/* pair_cluster - the cluster a pair names */
static const VsGpuScanCluster *
pair_cluster(const ScanPair *p)
{
	const VsGpuScanJob *j = sort_works[p->work].job;

	return (const VsGpuScanCluster *) ((const char *) j + j->clusters_off) + p->cluster;
}

/*
 * compare_cluster - whether two pairs need the same computation: the same
 * rows (file, inode, offset, count, dimensions) under the same metric and
 * kernels; 0 when they do.
 */
static int
compare_cluster(const ScanPair *pa, const ScanPair *pb)
{
	const VsGpuScanJob *ja = sort_works[pa->work].job,
			   *jb = sort_works[pb->work].job;
	const VsGpuScanCluster *ca = pair_cluster(pa),
			   *cb = pair_cluster(pb);
	int			c = strcmp(ja->file, jb->file);

	if (c != 0)
		return c;
#define CMP(a, b) if ((a) != (b)) return (a) < (b) ? -1 : 1
	CMP(ja->file_ino, jb->file_ino);
	CMP(ca->offset, cb->offset);
	CMP(ca->count, cb->count);
	CMP(ja->dim, jb->dim);
	CMP(ja->metric, jb->metric);
	CMP(ja->kernel_path, jb->kernel_path);
#undef CMP
	return 0;
}

/* pairs by cluster, then request order (for deterministic batches) */
static int
compare_pairs(const void *a, const void *b)
{
	int			c = compare_cluster(a, b);

	return c != 0 ? c : ((const ScanPair *) a)->work - ((const ScanPair *) b)->work;
}

/* hits by key (NaN last), then row */
static int
hit_before(const VsGpuScanHit *a, const VsGpuScanHit *b)
{
	if (a->key != b->key)
	{
		if (isnan(a->key))
			return 0;
		if (isnan(b->key))
			return 1;
		return a->key < b->key;
	}
	return a->row < b->row;
}

static int
compare_hits(const void *a, const void *b)
{
	return hit_before(a, b) ? -1 : (hit_before(b, a) ? 1 : 0);
}

/*
 * select_top - the k smallest of n keys into out (sorted); returns how
 * many.  A max-heap of k entries over the keys.
 */
static int
select_top(const float *keys, uint32_t n, int k, VsGpuScanHit *out)
{
	int			m = 0;

	for (uint32_t i = 0; i < n; i++)
	{
		VsGpuScanHit h = {i, keys[i]};

		if (m < k)
		{
			int			j = m++;

			/* sift up */
			while (j > 0 && hit_before(&out[(j - 1) / 2], &h))
			{
				out[j] = out[(j - 1) / 2];
				j = (j - 1) / 2;
			}
			out[j] = h;
		}
		else if (hit_before(&h, &out[0]))
		{
			int			j = 0;

			/* replace the largest, sift down */
			for (;;)
			{
				int			l = 2 * j + 1,
							big = j;
				VsGpuScanHit *cur = (big == j) ? &h : &out[big];

				if (l < m && hit_before(cur, &out[l]))
					big = l, cur = &out[l];
				if (l + 1 < m && hit_before(cur, &out[l + 1]))
					big = l + 1;
				if (big == j)
					break;
				out[j] = out[big];
				j = big;
			}
			out[j] = h;
		}
	}
	qsort(out, m, sizeof(VsGpuScanHit), compare_hits);
	return m;
}

/* emulated_key - the exact ordering key, rounded down to a float */
static float
emulated_key(int metric, const float *q, const float *x, int dim)
{
	double		d;
	float		f;

	if (metric == VS_METRIC_L2)
		return VsKernels.l2_squared(q, x, dim);
	d = VsMetricDistance((VsMetric) metric, q, x, dim);
	f = (float) d;
	if ((double) f > d)
		f = nextafterf(f, -INFINITY);
	return f;
}

/*
 * check_scan - a scan job's header against its segment; NULL when sound.
 */
static const char *
check_scan(const VsGpuScanJob *job, size_t size, uint64_t token, char *buf, size_t buflen)
{
	VsGpuScanJob check;
	const char *bad;

	if ((bad = check_head((const char *) job, size, sizeof(VsGpuScanJob), VSGPU_SCAN_MAGIC,
						  "a scan", token, buf, buflen)) != NULL)
		return bad;
	if (job->dim < 1 || job->topk < 1 || job->topk > 100000 || job->nclusters < 0 ||
		job->nclusters > 1000000 ||
		(job->metric != VS_METRIC_L2 && job->metric != VS_METRIC_IP &&
		 job->metric != VS_METRIC_COSINE))
		return "bad scan job";
	if (memchr(job->file, '\0', sizeof(job->file)) == NULL || job->file[0] == '/' ||
		strstr(job->file, "..") != NULL)
		return "bad segment file name";
	check = *job;
	VsGpuScanLayout(&check);
	if (check.total > size || memcmp(&check, job, sizeof(check)) != 0)
		return "scan job layout does not match its segment";
	return NULL;
}

/*
 * A group of a batch's pairs: one cluster, met by the queries of all its
 * pairs in one computation.
 */
typedef struct ScanGroup
{
	int			first;			/* pairs[first .. end - 1] */
	int			end;
	int			resident;		/* whether the round has its cluster */
	/* of its Resident, which may move in "residents" but stays pinned */
	void	   *dev;
	const float *host;
	uint32_t	count;
	int			dim;
	size_t		query_off;		/* floats into the round's queries */
	size_t		keys_off;		/* floats into the round's keys */
} ScanGroup;

/* the keys a round of scans holds at most, unless one group needs more */
#define ROUND_KEYS		((size_t) 64 << 20)

/* n floats rounded up to a multiple of 32 (128 bytes) */
#define ALIGN_FLOATS(n)	(((n) + 31) & ~(size_t) 31)

/* one (query, cluster) pair's selection, for select_task */
typedef struct SelectItem
{
	const float *keys;
	uint32_t	n;
	int			k;
	VsGpuScanHit *hits;
	int32_t    *found;
} SelectItem;

typedef struct SelectWork
{
	SelectItem *items;
	int			nitems;
	int			ntasks;
} SelectWork;

static void
select_task(void *arg, int task)
{
	SelectWork *sw = (SelectWork *) arg;
	int			lo = (int) ((int64_t) sw->nitems * task / sw->ntasks),
				hi = (int) ((int64_t) sw->nitems * (task + 1) / sw->ntasks);

	for (int i = lo; i < hi; i++)
		*sw->items[i].found = select_top(sw->items[i].keys, sw->items[i].n,
										 sw->items[i].k, sw->items[i].hits);
}

/* the emulation's keys of one group: rows in ranges, on the pool */
typedef struct EmulateWork
{
	const ScanGroup *sg;
	int			metric;
	int			nq;
	const float *queries;		/* nq x dim */
	float	   *keys;			/* nq x count */
	int			ntasks;
} EmulateWork;

static void
emulate_task(void *arg, int task)
{
	EmulateWork *ew = (EmulateWork *) arg;
	uint32_t	n = ew->sg->count;
	int			dim = ew->sg->dim;
	uint32_t	lo = (uint32_t) ((uint64_t) n * task / ew->ntasks),
				hi = (uint32_t) ((uint64_t) n * (task + 1) / ew->ntasks);

	for (int q = 0; q < ew->nq; q++)
		for (uint32_t x = lo; x < hi; x++)
			ew->keys[(size_t) q * n + x] =
				emulated_key(ew->metric, ew->queries + (size_t) q * dim,
							 ew->sg->host + (size_t) x * dim, dim);
}

/* scan_fail - mark a batch's work failed, keeping its first reason */
static void
scan_fail(ScanWork *w, const char *err)
{
	if (!w->failed)
		snprintf(w->err, sizeof(w->err), "%s", err);
	w->failed = 1;
}

/*
 * scan_round_run - the groups[first .. end - 1] of a round, whose
 * clusters are pinned resident: their keys (one trip to the device),
 * then every pair's selection, on the pool.  Returns -2 when the device
 * context is lost.
 */
static int
scan_round_run(ScanWork *works, const ScanPair *pairs, ScanGroup *groups, int first,
			   int end, size_t nqueries, size_t nkeys)
{
	float	   *queries = emu_alloc(sizeof(float) * (nqueries ? nqueries : 1));
	float	   *keys = emu_alloc(sizeof(float) * (nkeys ? nkeys : 1));
	VsGpuBoundsTask *tasks = emu_alloc(sizeof(VsGpuBoundsTask) * (end - first));
	SelectWork	sw = {emu_alloc(sizeof(SelectItem) * (groups[end - 1].end - groups[first].first)), 0, 0};
	int			ntasks = 0;
	int			threads = vs_pool_threads(helper_pool());
	char		err[256] = "";
	int			rc = 0;

	for (int g = first; g < end; g++)
	{
		ScanGroup  *sg = &groups[g];

		if (!sg->resident)
			continue;
		for (int i = sg->first; i < sg->end; i++)
			memcpy(queries + sg->query_off + (size_t) (i - sg->first) * sg->dim,
				   works[pairs[i].work].base + works[pairs[i].work].job->query_off,
				   sizeof(float) * sg->dim);
		tasks[ntasks].cluster = sg->dev;
		tasks[ntasks].metric = works[pairs[sg->first].work].job->metric;
		tasks[ntasks].nq = sg->end - sg->first;
		tasks[ntasks].query_off = sg->query_off;
		tasks[ntasks].keys_off = sg->keys_off;
		ntasks++;
	}

	if (ntasks == 0)
		;
	else if (emulate)
	{
		for (int g = first; g < end; g++)
		{
			ScanGroup  *sg = &groups[g];
			EmulateWork ew;

			if (!sg->resident)
				continue;
			use_backend_kernels(works[pairs[sg->first].work].job->kernel_path);
			ew.sg = sg;
			ew.metric = works[pairs[sg->first].work].job->metric;
			ew.nq = sg->end - sg->first;
			ew.queries = queries + sg->query_off;
			ew.keys = keys + sg->keys_off;
			ew.ntasks = (int) ((sg->count + 255) / 256);
			if (ew.ntasks > 4 * threads)
				ew.ntasks = 4 * threads;
			vs_pool_run(helper_pool(), 0, ew.ntasks, emulate_task, &ew);
		}
	}
	else
		rc = vsgpu_device_bounds(tasks, ntasks, queries, nqueries, keys, nkeys,
								 err, sizeof(err));

	/* each pair's nearest rows, from its row of its group's keys */
	for (int g = first; g < end; g++)
	{
		ScanGroup  *sg = &groups[g];

		if (!sg->resident)
			continue;
		for (int i = sg->first; i < sg->end; i++)
		{
			ScanWork   *w = &works[pairs[i].work];
			VsGpuScanCluster *cl = (VsGpuScanCluster *) (w->base + w->job->clusters_off) + pairs[i].cluster;
			SelectItem *it;

			if (rc != 0)
				scan_fail(w, err);
			if (w->failed)
				continue;
			it = &sw.items[sw.nitems++];
			it->keys = keys + sg->keys_off + (size_t) (i - sg->first) * sg->count;
			it->n = sg->count;
			it->k = w->job->topk;
			it->hits = (VsGpuScanHit *) (w->base + w->job->hits_off) +
				(size_t) pairs[i].cluster * w->job->topk;
			it->found = &cl->found;
		}
	}
	if (sw.nitems > 0)
	{
		sw.ntasks = sw.nitems < 4 * threads ? sw.nitems : 4 * threads;
		vs_pool_run(helper_pool(), 0, sw.ntasks, select_task, &sw);
	}
	free(sw.items);
	free(tasks);
	free(keys);
	free(queries);
	return rc;
}

/*
 * run_scans - a batch of SCAN requests: every (query, cluster) pair,
 * grouped by cluster so that each resident cluster meets all the batch's
 * queries for it in one computation.  The groups go in rounds, as many
 * as fit in ROUND_KEYS keys and in memory_limit together: each round's
 * clusters are made resident and stay so until its keys are computed,
 * all in one trip to the device, and selected on the pool.
 */
static void
run_scans(ScanWork *works, int nworks)
{
	ScanPair   *pairs;
	ScanGroup  *groups;
	int			npairs = 0;
	int			ngroups = 0;
	int			fatal = 0;

	for (int w = 0; w < nworks; w++)
		if (!works[w].failed)
			npairs += works[w].job->nclusters;
	pairs = emu_alloc(sizeof(ScanPair) * (npairs ? npairs : 1));
	groups = emu_alloc(sizeof(ScanGroup) * (npairs ? npairs : 1));
	npairs = 0;
	for (int w = 0; w < nworks; w++)
	{
		if (works[w].failed)
			continue;
		for (int c = 0; c < works[w].job->nclusters; c++)
		{
			pairs[npairs].work = w;
			pairs[npairs].cluster = c;
			npairs++;
		}
	}
	sort_works = works;
	qsort(pairs, npairs, sizeof(ScanPair), compare_pairs);

	/* the pairs of the same cluster (sorted together) form a group */
	for (int i = 0; i < npairs; i++)
	{
		if (i == 0 || compare_cluster(&pairs[i - 1], &pairs[i]) != 0)
		{
			groups[ngroups].first = i;
			groups[ngroups].resident = 0;
			ngroups++;
		}
		groups[ngroups - 1].end = i + 1;
	}

	for (int g = 0; g < ngroups && !fatal;)
	{
		int			first = g;
		size_t		nqueries = 0,
					nkeys = 0;

		scan_round++;
		for (; g < ngroups; g++)
		{
			ScanGroup  *sg = &groups[g];
			ScanWork   *w0 = &works[pairs[sg->first].work];
			const VsGpuScanCluster *c0 = pair_cluster(&pairs[sg->first]);
			int			nq = sg->end - sg->first;
			size_t		cells = (size_t) nq * c0->count;
			char		err[256] = "";
			int			busy = 0;
			Resident   *r;

			if (g > first && nkeys + cells > ROUND_KEYS)
				break;
			sg->resident = 0;
			if (c0->count == 0)
			{
				for (int i = sg->first; i < sg->end; i++)
					((VsGpuScanCluster *) (works[pairs[i].work].base +
										   works[pairs[i].work].job->clusters_off))[pairs[i].cluster].found = 0;
				continue;
			}
			r = resident_get(w0->job, c0, &busy, err, sizeof(err));
			if (r == NULL && busy)
				break;			/* the next round, when this one's are free */
			if (r == NULL)
			{
				for (int i = sg->first; i < sg->end; i++)
					scan_fail(&works[pairs[i].work], err);
				continue;
			}
			sg->resident = 1;
			sg->dev = r->dev;
			sg->host = r->host;
			sg->count = r->count;
			sg->dim = r->dim;
			sg->query_off = nqueries;
			sg->keys_off = nkeys;
			/* each group's matrices start on 128 bytes, as cuBLAS likes */
			nqueries += ALIGN_FLOATS((size_t) nq * w0->job->dim);
			nkeys += ALIGN_FLOATS(cells);
		}
		if (scan_round_run(works, pairs, groups, first, g, nqueries, nkeys) == -2)
			fatal = 1;
	}
	if (fatal)
		for (int w = 0; w < nworks; w++)
			scan_fail(&works[w], "the device context is lost");
	free(groups);
	free(pairs);

	for (int w = 0; w < nworks; w++)
	{
		if (works[w].failed)
		{
			one_line(works[w].err);
			reply("DONE %d %u ERROR %s", works[w].slot, works[w].seq, works[w].err);
		}
		else
			reply("DONE %d %u OK", works[w].slot, works[w].seq);
	}
	if (fatal)
	{
		fprintf(stderr, "vecstore-gpu-helper: the device context is lost; exiting\n");
		exit(1);
	}
}

/*
 * map_job - map a job segment by name; NULL with the reason in err.
 */
static char *
map_job(const char *name, size_t *size, char *err, size_t errlen)
{
	struct stat st;
	char	   *base;
	int			fd = shm_open(name, O_RDWR, 0);

	if (fd < 0)
	{
		snprintf(err, errlen, "cannot open segment %.64s: %s", name, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
	{
		close(fd);
		snprintf(err, errlen, "cannot size segment %.64s", name);
		return NULL;
	}
	base = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
	{
		snprintf(err, errlen, "cannot map segment %.64s: %s", name, strerror(errno));
		return NULL;
	}
	*size = st.st_size;
	return base;
}

/*
 * run_job - map the segment a request names and run its job.
 */
typedef int (*JobRunner) (char *base, uint64_t size, uint64_t token,
						  char *err, size_t errlen);

static void
run_job(int slot, unsigned seq, const char *name, uint64_t token, JobRunner runner)
{
	char		err[256] = "";
	size_t		size;
	char	   *base;
	int			rc;

	base = map_job(name, &size, err, sizeof(err));
	if (base == NULL)
	{
		reply("DONE %d %u ERROR %s", slot, seq, err);
		return;
	}
	rc = runner(base, (uint64_t) size, token, err, sizeof(err));
	munmap(base, size);
	if (rc == 0)
		reply("DONE %d %u OK", slot, seq);
	else
	{
		one_line(err);
		reply("DONE %d %u ERROR %s", slot, seq, err);
		if (rc == -2)
		{
			/* the device context is lost: a fresh helper gets a new one */
			fprintf(stderr, "vecstore-gpu-helper: %s; exiting\n", err);
			exit(1);
		}
	}
}

/*
 * serve - answer the worker until its input ends or it says QUIT.
 */
static int
is_work(const char *line)
{
	return strncmp(line, "ASSIGN ", 7) == 0 || strncmp(line, "SCAN ", 5) == 0 ||
		strncmp(line, "GRAPH ", 6) == 0;
}

static void
serve(void)
{
	static char lines[BATCH_MAX][LINE_MAX_LEN];
	static ScanWork works[BATCH_MAX];
	int			quit = 0;

	for (;;)
	{
		int			nlines = 0;
		int			work = 0;
		int			nworks;
		int64_t		deadline = 0;

		/* the first line of a batch: wait for it */
		while (!next_line(lines[0], LINE_MAX_LEN))
		{
			if (in_eof)
				return;
			fill(-1);
		}
		nlines = 1;
		if (is_work(lines[0]))
		{
			work = 1;
			deadline = now_us() + batch_delay_us;
		}

		/* then what else comes within the batching delay */
		while (work > 0 && nlines < BATCH_MAX)
		{
			int64_t		left = deadline - now_us();

			if (next_line(lines[nlines], LINE_MAX_LEN))
			{
				work += is_work(lines[nlines]);
				nlines++;
				continue;
			}
			if (left <= 0 || in_eof)
				break;
			fill((int) ((left + 999) / 1000));
		}

		if (work > 0)
			reply("BATCH %d", work);
		nworks = 0;
		for (int i = 0; i < nlines; i++)
		{
			char	   *line = lines[i];
			int			slot;
			unsigned	seq;
			char		name[256];
			unsigned long long token;

			if (strcmp(line, "STATUS") == 0)
				reply("STATUS %" PRIu64 " %d %" PRIu64,
					  emulate ? resident_bytes : vsgpu_device_used(), nresidents, resident_bytes);
			else if (strcmp(line, "QUIT") == 0)
				quit = 1;
			else if (sscanf(line, "ASSIGN %d %u %255s %llu", &slot, &seq, name, &token) == 4)
				run_job(slot, seq, name, (uint64_t) token, run_assign);
			else if (sscanf(line, "GRAPH %d %u %255s %llu", &slot, &seq, name, &token) == 4)
				run_job(slot, seq, name, (uint64_t) token, run_graph);
			else if (sscanf(line, "SCAN %d %u %255s %llu", &slot, &seq, name, &token) == 4)
			{
				ScanWork   *w = &works[nworks++];
				const char *bad;
				char		why[160];

				memset(w, 0, sizeof(*w));
				w->slot = slot;
				w->seq = seq;
				w->base = map_job(name, &w->size, w->err, sizeof(w->err));
				if (w->base == NULL)
					w->failed = 1;
				else
				{
					w->job = (VsGpuScanJob *) w->base;
					if ((bad = check_scan(w->job, w->size, token, why, sizeof(why))) != NULL)
					{
						snprintf(w->err, sizeof(w->err), "%s", bad);
						w->failed = 1;
					}
				}
			}
			else
				reply("ERROR unknown request \"%.64s\"", line);
		}
		if (nworks > 0)
			run_scans(works, nworks);
		for (int i = 0; i < nworks; i++)
			if (works[i].base)
				munmap(works[i].base, works[i].size);
		if (quit)
			return;
	}
}

int
main(int argc, char **argv)
{
	VsGpuDeviceInfo info;
	char		err[512];

	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--emulate") == 0)
			emulate = 1;
		else if (strcmp(argv[i], "--memory-limit") == 0 && i + 1 < argc)
			memory_limit = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--batch-delay") == 0 && i + 1 < argc)
			batch_delay_us = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--version") == 0)
		{
			printf("vecstore-gpu-helper (%s)\n",
				   vsgpu_built_with_cuda() ? "CUDA" : "without CUDA");
			return 0;
		}
		else
		{
			fprintf(stderr, "vecstore-gpu-helper: unknown argument \"%s\"\n", argv[i]);
			return 2;
		}
	}
	if (batch_delay_us < 0)
		batch_delay_us = 0;
	VsDistanceInit();

	if (emulate)
	{
		memset(&info, 0, sizeof(info));
		snprintf(info.name, sizeof(info.name), "CPU emulation");
		info.total_bytes = EMULATED_MEMORY;
	}
	else if (vsgpu_device_open(&info, err, sizeof(err)) != 0)
	{
		one_line(err);
		reply("NODEVICE %s", err);
		return 0;
	}
	if (memory_limit == 0 || (info.total_bytes > 0 && memory_limit > info.total_bytes))
		memory_limit = info.total_bytes / 10 * 8;
	reply("READY %d %" PRIu64 " %" PRIu64 " %s", VSGPU_PROTOCOL_VERSION,
		  info.total_bytes, memory_limit, info.name);

	serve();
	vs_pool_destroy(pool);
	if (!emulate)
		vsgpu_device_close();
	return 0;
}
