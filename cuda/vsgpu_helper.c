/*-------------------------------------------------------------------------
 *
 * vsgpu_helper.c
 *	  vecstore-gpu-helper: the one process that touches CUDA.
 *
 * The vecstore background worker (src/vsgpu.c) starts this program with
 * its standard input and output on pipes, and talks to it in lines of
 * text.  The helper first opens the device and announces the outcome:
 *
 *	READY <total bytes> <memory limit bytes> <device name>
 *	NODEVICE <reason>
 *
 * (after NODEVICE it exits).  Then it answers the worker's requests until
 * its input ends (the worker stopped or died) or QUIT:
 *
 *	STATUS		->	STATUS <device bytes in use>
 *	QUIT		->	(exits 0)
 *
 * and the requests that carry work, with their data in a shared memory
 * segment the helper maps by name (cuda/vsgpu_protocol.h):
 *
 *	ASSIGN <slot> <seq> <segment> <token>
 *		->	DONE <slot> <seq> OK | DONE <slot> <seq> ERROR <why>
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
 *							code (src/vskmeans.c), so that the service and
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
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "vsgpu_protocol.h"
#include "vskmeans.h"

#define LINE_MAX_LEN	1024

/* requests read together at most */
#define BATCH_MAX		64

static int	emulate = 0;
static uint64_t memory_limit = 0;
static long batch_delay_us = 100;

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
 * run_assign - one ASSIGN job in a mapped segment of "size" bytes.  0 on
 * success, else -1 with the reason in err.
 */
static int
run_assign(char *base, uint64_t size, uint64_t token, char *err, size_t errlen)
{
	VsGpuAssignJob *job = (VsGpuAssignJob *) base;
	VsGpuAssignJob check;
	const float *c;
	const float *x;
	int32_t    *out;
	float	   *dist;
	float	   *norms;
	int			rc = 0;

	if (size < sizeof(VsGpuAssignJob) || job->magic != VSGPU_ASSIGN_MAGIC)
	{
		snprintf(err, errlen, "not an assignment job");
		return -1;
	}
	if (job->token != token)
	{
		snprintf(err, errlen, "the segment holds another job");
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
		/* the backend's kernels, so that the results are its own */
		if (VsKernelsForPath((VsKernelPath) job->kernel_path) != NULL)
		{
			VsKernels = *VsKernelsForPath((VsKernelPath) job->kernel_path);
			VsKernelsActivePath = (VsKernelPath) job->kernel_path;
		}
		else
			VsDistanceInit();
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

/*
 * run_job - map the segment a request names and run its job.
 */
static void
run_job(int slot, unsigned seq, const char *name, uint64_t token)
{
	char		err[256] = "";
	struct stat st;
	char	   *base;
	int			fd;
	int			rc;

	fd = shm_open(name, O_RDWR, 0);
	if (fd < 0)
	{
		reply("DONE %d %u ERROR cannot open segment %.64s: %s", slot, seq, name,
			  strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || st.st_size <= 0)
	{
		close(fd);
		reply("DONE %d %u ERROR cannot size segment %.64s", slot, seq, name);
		return;
	}
	base = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (base == MAP_FAILED)
	{
		reply("DONE %d %u ERROR cannot map segment %.64s: %s", slot, seq, name,
			  strerror(errno));
		return;
	}
	rc = run_assign(base, (uint64_t) st.st_size, token, err, sizeof(err));
	munmap(base, st.st_size);
	if (rc == 0)
		reply("DONE %d %u OK", slot, seq);
	else
	{
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
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
static void
serve(void)
{
	static char lines[BATCH_MAX][LINE_MAX_LEN];

	for (;;)
	{
		int			nlines = 0;
		int			work = 0;
		int64_t		deadline = 0;

		/* the first line of a batch: wait for it */
		while (!next_line(lines[0], LINE_MAX_LEN))
		{
			if (in_eof)
				return;
			fill(-1);
		}
		nlines = 1;
		if (strncmp(lines[0], "ASSIGN ", 7) == 0)
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
				work += (strncmp(lines[nlines], "ASSIGN ", 7) == 0);
				nlines++;
				continue;
			}
			if (left <= 0 || in_eof)
				break;
			fill((int) ((left + 999) / 1000));
		}

		if (work > 0)
			reply("BATCH %d", work);
		for (int i = 0; i < nlines; i++)
		{
			char	   *line = lines[i];
			int			slot;
			unsigned	seq;
			char		name[256];
			unsigned long long token;

			if (strcmp(line, "STATUS") == 0)
				reply("STATUS %" PRIu64, emulate ? (uint64_t) 0 : vsgpu_device_used());
			else if (strcmp(line, "QUIT") == 0)
				return;
			else if (sscanf(line, "ASSIGN %d %u %255s %llu", &slot, &seq, name, &token) == 4)
				run_job(slot, seq, name, (uint64_t) token);
			else
				reply("ERROR unknown request \"%.64s\"", line);
		}
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
	}
	else if (vsgpu_device_open(&info, err, sizeof(err)) != 0)
	{
		/* one line, no newlines inside */
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		reply("NODEVICE %s", err);
		return 0;
	}
	if (memory_limit == 0 || (info.total_bytes > 0 && memory_limit > info.total_bytes))
		memory_limit = info.total_bytes / 10 * 8;
	reply("READY %" PRIu64 " %" PRIu64 " %s", info.total_bytes, memory_limit, info.name);

	serve();
	if (!emulate)
		vsgpu_device_close();
	return 0;
}
