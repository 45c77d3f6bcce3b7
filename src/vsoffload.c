/*-------------------------------------------------------------------------
 *
 * vsoffload.c
 *	  The registered offload service (vsoffload.h).
 *
 * A service sets VsOffloadService from _PG_init; the index's phases read
 * it.  Kept apart from both so that neither depends on the other.
 *
 * IDENTIFICATION
 *	  src/vsoffload.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "vsoffload.h"

const VsOffloadRoutine *VsOffloadService = NULL;
