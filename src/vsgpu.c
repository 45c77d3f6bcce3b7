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
 * "auto" (the default) runs on the CPU then, with the same results.  This
 * version runs all index work on the CPU: the helper is supervised and
 * reported, the GPU kernels (k-means, resident clusters, batched rerank)
 * are not in it yet.
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
#include <sys/wait.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "vsgpu.h"

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
} VsGpuShared;

/* GUCs */
int			vecstore_gpu = VS_GPU_AUTO;
static int	vecstore_gpu_memory = 0;	/* MB; 0: 80% of the device */
static bool vecstore_gpu_emulate = false;

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
		gpu_shared->memory_used = 0;
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
			execl(path, path, "--memory-limit", limit, "--emulate", (char *) NULL);
		else
			execl(path, path, "--memory-limit", limit, (char *) NULL);
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

	SpinLockAcquire(&gpu_shared->mutex);
	gpu_shared->helper_pid = (int) pid;
	SpinLockRelease(&gpu_shared->mutex);
	set_state(VS_GPU_STATE_STARTING, NULL);
	return true;
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
	else if (strncmp(line, "STATUS ", 7) == 0)
	{
		unsigned long long used = strtoull(line + 7, NULL, 10);

		SpinLockAcquire(&gpu_shared->mutex);
		gpu_shared->memory_used = used;
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
							   h.emulate != vecstore_gpu_emulate))
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

	helper_stop(&h);
	set_state(VS_GPU_STATE_DISABLED, NULL);
	proc_exit(0);
}

PG_FUNCTION_INFO_V1(vecstore_gpu_status);
/*
 * vecstore_gpu_status() - one row: the GPU service as the worker last saw
 * it.
 */
Datum
vecstore_gpu_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[12];
	bool		nulls[12];
	VsGpuShared snap;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, 0, sizeof(nulls));

	if (gpu_shared == NULL)
	{
		values[0] = CStringGetTextDatum("not loaded");
		for (int i = 1; i < 12; i++)
			nulls[i] = true;
		values[11] = CStringGetTextDatum("vecstore is not in shared_preload_libraries");
		nulls[11] = false;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}

	SpinLockAcquire(&gpu_shared->mutex);
	memcpy(&snap, gpu_shared, sizeof(snap));
	SpinLockRelease(&gpu_shared->mutex);

	values[0] = CStringGetTextDatum(state_names[snap.state]);
	values[1] = CStringGetTextDatum(snap.device);
	nulls[1] = (snap.device[0] == '\0');
	values[2] = Int64GetDatum((int64) snap.memory_total);
	nulls[2] = (snap.device[0] == '\0');
	values[3] = Int64GetDatum((int64) snap.memory_limit);
	nulls[3] = (snap.device[0] == '\0');
	values[4] = Int64GetDatum((int64) snap.memory_used);
	nulls[4] = (snap.state != VS_GPU_STATE_RUNNING);
	values[5] = Int32GetDatum(snap.helper_pid);
	nulls[5] = (snap.helper_pid == 0);
	values[6] = Int32GetDatum(snap.restarts);
	values[7] = TimestampTzGetDatum(snap.state_since);
	values[8] = Int64GetDatum(snap.fallbacks);
	values[9] = CStringGetTextDatum(snap.fallback_reason);
	nulls[9] = (snap.fallback_reason[0] == '\0');
	values[10] = Int32GetDatum(0);	/* resident clusters: none in this version */
	values[11] = CStringGetTextDatum(snap.last_error);
	nulls[11] = (snap.last_error[0] == '\0');
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
