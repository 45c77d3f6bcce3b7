/*-------------------------------------------------------------------------
 *
 * sparsevec.h
 *	  The sparsevec type: on-disk layout, limits and helpers.
 *
 * The varlena layout is pgvector's, so that the binary wire format, COPY
 * BINARY and the text form match it: int32 dimensions, int32 number of
 * stored (non-zero) elements "nnz", int32 reserved (always zero), then
 * nnz int32 indices, 0-based and strictly ascending, then nnz float4
 * values, none of them zero.  A value is found through its index's
 * position, so the values start right after the indices (there is no
 * padding: int32 and float4 have the same alignment).
 *
 * IDENTIFICATION
 *	  src/sparsevec.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VS_SPARSEVEC_H
#define VS_SPARSEVEC_H

#include "fmgr.h"

#define VS_SPARSEVEC_MAX_DIM 1000000000
#define VS_SPARSEVEC_MAX_NNZ 16000

typedef struct SparseVector
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int32		dim;			/* number of dimensions */
	int32		nnz;			/* number of stored (non-zero) elements */
	int32		unused;			/* reserved for future use, always zero */
	int32		indices[FLEXIBLE_ARRAY_MEMBER]; /* then float values[nnz] */
} SparseVector;

/* bytes of a sparsevec of nnz elements; nnz <= VS_SPARSEVEC_MAX_NNZ */
#define VS_SPARSEVEC_SIZE(_nnz) \
	(offsetof(SparseVector, indices) + (sizeof(int32) + sizeof(float)) * (Size) (_nnz))
#define DatumGetSparseVector(x)		((SparseVector *) PG_DETOAST_DATUM(x))
#define PG_GETARG_SPARSEVEC_P(x)	DatumGetSparseVector(PG_GETARG_DATUM(x))
#define PG_RETURN_SPARSEVEC_P(x)	PG_RETURN_POINTER(x)

/*
 * VsSparsevecValues - the values array, after the indices.
 */
static inline float *
VsSparsevecValues(const SparseVector *v)
{
	return (float *) ((char *) v->indices + sizeof(int32) * (Size) v->nnz);
}

/* in sparsevec.c */
extern SparseVector *VsInitSparseVector(int dim, int nnz);

#endif							/* VS_SPARSEVEC_H */
