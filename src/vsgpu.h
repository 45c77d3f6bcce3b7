/*-------------------------------------------------------------------------
 *
 * vsgpu.h
 *	  The GPU service's one entry point for the module: VsGpuInit.
 *
 * Everything else the index needs from the service goes through the
 * offload table of vsoffload.h, which VsGpuInit registers; the service's
 * internals are in vsgpu_internal.h.
 *
 * IDENTIFICATION
 *	  src/vsgpu.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSGPU_H
#define VSGPU_H

extern void VsGpuInit(void);

#endif							/* VSGPU_H */
