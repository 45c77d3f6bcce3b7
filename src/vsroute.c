/*-------------------------------------------------------------------------
 *
 * vsroute.c
 *	  IVF routing: which cluster a new row goes to, and in which order a
 *	  query visits the clusters.
 *
 * The centroids and the routing graph over them (an HNSW graph, built
 * with the index when it has VS_ROUTE_GRAPH_THRESHOLD clusters or more)
 * are in the metadata cache (vspage.c, VsGetMetaCache).  This file reads
 * and ranks them; it never modifies index pages.
 *
 *	- A row goes to the cluster the build would have put it in: the same
 *	  packed centroids, metric and arithmetic as the build's assignment
 *	  (VsNearestCluster), merged clusters left out.
 *	- Merged clusters are never visited: their centroids stay nodes of the
 *	  routing graph, but no order lists them.
 *	- A query visits clusters nearest centroid first: with a routing graph,
 *	  a graph search gives the first few (enough for the probes and some
 *	  widening) and the full order is computed only if the scan goes past
 *	  them; without one, every centroid is compared (VsRouteBegin,
 *	  VsRouteAll).  Cosine compares the normalised query with the unit
 *	  centroids.
 *
 * IDENTIFICATION
 *	  src/vsroute.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "vsam.h"

/* a cluster with its centroid distance, for ordering */
typedef struct ClusterDist
{
	int			cluster;
	double		distance;
} ClusterDist;

/*
 * VsNearestCluster - the cluster a new row goes to: the one the build
 * would have put it in (same centroids, same metric, same arithmetic).
 */
int
VsNearestCluster(VsMetaCache cache, const float *x)
{
	int32		cluster = 0;

	if (cache->meta.nclusters <= 1)
		return 0;
	VsMetaCachePrepare(cache);
	VsKmeansAssignPrepared(cache->prepared, x, 1, &cluster, NULL, &VsKmeansServerHooks);
	/* with merged clusters, "prepared" packs the others only */
	if (cache->live_ids != NULL)
		cluster = cache->live_ids[cluster];
	return cluster;
}

/*
 * compare_clusters - by centroid distance, then cluster number.
 */
static int
compare_clusters(const void *a, const void *b)
{
	const ClusterDist *ca = a;
	const ClusterDist *cb = b;
	int			c = VsCompareDistance(ca->distance, cb->distance);

	if (c != 0)
		return c;
	return (ca->cluster > cb->cluster) - (ca->cluster < cb->cluster);
}

/*
 * VsRouteAll - append every cluster not yet in route->order, nearest
 * centroid first (any order for a NULL query).
 */
void
VsRouteAll(VsRoute *route, VsMetaCache cache)
{
	int			nclusters = cache->meta.nclusters;
	int			dims = cache->meta.dims;
	ClusterDist *cd = palloc(sizeof(ClusterDist) * nclusters);
	bool	   *taken = palloc0(sizeof(bool) * nclusters);
	const float *q = route->query;
	int			n = 0;

	for (int i = 0; i < route->norder; i++)
		taken[route->order[i]] = true;
	for (int c = 0; c < nclusters; c++)
	{
		const float *cx = cache->centroids + (Size) c * dims;

		if (taken[c] || VsClusterMerged(cache, c))
			continue;
		cd[n].cluster = c;
		if (q == NULL)
			cd[n].distance = 0.0;
		else if (cache->meta.metric == VS_METRIC_L2)
			cd[n].distance = VsKernels.l2_squared(q, cx, dims);
		else
			cd[n].distance = -(double) VsKernels.inner_product(q, cx, dims);
		n++;
	}
	qsort(cd, n, sizeof(ClusterDist), compare_clusters);
	for (int i = 0; i < n; i++)
		route->order[route->norder++] = cd[i].cluster;
	route->all = true;
	pfree(cd);
	pfree(taken);
}

/*
 * VsRouteBegin - the first clusters "query" (dims floats, or NULL) visits,
 * into "route" (allocated in the current memory context): from the
 * routing graph when the index has one (enough for the probes and a few
 * extensions; VsRouteAll adds the rest if the scan gets there), else
 * every cluster in order.
 */
void
VsRouteBegin(VsRoute *route, VsMetaCache cache, const float *query)
{
	int			nclusters = cache->meta.nclusters;
	int			dims = cache->meta.dims;

	route->order = palloc(sizeof(int) * nclusters);
	route->norder = 0;
	route->all = false;

	/* the centroids of a cosine index are unit vectors: so is the query */
	if (query != NULL && cache->meta.metric == VS_METRIC_COSINE)
	{
		float	   *q = palloc(sizeof(float) * dims);

		memcpy(q, query, sizeof(float) * dims);
		VsNormalize(q, dims);
		route->query = q;
	}
	else
		route->query = query;

	if (cache->routing != NULL && route->query != NULL)
	{
		int			k = Min(nclusters, Max(4 * VsExpectedProbes(nclusters), 64));
		int			ef = Min(Max(k, VsEffortEf()), VS_HNSW_MAX_EF_SEARCH);
		Size		size = VsHnswScratchSize(nclusters, ef);
		VsHnswScratch *scratch = VsHnswScratchInit(palloc_extended(size, MCXT_ALLOC_HUGE),
												   size, nclusters, ef);
		VsHnswResult *res = palloc(sizeof(VsHnswResult) * ef);
		int			found;

		k = Min(k, ef);
		found = VsHnswSearch(cache->routing, cache->centroids, route->query, k, ef, scratch, res);
		for (int i = 0; i < found; i++)
		{
			if (!VsClusterMerged(cache, (int) res[i].id))
				route->order[route->norder++] = (int) res[i].id;
		}
		if (route->norder >= cache->nlive)
			route->all = true;
		if (route->norder > 0)
			return;
	}
	VsRouteAll(route, cache);
}
