/*-------------------------------------------------------------------------
 *
 * vecstore.c
 *	  Module entry point: PG_MODULE_MAGIC, _PG_init and module-wide GUCs.
 *
 * _PG_init runs once per process that loads the library (a backend on
 * first use, or the postmaster under shared_preload_libraries).  It picks
 * the distance-kernel paths (float and half) for this CPU and registers
 * vecstore.simd, and picks the popcount path of the bit distances
 * (vsdistance_bit.c); each subsystem adds its own through its *Init
 * function, in this order:
 *
 *	VsQuantInit		the compact codes' kernel path (vsquant.c)
 *	VsAmInit		the access method's reloptions and GUCs (vsam.c)
 *	VsGpuInit		the GPU service's GUCs and offload table; with
 *					shared_preload_libraries, its shared memory and
 *					background worker (vsgpu.c)
 *	VsSegmentInit	the segment mappings' relcache callback (vssegment.c)
 *	VsSegmentRemoveInit  the transaction callbacks and DROP hooks that
 *					remove segment files (vssegment_remove.c)
 *
 * This file depends on every subsystem; none depends on it.
 *
 * IDENTIFICATION
 *	  src/vecstore.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "vector.h"
#include "vsam.h"
#include "vsdistance.h"
#include "vsdistance_bit.h"
#include "vsdistance_half.h"
#include "vsgpu.h"
#include "vsquant.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* vecstore.simd: which kernel path the distance functions use */
typedef enum VsSimdSetting
{
	VS_SIMD_AUTO = -1,
	VS_SIMD_SCALAR = VS_KERNEL_SCALAR,
	VS_SIMD_AVX2 = VS_KERNEL_AVX2,
	VS_SIMD_AVX512 = VS_KERNEL_AVX512
} VsSimdSetting;

static const struct config_enum_entry vs_simd_options[] = {
	{"auto", VS_SIMD_AUTO, false},
	{"scalar", VS_SIMD_SCALAR, false},
	{"avx2", VS_SIMD_AVX2, false},
	{"avx512", VS_SIMD_AVX512, false},
	{NULL, 0, false}
};

static int	vecstore_simd = VS_SIMD_AUTO;

/*
 * check_simd - refuse a kernel path this CPU cannot run.
 */
static bool
check_simd(int *newval, void **extra, GucSource source)
{
	if (*newval != VS_SIMD_AUTO &&
		!VsKernelPathSupported((VsKernelPath) *newval))
	{
		GUC_check_errcode(ERRCODE_FEATURE_NOT_SUPPORTED);
		GUC_check_errmsg("this CPU does not support the \"%s\" kernels",
						 VsKernelPathName((VsKernelPath) *newval));
		GUC_check_errhint("Use \"auto\" to pick the fastest path this CPU supports.");
		return false;
	}
	return true;
}

/*
 * assign_simd - install the chosen kernel path, for the float kernels and
 * the half ones (which fall back to the next path down on a CPU with the
 * path's float instructions but not F16C).  Cannot fail: the check hook
 * has run.
 */
static void
assign_simd(int newval, void *extra)
{
	if (newval == VS_SIMD_AUTO)
	{
		VsDistanceInit();
		VsHalfDistanceInit();
	}
	else
	{
		VsKernels = *VsKernelsForPath((VsKernelPath) newval);
		VsKernelsActivePath = (VsKernelPath) newval;
		VsHalfDistanceSetPath((VsKernelPath) newval);
	}
}

/*
 * show_simd - "auto (avx512)" tells which path auto chose.
 */
static const char *
show_simd(void)
{
	static char buf[32];

	if (vecstore_simd == VS_SIMD_AUTO)
		snprintf(buf, sizeof(buf), "auto (%s)", VsKernelPathName(VsKernelsActivePath));
	else
		snprintf(buf, sizeof(buf), "%s", VsKernelPathName(VsKernelsActivePath));
	return buf;
}

/*
 * _PG_init - module load.
 */
void
_PG_init(void)
{
	VsDistanceInit();
	VsBitDistanceInit();
	VsHalfDistanceInit();

	DefineCustomEnumVariable("vecstore.simd",
							 "Selects the SIMD implementation of the distance functions",
							 "\"auto\" picks the fastest path the CPU supports; the others force one, for diagnosis (superusers only: the distance operators are immutable, and the paths differ in the last bits).",
							 &vecstore_simd,
							 VS_SIMD_AUTO,
							 vs_simd_options,
							 PGC_SUSET,
							 0,
							 check_simd, assign_simd, show_simd);

	VsQuantInit();
	VsAmInit();
	VsCompactInit();
	VsCompactWorkerInit();
	VsGpuInit();
	VsSegmentInit();
	VsMetaCacheInit();
	VsCheckedInit();
	VsAccessInit();
	VsPinInit();
	VsSegmentRemoveInit();

	MarkGUCPrefixReserved("vecstore");
}
