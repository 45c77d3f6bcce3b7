/*-------------------------------------------------------------------------
 *
 * vsutil.h
 *	  Small server-side helpers shared by the index and the GPU service
 *	  (src/vsutil.c).
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

extern TupleDesc VsResultRowType(FunctionCallInfo fcinfo, int ncolumns);

#endif							/* VSUTIL_H */
