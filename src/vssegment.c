/*-------------------------------------------------------------------------
 *
 * vssegment.c
 *	  Segment files: the memory-mapped copy of an index's sealed region.
 *
 * A segment file holds the sealed region of one generation of one index,
 * byte for byte, behind a 4 kB header, under
 * $PGDATA/pg_vecstore/<database oid>/<relfilenode>.<generation>.seg.
 * It is a derived cache: the WAL-logged fork is the truth (DESIGN.md §2),
 * so a file that is missing (a standby, a restored backup, CREATE DATABASE,
 * a crash), stale or corrupt is rebuilt from the fork, never trusted.
 *
 * Owns:
 *	- the file format and its checks (magic, version, identity, sizes,
 *	  CRC-32C of header and body, the body CRC against the metapage's
 *	  manifest);
 *	- writing: temporary name, fsync, rename, fsync of the directory
 *	  (durable_rename), so a reader never sees a partial file, and a file
 *	  is never rewritten or truncated in place (a mapped file that shrinks
 *	  kills its readers with SIGBUS);
 *	- mapping: read-only MAP_SHARED, one mapping per index per backend,
 *	  verified once per backend, kept until the index's relfilenode or
 *	  generation changes;
 *	- lifecycle: files of dropped indexes are removed at commit (kept on
 *	  abort), files of an index's old relfilenode at the commit of the
 *	  TRUNCATE/REINDEX that replaced it, files of a rolled-back build at
 *	  abort, the directory of a dropped database right after DROP DATABASE,
 *	  and orphans (crashes in between) by a sweep.  Unlinking a mapped file
 *	  is safe: the mapping keeps the inode until it is unmapped.
 *
 * The DROP and DROP DATABASE hooks run only in backends that have loaded
 * the library; with shared_preload_libraries = 'vecstore' that is every
 * backend, otherwise the sweep catches what they missed.
 *
 * IDENTIFICATION
 *	  src/vssegment.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "tcop/utility.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "vsam.h"

#define VS_SEGMENT_MAGIC		0x56534731	/* "VSG1" */
#define VS_SEGMENT_VERSION		1
#define VS_ELEM_FLOAT4			1

/* an orphan must be this old before the sweep removes it (seconds) */
#define VS_SWEEP_MIN_AGE		60

/* the file header; the rest of its 4 kB is zero */
typedef struct VsSegmentHeader
{
	uint32		magic;
	uint32		version;
	uint32		header_size;	/* VS_SEGMENT_HEADER_SIZE */
	uint32		dims;
	uint32		elemtype;		/* VS_ELEM_FLOAT4 */
	uint32		nclusters;
	uint64		nvectors;
	Oid			dboid;
	Oid			spcoid;
	Oid			relfilenode;
	Oid			indexoid;
	uint32		generation;
	uint32		body_crc;		/* CRC-32C of the body's head (the manifest's) */
	uint64		body_size;
	XLogRecPtr	seal_lsn;		/* WAL position when the file was written */
	uint32		header_crc;		/* CRC-32C of the fields above */
} VsSegmentHeader;

/*
 * One segment file this backend maps (or mapped: "addr" is NULL after an
 * unmap, and the identity of the file last verified is kept, so that
 * mapping the same unchanged file again skips the checks already done).
 * Mapping checks the header and the head of the body (the cluster table);
 * each cluster is checked against its CRC the first time this backend
 * reads it (VsSegmentCluster), so the first query of a new connection
 * costs the clusters it probes, not the whole file.
 *
 * Scans and VACUUM pin the mapping while they use it.  A relcache
 * invalidation of the index (DROP, REINDEX, TRUNCATE, but also VACUUM's
 * statistics) unmaps an unpinned mapping at once, so the disk space of a
 * removed file is freed, and marks a pinned one stale, to be unmapped when
 * the last pin goes (at the latest at the end of the transaction).
 */
typedef struct VsMapping
{
	Oid			indexoid;
	RelFileNode node;
	uint32		generation;
	uint32		body_crc;
	char	   *addr;
	Size		len;
	int			pins;
	bool		stale;
	/* the file whose head was last verified, and which of its clusters */
	bool		verified;
	uint8	   *verified_clusters;	/* nclusters bits, in TopMemoryContext */
	uint32		nclusters;
	dev_t		vdev;
	ino_t		vino;
	off_t		vsize;
	time_t		vmtime;
	struct VsMapping *next;
} VsMapping;

/* a file removal waiting for the end of a (sub)transaction */
typedef enum VsPendingKind
{
	VS_PENDING_NODE_ON_COMMIT,	/* all files of a relfilenode, at commit */
	VS_PENDING_NODE_ON_ABORT,	/* all files of a relfilenode, at abort */
	VS_PENDING_OTHERS_ON_COMMIT /* files of an index oid but another relfilenode */
} VsPendingKind;

typedef struct VsPending
{
	VsPendingKind kind;
	RelFileNode node;
	Oid			indexoid;
	int			nestlevel;
	struct VsPending *next;
} VsPending;

static VsMapping *mappings = NULL;
static VsPending *pending = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

static void segment_dir(Oid dboid, char *buf, Size len);
static bool read_header(const char *path, VsSegmentHeader *hdr);
static bool header_matches(const VsSegmentHeader *hdr, Relation index, VsMetaPage meta);
static void remove_files(Oid dboid, RelFileNode *node, Oid other_than_index, Oid keep_relfilenode);
static void xact_callback(XactEvent event, void *arg);
static void relcache_callback(Datum arg, Oid relid);
static void subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg);
static void object_access(ObjectAccessType access, Oid classId, Oid objectId,
						  int subId, void *arg);
static void process_utility(PlannedStmt *pstmt, const char *queryString,
							bool readOnlyTree, ProcessUtilityContext context,
							ParamListInfo params, QueryEnvironment *queryEnv,
							DestReceiver *dest, QueryCompletion *qc);

/*
 * VsSegmentInit - install the transaction callbacks and hooks (from
 * _PG_init).
 */
void
VsSegmentInit(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	prev_object_access_hook = object_access_hook;
	object_access_hook = object_access;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}

/*
 * segment_dir - "pg_vecstore/<dboid>", relative to the data directory
 * (every backend's working directory).
 */
static void
segment_dir(Oid dboid, char *buf, Size len)
{
	snprintf(buf, len, "%s/%u", VS_SEGMENT_DIR, dboid);
}

/*
 * VsSegmentPath - the file of one generation of a relfilenode, palloc'd.
 */
char *
VsSegmentPath(RelFileNode node, uint32 generation)
{
	return psprintf("%s/%u/%u.%u.seg", VS_SEGMENT_DIR, node.dbNode, node.relNode, generation);
}

/*
 * header_crc - CRC-32C of a header's fields before header_crc.
 */
static uint32
header_crc(const VsSegmentHeader *hdr)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, hdr, offsetof(VsSegmentHeader, header_crc));
	FIN_CRC32C(crc);
	return crc;
}

/*
 * make_dirs - create pg_vecstore/ and pg_vecstore/<db>/ if missing,
 * durably.
 */
static void
make_dirs(Oid dboid)
{
	char		dir[MAXPGPATH];

	if (MakePGDirectory(VS_SEGMENT_DIR) < 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", VS_SEGMENT_DIR)));
	segment_dir(dboid, dir, sizeof(dir));
	if (MakePGDirectory(dir) < 0)
	{
		if (errno != EEXIST)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", dir)));
	}
	else
	{
		fsync_fname(dir, true);
		fsync_fname(VS_SEGMENT_DIR, true);
	}
}

/*
 * write_all - write the whole buffer or raise an error.
 */
static void
write_all(int fd, const char *path, const void *buf, Size len)
{
	const char *p = buf;

	while (len > 0)
	{
		ssize_t		n = write(fd, p, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", path)));
		}
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DISK_FULL),
					 errmsg("could not write file \"%s\": wrote no bytes", path)));
		p += n;
		len -= n;
	}
}

/*
 * The sealed-region checker: fed the bytes of a sealed region in order
 * (from the fork or from a file), it checks the head against the
 * metapage's CRC, the cluster table's offsets, and every cluster against
 * its CRC in the table.
 */
typedef struct VsSealedChecker
{
	uint32		nclusters;
	VsMetaPageData meta;
	uint64		total;			/* bytes the region must have */
	uint64		headsize;
	uint32		head_crc;		/* what the metapage says */
	char	   *head;			/* headsize bytes, as they arrive */
	uint64		pos;			/* bytes fed so far */
	uint32		cluster;		/* cluster being summed */
	pg_crc32c	crc;
	char	   *problem;		/* the first problem, palloc'd */
} VsSealedChecker;

/*
 * table_problem - what is wrong with a (CRC-checked) head, or NULL.  The
 * header must agree with the metapage, the quantizer's parameters must
 * pass their own check, and the cluster table's offsets must rise, stay
 * inside the region, and leave room for the rows, codes and graphs they
 * announce.
 */
static char *
table_problem(const char *head, VsMetaPage meta, uint64 headsize, uint64 total)
{
	const VsSealedHeader *sh = (const VsSealedHeader *) head;
	const VsClusterInfo *info = (const VsClusterInfo *) (head + sizeof(VsSealedHeader));
	uint32		nclusters = meta->nclusters;
	uint32		dims = meta->dims;
	uint64		row = 0;

	if (sh->nclusters != nclusters || sh->dims != dims || sh->nrows != meta->sealed_rows ||
		sh->params_size != meta->params_size || sh->quantizer != meta->quantizer)
		return psprintf("has a header that does not match the metapage");
	if (sh->params_size > 0)
	{
		const VsQuantParams *params = (const VsQuantParams *) (head + VsSealedParamsOffset(nclusters));
		const char *problem = VsQuantValidate(params, sh->params_size);

		if (problem != NULL)
			return psprintf("has unusable code parameters: %s", problem);
		if (params->dims != dims || params->metric != meta->metric ||
			params->record_size != sh->record_size)
			return psprintf("has code parameters for another index");
	}
	for (uint32 c = 0; c < nclusters; c++)
	{
		uint64		end = VsClusterEnd(info, c, nclusters, total);
		uint64		pos;

		if ((c == 0 && info[c].vec_offset != headsize) ||
			end < info[c].vec_offset || end > total ||
			info[c].vec_offset % VS_SEGMENT_ALIGN != 0 ||
			info[c].vec_offset + (uint64) info[c].count * dims * sizeof(float) > info[c].tid_offset ||
			info[c].first_row != row)
			return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
		pos = info[c].tid_offset + (uint64) info[c].count * sizeof(ItemPointerData);
		if (info[c].code_offset != 0)
		{
			if (sh->record_size == 0 || info[c].code_offset < pos ||
				info[c].code_offset % VS_SEGMENT_ALIGN != 0)
				return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
			pos = info[c].code_offset + (uint64) info[c].count * sh->record_size;
		}
		if (info[c].graph_offset != 0)
		{
			if (info[c].graph_offset < pos || info[c].graph_size == 0 ||
				info[c].graph_offset % VS_SEGMENT_ALIGN != 0)
				return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
			pos = info[c].graph_offset + info[c].graph_size;
		}
		else if (info[c].graph_size != 0)
			return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
		if (pos > end)
			return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
		row += info[c].count;
	}
	return NULL;
}

/*
 * VsSegmentParams - the quantizer's parameters in a sealed region whose
 * head has been checked, or NULL when the index has no codes.
 */
const VsQuantParams *
VsSegmentParams(VsMetaPage meta, const char *body)
{
	if (meta->params_size == 0)
		return NULL;
	return (const VsQuantParams *) (body + VsSealedParamsOffset(meta->nclusters));
}

static void
checker_begin(VsSealedChecker *ck, VsMetaPage meta)
{
	memset(ck, 0, sizeof(*ck));
	ck->nclusters = meta->nclusters;
	ck->total = meta->sealed.nbytes;
	ck->meta = *meta;
	ck->headsize = VsSealedHeadSize(meta->nclusters, meta->params_size);
	ck->head_crc = meta->sealed_crc;
	ck->head = palloc_extended(ck->headsize, MCXT_ALLOC_HUGE);
	if (ck->headsize > ck->total)
		ck->problem = psprintf("is shorter than its cluster table");
}

/*
 * checker_feed - the next "len" bytes of the region.
 */
static void
checker_feed(VsSealedChecker *ck, const char *data, uint64 len, uint32 dims)
{
	const VsClusterInfo *info = (const VsClusterInfo *) (ck->head + sizeof(VsSealedHeader));

	while (len > 0 && ck->problem == NULL)
	{
		if (ck->pos < ck->headsize)
		{
			uint64		chunk = Min(len, ck->headsize - ck->pos);

			memcpy(ck->head + ck->pos, data, chunk);
			ck->pos += chunk;
			data += chunk;
			len -= chunk;
			if (ck->pos == ck->headsize)
			{
				pg_crc32c	crc;

				INIT_CRC32C(crc);
				COMP_CRC32C(crc, ck->head, ck->headsize);
				FIN_CRC32C(crc);
				if (crc != ck->head_crc)
					ck->problem = psprintf("fails the checksum of its cluster table (%08X, the metapage says %08X)",
										   crc, ck->head_crc);
				else
					ck->problem = table_problem(ck->head, &ck->meta, ck->headsize, ck->total);
				INIT_CRC32C(ck->crc);
			}
			continue;
		}
		if (ck->cluster >= ck->nclusters)
		{
			ck->problem = psprintf("is longer than its clusters");
			break;
		}
		else
		{
			uint64		end = VsClusterEnd(info, ck->cluster, ck->nclusters, ck->total);
			uint64		chunk = Min(len, end - ck->pos);

			COMP_CRC32C(ck->crc, data, chunk);
			ck->pos += chunk;
			data += chunk;
			len -= chunk;
		}
		/* close every cluster that ends here (empty ones included) */
		while (ck->problem == NULL && ck->cluster < ck->nclusters &&
			   ck->pos == VsClusterEnd(info, ck->cluster, ck->nclusters, ck->total))
		{
			FIN_CRC32C(ck->crc);
			if (ck->crc != info[ck->cluster].crc)
				ck->problem = psprintf("fails the checksum of cluster %u", ck->cluster);
			ck->cluster++;
			INIT_CRC32C(ck->crc);
		}
	}
}

/*
 * checker_end - NULL when every byte checked out, else what is wrong.
 */
static char *
checker_end(VsSealedChecker *ck)
{
	if (ck->problem == NULL && ck->pos != ck->total)
		ck->problem = psprintf("ends after " UINT64_FORMAT " of " UINT64_FORMAT " bytes", ck->pos, ck->total);
	pfree(ck->head);
	return ck->problem;
}

/*
 * VsSealedCheckFork - check the sealed region in the index's fork
 * (through shared buffers): NULL when sound, else what is wrong.
 */
char *
VsSealedCheckFork(Relation index, VsMetaPage meta)
{
	VsSealedChecker ck;

	checker_begin(&ck, meta);
	for (uint64 offset = 0; offset < meta->sealed.nbytes && ck.problem == NULL;
		 offset += VS_BLOB_PAYLOAD)
	{
		PGAlignedBlock chunk;
		Size		len = Min((uint64) VS_BLOB_PAYLOAD, meta->sealed.nbytes - offset);

		CHECK_FOR_INTERRUPTS();
		VsBlobRead(index, &meta->sealed, offset, chunk.data, len);
		checker_feed(&ck, chunk.data, len, meta->dims);
	}
	return checker_end(&ck);
}

/*
 * VsSegmentWrite - (re)build the segment file of the index's current
 * generation from the sealed region of the fork.
 *
 * Reads the region through shared buffers (share locks, one page at a
 * time), writes "<file>.tmp.<pid>", fsyncs it, and renames it over the
 * final name (durable_rename also fsyncs the directory).  A backend that
 * has the old file mapped keeps its mapping.  If the bytes read from the
 * fork fail their checksums (the head against the metapage, each cluster
 * against the head), the fork itself is corrupt: that is an error with a
 * REINDEX hint, and no file is written.  Works on a standby.
 */
void
VsSegmentWrite(Relation index, VsMetaPage meta)
{
	char	   *path = VsSegmentPath(index->rd_node, meta->generation);
	char	   *tmppath = psprintf("%s.tmp.%d", path, MyProcPid);
	PGAlignedBlock hdrbuf;
	VsSegmentHeader *hdr = (VsSegmentHeader *) hdrbuf.data;
	VsSealedChecker ck;
	char	   *problem;
	int			fd;
	uint64		offset = 0;

	make_dirs(index->rd_node.dbNode);

	fd = OpenTransientFile(tmppath, O_CREAT | O_TRUNC | O_WRONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmppath)));

	PG_TRY();
	{
		/* header first (its CRCs are filled in and rewritten at the end) */
		memset(hdrbuf.data, 0, sizeof(hdrbuf.data));
		write_all(fd, tmppath, hdrbuf.data, VS_SEGMENT_HEADER_SIZE);

		checker_begin(&ck, meta);
		while (offset < meta->sealed.nbytes)
		{
			uint32		poff;
			BlockNumber blkno = VsBlobBlock(&meta->sealed, offset, &poff);
			Size		chunk = Min(meta->sealed.nbytes - offset, (uint64) VS_BLOB_PAYLOAD);
			Buffer		buf;
			Page		page;
			PGAlignedBlock copy;

			CHECK_FOR_INTERRUPTS();
			buf = ReadBuffer(index, blkno);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			VsCheckPage(index, page, blkno, VS_PAGE_BLOB);
			memcpy(copy.data, PageGetContents(page), chunk);
			UnlockReleaseBuffer(buf);

			checker_feed(&ck, copy.data, chunk, meta->dims);
			write_all(fd, tmppath, copy.data, chunk);
			offset += chunk;
		}
		problem = checker_end(&ck);
		if (problem != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("sealed data of index \"%s\" %s", RelationGetRelationName(index), problem),
					 errhint("Please REINDEX it.")));

		hdr->magic = VS_SEGMENT_MAGIC;
		hdr->version = VS_SEGMENT_VERSION;
		hdr->header_size = VS_SEGMENT_HEADER_SIZE;
		hdr->dims = meta->dims;
		hdr->elemtype = VS_ELEM_FLOAT4;
		hdr->nclusters = meta->nclusters;
		hdr->nvectors = meta->sealed_rows;
		hdr->dboid = index->rd_node.dbNode;
		hdr->spcoid = index->rd_node.spcNode;
		hdr->relfilenode = index->rd_node.relNode;
		hdr->indexoid = RelationGetRelid(index);
		hdr->generation = meta->generation;
		hdr->body_crc = meta->sealed_crc;
		hdr->body_size = meta->sealed.nbytes;
		hdr->seal_lsn = RecoveryInProgress() ? GetXLogReplayRecPtr(NULL) : GetXLogInsertRecPtr();
		hdr->header_crc = header_crc(hdr);
		if (pg_pwrite(fd, hdrbuf.data, VS_SEGMENT_HEADER_SIZE, 0) != VS_SEGMENT_HEADER_SIZE)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write file \"%s\": %m", tmppath)));

		if (pg_fsync(fd) != 0)
			ereport(data_sync_elevel(ERROR),
					(errcode_for_file_access(),
					 errmsg("could not fsync file \"%s\": %m", tmppath)));
		if (CloseTransientFile(fd) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not close file \"%s\": %m", tmppath)));
		fd = -1;
		durable_rename(tmppath, path, ERROR);
	}
	PG_CATCH();
	{
		if (fd >= 0)
			CloseTransientFile(fd);
		unlink(tmppath);
		PG_RE_THROW();
	}
	PG_END_TRY();

	pfree(tmppath);
	pfree(path);
}

/*
 * read_header - read and check a file's header (magic, version, size
 * fields, header CRC).  False when the file is missing, short or bad.
 */
static bool
read_header(const char *path, VsSegmentHeader *hdr)
{
	int			fd;
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		return false;
	n = pg_pread(fd, hdr, sizeof(VsSegmentHeader), 0);
	CloseTransientFile(fd);
	if (n != sizeof(VsSegmentHeader))
		return false;
	return hdr->magic == VS_SEGMENT_MAGIC &&
		hdr->version == VS_SEGMENT_VERSION &&
		hdr->header_size == VS_SEGMENT_HEADER_SIZE &&
		hdr->header_crc == header_crc(hdr);
}

/*
 * header_matches - is this the file the metapage's manifest describes?
 */
static bool
header_matches(const VsSegmentHeader *hdr, Relation index, VsMetaPage meta)
{
	return hdr->dims == meta->dims &&
		hdr->elemtype == VS_ELEM_FLOAT4 &&
		hdr->nclusters == meta->nclusters &&
		hdr->nvectors == meta->sealed_rows &&
		hdr->dboid == index->rd_node.dbNode &&
		hdr->spcoid == index->rd_node.spcNode &&
		hdr->relfilenode == index->rd_node.relNode &&
		hdr->generation == meta->generation &&
		hdr->body_crc == meta->sealed_crc &&
		hdr->body_size == meta->sealed.nbytes;
}

/*
 * unmap - drop a mapping.
 */
static void
unmap(VsMapping *m)
{
	if (m->addr != NULL && munmap(m->addr, m->len) != 0)
		elog(WARNING, "could not unmap segment of index %u: %m", m->indexoid);
	m->addr = NULL;
	m->stale = false;
}

/*
 * try_map - map the segment file and check it completely: header against
 * the manifest, file size, body CRC.  The CRC pass is skipped when "m"
 * (may be NULL) verified this very file before (same device, inode, size
 * and modification time).  Returns the mapping or NULL (and why, in
 * *problem) when the file must be rebuilt.
 */
static char *
try_map(Relation index, VsMetaPage meta, Size *len, const char **problem, VsMapping *m)
{
	char	   *path = VsSegmentPath(index->rd_node, meta->generation);
	VsSegmentHeader hdr;
	struct stat st;
	int			fd;
	char	   *addr;
	pg_crc32c	crc;

	*problem = NULL;
	if (!read_header(path, &hdr))
	{
		*problem = (access(path, F_OK) != 0 && errno == ENOENT) ? "is missing" : "has a bad header";
		return NULL;
	}
	if (!header_matches(&hdr, index, meta))
	{
		*problem = "is stale";
		return NULL;
	}

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		*problem = "is missing";
		return NULL;
	}
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	*len = VS_SEGMENT_HEADER_SIZE + meta->sealed.nbytes;
	if ((uint64) st.st_size != *len)
	{
		CloseTransientFile(fd);
		*problem = "has the wrong size";
		return NULL;
	}
	addr = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
	CloseTransientFile(fd);
	if (addr == MAP_FAILED)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not map file \"%s\": %m", path)));

	if (m != NULL && m->verified && m->vdev == st.st_dev && m->vino == st.st_ino &&
		m->vsize == st.st_size && m->vmtime == st.st_mtime)
	{
		pfree(path);
		return addr;
	}

	/* the head: its CRC against the manifest, then the table's offsets */
	{
		uint64		headsize = VsSealedHeadSize(meta->nclusters, meta->params_size);
		char	   *body = addr + VS_SEGMENT_HEADER_SIZE;

		if (headsize > meta->sealed.nbytes)
			*problem = "is shorter than its cluster table";
		else
		{
			INIT_CRC32C(crc);
			COMP_CRC32C(crc, body, headsize);
			FIN_CRC32C(crc);
			if (crc != meta->sealed_crc)
				*problem = "fails the checksum of its cluster table";
			else if (table_problem(body, meta, headsize, meta->sealed.nbytes))
				*problem = "has an inconsistent cluster table";
		}
		if (*problem != NULL)
		{
			munmap(addr, *len);
			return NULL;
		}
	}
	if (m != NULL)
	{
		m->verified = true;
		m->vdev = st.st_dev;
		m->vino = st.st_ino;
		m->vsize = st.st_size;
		m->vmtime = st.st_mtime;
		if (m->verified_clusters)
			pfree(m->verified_clusters);
		m->nclusters = meta->nclusters;
		m->verified_clusters = MemoryContextAllocZero(TopMemoryContext,
													  (meta->nclusters + 7) / 8);
	}
	pfree(path);
	return addr;
}

/*
 * VsSegmentBody - the sealed region of the index's current generation,
 * through this backend's mapping of the segment file, pinned.
 *
 * Maps (and verifies) the file on first use in this backend; rebuilds it
 * from the fork when it is missing, stale or corrupt.  The caller must
 * call VsSegmentRelease() when done (an error ending the transaction
 * releases every pin).  The pointer stays valid while pinned.
 */
const char *
VsSegmentBody(Relation index, VsMetaPage meta)
{
	VsMapping  *m;
	VsMapping  *reuse = NULL;
	char	   *addr;
	Size		len = 0;
	const char *problem;

	for (m = mappings; m != NULL; m = m->next)
	{
		if (m->indexoid != RelationGetRelid(index))
			continue;
		if (m->addr != NULL && !m->stale && RelFileNodeEquals(m->node, index->rd_node) &&
			m->generation == meta->generation && m->body_crc == meta->sealed_crc)
		{
			m->pins++;
			return m->addr + VS_SEGMENT_HEADER_SIZE;
		}
		if (m->pins == 0 && reuse == NULL)
			reuse = m;
	}

	m = reuse;
	if (m != NULL)
	{
		unmap(m);
		if (!RelFileNodeEquals(m->node, index->rd_node) || m->generation != meta->generation)
			m->verified = false;
	}
	else
	{
		m = MemoryContextAllocZero(TopMemoryContext, sizeof(VsMapping));
		m->indexoid = RelationGetRelid(index);
		m->next = mappings;
		mappings = m;
	}
	m->node = index->rd_node;
	m->generation = meta->generation;
	m->body_crc = meta->sealed_crc;
	m->stale = false;

	addr = try_map(index, meta, &len, &problem, m);
	if (addr == NULL)
	{
		ereport(DEBUG1,
				(errmsg("rebuilding segment of index \"%s\": the file %s",
						RelationGetRelationName(index), problem)));
		m->verified = false;
		VsSegmentWrite(index, meta);
		addr = try_map(index, meta, &len, &problem, m);
		if (addr == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("segment file of index \"%s\" %s right after it was rebuilt",
							RelationGetRelationName(index), problem),
					 errhint("Check the file system under %s; REINDEX rebuilds the index.",
							 VS_SEGMENT_DIR)));
	}

	m->addr = addr;
	m->len = len;
	m->pins = 1;
	return addr + VS_SEGMENT_HEADER_SIZE;
}

/*
 * VsSegmentRelease - drop a pin taken by VsSegmentBody; a stale mapping
 * is unmapped with its last pin.
 */
void
VsSegmentRelease(const char *body)
{
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->addr != NULL && m->addr + VS_SEGMENT_HEADER_SIZE == body)
		{
			if (m->pins > 0)
				m->pins--;
			if (m->pins == 0 && m->stale)
				unmap(m);
			return;
		}
	}
}

/*
 * VsSegmentCluster - make sure cluster "cluster" of a pinned mapping has
 * been checked against its CRC; returns the body to read it from.
 *
 * Usually that is "body" itself.  When the cluster fails its check, the
 * file is corrupt: it is rebuilt from the fork, the new file is mapped and
 * pinned, the old mapping's pin is dropped (it is unmapped once nothing
 * uses it), and the new body is returned: the caller must use it from now
 * on (the layout is the same, so offsets it holds stay valid).
 */
const char *
VsSegmentCluster(Relation index, VsMetaPage meta, const char *body, uint32 cluster)
{
	VsMapping  *m;
	const VsClusterInfo *info = (const VsClusterInfo *) (body + sizeof(VsSealedHeader));
	uint64		end;
	pg_crc32c	crc;

	for (m = mappings; m != NULL; m = m->next)
	{
		if (m->addr != NULL && m->addr + VS_SEGMENT_HEADER_SIZE == body)
			break;
	}
	if (m == NULL || cluster >= m->nclusters || m->verified_clusters == NULL)
		elog(ERROR, "segment of index \"%s\" is not mapped", RelationGetRelationName(index));
	if (m->verified_clusters[cluster / 8] & (1 << (cluster % 8)))
		return body;

	end = VsClusterEnd(info, cluster, meta->nclusters, meta->sealed.nbytes);
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, body + info[cluster].vec_offset, end - info[cluster].vec_offset);
	FIN_CRC32C(crc);
	if (crc == info[cluster].crc)
	{
		/*
		 * The graph is searched where it lies, following the offsets it
		 * holds: check them once, as for any bytes read from disk.  The CRC
		 * matched, so the fork holds the same bytes and a rebuild would not
		 * help.
		 */
		if (info[cluster].graph_offset != 0)
		{
			const char *problem = VsHnswValidate(body + info[cluster].graph_offset,
												 info[cluster].graph_size,
												 (int) info[cluster].count,
												 (int) meta->dims, (VsMetric) meta->metric);

			if (problem != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INDEX_CORRUPTED),
						 errmsg("graph of cluster %u of index \"%s\" is not usable",
								cluster, RelationGetRelationName(index)),
						 errdetail("%s", problem),
						 errhint("Please REINDEX it.")));
		}
		m->verified_clusters[cluster / 8] |= (1 << (cluster % 8));
		return body;
	}

	/* corrupt: rebuild, map the new file, hand the caller over to it */
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("segment file of index \"%s\" fails the checksum of cluster %u; rebuilding it from the index",
					RelationGetRelationName(index), cluster)));
	m->stale = true;
	m->verified = false;
	VsSegmentWrite(index, meta);
	VsSegmentRelease(body);
	body = VsSegmentBody(index, meta);
	return VsSegmentCluster(index, meta, body, cluster);
}

/*
 * relcache_callback - the index may have been dropped or given a new
 * relfilenode: let go of its mapping (see VsMapping).  No catalog access
 * here; a pinned mapping is only marked.
 */
static void
relcache_callback(Datum arg, Oid relid)
{
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->addr == NULL || (OidIsValid(relid) && m->indexoid != relid))
			continue;
		if (m->pins == 0)
			unmap(m);
		else
			m->stale = true;
	}
}

/*
 * VsSegmentGetId - the file behind a pinned body (from VsSegmentBody), as
 * this backend verified it: so that another process (the GPU helper) can
 * read the same bytes and check it has the same file.  False when "body"
 * is not a verified mapping of this backend.
 */
bool
VsSegmentGetId(const char *body, VsSegmentId *id)
{
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->addr != NULL && m->addr + VS_SEGMENT_HEADER_SIZE == body && m->verified)
		{
			id->node = m->node;
			id->generation = m->generation;
			id->ino = (uint64) m->vino;
			id->size = (uint64) m->vsize;
			return true;
		}
	}
	return false;
}

/*
 * VsSegmentBytesMapped - bytes of the index's segment this backend maps.
 */
Size
VsSegmentBytesMapped(Relation index)
{
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->indexoid == RelationGetRelid(index) && m->addr != NULL)
			return m->len;
	}
	return 0;
}

/*
 * VsSegmentCheck - check the segment file of the index's current
 * generation without using or changing this backend's mapping.  Returns
 * NULL when it is sound, else what is wrong with it.
 */
const char *
VsSegmentCheck(Relation index, VsMetaPage meta)
{
	const char *problem;
	Size		len;
	char	   *addr = try_map(index, meta, &len, &problem, NULL);
	VsSealedChecker ck;

	if (addr == NULL)
		return problem;
	checker_begin(&ck, meta);
	checker_feed(&ck, addr + VS_SEGMENT_HEADER_SIZE, meta->sealed.nbytes, meta->dims);
	munmap(addr, len);
	return checker_end(&ck);
}

/*
 * add_pending - remember a removal for the end of the (sub)transaction.
 */
static void
add_pending(VsPendingKind kind, RelFileNode node, Oid indexoid)
{
	VsPending  *p = MemoryContextAlloc(TopMemoryContext, sizeof(VsPending));

	p->kind = kind;
	p->node = node;
	p->indexoid = indexoid;
	p->nestlevel = GetCurrentTransactionNestLevel();
	p->next = pending;
	pending = p;
}

/*
 * VsSegmentRemoveOnAbort - the files of this (new) relfilenode go if the
 * transaction that is building it aborts.
 */
void
VsSegmentRemoveOnAbort(RelFileNode node)
{
	add_pending(VS_PENDING_NODE_ON_ABORT, node, InvalidOid);
}

/*
 * VsSegmentForgetIndexFiles - at commit, remove the files of this index
 * that belong to another relfilenode (the one a TRUNCATE, REINDEX or
 * VACUUM FULL is replacing).
 */
void
VsSegmentForgetIndexFiles(Relation index)
{
	add_pending(VS_PENDING_OTHERS_ON_COMMIT, index->rd_node, RelationGetRelid(index));
}

/*
 * remove_files - unlink segment files in a database's directory: those of
 * relfilenode "node" (when given), or those whose header names index
 * "other_than_index" with a relfilenode other than "keep_relfilenode".
 * Errors are only logged: the files are a cache, and this runs at commit.
 */
static void
remove_files(Oid dboid, RelFileNode *node, Oid other_than_index, Oid keep_relfilenode)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;

	segment_dir(dboid, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d == NULL)
		return;
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		unsigned int relnode,
					gen;
		char		path[MAXPGPATH];
		bool		doit = false;

		if (sscanf(de->d_name, "%u.%u.seg", &relnode, &gen) != 2)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (node != NULL)
			doit = (relnode == node->relNode);
		else if (relnode != keep_relfilenode)
		{
			VsSegmentHeader hdr;

			/* a temporary file's header is not final yet: leave it */
			if (strstr(de->d_name, ".tmp.") == NULL &&
				read_header(path, &hdr) && hdr.indexoid == other_than_index)
				doit = true;
		}
		if (doit && unlink(path) != 0 && errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not remove file \"%s\": %m", path)));
	}
	FreeDir(d);
}

/*
 * xact_callback - carry out the removals at the end of the transaction.
 */
static void
xact_callback(XactEvent event, void *arg)
{
	bool		commit;
	Oid			handled[64];
	int			nhandled = 0;

	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT)
	{
		/*
		 * The catalog can still be read: learn each altered or rebuilt
		 * index's final relfilenode (a hook that ran before the command's
		 * catalog update became visible saw the old one).
		 */
		for (VsPending *p = pending; p != NULL; p = p->next)
		{
			HeapTuple	tup;

			if (p->kind != VS_PENDING_OTHERS_ON_COMMIT)
				continue;
			tup = SearchSysCache1(RELOID, ObjectIdGetDatum(p->indexoid));
			if (HeapTupleIsValid(tup))
			{
				p->node.relNode = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
				ReleaseSysCache(tup);
			}
		}
		return;
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		commit = true;
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		commit = false;
	else
		return;

	/* every scan of the transaction is over: drop pins, unmap the stale */
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		m->pins = 0;
		if (m->stale)
			unmap(m);
	}

	while (pending != NULL)
	{
		VsPending  *p = pending;
		bool		newer = false;

		pending = p->next;
		switch (p->kind)
		{
			case VS_PENDING_NODE_ON_COMMIT:
				if (commit)
					remove_files(p->node.dbNode, &p->node, InvalidOid, InvalidOid);
				break;
			case VS_PENDING_NODE_ON_ABORT:
				if (!commit)
					remove_files(p->node.dbNode, &p->node, InvalidOid, InvalidOid);
				break;
			case VS_PENDING_OTHERS_ON_COMMIT:

				/*
				 * Only the newest entry of an index knows its final
				 * relfilenode (the list is newest first, and entries are
				 * freed as they are handled, so look at what was handled).
				 */
				for (int i = 0; i < nhandled; i++)
					newer |= (handled[i] == p->indexoid);
				if (commit && !newer)
					remove_files(p->node.dbNode, NULL, p->indexoid, p->node.relNode);
				if (!newer && nhandled < lengthof(handled))
					handled[nhandled++] = p->indexoid;
				break;
		}
		pfree(p);
	}
}

/*
 * subxact_callback - a subtransaction's removals move to its parent on
 * commit; on abort, its builds' files go and its drops are forgotten.
 */
static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	VsPending **link = &pending;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;

	while (*link != NULL)
	{
		VsPending  *p = *link;

		if (p->nestlevel < level)
		{
			link = &p->next;
			continue;
		}
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			p->nestlevel = level - 1;
			link = &p->next;
			continue;
		}
		/* aborting: act on build files now, forget the rest */
		if (p->kind == VS_PENDING_NODE_ON_ABORT)
			remove_files(p->node.dbNode, &p->node, InvalidOid, InvalidOid);
		*link = p->next;
		pfree(p);
	}
}

/*
 * object_access - on DROP of a vecstore index (directly, or through its
 * table, schema or extension), remove its files at commit; after an ALTER
 * of one (SET TABLESPACE copies it to a new relfilenode without a build),
 * remove the files of its other relfilenodes at commit.
 */
static void
object_access(ObjectAccessType access, Oid classId, Oid objectId,
			  int subId, void *arg)
{
	HeapTuple	tup;
	Form_pg_class form;
	Oid			amoid;

	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if ((access != OAT_DROP && access != OAT_POST_ALTER) ||
		classId != RelationRelationId || subId != 0)
		return;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(objectId));
	if (!HeapTupleIsValid(tup))
		return;
	form = (Form_pg_class) GETSTRUCT(tup);
	amoid = get_index_am_oid("vecstore", true);
	if (form->relkind == RELKIND_INDEX && OidIsValid(amoid) && form->relam == amoid)
	{
		RelFileNode node;

		node.spcNode = OidIsValid(form->reltablespace) ? form->reltablespace : MyDatabaseTableSpace;
		node.dbNode = MyDatabaseId;
		node.relNode = form->relfilenode;
		add_pending(access == OAT_DROP ? VS_PENDING_NODE_ON_COMMIT : VS_PENDING_OTHERS_ON_COMMIT,
					node, objectId);
	}
	ReleaseSysCache(tup);
}

/*
 * process_utility - after DROP DATABASE succeeds, remove the database's
 * segment directory.  (DROP DATABASE cannot run in a transaction block,
 * so once it returns the drop is committed.)
 */
static void
process_utility(PlannedStmt *pstmt, const char *queryString,
				bool readOnlyTree, ProcessUtilityContext context,
				ParamListInfo params, QueryEnvironment *queryEnv,
				DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			dropped_db = InvalidOid;

	if (IsA(parsetree, DropdbStmt))
		dropped_db = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
							queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);

	if (OidIsValid(dropped_db))
	{
		char		dir[MAXPGPATH];

		segment_dir(dropped_db, dir, sizeof(dir));
		rmtree(dir, true);
	}
}

/*
 * file_age - seconds since a file was last modified (large when unknown).
 */
static double
file_age(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return 1e9;
	return difftime(time(NULL), st.st_mtime);
}

/*
 * VsSegmentSweep - remove orphans: in this database's directory, files
 * whose header names no live index with that relfilenode (a crash between
 * a build and its commit, a drop in a backend without the library), stale
 * temporary files; and directories of databases that no longer exist.
 * Files younger than VS_SWEEP_MIN_AGE are left alone, so a build in
 * progress in another session keeps its file.  Returns the number of
 * files and directories removed.
 */
int
VsSegmentSweep(void)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	int			removed = 0;

	segment_dir(MyDatabaseId, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d != NULL)
	{
		while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
		{
			char		path[MAXPGPATH];
			unsigned int relnode,
						gen;
			bool		orphan = false;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (file_age(path) < VS_SWEEP_MIN_AGE)
				continue;
			if (strstr(de->d_name, ".tmp.") != NULL)
				orphan = true;
			else if (sscanf(de->d_name, "%u.%u.seg", &relnode, &gen) == 2)
			{
				VsSegmentHeader hdr;

				if (!read_header(path, &hdr))
					orphan = true;
				else
				{
					HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(hdr.indexoid));

					if (!HeapTupleIsValid(tup))
						orphan = true;
					else
					{
						orphan = ((Form_pg_class) GETSTRUCT(tup))->relfilenode != relnode;
						ReleaseSysCache(tup);
					}
				}
			}
			if (orphan && unlink(path) == 0)
				removed++;
		}
		FreeDir(d);
	}

	/* directories of dropped databases */
	d = AllocateDir(VS_SEGMENT_DIR);
	if (d != NULL)
	{
		while ((de = ReadDirExtended(d, VS_SEGMENT_DIR, LOG)) != NULL)
		{
			unsigned int dboid;
			char		extra;

			if (sscanf(de->d_name, "%u%c", &dboid, &extra) != 1)
				continue;
			if (!SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum((Oid) dboid)))
			{
				segment_dir(dboid, dir, sizeof(dir));
				if (file_age(dir) >= VS_SWEEP_MIN_AGE && rmtree(dir, true))
					removed++;
			}
		}
		FreeDir(d);
	}
	return removed;
}
