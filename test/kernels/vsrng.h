/*-------------------------------------------------------------------------
 *
 * vsrng.h
 *	  splitmix64 and the draws built on it, for the stand-alone unit tests
 *	  (through vstest.h) and benchmarks (bench/bench_*.c): reproducible
 *	  data without libc's generator.
 *
 * The state is a static of the including program; define VSRNG_INITIAL
 * before including this header to start from another value than 12345.
 *
 * IDENTIFICATION
 *	  test/kernels/vsrng.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSRNG_H
#define VSRNG_H

#include <math.h>
#include <stdint.h>

#ifndef VSRNG_INITIAL
#define VSRNG_INITIAL	12345
#endif

static uint64_t rng_state = VSRNG_INITIAL;

/* rng_next - the next 64 random bits */
static inline uint64_t
rng_next(void)
{
	uint64_t	z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* rng_unit - uniform in [0, 1) */
static inline double
rng_unit(void)
{
	return (double) (rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

/* rng_gauss - standard normal (Box-Muller) */
static inline double
rng_gauss(void)
{
	double		u = rng_unit(),
				v = rng_unit();

	return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

#endif							/* VSRNG_H */
