/*-------------------------------------------------------------------------
 *
 * vsgpu.c
 *	  The GPU service: a background worker that supervises the CUDA helper
 *	  process, its settings, and vecstore_gpu_status().
 *
 * CUDA never runs in the postmaster or in a backend (DESIGN.md section 5).
 * With vecstore in shared_preload_libraries, _PG_init registers one
 * background worker.  Unless the server's vecstore.gpu is off, the worker
 * starts cuda/vecstore-gpu-helper (installed beside vecstore.so) with its
 * standard input and output on pipes, reads the helper's first line
 * (READY with the device, or NODEVICE with the reason; see
 * cuda/vsgpu_helper.c), and then watches it:
 *
 *	- a helper that exits or is killed is started again after a backoff
 *	  (1 s, doubling to 60 s; back to 1 s once a helper has run for a
 *	  minute), and the status counts the restart and says why;
 *	- no driver, no device, no cuBLAS: said once in the log and in the
 *	  status; the worker tries again only when the configuration is
 *	  reloaded;
 *	- at shutdown, or when vecstore.gpu is turned off, it asks the helper
 *	  to quit and kills it if it does not; the helper also dies with the
 *	  worker (PR_SET_PDEATHSIG) and ends when its input closes.
 *
 * Backends read the state from shared memory: vecstore.gpu = on makes an
 * index build or scan fail with a clear error when no GPU is usable;
 * "auto" (the default) runs on the CPU then, with the same results.
 *
 * Requests.  A backend puts a job's data in a dynamic shared memory
 * segment (POSIX: the helper maps it by name), takes a free slot of the
 * ring in VsGpuShared, sets the worker's latch and waits on its own, up to
 * vecstore.gpu_timeout.  The worker sends queued slots to a ready helper
 * as lines (cuda/vsgpu_protocol.h) and, on the helper's DONE line, marks
 * the slot answered and sets the backend's latch.  A helper that dies
 * fails its outstanding slots at once; a backend that stops waiting
 * (timeout, cancel) withdraws a queued slot or abandons a sent one, whose
 * late answer the worker then drops.  Every failure sends the work back to
 * the CPU.  What goes to the GPU: the nearest-centroid searches of CREATE
 * INDEX (k-means rounds and row assignment, VsGpuOffloadAssign), and the
 * probed clusters of approximate index scans (VsGpuScan), which the helper
 * keeps resident and answers in batches grouped by cluster.
 *
 * IDENTIFICATION
 *	  src/vsgpu.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "storage/dsm.h"
#include "storage/dsm_impl.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "vsam.h"
#include "vsgpu.h"
#include "vsgpu_protocol.h"

/* request slots in the ring: more concurrent requests than this go to the CPU */
#define VS_GPU_SLOTS			128

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

typedef enum VsGpuSlotState
{
	VS_SLOT_FREE = 0,
	VS_SLOT_QUEUED,				/* filled by a backend, not yet sent */
	VS_SLOT_SENT,				/* with the helper */
	VS_SLOT_DONE,				/* answered: ok / error */
	VS_SLOT_ABANDONED			/* its backend stopped waiting; the answer is dropped */
} VsGpuSlotState;

/* one request in the ring, under VsGpuShared.mutex */
typedef struct VsGpuSlot
{
	VsGpuSlotState state;
	uint32		seq;			/* tells a late answer from the slot's next use */
	Latch	   *latch;			/* the waiting backend's */
	char		verb[16];		/* "ASSIGN" */
	char		segment[64];	/* the job's shared memory segment */
	uint64		token;			/* also in the job's header */
	bool		ok;
	char		error[160];
} VsGpuSlot;

/* helper states, as vecstore_gpu_status() names them */
typedef enum VsGpuState
{
	VS_GPU_STATE_DISABLED = 0,	/* vecstore.gpu = off in the server */
	VS_GPU_STATE_STARTING,		/* helper started, no answer yet */
	VS_GPU_STATE_RUNNING,		/* helper READY */
	VS_GPU_STATE_NO_DEVICE,		/* helper said NODEVICE */
	VS_GPU_STATE_RESTARTING,	/* helper died, waiting to start another */
	VS_GPU_STATE_NO_HELPER		/* the helper program is missing */
} VsGpuState;

static const char *const state_names[] = {
	"disabled", "starting", "running", "no device", "restarting", "no helper"
};

/* what the worker publishes, under "mutex" */
typedef struct VsGpuShared
{
	slock_t		mutex;
	VsGpuState	state;
	char		device[128];
	uint64		memory_total;
	uint64		memory_limit;
	uint64		memory_used;
	int			helper_pid;
	int			restarts;
	TimestampTz state_since;
	int64		fallbacks;
	char		fallback_reason[128];
	char		last_error[256];
	/* the request ring */
	Latch	   *worker_latch;	/* set by backends that queue a request */
	uint32		next_seq;
	int64		requests;		/* queued by backends */
	int			resident_clusters;	/* as the helper last said */
	int64		batches;		/* batches the helper took them in */
	int64		batched;		/* requests in those batches */
	VsGpuSlot	slots[VS_GPU_SLOTS];
	pg_atomic_uint32 open_scans;	/* approximate index scans open while the
									 * service was usable (VsGpuScanStart) */
} VsGpuShared;

/* GUCs */
int			vecstore_gpu = VS_GPU_AUTO;
static int	vecstore_gpu_memory = 0;	/* MB; 0: 80% of the device */
static bool vecstore_gpu_emulate = false;
static int	vecstore_gpu_batch_delay = 100;	/* microseconds */
static int	vecstore_gpu_timeout = 10000;	/* milliseconds */
static int	vecstore_gpu_min_scans = 0; /* 0: the server's CPUs */

static const struct config_enum_entry gpu_options[] = {
	{"off", VS_GPU_OFF, false},
	{"auto", VS_GPU_AUTO, false},
	{"on", VS_GPU_ON, false},
	{NULL, 0, false}
};

static VsGpuShared *gpu_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void vs_gpu_worker_main(Datum arg);

/* the helper, in the worker */
typedef struct Helper
{
	pid_t		pid;			/* 0: none */
	int			to_fd;			/* its standard input */
	int			from_fd;		/* its standard output */
	char		buf[1024];		/* a partial line from it */
	int			buflen;
	TimestampTz started;
	bool		ready;
	int			memory_mb;		/* the settings it was started with */
	bool		emulate;
	int			batch_delay;
} Helper;

static volatile sig_atomic_t got_sigterm = false;

/*
 * set_state - publish a state (and, when not NULL, the error that led to
 * it).
 */
static void
set_state(VsGpuState state, const char *error)
{
	SpinLockAcquire(&gpu_shared->mutex);
	if (gpu_shared->state != state)
		gpu_shared->state_since = GetCurrentTimestamp();
	gpu_shared->state = state;
	if (error)
		strlcpy(gpu_shared->last_error, error, sizeof(gpu_shared->last_error));
	if (state != VS_GPU_STATE_RUNNING)
	{
		gpu_shared->memory_used = 0;
		gpu_shared->resident_clusters = 0;
	}
	SpinLockRelease(&gpu_shared->mutex);
}

static void
gpu_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(VsGpuShared)));
}

static void
gpu_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	gpu_shared = ShmemInitStruct("vecstore gpu service", sizeof(VsGpuShared), &found);
	if (!found)
	{
		memset(gpu_shared, 0, sizeof(VsGpuShared));
		SpinLockInit(&gpu_shared->mutex);
		pg_atomic_init_u32(&gpu_shared->open_scans, 0);
		gpu_shared->state = VS_GPU_STATE_DISABLED;
		gpu_shared->state_since = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * VsGpuInit - the settings; with shared_preload_libraries, the shared
 * state and the background worker (from _PG_init).
 */
void
VsGpuInit(void)
{
	BackgroundWorker worker;

	DefineCustomEnumVariable("vecstore.gpu",
							 "Sets whether vecstore uses a GPU",
							 "\"auto\" uses one when the GPU service has a usable device and the CPU otherwise, with the same results; \"on\" makes index builds and scans fail when no GPU is usable; \"off\" never uses one (in the server's configuration, it also stops the GPU service).",
							 &vecstore_gpu,
							 VS_GPU_AUTO,
							 gpu_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("vecstore.gpu_memory",
							"Sets how much GPU memory the GPU service may use",
							"0 uses 80% of the device's memory.",
							&vecstore_gpu_memory,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("vecstore.gpu_emulate",
							 "Runs the GPU service without a device, for tests",
							 "The helper announces a \"CPU emulation\" device and stays up, so that the service's supervision can be tested on machines without a GPU.",
							 &vecstore_gpu_emulate,
							 false,
							 PGC_SIGHUP,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("vecstore.gpu_batch_delay",
							"Sets how long the GPU helper waits to batch requests, in microseconds",
							"After the first request of a batch, the helper waits this long for requests from other backends to run with it.",
							&vecstore_gpu_batch_delay,
							100, 0, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("vecstore.gpu_timeout",
							"Sets how long a backend waits for the GPU service to answer",
							"A request not answered in time is done on the CPU, with the same result.",
							&vecstore_gpu_timeout,
							10000, 10, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vecstore.gpu_min_scans",
							"Sets how many index scans must be open before one goes to the GPU service under auto",
							"Below this many open approximate vecstore scans (this one included) each has a CPU core, and its graph search there answers sooner than a round trip to the GPU. 0 means as many as the server has CPUs; 1 sends every scan.",
							&vecstore_gpu_min_scans,
							0, 0, 1000000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = gpu_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = gpu_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "vecstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "vs_gpu_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "vecstore gpu service");
	snprintf(worker.bgw_type, BGW_MAXLEN, "vecstore gpu service");
	RegisterBackgroundWorker(&worker);
}

/*
 * VsGpuCheck - called where index work could use the GPU ("what" names
 * it).  Under vecstore.gpu = on, an error when no GPU is usable; under
 * auto, "count" records that the work ran on the CPU, and why.
 */
void
VsGpuCheck(const char *what, bool count)
{
	VsGpuState state;
	char		error[256];

	/* under auto, only counted work needs the shared state: scans skip it */
	if (vecstore_gpu == VS_GPU_OFF || (vecstore_gpu == VS_GPU_AUTO && !count))
		return;
	if (gpu_shared == NULL)
	{
		if (vecstore_gpu == VS_GPU_ON)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("vecstore.gpu is \"on\" but the GPU service is not running"),
					 errdetail("The GPU service starts only when vecstore is in shared_preload_libraries."),
					 errhint("Add vecstore to shared_preload_libraries, or set vecstore.gpu to \"auto\".")));
		return;
	}

	SpinLockAcquire(&gpu_shared->mutex);
	state = gpu_shared->state;
	strlcpy(error, gpu_shared->last_error, sizeof(error));
	if (state != VS_GPU_STATE_RUNNING && count && vecstore_gpu == VS_GPU_AUTO)
	{
		gpu_shared->fallbacks++;
		snprintf(gpu_shared->fallback_reason, sizeof(gpu_shared->fallback_reason),
				 "%s ran on the CPU: the GPU service is \"%s\"", what, state_names[state]);
	}
	SpinLockRelease(&gpu_shared->mutex);

	if (state != VS_GPU_STATE_RUNNING && vecstore_gpu == VS_GPU_ON)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("vecstore.gpu is \"on\" but no GPU is usable for %s", what),
				 errdetail("The GPU service is \"%s\"%s%s.", state_names[state],
						   error[0] ? ": " : "", error),
				 errhint("Set vecstore.gpu to \"auto\" to run on the CPU when no GPU is usable.")));
}

/* ---- requests from backends ---- */

/*
 * VsGpuUsable - whether work may go to the GPU now: vecstore.gpu is not
 * off and the service has a running helper.
 *
 * Every approximate index scan asks, so this reads the state without the
 * spinlock (one aligned int; every querying backend taking the lock would
 * share one cache line, see VsGpuCheck).  A stale answer costs nothing:
 * gpu_request checks the state again under the lock, and a scan that finds
 * the service gone falls back to the CPU.
 */
bool
VsGpuUsable(void)
{
	if (vecstore_gpu == VS_GPU_OFF || gpu_shared == NULL)
		return false;
	return *((volatile VsGpuState *) &gpu_shared->state) == VS_GPU_STATE_RUNNING;
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

	if (os->counted && gpu_shared != NULL)
		pg_atomic_fetch_sub_u32(&gpu_shared->open_scans, 1);
	os->counted = false;
}

/*
 * VsGpuScanStart - whether an approximate index scan should ask the GPU
 * service.  Under on, whenever it is usable.  Under auto, only when at
 * least vecstore.gpu_min_scans such scans are open in the server, this
 * one included (0: as many as the server has CPUs): below that, each
 * scan has a core of its own, and searching its graphs there answers
 * one query sooner than a round trip to the GPU, whose gain is batching
 * many.  So a lone query's latency is the CPU's.  The scan counts as
 * open from here until "cxt" (its per-scan memory) is reset or deleted,
 * which an error does too.
 */
bool
VsGpuScanStart(MemoryContext cxt)
{
	OpenScan   *os;
	uint32		open;
	int			min_scans = vecstore_gpu_min_scans;

	if (!VsGpuUsable())
		return false;
	os = MemoryContextAllocZero(cxt, sizeof(OpenScan));
	os->cb.func = open_scan_end;
	os->cb.arg = os;
	MemoryContextRegisterResetCallback(cxt, &os->cb);
	open = pg_atomic_add_fetch_u32(&gpu_shared->open_scans, 1);
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
	if (gpu_shared == NULL)
		return;
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->fallbacks++;
	snprintf(gpu_shared->fallback_reason, sizeof(gpu_shared->fallback_reason),
			 "%s ran on the CPU: %s", what, why);
	SpinLockRelease(&gpu_shared->mutex);
}

/*
 * offload_failed - an operation's request failed for "why": under on an
 * error; under auto the fallback is counted and the rest of the operation
 * stays on the CPU.  Returns -1, for the caller to return.
 */
static int
offload_failed(VsGpuOffload *off, const char *why)
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
 * start stays on the CPU (VsGpuCheck counted that already).
 */
static bool
offload_open(VsGpuOffload *off)
{
	if (vecstore_gpu == VS_GPU_OFF || gpu_shared == NULL)
		return false;
	if (!VsGpuUsable() && off->jobs == 0 && vecstore_gpu == VS_GPU_AUTO)
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
	SpinLockAcquire(&gpu_shared->mutex);
	worker_latch = gpu_shared->worker_latch;
	if (gpu_shared->state == VS_GPU_STATE_RUNNING && worker_latch != NULL)
	{
		for (int i = 0; i < VS_GPU_SLOTS; i++)
		{
			VsGpuSlot  *slot = &gpu_shared->slots[i];

			if (slot->state != VS_SLOT_FREE)
				continue;
			ticket->slotno = i;
			ticket->seq = ++gpu_shared->next_seq;
			slot->seq = ticket->seq;
			slot->latch = MyLatch;
			strlcpy(slot->verb, verb, sizeof(slot->verb));
			strlcpy(slot->segment, segment, sizeof(slot->segment));
			slot->token = token;
			slot->ok = false;
			slot->error[0] = '\0';
			slot->state = VS_SLOT_QUEUED;
			gpu_shared->requests++;
			break;
		}
		if (ticket->slotno < 0)
			snprintf(why, whylen, "all %d GPU request slots are busy", VS_GPU_SLOTS);
	}
	else
		snprintf(why, whylen, "the GPU service is \"%s\"", state_names[gpu_shared->state]);
	SpinLockRelease(&gpu_shared->mutex);
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
	VsGpuSlot  *slot = &gpu_shared->slots[ticket->slotno];

	SpinLockAcquire(&gpu_shared->mutex);
	if (slot->seq == ticket->seq)
	{
		if (slot->state == VS_SLOT_QUEUED || slot->state == VS_SLOT_DONE)
			slot->state = VS_SLOT_FREE;
		else if (slot->state == VS_SLOT_SENT)
			slot->state = VS_SLOT_ABANDONED;
	}
	SpinLockRelease(&gpu_shared->mutex);
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
			VsGpuSlot  *slot = &gpu_shared->slots[ticket->slotno];
			long		left;

			SpinLockAcquire(&gpu_shared->mutex);
			if (slot->state == VS_SLOT_DONE && slot->seq == ticket->seq)
			{
				ok = slot->ok;
				if (!ok)
					snprintf(why, whylen, "the GPU helper failed: %s", slot->error);
				slot->state = VS_SLOT_FREE;
				done = true;
			}
			SpinLockRelease(&gpu_shared->mutex);
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
 * VsGpuAssignRows - the batch of vectors an assignment should hand to
 * VsKmeansAssign for the GPU to do it well: a transfer segment's worth,
 * or 0 when no GPU is usable.
 */
int
VsGpuAssignRows(int k, int dim)
{
	if (!VsGpuUsable())
		return 0;
	return assign_slice(k, dim);
}

/*
 * VsGpuOffloadAssign - VsKmeansHooks.offload_assign for index builds: the
 * nearest centroid of each vector, computed by the GPU helper (cuBLAS GEMM
 * and an arg-min; in emulation, the same CPU code as VsKmeansAssign).  The
 * vectors go in slices of one transfer segment.  0 when the helper
 * answered all of them; -1 sends the caller to the CPU: vecstore.gpu off,
 * no service, a small job, or a failure.  A failure turns the offload off
 * for the rest of the build (it is counted as a fallback, with its reason)
 * under auto, and is an error under on.
 */
int
VsGpuOffloadAssign(void *arg, const float *centroids, int k, int dim,
				   VsMetric metric, const float *vectors, int n,
				   int32_t *out, float *out_dist)
{
	VsGpuOffload *off = (VsGpuOffload *) arg;
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
		job.magic = VSGPU_ASSIGN_MAGIC;
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
			job.token = next_token();
			VsGpuAssignLayout(&job);
			memcpy(base, &job, sizeof(job));
			memcpy(base + job.vectors_off, vectors + (Size) done * dim,
				   (Size) rows * dim * sizeof(float));
			if (!gpu_request("ASSIGN", name, job.token, why, sizeof(why)))
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

/* a graph job between VsGpuGraphBegin and VsGpuGraphEnd */
struct VsGpuGraphRequest
{
	VsGpuOffload *off;
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
	VsGpuGraphRequest *req = (VsGpuGraphRequest *) arg;

	if (req->outstanding && gpu_shared != NULL)
		gpu_abandon(&req->ticket);
	req->outstanding = false;
}

/*
 * VsGpuGraphBegin - send the HNSW graph of one cluster's n vectors to be
 * built by the GPU service, and return at once: the helper computes each
 * row's nearest others (one GEMM of the cluster against itself and a
 * selection per row; exact on the CPU in emulation) and assembles the
 * graph from those lists on up to "threads" threads of its own
 * (VsHnswBuildOptions.neighbours and .parallel), instead of one search per
 * row on this backend's one core.  opt: the graph's m, ef_construction
 * and seed; the lists are max(ef_construction, m) long, the candidates an
 * insertion would consider.  graph_size: VsHnswSerializedSize(n, metric,
 * opt).  The caller goes on with other work (the next cluster) and
 * collects the graph with VsGpuGraphEnd.
 *
 * NULL means the CPU builds this graph: GPU off or unusable, a cluster
 * too large for one job (not counted), or a failure, which ends the
 * offload for the rest of the build and is counted under auto (an error
 * under on), as for the assignment.  The request lives in the current
 * memory context; an error before VsGpuGraphEnd abandons it when that
 * context goes.
 */
VsGpuGraphRequest *
VsGpuGraphBegin(VsGpuOffload *off, const float *vectors, int n, int dim,
				VsMetric metric, const VsHnswBuildOptions *opt, int threads,
				Size graph_size)
{
	char		why[256] = "";
	char		name[64];
	VsGpuGraphRequest *req;
	VsGpuGraphJob *job;

	if (off == NULL || off->disabled || n < 2)
		return NULL;
	if (!offload_open(off))
		return NULL;

	req = palloc0(sizeof(VsGpuGraphRequest));
	req->off = off;
	job = &req->job;
	job->magic = VSGPU_GRAPH_MAGIC;
	job->kernel_path = (int32) VsKernelsActivePath;
	job->metric = (int32) metric;
	job->dim = dim;
	job->n = n;
	job->m = opt->m;
	job->ef_construction = opt->ef_construction;
	job->k = Max(opt->ef_construction, opt->m);
	job->threads = Max(threads, 1);
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

	job->token = next_token();
	memcpy(dsm_segment_address(req->seg), job, sizeof(*job));
	memcpy((char *) dsm_segment_address(req->seg) + job->vectors_off, vectors,
		   (Size) n * dim * sizeof(float));
	req->cb.func = graph_request_reset;
	req->cb.arg = req;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &req->cb);
	if (!gpu_submit("GRAPH", name, job->token, &req->ticket, why, sizeof(why)))
	{
		dsm_detach(req->seg);
		offload_failed(off, why);
		return NULL;
	}
	req->outstanding = true;
	return req;
}

/*
 * VsGpuGraphEnd - wait for a graph VsGpuGraphBegin sent and copy it into
 * "graph" (the job's graph_size bytes).  The answer is validated
 * (VsHnswValidate) first, so a helper's fault can cost recall, never a
 * bad read.  0 on success; -1 means the CPU builds this graph (the failure
 * is counted, or an error under on, as VsGpuGraphBegin's; after another
 * job of the build failed, it is not waited for).
 */
int
VsGpuGraphEnd(VsGpuGraphRequest *req, void *graph)
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
 * VsGpuScan - the "topk" rows with the smallest ordering keys of each of
 * "ncl" clusters of the segment file behind "body", for one query, from
 * the GPU helper (resident clusters; see VsGpuScanJob for what the keys
 * are).  offsets: where each cluster's vectors start in the file; counts:
 * its rows.  found[i] answers go to hits + i * topk, nearest first.  0 on
 * success; -1 sends the caller to the CPU (a failure is counted and ends
 * the offload for the scan under auto, and is an error under on).
 */
int
VsGpuScan(VsGpuOffload *off, const char *body, int metric, int dim, const float *query,
		  int topk, int ncl, const uint64 *offsets, const uint32 *counts,
		  int32 *found, VsGpuScanHit *hits)
{
	char		why[256] = "";
	char		name[64];
	char	   *path;
	uint64		ino = 0,
				size = 0;
	dsm_segment *seg = NULL;
	VsGpuScanJob job;
	bool		ok = false;

	if (off->disabled || ncl <= 0)
		return -1;

	path = VsSegmentFile(body, &ino, &size);
	memset(&job, 0, sizeof(job));
	if (path == NULL)
		snprintf(why, sizeof(why), "the segment file is not mapped");
	else if (strlen(path) >= VSGPU_PATH_LEN)
		snprintf(why, sizeof(why), "the segment file's path is too long");
	else
	{
		job.magic = VSGPU_SCAN_MAGIC;
		job.kernel_path = (int32) VsKernelsActivePath;
		job.token = next_token();
		job.metric = metric;
		job.dim = dim;
		job.topk = topk;
		job.nclusters = ncl;
		job.file_ino = ino;
		job.file_size = size;
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
		ok = gpu_request("SCAN", name, job.token, why, sizeof(why));
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
				hits[(Size) i * topk + j] = *x;
			}
		}
		dsm_detach(seg);
	}
	if (path)
		pfree(path);
	if (ok)
	{
		off->jobs++;
		return 0;
	}

	return offload_failed(off, why);
}

/* ---- the worker ---- */

static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * helper_path - where the helper program is installed: beside vecstore.so.
 */
static void
helper_path(char *path)
{
	char		dir[MAXPGPATH];

	get_pkglib_path(my_exec_path, dir);
	snprintf(path, MAXPGPATH, "%s/vecstore-gpu-helper", dir);
}

/*
 * helper_start - fork and exec the helper with pipes on its standard input
 * and output (its standard error goes to the server log).  False, with
 * the reason in the status, when it could not be started.
 */
static bool
helper_start(Helper *h)
{
	char		path[MAXPGPATH];
	char		limit[32];
	char		delay[32];
	int			in[2],
				out[2];
	pid_t		pid;

	helper_path(path);
	if (access(path, X_OK) != 0)
	{
		char		msg[256];

		snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
		ereport(LOG,
				(errmsg("vecstore: the GPU helper program is missing; the index runs on the CPU"),
				 errdetail("%s", msg)));
		set_state(VS_GPU_STATE_NO_HELPER, msg);
		return false;
	}
	snprintf(limit, sizeof(limit), "%llu",
			 (unsigned long long) vecstore_gpu_memory * 1024 * 1024);
	snprintf(delay, sizeof(delay), "%d", vecstore_gpu_batch_delay);

	if (pipe(in) != 0 || pipe(out) != 0)
	{
		set_state(VS_GPU_STATE_RESTARTING, "could not create pipes for the GPU helper");
		return false;
	}
	pid = fork();
	if (pid < 0)
	{
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		set_state(VS_GPU_STATE_RESTARTING, "could not fork the GPU helper");
		return false;
	}
	if (pid == 0)
	{
		/* the child: no PostgreSQL calls from here on */
		sigset_t	all;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		closefrom(STDERR_FILENO + 1);
		if (vecstore_gpu_emulate)
			execl(path, path, "--memory-limit", limit, "--batch-delay", delay,
				  "--emulate", (char *) NULL);
		else
			execl(path, path, "--memory-limit", limit, "--batch-delay", delay,
				  (char *) NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	h->pid = pid;
	h->to_fd = in[1];
	h->from_fd = out[0];
	h->buflen = 0;
	h->ready = false;
	h->started = GetCurrentTimestamp();
	h->memory_mb = vecstore_gpu_memory;
	h->emulate = vecstore_gpu_emulate;
	h->batch_delay = vecstore_gpu_batch_delay;

	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->helper_pid = (int) pid;
	SpinLockRelease(&gpu_shared->mutex);
	set_state(VS_GPU_STATE_STARTING, NULL);
	return true;
}

/*
 * slot_finish - answer a slot (caller holds the mutex) and wake its
 * backend; an abandoned slot is freed instead.
 */
static void
slot_finish(VsGpuSlot *slot, bool ok, const char *error)
{
	if (slot->state == VS_SLOT_ABANDONED)
	{
		slot->state = VS_SLOT_FREE;
		return;
	}
	slot->ok = ok;
	strlcpy(slot->error, error ? error : "", sizeof(slot->error));
	slot->state = VS_SLOT_DONE;
	if (slot->latch)
		SetLatch(slot->latch);
}

/*
 * slot_answer - the helper's "DONE <slot> <seq> OK|ERROR <why>".
 */
static void
slot_answer(const char *rest)
{
	int			i;
	unsigned	seq;
	int			n = 0;

	if (sscanf(rest, "%d %u %n", &i, &seq, &n) < 2 || i < 0 || i >= VS_GPU_SLOTS)
	{
		ereport(LOG, (errmsg("vecstore: GPU helper sent a bad answer: %s", rest)));
		return;
	}
	rest += n;
	SpinLockAcquire(&gpu_shared->mutex);
	if (gpu_shared->slots[i].seq == seq &&
		(gpu_shared->slots[i].state == VS_SLOT_SENT ||
		 gpu_shared->slots[i].state == VS_SLOT_ABANDONED))
	{
		bool		ok = (strncmp(rest, "OK", 2) == 0);

		slot_finish(&gpu_shared->slots[i], ok,
					ok ? NULL : (strncmp(rest, "ERROR ", 6) == 0 ? rest + 6 : rest));
		if (!ok)
			strlcpy(gpu_shared->last_error, rest, sizeof(gpu_shared->last_error));
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/*
 * slots_fail - answer every slot in "from" state (queued or sent) with an
 * error: the helper is gone or not running.
 */
static void
slots_fail(VsGpuSlotState from, const char *why)
{
	SpinLockAcquire(&gpu_shared->mutex);
	for (int i = 0; i < VS_GPU_SLOTS; i++)
	{
		VsGpuSlot  *slot = &gpu_shared->slots[i];

		if (slot->state == from ||
			(from == VS_SLOT_SENT && slot->state == VS_SLOT_ABANDONED))
			slot_finish(slot, false, why);
	}
	SpinLockRelease(&gpu_shared->mutex);
}

/*
 * slots_dispatch - send the queued requests to a ready helper.  The lines
 * are short and at most VS_GPU_SLOTS are outstanding, far below what a
 * pipe buffers, so the writes do not block.
 */
static void
slots_dispatch(Helper *h)
{
	char		lines[VS_GPU_SLOTS][128];
	int			nlines = 0;

	SpinLockAcquire(&gpu_shared->mutex);
	for (int i = 0; i < VS_GPU_SLOTS; i++)
	{
		VsGpuSlot  *slot = &gpu_shared->slots[i];

		if (slot->state != VS_SLOT_QUEUED)
			continue;
		snprintf(lines[nlines++], sizeof(lines[0]), "%s %d %u %s " UINT64_FORMAT "\n",
				 slot->verb, i, slot->seq, slot->segment, slot->token);
		slot->state = VS_SLOT_SENT;
	}
	SpinLockRelease(&gpu_shared->mutex);

	for (int i = 0; i < nlines; i++)
	{
		if (write(h->to_fd, lines[i], strlen(lines[i])) < 0)
			break;				/* the helper is gone: its slots fail when reaped */
	}
}

/*
 * helper_line - act on one line from the helper.
 */
static void
helper_line(Helper *h, char *line, bool *nodevice_logged)
{
	if (strncmp(line, "READY ", 6) == 0)
	{
		unsigned long long total = 0,
					limit = 0;
		int			n = 0;

		if (sscanf(line + 6, "%llu %llu %n", &total, &limit, &n) >= 2)
		{
			SpinLockAcquire(&gpu_shared->mutex);
			gpu_shared->memory_total = total;
			gpu_shared->memory_limit = limit;
			strlcpy(gpu_shared->device, line + 6 + n, sizeof(gpu_shared->device));
			SpinLockRelease(&gpu_shared->mutex);
			h->ready = true;
			set_state(VS_GPU_STATE_RUNNING, NULL);
			ereport(LOG,
					(errmsg("vecstore: GPU helper (pid %d) started on %s",
							(int) h->pid, line + 6 + n)));
		}
	}
	else if (strncmp(line, "NODEVICE ", 9) == 0)
	{
		if (!*nodevice_logged)
			ereport(LOG,
					(errmsg("vecstore: no usable GPU (%s); the index runs on the CPU",
							line + 9)));
		*nodevice_logged = true;
		set_state(VS_GPU_STATE_NO_DEVICE, line + 9);
	}
	else if (strncmp(line, "DONE ", 5) == 0)
		slot_answer(line + 5);
	else if (strncmp(line, "BATCH ", 6) == 0)
	{
		long		n = strtol(line + 6, NULL, 10);

		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->batches++;
		gpu_shared->batched += Max(n, 0);
		SpinLockRelease(&gpu_shared->mutex);
	}
	else if (strncmp(line, "STATUS ", 7) == 0)
	{
		unsigned long long used = 0,
					resident_bytes = 0;
		int			resident = 0;

		(void) sscanf(line + 7, "%llu %d %llu", &used, &resident, &resident_bytes);
		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->memory_used = used;
		gpu_shared->resident_clusters = resident;
		SpinLockRelease(&gpu_shared->mutex);
	}
	else
		ereport(LOG, (errmsg("vecstore: GPU helper said: %s", line)));
}

/*
 * helper_read - read what the helper wrote, line by line.
 */
static void
helper_read(Helper *h, bool *nodevice_logged)
{
	for (;;)
	{
		ssize_t		n = read(h->from_fd, h->buf + h->buflen, sizeof(h->buf) - 1 - h->buflen);
		char	   *start;
		char	   *nl;

		if (n <= 0)
			return;				/* nothing more now, or EOF (reaped later) */
		h->buflen += n;
		h->buf[h->buflen] = '\0';
		start = h->buf;
		while ((nl = strchr(start, '\n')) != NULL)
		{
			*nl = '\0';
			helper_line(h, start, nodevice_logged);
			start = nl + 1;
		}
		h->buflen -= (start - h->buf);
		memmove(h->buf, start, h->buflen);
		if (h->buflen == sizeof(h->buf) - 1)
			h->buflen = 0;		/* a line too long to be ours: drop it */
	}
}

/*
 * helper_reap - whether the helper has exited; if so, read what it still
 * wrote, describe how it ended in "why" and forget it.
 */
static bool
helper_reap(Helper *h, char *why, size_t whylen, bool *nodevice_logged)
{
	int			status;
	pid_t		rc;

	if (h->pid == 0)
		return false;
	rc = waitpid(h->pid, &status, WNOHANG);
	if (rc != h->pid)
		return false;
	helper_read(h, nodevice_logged);	/* its last words */
	if (WIFSIGNALED(status))
		snprintf(why, whylen, "the GPU helper (pid %d) was terminated by signal %d",
				 (int) h->pid, WTERMSIG(status));
	else
		snprintf(why, whylen, "the GPU helper (pid %d) exited with code %d",
				 (int) h->pid, WEXITSTATUS(status));
	close(h->to_fd);
	close(h->from_fd);
	h->pid = 0;
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->helper_pid = 0;
	SpinLockRelease(&gpu_shared->mutex);
	slots_fail(VS_SLOT_SENT, why);
	return true;
}

/*
 * helper_stop - ask the helper to quit, wait up to 5 s, then kill it.
 */
static void
helper_stop(Helper *h)
{
	char		why[128];
	bool		logged = true;

	if (h->pid == 0)
		return;
	if (write(h->to_fd, "QUIT\n", 5) < 0)
	{
		/* it is gone already; reaped below */
	}
	for (int i = 0; i < 50; i++)
	{
		if (helper_reap(h, why, sizeof(why), &logged))
			return;
		pg_usleep(100 * 1000L);
	}
	kill(h->pid, SIGKILL);
	while (h->pid != 0 && !helper_reap(h, why, sizeof(why), &logged))
		pg_usleep(10 * 1000L);
}

/*
 * vs_gpu_worker_main - the background worker.
 */
void
vs_gpu_worker_main(Datum arg)
{
	Helper		h;
	bool		nodevice_logged = false;
	bool		gave_up = false;	/* no device / no helper: wait for a reload */
	long		backoff_ms = 1000;
	TimestampTz next_start = 0;
	TimestampTz last_status = 0;

	memset(&h, 0, sizeof(h));
	pqsignal(SIGTERM, worker_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* a previous worker's requests died with its helper */
	slots_fail(VS_SLOT_SENT, "the GPU service restarted");
	slots_fail(VS_SLOT_QUEUED, "the GPU service restarted");
	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->worker_latch = MyLatch;
	SpinLockRelease(&gpu_shared->mutex);

	for (;;)
	{
		char		why[256];
		bool		want;
		TimestampTz now;
		int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;

		if (got_sigterm)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			gave_up = false;	/* a reload retries a device or helper */
			if (h.pid != 0 && (h.memory_mb != vecstore_gpu_memory ||
							   h.emulate != vecstore_gpu_emulate ||
							   h.batch_delay != vecstore_gpu_batch_delay))
				helper_stop(&h);	/* restarted below with the new settings */
			backoff_ms = 1000;
			next_start = 0;
		}

		want = (vecstore_gpu != VS_GPU_OFF);
		now = GetCurrentTimestamp();

		if (h.pid != 0)
			helper_read(&h, &nodevice_logged);
		if (helper_reap(&h, why, sizeof(why), &nodevice_logged))
		{
			SpinLockAcquire(&gpu_shared->mutex);
			if (gpu_shared->state == VS_GPU_STATE_NO_DEVICE)
				gave_up = true;
			SpinLockRelease(&gpu_shared->mutex);
			if (!gave_up && want)
			{
				/* it died: count it, start another after the backoff */
				if (TimestampDifferenceExceeds(h.started, now, 60 * 1000))
					backoff_ms = 1000;
				SpinLockAcquire(&gpu_shared->mutex);
				gpu_shared->restarts++;
				SpinLockRelease(&gpu_shared->mutex);
				ereport(LOG,
						(errmsg("vecstore: %s; starting another in %ld ms", why, backoff_ms)));
				set_state(VS_GPU_STATE_RESTARTING, why);
				next_start = TimestampTzPlusMilliseconds(now, backoff_ms);
				backoff_ms = Min(backoff_ms * 2, 60 * 1000);
			}
		}

		if (!want)
		{
			helper_stop(&h);
			set_state(VS_GPU_STATE_DISABLED, NULL);
		}
		else if (h.pid == 0 && !gave_up && now >= next_start)
		{
			if (!helper_start(&h))
			{
				SpinLockAcquire(&gpu_shared->mutex);
				gave_up = (gpu_shared->state == VS_GPU_STATE_NO_HELPER);
				SpinLockRelease(&gpu_shared->mutex);
				next_start = TimestampTzPlusMilliseconds(now, backoff_ms);
			}
		}

		/* requests: to a ready helper, else answered with the reason */
		if (h.pid != 0 && h.ready)
			slots_dispatch(&h);
		else if (h.pid == 0 || !want)
		{
			char		msg[64];
			VsGpuState	state;

			SpinLockAcquire(&gpu_shared->mutex);
			state = gpu_shared->state;
			SpinLockRelease(&gpu_shared->mutex);
			snprintf(msg, sizeof(msg), "the GPU service is \"%s\"", state_names[state]);
			slots_fail(VS_SLOT_QUEUED, msg);
		}

		/* the device memory in use, every few seconds */
		if (h.pid != 0 && h.ready && TimestampDifferenceExceeds(last_status, now, 5000))
		{
			if (write(h.to_fd, "STATUS\n", 7) < 0)
			{
				/* the helper is gone: reaped on the next round */
			}
			last_status = now;
		}

		if (h.pid != 0)
			events |= WL_SOCKET_READABLE;
		(void) WaitLatchOrSocket(MyLatch, events, h.pid != 0 ? h.from_fd : PGINVALID_SOCKET,
								 h.pid != 0 && !h.ready ? 100 : 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}

	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->worker_latch = NULL;
	SpinLockRelease(&gpu_shared->mutex);
	helper_stop(&h);
	set_state(VS_GPU_STATE_DISABLED, NULL);
	slots_fail(VS_SLOT_QUEUED, "the GPU service stopped");
	proc_exit(0);
}

PG_FUNCTION_INFO_V1(vecstore_gpu_status);
/*
 * vecstore_gpu_status() - one row: the GPU service as the worker last saw
 * it, and the requests backends sent it.
 */
#define GPU_STATUS_COLS	17
Datum
vecstore_gpu_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[GPU_STATUS_COLS];
	bool		nulls[GPU_STATUS_COLS];
	VsGpuShared *snap;

	tupdesc = VsResultRowType(fcinfo, GPU_STATUS_COLS);
	memset(nulls, 0, sizeof(nulls));

	if (gpu_shared == NULL)
	{
		values[0] = CStringGetTextDatum("not loaded");
		for (int i = 1; i < GPU_STATUS_COLS; i++)
			nulls[i] = true;
		values[GPU_STATUS_COLS - 1] = CStringGetTextDatum("vecstore is not in shared_preload_libraries");
		nulls[GPU_STATUS_COLS - 1] = false;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}

	snap = palloc(sizeof(VsGpuShared));
	SpinLockAcquire(&gpu_shared->mutex);
	memcpy(snap, gpu_shared, sizeof(VsGpuShared));
	SpinLockRelease(&gpu_shared->mutex);

	values[0] = CStringGetTextDatum(state_names[snap->state]);
	values[1] = CStringGetTextDatum(snap->device);
	nulls[1] = (snap->device[0] == '\0');
	values[2] = Int64GetDatum((int64) snap->memory_total);
	nulls[2] = (snap->device[0] == '\0');
	values[3] = Int64GetDatum((int64) snap->memory_limit);
	nulls[3] = (snap->device[0] == '\0');
	values[4] = Int64GetDatum((int64) snap->memory_used);
	nulls[4] = (snap->state != VS_GPU_STATE_RUNNING);
	values[5] = Int32GetDatum(snap->helper_pid);
	nulls[5] = (snap->helper_pid == 0);
	values[6] = Int32GetDatum(snap->restarts);
	values[7] = TimestampTzGetDatum(snap->state_since);
	values[8] = Int64GetDatum(snap->fallbacks);
	values[9] = CStringGetTextDatum(snap->fallback_reason);
	nulls[9] = (snap->fallback_reason[0] == '\0');
	values[10] = Int32GetDatum(snap->resident_clusters);
	values[11] = Int64GetDatum(snap->requests);
	{
		int			in_flight = 0;

		for (int i = 0; i < VS_GPU_SLOTS; i++)
			in_flight += (snap->slots[i].state != VS_SLOT_FREE);
		values[12] = Int32GetDatum(in_flight);
	}
	values[13] = Int32GetDatum((int32) pg_atomic_read_u32(&gpu_shared->open_scans));
	values[14] = Int64GetDatum(snap->batches);
	values[15] = Float8GetDatum(snap->batches > 0 ?
								(double) snap->batched / snap->batches : 0.0);
	nulls[15] = (snap->batches == 0);
	values[16] = CStringGetTextDatum(snap->last_error);
	nulls[16] = (snap->last_error[0] == '\0');
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
