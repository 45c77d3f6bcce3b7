/*-------------------------------------------------------------------------
 *
 * vsgpu_internal.h
 *	  What the three parts of the GPU service share: the state in shared
 *	  memory, the request ring's slots, the settings.
 *
 * The GPU service is src/vsgpu.c (settings, shared memory, status),
 * src/vsgpu_client.c (a backend's requests: the offload operations of
 * vsoffload.h) and src/vsgpu_worker.c (the background worker that
 * supervises the helper program).  Only those files include this header;
 * the rest of vecstore reaches the service through vsoffload.h.
 *
 * IDENTIFICATION
 *	  src/vsgpu_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_INTERNAL_H
#define VSGPU_INTERNAL_H

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "vsgpu.h"
#include "vsoffload.h"

/* request slots in the ring: more concurrent requests than this go to the CPU */
#define VS_GPU_SLOTS			128

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
	VS_GPU_STATE_NO_HELPER		/* the helper program is missing, or speaks
								 * another protocol version */
} VsGpuState;

/* the names vecstore_gpu_status() gives the states */
extern const char *const VsGpuStateNames[];

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
									 * service was usable (scan_start) */
} VsGpuShared;

/* vecstore.gpu */
typedef enum VsGpuMode
{
	VS_GPU_OFF = 0,
	VS_GPU_AUTO,
	VS_GPU_ON
} VsGpuMode;

/* settings (vsgpu.c) */
extern int	vecstore_gpu;
extern int	vecstore_gpu_memory;
extern bool vecstore_gpu_emulate;
extern int	vecstore_gpu_batch_delay;
extern int	vecstore_gpu_timeout;
extern int	vecstore_gpu_min_scans;

/* the shared state; NULL without shared_preload_libraries (vsgpu.c) */
extern VsGpuShared *vs_gpu_shared;

/* vsgpu_client.c */
extern const VsOffloadRoutine VsGpuOffloadRoutine;

/* vsgpu_worker.c */
extern PGDLLEXPORT void vs_gpu_worker_main(Datum arg);

#endif							/* VSGPU_INTERNAL_H */
