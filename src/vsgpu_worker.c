/*-------------------------------------------------------------------------
 *
 * vsgpu_worker.c
 *	  The GPU service's background worker: it starts, watches and restarts
 *	  the helper program, and carries the ring's requests to it.
 *
 * With vecstore in shared_preload_libraries, _PG_init registers one
 * background worker.  Unless the server's vecstore.gpu is off, the worker
 * starts cuda/vecstore-gpu-helper (installed beside vecstore.so) with its
 * standard input and output on pipes, reads the helper's first line
 * (READY with the protocol version and the device, or NODEVICE with the
 * reason; see cuda/vsgpu_helper.c), and then watches it:
 *
 *	- a helper that exits or is killed is started again after a backoff
 *	  (1 s, doubling to 60 s; back to 1 s once a helper has run for a
 *	  minute), and the status counts the restart and says why;
 *	- no driver, no device, no cuBLAS: said once in the log and in the
 *	  status; the worker tries again only when the configuration is
 *	  reloaded;
 *	- a helper that speaks another version of the protocol (one left from
 *	  another install) is stopped and not started again until a reload,
 *	  as a missing one is;
 *	- at shutdown, or when vecstore.gpu is turned off, it asks the helper
 *	  to quit and kills it if it does not; the helper also dies with the
 *	  worker (PR_SET_PDEATHSIG) and ends when its input closes.
 *
 * Requests: backends queue them in the ring's slots (vsgpu_client.c) and
 * set the worker's latch; the worker writes each queued slot to the
 * helper as a line (vsgpu_protocol.h), marks it sent, and on the helper's
 * DONE line marks it answered and sets the backend's latch.  A helper
 * that dies fails its outstanding slots at once; with no helper, queued
 * slots are failed with the reason, and the backends do the work on the
 * CPU.
 *
 * IDENTIFICATION
 *	  src/vsgpu_worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "vsgpu_internal.h"
#include "vsgpu_protocol.h"

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
	SpinLockAcquire(&vs_gpu_shared->mutex);
	if (vs_gpu_shared->state != state)
		vs_gpu_shared->state_since = GetCurrentTimestamp();
	vs_gpu_shared->state = state;
	if (error)
		strlcpy(vs_gpu_shared->last_error, error, sizeof(vs_gpu_shared->last_error));
	if (state != VS_GPU_STATE_RUNNING)
	{
		vs_gpu_shared->memory_used = 0;
		vs_gpu_shared->resident_clusters = 0;
	}
	SpinLockRelease(&vs_gpu_shared->mutex);
}


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

	SpinLockAcquire(&vs_gpu_shared->mutex);
	vs_gpu_shared->helper_pid = (int) pid;
	SpinLockRelease(&vs_gpu_shared->mutex);
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
	SpinLockAcquire(&vs_gpu_shared->mutex);
	if (vs_gpu_shared->slots[i].seq == seq &&
		(vs_gpu_shared->slots[i].state == VS_SLOT_SENT ||
		 vs_gpu_shared->slots[i].state == VS_SLOT_ABANDONED))
	{
		bool		ok = (strncmp(rest, "OK", 2) == 0);

		slot_finish(&vs_gpu_shared->slots[i], ok,
					ok ? NULL : (strncmp(rest, "ERROR ", 6) == 0 ? rest + 6 : rest));
		if (!ok)
			strlcpy(vs_gpu_shared->last_error, rest, sizeof(vs_gpu_shared->last_error));
	}
	SpinLockRelease(&vs_gpu_shared->mutex);
}

/*
 * slots_fail - answer every slot in "from" state (queued or sent) with an
 * error: the helper is gone or not running.
 */
static void
slots_fail(VsGpuSlotState from, const char *why)
{
	SpinLockAcquire(&vs_gpu_shared->mutex);
	for (int i = 0; i < VS_GPU_SLOTS; i++)
	{
		VsGpuSlot  *slot = &vs_gpu_shared->slots[i];

		if (slot->state == from ||
			(from == VS_SLOT_SENT && slot->state == VS_SLOT_ABANDONED))
			slot_finish(slot, false, why);
	}
	SpinLockRelease(&vs_gpu_shared->mutex);
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

	SpinLockAcquire(&vs_gpu_shared->mutex);
	for (int i = 0; i < VS_GPU_SLOTS; i++)
	{
		VsGpuSlot  *slot = &vs_gpu_shared->slots[i];

		if (slot->state != VS_SLOT_QUEUED)
			continue;
		snprintf(lines[nlines++], sizeof(lines[0]), "%s %d %u %s " UINT64_FORMAT "\n",
				 slot->verb, i, slot->seq, slot->segment, slot->token);
		slot->state = VS_SLOT_SENT;
	}
	SpinLockRelease(&vs_gpu_shared->mutex);

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
		int			version = 0;
		int			n = 0;

		if (sscanf(line + 6, "%d %llu %llu %n", &version, &total, &limit, &n) < 3 ||
			n == 0 || version != VSGPU_PROTOCOL_VERSION)
		{
			char		msg[256];

			snprintf(msg, sizeof(msg), "the GPU helper does not speak protocol version %d (it said \"%.80s\")",
					 VSGPU_PROTOCOL_VERSION, line);
			ereport(LOG,
					(errmsg("vecstore: %s; the index runs on the CPU", msg),
					 errhint("Install the vecstore-gpu-helper of the same vecstore build as vecstore.so, then reload the configuration.")));
			set_state(VS_GPU_STATE_NO_HELPER, msg);
			if (write(h->to_fd, "QUIT\n", 5) < 0)
			{
				/* it is gone already; reaped by the main loop */
			}
		}
		else
		{
			SpinLockAcquire(&vs_gpu_shared->mutex);
			vs_gpu_shared->memory_total = total;
			vs_gpu_shared->memory_limit = limit;
			strlcpy(vs_gpu_shared->device, line + 6 + n, sizeof(vs_gpu_shared->device));
			SpinLockRelease(&vs_gpu_shared->mutex);
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

		SpinLockAcquire(&vs_gpu_shared->mutex);
		vs_gpu_shared->batches++;
		vs_gpu_shared->batched += Max(n, 0);
		SpinLockRelease(&vs_gpu_shared->mutex);
	}
	else if (strncmp(line, "STATUS ", 7) == 0)
	{
		unsigned long long used = 0,
					resident_bytes = 0;
		int			resident = 0;

		(void) sscanf(line + 7, "%llu %d %llu", &used, &resident, &resident_bytes);
		SpinLockAcquire(&vs_gpu_shared->mutex);
		vs_gpu_shared->memory_used = used;
		vs_gpu_shared->resident_clusters = resident;
		SpinLockRelease(&vs_gpu_shared->mutex);
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
	SpinLockAcquire(&vs_gpu_shared->mutex);
	vs_gpu_shared->helper_pid = 0;
	SpinLockRelease(&vs_gpu_shared->mutex);
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
	SpinLockAcquire(&vs_gpu_shared->mutex);
	vs_gpu_shared->worker_latch = MyLatch;
	SpinLockRelease(&vs_gpu_shared->mutex);

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
			SpinLockAcquire(&vs_gpu_shared->mutex);
			/* no device, or a helper of another protocol: wait for a reload */
			if (vs_gpu_shared->state == VS_GPU_STATE_NO_DEVICE ||
				vs_gpu_shared->state == VS_GPU_STATE_NO_HELPER)
				gave_up = true;
			SpinLockRelease(&vs_gpu_shared->mutex);
			if (!gave_up && want)
			{
				/* it died: count it, start another after the backoff */
				if (TimestampDifferenceExceeds(h.started, now, 60 * 1000))
					backoff_ms = 1000;
				SpinLockAcquire(&vs_gpu_shared->mutex);
				vs_gpu_shared->restarts++;
				SpinLockRelease(&vs_gpu_shared->mutex);
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
				SpinLockAcquire(&vs_gpu_shared->mutex);
				gave_up = (vs_gpu_shared->state == VS_GPU_STATE_NO_HELPER);
				SpinLockRelease(&vs_gpu_shared->mutex);
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

			SpinLockAcquire(&vs_gpu_shared->mutex);
			state = vs_gpu_shared->state;
			SpinLockRelease(&vs_gpu_shared->mutex);
			snprintf(msg, sizeof(msg), "the GPU service is \"%s\"", VsGpuStateNames[state]);
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

	SpinLockAcquire(&vs_gpu_shared->mutex);
	vs_gpu_shared->worker_latch = NULL;
	SpinLockRelease(&vs_gpu_shared->mutex);
	helper_stop(&h);
	set_state(VS_GPU_STATE_DISABLED, NULL);
	slots_fail(VS_SLOT_QUEUED, "the GPU service stopped");
	/* as the compaction launcher: started again unless the server stops */
	proc_exit(1);
}
