/*-------------------------------------------------------------------------
 *
 * vsaccess.c
 *	  Which clusters the server's queries open: per cluster, how often and
 *	  when last, in shared memory.
 *
 * A query opens a few of an index's clusters (the nearest to it); across
 * many queries some clusters are opened far more often than others.  With
 * shared_preload_libraries = 'vecstore', every scan counts each cluster it
 * opens here, keyed by the index's relfilenode and the cluster's number,
 * with the start of the statement that opened it last;
 * vecstore_cluster_access(index) (vsinfo.c) lists them beside what the
 * page cache holds of each cluster, which is what an operator sizing
 * memory, or choosing what to keep resident, needs to see.
 *
 * The counts live in a shared hash table of VS_ACCESS_ENTRIES clusters,
 * split into partitions, each under its own lock (a scan takes one shared
 * to count a cluster it has counted before, exclusive the first time).
 * When the table is full, the half of it opened least recently is dropped
 * (entries of indexes dropped or rebuilt go that way: a REINDEX starts new
 * counts, under its new relfilenode).  A cluster keeps its counts through
 * compactions, under its number.  Without preloading nothing is counted.
 *
 * IDENTIFICATION
 *	  src/vsaccess.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "vsam.h"

/* clusters the table holds, and its partitions */
#define VS_ACCESS_ENTRIES		65536
#define VS_ACCESS_PARTITIONS	16

typedef struct VsAccessKey
{
	Oid			dbid;
	Oid			relnode;
	uint32		cluster;
} VsAccessKey;

typedef struct VsAccessEntry
{
	VsAccessKey key;			/* the hash key: first */
	pg_atomic_uint64 accesses;
	pg_atomic_uint64 last;		/* TimestampTz of the last opening statement */
	pg_atomic_uint64 pinned;	/* bytes the pinner holds locked (vspin.c) */
} VsAccessEntry;

typedef struct VsAccessShared
{
	LWLockPadded *locks;		/* VS_ACCESS_PARTITIONS */
	pg_atomic_uint64 evictions; /* entries dropped to make room */
} VsAccessShared;

static VsAccessShared *access_shared = NULL;
static HTAB *access_hash = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
access_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(VsAccessShared)) +
						   hash_estimate_size(VS_ACCESS_ENTRIES, sizeof(VsAccessEntry)));
	RequestNamedLWLockTranche("vecstore cluster access", VS_ACCESS_PARTITIONS);
}

static void
access_shmem_startup(void)
{
	bool		found;
	HASHCTL		ctl;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	access_shared = ShmemInitStruct("vecstore cluster access", sizeof(VsAccessShared), &found);
	if (!found)
	{
		access_shared->locks = GetNamedLWLockTranche("vecstore cluster access");
		pg_atomic_init_u64(&access_shared->evictions, 0);
	}
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(VsAccessKey);
	ctl.entrysize = sizeof(VsAccessEntry);
	ctl.num_partitions = VS_ACCESS_PARTITIONS;

	/*
	 * Fixed size: a full table makes HASH_ENTER_NULL return NULL (and
	 * VsAccessNote evict) instead of growing into the server's spare
	 * shared memory, which the lock tables need.
	 */
	access_hash = ShmemInitHash("vecstore cluster access table",
								VS_ACCESS_ENTRIES, VS_ACCESS_ENTRIES, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * VsAccessInit - reserve the table's shared memory (from _PG_init, when
 * the library is preloaded; otherwise nothing is counted).
 */
void
VsAccessInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = access_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = access_shmem_startup;
}

/*
 * VsAccessAvailable - are openings counted (the library was preloaded)?
 */
bool
VsAccessAvailable(void)
{
	return access_hash != NULL;
}

/*
 * find_key - the key of cluster "cluster" of relfilenode "relnode" in
 * database "dbid" into *key, its hash code into *hashcode; returns the
 * lock of its partition.
 */
static LWLock *
find_key(Oid dbid, Oid relnode, uint32 cluster, VsAccessKey *key, uint32 *hashcode)
{
	memset(key, 0, sizeof(VsAccessKey));
	key->dbid = dbid;
	key->relnode = relnode;
	key->cluster = cluster;
	*hashcode = get_hash_value(access_hash, key);
	return &access_shared->locks[*hashcode % VS_ACCESS_PARTITIONS].lock;
}

/* every partition's lock, in order (a sweep of the whole table) */
static void
lock_all(LWLockMode mode)
{
	for (int i = 0; i < VS_ACCESS_PARTITIONS; i++)
		LWLockAcquire(&access_shared->locks[i].lock, mode);
}

static void
unlock_all(void)
{
	for (int i = VS_ACCESS_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&access_shared->locks[i].lock);
}

/*
 * evict - the table is full: drop the half of it opened least recently
 * (every partition locked, in order, as the table is swept twice).
 */
static void
evict(void)
{
	HASH_SEQ_STATUS seq;
	VsAccessEntry *e;
	TimestampTz oldest = DT_NOEND;
	TimestampTz newest = DT_NOBEGIN;
	TimestampTz cut;
	long		n = 0;

	lock_all(LW_EXCLUSIVE);
	if (hash_get_num_entries(access_hash) >= VS_ACCESS_ENTRIES)
	{
		hash_seq_init(&seq, access_hash);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			TimestampTz t = (TimestampTz) pg_atomic_read_u64(&e->last);

			oldest = Min(oldest, t);
			newest = Max(newest, t);
		}
		cut = oldest + (newest - oldest) / 2;
		hash_seq_init(&seq, access_hash);
		while ((e = hash_seq_search(&seq)) != NULL)
		{
			if ((TimestampTz) pg_atomic_read_u64(&e->last) <= cut)
			{
				hash_search(access_hash, &e->key, HASH_REMOVE, NULL);
				n++;
			}
		}
		pg_atomic_fetch_add_u64(&access_shared->evictions, n);
	}
	unlock_all();
}

/*
 * VsAccessNote - a scan of the index whose relfilenode is "node" opens
 * cluster "cluster": count it.
 */
void
VsAccessNote(RelFileNode node, uint32 cluster)
{
	VsAccessKey key;
	uint32		hashcode;
	LWLock	   *lock;
	VsAccessEntry *e;
	bool		found;
	uint64		now;

	if (access_hash == NULL)
		return;
	lock = find_key(node.dbNode, node.relNode, cluster, &key, &hashcode);
	now = (uint64) GetCurrentStatementStartTimestamp();

	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(access_hash, &key, hashcode, HASH_FIND, NULL);
	if (e != NULL)
	{
		pg_atomic_fetch_add_u64(&e->accesses, 1);
		pg_atomic_write_u64(&e->last, now);
		LWLockRelease(lock);
		return;
	}
	LWLockRelease(lock);

	for (int attempt = 0; attempt < 2; attempt++)
	{
		LWLockAcquire(lock, LW_EXCLUSIVE);
		e = hash_search_with_hash_value(access_hash, &key, hashcode, HASH_ENTER_NULL, &found);
		if (e != NULL)
		{
			if (!found)
			{
				pg_atomic_init_u64(&e->accesses, 0);
				pg_atomic_init_u64(&e->last, 0);
				pg_atomic_init_u64(&e->pinned, 0);
			}
			pg_atomic_fetch_add_u64(&e->accesses, 1);
			pg_atomic_write_u64(&e->last, now);
			LWLockRelease(lock);
			return;
		}
		LWLockRelease(lock);
		evict();
	}
}

/*
 * VsAccessGet - the counts of cluster "cluster" of the index whose
 * relfilenode is "node", and the bytes of it the pinner holds: false
 * when it has none.
 */
bool
VsAccessGet(RelFileNode node, uint32 cluster, uint64 *accesses, TimestampTz *last,
			uint64 *pinned)
{
	VsAccessKey key;
	uint32		hashcode;
	LWLock	   *lock;
	VsAccessEntry *e;

	if (access_hash == NULL)
		return false;
	lock = find_key(node.dbNode, node.relNode, cluster, &key, &hashcode);
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(access_hash, &key, hashcode, HASH_FIND, NULL);
	if (e != NULL)
	{
		*accesses = pg_atomic_read_u64(&e->accesses);
		*last = (TimestampTz) pg_atomic_read_u64(&e->last);
		*pinned = pg_atomic_read_u64(&e->pinned);
	}
	LWLockRelease(lock);
	return e != NULL;
}

/*
 * VsAccessSnapshot - every counted cluster, for the pinner: palloc'd, the
 * number in *n.
 */
VsAccessCount *
VsAccessSnapshot(int *n)
{
	HASH_SEQ_STATUS seq;
	VsAccessEntry *e;
	VsAccessCount *out;
	int			max;

	*n = 0;
	if (access_hash == NULL)
		return NULL;
	lock_all(LW_SHARED);
	max = (int) hash_get_num_entries(access_hash);
	out = palloc(sizeof(VsAccessCount) * Max(max, 1));
	hash_seq_init(&seq, access_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (*n >= max)
		{
			hash_seq_term(&seq);
			break;
		}
		out[*n].dbid = e->key.dbid;
		out[*n].relnode = e->key.relnode;
		out[*n].cluster = e->key.cluster;
		out[*n].accesses = pg_atomic_read_u64(&e->accesses);
		out[*n].score = 0;
		(*n)++;
	}
	unlock_all();
	return out;
}

/*
 * VsAccessSetPinned - the pinner holds "bytes" of a cluster locked (0: no
 * longer).  A cluster no longer counted is left alone.
 */
void
VsAccessSetPinned(Oid dbid, Oid relnode, uint32 cluster, uint64 bytes)
{
	VsAccessKey key;
	uint32		hashcode;
	LWLock	   *lock;
	VsAccessEntry *e;

	if (access_hash == NULL)
		return;
	lock = find_key(dbid, relnode, cluster, &key, &hashcode);
	LWLockAcquire(lock, LW_SHARED);
	e = hash_search_with_hash_value(access_hash, &key, hashcode, HASH_FIND, NULL);
	if (e != NULL)
		pg_atomic_write_u64(&e->pinned, bytes);
	LWLockRelease(lock);
}
