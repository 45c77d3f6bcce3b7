/*-------------------------------------------------------------------------
 *
 * vsutil.c
 *	  Small server-side helpers shared by the index and the GPU service.
 *
 * IDENTIFICATION
 *	  src/vsutil.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/lsyscache.h"

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
