/*-------------------------------------------------------------------------
 *
 * vssegment_checked.c
 *	  Which parts of which segment files have been checked, once per
 *	  server: a record in shared memory that every backend consults before
 *	  it checks a cluster itself.
 *
 * A backend checks what it reads of a segment file before it trusts it:
 * the header and cluster table when it maps the file, and each cluster
 * (CRC-32C, and the graph's offsets) the first time it reads that cluster
 * (vssegment.c).  Without more, every backend does this again: the first
 * queries of every new connection pay for every cluster they touch.
 *
 * With shared_preload_libraries = 'vecstore', the first backend to check a
 * part records it here, keyed by the file's identity: relfilenode,
 * generation, the manifest's CRC of the head, and what stat() says of the
 * file (device, inode, size, modification time to the nanosecond).  Any
 * other backend that maps a file of the same identity takes the record
 * instead of checking again.  A file that is replaced (a rebuild writes a
 * new file and renames it over the old: a new inode) or written in place
 * (a new modification time, a new size) has a new identity, and is checked
 * again; a restarted server starts with an empty record.  A cluster that
 * fails its check drops its file's record.
 *
 * The record holds VS_CHECKED_FILES files (the least recently used one
 * makes room), each with one bit per cluster.  Without preloading there
 * is no record: each backend checks what it reads, once (as before).
 *
 * IDENTIFICATION
 *	  src/vssegment_checked.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "vsam.h"

/* files the record holds */
#define VS_CHECKED_FILES		128

typedef struct VsCheckedFile
{
	VsSegmentIdentity id;
	bool		used;
	bool		head;			/* header and cluster table checked */
	pg_atomic_uint64 last_use;
	uint8		clusters[VS_MAX_LISTS / 8];
} VsCheckedFile;

typedef struct VsCheckedShared
{
	LWLock	   *lock;
	pg_atomic_uint64 clock;
	VsCheckedFile files[VS_CHECKED_FILES];
} VsCheckedShared;

static VsCheckedShared *checked = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
checked_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(VsCheckedShared)));
	RequestNamedLWLockTranche("vecstore segment checks", 1);
}

static void
checked_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	checked = ShmemInitStruct("vecstore segment checks", sizeof(VsCheckedShared), &found);
	if (!found)
	{
		memset(checked, 0, sizeof(VsCheckedShared));
		checked->lock = &(GetNamedLWLockTranche("vecstore segment checks"))->lock;
		pg_atomic_init_u64(&checked->clock, 0);
		for (int i = 0; i < VS_CHECKED_FILES; i++)
			pg_atomic_init_u64(&checked->files[i].last_use, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * VsCheckedInit - reserve the record's shared memory (from _PG_init, when
 * the library is preloaded; otherwise there is no record).
 */
void
VsCheckedInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = checked_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = checked_shmem_startup;
}

/*
 * VsCheckedShared - is there a record (the library was preloaded)?
 */
bool
VsCheckedAvailable(void)
{
	return checked != NULL;
}

static bool
same_file(const VsSegmentIdentity *a, const VsSegmentIdentity *b)
{
	return RelFileNodeEquals(a->node, b->node) &&
		a->generation == b->generation &&
		a->head_crc == b->head_crc &&
		a->nclusters == b->nclusters &&
		a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
		a->pieces_hash == b->pieces_hash;
}

/* the record of file "id", or NULL; the caller holds the lock */
static VsCheckedFile *
find_file(const VsSegmentIdentity *id)
{
	for (int i = 0; i < VS_CHECKED_FILES; i++)
	{
		VsCheckedFile *f = &checked->files[i];

		if (f->used && same_file(&f->id, id))
			return f;
	}
	return NULL;
}

/*
 * VsCheckedGet - has part "cluster" of file "id" (-1: its header and
 * cluster table) been checked by some backend?  False without a record.
 */
bool
VsCheckedGet(const VsSegmentIdentity *id, int cluster)
{
	VsCheckedFile *f;
	bool		result = false;

	if (checked == NULL || cluster >= (int) id->nclusters || cluster >= VS_MAX_LISTS)
		return false;
	LWLockAcquire(checked->lock, LW_SHARED);
	f = find_file(id);
	if (f != NULL)
	{
		if (cluster < 0)
			result = f->head;
		else
			result = (f->clusters[cluster / 8] & (1 << (cluster % 8))) != 0;
		pg_atomic_write_u64(&f->last_use, pg_atomic_add_fetch_u64(&checked->clock, 1));
	}
	LWLockRelease(checked->lock);
	return result;
}

/*
 * VsCheckedSet - record that part "cluster" of file "id" (-1: its header
 * and cluster table) checked out.  Nothing without a record.
 */
void
VsCheckedSet(const VsSegmentIdentity *id, int cluster)
{
	VsCheckedFile *f;

	if (checked == NULL || cluster >= (int) id->nclusters || cluster >= VS_MAX_LISTS)
		return;
	LWLockAcquire(checked->lock, LW_EXCLUSIVE);
	f = find_file(id);
	if (f == NULL)
	{
		/* a free slot, else the least recently used */
		f = &checked->files[0];
		for (int i = 0; i < VS_CHECKED_FILES; i++)
		{
			VsCheckedFile *g = &checked->files[i];

			if (!g->used)
			{
				f = g;
				break;
			}
			if (pg_atomic_read_u64(&g->last_use) < pg_atomic_read_u64(&f->last_use))
				f = g;
		}
		f->id = *id;
		f->used = true;
		f->head = false;
		memset(f->clusters, 0, sizeof(f->clusters));
	}
	if (cluster < 0)
		f->head = true;
	else
		f->clusters[cluster / 8] |= (1 << (cluster % 8));
	pg_atomic_write_u64(&f->last_use, pg_atomic_add_fetch_u64(&checked->clock, 1));
	LWLockRelease(checked->lock);
}

/*
 * VsCheckedForget - drop the record of file "id" (a part failed its check).
 */
void
VsCheckedForget(const VsSegmentIdentity *id)
{
	VsCheckedFile *f;

	if (checked == NULL)
		return;
	LWLockAcquire(checked->lock, LW_EXCLUSIVE);
	f = find_file(id);
	if (f != NULL)
		f->used = false;
	LWLockRelease(checked->lock);
}
