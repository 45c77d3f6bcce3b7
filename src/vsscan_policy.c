/*-------------------------------------------------------------------------
 *
 * vsscan_policy.c
 *	  The policy of an index scan: which clusters to open, how deep to
 *	  search each, when to look further.  vsscan.c carries it out.
 *
 * Adaptive search (vecstore.probes = 0, the default).  A scan opens the
 * cluster of the nearest centroid, and then, before it returns each row,
 * every cluster that could hold a nearer one.  "Could" is decided from the
 * geometry of the clusters, so that an easy query (deep inside one
 * cluster) opens one or two and a hard one (near the border of several)
 * opens as many as it needs:
 *
 *	- L2 and cosine.  A row belongs to the cluster of its nearest centroid
 *	  (the build and inserts assign it so; cosine compares the normalised
 *	  row with unit centroids), so it lies in that centroid's Voronoi cell.
 *	  For any other centroid r, the cell of c lies on c's side of the
 *	  hyperplane halfway between c and r, so every row x of c has
 *
 *		|q - x|  >=  (|q - c|^2 - |q - r|^2) / (2 |c - r|)
 *
 *	  The bound of c is the largest of these over the query's
 *	  VS_POLICY_REFS nearest centroids r (0 for the nearest itself).  It is
 *	  a true lower bound: before a row at distance d is returned, opening
 *	  every cluster whose bound is below d leaves no nearer row in an
 *	  unopened cluster.  The bound is loose in many dimensions, so the scan
 *	  opens a cluster when its bound is below alpha * d, alpha < 1 from
 *	  vecstore.effort: rows near a cell's border are rare, and a cluster
 *	  whose bound is close to d seldom holds a nearer row.  Clusters are
 *	  evaluated in routing order, and no further: since |c - r| <= |q - c|
 *	  + |q - r|, a cluster's bound is at least (|q - c| - |q - r|) / 2,
 *	  which grows along the routing order, so once that exceeds alpha * d
 *	  no later cluster can qualify.
 *	- Inner product has no such bound (a cell reaches arbitrarily far in
 *	  the direction of the query).  The scan learns instead how far a
 *	  cluster's best row beats its centroid (the "gain": the largest
 *	  difference between a centroid's key and the best key found in its
 *	  cluster, over the clusters opened), and opens a cluster whose
 *	  centroid's key, less (1 + 2 alpha) times that gain, is below the
 *	  next row's (a cluster may hold rows that beat its centroid by more
 *	  than the ones seen so far).
 *
 * How loose the bounds are depends on the data: nearly tight in a few
 * dimensions, loose in many.  So alpha is at least VS_POLICY_LOW_DIMS /
 * sqrt(dimensions), and at least the tightness observed in this query:
 * the largest ratio of a cluster's bound to the distance of the nearest
 * row found in it, over the clusters opened (a scan of data whose bounds
 * are tight opens every cluster the bound allows).
 *
 * The deeper the scan gets into its stream of rows, the more likely it is
 * that a WHERE clause discards them (a LIMIT 10 reads 10): after
 * VS_POLICY_STREAM_ROWS rows, alpha rises linearly to 1 at twice that, so
 * that a filtered scan opens clusters by the true bound and does not find
 * rows after farther ones were returned (which it would have to drop).
 *
 * Depth.  An opened cluster with a graph is searched with ef from the
 * effort (or vecstore.ef_search when set); a smaller cluster (less than
 * VS_DEEPEN_FLAT * ef rows) is read flat.  Three rules then deepen a
 * graph search (twice the ef; past a quarter of the cluster, every row
 * flat), each applied before the next row is returned (vsscan.c):
 *
 *	- Frontier.  A search of ef is trusted up to its (ef /
 *	  VS_POLICY_TRUST)-th result (ef / VS_POLICY_TRUST_FILTERED once the
 *	  scan is filtered; the fixed search: up to its last): a row beyond
 *	  that is returned only after the cluster was searched deeper, since
 *	  it may hold nearer rows the search did not reach.
 *	- Confirmation.  The first search of a cluster that holds rows about
 *	  to be returned is checked by a search twice as deep: if that finds
 *	  rows inside the first one's frontier that it missed, the first one's
 *	  share of the rows there is an estimate of its recall; below the
 *	  effort's target, the cluster is searched deeper again, and checked
 *	  again.  Data of low contrast, where a graph search misses rows,
 *	  gets deeper searches; data where it does not, stops after one check.
 *	  In 32 dimensions or more, a scan whose first search found the
 *	  nearest rows standing out (VS_POLICY_STANDS_OUT) is not checked,
 *	  and a check that found the search nearly complete also stands for
 *	  the other clusters searched at least as deep.
 *	  (Tried and not kept: a contrast rule that raised every cluster's ef
 *	  less was slower on Fashion-MNIST, text and the 1M blobs, its later
 *	  deeper searches costing more than the smaller ones saved.)
 *	- Contrast.  The scan's first graph search shows how much the nearest
 *	  rows stand out (its farthest result's key over its nearest's): where
 *	  they hardly do, codes and graph miss more of them, and the scan's ef
 *	  grows (VsPolicyCalibrate), the first cluster searched again at once
 *	  (unless it grew by less than VS_POLICY_STANDS_OUT: then the first
 *	  search is trusted as it is, VsPolicySearchAgain).
 *	- Codes' error.  Frontiers are code distances, compared with exact
 *	  ones: each is lowered by the most a code distance has exceeded its
 *	  row's exact distance so far in the scan, so that noisy codes (low
 *	  contrast, many dimensions) make the scan search deeper.
 *
 * vecstore.effort sets alpha (the least of it), the first ef and the
 * recall target of the confirmation; the table below was chosen by
 * measurement (bench/RESULTS.md, "Fast by default").
 *
 * Fixed search (vecstore.probes > 0): the probes nearest clusters, then
 * the next probes when the candidates run low (vecstore.probes covering
 * every one of several clusters is an exact search).  vecstore.effort = 10
 * is an exact search too: every cluster, every row, by its exact
 * distance: the same rows, in the same order, as a scan without an index.
 *
 * IDENTIFICATION
 *	  src/vsscan_policy.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "vsscan.h"

/*
 * The bounds are nearly tight in a few dimensions and loose in many: alpha
 * is at least VS_POLICY_LOW_DIMS / sqrt(dimensions) (1 up to 2
 * dimensions, 0.75 at 4, 0.13 at 128).
 */
#define VS_POLICY_LOW_DIMS		1.5

/*
 * Contrast: an adaptive scan whose first graph search found its farthest
 * result at less than 1 + VS_POLICY_CONTRAST times its nearest's key
 * searches with a larger ef, up to VS_POLICY_CONTRAST_MAX times the
 * effort's (measured ratios, first search of ef 48: 1.26 on the 1M x 128
 * gaussian blobs, 1.40 on synthetic text, 1.71 on GloVe, 1.96 on SIFT,
 * 2.74 on Fashion-MNIST; so the blobs search with 2.7x the ef, text with
 * 1.75x, the others with the effort's).  0.7 and 3 let the blobs reach
 * recall 0.95 at effort 4, where 0.5 and 2 needed effort 5.
 */
#define VS_POLICY_CONTRAST		0.7
#define VS_POLICY_CONTRAST_MAX	3.0

/* the rows after which alpha starts rising towards 1 (filtered scans) */
#define VS_POLICY_STREAM_ROWS	100

/*
 * The clusters an adaptive scan is expected to open, for the cost estimate:
 * VS_POLICY_EXPECTED * alpha * sqrt(clusters), 2.4 to 2.8 sqrt(clusters)
 * at efforts 4 and 5 (measured: 3 of 10 on SIFT, 6 of 12 on synthetic text, 12
 * of 200 on the 1M synthetic set, 13 of 20 on GloVe).
 */
#define VS_POLICY_EXPECTED		8.0

/* a graph search deeper than 1/VS_DEEPEN_FLAT of its cluster reads it flat */
#define VS_DEEPEN_FLAT			4

/*
 * An adaptive search trusts a graph search of ef up to its
 * (ef / VS_POLICY_TRUST)-th result: a row beyond it is returned only after
 * a deeper search (the fixed search trusts all ef).
 */
#define VS_POLICY_TRUST			2

/* ... and once the scan is filtered, up to its (ef / this)-th result */
#define VS_POLICY_TRUST_FILTERED	4

/*
 * vecstore.effort, per level (1 .. VS_MAX_EFFORT - 1; the last level is
 * the exact search): the least relaxation of the cluster bounds (alpha),
 * the first ef of each graph search, and the recall a graph search must
 * show against a deeper one.  All three grow with the level, so that
 * recall does and speed falls.
 */
static const struct
{
	double		alpha;
	int			ef;
	double		target;
}			effort_levels[VS_MAX_EFFORT - 1] = {
	{0.15, 12, 0.80},
	{0.20, 16, 0.85},
	{0.25, 24, 0.90},
	{0.30, 32, 0.90},
	{0.35, 48, 0.92},
	{0.45, 80, 0.95},
	{0.60, 128, 0.97},
	{0.80, 200, 0.98},
	{1.00, 400, 1.00},
};

/*
 * VsEffectiveProbes - for a fixed search, how many of "nclusters" clusters
 * a scan opens at a time: vecstore.probes, at least 1, at most nclusters;
 * 0 when the search is adaptive.
 */
int
VsEffectiveProbes(uint32 nclusters)
{
	if (vecstore_probes == 0)
		return 0;
	return Max(1, Min(vecstore_probes, (int) Max(nclusters, 1)));
}

/*
 * VsEffortEf - the ef of a cluster's first graph search: vecstore.ef_search
 * when set, else the effort's.
 */
int
VsEffortEf(void)
{
	if (vecstore_ef_search > 0)
		return vecstore_ef_search;
	if (vecstore_effort >= VS_MAX_EFFORT)
		return VS_HNSW_MAX_EF_SEARCH;
	return effort_levels[vecstore_effort - 1].ef;
}

/*
 * VsExpectedProbes - the clusters a scan of "nclusters" is expected to
 * open, for the cost estimate and the routing graph: vecstore.probes, or
 * for the adaptive search a guess that grows with the effort and the
 * number of clusters (what it opens depends on each query), short of
 * every cluster (the cost model's exact search) when there are several.
 */
int
VsExpectedProbes(uint32 nclusters)
{
	int			probes = VsEffectiveProbes(nclusters);

	if (probes > 0)
		return probes;
	if (vecstore_effort >= VS_MAX_EFFORT)
		return (int) Max(nclusters, 1);
	probes = (int) ceil(VS_POLICY_EXPECTED * effort_levels[vecstore_effort - 1].alpha *
						sqrt((double) nclusters));
	/* short of every one of several clusters: that would be exact */
	if (nclusters > 1)
		probes = Min(probes, (int) nclusters - 1);
	return Max(1, probes);
}

/*
 * VsPolicyBegin - the policy of one scan of the index in "cache", whose
 * clusters "route" lists nearest first.  "graphs": the query can use the
 * graphs (not a NULL query, not a zero query under cosine).
 */
void
VsPolicyBegin(VsScanPolicy *pol, VsMetaCache cache, VsRoute *route, bool graphs)
{
	int			nclusters = (int) cache->meta.nclusters;

	memset(pol, 0, sizeof(VsScanPolicy));
	pol->trust = 1;
	pol->cache = cache;
	pol->metric = (VsMetric) cache->meta.metric;
	pol->dims = (int) cache->meta.dims;
	pol->nclusters = nclusters;
	pol->route = route;
	pol->ef = VsEffortEf();
	pol->fixed_ef = vecstore_ef_search > 0;
	pol->probes = VsEffectiveProbes(nclusters);
	pol->adaptive = (pol->probes == 0);

	/*
	 * Exact: asked for (the last effort level, or probes covering every one
	 * of several clusters), or a query no graph can rank by.  One cluster is
	 * a plain graph index: its graph serves whatever probes says.
	 */
	if (pol->adaptive)
		pol->exact = vecstore_effort >= VS_MAX_EFFORT;
	else
		pol->exact = nclusters > 1 && pol->probes >= nclusters;
	if (!graphs)
		pol->exact = true;
	if (pol->exact)
	{
		pol->adaptive = false;
		pol->probes = Max(nclusters, 1);
		return;
	}
	if (!pol->adaptive)
		return;

	pol->alpha = Max(effort_levels[vecstore_effort - 1].alpha,
					 Min(1.0, VS_POLICY_LOW_DIMS / sqrt((double) pol->dims)));
	pol->trust = VS_POLICY_TRUST;
	pol->target = effort_levels[vecstore_effort - 1].target;
	pol->dist = palloc(sizeof(double) * nclusters);
	pol->base = palloc(sizeof(double) * nclusters);
	pol->opened = palloc0(sizeof(bool) * nclusters);
	pol->keyed = -1;
}

/*
 * route_position - make sure position "pos" of the routing order exists;
 * false when the order holds every cluster and it does not.
 */
static bool
route_position(VsScanPolicy *pol, int pos)
{
	if (pos < pol->route->norder)
		return true;
	if (!pol->route->all)
		VsRouteAll(pol->route, pol->cache);
	return pos < pol->route->norder;
}

/* the squared L2 distance of two centroids */
static inline double
centroid_gap(VsScanPolicy *pol, int a, int b)
{
	const float *ca = pol->cache->centroids + (Size) a * pol->dims;
	const float *cb = pol->cache->centroids + (Size) b * pol->dims;

	return (double) VsKernels.l2_squared(ca, cb, pol->dims);
}

/*
 * centroid_key - the key of the cluster at the next position of the
 * routing order (which must exist), into pol->dist, computed once however
 * often it is asked for (past() asks before each row returned).
 */
static double
centroid_key(VsScanPolicy *pol)
{
	int			c = pol->route->order[pol->next];
	const float *cx = pol->cache->centroids + (Size) c * pol->dims;
	const float *q = pol->route->query;

	if (pol->keyed != pol->next)
	{
		if (pol->metric == VS_METRIC_IP)
			pol->dist[c] = -(double) VsKernels.inner_product(q, cx, pol->dims);
		else					/* L2, or cosine: normalised query, unit
								 * centroids */
			pol->dist[c] = (double) VsKernels.l2_squared(q, cx, pol->dims);
		pol->keyed = pol->next;
	}
	return pol->dist[c];
}

/*
 * evaluate - the key and the bound of the cluster at the next position of
 * the routing order (which must exist).
 */
static void
evaluate(VsScanPolicy *pol)
{
	int			c = pol->route->order[pol->next];

	centroid_key(pol);
	pol->next++;
	if (pol->metric == VS_METRIC_IP)
	{
		pol->base[c] = pol->dist[c];
		return;
	}

	pol->base[c] = 0.0;
	for (int i = 0; i < pol->nrefs; i++)
	{
		int			r = pol->refs[i];
		double		gap = centroid_gap(pol, c, r);

		if (gap > 0.0)
			pol->base[c] = Max(pol->base[c], (pol->dist[c] - pol->dist[r]) / (2.0 * sqrt(gap)));
	}
	if (pol->nrefs < VS_POLICY_REFS)
		pol->refs[pol->nrefs++] = c;
}

/*
 * alpha_at - alpha for the row after "returned" rows: the effort's, rising
 * to 1 past VS_POLICY_STREAM_ROWS rows.
 */
static double
alpha_at(const VsScanPolicy *pol, int64 returned)
{
	double		alpha = Min(1.0, Max(pol->alpha, pol->tightness));
	double		t;

	if (returned <= VS_POLICY_STREAM_ROWS)
		return alpha;
	t = Min(1.0, (double) (returned - VS_POLICY_STREAM_ROWS) / VS_POLICY_STREAM_ROWS);
	return alpha + (1.0 - alpha) * t;
}

/*
 * key_radius - an ordering key as a distance in routing space (where the
 * bounds are): L2 keys are squared distances, cosine keys 1 - cos =
 * |qn - xn|^2 / 2 for unit vectors.
 */
static inline double
key_radius(const VsScanPolicy *pol, double key)
{
	if (pol->metric == VS_METRIC_COSINE)
		key *= 2.0;
	return sqrt(Max(key, 0.0));
}

/*
 * threshold - a cluster whose base is at most this may hold a row that
 * comes before a row at ordering key "key".  A small margin covers the
 * rounding of the build's assignment near a cell's border.
 */
static double
threshold(const VsScanPolicy *pol, double key, double alpha)
{
	if (pol->metric == VS_METRIC_IP)
		return key + (1.0 + 2.0 * alpha) * pol->gain;
	return alpha * key_radius(pol, key) * (1.0 + 1e-5);
}

/*
 * past - is the cluster at the next position of the routing order, and
 * every one after it, beyond "limit"?  Uses only the centroid's key, which
 * grows along the routing order (see the file header).
 */
static bool
past(VsScanPolicy *pol, double limit)
{
	double		d = centroid_key(pol);

	if (pol->metric == VS_METRIC_IP)
		return d > limit;
	return (sqrt(d) - sqrt(pol->dist[pol->route->order[0]])) / 2.0 > limit;
}

/*
 * take - open the clusters of evaluated positions whose base is at most
 * "limit", into "clusters" (at most "max"); returns how many.
 */
static int
take(VsScanPolicy *pol, double limit, int *clusters, int max)
{
	int			n = 0;

	for (int pos = pol->first_closed; pos < pol->next && n < max; pos++)
	{
		int			c = pol->route->order[pos];

		if (!pol->opened[c] && pol->base[c] <= limit)
		{
			pol->opened[c] = true;
			clusters[n++] = c;
		}
	}
	while (pol->first_closed < pol->next &&
		   pol->opened[pol->route->order[pol->first_closed]])
		pol->first_closed++;
	return n;
}

/*
 * next_fixed - the next "n" clusters in routing order (not adaptive).
 */
static int
next_fixed(VsScanPolicy *pol, int n, int *clusters, int max)
{
	int			got = 0;

	while (got < Min(n, max) && route_position(pol, pol->next))
		clusters[got++] = pol->route->order[pol->next++];
	return got;
}

/*
 * VsPolicyFirst - the clusters a scan opens first, into "clusters" (room
 * for every cluster); returns how many.
 */
int
VsPolicyFirst(VsScanPolicy *pol, int *clusters, int max)
{
	if (!pol->adaptive)
		return next_fixed(pol, pol->probes, clusters, max);
	if (!route_position(pol, 0) || max < 1)
		return 0;
	evaluate(pol);
	clusters[0] = pol->route->order[0];
	pol->opened[clusters[0]] = true;
	pol->first_closed = 1;
	return 1;
}

/*
 * VsPolicyBefore - the clusters to open before a row at ordering key
 * "key" is returned, the scan having returned "returned" rows: those that
 * may hold a nearer row (see the file header).  0 when there are none, and
 * always when the search is not adaptive.
 */
int
VsPolicyBefore(VsScanPolicy *pol, double key, int64 returned, int *clusters, int max)
{
	double		limit;

	if (!pol->adaptive)
		return 0;
	limit = threshold(pol, key, alpha_at(pol, returned));
	while (route_position(pol, pol->next) && !past(pol, limit))
		evaluate(pol);
	return take(pol, limit, clusters, max);
}

/*
 * VsPolicyMore - the clusters to open when the candidates ran out: the
 * unopened cluster with the smallest bound among those evaluated, else
 * the next in routing order; not adaptive, the next vecstore.probes.  0
 * when every cluster is open.
 */
int
VsPolicyMore(VsScanPolicy *pol, int *clusters, int max)
{
	int			best = -1;

	if (!pol->adaptive)
		return next_fixed(pol, pol->probes, clusters, max);
	for (int pos = pol->first_closed; pos < pol->next; pos++)
	{
		int			c = pol->route->order[pos];

		if (!pol->opened[c] && (best < 0 || pol->base[c] < pol->base[best]))
			best = c;
	}
	if (best < 0)
	{
		if (!route_position(pol, pol->next))
			return 0;
		best = pol->route->order[pol->next];
		evaluate(pol);
	}
	return take(pol, pol->base[best], clusters, Min(max, 1));
}

/*
 * VsPolicyObserve - the scan found a row at ordering key "key" in opened
 * cluster "cluster": inner product learns how far rows beat centroids.
 */
void
VsPolicyObserve(VsScanPolicy *pol, int cluster, double key)
{
	double		r;

	if (!pol->adaptive)
		return;
	if (pol->metric == VS_METRIC_IP)
	{
		pol->gain = Max(pol->gain, pol->dist[cluster] - key);
		return;
	}
	r = key_radius(pol, key);
	if (r > 0.0)
		pol->tightness = Max(pol->tightness, pol->base[cluster] / r);
}

/*
 * VsPolicyUseGraph - is an opened cluster of "count" rows searched through
 * its graph (else read flat)?  Through the graph when it has one and the
 * first search would cover less than 1/VS_DEEPEN_FLAT of it.
 */
bool
VsPolicyUseGraph(const VsScanPolicy *pol, uint32 count, bool has_graph)
{
	return !pol->exact && has_graph && (int64) pol->ef * VS_DEEPEN_FLAT <= count;
}

/*
 * VsPolicyDeeper - the ef of the next graph search of a cluster of "count"
 * rows last searched with "ef": twice as deep, or -1 to read the rest of
 * it flat (past a quarter of the cluster, or the largest ef).
 */
int
VsPolicyDeeper(const VsScanPolicy *pol, int ef, uint32 count)
{
	int			deeper = ef * 2;

	if (deeper > VS_HNSW_MAX_EF_SEARCH || (int64) deeper * VS_DEEPEN_FLAT > count)
		return -1;
	return deeper;
}

/*
 * VsPolicyWidenEarly - does the scan open more clusters before its
 * candidates run out, once the rows returned approach the rows examined
 * (the fixed search's guard against filters; the adaptive search opens
 * clusters by their bounds instead)?
 */
bool
VsPolicyWidenEarly(const VsScanPolicy *pol)
{
	return !pol->adaptive;
}

/*
 * VsPolicyShareConfirmation - a graph search that a deeper one confirmed
 * ("trusted" results, of which the deeper one found "missed" rows within
 * its frontier): does it vouch for the searches of other clusters of the
 * scan at the same ef or deeper (vsscan.c, confirm_before)?  In many
 * dimensions, when the deeper search found it nearly complete: its share
 * of the rows there at least halfway from the effort's target to all of
 * them (0.95 at the default effort, every row at the last level).  The
 * check measures how well codes and graph find this query's rows in this
 * index, much the same from cluster to cluster.  Checking every cluster
 * again cost 5-16 % of a query at the default effort, for 0.000-0.003 of
 * recall@10, when only a check that missed nothing spoke for the scan
 * (bench/RESULTS.md, "One confirmation stands for the scan"); on data of
 * low contrast, where every check misses a row or two, it still cost
 * 10-30 % (the 1M blobs, GloVe, text), for 0.001-0.006 ("A nearly
 * complete check stands for the scan").  In a few dimensions the scan
 * opens many clusters by tight bounds, whose nearest rows lie at their
 * borders, and each keeps its own check: sharing there cost 0.01 of
 * recall@20 on pgvector's 10-dimension halfvec shape (TAP 033).
 */
#define VS_POLICY_CHECK_DIMS	32	/* in fewer dimensions, every cluster
									 * keeps its check (see above and
									 * VS_POLICY_STANDS_OUT) */

bool
VsPolicyShareConfirmation(const VsScanPolicy *pol, int trusted, int missed, int64 returned)
{
	double		share = (1.0 + pol->target) / 2.0;

	return pol->adaptive && pol->dims >= VS_POLICY_CHECK_DIMS &&
		!VsPolicyFiltered(pol, returned) &&
		(double) trusted >= share * (double) (trusted + missed);
}

/*
 * VsPolicyFiltered - has the scan returned so many rows ("returned") that
 * a WHERE clause is probably discarding them (VS_POLICY_STREAM_ROWS, as
 * for alpha)?  Such a scan needs each cluster's rows far past its
 * nearest, and the shortcuts that serve a plain LIMIT k lose them there:
 * from then on every cluster keeps its own check, whether the rows stood
 * out or not, and no check stands for another cluster.  Measured on
 * bench/defaults.sh's filtered queries (200,000 x 384 text, cosine, 100
 * queries; bench/RESULTS.md, "Filtered scans keep their checks"):
 * recall@10 0.952 -> 0.955 with 1 % of the rows passing (pgvector's
 * relaxed iterative scan: 0.956), 0.942 -> 0.952 with 0.1 %, for 20 %
 * more time at 1 % and none at 0.1 % (bound by max_scan_tuples).
 */
bool
VsPolicyFiltered(const VsScanPolicy *pol, int64 returned)
{
	return pol->adaptive && returned >= VS_POLICY_STREAM_ROWS;
}

/*
 * VsPolicyCodeMargin - how many times the largest code error seen so far
 * the mechanics take off a code distance (a pending candidate's, an
 * opened cluster's frontier) before they compare it with the next row's
 * exact distance (vsscan.c, pending_may_precede, deepen_before): 1, and
 * VS_POLICY_FILTERED_MARGIN once the scan is filtered (VsPolicyFiltered).
 * The error is learned from the rows reranked so far, and a filtered scan
 * goes on far past them, where a row whose codes overstate it more turns
 * up after a farther row was returned and is left out.  Measured (100
 * queries, LIMIT 10, bench/RESULTS.md "Filtered scans allow twice the
 * codes' error"): 200,000 x 384 text, recall@10 0.964 -> 0.968 with 1 %
 * of the rows passing and 0.942 -> 0.944 with 0.1 %, SIFT 0.994 -> 0.995
 * and 0.997, at the same speed; rows left out 2,047 -> 1,971 and 4,534 ->
 * 4,038 (1.5: 0.967 and 0.944; 3 on SIFT: as 2).
 */
#define VS_POLICY_FILTERED_MARGIN	2.0

double
VsPolicyCodeMargin(const VsScanPolicy *pol, int64 returned)
{
	return VsPolicyFiltered(pol, returned) ? VS_POLICY_FILTERED_MARGIN : 1.0;
}

/*
 * Data whose nearest rows stand out: in 32 dimensions or more, a scan for
 * whose first graph search the contrast rule asked less than
 * VS_POLICY_STANDS_OUT times the effort's ef.  Its first search is
 * trusted as it is: the first cluster is not searched again at once with
 * the raised ef (later clusters get it), and no cluster is checked by a
 * search twice as deep (the confirmation is for data of low contrast,
 * where codes and graph miss rows).  Measured at effort 4, settings
 * alternated in one session (bench/RESULTS.md, "A confirmation only
 * where the contrast is low" and "The first search trusted where the
 * rows stand out"): 1.5-2x the queries per second on SIFT's first 5,000
 * and 20,000 rows, 1.3x SIFT and Fashion-MNIST, for 0.005-0.014 of
 * recall@10 there; GloVe, text and the 1M blobs, whose first searches ask
 * for 2x or more, mostly keep both (recall within 0.005).  3 (the
 * contrast rule's cap) cost GloVe 0.009.
 */
#define VS_POLICY_STANDS_OUT	2.0

static bool
stands_out(const VsScanPolicy *pol)
{
	return pol->dims >= VS_POLICY_CHECK_DIMS && pol->contrast_scale > 0.0 &&
		pol->contrast_scale < VS_POLICY_STANDS_OUT;
}

/*
 * VsPolicySearchAgain - the scan's first graph search raised its ef
 * (VsPolicyCalibrate): is its cluster searched again at once with it?
 * Unless the rows stand out (stands_out).
 */
bool
VsPolicySearchAgain(const VsScanPolicy *pol)
{
	return !stands_out(pol);
}

/*
 * VsPolicyConfirm - are the graph searches of the clusters that contribute
 * rows checked by a search twice as deep (vsscan.c, confirm_before), the
 * scan having returned "returned" rows?  In an adaptive scan, yes, unless
 * the rows stand out (stands_out) and the scan is not filtered
 * (VsPolicyFiltered).
 */
bool
VsPolicyConfirm(const VsScanPolicy *pol, int64 returned)
{
	return pol->adaptive && (!stands_out(pol) || VsPolicyFiltered(pol, returned));
}

/*
 * VsPolicyTrusted - how many of a graph search's "found" results (of ef
 * asked for; all of them when fewer were found) are trusted, the scan
 * having returned "returned" rows: a row beyond the last trusted one is
 * returned only after a deeper search.  Once the scan is filtered
 * (VsPolicyFiltered), only the first 1/VS_POLICY_TRUST_FILTERED of a
 * search's results: such a scan takes long runs of each cluster's rows,
 * and the far half of a graph search's list misses more of them than its
 * near part.  Measured (bench/RESULTS.md, "Filtered scans trust a quarter
 * of each search"), 100 queries, LIMIT 10, with 1 % and 0.1 % of the rows
 * passing: recall@10 0.948 -> 0.964 and 0.946 -> 0.942 on 200,000 x 384
 * synthetic text (10 % more time at 1 %), 0.969 -> 0.993 and 0.869 ->
 * 0.948 on GloVe (no slower), 1.000 and 0.996 -> 1.000 on SIFT; a third
 * gave 0.960 / 0.945 on the text, a sixth 0.968 / 0.931 (the deeper
 * searches spending vecstore.max_scan_tuples sooner).
 */
int
VsPolicyTrusted(const VsScanPolicy *pol, int found, int64 returned)
{
	int			trust = VsPolicyFiltered(pol, returned) ? VS_POLICY_TRUST_FILTERED : pol->trust;

	return Max(1, Min(found, (found + trust - 1) / trust));
}

/*
 * VsPolicyConfirmed - a search twice as deep as the last found "missed"
 * rows within the last one's frontier, which held "trusted" rows: is the
 * last one's share of the rows there (an estimate of its recall) at
 * least the effort's target?
 */
bool
VsPolicyConfirmed(const VsScanPolicy *pol, int trusted, int missed)
{
	return (double) trusted >= pol->target * (double) (trusted + missed);
}

/*
 * VsPolicyCalibrate - the scan's first graph search found its nearest row
 * at key "first" and its farthest at "last": on data of low contrast
 * (last / first close to 1, squared L2 or 1 - cosine), a graph search over
 * codes misses more of the nearest rows (the codes' error is large next to
 * the differences between distances), so the scan's ef grows, up to
 * VS_POLICY_CONTRAST_MAX times: by VS_POLICY_CONTRAST / (last / first - 1).
 * True when ef grew.  Inner product keys have no such ratio.
 */
bool
VsPolicyCalibrate(VsScanPolicy *pol, double first, double last)
{
	double		scale;
	int			ef;

	pol->calibrated = true;
	if (!pol->adaptive || pol->fixed_ef || pol->metric == VS_METRIC_IP || !(first > 0.0))
		return false;
	scale = (last > first) ? VS_POLICY_CONTRAST / (last / first - 1.0) : VS_POLICY_CONTRAST_MAX;
	pol->contrast_scale = scale;
	scale = Min(scale, VS_POLICY_CONTRAST_MAX);
	if (scale <= 1.0)
		return false;
	ef = Min((int) ceil(pol->ef * scale), VS_HNSW_MAX_EF_SEARCH);
	if (ef <= pol->ef)
		return false;
	pol->ef = ef;
	return true;
}
