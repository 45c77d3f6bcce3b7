/*-------------------------------------------------------------------------
 *
 * vsutil.c
 *	  Small server-side helpers: the hooks that run the pure-C algorithm
 *	  cores inside a backend (memory, interrupts), vector helpers, and the
 *	  row type check of our row-returning SQL functions.
 *
 * IDENTIFICATION
 *	  src/vsutil.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "halfvec.h"
#include "utils/varbit.h"
#include "vsdistance_half.h"
#include "vsutil.h"

/*
 * VsResultRowType - the row type a set-returning or row-returning SQL
 * function of ours was declared with, checked to have the "ncolumns"
 * columns this library fills in.  A library newer or older than the
 * extension's SQL objects (new binaries installed, ALTER EXTENSION not
 * yet run) then gets an error instead of a tuple built past its
 * descriptor.
 */
TupleDesc
VsResultRowType(FunctionCallInfo fcinfo, int ncolumns)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (tupdesc->natts != ncolumns)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function %s returns %d columns but the vecstore library fills in %d",
						get_func_name(fcinfo->flinfo->fn_oid), tupdesc->natts, ncolumns),
				 errhint("The vecstore library and the extension's SQL objects differ in version: run ALTER EXTENSION vecstore UPDATE, or reinstall the matching version.")));
	return tupdesc;
}

/* palloc and CHECK_FOR_INTERRUPTS for vskmeans.c, without progress */
static void *
server_alloc(size_t size)
{
	return palloc_extended(Max(size, 1), MCXT_ALLOC_HUGE);
}

static void
server_free(void *ptr)
{
	pfree(ptr);
}

static void
server_check_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

const VsKmeansHooks VsKmeansServerHooks = {
	server_alloc, server_free, server_check_interrupts, NULL, NULL, NULL, NULL
};

/*
 * VsNormalize - scale "x" to unit length in place (a zero vector stays
 * zero).  Used for cosine routing.
 */
void
VsNormalize(float *x, int dims)
{
	double		norm = 0.0;

	for (int i = 0; i < dims; i++)
		norm += (double) x[i] * (double) x[i];
	if (norm > 0.0)
	{
		norm = sqrt(norm);
		for (int i = 0; i < dims; i++)
			x[i] = (float) (x[i] / norm);
	}
}

/*
 * VsDatumAsVector - an indexed or query value as float4 elements, for an
 * index that stores them as "elem" (VS_ELEM_*): a vector detoasted, a
 * halfvec widened (exactly), a bit string as 0s and 1s, into a new Vector.
 */
Vector *
VsDatumAsVector(Datum value, int elem)
{
	Vector	   *v;

	if (elem == VS_ELEM_HALF)
	{
		HalfVector *h = DatumGetHalfVector(value);

		v = VsInitVector(h->dim);
		VsHalfKernels.half_to_float(h->x, v->x, h->dim);
		return v;
	}
	if (elem == VS_ELEM_BIT)
	{
		VarBit	   *b = DatumGetVarBitP(value);
		int			n = VARBITLEN(b);

		if (n < 1 || n > VS_VECTOR_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("bit string of length %d cannot be indexed by vecstore", n),
					 errdetail("A vecstore index takes bit strings of 1 to %d bits.",
							   VS_VECTOR_MAX_DIM)));
		v = VsInitVector(n);
		VsDecodeRow(VS_ELEM_BIT, VARBITS(b), n, v->x);
		return v;
	}
	return DatumGetVector(value);
}

/*
 * VsEncodeRow - "dims" float4 elements as an index stores them ("elem"):
 * copied, rounded to binary16 (exact for values that came from a halfvec),
 * or one bit each, set for 1 (they came from a bit string), packed most
 * significant first.  "out" holds VsRowBytes(elem, dims) bytes.
 */
void
VsEncodeRow(int elem, const float *x, int dims, void *out)
{
	if (elem == VS_ELEM_HALF)
		VsHalfKernels.float_to_half(x, (uint16 *) out, dims);
	else if (elem == VS_ELEM_BIT)
	{
		uint8	   *bits = (uint8 *) out;

		memset(bits, 0, (dims + 7) / 8);
		for (int i = 0; i < dims; i++)
		{
			if (x[i] >= 0.5f)
				bits[i / 8] |= (uint8) (0x80 >> (i % 8));
		}
	}
	else
		memcpy(out, x, sizeof(float) * dims);
}

/*
 * VsDecodeRow - a stored row ("elem") back as "dims" float4 elements.
 */
void
VsDecodeRow(int elem, const void *in, int dims, float *x)
{
	if (elem == VS_ELEM_HALF)
		VsHalfKernels.half_to_float((const uint16 *) in, x, dims);
	else if (elem == VS_ELEM_BIT)
	{
		const uint8 *bits = (const uint8 *) in;

		for (int i = 0; i < dims; i++)
			x[i] = (bits[i / 8] & (0x80 >> (i % 8))) ? 1.0f : 0.0f;
	}
	else
		memcpy(x, in, sizeof(float) * dims);
}

/*
 * VsDatumToVector - an indexed or query value as float4 elements
 * (VsDatumAsVector), checked to have the index's "dims" dimensions.
 *
 * Result is palloc'd in the current context (or points into the datum).
 */
Vector *
VsDatumToVector(Relation index, Datum value, int dims, int elem)
{
	Vector	   *v = VsDatumAsVector(value, elem);

	if (v->dim != dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions but index \"%s\" has %d",
						v->dim, RelationGetRelationName(index), dims),
				 errhint("Vectors stored in or compared with this index must have %d dimensions.",
						 dims)));
	return v;
}
