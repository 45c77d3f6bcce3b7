/*-------------------------------------------------------------------------
 *
 * halfvec.h
 *	  The halfvec type: on-disk layout, limits and helpers.
 *
 * The layout is pgvector's halfvec, so the binary wire format, COPY
 * BINARY and the text form match it: a 2-byte dimension count, 2 reserved
 * bytes that are always zero, then IEEE binary16 elements, each held as
 * its bit pattern (uint16).  Conversions and distances are in
 * vsdistance_half.c.
 *
 * IDENTIFICATION
 *	  src/halfvec.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VS_HALFVEC_H
#define VS_HALFVEC_H

#include "fmgr.h"

#define VS_HALFVEC_MAX_DIM 16000

typedef struct HalfVector
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int16		dim;			/* number of elements */
	int16		unused;			/* reserved for future use, always zero */
	uint16		x[FLEXIBLE_ARRAY_MEMBER];	/* binary16 bit patterns */
} HalfVector;

#define VS_HALFVEC_SIZE(_dim)		(offsetof(HalfVector, x) + sizeof(uint16) * (_dim))
#define DatumGetHalfVector(x)		((HalfVector *) PG_DETOAST_DATUM(x))
#define PG_GETARG_HALFVEC_P(x)		DatumGetHalfVector(PG_GETARG_DATUM(x))
#define PG_RETURN_HALFVEC_P(x)		PG_RETURN_POINTER(x)

/* in halfvec.c */
extern HalfVector *VsInitHalfVector(int dim);
extern uint16 VsFloatToHalfChecked(float value);

#endif							/* VS_HALFVEC_H */
