/*-------------------------------------------------------------------------
 *
 * vsgpu_pool.h
 *	  A fixed pool of worker threads for the GPU helper's CPU work (the
 *	  assembly of graphs from neighbour lists, and the emulation's lists).
 *
 * The helper is not a PostgreSQL process: it may run threads, and these
 * make no call into anything but the task they are given.  Plain C and
 * POSIX threads; the unit test and the benchmark of src/vshnsw.c link it
 * too, to check that parallel builds give the sequential build's bytes.
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_pool.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_POOL_H
#define VSGPU_POOL_H

/* one task: fn(arg, task); the shape of VsHnswTaskFn (src/vshnsw.h) */
typedef void (*VsPoolTaskFn) (void *arg, int task);

typedef struct VsPool VsPool;

/* the most threads a pool has, the caller's included */
#define VS_POOL_MAX_THREADS		256

/*
 * vs_pool_create - a pool of "threads" threads counting the caller's
 * (so threads - 1 are started; 1 starts none), capped at
 * VS_POOL_MAX_THREADS.  NULL when out of memory; a pool that could start
 * fewer threads than asked works with those it has.
 */
extern VsPool *vs_pool_create(int threads);

/* vs_pool_threads - threads the pool has, the caller's included */
extern int	vs_pool_threads(const VsPool *pool);

/*
 * vs_pool_run - call fn(arg, t) exactly once for each t in 0 .. ntasks -
 * 1 on at most "width" threads (the caller's one of them; width <= 0 or
 * above the pool's: all), and return when every call has returned.
 * Tasks are handed out in order, one at a time, to whichever thread is
 * free.  One caller at a time.
 */
extern void vs_pool_run(VsPool *pool, int width, int ntasks, VsPoolTaskFn fn,
						void *arg);

/* vs_pool_destroy - stop and join the threads, free the pool (NULL: no-op) */
extern void vs_pool_destroy(VsPool *pool);

#endif							/* VSGPU_POOL_H */
