/*-------------------------------------------------------------------------
 *
 * vskmeans.h
 *	  IVF training (k-means) and assignment of vectors to their lists.
 *
 * This header is plain C99 plus <stddef.h> and <stdint.h>: it does not
 * include postgres.h, so the unit test (test/kernels/test_kmeans.c) and the
 * benchmark (bench/bench_kmeans.c) link vskmeans.c and vsdistance.c on
 * their own.  The server supplies memory and interrupt handling through
 * VsKmeansHooks.
 *
 * Vectors are row-major float arrays: vector i of a set with "dim"
 * dimensions starts at element (size_t) i * dim.  Centroid sets have the
 * same layout.  All functions compute with the kernel path selected in
 * VsKernelsActivePath (vsdistance.h); the results are deterministic for a
 * given path (see vskmeans.c for what differs between paths).
 *
 * IDENTIFICATION
 *	  src/vskmeans.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSKMEANS_H
#define VSKMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "vsdistance.h"

/* Lloyd rounds of a default training run, and the accepted range */
#define VS_KMEANS_DEFAULT_ITERATIONS	15
#define VS_KMEANS_MIN_ITERATIONS		0
#define VS_KMEANS_MAX_ITERATIONS		1000

/* largest k VsKmeansTrain and VsKmeansAssign accept */
#define VS_KMEANS_MAX_K					32768

/*
 * k-means++ seeding runs on a random subsample of
 * max(VS_KMEANS_SEED_MIN_SAMPLE, VS_KMEANS_SEED_PER_CENTROID * k) training
 * samples (all of them if there are fewer); see vskmeans.c for the figures
 * behind these values.
 */
#define VS_KMEANS_SEED_PER_CENTROID		8
#define VS_KMEANS_SEED_MIN_SAMPLE		4096

/*
 * What the caller provides.  In the server: palloc, pfree, a function that
 * runs CHECK_FOR_INTERRUPTS(), and optionally a progress reporter.
 *
 * alloc must never return NULL (it raises an error instead).  Every
 * function here frees what it allocated before returning normally; if
 * check_interrupts (or alloc) longjmps out, the blocks allocated so far
 * are not freed, so the allocator must be one whose memory the caller's
 * error cleanup reclaims (a memory context).
 */
typedef struct VsKmeansHooks
{
	void	   *(*alloc) (size_t size);
	void		(*free) (void *ptr);
	void		(*check_interrupts) (void);
	/* once per Lloyd round, iteration counting from 1; may be NULL */
	void		(*progress) (void *arg, int iteration, int max_iterations);
	void	   *progress_arg;

	/*
	 * Optional: VsKmeansAssign offers its work here first (the server's
	 * GPU service, src/vsgpu.c).  Returns 0 when it filled out (and
	 * out_dist, when not NULL) as VsKmeansAssign would, up to near-ties;
	 * anything else, and VsKmeansAssign computes on the CPU.  May be NULL.
	 */
	int			(*offload_assign) (void *arg, const float *centroids, int k,
								   int dim, VsMetric metric,
								   const float *vectors, int n,
								   int32_t *out, float *out_dist);
	void	   *offload_arg;
} VsKmeansHooks;

/*
 * How an inner-product (IP) index trains its centroids and fills its lists
 * (VsKmeansOptions.ip_training).  Queries rank the lists by inner product
 * with the centroids in every case; VsKmeansRowMetric() says how rows
 * (build, insert) pick their list.  vskmeans.c has the measurements
 * behind the default.
 */
typedef enum VsKmeansIpTraining
{
	VS_KMEANS_IP_DEFAULT = 0,	/* the measured best: EUCLIDEAN */
	VS_KMEANS_IP_EUCLIDEAN,		/* L2 k-means on the raw vectors; rows by L2 */
	VS_KMEANS_IP_SPHERICAL,		/* spherical k-means (as pgvector); rows by IP */
	VS_KMEANS_IP_MEAN			/* Lloyd by max inner product; rows by IP */
} VsKmeansIpTraining;

typedef struct VsKmeansOptions
{
	/* Lloyd rounds at most; 0 gives the seeds themselves */
	int			max_iterations;
	/*
	 * Stop after a round in which at most this fraction of the samples
	 * changed cluster; 0 stops only when no sample changed.
	 */
	double		tolerance;
	/* PRNG seed: same input, seed and kernel path => same centroids */
	uint64_t	seed;
	/*
	 * Samples that k-means++ seeding looks at: 0 for the default above,
	 * n or more for full k-means++ over every sample.
	 */
	int			seed_sample;
	/* VS_METRIC_IP only */
	VsKmeansIpTraining ip_training;
} VsKmeansOptions;

/* What a training run did (for logs, tests and the benchmark). */
typedef struct VsKmeansStats
{
	int			centroids;		/* the return value of VsKmeansTrain */
	int			seed_sample;	/* samples the k-means++ seeding looked at */
	int			iterations;		/* Lloyd rounds run */
	int			reseeded;		/* empty clusters re-seeded, all rounds */
	int			dropped;		/* centroids given up (duplicate samples) */
	int64_t		changed;		/* samples that changed cluster, last round */
	/*
	 * Sum of distances (as VsKmeansInertia) in the last round's assignment,
	 * which is to the centroids before that round's update; for cosine and
	 * spherical training, of the normalised samples.
	 */
	double		inertia;
} VsKmeansStats;

extern void VsKmeansOptionsInit(VsKmeansOptions *opt);

extern int	VsKmeansTrain(const float *samples, int n, int dim, int k,
						  VsMetric metric, const VsKmeansOptions *opt,
						  const VsKmeansHooks *hooks, float *centroids,
						  VsKmeansStats *stats);

extern int	VsKmeansRefine(const float *samples, int n, int dim, int k,
						   VsMetric metric, const VsKmeansOptions *opt,
						   const VsKmeansHooks *hooks, float *centroids,
						   VsKmeansStats *stats);

extern void VsKmeansCentroidNorms(const float *centroids, int k, int dim,
								  float *norms);

extern void VsKmeansAssign(const float *centroids, const float *centroid_norms,
						   int k, int dim, VsMetric metric,
						   const float *vectors, int n,
						   int32_t *out, float *out_dist,
						   const VsKmeansHooks *hooks);

/* centroids packed once for many one-vector searches (vskmeans_assign.c) */
typedef struct VsKmeansPrepared VsKmeansPrepared;

extern VsKmeansPrepared *VsKmeansPrepare(const float *centroids,
										 const float *centroid_norms,
										 int k, int dim, VsMetric metric,
										 const VsKmeansHooks *hooks);
extern size_t VsKmeansPreparedSize(int k, int dim);
extern void VsKmeansAssignPrepared(const VsKmeansPrepared *prep,
								   const float *vectors, int n,
								   int32_t *out, float *out_dist,
								   const VsKmeansHooks *hooks);

extern double VsKmeansInertia(const float *samples, int n, int dim,
							  const float *centroids, int k, VsMetric metric,
							  const VsKmeansHooks *hooks);

extern void VsKmeansRankTransform(VsMetric metric, float norm, float *bias,
								  float *scale);
extern float VsKmeansDistance(VsMetric metric, const float *x, const float *c,
							  int dim);

extern VsMetric VsKmeansRowMetric(VsMetric metric, const VsKmeansOptions *opt);

extern size_t VsKmeansTrainMemory(int n, int dim, int k, VsMetric metric,
								  const VsKmeansOptions *opt);

#endif							/* VSKMEANS_H */
