/*-------------------------------------------------------------------------
 *
 * vsam.h
 *	  Private header of the vecstore index access method.
 *
 * Page layout of the main fork, the metapage, the cached metadata, and
 * prototypes grouped by the file that defines them.
 *
 * Layout of the main fork (all of it WAL-logged; see src/README):
 *
 *	block 0				metapage (VsMetaPageData)
 *	centroids region	nclusters * dims float4, blob pages
 *	directory region	VsDirEntry per cluster (delta chain heads), blob pages
 *	bitmap region		one deletion bit per sealed row, blob pages
 *	sealed region		the segment body: VsSealedHeader, VsClusterInfo[],
 *						the codes' parameters, VsPieceInfo[], then per
 *						cluster 64-byte aligned vectors, TIDs, codes, graph
 *	older pieces		sealed regions of earlier generations that still
 *						hold clusters no compaction rewrote since
 *	delta pages			per-cluster chains of rows inserted after the build
 *
 * A "blob" region is a byte string laid over consecutive pages, VS_BLOB_
 * PAYLOAD bytes per page, so that structures of any size (a centroid of
 * 2000 dimensions, a cluster of a million vectors) are stored contiguously
 * and can be read back or copied to a segment file by offset.
 *
 * IDENTIFICATION
 *	  src/vsam.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSAM_H
#define VSAM_H

#include <math.h>

#include "access/amapi.h"
#include "access/genam.h"
#include "access/generic_xlog.h"
#include "access/reloptions.h"
#include "datatype/timestamp.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "port/pg_crc32c.h"
#include "portability/instr_time.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"

#include "vector.h"
#include "vsdistance.h"
#include "vshnsw.h"
#include "vskmeans.h"
#include "vsquant.h"
#include "vssegment.h"
#include "vsutil.h"

/* identification */
#define VS_MAGIC				0x56535831	/* "VSX1" */
#define VS_VERSION				4	/* 2: codes and graphs; 3: compaction;
									 * 4: a CRC-32C in every page's special
									 * space (VsPageOpaqueData.crc) */
#define VS_PAGE_ID				0xFF8C		/* lets pg_filedump recognise our pages */
#define VS_METAPAGE_BLKNO		0

/* page types, in VsPageOpaqueData.type */
#define VS_PAGE_META			1
#define VS_PAGE_BLOB			2
#define VS_PAGE_DELTA			3
#define VS_PAGE_FREE			4	/* a folded delta page, in the free space map */
#define VS_PAGE_LISTED			5	/* a free page the free list took from the
									 * free space map (vsfree.c) */

/* payload bytes of a blob page: a multiple of 64, so that 16-byte directory
 * entries and bitmap bytes never straddle two pages */
#define VS_BLOB_PAYLOAD			8128

/* index limits and option ranges */
#define VS_DEFAULT_LISTS		0	/* "auto" (0 inside): follow the row count */

/*
 * Rows per cluster when lists = auto: big enough that the graph inside a
 * cluster does most of the search, while the clusters still split the
 * data finely enough for routing (bench/RESULTS.md, "Choosing the
 * defaults").
 */
#define VS_AUTO_CLUSTER_ROWS	5000
#define VS_MIN_LISTS			1
#define VS_MAX_LISTS			32768
#define VS_DEFAULT_PROBES		0	/* "auto" (0 inside), see VsEffectiveProbes */

/*
 * The search of a query (vsscan_policy.c): vecstore.probes = auto (the
 * default; 0 in vecstore_probes) decides per query how many clusters to
 * open, at the level of effort vecstore.effort (VS_MAX_EFFORT: an exact
 * search); vecstore.ef_search = auto (the default; 0 in
 * vecstore_ef_search) takes the first ef of each graph search from the
 * effort.  Set, they fix the search.  The default effort
 * is chosen by measurement (bench/RESULTS.md, "Fast by default").
 */
#define VS_DEFAULT_EF_SEARCH	0
#define VS_DEFAULT_EFFORT		4
#define VS_MIN_EFFORT			1
#define VS_MAX_EFFORT			10
#define VS_MIN_PROBES			1
#define VS_MAX_PROBES			32768
#define VS_DEFAULT_MAX_SCAN_TUPLES 40000
#define VS_MIN_MAX_SCAN_TUPLES	1
#define VS_MAX_MAX_SCAN_TUPLES	INT_MAX

/*
 * GUC vecstore.rerank_window: candidates reranked on full vectors at a time
 * (a scan's first batch twice as many, vsscan.c).  20 against 40 read a
 * fifth to a quarter fewer vectors per query at the same recall, and under
 * a memory limit a third fewer bytes from disk (bench/RESULTS.md, "A
 * smaller rerank window").
 */
#define VS_DEFAULT_RERANK_WINDOW	20
#define VS_MIN_RERANK_WINDOW	1
#define VS_MAX_RERANK_WINDOW	100000

/*
 * reloption compaction_threshold: VACUUM re-seals a cluster once this
 * fraction of its rows are delta rows (searched exactly, row by row) or
 * removed rows (skipped, but still read); 0 turns VACUUM's compaction off.
 * Each delta row is a whole vector read and compared: on SIFT, 9 % of the
 * rows in delta chains cost a third of the queries per second, and a
 * twentieth against a tenth gave 1.14x the mean queries per second of an
 * index taking inserts, for 1.9x the compactions' time (bench/RESULTS.md,
 * "Rows in their cells after splits").  VS_COMPACT_MIN_ROWS keeps VACUUM
 * from re-sealing a cluster for a handful of rows.
 */
#define VS_DEFAULT_COMPACTION_THRESHOLD	0.05
#define VS_COMPACT_MIN_ROWS		64

/*
 * reloption max_cluster_rows: a compaction splits a cluster of more rows
 * (k-means on its rows) into parts of about half as many; 0 (the default)
 * follows the build: twice its mean rows per cluster, at least twice
 * VS_AUTO_CLUSTER_ROWS with lists = 0 and VS_MIN_SPLIT_ROWS otherwise.
 * Clusters are added up to the directory's capacity, VsDirCapacity of the
 * build's count.
 */
#define VS_DEFAULT_MAX_CLUSTER_ROWS	0

/*
 * reloption min_cluster_rows: a compaction that re-seals a cluster of
 * fewer live rows merges it into the cluster of the nearest centroid
 * (when the two together stay within the split bound); -1 (the default):
 * a tenth of the split bound; 0: never.
 */
#define VS_DEFAULT_MIN_CLUSTER_ROWS	(-1)
#define VS_AUTO_MERGE_FRACTION	10
#define VS_MIN_SPLIT_ROWS		1000

/*
 * The parts a split of "rows" rows makes, past the bound "bound": about
 * half the bound each (rows / (bound / 2), rounded), at least 2.  Used by
 * compactions and by CREATE INDEX (split_oversized) alike.
 */
#define VsSplitParts(rows, bound) \
	Max((uint64) 2, ((uint64) (rows) + (uint64) (bound) / 4) / Max((uint64) (bound) / 2, 1))
#define VS_MAX_MAX_CLUSTER_ROWS	100000000
#define VsDirCapacity(nclusters) \
	((int) Min((int64) VS_MAX_LISTS, Max((int64) 1024, 8 * (int64) (nclusters))))

/* reloption quantizer: the codes the graph search reads */
#define VS_QUANTIZER_NONE		0	/* the graph reads the full vectors */
#define VS_QUANTIZER_SQ8		1	/* 8-bit scalar codes (vsquant.h) */
#define VS_QUANTIZER_SQ4		2	/* 4-bit scalar codes (vsquant.h) */

/*
 * Route through an HNSW graph over the centroids (built with the index,
 * kept in the "routing" region of the fork) when there are at least this
 * many clusters; below it, comparing the query with every centroid is as
 * fast.
 */
#define VS_ROUTE_GRAPH_THRESHOLD	4096

/* k-means: training sample per list, and the sample's floor */
#define VS_SAMPLES_PER_LIST		50
#define VS_MIN_SAMPLE			10000
#define VS_KMEANS_SEED			UINT64CONST(0x7665637374307265)

/* alignment of the per-cluster arrays in the sealed region (and the file) */
#define VS_SEGMENT_ALIGN		64

/* build phases for pg_stat_progress_create_index */
#define VS_PHASE_SAMPLE			2
#define VS_PHASE_KMEANS			3
#define VS_PHASE_ASSIGN			4
#define VS_PHASE_WRITE			5
#define VS_PHASE_SEGMENT		6
#define VS_PHASE_GRAPHS			7	/* a parallel build's last graphs */

/*
 * The special space of every page.  "crc" (format version 4) is the
 * CRC-32C of what the page holds that PostgreSQL does not check (its own
 * page checksums are off by default), set by every writer right before
 * the page is logged (VsPageSeal) and checked by every reader
 * (VsCheckPage): for a blob page, its payload; for the metapage, the
 * VsMetaPageData; for a delta or free page, its links (the rows on a
 * delta page are not covered).  Each time with the special space's
 * fields before "crc".  It lives in the special space, not after the
 * payload, because a full-page image drops the hole between pd_lower and
 * pd_upper (zeros at replay), and the special space is always logged.
 */
typedef struct VsPageOpaqueData
{
	BlockNumber nextblkno;		/* delta chain: next page, or Invalid */
	uint16		type;			/* VS_PAGE_* */
	uint16		page_id;		/* VS_PAGE_ID */
	uint32		crc;			/* see above; last: the CRC covers the rest */
} VsPageOpaqueData;

typedef VsPageOpaqueData *VsPageOpaque;

#define VsPageGetOpaque(page)	((VsPageOpaque) PageGetSpecialPointer(page))

/* a run of blob pages */
typedef struct VsRegion
{
	BlockNumber start;			/* first block */
	BlockNumber nblocks;		/* pages in the run */
	uint64		nbytes;			/* bytes of payload used */
} VsRegion;

/* the metapage contents (fields are only ever appended) */
typedef struct VsMetaPageData
{
	uint32		magic;
	uint32		version;
	uint32		dims;
	uint32		metric;			/* VsMetric */
	uint32		nclusters;
	uint32		lists_option;	/* the reloption as given (0 = automatic) */
	uint64		sealed_rows;	/* rows in the sealed region */
	VsRegion	centroids;		/* nclusters * dims float4; then, once a
								 * compaction merged a cluster, nclusters
								 * int32: each one's host (VsMetaCacheData) */
	VsRegion	directory;
	VsRegion	bitmap;
	VsRegion	sealed;
	/* segment manifest: what the segment file of this generation holds */
	uint32		generation;
	uint32		sealed_crc;		/* CRC-32C of the sealed region's head: the
								 * header and the cluster table, which holds
								 * each cluster's own CRC-32C */
	uint32		row_metric;		/* VsMetric rows are assigned to clusters by
								 * (VsKmeansRowMetric: L2 for an IP index) */
	/* version 2: codes and graphs */
	uint32		quantizer;		/* VS_QUANTIZER_* */
	uint32		params_size;	/* bytes of the VsQuantParams in the sealed
								 * head (0 without codes) */
	uint16		m;				/* graph options the clusters were built with */
	uint16		ef_construction;
	uint32		graph_threshold;	/* clusters of fewer rows have no graph */
	VsRegion	routing;		/* HNSW graph over the centroids, or empty */
	/* version 3: compaction (vscompact.c) */
	uint64		row_space;		/* deletion bits in use: the next sealed
								 * cluster's first_row */
	uint32		compactions;	/* compactions since the build */
	uint32		npieces;		/* entries of the piece table in the head */
	uint32		split_rows;		/* a compaction splits clusters of more
								 * rows (max_cluster_rows = 0: twice the
								 * build's mean) */
	VsRegion	freelist;		/* VsFreeExtent entries (vsfree.c), or empty */
	uint32		moves;			/* times the centroids or the routing graph
								 * moved without changing (vsfree.c): part
								 * of what a backend's cache of them checks */
	uint32		elem_size;		/* how the rows' elements are stored (sealed
								 * and delta): VS_ELEM_* (0 in indexes made
								 * before halfvec: float4) */
} VsMetaPageData;

/* how the index of "meta" stores its rows' elements: VS_ELEM_* (vsutil.h) */
#define VsMetaElemSize(meta)	((meta)->elem_size == 0 ? VS_ELEM_FLOAT4 : (int) (meta)->elem_size)


typedef VsMetaPageData *VsMetaPage;

/* per-cluster mutable state, in the directory region */
typedef struct VsDirEntry
{
	BlockNumber delta_head;		/* first delta page, or Invalid */
	BlockNumber delta_tail;		/* last delta page, where inserts go */
	uint32		delta_count;	/* delta rows ever appended */
	uint32		delta_skipped;	/* ... on pages cut from the chain's front
								 * once folded (vsfree.c) */
} VsDirEntry;

/* start of the sealed region (and of a segment file's body) */
typedef struct VsSealedHeader
{
	uint32		nclusters;
	uint32		dims;
	uint64		nrows;
	uint32		quantizer;		/* VS_QUANTIZER_* */
	uint32		params_size;	/* bytes of the VsQuantParams after the table */
	uint32		record_size;	/* bytes of one code record (0: none) */
	uint32		npieces;		/* entries of the piece table */
	uint8		pad[32];		/* to VS_SEGMENT_ALIGN */
} VsSealedHeader;

/*
 * Where one cluster's sealed rows are: offsets in the generation's body
 * (see "pieces" below), and "nbytes" bytes from vec_offset whose CRC-32C
 * is "crc": so a backend checks only the clusters it reads, the first
 * time it reads them, and the metapage's sealed_crc over the head covers
 * every cluster's CRC.
 *
 * In order, each 64-byte aligned: the full vectors, the TIDs, the code
 * records (VsQuantBlockSize bytes; absent without a quantizer), the HNSW
 * graph (graph_size bytes; absent below the graph threshold).
 *
 * A cluster's rows are its sealed rows (deletion bits first_row ..
 * first_row + count - 1 of the bitmap) and the rows of its delta chain
 * from (delta_blk, delta_off) on: a compaction folds the chain's first
 * rows into the sealed rows and moves that position past them, without
 * changing the chain, so that a scan of the generation before still reads
 * them from the chain.  delta_blk is InvalidBlockNumber when no row of the
 * chain was folded: the rows start at the chain's head.
 */
typedef struct VsClusterInfo
{
	uint64		vec_offset;		/* count * dims float4, aligned */
	uint64		tid_offset;		/* count ItemPointerData, aligned */
	uint64		code_offset;	/* count code records, or 0 */
	uint64		graph_offset;	/* serialized VsHnsw graph, or 0 */
	uint64		graph_size;		/* its bytes, or 0 */
	uint64		first_row;		/* deletion bit of the first row */
	uint64		nbytes;			/* the cluster's bytes, from vec_offset */
	uint32		count;
	uint32		crc;			/* CRC-32C of the cluster's bytes */
	uint32		piece;			/* generation of the piece holding them */
	BlockNumber delta_blk;		/* first unfolded delta row: its page */
	uint16		delta_off;		/* ... and its offset there */
	uint16		sealed_dead;	/* of its rows, how many were dead when it
								 * was sealed (their bits set by the
								 * compaction that wrote it: kept so that
								 * its graph could be extended, not built
								 * anew; vscompact.c) */
	uint32		delta_folded;	/* rows of the chain folded into the sealed
								 * rows */
} VsClusterInfo;

/*
 * A piece: the sealed region written by one generation (one segment file,
 * one run of blob pages in the fork).  A compaction writes a new piece
 * holding the head and the clusters it rewrote; the other clusters stay
 * where an earlier piece has them.  The head lists every piece the
 * generation reads, the first being its own; a backend maps the piece
 * files side by side so that each one's body lies "base" bytes after the
 * first one's (base is a multiple of VS_PIECE_ALIGN, the file's header
 * just before its body), and offsets in the cluster table are offsets
 * from the first body.  A piece that no cluster uses any more is dropped
 * from the table, and its file removed.
 */
typedef struct VsPieceInfo
{
	uint32		generation;		/* the generation that wrote it */
	uint32		head_crc;		/* CRC-32C of its own head (0 for the first
								 * piece: the metapage holds it) */
	uint64		base;			/* offset of its body from the first body */
	VsRegion	region;			/* its bytes in the fork */
} VsPieceInfo;

/* alignment of a piece's place in a mapping: any page size up to 64 kB */
#define VS_PIECE_ALIGN			65536

/*
 * Where mappings and pieces are placed: on 2 MB boundaries (a multiple of
 * VS_PIECE_ALIGN), and segment files are written in runs of as much, so
 * that a kernel whose page cache holds a file in 2 MB pieces (large
 * folios) can map them into a backend whole, one page-table entry each
 * (vssegment.c, "Huge mappings").
 */
#define VS_PIECE_PLACE			(2 * 1024 * 1024)

/* at most this many pieces: a compaction that would need more rewrites
 * the clusters of the smallest ones too */
#define VS_MAX_PIECES			16

/* offset of the quantizer's parameters in the sealed region */
#define VsSealedParamsOffset(nclusters) \
	TYPEALIGN(VS_SEGMENT_ALIGN, sizeof(VsSealedHeader) + (uint64) (nclusters) * sizeof(VsClusterInfo))

/* offset of the piece table */
#define VsSealedPiecesOffset(nclusters, params_size) \
	(VsSealedParamsOffset(nclusters) + TYPEALIGN(VS_SEGMENT_ALIGN, (uint64) (params_size)))

/* bytes of the sealed region's head (header, cluster table, parameters,
 * piece table) */
#define VsSealedHeadSize(nclusters, params_size, npieces) \
	(VsSealedPiecesOffset(nclusters, params_size) + \
	 TYPEALIGN(VS_SEGMENT_ALIGN, (uint64) (npieces) * sizeof(VsPieceInfo)))

/* the cluster table and the piece table of a head; its code record size */
#define VsHeadClusters(head)	((const VsClusterInfo *) ((const char *) (head) + sizeof(VsSealedHeader)))
#define VsHeadRecordSize(head)	(((const VsSealedHeader *) (head))->record_size)
#define VsHeadPieces(head) \
	((const VsPieceInfo *) ((const char *) (head) + \
		VsSealedPiecesOffset(((const VsSealedHeader *) (head))->nclusters, \
							 ((const VsSealedHeader *) (head))->params_size)))

/* a row inserted after the build, on a delta page */
typedef struct VsDeltaTupleData
{
	ItemPointerData tid;
	uint16		flags;			/* VS_DELTA_DEAD */
	float		x[FLEXIBLE_ARRAY_MEMBER];	/* the row, as the index stores
											 * its elements (VS_ELEM_*:
											 * float4 here only for a
											 * vector index) */
} VsDeltaTupleData;

typedef VsDeltaTupleData *VsDeltaTuple;

#define VS_DELTA_DEAD			0x0001
#define VS_DELTA_TUPLE_SIZE(elem, dims)	MAXALIGN(offsetof(VsDeltaTupleData, x) + VsRowBytes(elem, dims))

struct VsOffload;
struct VsOffloadGraph;

/*
 * What goes into every sealed cluster besides its vectors and TIDs
 * (vsbuild.c, VsWriteCluster; CREATE INDEX and compaction).
 */
typedef struct VsClusterExtras
{
	const VsQuantParams *params;	/* codes, or NULL */
	VsMetric	metric;			/* of the graphs */
	int			graph_threshold;	/* clusters of at least this many rows get
									 * a graph */
	int			m;
	int			ef_construction;
	struct VsOffload *offload;	/* the build's offload (the GPU), or NULL */
	int			elem_size;		/* how rows are stored: VS_ELEM_* */
	int			gpu_threads;	/* CPU threads the offload service may use
								 * for one graph */
	instr_time *graph_time;		/* where the graphs' time adds up, or NULL */
	/* a compaction: the graph the cluster had, whose nodes are its first
	 * rows, unchanged (VsHnswExtend inserts only the others), or NULL */
	const void *prev_graph;
	uint64		prev_graph_size;
	/* the graphs' bytes left zero, for the parallel build to fill */
	bool		defer_graphs;
} VsClusterExtras;

/* reloptions */
typedef struct VsOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			lists;			/* offset of the string: "auto" or a number */
	int			m;
	int			ef_construction;
	int			quantizer;		/* VS_QUANTIZER_* */
	double		compaction_threshold;	/* see VS_DEFAULT_COMPACTION_THRESHOLD */
	int			max_cluster_rows;	/* see VS_DEFAULT_MAX_CLUSTER_ROWS */
	int			min_cluster_rows;	/* see VS_DEFAULT_MIN_CLUSTER_ROWS */
} VsOptions;

/*
 * What a backend keeps about an index between calls (vspage.c,
 * VsGetMetaCache): the metapage and the centroids of the current
 * generation.  Not in rd_amcache: the relcache frees that with one pfree
 * when it rebuilds an entry, which may happen while a scan reads it.
 */
typedef struct VsMetaCacheData
{
	MemoryContext cxt;			/* holds all of this; a child of
								 * CacheMemoryContext once loaded */
	struct VsMetaCacheData *next;	/* the backend's list of caches */
	Oid			indexoid;		/* the index it belongs to */
	RelFileNode node;			/* the relfilenode it was read from */
	VsMetaPageData meta;
	float	   *centroids;		/* nclusters * dims */
	VsKmeansPrepared *prepared; /* centroids packed for routing rows, made
								 * when first needed (VsMetaCachePrepare) */
	void	   *routing;		/* HNSW graph over the centroids, or NULL */

	/*
	 * Merged clusters: a compaction gave their rows to the clusters of the
	 * nearest centroids left; they take no rows (prepared routes to the
	 * others only, live_ids maps its answers back) and are never visited.
	 * A row an insert still put in such a cluster's delta chain (routed
	 * before the merge was published) is read with the chain of its host,
	 * the cluster of the centroid nearest to its own, and given away by the
	 * next compaction.  hosts[c] is the host of cluster c, or -1; NULL when
	 * no cluster is merged (and live_ids NULL too).
	 */
	int32	   *hosts;
	int32	   *guests;			/* with hosts: the merged clusters of host h
								 * are guests[guest_start[h] ..
								 * guest_start[h + 1] - 1] */
	int32	   *guest_start;	/* nclusters + 1 entries */
	int		   *live_ids;
	int			nlive;			/* clusters not merged */
	int			pins;			/* scans that read it (VsMetaCacheRelease);
								 * none once the transaction ends */
	bool		stale;			/* replaced, or its relcache entry was
								 * invalidated: freed once not pinned */
} VsMetaCacheData;

typedef VsMetaCacheData *VsMetaCache;

/*
 * The fork's free space (vsfree.c): extents of blocks retired by a
 * compaction, reusable once no scan can read them.  An entry with a
 * cluster is the front of that cluster's delta chain, from "start" to
 * the page "new_head" (nblocks unknown until it is walked).
 */
typedef struct VsFreeExtent
{
	BlockNumber start;
	BlockNumber nblocks;
	BlockNumber new_head;
	uint32		cluster;		/* VS_NO_CLUSTER: a run of blocks */
	uint64		stamp;			/* 0: free; 1: retired, not yet stamped;
								 * else the FullTransactionId horizon */
	uint64		pad;			/* 32 bytes: none straddles a page */
} VsFreeExtent;

#define VS_NO_CLUSTER			0xFFFFFFFF

typedef struct VsFreeList
{
	VsFreeExtent *ext;
	int			n;
	int			cap;
	BlockNumber reused;			/* blocks handed out again */
} VsFreeList;

/* a region written page by page (vspage.c, VsBlobBegin) */
typedef struct VsBlobWriter
{
	Relation	index;
	ForkNumber	forknum;
	PGAlignedBlock page;
	uint32		used;			/* payload bytes in "page" */
	uint64		total;			/* bytes written to the region */
	BlockNumber first;			/* first block of the region */
	BlockNumber nblocks;		/* blocks flushed */
	BlockNumber limit;			/* blocks reserved (VsBlobBeginIn), or 0 */
	bool		do_crc;
	pg_crc32c	crc;
} VsBlobWriter;

/* a walk over one cluster's delta chain (vspage.c, VsDeltaChainBegin) */
typedef enum VsDeltaChainProblem
{
	VS_DELTA_CHAIN_OK = 0,
	VS_DELTA_CHAIN_PAST_END,	/* a link points past the end of the index */
	VS_DELTA_CHAIN_LOOPS,		/* longer than the index: a loop */
	VS_DELTA_CHAIN_NOT_DELTA,	/* a link reaches a page that is not a delta page */
	VS_DELTA_CHAIN_DAMAGED		/* ... a delta page whose CRC does not match,
								 * or whose line pointers are not sound */
} VsDeltaChainProblem;

typedef struct VsDeltaChain
{
	Relation	index;
	int			lockmode;		/* BUFFER_LOCK_SHARE or _EXCLUSIVE */
	BufferAccessStrategy strategy;
	BlockNumber nblocks;		/* > 0: report damage instead of an error */
	BlockNumber steps;			/* pages visited */
	BlockNumber limit;			/* ... more than this (the fork's length when
								 * last asked, or a first guess) is a loop */
	Size		tupsize;		/* every row's size, or 0: not known */
	BlockNumber next;			/* the page after the current one */
	Buffer		buf;			/* the current page, pinned and locked */
	BlockNumber blkno;			/* its block (or the damaged one) */
	VsDeltaChainProblem problem;
	OffsetNumber startoff;		/* the first row to read on the first page */
	OffsetNumber first;			/* ... on the current page */
	OffsetNumber off;			/* the row VsDeltaChainNextRow returned */
	bool		started;
} VsDeltaChain;

/*
 * The clusters in the order a query visits them (vsroute.c): nearest
 * centroid first.  VsRouteBegin fills the first ones (from the routing
 * graph when the index has one), VsRouteAll the rest.
 */
typedef struct VsRoute
{
	int		   *order;			/* nclusters entries, in the caller's context */
	int			norder;			/* valid entries of "order" */
	bool		all;			/* "order" holds every cluster */
	const float *query;			/* as routing compares it with centroids
								 * (normalised for cosine), or NULL */
} VsRoute;

/*
 * VsCompareDistance - float8 order with NaN last (as ORDER BY sorts it).
 */
static inline int
VsCompareDistance(double a, double b)
{
	if (isnan(a))
		return isnan(b) ? 0 : 1;
	if (isnan(b))
		return -1;
	return (a > b) - (a < b);
}

/* was cluster "c" merged into another one? (VsMetaCacheData.hosts) */
static inline bool
VsClusterMerged(VsMetaCache cache, int c)
{
	return cache->hosts != NULL && cache->hosts[c] >= 0;
}

/* is row "i" of a cluster deleted? ("bits", "shift" from VsDeletionBits) */
static inline bool
VsRowDeleted(const uint8 *bits, uint32 shift, uint64 i)
{
	uint64		bit = shift + i;

	return (bits[bit / 8] & (1 << (bit % 8))) != 0;
}

/* a candidate row of a scan */
typedef struct VsCandidate
{
	ItemPointerData tid;
	double		distance;		/* ordering key: the operator's order */
	double		skey;			/* search key: the structures' metric (the
								 * same as distance but for an L1 index,
								 * whose searches run in L2) */
} VsCandidate;

/* this backend's counters, since it started (vecstore_stats()) */
typedef struct VsBackendStats
{
	int64		scans;			/* index scans started */
	int64		rows_examined;	/* rows given a distance (codes or exact) */
	int64		clusters_opened;
	int64		scans_cut_short;	/* ran out of vecstore.max_scan_tuples */
	int64		files_checked;	/* segment heads checked by this backend */
	int64		files_trusted;	/* ... taken from the server's record */
	int64		clusters_checked;	/* clusters checked by this backend */
	int64		clusters_trusted;	/* ... taken from the server's record */
	int64		vectors_read;	/* sealed rows given their exact distance on
								 * the full vector (reranked or read flat) */
	int64		vectors_read_from_files;	/* ... of those, read with pread()
											 * (VsSegmentRead) */
	int64		rows_skipped_late;	/* found after a farther row was returned,
									 * so left out (vsscan.c, gettuple) */
} VsBackendStats;

extern VsBackendStats VsStats;

/* GUCs */
extern int	vecstore_probes;
extern int	vecstore_max_scan_tuples;
extern int	vecstore_ef_search;
extern int	vecstore_effort;
extern int	vecstore_rerank_window;
extern bool vecstore_debug_packed_codes;	/* off: the earlier code and
											 * graph layout */
extern int	vecstore_readahead;
extern int	vecstore_direct_reads;

/* vecstore.readahead, and vecstore.direct_reads (the same three values) */
#define VS_READAHEAD_AUTO		0	/* while pages are found missing */
#define VS_READAHEAD_ON			1
#define VS_READAHEAD_OFF		2

/* vsam.c */
extern void VsAmInit(void);
extern VsMetric VsGetMetric(Relation index);
extern VsMetric VsGetOrderMetric(Relation index);
extern int	VsIndexElem(Relation index);
extern int	VsGetListsOption(Relation index);
extern void VsGetGraphOptions(Relation index, int *m, int *ef_construction, int *quantizer);
extern double VsGetCompactionThreshold(Relation index);
extern int	VsGetMaxClusterRows(Relation index);
extern int	VsGetMinClusterRows(Relation index);
extern void VsWarnForeignSettings(void);
extern Datum vs_handler(PG_FUNCTION_ARGS);

/* vsbuild.c */
extern IndexBuildResult *vsbuild(Relation heap, Relation index, IndexInfo *indexInfo);
extern void vsbuildempty(Relation index);
extern uint64 VsClusterLayout(VsClusterInfo *info, uint64 off, int c, int64 count, int dims,
							  const VsClusterExtras *ex);
extern uint32 VsWriteCluster(VsBlobWriter *w, Relation index, int c, const float *vecs,
							 const ItemPointerData *tids, int64 count, int dims,
							 const VsClusterExtras *ex, const VsClusterInfo *info,
							 struct VsOffloadGraph *offgraph, MemoryContext cxt);
extern char *VsMakeHead(const VsSealedHeader *sh, const VsClusterInfo *info,
						const VsQuantParams *params, const VsPieceInfo *pieces, uint64 *size);
extern uint32 VsHeadCrc(const char *head, uint64 size);
extern void *VsBuildRouting(Relation index, VsMetric metric, int dims, int nclusters,
							const float *centroids, size_t *size);
extern void VsBuildGraph(Relation index, int c, const float *vecs, const uint8 *codes,
						 int64 count, int dims, const VsClusterExtras *ex,
						 const VsClusterInfo *info, void *graph);

/* vsbuild_parallel.c */
typedef struct VsBuildParallel VsBuildParallel;
extern VsBuildParallel *VsBuildParallelBegin(Relation index, int nworkers,
											 const VsClusterInfo *info, int nclusters,
											 int dims, const VsClusterExtras *ex,
											 const VsPieceInfo *pieces, int npieces,
											 const bool *jobs, bool report);
extern void VsBuildParallelReady(VsBuildParallel *bp, int piece, uint64 bytes);
extern void VsBuildParallelFinish(VsBuildParallel *bp, VsClusterInfo *info);

/* vsinsert.c */
extern bool vsinsert(Relation index, Datum *values, bool *isnull, ItemPointer heap_tid,
					 Relation heap, IndexUniqueCheck checkUnique, bool indexUnchanged,
					 IndexInfo *indexInfo);

/* vsscan.c */
extern IndexScanDesc vsbeginscan(Relation index, int nkeys, int norderbys);
extern void vsrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys);
extern bool vsgettuple(IndexScanDesc scan, ScanDirection dir);
extern void vsendscan(IndexScanDesc scan);

/* vsvacuum.c */
extern IndexBulkDeleteResult *vsbulkdelete(IndexVacuumInfo *info, IndexBulkDeleteResult *stats,
										   IndexBulkDeleteCallback callback, void *callback_state);
extern IndexBulkDeleteResult *vsvacuumcleanup(IndexVacuumInfo *info, IndexBulkDeleteResult *stats);
extern void VsCountRows(Relation index, VsMetaPage meta, BufferAccessStrategy strategy,
						uint64 *sealed_dead, uint64 *delta_live, uint64 *delta_dead);
extern uint64 VsCountDeleted(Relation index, VsMetaPage meta, const VsClusterInfo *info,
							 BufferAccessStrategy strategy);

/* vscompact.c */
typedef struct VsCompactResult
{
	int			clusters;		/* clusters re-sealed (0: nothing done) */
	int64		rows_folded;	/* delta rows moved into sealed rows */
	int64		rows_removed;	/* removed rows dropped */
	int			splits;			/* clusters split */
	int			merges;			/* clusters merged into another */
	int64		rows_moved;		/* rows given to the cluster of a nearer
								 * centroid after splits */
	int			slots_reused;	/* parts of splits put in merged slots */
	BlockNumber blocks_reused;	/* fork blocks reused instead of new ones */
	BlockNumber blocks_truncated;	/* fork blocks given back at its end */
	uint32		generation;		/* the index's generation afterwards */
} VsCompactResult;

/*
 * A compaction's progress, in the progress parameters of the VACUUM
 * command that runs it (VACUUM's, or one vecstore_compact and the worker
 * start), past those VACUUM uses; the view vecstore_compaction_progress
 * reads them.
 */
#define VS_PROGRESS_CLUSTERS_TOTAL	10
#define VS_PROGRESS_CLUSTERS_DONE	11
#define VS_PROGRESS_ROWS_WRITTEN	12
#define VS_PROGRESS_PHASE			13	/* 0 when no compaction runs */
#define VS_PROGRESS_INDEX			14	/* the index's OID */
#define VS_COMPACT_PHASE_COUNTING	1
#define VS_COMPACT_PHASE_SPLITTING	2
#define VS_COMPACT_PHASE_WRITING	3
#define VS_COMPACT_PHASE_LOGGING	4
#define VS_COMPACT_PHASE_SWITCHING	5
#define VS_COMPACT_PHASE_GRAPHS		6	/* the parallel workers' last graphs */

/* vecstore.debug_compaction_stop */
#define VS_COMPACT_STOP_NONE		0
#define VS_COMPACT_STOP_WRITTEN		1
#define VS_COMPACT_STOP_LOGGED		2
#define VS_COMPACT_STOP_PUBLISHED	3
#define VS_COMPACT_STOP_RECLAIM		4

extern int	vecstore_debug_compaction_stop;
extern void VsCompactInit(void);
extern void VsCompactDebugStop(int point);

/* vscompact_worker.c */
extern void VsCompactWorkerInit(void);
extern void VsCompact(Relation index, double threshold, bool relocate,
					  BufferAccessStrategy bas, VsCompactResult *result);
extern void VsCompactProgressBegin(Relation heap);
extern void VsCompactProgressEnd(void);

/* vsinfo.c */
extern Relation VsOpenIndex(Oid indexoid, LOCKMODE heaplock, LOCKMODE indexlock, Relation *heap);
extern void VsCloseIndex(Relation index, Relation heap, LOCKMODE heaplock, LOCKMODE indexlock);

/* vscost.c */
extern void vscostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
						   Cost *indexStartupCost, Cost *indexTotalCost,
						   Selectivity *indexSelectivity, double *indexCorrelation,
						   double *indexPages);

/* vsvalidate.c */
extern bool vsvalidate(Oid opclassoid);

/*
 * VsDeltaFromHead - does a generation read cluster "info"'s delta rows
 * from its chain's head (directory entry "entry"), rather than from its
 * fold position?  When it folded none of the chain, and when every row it
 * folded is on pages cut from the chain since: the whole chain went once
 * all of it was folded (vsfree.c, VsFreeTruncate), and the fold position
 * is on no page of the chain.  (Pages cut in the ordinary way end before
 * a fold position's page, which holds a folded row: fewer rows skipped.)
 */
static inline bool
VsDeltaFromHead(const VsDirEntry *entry, const VsClusterInfo *info)
{
	return !BlockNumberIsValid(info->delta_blk) || entry->delta_skipped == info->delta_folded;
}

/* vspage.c */
extern void VsInitPage(Page page, uint16 type);
extern uint32 VsPageCrc(Page page);
extern void VsPageSeal(Page page);
extern const char *VsPageProblem(Page page, uint16 type);
extern void VsCheckPage(Relation index, Page page, BlockNumber blkno, uint16 type);
extern Buffer VsNewBuffer(Relation index, ForkNumber forknum);
extern void VsReadMeta(Relation index, VsMetaPage meta);
extern bool VsReadMetaExtended(Relation index, VsMetaPage meta, bool check_crc);
extern bool VsTryReadMeta(Relation index, VsMetaPage meta);
extern VsMetaCache VsGetMetaCache(Relation index);
extern void VsMetaCacheInit(void);
extern void VsMetaCachePrepare(VsMetaCache cache);
extern int32 *VsReadCentroids(Relation index, const VsMetaPageData *meta, float *centroids,
							  BufferAccessStrategy bas);
extern void VsMetaCacheRelease(Relation index, VsMetaCache cache);
extern void VsBlobRead(Relation index, const VsRegion *region, uint64 offset, void *dst, Size len,
					   BufferAccessStrategy strategy);
extern BlockNumber VsBlobBlock(const VsRegion *region, uint64 offset, uint32 *page_offset);
extern void VsBlobBegin(VsBlobWriter *w, Relation index, ForkNumber forknum);
extern void VsBlobBeginIn(VsBlobWriter *w, Relation index, BlockNumber start, BlockNumber nblocks);
extern BlockNumber VsAllocateBlocks(Relation index, BlockNumber n);
extern void VsBlobCrcStart(VsBlobWriter *w);
extern uint32 VsBlobCrcEnd(VsBlobWriter *w);
extern void VsBlobPatch(Relation index, ForkNumber forknum, const VsRegion *region,
						uint64 offset, const void *data, Size len);
extern void VsBlobWrite(VsBlobWriter *w, const void *data, Size len);
extern void VsBlobPad(VsBlobWriter *w, Size align);
extern VsRegion VsBlobEnd(VsBlobWriter *w);
extern void VsDeltaChainBegin(VsDeltaChain *chain, Relation index, BlockNumber head,
							  int lockmode, BufferAccessStrategy strategy, BlockNumber nblocks,
							  Size tupsize);
extern uint8 *VsDeletionBits(Relation index, VsMetaPage meta, const VsClusterInfo *info,
							 BufferAccessStrategy strategy, uint32 *shift);
extern void VsDeltaChainBeginRows(VsDeltaChain *chain, Relation index, const VsDirEntry *entry,
								  const VsClusterInfo *info, int lockmode,
								  BufferAccessStrategy strategy, BlockNumber nblocks,
								  Size tupsize);
extern bool VsDeltaChainNext(VsDeltaChain *chain);
extern VsDeltaTuple VsDeltaChainNextRow(VsDeltaChain *chain);
extern void VsDeltaChainEnd(VsDeltaChain *chain);

/* vsscan_policy.c (the policy's scan state is in vsscan.h) */
extern int	VsEffectiveProbes(uint32 nclusters);
extern int	VsExpectedProbes(uint32 nclusters);
extern int	VsEffortEf(void);

/* vsroute.c */
extern int	VsNearestCluster(VsMetaCache cache, const float *x);
extern void VsRouteBegin(VsRoute *route, VsMetaCache cache, const float *query);
extern void VsRouteAll(VsRoute *route, VsMetaCache cache);

/* vsfree.c */
extern void VsFreeListLoad(Relation index, VsMetaPage meta, VsFreeList *fl,
						   BufferAccessStrategy bas);
extern void VsFreeListRipen(Relation index, VsMetaPage meta, VsFreeList *fl, bool all);
extern VsRegion *VsFreeListRuns(const VsFreeList *fl, int *n);
extern void VsFreeListTake(VsFreeList *fl, BlockNumber start, BlockNumber n);
extern BlockNumber VsFreeReclaim(Relation index, BufferAccessStrategy bas);
extern BlockNumber VsFreeReclaimSoon(Relation index, BufferAccessStrategy bas);
extern BlockNumber VsFreeListAllocate(Relation index, VsFreeList *fl, BlockNumber n);
extern Buffer VsNewDeltaBuffer(Relation index);
extern void VsFreeListRetire(VsFreeList *fl, const VsRegion *region);
extern void VsFreeListRetireChain(VsFreeList *fl, uint32 cluster, BlockNumber start,
								  BlockNumber new_head);
extern VsRegion VsFreeListWrite(Relation index, VsFreeList *fl);
extern void VsFreeListStamp(Relation index, VsMetaPage meta);
extern void VsFreeListBlocks(const VsFreeList *fl, uint64 *free_blocks, uint64 *retired_blocks);

/* vssegment_checked.c */
/* vsaccess.c */
extern void VsAccessInit(void);
extern bool VsAccessAvailable(void);
extern void VsAccessNote(RelFileNode node, uint32 cluster);
extern bool VsAccessGet(RelFileNode node, uint32 cluster, uint64 *accesses, TimestampTz *last,
						uint64 *pinned);
typedef struct VsAccessCount
{
	Oid			dbid;
	Oid			relnode;
	uint32		cluster;
	uint64		accesses;
	double		score;			/* the pinner's: recent accesses */
} VsAccessCount;
extern VsAccessCount *VsAccessSnapshot(int *n);
extern void VsAccessSetPinned(Oid dbid, Oid relnode, uint32 cluster, uint64 bytes);

/* vspin.c */
extern int	vecstore_pin_memory;
extern void VsPinInit(void);

extern void VsCheckedInit(void);
extern bool VsCheckedAvailable(void);
extern bool VsCheckedGet(const VsSegmentIdentity *id, int cluster);
extern void VsCheckedSet(const VsSegmentIdentity *id, int cluster);
extern void VsCheckedForget(const VsSegmentIdentity *id);

/* vssegment_fault.c */
extern void VsFaultInit(void);
extern bool VsMappedRun(void (*fn) (void *arg), void *arg);
extern void VsFaultRangeAdd(char *start, Size len);
extern void VsFaultRangeRemove(char *start);
extern void *VsFaultAddress(void);

/* vssegment.c */
extern void VsSegmentInit(void);
extern void VsSegmentFaulted(Relation index) pg_attribute_noreturn();
extern uint64 VsSegmentForkReads(Relation index);
extern const char *VsSegmentBody(Relation index, VsMetaPage meta);
extern void VsSegmentRelease(const char *body);
extern const char *VsSegmentCluster(Relation index, VsMetaPage meta, const char *body, uint32 cluster);
extern void VsSegmentWillNeed(const char *addr, Size len);
extern void VsSegmentWillNeedMany(const char **addrs, int n, Size len);
extern bool VsSegmentRead(const char *addr, Size len, void *buf);

/* one read of VsSegmentReadMany */
typedef struct VsReadRequest
{
	const char *addr;			/* in a pinned mapping of segment files */
	void	   *buf;			/* where its bytes go */
	bool		from_file;		/* out: read from the file, not through the
								 * mapping */
} VsReadRequest;

extern int	VsSegmentReadMany(VsReadRequest *reqs, int n, Size len, bool direct);
extern bool VsSegmentDirectReads(const char *body);
extern bool VsSegmentFirstRead(const char *body, uint32 cluster);
extern int	VsPieceIndex(const VsPieceInfo *pieces, uint32 npieces, uint32 generation);
extern const VsPieceInfo *VsHeadPiece(const char *head, uint32 generation);
extern char *VsSealedHead(Relation index, VsMetaPage meta, BufferAccessStrategy bas, char **problem);
extern char *VsSealedHeadOrError(Relation index, VsMetaPage meta, BufferAccessStrategy bas);
extern char *VsSealedCheckFork(Relation index, VsMetaPage meta);
extern void VsSegmentWritePiece(Relation index, VsMetaPage meta);
extern void VsSegmentWriteOtherPiece(Relation index, VsMetaPage meta, const VsPieceInfo *piece,
									 const char *head);
extern void VsSegmentWrite(Relation index, VsMetaPage meta);
extern Size VsSegmentBytesMapped(Relation index);
extern const char *VsSegmentCheck(Relation index, VsMetaPage meta, uint32 *generation);
extern const VsQuantParams *VsSegmentParams(VsMetaPage meta, const char *body);
extern bool VsSegmentFileIndex(const char *path, Oid *indexoid, TransactionId *writer);
extern int	VsSegmentPreviousDims(Relation index);
extern void VsSegmentEndOfXact(void);

/* vssegment_remove.c */
extern void VsSegmentRemoveInit(void);
extern void VsSegmentRemoveOnAbort(RelFileNode node);
extern void VsSegmentForgetIndexFiles(Relation index);
extern int	VsSegmentRemoveUnused(Relation index, VsMetaPage meta, const char *head);
extern void VsSegmentRemoveUnpublished(Relation index, uint32 published, uint32 last);
extern int	VsSegmentSweep(void);

#endif							/* VSAM_H */
