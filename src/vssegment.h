/*-------------------------------------------------------------------------
 *
 * vssegment.h
 *	  Where segment files live and how they are named (src/vssegment.c).
 *
 * A segment file is a rebuildable copy of an index's sealed region, named
 * by database, relfilenode and generation under $PGDATA/pg_vecstore.
 * This header needs no part of the index's private header: the GPU
 * service, which names a file to its helper, includes it instead of
 * vsam.h.  The functions that map and check files, which need the
 * metapage, are declared in vsam.h.
 *
 * IDENTIFICATION
 *	  src/vssegment.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSSEGMENT_H
#define VSSEGMENT_H

#include "storage/relfilenode.h"

/* the directory of segment files, relative to the data directory */
#define VS_SEGMENT_DIR			"pg_vecstore"

/* a segment file's header; the sealed region (its body) follows */
#define VS_SEGMENT_HEADER_SIZE	4096

extern char *VsSegmentPath(RelFileNode node, uint32 generation);

#endif							/* VSSEGMENT_H */
