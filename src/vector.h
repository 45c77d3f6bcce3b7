/*-------------------------------------------------------------------------
 *
 * vector.h
 *	  The vector type: on-disk layout, limits and helpers.
 *
 * The varlena layout is the same as pgvector's, so that the binary wire
 * format, COPY BINARY and the text form match it: a 2-byte dimension
 * count, 2 reserved bytes that are always zero, then float4 elements.
 *
 * IDENTIFICATION
 *	  src/vector.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VS_VECTOR_H
#define VS_VECTOR_H

#include "fmgr.h"
#include "utils/array.h"

#define VS_VECTOR_MAX_DIM 16000

typedef struct Vector
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int16		dim;			/* number of elements */
	int16		unused;			/* reserved for future use, always zero */
	float		x[FLEXIBLE_ARRAY_MEMBER];
} Vector;

#define VS_VECTOR_SIZE(_dim)		(offsetof(Vector, x) + sizeof(float) * (_dim))
#define DatumGetVector(x)			((Vector *) PG_DETOAST_DATUM(x))
#define PG_GETARG_VECTOR_P(x)		DatumGetVector(PG_GETARG_DATUM(x))
#define PG_RETURN_VECTOR_P(x)		PG_RETURN_POINTER(x)

/*
 * The state of avg() and sum() of vector and halfvec (an internal state:
 * the SQL functions vector_agg_combine, _serialize and _deserialize serve
 * both types).
 */
typedef struct VectorAggStateData
{
	int64		count;			/* rows accumulated */
	int			dim;			/* 0 until the first row */
	double	   *sums;			/* dim running sums, in double */
} VectorAggStateData;

typedef VectorAggStateData *VectorAggState;

/*
 * VS_COMPARISON_FUNCTIONS - the six comparison operators and the btree
 * support function (prefix_lt, _le, _eq, _ne, _ge, _gt and prefix_cmp) of
 * a vector-like type whose order is cmp(a, b) (negative, zero, positive);
 * the arguments come through getarg and are freed when they are copies.
 * vector, halfvec and sparsevec use it.
 */
#define VS_COMPARISON_FUNCTION(name, type, getarg, cmp, result) \
PG_FUNCTION_INFO_V1(name); \
Datum \
name(PG_FUNCTION_ARGS) \
{ \
	type	   *a = getarg(0); \
	type	   *b = getarg(1); \
	int			c = cmp(a, b); \
\
	PG_FREE_IF_COPY(a, 0); \
	PG_FREE_IF_COPY(b, 1); \
	result; \
}

#define VS_COMPARISON_FUNCTIONS(prefix, type, getarg, cmp) \
VS_COMPARISON_FUNCTION(prefix##_lt, type, getarg, cmp, PG_RETURN_BOOL(c < 0)) \
VS_COMPARISON_FUNCTION(prefix##_le, type, getarg, cmp, PG_RETURN_BOOL(c <= 0)) \
VS_COMPARISON_FUNCTION(prefix##_eq, type, getarg, cmp, PG_RETURN_BOOL(c == 0)) \
VS_COMPARISON_FUNCTION(prefix##_ne, type, getarg, cmp, PG_RETURN_BOOL(c != 0)) \
VS_COMPARISON_FUNCTION(prefix##_ge, type, getarg, cmp, PG_RETURN_BOOL(c >= 0)) \
VS_COMPARISON_FUNCTION(prefix##_gt, type, getarg, cmp, PG_RETURN_BOOL(c > 0)) \
VS_COMPARISON_FUNCTION(prefix##_cmp, type, getarg, cmp, PG_RETURN_INT32(c))

/* in vector.c */
extern Vector *VsInitVector(int dim);
extern VectorAggState VsAggStateGet(FunctionCallInfo fcinfo, int argno,
									MemoryContext aggcontext);
extern double *VsAggSums(MemoryContext aggcontext, int dim);
extern void VsAggDimsError(FunctionCallInfo fcinfo, int have, int got) pg_attribute_noreturn();
extern float8 *VsAggStateValues(ArrayType *state, const char *caller, int *dim);
extern ArrayType *VsMakeAggState(float8 count, const float8 *sums, int dim);
extern void VsCheckDims(const Vector *a, const Vector *b);
extern void VsVectorTypeInit(void);

#endif							/* VS_VECTOR_H */
