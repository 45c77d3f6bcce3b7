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
 *	- mapping: pins while a scan or VACUUM uses a mapping, and letting go
 *	  of it on a relcache invalidation or at the end of the transaction.
 *
 * When files are removed (DROP, TRUNCATE, REINDEX, an aborted build, DROP
 * DATABASE, the orphan sweep) is vssegment_remove.c's business.
 *
 * IDENTIFICATION
 *	  src/vssegment.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "vsam.h"

#define VS_SEGMENT_MAGIC		0x56534731	/* "VSG1" */
#define VS_SEGMENT_VERSION		1
#define VS_ELEM_FLOAT4			1


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
 * costs the clusters it probes, not the whole file; and with the library
 * preloaded, only the first backend to read a part of a file checks it
 * (vssegment_checked.c): the others find it in the server's record.
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
	VsSegmentIdentity vid;
	struct VsMapping *next;
} VsMapping;

static VsMapping *mappings = NULL;

static bool read_header(const char *path, VsSegmentHeader *hdr);
static bool header_matches(const VsSegmentHeader *hdr, Relation index, VsMetaPage meta);
static void relcache_callback(Datum arg, Oid relid);

/*
 * VsSegmentInit - install the relcache callback that lets go of the
 * mappings of changed indexes (from _PG_init).  The removal of files has
 * its own callbacks and hooks (vssegment_remove.c, VsSegmentRemoveInit).
 */
void
VsSegmentInit(void)
{
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}

/*
 * VsSegmentDir - "pg_vecstore/<dboid>", relative to the data directory
 * (every backend's working directory), into "buf".
 */
void
VsSegmentDir(Oid dboid, char *buf, Size len)
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
	VsSegmentDir(dboid, dir, sizeof(dir));
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
 * (through shared buffers, in a bulk-read ring): NULL when sound, else
 * what is wrong.
 */
char *
VsSealedCheckFork(Relation index, VsMetaPage meta)
{
	VsSealedChecker ck;
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);

	checker_begin(&ck, meta);
	for (uint64 offset = 0; offset < meta->sealed.nbytes && ck.problem == NULL;
		 offset += VS_BLOB_PAYLOAD)
	{
		PGAlignedBlock chunk;
		Size		len = Min((uint64) VS_BLOB_PAYLOAD, meta->sealed.nbytes - offset);

		CHECK_FOR_INTERRUPTS();
		VsBlobRead(index, &meta->sealed, offset, chunk.data, len, bas);
		checker_feed(&ck, chunk.data, len, meta->dims);
	}
	FreeAccessStrategy(bas);
	return checker_end(&ck);
}

/*
 * VsSegmentWrite - (re)build the segment file of the index's current
 * generation from the sealed region of the fork.
 *
 * Reads the region through shared buffers (share locks, one page at a
 * time, in a bulk-read ring so that a large index does not flood
 * shared_buffers), writes "<file>.tmp.<pid>", fsyncs it, and renames it over the
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
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);

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
			Size		chunk = Min(meta->sealed.nbytes - offset, (uint64) VS_BLOB_PAYLOAD);
			PGAlignedBlock copy;

			CHECK_FOR_INTERRUPTS();
			VsBlobRead(index, &meta->sealed, offset, copy.data, chunk, bas);

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

	FreeAccessStrategy(bas);
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
 * (may be NULL) verified this very file before (same identity: device,
 * inode, size and modification time), or when the server's record says
 * another backend did (vssegment_checked.c).  Returns the mapping or
 * NULL (and why, in *problem) when the file must be rebuilt.
 */
static char *
try_map(Relation index, VsMetaPage meta, Size *len, const char **problem, VsMapping *m)
{
	char	   *path = VsSegmentPath(index->rd_node, meta->generation);
	VsSegmentHeader hdr;
	struct stat st;
	VsSegmentIdentity id;
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

	memset(&id, 0, sizeof(id));
	id.node = index->rd_node;
	id.generation = meta->generation;
	id.head_crc = meta->sealed_crc;
	id.nclusters = meta->nclusters;
	id.dev = (uint64) st.st_dev;
	id.ino = (uint64) st.st_ino;
	id.size = (uint64) st.st_size;
	id.mtime_ns = (int64) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;

	/* this very file checked before: by this backend, or another one */
	if (m != NULL && m->verified && memcmp(&m->vid, &id, sizeof(id)) == 0)
	{
		pfree(path);
		return addr;
	}
	if (m != NULL && VsCheckedGet(&id, -1))
		VsStats.files_trusted++;
	else
	{
		/* the head: its CRC against the manifest, then the table's offsets */
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
		if (m != NULL)
			VsCheckedSet(&id, -1);
		VsStats.files_checked++;
	}
	if (m != NULL)
	{
		m->verified = true;
		m->vid = id;
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
	if (VsCheckedGet(&m->vid, (int) cluster))
	{
		m->verified_clusters[cluster / 8] |= (1 << (cluster % 8));
		VsStats.clusters_trusted++;
		return body;
	}

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
		VsCheckedSet(&m->vid, (int) cluster);
		VsStats.clusters_checked++;
		return body;
	}

	/* corrupt: rebuild, map the new file, hand the caller over to it */
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("segment file of index \"%s\" fails the checksum of cluster %u; rebuilding it from the index",
					RelationGetRelationName(index), cluster)));
	VsCheckedForget(&m->vid);
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
			id->ino = m->vid.ino;
			id->size = m->vid.size;
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
 * VsSegmentFileIndex - the index a segment file's header names, for the
 * removal of files (vssegment_remove.c).  False when the file is missing
 * or its header is bad.
 */
bool
VsSegmentFileIndex(const char *path, Oid *indexoid)
{
	VsSegmentHeader hdr;

	if (!read_header(path, &hdr))
		return false;
	*indexoid = hdr.indexoid;
	return true;
}

/*
 * VsSegmentEndOfXact - at the end of a transaction every scan is over:
 * drop every pin this backend's mappings still have, and unmap the stale
 * ones.
 */
void
VsSegmentEndOfXact(void)
{
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		m->pins = 0;
		if (m->stale)
			unmap(m);
	}
}
