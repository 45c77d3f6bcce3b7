/*-------------------------------------------------------------------------
 *
 * vsutil.h
 *	  Small server-side helpers shared by the index and the GPU service
 *	  (src/vsutil.c): the algorithm cores' server hooks, vector helpers,
 *	  the row type check of our SQL functions.
 *
 * Nothing here knows the index's page layout: the GPU service includes
 * this header, never vsam.h.
 *
 * IDENTIFICATION
 *	  src/vsutil.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSUTIL_H
#define VSUTIL_H

#include "fmgr.h"
#include "access/tupdesc.h"
#include "utils/relcache.h"

#include "vector.h"
#include "vskmeans.h"

extern TupleDesc VsResultRowType(FunctionCallInfo fcinfo, int ncolumns);

/* palloc and CHECK_FOR_INTERRUPTS for the algorithm cores, no progress */
extern const VsKmeansHooks VsKmeansServerHooks;

extern void VsNormalize(float *x, int dims);

/*
 * How an index stores its rows' elements, in its segment and its delta
 * rows: float4 (vector), binary16 (halfvec), or packed bits (bit, most
 * significant first, as PostgreSQL's bit type).  Everything else the index
 * computes (k-means, codes, graphs) is on float4, widened exactly.
 */
#define VS_ELEM_FLOAT4			4
#define VS_ELEM_HALF			2
#define VS_ELEM_BIT				1

/* bytes of one row of "dims" elements stored as "elem" */
static inline Size
VsRowBytes(int elem, int dims)
{
	return elem == VS_ELEM_BIT ? (Size) (dims + 7) / 8 : (Size) elem * dims;
}

/*
 * A row inserted after the build waits in one delta tuple of one page, as
 * the index stores its elements (float4, binary16 or bits): at most
 * VS_MAX_ROW_BYTES bytes, so 2000 dimensions of vector, 4000 of halfvec.
 * Bit columns are bounded by VS_MAX_BITS instead: their rows are widened to
 * float4 for k-means and the graphs, a cluster at a time.
 */
#define VS_MAX_ROW_BYTES		8000
#define VS_MAX_BITS				4096

/* the most dimensions an index of "elem" takes (see VS_MAX_ROW_BYTES) */
static inline int
VsMaxDims(int elem)
{
	return elem == VS_ELEM_BIT ? VS_MAX_BITS : VS_MAX_ROW_BYTES / elem;
}

extern Vector *VsDatumAsVector(Datum value, int elem);
extern Vector *VsDatumToVector(Relation index, Datum value, int dims, int elem);
extern void VsEncodeRow(int elem, const float *x, int dims, void *out);
extern void VsDecodeRow(int elem, const void *in, int dims, float *x);

#endif							/* VSUTIL_H */
