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

/*
 * A segment file as a backend verified it: named by relfilenode and
 * generation, and told apart from another file of the same name (one
 * rebuilt since) by its inode and size.
 */
typedef struct VsSegmentId
{
	RelFileNode node;
	uint32		generation;
	uint64		ino;
	uint64		size;
} VsSegmentId;

/*
 * A segment file's identity, as far as its checks go (vssegment_checked.c):
 * the manifest's name and CRC for it, and what stat() says of the file and
 * of the other files of its generation.  A file rebuilt, replaced or
 * written in place has another identity.
 */
typedef struct VsSegmentIdentity
{
	RelFileNode node;
	uint32		generation;
	uint32		head_crc;		/* the manifest's CRC of the body's head */
	uint32		nclusters;
	uint64		dev;
	uint64		ino;
	uint64		size;
	int64		mtime_ns;		/* modification time, in nanoseconds */
	int64		ctime_ns;		/* status change time (touch cannot set it) */
	uint64		pieces_hash;	/* the same of the generation's other pieces
								 * (vsam.h, VsPieceInfo), hashed; 0 if none */
} VsSegmentIdentity;

extern void VsSegmentDir(Oid dboid, char *buf, Size len);
extern char *VsSegmentPath(RelFileNode node, uint32 generation);
extern bool VsSegmentHeaderSound(const char *addr, Size size, Oid relnode, uint32 *generation);
extern bool VsSegmentFileName(const char *name, Oid *relnode, uint32 *generation);
extern bool VsSegmentGetId(const char *body, VsSegmentId *id);

#endif							/* VSSEGMENT_H */
