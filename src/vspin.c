/*-------------------------------------------------------------------------
 *
 * vspin.c
 *	  The pinner: a background worker that keeps the hot parts of the most
 *	  opened clusters locked in memory, within vecstore.pin_memory.
 *
 * Every query reads the TIDs, codes and graph of each cluster it opens
 * (the cluster's hot part, one range of its segment file: the layout is
 * vectors, TIDs, codes, graph) and the full vectors of a few rows.  When
 * the segment files do not fit in memory, the kernel evicts what it likes,
 * hot parts included.  With shared_preload_libraries = 'vecstore' and
 * vecstore.pin_memory > 0, this worker, every vecstore.pin_naptime:
 *
 *	- ranks the clusters by how often scans opened them lately (vsaccess.c
 *	  counts since the server started; the worker's score of a cluster is
 *	  the openings since its last round plus half its previous score, so
 *	  a cluster that stops being opened loses its place within a few
 *	  rounds);
 *	- for each, most opened first, finds its index's current segment file
 *	  (the highest generation of pg_vecstore/<db>/<relfilenode>.*.seg; its
 *	  head says which file holds the cluster), maps it read-only, and
 *	  locks the cluster's hot part with mlock(), as long as the total stays
 *	  within the budget;
 *	- unlocks what is no longer chosen, and unmaps files no longer used or
 *	  gone (a dropped or rebuilt index's files are unlinked: unmapping them
 *	  gives their memory back), and files replaced under the same name;
 *	- records each cluster's locked bytes in the access table, which
 *	  vecstore_cluster_access and vecstore_index_memory report.
 *
 * Locked pages are the page cache's own pages (the mapping is shared), so
 * every backend's mapping of the file finds them resident.  mlock is
 * bounded by the server's RLIMIT_MEMLOCK ("ulimit -l"; LimitMEMLOCK for a
 * systemd unit): past it the worker says so once per round in the log and
 * locks no more.  The worker reads only the files' headers and cluster
 * tables, which it checks for bounds; nothing it reads is served to a
 * query, so it needs no other check.
 *
 * IDENTIFICATION
 *	  src/vspin.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "vsam.h"

int			vecstore_pin_memory = 0;	/* MB; 0: off */
static int	vecstore_pin_naptime = 10;	/* seconds */

/* a segment file the worker maps */
typedef struct PinFile
{
	Oid			dbid;
	Oid			relnode;
	uint32		generation;
	ino_t		inode;
	char	   *addr;
	Size		size;
	bool		used;			/* this round */
} PinFile;

/* a range the worker holds locked */
typedef struct Pin
{
	Oid			dbid;
	Oid			relnode;
	uint32		cluster;
	PinFile    *file;
	char	   *start;
	Size		len;
	bool		keep;			/* this round */
} Pin;

/* the newest generation of one relfilenode found in its database's directory */
typedef struct Newest
{
	Oid			dbid;
	Oid			relnode;
	uint32		generation;
} Newest;

/* a cluster's score between rounds */
typedef struct Score
{
	VsAccessCount key;			/* dbid, relnode, cluster: the hash key */
	uint64		accesses;		/* its count at the last round */
	double		score;
	bool		seen;			/* this round */
} Score;

#define SCORE_KEYSIZE	(offsetof(VsAccessCount, cluster) + sizeof(uint32))

static List *files = NIL;
static List *pins = NIL;
static MemoryContext pin_cxt = NULL;
static HTAB *scores = NULL;

PGDLLEXPORT void vs_pin_main(Datum arg);

/*
 * VsPinInit - the settings, and the worker (when preloaded).
 */
void
VsPinInit(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("vecstore.pin_memory",
							"Sets the memory the pinner keeps locked for the hot parts of the most opened clusters",
							"With shared_preload_libraries, a worker locks the TIDs, codes and graphs of the clusters scans open most, up to this much, with mlock (bounded by the server's RLIMIT_MEMLOCK); 0 turns it off.",
							&vecstore_pin_memory, 0, 0, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomIntVariable("vecstore.pin_naptime",
							"Sets the time between the pinner's rounds",
							NULL,
							&vecstore_pin_naptime, 10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&worker, 0, sizeof(worker));
	/* a connection to no database: listed in pg_stat_activity */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "vecstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "vs_pin_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "vecstore pinner");
	snprintf(worker.bgw_type, BGW_MAXLEN, "vecstore pinner");
	RegisterBackgroundWorker(&worker);
}

/*
 * score_counts - each cluster's score: the openings since the last round
 * plus half the score it had then (its count, the first time it is seen);
 * clusters no longer counted are forgotten.
 */
static void
score_counts(VsAccessCount *counts, int n)
{
	HASH_SEQ_STATUS seq;
	Score	   *sc;

	if (scores == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = SCORE_KEYSIZE;
		ctl.entrysize = sizeof(Score);
		ctl.hcxt = pin_cxt;
		scores = hash_create("vecstore pinner scores", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	for (int i = 0; i < n; i++)
	{
		VsAccessCount key;
		bool		found;

		memset(&key, 0, sizeof(key));
		key.dbid = counts[i].dbid;
		key.relnode = counts[i].relnode;
		key.cluster = counts[i].cluster;
		sc = hash_search(scores, &key, HASH_ENTER, &found);
		if (!found)
			sc->score = (double) counts[i].accesses;
		else
			sc->score = sc->score / 2 +
				(double) (counts[i].accesses >= sc->accesses ?
						  counts[i].accesses - sc->accesses : counts[i].accesses);
		sc->accesses = counts[i].accesses;
		sc->seen = true;
		counts[i].score = sc->score;
	}
	hash_seq_init(&seq, scores);
	while ((sc = hash_seq_search(&seq)) != NULL)
	{
		if (!sc->seen)
			hash_search(scores, &sc->key, HASH_REMOVE, NULL);
		else
			sc->seen = false;
	}
}

static int
by_score(const void *a, const void *b)
{
	const VsAccessCount *x = a;
	const VsAccessCount *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->accesses != y->accesses)
		return x->accesses > y->accesses ? -1 : 1;
	if (x->relnode != y->relnode)
		return x->relnode < y->relnode ? -1 : 1;
	return x->cluster < y->cluster ? -1 : (x->cluster > y->cluster ? 1 : 0);
}

/*
 * newest_in - add to "out" the newest generation of every relfilenode
 * with a segment file in database "dbid"'s directory.
 */
static List *
newest_in(List *out, Oid dbid)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;

	VsSegmentDir(dbid, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d == NULL)
		return out;
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		Oid			relnode;
		uint32		generation;
		ListCell   *lc;
		bool		found = false;

		/* not a temporary file */
		if (!VsSegmentFileName(de->d_name, &relnode, &generation))
			continue;
		foreach(lc, out)
		{
			Newest	   *nw = lfirst(lc);

			if (nw->dbid == dbid && nw->relnode == relnode)
			{
				nw->generation = Max(nw->generation, generation);
				found = true;
				break;
			}
		}
		if (!found)
		{
			Newest	   *nw = palloc(sizeof(Newest));

			nw->dbid = dbid;
			nw->relnode = relnode;
			nw->generation = generation;
			out = lappend(out, nw);
		}
	}
	FreeDir(d);
	return out;
}

/*
 * map_file - the mapping of generation "generation" of relfilenode
 * "relnode" in database "dbid": one kept from an earlier round when the
 * file is the same (inode), else mapped now; NULL when it is missing or
 * its header is not sound.
 */
static PinFile *
map_file(Oid dbid, Oid relnode, uint32 generation)
{
	RelFileNode node = {InvalidOid, dbid, relnode};
	char	   *path = VsSegmentPath(node, generation);
	struct stat st;
	ListCell   *lc;
	PinFile    *pf;
	int			fd;
	char	   *addr;
	uint32		gen;
	MemoryContext old;

	if (stat(path, &st) != 0)
		return NULL;
	foreach(lc, files)
	{
		pf = lfirst(lc);
		if (pf->dbid == dbid && pf->relnode == relnode && pf->generation == generation)
		{
			if (pf->inode == st.st_ino && pf->size == (Size) st.st_size)
				return pf;
			return NULL;		/* replaced: dropped at the end of the round */
		}
	}
	if (st.st_size < VS_SEGMENT_HEADER_SIZE)
		return NULL;
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		return NULL;
	/* the size of the file opened, which a rename may have replaced */
	if (fstat(fd, &st) != 0 || st.st_size < VS_SEGMENT_HEADER_SIZE)
	{
		CloseTransientFile(fd);
		return NULL;
	}
	addr = mmap(NULL, (Size) st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	CloseTransientFile(fd);
	if (addr == MAP_FAILED)
		return NULL;
	if (!VsSegmentHeaderSound(addr, (Size) st.st_size, relnode, &gen) || gen != generation)
	{
		munmap(addr, (Size) st.st_size);
		return NULL;
	}
	pf = MemoryContextAllocZero(pin_cxt, sizeof(PinFile));
	pf->dbid = dbid;
	pf->relnode = relnode;
	pf->generation = generation;
	pf->inode = st.st_ino;
	pf->addr = addr;
	pf->size = (Size) st.st_size;
	old = MemoryContextSwitchTo(pin_cxt);
	files = lappend(files, pf);
	MemoryContextSwitchTo(old);
	return pf;
}

/*
 * hot_range - the page-aligned range of cluster "cluster"'s hot part (its
 * TIDs, codes and graph) in the files of the index whose newest file is
 * "head": false when the cluster or its piece cannot be found, or the
 * range falls outside its file.
 */
static bool
hot_range(PinFile *head, uint32 cluster, PinFile **file, char **start, Size *len)
{
	const char *body = head->addr + VS_SEGMENT_HEADER_SIZE;
	Size		bodysize = head->size - VS_SEGMENT_HEADER_SIZE;
	const VsSealedHeader *sh = (const VsSealedHeader *) body;
	const VsClusterInfo *info;
	const VsPieceInfo *piece;
	PinFile    *pf;
	uint64		from,
				to;
	uintptr_t	pagesize = (uintptr_t) sysconf(_SC_PAGESIZE);
	uintptr_t	a,
				b;

	if (bodysize < sizeof(VsSealedHeader) || cluster >= sh->nclusters ||
		VsSealedHeadSize(sh->nclusters, sh->params_size, sh->npieces) > bodysize)
		return false;
	info = VsHeadClusters(body) + cluster;
	if (info->count == 0)
		return false;
	piece = VsHeadPiece(body, info->piece);
	if (piece == NULL || info->tid_offset < piece->base ||
		info->vec_offset + info->nbytes < info->tid_offset)
		return false;
	pf = piece->generation == head->generation ? head :
		map_file(head->dbid, head->relnode, piece->generation);
	if (pf == NULL)
		return false;
	from = VS_SEGMENT_HEADER_SIZE + (info->tid_offset - piece->base);
	to = VS_SEGMENT_HEADER_SIZE + (info->vec_offset + info->nbytes - piece->base);
	if (to > pf->size || from >= to)
		return false;
	a = ((uintptr_t) pf->addr + from) & ~(pagesize - 1);
	b = ((uintptr_t) pf->addr + to + pagesize - 1) & ~(pagesize - 1);
	b = Min(b, ((uintptr_t) pf->addr + pf->size + pagesize - 1) & ~(pagesize - 1));
	*file = pf;
	*start = (char *) a;
	*len = b - a;
	return true;
}

/*
 * pin_round - choose, lock and unlock (see the file's comment).
 */
static void
pin_round(void)
{
	Size		budget = (Size) vecstore_pin_memory * 1024 * 1024;
	Size		total = 0;
	List	   *newest = NIL;
	List	   *dbs = NIL;
	VsAccessCount *counts = NULL;
	int			n = 0;
	bool		limited = false;
	ListCell   *lc;
	MemoryContext round_cxt = AllocSetContextCreate(CurrentMemoryContext, "vecstore pinner round",
													ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(round_cxt);

	foreach(lc, pins)
		((Pin *) lfirst(lc))->keep = false;
	foreach(lc, files)
		((PinFile *) lfirst(lc))->used = false;

	if (budget > 0)
	{
		counts = VsAccessSnapshot(&n);
		score_counts(counts, n);
		qsort(counts, n, sizeof(VsAccessCount), by_score);
		for (int i = 0; i < n; i++)
			if (!list_member_oid(dbs, counts[i].dbid))
			{
				dbs = lappend_oid(dbs, counts[i].dbid);
				newest = newest_in(newest, counts[i].dbid);
			}
	}

	for (int i = 0; i < n && counts[i].score > 0; i++)
	{
		PinFile    *head = NULL;
		PinFile    *pf;
		char	   *start;
		Size		len;
		Pin		   *pin = NULL;

		CHECK_FOR_INTERRUPTS();
		/* a round of mlock()s of cold ranges must not hold up a shutdown */
		if (ShutdownRequestPending)
			break;
		foreach(lc, newest)
		{
			Newest	   *nw = lfirst(lc);

			if (nw->dbid == counts[i].dbid && nw->relnode == counts[i].relnode)
			{
				head = map_file(nw->dbid, nw->relnode, nw->generation);
				break;
			}
		}
		if (head == NULL || !hot_range(head, counts[i].cluster, &pf, &start, &len))
			continue;
		if (total + len > budget)
			continue;
		foreach(lc, pins)
		{
			Pin		   *p = lfirst(lc);

			if (p->file == pf && p->start == start && p->len == len &&
				p->cluster == counts[i].cluster)
			{
				pin = p;
				break;
			}
		}
		if (pin == NULL)
		{
			if (limited)
				continue;
			if (mlock(start, len) != 0)
			{
				ereport(LOG,
						(errmsg("vecstore pinner could not lock %zu bytes more, %zu bytes locked: %m",
								len, total),
						 errhint("The server's RLIMIT_MEMLOCK (ulimit -l, or LimitMEMLOCK for a systemd service) bounds vecstore.pin_memory.")));
				limited = true;
				continue;
			}
			pin = MemoryContextAllocZero(pin_cxt, sizeof(Pin));
			pin->dbid = counts[i].dbid;
			pin->relnode = counts[i].relnode;
			pin->cluster = counts[i].cluster;
			pin->file = pf;
			pin->start = start;
			pin->len = len;
			MemoryContextSwitchTo(pin_cxt);
			pins = lappend(pins, pin);
			MemoryContextSwitchTo(round_cxt);
		}
		pin->keep = true;
		pf->used = true;
		head->used = true;
		total += len;
	}

	/* what is no longer chosen */
	foreach(lc, pins)
	{
		Pin		   *p = lfirst(lc);

		if (p->keep)
		{
			VsAccessSetPinned(p->dbid, p->relnode, p->cluster, p->len);
			continue;
		}
		(void) munlock(p->start, p->len);
		VsAccessSetPinned(p->dbid, p->relnode, p->cluster, 0);
		pins = foreach_delete_current(pins, lc);
		pfree(p);
	}
	foreach(lc, files)
	{
		PinFile    *pf = lfirst(lc);

		if (pf->used)
			continue;
		munmap(pf->addr, pf->size);
		files = foreach_delete_current(files, lc);
		pfree(pf);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(round_cxt);
}

/*
 * vs_pin_main - a round every vecstore.pin_naptime, and at once after a
 * reload.
 */
void
vs_pin_main(Datum arg)
{
	struct rlimit rl;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pin_cxt = AllocSetContextCreate(TopMemoryContext, "vecstore pinner", ALLOCSET_DEFAULT_SIZES);

	/* as much as the hard limit allows */
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_MEMLOCK, &rl);
	}

	for (;;)
	{
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pin_round();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 vecstore_pin_naptime * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	/* as the compaction launcher: started again unless the server stops */
	proc_exit(1);
}
