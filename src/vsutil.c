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
 * VsDatumAsVector - an indexed or query value as float4 elements: a vector
 * detoasted, a halfvec ("half") widened, exactly, into a new Vector.
 */
Vector *
VsDatumAsVector(Datum value, bool half)
{
	HalfVector *h;
	Vector	   *v;

	if (!half)
		return DatumGetVector(value);
	h = DatumGetHalfVector(value);
	v = VsInitVector(h->dim);
	VsHalfKernels.half_to_float(h->x, v->x, h->dim);
	return v;
}

/*
 * VsDatumToVector - an indexed or query value as float4 elements
 * (VsDatumAsVector), checked to have the index's "dims" dimensions.
 *
 * Result is palloc'd in the current context (or points into the datum).
 */
Vector *
VsDatumToVector(Relation index, Datum value, int dims, bool half)
{
	Vector	   *v = VsDatumAsVector(value, half);

	if (v->dim != dims)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector has %d dimensions but index \"%s\" has %d",
						v->dim, RelationGetRelationName(index), dims),
				 errhint("Vectors stored in or compared with this index must have %d dimensions.",
						 dims)));
	return v;
}
