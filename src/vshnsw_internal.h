/*-------------------------------------------------------------------------
 *
 * vshnsw_internal.h
 *	  Internals shared by the HNSW files (vshnsw*.c), not part of vshnsw.h.
 *
 * Owns what the build (vshnsw_build.c), the search (vshnsw_search.c) and
 * the serialized format (vshnsw.c) have in common: the candidate and
 * level views, the distance source, the block's computed layout, the
 * candidate order (static inline, as it was in the one file) and the
 * prototypes of the functions one file lends another.  The algorithm and
 * its measurements are described in vshnsw.c's header.  Plain C: include
 * it from the vshnsw*.c files only.
 *
 * IDENTIFICATION
 *	  src/vshnsw_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSHNSW_INTERNAL_H
#define VSHNSW_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "vsdistance.h"
#include "vshnsw.h"

/* a candidate's flag: expanded already (node ids stay below 2^31) */
#define EXPANDED		0x80000000u
#define ID_MASK			0x7FFFFFFFu

/* longest row of any level, for the scratch that holds one row */
#define MAX_ROW			(2 * VS_HNSW_MAX_M)

/* bytes of the header and of one level table entry */
#define HEADER_SIZE		((uint64_t) sizeof(VsHnswHeaderData))
#define LEVEL_SIZE		((uint64_t) sizeof(VsHnswLevelData))

/* where a distance comes from */
typedef enum SourceKind
{
	SRC_L2,						/* squared L2 to a float vector */
	SRC_IP,						/* negative inner product */
	SRC_COSINE,					/* 1 - cos, with inverse norms */
	SRC_CALLBACK,				/* the caller's VsHnswDistanceFn */
	SRC_BATCH					/* the caller's VsHnswDistancesFn */
} SourceKind;

/* the query side of every distance a search computes */
typedef struct Source
{
	SourceKind	kind;
	const float *query;
	const float *vectors;		/* row-major, dim floats per node */
	int			dim;
	const float *inv_norms;		/* cosine: per node */
	float		query_inv;		/* cosine: the query's inverse norm */
	VsHnswDistanceFn fn;
	VsHnswDistancesFn batch;
	void	   *ctx;
	uint32_t   *ids;			/* SRC_BATCH: MAX_ROW node ids */
	float	   *dists;			/* SRC_BATCH: MAX_ROW distances */
} Source;

/* a candidate: distance to the query and id (level-local, flag bit) */
typedef struct PoolEntry
{
	float		dist;
	uint32_t	id;
} PoolEntry;

/* one level as a search sees it */
typedef struct Level
{
	const uint32_t *members;	/* node id of each member; NULL on level 0 */
	const uint32_t *adj;		/* count rows of cap ids, or NULL when ... */
	const uint16_t *adj16;		/* ... they are 16-bit (level 0 only) */
	uint32_t	count;
	uint32_t	cap;
} Level;

/* where every section of a block lies (computed, never read) */
typedef struct Layout
{
	uint64_t	members[VS_HNSW_MAX_LEVELS];
	uint64_t	adj[VS_HNSW_MAX_LEVELS];
	uint64_t	norms;			/* 0 when absent */
	uint64_t	total;
} Layout;

static inline int before(float da, uint32_t ia, float db, uint32_t ib);
static inline uint32_t mix32(uint32_t x);
static inline uint32_t member_node(const Level *lv, uint32_t local);
static inline uint32_t level_id(const Level *lv, size_t pos);
static inline int ranks_before(const Level *lv, uint32_t salt, float da,
							   uint32_t ia, float db, uint32_t ib);
static inline float source_distance(const Source *src, uint32_t node);

/* crossing this module's files only: hidden (VS_INTERNAL, vsdistance.h) */
/* the block's layout and views (vshnsw.c) */
extern VS_INTERNAL void VsHnswComputeLayout(uint32_t n, int m, int nlevels,
								const uint32_t *counts, int norms, int id16,
								Layout *lay);
extern VS_INTERNAL void VsHnswLevelView(const char *base, int l, Level *lv);
extern VS_INTERNAL uint32_t VsHnswFindMember(const Level *lv, uint32_t node);

/* the search steps the build reuses (vshnsw_search.c) */
extern VS_INTERNAL float VsHnswInvNorm(const float *x, int dim);
extern VS_INTERNAL uint16_t VsHnswNextEpoch(uint16_t *tags, size_t count, uint16_t *epoch);
extern VS_INTERNAL int VsHnswPoolInsert(PoolEntry *pool, int *size, int cap, float dist,
							uint32_t id, const Level *lv, uint32_t salt);
extern VS_INTERNAL uint32_t VsHnswGreedy(const Level *lv, const Source *src, uint32_t cur,
							 float *curdist, uint32_t salt);
extern VS_INTERNAL int VsHnswSearchLayer(const Level *lv, const Source *src, PoolEntry *pool,
							 int size, int ef, uint16_t *tags, uint16_t epoch,
							 uint32_t *row, uint32_t salt);

/*
 * before - the candidate order: by distance, then by id.
 */
static inline int
before(float da, uint32_t ia, float db, uint32_t ib)
{
	return da < db || (da == db && ia < ib);
}

/*
 * mix32 - murmur3's finaliser: a fast, well-spread 32-bit hash.
 */
static inline uint32_t
mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85EBCA6Bu;
	x ^= x >> 13;
	x *= 0xC2B2AE35u;
	x ^= x >> 16;
	return x;
}

/*
 * member_node - the node id of member "local" of a level.
 */
static inline uint32_t
member_node(const Level *lv, uint32_t local)
{
	return lv->members ? lv->members[local] : local;
}

/*
 * level_id - entry "pos" of a level's rows (row i, slot j: i * cap + j),
 * widened: a 16-bit empty slot becomes VS_HNSW_ID16_MAX_NODES, which is
 * not below any 16-bit level's count either, so "id < count" tells a
 * neighbour from the end of its row in both widths.
 */
static inline uint32_t
level_id(const Level *lv, size_t pos)
{
	return lv->adj16 ? (uint32_t) lv->adj16[pos] : lv->adj[pos];
}

/*
 * ranks_before - the candidate order of one search or selection: by
 * distance; exact ties by id when salt is 0 (searches, so that results
 * are reproducible and documented), else by a hash of the salt and the
 * node id, then by id.
 *
 * Why the build salts its ties: with ties by id, a group of identical
 * vectors links every new copy to the same lowest ids, and a full row
 * re-selected among equals always drops the newest copy, so the copies
 * inserted later get no in-links at all (measured: 34 of 500 identical
 * vectors reachable).  A salt that differs per inserted node (and per
 * row owner) makes each choice among equals a different deterministic
 * pseudo-random one, and the copies form a random, connected graph.
 * Distinct distances are untouched.  The hash is of the node id, not the
 * member index, so the order survives the move to the level below.
 */
static inline int
ranks_before(const Level *lv, uint32_t salt, float da, uint32_t ia,
			 float db, uint32_t ib)
{
	if (da != db)
		return da < db;
	if (salt != 0)
	{
		uint32_t	ka = mix32(member_node(lv, ia) ^ salt);
		uint32_t	kb = mix32(member_node(lv, ib) ^ salt);

		if (ka != kb)
			return ka < kb;
	}
	return ia < ib;
}

/*
 * source_distance - distance from the source's query to a node; NaN (a
 * caller's function, or garbage norms) becomes +infinity so that the
 * candidate order stays a total order.
 */
static inline float
source_distance(const Source *src, uint32_t node)
{
	const float *x;
	float		d;

	switch (src->kind)
	{
		case SRC_L2:
			x = src->vectors + (size_t) node * src->dim;
			d = VsKernels.l2_squared(src->query, x, src->dim);
			break;
		case SRC_IP:
			x = src->vectors + (size_t) node * src->dim;
			d = -VsKernels.inner_product(src->query, x, src->dim);
			break;
		case SRC_COSINE:
			x = src->vectors + (size_t) node * src->dim;
			d = 1.0f - VsKernels.inner_product(src->query, x, src->dim) *
				(src->query_inv * src->inv_norms[node]);
			break;
		case SRC_BATCH:
			src->batch(src->ctx, &node, 1, &d);
			break;
		default:
			d = src->fn(src->ctx, node);
			break;
	}
	return (d == d) ? d : INFINITY;
}

#endif							/* VSHNSW_INTERNAL_H */
