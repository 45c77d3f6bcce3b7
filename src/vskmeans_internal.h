/*-------------------------------------------------------------------------
 *
 * vskmeans_internal.h
 *	  Internals shared by the k-means files (vskmeans*.c), not part of
 *	  vskmeans.h.
 *
 * Owns what training (vskmeans.c) and the nearest-centroid assignment
 * (vskmeans_assign.c) have in common: the block sizes both budget memory
 * by, and the prototypes of the functions one file lends the other.
 * Plain C: include it from the vskmeans*.c files only.
 *
 * IDENTIFICATION
 *	  src/vskmeans_internal.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSKMEANS_INTERNAL_H
#define VSKMEANS_INTERNAL_H

#include <stddef.h>

#include "vskmeans.h"

/* vectors per block: each packed chunk is reused by this many vectors */
#define BLOCK_ROWS		1024

/* fewer vectors than this skip packing and gather from the centroids */
#define SMALL_ROWS		4

/* crossing this module's files only: hidden (VS_INTERNAL, vsdistance.h) */
/* vskmeans.c: the hooks, shared with the assignment */
extern VS_INTERNAL void *VsKmeansAllocArray(const VsKmeansHooks *hooks, size_t count,
								size_t size);
extern VS_INTERNAL void VsKmeansPollInterrupts(const VsKmeansHooks *hooks);

/* vskmeans_assign.c: centroids per packed chunk, for the memory bounds */
extern VS_INTERNAL size_t VsKmeansChunkSize(int k, int dim);

#endif							/* VSKMEANS_INTERNAL_H */
