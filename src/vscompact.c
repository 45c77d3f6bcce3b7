/*-------------------------------------------------------------------------
 *
 * vscompact.c
 *	  Compaction: re-seal the clusters whose delta rows or removed rows
 *	  passed a threshold, as a new generation that rewrites only them.
 *
 * A cluster's rows are its sealed rows (vectors, TIDs, codes and graph in
 * a piece of sealed data) and the rows of its delta chain that the
 * generation did not fold (vsam.h, VsClusterInfo).  Delta rows are
 * searched exactly, row by row, and rows VACUUM removed keep their bytes,
 * so both make every probe of the cluster slower, and the second keeps
 * space.  A compaction writes, for each chosen cluster, its live sealed
 * rows and live delta rows as new sealed rows with new codes and a new
 * graph, into new pieces (the fork's pages and a segment file each), and
 * publishes a generation whose cluster table points the other clusters
 * at the pieces that hold them already.  Nothing is rewritten that did
 * not change, except the clusters of a piece that has become mostly
 * garbage or one piece too many (VS_MAX_PIECES), so that its file can go.
 *
 * Online:
 *	- the caller holds ShareUpdateExclusiveLock on the table (VACUUM does;
 *	  vecstore_compact takes it): no VACUUM marks rows meanwhile, and no
 *	  other compaction runs;
 *	- inserts go on: the delta chains are never changed here.  The rows a
 *	  compaction folds are those up to a position it fixed while counting;
 *	  the new generation's scans read the chain from after it, and a row
 *	  appended later lies after it;
 *	- scans go on: one that began on the generation before reads that
 *	  generation's files (mapped, or rebuilt from its pages, which stay)
 *	  and the chains from that generation's positions, so it sees every
 *	  row exactly once; one that begins after the switch reads the new one.
 *	- the switch is one WAL-logged change of the metapage (GenericXLog):
 *	  the new piece, and a new deletion bitmap when one is needed, are
 *	  written to blocks reserved at the end of the fork and WAL-logged in
 *	  full before it, so a crash leaves either generation, never a mix, and
 *	  a standby replays the same switch.
 *
 * Space: the files of pieces no generation reads any more are removed at
 * once (a backend that maps one keeps its mapping).  The fork's pages of
 * dropped pieces and folded delta rows are retired in the free list
 * (vsfree.c), new pieces fill its free runs before the fork grows
 * (plan_pieces), and after the compaction VsFreeReclaim returns the end of
 * the fork, moving pieces down to free it (src/README, "Compaction").
 *
 * IDENTIFICATION
 *	  src/vscompact.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "access/parallel.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xloginsert.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "commands/defrem.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "pgstat.h"
#include "postmaster/interrupt.h"

#include "vsam.h"
#include "vskmeans.h"

/*
 * vecstore.debug_compaction_stop: where a compaction waits, for the crash
 * tests (test/t/021_compaction.pl kills the server there) and the tests
 * of work done meanwhile (set in postgresql.conf, a reload that changes
 * it lets the compaction go on).  Superuser only, not in
 * postgresql.conf.sample.
 */
int			vecstore_debug_compaction_stop = VS_COMPACT_STOP_NONE;

static const struct config_enum_entry stop_options[] = {
	{"none", VS_COMPACT_STOP_NONE, false},
	{"written", VS_COMPACT_STOP_WRITTEN, false},
	{"logged", VS_COMPACT_STOP_LOGGED, false},
	{"published", VS_COMPACT_STOP_PUBLISHED, false},
	{"reclaim", VS_COMPACT_STOP_RECLAIM, false},
	{NULL, 0, false}
};

/*
 * VsCompactInit - the compaction's GUCs (from _PG_init).
 */
void
VsCompactInit(void)
{
	DefineCustomEnumVariable("vecstore.debug_compaction_stop",
							 "Makes compactions wait at a point, for crash tests",
							 "none, or where a compaction waits until it is cancelled or killed: written (its pages written, not yet WAL-logged), logged (WAL-logged and its segment file written, not yet published), published (the new generation published, the files it dropped not yet removed), reclaim (the end of the fork about to be given back: its new free list not yet written, the delta pages to move down chosen, not yet moved).",
							 &vecstore_debug_compaction_stop, VS_COMPACT_STOP_NONE, stop_options,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}

/*
 * VsCompactDebugStop - wait here for good when
 * vecstore.debug_compaction_stop names this point (a cancel ends the wait
 * with an error).
 */
void
VsCompactDebugStop(int point)
{
	if (vecstore_debug_compaction_stop != point)
		return;
	elog(LOG, "vecstore: compaction waits at \"%s\" (vecstore.debug_compaction_stop)",
		 stop_options[point].name);
	/* a reload that sets it to another point lets the compaction go on */
	while (vecstore_debug_compaction_stop == point)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		pg_usleep(10000L);
	}
}

/* a progress parameter (vsam.h, VS_PROGRESS_*) */
static inline void
progress(int param, int64 value)
{
	pgstat_progress_update_param(param, value);
}

/* what one cluster holds now, and what a compaction of it would fold */
typedef struct CompactCluster
{
	uint64		dead;			/* sealed rows the bitmap marks */
	uint64		delta_live;		/* unfolded delta rows, up to the end */
	uint64		delta_dead;
	BlockNumber startblk;		/* the first delta page counted */
	BlockNumber endblk;			/* the last delta page counted, or Invalid */
	OffsetNumber endoff;		/* its last row counted */
	bool		chosen;
	bool		move;			/* chosen only to empty its piece: its bytes
								 * are copied as they are */
	bool		merged;			/* merged in the new generation: it keeps no
								 * rows (VsMetaCacheData.hosts) */
	int			host;			/* merged: the cluster whose probes read its
								 * delta chain */
	int64		absorbed;		/* rows it takes from merged clusters */
	bool		reused;			/* merged before, its slot now holds a part
								 * of a split cluster (slot_free) */
	/* a split: into nparts clusters, itself and part_ids[1], part_ids[2] ... */
	int			nparts;			/* 0 or 1: not split */
	uint32	   *part_ids;		/* nparts: the cluster each part becomes */
	float	   *centroids;		/* nparts * dims */
	float	   *norms;			/* their norms, for the assignment */
	int64	   *counts;			/* rows per part */
	/* rows given to other clusters (plan_moves) */
	bool	   *leaves;			/* over the first "nleaves" rows collect_group
								 * gives: true for one that goes */
	int64		nleaves;
	int64		left;			/* how many go */
	/* re-sealed with its sealed rows kept in place (extend_rows) */
	bool		extend;
	bool		rebuild;		/* its graph built anew whatever it lost
								 * (the compaction trains codes) */
	uint64		tombs;			/* extend: its sealed rows dead in the new
								 * generation */
	uint8	   *tombbits;		/* extend, once written: a bit for each of
								 * its old sealed rows, set for those */
} CompactCluster;

/*
 * count_delta - the unfolded delta rows of a cluster, live and removed,
 * and the position of the last one: the rows a compaction of it will fold
 * (rows appended later lie after that position).
 */
static void
count_delta(Relation index, const VsDirEntry *entry, const VsClusterInfo *info,
			CompactCluster *cc, BufferAccessStrategy bas)
{
	VsDeltaChain chain;
	VsDeltaTuple tup;

	cc->startblk = VsDeltaFromHead(entry, info) ? entry->delta_head : info->delta_blk;
	cc->endblk = InvalidBlockNumber;
	cc->endoff = InvalidOffsetNumber;
	VsDeltaChainBeginRows(&chain, index, entry, info, BUFFER_LOCK_SHARE, bas, 0, 0);
	while ((tup = VsDeltaChainNextRow(&chain)) != NULL)
	{
		if (tup->flags & VS_DELTA_DEAD)
			cc->delta_dead++;
		else
			cc->delta_live++;
		cc->endblk = chain.blkno;
		cc->endoff = chain.off;
	}
}

/* the live rows of a cluster before any it takes (read_rows) */
static int64
own_rows(const VsClusterInfo *info, const CompactCluster *cc)
{
	return (int64) (info->count - cc->dead + cc->delta_live);
}

/*
 * read_rows - live rows of chosen cluster "c" (of the pinned mapping
 * "body"): its sealed rows not marked in the deletion bitmap, then its
 * unfolded delta rows up to the position count_delta fixed.  With "want"
 * NULL, all of them (as many as count_delta and the bitmap counted, or an
 * error); otherwise only the "nwant" at those places among them, which
 * ascend.  Into vecs and tids, in that order.
 */
static void
read_rows(Relation index, VsMetaPage meta, const char *body, uint32 c, const CompactCluster *cc,
		  const uint32 *want, int64 nwant, float *vecs, ItemPointerData *tids,
		  BufferAccessStrategy bas)
{
	const VsClusterInfo *info = VsHeadClusters(body) + c;
	int64		live = own_rows(info, cc);
	int64		sealed = (int64) (info->count - cc->dead);
	int64		n = 0;			/* live rows passed */
	int64		k = 0;			/* rows read */
	int			elem = VsMetaElemSize(meta);
	Size		vsize = VsRowBytes(elem, meta->dims);	/* a stored row's */

#define WANTED() (want == NULL || (k < nwant && (int64) want[k] == n))
	if (want == NULL)
		nwant = live;
	if (info->count > 0 && (want == NULL || (nwant > 0 && want[0] < sealed)))
	{
		uint32		shift;
		uint8	   *bits = VsDeletionBits(index, meta, info, bas, &shift);

		for (uint32 i = 0; i < info->count && (want == NULL || k < nwant); i++)
		{
			if (VsRowDeleted(bits, shift, i))
				continue;
			if (n >= live)
				elog(ERROR, "index \"%s\": a cluster has more live rows than were counted",
					 RelationGetRelationName(index));
			if (WANTED())
			{
				VsDecodeRow(elem, body + info->vec_offset + (Size) i * vsize, (int) meta->dims,
							vecs + (Size) k * meta->dims);
				memcpy(&tids[k], body + info->tid_offset + sizeof(ItemPointerData) * i,
					   sizeof(ItemPointerData));
				k++;
			}
			n++;
		}
		pfree(bits);
	}
	else
		n = sealed;				/* none wanted there */

	if (BlockNumberIsValid(cc->endblk) && k < nwant)
	{
		VsDirEntry	entry;
		VsDeltaChain chain;
		VsDeltaTuple tup;
		bool		done = false;

		if (n != sealed)
			elog(ERROR, "index \"%s\": cluster %u has " INT64_FORMAT " live sealed rows, " INT64_FORMAT " were counted",
				 RelationGetRelationName(index), c, n, sealed);
		/* up to the last row count_delta counted */
		VsBlobRead(index, &meta->directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry), bas);
		VsDeltaChainBeginRows(&chain, index, &entry, info, BUFFER_LOCK_SHARE, bas, 0,
							  VS_DELTA_TUPLE_SIZE(VsMetaElemSize(meta), meta->dims));
		while (!done && (want == NULL || k < nwant) &&
			   (tup = VsDeltaChainNextRow(&chain)) != NULL)
		{
			done = chain.blkno == cc->endblk && chain.off == cc->endoff;
			if (tup->flags & VS_DELTA_DEAD)
				continue;
			if (n >= live)
				elog(ERROR, "index \"%s\": a cluster has more live rows than were counted",
					 RelationGetRelationName(index));
			if (WANTED())
			{
				VsDecodeRow(elem, tup->x, (int) meta->dims, vecs + (Size) k * meta->dims);
				tids[k] = tup->tid;
				k++;
			}
			n++;
		}
		VsDeltaChainEnd(&chain);
		if (!done && want == NULL)
			elog(ERROR, "index \"%s\": a delta chain ended before the rows counted in it",
				 RelationGetRelationName(index));
	}
#undef WANTED
	if (want == NULL && n != live)
		elog(ERROR, "index \"%s\": cluster %u has " INT64_FORMAT " live rows, " INT64_FORMAT " were counted",
			 RelationGetRelationName(index), c, n, live);
	if (k != nwant)
		elog(ERROR, "index \"%s\": cluster %u has no live row " INT64_FORMAT ", which a compaction planned to move",
			 RelationGetRelationName(index), c, (int64) want[k]);
}

/*
 * collect_rows - all the live rows of chosen cluster "c" (read_rows), into
 * *vecsp and *tidsp, palloc'd.
 */
static void
collect_rows(Relation index, VsMetaPage meta, const char *body, uint32 c,
			 const CompactCluster *cc, float **vecsp, ItemPointerData **tidsp,
			 BufferAccessStrategy bas)
{
	int64		live = own_rows(VsHeadClusters(body) + c, cc);

	*vecsp = palloc_extended(sizeof(float) * meta->dims * Max(live, 1), MCXT_ALLOC_HUGE);
	*tidsp = palloc_extended(sizeof(ItemPointerData) * Max(live, 1), MCXT_ALLOC_HUGE);
	read_rows(index, meta, body, c, cc, NULL, 0, *vecsp, *tidsp, bas);
}

/*
 * The rows a cluster takes from others (plan_merges, plan_moves), named by
 * where they are, not copied: the cluster that gives each and its place in
 * that cluster's rows.  The old generation they are in stays as it is until
 * the compaction's new one is published, so the rows are read from it when
 * the taker is written (collect_group, read_refs: only the rows named, a
 * giving cluster at a time), and a compaction holds no more than a
 * cluster's rows and these references however many rows move.  The first
 * "nmerged" come from merged clusters, at their places among the giver's
 * own rows (read_rows' order); the rest from live clusters (plan_moves), at
 * their places in collect_group's order without the moved rows: own rows,
 * then the merged ones.  Each kind is in the order of its givers, and a
 * giver's places ascend.
 */
typedef struct Incoming
{
	uint32	   *from;
	uint32	   *pos;
	int64		n;
	int64		nmerged;
	int64		cap;
} Incoming;

/* room for "want" rows in "to", exactly (new arrays in the current context) */
static void
incoming_reserve(Incoming *to, int64 want)
{
	if (want <= to->cap)
		return;
	if (to->from == NULL)
	{
		to->from = palloc_extended(sizeof(uint32) * want, MCXT_ALLOC_HUGE);
		to->pos = palloc_extended(sizeof(uint32) * want, MCXT_ALLOC_HUGE);
	}
	else
	{
		to->from = repalloc_huge(to->from, sizeof(uint32) * want);
		to->pos = repalloc_huge(to->pos, sizeof(uint32) * want);
	}
	to->cap = want;
}

/* one row more for "to": row "pos" of cluster "from" (arrays doubled when full) */
static void
incoming_add(Incoming *to, uint32 from, int64 pos)
{
	if (to->n == to->cap)
		incoming_reserve(to, Max(64, to->cap * 2));
	to->from[to->n] = from;
	to->pos[to->n++] = (uint32) pos;
}

/*
 * read_refs - the "n" rows named by (from, pos) (see Incoming), into vecs
 * and tids.  "moved": places past a giver's own rows name those merged
 * into it (plan_moves' references); otherwise there are none (plan_merges').
 * *bodyp: a giver's segment that fails its check is rebuilt and mapped
 * anew (VsSegmentCluster).
 */
static void
read_refs(Relation index, VsMetaPage meta, const char **bodyp, const CompactCluster *cc,
		  const Incoming *inc, const uint32 *from, const uint32 *pos, int64 n, bool moved,
		  float *vecs, ItemPointerData *tids, BufferAccessStrategy bas)
{
	int			dims = (int) meta->dims;

	for (int64 r = 0; r < n;)
	{
		uint32		d = from[r];
		int64		own = own_rows(VsHeadClusters(*bodyp) + d, &cc[d]);
		int64		rend = r + 1;
		int64		rown = r;

		CHECK_FOR_INTERRUPTS();
		while (rend < n && from[rend] == d)
			rend++;
		while (rown < rend && (int64) pos[rown] < own)
			rown++;
		*bodyp = VsSegmentCluster(index, meta, *bodyp, d);
		read_rows(index, meta, *bodyp, d, &cc[d], pos + r, rown - r, vecs + (Size) r * dims,
				  tids + r, bas);
		if (rown < rend)
		{
			/* rows merged into it: named in its own references */
			int64		m = rend - rown;
			uint32	   *mfrom = palloc(sizeof(uint32) * m);
			uint32	   *mpos = palloc(sizeof(uint32) * m);

			for (int64 j = 0; j < m; j++)
			{
				int64		q = (int64) pos[rown + j] - own;

				if (!moved || q >= inc[d].nmerged)
					elog(ERROR, "index \"%s\": cluster %u has " INT64_FORMAT " rows, fewer than when its rows' moves were planned",
						 RelationGetRelationName(index), d, own + (moved ? inc[d].nmerged : 0));
				mfrom[j] = inc[d].from[q];
				mpos[j] = inc[d].pos[q];
			}
			read_refs(index, meta, bodyp, cc, inc, mfrom, mpos, m, false,
					  vecs + (Size) rown * dims, tids + rown, bas);
			pfree(mfrom);
			pfree(mpos);
		}
		r = rend;
	}
}

/*
 * collect_group - the live rows of chosen cluster "c" (read_rows), then
 * those it takes from merged clusters, then, when "moved", those it takes
 * from live ones (plan_moves), into *vecsp and *tidsp, palloc'd; their
 * number into *np.  Returns the body to read from (VsSegmentCluster may
 * map anew).
 */
static const char *
collect_group(Relation index, VsMetaPage meta, const char *body, uint32 c,
			  const CompactCluster *cc, const Incoming *inc, bool moved, float **vecsp,
			  ItemPointerData **tidsp, int64 *np, BufferAccessStrategy bas)
{
	int64		n = own_rows(VsHeadClusters(body) + c, &cc[c]);
	int64		nm = inc == NULL ? 0 : inc[c].nmerged;
	int64		nv = inc == NULL || !moved ? 0 : inc[c].n - inc[c].nmerged;
	int64		total = n + nm + nv;
	float	   *vecs = palloc_extended(sizeof(float) * meta->dims * Max(total, 1), MCXT_ALLOC_HUGE);
	ItemPointerData *tids = palloc_extended(sizeof(ItemPointerData) * Max(total, 1), MCXT_ALLOC_HUGE);

	body = VsSegmentCluster(index, meta, body, c);
	read_rows(index, meta, body, c, &cc[c], NULL, 0, vecs, tids, bas);
	if (nm + nv > 0)
	{
		read_refs(index, meta, &body, cc, inc, inc[c].from, inc[c].pos, nm, false,
				  vecs + (Size) n * meta->dims, tids + n, bas);
		read_refs(index, meta, &body, cc, inc, inc[c].from + nm, inc[c].pos + nm, nv, true,
				  vecs + (Size) (n + nm) * meta->dims, tids + n + nm, bas);
		/* a giver's segment mapped anew: "c" there too */
		body = VsSegmentCluster(index, meta, body, c);
	}
	*vecsp = vecs;
	*tidsp = tids;
	*np = total;
	return body;
}

/*
 * plan_merges - after the counting: a re-sealed cluster of fewer than
 * "min_rows" live rows is merged (while another cluster is left): its rows
 * go, each, to the cluster of the nearest centroid among those not merged,
 * as the build would have assigned them without it, so that every row
 * stays in its cluster's Voronoi cell (the scans' bounds assume it,
 * vsscan_policy.c).  A cluster merged before whose delta chain got rows
 * (inserts routed before the merge was published) gives them away the
 * same way.  Those rows are named in "inc" (in the current memory context),
 * the clusters that take them are chosen; each merged cluster's host (the
 * cluster whose probes read its chain) is the one of the centroid nearest
 * to its own.  Sets merged, host and absorbed; returns the merges
 * planned.  *bodyp: as collect_group.
 */
static int
plan_merges(Relation index, VsMetaPage meta, const char **bodyp, const VsClusterInfo *info,
			const float *centroids, const int32 *hosts, uint64 min_rows, CompactCluster *cc,
			Incoming *inc, BufferAccessStrategy bas)
{
	int			nlive = 0;
	int			merges = 0;
	bool		any = false;
	int		   *live_ids;
	float	   *lc;
	float	   *norms;
	int32		host;

	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		cc[c].host = hosts != NULL ? hosts[c] : -1;
		cc[c].merged = cc[c].host >= 0;
		any = any || cc[c].merged;
		if (!cc[c].merged)
			nlive++;
	}
	for (uint32 c = 0; c < meta->nclusters && min_rows > 0; c++)
	{
		uint64		live = (uint64) own_rows(&info[c], &cc[c]);

		if (cc[c].merged || !cc[c].chosen || live >= min_rows || nlive <= 1)
			continue;
		cc[c].merged = true;
		any = true;
		nlive--;
		merges++;
	}
	if (!any)
		return 0;

	/* the centroids left, packed */
	live_ids = palloc(sizeof(int) * nlive);
	lc = palloc_extended(sizeof(float) * meta->dims * nlive, MCXT_ALLOC_HUGE);
	norms = palloc(sizeof(float) * nlive);
	nlive = 0;
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		if (cc[c].merged)
			continue;
		live_ids[nlive] = (int) c;
		memcpy(lc + (Size) nlive * meta->dims, centroids + (Size) c * meta->dims,
			   sizeof(float) * meta->dims);
		nlive++;
	}
	VsKmeansCentroidNorms(lc, nlive, (int) meta->dims, norms);

	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		float	   *vecs;
		ItemPointerData *tids;
		int32	   *asg;
		int64		n;

		if (!cc[c].merged)
			continue;
		VsKmeansAssign(lc, norms, nlive, (int) meta->dims, (VsMetric) meta->row_metric,
					   centroids + (Size) c * meta->dims, 1, &host, NULL, &VsKmeansServerHooks);
		cc[c].host = live_ids[host];
		if (!cc[c].chosen)
			continue;

		/* its rows, each to the nearest centroid left */
		*bodyp = VsSegmentCluster(index, meta, *bodyp, c);
		collect_rows(index, meta, *bodyp, c, &cc[c], &vecs, &tids, bas);
		n = own_rows(&info[c], &cc[c]);
		asg = palloc(sizeof(int32) * Max(n, 1));
		VsKmeansAssign(lc, norms, nlive, (int) meta->dims, (VsMetric) meta->row_metric,
					   vecs, (int) n, asg, NULL, &VsKmeansServerHooks);
		for (int64 i = 0; i < n; i++)
			incoming_add(&inc[live_ids[asg[i]]], c, i);
		pfree(asg);
		pfree(vecs);
		pfree(tids);
	}
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		inc[c].nmerged = inc[c].n;
		cc[c].absorbed = inc[c].n;
		if (inc[c].n > 0)
			cc[c].chosen = true;
	}
	pfree(live_ids);
	pfree(lc);
	pfree(norms);
	return merges;
}

/*
 * choose_pieces - after the clusters the thresholds chose, those of the
 * older pieces that must go too: a piece that would keep under half of
 * its bytes in use (its file and pages would hold mostly garbage), and,
 * while the new generation would read more than VS_MAX_PIECES pieces, the
 * one with the fewest bytes in use.  Returns how many clusters it added;
 * they move as they are (nothing of theirs passed a threshold).
 */
static int
choose_pieces(const VsClusterInfo *info, uint32 nclusters, const VsPieceInfo *pieces,
			  uint32 npieces, CompactCluster *cc)
{
	uint64	   *used = palloc0(sizeof(uint64) * npieces);
	uint32	   *refs = palloc0(sizeof(uint32) * npieces);
	int			added = 0;

	for (;;)
	{
		int			worst = -1;
		uint32		kept = 0;

		memset(used, 0, sizeof(uint64) * npieces);
		memset(refs, 0, sizeof(uint32) * npieces);
		for (uint32 c = 0; c < nclusters; c++)
		{
			int			p = VsPieceIndex(pieces, npieces, info[c].piece);

			if (!cc[c].chosen)
			{
				used[p] += info[c].nbytes;
				refs[p]++;
			}
		}
		for (uint32 p = 0; p < npieces; p++)
		{
			/* (one kept only for empty clusters has all its bytes unused) */
			if (refs[p] == 0)
				continue;
			kept++;
			if (used[p] * 2 < pieces[p].region.nbytes && worst < 0)
				worst = (int) p;
		}
		if (worst < 0 && kept + 1 > VS_MAX_PIECES)
		{
			for (uint32 p = 0; p < npieces; p++)
			{
				if (refs[p] > 0 && (worst < 0 || used[p] < used[worst]))
					worst = (int) p;
			}
		}
		if (worst < 0)
			break;
		for (uint32 c = 0; c < nclusters; c++)
		{
			if (!cc[c].chosen && info[c].piece == pieces[worst].generation)
			{
				cc[c].chosen = true;
				cc[c].move = true;
				added++;
			}
		}
	}
	pfree(used);
	pfree(refs);
	return added;
}

/* a cluster, or one part of a split one, as a compaction writes it */
typedef struct OutCluster
{
	uint32		source;			/* the cluster it comes from */
	uint32		cluster;		/* its number in the new generation */
	uint64		nbytes;			/* its bytes (a multiple of VS_SEGMENT_ALIGN) */
	int			piece;			/* the new piece it goes to */
} OutCluster;

/* a piece a compaction writes; the first one holds the head */
typedef struct OutPiece
{
	BlockNumber run;			/* the free run it fills, or Invalid: a place
								 * found when it is written (the end of the
								 * fork, usually) */
	uint64		capacity;		/* the run's bytes */
	uint64		used;			/* bytes laid out */
	VsBlobWriter *w;
} OutPiece;

/* a piece that does not hold the head starts with a small one of its own:
 * a header and a piece table of one entry (vssegment.c checks it) */
#define VS_MINI_HEAD_SIZE		VsSealedHeadSize(0, 0, 1)

/* new pieces one compaction may write (free runs it fills, and the end) */
#define VS_COMPACT_MAX_NEW_PIECES	8

/* a free run smaller than this (1 MB) is not worth a piece, a file and a
 * mapping of its own */
#define VS_PIECE_MIN_BLOCKS		128

static int
out_cmp_size(const void *a, const void *b)
{
	const OutCluster *x = *(OutCluster *const *) a;
	const OutCluster *y = *(OutCluster *const *) b;

	if (x->nbytes != y->nbytes)
		return x->nbytes > y->nbytes ? -1 : 1;
	return (x->cluster > y->cluster) - (x->cluster < y->cluster);
}

/*
 * plan_pieces - choose the new pieces (at most "maxnew") and the one each
 * of the "nout" written clusters goes to, so that the fork's free runs
 * ("runs", by block) fill before it grows.  All of it goes as one piece
 * into the first run that holds it, when one does.  Else the head goes to
 * the first run it fits in (small: the next compaction rewrites it and
 * frees its run), then the clusters, largest first, each to the first
 * piece with room, else to a new piece in the first run of at least
 * VS_PIECE_MIN_BLOCKS it fits in, else to one piece at the end of the fork
 * (where the head goes too when no run holds it or no cluster found a run,
 * or when only one piece may be written: that piece takes the first run that holds all of it, or
 * the end).  "headbytes" bounds the head's size.  Returns the number of
 * pieces.
 */
static int
plan_pieces(OutCluster *out, int nout, const VsRegion *runs, int nruns, int maxnew,
			uint64 headbytes, OutPiece *op)
{
	OutCluster **order = palloc(sizeof(OutCluster *) * Max(nout, 1));
	bool	   *taken = palloc0(sizeof(bool) * Max(nruns, 1));
	int			nop = 1;
	int			overflow = 0;

	memset(op, 0, sizeof(OutPiece) * VS_MAX_PIECES);
	op[0].run = InvalidBlockNumber;
	op[0].capacity = PG_UINT64_MAX;
	op[0].used = headbytes;

	/* all of it in the first run that holds it: one piece */
	{
		uint64		total = headbytes;

		for (int i = 0; i < nout; i++)
			total += out[i].nbytes;
		for (int r = 0; r < nruns; r++)
		{
			if (runs[r].nbytes >= total)
			{
				op[0].run = runs[r].start;
				op[0].capacity = runs[r].nbytes;
				for (int i = 0; i < nout; i++)
					out[i].piece = 0;
				op[0].used = total;
				pfree(order);
				pfree(taken);
				return 1;
			}
		}
	}

	/* one piece only: it goes at the end (the head with it) */
	if (maxnew >= 2)
	{
		for (int r = 0; r < nruns; r++)
		{
			if (runs[r].nbytes >= headbytes)
			{
				op[0].run = runs[r].start;
				op[0].capacity = runs[r].nbytes;
				taken[r] = true;
				overflow = -1;
				break;
			}
		}
	}
	for (int i = 0; i < nout; i++)
		order[i] = &out[i];
	if (nout > 1)
		qsort(order, nout, sizeof(OutCluster *), out_cmp_size);
	for (int i = 0; i < nout; i++)
	{
		OutCluster *u = order[i];
		int			p = -1;

		for (int q = 0; q < nop && p < 0; q++)
		{
			if (BlockNumberIsValid(op[q].run) && op[q].used + u->nbytes <= op[q].capacity)
				p = q;
		}
		/* a new piece in a run, while one is left for the end */
		for (int r = 0; r < nruns && p < 0 && nop + (overflow < 0 ? 1 : 0) < maxnew; r++)
		{
			if (taken[r] || runs[r].nblocks < VS_PIECE_MIN_BLOCKS ||
				VS_MINI_HEAD_SIZE + u->nbytes > runs[r].nbytes)
				continue;
			p = nop++;
			op[p].run = runs[r].start;
			op[p].capacity = runs[r].nbytes;
			op[p].used = VS_MINI_HEAD_SIZE;
			taken[r] = true;
		}
		if (p < 0)
		{
			if (overflow < 0)
			{
				overflow = nop++;
				op[overflow].run = InvalidBlockNumber;
				op[overflow].capacity = PG_UINT64_MAX;
				op[overflow].used = VS_MINI_HEAD_SIZE;
			}
			p = overflow;
		}
		u->piece = p;
		op[p].used += u->nbytes;
	}
	pfree(order);
	pfree(taken);

	/* no cluster found a run: the head goes with them, as one piece */
	if (nop == 2 && overflow == 1)
	{
		op[0] = op[1];
		op[0].used += headbytes - VS_MINI_HEAD_SIZE;
		for (int i = 0; i < nout; i++)
			out[i].piece = 0;
		nop = 1;
	}
	return nop;
}

/* the runs of a list that end before block "below" */
static int
runs_before(const VsRegion *runs, int nruns, BlockNumber below)
{
	while (nruns > 0 && runs[nruns - 1].start + runs[nruns - 1].nblocks > below)
		nruns--;
	return nruns;
}

/*
 * choose_relocation - the last piece of the fork (by its first block)
 * whose clusters and a head fit into the free runs of "fl" before it, as a
 * compaction would place them (plan_pieces); -1 when none does.
 */
static int
choose_relocation(VsMetaPage meta, const VsClusterInfo *info, const VsPieceInfo *pieces,
				  uint32 npieces, VsFreeList *fl)
{
	int			nruns;
	VsRegion   *runs = VsFreeListRuns(fl, &nruns);
	OutCluster *out = palloc(sizeof(OutCluster) * Max(meta->nclusters, 1));
	bool	   *tried = palloc0(sizeof(bool) * npieces);
	int			found = -1;

	for (uint32 round = 0; round < npieces && found < 0; round++)
	{
		int			top = -1;
		int			nout = 0;
		int			nop;
		OutPiece	op[VS_MAX_PIECES];
		bool		fits = true;

		for (uint32 p = 0; p < npieces; p++)
		{
			if (!tried[p] && (top < 0 || pieces[p].region.start > pieces[top].region.start))
				top = (int) p;
		}
		tried[top] = true;
		for (uint32 c = 0; c < meta->nclusters; c++)
		{
			if (info[c].piece != pieces[top].generation)
				continue;
			out[nout].source = c;
			out[nout].cluster = c;
			out[nout].nbytes = info[c].nbytes;
			nout++;
		}
		nop = plan_pieces(out, nout, runs, runs_before(runs, nruns, pieces[top].region.start),
						  Min(VS_MAX_PIECES - (int) npieces + 1, VS_COMPACT_MAX_NEW_PIECES),
						  VsSealedHeadSize(meta->nclusters, meta->params_size, VS_MAX_PIECES), op);
		for (int q = 0; q < nop; q++)
			fits = fits && BlockNumberIsValid(op[q].run);
		if (fits)
			found = top;
	}
	pfree(runs);
	pfree(out);
	pfree(tried);
	return found;
}

/*
 * write_bitmap - the new generation's deletion bitmap, when it grows past
 * the old one's bits or an extended re-seal keeps dead rows: the old bits
 * copied, then each such cluster's (cc[c].tombbits, at newinfo[c].first_row,
 * a range no generation used before), in at least "bits" bits (twice what
 * is needed when it grows, so that it grows seldom); written into free
 * blocks or at the end of the fork, WAL-logged by the caller with the new
 * piece.  The old region stays for the scans of the generation before
 * (the caller retires it).  Bits are set only in a region that the switch
 * publishes, so a compaction that stops before it leaves none set past
 * the rows in use (vecstore_verify checks).
 */
static VsRegion
write_bitmap(Relation index, VsMetaPage meta, uint64 bits, const CompactCluster *cc,
			 const VsClusterInfo *info, const VsClusterInfo *newinfo, VsFreeList *fl,
			 BufferAccessStrategy bas)
{
	uint64		nbytes = bits > meta->bitmap.nbytes * 8 ? (bits + 7) / 8 * 2 : meta->bitmap.nbytes;
	BlockNumber nblocks = (BlockNumber) ((nbytes + VS_BLOB_PAYLOAD - 1) / VS_BLOB_PAYLOAD);
	uint8	   *map = palloc_extended(nbytes, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	VsBlobWriter w;
	uint64		off = 0;

	while (off < meta->bitmap.nbytes)
	{
		Size		n = Min(meta->bitmap.nbytes - off, (uint64) VS_BLOB_PAYLOAD);

		VsBlobRead(index, &meta->bitmap, off, map + off, n, bas);
		off += n;
	}
	for (uint32 c = 0; c < meta->nclusters; c++)
	{
		if (cc[c].tombbits == NULL)
			continue;
		for (uint32 i = 0; i < info[c].count; i++)
		{
			uint64		row = newinfo[c].first_row + i;

			if (cc[c].tombbits[i / 8] & (1 << (i % 8)))
				map[row / 8] |= (uint8) (1 << (row % 8));
		}
	}
	VsBlobBeginIn(&w, index, VsFreeListAllocate(index, fl, nblocks), nblocks);
	VsBlobWrite(&w, map, nbytes);
	pfree(map);
	return VsBlobEnd(&w);
}

/*
 * part_of - the part each of "n" rows goes to in a split cluster.
 */
static int32 *
part_of(VsMetaPage meta, const CompactCluster *cc, const float *vecs, int64 n)
{
	int32	   *part = palloc_extended(sizeof(int32) * Max(n, 1), MCXT_ALLOC_HUGE);

	VsKmeansAssign(cc->centroids, cc->norms, cc->nparts, (int) meta->dims,
				   (VsMetric) meta->row_metric, vecs, (int) n, part, NULL, &VsKmeansServerHooks);
	return part;
}

/*
 * plan_split - split a cluster of "n" live rows (in "vecs") into "k"
 * parts by k-means, trained as the build trains its centroids and with
 * rows assigned as the build assigns them; fills cc->nparts (0 when the
 * rows do not split: too few distinct ones), centroids, norms and counts,
 * in the caller's memory context.
 */
static void
plan_split(VsMetaPage meta, CompactCluster *cc, const float *vecs, int64 n, int k)
{
	VsKmeansOptions opt;
	float	   *centroids = palloc(sizeof(float) * meta->dims * k);
	int			got;
	int32	   *part;
	int			kept = 0;

	cc->nparts = 0;
	VsKmeansOptionsInit(&opt);
	opt.seed = VS_KMEANS_SEED;
	got = VsKmeansTrain(vecs, (int) n, (int) meta->dims, k, (VsMetric) meta->metric, &opt,
						&VsKmeansServerHooks, centroids, NULL);
	if (got < 2)
		return;
	cc->nparts = got;
	cc->centroids = centroids;
	cc->norms = palloc(sizeof(float) * got);
	VsKmeansCentroidNorms(centroids, got, (int) meta->dims, cc->norms);
	part = part_of(meta, cc, vecs, n);
	cc->counts = palloc0(sizeof(int64) * got);
	for (int64 i = 0; i < n; i++)
		cc->counts[part[i]]++;

	/* parts that took no row are dropped */
	for (int j = 0; j < got; j++)
	{
		if (cc->counts[j] == 0)
			continue;
		memmove(centroids + (Size) kept * meta->dims, centroids + (Size) j * meta->dims,
				sizeof(float) * meta->dims);
		cc->counts[kept++] = cc->counts[j];
	}
	cc->nparts = kept >= 2 ? kept : 0;
	if (kept >= 2 && kept < got)
		VsKmeansCentroidNorms(centroids, kept, (int) meta->dims, cc->norms);
}

/* the cluster that part "j" of a split cluster "c" becomes */
static inline uint32
part_cluster(const CompactCluster *cc, uint32 c, int j)
{
	return j == 0 ? c : cc->part_ids[j];
}

/*
 * slot_free - may cluster "c" (of the "nclusters" the old generation has)
 * hold a part of a split cluster in the new generation?  When it was
 * merged by an earlier compaction (its host reads its chain in the old
 * generation), nothing of this compaction touches it (not chosen: no
 * unfolded row, live or removed, is on its chain up to the end
 * count_delta saw, so none is left to give away), and no part took it
 * yet.  One that choose_pieces moves with its piece (it holds no row: its
 * bytes are an empty cluster's) is free too, and stays behind when a part
 * takes it: otherwise the merged slots of a piece that every compaction
 * evacuates would never be free, and a directory at capacity would never
 * split again.
 *
 * Why that is safe: the slot keeps its directory entry, its chain and its
 * fold position (delta_blk, delta_off, delta_folded), as every compaction
 * keeps a chain; both generations read the chain from that same position,
 * past the last row folded, the old one through the host's probes and the
 * new one through the cluster's own.  A row appended later (by an insert
 * routed with the old generation's centroids, or the new one's) is on the
 * chain after that position: each generation reads it once, and the new
 * one never reads a row of the old chain that the host took.  Its sealed
 * rows are new (a part of the split cluster's rows, which the old
 * generation reads in that cluster); the old generation read none there.
 */
static inline bool
slot_free(const CompactCluster *cc, const int32 *hosts, uint32 c, uint32 nclusters)
{
	return c < nclusters && hosts != NULL && hosts[c] >= 0 && cc[c].merged &&
		(!cc[c].chosen || cc[c].move) &&
		!cc[c].reused && cc[c].delta_live == 0 && cc[c].delta_dead == 0;
}

/*
 * drop_leaving - the "n" rows of cluster "cc" (collect_group's) less those
 * plan_moves gives to other clusters, packed in place; returns how many.
 */
static int64
drop_leaving(const CompactCluster *cc, float *vecs, ItemPointerData *tids, int64 n, int dims)
{
	int64		kept = 0;

	for (int64 i = 0; i < n; i++)
	{
		if (i < cc->nleaves && cc->leaves[i])
			continue;
		if (kept != i)
		{
			memmove(vecs + (Size) kept * dims, vecs + (Size) i * dims, sizeof(float) * dims);
			tids[kept] = tids[i];
		}
		kept++;
	}
	return kept;
}

/*
 * Extended re-seals.  A cluster's graph is extended, its new rows inserted
 * into the one it had (VsHnswExtend), only when its sealed rows stay the
 * first ones, in their order: a re-seal that drops one builds the graph
 * anew, five to ten times the work of inserting a tenth more rows.  Rows
 * VACUUM removed, and rows plan_moves gives to a split cluster's parts
 * (most of a split's neighbours lose a few), would do that.  So while
 * they are few, at most VS_EXTEND_DEAD_FACTOR times the compaction
 * threshold of the cluster's rows, they stay in place, their deletion bits
 * set in the new generation (the bitmap is written anew, write_bitmap),
 * and the cluster counts them (sealed_dead) so that they do not make it
 * due again; scans skip them as they skip any removed row, and the graph
 * still routes through them.  Past that, or when the threshold is 0 (a
 * forced compaction of everything), the re-seal drops them and builds.
 */
#define VS_EXTEND_DEAD_FACTOR	2.0

/* the rows of cluster "cc" given away (plan_moves) among its first "nlive" */
static uint64
sealed_leaving(const CompactCluster *cc, int64 nlive)
{
	uint64		k = 0;

	for (int64 i = 0; i < Min(nlive, cc->nleaves); i++)
		k += cc->leaves[i] ? 1 : 0;
	return k;
}

/*
 * extend_rows - the rows of chosen cluster "c" as an extended re-seal
 * writes them: every sealed row in its place, the removed ones and those
 * given away among them, then the rows collect_group gave after its live
 * sealed ones (*vecsp, *tidsp and *np: its result, replaced), less those
 * given away.  Sets cc->tombbits (allocated in "cxt"): the sealed rows
 * kept dead.
 */
static void
extend_rows(Relation index, VsMetaPage meta, const char *body, uint32 c, CompactCluster *cc,
			MemoryContext cxt, float **vecsp, ItemPointerData **tidsp, int64 *np,
			BufferAccessStrategy bas)
{
	const VsClusterInfo *info = VsHeadClusters(body) + c;
	int			dims = (int) meta->dims;
	int			elem = VsMetaElemSize(meta);
	Size		vsize = VsRowBytes(elem, dims);
	int64		nlive = (int64) (info->count - cc->dead);
	int64		total = (int64) info->count + (*np - nlive);
	float	   *vecs = palloc_extended(sizeof(float) * dims * Max(total, 1), MCXT_ALLOC_HUGE);
	ItemPointerData *tids = palloc_extended(sizeof(ItemPointerData) * Max(total, 1), MCXT_ALLOC_HUGE);
	uint32		shift;
	uint8	   *bits = VsDeletionBits(index, meta, info, bas, &shift);
	int64		live = 0;
	int64		n = 0;
	uint64		tombs = 0;

	cc->tombbits = MemoryContextAllocZero(cxt, (info->count + 7) / 8);
	for (uint32 i = 0; i < info->count; i++)
	{
		bool		dead;

		if (VsRowDeleted(bits, shift, i))
		{
			/* removed: collect_group skipped it, read it here */
			VsDecodeRow(elem, body + info->vec_offset + (Size) i * vsize, dims,
						vecs + (Size) n * dims);
			memcpy(&tids[n], body + info->tid_offset + sizeof(ItemPointerData) * i,
				   sizeof(ItemPointerData));
			dead = true;
		}
		else
		{
			/* live: collect_group's next row (its live sealed rows come first) */
			memcpy(vecs + (Size) n * dims, *vecsp + (Size) live * dims, sizeof(float) * dims);
			tids[n] = (*tidsp)[live];
			dead = live < cc->nleaves && cc->leaves[live];
			live++;
		}
		if (dead)
		{
			cc->tombbits[i / 8] |= (uint8) (1 << (i % 8));
			tombs++;
		}
		n++;
	}
	if (bits)
		pfree(bits);
	for (int64 j = nlive; j < *np; j++)
	{
		if (j < cc->nleaves && cc->leaves[j])
			continue;
		memcpy(vecs + (Size) n * dims, *vecsp + (Size) j * dims, sizeof(float) * dims);
		tids[n++] = (*tidsp)[j];
	}
	if (tombs != cc->tombs)
		elog(ERROR, "index \"%s\": cluster %u keeps " UINT64_FORMAT " dead rows, " UINT64_FORMAT " were planned",
			 RelationGetRelationName(index), c, tombs, cc->tombs);
	pfree(*vecsp);
	pfree(*tidsp);
	*vecsp = vecs;
	*tidsp = tids;
	*np = n;
}

/*
 * The clusters whose rows plan_moves checks around a split cluster: the
 * split one's nearest by centroid.  A row can only come to prefer a part
 * of the split cluster when it lies near that cluster's cell, in the cell
 * of a neighbour.
 */
#define VS_MOVE_NEIGHBOURS	16

/*
 * plan_moves - after the splits are planned (plan_split): rows that a
 * split leaves nearer another cluster's centroid than their own go there,
 * as the build would have assigned them.  A split cluster's parts have
 * centroids of their own, in its old cell: a row of it may now be nearer a
 * neighbour's centroid than any part's, and a row of a neighbour nearer a
 * part than its own cluster's centroid.  Such rows lie outside their
 * cluster's Voronoi cell, which the scans' bounds assume they are in
 * (vsscan_policy.c): SIFT grown tenfold by inserts had 8.6 % of its rows
 * there, and recall 0.007 below a fresh build's (bench/RESULTS.md, "Rows
 * in their cells after splits").
 *
 * The rows of every split cluster and of its VS_MOVE_NEIGHBOURS nearest
 * clusters are compared with the centroids around them (a split cluster's
 * with its parts and its neighbours', a neighbour's with its own and the
 * parts of the splits it is near); a row that prefers another cluster
 * there is assigned among all centroids, and may go to the nearest one's
 * cluster.  Both clusters are then re-sealed, so a cluster that this
 * compaction would not re-seal anyway (chosen, and not only moved with
 * its piece) gives or takes rows only when they reach "threshold" of its
 * live rows, and VS_COMPACT_MIN_ROWS: the bar its inserted rows must pass
 * too, so that a split does not rewrite its neighbours for a few rows.
 * The moves that touch a cluster under the bar stay where they are (and
 * may take another cluster under it, so this repeats until none does).
 * A row that goes is marked in its cluster's "leaves" (the order of
 * collect_group now, moved rows not included) and named in the taker's
 * "inc".  A split cluster's counts per part are counted again (part_of,
 * as it is written; a row it takes is given its part when proposed).
 * Returns the rows moved; *chosen gets the clusters chosen only for this.
 *
 * Memory: what it leaves in the caller's context is the "leaves" flags and
 * the moved rows' references in "inc" (8 bytes a row, in arrays of their
 * exact size); the rest (the proposals, per-row parts, centroids) goes
 * with a context of its own at the end.  It once kept three copies of each
 * moving row's vector, with up to twice their size in slack: 222 MB after a
 * compaction of a 1M x 128 index moved 102,788 rows; then one copy, until
 * the compaction ended.
 */
static int64
plan_moves(Relation index, VsMetaPage meta, const char **bodyp, const float *centroids,
		   const VsClusterInfo *info, double threshold, CompactCluster *cc, Incoming *inc,
		   MemoryContext rowcxt, BufferAccessStrategy bas, int *chosen)
{
	uint32		nc = meta->nclusters;
	int			dims = (int) meta->dims;
	VsMetric	metric = (VsMetric) meta->row_metric;
	int			nl = 0;
	float	   *lc;				/* every centroid of the new generation */
	float	   *ln;
	uint32	   *lsrc;			/* the cluster whose rows a centroid's takes */
	int		   *first;			/* per cluster: its first centroid in lc */
	int32	  **near;			/* per split cluster: its nearest clusters */
	int		   *nnear;
	bool	   *examine;
	int64		total = 0;
	float	   *sc;
	float	   *sn;
	int		   *sref;
	/* the moves proposed: from, its place there, to, its part there */
	int64		nprop = 0;
	int64		capprop = 64;
	uint32	   *pfrom;
	int64	   *ppos;
	uint32	   *pto;
	int32	   *ppart;
	bool	   *pon;
	int32	  **parts;			/* per split cluster: the part of each row */
	int64	   *touch;
	int64	   *ntake;			/* per cluster: the rows it takes */
	bool		changed;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext tmpcxt = AllocSetContextCreate(outer, "vecstore compaction moves",
												 ALLOCSET_DEFAULT_SIZES);

	MemoryContextSwitchTo(tmpcxt);

	/*
	 * The centroids: a split cluster's parts, every other live one's own (a
	 * merged slot that a part reuses is that part)
	 */
	for (uint32 c = 0; c < nc; c++)
	{
		if (!cc[c].merged && !cc[c].reused)
			nl += cc[c].nparts >= 2 ? cc[c].nparts : 1;
	}
	lc = palloc_extended(sizeof(float) * dims * Max(nl, 1), MCXT_ALLOC_HUGE);
	ln = palloc(sizeof(float) * Max(nl, 1));
	lsrc = palloc(sizeof(uint32) * Max(nl, 1));
	first = palloc(sizeof(int) * nc);
	nl = 0;
	for (uint32 c = 0; c < nc; c++)
	{
		int			k = cc[c].nparts >= 2 ? cc[c].nparts : 1;

		first[c] = -1;
		if (cc[c].merged || cc[c].reused)
			continue;
		first[c] = nl;
		memcpy(lc + (Size) nl * dims,
			   cc[c].nparts >= 2 ? cc[c].centroids : centroids + (Size) c * dims,
			   sizeof(float) * dims * k);
		for (int j = 0; j < k; j++)
			lsrc[nl++] = c;
	}
	VsKmeansCentroidNorms(lc, nl, dims, ln);

	/* the neighbours of each split cluster, by the old centroids */
	near = palloc0(sizeof(int32 *) * nc);
	nnear = palloc0(sizeof(int) * nc);
	examine = palloc0(sizeof(bool) * nc);
	for (uint32 c = 0; c < nc; c++)
	{
		float	   *dist;
		int32	   *ids;
		int			n = 0;

		if (first[c] < 0 || cc[c].nparts < 2)
			continue;
		examine[c] = true;
		dist = palloc(sizeof(float) * nc);
		ids = palloc(sizeof(int32) * nc);
		for (uint32 d = 0; d < nc; d++)
		{
			double		sum = 0;

			if (d == c || first[d] < 0)
				continue;
			for (int j = 0; j < dims; j++)
			{
				double		t = centroids[(Size) c * dims + j] - centroids[(Size) d * dims + j];

				sum += t * t;
			}
			/* insertion into the nearest VS_MOVE_NEIGHBOURS so far */
			if (n == VS_MOVE_NEIGHBOURS && sum >= dist[n - 1])
				continue;
			if (n < VS_MOVE_NEIGHBOURS)
				n++;
			{
				int			at = n - 1;

				while (at > 0 && dist[at - 1] > sum)
				{
					dist[at] = dist[at - 1];
					ids[at] = ids[at - 1];
					at--;
				}
				dist[at] = (float) sum;
				ids[at] = (int32) d;
			}
		}
		near[c] = ids;
		nnear[c] = n;
		for (int i = 0; i < n; i++)
			examine[ids[i]] = true;
		pfree(dist);
	}

	/* each examined cluster's rows against the centroids around them */
	pfrom = palloc(sizeof(uint32) * capprop);
	ppos = palloc(sizeof(int64) * capprop);
	pto = palloc(sizeof(uint32) * capprop);
	ppart = palloc(sizeof(int32) * capprop);
	parts = palloc0(sizeof(int32 *) * nc);
	sc = palloc_extended(sizeof(float) * dims * Max(nl, 1), MCXT_ALLOC_HUGE);
	sn = palloc(sizeof(float) * Max(nl, 1));
	sref = palloc(sizeof(int) * Max(nl, 1));
	for (uint32 d = 0; d < nc; d++)
	{
		MemoryContext oldcxt;
		float	   *vecs;
		ItemPointerData *tids;
		int64		n;
		int			ns = 0;
		int32	   *asg;
		bool		split = cc[d].nparts >= 2;

		if (!examine[d])
			continue;
		CHECK_FOR_INTERRUPTS();

		/* the centroids it is compared with */
#define ADD_CLUSTER(x) \
		do { \
			int k_ = cc[x].nparts >= 2 ? cc[x].nparts : 1; \
			for (int j_ = 0; j_ < k_; j_++) \
				sref[ns++] = first[x] + j_; \
		} while (0)
		ADD_CLUSTER(d);
		if (split)
		{
			for (int i = 0; i < nnear[d]; i++)
				ADD_CLUSTER(near[d][i]);
		}
		else
		{
			for (uint32 c = 0; c < nc; c++)
			{
				for (int i = 0; i < nnear[c]; i++)
				{
					if (near[c][i] == (int32) d)
					{
						ADD_CLUSTER(c);
						break;
					}
				}
			}
		}
#undef ADD_CLUSTER
		for (int i = 0; i < ns; i++)
		{
			memcpy(sc + (Size) i * dims, lc + (Size) sref[i] * dims, sizeof(float) * dims);
			sn[i] = ln[sref[i]];
		}

		oldcxt = MemoryContextSwitchTo(rowcxt);
		*bodyp = collect_group(index, meta, *bodyp, d, cc, inc, false, &vecs, &tids, &n, bas);
		asg = palloc(sizeof(int32) * Max(n, 1));
		VsKmeansAssign(sc, sn, ns, dims, metric, vecs, (int) n, asg, NULL, &VsKmeansServerHooks);
		MemoryContextSwitchTo(oldcxt);

		cc[d].leaves = MemoryContextAllocZero(outer, sizeof(bool) * Max(n, 1));
		cc[d].nleaves = n;

		/* the rows that prefer another cluster here: the nearest of all */
		{
			int64		nout = 0;
			int64	   *outpos;
			float	   *outvecs;
			int32	   *outasg;

			oldcxt = MemoryContextSwitchTo(rowcxt);
			outpos = palloc(sizeof(int64) * Max(n, 1));
			for (int64 i = 0; i < n; i++)
			{
				if (lsrc[sref[asg[i]]] != d)
					outpos[nout++] = i;
			}
			outvecs = palloc_extended(sizeof(float) * dims * Max(nout, 1), MCXT_ALLOC_HUGE);
			for (int64 o = 0; o < nout; o++)
				memcpy(outvecs + (Size) o * dims, vecs + (Size) outpos[o] * dims,
					   sizeof(float) * dims);
			outasg = palloc(sizeof(int32) * Max(nout, 1));
			if (nout > 0)
				VsKmeansAssign(lc, ln, nl, dims, metric, outvecs, (int) nout, outasg, NULL,
							   &VsKmeansServerHooks);
			/* the subset's choice stands for the others */
			for (int64 i = 0; i < n; i++)
				asg[i] = -1;
			for (int64 o = 0; o < nout; o++)
				asg[outpos[o]] = outasg[o];
			MemoryContextSwitchTo(oldcxt);
		}
		for (int64 i = 0; i < n; i++)
		{
			int32		t = asg[i];

			if (t < 0 || lsrc[t] == d)
				continue;
			if (nprop == capprop)
			{
				capprop *= 2;
				pfrom = repalloc_huge(pfrom, sizeof(uint32) * capprop);
				ppos = repalloc_huge(ppos, sizeof(int64) * capprop);
				pto = repalloc_huge(pto, sizeof(uint32) * capprop);
				ppart = repalloc_huge(ppart, sizeof(int32) * capprop);
			}
			pfrom[nprop] = d;
			ppos[nprop] = i;
			pto[nprop] = lsrc[t];
			/* the part of a split taker it would go to */
			ppart[nprop] = -1;
			if (cc[lsrc[t]].nparts >= 2)
			{
				int32	   *part;

				oldcxt = MemoryContextSwitchTo(rowcxt);
				part = part_of(meta, &cc[lsrc[t]], vecs + (Size) i * dims, 1);
				ppart[nprop] = part[0];
				pfree(part);
				MemoryContextSwitchTo(oldcxt);
			}
			nprop++;
		}
		if (split)
		{
			/* the part of each row, as it will be written */
			oldcxt = MemoryContextSwitchTo(rowcxt);
			asg = part_of(meta, &cc[d], vecs, n);
			MemoryContextSwitchTo(oldcxt);
			parts[d] = palloc(sizeof(int32) * Max(n, 1));
			memcpy(parts[d], asg, sizeof(int32) * n);
		}
		MemoryContextReset(rowcxt);
	}

	/* the bar: no cluster re-sealed for fewer moves than inserts need */
	pon = palloc(sizeof(bool) * Max(nprop, 1));
	for (int64 m = 0; m < nprop; m++)
		pon[m] = true;
	touch = palloc(sizeof(int64) * nc);
	do
	{
		changed = false;
		memset(touch, 0, sizeof(int64) * nc);
		for (int64 m = 0; m < nprop; m++)
		{
			if (!pon[m])
				continue;
			touch[pfrom[m]]++;
			touch[pto[m]]++;
		}
		for (int64 m = 0; m < nprop; m++)
		{
			bool		keep = true;

			if (!pon[m])
				continue;
			for (int e = 0; e < 2 && keep; e++)
			{
				uint32		x = e == 0 ? pfrom[m] : pto[m];
				double		live = (double) own_rows(&info[x], &cc[x]);

				if (cc[x].chosen && !cc[x].move)
					continue;
				keep = touch[x] >= VS_COMPACT_MIN_ROWS && touch[x] >= threshold * live;
			}
			if (!keep)
			{
				pon[m] = false;
				changed = true;
			}
		}
	} while (changed);

	/* the moves that stand */
	ntake = palloc0(sizeof(int64) * nc);
	for (int64 m = 0; m < nprop; m++)
	{
		if (!pon[m])
			continue;
		cc[pfrom[m]].leaves[ppos[m]] = true;
		cc[pfrom[m]].left++;
		ntake[pto[m]]++;
		total++;
	}
	for (uint32 d = 0; d < nc; d++)
	{
		/* a split cluster's rows that stay, per part */
		if (parts[d] == NULL)
			continue;
		memset(cc[d].counts, 0, sizeof(int64) * cc[d].nparts);
		for (int64 i = 0; i < cc[d].nleaves; i++)
		{
			if (!cc[d].leaves[i])
				cc[d].counts[parts[d][i]]++;
		}
	}

	/*
	 * The takers: the rows come after their own and those merged in, named
	 * in the order of the proposals (each giver's together)
	 */
	MemoryContextSwitchTo(outer);
	for (uint32 t = 0; t < nc; t++)
	{
		if (ntake[t] > 0)
			incoming_reserve(&inc[t], inc[t].n + ntake[t]);
	}
	for (int64 m = 0; m < nprop; m++)
	{
		if (!pon[m])
			continue;
		incoming_add(&inc[pto[m]], pfrom[m], ppos[m]);
		if (ppart[m] >= 0)
			cc[pto[m]].counts[ppart[m]]++;
	}
	for (uint32 t = 0; t < nc; t++)
	{
		cc[t].absorbed += ntake[t];
		if (ntake[t] > 0 || cc[t].left > 0)
		{
			if (!cc[t].chosen)
				(*chosen)++;
			cc[t].chosen = true;
			cc[t].move = false;
		}
	}
	MemoryContextSwitchTo(outer);
	MemoryContextDelete(tmpcxt);
	return total;
}

/*
 * extends_graph - does the re-seal of chosen cluster "c" (not split, not
 * merged, not moved with its piece) extend the graph it had?  When no
 * sealed row is removed (or they are kept in place: "extend"), they come
 * first, in their order, so the graph they had is the start of the new one.
 */
static bool
extends_graph(const CompactCluster *cc, const VsClusterInfo *info)
{
	return !cc->rebuild && (cc->extend || (cc->dead == 0 && cc->left == 0)) &&
		info->graph_offset != 0 && info->count > 0;
}

/*
 * Parallel graphs.  Most of a compaction's time goes into the graphs of
 * the clusters it re-seals (perf, SIFT grown tenfold by INSERT and VACUUM:
 * 61 % of the backend's time, 34 % in graphs built anew and 26 % in graphs
 * extended; bench/RESULTS.md).  Those built anew (the
 * parts of split clusters, clusters that lost sealed rows) depend only on
 * their rows and codes, written to the fork before them, so they are
 * shared with parallel workers as CREATE INDEX shares its graphs
 * (vsbuild_parallel.c): written with their graphs' bytes zero, built by
 * every participant from the pages, patched into place, their CRCs
 * returned; the same bytes as a serial compaction.  Extended graphs stay
 * with the leader (they read the old generation's graph from its mapping).
 * Only a backend that runs VACUUM or vecstore_compact() itself does this,
 * outside parallel mode (a VACUUM with PARALLEL workers for other indexes
 * is in it), with up to max_parallel_maintenance_workers workers, one for
 * each VS_COMPACT_PARALLEL_ROWS rows of those graphs past the leader's
 * share: a worker takes a while to start (a growing SIFT index's VACUUMs,
 * whose splits build 2 or 3 graphs of 3,000-5,000 rows, were no faster
 * with workers).  The autovacuum workers and vecstore's compaction worker
 * compact serially, as autovacuum vacuums.
 */
#define VS_COMPACT_PARALLEL_ROWS	20000

static int
compaction_workers(int njobs, int64 job_rows)
{
	if (njobs < 2 || max_parallel_maintenance_workers <= 0 || IsInParallelMode() ||
		IsParallelWorker() || MyBackendType != B_BACKEND || !ActiveSnapshotSet())
		return 0;
	return (int) Min(Min(max_parallel_maintenance_workers, njobs - 1),
					 job_rows / VS_COMPACT_PARALLEL_ROWS - 1);
}

/*
 * write_region - a region of "len" bytes, into blocks reserved at the end
 * of the fork (WAL-logged by the caller with the rest).
 */
static VsRegion
write_region(Relation index, const void *data, Size len, VsFreeList *fl)
{
	BlockNumber nblocks = (BlockNumber) ((len + VS_BLOB_PAYLOAD - 1) / VS_BLOB_PAYLOAD);
	VsBlobWriter w;
	VsRegion	empty = {0, 0, 0};

	if (len == 0)
		return empty;
	VsBlobBeginIn(&w, index, VsFreeListAllocate(index, fl, nblocks), nblocks);
	VsBlobWrite(&w, data, len);
	return VsBlobEnd(&w);
}

/* WAL-log a region written into reserved blocks, in full */
static void
log_region(Relation index, const VsRegion *region)
{
	if (RelationNeedsWAL(index) && region->nblocks > 0)
		log_newpage_range(index, MAIN_FORKNUM, region->start, region->start + region->nblocks, true);
}

/*
 * Codes for an index that has none.  An index built on an empty table (or
 * truncated) had nothing to train codes on, and a compaction keeps the
 * codes' parameters of the generation it replaces: without this, such an
 * index would search its graphs over the full vectors until a REINDEX
 * (four times the bytes a scan reads at sq8, and for a halfvec index the
 * 16-bit rows).  Its first compaction with enough rows for a graph, in
 * which every cluster is re-sealed anyway (the common case: rows loaded
 * after CREATE INDEX, all of them in delta chains), trains them on a
 * uniform sample of its rows, as CREATE INDEX would, and re-seals every
 * cluster with codes and a graph built anew.  Not where a cluster merged
 * before keeps a slot in an older piece (that piece would be kept, without
 * codes): then REINDEX.
 */
static bool
wants_codes(Relation index, VsMetaPage meta, const int32 *hosts)
{
	int			m,
				ef_construction,
				quantizer;

	if (meta->params_size != 0 || VsMetaElemSize(meta) == VS_ELEM_BIT)
		return false;
	VsGetGraphOptions(index, &m, &ef_construction, &quantizer);
	if (quantizer == VS_QUANTIZER_NONE)
		return false;
	for (uint32 c = 0; hosts != NULL && c < meta->nclusters; c++)
	{
		if (hosts[c] >= 0)
			return false;
	}
	return true;
}

/*
 * train_codes - the codes' parameters from a uniform sample of the live
 * rows of every cluster (each chosen), at most what CREATE INDEX would
 * train on and half of maintenance_work_mem; NULL when it fails.
 */
static VsQuantParams *
train_codes(Relation index, VsMetaPage meta, const char **bodyp, const VsClusterInfo *info,
			const CompactCluster *cc, uint64 live, MemoryContext rowcxt,
			BufferAccessStrategy bas)
{
	int			dims = (int) meta->dims;
	int			quantizer;
	int			m,
				ef_construction;
	int64		cap = Max(VS_MIN_SAMPLE, (int64) VS_SAMPLES_PER_LIST * meta->nclusters);
	int64		step;
	int64		n = 0;
	int64		seen = 0;
	float	   *sample;
	VsQuantParams *params;
	VsQuantOptions qopt;
	VsQuantHooks qhooks = {VsKmeansServerHooks.alloc, VsKmeansServerHooks.free,
	VsKmeansServerHooks.check_interrupts};

	cap = Min(cap, (int64) ((Size) maintenance_work_mem * 1024 / 2 / (sizeof(float) * dims)));
	cap = Max(cap, 1);
	step = (int64) ((live + cap - 1) / cap);
	sample = palloc_extended(sizeof(float) * dims * (Size) Min((int64) live, cap), MCXT_ALLOC_HUGE);
	for (uint32 c = 0; c < meta->nclusters && n < cap; c++)
	{
		MemoryContext old;
		float	   *vecs;
		ItemPointerData *tids;
		int64		rows = own_rows(&info[c], &cc[c]);

		if (!cc[c].chosen || rows <= 0)
			continue;
		CHECK_FOR_INTERRUPTS();
		*bodyp = VsSegmentCluster(index, meta, *bodyp, c);
		old = MemoryContextSwitchTo(rowcxt);
		collect_rows(index, meta, *bodyp, c, &cc[c], &vecs, &tids, bas);
		MemoryContextSwitchTo(old);
		/* every step-th row of all of them, in cluster order */
		for (int64 i = (step - seen % step) % step; i < rows && n < cap; i += step)
			memcpy(sample + (Size) n++ * dims, vecs + (Size) i * dims, sizeof(float) * dims);
		seen += rows;
		MemoryContextReset(rowcxt);
	}

	VsGetGraphOptions(index, &m, &ef_construction, &quantizer);
	VsQuantOptionsInit(&qopt);
	qopt.kind = quantizer == VS_QUANTIZER_SQ4 ? VS_QUANT_SQ4 : VS_QUANT_SQ8;
	qopt.clip = VsQuantBuildClip(qopt.kind, (VsMetric) meta->metric);
	qopt.packed = vecstore_debug_packed_codes;
	params = palloc0(VsQuantParamsSize(dims));
	if (n == 0 || VsQuantTrain(sample, (int) n, dims, (VsMetric) meta->metric, NULL, NULL, &qopt,
							   &qhooks, params) != 0)
	{
		pfree(params);
		params = NULL;
	}
	pfree(sample);
	return params;
}

/*
 * publish - write the segment files of a compaction's new pieces (the
 * first one, the generation's own, and relocated ones), checked as they
 * are written, then switch the metapage to "newmeta" in one WAL record;
 * returns the record's position.  Files written for a generation that an
 * error (a cancel, the debug stop) keeps from being published are removed
 * again: nothing else would before the next compaction, and the pinner
 * takes the newest file of an index for its own.  Inserts read the
 * metapage for the directory's place only, which does not move; the delta
 * chains are untouched.  A concurrent change of the metapage would be a
 * bug: it checks that nothing moved under it.
 */
static XLogRecPtr
publish(Relation index, const VsMetaPageData *meta, VsMetaPageData *newmeta,
		const VsPieceInfo *newpieces, int nop, const char *head, const char *body)
{
	XLogRecPtr	lsn = InvalidXLogRecPtr;

	PG_TRY();
	{
		Buffer		metabuf;
		GenericXLogState *state;
		Page		metapage;

		VsSegmentWritePiece(index, newmeta);
		for (int q = 1; q < nop; q++)
			VsSegmentWriteOtherPiece(index, newmeta, &newpieces[q], head);
		VsSegmentRelease(body);
		VsCompactDebugStop(VS_COMPACT_STOP_LOGGED);

		progress(VS_PROGRESS_PHASE, VS_COMPACT_PHASE_SWITCHING);
		metabuf = ReadBuffer(index, VS_METAPAGE_BLKNO);
		LockBuffer(metabuf, BUFFER_LOCK_EXCLUSIVE);
		VsCheckPage(index, BufferGetPage(metabuf), VS_METAPAGE_BLKNO, VS_PAGE_META);
		if (((VsMetaPage) PageGetContents(BufferGetPage(metabuf)))->generation != meta->generation)
			elog(ERROR, "index \"%s\" changed generation during a compaction",
				 RelationGetRelationName(index));
		state = GenericXLogStart(index);
		metapage = GenericXLogRegisterBuffer(state, metabuf, 0);
		memcpy(PageGetContents(metapage), newmeta, sizeof(VsMetaPageData));
		VsPageSeal(metapage);
		lsn = GenericXLogFinish(state);
		UnlockReleaseBuffer(metabuf);
	}
	PG_CATCH();
	{
		VsSegmentRemoveUnpublished(index, meta->generation, meta->generation + (uint32) nop);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return lsn;
}

/*
 * VsCompact - re-seal the clusters whose delta rows and removed rows make
 * up at least "threshold" of their rows (and VS_COMPACT_MIN_ROWS), or,
 * when "threshold" is 0, every cluster with any; every cluster when it
 * trains the codes of an index that has none (wants_codes).  The caller holds
 * ShareUpdateExclusiveLock on the table and RowExclusiveLock on the index
 * (see the file's header).  Fills "result"; result->clusters is 0 when
 * nothing needed it (and nothing was written).
 */
static void
compact(Relation index, double threshold, bool relocate, BufferAccessStrategy bas,
		VsCompactResult *result)
{
	BlockNumber below = InvalidBlockNumber;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "vecstore compaction",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext rowcxt = AllocSetContextCreate(cxt, "vecstore compaction cluster",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	VsMetaPageData meta;
	VsMetaPageData newmeta;
	const char *body;
	const VsSealedHeader *sh;
	const VsClusterInfo *info;
	const VsPieceInfo *pieces;
	VsClusterInfo *newinfo;
	VsPieceInfo newpieces[VS_MAX_PIECES];
	VsPieceInfo kept[VS_MAX_PIECES];
	uint32		nkept = 0;
	uint32		nnew = 0;
	OutCluster *out;
	int			nout = 0;
	OutPiece	op[VS_MAX_PIECES];
	int			nop;
	VsRegion   *runs;
	int			nruns;
	CompactCluster *cc;
	VsClusterExtras ex;
	bool	   *jobs;
	int			njobs = 0;
	int64		job_rows = 0;
	int			nworkers;
	VsBuildParallel *par = NULL;
	VsFreeList	fl;
	int64		done_clusters = 0;
	int64		written = 0;
	char	   *oldhead;
	uint32		nclusters;
	uint32		capacity;
	uint32		nfree;
	uint32		next_free = 0;
	uint64		split_rows;
	int64		min_rows;
	Incoming   *inc;
	float	   *centroids;
	int32	   *hosts;
	bool		reshape;
	uint64		headsize;
	uint64		row_space;
	uint64		nrows = 0;
	VsSealedHeader newsh;
	char	   *head;
	bool		train = false;
	uint64		train_live = 0; /* live rows of every cluster, when train */
	VsQuantParams *trained = NULL;
	uint32		params_size;
	XLogRecPtr	lsn;

	memset(result, 0, sizeof(VsCompactResult));
	reshape = false;
	progress(VS_PROGRESS_INDEX, RelationGetRelid(index));
	progress(VS_PROGRESS_PHASE, VS_COMPACT_PHASE_COUNTING);
	VsReadMeta(index, &meta);
	result->generation = meta.generation;
	if (meta.nclusters == 0)
		goto done;
	body = VsSegmentBody(index, &meta);
	/* the head, kept apart: VsSegmentCluster may map the files anew */
	headsize = VsSealedHeadSize(meta.nclusters, meta.params_size, meta.npieces);
	oldhead = palloc_extended(headsize, MCXT_ALLOC_HUGE);
	memcpy(oldhead, body, headsize);
	sh = (const VsSealedHeader *) oldhead;
	info = VsHeadClusters(oldhead);
	pieces = VsHeadPieces(oldhead);

	/* the centroids, and the hosts of the clusters merged before */
	centroids = palloc_extended(sizeof(float) * meta.dims * meta.nclusters, MCXT_ALLOC_HUGE);
	hosts = VsReadCentroids(index, &meta, centroids, bas);

	/* what each cluster holds, and which pass the threshold */
	capacity = (uint32) (meta.directory.nbytes / sizeof(VsDirEntry));
	split_rows = VsGetMaxClusterRows(index) > 0 ? (uint64) VsGetMaxClusterRows(index) : meta.split_rows;
	split_rows = Max(split_rows, 2);
	min_rows = VsGetMinClusterRows(index);
	if (min_rows < 0)
		min_rows = (int64) (split_rows / VS_AUTO_MERGE_FRACTION);
	cc = palloc0(sizeof(CompactCluster) * meta.nclusters);
	if (relocate)
	{
		/*
		 * Moving down: the clusters of the last piece in the fork that fits
		 * into free runs before it, copied as they are (with the head,
		 * which every compaction writes anew).  Moving one that is not the
		 * last joins the runs around it, for the next round.
		 */
		int			top;

		VsFreeListLoad(index, &meta, &fl, bas);
		VsFreeListRipen(index, &meta, &fl, false);
		top = choose_relocation(&meta, info, pieces, sh->npieces, &fl);

		if (top < 0)
		{
			elog(DEBUG1, "vecstore: no piece of index \"%s\" fits into free runs before it",
				 RelationGetRelationName(index));
			VsSegmentRelease(body);
			goto done;
		}
		below = pieces[top].region.start;
		for (uint32 c = 0; c < meta.nclusters; c++)
		{
			if (info[c].piece == pieces[top].generation)
			{
				cc[c].chosen = true;
				cc[c].move = true;
				result->clusters++;
			}
		}
	}
	for (uint32 c = 0; c < meta.nclusters && !relocate; c++)
	{
		VsDirEntry	entry;
		uint64		changed;

		vacuum_delay_point();
		cc[c].dead = VsCountDeleted(index, &meta, &info[c], bas);
		VsBlobRead(index, &meta.directory, (uint64) c * sizeof(VsDirEntry), &entry, sizeof(entry),
				   bas);
		count_delta(index, &entry, &info[c], &cc[c], bas);
		changed = cc[c].dead + cc[c].delta_live + cc[c].delta_dead;
		if (threshold <= 0)
			cc[c].chosen = changed > 0;
		else
		{
			/* the dead rows it was sealed with do not count again */
			changed -= Min(cc[c].dead, (uint64) info[c].sealed_dead);
			cc[c].chosen = changed >= VS_COMPACT_MIN_ROWS &&
				changed >= threshold * (double) (info[c].count + cc[c].delta_live + cc[c].delta_dead);
		}
	}
	/* codes for an index without (wants_codes): every cluster re-sealed */
	if (!relocate && wants_codes(index, &meta, hosts))
	{
		for (uint32 c = 0; c < meta.nclusters; c++)
			train_live += (uint64) own_rows(&info[c], &cc[c]);
		train = train_live >= (uint64) Max(meta.graph_threshold, 1) &&
			train_live >= (uint64) VS_HNSW_FLAT_THRESHOLD;
		for (uint32 c = 0; c < meta.nclusters && train; c++)
		{
			cc[c].chosen = true;
			cc[c].rebuild = true;
		}
	}
	/* one grown past the bound is split (when the directory has room) */
	nfree = 0;
	for (uint32 c = 0; c < meta.nclusters && !relocate; c++)
	{
		if (hosts != NULL && hosts[c] >= 0 && !cc[c].chosen && cc[c].delta_live == 0 &&
			cc[c].delta_dead == 0)
			nfree++;
	}
	for (uint32 c = 0; c < meta.nclusters && !relocate; c++)
	{
		if ((uint64) own_rows(&info[c], &cc[c]) > split_rows &&
			(meta.nclusters < capacity || nfree > 0))
			cc[c].chosen = true;
	}
	inc = palloc0(sizeof(Incoming) * meta.nclusters);
	if (!relocate)
		result->merges = plan_merges(index, &meta, &body, info, centroids, hosts, (uint64) min_rows,
									 cc, inc, bas);
	for (uint32 c = 0; c < meta.nclusters && !relocate; c++)
	{
		if (cc[c].chosen)
			result->clusters++;
	}
	if (result->clusters == 0 && !relocate)
	{
		VsSegmentRelease(body);
		goto done;
	}
	if (!relocate)
	{
		result->clusters += choose_pieces(info, meta.nclusters, pieces, sh->npieces, cc);
		/* the free list: what earlier compactions retired may be reused now */
		VsFreeListLoad(index, &meta, &fl, bas);
		VsFreeListRipen(index, &meta, &fl, false);
	}
	progress(VS_PROGRESS_CLUSTERS_TOTAL, result->clusters);
	progress(VS_PROGRESS_PHASE, VS_COMPACT_PHASE_SPLITTING);

	{
		uint64		free_blocks,
					retired_blocks;

		VsFreeListBlocks(&fl, &free_blocks, &retired_blocks);
		elog(DEBUG1, "vecstore compaction of \"%s\": %d free list entries, " UINT64_FORMAT " blocks free, " UINT64_FORMAT " retired",
			 RelationGetRelationName(index), fl.n, free_blocks, retired_blocks);
	}

	/*
	 * Clusters grown past the bound are split, while the directory has
	 * room for more: k-means on the rows, into parts of about half the
	 * bound; the first part keeps the cluster's number, the others take
	 * the slots of clusters merged before (slot_free), then new numbers
	 * after the last.  Without reuse, an index that keeps changing shape
	 * would fill the directory with merged slots and stop splitting.  The
	 * rows are read here and again when written (the same rows, so the
	 * same parts).
	 */
	nclusters = meta.nclusters;
	nfree = 0;
	for (uint32 c = 0; c < meta.nclusters && !relocate; c++)
	{
		if (slot_free(cc, hosts, c, meta.nclusters))
			nfree++;
	}
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		uint64		live = (uint64) own_rows(&info[c], &cc[c]) + cc[c].absorbed;
		float	   *vecs;
		ItemPointerData *tids;
		int64		n;
		int			k;
		MemoryContext percxt;

		if (!cc[c].chosen || cc[c].move || cc[c].merged || live <= split_rows ||
			(nclusters >= capacity && nfree == 0))
			continue;
		k = (int) Min((uint64) (capacity - nclusters + nfree + 1),
					  VsSplitParts(live, split_rows));
		if (k < 2)
			continue;
		CHECK_FOR_INTERRUPTS();
		percxt = MemoryContextSwitchTo(rowcxt);
		body = collect_group(index, &meta, body, c, cc, inc, true, &vecs, &tids, &n, bas);
		MemoryContextSwitchTo(cxt);
		plan_split(&meta, &cc[c], vecs, n, k);
		MemoryContextSwitchTo(percxt);
		MemoryContextReset(rowcxt);
		if (cc[c].nparts >= 2)
		{
			/* the parts after the first: freed slots first, then new ones */
			cc[c].part_ids = palloc(sizeof(uint32) * cc[c].nparts);
			cc[c].part_ids[0] = c;
			for (int j = 1; j < cc[c].nparts; j++)
			{
				while (nfree > 0 && !slot_free(cc, hosts, next_free, meta.nclusters))
					next_free++;
				if (nfree > 0)
				{
					if (cc[next_free].move)
					{
						/* the part is written there instead (slot_free) */
						cc[next_free].move = false;
						cc[next_free].chosen = false;
						result->clusters--;
					}
					cc[next_free].reused = true;
					cc[next_free].merged = false;	/* live again: no host */
					cc[c].part_ids[j] = next_free;
					nfree--;
					result->slots_reused++;
				}
				else
					cc[c].part_ids[j] = nclusters++;
			}
			result->splits++;
		}
	}

	/* rows the splits left nearer another cluster's centroid go there */
	if (result->splits > 0)
	{
		int			more = 0;

		result->rows_moved = plan_moves(index, &meta, &body, centroids, info, threshold, cc, inc,
										rowcxt, bas, &more);
		result->clusters += more;
		progress(VS_PROGRESS_CLUSTERS_TOTAL, result->clusters);
	}

	/*
	 * Splits and merges change the clusters' shapes: the centroids (and
	 * the merged clusters' hosts) and the routing graph are written anew.
	 * A split's parts get their k-means centroids; a re-sealed cluster
	 * keeps its own, as a host does: moved to its rows' mean, a centroid
	 * leaves rows outside its Voronoi cell, which the scans' bounds assume
	 * they are in (vsscan_policy.c), and recall fell (SIFT, bench/living.sh:
	 * 0.974 against 0.983).
	 */
	reshape = result->splits > 0 || result->merges > 0;

	/* the older pieces that some cluster not rewritten still reads */
	for (uint32 p = 0; p < sh->npieces; p++)
	{
		bool		used = false;

		for (uint32 c = 0; c < meta.nclusters && !used; c++)
			used = !cc[c].chosen && !cc[c].reused && info[c].piece == pieces[p].generation;
		if (!used)
			continue;
		if (nkept + 1 >= VS_MAX_PIECES)
			elog(ERROR, "index \"%s\": a compaction would read too many pieces",
				 RelationGetRelationName(index));
		kept[nkept] = pieces[p];
		if (p == 0)
			kept[nkept].head_crc = meta.sealed_crc;
		nkept++;
	}

	/* what is written: each chosen cluster, or each part of a split one */
	progress(VS_PROGRESS_PHASE, VS_COMPACT_PHASE_WRITING);
	memset(&ex, 0, sizeof(ex));
	ex.params = VsSegmentParams(&meta, oldhead);
	if (train && nkept == 0)
	{
		trained = train_codes(index, &meta, &body, info, cc, train_live, rowcxt, bas);
		if (trained != NULL)
		{
			ex.params = trained;
			elog(DEBUG1, "vecstore compaction of \"%s\": codes trained (the index had none)",
				 RelationGetRelationName(index));
		}
	}
	params_size = ex.params != NULL ? ex.params->size : 0;
	ex.metric = (VsMetric) meta.metric;
	ex.elem_size = VsMetaElemSize(&meta);
	ex.graph_threshold = (int) meta.graph_threshold;
	ex.m = meta.m;				/* the graphs keep the index's build options */
	ex.ef_construction = meta.ef_construction;

	newinfo = palloc_extended(sizeof(VsClusterInfo) * nclusters, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	memcpy(newinfo, info, sizeof(VsClusterInfo) * meta.nclusters);
	for (uint32 c = meta.nclusters; c < nclusters; c++)
		newinfo[c].delta_blk = InvalidBlockNumber;	/* a new cluster: its chain
													 * is still empty */
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		VsClusterInfo reused;

		if (!cc[c].reused)
			continue;
		/* a reused slot: new rows, laid out below; the chain as it was */
		memset(&reused, 0, sizeof(reused));
		reused.delta_blk = info[c].delta_blk;
		reused.delta_off = info[c].delta_off;
		reused.delta_folded = info[c].delta_folded;
		newinfo[c] = reused;
	}
	out = palloc_extended(sizeof(OutCluster) * nclusters, MCXT_ALLOC_HUGE);
	row_space = meta.row_space;
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		/* a merged cluster keeps no rows: its host takes them */
		uint64		live = cc[c].merged ? 0 :
			(uint64) own_rows(&info[c], &cc[c]) + cc[c].absorbed - cc[c].left;

		if (!cc[c].chosen)
			continue;
		if (cc[c].move)
		{
			/* as it is: its rows, deletion bits and fold position stay */
			out[nout].source = c;
			out[nout].cluster = c;
			out[nout].nbytes = info[c].nbytes;
			nout++;
			continue;
		}
		if (threshold > 0 && cc[c].nparts < 2 && !cc[c].merged && info[c].count > 0 &&
			info[c].graph_offset != 0 && !cc[c].rebuild)
		{
			uint64		leaving = sealed_leaving(&cc[c], (int64) (info[c].count - cc[c].dead));
			uint64		tombs = cc[c].dead + leaving;
			uint64		kept = live + tombs;

			if (tombs > 0 && tombs <= PG_UINT16_MAX &&
				(double) tombs <= VS_EXTEND_DEAD_FACTOR * threshold * (double) kept)
			{
				cc[c].extend = true;
				cc[c].tombs = tombs;
				live = kept;
			}
		}
		for (int j = 0; j < Max(cc[c].nparts, 1); j++)
		{
			uint32		pc = part_cluster(&cc[c], c, j);
			int64		count = cc[c].nparts >= 2 ? cc[c].counts[j] : (int64) live;
			VsClusterInfo layout;

			out[nout].source = c;
			out[nout].cluster = pc;
			out[nout].nbytes = VsClusterLayout(&layout, 0, (int) pc, count, (int) meta.dims, &ex);
			nout++;
			newinfo[pc].count = (uint32) count;
			newinfo[pc].first_row = row_space;
			newinfo[pc].sealed_dead = (uint16) cc[c].tombs;
			row_space += count;
		}
		if (BlockNumberIsValid(cc[c].endblk))
		{
			newinfo[c].delta_blk = cc[c].endblk;
			newinfo[c].delta_off = OffsetNumberNext(cc[c].endoff);
			newinfo[c].delta_folded = info[c].delta_folded +
				(uint32) (cc[c].delta_live + cc[c].delta_dead);
		}
		result->rows_folded += cc[c].delta_live;
		result->rows_removed += (cc[c].extend ? 0 : cc[c].dead) + cc[c].delta_dead;
	}

	/*
	 * Where the new pieces go: into the free runs, the front of the fork
	 * first, then at its end.  The piece with the head is the generation's
	 * own (the last number); the others are numbered before it.
	 */
	runs = VsFreeListRuns(&fl, &nruns);
	if (relocate)
		nruns = runs_before(runs, nruns, below);	/* else it is not worth it */
	nop = plan_pieces(out, nout, runs, nruns,
					  Min(VS_MAX_PIECES - (int) nkept, VS_COMPACT_MAX_NEW_PIECES),
					  VsSealedHeadSize(nclusters, params_size, VS_MAX_PIECES), op);
	if (relocate)
	{
		bool		fits = true;

		for (int q = 0; q < nop; q++)
			fits = fits && BlockNumberIsValid(op[q].run);
		if (!fits)
		{
			elog(DEBUG1, "vecstore: the last piece of index \"%s\" does not fit before block %u",
				 RelationGetRelationName(index), below);
			result->clusters = 0;
			VsSegmentRelease(body);
			goto done;
		}
	}
	nnew = (uint32) nop + nkept;
	memset(newpieces, 0, sizeof(newpieces));
	for (int q = 0; q < nop; q++)
		newpieces[q].generation = meta.generation + (q == 0 ? (uint32) nop : (uint32) q);
	for (uint32 p = 0; p < nkept; p++)
		newpieces[nop + p] = kept[p];
	headsize = VsSealedHeadSize(nclusters, params_size, nnew);
	for (int q = 0; q < nop; q++)
		op[q].used = q == 0 ? headsize : VS_MINI_HEAD_SIZE;
	for (int i = 0; i < nout; i++)
		op[out[i].piece].used += out[i].nbytes;
	for (int q = 0; q < nop; q++)
	{
		newpieces[q].region.nbytes = op[q].used;
		newpieces[q].region.nblocks = (BlockNumber) ((op[q].used + VS_BLOB_PAYLOAD - 1) / VS_BLOB_PAYLOAD);
	}

	/* all pieces side by side; the kept ones' clusters move with them */
	for (uint32 p = 1; p < nnew; p++)
	{
		uint64		oldbase = newpieces[p].base;

		newpieces[p].base = TYPEALIGN(VS_PIECE_PLACE, newpieces[p - 1].base + VS_SEGMENT_HEADER_SIZE +
									  newpieces[p - 1].region.nbytes);
		if (p < (uint32) nop)
			continue;
		for (uint32 c = 0; c < meta.nclusters; c++)
		{
			if (cc[c].chosen || cc[c].reused || info[c].piece != newpieces[p].generation)
				continue;
			newinfo[c].vec_offset = newinfo[c].vec_offset - oldbase + newpieces[p].base;
			newinfo[c].tid_offset = newinfo[c].tid_offset - oldbase + newpieces[p].base;
			if (newinfo[c].code_offset != 0)
				newinfo[c].code_offset = newinfo[c].code_offset - oldbase + newpieces[p].base;
			if (newinfo[c].graph_offset != 0)
				newinfo[c].graph_offset = newinfo[c].graph_offset - oldbase + newpieces[p].base;
		}
	}

	/* the written clusters' places, in the order they are written */
	{
		uint64		local[VS_MAX_PIECES];

		for (int q = 0; q < nop; q++)
			local[q] = q == 0 ? headsize : VS_MINI_HEAD_SIZE;
		for (int i = 0; i < nout; i++)
		{
			int			q = out[i].piece;
			uint32		pc = out[i].cluster;
			uint64		at = newpieces[q].base + local[q];

			if (cc[out[i].source].move)
			{
				int64		shift = (int64) at - (int64) info[pc].vec_offset;

				newinfo[pc].vec_offset += shift;
				newinfo[pc].tid_offset += shift;
				if (newinfo[pc].code_offset != 0)
					newinfo[pc].code_offset += shift;
				if (newinfo[pc].graph_offset != 0)
					newinfo[pc].graph_offset += shift;
			}
			else
				VsClusterLayout(&newinfo[pc], at, (int) pc, newinfo[pc].count, (int) meta.dims, &ex);
			newinfo[pc].piece = newpieces[q].generation;
			local[q] += out[i].nbytes;
		}
	}
	for (uint32 c = 0; c < nclusters; c++)
		nrows += newinfo[c].count;

	/*
	 * Write the pieces into their blocks: the head (its CRCs patched in at
	 * the end) or a small head of its own, then their clusters.
	 */
	memset(&newsh, 0, sizeof(newsh));
	newsh = *sh;
	newsh.nclusters = nclusters;
	newsh.nrows = nrows;
	newsh.npieces = nnew;
	if (ex.params != NULL && sh->params_size == 0)
	{
		/* codes trained by this compaction */
		newsh.params_size = params_size;
		newsh.record_size = ex.params->record_size;
		newsh.quantizer = ex.params->kind == VS_QUANT_SQ4 ? VS_QUANTIZER_SQ4 : VS_QUANTIZER_SQ8;
	}
	for (int q = 0; q < nop; q++)
	{
		BlockNumber n = newpieces[q].region.nblocks;

		if (BlockNumberIsValid(op[q].run))
		{
			VsFreeListTake(&fl, op[q].run, n);
			newpieces[q].region.start = op[q].run;
		}
		else
			newpieces[q].region.start = VsFreeListAllocate(index, &fl, n);
		elog(DEBUG2, "vecstore compaction of \"%s\": piece %u at blocks %u..%u",
			 RelationGetRelationName(index), newpieces[q].generation, newpieces[q].region.start,
			 newpieces[q].region.start + n - 1);
		op[q].w = palloc(sizeof(VsBlobWriter));
		VsBlobBeginIn(op[q].w, index, newpieces[q].region.start, n);
		if (q == 0)
		{
			head = VsMakeHead(&newsh, newinfo, ex.params, newpieces, &headsize);
			VsBlobWrite(op[q].w, head, headsize);
		}
		else
		{
			VsSealedHeader msh;
			VsPieceInfo self = newpieces[q];
			uint64		size;

			memset(&msh, 0, sizeof(msh));
			msh.dims = sh->dims;
			msh.quantizer = newsh.quantizer;
			msh.record_size = newsh.record_size;
			msh.npieces = 1;
			self.base = 0;
			head = VsMakeHead(&msh, newinfo, NULL, &self, &size);
			Assert(size == VS_MINI_HEAD_SIZE);
			newpieces[q].head_crc = VsHeadCrc(head, size);
			VsBlobWrite(op[q].w, head, size);
		}
		pfree(head);
	}

	/* the graphs built anew, shared with parallel workers when there are some */
	jobs = palloc0(sizeof(bool) * Max(nclusters, 1));
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		if (!cc[c].chosen || cc[c].move || cc[c].merged)
			continue;
		if (cc[c].nparts < 2)
			jobs[c] = newinfo[c].graph_offset != 0 && !extends_graph(&cc[c], &info[c]);
		else
		{
			for (int j = 0; j < cc[c].nparts; j++)
			{
				uint32		pc = part_cluster(&cc[c], c, j);

				jobs[pc] = newinfo[pc].graph_offset != 0;
			}
		}
	}
	for (uint32 c = 0; c < nclusters; c++)
	{
		if (jobs[c])
		{
			njobs++;
			job_rows += newinfo[c].count;
		}
	}
	nworkers = compaction_workers(njobs, job_rows);
	if (nworkers > 0)
		par = VsBuildParallelBegin(index, nworkers, newinfo, (int) nclusters, (int) meta.dims, &ex,
								   newpieces, nop, jobs, false);

	nout = 0;
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		MemoryContext percxt;
		float	   *vecs;
		ItemPointerData *tids;
		int64		n;

		if (!cc[c].chosen)
			continue;
		vacuum_delay_point();
		body = VsSegmentCluster(index, &meta, body, c);
		if (cc[c].move)
		{
			VsBlobWriter *cw = op[out[nout].piece].w;

			Assert(cw->total == newinfo[c].vec_offset - newpieces[out[nout].piece].base);
			VsBlobWrite(cw, body + info[c].vec_offset, info[c].nbytes);
			nout++;
			done_clusters++;
			progress(VS_PROGRESS_CLUSTERS_DONE, done_clusters);
			continue;
		}
		percxt = MemoryContextSwitchTo(rowcxt);
		if (cc[c].merged)
		{
			/* its rows went to its host: it keeps none */
			n = 0;
			vecs = NULL;
			tids = NULL;
		}
		else
			body = collect_group(index, &meta, body, c, cc, inc, true, &vecs, &tids, &n, bas);
		if (cc[c].extend)
			extend_rows(index, &meta, body, c, &cc[c], cxt, &vecs, &tids, &n, bas);
		else if (cc[c].left > 0)
			n = drop_leaving(&cc[c], vecs, tids, n, (int) meta.dims);
		if (cc[c].nparts < 2)
		{
			VsBlobWriter *cw = op[out[nout].piece].w;

			Assert(out[nout].cluster == c);
			Assert(cw->total == newinfo[c].vec_offset - newpieces[out[nout].piece].base);

			if (extends_graph(&cc[c], &info[c]))
			{
				ex.prev_graph = body + info[c].graph_offset;
				ex.prev_graph_size = info[c].graph_size;
			}
			ex.defer_graphs = par != NULL && jobs[c];
			newinfo[c].crc = VsWriteCluster(cw, index, (int) c, vecs, tids, n, (int) meta.dims,
											&ex, &newinfo[c], NULL, rowcxt);
			ex.prev_graph = NULL;
			ex.prev_graph_size = 0;
			if (par != NULL)
				VsBuildParallelReady(par, out[nout].piece,
									 (uint64) cw->nblocks * VS_BLOB_PAYLOAD);
			nout++;
		}
		else
		{
			int32	   *part = part_of(&meta, &cc[c], vecs, n);
			float	   *pvecs = palloc_extended(sizeof(float) * meta.dims * Max(n, 1), MCXT_ALLOC_HUGE);
			ItemPointerData *ptids = palloc_extended(sizeof(ItemPointerData) * Max(n, 1), MCXT_ALLOC_HUGE);

			for (int j = 0; j < cc[c].nparts; j++)
			{
				uint32		pc = part_cluster(&cc[c], c, j);
				VsBlobWriter *cw = op[out[nout].piece].w;
				int64		pn = 0;

				for (int64 i = 0; i < n; i++)
				{
					if (part[i] != j)
						continue;
					memcpy(pvecs + (Size) pn * meta.dims, vecs + (Size) i * meta.dims,
						   sizeof(float) * meta.dims);
					ptids[pn++] = tids[i];
				}
				if (pn != cc[c].counts[j])
					elog(ERROR, "index \"%s\": part %d of cluster %u has " INT64_FORMAT " rows, " INT64_FORMAT " were planned",
						 RelationGetRelationName(index), j, c, pn, cc[c].counts[j]);
				Assert(out[nout].cluster == pc);
				Assert(cw->total == newinfo[pc].vec_offset - newpieces[out[nout].piece].base);
				ex.defer_graphs = par != NULL && jobs[pc];
				newinfo[pc].crc = VsWriteCluster(cw, index, (int) pc, pvecs, ptids, pn,
												 (int) meta.dims, &ex, &newinfo[pc], NULL, rowcxt);
				if (par != NULL)
					VsBuildParallelReady(par, out[nout].piece,
										 (uint64) cw->nblocks * VS_BLOB_PAYLOAD);
				nout++;
			}
		}
		MemoryContextSwitchTo(percxt);
		MemoryContextReset(rowcxt);
		done_clusters++;
		written += n;
		progress(VS_PROGRESS_CLUSTERS_DONE, done_clusters);
		progress(VS_PROGRESS_ROWS_WRITTEN, written);
	}
	for (int q = 0; q < nop; q++)
	{
		VsRegion	r = VsBlobEnd(op[q].w);

		if (r.nbytes != newpieces[q].region.nbytes || r.nblocks != newpieces[q].region.nblocks)
			elog(ERROR, "index \"%s\": a compaction wrote " UINT64_FORMAT " bytes where it laid out " UINT64_FORMAT,
				 RelationGetRelationName(index), r.nbytes, newpieces[q].region.nbytes);
		pfree(op[q].w);
	}
	/* the graphs the workers build, and their clusters' CRCs */
	if (par != NULL)
	{
		progress(VS_PROGRESS_PHASE, VS_COMPACT_PHASE_GRAPHS);
		VsBuildParallelFinish(par, newinfo);
	}
	head = VsMakeHead(&newsh, newinfo, ex.params, newpieces, &headsize);
	VsBlobPatch(index, MAIN_FORKNUM, &newpieces[0].region, 0, head, headsize);
	VsCompactDebugStop(VS_COMPACT_STOP_WRITTEN);

	/* the new metapage, as it will be published */
	newmeta = meta;
	newmeta.params_size = newsh.params_size;
	newmeta.quantizer = newsh.quantizer;
	newmeta.generation = newpieces[0].generation;
	newmeta.sealed = newpieces[0].region;
	newmeta.sealed_crc = VsHeadCrc(head, headsize);
	newmeta.sealed_rows = nrows;
	newmeta.npieces = nnew;
	newmeta.row_space = row_space;
	newmeta.compactions = meta.compactions + 1;
	{
		bool		tombs = false;

		for (uint32 c = 0; c < meta.nclusters && !tombs; c++)
			tombs = cc[c].tombbits != NULL;
		if (tombs || row_space > meta.bitmap.nbytes * 8)
			newmeta.bitmap = write_bitmap(index, &meta, row_space, cc, info, newinfo, &fl, bas);
	}
	newmeta.nclusters = nclusters;
	if (reshape)
	{
		/* the split clusters' centroids, the merged ones' hosts, the graph */
		Size		cbytes = sizeof(float) * meta.dims * nclusters;
		char	   *region = palloc_extended(cbytes + sizeof(int32) * nclusters, MCXT_ALLOC_HUGE);
		float	   *all = (float *) region;
		int32	   *newhosts = (int32 *) (region + cbytes);
		bool		any_merged = false;
		void	   *routing;
		size_t		routing_size;

		memcpy(all, centroids, sizeof(float) * meta.dims * meta.nclusters);
		for (uint32 c = 0; c < nclusters; c++)
		{
			newhosts[c] = c < meta.nclusters && cc[c].merged ? cc[c].host : -1;
			any_merged = any_merged || newhosts[c] >= 0;
		}
		for (uint32 c = 0; c < meta.nclusters; c++)
		{
			for (int j = 0; j < cc[c].nparts; j++)
				memcpy(all + (Size) part_cluster(&cc[c], c, j) * meta.dims,
					   cc[c].centroids + (Size) j * meta.dims, sizeof(float) * meta.dims);
		}
		newmeta.centroids = write_region(index, region,
										 cbytes + (any_merged ? sizeof(int32) * nclusters : 0), &fl);
		routing = VsBuildRouting(index, (VsMetric) meta.metric, (int) meta.dims, (int) nclusters,
								 all, &routing_size);
		newmeta.routing = write_region(index, routing, routing_size, &fl);
	}

	/* every new page in the WAL, in full, before the switch */
	/*
	 * What the new generation no longer reads: the pieces it dropped, the
	 * fronts of the chains it folded (up to the page the fold stopped in),
	 * the previous free list.  Then the new free list.
	 */
	for (uint32 p = 0; p < sh->npieces; p++)
	{
		if (VsPieceIndex(newpieces, nnew, pieces[p].generation) < 0)
			VsFreeListRetire(&fl, p == 0 ? &meta.sealed : &pieces[p].region);
	}
	for (uint32 c = 0; c < meta.nclusters; c++)
	{
		if (cc[c].chosen && !cc[c].move && BlockNumberIsValid(cc[c].endblk))
			VsFreeListRetireChain(&fl, c, cc[c].startblk, cc[c].endblk);
	}
	if (newmeta.bitmap.start != meta.bitmap.start)
		VsFreeListRetire(&fl, &meta.bitmap);
	VsFreeListRetire(&fl, &meta.freelist);
	newmeta.freelist = VsFreeListWrite(index, &fl);
	result->blocks_reused = fl.reused;

	progress(VS_PROGRESS_PHASE, VS_COMPACT_PHASE_LOGGING);
	for (int q = 0; q < nop; q++)
		log_region(index, &newpieces[q].region);
	log_region(index, &newmeta.freelist);
	if (newmeta.bitmap.start != meta.bitmap.start)
		log_region(index, &newmeta.bitmap);
	if (newmeta.centroids.start != meta.centroids.start)
	{
		log_region(index, &newmeta.centroids);
		log_region(index, &newmeta.routing);
	}

	lsn = publish(index, &meta, &newmeta, newpieces, nop, head, body);

	/* durable before the files of the pieces it dropped go */
	if (RelationNeedsWAL(index))
		XLogFlush(lsn);
	VsFreeListStamp(index, &newmeta);
	VsCompactDebugStop(VS_COMPACT_STOP_PUBLISHED);
	VsSegmentRemoveUnused(index, &newmeta, head);
	pfree(head);
	result->generation = newmeta.generation;
	elog(DEBUG1, "vecstore compaction of \"%s\": %d clusters, %d split, %d merged, %d merged slots reused, " INT64_FORMAT " rows moved, " INT64_FORMAT " rows folded, " INT64_FORMAT " removed, generation %u reads %u pieces",
		 RelationGetRelationName(index), result->clusters, result->splits, result->merges,
		 result->slots_reused, result->rows_moved,
		 result->rows_folded, result->rows_removed,
		 newmeta.generation, nnew);

done:
	/* the free blocks at the fork's end go back, when no one is using it */
	if (!relocate)
	{
		result->blocks_truncated = VsFreeReclaimSoon(index, bas);
		/* pieces may have moved down: the generation may be a later one */
		VsReadMeta(index, &meta);
		result->generation = meta.generation;
	}
	progress(VS_PROGRESS_PHASE, 0);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}

/* VsCompact's call of compact, for VsMappedRun */
typedef struct CompactCall
{
	Relation	index;
	double		threshold;
	bool		relocate;
	BufferAccessStrategy bas;
	VsCompactResult *result;
} CompactCall;

static void
compact_call(void *arg)
{
	CompactCall *call = arg;

	compact(call->index, call->threshold, call->relocate, call->bas, call->result);
}

/*
 * VsCompact - compact (see compact above); a segment file that shrinks
 * under the mapping it reads ends the compaction with an error
 * (vssegment_fault.c), not the process.
 */
void
VsCompact(Relation index, double threshold, bool relocate, BufferAccessStrategy bas,
		  VsCompactResult *result)
{
	CompactCall call = {index, threshold, relocate, bas, result};

	if (!VsMappedRun(compact_call, &call))
		VsSegmentFaulted(index);
}

/*
 * VsCompactProgressBegin - for a compaction outside VACUUM
 * (vecstore_compact, the worker): report it as VACUUM's index cleanup of
 * "heap", so pg_stat_progress_vacuum and vecstore_compaction_progress
 * show it.
 */
void
VsCompactProgressBegin(Relation heap)
{
	pgstat_progress_start_command(PROGRESS_COMMAND_VACUUM, RelationGetRelid(heap));
	pgstat_progress_update_param(PROGRESS_VACUUM_PHASE, PROGRESS_VACUUM_PHASE_INDEX_CLEANUP);
}

void
VsCompactProgressEnd(void)
{
	pgstat_progress_end_command();
}

PG_FUNCTION_INFO_V1(vecstore_compact);
/*
 * vecstore_compact(index regclass, all_clusters boolean) - compact now:
 * every cluster with delta or removed rows (all_clusters, the default),
 * or those past the index's compaction_threshold.  Takes the locks VACUUM
 * takes (ShareUpdateExclusiveLock on the table, so it waits for a running
 * VACUUM, and RowExclusiveLock on the index); needs the table's owner, as
 * VACUUM does.
 */
Datum
vecstore_compact(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	bool		all = PG_GETARG_BOOL(1);
	TupleDesc	tupdesc = VsResultRowType(fcinfo, 4);
	Relation	heap;
	Relation	index;
	VsCompactResult res;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	BufferAccessStrategy bas;

	Oid			heapoid = IndexGetRelation(indexoid, true);

	/* not on a standby, nor in a read-only transaction: it writes */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot compact an index during recovery")));
	PreventCommandIfReadOnly("vecstore_compact()");

	/* the owner's, checked before waiting for a lock, as VACUUM does */
	if (OidIsValid(heapoid) && !pg_class_ownercheck(heapoid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_INDEX, get_rel_name(indexoid));
	index = VsOpenIndex(indexoid, ShareUpdateExclusiveLock, RowExclusiveLock, &heap);
	if (heap == NULL || !pg_class_ownercheck(RelationGetRelid(heap), GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_INDEX, RelationGetRelationName(index));
	bas = GetAccessStrategy(BAS_VACUUM);
	VsCompactProgressBegin(heap);
	VsCompact(index, all ? 0.0 : Max(VsGetCompactionThreshold(index), 1e-9), false, bas, &res);
	VsCompactProgressEnd();
	FreeAccessStrategy(bas);
	VsCloseIndex(index, heap, ShareUpdateExclusiveLock, RowExclusiveLock);

	values[0] = Int32GetDatum(res.clusters);
	values[1] = Int64GetDatum(res.rows_folded);
	values[2] = Int64GetDatum(res.rows_removed);
	values[3] = Int32GetDatum((int32) res.generation);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
