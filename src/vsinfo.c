/*-------------------------------------------------------------------------
 *
 * vsinfo.c
 *	  Introspection: vecstore_index_info() and vecstore_verify().
 *
 * Both take AccessShareLock on the index (and its table first, in the
 * usual order) and read the fork through shared buffers.  Only
 * vecstore_verify(..., repair => true) changes anything: it rewrites a bad
 * segment file, which is a cache and never the only copy of anything.
 * Both need the SELECT privilege on the index's table or ownership of the
 * index (check_read_privilege); repair needs ownership.
 *
 * IDENTIFICATION
 *	  src/vsinfo.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "vsam.h"

/*
 * VsOpenIndex - lock and open a vecstore index by OID, its table first
 * (the usual order), or error.  The caller closes both with VsCloseIndex.
 */
Relation
VsOpenIndex(Oid indexoid, LOCKMODE heaplock, LOCKMODE indexlock, Relation *heap)
{
	Oid			heapoid = IndexGetRelation(indexoid, true);
	Relation	index;
	HeapTuple	tuple;

	/*
	 * Not a vecstore index: said before any lock is taken, so that a user
	 * who may not use the relation cannot queue for a lock on it (the
	 * callers check privileges on an index's table before locking); again
	 * below, once locked.  A relation that does not exist is reported by
	 * relation_open.
	 */
	*heap = NULL;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(indexoid));
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_class rel = (Form_pg_class) GETSTRUCT(tuple);
		bool		vecstore = rel->relam == get_index_am_oid("vecstore", false);
		char		relkind = rel->relkind;
		char	   *name = pstrdup(NameStr(rel->relname));

		ReleaseSysCache(tuple);
		if (vecstore && relkind == RELKIND_PARTITIONED_INDEX)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is a partitioned vecstore index", name),
					 errdetail("A partitioned index holds no rows; each partition has an index of its own."),
					 errhint("Call the function on the indexes of the partitions (pg_partition_tree() lists them).")));
		if (!vecstore || relkind != RELKIND_INDEX)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"%s\" is not a vecstore index", name)));
	}
	if (OidIsValid(heapoid))
		*heap = table_open(heapoid, heaplock);
	index = relation_open(indexoid, indexlock);
	if (index->rd_rel->relkind != RELKIND_INDEX ||
		index->rd_rel->relam != get_index_am_oid("vecstore", false))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a vecstore index", RelationGetRelationName(index))));
	return index;
}

/*
 * VsCloseIndex - undo VsOpenIndex.
 */
void
VsCloseIndex(Relation index, Relation heap, LOCKMODE heaplock, LOCKMODE indexlock)
{
	relation_close(index, indexlock);
	if (heap)
		table_close(heap, heaplock);
}

/*
 * check_read_privilege - error unless the current user may read the index
 * "indexoid" of table "heapoid" (InvalidOid when "indexoid" is no index:
 * nothing to check, VsOpenIndex reports it): the SELECT privilege on the
 * table, as reading its rows through the index would take, or ownership
 * of the index.  "func" names the SQL function in the error's detail.
 */
static void
check_read_privilege(Oid indexoid, Oid heapoid, const char *func)
{
	if (!OidIsValid(heapoid) ||
		pg_class_aclcheck(heapoid, GetUserId(), ACL_SELECT) == ACLCHECK_OK ||
		pg_class_ownercheck(indexoid, GetUserId()))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for table %s", get_rel_name(heapoid)),
			 errdetail("%s needs the SELECT privilege on the table of index \"%s\", or ownership of the index.",
					   func, get_rel_name(indexoid))));
}

/*
 * open_vecstore_index - VsOpenIndex for reading, for a user who may read
 * the index (check_read_privilege).  The privilege is checked before the
 * locks are taken, so that a user without it cannot queue for them (as
 * PostgreSQL checks a table's privileges before locking it), and again
 * once they are held, against the table actually locked.
 */
static Relation
open_vecstore_index(Oid indexoid, Relation *heap, const char *func)
{
	Relation	index;

	check_read_privilege(indexoid, IndexGetRelation(indexoid, true), func);
	index = VsOpenIndex(indexoid, AccessShareLock, AccessShareLock, heap);
	check_read_privilege(indexoid, *heap ? RelationGetRelid(*heap) : InvalidOid, func);
	return index;
}

static void
close_vecstore_index(Relation index, Relation heap)
{
	VsCloseIndex(index, heap, AccessShareLock, AccessShareLock);
}

/* this backend's counters */
VsBackendStats VsStats;

/* the columns of vecstore_stats's row */
#define STATS_COLS 12

/*
 * segment_bytes - bytes of the files in this database's segment directory,
 * all of them (relnode InvalidOid) or those of one relfilenode (every
 * generation's, and temporary files being written): what the disk holds,
 * which the core size functions do not count.
 */
static int64
segment_bytes(Oid relnode)
{
	char		dir[MAXPGPATH];
	char		prefix[32];
	DIR		   *d;
	struct dirent *de;
	int64		total = 0;

	VsSegmentDir(MyDatabaseId, dir, sizeof(dir));
	snprintf(prefix, sizeof(prefix), "%u.", relnode);
	d = AllocateDir(dir);
	if (d == NULL)
		return 0;				/* no index has written one yet */
	while ((de = ReadDirExtended(d, dir, LOG)) != NULL)
	{
		char		path[MAXPGPATH];
		struct stat st;

		if (de->d_name[0] == '.' ||
			(OidIsValid(relnode) && strncmp(de->d_name, prefix, strlen(prefix)) != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			total += (int64) st.st_size;
	}
	FreeDir(d);
	return total;
}

PG_FUNCTION_INFO_V1(vecstore_index_size);
/*
 * vecstore_index_size(regclass) - pg_total_relation_size of an index
 * plus, for a vecstore index, its segment files (every generation's still
 * on disk); 0 for a partitioned index, as pg_total_relation_size says
 * (its partitions' indexes have the bytes).  Like pg_total_relation_size,
 * it needs no privilege on the table; NULL for a relation that does not
 * exist.
 */
Datum
vecstore_index_size(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel = try_relation_open(relid, AccessShareLock);
	int64		total;

	if (rel == NULL)
		PG_RETURN_NULL();
	if (rel->rd_rel->relkind != RELKIND_INDEX && rel->rd_rel->relkind != RELKIND_PARTITIONED_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an index", RelationGetRelationName(rel))));
	total = DatumGetInt64(DirectFunctionCall1(pg_total_relation_size, ObjectIdGetDatum(relid)));
	/* a partitioned index has no storage, and no files (0, as PostgreSQL says) */
	if (rel->rd_rel->relkind == RELKIND_INDEX &&
		rel->rd_rel->relam == get_index_am_oid("vecstore", true))
		total += segment_bytes(rel->rd_node.relNode);
	relation_close(rel, AccessShareLock);
	PG_RETURN_INT64(total);
}

PG_FUNCTION_INFO_V1(vecstore_database_size);
/*
 * vecstore_database_size() - bytes of the current database's segment
 * files, which pg_database_size leaves out.
 */
Datum
vecstore_database_size(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(segment_bytes(InvalidOid));
}

PG_FUNCTION_INFO_V1(vecstore_stats);
/*
 * vecstore_stats() - this backend's counters, and whether segment checks
 * are shared by the server (the library is preloaded).
 */
Datum
vecstore_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = VsResultRowType(fcinfo, STATS_COLS);
	Datum		values[STATS_COLS];
	bool		nulls[STATS_COLS];

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int64GetDatum(VsStats.scans);
	values[1] = Int64GetDatum(VsStats.rows_examined);
	values[2] = Int64GetDatum(VsStats.clusters_opened);
	values[3] = Int64GetDatum(VsStats.scans_cut_short);
	values[4] = Int64GetDatum(VsStats.files_checked);
	values[5] = Int64GetDatum(VsStats.files_trusted);
	values[6] = Int64GetDatum(VsStats.clusters_checked);
	values[7] = Int64GetDatum(VsStats.clusters_trusted);
	values[8] = BoolGetDatum(VsCheckedAvailable());
	values[9] = Int64GetDatum(VsStats.vectors_read);
	values[10] = Int64GetDatum(VsStats.vectors_read_from_files);
	values[11] = Int64GetDatum(VsStats.rows_skipped_late);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* the columns of vecstore_index_info's row */
#define INDEX_INFO_COLS 22

PG_FUNCTION_INFO_V1(vecstore_index_info);
/*
 * vecstore_index_info(regclass) - one row describing the index.  Needs the
 * SELECT privilege on its table or ownership of the index.
 */
Datum
vecstore_index_info(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	Relation	heap;
	Relation	index;
	VsMetaPageData meta;
	char	   *head;
	const VsClusterInfo *info;
	const VsPieceInfo *pieces;
	int64		segment_bytes = 0;
	TupleDesc	tupdesc;
	Datum		values[INDEX_INFO_COLS];
	bool		nulls[INDEX_INFO_COLS];
	int32		graph_clusters = 0;
	int64		code_bytes = 0;
	int64		graph_bytes = 0;
	int64		minrows = PG_INT64_MAX,
				maxrows = 0,
				delta_total = 0;
	float	   *centroids;
	int32	   *hosts;
	int64	   *rows;
	int32		nlive = 0;
	uint64		sealed_dead,
				delta_live,
				delta_dead;
	char	   *path;
	struct stat st;
	bool		present;
	/* a pass over the whole index: a ring, not all of shared_buffers */
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);

	tupdesc = VsResultRowType(fcinfo, INDEX_INFO_COLS);

	index = open_vecstore_index(indexoid, &heap, "vecstore_index_info()");
	VsReadMeta(index, &meta);
	head = VsSealedHeadOrError(index, &meta, bas);
	info = VsHeadClusters(head);
	pieces = VsHeadPieces(head);

	/* merged clusters are not counted: their rows are their hosts' */
	centroids = palloc_extended(sizeof(float) * meta.dims * Max(meta.nclusters, 1), MCXT_ALLOC_HUGE);
	hosts = VsReadCentroids(index, &meta, centroids, bas);
	rows = palloc0(sizeof(int64) * Max(meta.nclusters, 1));
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		VsDirEntry	entry;

		VsBlobRead(index, &meta.directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry),
				   bas);
		rows[hosts != NULL && hosts[c] >= 0 ? hosts[c] : c] +=
			(int64) info[c].count + entry.delta_count - info[c].delta_folded;
		delta_total += entry.delta_count - info[c].delta_folded;
		if (info[c].graph_offset != 0)
		{
			graph_clusters++;
			graph_bytes += (int64) info[c].graph_size;
		}
		if (info[c].code_offset != 0)
			code_bytes += (int64) TYPEALIGN(VS_SEGMENT_ALIGN,
											(uint64) info[c].count * VsHeadRecordSize(head));
	}
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		if (hosts != NULL && hosts[c] >= 0)
			continue;
		nlive++;
		minrows = Min(minrows, rows[c]);
		maxrows = Max(maxrows, rows[c]);
	}
	VsCountRows(index, &meta, bas, &sealed_dead, &delta_live, &delta_dead);
	FreeAccessStrategy(bas);

	/* the generation's files: its own, and the older pieces it reads */
	path = VsSegmentPath(index->rd_node, meta.generation);
	present = (stat(path, &st) == 0);
	for (uint32 p = 0; p < meta.npieces; p++)
	{
		struct stat pst;
		char	   *ppath = VsSegmentPath(index->rd_node, pieces[p].generation);

		if (stat(ppath, &pst) == 0)
			segment_bytes += (int64) pst.st_size;
		pfree(ppath);
	}

	memset(nulls, 0, sizeof(nulls));
	values[0] = Int32GetDatum(nlive);
	values[1] = Int32GetDatum(meta.dims);
	values[2] = Int64GetDatum((int64) meta.sealed_rows);
	values[3] = Int64GetDatum(nlive > 0 ? minrows : 0);
	values[4] = Float8GetDatum(nlive > 0 ?
							   (double) (meta.sealed_rows + delta_total) / nlive : 0);
	values[5] = Int64GetDatum(maxrows);
	values[6] = Int64GetDatum((int64) (delta_live + delta_dead));
	values[7] = Int64GetDatum((int64) (sealed_dead + delta_dead));
	values[8] = CStringGetTextDatum(path);
	values[9] = Int32GetDatum(meta.generation);
	values[10] = Int64GetDatum(segment_bytes);
	nulls[10] = !present;
	values[11] = Int64GetDatum((int64) VsSegmentBytesMapped(index));
	values[12] = Int64GetDatum((int64) RelationGetNumberOfBlocks(index) * BLCKSZ);
	values[13] = CStringGetTextDatum(meta.quantizer == VS_QUANTIZER_SQ8 ? "sq8" :
									 meta.quantizer == VS_QUANTIZER_SQ4 ? "sq4" : "none");
	values[14] = Int32GetDatum(graph_clusters);
	values[15] = Int64GetDatum(code_bytes);
	values[16] = Int64GetDatum(graph_bytes);
	values[17] = Int64GetDatum((int64) meta.routing.nbytes);
	values[18] = Int32GetDatum((int32) meta.npieces);
	values[19] = Int32GetDatum((int32) meta.compactions);
	{
		VsFreeList	fl;
		uint64		free_blocks,
					retired_blocks;

		VsFreeListLoad(index, &meta, &fl, NULL);
		VsFreeListBlocks(&fl, &free_blocks, &retired_blocks);
		values[20] = Int64GetDatum((int64) ((free_blocks + retired_blocks) * BLCKSZ));
	}
	values[21] = Int64GetDatum((int64) VsSegmentForkReads(index));
	pfree(head);

	close_vecstore_index(index, heap);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * What vecstore_index_memory reports: the parts of a generation's sealed
 * data.  The hot parts are read by every probed cluster's search (the
 * head on every scan, the codes and graphs of the clusters opened, the
 * TIDs of the rows returned); the cold part, the full vectors, only for
 * the rows reranked.
 */
typedef enum MemPart
{
	MEM_HEAD,
	MEM_TIDS,
	MEM_CODES,
	MEM_GRAPHS,
	MEM_VECTORS,
	MEM_NPARTS
} MemPart;

static const char *const mem_part_names[MEM_NPARTS] = {
	"head", "tids", "codes", "graphs", "vectors"
};

typedef struct MemCount
{
	int64		bytes;
	int64		resident;
	int64		pinned;
} MemCount;

/*
 * count_range - add "len" bytes at "addr" of a mapping to "mc": all of
 * them to its bytes, those on pages the page cache holds (mincore) to its
 * resident bytes.  "vec" is scratch for mincore, one byte per page of the
 * range.
 */
static void
count_range(MemCount *mc, const char *addr, uint64 len, unsigned char **vec, Size *veclen)
{
	Size		pagesize = (Size) sysconf(_SC_PAGESIZE);
	uintptr_t	start = (uintptr_t) addr;
	uintptr_t	end = start + len;
	uintptr_t	first = start & ~(uintptr_t) (pagesize - 1);
	Size		npages;

	if (len == 0)
		return;
	mc->bytes += (int64) len;
	npages = (end - first + pagesize - 1) / pagesize;
	if (npages > *veclen)
	{
		*vec = *vec ? repalloc_huge(*vec, npages) : MemoryContextAllocHuge(CurrentMemoryContext, npages);
		*veclen = npages;
	}
	if (mincore((void *) first, end - first, *vec) != 0)
		return;					/* not mapped as we think: count none */
	for (Size i = 0; i < npages; i++)
	{
		uintptr_t	pstart = first + i * pagesize;
		uintptr_t	pend = pstart + pagesize;

		if ((*vec)[i] & 1)
			mc->resident += (int64) (Min(pend, end) - Max(pstart, start));
	}
}

/*
 * count_cluster - add a cluster's parts ("info", in the mapped "body"; rows
 * of "rowbytes", code records of "record_size") to "counts": its vectors,
 * TIDs, codes and graph; with "pinned", its hot parts (TIDs, codes, graph,
 * which the pinner locks whole: vspin.c) to their pinned bytes too.
 */
static void
count_cluster(MemCount *counts, const char *body, const VsClusterInfo *info, Size rowbytes,
			  uint32 record_size, bool pinned, unsigned char **vec, Size *veclen)
{
	uint64		tids = (uint64) info->count * sizeof(ItemPointerData);
	uint64		codes = info->code_offset != 0 ? (uint64) info->count * record_size : 0;
	uint64		graph = info->graph_offset != 0 ? info->graph_size : 0;

	count_range(&counts[MEM_VECTORS], body + info->vec_offset,
				(uint64) info->count * rowbytes, vec, veclen);
	count_range(&counts[MEM_TIDS], body + info->tid_offset, tids, vec, veclen);
	count_range(&counts[MEM_CODES], body + info->code_offset, codes, vec, veclen);
	count_range(&counts[MEM_GRAPHS], body + info->graph_offset, graph, vec, veclen);
	if (pinned)
	{
		counts[MEM_TIDS].pinned += (int64) tids;
		counts[MEM_CODES].pinned += (int64) codes;
		counts[MEM_GRAPHS].pinned += (int64) graph;
	}
}

/*
 * cluster_pinned - does the pinner hold cluster "c" of the index locked?
 */
static bool
cluster_pinned(Relation index, uint32 c)
{
	uint64		accesses;
	TimestampTz last;
	uint64		pinned = 0;

	return VsAccessGet(index->rd_node, c, &accesses, &last, &pinned) && pinned > 0;
}

/*
 * vecstore_index_memory's and vecstore_cluster_access's reads of the
 * mapping, for VsMappedRun: what each needs (counts, or rsinfo).
 */
typedef struct MappedCall
{
	Relation	index;
	VsMetaPage	meta;
	const char *body;
	int			elem;
	MemCount   *counts;
	ReturnSetInfo *rsinfo;
	unsigned char **vec;
	Size	   *veclen;
} MappedCall;

static void
index_memory_call(void *arg)
{
	MappedCall *call = arg;
	const VsSealedHeader *sh = (const VsSealedHeader *) call->body;
	const VsClusterInfo *info = VsHeadClusters(call->body);

	count_range(&call->counts[MEM_HEAD], call->body,
				VsSealedHeadSize(sh->nclusters, sh->params_size, sh->npieces),
				call->vec, call->veclen);
	for (uint32 c = 0; c < sh->nclusters; c++)
		count_cluster(call->counts, call->body, &info[c],
					  VsRowBytes(call->elem, (int) call->meta->dims), sh->record_size,
					  cluster_pinned(call->index, c), call->vec, call->veclen);
}

PG_FUNCTION_INFO_V1(vecstore_index_memory);
/*
 * vecstore_index_memory(regclass) - the parts of the index's current
 * generation of sealed data (its segment files), hot and cold: bytes, the
 * bytes the page cache holds (mincore over this backend's mapping, which
 * this call makes if the session had none), and the bytes of it the
 * pinner holds locked (vspin.c).  One row per part.  Needs the SELECT
 * privilege on its table or ownership of the index.
 */
Datum
vecstore_index_memory(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	heap;
	Relation	index;
	VsMetaPageData meta;
	const char *body;
	MemCount	counts[MEM_NPARTS];
	unsigned char *vec = NULL;
	Size		veclen = 0;
	int			elem;

	InitMaterializedSRF(fcinfo, 0);
	index = open_vecstore_index(indexoid, &heap, "vecstore_index_memory()");
	VsReadMeta(index, &meta);
	elem = VsMetaElemSize(&meta);
	memset(counts, 0, sizeof(counts));

	body = VsSegmentBody(index, &meta);
	{
		MappedCall	call = {index, &meta, body, elem, counts, NULL, &vec, &veclen};

		/* a file that shrinks under the mapping: an error, not a crash */
		if (!VsMappedRun(index_memory_call, &call))
			VsSegmentFaulted(index);
	}
	VsSegmentRelease(body);
	if (vec)
		pfree(vec);

	for (int p = 0; p < MEM_NPARTS; p++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = CStringGetTextDatum(mem_part_names[p]);
		values[1] = BoolGetDatum(p != MEM_VECTORS);
		values[2] = Int64GetDatum(counts[p].bytes);
		values[3] = Int64GetDatum(counts[p].resident);
		values[4] = Int64GetDatum(counts[p].pinned);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	close_vecstore_index(index, heap);
	return (Datum) 0;
}

static void cluster_access_call(void *arg);

PG_FUNCTION_INFO_V1(vecstore_cluster_access);
/*
 * vecstore_cluster_access(regclass) - one row per cluster of the index's
 * current generation: its rows (sealed), how many scans opened it and the
 * start of the last statement that did (vsaccess.c: NULL without
 * shared_preload_libraries, 0 and NULL for a cluster no scan opened since
 * the server started), and its hot part (TIDs, codes, graph) and cold
 * part (full vectors): bytes, and bytes the page cache holds (mincore
 * over this backend's mapping); and the bytes the pinner holds locked
 * (vspin.c: its hot part, to whole pages).  Needs the SELECT privilege on
 * its table or ownership of the index.
 */
Datum
vecstore_cluster_access(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	heap;
	Relation	index;
	VsMetaPageData meta;
	const char *body;
	unsigned char *vec = NULL;
	Size		veclen = 0;
	int			elem;

	InitMaterializedSRF(fcinfo, 0);
	index = open_vecstore_index(indexoid, &heap, "vecstore_cluster_access()");
	VsReadMeta(index, &meta);
	elem = VsMetaElemSize(&meta);
	body = VsSegmentBody(index, &meta);
	{
		MappedCall	call = {index, &meta, body, elem, NULL, rsinfo, &vec, &veclen};

		/* a file that shrinks under the mapping: an error, not a crash */
		if (!VsMappedRun(cluster_access_call, &call))
			VsSegmentFaulted(index);
	}
	VsSegmentRelease(body);
	if (vec)
		pfree(vec);
	close_vecstore_index(index, heap);
	return (Datum) 0;
}

/* vecstore_cluster_access's rows, read from the mapping (VsMappedRun) */
static void
cluster_access_call(void *arg)
{
	MappedCall *call = arg;
	Relation	index = call->index;
	const char *body = call->body;
	const VsSealedHeader *sh = (const VsSealedHeader *) body;
	const VsClusterInfo *info = VsHeadClusters(body);
	ReturnSetInfo *rsinfo = call->rsinfo;

	for (uint32 c = 0; c < sh->nclusters; c++)
	{
		Datum		values[9];
		bool		nulls[9] = {false, false, false, false, false, false, false, false, false};
		MemCount	counts[MEM_NPARTS];
		uint64		accesses = 0;
		TimestampTz last = 0;
		uint64		pinned = 0;
		bool		counted = VsAccessGet(index->rd_node, c, &accesses, &last, &pinned);

		memset(counts, 0, sizeof(counts));
		count_cluster(counts, body, &info[c], VsRowBytes(call->elem, (int) call->meta->dims),
					  sh->record_size, false, call->vec, call->veclen);

		values[0] = Int32GetDatum((int32) c);
		values[1] = Int64GetDatum((int64) info[c].count);
		values[2] = Int64GetDatum((int64) accesses);
		nulls[2] = !VsAccessAvailable();
		values[3] = TimestampTzGetDatum(last);
		nulls[3] = !counted;
		values[4] = Int64GetDatum(counts[MEM_TIDS].bytes + counts[MEM_CODES].bytes +
								  counts[MEM_GRAPHS].bytes);
		values[5] = Int64GetDatum(counts[MEM_TIDS].resident + counts[MEM_CODES].resident +
								  counts[MEM_GRAPHS].resident);
		values[6] = Int64GetDatum(counts[MEM_VECTORS].bytes);
		values[7] = Int64GetDatum(counts[MEM_VECTORS].resident);
		values[8] = Int64GetDatum((int64) pinned);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * add_problem - one output row of vecstore_verify.
 */
static void add_problem(ReturnSetInfo *rsinfo, bool repaired, const char *fmt,...) pg_attribute_printf(3, 4);

static void
add_problem(ReturnSetInfo *rsinfo, bool repaired, const char *fmt,...)
{
	Datum		values[2];
	bool		nulls[2] = {false, false};
	StringInfoData buf;
	va_list		args;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	values[0] = CStringGetTextDatum(buf.data);
	values[1] = BoolGetDatum(repaired);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * read_graph - "size" bytes of a graph at "offset" of a region, into a
 * palloc'd buffer aligned as a graph must be (*mem is what to pfree).
 */
static const void *
read_graph(Relation index, const VsRegion *region, uint64 offset, uint64 size, char **mem,
		   BufferAccessStrategy bas)
{
	char	   *graph;

	*mem = palloc_extended(size + VS_HNSW_ALIGN, MCXT_ALLOC_HUGE);
	graph = (char *) TYPEALIGN(VS_HNSW_ALIGN, *mem);
	VsBlobRead(index, region, offset, graph, size, bas);
	return graph;
}

/*
 * check_graphs - the structure of every cluster's graph and of the routing
 * graph, as the index holds them (scans check each again, lazily, in the
 * segment file).  Their bytes passed the CRC checks already; this catches
 * a graph that was written wrong.
 */
static void
check_graphs(Relation index, VsMetaPage meta, ReturnSetInfo *rsinfo, BufferAccessStrategy bas)
{
	char	   *headproblem;
	char	   *head = VsSealedHead(index, meta, bas, &headproblem);
	const VsClusterInfo *info;
	char	   *mem;
	const void *graph;
	const char *problem;

	if (head == NULL)
		return;					/* VsSealedCheckFork said so */
	info = VsHeadClusters(head);
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		const VsPieceInfo *piece = VsHeadPiece(head, info[c].piece);

		CHECK_FOR_INTERRUPTS();
		if (info[c].graph_offset == 0)
			continue;
		graph = read_graph(index, &piece->region, info[c].graph_offset - piece->base,
						   info[c].graph_size, &mem, bas);
		problem = VsHnswValidate(graph, info[c].graph_size, (int) info[c].count,
								 (int) meta->dims, (VsMetric) meta->metric);
		if (problem != NULL)
			add_problem(rsinfo, false, "graph of cluster %u in the index is unusable (%s): REINDEX the index",
						c, problem);
		pfree(mem);
	}
	if (meta->routing.nbytes > 0)
	{
		graph = read_graph(index, &meta->routing, 0, meta->routing.nbytes, &mem, bas);
		problem = VsHnswValidate(graph, meta->routing.nbytes, (int) meta->nclusters, (int) meta->dims,
								 meta->metric == VS_METRIC_L2 ? VS_METRIC_L2 : VS_METRIC_IP);
		if (problem != NULL)
			add_problem(rsinfo, false, "routing graph in the index is unusable (%s): REINDEX the index",
						problem);
		pfree(mem);
	}
	pfree(head);
}

/*
 * check_delta_chain - walk one cluster's chain (a checked walk of the
 * index's "nblocks" pages, through "bas"); report loops, links past the
 * end, wrong page types, a tail that is not the last page, a count that
 * does not match.
 */
static void
check_delta_chain(Relation index, ReturnSetInfo *rsinfo, uint32 cluster,
				  const VsDirEntry *entry, BlockNumber nblocks, BufferAccessStrategy bas)
{
	VsDeltaChain chain;
	BlockNumber last = InvalidBlockNumber;
	uint64		rows = 0;

	VsDeltaChainBegin(&chain, index, entry->delta_head, BUFFER_LOCK_SHARE, bas, nblocks, 0);
	while (VsDeltaChainNext(&chain))
	{
		rows += PageGetMaxOffsetNumber(BufferGetPage(chain.buf));
		last = chain.blkno;
	}
	switch (chain.problem)
	{
		case VS_DELTA_CHAIN_OK:
			break;
		case VS_DELTA_CHAIN_PAST_END:
		case VS_DELTA_CHAIN_LOOPS:
			add_problem(rsinfo, false, "delta chain of cluster %u %s at block %u",
						cluster, chain.problem == VS_DELTA_CHAIN_PAST_END ?
						"points past the end of the index" : "loops", chain.blkno);
			return;
		case VS_DELTA_CHAIN_NOT_DELTA:
			add_problem(rsinfo, false, "delta chain of cluster %u reaches block %u, which is not a delta page",
						cluster, chain.blkno);
			return;
		case VS_DELTA_CHAIN_DAMAGED:
			add_problem(rsinfo, false, "delta chain of cluster %u: block %u fails its checksum or its line pointers are damaged: REINDEX the index",
						cluster, chain.blkno);
			return;
	}
	if (last != entry->delta_tail)
		add_problem(rsinfo, false, "delta chain of cluster %u ends at block %u but its tail is recorded as %u",
					cluster, last, entry->delta_tail);
	if (rows + entry->delta_skipped != entry->delta_count)
		add_problem(rsinfo, false, "delta chain of cluster %u holds " UINT64_FORMAT " rows (and %u cut from its front) but its count is %u",
					cluster, rows, entry->delta_skipped, entry->delta_count);
}

/* the regions of the metapage that vecstore_verify checks page by page */
#define VERIFY_REGIONS 6

/*
 * check_region_pages - the CRC (and type) of every page of a region, read
 * through "bas"; one problem per bad page, named by "what" and its block.
 * False when any page is bad: what reads the region would raise an error.
 */
static bool
check_region_pages(Relation index, ReturnSetInfo *rsinfo, const char *what,
				   const VsRegion *region, BufferAccessStrategy bas)
{
	bool		ok = true;

	for (BlockNumber i = 0; i < region->nblocks; i++)
	{
		BlockNumber blkno = region->start + i;
		Buffer		buf;
		const char *problem;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(index, MAIN_FORKNUM, blkno, RBM_NORMAL, bas);
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		problem = VsPageProblem(BufferGetPage(buf), VS_PAGE_BLOB);
		UnlockReleaseBuffer(buf);
		if (problem != NULL)
		{
			add_problem(rsinfo, false, "%s: block %u %s: REINDEX the index", what, blkno, problem);
			ok = false;
		}
	}
	return ok;
}

/*
 * check_metapage_rest - the metapage's payload past VsMetaPageData, which
 * its CRC does not cover, holds zeros.
 */
static void
check_metapage_rest(Relation index, ReturnSetInfo *rsinfo)
{
	Buffer		buf = ReadBuffer(index, VS_METAPAGE_BLKNO);
	const char *rest;
	Size		n = VS_BLOB_PAYLOAD - sizeof(VsMetaPageData);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	rest = PageGetContents(BufferGetPage(buf)) + sizeof(VsMetaPageData);
	for (Size i = 0; i < n; i++)
	{
		if (rest[i] != 0)
		{
			add_problem(rsinfo, false, "metapage: block %u holds bytes past its contents",
						VS_METAPAGE_BLKNO);
			break;
		}
	}
	UnlockReleaseBuffer(buf);
}

/*
 * check_bitmap - the deletion bitmap has a bit for every row the
 * generation numbered (row_space), and none set past them: no compaction
 * or VACUUM sets those, and a scan of a later generation would take the
 * rows they fall on for deleted ones.
 */
static void
check_bitmap(Relation index, VsMetaPage meta, ReturnSetInfo *rsinfo, BufferAccessStrategy bas)
{
	PGAlignedBlock chunk;
	uint64		off;

	if (meta->row_space > meta->bitmap.nbytes * 8)
	{
		add_problem(rsinfo, false, "bitmap: " UINT64_FORMAT " bits for " UINT64_FORMAT " rows: REINDEX the index",
					meta->bitmap.nbytes * 8, meta->row_space);
		return;
	}
	off = meta->row_space / 8;
	while (off < meta->bitmap.nbytes)
	{
		Size		n = Min(meta->bitmap.nbytes - off, (uint64) VS_BLOB_PAYLOAD);
		uint32		dummy;
		BlockNumber blkno = VsBlobBlock(&meta->bitmap, off, &dummy);

		CHECK_FOR_INTERRUPTS();
		VsBlobRead(index, &meta->bitmap, off, chunk.data, n, bas);
		/* the first byte may hold bits of rows in use: only the others */
		if (off == meta->row_space / 8 && meta->row_space % 8 != 0)
			chunk.data[0] &= (char) (0xFF << (meta->row_space % 8));
		for (Size i = 0; i < n; i++)
		{
			if (chunk.data[i] != 0)
			{
				add_problem(rsinfo, false, "bitmap: block %u has bits set past the " UINT64_FORMAT " rows in use: REINDEX the index",
							blkno, meta->row_space);
				return;
			}
		}
		off += n;
	}
}

/*
 * check_directory - the directory's entries past the generation's
 * clusters, which nothing routes to, are empty; for its clusters, no more
 * rows folded or cut than the entry counts ("head": the checked head of
 * the generation).  The chains themselves are walked by check_delta_chain.
 */
static void
check_directory(Relation index, VsMetaPage meta, const char *head, ReturnSetInfo *rsinfo,
				BufferAccessStrategy bas)
{
	uint64		nentries = meta->directory.nbytes / sizeof(VsDirEntry);
	const VsClusterInfo *info = head ? VsHeadClusters(head) : NULL;

	if (nentries < meta->nclusters)
	{
		add_problem(rsinfo, false, "directory: " UINT64_FORMAT " entries for %u clusters: REINDEX the index",
					nentries, meta->nclusters);
		return;
	}
	for (uint64 c = 0; c < nentries; c++)
	{
		VsDirEntry	entry;
		uint32		poff;
		BlockNumber blkno = VsBlobBlock(&meta->directory, c * sizeof(VsDirEntry), &poff);

		VsBlobRead(index, &meta->directory, c * sizeof(VsDirEntry), &entry, sizeof(entry), bas);
		if (c >= meta->nclusters)
		{
			if (BlockNumberIsValid(entry.delta_head) || BlockNumberIsValid(entry.delta_tail) ||
				entry.delta_count != 0 || entry.delta_skipped != 0)
			{
				add_problem(rsinfo, false, "directory: block %u has an entry for cluster " UINT64_FORMAT ", past the index's %u clusters: REINDEX the index",
							blkno, c, meta->nclusters);
				return;
			}
		}
		else if (entry.delta_skipped > entry.delta_count ||
				 (info != NULL && info[c].delta_folded > entry.delta_count))
			add_problem(rsinfo, false, "directory: block %u: cluster " UINT64_FORMAT " counts %u delta rows, fewer than the %u cut or %u folded: REINDEX the index",
						blkno, c, entry.delta_count, entry.delta_skipped,
						info != NULL ? info[c].delta_folded : 0);
	}
}

PG_FUNCTION_INFO_V1(vecstore_verify);
/*
 * vecstore_verify(regclass, repair boolean) - check the fork and the
 * segment file; one row per problem (none when healthy).  With repair, a
 * bad segment file is rebuilt from the fork.  Problems in the fork itself
 * cannot be repaired here: REINDEX rebuilds the index.  Needs the SELECT
 * privilege on the index's table or ownership of the index; repair needs
 * ownership.
 *
 * The fork first, page by page: the metapage's CRC (when it fails,
 * nothing else can be trusted: that is the only row), then every page of
 * every region (the metapage's and the older pieces') against its CRC,
 * with the region and the block named.  Then what reads a region is
 * checked only where its pages are sound (a damaged page is an error for
 * any reader): the sealed data against its CRCs, the graphs, the
 * directory's entries and delta chains, the bitmap past the rows in use,
 * the segment files.
 */
Datum
vecstore_verify(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	bool		repair = PG_GETARG_BOOL(1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	heap;
	Relation	index;
	VsMetaPageData meta;
	BlockNumber nblocks;
	const VsRegion *regions[VERIFY_REGIONS];
	bool		region_ok[VERIFY_REGIONS];
	const char *region_names[VERIFY_REGIONS] = {"centroids", "directory", "bitmap", "sealed", "routing", "free list"};
	const char *problem;
	uint32		generation;
	bool		fits = true;
	bool		sealed_ok;
	char	   *head = NULL;
	/* a pass over the whole index: a ring, not all of shared_buffers */
	BufferAccessStrategy bas = GetAccessStrategy(BAS_BULKREAD);

	SetSingleFuncCall(fcinfo, 0);
	index = open_vecstore_index(indexoid, &heap, "vecstore_verify()");
	if (repair && !pg_class_ownercheck(indexoid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_INDEX, RelationGetRelationName(index));

	if (!VsReadMetaExtended(index, &meta, false))
	{
		add_problem(rsinfo, false, "metapage: block %u fails its checksum: REINDEX the index",
					VS_METAPAGE_BLKNO);
		FreeAccessStrategy(bas);
		close_vecstore_index(index, heap);
		return (Datum) 0;
	}
	check_metapage_rest(index, rsinfo);
	nblocks = RelationGetNumberOfBlocks(index);

	/* regions inside the fork */
	regions[0] = &meta.centroids;
	regions[1] = &meta.directory;
	regions[2] = &meta.bitmap;
	regions[3] = &meta.sealed;
	regions[4] = &meta.routing;
	regions[5] = &meta.freelist;
	for (int r = 0; r < VERIFY_REGIONS; r++)
	{
		if (regions[r]->start + regions[r]->nblocks > nblocks ||
			regions[r]->nbytes > (uint64) regions[r]->nblocks * VS_BLOB_PAYLOAD)
		{
			add_problem(rsinfo, false, "%s region (blocks %u..%u, " UINT64_FORMAT " bytes) does not fit the index's %u blocks",
						region_names[r], regions[r]->start,
						regions[r]->start + regions[r]->nblocks, regions[r]->nbytes, nblocks);
			fits = false;
		}
	}
	if (!fits)
	{
		FreeAccessStrategy(bas);
		close_vecstore_index(index, heap);
		return (Datum) 0;
	}

	/* every page of every region against its CRC */
	for (int r = 0; r < VERIFY_REGIONS; r++)
		region_ok[r] = check_region_pages(index, rsinfo, region_names[r], regions[r], bas);

	/* the older pieces' pages, once the head that lists them is sound */
	sealed_ok = region_ok[3];
	if (sealed_ok)
	{
		char	   *headproblem;

		head = VsSealedHead(index, &meta, bas, &headproblem);
		for (uint32 p = 1; head != NULL && p < meta.npieces; p++)
		{
			const VsPieceInfo *piece = &VsHeadPieces(head)[p];
			char	   *what = psprintf("sealed region of generation %u", piece->generation);

			if (piece->region.start + piece->region.nblocks > nblocks)
			{
				add_problem(rsinfo, false, "%s (blocks %u..%u) does not fit the index's %u blocks",
							what, piece->region.start,
							piece->region.start + piece->region.nblocks, nblocks);
				sealed_ok = false;
			}
			else if (!check_region_pages(index, rsinfo, what, &piece->region, bas))
				sealed_ok = false;
			pfree(what);
		}
	}

	if (sealed_ok)
	{
		/* the sealed region: head against the manifest, clusters against it */
		char	   *sealed_problem = VsSealedCheckFork(index, &meta);

		if (sealed_problem != NULL)
		{
			add_problem(rsinfo, false, "sealed data in the index %s: REINDEX the index", sealed_problem);
			sealed_ok = false;
		}
	}

	if (sealed_ok && region_ok[4])
		check_graphs(index, &meta, rsinfo, bas);

	if (region_ok[2])
		check_bitmap(index, &meta, rsinfo, bas);

	if (region_ok[1])
	{
		check_directory(index, &meta, sealed_ok ? head : NULL, rsinfo, bas);

		/*
		 * Each cluster's delta chain, walked with its directory page share
		 * locked, so that no insert adds rows (or a page) to it and no
		 * compaction cuts its front meanwhile: the counts and the tail are
		 * compared as of one moment (inserts lock the directory page
		 * first too).  Concurrent inserts made it report problems that
		 * were not there.
		 */
		for (uint32 c = 0; c < meta.nclusters; c++)
		{
			VsDirEntry	entry;
			uint32		poff;
			BlockNumber dirblk = VsBlobBlock(&meta.directory, (uint64) c * sizeof(VsDirEntry), &poff);
			Buffer		dir = ReadBufferExtended(index, MAIN_FORKNUM, dirblk, RBM_NORMAL, bas);

			LockBuffer(dir, BUFFER_LOCK_SHARE);
			VsCheckPage(index, BufferGetPage(dir), dirblk, VS_PAGE_BLOB);
			memcpy(&entry, PageGetContents(BufferGetPage(dir)) + poff, sizeof(entry));
			/* the fork as long as it is now: inserts extend it */
			check_delta_chain(index, rsinfo, c, &entry, RelationGetNumberOfBlocks(index), bas);
			UnlockReleaseBuffer(dir);
		}
	}

	if (sealed_ok)
	{
		/* the segment files */
		problem = VsSegmentCheck(index, &meta, &generation);
		if (problem != NULL)
		{
			char	   *path = VsSegmentPath(index->rd_node, generation);

			if (repair)
				VsSegmentWrite(index, &meta);
			add_problem(rsinfo, repair, "segment file \"%s\" %s", path, problem);
		}
		if (repair)
			VsSegmentSweep();
	}

	if (head != NULL)
		pfree(head);
	FreeAccessStrategy(bas);
	close_vecstore_index(index, heap);
	return (Datum) 0;
}
