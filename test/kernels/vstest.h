/*-------------------------------------------------------------------------
 *
 * vstest.h
 *	  What the stand-alone unit tests share (test/kernels/test_*.c): a
 *	  seeded generator for reproducible data (vsrng.h), and the "ok /
 *	  FAIL / skip" reporting by groups of checks.
 *
 * A header of static functions, included by each test program once; no
 * postgres.h.  A program defines MAX_DETAILS (how many failed checks of a
 * group it prints) before including it, or gets 5.
 *
 * IDENTIFICATION
 *	  test/kernels/vstest.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSTEST_H
#define VSTEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* the tests seed before they draw; unseeded, the state starts at 0 */
#define VSRNG_INITIAL	0
#include "vsrng.h"

#ifndef MAX_DETAILS
#define MAX_DETAILS		5
#endif


/*
 * The tracking allocator: a header in front of every block, all live
 * blocks listed.  The padding leaves the caller's block 8 mod 16, so code
 * that assumes more alignment than malloc promises shows up.
 */
typedef struct Block
{
	struct Block *prev;
	struct Block *next;
	size_t		size;
	uint64_t	magic;
	char		pad[8];
} Block;

#define BLOCK_MAGIC 0x7673746573746d6dull

/*
 * A test whose modules allocate from several threads defines VSTEST_THREADS
 * before including this file (and links with -pthread): the allocator's
 * list and counters are then kept under a mutex.
 */
#ifdef VSTEST_THREADS
#include <pthread.h>
static pthread_mutex_t alloc_mutex = PTHREAD_MUTEX_INITIALIZER;
#define ALLOC_LOCK()	pthread_mutex_lock(&alloc_mutex)
#define ALLOC_UNLOCK()	pthread_mutex_unlock(&alloc_mutex)
#else
#define ALLOC_LOCK()	((void) 0)
#define ALLOC_UNLOCK()	((void) 0)
#endif

static Block *live_blocks;
static size_t live_bytes;
static size_t peak_bytes;
static long n_allocs;
static long n_frees;
static long n_bad_frees;

static const char *group_name;
static char group_note[256];	/* appended to the group's line, or empty */
static long group_checks;
static long group_failures;
static int	groups_passed;
static int	groups_failed;

/*
 * rng_seed - restart the generator (vsrng.h) from "seed".
 */
static inline void
rng_seed(uint64_t seed)
{
	rng_state = seed * 0x9E3779B97F4A7C15ull + 12345;
}

/*
 * test_alloc - malloc with a header; counts and tracks the block (the
 * modules' alloc hook: it never returns NULL).
 */
static inline void *
test_alloc(size_t size)
{
	Block	   *b = malloc(sizeof(Block) + size);

	if (b == NULL)
	{
		fprintf(stderr, "out of memory (%zu bytes)\n", size);
		exit(2);
	}
	b->size = size;
	b->magic = BLOCK_MAGIC;
	ALLOC_LOCK();
	b->prev = NULL;
	b->next = live_blocks;
	if (live_blocks)
		live_blocks->prev = b;
	live_blocks = b;
	live_bytes += size;
	if (live_bytes > peak_bytes)
		peak_bytes = live_bytes;
	n_allocs++;
	ALLOC_UNLOCK();
	return (char *) (b + 1);
}

/*
 * test_free - undo test_alloc; a pointer it did not hand out is counted.
 */
static inline void
test_free(void *ptr)
{
	Block	   *b = (Block *) ptr - 1;

	ALLOC_LOCK();
	if (ptr == NULL || b->magic != BLOCK_MAGIC)
	{
		n_bad_frees++;
		ALLOC_UNLOCK();
		return;
	}
	b->magic = 0;
	if (b->prev)
		b->prev->next = b->next;
	else
		live_blocks = b->next;
	if (b->next)
		b->next->prev = b->prev;
	live_bytes -= b->size;
	n_frees++;
	ALLOC_UNLOCK();
	free(b);
}

/*
 * free_all_live - what a memory context reset does after an error.
 */
static inline void
free_all_live(void)
{
	while (live_blocks)
		test_free((char *) (live_blocks + 1));
}

/*
 * group_begin / group_end / group_skip / check - the reporting.
 */
static inline void
group_begin(const char *fmt,...) __attribute__((format(printf, 1, 2)));

static inline void
group_begin(const char *fmt,...)
{
	static char name[256];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	group_name = name;
	group_note[0] = '\0';
	group_checks = 0;
	group_failures = 0;
}

static inline void
group_end(void)
{
	if (group_failures == 0)
	{
		printf("ok   - %s (%ld checks%s)\n", group_name, group_checks, group_note);
		groups_passed++;
	}
	else
	{
		printf("FAIL - %s (%ld of %ld checks failed%s)\n", group_name,
			   group_failures, group_checks, group_note);
		groups_failed++;
	}
	fflush(stdout);
}

static inline void
group_skip(const char *why)
{
	printf("skip - %s (%s)\n", group_name, why);
}

/*
 * check - count one check; on failure print the detail (the first few).
 */
static inline int
check(int ok, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static inline int
check(int ok, const char *fmt,...)
{
	group_checks++;
	if (!ok)
	{
		group_failures++;
		if (group_failures <= MAX_DETAILS)
		{
			va_list		ap;

			printf("       %s: ", group_name);
			va_start(ap, fmt);
			vprintf(fmt, ap);
			va_end(ap);
			printf("\n");
		}
	}
	return ok;
}

/*
 * group_all_freed - the last group of a test whose module allocates
 * through test_alloc: nothing may be left allocated, nor freed twice.
 */
static inline void
group_all_freed(void)
{
	group_begin("every allocation freed");
	check(live_bytes == 0 && n_allocs == n_frees && n_bad_frees == 0,
		  "%ld allocs, %ld frees, %zu bytes live, %ld bad frees",
		  n_allocs, n_frees, live_bytes, n_bad_frees);
	group_end();
}

#endif							/* VSTEST_H */
