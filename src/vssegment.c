/*-------------------------------------------------------------------------
 *
 * vssegment.c
 *	  Segment files: the memory-mapped copy of an index's sealed region.
 *
 * A segment file holds the sealed region one generation of one index
 * wrote (a "piece", vsam.h), byte for byte, behind a 4 kB header, under
 * $PGDATA/pg_vecstore/<database oid>/<relfilenode>.<generation>.seg.  A
 * generation reads its own piece and the older pieces that still hold
 * clusters no compaction rewrote since.
 * It is a derived cache: the WAL-logged fork is the truth (DESIGN.md §2),
 * so a file that is missing (a standby, a restored backup, CREATE DATABASE,
 * a crash), stale or corrupt is rebuilt from the fork, never trusted.
 *
 * Owns:
 *	- the file format and its checks (magic, version, identity, sizes,
 *	  CRC-32C of header and body, the body CRC against the metapage's
 *	  manifest);
 *	- writing: temporary name, fsync, rename, fsync of the directory
 *	  (failures logged: no PANIC for a copy), so a reader never sees a
 *	  partial file, and a file is never rewritten or truncated in place (a
 *	  mapped file that shrinks kills its readers with SIGBUS);
 *	- mapping: read-only MAP_SHARED, the files of a generation side by side
 *	  in one range of addresses, one such mapping per index per backend,
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
#ifdef VS_USE_LIBURING
#include <liburing.h>
#endif

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "vsam.h"

#define VS_SEGMENT_MAGIC		0x56534731	/* "VSG1" */
#define VS_SEGMENT_VERSION		1
#define VS_SEGMENT_ELEMTYPE		1	/* the one value: the elements are as the
									 * metapage's elem_size says */

/* how often a backend serving an index from its fork tries the files again */
#define VS_FORK_RETRY_SECS		10


/* the file header; the rest of its 4 kB is zero */
typedef struct VsSegmentHeader
{
	uint32		magic;
	uint32		version;
	uint32		header_size;	/* VS_SEGMENT_HEADER_SIZE */
	uint32		dims;
	uint32		elemtype;		/* VS_SEGMENT_ELEMTYPE */
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
	uint32		header_crc;		/* CRC-32C of the fields above, and of
								 * writer_xid when it is valid */

	/*
	 * The top transaction that wrote the file, or Invalid (none assigned: a
	 * rebuild on a standby or by a read-only query).  The sweep keeps a file
	 * whose index it cannot see while this transaction is in progress.  It
	 * lies after header_crc, in what was padding (zero) before it existed,
	 * and the CRC covers it only when valid, so older files stay valid.
	 */
	TransactionId writer_xid;
} VsSegmentHeader;

/*
 * One generation's segment files this backend maps (or mapped: "addr" is
 * NULL after an unmap, and the identity of the files last verified is
 * kept, so that mapping the same unchanged files again skips the checks
 * already done).  Mapping checks each file's header and the head of the
 * body (the cluster and piece tables);
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
/*
 * A file behind a mapping, for reads that go around the mapping
 * (VsSegmentRead): where it is mapped, the identity it had when it was
 * mapped, and a descriptor opened the first time it is read so
 * (VS_FILE_UNOPENED before, VS_FILE_UNUSABLE when it could not be opened
 * or is no longer the mapped file).
 */
typedef struct VsPieceFile
{
	uint64		base;			/* its header's offset in the mapping */
	uint64		size;			/* header and body */
	uint64		dev;
	uint64		ino;
	uint32		generation;		/* names the file */
	int			fd;
	int			dfd;			/* the same, opened O_DIRECT (direct reads) */
} VsPieceFile;

#define VS_FILE_UNOPENED	(-1)
#define VS_FILE_UNUSABLE	(-2)

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
	uint8	   *read_clusters;	/* nclusters bits: read through this very
								 * mapping (checked here, or opened by a
								 * scan, VsSegmentFirstRead) */
	uint32		nclusters;
	VsSegmentIdentity vid;
	TimestampTz same_stmt;		/* the statement in which the files were
								 * last found unchanged (its start) */
	instr_time	same_at;		/* ... and when */
	char	   *head;			/* the mapped head's header (VsSealedHeader),
								 * in TopMemoryContext, or NULL */
	uint32	   *piece_gens;		/* the generations of the pieces after the
								 * first, in piece-table order, in
								 * TopMemoryContext */
	uint32		npieces;
	VsPieceFile files[VS_MAX_PIECES];	/* its files (nfiles of them) */
	uint32		nfiles;
	/* served from the fork: the files could not be mapped or rebuilt */
	bool		from_fork;
	TimestampTz fork_since;
	uint64		fork_clusters;	/* clusters read from the fork, ever */
	struct VsMapping *next;
} VsMapping;

static VsMapping *mappings = NULL;

/* the mapping whose body is at "body", or NULL */
static VsMapping *
mapping_of(const char *body)
{
	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->addr != NULL && m->addr + VS_SEGMENT_HEADER_SIZE == body)
			return m;
	}
	return NULL;
}

static const char *read_header(const char *path, VsSegmentHeader *hdr);
static bool header_matches(const VsSegmentHeader *hdr, Relation index, VsMetaPage meta,
						   const VsPieceInfo *piece);
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
	VsFaultInit();
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

/* the file of one generation of a relfilenode, into "buf" */
static void
segment_path(RelFileNode node, uint32 generation, char *buf)
{
	snprintf(buf, MAXPGPATH, "%s/%u/%u.%u.seg", VS_SEGMENT_DIR, node.dbNode, node.relNode,
			 generation);
}

/*
 * VsSegmentPath - the file of one generation of a relfilenode, palloc'd.
 */
char *
VsSegmentPath(RelFileNode node, uint32 generation)
{
	char		path[MAXPGPATH];

	segment_path(node, generation, path);
	return pstrdup(path);
}

/*
 * header_crc - CRC-32C of a header's fields before header_crc, and of
 * writer_xid when it is valid.
 */
static uint32
header_crc(const VsSegmentHeader *hdr)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, hdr, offsetof(VsSegmentHeader, header_crc));
	if (TransactionIdIsValid(hdr->writer_xid))
		COMP_CRC32C(crc, &hdr->writer_xid, sizeof(TransactionId));
	FIN_CRC32C(crc);
	return crc;
}

/*
 * header_sound - does a header pass its own checks (magic, version, size,
 * CRC)?
 */
static bool
header_sound(const VsSegmentHeader *hdr)
{
	return hdr->magic == VS_SEGMENT_MAGIC && hdr->version == VS_SEGMENT_VERSION &&
		hdr->header_size == VS_SEGMENT_HEADER_SIZE && hdr->header_crc == header_crc(hdr);
}

/*
 * VsSegmentHeaderSound - is the mapping "addr" of "size" bytes a segment
 * file of relfilenode "relnode" whose header is sound (header_sound) and
 * whose body fits?  Sets *generation.  For the pinner (vspin.c), which
 * maps files without an index open.
 */
bool
VsSegmentHeaderSound(const char *addr, Size size, Oid relnode, uint32 *generation)
{
	VsSegmentHeader hdr;

	if (size < VS_SEGMENT_HEADER_SIZE)
		return false;
	memcpy(&hdr, addr, sizeof(hdr));
	if (!header_sound(&hdr) || hdr.relfilenode != relnode ||
		hdr.body_size > size - VS_SEGMENT_HEADER_SIZE)
		return false;
	*generation = hdr.generation;
	return true;
}

/*
 * VsSegmentFileName - is "name" exactly a segment file's name,
 * "<relfilenode>.<generation>.seg" (not a temporary file)?  Sets both.
 */
bool
VsSegmentFileName(const char *name, Oid *relnode, uint32 *generation)
{
	unsigned int r,
				g;
	char		exact[64];

	if (sscanf(name, "%u.%u.seg", &r, &g) != 2)
		return false;
	snprintf(exact, sizeof(exact), "%u.%u.seg", r, g);
	if (strcmp(exact, name) != 0)
		return false;
	*relnode = r;
	*generation = g;
	return true;
}

/*
 * make_dirs - create pg_vecstore/ and pg_vecstore/<db>/ if missing,
 * durably.  NULL, or what failed.
 */
static char *
make_dirs(Oid dboid)
{
	char		dir[MAXPGPATH];

	if (MakePGDirectory(VS_SEGMENT_DIR) < 0 && errno != EEXIST)
		return psprintf("could not create directory \"%s\": %m", VS_SEGMENT_DIR);
	VsSegmentDir(dboid, dir, sizeof(dir));
	if (MakePGDirectory(dir) < 0)
	{
		if (errno != EEXIST)
			return psprintf("could not create directory \"%s\": %m", dir);
	}
	else
	{
		/* a failure is logged, not a PANIC (fsync_fname): see write_piece */
		(void) fsync_fname_ext(dir, true, false, LOG);
		(void) fsync_fname_ext(VS_SEGMENT_DIR, true, false, LOG);
	}
	return NULL;
}

/*
 * write_all - write the whole buffer; NULL, or what failed.
 */
static char *
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
			return psprintf("could not write file \"%s\": %m", path);
		}
		if (n == 0)
			return psprintf("could not write file \"%s\": wrote no bytes", path);
		p += n;
		len -= n;
	}
	return NULL;
}

/*
 * first_piece - the piece a generation writes itself, as the metapage
 * describes it (the head's first entry says the same, but the metapage
 * holds the head's CRC).
 */
static void
first_piece(VsMetaPage meta, VsPieceInfo *piece)
{
	memset(piece, 0, sizeof(VsPieceInfo));
	piece->generation = meta->generation;
	piece->head_crc = meta->sealed_crc;
	piece->base = 0;
	piece->region = meta->sealed;
}

/*
 * VsPieceIndex - the place of the piece written by "generation" in a
 * table of "npieces" pieces, or -1.
 */
int
VsPieceIndex(const VsPieceInfo *pieces, uint32 npieces, uint32 generation)
{
	for (uint32 p = 0; p < npieces; p++)
	{
		if (pieces[p].generation == generation)
			return (int) p;
	}
	return -1;
}

/*
 * VsHeadPiece - the entry of the piece written by "generation" in a
 * checked head, or NULL.
 */
const VsPieceInfo *
VsHeadPiece(const char *head, uint32 generation)
{
	const VsSealedHeader *sh = (const VsSealedHeader *) head;
	int			p = VsPieceIndex(VsHeadPieces(head), sh->npieces, generation);

	return p < 0 ? NULL : &VsHeadPieces(head)[p];
}

/*
 * table_problem - what is wrong with a (CRC-checked) head of "headsize"
 * bytes, or NULL.  The header must agree with the metapage, the
 * quantizer's parameters must pass their own check, the piece table must
 * start with this generation's own piece and lay the others out after it
 * without overlap, and every cluster's bytes must lie inside its piece,
 * its arrays in order, with room for the rows, codes and graph it
 * announces, and its deletion bits inside the bits in use.
 */
static char *
table_problem(const char *head, VsMetaPage meta, uint64 headsize)
{
	const VsSealedHeader *sh = (const VsSealedHeader *) head;
	const VsClusterInfo *info = VsHeadClusters(head);
	const VsPieceInfo *pieces;
	const VsQuantParams *params = NULL;
	uint32		nclusters = meta->nclusters;
	uint32		dims = meta->dims;
	uint64		rows = 0;

	if (sh->nclusters != nclusters || sh->dims != dims || sh->nrows != meta->sealed_rows ||
		sh->params_size != meta->params_size || sh->quantizer != meta->quantizer ||
		sh->npieces != meta->npieces || sh->npieces == 0 || sh->npieces > VS_MAX_PIECES ||
		headsize != VsSealedHeadSize(nclusters, sh->params_size, sh->npieces))
		return psprintf("has a header that does not match the metapage");
	if (sh->params_size > 0)
	{
		const char *problem;

		params = (const VsQuantParams *) (head + VsSealedParamsOffset(nclusters));
		problem = VsQuantValidate(params, sh->params_size);

		if (problem != NULL)
			return psprintf("has unusable code parameters: %s", problem);
		if (params->dims != dims || params->metric != meta->metric ||
			params->record_size != sh->record_size ||
			params->kind != (meta->quantizer == VS_QUANTIZER_SQ4 ? VS_QUANT_SQ4 : VS_QUANT_SQ8))
			return psprintf("has code parameters for another index");
	}
	pieces = VsHeadPieces(head);
	for (uint32 p = 0; p < sh->npieces; p++)
	{
		if (p == 0 ? (pieces[0].generation != meta->generation || pieces[0].base != 0 ||
					  pieces[0].region.start != meta->sealed.start ||
					  pieces[0].region.nblocks != meta->sealed.nblocks ||
					  pieces[0].region.nbytes != meta->sealed.nbytes) :
			(pieces[p].generation >= pieces[0].generation ||
			 pieces[p].base % VS_PIECE_ALIGN != 0 ||
			 pieces[p].base < pieces[p - 1].base + VS_SEGMENT_HEADER_SIZE + pieces[p - 1].region.nbytes ||
			 pieces[p].region.nbytes > (uint64) pieces[p].region.nblocks * VS_BLOB_PAYLOAD))
			return psprintf("has an inconsistent entry for piece %u in its piece table", p);
	}
	for (uint32 c = 0; c < nclusters; c++)
	{
		const VsPieceInfo *piece = VsHeadPiece(head, info[c].piece);
		uint64		end = info[c].vec_offset + info[c].nbytes;
		uint64		pos;

		if (piece == NULL ||
			info[c].vec_offset < piece->base + (piece == pieces ? headsize : sizeof(VsSealedHeader)) ||
			end < info[c].vec_offset || end > piece->base + piece->region.nbytes ||
			info[c].vec_offset % VS_SEGMENT_ALIGN != 0 ||
			info[c].vec_offset + (uint64) info[c].count * VsRowBytes(VsMetaElemSize(meta), dims) > info[c].tid_offset ||
			info[c].first_row + info[c].count > meta->row_space)
			return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
		pos = info[c].tid_offset + (uint64) info[c].count * sizeof(ItemPointerData);
		if (info[c].code_offset != 0)
		{
			if (params == NULL || info[c].code_offset < pos ||
				info[c].code_offset % VS_SEGMENT_ALIGN != 0)
				return psprintf("has an inconsistent entry for cluster %u in its cluster table", c);
			/* the whole block: the kernels read into its tail (vsquant.h) */
			pos = info[c].code_offset + VsQuantBlockSize(params, info[c].count);
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
		rows += info[c].count;
	}
	if (rows != meta->sealed_rows)
		return psprintf("has clusters of " UINT64_FORMAT " rows where the metapage says " UINT64_FORMAT,
						rows, meta->sealed_rows);
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

/* the CRC-32C of "len" bytes */
static uint32
crc_of(const void *data, Size len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	return crc;
}

/*
 * How a mapped segment file is read.  Scans read it at random: a cluster's
 * graph and codes, then one full vector per candidate reranked.  On a page
 * that is not in memory, the kernel's default for a file mapping is to
 * read around the fault as much as the device's read-ahead (read_ahead_kb:
 * 128 kB by default, 8 MB on the virtual disks of our benchmark machines)
 * to serve one vector of a few hundred bytes; with less memory than the
 * index, those reads also push the clusters' hot parts out of the page
 * cache.  So each mapping is advised MADV_RANDOM (no read-around), and the
 * readers ask for what they are about to read themselves: the scans while
 * they meet missing pages (vsscan.c, "Read-ahead"), and a cluster's
 * checksum pass, which reads all of it in order, before it starts
 * (crc_of_mapped).  With vecstore.readahead = off, neither: the kernel's
 * own read-around.
 */
static void
advise_mapping(void *addr, Size len)
{
	if (vecstore_readahead != VS_READAHEAD_OFF)
		(void) madvise(addr, len, MADV_RANDOM);
}

/*
 * VsSegmentWillNeed - ask the kernel for the pages of "len" bytes at "addr"
 * of a mapping (MADV_WILLNEED: the reads start, the call returns; errors
 * ignored).
 */
void
VsSegmentWillNeed(const char *addr, Size len)
{
	VsSegmentWillNeedMany(&addr, 1, len);
}

/* qsort comparator of addresses */
static int
compare_addresses(const void *a, const void *b)
{
	uintptr_t	x = (uintptr_t) *(const char *const *) a;
	uintptr_t	y = (uintptr_t) *(const char *const *) b;

	return (x > y) - (x < y);
}

/*
 * VsSegmentWillNeedMany - VsSegmentWillNeed of "len" bytes at each of the
 * "n" addresses of "addrs" (which it sorts), in one call for each run of
 * pages they cover without a gap: under memory pressure each call costs
 * a few microseconds (the system call, and the device's notification for
 * its read), and a rerank batch's vectors may share pages or lie on
 * neighbouring ones.
 */
void
VsSegmentWillNeedMany(const char **addrs, int n, Size len)
{
	static uintptr_t pagesize = 0;
	uintptr_t	start = 0,
				end = 0;

	if (len == 0 || n <= 0)
		return;
	if (pagesize == 0)
		pagesize = (uintptr_t) sysconf(_SC_PAGESIZE);
	qsort(addrs, n, sizeof(const char *), compare_addresses);
	for (int i = 0; i < n; i++)
	{
		uintptr_t	s = (uintptr_t) addrs[i] & ~(pagesize - 1);
		uintptr_t	e = ((uintptr_t) addrs[i] + len + pagesize - 1) & ~(pagesize - 1);

		if (i > 0 && s <= end)
		{
			end = Max(end, e);
			continue;
		}
		if (i > 0)
			(void) madvise((void *) start, end - start, MADV_WILLNEED);
		start = s;
		end = e;
	}
	(void) madvise((void *) start, end - start, MADV_WILLNEED);
}

/* crc_of of bytes of a mapping, asked for in one go first */
static uint32
crc_of_mapped(const char *data, Size len)
{
	if (vecstore_readahead != VS_READAHEAD_OFF)
		VsSegmentWillNeed(data, len);
	return crc_of(data, len);
}

/*
 * head_problem - check a head read from the fork or a file: its CRC
 * against the metapage's, then its tables.  NULL when sound.
 */
static char *
head_problem(const char *head, VsMetaPage meta, uint64 headsize)
{
	uint32		crc = crc_of(head, headsize);

	if (crc != meta->sealed_crc)
		return psprintf("fails the checksum of its cluster table (%08X, the metapage says %08X)",
						crc, meta->sealed_crc);
	return table_problem(head, meta, headsize);
}

/*
 * VsSealedHead - the head of the current generation's sealed data (header,
 * cluster table, parameters, piece table), read from the fork through
 * "bas" and checked; palloc'd.  NULL, with what is wrong in *problem, when
 * it fails its checks.
 */
char *
VsSealedHead(Relation index, VsMetaPage meta, BufferAccessStrategy bas, char **problem)
{
	uint64		headsize = VsSealedHeadSize(meta->nclusters, meta->params_size, meta->npieces);
	char	   *head;

	*problem = NULL;
	if (headsize > meta->sealed.nbytes)
	{
		*problem = psprintf("is shorter than its cluster table");
		return NULL;
	}
	head = palloc_extended(headsize, MCXT_ALLOC_HUGE);
	VsBlobRead(index, &meta->sealed, 0, head, headsize, bas);
	*problem = head_problem(head, meta, headsize);
	if (*problem != NULL)
	{
		pfree(head);
		return NULL;
	}
	return head;
}

/*
 * VsSealedHeadOrError - VsSealedHead, where a head that fails its checks
 * is an error with a REINDEX hint.
 */
char *
VsSealedHeadOrError(Relation index, VsMetaPage meta, BufferAccessStrategy bas)
{
	char	   *problem;
	char	   *head = VsSealedHead(index, meta, bas, &problem);

	if (head == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("sealed data of index \"%s\" %s", RelationGetRelationName(index), problem),
				 errhint("Please REINDEX it.")));
	return head;
}

/*
 * piece_head_size - the size of the head a piece starts with (its own
 * generation's), from its header; 0 when that header is not plausible.
 */
static uint64
piece_head_size(const VsSealedHeader *sh, uint64 nbytes)
{
	uint64		size;

	if (sh->nclusters > VS_MAX_LISTS || sh->npieces == 0 || sh->npieces > VS_MAX_PIECES ||
		sh->params_size > nbytes)
		return 0;
	size = VsSealedHeadSize(sh->nclusters, sh->params_size, sh->npieces);
	return size <= nbytes ? size : 0;
}

/*
 * fork_crc - CRC-32C of "len" bytes of a region of the fork from "offset".
 */
static uint32
fork_crc(Relation index, const VsRegion *region, uint64 offset, uint64 len,
		 BufferAccessStrategy bas)
{
	PGAlignedBlock chunk;
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	while (len > 0)
	{
		Size		n = Min(len, (uint64) VS_BLOB_PAYLOAD);

		CHECK_FOR_INTERRUPTS();
		VsBlobRead(index, region, offset, chunk.data, n, bas);
		COMP_CRC32C(crc, chunk.data, n);
		offset += n;
		len -= n;
	}
	FIN_CRC32C(crc);
	return crc;
}

/*
 * VsSealedCheckFork - check the sealed data in the index's fork (through
 * shared buffers, in a bulk-read ring): the head against the metapage, the
 * head of every older piece against the piece table, every cluster
 * against its CRC.  NULL when sound, else what is wrong.
 */
char *
VsSealedCheckFork(Relation index, VsMetaPage meta)
{
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);
	char	   *problem;
	char	   *head = VsSealedHead(index, meta, bas, &problem);
	const VsSealedHeader *sh;
	const VsPieceInfo *pieces;
	const VsClusterInfo *info;

	if (head == NULL)
	{
		FreeAccessStrategy(bas);
		return problem;
	}
	sh = (const VsSealedHeader *) head;
	pieces = VsHeadPieces(head);
	info = VsHeadClusters(head);
	for (uint32 p = 1; p < sh->npieces && problem == NULL; p++)
	{
		VsSealedHeader psh;
		uint64		size;

		if (pieces[p].region.nbytes < sizeof(VsSealedHeader))
		{
			problem = psprintf("has a piece of generation %u too short for its head", pieces[p].generation);
			break;
		}
		VsBlobRead(index, &pieces[p].region, 0, &psh, sizeof(psh), bas);
		size = piece_head_size(&psh, pieces[p].region.nbytes);
		if (size == 0 || fork_crc(index, &pieces[p].region, 0, size, bas) != pieces[p].head_crc)
			problem = psprintf("fails the checksum of the head of its piece of generation %u",
							   pieces[p].generation);
	}
	for (uint32 c = 0; c < meta->nclusters && problem == NULL; c++)
	{
		const VsPieceInfo *piece = VsHeadPiece(head, info[c].piece);

		if (fork_crc(index, &piece->region, info[c].vec_offset - piece->base, info[c].nbytes, bas) !=
			info[c].crc)
			problem = psprintf("fails the checksum of cluster %u", c);
	}
	pfree(head);
	FreeAccessStrategy(bas);
	return problem;
}

/*
 * write_piece - (re)build the segment file of one piece from its bytes in
 * the fork.
 *
 * Reads the region through shared buffers (share locks, one page at a
 * time, in a bulk-read ring so that a large index does not flood
 * shared_buffers), writes "<file>.tmp.<pid>", checks what it wrote (the
 * piece's own head against the piece table's CRC, and the clusters of the
 * current generation it holds against theirs: "head" is the current head,
 * checked, or NULL when the piece is the generation's own), fsyncs it, and
 * renames it over the final name and fsyncs the directory.  A backend
 * that has the old file mapped keeps its mapping.  Works on a standby (and
 * sweeps there: see the end).
 *
 * Returns NULL, or what the file system refused (a full disk, a directory
 * without write permission): the caller decides whether that is an error
 * (a build) or a reason to read the fork instead (a scan).  Bytes from the
 * fork that fail their checksums mean the fork itself is corrupt: that is
 * an error with a REINDEX hint, and no file is written.
 */
static char *
write_piece(Relation index, VsMetaPage meta, const VsPieceInfo *piece, const char *head)
{
	char	   *path = VsSegmentPath(index->rd_node, piece->generation);
	char	   *tmppath = psprintf("%s.tmp.%d", path, MyProcPid);
	PGAlignedBlock hdrbuf;
	VsSegmentHeader *hdr = (VsSegmentHeader *) hdrbuf.data;
	VsSealedHeader psh;
	char	   *run;
	volatile int fd;
	char	   *volatile failed;
	uint64		nbytes = piece->region.nbytes;
	BufferAccessStrategy bas;

	failed = make_dirs(index->rd_node.dbNode);
	if (failed != NULL)
		return failed;
	bas = GetAccessStrategy(BAS_BULKREAD);
	memset(&psh, 0, sizeof(psh));
	if (nbytes >= sizeof(psh))
		VsBlobRead(index, &piece->region, 0, &psh, sizeof(psh), bas);

	fd = OpenTransientFile(tmppath, O_CREAT | O_TRUNC | O_RDWR | PG_BINARY);
	if (fd < 0)
	{
		FreeAccessStrategy(bas);
		return psprintf("could not create file \"%s\": %m", tmppath);
	}
	run = palloc(VS_PIECE_PLACE);

	PG_TRY();
	{
		char	   *problem = NULL;
		char	   *addr = MAP_FAILED;
		const char *body;
		const char *curhead = head;
		uint64		headsize = piece_head_size(&psh, nbytes);
		uint64		offset = 0;

		/*
		 * Header first (its CRCs are filled in and rewritten at the end),
		 * then the body, in runs of VS_PIECE_PLACE bytes of the file: the
		 * page cache keeps what one write() brought in as pieces of its
		 * size where the file system can (see "Huge mappings").
		 */
		Size		fill = VS_SEGMENT_HEADER_SIZE;

		memset(hdrbuf.data, 0, sizeof(hdrbuf.data));
		memset(run, 0, VS_SEGMENT_HEADER_SIZE);
		do
		{
			Size		chunk = Min(nbytes - offset, (uint64) (VS_PIECE_PLACE - fill));

			CHECK_FOR_INTERRUPTS();
			if (chunk > 0)
				VsBlobRead(index, &piece->region, offset, run + fill, chunk, bas);
			fill += chunk;
			offset += chunk;
			if (fill == VS_PIECE_PLACE || offset == nbytes)
			{
				failed = write_all(fd, tmppath, run, fill);
				fill = 0;
			}
		} while (failed == NULL && offset < nbytes);

		/* check what was written, where it was written */
		if (failed == NULL)
		{
			addr = mmap(NULL, VS_SEGMENT_HEADER_SIZE + nbytes, PROT_READ, MAP_SHARED, fd, 0);
			if (addr == MAP_FAILED)
				failed = psprintf("could not map file \"%s\": %m", tmppath);
		}
		if (failed == NULL)
		{
			body = addr + VS_SEGMENT_HEADER_SIZE;
			if (curhead == NULL)
			{
				headsize = VsSealedHeadSize(meta->nclusters, meta->params_size, meta->npieces);
				if (headsize > nbytes)
					problem = psprintf("is shorter than its cluster table");
				else
					problem = head_problem(body, meta, headsize);
				curhead = body;
			}
			else if (headsize == 0 || crc_of(body, headsize) != piece->head_crc)
				problem = psprintf("fails the checksum of the head of its piece of generation %u",
								   piece->generation);
			for (uint32 c = 0; c < meta->nclusters && problem == NULL; c++)
			{
				const VsClusterInfo *info = VsHeadClusters(curhead) + c;

				if (info->piece == piece->generation &&
					crc_of(body + (info->vec_offset - piece->base), info->nbytes) != info->crc)
					problem = psprintf("fails the checksum of cluster %u", c);
			}
			munmap(addr, VS_SEGMENT_HEADER_SIZE + nbytes);
			if (problem != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INDEX_CORRUPTED),
						 errmsg("sealed data of index \"%s\" %s", RelationGetRelationName(index), problem),
						 errhint("Please REINDEX it.")));
		}

		if (failed == NULL)
		{
			hdr->magic = VS_SEGMENT_MAGIC;
			hdr->version = VS_SEGMENT_VERSION;
			hdr->header_size = VS_SEGMENT_HEADER_SIZE;
			hdr->dims = meta->dims;
			hdr->elemtype = VS_SEGMENT_ELEMTYPE;
			hdr->nclusters = psh.nclusters;
			hdr->nvectors = psh.nrows;
			hdr->dboid = index->rd_node.dbNode;
			hdr->spcoid = index->rd_node.spcNode;
			hdr->relfilenode = index->rd_node.relNode;
			hdr->indexoid = RelationGetRelid(index);
			hdr->generation = piece->generation;
			hdr->body_crc = piece->head_crc;
			hdr->body_size = nbytes;
			hdr->seal_lsn = RecoveryInProgress() ? GetXLogReplayRecPtr(NULL) : GetXLogInsertRecPtr();
			hdr->writer_xid = GetTopTransactionIdIfAny();
			hdr->header_crc = header_crc(hdr);
			if (pg_pwrite(fd, hdrbuf.data, VS_SEGMENT_HEADER_SIZE, 0) != VS_SEGMENT_HEADER_SIZE)
				failed = psprintf("could not write file \"%s\": %m", tmppath);
		}
		/*
		 * A failed fsync is not a PANIC here as it is for the fork: the
		 * file is removed, and the fork still holds every byte.
		 */
		if (failed == NULL && pg_fsync(fd) != 0)
			failed = psprintf("could not fsync file \"%s\": %m", tmppath);
		if (CloseTransientFile(fd) != 0 && failed == NULL)
			failed = psprintf("could not close file \"%s\": %m", tmppath);
		fd = -1;
		/*
		 * Renamed, then the new name and the directory fsynced, each
		 * failure logged (durable_rename would also fsync a file it
		 * replaces, a damaged one being rebuilt, and that fsync's failure
		 * is a PANIC: data_sync_elevel).  A crash before these are on disk
		 * leaves the old file or the new one, checked when read.
		 */
		if (failed == NULL && rename(tmppath, path) != 0)
			failed = psprintf("could not rename file \"%s\" to \"%s\": %m", tmppath, path);
		if (failed == NULL)
		{
			char		dir[MAXPGPATH];

			VsSegmentDir(index->rd_node.dbNode, dir, sizeof(dir));
			(void) fsync_fname_ext(path, false, false, LOG);
			(void) fsync_fname_ext(dir, true, false, LOG);
		}
		if (failed != NULL)
			unlink(tmppath);
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
	pfree(run);
	pfree(tmppath);
	pfree(path);

	/*
	 * On a standby, the files of indexes dropped or rebuilt on the primary
	 * (and the directories of dropped databases) are no one's: replay runs
	 * none of the hooks that remove them on the primary
	 * (vssegment_remove.c), so a standby that writes a file sweeps the
	 * others, as CREATE INDEX does on the primary.  A REINDEX there makes
	 * the standby's next query write the new relfilenode's file.
	 */
	if (failed == NULL && RecoveryInProgress())
		(void) VsSegmentSweep();
	return failed;
}

/*
 * write_piece_or_error - write_piece, where a file that cannot be written
 * is an error (builds, compactions, vecstore_verify's repair).
 */
static void
write_piece_or_error(Relation index, VsMetaPage meta, const VsPieceInfo *piece, const char *head)
{
	char	   *failed = write_piece(index, meta, piece, head);

	if (failed != NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write the segment file of generation %u of index \"%s\"",
						piece->generation, RelationGetRelationName(index)),
				 errdetail("%s", failed)));
}

/*
 * VsSegmentWritePiece - (re)build the segment file of the current
 * generation's own piece from the fork (CREATE INDEX, a compaction).
 */
void
VsSegmentWritePiece(Relation index, VsMetaPage meta)
{
	VsPieceInfo piece;

	first_piece(meta, &piece);
	write_piece_or_error(index, meta, &piece, NULL);
}

/*
 * VsSegmentWriteOtherPiece - build the segment file of a piece of the
 * generation of "meta" that does not hold its head ("head": that
 * generation's head, checked), from the fork (a compaction that wrote
 * several pieces).
 */
void
VsSegmentWriteOtherPiece(Relation index, VsMetaPage meta, const VsPieceInfo *piece,
						 const char *head)
{
	write_piece_or_error(index, meta, piece, head);
}

/*
 * VsSegmentWrite - (re)build every segment file of the current generation
 * from the fork (vecstore_verify's repair).
 */
void
VsSegmentWrite(Relation index, VsMetaPage meta)
{
	char	   *head;
	const VsPieceInfo *pieces;

	VsSegmentWritePiece(index, meta);
	head = VsSealedHeadOrError(index, meta, NULL);
	pieces = VsHeadPieces(head);
	for (uint32 p = 1; p < meta->npieces; p++)
		write_piece_or_error(index, meta, &pieces[p], head);
	pfree(head);
}

/*
 * read_header - read and check a file's header (magic, version, size
 * fields, header CRC).  NULL when it is sound, else what is wrong, with
 * the system's reason when the file could not be read.
 */
static const char *
read_header(const char *path, VsSegmentHeader *hdr)
{
	int			fd;
	ssize_t		n;
	int			save_errno;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return "is missing";
		return psprintf("could not be opened: %m");
	}
	n = pg_pread(fd, hdr, sizeof(VsSegmentHeader), 0);
	save_errno = errno;
	CloseTransientFile(fd);
	if (n < 0)
	{
		errno = save_errno;
		return psprintf("could not be read: %m");
	}
	if (n != sizeof(VsSegmentHeader))
		return "is shorter than its header";
	if (!header_sound(hdr))
		return "has a bad header";
	return NULL;
}

/*
 * header_matches - is this the file of "piece" of this index?
 */
static bool
header_matches(const VsSegmentHeader *hdr, Relation index, VsMetaPage meta,
			   const VsPieceInfo *piece)
{
	return hdr->dims == meta->dims &&
		hdr->elemtype == VS_SEGMENT_ELEMTYPE &&
		hdr->dboid == index->rd_node.dbNode &&
		hdr->spcoid == index->rd_node.spcNode &&
		hdr->relfilenode == index->rd_node.relNode &&
		hdr->generation == piece->generation &&
		hdr->body_crc == piece->head_crc &&
		hdr->body_size == piece->region.nbytes;
}

/*
 * Huge mappings.  A backend that maps a segment file pays for each page
 * of it that it touches the first time: a page fault that maps 4 kB (or
 * the few pages around it that are in memory), about a third of a new
 * connection's first query at 1M rows.  Where the page cache holds a file
 * in 2 MB pieces (large folios: ext4 since Linux 6.16, XFS), the kernel
 * maps a whole piece at once, with one entry of the page table and of the
 * TLB, if the mapping of that part of the file starts on a 2 MB boundary
 * of the address space.  So mappings are reserved on such a boundary,
 * pieces placed on them (VS_PIECE_PLACE), and files written in runs of
 * 2 MB, which such a page cache keeps in 2 MB pieces.  Elsewhere this
 * changes nothing: the pages are mapped one by one, as before.
 */

/*
 * reserve_range - "len" bytes of address space, inaccessible, starting on
 * a VS_PIECE_PLACE boundary; MAP_FAILED when there is no room.
 */
static char *
reserve_range(Size len)
{
	Size		pagesize = (Size) sysconf(_SC_PAGESIZE);
	Size		rounded = TYPEALIGN(pagesize, len);
	Size		total = rounded + VS_PIECE_PLACE;
	char	   *raw;
	char	   *addr;

	raw = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return raw;
	addr = (char *) TYPEALIGN(VS_PIECE_PLACE, raw);
	if (addr > raw)
		(void) munmap(raw, addr - raw);
	if (raw + total > addr + rounded)
		(void) munmap(addr + rounded, raw + total - (addr + rounded));
	return addr;
}

/*
 * release_range - unmap a range map_generation (or map_from_fork) made.
 */
static void
release_range(char *addr, Size len)
{
	VsFaultRangeRemove(addr);
	if (munmap(addr, len) != 0)
		elog(WARNING, "could not unmap " UINT64_FORMAT " bytes of segment files: %m", (uint64) len);
}

/*
 * unmap - drop a mapping.
 */
static void
unmap(VsMapping *m)
{
	for (uint32 p = 0; p < m->nfiles; p++)
	{
		if (m->files[p].fd >= 0)
		{
			close(m->files[p].fd);
			ReleaseExternalFD();
		}
		if (m->files[p].dfd >= 0)
		{
			close(m->files[p].dfd);
			ReleaseExternalFD();
		}
	}
	m->nfiles = 0;
	if (m->read_clusters != NULL)
		pfree(m->read_clusters);
	m->read_clusters = NULL;
	if (m->addr != NULL)
		release_range(m->addr, m->len);
	m->addr = NULL;
	m->from_fork = false;
	m->stale = false;
	if (m->head != NULL)
		pfree(m->head);
	m->head = NULL;
}

/*
 * open_piece - open the file of one piece and check that it is the one
 * the piece table names (header, size); fills *st.  -1, with why in
 * *problem, when it must be rebuilt.
 */
static int
open_piece(Relation index, VsMetaPage meta, const VsPieceInfo *piece, struct stat *st,
		   const char **problem)
{
	char	   *path = VsSegmentPath(index->rd_node, piece->generation);
	VsSegmentHeader hdr;
	int			fd;

	*problem = read_header(path, &hdr);
	if (*problem == NULL && !header_matches(&hdr, index, meta, piece))
		*problem = "is stale";
	if (*problem != NULL)
	{
		pfree(path);
		return -1;
	}
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		*problem = errno == ENOENT ? "is missing" : psprintf("could not be opened: %m");
		pfree(path);
		return -1;
	}
	if (fstat(fd, st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", path)));
	if ((uint64) st->st_size != VS_SEGMENT_HEADER_SIZE + piece->region.nbytes)
	{
		CloseTransientFile(fd);
		*problem = "has the wrong size";
		fd = -1;
	}
	pfree(path);
	return fd;
}

/*
 * identity_add_file - what stat() says of file "p" of a generation (0: the
 * generation's own piece, others in piece-table order) into its identity:
 * the first file's device, inode, size and times as they are, the others'
 * mixed into a hash.
 */
static void
identity_add_file(VsSegmentIdentity *id, uint32 p, uint32 generation, const struct stat *st)
{
	uint64		v[5];
	uint64		h;

	v[0] = (uint64) st->st_dev;
	v[1] = (uint64) st->st_ino;
	v[2] = (uint64) st->st_size;
	v[3] = (uint64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	v[4] = (uint64) st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	if (p == 0)
	{
		id->dev = v[0];
		id->ino = v[1];
		id->size = v[2];
		id->mtime_ns = (int64) v[3];
		id->ctime_ns = (int64) v[4];
		return;
	}
	h = id->pieces_hash ^ generation;
	for (int i = 0; i < 5; i++)
		h = (h ^ v[i]) * UINT64CONST(0x100000001B3);
	id->pieces_hash = h;
}

/*
 * A generation as mapped: every piece's file side by side in one range of
 * addresses, so that the cluster table's offsets hold (vsam.h,
 * VsPieceInfo).
 */
typedef struct VsMapped
{
	char	   *addr;			/* the first file's header */
	Size		len;
	char	   *head;			/* a copy of the head, palloc'd */
	VsSegmentIdentity id;
	VsPieceFile files[VS_MAX_PIECES];	/* the files, as mapped */
	VsPieceInfo bad;			/* when mapping failed: the piece to rebuild */
} VsMapped;

/*
 * map_generation - map every segment file of the current generation and
 * check what mapping involves: each file's header against the piece
 * table, its size, and the head (its CRC against the manifest, then its
 * tables).  The head's checks are skipped when "m" (may be NULL) verified
 * this very set of files before (same identity: devices, inodes, sizes and
 * modification times), or when the server's record says another backend
 * did (vssegment_checked.c).  False, with why in *problem and the piece to
 * rebuild in out->bad, when a file must be rebuilt.
 */
static bool
map_generation(Relation index, VsMetaPage meta, VsMapping *m, VsMapped *out,
			   const char **problem)
{
	uint64		headsize = VsSealedHeadSize(meta->nclusters, meta->params_size, meta->npieces);
	VsPieceInfo first;
	const VsPieceInfo *pieces;
	struct stat st;
	int			fd;
	char	   *head;
	char	   *addr;
	Size		len;
	bool		trusted = false;

	memset(out, 0, sizeof(VsMapped));
	first_piece(meta, &first);
	out->bad = first;
	if (headsize > meta->sealed.nbytes)
	{
		*problem = "is shorter than its cluster table";
		return false;
	}
	fd = open_piece(index, meta, &first, &st, problem);
	if (fd < 0)
		return false;
	head = palloc_extended(headsize, MCXT_ALLOC_HUGE);
	if (pg_pread(fd, head, headsize, VS_SEGMENT_HEADER_SIZE) != (ssize_t) headsize)
	{
		CloseTransientFile(fd);
		pfree(head);
		*problem = "has the wrong size";
		return false;
	}
	CloseTransientFile(fd);

	memset(&out->id, 0, sizeof(VsSegmentIdentity));
	out->id.node = index->rd_node;
	out->id.generation = meta->generation;
	out->id.head_crc = meta->sealed_crc;
	out->id.nclusters = meta->nclusters;
	identity_add_file(&out->id, 0, meta->generation, &st);

	/*
	 * The head as the file has it: checked before its piece table is used,
	 * unless this file is known to be checked already (its identity is
	 * stat()'s, so the other pieces' part of it comes later).
	 */
	if (m != NULL && m->verified && m->vid.dev == out->id.dev && m->vid.ino == out->id.ino &&
		m->vid.size == out->id.size && m->vid.mtime_ns == out->id.mtime_ns &&
		m->vid.ctime_ns == out->id.ctime_ns &&
		m->vid.generation == out->id.generation && m->vid.head_crc == out->id.head_crc)
		trusted = true;
	if (!trusted && (*problem = head_problem(head, meta, headsize)) != NULL)
	{
		pfree(head);
		*problem = "has a cluster table that fails its checks";
		return false;
	}

	/* one range for all pieces, then each file into its place */
	pieces = VsHeadPieces(head);
	len = pieces[meta->npieces - 1].base + VS_SEGMENT_HEADER_SIZE +
		pieces[meta->npieces - 1].region.nbytes;
	addr = reserve_range(len);
	if (addr == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not reserve " UINT64_FORMAT " bytes of address space for index \"%s\": %m",
						(uint64) len, RelationGetRelationName(index))));
	VsFaultRangeAdd(addr, len);
	for (uint32 p = 0; p < meta->npieces; p++)
	{
		const VsPieceInfo *piece = p == 0 ? &first : &pieces[p];
		char	   *at;

		fd = open_piece(index, meta, piece, &st, problem);
		if (fd < 0)
		{
			out->bad = *piece;
			release_range(addr, len);
			pfree(head);
			return false;
		}
		if (p > 0)
			identity_add_file(&out->id, p, piece->generation, &st);
		else
		{
			/*
			 * The first piece is opened again to be mapped: it must be the
			 * file whose head was checked and whose identity the checks are
			 * recorded under, not one renamed over it since (a rebuild by
			 * another backend): else the record would vouch for clusters
			 * checked in another file.
			 */
			VsSegmentIdentity again = out->id;

			identity_add_file(&again, 0, meta->generation, &st);
			if (memcmp(&again, &out->id, sizeof(VsSegmentIdentity)) != 0)
			{
				CloseTransientFile(fd);
				out->bad = first;
				release_range(addr, len);
				pfree(head);
				*problem = "was replaced while it was opened";
				return false;
			}
		}
		out->files[p].base = piece->base;
		out->files[p].size = VS_SEGMENT_HEADER_SIZE + piece->region.nbytes;
		out->files[p].dev = (uint64) st.st_dev;
		out->files[p].ino = (uint64) st.st_ino;
		out->files[p].generation = piece->generation;
		out->files[p].fd = VS_FILE_UNOPENED;
		out->files[p].dfd = VS_FILE_UNOPENED;
		at = mmap(addr + piece->base, VS_SEGMENT_HEADER_SIZE + piece->region.nbytes, PROT_READ,
				  MAP_SHARED | MAP_FIXED, fd, 0);
		CloseTransientFile(fd);
		if (at == MAP_FAILED)
		{
			int			save_errno = errno;

			release_range(addr, len);
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not map segment file of generation %u of index \"%s\": %m",
							piece->generation, RelationGetRelationName(index))));
		}
		advise_mapping(at, VS_SEGMENT_HEADER_SIZE + piece->region.nbytes);
	}

	/* the whole set: checked by this backend or another one, or now */
	if (m != NULL && m->verified && memcmp(&m->vid, &out->id, sizeof(VsSegmentIdentity)) == 0)
		;
	else if (m != NULL && VsCheckedGet(&out->id, -1))
		VsStats.files_trusted++;
	else
	{
		if (trusted && head_problem(head, meta, headsize) != NULL)
		{
			release_range(addr, len);
			pfree(head);
			*problem = "has a cluster table that fails its checks";
			return false;
		}
		if (m != NULL)
			VsCheckedSet(&out->id, -1);
		VsStats.files_checked++;
	}
	out->addr = addr;
	out->len = len;
	out->head = head;
	return true;
}

/*
 * files_unchanged - are the files behind a verified mapping still the
 * files it verified (same devices, inodes, sizes and times)?  A file
 * replaced, rebuilt by another backend, truncated or written in place is
 * not, and the mapping must be made and checked again.
 *
 * The files are looked at (a stat() of each, 1.5-2.5 us) once per
 * statement, and again within one statement when VS_FILES_RECHECK_MS
 * have passed: a statement that runs many scans (a function's loop, a
 * LATERAL join's rescans) does not pay it for each.
 */
#define VS_FILES_RECHECK_MS	1000

static bool
files_unchanged(VsMapping *m)
{
	VsSegmentIdentity id;
	struct stat st;
	char		path[MAXPGPATH];
	TimestampTz stmt = GetCurrentStatementStartTimestamp();
	instr_time	now;

	if (!m->verified || m->piece_gens == NULL)
		return false;
	INSTR_TIME_SET_CURRENT(now);
	if (m->same_stmt == stmt)
	{
		instr_time	since = now;

		INSTR_TIME_SUBTRACT(since, m->same_at);
		if (INSTR_TIME_GET_MILLISEC(since) < VS_FILES_RECHECK_MS)
			return true;
	}
	id = m->vid;
	id.pieces_hash = 0;
	for (uint32 p = 0; p < m->npieces; p++)
	{
		segment_path(m->node, m->piece_gens[p], path);
		if (stat(path, &st) != 0)
			return false;
		identity_add_file(&id, p, m->piece_gens[p], &st);
	}
	if (memcmp(&id, &m->vid, sizeof(VsSegmentIdentity)) != 0)
		return false;
	m->same_stmt = stmt;
	m->same_at = now;
	return true;
}

/*
 * map_from_fork - serve a generation from the fork: when its segment
 * files cannot be read, mapped or rebuilt ("why"), the body is an
 * anonymous range laid out as the mapping would be, with the head read
 * from the fork now and each cluster read (through shared buffers) and
 * checked the first time it is used (VsSegmentCluster).  Slower and
 * private to this backend, but correct; the files are tried again every
 * VS_FORK_RETRY_SECS.
 */
static void
map_from_fork(Relation index, VsMetaPage meta, VsMapping *m, uint32 generation, const char *why)
{
	static bool warned = false;
	char	   *head = VsSealedHeadOrError(index, meta, NULL);
	const VsPieceInfo *pieces;
	uint64		headsize;
	Size		len;
	char	   *addr;

	headsize = VsSealedHeadSize(meta->nclusters, meta->params_size, meta->npieces);
	pieces = VsHeadPieces(head);
	len = pieces[meta->npieces - 1].base + VS_SEGMENT_HEADER_SIZE +
		pieces[meta->npieces - 1].region.nbytes;
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (addr == MAP_FAILED)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not reserve " UINT64_FORMAT " bytes of address space for index \"%s\": %m",
						(uint64) len, RelationGetRelationName(index))));
	memcpy(addr + VS_SEGMENT_HEADER_SIZE, head, headsize);

	ereport(warned ? DEBUG1 : WARNING,
			(errcode(ERRCODE_IO_ERROR),
			 errmsg("reading index \"%s\" from its fork: its segment file of generation %u %s",
					RelationGetRelationName(index), generation, why),
			 errdetail("Scans of the index stay correct but are slower until the file can be rebuilt; this session tries again every %d seconds.",
					   VS_FORK_RETRY_SECS),
			 errhint("Check the file system under \"%s\".", VS_SEGMENT_DIR)));
	warned = true;

	m->addr = addr;
	m->len = len;
	m->from_fork = true;
	m->fork_since = GetCurrentTimestamp();
	m->verified = false;
	memset(&m->vid, 0, sizeof(VsSegmentIdentity));
	if (m->verified_clusters)
		pfree(m->verified_clusters);
	m->nclusters = meta->nclusters;
	m->verified_clusters = MemoryContextAllocZero(TopMemoryContext, (meta->nclusters + 7) / 8);
	m->read_clusters = MemoryContextAllocZero(TopMemoryContext, (meta->nclusters + 7) / 8);
	m->head = MemoryContextAlloc(TopMemoryContext, sizeof(VsSealedHeader));
	memcpy(m->head, head, sizeof(VsSealedHeader));
	pfree(head);
}

/*
 * segment_body - VsSegmentBody; with "force_fork", the files are known to
 * be unusable (VsSegmentCluster found one corrupt and could not rebuild
 * it) and the generation is served from the fork at once.
 */
static const char *
segment_body(Relation index, VsMetaPage meta, const char *force_fork)
{
	VsMapping  *m;
	VsMapping  *reuse = NULL;
	VsMapped	mapped;
	const char *problem = NULL;
	char	   *fallback = NULL;
	bool		rebuilt = false;

	for (m = mappings; m != NULL; m = m->next)
	{
		if (m->indexoid != RelationGetRelid(index))
			continue;
		if (m->addr != NULL && !m->stale && force_fork == NULL &&
			RelFileNodeEquals(m->node, index->rd_node) &&
			m->generation == meta->generation && m->body_crc == meta->sealed_crc)
		{
			/*
			 * Pinned: a scan of this statement uses it as it is.  Else the
			 * files must be the ones it checked (or, read from the fork, it
			 * must not be time to try the files again).
			 */
			if (m->pins > 0 ||
				(m->from_fork ?
				 !TimestampDifferenceExceeds(m->fork_since, GetCurrentTimestamp(),
											 VS_FORK_RETRY_SECS * 1000) :
				 files_unchanged(m)))
			{
				m->pins++;
				return m->addr + VS_SEGMENT_HEADER_SIZE;
			}
			if (!m->from_fork)
				ereport(DEBUG1,
						(errmsg("segment files of index \"%s\" changed since this session checked them",
								RelationGetRelationName(index))));
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

	if (force_fork != NULL)
	{
		map_from_fork(index, meta, m, meta->generation, force_fork);
		m->pins = 1;
		return m->addr + VS_SEGMENT_HEADER_SIZE;
	}

	/*
	 * Each file that fails is rebuilt once; then the set must map.  A file
	 * that cannot be rebuilt (a full disk, permissions) or still does not
	 * map leaves the fork to serve the scans.
	 */
	for (uint32 attempt = 0; !map_generation(index, meta, m, &mapped, &problem); attempt++)
	{
		char	   *failed;

		if (attempt > meta->npieces)
		{
			fallback = psprintf("%s right after it was rebuilt", problem);
			break;
		}
		ereport(DEBUG1,
				(errmsg("rebuilding segment file of generation %u of index \"%s\": the file %s",
						mapped.bad.generation, RelationGetRelationName(index), problem)));
		m->verified = false;
		if (mapped.bad.generation == meta->generation)
			failed = write_piece(index, meta, &mapped.bad, NULL);
		else
		{
			char	   *head = VsSealedHeadOrError(index, meta, NULL);

			failed = write_piece(index, meta, &mapped.bad, head);
			pfree(head);
		}
		if (failed != NULL)
		{
			fallback = psprintf("%s, and rebuilding it failed (%s)", problem, failed);
			break;
		}
		rebuilt = true;
	}
	if (fallback != NULL)
	{
		map_from_fork(index, meta, m, mapped.bad.generation, fallback);
		m->pins = 1;
		return m->addr + VS_SEGMENT_HEADER_SIZE;
	}

	if (!m->verified || memcmp(&m->vid, &mapped.id, sizeof(VsSegmentIdentity)) != 0)
	{
		m->verified = true;
		m->vid = mapped.id;
		m->same_stmt = 0;
		if (m->verified_clusters)
			pfree(m->verified_clusters);
		m->nclusters = meta->nclusters;
		m->verified_clusters = MemoryContextAllocZero(TopMemoryContext,
													  (meta->nclusters + 7) / 8);
	}
	m->addr = mapped.addr;
	m->len = mapped.len;
	memcpy(m->files, mapped.files, sizeof(VsPieceFile) * meta->npieces);
	m->nfiles = meta->npieces;
	m->read_clusters = MemoryContextAllocZero(TopMemoryContext, (meta->nclusters + 7) / 8);
	m->head = MemoryContextAlloc(TopMemoryContext, sizeof(VsSealedHeader));
	memcpy(m->head, mapped.head, sizeof(VsSealedHeader));
	if (m->piece_gens)
		pfree(m->piece_gens);
	m->npieces = meta->npieces;
	m->piece_gens = MemoryContextAlloc(TopMemoryContext, meta->npieces * sizeof(uint32));
	for (uint32 p = 0; p < meta->npieces; p++)
		m->piece_gens[p] = p == 0 ? meta->generation : VsHeadPieces(mapped.head)[p].generation;
	pfree(mapped.head);
	m->pins = 1;

	/* a rebuild here (a standby, a restore) leaves files of older pieces */
	if (rebuilt)
		VsSegmentRemoveUnused(index, meta, m->addr + VS_SEGMENT_HEADER_SIZE);
	return m->addr + VS_SEGMENT_HEADER_SIZE;
}

/*
 * VsSegmentBody - the sealed data of the index's current generation,
 * through this backend's mapping of its segment files, pinned.
 *
 * Maps (and verifies) the files on first use in this backend, and maps
 * them again when they changed since (a stat() of each file once per
 * statement, files_unchanged);
 * rebuilds from the fork a file that is missing, stale or corrupt; reads
 * the fork itself when a file can be neither read nor rebuilt.  The
 * caller must call VsSegmentRelease() when done (an error ending the
 * transaction releases every pin).  The pointer stays valid while pinned.
 * Reads of it belong inside VS_MAPPED_TRY (vssegment_fault.c).
 */
const char *
VsSegmentBody(Relation index, VsMetaPage meta)
{
	return segment_body(index, meta, NULL);
}

/*
 * VsSegmentRelease - drop a pin taken by VsSegmentBody; a stale mapping
 * is unmapped with its last pin.
 */
void
VsSegmentRelease(const char *body)
{
	VsMapping  *m = mapping_of(body);

	if (m == NULL)
		return;
	if (m->pins > 0)
		m->pins--;
	if (m->pins == 0 && m->stale)
		unmap(m);
}

/*
 * open_file - a descriptor of file "f" of mapping "m" for VsSegmentRead
 * (opened with "flags" too: O_DIRECT for direct reads), or
 * VS_FILE_UNUSABLE: when the server's share of descriptors for uses
 * like this one is taken (fd.c, AcquireExternalFD), or the file named
 * there is not the one mapped (replaced since: the next statement finds
 * the change and maps the files again, files_unchanged).
 */
static int
open_file(VsMapping *m, const VsPieceFile *f, int flags)
{
	char	   *path;
	struct stat st;
	int			fd;

	if (!AcquireExternalFD())
		return VS_FILE_UNUSABLE;
	path = VsSegmentPath(m->node, f->generation);
	fd = open(path, O_RDONLY | PG_BINARY | O_CLOEXEC | flags);
	pfree(path);
	if (fd >= 0 &&
		(fstat(fd, &st) != 0 || (uint64) st.st_dev != f->dev || (uint64) st.st_ino != f->ino ||
		 (uint64) st.st_size != f->size))
	{
		close(fd);
		fd = -1;
	}
	if (fd < 0)
	{
		ReleaseExternalFD();
		return VS_FILE_UNUSABLE;
	}
	return fd;
}

/*
 * read_target - the descriptor (opened O_DIRECT with "direct") and file
 * offset to read "len" bytes at "addr" of a mapping of segment files
 * from, or -1 when they must be read through the mapping: a mapping of the fork, a file that cannot be
 * opened or was replaced (see VsSegmentRead).
 */
static int
read_target(const char *addr, Size len, off_t *offset, bool direct)
{
	static VsMapping *last = NULL;
	VsMapping  *m = last;
	uint64		off;

	if (m == NULL || m->addr == NULL || addr < m->addr || addr + len > m->addr + m->len)
	{
		for (m = mappings; m != NULL; m = m->next)
		{
			if (m->addr != NULL && addr >= m->addr && addr + len <= m->addr + m->len)
				break;
		}
		last = m;
	}
	if (m == NULL || m->from_fork)
		return -1;
	off = addr - m->addr;
	for (uint32 p = 0; p < m->nfiles; p++)
	{
		VsPieceFile *f = &m->files[p];

		if (off < f->base || off + len > f->base + f->size)
			continue;
		*offset = (off_t) (off - f->base);
		if (direct)
		{
			if (f->dfd == VS_FILE_UNOPENED)
				f->dfd = open_file(m, f, O_DIRECT);
			return f->dfd >= 0 ? f->dfd : -1;
		}
		if (f->fd == VS_FILE_UNOPENED)
			f->fd = open_file(m, f, 0);
		return f->fd >= 0 ? f->fd : -1;
	}
	return -1;
}

/*
 * VsSegmentRead - copy "len" bytes at "addr", in a pinned mapping of
 * segment files, into "buf", with a read of the file rather than through
 * the mapping.
 *
 * Why: a page of a mapped file that the process has not mapped yet (the
 * page cache dropped it, or this backend never read it) costs a page
 * fault on the first read, and on a virtual machine that is dear: 9-10 us
 * on the 2-core KVM guest, where pread() of 1 kB from the page cache
 * costs 2.2 us and leaves no page to map or to unmap again when memory is
 * short (bench/RESULTS.md, "The rerank reads vectors from the files").
 * A page the process has mapped costs 0.6 us through the mapping, so the
 * scan calls this only where pages are unlikely to be mapped: while it
 * reads ahead (its pages come from disk, vsscan.c "Read-ahead"), and in a
 * cluster this backend reads for the first time (VsSegmentFirstRead).
 *
 * The bytes are the same either way: a read that cannot be done so (a
 * mapping of the fork, a file that cannot be opened or was replaced, a
 * short read) reads through the mapping, which raises the error a damaged
 * file deserves (vssegment_fault.c).  True when the file was read.
 */
bool
VsSegmentRead(const char *addr, Size len, void *buf)
{
	off_t		offset;
	int			fd = read_target(addr, len, &offset, false);

	if (fd >= 0)
	{
		ssize_t		n;

		pgstat_report_wait_start(WAIT_EVENT_DATA_FILE_READ);
		n = pg_pread(fd, buf, len, offset);
		pgstat_report_wait_end();
		if (n == (ssize_t) len)
			return true;
	}
	memcpy(buf, addr, len);
	return false;
}

#ifdef VS_USE_LIBURING

/*
 * This backend's io_uring for VsSegmentReadMany: set up on first use;
 * ring_state says whether it could be (the kernel may not offer io_uring,
 * or forbid it: io_uring_disabled, a container's seccomp profile; the
 * reads are then made one pread() each).
 */
#define VS_RING_ENTRIES		64

static struct io_uring ring;
static enum
{
	RING_UNTRIED, RING_READY, RING_UNUSABLE
}			ring_state = RING_UNTRIED;

static bool
ring_ready(void)
{
	if (ring_state == RING_UNTRIED)
	{
		int			rc = -EMFILE;

		ring_state = RING_UNUSABLE;
		if (AcquireExternalFD())
		{
			rc = io_uring_queue_init(VS_RING_ENTRIES, &ring, 0);
			if (rc == 0)
				ring_state = RING_READY;
			else
				ReleaseExternalFD();
		}
		if (ring_state == RING_READY)
			ereport(DEBUG1,
					(errmsg_internal("vecstore reads segment files in batches with io_uring")));
		else
			ereport(DEBUG1,
					(errmsg_internal("vecstore reads segment files one at a time: io_uring is not available (%s)",
									 strerror(-rc))));
	}
	return ring_state == RING_READY;
}

/*
 * One read of a ring submission: "nbytes" at "offset" of "fd" into "dst";
 * it succeeded when at least "need" bytes came ("res": the kernel's answer).
 */
typedef struct RingRead
{
	VsReadRequest *req;
	int			fd;
	off_t		offset;
	char	   *dst;
	unsigned	nbytes;
	unsigned	need;
	unsigned	skew;			/* where the request's bytes start in dst */
	int			res;
} RingRead;

/*
 * ring_read - the reads of "n" (at most VS_RING_ENTRIES) requests, with
 * one system call, and their completions: each one's res (0 for those the
 * ring could not take).
 */
static void
ring_read(RingRead *rr, int n)
{
	int			submitted;
	int			done = 0;

	for (int i = 0; i < n; i++)
	{
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		rr[i].res = 0;
		if (sqe == NULL)
		{
			/* cannot happen with n <= VS_RING_ENTRIES and every read reaped */
			ring_state = RING_UNUSABLE;
			return;
		}
		io_uring_prep_read(sqe, rr[i].fd, rr[i].dst, rr[i].nbytes, (uint64) rr[i].offset);
		io_uring_sqe_set_data64(sqe, (uint64) i);
	}
	pgstat_report_wait_start(WAIT_EVENT_DATA_FILE_READ);
	submitted = io_uring_submit(&ring);
	if (submitted < n)
	{
		/*
		 * Some or none submitted (the kernel refused): the ring is not used
		 * again; the reads it took are waited for, the others are left out
		 * (res 0).
		 */
		ring_state = RING_UNUSABLE;
		if (submitted <= 0)
		{
			pgstat_report_wait_end();
			return;
		}
	}
	while (done < submitted)
	{
		struct io_uring_cqe *cqe;
		int			rc = io_uring_wait_cqe(&ring, &cqe);

		if (rc == -EINTR)
			continue;
		if (rc < 0)
		{
			/* reads may still be landing in the buffers: do not go on */
			ring_state = RING_UNUSABLE;
			elog(FATAL, "could not wait for reads of segment files: %s", strerror(-rc));
		}
		rr[io_uring_cqe_get_data64(cqe)].res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
		done++;
	}
	pgstat_report_wait_end();
}

/*
 * Direct reads (vecstore.direct_reads).  Serving an index whose segment
 * files do not fit in memory, the page cache cannot keep the vectors: each
 * one a rerank reads is a page read in, charged, and soon reclaimed, and
 * every such page pushes a page of the hot part (codes, graphs) out.  Read
 * with O_DIRECT, a vector is just its disk blocks, copied from a bounce
 * buffer, and the page cache is left to the hot part: 1.4x the settled
 * queries per second at 1M x 256 under a cap of 0.3x the raw vectors
 * (bench/RESULTS.md, "Direct reads").  Only through the ring, whose reads
 * of a batch wait on the disk together, and only while a scan reads ahead
 * (vsscan.c): a server that has the memory fills its page cache as before.
 *
 * Offsets and lengths are aligned to direct_align: 512 bytes, the logical
 * block of most disks, or 4096 after a file system refused 512 (EINVAL).
 */
#define VS_BOUNCE_ENTRY		16384	/* > VS_MAX_ROW_BYTES + 4095, aligned */
StaticAssertDecl(VS_BOUNCE_ENTRY >= TYPEALIGN(4096, 4095 + VS_MAX_ROW_BYTES),
				 "a bounce buffer entry holds the blocks of any row");

static char *bounce = NULL;		/* VS_RING_ENTRIES entries, 4096-aligned */
static unsigned direct_align = 512;

/*
 * memory_limit - the memory this server may use: the machine's, or less
 * where its cgroup (v1 memory.limit_in_bytes, v2 memory.max) says so; as
 * the backend first finds it.
 */
static uint64
memory_limit(void)
{
	static uint64 limit = 0;
	FILE	   *f;
	char		line[MAXPGPATH];

	if (limit != 0)
		return limit;
	limit = PG_UINT64_MAX;
	if (sysconf(_SC_PHYS_PAGES) > 0 && sysconf(_SC_PAGESIZE) > 0)
		limit = (uint64) sysconf(_SC_PHYS_PAGES) * (uint64) sysconf(_SC_PAGESIZE);
	f = AllocateFile("/proc/self/cgroup", "r");
	if (f == NULL)
		return limit;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char	   *ctl = strchr(line, ':');
		char	   *path = ctl ? strchr(ctl + 1, ':') : NULL;
		char		file[MAXPGPATH * 2];
		FILE	   *lf;

		if (path == NULL)
			continue;
		*path++ = '\0';
		*ctl++ = '\0';
		path[strcspn(path, "\n")] = '\0';
		if (strcmp(ctl, "memory") == 0 || strstr(ctl, "memory,") || strstr(ctl, ",memory"))
			snprintf(file, sizeof(file), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes",
					 strcmp(path, "/") == 0 ? "" : path);
		else if (line[0] == '0' && line[1] == '\0' && *ctl == '\0')
			snprintf(file, sizeof(file), "/sys/fs/cgroup%s/memory.max",
					 strcmp(path, "/") == 0 ? "" : path);
		else
			continue;
		lf = AllocateFile(file, "r");
		if (lf != NULL)
		{
			char		value[64];

			if (fgets(value, sizeof(value), lf) != NULL && value[0] >= '0' && value[0] <= '9')
			{
				uint64		v = strtou64(value, NULL, 10);

				if (v > 0 && v < limit)
					limit = v;
			}
			FreeFile(lf);
		}
	}
	FreeFile(f);
	return limit;
}
#endif							/* VS_USE_LIBURING */

/*
 * VsSegmentReadMany - VsSegmentRead of "n" requests of "len" bytes each:
 * each request's from_file says whether its bytes came from the file (else
 * through the mapping); returns how many did.  Built with liburing and
 * where the kernel offers io_uring, the reads go to the kernel together,
 * one system call for up to VS_RING_ENTRIES of them: 0.8 us a 1 kB read
 * from the page cache against 2.0-2.2 us for pread() on the 2-core KVM
 * guest (bench/RESULTS.md, "The rerank's reads in one system call"); with
 * "direct" (VsSegmentDirectReads), around the page cache, a batch of one
 * too (pread() here reads through it).
 */
int
VsSegmentReadMany(VsReadRequest *reqs, int n, Size len, bool direct)
{
	int			nfile = 0;

#ifdef VS_USE_LIBURING
	if ((n > 1 || direct) && n > 0 && ring_ready())
	{
		RingRead	rr[VS_RING_ENTRIES];

		if (direct && bounce == NULL)
		{
			bounce = (char *) TYPEALIGN(4096, MemoryContextAlloc(TopMemoryContext,
																 VS_RING_ENTRIES * VS_BOUNCE_ENTRY + 4096));
			ereport(DEBUG1,
					(errmsg_internal("vecstore reads vectors around the page cache (O_DIRECT)")));
		}
		for (int i = 0; i < n;)
		{
			int			m = 0;

			/* the next requests that have a file to be read from */
			for (; i < n && m < VS_RING_ENTRIES; i++)
			{
				off_t		offset;
				int			fd = read_target(reqs[i].addr, len, &offset, direct);

				reqs[i].from_file = false;
				if (fd < 0)
					continue;
				rr[m].req = &reqs[i];
				rr[m].fd = fd;
				rr[m].skew = direct ? (unsigned) (offset % direct_align) : 0;
				rr[m].offset = offset - rr[m].skew;
				rr[m].dst = direct ? bounce + VS_BOUNCE_ENTRY * m : reqs[i].buf;
				rr[m].need = rr[m].skew + (unsigned) len;
				rr[m].nbytes = direct ? TYPEALIGN(direct_align, rr[m].need) : rr[m].need;
				m++;
			}
			/* read here, or below through the mapping if the ring failed */
			if (m == 0 || ring_state != RING_READY)
				continue;
			ring_read(rr, m);
			for (int j = 0; j < m; j++)
			{
				if (rr[j].res >= (int) rr[j].need)
				{
					if (direct)
						memcpy(rr[j].req->buf, rr[j].dst + rr[j].skew, len);
					rr[j].req->from_file = true;
				}
				else if (direct && rr[j].res == -EINVAL && direct_align < 4096)
					direct_align = 4096;
			}
		}
		for (int i = 0; i < n; i++)
		{
			if (reqs[i].from_file)
				nfile++;
			else
				memcpy(reqs[i].buf, reqs[i].addr, len);
		}
		return nfile;
	}
#else
	{
		static bool told = false;

		if (!told)
			ereport(DEBUG1,
					(errmsg_internal("vecstore reads segment files one at a time: built without liburing")));
		told = true;
	}
#endif
	for (int i = 0; i < n; i++)
	{
		reqs[i].from_file = VsSegmentRead(reqs[i].addr, len, reqs[i].buf);
		if (reqs[i].from_file)
			nfile++;
	}
	return nfile;
}

/*
 * VsSegmentDirectReads - whether a scan reading ahead in the pinned
 * mapping "body" reads its vectors around the page cache ("Direct reads"
 * above): with io_uring, under vecstore.direct_reads = on, or auto when
 * the mapping is larger than the memory the server may use.
 */
bool
VsSegmentDirectReads(const char *body)
{
#ifdef VS_USE_LIBURING
	if (vecstore_direct_reads == VS_READAHEAD_OFF || !ring_ready())
		return false;
	if (vecstore_direct_reads == VS_READAHEAD_ON)
		return true;
	{
		VsMapping  *m = mapping_of(body);

		return m != NULL && !m->from_fork && (uint64) m->len > memory_limit();
	}
#else
	return false;
#endif
}

/*
 * VsSegmentFirstRead - note that a scan reads cluster "cluster" of the
 * pinned mapping "body" (checked: VsSegmentCluster); true when this is the
 * first time this backend reads it through this mapping.  Then none of its
 * pages is mapped in this process yet (its check was taken from the
 * server's record, vssegment_checked.c, or done through another mapping),
 * and the first read of each costs a page fault (see VsSegmentRead).
 */
bool
VsSegmentFirstRead(const char *body, uint32 cluster)
{
	VsMapping  *m = mapping_of(body);
	bool		first;

	if (m == NULL || m->read_clusters == NULL || cluster >= m->nclusters)
		return false;
	first = (m->read_clusters[cluster / 8] & (1 << (cluster % 8))) == 0;
	m->read_clusters[cluster / 8] |= (1 << (cluster % 8));
	return first;
}

/*
 * check_graph - the graph of a cluster whose bytes passed their CRC is
 * searched where it lies, following the offsets it holds: check them
 * once, as for any bytes read from disk.  The CRC matched, so the fork
 * holds the same bytes and a rebuild would not help: an error.
 */
static void
check_graph(Relation index, VsMetaPage meta, const char *body, uint32 cluster)
{
	const VsClusterInfo *info = VsHeadClusters(body) + cluster;
	const char *problem;

	if (info->graph_offset == 0)
		return;
	problem = VsHnswValidate(body + info->graph_offset, info->graph_size, (int) info->count,
							 (int) meta->dims, (VsMetric) meta->metric);
	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("graph of cluster %u of index \"%s\" is not usable",
						cluster, RelationGetRelationName(index)),
				 errdetail("%s", problem),
				 errhint("Please REINDEX it.")));
}

/*
 * VsSegmentCluster - make sure cluster "cluster" of a pinned mapping has
 * been checked against its CRC; returns the body to read it from.
 *
 * Usually that is "body" itself.  When the cluster fails its check, its
 * file is corrupt: it is rebuilt from the fork, the generation is mapped
 * and pinned anew, the old mapping's pin is dropped (it is unmapped once
 * nothing uses it), and the new body is returned: the caller must use it
 * from now on (the layout is the same, so offsets it holds stay valid).
 * A body served from the fork reads the cluster from the fork here.
 */
const char *
VsSegmentCluster(Relation index, VsMetaPage meta, const char *body, uint32 cluster)
{
	VsMapping  *m;
	const VsClusterInfo *info = VsHeadClusters(body) + cluster;
	const VsPieceInfo *piece;
	VsPieceInfo bad;
	char	   *failed;

	m = mapping_of(body);
	if (m == NULL || cluster >= m->nclusters || m->verified_clusters == NULL)
		elog(ERROR, "segment of index \"%s\" is not mapped", RelationGetRelationName(index));
	if (m->verified_clusters[cluster / 8] & (1 << (cluster % 8)))
		return body;
	piece = VsHeadPiece(body, info->piece);
	if (piece == NULL)
		elog(ERROR, "cluster %u of index \"%s\" is in no piece", cluster,
			 RelationGetRelationName(index));

	if (m->from_fork)
	{
		VsBlobRead(index, &piece->region, info->vec_offset - piece->base,
				   (char *) body + info->vec_offset, info->nbytes, NULL);
		if (crc_of(body + info->vec_offset, info->nbytes) != info->crc)
			ereport(ERROR,
					(errcode(ERRCODE_INDEX_CORRUPTED),
					 errmsg("cluster %u of index \"%s\" fails its checksum in the index's fork",
							cluster, RelationGetRelationName(index)),
					 errhint("Please REINDEX it.")));
		check_graph(index, meta, body, cluster);
		m->verified_clusters[cluster / 8] |= (1 << (cluster % 8));
		m->fork_clusters++;
		return body;
	}

	if (VsCheckedGet(&m->vid, (int) cluster))
	{
		m->verified_clusters[cluster / 8] |= (1 << (cluster % 8));
		VsStats.clusters_trusted++;
		return body;
	}

	if (crc_of_mapped(body + info->vec_offset, info->nbytes) == info->crc)
	{
		check_graph(index, meta, body, cluster);
		m->verified_clusters[cluster / 8] |= (1 << (cluster % 8));
		m->read_clusters[cluster / 8] |= (1 << (cluster % 8));
		VsCheckedSet(&m->vid, (int) cluster);
		VsStats.clusters_checked++;
		return body;
	}

	/* corrupt: rebuild its file, map again, hand the caller over */
	ereport(LOG,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("segment file of index \"%s\" fails the checksum of cluster %u; rebuilding it from the index",
					RelationGetRelationName(index), cluster)));
	bad = *piece;
	VsCheckedForget(&m->vid);
	m->stale = true;
	m->verified = false;
	if (bad.generation == meta->generation)
	{
		first_piece(meta, &bad);
		failed = write_piece(index, meta, &bad, NULL);
	}
	else
	{
		/* the head, from the mapping: it passed its checks */
		Size		headsize = VsSealedHeadSize(meta->nclusters, meta->params_size, meta->npieces);
		char	   *head = palloc_extended(headsize, MCXT_ALLOC_HUGE);

		memcpy(head, body, headsize);
		failed = write_piece(index, meta, &bad, head);
		pfree(head);
	}
	VsSegmentRelease(body);
	if (failed != NULL)
		body = segment_body(index, meta,
							psprintf("fails the checksum of cluster %u, and rebuilding it failed (%s)",
									 cluster, failed));
	else
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
 * is not a verified mapping of this backend, or when its generation reads
 * more than one file (the helper maps one).
 */
bool
VsSegmentGetId(const char *body, VsSegmentId *id)
{
	VsMapping  *m = mapping_of(body);

	if (m != NULL && m->verified &&
		m->head != NULL && ((VsSealedHeader *) m->head)->npieces == 1)
	{
		id->node = m->node;
		id->generation = m->generation;
		id->ino = m->vid.ino;
		id->size = m->vid.size;
		return true;
	}
	return false;
}

/*
 * VsSegmentBytesMapped - bytes of the index's segment files this backend
 * maps.
 */
Size
VsSegmentBytesMapped(Relation index)
{
	Size		total = 0;

	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->indexoid == RelationGetRelid(index) && m->addr != NULL)
			total += m->len;
	}
	return total;
}

/* VsSegmentCheck's pass over the clusters, for VsMappedRun */
typedef struct CheckCall
{
	VsMetaPage	meta;
	const char *body;
	uint32	   *generation;
	char	   *result;
} CheckCall;

static void
check_call(void *arg)
{
	CheckCall  *call = arg;

	for (uint32 c = 0; c < call->meta->nclusters && call->result == NULL; c++)
	{
		const VsClusterInfo *info = VsHeadClusters(call->body) + c;

		CHECK_FOR_INTERRUPTS();
		if (crc_of_mapped(call->body + info->vec_offset, info->nbytes) != info->crc)
		{
			call->result = psprintf("fails the checksum of cluster %u", c);
			*call->generation = info->piece;
		}
	}
}

/*
 * VsSegmentCheck - check the segment files of the index's current
 * generation completely (every cluster's CRC) without using or changing
 * this backend's mappings.  Returns NULL when they are sound, else what
 * is wrong (and, in *generation, which file).
 */
const char *
VsSegmentCheck(Relation index, VsMetaPage meta, uint32 *generation)
{
	const char *problem;
	VsMapped	mapped;
	CheckCall	call;

	*generation = meta->generation;
	if (!map_generation(index, meta, NULL, &mapped, &problem))
	{
		*generation = mapped.bad.generation;
		return problem;
	}
	call.meta = meta;
	call.body = mapped.addr + VS_SEGMENT_HEADER_SIZE;
	call.generation = generation;
	call.result = NULL;
	if (!VsMappedRun(check_call, &call))
		call.result = psprintf("was truncated or replaced in place while it was being checked");
	release_range(mapped.addr, mapped.len);
	pfree(mapped.head);
	return call.result;
}

/*
 * VsSegmentFileIndex - the index a segment file's header names, and (when
 * "writer" is not NULL) the top transaction that wrote the file or
 * InvalidTransactionId, for the removal of files (vssegment_remove.c).
 * False when the file is missing or its header is bad.
 */
bool
VsSegmentFileIndex(const char *path, Oid *indexoid, TransactionId *writer)
{
	VsSegmentHeader hdr;

	if (read_header(path, &hdr) != NULL)
		return false;
	*indexoid = hdr.indexoid;
	if (writer != NULL)
		*writer = hdr.writer_xid;
	return true;
}

/*
 * VsSegmentPreviousDims - the dimensions of "index" as the segment files of
 * another of its relfilenodes record them (the one a TRUNCATE, VACUUM
 * FULL or REINDEX is replacing, whose files go only at commit), or 0 when
 * there is none: how a rebuild on an empty table learns the dimensions of
 * a column declared without them.  Files that cannot be read are passed
 * over (they are a cache; a restored backup may have none).
 */
int
VsSegmentPreviousDims(Relation index)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	int			dims = 0;

	VsSegmentDir(index->rd_node.dbNode, dir, sizeof(dir));
	d = AllocateDir(dir);
	if (d == NULL)
		return 0;
	while (dims == 0 && (de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		Oid			relnode;
		uint32		gen;
		char		path[MAXPGPATH];
		VsSegmentHeader hdr;

		if (!VsSegmentFileName(de->d_name, &relnode, &gen) ||
			relnode == index->rd_node.relNode)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (read_header(path, &hdr) == NULL && hdr.indexoid == RelationGetRelid(index))
			dims = (int) hdr.dims;
	}
	FreeDir(d);
	return dims;
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

/*
 * VsSegmentFaulted - a read of a mapping of the index's segment files
 * faulted (vssegment_fault.c): the file shrank or was replaced in place
 * under the mapping.  Forget what was checked of it, let the mapping go
 * once its pins are dropped (so that the next statement checks the files
 * again, and rebuilds them), and end the statement with an error.
 */
void
VsSegmentFaulted(Relation index)
{
	char	   *addr = VsFaultAddress();
	uint64		offset = 0;

	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->addr != NULL && addr >= m->addr && addr < m->addr + m->len)
		{
			offset = addr - m->addr;
			if (m->verified)
				VsCheckedForget(&m->vid);
			m->verified = false;
			m->stale = true;
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("segment file of index \"%s\" was truncated or replaced in place while mapped",
					RelationGetRelationName(index)),
			 errdetail("A read at offset " UINT64_FORMAT " of its mapping failed with SIGBUS.", offset),
			 errhint("Files under \"%s\" must not be changed while the server runs; the next statement checks the index's files again and rebuilds them from the index.",
					 VS_SEGMENT_DIR)));
}

/*
 * VsSegmentForkReads - clusters of the index this backend read from the
 * fork because its segment files could not be used.
 */
uint64
VsSegmentForkReads(Relation index)
{
	uint64		total = 0;

	for (VsMapping *m = mappings; m != NULL; m = m->next)
	{
		if (m->indexoid == RelationGetRelid(index))
			total += m->fork_clusters;
	}
	return total;
}
