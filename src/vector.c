/*-------------------------------------------------------------------------
 *
 * vector.c
 *	  The vector type: text and binary I/O, typmod, casts, operators,
 *	  distance functions and aggregates.
 *
 * Everything a user sees of the type is compatible with pgvector's
 * `vector`: the text form "[1,2,3]" with floats printed shortest-round-trip,
 * the binary form (int16 dims, int16 zero, float4 elements, network
 * order), typmod vector(n), operator names and function names.  The C
 * symbols carry a "vs_" prefix so the two libraries can share a backend.
 *
 * Distances go through the kernels of vsdistance.c.  Every bad input is an
 * ereport with an errcode: NaN and infinity are rejected on the way in and
 * checked on the way out of arithmetic, so a stored vector is always finite.
 *
 * IDENTIFICATION
 *	  src/vector.c
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
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/varbit.h"

#include "vector.h"
#include "vsdistance.h"

static inline bool vector_isspace(char ch);
static inline void check_dim(int dim);
static inline void check_expected_dim(int32 typmod, int dim);
static inline void check_element(float value);
static int	vector_cmp_internal(const Vector *a, const Vector *b);
static Vector *array_to_vector_common(ArrayType *array, int32 typmod);

/*
 * VsInitVector - allocate a zeroed vector of "dim" elements in the current
 * memory context.  The caller has checked "dim".
 */
Vector *
VsInitVector(int dim)
{
	Size		size = VS_VECTOR_SIZE(dim);
	Vector	   *result = (Vector *) palloc0(size);

	SET_VARSIZE(result, size);
	result->dim = dim;
	return result;
}

/*
 * VsCheckDims - error unless both vectors have the same number of elements.
 */
void
VsCheckDims(const Vector *a, const Vector *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different vector dimensions %d and %d", a->dim, b->dim)));
}

/*
 * vector_isspace - the whitespace accepted around elements (as
 * array_in accepts it).
 */
static inline bool
vector_isspace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
		ch == '\v' || ch == '\f';
}

/*
 * check_dim - error unless 1 <= dim <= VS_VECTOR_MAX_DIM.
 */
static inline void
check_dim(int dim)
{
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));
	if (dim > VS_VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("vector cannot have more than %d dimensions",
						VS_VECTOR_MAX_DIM)));
}

/*
 * check_expected_dim - enforce a vector(n) typmod (-1 means any).
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
check_element(float value)
{
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in vector")));
	if (isinf(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("infinite value not allowed in vector")));
}

/*
 * overflow_error - a computed element left the range of float4.
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
 * malformed_error - the literal is not of the form [x,y,...].  The
 * messages, and which of them have a DETAIL, are pgvector's, so that
 * applications and tests written against pgvector see the same errors.
 */
static void
pg_attribute_noreturn()
malformed_error(const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type vector: \"%s\"", lit),
			 detail != NULL ? errdetail("%s", detail) : 0));
}

PG_FUNCTION_INFO_V1(vs_vector_in);
/*
 * vector_in - parse "[x1, x2, ...]".
 *
 * Elements are read with strtof, as float4in does, so each decimal rounds
 * once, straight to float4.  Whitespace is allowed around brackets and
 * elements.  The element count is bounded before anything is allocated
 * from it.
 */
Datum
vs_vector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	char	   *pt = lit;
	float	   *x;
	int			maxdim;
	int			dim = 0;
	Vector	   *result;

	while (vector_isspace(*pt))
		pt++;
	if (*pt != '[')
		malformed_error(lit, "Vector contents must start with \"[\".");
	pt++;

	/* commas bound the element count; allow one past the limit to detect it */
	maxdim = 1;
	for (const char *c = pt; *c != '\0' && maxdim <= VS_VECTOR_MAX_DIM; c++)
		if (*c == ',')
			maxdim++;
	x = palloc(sizeof(float) * maxdim);

	while (vector_isspace(*pt))
		pt++;
	if (*pt == ']')
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));

	for (;;)
	{
		char	   *end;
		float		val;

		if (dim == VS_VECTOR_MAX_DIM)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("vector cannot have more than %d dimensions",
							VS_VECTOR_MAX_DIM)));

		while (vector_isspace(*pt))
			pt++;
		if (*pt == '\0')
			malformed_error(lit, NULL);

		errno = 0;
		val = strtof(pt, &end);
		if (end == pt)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type vector: \"%s\"", lit)));
		/*
		 * Overflow is an error; underflow reads as the nearest float, zero
		 * included (as pgvector reads '[1e-46,1]': [0,1]; float4in would
		 * refuse it).
		 */
		if (errno == ERANGE && isinf(val))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%s\" is out of range for type vector",
							pnstrdup(pt, end - pt))));
		check_element(val);
		x[dim++] = val;
		pt = end;

		while (vector_isspace(*pt))
			pt++;
		if (*pt == ',')
			pt++;
		else if (*pt == ']')
		{
			pt++;
			break;
		}
		else if (*pt == '\0')
			malformed_error(lit, NULL);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("invalid input syntax for type vector: \"%s\"", lit)));
	}

	while (vector_isspace(*pt))
		pt++;
	if (*pt != '\0')
		malformed_error(lit, "Junk after closing right brace.");

	check_dim(dim);
	check_expected_dim(typmod, dim);

	result = VsInitVector(dim);
	memcpy(result->x, x, sizeof(float) * dim);
	pfree(x);
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_out);
/*
 * vector_out - print "[x1,x2,...]", each element shortest-round-trip.
 */
Datum
vs_vector_out(PG_FUNCTION_ARGS)
{
	Vector	   *vector = PG_GETARG_VECTOR_P(0);
	int			dim = vector->dim;
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
		ptr += float_to_shortest_decimal_bufn(vector->x[i], ptr);
	}
	*ptr++ = ']';
	*ptr = '\0';

	PG_FREE_IF_COPY(vector, 0);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(vs_vector_typmod_in);
/*
 * vector_typmod_in - "vector(n)": exactly one modifier, 1 <= n <= max.
 */
Datum
vs_vector_typmod_in(PG_FUNCTION_ARGS)
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
				 errmsg("dimensions for type vector must be at least 1")));
	if (*tl > VS_VECTOR_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type vector cannot exceed %d",
						VS_VECTOR_MAX_DIM)));
	PG_RETURN_INT32(*tl);
}

PG_FUNCTION_INFO_V1(vs_vector_recv);
/*
 * vector_recv - binary input: int16 dim, int16 reserved (must be zero),
 * then dim float4, all in network order.  A short message raises the
 * protocol's own "insufficient data" error; trailing bytes are rejected by
 * the caller (record_recv, COPY) as for every type.
 */
Datum
vs_vector_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			dim;
	int			unused;
	Vector	   *result;

	/* read as unsigned, so a negative int16 shows up as too large */
	dim = pq_getmsgint(buf, sizeof(int16));
	unused = pq_getmsgint(buf, sizeof(int16));

	check_dim(dim);
	check_expected_dim(typmod, dim);
	if (unused != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary vector: reserved field is %d, expected 0",
						unused)));
	/* fail before allocating for a message that cannot hold dim floats */
	if (buf->len - buf->cursor < (int) sizeof(float) * dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary vector: %d dimensions need %d bytes, message has %d",
						dim, (int) sizeof(float) * dim, buf->len - buf->cursor)));

	result = VsInitVector(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = pq_getmsgfloat4(buf);
		check_element(result->x[i]);
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_send);
/*
 * vector_send - binary output, the inverse of vector_recv.
 */
Datum
vs_vector_send(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint16(&buf, vec->dim);
	pq_sendint16(&buf, vec->unused);
	for (int i = 0; i < vec->dim; i++)
		pq_sendfloat4(&buf, vec->x[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(vs_vector);
/*
 * vector(vector, typmod, explicit) - the length-coercion cast.
 */
Datum
vs_vector(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	check_expected_dim(typmod, vec->dim);
	PG_RETURN_VECTOR_P(vec);
}

/*
 * array_to_vector_common - build a vector from a one-dimensional array of
 * int4, float4, float8 or numeric with no NULLs.
 *
 * Result is palloc'd in the current context.
 */
static Vector *
array_to_vector_common(ArrayType *array, int32 typmod)
{
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	int			nelems;
	Vector	   *result;

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

	result = VsInitVector(nelems);
	for (int i = 0; i < nelems; i++)
	{
		switch (elemtype)
		{
			case INT4OID:
				/* every int4 fits float4's range; large ones round */
				result->x[i] = (float) DatumGetInt32(elems[i]);
				break;
			case FLOAT4OID:
				result->x[i] = DatumGetFloat4(elems[i]);
				break;
			case FLOAT8OID:
				/*
				 * A double beyond float4's range becomes infinite, which
				 * check_element refuses (pgvector's words for it)
				 */
				result->x[i] = (float) DatumGetFloat8(elems[i]);
				break;
			case NUMERICOID:
				/* numeric_float4 reports its own range errors */
				result->x[i] = DatumGetFloat4(DirectFunctionCall1(numeric_float4, elems[i]));
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("unsupported array type %s",
								format_type_be(elemtype))));
		}
		check_element(result->x[i]);
	}
	pfree(elems);
	return result;
}

PG_FUNCTION_INFO_V1(vs_array_to_vector);
/*
 * array_to_vector(anyarray, typmod, explicit) - casts from int4[],
 * float4[], float8[] and numeric[].
 */
Datum
vs_array_to_vector(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);

	PG_RETURN_VECTOR_P(array_to_vector_common(array, typmod));
}

PG_FUNCTION_INFO_V1(vs_vector_to_float4);
/*
 * vector_to_float4 - cast to real[].
 */
Datum
vs_vector_to_float4(PG_FUNCTION_ARGS)
{
	Vector	   *vec = PG_GETARG_VECTOR_P(0);
	Datum	   *datums = palloc(sizeof(Datum) * vec->dim);
	ArrayType  *result;

	for (int i = 0; i < vec->dim; i++)
		datums[i] = Float4GetDatum(vec->x[i]);
	result = construct_array(datums, vec->dim, FLOAT4OID,
							 sizeof(float4), true, TYPALIGN_INT);
	pfree(datums);
	PG_RETURN_ARRAYTYPE_P(result);
}

PG_FUNCTION_INFO_V1(vs_l2_distance);
/*
 * l2_distance - Euclidean distance (the <-> operator).
 */
Datum
vs_l2_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	VsCheckDims(a, b);
	PG_RETURN_FLOAT8(VsMetricDistance(VS_METRIC_L2, a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_vector_l2_squared_distance);
/*
 * vector_l2_squared_distance - squared Euclidean distance; orders the
 * same as l2_distance without the square root.
 */
Datum
vs_vector_l2_squared_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	VsCheckDims(a, b);
	PG_RETURN_FLOAT8((double) VsKernels.l2_squared(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_inner_product);
/*
 * inner_product - dot product.
 */
Datum
vs_inner_product(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	VsCheckDims(a, b);
	PG_RETURN_FLOAT8((double) VsKernels.inner_product(a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_vector_spherical_distance);
/*
 * vector_spherical_distance - the angle between two vectors of unit
 * length, as a fraction of pi: acos of their inner product (clamped to
 * -1 .. 1, which rounding may leave), over pi.  pgvector's function of
 * the name (its spherical k-means); for vectors that are not normalised
 * the value means nothing, as there.
 */
Datum
vs_vector_spherical_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	double		dp;

	VsCheckDims(a, b);
	dp = (double) VsKernels.inner_product(a->x, b->x, a->dim);
	PG_RETURN_FLOAT8(acos(Max(-1.0, Min(1.0, dp))) / M_PI);
}

PG_FUNCTION_INFO_V1(vs_vector_negative_inner_product);
/*
 * vector_negative_inner_product - the <#> operator, so that ascending
 * order means most similar first.
 */
Datum
vs_vector_negative_inner_product(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	VsCheckDims(a, b);
	PG_RETURN_FLOAT8(VsMetricDistance(VS_METRIC_IP, a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_cosine_distance);
/*
 * cosine_distance - 1 - cos(angle), in [0, 2]; NaN when either vector is
 * zero, since it has no direction.
 */
Datum
vs_cosine_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	VsCheckDims(a, b);
	PG_RETURN_FLOAT8(VsMetricDistance(VS_METRIC_COSINE, a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_l1_distance);
/*
 * l1_distance - taxicab distance (the <+> operator).
 */
Datum
vs_l1_distance(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);

	VsCheckDims(a, b);
	PG_RETURN_FLOAT8(VsMetricDistance(VS_METRIC_L1, a->x, b->x, a->dim));
}

PG_FUNCTION_INFO_V1(vs_vector_dims);
/*
 * vector_dims - number of elements.
 */
Datum
vs_vector_dims(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);

	PG_RETURN_INT32(a->dim);
}

PG_FUNCTION_INFO_V1(vs_vector_norm);
/*
 * vector_norm - Euclidean norm, summed in double.
 */
Datum
vs_vector_norm(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	double		norm = 0.0;

	for (int i = 0; i < a->dim; i++)
		norm += (double) a->x[i] * (double) a->x[i];
	PG_RETURN_FLOAT8(sqrt(norm));
}

PG_FUNCTION_INFO_V1(vs_l2_normalize);
/*
 * l2_normalize - the vector scaled to unit length; a zero vector is
 * returned unchanged (it has no direction to keep).
 */
Datum
vs_l2_normalize(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *result = VsInitVector(a->dim);
	double		norm = 0.0;

	for (int i = 0; i < a->dim; i++)
		norm += (double) a->x[i] * (double) a->x[i];
	norm = sqrt(norm);

	if (norm > 0.0)
	{
		for (int i = 0; i < a->dim; i++)
			result->x[i] = (float) ((double) a->x[i] / norm);
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_subvector);
/*
 * subvector(v, start, count) - elements start .. start+count-1, counted
 * from 1 and clipped to the vector like substring(); the result must keep
 * at least one element.
 */
Datum
vs_subvector(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	int64		start = PG_GETARG_INT32(1);
	int64		count = PG_GETARG_INT32(2);
	int64		first;
	int64		last;
	Vector	   *result;

	/* int64 arithmetic: start + count cannot overflow */
	first = Max(start, 1);
	last = Min(start + count - 1, (int64) a->dim);
	if (count < 1 || last < first)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("vector must have at least 1 dimension")));

	result = VsInitVector((int) (last - first + 1));
	memcpy(result->x, a->x + (first - 1), sizeof(float) * result->dim);
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_add);
/*
 * vector_add - element-wise sum.
 */
Datum
vs_vector_add(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	VsCheckDims(a, b);
	result = VsInitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
	{
		result->x[i] = a->x[i] + b->x[i];
		if (unlikely(isinf(result->x[i])))
			overflow_error();
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_sub);
/*
 * vector_sub - element-wise difference.
 */
Datum
vs_vector_sub(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	VsCheckDims(a, b);
	result = VsInitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
	{
		result->x[i] = a->x[i] - b->x[i];
		if (unlikely(isinf(result->x[i])))
			overflow_error();
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_mul);
/*
 * vector_mul - element-wise product; reports overflow, and underflow of a
 * product of nonzero elements to zero (as float4mul does).
 */
Datum
vs_vector_mul(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	VsCheckDims(a, b);
	result = VsInitVector(a->dim);
	for (int i = 0; i < a->dim; i++)
	{
		result->x[i] = a->x[i] * b->x[i];
		if (unlikely(isinf(result->x[i])))
			overflow_error();
		if (unlikely(result->x[i] == 0.0f && a->x[i] != 0.0f && b->x[i] != 0.0f))
			underflow_error();
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_concat);
/*
 * vector_concat - the || operator.
 */
Datum
vs_vector_concat(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	Vector	   *b = PG_GETARG_VECTOR_P(1);
	Vector	   *result;

	check_dim(a->dim + b->dim);
	result = VsInitVector(a->dim + b->dim);
	memcpy(result->x, a->x, sizeof(float) * a->dim);
	memcpy(result->x + a->dim, b->x, sizeof(float) * b->dim);
	PG_RETURN_VECTOR_P(result);
}

/*
 * vector_cmp_internal - btree order: element by element, then the shorter
 * vector first.  -0 and +0 compare equal, as for float4.
 */
static int
vector_cmp_internal(const Vector *a, const Vector *b)
{
	int			dim = Min(a->dim, b->dim);

	for (int i = 0; i < dim; i++)
	{
		if (a->x[i] < b->x[i])
			return -1;
		if (a->x[i] > b->x[i])
			return 1;
	}
	if (a->dim < b->dim)
		return -1;
	if (a->dim > b->dim)
		return 1;
	return 0;
}

/* the six comparison operators and btree support function 1 (vector_cmp) */
VS_COMPARISON_FUNCTIONS(vs_vector, Vector, PG_GETARG_VECTOR_P, vector_cmp_internal)

/*
 * vector_hash_internal - hash consistent with vector_eq: -0 hashes as +0,
 * and the dimension count takes part (a prefix is not equal).
 */
static uint64
vector_hash_internal(const Vector *a, uint64 seed)
{
	const float *x = a->x;
	float	   *copy = NULL;
	uint64		h;

	for (int i = 0; i < a->dim; i++)
	{
		/* only -0 has a second bit pattern among equal finite floats */
		if (x[i] == 0.0f && signbit(x[i]))
		{
			copy = palloc(sizeof(float) * a->dim);
			for (int j = 0; j < a->dim; j++)
				copy[j] = (a->x[j] == 0.0f) ? 0.0f : a->x[j];
			x = copy;
			break;
		}
	}
	h = DatumGetUInt64(hash_any_extended((const unsigned char *) x,
										 sizeof(float) * a->dim, seed));
	if (copy)
		pfree(copy);
	return h;
}

PG_FUNCTION_INFO_V1(vs_vector_hash);
/*
 * vector_hash - hash support function 1.
 */
Datum
vs_vector_hash(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);

	PG_RETURN_INT32((int32) vector_hash_internal(a, 0));
}

PG_FUNCTION_INFO_V1(vs_vector_hash_extended);
/*
 * vector_hash_extended - hash support function 2 (hash partitioning).
 */
Datum
vs_vector_hash_extended(PG_FUNCTION_ARGS)
{
	Vector	   *a = PG_GETARG_VECTOR_P(0);
	uint64		seed = (uint64) PG_GETARG_INT64(1);

	PG_RETURN_INT64((int64) vector_hash_internal(a, seed));
}

/*
 * VsAggStateGet - the aggregate state in argument "argno", created
 * empty in "aggcontext" when it is NULL.  Shared with halfvec's
 * aggregates, whose combine, serial and deserial functions are these.
 */
VectorAggState
VsAggStateGet(FunctionCallInfo fcinfo, int argno, MemoryContext aggcontext)
{
	VectorAggState state;

	if (!PG_ARGISNULL(argno))
		return (VectorAggState) PG_GETARG_POINTER(argno);
	state = MemoryContextAllocZero(aggcontext, sizeof(VectorAggStateData));
	return state;
}

/*
 * VsAggDimsError - rows of different dimensions in avg() or sum() of
 * vector or halfvec, in pgvector's words for each: its avg accumulates
 * into an array state ("expected N dimensions, not M"), its sum adds
 * vectors ("different vector dimensions N and M", "different halfvec
 * ..."; the type is the aggregate's argument's).  The aggregate is
 * looked up only here, on the way to the error.
 */
void
VsAggDimsError(FunctionCallInfo fcinfo, int have, int got)
{
	Aggref	   *aggref = AggGetAggref(fcinfo);
	char	   *name = aggref != NULL ? get_func_name(aggref->aggfnoid) : NULL;
	const char *typname = "vector";

	if (name != NULL && strcmp(name, "avg") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", have, got)));
	if (aggref != NULL && aggref->aggargtypes != NIL)
	{
		Type		type = typeidType(linitial_oid(aggref->aggargtypes));

		typname = pstrdup(typeTypeName(type));
		ReleaseSysCache(type);
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("different %s dimensions %d and %d", typname, have, got)));
}

/*
 * VsAggSums - the sums of an aggregate state of "dim" elements, each
 * -0.0, the identity of addition (0.0 would turn a sum of -0 into 0,
 * which pgvector, adding to the first value, prints as -0).
 */
double *
VsAggSums(MemoryContext aggcontext, int dim)
{
	double	   *sums = MemoryContextAlloc(aggcontext, sizeof(double) * Max(dim, 1));

	for (int i = 0; i < dim; i++)
		sums[i] = -0.0;
	return sums;
}

PG_FUNCTION_INFO_V1(vs_vector_agg_accum);
/*
 * vector_agg_accum - transition function of avg(vector) and sum(vector):
 * adds one row to running double sums.  The state lives in the aggregate
 * context and is updated in place (one allocation per group, not per row).
 */
Datum
vs_vector_agg_accum(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	VectorAggState state;
	Vector	   *v;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "vector_agg_accum called in non-aggregate context");

	state = VsAggStateGet(fcinfo, 0, aggcontext);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(state);
	v = PG_GETARG_VECTOR_P(1);

	if (state->dim == 0)
	{
		state->dim = v->dim;
		state->sums = VsAggSums(aggcontext, v->dim);
	}
	else if (state->dim != v->dim)
		VsAggDimsError(fcinfo, state->dim, v->dim);

	for (int i = 0; i < v->dim; i++)
		state->sums[i] += (double) v->x[i];
	state->count++;
	PG_RETURN_POINTER(state);
}

PG_FUNCTION_INFO_V1(vs_vector_agg_combine);
/*
 * vector_agg_combine - merge two partial states (parallel aggregation).
 */
Datum
vs_vector_agg_combine(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	VectorAggState s1;
	VectorAggState s2;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "vector_agg_combine called in non-aggregate context");

	s1 = VsAggStateGet(fcinfo, 0, aggcontext);
	if (PG_ARGISNULL(1))
		PG_RETURN_POINTER(s1);
	s2 = (VectorAggState) PG_GETARG_POINTER(1);
	if (s2->count == 0)
		PG_RETURN_POINTER(s1);

	if (s1->dim == 0)
	{
		s1->dim = s2->dim;
		s1->sums = VsAggSums(aggcontext, s2->dim);
	}
	else if (s1->dim != s2->dim)
		VsAggDimsError(fcinfo, s1->dim, s2->dim);

	for (int i = 0; i < s1->dim; i++)
		s1->sums[i] += s2->sums[i];
	s1->count += s2->count;
	PG_RETURN_POINTER(s1);
}

PG_FUNCTION_INFO_V1(vs_vector_agg_serialize);
/*
 * vector_agg_serialize - state to bytea: count, dim, sums.
 */
Datum
vs_vector_agg_serialize(PG_FUNCTION_ARGS)
{
	VectorAggState state;
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "vector_agg_serialize called in non-aggregate context");
	state = (VectorAggState) PG_GETARG_POINTER(0);

	pq_begintypsend(&buf);
	pq_sendint64(&buf, state->count);
	pq_sendint32(&buf, state->dim);
	for (int i = 0; i < state->dim; i++)
		pq_sendfloat8(&buf, state->sums[i]);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(vs_vector_agg_deserialize);
/*
 * vector_agg_deserialize - bytea to state, in the aggregate context.
 */
Datum
vs_vector_agg_deserialize(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	bytea	   *sstate = PG_GETARG_BYTEA_PP(0);
	StringInfoData buf;
	VectorAggState state;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "vector_agg_deserialize called in non-aggregate context");

	/* read the bytea in place (PG15 has no initReadOnlyStringInfo) */
	buf.data = VARDATA_ANY(sstate);
	buf.len = VARSIZE_ANY_EXHDR(sstate);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	state = MemoryContextAllocZero(aggcontext, sizeof(VectorAggStateData));
	state->count = pq_getmsgint64(&buf);
	state->dim = pq_getmsgint(&buf, 4);
	if (state->dim < 0 || state->dim > VS_VECTOR_MAX_DIM)
		elog(ERROR, "invalid serialized vector aggregate state");
	if (state->dim > 0)
		state->sums = MemoryContextAlloc(aggcontext, sizeof(double) * state->dim);
	for (int i = 0; i < state->dim; i++)
		state->sums[i] = pq_getmsgfloat8(&buf);
	pq_getmsgend(&buf);
	PG_RETURN_POINTER(state);
}

/*
 * agg_final_vector - sums divided by "divisor" as a vector, or NULL for
 * no rows; an element outside float4's range is an overflow error.
 */
static Datum
agg_final_vector(FunctionCallInfo fcinfo, bool average)
{
	VectorAggState state;
	Vector	   *result;

	state = PG_ARGISNULL(0) ? NULL : (VectorAggState) PG_GETARG_POINTER(0);
	if (state == NULL || state->count == 0)
		PG_RETURN_NULL();

	result = VsInitVector(state->dim);
	for (int i = 0; i < state->dim; i++)
	{
		double		v = state->sums[i];

		if (average)
			v /= (double) state->count;
		result->x[i] = (float) v;
		if (isinf(result->x[i]) || isinf(v))
			overflow_error();
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_vector_avg_final);
/*
 * vector_avg_final - element-wise mean.
 */
Datum
vs_vector_avg_final(PG_FUNCTION_ARGS)
{
	return agg_final_vector(fcinfo, true);
}

PG_FUNCTION_INFO_V1(vs_vector_sum_final);
/*
 * vector_sum_final - element-wise sum.
 */
Datum
vs_vector_sum_final(PG_FUNCTION_ARGS)
{
	return agg_final_vector(fcinfo, false);
}

/*
 * pgvector's aggregate support functions, callable from SQL.
 *
 * pgvector's avg(vector) keeps its state in a double precision[] of
 * {count, sum_1, ..., sum_n}, starting from '{0}', and exposes the
 * functions; applications and dumps call them by name.  vecstore's own
 * aggregates keep an internal state (above), so these are the same
 * arithmetic on the array form, for compatibility only.
 */

/*
 * VsAggStateValues - the elements of a state array, after checking that it
 * is one: one dimension, at least one element (the count), no NULLs,
 * float8.  Sets *dim to the number of sums.  "caller" names the SQL
 * function in the error.
 */
float8 *
VsAggStateValues(ArrayType *state, const char *caller, int *dim)
{
	if (ARR_NDIM(state) != 1 || ARR_DIMS(state)[0] < 1 || ARR_HASNULL(state) ||
		ARR_ELEMTYPE(state) != FLOAT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s: expected state array", caller)));
	*dim = ARR_DIMS(state)[0] - 1;
	return (float8 *) ARR_DATA_PTR(state);
}

/*
 * VsMakeAggState - a state array of "count" and "dim" sums, palloc'd in
 * the current context.
 */
ArrayType *
VsMakeAggState(float8 count, const float8 *sums, int dim)
{
	Datum	   *d = palloc(sizeof(Datum) * (dim + 1));
	ArrayType  *result;

	d[0] = Float8GetDatum(count);
	for (int i = 0; i < dim; i++)
		d[i + 1] = Float8GetDatum(sums[i]);
	result = construct_array(d, dim + 1, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL,
							 TYPALIGN_DOUBLE);
	pfree(d);
	return result;
}

PG_FUNCTION_INFO_V1(vs_vector_accum);
/*
 * vector_accum(double precision[], vector) - the state with one more
 * vector: into a state without sums ('{0}'), the vector sets the number
 * of dimensions.
 */
Datum
vs_vector_accum(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	Vector	   *v = PG_GETARG_VECTOR_P(1);
	int			dim;
	float8	   *values = VsAggStateValues(state, "vector_accum", &dim);
	float8	   *sums;

	if (dim == 0)
	{
		sums = palloc(sizeof(float8) * v->dim);
		for (int i = 0; i < v->dim; i++)
			sums[i] = v->x[i];
		PG_RETURN_ARRAYTYPE_P(VsMakeAggState(values[0] + 1.0, sums, v->dim));
	}
	check_expected_dim(dim, v->dim);
	sums = palloc(sizeof(float8) * dim);
	for (int i = 0; i < dim; i++)
	{
		sums[i] = values[i + 1] + v->x[i];
		if (isinf(sums[i]))
			overflow_error();
	}
	PG_RETURN_ARRAYTYPE_P(VsMakeAggState(values[0] + 1.0, sums, dim));
}

PG_FUNCTION_INFO_V1(vs_vector_combine);
/*
 * vector_combine(double precision[], double precision[]) - two states as
 * one: an empty one (count 0) gives the other; two give '{0}'.
 */
Datum
vs_vector_combine(PG_FUNCTION_ARGS)
{
	ArrayType  *state1 = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *state2 = PG_GETARG_ARRAYTYPE_P(1);
	int			dim1,
				dim2;
	float8	   *values1 = VsAggStateValues(state1, "vector_combine", &dim1);
	float8	   *values2 = VsAggStateValues(state2, "vector_combine", &dim2);
	float8	   *sums;

	/* two empty states: a parallel aggregate's workers that saw no rows */
	if (values1[0] == 0.0 && values2[0] == 0.0)
		PG_RETURN_ARRAYTYPE_P(VsMakeAggState(0.0, NULL, 0));
	if (values1[0] == 0.0 || values2[0] == 0.0)
	{
		float8	   *values = values1[0] == 0.0 ? values2 : values1;
		int			dim = values1[0] == 0.0 ? dim2 : dim1;

		check_dim(dim);
		PG_RETURN_ARRAYTYPE_P(VsMakeAggState(values[0], values + 1, dim));
	}
	check_dim(dim1);
	check_expected_dim(dim1, dim2);
	sums = palloc(sizeof(float8) * dim1);
	for (int i = 0; i < dim1; i++)
	{
		sums[i] = values1[i + 1] + values2[i + 1];
		if (isinf(sums[i]))
			overflow_error();
	}
	PG_RETURN_ARRAYTYPE_P(VsMakeAggState(values1[0] + values2[0], sums, dim1));
}

PG_FUNCTION_INFO_V1(vs_vector_avg);
/*
 * vector_avg(double precision[]) - the mean a state holds, NULL for none.
 */
Datum
vs_vector_avg(PG_FUNCTION_ARGS)
{
	ArrayType  *state = PG_GETARG_ARRAYTYPE_P(0);
	int			dim;
	float8	   *values = VsAggStateValues(state, "vector_avg", &dim);
	Vector	   *result;

	if (values[0] == 0.0)
		PG_RETURN_NULL();
	check_dim(dim);
	result = VsInitVector(dim);
	for (int i = 0; i < dim; i++)
	{
		result->x[i] = (float) (values[i + 1] / values[0]);
		if (isinf(result->x[i]))
			overflow_error();
		/* a state given by hand may hold NaN (or infinities: Inf / Inf) */
		check_element(result->x[i]);
	}
	PG_RETURN_VECTOR_P(result);
}

PG_FUNCTION_INFO_V1(vs_binary_quantize);
/*
 * binary_quantize(vector) - one bit per element, set where it is positive
 * (pgvector's binary quantization; the result is PostgreSQL's bit type).
 */
Datum
vs_binary_quantize(PG_FUNCTION_ARGS)
{
	Vector	   *v = PG_GETARG_VECTOR_P(0);
	VarBit	   *result = palloc0(VARBITTOTALLEN(v->dim));
	bits8	   *r = VARBITS(result);

	SET_VARSIZE(result, VARBITTOTALLEN(v->dim));
	VARBITLEN(result) = v->dim;
	for (int i = 0; i < v->dim; i++)
	{
		if (v->x[i] > 0)
			r[i / 8] |= (bits8) (0x80 >> (i % 8));
	}
	PG_RETURN_VARBIT_P(result);
}
