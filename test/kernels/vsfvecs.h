/*-------------------------------------------------------------------------
 *
 * vsfvecs.h
 *	  Reading the shared datasets' .fvecs files (each vector: an int32
 *	  dimension, then that many float32s), for the stand-alone unit tests
 *	  and benchmarks.
 *
 * IDENTIFICATION
 *	  test/kernels/vsfvecs.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSFVECS_H
#define VSFVECS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * load_fvecs - the first "max" vectors of an fvecs file (max < 0: all of
 * them), stopping early at a vector whose dimension differs from the
 * first's or that is cut short.  NULL if the file is absent or its first
 * dimension is not in 1 .. 100000; otherwise *n_out vectors read.  Exits
 * when out of memory.
 */
static inline float *
load_fvecs(const char *path, int max, int *n_out, int *dim_out)
{
	FILE	   *f = fopen(path, "rb");
	int32_t		dim;
	float	   *x;
	long		in_file;
	int			n = 0;

	if (f == NULL)
		return NULL;
	if (fread(&dim, sizeof(dim), 1, f) != 1 || dim <= 0 || dim > 100000)
	{
		fclose(f);
		return NULL;
	}
	/* no more than the file holds */
	fseek(f, 0, SEEK_END);
	in_file = ftell(f) / (4 + 4L * dim);
	if (max < 0 || max > in_file)
		max = (int) in_file;
	rewind(f);
	x = malloc(sizeof(float) * (size_t) (max > 0 ? max : 1) * dim);
	if (x == NULL)
	{
		fprintf(stderr, "out of memory reading %s\n", path);
		exit(2);
	}
	while (n < max)
	{
		int32_t		d;

		if (fread(&d, sizeof(d), 1, f) != 1 || d != dim ||
			fread(x + (size_t) n * dim, sizeof(float), dim, f) != (size_t) dim)
			break;
		n++;
	}
	fclose(f);
	*n_out = n;
	*dim_out = dim;
	return x;
}

#endif							/* VSFVECS_H */
