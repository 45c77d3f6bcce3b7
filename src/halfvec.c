/*-------------------------------------------------------------------------
 *
 * halfvec.c
 *	  The halfvec type: text and binary I/O, typmod, casts, operators,
 *	  distance functions and aggregates of half-precision vectors.
 *
 * Everything a user sees of the type is compatible with pgvector's
 * `halfvec`: the layout and binary form (int16 dims, int16 zero, binary16
 * elements, network order), the text form "[1,2,3]" (each element printed
 * as the shortest text that reads back as the same float4, which is the
 * half's exact value widened), typmod halfvec(n), operator and function
 * names, error messages.  The C symbols carry a "vs_" prefix, as in
 * vector.c.
 *
 * Elements are IEEE binary16 bit patterns (uint16).  Every conversion and
 * distance goes through vsdistance_half.c: float -> half rounds to
 * nearest even; a finite value that rounds to infinity (65520 and up) is
 * an error; NaN and infinity are refused on the way in, so a stored
 * halfvec is always finite.  Arithmetic is done in float and rounded once
 * to half; sums and norms are computed in float like pgvector's (the
 * kernels), avg() and sum() in double.
 *
 * IDENTIFICATION
 *	  src/halfvec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/varbit.h"

#include "halfvec.h"
#include "vector.h"
#include "vsdistance_half.h"

/* elements widened per step when a loop needs floats but no array */
#define HALF_CHUNK	256

static inline bool halfvec_isspace(char ch);
static inline void check_dims(const HalfVector *a, const HalfVector *b);
static inline void check_dim(int dim);
static inline void check_expected_dim(int32 typmod, int dim);
static inline void check_element(uint16 value);
static int	halfvec_cmp_internal(const HalfVector *a, const HalfVector *b);
static HalfVector *array_to_halfvec_common(ArrayType *array, int32 typmod);

/*
 * VsInitHalfVector - allocate a zeroed halfvec of "dim" elements in the
 * current memory context.  The caller has checked "dim".
 */
HalfVector *
VsInitHalfVector(int dim)
{
	Size		size = VS_HALFVEC_SIZE(dim);
	HalfVector *result = (HalfVector *) palloc0(size);

	SET_VARSIZE(result, size);
	result->dim = dim;
	return result;
}

/*
 * halfvec_isspace - the whitespace accepted around elements (as
 * vector_isspace).
 */
static inline bool
halfvec_isspace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

/*
 * check_dims - error unless both halfvecs have the same number of
 * elements.
 */
static inline void
check_dims(const HalfVector *a, const HalfVector *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different halfvec dimensions %d and %d", a->dim, b->dim)));
}

/*
 * check_dim - error unless 1 <= dim <= VS_HALFVEC_MAX_DIM.
 */
static inline void
check_dim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("halfvec must have at least 1 dimension")));
	if (dim > VS_HALFVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("halfvec cannot have more than %d dimensions",
						VS_HALFVEC_MAX_DIM)));
}

/*
 * check_expected_dim - enforce a halfvec(n) typmod (-1 means any).
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
 * check_element - a stored element must be finite.
 */
static inline void
check_element(uint16 value)
{
	if (VsHalfIsNan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in halfvec")));
	if (VsHalfIsInf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in halfvec")));
}

/*
 * out_of_range_error - a finite float too large for a half (pgvector's
 * message, with the value as float4 text).
 */
static void
pg_attribute_noreturn()
out_of_range_error(float value)
{
	char		buf[FLOAT_SHORTEST_DECIMAL_LEN];

	float_to_shortest_decimal_buf(value, buf);
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("\"%s\" is out of range for type halfvec", buf)));
}

/*
 * overflow_error - a computed element left the range of half.
 */
static void
pg_attribute_noreturn()
overflow_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("value out of range: overflow")));
}

/*
 * underflow_error - a product of nonzero elements rounded to zero.
 */
static void
pg_attribute_noreturn()
underflow_error(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("value out of range: underflow")));
}

/*
 * VsFloatToHalfChecked - "value" rounded to half; a finite value that
 * rounds to infinity is an error.  NaN and infinity pass through, for
 * check_element to refuse in its own words.  Also the cast from sparsevec
 * (sparsevec.c).
 */
uint16
VsFloatToHalfChecked(float value)
{
	uint16		h = VsFloatToHalf(value);

	if (unlikely(VsHalfIsInf(h)) && !isinf(value))
		out_of_range_error(value);
	return h;
}

/*
 * halfvec_from_floats - a halfvec of the "dim" floats "x" (bulk
 * conversion), after the same range check as VsFloatToHalfChecked.
 * Elements are not checked for NaN or infinity.
 */
static HalfVector *
halfvec_from_floats(const float *x, int dim)
{
	HalfVector *result = VsInitHalfVector(dim);

	VsHalfKernels.float_to_half(x, result->x, dim);
	for (int i = 0; i < dim; i++)
	{
		if (unlikely(VsHalfIsInf(result->x[i])) && !isinf(x[i]))
			out_of_range_error(x[i]);
	}
	return result;
}

/*
 * malformed_error - the literal is not of the form [x,y,...]; pgvector's
 * messages and details, as in vector.c.
 */
static void
pg_attribute_noreturn()
malformed_error(const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type halfvec: \"%s\"", lit),
			 detail != NULL ? errdetail("%s", detail) : 0));
}

PG_FUNCTION_INFO_V1(vs_halfvec_in);
/*
 * halfvec_in - parse "[x1, x2, ...]".
 *
 * Each element is read with strtof, as vector_in does, and the float is
 * rounded to half (so a decimal rounds twice, as in pgvector).  A value
 * beyond float4's range, or a finite one that rounds to half infinity
 * (65520 and up), is out of range; one that underflows reads as the
 * nearest half, zero included.
 */
Datum
vs_halfvec_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	char	   *pt = lit;
	uint16	   *x;
	int			maxdim;
	int			dim = 0;
	HalfVector *result;

	while (halfvec_isspace(*pt))
		pt++;
	if (*pt != '[')
		malformed_error(lit, "Vector contents must start with \"[\".");
	pt++;

	/* commas bound the element count; allow one past the limit to detect it */
	maxdim = 1;
	for (const char *c = pt; *c != '\0' && maxdim <= VS_HALFVEC_MAX_DIM; c++)
		if (*c == ',')
			maxdim++;
	x = palloc(sizeof(uint16) * maxdim);

	while (halfvec_isspace(*pt))
		pt++;
	if (*pt == ']')
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("halfvec must have at least 1 dimension")));

	for (;;)
	{
		char	   *end;
		float		val;

		if (dim == VS_HALFVEC_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("halfvec cannot have more than %d dimensions",
							VS_HALFVEC_MAX_DIM)));

		while (halfvec_isspace(*pt))
			pt++;
		if (*pt == '\0')
			malformed_error(lit, NULL);

		errno = 0;
		val = strtof(pt, &end);
		if (end == pt)
			malformed_error(lit, NULL);
		x[dim] = VsFloatToHalf(val);
		/* the literal's own text in the message, as float4in gives it */
		if ((errno == ERANGE && isinf(val)) ||
			(VsHalfIsInf(x[dim]) && !isinf(val)))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%s\" is out of range for type halfvec",
							pnstrdup(pt, end - pt))));
		check_element(x[dim]);
		dim++;
		pt = end;

		while (halfvec_isspace(*pt))
			pt++;
		if (*pt == ',')
			pt++;
		else if (*pt == ']')
		{
			pt++;
			break;
		}
		else
			malformed_error(lit, NULL);
	}

	while (halfvec_isspace(*pt))
		pt++;
	if (*pt != '\0')
		malformed_error(lit, "Junk after closing right brace.");

	check_dim(dim);
	check_expected_dim(typmod, dim);

	result = VsInitHalfVector(dim);
	memcpy(result->x, x, sizeof(uint16) * dim);
	pfree(x);
	PG_RETURN_HALFVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_out);
/*
 * halfvec_out - print "[x1,x2,...]": each element is the half's exact
 * value as a float4, printed shortest-round-trip for float4 (as pgvector
 * prints it: 1.234375, not the shortest text that rounds to the half).
 */
Datum
vs_halfvec_out(PG_FUNCTION_ARGS)
{
	HalfVector *vec = PG_GETARG_HALFVEC_P(0);
	int			dim = vec->dim;
	char	   *buf;
	char	   *ptr;

	/* each element, a comma or bracket per element, the last bracket, NUL */
	buf = palloc(dim * (FLOAT_SHORTEST_DECIMAL_LEN + 1) + 2);
	ptr = buf;
	*ptr++ = '[';
	for (int i = 0; i < dim; i++)
	{
		if (i > 0)
			*ptr++ = ',';
		ptr += float_to_shortest_decimal_bufn(VsHalfToFloat(vec->x[i]), ptr);
	}
	*ptr++ = ']';
	*ptr = '\0';

	PG_FREE_IF_COPY(vec, 0);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(vs_halfvec_typmod_in);
/*
 * halfvec_typmod_in - "halfvec(n)": exactly one modifier, 1 <= n <= max.
 */
Datum
vs_halfvec_typmod_in(PG_FUNCTION_ARGS)
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
				 errmsg("dimensions for type halfvec must be at least 1")));
	if (*tl > VS_HALFVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type halfvec cannot exceed %d",
						VS_HALFVEC_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

PG_FUNCTION_INFO_V1(vs_halfvec_recv);
/*
 * halfvec_recv - binary input: int16 dim, int16 reserved (must be zero),
 * then dim binary16 values, all in network order.  The checks and their
 * order are vector_recv's.
 */
Datum
vs_halfvec_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			dim;
	int			unused;
	HalfVector *result;

	/* read as unsigned, so a negative int16 shows up as too large */
	dim = pq_getmsgint(buf, sizeof(int16));
	unused = pq_getmsgint(buf, sizeof(int16));

	check_dim(dim);
	check_expected_dim(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary halfvec: reserved field is %d, expected 0",
						unused)));
	/* fail before allocating for a message that cannot hold dim halves */
	if (buf->len - buf->cursor < (int) sizeof(uint16) * dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary halfvec: %d dimensions need %d bytes, message has %d",
						dim, (int) sizeof(uint16) * dim, buf->len - buf->cursor)));

	result = VsInitHalfVector(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = (uint16) pq_getmsgint(buf, sizeof(uint16));
		check_element(result->x[i]);
	}
	PG_RETURN_HALFVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_send);
/*
 * halfvec_send - binary output, the inverse of halfvec_recv.
 */
Datum
vs_halfvec_send(PG_FUNCTION_ARGS)
{
	HalfVector *vec = PG_GETARG_HALFVEC_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, vec->dim);
	pq_sendint16(&buf, vec->unused);
	for (int i = 0; i < vec->dim; i++)
		pq_sendint16(&buf, vec->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(vs_halfvec);
/*
 * halfvec(halfvec, typmod, explicit) - the length-coercion cast.
 */
Datum
vs_halfvec(PG_FUNCTION_ARGS)
{
	HalfVector *vec = PG_GETARG_HALFVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	check_expected_dim(typmod, vec->dim);
	PG_RETURN_HALFVEC_P(vec);
}

PG_FUNCTION_INFO_V1(vs_halfvec_to_vector);
/*
 * halfvec_to_vector - cast to vector: exact, every half is a float4.
 */
Datum
vs_halfvec_to_vector(PG_FUNCTION_ARGS)
{
	HalfVector *vec = PG_GETARG_HALFVEC_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	Vector	   *result;

	check_expected_dim(typmod, vec->dim);
	result = VsInitVector(vec->dim);
	VsHalfKernels.half_to_float(vec->x, result->x, vec->dim);
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_to_halfvec);
/*
 * vector_to_halfvec - cast from vector: each element rounded to nearest
 * even; one of magnitude 65520 or more is out of range.
 */
Datum
vs_vector_to_halfvec(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	check_dim(vec->dim);
	check_expected_dim(typmod, vec->dim);
	/* a vector's elements are finite: no NaN or infinity to refuse */
	PG_RETURN_HALFVEC_P(halfvec_from_floats(vec->x, vec->dim));
}

/*
 * array_to_halfvec_common - build a halfvec from a one-dimensional array
 * of int4, float4, float8 or numeric with no NULLs.
 *
 * Each element becomes a float4 first (as for vector), then a half, as in
 * pgvector: a value beyond float4's range becomes infinite and is refused
 * as such, a finite float4 of 65520 or more is out of range.  All
 * elements are converted (range errors first) before any is checked for
 * NaN or infinity, in pgvector's order.  Result is palloc'd in the
 * current context.
 */
static HalfVector *
array_to_halfvec_common(ArrayType *array, int32 typmod)
{
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	int			nelems;
	float	   *x;
	HalfVector *result;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be 1-D")));
	if (array_contains_nulls(array))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("array must not contain nulls")));

	/* check the count before deconstructing a huge array */
	nelems = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	check_dim(nelems);
	check_expected_dim(typmod, nelems);

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &elems, NULL, &nelems);

	x = palloc(sizeof(float) * nelems);
	for (int i = 0; i < nelems; i++)
	{
		switch (elemtype)
		{
			case INT4OID:
				/* large ones round (to float4, then to half or out of range) */
				x[i] = (float) DatumGetInt32(elems[i]);
				break;
			case FLOAT4OID:
				x[i] = DatumGetFloat4(elems[i]);
				break;
			case FLOAT8OID:
				x[i] = (float) DatumGetFloat8(elems[i]);
				break;
			case NUMERICOID:
				/* numeric_float4 reports its own range errors */
				x[i] = DatumGetFloat4(DirectFunctionCall1(numeric_float4, elems[i]));
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("unsupported array type %s",
								format_type_be(elemtype))));
		}
	}
	result = halfvec_from_floats(x, nelems);
	for (int i = 0; i < nelems; i++)
		check_element(result->x[i]);
	pfree(x);
	pfree(elems);
	return result;
}

PG_FUNCTION_INFO_V1(vs_array_to_halfvec);
/*
 * array_to_halfvec(anyarray, typmod, explicit) - casts from int4[],
 * float4[], float8[] and numeric[].
 */
Datum
vs_array_to_halfvec(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	PG_RETURN_HALFVEC_P(array_to_halfvec_common(array, typmod));
}

PG_FUNCTION_INFO_V1(vs_halfvec_to_float4);
/*
 * halfvec_to_float4 - cast to real[] (exact).
 */
Datum
vs_halfvec_to_float4(PG_FUNCTION_ARGS)
{
	HalfVector *vec = PG_GETARG_HALFVEC_P(0);
	float	   *x = palloc(sizeof(float) * vec->dim);
	Datum	   *datums = palloc(sizeof(Datum) * vec->dim);
	ArrayType  *result;

	VsHalfKernels.half_to_float(vec->x, x, vec->dim);
	for (int i = 0; i < vec->dim; i++)
		datums[i] = Float4GetDatum(x[i]);
	result = construct_array(datums, vec->dim, FLOAT4OID,
							 sizeof(float4), true, TYPALIGN_INT);
	pfree(datums);
	pfree(x);
	PG_RETURN_ARRAYTYPE_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_l2_distance);
/*
 * halfvec_l2_distance - Euclidean distance (the <-> operator): the float
 * sum of squares of the widened elements, its square root in double.
 */
Datum
vs_halfvec_l2_distance(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8(sqrt((double) VsHalfKernels.l2_squared(a->x, b->x, a->dim)));
}

PG_FUNCTION_INFO_V1(vs_halfvec_l2_squared_distance);
/*
 * halfvec_l2_squared_distance - squared Euclidean distance.
 */
Datum
vs_halfvec_l2_squared_distance(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8((double) VsHalfKernels.l2_squared(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_halfvec_inner_product);
/*
 * halfvec_inner_product - dot product.
 */
Datum
vs_halfvec_inner_product(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8((double) VsHalfKernels.inner_product(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_halfvec_spherical_distance);
/*
 * halfvec_spherical_distance - vector_spherical_distance (vector.c) of
 * two halfvecs.
 */
Datum
vs_halfvec_spherical_distance(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);
	double		dp;

	check_dims(a, b);
	dp = (double) VsHalfKernels.inner_product(a->x, b->x, a->dim);
	PG_RETURN_FLOAT8(acos(Max(-1.0, Min(1.0, dp))) / M_PI);
}

PG_FUNCTION_INFO_V1(vs_halfvec_negative_inner_product);
/*
 * halfvec_negative_inner_product - the <#> operator.
 */
Datum
vs_halfvec_negative_inner_product(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8(-(double) VsHalfKernels.inner_product(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_halfvec_cosine_distance);
/*
 * halfvec_cosine_distance - 1 - cos(angle), in [0, 2]; NaN when either
 * halfvec is zero (VsCosineFromSums, as for vector).
 */
Datum
vs_halfvec_cosine_distance(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);
	float		dot,
				norm_a,
				norm_b;

	check_dims(a, b);
	VsHalfKernels.dot_norms(a->x, b->x, a->dim, &dot, &norm_a, &norm_b);
	PG_RETURN_FLOAT8(VsCosineFromSums(dot, norm_a, norm_b));
}

PG_FUNCTION_INFO_V1(vs_halfvec_l1_distance);
/*
 * halfvec_l1_distance - taxicab distance (the <+> operator).
 */
Datum
vs_halfvec_l1_distance(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_FLOAT8((double) VsHalfKernels.l1(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_halfvec_vector_dims);
/*
 * vector_dims(halfvec) - number of elements.
 */
Datum
vs_halfvec_vector_dims(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);

	PG_RETURN_INT32(a->dim);
}

/*
 * norm_squared - sum of the squared elements, in double.
 */
static double
norm_squared(const HalfVector *a)
{
	float		buf[HALF_CHUNK];
	double		norm = 0.0;

	for (int start = 0; start < a->dim; start += HALF_CHUNK)
	{
		int			n = Min(HALF_CHUNK, a->dim - start);

		VsHalfKernels.half_to_float(a->x + start, buf, n);
		for (int i = 0; i < n; i++)
			norm += (double) buf[i] * (double) buf[i];
	}
	return norm;
}

PG_FUNCTION_INFO_V1(vs_halfvec_l2_norm);
/*
 * l2_norm(halfvec) - Euclidean norm, summed in double.
 */
Datum
vs_halfvec_l2_norm(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);

	PG_RETURN_FLOAT8(sqrt(norm_squared(a)));
}

PG_FUNCTION_INFO_V1(vs_halfvec_l2_normalize);
/*
 * l2_normalize(halfvec) - scaled to unit length, each element divided in
 * double, then rounded to float4 and to half (pgvector's steps).  A zero
 * halfvec is returned unchanged.  No element can overflow: |x_i| <= norm.
 */
Datum
vs_halfvec_l2_normalize(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	double		norm = sqrt(norm_squared(a));
	float	   *x;
	HalfVector *result;

	if (norm == 0.0)
		PG_RETURN_HALFVEC_P(VsInitHalfVector(a->dim));

	x = palloc(sizeof(float) * a->dim);
	VsHalfKernels.half_to_float(a->x, x, a->dim);
	for (int i = 0; i < a->dim; i++)
		x[i] = (float) ((double) x[i] / norm);
	result = halfvec_from_floats(x, a->dim);
	pfree(x);
	PG_RETURN_HALFVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_subvector);
/*
 * subvector(halfvec, start, count) - as subvector(vector, ...): elements
 * start .. start+count-1, counted from 1 and clipped like substring(); at
 * least one element must remain.
 */
Datum
vs_halfvec_subvector(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	int64		start = PG_GETARG_INT32(1);
	int64		count = PG_GETARG_INT32(2);
	int64		first;
	int64		last;
	HalfVector *result;

	/* int64 arithmetic: start + count cannot overflow */
	first = Max(start, 1);
	last = Min(start + count - 1, (int64) a->dim);
	if (count < 1 || last < first)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("halfvec must have at least 1 dimension")));

	result = VsInitHalfVector((int) (last - first + 1));
	memcpy(result->x, a->x + (first - 1), sizeof(uint16) * result->dim);
	PG_RETURN_HALFVEC_P(result);
}

/*
 * The element-wise operators: both operands widened (bulk), the float
 * results rounded to half once (bulk).  Sums, differences and products of
 * two halves are exact or correctly rounded in float, so the rounding to
 * half is the only one that matters, as with a native half operation.
 */
typedef enum HalfvecOp
{
	HALFVEC_ADD,
	HALFVEC_SUB,
	HALFVEC_MUL
} HalfvecOp;

/*
 * elementwise - a OP b; a result that rounds to infinity is an overflow,
 * a product of nonzero halves that rounds to zero an underflow.
 */
static HalfVector *
elementwise(const HalfVector *a, const HalfVector *b, HalfvecOp op)
{
	int			dim = a->dim;
	float	   *x = palloc(sizeof(float) * dim);
	float	   *y = palloc(sizeof(float) * dim);
	HalfVector *result;

	VsHalfKernels.half_to_float(a->x, x, dim);
	VsHalfKernels.half_to_float(b->x, y, dim);
	switch (op)
	{
		case HALFVEC_ADD:
			for (int i = 0; i < dim; i++)
				x[i] += y[i];
			break;
		case HALFVEC_SUB:
			for (int i = 0; i < dim; i++)
				x[i] -= y[i];
			break;
		case HALFVEC_MUL:
			for (int i = 0; i < dim; i++)
				x[i] *= y[i];
			break;
	}
	result = VsInitHalfVector(dim);
	VsHalfKernels.float_to_half(x, result->x, dim);
	for (int i = 0; i < dim; i++)
	{
		if (unlikely(VsHalfIsInf(result->x[i])))
			overflow_error();
		if (op == HALFVEC_MUL && unlikely(VsHalfIsZero(result->x[i])) &&
			!VsHalfIsZero(a->x[i]) && !VsHalfIsZero(b->x[i]))
			underflow_error();
	}
	pfree(x);
	pfree(y);
	return result;
}

PG_FUNCTION_INFO_V1(vs_halfvec_add);
/*
 * halfvec_add - element-wise sum.
 */
Datum
vs_halfvec_add(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_HALFVEC_P(elementwise(a, b, HALFVEC_ADD));
}

PG_FUNCTION_INFO_V1(vs_halfvec_sub);
/*
 * halfvec_sub - element-wise difference.
 */
Datum
vs_halfvec_sub(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_HALFVEC_P(elementwise(a, b, HALFVEC_SUB));
}

PG_FUNCTION_INFO_V1(vs_halfvec_mul);
/*
 * halfvec_mul - element-wise product.
 */
Datum
vs_halfvec_mul(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);

	check_dims(a, b);
	PG_RETURN_HALFVEC_P(elementwise(a, b, HALFVEC_MUL));
}

PG_FUNCTION_INFO_V1(vs_halfvec_concat);
/*
 * halfvec_concat - the || operator.
 */
Datum
vs_halfvec_concat(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	HalfVector *b = PG_GETARG_HALFVEC_P(1);
	HalfVector *result;

	check_dim(a->dim + b->dim);
	result = VsInitHalfVector(a->dim + b->dim);
	memcpy(result->x, a->x, sizeof(uint16) * a->dim);
	memcpy(result->x + a->dim, b->x, sizeof(uint16) * b->dim);
	PG_RETURN_HALFVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_binary_quantize);
/*
 * binary_quantize(halfvec) - one bit per element, set where it is
 * positive: sign bit clear and not zero (a stored halfvec has no NaN).
 */
Datum
vs_halfvec_binary_quantize(PG_FUNCTION_ARGS)
{
	HalfVector *v = PG_GETARG_HALFVEC_P(0);
	VarBit	   *result = palloc0(VARBITTOTALLEN(v->dim));
	bits8	   *r = VARBITS(result);

	SET_VARSIZE(result, VARBITTOTALLEN(v->dim));
	VARBITLEN(result) = v->dim;
	for (int i = 0; i < v->dim; i++)
	{
		if ((v->x[i] & 0x8000) == 0 && !VsHalfIsZero(v->x[i]))
			r[i / 8] |= (bits8) (0x80 >> (i % 8));
	}
	PG_RETURN_VARBIT_P(result);
}

/*
 * halfvec_cmp_internal - btree order, as vector_cmp_internal: element by
 * element (by value: -0 and +0 are equal), then the shorter first.
 */
static int
halfvec_cmp_internal(const HalfVector *a, const HalfVector *b)
{
	int			dim = Min(a->dim, b->dim);

	for (int i = 0; i < dim; i++)
	{
		float		x = VsHalfToFloat(a->x[i]);
		float		y = VsHalfToFloat(b->x[i]);

		if (x < y)
			return -1;
		if (x > y)
			return 1;
	}
	if (a->dim < b->dim)
		return -1;
	if (a->dim > b->dim)
		return 1;
	return 0;
}

/* the six comparison operators and btree support function 1 (halfvec_cmp) */
VS_COMPARISON_FUNCTIONS(vs_halfvec, HalfVector, PG_GETARG_HALFVEC_P, halfvec_cmp_internal)

/*
 * halfvec_hash_internal - hash consistent with halfvec_eq: -0 (0x8000)
 * hashes as +0, the only pair of equal patterns among finite halves.
 */
static uint64
halfvec_hash_internal(const HalfVector *a, uint64 seed)
{
	uint16	   *x = palloc(sizeof(uint16) * a->dim);
	uint64		h;

	for (int i = 0; i < a->dim; i++)
		x[i] = a->x[i] == 0x8000 ? 0 : a->x[i];
	h = DatumGetUInt64(hash_any_extended((const unsigned char *) x,
										 sizeof(uint16) * a->dim, seed));
	pfree(x);
	return h;
}

PG_FUNCTION_INFO_V1(vs_halfvec_hash);
/*
 * halfvec_hash - hash support function 1.
 */
Datum
vs_halfvec_hash(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);

	PG_RETURN_INT32((int32) halfvec_hash_internal(a, 0));
}

PG_FUNCTION_INFO_V1(vs_halfvec_hash_extended);
/*
 * halfvec_hash_extended - hash support function 2 (hash partitioning).
 */
Datum
vs_halfvec_hash_extended(PG_FUNCTION_ARGS)
{
	HalfVector *a = PG_GETARG_HALFVEC_P(0);
	uint64		seed = (uint64) PG_GETARG_INT64(1);

	PG_RETURN_INT64((int64) halfvec_hash_internal(a, seed));
}

PG_FUNCTION_INFO_V1(vs_halfvec_agg_accum);
/*
 * halfvec_agg_accum - transition function of avg(halfvec) and
 * sum(halfvec): the widened row added to running double sums.  The state
 * is vector's (vector.h), so vector_agg_combine, _serialize and
 * _deserialize serve halfvec's aggregates too.
 */
Datum
vs_halfvec_agg_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	VectorAggState state;
	HalfVector *v;
	float		buf[HALF_CHUNK];

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "halfvec_agg_accum called in non-aggregate context");

	state = VsAggStateGet(fcinfo, 0, aggcontext);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(state);
	v = PG_GETARG_HALFVEC_P(1);

	if (state->dim == 0)
	{
		state->dim = v->dim;
		state->sums = VsAggSums(aggcontext, v->dim);
	}
	else if (state->dim != v->dim)
		VsAggDimsError(fcinfo, state->dim, v->dim);

	for (int start = 0; start < v->dim; start += HALF_CHUNK)
	{
		int			n = Min(HALF_CHUNK, v->dim - start);

		VsHalfKernels.half_to_float(v->x + start, buf, n);
		for (int i = 0; i < n; i++)
			state->sums[start + i] += (double) buf[i];
	}
	state->count++;
	PG_RETURN_POINTER(state);
}

/*
 * agg_final_halfvec - the sums (divided by the count for avg) as a
 * halfvec, or NULL for no rows; rounded to float4, then to half (as
 * pgvector's halfvec_avg).  An element beyond half's range is an overflow
 * error, pgvector's message for sum(halfvec).
 */
static Datum
agg_final_halfvec(FunctionCallInfo fcinfo, bool average)
{
	VectorAggState state;
	HalfVector *result;

	state = PG_ARGISNULL(0) ? NULL : (VectorAggState) PG_GETARG_POINTER(0);
	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();

	result = VsInitHalfVector(state->dim);
	for (int i = 0; i < state->dim; i++)
	{
		double		v = state->sums[i];

		if (average)
			v /= (double) state->count;
		result->x[i] = VsFloatToHalf((float) v);
		if (VsHalfIsInf(result->x[i]) || isinf(v))
			overflow_error();
	}
	PG_RETURN_HALFVEC_P(result);
}

PG_FUNCTION_INFO_V1(vs_halfvec_avg_final);
/*
 * halfvec_avg_final - element-wise mean.
 */
Datum
vs_halfvec_avg_final(PG_FUNCTION_ARGS)
{
	return agg_final_halfvec(fcinfo, true);
}

PG_FUNCTION_INFO_V1(vs_halfvec_sum_final);
/*
 * halfvec_sum_final - element-wise sum.
 */
Datum
vs_halfvec_sum_final(PG_FUNCTION_ARGS)
{
	return agg_final_halfvec(fcinfo, false);
}

/*
 * pgvector's halfvec aggregate support functions on its array state
 * {count, sum_1, ..., sum_n} (see vector_accum in vector.c), callable by
 * name; halfvec_combine is vector_combine itself.
 */

PG_FUNCTION_INFO_V1(vs_halfvec_accum);
/*
 * halfvec_accum(double precision[], halfvec) - the state with one more
 * halfvec: into a state without sums ('{0}'), it sets the dimensions.
 */
Datum
vs_halfvec_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	HalfVector *v = PG_GETARG_HALFVEC_P(1);
	int			dim;
	float8	   *values = VsAggStateValues(state, "halfvec_accum", &dim);
	float8	   *sums;

	if (dim == 0)
	{
		sums = palloc(sizeof(float8) * v->dim);
		for (int i = 0; i < v->dim; i++)
			sums[i] = VsHalfToFloat(v->x[i]);
		PG_RETURN_ARRAYTYPE_P(VsMakeAggState(values[0] + 1.0, sums, v->dim));
	}
	check_expected_dim(dim, v->dim);
	sums = palloc(sizeof(float8) * dim);
	for (int i = 0; i < dim; i++)
	{
		sums[i] = values[i + 1] + VsHalfToFloat(v->x[i]);
		if (isinf(sums[i]))
			overflow_error();
	}
	PG_RETURN_ARRAYTYPE_P(VsMakeAggState(values[0] + 1.0, sums, dim));
}

PG_FUNCTION_INFO_V1(vs_halfvec_avg);
/*
 * halfvec_avg(double precision[]) - the mean a state holds, NULL for
 * none; a mean beyond half's range is out of range.
 */
Datum
vs_halfvec_avg(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	int			dim;
	float8	   *values = VsAggStateValues(state, "halfvec_avg", &dim);
	HalfVector *result;

	if (values[0] == 0.0)
		PG_RETURN_NULL();
	check_dim(dim);
	result = VsInitHalfVector(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = VsFloatToHalfChecked((float) (values[i + 1] / values[0]));
		check_element(result->x[i]);
	}
	PG_RETURN_HALFVEC_P(result);
}
