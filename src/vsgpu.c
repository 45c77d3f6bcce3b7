/*-------------------------------------------------------------------------
 *
 * vsgpu.c
 *	  The GPU service: its settings, its state in shared memory, and
 *	  vecstore_gpu_status().
 *
 * CUDA never runs in the postmaster or in a backend (DESIGN.md section 5).
 * The service is three files, one job each:
 *
 *	vsgpu.c			the settings (vecstore.gpu*), the state in shared
 *					memory, the registration of the background worker and of
 *					the offload table (VsGpuInit), vecstore_gpu_status();
 *	vsgpu_client.c	a backend's side: the offload operations of vsoffload.h
 *					(k-means assignment and graphs for CREATE INDEX, probed
 *					clusters for index scans) as requests through the ring;
 *	vsgpu_worker.c	the background worker that starts, watches and
 *					restarts the helper program (cuda/) and carries the
 *					ring's requests to it.
 *
 * The job layouts and lines the client, the worker and the helper share
 * are in vsgpu_protocol.h, which no other file includes.
 *
 * Backends read the state from shared memory: vecstore.gpu = on makes an
 * index build or scan fail with a clear error when no GPU is usable;
 * "auto" (the default) runs on the CPU then, with the same results.
 * Without shared_preload_libraries there is no worker and no shared
 * state: the settings exist, and everything runs on the CPU.
 *
 * IDENTIFICATION
 *	  src/vsgpu.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "vsgpu_internal.h"
#include "vsutil.h"

const char *const VsGpuStateNames[] = {
	"disabled", "starting", "running", "no device", "restarting", "no helper"
};

/* GUCs */
int			vecstore_gpu = VS_GPU_AUTO;
int			vecstore_gpu_memory = 0;	/* MB; 0: 80% of the device */
bool		vecstore_gpu_emulate = false;
int			vecstore_gpu_batch_delay = 100;	/* microseconds */
int			vecstore_gpu_timeout = 10000;	/* milliseconds */
int			vecstore_gpu_min_scans = 0; /* 0: the server's CPUs */

static const struct config_enum_entry gpu_options[] = {
	{"off", VS_GPU_OFF, false},
	{"auto", VS_GPU_AUTO, false},
	{"on", VS_GPU_ON, false},
	{NULL, 0, false}
};

VsGpuShared *vs_gpu_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

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
	vs_gpu_shared = ShmemInitStruct("vecstore gpu service", sizeof(VsGpuShared), &found);
	if (!found)
	{
		memset(vs_gpu_shared, 0, sizeof(VsGpuShared));
		SpinLockInit(&vs_gpu_shared->mutex);
		pg_atomic_init_u32(&vs_gpu_shared->open_scans, 0);
		vs_gpu_shared->state = VS_GPU_STATE_DISABLED;
		vs_gpu_shared->state_since = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * VsGpuInit - the settings and the offload table; with
 * shared_preload_libraries, the shared state and the background worker
 * (from _PG_init).
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

	/*
	 * The offload table, whether or not the service runs in this server:
	 * its operations decline without one, and under vecstore.gpu = on they
	 * say why the work cannot run.
	 */
	VsOffloadService = &VsGpuOffloadRoutine;

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

	if (vs_gpu_shared == NULL)
	{
		values[0] = CStringGetTextDatum("not loaded");
		for (int i = 1; i < GPU_STATUS_COLS; i++)
			nulls[i] = true;
		values[GPU_STATUS_COLS - 1] = CStringGetTextDatum("vecstore is not in shared_preload_libraries");
		nulls[GPU_STATUS_COLS - 1] = false;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}

	snap = palloc(sizeof(VsGpuShared));
	SpinLockAcquire(&vs_gpu_shared->mutex);
	memcpy(snap, vs_gpu_shared, sizeof(VsGpuShared));
	SpinLockRelease(&vs_gpu_shared->mutex);

	values[0] = CStringGetTextDatum(VsGpuStateNames[snap->state]);
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
	values[13] = Int32GetDatum((int32) pg_atomic_read_u32(&vs_gpu_shared->open_scans));
	values[14] = Int64GetDatum(snap->batches);
	values[15] = Float8GetDatum(snap->batches > 0 ?
								(double) snap->batched / snap->batches : 0.0);
	nulls[15] = (snap->batches == 0);
	values[16] = CStringGetTextDatum(snap->last_error);
	nulls[16] = (snap->last_error[0] == '\0');
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
