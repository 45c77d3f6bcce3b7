/*-------------------------------------------------------------------------
 *
 * test_bit.c
 *	  Unit test: the popcount kernels of src/vsdistance_bit.c, every
 *	  supported path against the scalar one and a bit-by-bit reference.
 *
 * Links src/vsdistance_bit.c without the server (the Makefile target
 * test/kernels/test_bit, part of "make kernel-test").  Counts of bits have
 * no rounding, so every comparison is exact.  The groups:
 *
 *	- dispatch: VsBitDistanceInit installs the best supported path;
 *	- reference: the scalar path against a count done one bit position at
 *	  a time, for bit lengths 0..600 (every residue of 8 and of 512) with
 *	  the padding bits of the last byte zero, as PostgreSQL keeps them;
 *	- per path: random strings of several densities, every byte length
 *	  0..300 and larger ones (up to 1 MB), at every offset 0..7 from an
 *	  8-byte boundary, equal to the scalar path; hand cases (all ones
 *	  against zeros, a string against itself and its complement);
 *	- per path: strings that end right before an unreadable page, or start
 *	  right after one: no read past either end (a fault fails the check);
 *	- VsJaccardFromCounts: identical, disjoint, empty and partial overlaps.
 *
 * Prints one line per group and "N passed, N failed" last; exit status 1
 * on any failure.
 *
 * IDENTIFICATION
 *	  test/kernels/test_bit.c
 *
 *-------------------------------------------------------------------------
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vstest.h"
#include "vsdistance_bit.h"

/* the largest string of the random group, in bytes */
#define MAX_BYTES	(1 << 20)
/* byte lengths tested besides every length 0..SMALL_BYTES */
#define SMALL_BYTES 300
static const size_t big_bytes[] = {
	511, 512, 513, 1000, 1023, 1024, 1025, 2000, 4096, 65535, MAX_BYTES
};
#define NBIG_BYTES	((int) (sizeof(big_bytes) / sizeof(big_bytes[0])))

/* probabilities of a set bit */
static const double densities[] = {0.02, 0.5, 0.98};
#define NDENSITIES	((int) (sizeof(densities) / sizeof(densities[0])))

/* SIGSEGV recovery for the bounds group */
static sigjmp_buf segv_jump;
static volatile sig_atomic_t segv_armed;

/*
 * naive_counts - hamming and the three Jaccard counts over the first
 * "nbits" bits (most significant bit of each byte first, as varbit stores
 * them), one bit at a time.
 */
static void
naive_counts(const unsigned char *a, const unsigned char *b, size_t nbits,
			 uint64_t *hamming, uint64_t *both, uint64_t *in_a, uint64_t *in_b)
{
	*hamming = *both = *in_a = *in_b = 0;
	for (size_t i = 0; i < nbits; i++)
	{
		int			x = (a[i / 8] >> (7 - i % 8)) & 1;
		int			y = (b[i / 8] >> (7 - i % 8)) & 1;

		*hamming += (uint64_t) (x != y);
		*both += (uint64_t) (x & y);
		*in_a += (uint64_t) x;
		*in_b += (uint64_t) y;
	}
}

/*
 * fill_bits - "nbits" random bits of density "p" from p[0], the padding
 * bits of the last byte zero; returns the byte length.
 */
static size_t
fill_bits(unsigned char *p, size_t nbits, double density)
{
	size_t		bytes = (nbits + 7) / 8;

	memset(p, 0, bytes);
	for (size_t i = 0; i < nbits; i++)
		if (rng_unit() < density)
			p[i / 8] |= (unsigned char) (0x80 >> (i % 8));
	return bytes;
}

/*
 * fill_bytes - "bytes" random bytes of bit density "density" (the fast
 * fill for the long strings: one draw per bit would be slow).
 */
static void
fill_bytes(unsigned char *p, size_t bytes, double density)
{
	if (density == 0.5)
	{
		for (size_t i = 0; i < bytes; i++)
			p[i] = (unsigned char) rng_next();
		return;
	}
	for (size_t i = 0; i < bytes; i++)
	{
		unsigned char v = 0;

		for (int bit = 0; bit < 8; bit++)
			if (rng_unit() < density)
				v |= (unsigned char) (1u << bit);
		p[i] = v;
	}
}

/*
 * test_dispatch - VsBitDistanceInit picks the best supported path and
 * installs its table; the path functions answer sensibly.
 */
static void
test_dispatch(void)
{
	VsBitPath	best = VS_BIT_SCALAR;
	VsBitKernelsPtr active;

	group_begin("dispatch: VsBitDistanceInit, VsBitKernelsForPath, VsBitPathName");

	check(VsBitActivePath == VS_BIT_SCALAR,
		  "active path before VsBitDistanceInit is %d, want scalar",
		  (int) VsBitActivePath);
	check(VsBitPathSupported(VS_BIT_SCALAR), "scalar path unsupported");
	check(VsBitKernelsForPath(VS_BIT_NPATHS) == NULL,
		  "VsBitKernelsForPath(VS_BIT_NPATHS) is not NULL");
	check(strcmp(VsBitPathName(VS_BIT_SCALAR), "scalar") == 0 &&
		  strcmp(VsBitPathName(VS_BIT_POPCNT), "popcnt") == 0 &&
		  strcmp(VsBitPathName(VS_BIT_AVX512), "avx512") == 0 &&
		  strcmp(VsBitPathName(VS_BIT_NPATHS), "unknown") == 0,
		  "unexpected path names");
	for (int p = 0; p < VS_BIT_NPATHS; p++)
	{
		int			supported = VsBitPathSupported((VsBitPath) p);
		VsBitKernelsPtr k = VsBitKernelsForPath((VsBitPath) p);

		check((k != NULL) == (supported != 0),
			  "path %s: supported=%d but table %s",
			  VsBitPathName((VsBitPath) p), supported, k ? "present" : "NULL");
		check(k == NULL || (k->hamming != NULL && k->jaccard_counts != NULL),
			  "path %s: a NULL kernel", VsBitPathName((VsBitPath) p));
		if (supported)
			best = (VsBitPath) p;
	}

	VsBitDistanceInit();
	VsBitDistanceInit();		/* idempotent */
	active = VsBitKernelsForPath(VsBitActivePath);
	check(VsBitActivePath == best, "VsBitDistanceInit chose %s, best supported is %s",
		  VsBitPathName(VsBitActivePath), VsBitPathName(best));
	check(active != NULL && VsBitKernels.hamming == active->hamming &&
		  VsBitKernels.jaccard_counts == active->jaccard_counts,
		  "VsBitKernels differs from VsBitKernelsForPath(%s)",
		  VsBitPathName(VsBitActivePath));
	snprintf(group_note, sizeof(group_note), "; supported:%s%s%s; active %s",
			 VsBitPathSupported(VS_BIT_SCALAR) ? " scalar" : "",
			 VsBitPathSupported(VS_BIT_POPCNT) ? " popcnt" : "",
			 VsBitPathSupported(VS_BIT_AVX512) ? " avx512" : "",
			 VsBitPathName(VsBitActivePath));
	group_end();
}

/*
 * check_path_counts - hamming and jaccard_counts of path "k" on (a, b,
 * bytes) equal the wanted counts.
 */
static void
check_path_counts(VsBitKernelsPtr k, const char *what, const unsigned char *a,
				  const unsigned char *b, size_t bytes, uint64_t want_h,
				  uint64_t want_ab, uint64_t want_a, uint64_t want_b)
{
	uint64_t	h = k->hamming(a, b, bytes);
	uint64_t	ab = ~(uint64_t) 0,
				aa = ~(uint64_t) 0,
				bb = ~(uint64_t) 0;

	k->jaccard_counts(a, b, bytes, &ab, &aa, &bb);
	check(h == want_h, "%s bytes=%zu: hamming %llu, want %llu", what, bytes,
		  (unsigned long long) h, (unsigned long long) want_h);
	check(ab == want_ab && aa == want_a && bb == want_b,
		  "%s bytes=%zu: jaccard counts (%llu, %llu, %llu), want (%llu, %llu, %llu)",
		  what, bytes, (unsigned long long) ab, (unsigned long long) aa,
		  (unsigned long long) bb, (unsigned long long) want_ab,
		  (unsigned long long) want_a, (unsigned long long) want_b);
}

/*
 * test_reference - the scalar path against naive_counts, bit lengths
 * 0..600 at byte offsets 0..7, every density.
 */
static void
test_reference(unsigned char *buf_a, unsigned char *buf_b)
{
	VsBitKernelsPtr scalar = VsBitKernelsForPath(VS_BIT_SCALAR);

	group_begin("reference: scalar path = bit-by-bit count, bit lengths 0..600 (padding zero), offsets 0..7");
	rng_seed(11);
	for (size_t nbits = 0; nbits <= 600; nbits++)
	{
		for (int d = 0; d < NDENSITIES; d++)
		{
			unsigned char *a = buf_a + (nbits % 8);
			unsigned char *b = buf_b + ((nbits / 8) % 8);
			size_t		bytes = fill_bits(a, nbits, densities[d]);
			uint64_t	h,
						ab,
						aa,
						bb;

			fill_bits(b, nbits, densities[(d + 1) % NDENSITIES]);
			naive_counts(a, b, nbits, &h, &ab, &aa, &bb);
			check_path_counts(scalar, "naive", a, b, bytes, h, ab, aa, bb);
		}
	}
	group_end();
}

/*
 * test_random - path "path" equals the scalar path on random strings of
 * every density, byte length and offset; and hand cases with known
 * counts at every tested length.
 */
static void
test_random(VsBitPath path, unsigned char *buf_a, unsigned char *buf_b)
{
	VsBitKernelsPtr k = VsBitKernelsForPath(path);
	VsBitKernelsPtr scalar = VsBitKernelsForPath(VS_BIT_SCALAR);

	group_begin("random [%s]: = scalar, byte lengths 0..%d and up to %d, offsets 0..7, densities; ones, self, complement",
				VsBitPathName(path), SMALL_BYTES, MAX_BYTES);
	if (k == NULL)
	{
		group_skip("path not supported by this CPU");
		return;
	}
	rng_seed(23 + (uint64_t) path);
	for (int li = 0; li <= SMALL_BYTES + NBIG_BYTES; li++)
	{
		size_t		bytes = li <= SMALL_BYTES ? (size_t) li : big_bytes[li - SMALL_BYTES - 1];
		/* the long strings at two offsets, the short ones at all eight */
		int			noffsets = bytes > 4096 ? 2 : 8;

		for (int off = 0; off < noffsets; off++)
		{
			unsigned char *a = buf_a + off;
			unsigned char *b = buf_b + (off * 3) % 8;

			for (int d = 0; d < NDENSITIES; d++)
			{
				uint64_t	h,
							ab,
							aa,
							bb;

				fill_bytes(a, bytes, densities[d]);
				fill_bytes(b, bytes, densities[NDENSITIES - 1 - d]);
				h = scalar->hamming(a, b, bytes);
				scalar->jaccard_counts(a, b, bytes, &ab, &aa, &bb);
				check_path_counts(k, "random", a, b, bytes, h, ab, aa, bb);
				/* symmetric in (a, b) */
				check_path_counts(k, "swapped", b, a, bytes, h, ab, bb, aa);
			}

			/* all ones against all zeros, self, complement: known counts */
			uint64_t	ab,
						aa,
						bb;

			memset(a, 0xFF, bytes);
			memset(b, 0, bytes);
			check_path_counts(k, "ones vs zeros", a, b, bytes,
							  8 * (uint64_t) bytes, 0, 8 * (uint64_t) bytes, 0);
			fill_bytes(a, bytes, 0.5);
			for (size_t i = 0; i < bytes; i++)
				b[i] = (unsigned char) ~a[i];
			scalar->jaccard_counts(a, a, bytes, &ab, &aa, &bb);
			check_path_counts(k, "self", a, a, bytes, 0, aa, aa, aa);
			check_path_counts(k, "complement", a, b, bytes,
							  8 * (uint64_t) bytes, 0, aa, 8 * (uint64_t) bytes - aa);
		}
	}
	group_end();
}

/*
 * segv_handler - jump back into test_bounds when a kernel faults.
 */
static void
segv_handler(int signo)
{
	if (segv_armed)
		siglongjmp(segv_jump, 1);
	signal(signo, SIG_DFL);
	raise(signo);
}

/*
 * test_bounds - strings that end right before an unreadable page, or
 * start right after one: no fault, and the scalar path's counts.
 */
static void
test_bounds(VsBitPath path, unsigned char *region, size_t region_bytes)
{
	VsBitKernelsPtr k = VsBitKernelsForPath(path);
	VsBitKernelsPtr scalar = VsBitKernelsForPath(VS_BIT_SCALAR);
	struct sigaction sa,
				old_segv,
				old_bus;

	group_begin("bounds [%s]: strings touching unreadable pages", VsBitPathName(path));
	if (k == NULL)
	{
		group_skip("path not supported by this CPU");
		return;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = segv_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	rng_seed(31);
	for (size_t bytes = 0; bytes <= 200 && bytes <= region_bytes; bytes++)
	{
		for (int at_start = 0; at_start <= 1; at_start++)
		{
			/* a at one edge, b at the other, so each edge is touched */
			unsigned char *a = at_start ? region : region + region_bytes - bytes;
			unsigned char *b = at_start ? region + region_bytes - bytes : region;
			uint64_t	h,
						ab,
						aa,
						bb;

			if (bytes > region_bytes / 2)
				continue;		/* a and b would overlap */
			fill_bytes(a, bytes, 0.5);
			fill_bytes(b, bytes, 0.5);
			h = scalar->hamming(a, b, bytes);
			scalar->jaccard_counts(a, b, bytes, &ab, &aa, &bb);
			if (sigsetjmp(segv_jump, 1) == 0)
			{
				segv_armed = 1;
				check_path_counts(k, at_start ? "a at a page's start" : "a at a page's end",
								  a, b, bytes, h, ab, aa, bb);
				segv_armed = 0;
			}
			else
			{
				segv_armed = 0;
				check(0, "bytes=%zu: fault with a string at the %s of a page",
					  bytes, at_start ? "start" : "end");
			}
		}
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	group_end();
}

/*
 * test_jaccard - VsJaccardFromCounts on hand-worked counts.
 */
static void
test_jaccard(void)
{
	group_begin("VsJaccardFromCounts: identical, disjoint, empty, partial");
	check(VsJaccardFromCounts(4, 4, 4) == 0.0, "identical: %g", VsJaccardFromCounts(4, 4, 4));
	check(VsJaccardFromCounts(0, 3, 5) == 1.0, "disjoint: %g", VsJaccardFromCounts(0, 3, 5));
	check(VsJaccardFromCounts(0, 0, 0) == 1.0, "both empty: %g, want 1 (not NaN)",
		  VsJaccardFromCounts(0, 0, 0));
	/* {1,2,3,4} and {1,2,3}: 1 - 3/4 */
	check(VsJaccardFromCounts(3, 4, 3) == 0.25, "3 of 4: %g", VsJaccardFromCounts(3, 4, 3));
	/* {1,2} and {2,3}: 1 - 1/3 */
	check(VsJaccardFromCounts(1, 2, 2) == 1.0 - 1.0 / 3.0, "1 of 3: %.17g",
		  VsJaccardFromCounts(1, 2, 2));
	group_end();
}

/*
 * main - every group on every path; see the file header.
 */
int
main(void)
{
	size_t		page = (size_t) sysconf(_SC_PAGESIZE);
	size_t		region_bytes = page;
	unsigned char *map;
	unsigned char *buf_a = malloc(MAX_BYTES + 16);
	unsigned char *buf_b = malloc(MAX_BYTES + 16);

	if (buf_a == NULL || buf_b == NULL)
	{
		fprintf(stderr, "out of memory\n");
		return 2;
	}
	/* [PROT_NONE page][region][PROT_NONE page] */
	map = mmap(NULL, region_bytes + 2 * page, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED ||
		mprotect(map, page, PROT_NONE) != 0 ||
		mprotect(map + page + region_bytes, page, PROT_NONE) != 0)
	{
		perror("mmap");
		return 2;
	}

	test_dispatch();
	test_reference(buf_a, buf_b);
	for (int p = 0; p < VS_BIT_NPATHS; p++)
	{
		test_random((VsBitPath) p, buf_a, buf_b);
		test_bounds((VsBitPath) p, map + page, region_bytes);
	}
	test_jaccard();

	printf("%d passed, %d failed\n", groups_passed, groups_failed);
	munmap(map, region_bytes + 2 * page);
	free(buf_a);
	free(buf_b);
	return groups_failed > 0 ? 1 : 0;
}
