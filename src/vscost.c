/*-------------------------------------------------------------------------
 *
 * vscost.c
 *	  amcostestimate for vecstore.
 *
 * The index is useful only for ORDER BY distance: without an ORDER BY it
 * is priced out.  With one, a scan examines about probes/lists of the rows
 * (every row of the probed clusters; for clusters with a graph, only what
 * the graph search visits), all before the first row comes back, so the
 * startup cost is the whole cost; a LIMIT then makes the few heap fetches
 * cheap.
 *
 * The sealed rows are read through a memory mapping, sequentially within
 * a cluster, from a page cache that every backend shares, and nothing is
 * detoasted: a page of it costs about what processing a few tuples does,
 * so it is priced at VS_MAPPED_PAGE_COST (0.1) of a sequential read, not
 * as the random reads genericcostestimate assumes (which also charges each
 * row examined one operator evaluation, the distance).  The low page
 * price also makes up for a bias of the competing plan: a sequential
 * scan's estimate ignores detoasting, which
 * for vectors above ~500 dimensions (stored out of line) is most of its
 * real cost (bench/RESULTS.md: 55 ms for the scan, 0.9 ms for the index,
 * on Fashion-MNIST).
 *
 * The scan is for the nearest rows, not for all of them: it stops after
 * vecstore.max_scan_tuples rows examined, skips a row found after a
 * farther one was returned, and holds no row whose vector is NULL.  So a
 * query that wants every row in distance order (no LIMIT, and not a
 * cursor: the planner's tuple_fraction is 0), or a LIMIT beyond
 * max_scan_tuples, is priced like a disabled plan (disable_cost added):
 * it sorts the table instead and gets every row, while enable_seqscan =
 * off still forces the index, as it forces any disabled plan.  (pgvector's
 * HNSW index is chosen for such queries, and returns hnsw.ef_search rows
 * at most without its iterative scans.)
 *
 * IDENTIFICATION
 *	  src/vscost.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "utils/float.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/spccache.h"

#include "vsam.h"

/* the cost of a page of the mapped segment, in seq_page_cost units */
#define VS_MAPPED_PAGE_COST		0.1

/* code distances a graph search computes per unit of ef_search */
#define VS_GRAPH_VISITS			8

/*
 * vscostestimate - see the file header.
 */
void
vscostestimate(PlannerInfo *root, IndexPath *path, double loop_count,
			   Cost *indexStartupCost, Cost *indexTotalCost,
			   Selectivity *indexSelectivity, double *indexCorrelation,
			   double *indexPages)
{
	GenericCosts costs;
	Relation	index;
	VsMetaPageData meta;
	double		fraction;
	double		avg_rows;
	int			probes;
	double		spc_seq_page_cost;
	double		spc_random_page_cost;
	bool		sound;

	/* never an index for a plain WHERE: it has no search operators */
	if (path->indexorderbys == NIL)
	{
		*indexStartupCost = get_float8_infinity();
		*indexTotalCost = get_float8_infinity();
		*indexSelectivity = 0;
		*indexCorrelation = 0;
		*indexPages = 0;
		return;
	}

	/*
	 * A metapage that cannot be read (damaged, of another format) prices
	 * the index as a disabled plan, with a WARNING, instead of failing the
	 * planning of every query on the table: a sequential scan answers
	 * them, and a scan forced onto the index (enable_seqscan = off)
	 * reports the damage itself.
	 */
	index = index_open(path->indexinfo->indexoid, NoLock);
	sound = VsTryReadMeta(index, &meta);
	if (!sound)
		ereport(WARNING,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" cannot be used: its metapage is damaged or of another format",
						RelationGetRelationName(index)),
				 errhint("REINDEX it; vecstore_verify() says more.")));
	index_close(index, NoLock);
	if (!sound)
	{
		*indexStartupCost = disable_cost;
		*indexTotalCost = disable_cost;
		*indexSelectivity = 1;
		*indexCorrelation = 0;
		*indexPages = 0;
		return;
	}

	probes = VsExpectedProbes(meta.nclusters);
	fraction = (double) probes / Max(meta.nclusters, 1);
	avg_rows = path->indexinfo->tuples / Max(meta.nclusters, 1);

	MemSet(&costs, 0, sizeof(costs));
	costs.numIndexTuples = path->indexinfo->tuples * fraction;

	/*
	 * A probed cluster with a graph costs the code distances of its graph
	 * search, about VS_GRAPH_VISITS per ef_search, not its rows (and every
	 * cluster is scanned flat when probes covers them all).
	 */
	if (avg_rows >= meta.graph_threshold && meta.graph_threshold > 0 &&
		(probes < (int) meta.nclusters || meta.nclusters == 1))
		costs.numIndexTuples = Min(costs.numIndexTuples,
								   (double) probes * VsEffortEf() * VS_GRAPH_VISITS);
	genericcostestimate(root, path, loop_count, &costs);

	/* genericcostestimate charged random reads; the mapping reads in order */
	get_tablespace_page_costs(path->indexinfo->reltablespace,
							  &spc_random_page_cost, &spc_seq_page_cost);
	costs.indexTotalCost -= costs.numIndexPages *
		(spc_random_page_cost - spc_seq_page_cost * VS_MAPPED_PAGE_COST);
	costs.indexTotalCost = Max(costs.indexTotalCost, 0);

	/* every row wanted, or more than the scan may examine: see above */
	if (root->tuple_fraction <= 0.0 ||
		(root->limit_tuples > 0.0 && root->limit_tuples > (double) vecstore_max_scan_tuples))
		costs.indexTotalCost += disable_cost;

	*indexStartupCost = costs.indexTotalCost;
	*indexTotalCost = costs.indexTotalCost;
	*indexSelectivity = costs.indexSelectivity;
	*indexCorrelation = 0;
	*indexPages = costs.numIndexPages;
}
