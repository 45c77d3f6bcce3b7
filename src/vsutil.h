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
extern Vector *VsDatumAsVector(Datum value, bool half);
extern Vector *VsDatumToVector(Relation index, Datum value, int dims, bool half);

#endif							/* VSUTIL_H */
