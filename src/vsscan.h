/*-------------------------------------------------------------------------
 *
 * vsscan.h
 *	  The policy of an index scan (vsscan_policy.c): which clusters it
 *	  opens, how deep it searches each, when it looks further.  The
 *	  mechanics that carry the decisions out (graph searches, rerank, the
 *	  exact-order heaps, emitting rows) are in vsscan.c; only these two
 *	  files include this header.
 *
 * IDENTIFICATION
 *	  src/vsscan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSSCAN_H
#define VSSCAN_H

#include "vsam.h"

/* reference centroids of the cluster bounds: the query's nearest few */
#define VS_POLICY_REFS			3

typedef struct VsScanPolicy
{
	/* what the settings ask for */
	bool		adaptive;		/* vecstore.probes = 0: decide per query */
	bool		exact;			/* every row of every cluster, flat */
	int			probes;			/* not adaptive: clusters opened per step */
	int			ef;				/* ef of a cluster's first graph search */
	bool		fixed_ef;		/* ... set by vecstore.ef_search */
	bool		calibrated;		/* the contrast has scaled ef already */
	double		contrast_scale; /* ... by how much it asked (before the
								 * cap; 0: not measured) */
	int			trust;			/* a graph search of ef is trusted up to
								 * its (ef / trust)-th result */
	double		target;			/* adaptive: the recall a graph search must
								 * show against a deeper one to be trusted */
	double		alpha;			/* adaptive: the share of a cluster's bound
								 * that must lie within the next row's
								 * distance for it to be opened */

	/* the index and the query */
	VsMetaCache cache;
	VsMetric	metric;
	int			dims;
	int			nclusters;
	VsRoute    *route;			/* the clusters, nearest centroid first */

	/* per cluster (adaptive) */
	double	   *dist;			/* centroid's key to the query (squared
								 * L2 in routing space, or -inner product) */
	double	   *base;			/* L2/cosine: the lower bound of the
								 * distance (routing space) from the query to
								 * the cluster's cell; IP: dist */
	bool	   *opened;

	/* positions of route->order */
	int			next;			/* first position not yet evaluated (or,
								 * not adaptive, not yet opened) */
	int			first_closed;	/* no position before it is unopened */
	int			keyed;			/* the position whose key dist holds
								 * already, though not evaluated yet */
	int			refs[VS_POLICY_REFS];	/* clusters of the bounds */
	int			nrefs;
	double		tightness;		/* L2/cosine: the largest ratio of a
								 * cluster's bound to its nearest row found */
	double		gain;			/* IP: the most a cluster's best row has
								 * beaten its centroid's key so far */
} VsScanPolicy;

extern void VsPolicyBegin(VsScanPolicy *pol, VsMetaCache cache, VsRoute *route, bool graphs);
extern int	VsPolicyFirst(VsScanPolicy *pol, int *clusters, int max);
extern int	VsPolicyBefore(VsScanPolicy *pol, double key, int64 returned, int *clusters, int max);
extern int	VsPolicyMore(VsScanPolicy *pol, int *clusters, int max);
extern void VsPolicyObserve(VsScanPolicy *pol, int cluster, double key);
extern bool VsPolicyUseGraph(const VsScanPolicy *pol, uint32 count, bool has_graph);
extern int	VsPolicyDeeper(const VsScanPolicy *pol, int ef, uint32 count);
extern bool VsPolicyWidenEarly(const VsScanPolicy *pol);
extern bool VsPolicyConfirm(const VsScanPolicy *pol, int64 returned);
extern bool VsPolicySearchAgain(const VsScanPolicy *pol);
extern int	VsPolicyTrusted(const VsScanPolicy *pol, int found, int64 returned);
extern bool VsPolicyShareConfirmation(const VsScanPolicy *pol, int trusted, int missed,
									  int64 returned);
extern bool VsPolicyFiltered(const VsScanPolicy *pol, int64 returned);
extern double VsPolicyCodeMargin(const VsScanPolicy *pol, int64 returned);
extern bool VsPolicyCalibrate(VsScanPolicy *pol, double first, double last);
extern bool VsPolicyConfirmed(const VsScanPolicy *pol, int trusted, int missed);

#endif							/* VSSCAN_H */
