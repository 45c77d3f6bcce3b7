/*-------------------------------------------------------------------------
 *
 * vsbuild.c
 *	  CREATE INDEX for vecstore: sample, k-means, assign, write the fork,
 *	  write the segment file.
 *
 * The build makes two passes over the heap.  The first counts the rows and
 * keeps a uniform reservoir sample of their vectors (bounded by
 * maintenance_work_mem); k-means on the sample gives the centroids.  The
 * second assigns every row to its nearest centroid and feeds (cluster,
 * tid, vector) to a tuplesort, which spills to disk beyond
 * maintenance_work_mem.  The sorted stream is then written, cluster by
 * cluster, as the sealed region of the fork (see vsam.h), every page is
 * WAL-logged once with log_newpage_range, and the sealed region is copied
 * to the segment file (vssegment.c) that scans map.
 *
 * vsbuild runs one function per phase, each reported in
 * pg_stat_progress_create_index: build_init (options, the offload
 * service, the sample's bound), build_sample (pass 1), build_train
 * (k-means, the codes), build_assign (pass 2, the sort), build_write (the
 * fork: write_index, itself phased, then WAL) and build_segment (the file
 * and its life cycle).  The GPU, when there is one, is reached only
 * through the offload table of vsoffload.h: k-means rounds and the
 * assignment (VsKmeansHooks.offload_assign) and the clusters' graphs.
 *
 * IDENTIFICATION
 *	  src/vsbuild.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/tableam.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/progress.h"
#include "portability/instr_time.h"
#include "common/pg_prng.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "port/pg_crc32c.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplesort.h"
#include "pgstat.h"

#include "vsam.h"
#include "vsdistance_half.h"
#include "vskmeans.h"
#include "vsoffload.h"

/* rows assigned to clusters per VsKmeansAssign call */
#define ASSIGN_BATCH	1024


/*
 * The state of one CREATE INDEX, from build_init to the end of vsbuild:
 * what each phase learns for the next.
 */
typedef struct VsBuildState
{
	Relation	heap;
	Relation	index;
	IndexInfo  *indexInfo;
	VsMetric	metric;
	VsMetric	row_metric;		/* how rows pick their cluster */
	int			elem;			/* how rows are stored: VS_ELEM_* */
	int			dims;			/* 0 until known (column without typmod) */

	/* pass 1: counting and sampling */
	double		reltuples;		/* heap tuples the scan saw */
	double		rows;			/* non-NULL rows */
	float	   *sample;
	int			sample_cap;		/* reservoir capacity (memory bound) */
	Size		sample_mem;		/* ... the memory it may use */
	int			sample_alloc;	/* rows allocated so far */
	int			nsample;		/* rows in the reservoir */
	pg_prng_state prng;

	/* training */
	int			lists_option;	/* the reloption (0: automatic) */
	int			lists;			/* clusters asked of k-means */
	int			ntrain;			/* sample rows k-means and the codes use */
	VsKmeansHooks kmeans_hooks; /* the server's, with the offload's assign */
	VsOffload  *offload;		/* the build's offload (the GPU), or NULL */
	VsClusterExtras ex;			/* codes and graph options of the clusters */
	VsQuantParams *params;		/* the codes' parameters, or NULL */

	/* pass 2: assignment */
	int			trained;		/* clusters k-means gave, before the splits
								 * of split_oversized */
	int			nclusters;
	float	   *centroids;
	float	   *centroid_norms;
	int64	   *counts;
	float	   *batch;
	ItemPointerData *batch_tids;
	int32	   *batch_assign;
	int			nbatch;
	int			batch_cap;		/* ASSIGN_BATCH, or a GPU transfer's worth */
	double		assigned;
	Tuplesortstate *sort;
	TupleDesc	sortdesc;
	TupleTableSlot *slot;

	/* writing */
	int			nworkers;		/* parallel workers for the graphs, or 0 */
	instr_time	graph_time;		/* where the graphs' time adds up */

	MemoryContext tmpCtx;
} VsBuildState;


static void kmeans_progress(void *arg, int iteration, int max_iterations);
static uint32 split_bound(uint64 nrows, int trained, int lists_option);

/*
 * get_dims - the column's declared dimensions, or 0 when it has none.
 */
static int
get_dims(Relation index)
{
	int			typmod = TupleDescAttr(RelationGetDescr(index), 0)->atttypmod;
	int			max = VsMaxDims(VsIndexElem(index));

	if (typmod == -1)
		return 0;
	if (typmod > max)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("column cannot have more than %d dimensions for vecstore index", max)));
	return typmod;
}

/*
 * set_sample_cap - the reservoir's capacity: what its memory holds of rows
 * of bs->dims dimensions (1 while unknown), at most what k-means and the
 * codes can use.
 */
static void
set_sample_cap(VsBuildState *bs)
{
	bs->sample_cap = (int) Min((Size) INT_MAX / 2,
							   bs->sample_mem / (sizeof(float) * Max(bs->dims, 1)));
	if (bs->lists_option > 0)
		bs->sample_cap = Min(bs->sample_cap,
							 Max(VS_MIN_SAMPLE, VS_SAMPLES_PER_LIST * bs->lists_option));
	else
		bs->sample_cap = Min(bs->sample_cap, VS_SAMPLES_PER_LIST * VS_MAX_LISTS);
	bs->sample_cap = Max(bs->sample_cap, 1);
}

/*
 * check_row_dims - learn the dimensions from the first row when the
 * column has no typmod (and size the sample for them: it is allocated
 * after); reject rows that disagree.
 */
static void
check_row_dims(VsBuildState *bs, const Vector *v)
{
	if (bs->dims == 0)
	{
		int			max = VsMaxDims(bs->elem);

		if (v->dim > max)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("vector has %d dimensions, vecstore indexes at most %d",
							v->dim, max)));
		bs->dims = v->dim;
		Assert(bs->sample == NULL);
		set_sample_cap(bs);
	}
	else if (v->dim != bs->dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", bs->dims, v->dim),
				 errhint("A vecstore index needs every row to have the same dimensions; declare the column as vector(n).")));
}

/*
 * sample_callback - pass 1: count rows, reservoir-sample their vectors.
 */
static void
sample_callback(Relation index, ItemPointer tid, Datum *values,
				bool *isnull, bool tupleIsAlive, void *state)
{
	VsBuildState *bs = (VsBuildState *) state;
	MemoryContext oldcxt;
	Vector	   *v;
	int64		slot;

	if (isnull[0])
		return;

	oldcxt = MemoryContextSwitchTo(bs->tmpCtx);
	v = VsDatumAsVector(values[0], bs->elem);
	check_row_dims(bs, v);

	/* Algorithm R: the first cap rows fill it, then row i replaces with cap/i */
	if (bs->rows < bs->sample_cap)
		slot = (int64) bs->rows;
	else
	{
		slot = (int64) pg_prng_uint64_range(&bs->prng, 0, (uint64) bs->rows);
		if (slot >= bs->sample_cap)
			slot = -1;
	}
	if (slot >= 0)
	{
		if (slot >= bs->sample_alloc)
		{
			/* grow geometrically: small tables never pay for the cap */
			int			newalloc = Min(bs->sample_cap, Max(1024, bs->sample_alloc * 2));

			MemoryContextSwitchTo(oldcxt);
			if (bs->sample == NULL)
				bs->sample = palloc_extended(sizeof(float) * bs->dims * (Size) newalloc, MCXT_ALLOC_HUGE);
			else
				bs->sample = repalloc_huge(bs->sample, sizeof(float) * bs->dims * (Size) newalloc);
			bs->sample_alloc = newalloc;
			MemoryContextSwitchTo(bs->tmpCtx);
		}
		memcpy(bs->sample + slot * bs->dims, v->x, sizeof(float) * bs->dims);
		if (slot == bs->nsample)
			bs->nsample++;
	}
	bs->rows += 1;

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(bs->tmpCtx);
}

/*
 * flush_batch - assign the batched rows to clusters and hand them to the
 * sort.
 */
static void
flush_batch(VsBuildState *bs)
{
	Vector	   *v;

	if (bs->nbatch == 0)
		return;

	if (bs->nclusters == 1)
		memset(bs->batch_assign, 0, sizeof(int32) * bs->nbatch);
	else
		VsKmeansAssign(bs->centroids, bs->centroid_norms, bs->nclusters, bs->dims,
					   bs->row_metric, bs->batch, bs->nbatch, bs->batch_assign, NULL,
					   &bs->kmeans_hooks);

	v = VsInitVector(bs->dims);
	for (int i = 0; i < bs->nbatch; i++)
	{
		int32		c = bs->batch_assign[i];

		if (c < 0 || c >= bs->nclusters)
			elog(ERROR, "k-means assigned a row to cluster %d of %d", c, bs->nclusters);
		memcpy(v->x, bs->batch + (Size) i * bs->dims, sizeof(float) * bs->dims);

		ExecClearTuple(bs->slot);
		bs->slot->tts_values[0] = Int32GetDatum(c);
		bs->slot->tts_isnull[0] = false;
		bs->slot->tts_values[1] = PointerGetDatum(&bs->batch_tids[i]);
		bs->slot->tts_isnull[1] = false;
		bs->slot->tts_values[2] = PointerGetDatum(v);
		bs->slot->tts_isnull[2] = false;
		ExecStoreVirtualTuple(bs->slot);
		tuplesort_puttupleslot(bs->sort, bs->slot);
		bs->counts[c]++;
	}
	pfree(v);
	bs->assigned += bs->nbatch;
	bs->nbatch = 0;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, (int64) bs->assigned);
}

/*
 * assign_callback - pass 2: batch rows for assignment.
 *
 * The vector is copied (unnormalised: the index stores what the table
 * holds) into the batch; cosine indexes route by the normalised copy.
 */
static void
assign_callback(Relation index, ItemPointer tid, Datum *values,
				bool *isnull, bool tupleIsAlive, void *state)
{
	VsBuildState *bs = (VsBuildState *) state;
	MemoryContext oldcxt;
	Vector	   *v;

	if (isnull[0])
		return;

	oldcxt = MemoryContextSwitchTo(bs->tmpCtx);
	v = VsDatumAsVector(values[0], bs->elem);
	check_row_dims(bs, v);
	memcpy(bs->batch + (Size) bs->nbatch * bs->dims, v->x, sizeof(float) * bs->dims);
	bs->batch_tids[bs->nbatch] = *tid;
	bs->nbatch++;
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(bs->tmpCtx);

	if (bs->nbatch == bs->batch_cap)
		flush_batch(bs);
}

/* the graph build's distances over a cluster's codes */
typedef struct VsCodeSource
{
	const VsQuantParams *params;
	const float *vecs;			/* the cluster's vectors */
	const uint8 *codes;			/* and their code records */
	int			dims;
	VsQuantQuery *query;		/* the node being inserted, prepared */
	void	   *querybuf;
} VsCodeSource;

static void
code_set_query(void *ctx, uint32_t node)
{
	VsCodeSource *cs = (VsCodeSource *) ctx;

	cs->query = VsQuantPrepareQuery(cs->params, cs->vecs + (Size) node * cs->dims,
									NULL, cs->querybuf);
}

static void
code_batch(void *ctx, const uint32_t *ids, uint32_t n, float *out)
{
	VsCodeSource *cs = (VsCodeSource *) ctx;

	VsQuantDistancesIds(cs->query, cs->codes, ids, n, out);
}

/*
 * graph_options - the build options of cluster "c"'s graph.  The seed
 * depends on the cluster, so the same input always gives the same bytes.
 */
static void
graph_options(const VsClusterExtras *ex, int c, VsHnswBuildOptions *opt)
{
	VsHnswBuildOptionsInit(opt);
	opt->m = ex->m;
	opt->ef_construction = ex->ef_construction;
	opt->seed = VS_KMEANS_SEED ^ ((uint64) c * UINT64CONST(0x9E3779B97F4A7C15));
	/*
	 * Searched only through the codes, a cosine graph needs no inverse
	 * norms: left out by indexes whose codes are packed (every build
	 * now); older ones go on writing graphs as they were built.
	 */
	opt->without_norms = ex->params != NULL && (ex->params->flags & VS_QUANT_PACKED);
}

/*
 * VsClusterLayout - the offsets of cluster "c"'s arrays (of "count"
 * rows) when its bytes start at "off" of a generation's body: fills
 * "info"'s offsets, sizes and count (the rest is the caller's); returns
 * the offset after it.
 */
uint64
VsClusterLayout(VsClusterInfo *info, uint64 off, int c, int64 count, int dims,
				const VsClusterExtras *ex)
{
	uint64		start = off;

	info->count = (uint32) count;
	info->crc = 0;				/* filled in as the cluster is written */
	info->vec_offset = off;
	off = TYPEALIGN(VS_SEGMENT_ALIGN, off + (uint64) count * VsRowBytes(ex->elem_size, dims));
	info->tid_offset = off;
	off = TYPEALIGN(VS_SEGMENT_ALIGN, off + (uint64) count * sizeof(ItemPointerData));
	info->code_offset = 0;
	if (ex->params && count > 0)
	{
		info->code_offset = off;
		off = TYPEALIGN(VS_SEGMENT_ALIGN, off + VsQuantBlockSize(ex->params, count));
	}
	info->graph_offset = 0;
	info->graph_size = 0;
	if (count >= ex->graph_threshold)
	{
		VsHnswBuildOptions opt;

		graph_options(ex, c, &opt);
		info->graph_offset = off;
		info->graph_size = VsHnswSerializedSize((int) count, ex->metric, &opt);
		off = TYPEALIGN(VS_SEGMENT_ALIGN, off + info->graph_size);
	}
	info->nbytes = off - start;
	return off;
}

/*
 * sealed_layout - the first generation's layout, from the row counts:
 * fills "info" (nclusters entries); returns the sealed region's size.
 */
static uint64
sealed_layout(int nclusters, int dims, const int64 *counts, const VsClusterExtras *ex,
			  VsClusterInfo *info)
{
	uint64		off;
	uint64		row = 0;

	off = VsSealedHeadSize(nclusters, ex->params ? ex->params->size : 0, 1);
	for (int c = 0; c < nclusters; c++)
	{
		memset(&info[c], 0, sizeof(VsClusterInfo));
		off = VsClusterLayout(&info[c], off, c, counts[c], dims, ex);
		info[c].first_row = row;
		info[c].piece = 1;
		info[c].delta_blk = InvalidBlockNumber;
		row += counts[c];
	}
	return off;
}

/*
 * VsBuildRouting - the HNSW graph over the centroids, palloc'd, its size
 * in *size; NULL when there are too few clusters for it to pay.  The
 * metric is the one routing ranks clusters by: L2, or the inner product
 * (the centroids of a cosine index are unit vectors).
 */
void *
VsBuildRouting(Relation index, VsMetric metric, int dims, int nclusters, const float *centroids,
			   size_t *size)
{
	VsHnswBuildOptions opt;
	VsMetric	gmetric = metric == VS_METRIC_L2 ? VS_METRIC_L2 : VS_METRIC_IP;
	void	   *graph;

	*size = 0;
	if (nclusters < VS_ROUTE_GRAPH_THRESHOLD)
		return NULL;
	VsHnswBuildOptionsInit(&opt);
	opt.seed = VS_KMEANS_SEED;
	*size = VsHnswSerializedSize(nclusters, gmetric, &opt);
	graph = palloc_extended(*size, MCXT_ALLOC_HUGE);
	if (VsHnswBuild(centroids, nclusters, dims, gmetric, &opt, &VsKmeansServerHooks,
					graph, *size) != *size)
		elog(ERROR, "could not build the routing graph of index \"%s\"",
			 RelationGetRelationName(index));
	return graph;
}

/* one cluster's rows, read from the sort ahead of their writing */
typedef struct ClusterRows
{
	MemoryContext cxt;			/* holds all of it; reset once written */
	ItemPointerData *tids;
	float	   *vecs;
	VsOffloadGraph *graph;		/* its graph, with the offload service, or
								 * NULL */
} ClusterRows;

/*
 * offload_graphs - may the build's offload service (the GPU) build graphs
 * now?
 */
static bool
offload_graphs(const VsClusterExtras *ex)
{
	return ex->offload != NULL && !ex->offload->disabled && ex->offload->ops->usable(ex->offload);
}

/*
 * read_cluster - read cluster c's "count" rows from the sort into "cr"
 * (in cr->cxt), and when the cluster gets a graph and the offload service
 * (the GPU) may build it, send it there (its graph_begin).
 */
static void
read_cluster(Relation index, Tuplesortstate *sort, TupleTableSlot *slot, int c,
			 int64 count, int dims, const VsClusterExtras *ex, const VsClusterInfo *info,
			 ClusterRows *cr)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cr->cxt);

	cr->tids = NULL;
	cr->vecs = NULL;
	cr->graph = NULL;
	if (count > 0)
	{
		cr->tids = palloc_extended(sizeof(ItemPointerData) * count, MCXT_ALLOC_HUGE);
		cr->vecs = palloc_extended(sizeof(float) * dims * (Size) count, MCXT_ALLOC_HUGE);
	}
	for (int64 i = 0; i < count; i++)
	{
		bool		isnull;
		Datum		value;
		Vector	   *v;

		CHECK_FOR_INTERRUPTS();
		if (!tuplesort_gettupleslot(sort, true, false, slot, NULL))
			elog(ERROR, "index \"%s\": sort ended before cluster %d was complete",
				 RelationGetRelationName(index), c);
		if (DatumGetInt32(slot_getattr(slot, 1, &isnull)) != c)
			elog(ERROR, "index \"%s\": sorted row of cluster %d found in cluster %d",
				 RelationGetRelationName(index),
				 DatumGetInt32(slot_getattr(slot, 1, &isnull)), c);
		cr->tids[i] = *((ItemPointer) DatumGetPointer(slot_getattr(slot, 2, &isnull)));
		value = slot_getattr(slot, 3, &isnull);
		v = DatumGetVector(value);
		memcpy(cr->vecs + (Size) i * dims, v->x, sizeof(float) * dims);
		/* a detoasted copy (a short header, or out of line) goes at once */
		if ((Pointer) v != DatumGetPointer(value))
			pfree(v);
	}

	/*
	 * With a GPU, the service builds the graph: level 0 from the cluster's
	 * exact neighbour lists (one GEMM there), assembled on its threads;
	 * the same size and layout, measured the same recall (vshnsw.c,
	 * build_from_lists).
	 */
	if (info->graph_offset != 0 && !ex->defer_graphs && offload_graphs(ex))
	{
		VsHnswBuildOptions opt;

		graph_options(ex, c, &opt);
		cr->graph = ex->offload->ops->graph_begin(ex->offload, cr->vecs, (int) count, dims,
												  ex->metric, &opt, ex->gpu_threads,
												  info->graph_size);
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * write_meta_regions - the regions before the sealed one, each started at
 * the writer's next block: the centroids, the routing graph over them,
 * the directory (no delta rows yet) and the deletion bitmap (nothing
 * deleted) of "nrows" sealed rows.  Their places go into "meta".
 */
static void
write_meta_regions(VsBlobWriter *w, Relation index, ForkNumber forknum, VsMetric metric,
				   int dims, int nclusters, const float *centroids, uint64 nrows,
				   VsMetaPage meta)
{
	VsDirEntry	entry;
	void	   *routing;
	size_t		routing_size;

	/* centroids */
	VsBlobBegin(w, index, forknum);
	VsBlobWrite(w, centroids, sizeof(float) * dims * (Size) nclusters);
	meta->centroids = VsBlobEnd(w);

	/* the routing graph over them */
	VsBlobBegin(w, index, forknum);
	routing = VsBuildRouting(index, metric, dims, nclusters, centroids, &routing_size);
	if (routing != NULL)
	{
		VsBlobWrite(w, routing, routing_size);
		pfree(routing);
	}
	meta->routing = VsBlobEnd(w);

	/*
	 * directory: no delta rows yet; room for the clusters that splitting
	 * adds later (VsDirCapacity), so that it never moves under inserts
	 */
	VsBlobBegin(w, index, forknum);
	entry.delta_head = InvalidBlockNumber;
	entry.delta_tail = InvalidBlockNumber;
	entry.delta_count = 0;
	entry.delta_skipped = 0;
	for (int c = 0; c < VsDirCapacity(nclusters); c++)
		VsBlobWrite(w, &entry, sizeof(entry));
	meta->directory = VsBlobEnd(w);

	/* deletion bitmap: nothing deleted */
	VsBlobBegin(w, index, forknum);
	VsBlobWrite(w, NULL, (nrows + 7) / 8);
	meta->bitmap = VsBlobEnd(w);
}

/*
 * VsBuildGraph - cluster c's graph (info->graph_size bytes) into "graph",
 * on this backend: every one of its "count" rows inserted, the insertions
 * searching over its "codes" (as queries will) when it has them; or, after
 * a compaction that added rows only, the rows after ex->prev_graph's only
 * (VsHnswExtend).  The same input gives the same bytes on any backend:
 * the parallel build (vsbuild_parallel.c) relies on it.
 */
void
VsBuildGraph(Relation index, int c, const float *vecs, const uint8 *codes, int64 count,
			 int dims, const VsClusterExtras *ex, const VsClusterInfo *info, void *graph)
{
	VsHnswBuildOptions opt;
	VsHnswBuildSource source;
	VsCodeSource cs;

	graph_options(ex, c, &opt);
	if (codes != NULL)
	{
		cs.params = ex->params;
		cs.vecs = vecs;
		cs.codes = codes;
		cs.dims = dims;
		cs.query = NULL;
		cs.querybuf = palloc(VsQuantQuerySize(ex->params));
		source.ctx = &cs;
		source.set_query = code_set_query;
		source.batch = code_batch;
		opt.source = &source;
	}
	if (ex->prev_graph != NULL &&
		VsHnswExtend(ex->prev_graph, ex->prev_graph_size, vecs, (int) count, dims,
					 ex->metric, &opt, &VsKmeansServerHooks, graph,
					 info->graph_size) == info->graph_size)
		;
	else if (VsHnswBuild(vecs, (int) count, dims, ex->metric, &opt,
						 &VsKmeansServerHooks, graph, info->graph_size) != info->graph_size)
		elog(ERROR, "could not build the graph of cluster %d of index \"%s\"",
			 c, RelationGetRelationName(index));
	if (codes != NULL)
		pfree(cs.querybuf);
}

/*
 * VsWriteCluster - cluster c's bytes, at the offsets "info" gives: its
 * "count" vectors and TIDs, its codes, and its graph ("graph": the
 * offload service's, collected here; or built on this backend when it is
 * NULL or failed; zeros with ex->defer_graphs).  Temporary memory goes
 * into "cxt".  Returns the CRC-32C of the bytes (of no use when the graph
 * was deferred: whoever fills it computes the cluster's CRC).
 */
uint32
VsWriteCluster(VsBlobWriter *w, Relation index, int c, const float *vecs,
			   const ItemPointerData *tids, int64 count, int dims, const VsClusterExtras *ex,
			   const VsClusterInfo *info, struct VsOffloadGraph *offgraph, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	uint8	   *codes = NULL;
	Size		codesize;
	uint32		crc;
	uint64		start PG_USED_FOR_ASSERTS_ONLY = w->total;

	VsBlobCrcStart(w);
	if (count > 0 && ex->elem_size != VS_ELEM_FLOAT4)
	{
		/* halfvec or bit: the values, exactly, as they were */
		Size		rowbytes = VsRowBytes(ex->elem_size, dims);
		char	   *rows = palloc_extended(rowbytes * (Size) count, MCXT_ALLOC_HUGE);

		for (int64 i = 0; i < count; i++)
		{
			VsEncodeRow(ex->elem_size, vecs + (Size) i * dims, dims, rows + rowbytes * i);
			if ((i & 65535) == 65535)
				CHECK_FOR_INTERRUPTS();
		}
		VsBlobWrite(w, rows, rowbytes * (Size) count);
		pfree(rows);
	}
	else if (count > 0)
		VsBlobWrite(w, vecs, sizeof(float) * dims * (Size) count);
	VsBlobPad(w, VS_SEGMENT_ALIGN);
	Assert(w->total - start == info->tid_offset - info->vec_offset);
	if (count > 0)
		VsBlobWrite(w, tids, sizeof(ItemPointerData) * count);
	VsBlobPad(w, VS_SEGMENT_ALIGN);
	if (info->code_offset != 0)
	{
		codesize = VsQuantBlockSize(ex->params, count);
		codes = palloc_extended(codesize, MCXT_ALLOC_HUGE);
		Assert(w->total - start == info->code_offset - info->vec_offset);
		VsQuantEncodeBlock(ex->params, vecs, count, NULL, codes);
		VsBlobWrite(w, codes, codesize);
		VsBlobPad(w, VS_SEGMENT_ALIGN);
	}
	if (info->graph_offset != 0 && ex->defer_graphs)
	{
		/* zeros, which the parallel build's participants fill */
		VsBlobWrite(w, NULL, info->graph_size);
		VsBlobPad(w, VS_SEGMENT_ALIGN);
	}
	else if (info->graph_offset != 0)
	{
		void	   *graph = palloc_extended(info->graph_size, MCXT_ALLOC_HUGE);
		instr_time	graph_start;
		instr_time	graph_end;

		Assert(w->total - start == info->graph_offset - info->vec_offset);
		INSTR_TIME_SET_CURRENT(graph_start);

		/*
		 * The offload service's graph (see read_cluster), or, without one or
		 * if that failed, built here.
		 */
		if (offgraph == NULL || ex->offload->ops->graph_end(offgraph, graph) != 0)
			VsBuildGraph(index, c, vecs, codes, count, dims, ex, info, graph);
		INSTR_TIME_SET_CURRENT(graph_end);
		if (ex->graph_time != NULL)
			INSTR_TIME_ACCUM_DIFF(*ex->graph_time, graph_end, graph_start);
		VsBlobWrite(w, graph, info->graph_size);
		VsBlobPad(w, VS_SEGMENT_ALIGN);
	}
	Assert(w->total - start == info->nbytes);
	crc = VsBlobCrcEnd(w);
	MemoryContextSwitchTo(oldcxt);
	return crc;
}

/*
 * VsMakeHead - the head of a generation's sealed data: the header "sh"
 * (its npieces says how many entries "pieces" has), the cluster table
 * "info" (sh->nclusters entries), the codes' parameters "params" (or
 * NULL) and the piece table, each padded; palloc'd, its size in *size.
 * Its CRC-32C goes into the metapage (the manifest), so that a segment
 * file's head is checked against it and each cluster against its own CRC.
 */
char *
VsMakeHead(const VsSealedHeader *sh, const VsClusterInfo *info, const VsQuantParams *params,
		   const VsPieceInfo *pieces, uint64 *size)
{
	uint32		nclusters = sh->nclusters;
	char	   *head;

	*size = VsSealedHeadSize(nclusters, sh->params_size, sh->npieces);
	head = palloc_extended(*size, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	memcpy(head, sh, sizeof(VsSealedHeader));
	memcpy(head + sizeof(VsSealedHeader), info, sizeof(VsClusterInfo) * (Size) nclusters);
	if (params != NULL)
		memcpy(head + VsSealedParamsOffset(nclusters), params, sh->params_size);
	memcpy(head + VsSealedPiecesOffset(nclusters, sh->params_size), pieces,
		   sizeof(VsPieceInfo) * sh->npieces);
	return head;
}

/*
 * VsHeadCrc - the CRC-32C of a head of "size" bytes.
 */
uint32
VsHeadCrc(const char *head, uint64 size)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, head, size);
	FIN_CRC32C(crc);
	return crc;
}

/*
 * write_metapage - the metapage contents "meta", into the block the
 * build reserved (reserve_metapage).  The caller WAL-logs the fork.
 */
static void
write_metapage(Relation index, ForkNumber forknum, VsMetaPage meta)
{
	Buffer		buf;
	Page		page;

	buf = ReadBufferExtended(index, forknum, VS_METAPAGE_BLKNO, RBM_NORMAL, NULL);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = BufferGetPage(buf);
	VsInitPage(page, VS_PAGE_META);
	memcpy(PageGetContents(page), meta, sizeof(VsMetaPageData));
	VsPageSeal(page);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/*
 * write_index - lay out and write every region of a fork.
 *
 * "sort" is NULL for an index with no rows (an empty table, or the init
 * fork of an unlogged index).  "ex" says what goes into each cluster
 * beside its vectors and TIDs.  Writes the metapage last, into block 0,
 * which the caller reserved; returns the metapage contents.
 *
 * The phases: the metapage's fields; the regions before the sealed one
 * (write_meta_regions); the sealed region's head (header, cluster table
 * with the clusters' CRCs still zero, the codes' parameters, the piece
 * table); every cluster (VsWriteCluster), each read from the sort one cluster ahead so
 * that the offload service builds its graph while this backend writes the
 * one before; the clusters' CRCs patched into the table and the head's
 * CRC into the manifest; the metapage.
 */
static void
write_index(Relation index, ForkNumber forknum, VsMetric metric, VsMetric row_metric,
			int dims, int nclusters, int trained, const float *centroids, const int64 *counts,
			Tuplesortstate *sort, TupleTableSlot *slot, int lists_option,
			const VsClusterExtras *ex_in, int nworkers, VsMetaPage meta)
{
	VsClusterExtras exd = *ex_in;
	const VsClusterExtras *ex = &exd;
	VsBuildParallel *par = NULL;
	VsBlobWriter w;
	VsClusterInfo *info;
	VsSealedHeader sh;
	uint64		nrows = 0;
	uint64		sealed_size;
	uint32		params_size = ex->params ? ex->params->size : 0;
	ClusterRows rows[2];
	bool		ahead;
	VsPieceInfo piece;
	char	   *head;
	uint64		headsize;

	for (int c = 0; c < nclusters; c++)
		nrows += counts[c];

	memset(meta, 0, sizeof(VsMetaPageData));
	meta->magic = VS_MAGIC;
	meta->version = VS_VERSION;
	meta->dims = dims;
	meta->metric = metric;
	meta->nclusters = nclusters;
	meta->lists_option = lists_option;
	meta->sealed_rows = nrows;
	meta->generation = 1;
	meta->row_metric = row_metric;
	meta->quantizer = ex->params == NULL ? VS_QUANTIZER_NONE :
		ex->params->kind == VS_QUANT_SQ4 ? VS_QUANTIZER_SQ4 : VS_QUANTIZER_SQ8;
	meta->params_size = params_size;
	meta->m = (uint16) ex->m;
	meta->ef_construction = (uint16) ex->ef_construction;
	meta->graph_threshold = (uint32) ex->graph_threshold;
	meta->elem_size = (uint32) ex->elem_size;

	write_meta_regions(&w, index, forknum, metric, dims, nclusters, centroids, nrows, meta);

	/*
	 * Sealed region: the head (header, cluster table, quantizer parameters,
	 * the piece table of its one piece), then each cluster's arrays.  The
	 * head is written first with the clusters' CRCs still zero, and patched
	 * once every cluster has been written.
	 */
	info = palloc_extended(sizeof(VsClusterInfo) * Max(nclusters, 1), MCXT_ALLOC_HUGE);
	sealed_size = sealed_layout(nclusters, dims, counts, ex, info);
	VsBlobBegin(&w, index, forknum);
	memset(&sh, 0, sizeof(sh));
	sh.nclusters = nclusters;
	sh.dims = dims;
	sh.nrows = nrows;
	sh.quantizer = meta->quantizer;
	sh.params_size = params_size;
	sh.record_size = ex->params ? ex->params->record_size : 0;
	sh.npieces = 1;
	memset(&piece, 0, sizeof(piece));
	piece.generation = meta->generation;
	piece.region.start = w.first;
	piece.region.nblocks = (BlockNumber) ((sealed_size + VS_BLOB_PAYLOAD - 1) / VS_BLOB_PAYLOAD);
	piece.region.nbytes = sealed_size;
	head = VsMakeHead(&sh, info, ex->params, &piece, &headsize);
	VsBlobWrite(&w, head, headsize);
	pfree(head);

	/*
	 * With parallel workers (vsbuild_parallel.c), the clusters' graphs are
	 * left zero here and built by every participant from the written pages.
	 */
	if (nworkers > 0)
	{
		par = VsBuildParallelBegin(index, nworkers, info, nclusters, dims, ex, &piece, 1, NULL,
								   true);
		exd.defer_graphs = par != NULL;
	}

	/*
	 * The writing phase begins, its blocks done/total the sealed region's:
	 * set in one update, so that no one sees the new phase with the last
	 * phase's counts (the table's blocks).
	 */
	{
		const int	params[] = {PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_CREATEIDX_TUPLES_DONE,
		PROGRESS_SCAN_BLOCKS_TOTAL, PROGRESS_SCAN_BLOCKS_DONE};
		const int64 values[] = {VS_PHASE_WRITE, 0, piece.region.nblocks, 0};

		pgstat_progress_update_multi_param(4, params, values);
	}

	/*
	 * The clusters, in order.  With a usable offload service, each is read
	 * from the sort one cluster ahead of its writing, and its graph sent to
	 * the service then, so that the service builds it while this backend
	 * writes the cluster before it (and its codes); without one, each is
	 * read when it is written, so that one cluster's rows are in memory,
	 * not two (20,000 x 768, two lists: a build's peak 67.6 -> 57.1 MB).
	 */
	ahead = offload_graphs(ex);
	rows[0].cxt = AllocSetContextCreate(CurrentMemoryContext, "vecstore cluster",
										ALLOCSET_DEFAULT_SIZES);
	rows[1].cxt = AllocSetContextCreate(CurrentMemoryContext, "vecstore cluster",
										ALLOCSET_DEFAULT_SIZES);
	if (nclusters > 0 && ahead)
		read_cluster(index, sort, slot, 0, counts[0], dims, ex, &info[0], &rows[0]);
	for (int c = 0; c < nclusters; c++)
	{
		ClusterRows *cur = &rows[c % 2];

		if (!ahead)
			read_cluster(index, sort, slot, c, counts[c], dims, ex, &info[c], cur);
		else if (c + 1 < nclusters)
			read_cluster(index, sort, slot, c + 1, counts[c + 1], dims, ex, &info[c + 1],
						 &rows[(c + 1) % 2]);
		Assert(w.total == info[c].vec_offset);
		info[c].crc = VsWriteCluster(&w, index, c, cur->vecs, cur->tids, counts[c], dims, ex,
									 &info[c], cur->graph, cur->cxt);
		MemoryContextReset(cur->cxt);
		if (par != NULL)
			VsBuildParallelReady(par, 0, (uint64) w.nblocks * VS_BLOB_PAYLOAD);
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE,
									 (int64) (info[c].first_row + counts[c]));
		pgstat_progress_update_param(PROGRESS_SCAN_BLOCKS_DONE, (int64) w.nblocks);
	}
	MemoryContextDelete(rows[1].cxt);
	MemoryContextDelete(rows[0].cxt);
	meta->sealed = VsBlobEnd(&w);
	pgstat_progress_update_param(PROGRESS_SCAN_BLOCKS_DONE, (int64) meta->sealed.nblocks);
	if (meta->sealed.nbytes != sealed_size || meta->sealed.nblocks != piece.region.nblocks)
		elog(ERROR, "index \"%s\": sealed region is " UINT64_FORMAT " bytes, expected " UINT64_FORMAT,
			 RelationGetRelationName(index), meta->sealed.nbytes, sealed_size);

	/* the graphs the workers build, and their clusters' CRCs */
	if (par != NULL)
		VsBuildParallelFinish(par, info);

	/* the clusters' CRCs into the table, and the CRC of the whole head */
	head = VsMakeHead(&sh, info, ex->params, &piece, &headsize);
	VsBlobPatch(index, forknum, &meta->sealed, 0, head, headsize);
	meta->sealed_crc = VsHeadCrc(head, headsize);
	meta->npieces = 1;
	meta->row_space = nrows;
	meta->split_rows = split_bound(nrows, trained, lists_option);
	pfree(head);
	pfree(info);

	write_metapage(index, forknum, meta);
}

/*
 * split_bound - the rows past which a cluster is split: twice the mean of
 * the "trained" clusters k-means gave for "nrows" rows, and with automatic
 * lists at least twice what the build aims at, so that an index built
 * small (or empty: TRUNCATE) grows clusters of the size a fresh build
 * would make.  Compactions split at it (meta->split_rows), and so does
 * the build (split_oversized).
 */
static uint32
split_bound(uint64 nrows, int trained, int lists_option)
{
	uint64		per = Max(trained, 1);

	return (uint32) Min((uint64) PG_INT32_MAX,
						Max(2 * ((nrows + per - 1) / per),
							lists_option == 0 ? 2 * VS_AUTO_CLUSTER_ROWS : VS_MIN_SPLIT_ROWS));
}

/*
 * split_oversized - split the clusters the sample says will pass the
 * split bound, before any row is assigned: k-means puts up to 4-5 times
 * the mean into its largest clusters on data of uneven density (the 1M x
 * 128 blobs: 86 to 25,015 rows for a mean of 5,000), and the first
 * compaction would split them anyway, rewriting them and moving their
 * neighbours' rows (a minute and a half at 1M rows).  Each such cluster's
 * sample rows are split as a compaction splits a cluster's rows (k-means
 * into parts of about half the bound); its first part keeps its number,
 * the others are appended.  Rows are then assigned to the nearest of all
 * centroids, as ever.  A cluster with too few sample rows for its parts
 * is left whole.  Only with lists and max_cluster_rows automatic: an
 * index that asked for a number of lists gets that many (a query with
 * vecstore.probes = lists reads them all, as with pgvector's ivfflat),
 * and one with a bound of its own leaves it to the compactions.
 */
static void
split_oversized(VsBuildState *bs)
{
	uint32		bound = split_bound((uint64) bs->rows, bs->trained, bs->lists_option);
	double		scale = bs->rows / (double) bs->ntrain;
	int			most = Min(VS_MAX_LISTS, VsDirCapacity(bs->trained));
	int			dims = bs->dims;
	int			nsplit = 0;
	int64		largest = 0;
	float	   *norms;
	int32	   *assign;
	int64	   *count;
	float	   *rows;

	/* lists or a bound the user chose: the clusters k-means gave */
	if (bs->lists_option > 0 || VsGetMaxClusterRows(bs->index) > 0 ||
		bs->nclusters < 1 || bs->ntrain < 1 || bs->rows <= bound)
		return;
	norms = palloc(sizeof(float) * bs->nclusters);
	assign = palloc_extended(sizeof(int32) * bs->ntrain, MCXT_ALLOC_HUGE);
	count = palloc0(sizeof(int64) * bs->nclusters);
	VsKmeansCentroidNorms(bs->centroids, bs->nclusters, dims, norms);
	VsKmeansAssign(bs->centroids, norms, bs->nclusters, dims, bs->row_metric, bs->sample,
				   bs->ntrain, assign, NULL, &VsKmeansServerHooks);
	for (int i = 0; i < bs->ntrain; i++)
		count[assign[i]]++;
	/* room for the sample rows of the largest cluster, not the sample's */
	for (int c = 0; c < bs->nclusters; c++)
		largest = Max(largest, count[c]);
	rows = palloc_extended(sizeof(float) * dims * (Size) largest, MCXT_ALLOC_HUGE);

	for (int c = 0, trained = bs->nclusters; c < trained; c++)
	{
		double		est = count[c] * scale;
		int			k;
		int			n = 0;
		int			got;
		float	   *parts;
		VsKmeansOptions opt;

		if (est <= bound)
			continue;
		k = (int) Min((uint64) INT_MAX, VsSplitParts(est, bound));
		k = Min(k, most - bs->nclusters + 1);
		if (k < 2 || count[c] < 4 * k)
			continue;
		for (int i = 0; i < bs->ntrain; i++)
		{
			if (assign[i] == c)
				memcpy(rows + (Size) n++ * dims, bs->sample + (Size) i * dims, sizeof(float) * dims);
		}
		parts = palloc(sizeof(float) * dims * k);
		VsKmeansOptionsInit(&opt);
		opt.seed = VS_KMEANS_SEED;
		got = VsKmeansTrain(rows, n, dims, k, bs->metric, &opt, &VsKmeansServerHooks, parts, NULL);
		if (got >= 2)
		{
			bs->centroids = repalloc_huge(bs->centroids,
										  sizeof(float) * dims * (Size) (bs->nclusters + got - 1));
			memcpy(bs->centroids + (Size) c * dims, parts, sizeof(float) * dims);
			memcpy(bs->centroids + (Size) bs->nclusters * dims, parts + dims,
				   sizeof(float) * dims * (Size) (got - 1));
			bs->nclusters += got - 1;
			nsplit++;
		}
		pfree(parts);
	}
	elog(DEBUG1, "vecstore k-means: %d of %d clusters past %u rows split, %d clusters",
		 nsplit, bs->trained, bound, bs->nclusters);
	pfree(rows);
	pfree(count);
	pfree(assign);
	pfree(norms);
}

/*
 * reserve_metapage - allocate block 0 of an empty fork.
 */
static void
reserve_metapage(Relation index, ForkNumber forknum)
{
	Buffer		buf;

	if (RelationGetNumberOfBlocksInFork(index, forknum) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	buf = VsNewBuffer(index, forknum);
	Assert(BufferGetBlockNumber(buf) == VS_METAPAGE_BLKNO);
	VsInitPage(BufferGetPage(buf), VS_PAGE_META);
	MarkBufferDirty(buf);
	UnlockReleaseBuffer(buf);
}

/*
 * auto_lists - the number of clusters for "rows" rows when the lists
 * option is 0: one per VS_AUTO_CLUSTER_ROWS rows (see vsam.h).
 */
static int
auto_lists(double rows)
{
	double		lists = rows / VS_AUTO_CLUSTER_ROWS;

	return (int) Max(1, Min(lists, VS_MAX_LISTS));
}

/*
 * build_threads - how many processes or threads may build this index's
 * graphs: as many workers as PostgreSQL would give a parallel B-tree build
 * of this table (plan_create_index_workers: max_parallel_maintenance_workers,
 * the table's parallel_workers, its size and maintenance_work_mem), plus
 * one for the leader.  The GPU service's threads, or the leader and its
 * parallel workers.
 */
static int
build_threads(Relation heap, Relation index)
{
	return 1 + plan_create_index_workers(RelationGetRelid(heap), RelationGetRelid(index));
}

/*
 * kmeans_progress - k-means rounds as tuples done/total of the k-means
 * phase.
 */
static void
kmeans_progress(void *arg, int iteration, int max_iterations)
{
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, iteration);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, max_iterations);
}

/*
 * build_init - the state of a CREATE INDEX: the index's options, the
 * offload service (an error here when vecstore.gpu = on and no GPU is
 * usable), and how large a sample maintenance_work_mem allows.
 */
static void
build_init(VsBuildState *bs, Relation heap, Relation index, IndexInfo *indexInfo)
{
	Size		mem = (Size) maintenance_work_mem * 1024;

	memset(bs, 0, sizeof(VsBuildState));
	bs->kmeans_hooks = VsKmeansServerHooks;
	bs->kmeans_hooks.progress = kmeans_progress;
	/* the GPU, when one may help (an error when vecstore.gpu = on and none can) */
	bs->offload = VsOffloadBegin("CREATE INDEX", true);
	if (bs->offload != NULL)
	{
		bs->kmeans_hooks.offload_assign = bs->offload->ops->assign;
		bs->kmeans_hooks.offload_arg = bs->offload;
	}
	bs->heap = heap;
	bs->index = index;
	bs->indexInfo = indexInfo;
	bs->lists_option = VsGetListsOption(index);
	bs->metric = VsGetMetric(index);
	bs->elem = VsIndexElem(index);
	bs->dims = get_dims(index);

	/*
	 * Graphs without codes search the full vectors, which must be float4:
	 * refused here, before the heap is read, as the options alone say so.
	 */
	if (bs->elem == VS_ELEM_HALF)
	{
		int			m,
					efc,
					quantizer;

		VsGetGraphOptions(index, &m, &efc, &quantizer);
		if (quantizer == VS_QUANTIZER_NONE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("vecstore indexes on halfvec need quantizer = sq8 or sq4"),
					 errdetail("Without codes the graphs search the full vectors, which a halfvec index stores in 16 bits.")));
	}
	bs->tmpCtx = AllocSetContextCreate(CurrentMemoryContext, "vecstore build temporary context",
									   ALLOCSET_DEFAULT_SIZES);
	pg_prng_seed(&bs->prng, VS_KMEANS_SEED);

	/* the sample may use half of maintenance_work_mem */
	bs->sample_mem = mem / 2;
	set_sample_cap(bs);
}

/*
 * build_sample - pass 1 over the heap: count the rows, sample their
 * vectors, learn the dimensions of a column without a typmod; then choose
 * the number of clusters and how much of the sample k-means uses (a NOTICE
 * when maintenance_work_mem cut the sample short).
 */
static void
build_sample(VsBuildState *bs)
{
	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, VS_PHASE_SAMPLE);
	bs->reltuples = table_index_build_scan(bs->heap, bs->index, bs->indexInfo, false, true,
										   sample_callback, bs, NULL);

	/*
	 * No typmod and no rows: a rebuild (TRUNCATE, VACUUM FULL, REINDEX of
	 * an empty table) keeps the dimensions the index had, from the files
	 * of the relfilenode it replaces.
	 */
	if (bs->dims == 0)
	{
		int			previous = VsSegmentPreviousDims(bs->index);

		if (previous > 0 && previous <= VsMaxDims(bs->elem))
		{
			bs->dims = previous;
			set_sample_cap(bs);
		}
	}
	if (bs->dims == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column has no dimensions"),
				 errdetail("The table has no rows to learn them from."),
				 errhint("Declare the column's dimensions (ALTER TABLE ... ALTER COLUMN ... TYPE vector(n)), or build the index after loading data.")));

	/* how many clusters, and how much of the sample k-means uses */
	bs->lists = bs->lists_option > 0 ? bs->lists_option : auto_lists(bs->rows);
	bs->ntrain = (int) Min((double) bs->nsample,
							(double) Max(VS_MIN_SAMPLE, (int64) VS_SAMPLES_PER_LIST * bs->lists));

	/*
	 * k-means and the codes read the first ntrain rows of the sample.  The
	 * reservoir is a uniform sample as a whole, but its first slots are
	 * not: a table of no more rows than the reservoir holds fills it in
	 * the table's order, so they would be its first rows (data loaded in
	 * time order, or by category, would train on its oldest part only),
	 * and beyond that each slot keeps its early row with probability
	 * cap / rows.  A partial Fisher-Yates shuffle makes them a uniform
	 * choice of the sample's rows.
	 */
	for (int i = 0; i < bs->ntrain && bs->ntrain < bs->nsample; i++)
	{
		int			j = (int) pg_prng_uint64_range(&bs->prng, (uint64) i, (uint64) bs->nsample - 1);

		if (j != i)
		{
			float	   *a = bs->sample + (Size) i * bs->dims;
			float	   *b = bs->sample + (Size) j * bs->dims;

			for (int d = 0; d < bs->dims; d++)
			{
				float		t = a[d];

				a[d] = b[d];
				b[d] = t;
			}
		}
	}
	if (bs->rows > bs->ntrain && bs->ntrain < (int64) VS_SAMPLES_PER_LIST * bs->lists &&
		bs->ntrain == bs->sample_cap)
		ereport(NOTICE,
				(errmsg("vecstore index trained on a sample of %d rows", bs->ntrain),
				 errdetail("%d clusters would use %d sample rows, but maintenance_work_mem limits the sample.",
						   bs->lists, VS_SAMPLES_PER_LIST * bs->lists),
				 errhint("Increase maintenance_work_mem to at least %d MB for better clusters.",
						 (int) (((Size) VS_SAMPLES_PER_LIST * bs->lists * bs->dims * sizeof(float) * 2) / (1024 * 1024)) + 1)));
}

/*
 * build_train - k-means on the sample gives the centroids (no rows, or
 * only zero vectors for cosine, give one cluster around the origin); the
 * same sample trains the codes.  Sets what the clusters will hold beside
 * their rows (bs->ex), and frees the sample.
 */
static void
build_train(VsBuildState *bs)
{
	VsKmeansOptions opt;
	int			quantizer;

	/* k-means reads no blocks: none done of none, not the scan's last */
	{
		const int	params[] = {PROGRESS_CREATEIDX_SUBPHASE, PROGRESS_SCAN_BLOCKS_TOTAL,
		PROGRESS_SCAN_BLOCKS_DONE};
		const int64 values[] = {VS_PHASE_KMEANS, 0, 0};

		pgstat_progress_update_multi_param(3, params, values);
	}
	VsKmeansOptionsInit(&opt);
	opt.seed = VS_KMEANS_SEED;
	bs->row_metric = VsKmeansRowMetric(bs->metric, &opt);
	bs->centroids = palloc_extended(sizeof(float) * bs->dims * (Size) Max(bs->lists, 1),
									MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	bs->nclusters = 0;
	if (bs->ntrain > 0)
	{
		VsKmeansStats stats;
		instr_time	start,
					elapsed;

		INSTR_TIME_SET_CURRENT(start);
		bs->nclusters = VsKmeansTrain(bs->sample, bs->ntrain, bs->dims, bs->lists, bs->metric,
									  &opt, &bs->kmeans_hooks, bs->centroids, &stats);
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		/* the GPU test and benchmark compare GPU and CPU builds by these */
		elog(DEBUG1, "vecstore k-means: %d samples, %d clusters, %d rounds, inertia %.9g, %lld jobs on the GPU, %.1f ms",
			 bs->ntrain, stats.centroids, stats.iterations, stats.inertia,
			 (long long) (bs->offload ? bs->offload->jobs : 0), INSTR_TIME_GET_MILLISEC(elapsed));
		if (bs->nclusters < 0 || bs->nclusters > bs->lists)
			elog(ERROR, "k-means produced %d clusters for %d lists", bs->nclusters, bs->lists);
		if (bs->nclusters > 0 && bs->nclusters < bs->lists)
			ereport(NOTICE,
					(errmsg("vecstore index has %d clusters instead of %d", bs->nclusters, bs->lists),
					 errdetail("The table has too few distinct rows for %d clusters.", bs->lists),
					 errhint("Build the index after loading data.")));
	}
	if (bs->nclusters == 0)
	{
		/* one cluster around the origin */
		memset(bs->centroids, 0, sizeof(float) * bs->dims);
		bs->nclusters = 1;
	}
	bs->trained = bs->nclusters;
	split_oversized(bs);

	/* the codes' ranges, from the same sample */
	bs->ex.metric = bs->metric;
	bs->ex.elem_size = bs->elem;
	bs->ex.graph_threshold = VS_HNSW_FLAT_THRESHOLD;
	bs->ex.offload = bs->offload;
	/*
	 * With a GPU, its service builds the graphs on as many threads as
	 * PostgreSQL would give a parallel build; without, parallel workers do
	 * (vsbuild_parallel.c).
	 */
	if (bs->offload != NULL && bs->offload->ops->usable(bs->offload))
		bs->ex.gpu_threads = build_threads(bs->heap, bs->index);
	else
	{
		bs->ex.gpu_threads = 1;
		bs->nworkers = build_threads(bs->heap, bs->index) - 1;
	}
	INSTR_TIME_SET_ZERO(bs->graph_time);
	bs->ex.graph_time = &bs->graph_time;
	VsGetGraphOptions(bs->index, &bs->ex.m, &bs->ex.ef_construction, &quantizer);
	/* the bits are their own codes: the graphs search them (vsscan.c) */
	if (bs->elem == VS_ELEM_BIT)
		quantizer = VS_QUANTIZER_NONE;
	if (quantizer != VS_QUANTIZER_NONE && bs->ntrain > 0)
	{
		VsQuantOptions qopt;
		VsQuantHooks qhooks = {VsKmeansServerHooks.alloc, VsKmeansServerHooks.free,
		VsKmeansServerHooks.check_interrupts};

		VsQuantOptionsInit(&qopt);
		qopt.kind = quantizer == VS_QUANTIZER_SQ4 ? VS_QUANT_SQ4 : VS_QUANT_SQ8;
		qopt.clip = VsQuantBuildClip(qopt.kind, bs->metric);
		qopt.packed = vecstore_debug_packed_codes;
		bs->params = palloc0(VsQuantParamsSize(bs->dims));
		if (VsQuantTrain(bs->sample, bs->ntrain, bs->dims, bs->metric, NULL, NULL, &qopt,
						 &qhooks, bs->params) != 0)
			elog(ERROR, "could not train the codes of index \"%s\"",
				 RelationGetRelationName(bs->index));
		bs->ex.params = bs->params;
	}

	if (bs->sample)
		pfree(bs->sample);
	bs->sample = NULL;

	bs->centroid_norms = palloc(sizeof(float) * bs->nclusters);
	VsKmeansCentroidNorms(bs->centroids, bs->nclusters, bs->dims, bs->centroid_norms);
}

/*
 * assign_sort_begin - the sort of pass 2: (cluster, tid, vector) tuples,
 * by cluster and then by TID, so that a cluster's rows come in the
 * table's order whatever the sort does with equal keys (in memory or on
 * disk: the same index bytes at any maintenance_work_mem); its tuple
 * descriptor in *desc.
 */
static Tuplesortstate *
assign_sort_begin(Relation index, TupleDesc *desc)
{
	AttrNumber	attnums[] = {1, 2};
	Oid			sortops[] = {Int4LessOperator, TIDLessOperator};
	Oid			collations[] = {InvalidOid, InvalidOid};
	bool		nullsfirst[] = {false, false};
	TupleDesc	d = CreateTemplateTupleDesc(3);

	TupleDescInitEntry(d, (AttrNumber) 1, "cluster", INT4OID, -1, 0);
	TupleDescInitEntry(d, (AttrNumber) 2, "tid", TIDOID, -1, 0);
	TupleDescInitEntry(d, (AttrNumber) 3, "vector",
					   TupleDescAttr(RelationGetDescr(index), 0)->atttypid, -1, 0);
	*desc = d;
	return tuplesort_begin_heap(d, 2, attnums, sortops, collations, nullsfirst,
								maintenance_work_mem, NULL, TUPLESORT_NONE);
}

/*
 * build_assign - pass 2 over the heap: every row to its nearest centroid,
 * in batches (a GPU transfer's worth when the offload service takes
 * them), into a tuplesort by cluster and TID, sorted at the end.
 *
 * Not in parallel: with parallel workers each scanning a part of the heap
 * into its part of a parallel sort (tuplesort.h) and this backend merging
 * them, this pass took 1.3-1.7x as long on a 2-core VM (300,000 and
 * 1,000,000 x 128 rows): the parts go through temporary files, and the
 * merge is serial (bench/RESULTS.md, "Parallel CREATE INDEX").
 */
static void
build_assign(VsBuildState *bs)
{
	instr_time	start,
				elapsed;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, VS_PHASE_ASSIGN);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_TOTAL, (int64) bs->rows);
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, 0);
	bs->sort = assign_sort_begin(bs->index, &bs->sortdesc);
	bs->counts = palloc0(sizeof(int64) * bs->nclusters);
	/* the GPU takes the rows a transfer segment holds at a time */
	bs->batch_cap = Max(ASSIGN_BATCH, bs->offload != NULL ?
						bs->offload->ops->assign_rows(bs->offload, bs->nclusters, bs->dims) : 0);
	bs->batch = palloc(sizeof(float) * bs->dims * bs->batch_cap);
	bs->batch_tids = palloc(sizeof(ItemPointerData) * bs->batch_cap);
	bs->batch_assign = palloc(sizeof(int32) * bs->batch_cap);
	bs->slot = MakeSingleTupleTableSlot(bs->sortdesc, &TTSOpsMinimalTuple);
	INSTR_TIME_SET_CURRENT(start);
	if (bs->rows > 0)
	{
		table_index_build_scan(bs->heap, bs->index, bs->indexInfo, false, true,
							   assign_callback, bs, NULL);
		flush_batch(bs);
	}
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	elog(DEBUG1, "vecstore assignment: %lld rows, %lld jobs on the GPU in all, %.1f ms with the table scan",
		 (long long) bs->assigned, (long long) (bs->offload ? bs->offload->jobs : 0),
		 INSTR_TIME_GET_MILLISEC(elapsed));
	tuplesort_performsort(bs->sort);
}

/*
 * build_write - the fork: every region from the sorted rows (write_index),
 * then every page WAL-logged once in bulk.  Returns the metapage in *meta.
 */
static void
build_write(VsBuildState *bs, VsMetaPage meta)
{
	instr_time	start,
				elapsed;

	reserve_metapage(bs->index, MAIN_FORKNUM);
	INSTR_TIME_SET_CURRENT(start);
	write_index(bs->index, MAIN_FORKNUM, bs->metric, bs->row_metric, bs->dims, bs->nclusters,
				bs->trained, bs->centroids, bs->counts, bs->sort, bs->slot, bs->lists_option, &bs->ex,
				bs->nworkers, meta);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	elog(DEBUG1, "vecstore clusters: %d, %lld graphs built by the GPU service on %d threads, %.1f ms with codes, graphs and the fork, %.1f ms of it in graphs",
		 bs->nclusters, (long long) (bs->offload ? bs->offload->graphs : 0), bs->ex.gpu_threads,
		 INSTR_TIME_GET_MILLISEC(elapsed), INSTR_TIME_GET_MILLISEC(bs->graph_time));
	tuplesort_end(bs->sort);
	ExecDropSingleTupleTableSlot(bs->slot);
	if (RelationNeedsWAL(bs->index))
	{
		BlockNumber nblocks = RelationGetNumberOfBlocks(bs->index);

		INSTR_TIME_SET_CURRENT(start);
		log_newpage_range(bs->index, MAIN_FORKNUM, 0, nblocks, true);
		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		elog(DEBUG1, "vecstore WAL: %u blocks logged, %.1f ms",
			 nblocks, INSTR_TIME_GET_MILLISEC(elapsed));
	}
}

/*
 * build_segment - the segment file of the new relfilenode (removed again
 * if the transaction aborts); the files of the index's old relfilenodes
 * go at commit (TRUNCATE, REINDEX, VACUUM FULL build the index anew); and
 * a sweep of orphans.
 */
static void
build_segment(VsBuildState *bs, VsMetaPage meta)
{
	instr_time	start,
				elapsed;

	pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE, VS_PHASE_SEGMENT);
	INSTR_TIME_SET_CURRENT(start);
	VsSegmentRemoveOnAbort(bs->index->rd_node);
	VsSegmentWritePiece(bs->index, meta);
	VsSegmentForgetIndexFiles(bs->index);
	VsSegmentSweep();
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	elog(DEBUG1, "vecstore segment file: " UINT64_FORMAT " bytes, %.1f ms",
		 meta->sealed.nbytes, INSTR_TIME_GET_MILLISEC(elapsed));
}

/*
 * vsbuild - CREATE INDEX (and REINDEX, TRUNCATE, VACUUM FULL): the phases
 * in order, each reported in pg_stat_progress_create_index (VS_PHASE_*).
 */
IndexBuildResult *
vsbuild(Relation heap, Relation index, IndexInfo *indexInfo)
{
	IndexBuildResult *result;
	VsBuildState bs;
	VsMetaPageData meta;

	build_init(&bs, heap, index, indexInfo);
	build_sample(&bs);
	build_train(&bs);
	build_assign(&bs);
	build_write(&bs, &meta);
	build_segment(&bs, &meta);

	MemoryContextDelete(bs.tmpCtx);

	result = (IndexBuildResult *) palloc(sizeof(IndexBuildResult));
	result->heap_tuples = bs.reltuples;
	result->index_tuples = bs.assigned;
	return result;
}

/*
 * vsbuildempty - the init fork of an unlogged index: the same centroids
 * as the main fork (so rows inserted after a crash still spread over the
 * clusters), no rows.
 */
void
vsbuildempty(Relation index)
{
	VsMetaPageData meta;
	VsMetaCache cache;
	int64	   *counts;
	float	   *centroids;
	int			dims;
	int			nclusters = 1;
	VsMetric	metric = VsGetMetric(index);
	VsMetric	row_metric;
	VsKmeansOptions opt;
	VsClusterExtras ex;
	int			quantizer;

	/* the main fork is built first; without one (no rows, no typmod) fall back */
	if (RelationGetNumberOfBlocks(index) > 0)
	{
		cache = VsGetMetaCache(index);
		dims = cache->meta.dims;
		nclusters = cache->meta.nclusters;
		centroids = cache->centroids;
		row_metric = (VsMetric) cache->meta.row_metric;
	}
	else
	{
		dims = get_dims(index);
		if (dims == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column has no dimensions"),
					 errhint("Declare the column as vector(n).")));
		centroids = palloc0(sizeof(float) * dims);
		VsKmeansOptionsInit(&opt);
		row_metric = VsKmeansRowMetric(metric, &opt);
	}
	counts = palloc0(sizeof(int64) * nclusters);

	/* no rows: no codes and no graphs, only the options for the record */
	memset(&ex, 0, sizeof(ex));
	ex.metric = metric;
	ex.elem_size = VsIndexElem(index);
	ex.graph_threshold = VS_HNSW_FLAT_THRESHOLD;
	VsGetGraphOptions(index, &ex.m, &ex.ef_construction, &quantizer);

	reserve_metapage(index, INIT_FORKNUM);
	write_index(index, INIT_FORKNUM, metric, row_metric, dims, nclusters, nclusters, centroids,
				counts, NULL, NULL, VsGetListsOption(index), &ex, 0, &meta);
	/* init forks are always WAL-logged */
	log_newpage_range(index, INIT_FORKNUM, 0,
					  RelationGetNumberOfBlocksInFork(index, INIT_FORKNUM), true);
	pfree(counts);
}
