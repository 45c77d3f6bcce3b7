/*-------------------------------------------------------------------------
 *
 * bitvec.c
 *	  Distances between bit strings: hamming_distance and jaccard_distance
 *	  on PostgreSQL's bit type (the <~> and <%> operators).
 *
 * The functions, operators and error messages are pgvector's, so that a
 * binary_quantize(v) column is compared the same way under both.  Both
 * arguments must have the same length; bit(n) and varbit values mix
 * freely, as the bit type's own operators allow.  The counting is done by
 * the popcount kernels of vsdistance_bit.c, whose path _PG_init chooses.
 *
 * IDENTIFICATION
 *	  src/bitvec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/varbit.h"

#include "vsdistance_bit.h"

static inline void check_bit_lengths(const VarBit *a, const VarBit *b);

/*
 * check_bit_lengths - error unless both strings have the same number of
 * bits.  Bits past the length in the last byte are zero in every stored
 * bit or varbit value (bit_in, bitshiftleft and the rest keep them so),
 * so the kernels may count whole bytes.
 */
static inline void
check_bit_lengths(const VarBit *a, const VarBit *b)
{
	if (VARBITLEN(a) != VARBITLEN(b))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different bit lengths %u and %u",
						(unsigned) VARBITLEN(a), (unsigned) VARBITLEN(b))));
}

PG_FUNCTION_INFO_V1(vs_hamming_distance);
/*
 * hamming_distance(bit, bit) - the number of positions where the bits
 * differ (the <~> operator), as float8 like the other distances.
 */
Datum
vs_hamming_distance(PG_FUNCTION_ARGS)
{
	VarBit	   *a = PG_GETARG_VARBIT_P(0);
	VarBit	   *b = PG_GETARG_VARBIT_P(1);
	uint64_t	distance;

	check_bit_lengths(a, b);
	distance = VsBitKernels.hamming(VARBITS(a), VARBITS(b), VARBITBYTES(a));
	PG_FREE_IF_COPY(a, 0);
	PG_FREE_IF_COPY(b, 1);
	PG_RETURN_FLOAT8((double) distance);
}

PG_FUNCTION_INFO_V1(vs_jaccard_distance);
/*
 * jaccard_distance(bit, bit) - 1 - |a & b| / |a | b| (the <%> operator);
 * 1 when no bit is set in both, two strings of zeros included.
 */
Datum
vs_jaccard_distance(PG_FUNCTION_ARGS)
{
	VarBit	   *a = PG_GETARG_VARBIT_P(0);
	VarBit	   *b = PG_GETARG_VARBIT_P(1);
	uint64_t	both,
				in_a,
				in_b;

	check_bit_lengths(a, b);
	VsBitKernels.jaccard_counts(VARBITS(a), VARBITS(b), VARBITBYTES(a),
								&both, &in_a, &in_b);
	PG_FREE_IF_COPY(a, 0);
	PG_FREE_IF_COPY(b, 1);
	PG_RETURN_FLOAT8(VsJaccardFromCounts(both, in_a, in_b));
}
