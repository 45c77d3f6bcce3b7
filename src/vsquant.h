/*-------------------------------------------------------------------------
 *
 * vsquant.h
 *	  Compact codes for graph traversal: 8-bit and 4-bit scalar
 *	  quantization (SQ8, SQ4).
 *
 * This header is plain C99 plus <stddef.h> and <stdint.h>: it does not
 * include postgres.h, so the unit test (test/kernels/test_quant.c) and the
 * benchmark (bench/bench_quant.c) link vsquant.c and vsdistance.c on their
 * own.  The server supplies memory and interrupt handling through
 * VsQuantHooks, as for vskmeans.h.
 *
 * The pieces, in the order an index uses them:
 *
 *	- VsQuantTrain: per-dimension ranges from a sample, written into a
 *	  VsQuantParams, a small self-describing struct (magic, version, dims,
 *	  metric, CRC-32C) that can be copied byte for byte into the fork and
 *	  the segment and checked with VsQuantValidate when read back;
 *	- VsQuantEncode: one vector to one "record" of VsQuantRecordSize bytes
 *	  (a float of per-vector factor, then the codes: one byte per dimension
 *	  for SQ8, one nibble for SQ4 (dimension 2i in the low nibble of byte
 *	  i, 2i + 1 in the high one), padded with zeros to a multiple of 4
 *	  bytes; see "Record layouts" below); the records of a cluster are
 *	  stored back to back in a block of VsQuantBlockSize bytes that starts
 *	  64-byte aligned;
 *	- VsQuantPrepareQuery: once per query (and per cluster when the codes
 *	  are residuals, see below), into a caller-supplied buffer;
 *	- VsQuantDistance / VsQuantDistances / VsQuantDistancesIds /
 *	  VsQuantDistanceById: estimated distances between the prepared query
 *	  and records, the last one with the signature of the HNSW distance
 *	  callback.
 *
 * Estimated distances are monotone stand-ins for the ORDER BY operator's
 * value, not the value itself: squared L2 for VS_METRIC_L2 (the operator
 * returns its square root), negative inner product for VS_METRIC_IP, and
 * 1 - cosine similarity for VS_METRIC_COSINE.  Only the rerank on the full
 * vectors may produce what the executor sees.
 *
 * Residual codes.  Every encode and query function takes an optional
 * "centroid" (NULL for none).  With a centroid, the code stores x - centroid
 * (for cosine: x / |x| - centroid), trained on residuals (VsQuantTrain's
 * "centroids" and "assign"), and a query is prepared once per probed
 * cluster with that cluster's centroid.  Residual ranges are narrower than
 * the data's, but at 8 bits that measured no better than global codes
 * (vsquant.c), so global codes are the recommended form.  Params trained
 * with residuals have VS_QUANT_RESIDUAL in flags; the functions do not
 * check it: pass a centroid exactly when that flag is set, the same one
 * to encode a row and to prepare a query for the row's cluster.  For
 * cosine, centroids must be unit length (as spherical k-means gives).
 *
 * Record layouts.  Params with VS_QUANT_PACKED in flags (VsQuantTrain
 * sets it unless VsQuantOptions.packed is 0) have packed records: a
 * 4-byte header (the factor) and the code bytes padded to a multiple of 4.  The kernels read codes in
 * 16-byte steps, so a record's last step runs up to 15 bytes into the
 * next record (or the block's tail): those bytes meet zero weights, and
 * a block has VS_QUANT_CODE_ALIGN bytes of zeros after its last record.
 * A lone record (VsQuantDistance) needs the same slack after it:
 * VsQuantRecordSpace.  Params without the flag (indexes built before
 * packed records) have the earlier layout: a 16-byte header (the factor,
 * then three zero floats) and the codes padded to a multiple of 16, no
 * slack needed.  Every function reads and writes both.
 *
 * IDENTIFICATION
 *	  src/vsquant.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef VSQUANT_H
#define VSQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "vsdistance.h"

/* identification of a VsQuantParams */
#define VS_QUANT_MAGIC			0x38515356	/* "VSQ8" little-endian */
#define VS_QUANT_VERSION		1

/* the code kinds (VsQuantParams.kind) */
#define VS_QUANT_SQ8			1	/* one byte per dimension, 256 levels */
#define VS_QUANT_SQ4			2	/* one nibble per dimension, 16 levels */

/* VsQuantParams.flags */
#define VS_QUANT_RESIDUAL		0x0001	/* codes are x - centroid */
#define VS_QUANT_PACKED			0x0002	/* packed records (see above) */
#define VS_QUANT_KNOWN_FLAGS	(VS_QUANT_RESIDUAL | VS_QUANT_PACKED)

/* largest dimension count the codes support (pgvector's vector limit) */
#define VS_QUANT_MAX_DIM		16000

/* a block of records starts at a multiple of this (a cache line) */
#define VS_QUANT_BLOCK_ALIGN	64

/* bytes of per-vector factors in front of each record's codes */
#define VS_QUANT_RECORD_HEADER	16	/* without VS_QUANT_PACKED */
#define VS_QUANT_PACKED_HEADER	4	/* with it */

/*
 * The kernels read code bytes in steps of this many; without
 * VS_QUANT_PACKED a record's code bytes are padded to a multiple of it,
 * with it a block ends with this many bytes of zeros
 */
#define VS_QUANT_CODE_ALIGN		16

/* with VS_QUANT_PACKED, records are padded to a multiple of this */
#define VS_QUANT_PACKED_ALIGN	4

/*
 * Fraction of the training sample clipped at each end of every dimension's
 * range: the range runs from the clip-quantile to the (1 - clip)-quantile
 * of the sample.  0 gives min/max, the default: no clip fraction measured
 * better on any shared data set, and 0.001 already hurts inner product
 * (vsquant.c has the figures).
 */
#define VS_QUANT_DEFAULT_CLIP	0.0
#define VS_QUANT_MAX_CLIP		0.25

/*
 * What an index build clips of SQ4's ranges under L2 and cosine (inner
 * product keeps min/max): with 15 steps a range stretched to its sample's
 * extremes leaves most values a few steps (vsquant.c, "SQ4").
 */
#define VS_QUANT_SQ4_CLIP		0.003

/*
 * Implementations of the code-distance kernel.  All of them compute the
 * same integer dot product and then the same double-precision finish, so
 * they return bit-identical distances (unlike vsdistance.c's paths).
 */
typedef enum VsQuantPath
{
	VS_QUANT_PATH_SCALAR = 0,
	VS_QUANT_PATH_AVX2,			/* AVX2: vpmaddwd on 16-bit weights */
	VS_QUANT_PATH_AVX512,		/* AVX-512BW: vpmaddwd, 32 lanes */
	VS_QUANT_PATH_AVX512VNNI,	/* AVX-512 VNNI: vpdpbusd on split weights */
	VS_QUANT_NPATHS
} VsQuantPath;

/*
 * What the caller provides for training (the other functions allocate
 * nothing).  In the server: palloc, pfree, and a function that runs
 * CHECK_FOR_INTERRUPTS().  alloc must never return NULL; if
 * check_interrupts longjmps out, the block allocated so far is not freed,
 * so it must come from a memory context that the error cleanup resets.
 */
typedef struct VsQuantHooks
{
	void	   *(*alloc) (size_t size);
	void		(*free) (void *ptr);
	void		(*check_interrupts) (void);
} VsQuantHooks;

typedef struct VsQuantOptions
{
	/* VS_QUANT_SQ8 or VS_QUANT_SQ4 */
	int			kind;
	/* fraction clipped at each end of each dimension, 0 .. VS_QUANT_MAX_CLIP */
	double		clip;
	/* packed records (default true; false: the earlier layout) */
	int			packed;
} VsQuantOptions;

/*
 * The quantizer's parameters, stored as they are in memory (host byte
 * order, like the rest of the fork and the segment).  "size" is the whole
 * struct with its arrays: VsQuantParamsSize(dims).  Fields are only ever
 * appended; a reader rejects a version it does not know.
 *
 * For both kinds, data[] holds lo[dims] then step[dims]: the code c of
 * dimension d stands for lo[d] + step[d] * c, c in 0..L with L = 255 for
 * SQ8 and 15 for SQ4.  step[d] == 0 marks a dimension that was constant
 * in the sample (every code 0).
 */
typedef struct VsQuantParams
{
	uint32_t	magic;			/* VS_QUANT_MAGIC */
	uint16_t	version;		/* VS_QUANT_VERSION */
	uint16_t	kind;			/* VS_QUANT_SQ8, VS_QUANT_SQ4 */
	uint32_t	dims;
	uint32_t	metric;			/* VsMetric */
	uint32_t	flags;			/* VS_QUANT_RESIDUAL, VS_QUANT_PACKED */
	uint32_t	size;			/* bytes of the struct and its arrays */
	uint32_t	record_size;	/* bytes per record: VsQuantRecordSize */
	uint32_t	crc;			/* CRC-32C of all "size" bytes, crc as 0 */
	uint32_t	nsamples;		/* training samples (information only) */
	uint32_t	clip_ppm;		/* clip fraction in millionths (information) */
	uint32_t	reserved[6];	/* zero */
	float		data[];			/* per-kind arrays, see above */
} VsQuantParams;

/* a prepared query (opaque; lives in the caller's buffer) */
typedef struct VsQuantQuery VsQuantQuery;

/* the HNSW distance callback's context: one prepared query, one block */
typedef struct VsQuantScan
{
	const VsQuantQuery *query;
	const uint8_t *block;		/* record i at block + i * record_size */
} VsQuantScan;

/* setup and dispatch */
extern VsQuantPath VsQuantActivePath;
extern void VsQuantInit(void);
extern int	VsQuantPathSupported(VsQuantPath path);
extern const char *VsQuantPathName(VsQuantPath path);

/* parameters */
extern void VsQuantOptionsInit(VsQuantOptions *opt);
extern double VsQuantBuildClip(int kind, VsMetric metric);
extern size_t VsQuantParamsSize(int dims);
extern size_t VsQuantRecordSize(int kind, int dims, uint32_t flags);
extern size_t VsQuantRecordSpace(const VsQuantParams *params);
extern size_t VsQuantBlockSize(const VsQuantParams *params, uint64_t n);
extern int	VsQuantTrain(const float *samples, int n, int dims, VsMetric metric,
						 const float *centroids, const int32_t *assign,
						 const VsQuantOptions *opt, const VsQuantHooks *hooks,
						 VsQuantParams *params);
extern void VsQuantSeal(VsQuantParams *params);
extern const char *VsQuantValidate(const VsQuantParams *params, size_t avail);
extern uint32_t VsQuantCrc32c(uint32_t crc, const void *data, size_t len);

/* codes */
extern void VsQuantEncode(const VsQuantParams *params, const float *x,
						  const float *centroid, uint8_t *record);
extern void VsQuantEncodeBlock(const VsQuantParams *params, const float *x,
							   uint64_t n, const float *centroid,
							   uint8_t *block);
extern void VsQuantDecode(const VsQuantParams *params, const uint8_t *record,
						  const float *centroid, float *x);

/* queries and distances */
extern size_t VsQuantQuerySize(const VsQuantParams *params);
extern VsQuantQuery *VsQuantPrepareQuery(const VsQuantParams *params,
										 const float *q, const float *centroid,
										 void *buf);
extern VsQuantQuery *VsQuantPrepareQueryPath(const VsQuantParams *params,
											 const float *q,
											 const float *centroid,
											 VsQuantPath path, void *buf);
extern float VsQuantDistance(const VsQuantQuery *query, const uint8_t *record);
extern void VsQuantDistances(const VsQuantQuery *query, const uint8_t *block,
							 uint32_t n, float *out);
extern void VsQuantDistancesIds(const VsQuantQuery *query,
								const uint8_t *block, const uint32_t *ids,
								uint32_t n, float *out);
extern float VsQuantDistanceById(void *ctx, uint32_t id);
extern double VsQuantQueryDelta(const VsQuantQuery *query);

/*
 * VsQuantRecord - record "i" of a block of records of "record_size" bytes.
 */
static inline const uint8_t *
VsQuantRecord(const void *block, size_t record_size, uint64_t i)
{
	return (const uint8_t *) block + (size_t) i * record_size;
}

#endif							/* VSQUANT_H */
