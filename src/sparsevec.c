/*-------------------------------------------------------------------------
 *
 * sparsevec.c
 *	  The sparsevec type: text and binary I/O, typmod, casts, operators
 *	  and distance functions.
 *
 * Everything a user sees of the type is compatible with pgvector's
 * `sparsevec`: the text form "{1:1.5,3:2}/5" (1-based indices, then the
 * number of dimensions) with floats printed shortest-round-trip, the
 * binary form (int32 dims, int32 nnz, int32 zero, 0-based int32 indices,
 * float4 values, network order), typmod sparsevec(n), the limits (10^9
 * dimensions, 16000 stored elements), the error messages, the function
 * and operator names, and the values the distances return: they are
 * summed in float4, in ascending index order, as pgvector sums them, so
 * that a query gives the same numbers under both.
 *
 * Only non-zero values are stored: zeros in the text form or in a cast
 * are dropped, and the binary form refuses them.  Indices are kept
 * sorted, which lets every binary operation walk both vectors once, like
 * a merge.  vecstore does not index sparsevec (no operator class for the
 * vecstore access method): searches over it are sequential scans.
 *
 * IDENTIFICATION
 *	  src/sparsevec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"

#include "halfvec.h"
#include "sparsevec.h"
#include "vector.h"
#include "vsdistance.h"
#include "vsdistance_half.h"

/* one element of the text form, before sorting */
typedef struct SparseInputElement
{
	int32		index;			/* 0-based */
	float		value;
} SparseInputElement;

static inline bool sparsevec_isspace(char ch);
static inline void check_dims(const SparseVector *a, const SparseVector *b);
static inline void check_dim(long dim);
static inline void check_nnz(int nnz, int dim);
static inline void check_expected_dim(int32 typmod, int dim);
static inline void check_element(float value);
static inline void check_index(const int32 *indices, int i, int dim);
static int	compare_input_elements(const void *a, const void *b);
static float inner_product_internal(const SparseVector *a, const SparseVector *b);
static float l2_squared_internal(const SparseVector *a, const SparseVector *b);
static float l1_internal(const SparseVector *a, const SparseVector *b);
static int	sparsevec_cmp_internal(const SparseVector *a, const SparseVector *b);

/*
 * VsInitSparseVector - allocate a zeroed sparsevec of "dim" dimensions
 * with room for "nnz" elements, in the current memory context.  The
 * caller has checked both and fills indices and values.
 */
SparseVector *
VsInitSparseVector(int dim, int nnz)
{
	Size		size = VS_SPARSEVEC_SIZE(nnz);
	SparseVector *result = (SparseVector *) palloc0(size);

	SET_VARSIZE(result, size);
	result->dim = dim;
	result->nnz = nnz;
	return result;
}

/*
 * sparsevec_isspace - the whitespace accepted between tokens (as array_in
 * accepts it).
 */
static inline bool
sparsevec_isspace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

/*
 * check_dims - error unless both have the same number of dimensions.
 */
static inline void
check_dims(const SparseVector *a, const SparseVector *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different sparsevec dimensions %d and %d", a->dim, b->dim)));
}

/*
 * check_dim - error unless 1 <= dim <= VS_SPARSEVEC_MAX_DIM.  Takes a long
 * so that the text form's out-of-range counts get the same messages.
 */
static inline void
check_dim(long dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("sparsevec must have at least 1 dimension")));
	if (dim > VS_SPARSEVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("sparsevec cannot have more than %d dimensions",
						VS_SPARSEVEC_MAX_DIM)));
}

/*
 * check_nnz - error unless 0 <= nnz <= min(VS_SPARSEVEC_MAX_NNZ, dim).
 */
static inline void
check_nnz(int nnz, int dim)
{
	if (nnz < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("sparsevec cannot have negative number of elements")));
	if (nnz > VS_SPARSEVEC_MAX_NNZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("sparsevec cannot have more than %d non-zero elements",
						VS_SPARSEVEC_MAX_NNZ)));
	if (nnz > dim)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("sparsevec cannot have more elements than dimensions")));
}

/*
 * check_expected_dim - enforce a sparsevec(n), vector(n) or halfvec(n)
 * typmod (-1 means any).
 */
static inline void
check_expected_dim(int32 typmod, int dim)
{
	if (typmod != -1 && typmod != dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/*
 * check_element - a stored value must be finite.
 */
static inline void
check_element(float value)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in sparsevec")));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in sparsevec")));
}

/*
 * check_index - indices[i] lies in [0, dim) and above indices[i - 1].
 * Callers check i = 0, 1, ... in turn, so the first bad one is reported.
 */
static inline void
check_index(const int32 *indices, int i, int dim)
{
	if (indices[i] < 0 || indices[i] >= dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("sparsevec index out of bounds")));
	if (i > 0 && indices[i] < indices[i - 1])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("sparsevec indices must be in ascending order")));
	if (i > 0 && indices[i] == indices[i - 1])
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("sparsevec indices must not contain duplicates")));
}

/*
 * syntax_error - the literal is not of the form {i:x,...}/n; "detail" as
 * pgvector gives one for the same mistake, or NULL.
 */
static void
pg_attribute_noreturn()
syntax_error(const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type sparsevec: \"%s\"", lit),
			 detail != NULL ? errdetail("%s", detail) : 0));
}

/*
 * compare_input_elements - qsort order of the text form's elements: by
 * index.
 */
static int
compare_input_elements(const void *a, const void *b)
{
	int32		ia = ((const SparseInputElement *) a)->index;
	int32		ib = ((const SparseInputElement *) b)->index;

	return (ia > ib) - (ia < ib);
}

/*
 * parse_int - strtol at "pt", clamped into int range (so that a huge index
 * or dimension count gets the range error, not a wrapped value); sets
 * *end past the digits, or to "pt" when there are none.
 */
static long
parse_int(char *pt, char **end)
{
	long		v = strtol(pt, end, 10);

	if (v > INT_MAX)
		return INT_MAX;
	if (v < INT_MIN)
		return INT_MIN;
	return v;
}

PG_FUNCTION_INFO_V1(vs_sparsevec_in);
/*
 * sparsevec_in - parse "{i1:x1, i2:x2, ...}/dim", indices 1-based.
 *
 * Elements may come in any order (they are sorted); a zero value is
 * dropped, a repeated index is an error.  Values are read with strtof,
 * as float4in reads them, and like float4in a value that overflows or
 * underflows to zero is out of range.  The commas bound the element
 * count before anything is allocated from it.
 */
Datum
vs_sparsevec_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	char	   *pt = lit;
	char	   *end;
	SparseInputElement *elems;
	int			maxnnz = 1;
	int			nnz = 0;
	long		dim;
	SparseVector *result;
	float	   *values;

	for (const char *c = lit; *c != '\0'; c++)
		if (*c == ',')
			maxnnz++;
	if (maxnnz > VS_SPARSEVEC_MAX_NNZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("sparsevec cannot have more than %d non-zero elements",
						VS_SPARSEVEC_MAX_NNZ)));
	elems = palloc(sizeof(SparseInputElement) * maxnnz);

	while (sparsevec_isspace(*pt))
		pt++;
	if (*pt != '{')
		syntax_error(lit, "Vector contents must start with \"{\".");
	pt++;
	while (sparsevec_isspace(*pt))
		pt++;

	if (*pt == '}')
		pt++;
	else
	{
		for (;;)
		{
			long		index;
			float		value;

			while (sparsevec_isspace(*pt))
				pt++;
			if (*pt == '\0')
				syntax_error(lit, NULL);

			/* the index; INT_MIN is kept one above so index - 1 fits */
			index = parse_int(pt, &end);
			if (end == pt)
				syntax_error(lit, NULL);
			if (index == INT_MIN)
				index = INT_MIN + 1;
			pt = end;

			while (sparsevec_isspace(*pt))
				pt++;
			if (*pt != ':')
				syntax_error(lit, NULL);
			pt++;
			while (sparsevec_isspace(*pt))
				pt++;

			errno = 0;
			value = strtof(pt, &end);
			if (end == pt)
				syntax_error(lit, NULL);
			if (errno == ERANGE && (value == 0.0f || isinf(value)))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("\"%s\" is out of range for type sparsevec",
								pnstrdup(pt, end - pt))));
			check_element(value);
			pt = end;

			/* a zero is not stored; the commas bound nnz, so it fits */
			if (value != 0.0f)
			{
				Assert(nnz < maxnnz);
				elems[nnz].index = (int32) (index - 1);
				elems[nnz].value = value;
				nnz++;
			}

			while (sparsevec_isspace(*pt))
				pt++;
			if (*pt == ',')
				pt++;
			else if (*pt == '}')
			{
				pt++;
				break;
			}
			else
				syntax_error(lit, NULL);
		}
	}

	while (sparsevec_isspace(*pt))
		pt++;
	if (*pt != '/')
		syntax_error(lit, "Unexpected end of input.");
	pt++;
	while (sparsevec_isspace(*pt))
		pt++;

	dim = parse_int(pt, &end);
	if (end == pt)
		syntax_error(lit, NULL);
	pt = end;
	while (sparsevec_isspace(*pt))
		pt++;
	if (*pt != '\0')
		syntax_error(lit, "Junk after closing.");

	check_dim(dim);
	check_expected_dim(typmod, (int) dim);

	/* sorted, the first index out of range or repeated is the one reported */
	qsort(elems, nnz, sizeof(SparseInputElement), compare_input_elements);
	result = VsInitSparseVector((int) dim, nnz);
	values = VsSparsevecValues(result);
	for (int i = 0; i < nnz; i++)
	{
		result->indices[i] = elems[i].index;
		values[i] = elems[i].value;
		check_index(result->indices, i, result->dim);
	}
	pfree(elems);
	PG_RETURN_SPARSEVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_sparsevec_out);
/*
 * sparsevec_out - print "{i1:x1,...}/dim", indices 1-based, each value
 * shortest-round-trip.
 */
Datum
vs_sparsevec_out(PG_FUNCTION_ARGS)
{
	SparseVector *sv = PG_GETARG_SPARSEVEC_P(0);
	float	   *values = VsSparsevecValues(sv);
	char	   *buf;
	char	   *ptr;

	/*
	 * Per element: an index (at most 10 digits), ':', a value and ','; then
	 * the braces, '/', the dimensions (10 digits) and the NUL.
	 */
	buf = palloc((Size) sv->nnz * (10 + 1 + FLOAT_SHORTEST_DECIMAL_LEN + 1) + 16);
	ptr = buf;
	*ptr++ = '{';
	for (int i = 0; i < sv->nnz; i++)
	{
		if (i > 0)
			*ptr++ = ',';
		ptr += pg_ltoa(sv->indices[i] + 1, ptr);
		*ptr++ = ':';
		ptr += float_to_shortest_decimal_bufn(values[i], ptr);
	}
	*ptr++ = '}';
	*ptr++ = '/';
	ptr += pg_ltoa(sv->dim, ptr);
	*ptr = '\0';

	PG_FREE_IF_COPY(sv, 0);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(vs_sparsevec_typmod_in);
/*
 * sparsevec_typmod_in - "sparsevec(n)": exactly one modifier,
 * 1 <= n <= VS_SPARSEVEC_MAX_DIM.
 */
Datum
vs_sparsevec_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier")));
	if (*tl < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type sparsevec must be at least 1")));
	if (*tl > VS_SPARSEVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type sparsevec cannot exceed %d",
						VS_SPARSEVEC_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

PG_FUNCTION_INFO_V1(vs_sparsevec_recv);
/*
 * sparsevec_recv - binary input: int32 dim, int32 nnz, int32 reserved
 * (must be zero), nnz int32 0-based indices (strictly ascending, below
 * dim), nnz float4 values (finite, non-zero), all in network order.  nnz
 * is checked against its limit before anything is allocated from it; a
 * short message raises the protocol's own "insufficient data" error.
 */
Datum
vs_sparsevec_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int32		dim;
	int32		nnz;
	int32		unused;
	SparseVector *result;
	float	   *values;

	dim = (int32) pq_getmsgint(buf, sizeof(int32));
	nnz = (int32) pq_getmsgint(buf, sizeof(int32));
	unused = (int32) pq_getmsgint(buf, sizeof(int32));

	check_dim(dim);
	check_nnz(nnz, dim);
	check_expected_dim(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected unused to be 0, not %d", unused)));

	result = VsInitSparseVector(dim, nnz);
	values = VsSparsevecValues(result);
	for (int i = 0; i < nnz; i++)
	{
		result->indices[i] = (int32) pq_getmsgint(buf, sizeof(int32));
		check_index(result->indices, i, dim);
	}
	for (int i = 0; i < nnz; i++)
	{
		values[i] = pq_getmsgfloat4(buf);
		check_element(values[i]);
		/* a stored zero would break equality and the distances' merge */
		if (values[i] == 0.0f)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("binary representation of sparsevec cannot contain zero values")));
	}
	PG_RETURN_SPARSEVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_sparsevec_send);
/*
 * sparsevec_send - binary output, the inverse of sparsevec_recv.
 */
Datum
vs_sparsevec_send(PG_FUNCTION_ARGS)
{
	SparseVector *sv = PG_GETARG_SPARSEVEC_P(0);
	float	   *values = VsSparsevecValues(sv);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint32(&buf, sv->dim);
	pq_sendint32(&buf, sv->nnz);
	pq_sendint32(&buf, sv->unused);
	for (int i = 0; i < sv->nnz; i++)
		pq_sendint32(&buf, sv->indices[i]);
	for (int i = 0; i < sv->nnz; i++)
		pq_sendfloat4(&buf, values[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(vs_sparsevec);
/*
 * sparsevec(sparsevec, typmod, explicit) - the length-coercion cast.
 */
Datum
vs_sparsevec(PG_FUNCTION_ARGS)
{
	SparseVector *sv = PG_GETARG_SPARSEVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	check_expected_dim(typmod, sv->dim);
	PG_RETURN_SPARSEVEC_P(sv);
}

PG_FUNCTION_INFO_V1(vs_vector_to_sparsevec);
/*
 * vector_to_sparsevec - the cast from vector: its non-zero elements (-0
 * counts as zero).  A vector has at most 16000 elements, so nnz fits.
 */
Datum
vs_vector_to_sparsevec(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	SparseVector *result;
	float	   *values;
	int			nnz = 0;
	int			j = 0;

	check_dim(vec->dim);
	check_expected_dim(typmod, vec->dim);
	for (int i = 0; i < vec->dim; i++)
		if (vec->x[i] != 0.0f)
			nnz++;
	check_nnz(nnz, vec->dim);

	result = VsInitSparseVector(vec->dim, nnz);
	values = VsSparsevecValues(result);
	for (int i = 0; i < vec->dim; i++)
	{
		if (vec->x[i] != 0.0f)
		{
			result->indices[j] = i;
			values[j] = vec->x[i];
			j++;
		}
	}
	PG_RETURN_SPARSEVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_sparsevec_to_vector);
/*
 * sparsevec_to_vector - the cast to vector: zeros where nothing is
 * stored; the dimensions must fit a vector.
 */
Datum
vs_sparsevec_to_vector(PG_FUNCTION_ARGS)
{
	SparseVector *sv = PG_GETARG_SPARSEVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	float	   *values = VsSparsevecValues(sv);
	Vector	   *result;

	/* vector's own limits, in its words (vector.c, check_dim) */
	if (sv->dim > VS_VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("vector cannot have more than %d dimensions",
						VS_VECTOR_MAX_DIM)));
	check_expected_dim(typmod, sv->dim);

	result = VsInitVector(sv->dim);
	for (int i = 0; i < sv->nnz; i++)
		result->x[sv->indices[i]] = values[i];
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_to_sparsevec);
/*
 * halfvec_to_sparsevec - the cast from halfvec: its non-zero elements
 * (-0 counts as zero), widened exactly to float4.  A halfvec has at most
 * 16000 elements, all finite, so nnz fits and the values need no check.
 */
Datum
vs_halfvec_to_sparsevec(PG_FUNCTION_ARGS)
{
	HalfVector *vec = PG_GETARG_HALFVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	SparseVector *result;
	float	   *values;
	int			nnz = 0;
	int			j = 0;

	check_dim(vec->dim);
	check_expected_dim(typmod, vec->dim);
	for (int i = 0; i < vec->dim; i++)
		if (!VsHalfIsZero(vec->x[i]))
			nnz++;
	check_nnz(nnz, vec->dim);

	result = VsInitSparseVector(vec->dim, nnz);
	values = VsSparsevecValues(result);
	for (int i = 0; i < vec->dim; i++)
	{
		if (!VsHalfIsZero(vec->x[i]))
		{
			result->indices[j] = i;
			values[j] = VsHalfToFloat(vec->x[i]);
			j++;
		}
	}
	PG_RETURN_SPARSEVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_sparsevec_to_halfvec);
/*
 * sparsevec_to_halfvec - the cast to halfvec: zeros where nothing is
 * stored, each stored value rounded to nearest even half (one of
 * magnitude 65520 or more is out of range; a tiny one may round to
 * zero, as in pgvector); the dimensions must fit a halfvec.
 */
Datum
vs_sparsevec_to_halfvec(PG_FUNCTION_ARGS)
{
	SparseVector *sv = PG_GETARG_SPARSEVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	float	   *values = VsSparsevecValues(sv);
	HalfVector *result;

	/* halfvec's own limits, in its words (halfvec.c, check_dim) */
	if (sv->dim > VS_HALFVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("halfvec cannot have more than %d dimensions",
						VS_HALFVEC_MAX_DIM)));
	check_expected_dim(typmod, sv->dim);

	result = VsInitHalfVector(sv->dim);
	for (int i = 0; i < sv->nnz; i++)
		result->x[sv->indices[i]] = VsFloatToHalfChecked(values[i]);
	PG_RETURN_HALFVEC_P(result);
}

/*
 * array_element_float - element "d" of an array of "elemtype" as float4;
 * NaN and infinities pass through (the caller checks what it stores).
 */
static float
array_element_float(Datum d, Oid elemtype)
{
	switch (elemtype)
	{
		case INT4OID:
			return (float) DatumGetInt32(d);
		case FLOAT4OID:
			return DatumGetFloat4(d);
		case FLOAT8OID:
			return (float) DatumGetFloat8(d);
		case NUMERICOID:
			/* numeric_float4 reports its own range errors */
			return DatumGetFloat4(DirectFunctionCall1(numeric_float4, d));
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("unsupported array type")));
	}
	return 0.0f;				/* keep the compiler quiet */
}

PG_FUNCTION_INFO_V1(vs_array_to_sparsevec);
/*
 * array_to_sparsevec(anyarray, typmod, explicit) - casts from int4[],
 * float4[], float8[] and numeric[]: one dimension per element, the
 * non-zero elements stored.
 */
Datum
vs_array_to_sparsevec(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	float	   *x;
	int			nelems;
	int			nnz = 0;
	int			j = 0;
	SparseVector *result;
	float	   *values;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be 1-D")));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("array must not contain nulls")));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &elems, NULL, &nelems);
	check_dim(nelems);
	check_expected_dim(typmod, nelems);

	/* convert once; count the non-zeros before sizing the result */
	x = palloc(sizeof(float) * nelems);
	for (int i = 0; i < nelems; i++)
	{
		x[i] = array_element_float(elems[i], elemtype);
		if (x[i] != 0.0f)
			nnz++;
	}
	check_nnz(nnz, nelems);

	result = VsInitSparseVector(nelems, nnz);
	values = VsSparsevecValues(result);
	for (int i = 0; i < nelems; i++)
	{
		if (x[i] != 0.0f)
		{
			result->indices[j] = i;
			values[j] = x[i];
			j++;
		}
	}
	for (int i = 0; i < nnz; i++)
		check_element(values[i]);
	pfree(x);
	pfree(elems);
	PG_RETURN_SPARSEVEC_P(result);
}

/*
 * The distances walk both index lists at once, in ascending order, and
 * sum in float4 in that order (pgvector's order, so the same float
 * results, overflow to infinity included).
 */

/*
 * inner_product_internal - sum of a[i] * b[i] over the indices both store.
 */
static float
inner_product_internal(const SparseVector *a, const SparseVector *b)
{
	const float *ax = VsSparsevecValues(a);
	const float *bx = VsSparsevecValues(b);
	float		sum = 0.0f;
	int			i = 0,
				j = 0;

	while (i < a->nnz && j < b->nnz)
	{
		if (a->indices[i] < b->indices[j])
			i++;
		else if (a->indices[i] > b->indices[j])
			j++;
		else
			sum += ax[i++] * bx[j++];
	}
	return sum;
}

/*
 * l2_squared_internal - sum of (a[i] - b[i])^2 over the union of indices
 * (a value stored on one side only counts as its square).
 */
static float
l2_squared_internal(const SparseVector *a, const SparseVector *b)
{
	const float *ax = VsSparsevecValues(a);
	const float *bx = VsSparsevecValues(b);
	float		sum = 0.0f;
	int			i = 0,
				j = 0;

	while (i < a->nnz || j < b->nnz)
	{
		float		d;

		if (j == b->nnz || (i < a->nnz && a->indices[i] < b->indices[j]))
			d = ax[i++];
		else if (i == a->nnz || a->indices[i] > b->indices[j])
			d = bx[j++];
		else
			d = ax[i++] - bx[j++];
		sum += d * d;
	}
	return sum;
}

/*
 * l1_internal - sum of |a[i] - b[i]| over the union of indices.
 */
static float
l1_internal(const SparseVector *a, const SparseVector *b)
{
	const float *ax = VsSparsevecValues(a);
	const float *bx = VsSparsevecValues(b);
	float		sum = 0.0f;
	int			i = 0,
				j = 0;

	while (i < a->nnz || j < b->nnz)
	{
		if (j == b->nnz || (i < a->nnz && a->indices[i] < b->indices[j]))
			sum += fabsf(ax[i++]);
		else if (i == a->nnz || a->indices[i] > b->indices[j])
			sum += fabsf(bx[j++]);
		else
		{
			sum += fabsf(ax[i] - bx[j]);
			i++;
			j++;
		}
	}
	return sum;
}

/*
 * squared_norm - sum of a[i]^2 in float4, in index order.
 */
static float
squared_norm(const SparseVector *a)
{
	const float *ax = VsSparsevecValues(a);
	float		sum = 0.0f;

	for (int i = 0; i < a->nnz; i++)
		sum += ax[i] * ax[i];
	return sum;
}

PG_FUNCTION_INFO_V1(vs_sparsevec_l2_distance);
/*
 * l2_distance(sparsevec, sparsevec) - Euclidean distance (the <->
 * operator).
 */
Datum
vs_sparsevec_l2_distance(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	SparseVector *b = PG_GETARG_SPARSEVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8(sqrt((double) l2_squared_internal(a, b)));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_l2_squared_distance);
/*
 * sparsevec_l2_squared_distance - squared Euclidean distance.
 */
Datum
vs_sparsevec_l2_squared_distance(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	SparseVector *b = PG_GETARG_SPARSEVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8((double) l2_squared_internal(a, b));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_inner_product);
/*
 * inner_product(sparsevec, sparsevec) - the dot product.
 */
Datum
vs_sparsevec_inner_product(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	SparseVector *b = PG_GETARG_SPARSEVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8((double) inner_product_internal(a, b));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_negative_inner_product);
/*
 * sparsevec_negative_inner_product - the <#> operator, so that ascending
 * order means most similar first.
 */
Datum
vs_sparsevec_negative_inner_product(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	SparseVector *b = PG_GETARG_SPARSEVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8(-(double) inner_product_internal(a, b));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_cosine_distance);
/*
 * cosine_distance(sparsevec, sparsevec) - 1 - cos(angle), in [0, 2]
 * (the <=> operator); NaN when either vector is zero, or when a sum
 * overflows float4 (as in pgvector).
 */
Datum
vs_sparsevec_cosine_distance(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	SparseVector *b = PG_GETARG_SPARSEVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8(VsCosineFromSums(inner_product_internal(a, b),
									  squared_norm(a), squared_norm(b)));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_l1_distance);
/*
 * l1_distance(sparsevec, sparsevec) - taxicab distance (the <+>
 * operator).
 */
Datum
vs_sparsevec_l1_distance(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	SparseVector *b = PG_GETARG_SPARSEVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8((double) l1_internal(a, b));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_l2_norm);
/*
 * l2_norm(sparsevec) - Euclidean norm, summed in double.
 */
Datum
vs_sparsevec_l2_norm(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	float	   *ax = VsSparsevecValues(a);
	double		norm = 0.0;

	for (int i = 0; i < a->nnz; i++)
		norm += (double) ax[i] * (double) ax[i];
	PG_RETURN_FLOAT8(sqrt(norm));
}

PG_FUNCTION_INFO_V1(vs_sparsevec_l2_normalize);
/*
 * l2_normalize(sparsevec) - scaled to unit length; a zero vector is
 * returned unchanged.  A value so small against the norm that it rounds
 * to zero in float4 is dropped (a stored value is never zero).
 */
Datum
vs_sparsevec_l2_normalize(PG_FUNCTION_ARGS)
{
	SparseVector *a = PG_GETARG_SPARSEVEC_P(0);
	float	   *ax = VsSparsevecValues(a);
	double		norm = 0.0;
	float	   *scaled;
	int			nnz = 0;
	SparseVector *result;
	float	   *rx;

	for (int i = 0; i < a->nnz; i++)
		norm += (double) ax[i] * (double) ax[i];
	norm = sqrt(norm);
	if (norm == 0.0)
		PG_RETURN_SPARSEVEC_P(VsInitSparseVector(a->dim, 0));

	scaled = palloc(sizeof(float) * Max(a->nnz, 1));
	for (int i = 0; i < a->nnz; i++)
	{
		scaled[i] = (float) ((double) ax[i] / norm);
		if (isinf(scaled[i]))
			float_overflow_error();
		if (scaled[i] != 0.0f)
			nnz++;
	}

	result = VsInitSparseVector(a->dim, nnz);
	rx = VsSparsevecValues(result);
	for (int i = 0, j = 0; i < a->nnz; i++)
	{
		if (scaled[i] != 0.0f)
		{
			result->indices[j] = a->indices[i];
			rx[j] = scaled[i];
			j++;
		}
	}
	pfree(scaled);
	PG_RETURN_SPARSEVEC_P(result);
}

/*
 * sparsevec_cmp_internal - btree order: the order of the dense vectors
 * (element by element, then the one with fewer dimensions first), so
 * that sparsevec sorts as the same values would as vector or as arrays.
 * Only positions below both dimension counts where either side stores a
 * value can differ, so the walk visits those, in ascending order; the
 * first that differs decides.
 */
static int
sparsevec_cmp_internal(const SparseVector *a, const SparseVector *b)
{
	const float *ax = VsSparsevecValues(a);
	const float *bx = VsSparsevecValues(b);
	int			limit = Min(a->dim, b->dim);
	int			i = 0,
				j = 0;

	for (;;)
	{
		/* indices are below VS_SPARSEVEC_MAX_DIM, so INT_MAX means none */
		int32		ia = i < a->nnz ? a->indices[i] : INT_MAX;
		int32		ib = j < b->nnz ? b->indices[j] : INT_MAX;
		int32		pos = Min(ia, ib);
		float		va = 0.0f;
		float		vb = 0.0f;

		if (pos >= limit)
			break;
		if (ia == pos)
			va = ax[i++];
		if (ib == pos)
			vb = bx[j++];
		if (va < vb)
			return -1;
		if (va > vb)
			return 1;
	}
	if (a->dim < b->dim)
		return -1;
	if (a->dim > b->dim)
		return 1;
	return 0;
}

/* the six comparison operators and btree support function 1 (sparsevec_cmp) */
VS_COMPARISON_FUNCTIONS(vs_sparsevec, SparseVector, PG_GETARG_SPARSEVEC_P, sparsevec_cmp_internal)
