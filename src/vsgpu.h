/*-------------------------------------------------------------------------
 *
 * vsgpu.h
 *	  The GPU service (src/vsgpu.c): settings and the checks index work
 *	  makes.
 *
 * IDENTIFICATION
 *	  src/vsgpu.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_H
#define VSGPU_H

/* vecstore.gpu */
typedef enum VsGpuMode
{
	VS_GPU_OFF = 0,
	VS_GPU_AUTO,
	VS_GPU_ON
} VsGpuMode;

extern int	vecstore_gpu;

extern void VsGpuInit(void);
extern void VsGpuCheck(const char *what, bool count);

#endif							/* VSGPU_H */
