/*-------------------------------------------------------------------------
 *
 * vsgpu_pool.c
 *	  A fixed pool of worker threads (vsgpu_pool.h).
 *
 * One mutex and two condition variables: the caller publishes a run
 * (function, argument, task count, width) under a new generation number
 * and broadcasts; each thread whose index is below the run's width takes
 * the next task under the mutex until none is left; the last task to
 * finish wakes the caller, which also takes tasks meanwhile.  Runs are
 * short (one pass of one graph build, 1-100 ms) and few, so a task
 * handed out under a mutex costs nothing that shows.
 *
 * IDENTIFICATION
 *	  cuda/vsgpu_pool.c
 *
 *-------------------------------------------------------------------------
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "vsgpu_pool.h"

struct VsPool
{
	pthread_mutex_t mutex;
	pthread_cond_t work;		/* a new run, or quit */
	pthread_cond_t done;		/* the run's last task returned */
	int			nthreads;		/* counting the caller's */
	pthread_t  *threads;		/* nthreads - 1 */
	uint64_t	generation;		/* of the current run */
	int			quit;
	/* the current run */
	VsPoolTaskFn fn;
	void	   *arg;
	int			ntasks;
	int			width;
	int			next;			/* next task to hand out */
	int			finished;		/* tasks returned */
};

typedef struct Worker
{
	VsPool	   *pool;
	int			index;			/* 1 .. nthreads - 1; the caller is 0 */
} Worker;

/*
 * take_tasks - run tasks of the current run until none is left to take.
 * Called and returns with the mutex held.
 */
static void
take_tasks(VsPool *pool)
{
	while (pool->next < pool->ntasks)
	{
		int			task = pool->next++;
		VsPoolTaskFn fn = pool->fn;
		void	   *arg = pool->arg;

		pthread_mutex_unlock(&pool->mutex);
		fn(arg, task);
		pthread_mutex_lock(&pool->mutex);
		if (++pool->finished == pool->ntasks)
			pthread_cond_signal(&pool->done);
	}
}

static void *
worker_main(void *p)
{
	Worker	   *w = (Worker *) p;
	VsPool	   *pool = w->pool;
	uint64_t	seen = 0;

	pthread_mutex_lock(&pool->mutex);
	for (;;)
	{
		while (!pool->quit && pool->generation == seen)
			pthread_cond_wait(&pool->work, &pool->mutex);
		if (pool->quit)
			break;
		seen = pool->generation;
		if (w->index < pool->width)
			take_tasks(pool);
	}
	pthread_mutex_unlock(&pool->mutex);
	free(w);
	return NULL;
}

VsPool *
vs_pool_create(int threads)
{
	VsPool	   *pool = calloc(1, sizeof(VsPool));

	if (pool == NULL)
		return NULL;
	if (threads < 1)
		threads = 1;
	if (threads > VS_POOL_MAX_THREADS)
		threads = VS_POOL_MAX_THREADS;
	pthread_mutex_init(&pool->mutex, NULL);
	pthread_cond_init(&pool->work, NULL);
	pthread_cond_init(&pool->done, NULL);
	pool->nthreads = 1;
	pool->threads = calloc((size_t) threads, sizeof(pthread_t));
	if (pool->threads == NULL)
		return pool;
	for (int i = 1; i < threads; i++)
	{
		Worker	   *w = malloc(sizeof(Worker));

		if (w == NULL)
			break;
		w->pool = pool;
		w->index = i;
		if (pthread_create(&pool->threads[i - 1], NULL, worker_main, w) != 0)
		{
			free(w);
			break;
		}
		pool->nthreads++;
	}
	return pool;
}

int
vs_pool_threads(const VsPool *pool)
{
	return pool ? pool->nthreads : 1;
}

void
vs_pool_run(VsPool *pool, int width, int ntasks, VsPoolTaskFn fn, void *arg)
{
	if (ntasks <= 0)
		return;
	if (pool == NULL || pool->nthreads == 1 || width == 1 || ntasks == 1)
	{
		for (int t = 0; t < ntasks; t++)
			fn(arg, t);
		return;
	}
	pthread_mutex_lock(&pool->mutex);
	pool->fn = fn;
	pool->arg = arg;
	pool->ntasks = ntasks;
	pool->width = (width <= 0 || width > pool->nthreads) ? pool->nthreads : width;
	pool->next = 0;
	pool->finished = 0;
	pool->generation++;
	pthread_cond_broadcast(&pool->work);
	take_tasks(pool);
	while (pool->finished < pool->ntasks)
		pthread_cond_wait(&pool->done, &pool->mutex);
	pthread_mutex_unlock(&pool->mutex);
}

void
vs_pool_destroy(VsPool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->mutex);
	pool->quit = 1;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->mutex);
	for (int i = 0; i < pool->nthreads - 1; i++)
		pthread_join(pool->threads[i], NULL);
	free(pool->threads);
	pthread_cond_destroy(&pool->done);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->mutex);
	free(pool);
}
