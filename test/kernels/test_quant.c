/*-------------------------------------------------------------------------
 *
 * test_quant.c
 *	  Unit test: compact codes (SQ8, SQ4) for graph traversal.
 *
 * Links src/vsquant.c and src/vsdistance.c without the server (see the
 * Makefile target test/kernels/test_quant).  Each group of checks prints
 * one line, "ok   - ..." or "FAIL - ..." with up to MAX_DETAILS reasons; a
 * group that cannot run (a path this CPU lacks) prints "skip - ..." and is
 * not counted.  The last line is exactly "N passed, N failed"; the exit
 * status is 1 on any failure.  Every group after "layout" runs once per
 * code kind, its line prefixed with "sq8" or "sq4"; L is the kind's
 * highest code (255 or 15).
 *
 * The groups:
 *	- layout: struct and record sizes, block alignment, CRC-32C check value;
 *	- training: ranges against a sort-based reference (min/max and clipped
 *	  quantiles, columns full of duplicates), residual training, bad
 *	  arguments rejected, every allocation freed, interrupts polled;
 *	- encode/decode: per-dimension error <= step/2 inside the range, the
 *	  nearest end outside it, padding zero, for dims 1..2000 (tails of 16
 *	  and 64), each metric, with and without a centroid;
 *	- distances: against a double-precision reference on the decoded
 *	  vector, within the bound derived in vsquant.c (L/4 * delta per
 *	  dimension, times 2 for L2 and the stored 1/|x^| for cosine, plus
 *	  float rounding); and the check has teeth: a record whose code moved
 *	  one level on the query's heaviest dimension breaks the bound;
 *	- paths: every SIMD path returns exactly the scalar path's distances,
 *	  through every entry point, and never reads past the last record (the
 *	  block ends at a PROT_NONE page);
 *	- ranking: recall@10 after an exact rerank of the best R = 40 by code
 *	  distance on synthetic clustered data, per metric, global and residual
 *	  codes, >= RECALL_MIN;
 *	- edge cases: constant dimensions, n = 1 and n = 0 training, values far
 *	  outside the trained range, zero vectors under cosine;
 *	- validation: every single-bit flip, truncation and each bad field is
 *	  rejected; a fresh struct passes.
 *
 * IDENTIFICATION
 *	  test/kernels/test_quant.c
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vsdistance.h"
#include "vsquant.h"

/* failure details printed per group */
#define MAX_DETAILS		5

#include "vstest.h"

/*
 * Recall@10 after reranking the best 40 by code distance, synthetic
 * clustered data (see test_ranking).  Measured 0.999-1.000 for every
 * metric and both code forms; the threshold leaves room for other seeds.
 */
#define RECALL_MIN		0.99
#define RECALL_R		40

/*
 * SQ4 on the same data (measured figures are on the group's line):
 * sixteen levels cost the ranking more than 256 do.
 */
#define RECALL_MIN_SQ4	0.90



static long interrupt_calls;

/* the code kind the groups test (main runs them for each) */
static int	test_kind = VS_QUANT_SQ8;
/* and the record layout: packed (VS_QUANT_PACKED) or the earlier one */
static int	test_packed = 1;

#define KIND_NAME	(test_kind == VS_QUANT_SQ4 ? \
					 (test_packed ? "sq4" : "sq4 (16-byte header)") : \
					 (test_packed ? "sq8" : "sq8 (16-byte header)"))
#define LEVELS		(test_kind == VS_QUANT_SQ4 ? 15 : 255)
#define FLAGS		(test_packed ? VS_QUANT_PACKED : 0)
#define HDR			(test_packed ? VS_QUANT_PACKED_HEADER : VS_QUANT_RECORD_HEADER)
#define RS(dims)	VsQuantRecordSize(test_kind, (dims), FLAGS)
/* a buffer for one record: packed ones need the kernels' slack after it */
#define RSPACE(dims) (RS(dims) + (test_packed ? VS_QUANT_CODE_ALIGN : 0))
/* the code of dimension d in record "rec" */
#define CODE(rec, d) \
	(test_kind == VS_QUANT_SQ4 ? \
	 (((rec)[HDR + (d) / 2] >> (4 * ((d) % 2))) & 15) : \
	 (rec)[HDR + (d)])
/* bytes of codes without the padding */
#define CODE_BYTES(dims) (test_kind == VS_QUANT_SQ4 ? ((dims) + 1) / 2 : (dims))

static const char *const metric_names[] = {"?", "l2", "ip", "cosine"};

/*
 * test_interrupts - count the calls (memory: vstest.h's tracking allocator).
 */
static void
test_interrupts(void)
{
	interrupt_calls++;
}

static const VsQuantHooks hooks = {test_alloc, test_free, test_interrupts};

/*
 * xmalloc - malloc or exit.
 */
static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "out of memory (%zu bytes)\n", size);
		exit(2);
	}
	return p;
}

/*
 * xmalloc_aligned - 64-byte aligned block (segments align blocks to 64).
 */
static void *
xmalloc_aligned(size_t size)
{
	void	   *p = NULL;

	if (posix_memalign(&p, 64, size ? size : 64) != 0)
	{
		fprintf(stderr, "out of memory (%zu bytes)\n", size);
		exit(2);
	}
	return p;
}

/*
 * train - VsQuantTrain into a fresh malloc'd params; exits on -1.
 */
static VsQuantParams *
train(const float *x, int n, int dims, VsMetric metric, const float *cents,
	  const int32_t *assign, double clip)
{
	VsQuantParams *p = xmalloc(VsQuantParamsSize(dims));
	VsQuantOptions opt;

	VsQuantOptionsInit(&opt);
	opt.kind = test_kind;
	opt.clip = clip;
	opt.packed = test_packed;
	if (VsQuantTrain(x, n, dims, metric, cents, assign, &opt, &hooks, p) != 0)
	{
		fprintf(stderr, "VsQuantTrain rejected n=%d dims=%d\n", n, dims);
		exit(2);
	}
	return p;
}

/*
 * prepare - a prepared query on "path" in a fresh buffer (*buf to free).
 */
static VsQuantQuery *
prepare(const VsQuantParams *p, const float *q, const float *cent,
		VsQuantPath path, void **buf)
{
	*buf = xmalloc(VsQuantQuerySize(p));
	return VsQuantPrepareQueryPath(p, q, cent, path, *buf);
}

/*
 * input_vec - what the module encodes for x: normalised for cosine (zero
 * stays zero), minus the centroid; in double.
 */
static void
input_vec(const VsQuantParams *p, const float *x, const float *cent,
		  double *out)
{
	double		scale = 1.0;

	if (p->metric == VS_METRIC_COSINE)
	{
		double		nn = 0;

		for (uint32_t d = 0; d < p->dims; d++)
			nn += (double) x[d] * x[d];
		scale = nn > 0 ? 1.0 / sqrt(nn) : 0.0;
	}
	for (uint32_t d = 0; d < p->dims; d++)
		out[d] = (double) (float) ((double) x[d] * scale) - (cent ? cent[d] : 0.0);
}

/*
 * decoded - the vector a record stands for, in double: lo + step * code
 * (+ centroid).
 */
static void
decoded(const VsQuantParams *p, const uint8_t *rec, const float *cent,
		double *out)
{
	const float *lo = p->data;
	const float *step = p->data + p->dims;

	for (uint32_t d = 0; d < p->dims; d++)
		out[d] = (double) lo[d] + (double) step[d] * CODE(rec, (int) d) +
			(cent ? cent[d] : 0.0);
}

/*
 * exact_dist - the metric's ranking value between float vectors, in
 * double: squared L2, negative IP, 1 - cosine (1 if either is zero).
 */
static double
exact_dist(VsMetric metric, const float *a, const float *b, int dims)
{
	double		dot = 0,
				na = 0,
				nb = 0,
				l2 = 0;

	for (int d = 0; d < dims; d++)
	{
		double		diff = (double) a[d] - b[d];

		dot += (double) a[d] * b[d];
		na += (double) a[d] * a[d];
		nb += (double) b[d] * b[d];
		l2 += diff * diff;
	}
	if (metric == VS_METRIC_L2)
		return l2;
	if (metric == VS_METRIC_IP)
		return -dot;
	if (na == 0 || nb == 0)
		return 1.0;
	return 1.0 - dot / sqrt(na * nb);
}

/*
 * ref_code_dist - the estimate's ideal in double: the metric between query
 * q and the decoded vector xh (cosine: q normalised, xh divided by |xh|).
 * *bound gets the derived error bound for a query with quantum "delta".
 */
static double
ref_code_dist(VsMetric metric, const float *q, const double *xh, int dims,
			  double delta, const uint8_t *rec, double *bound)
{
	double		dot = 0,
				nq = 0,
				nx = 0,
				l2 = 0;
	float		aux;

	memcpy(&aux, rec, sizeof(aux));
	for (int d = 0; d < dims; d++)
	{
		double		diff = (double) q[d] - xh[d];

		dot += (double) q[d] * xh[d];
		nq += (double) q[d] * q[d];
		nx += xh[d] * xh[d];
		l2 += diff * diff;
	}
	if (metric == VS_METRIC_L2)
	{
		/* weights: 2 * L/4 delta per dimension; V and D rounded to float */
		*bound = LEVELS / 2.0 * delta * dims + 2.4e-7 * (aux + l2 + nq) + 1e-30;
		return l2;
	}
	if (metric == VS_METRIC_IP)
	{
		*bound = LEVELS / 4.0 * delta * dims + 2.4e-7 * (fabs(dot) + 1e-30) +
			1e-12 * sqrt(nq * nx);
		return -dot;
	}
	/* cosine: the stored 1/|xh| is rounded to float */
	if (nq == 0 || nx == 0 || aux == 0.0f)
	{
		*bound = 1e-6;
		return 1.0;
	}
	*bound = LEVELS / 4.0 * delta * dims * aux + 2.4e-7 * (1.0 + fabs(dot / sqrt(nq * nx))) + 1e-9;
	return 1.0 - dot / sqrt(nq * nx);
}

/*
 * fill_clustered - n vectors around "k" gaussian centres (spread 1,
 * centres spread "sep"), plus an offset; dims with no spread optional.
 */
static void
fill_clustered(float *x, int n, int dims, int k, double sep, double offset)
{
	float	   *centres = xmalloc(sizeof(float) * (size_t) k * dims);

	for (size_t i = 0; i < (size_t) k * dims; i++)
		centres[i] = (float) (sep * rng_gauss() + offset);
	for (int i = 0; i < n; i++)
	{
		const float *c = centres + (size_t) (rng_next() % k) * dims;

		for (int d = 0; d < dims; d++)
			x[(size_t) i * dims + d] = (float) (c[d] + rng_gauss());
	}
	free(centres);
}

/*
 * cmp_float - qsort comparator.
 */
static int
cmp_float(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return (x > y) - (x < y);
}

/*
 * test_layout - sizes, alignment, the CRC check value, dispatch.
 */
static void
test_layout(void)
{
	static const int dimlist[] = {1, 15, 16, 17, 100, 128, 784, 1536, 16000};

	group_begin("layout: struct 64 bytes, records packed to 4 (or 16 with 16-byte headers), blocks of 64 with slack, CRC-32C check value, dispatch");
	check(sizeof(VsQuantParams) == 64, "sizeof(VsQuantParams) = %zu", sizeof(VsQuantParams));
	check(offsetof(VsQuantParams, data) == 64, "data at %zu", offsetof(VsQuantParams, data));
	check(VsQuantCrc32c(0, "123456789", 9) == 0xE3069283u,
		  "CRC-32C(\"123456789\") = %08x", VsQuantCrc32c(0, "123456789", 9));
	check(VsQuantCrc32c(VsQuantCrc32c(0, "1234", 4), "56789", 5) == 0xE3069283u,
		  "CRC-32C does not continue");
	for (size_t i = 0; i < sizeof(dimlist) / sizeof(dimlist[0]); i++)
	{
		int			dims = dimlist[i];
		size_t		rs = VsQuantRecordSize(VS_QUANT_SQ8, dims, 0);
		size_t		rs4 = VsQuantRecordSize(VS_QUANT_SQ4, dims, 0);
		size_t		prs = VsQuantRecordSize(VS_QUANT_SQ8, dims, VS_QUANT_PACKED);
		size_t		prs4 = VsQuantRecordSize(VS_QUANT_SQ4, dims, VS_QUANT_PACKED);
		VsQuantParams hdr;

		check(rs % 16 == 0 && rs >= (size_t) dims + VS_QUANT_RECORD_HEADER &&
			  rs < (size_t) dims + VS_QUANT_RECORD_HEADER + 16,
			  "dims %d: record size %zu", dims, rs);
		check(rs4 % 16 == 0 && rs4 >= (size_t) (dims + 1) / 2 + VS_QUANT_RECORD_HEADER &&
			  rs4 < (size_t) (dims + 1) / 2 + VS_QUANT_RECORD_HEADER + 16,
			  "dims %d: SQ4 record size %zu", dims, rs4);
		check(prs % 4 == 0 && prs >= (size_t) dims + 4 && prs < (size_t) dims + 8,
			  "dims %d: packed record size %zu", dims, prs);
		check(prs4 % 4 == 0 && prs4 >= (size_t) (dims + 1) / 2 + 4 &&
			  prs4 < (size_t) (dims + 1) / 2 + 8,
			  "dims %d: packed SQ4 record size %zu", dims, prs4);
		check(VsQuantParamsSize(dims) == 64 + 8 * (size_t) dims, "dims %d: params size", dims);
		for (int packed = 0; packed < 2; packed++)
		{
			size_t		r = packed ? prs : rs;
			size_t		slack = packed ? VS_QUANT_CODE_ALIGN : 0;

			hdr.flags = packed ? VS_QUANT_PACKED : 0;
			hdr.record_size = (uint32_t) r;
			check(VsQuantRecordSpace(&hdr) == r + slack, "dims %d: record space", dims);
			for (uint64_t n = 0; n < 70; n += 7)
			{
				size_t		bs = VsQuantBlockSize(&hdr, n);

				check(n == 0 ? bs == 0 :
					  (bs % 64 == 0 && bs >= n * r + slack && bs < n * r + slack + 64),
					  "dims %d n %d packed %d: block size %zu", dims, (int) n, packed, bs);
			}
		}
		check(VsQuantRecord((void *) 0x1000, rs, 3) == (const uint8_t *) 0x1000 + 3 * rs,
			  "VsQuantRecord");
	}
	check(VsQuantPathSupported(VS_QUANT_PATH_SCALAR), "scalar unsupported");
	check(VsQuantActivePath < VS_QUANT_NPATHS && VsQuantPathSupported(VsQuantActivePath),
		  "active path %d", (int) VsQuantActivePath);
	for (int p = VsQuantActivePath + 1; p < VS_QUANT_NPATHS; p++)
		check(!VsQuantPathSupported((VsQuantPath) p), "VsQuantInit passed over %s",
			  VsQuantPathName((VsQuantPath) p));
	check(!VsQuantPathSupported(VS_QUANT_NPATHS), "NPATHS supported");
	check(strcmp(VsQuantPathName(VS_QUANT_NPATHS), "unknown") == 0, "bad path name");
	group_end();
}

/*
 * test_training - ranges against a sort-based reference; hooks; errors.
 */
static void
test_training(void)
{
	static const double clips[] = {0.0, 0.001, 0.01, 0.1, 0.25};
	static const int ns[] = {1, 2, 3, 10, 1000, 4999};
	const int	dims = 37;

	group_begin("%s training: ranges = sorted quantiles (clip 0..0.25, n 1..4999, duplicates), hooks, bad arguments",
				KIND_NAME);
	rng_seed(11);
	for (size_t ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++)
	{
		int			n = ns[ni];
		float	   *x = xmalloc(sizeof(float) * (size_t) n * dims);
		float	   *col = xmalloc(sizeof(float) * n);

		for (int i = 0; i < n; i++)
			for (int d = 0; d < dims; d++)
			{
				/* every third dimension: a few values, mostly zero (pixels) */
				double		v = d % 3 == 0 ? (rng_unit() < 0.7 ? 0.0 : floor(rng_unit() * 4))
				: rng_gauss() * (1 + d) + d;

				x[(size_t) i * dims + d] = (float) v;
			}
		for (size_t ci = 0; ci < sizeof(clips) / sizeof(clips[0]); ci++)
		{
			long		allocs = n_allocs,
						frees = n_frees,
						polls = interrupt_calls;
			VsQuantParams *p = train(x, n, dims, VS_METRIC_L2, NULL, NULL, clips[ci]);

			check(n_allocs - allocs == n_frees - frees && n_allocs > allocs,
				  "n=%d: %ld allocs, %ld frees", n, n_allocs - allocs, n_frees - frees);
			check(interrupt_calls - polls == (dims + 15) / 16, "n=%d: %ld interrupt polls",
				  n, interrupt_calls - polls);
			check(VsQuantValidate(p, p->size) == NULL, "n=%d clip=%g: %s", n, clips[ci],
				  VsQuantValidate(p, p->size));
			check(p->nsamples == (uint32_t) n && p->flags == (uint32_t) FLAGS, "n=%d: nsamples %u flags %u",
				  n, p->nsamples, p->flags);
			for (int d = 0; d < dims; d++)
			{
				int			klo = 0,
							khi = n - 1;
				double		vlo,
							vhi,
							lo = p->data[d],
							hi = p->data[d] + LEVELS * (double) p->data[dims + d];

				for (int i = 0; i < n; i++)
					col[i] = x[(size_t) i * dims + d];
				qsort(col, n, sizeof(float), cmp_float);
				if (clips[ci] > 0 && n >= 2)
				{
					klo = (int) floor(clips[ci] * (n - 1));
					khi = (int) ceil((1 - clips[ci]) * (n - 1));
				}
				vlo = col[klo];
				vhi = col[khi];
				if (vhi == vlo)
					check(p->data[dims + d] == 0.0f && p->data[d] == (float) vlo,
						  "n=%d clip=%g dim %d: constant %g stored as lo %g step %g",
						  n, clips[ci], d, vlo, lo, p->data[dims + d]);
				else
					check(fabs(lo - vlo) <= 1e-6 * fabs(vlo) &&
						  fabs(hi - vhi) <= 1e-5 * (fabs(vhi) + fabs(vlo)),
						  "n=%d clip=%g dim %d: range [%.9g, %.9g], want [%.9g, %.9g]",
						  n, clips[ci], d, lo, hi, vlo, vhi);
			}
			free(p);
		}
		free(x);
		free(col);
	}

	/* bad arguments: -1, params untouched */
	{
		float		x[4] = {1, 2, 3, 4};
		int32_t		a[2] = {0, 0};
		VsQuantParams *p = xmalloc(VsQuantParamsSize(VS_QUANT_MAX_DIM + 1));
		VsQuantOptions opt;

		memset(p, 0xA5, sizeof(VsQuantParams));
		VsQuantOptionsInit(&opt);
		check(VsQuantTrain(x, 2, 0, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1, "dims 0");
		check(VsQuantTrain(x, 2, VS_QUANT_MAX_DIM + 1, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1,
			  "dims too large");
		check(VsQuantTrain(x, -1, 2, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1, "n < 0");
		check(VsQuantTrain(x, 2, 2, (VsMetric) 7, NULL, NULL, &opt, &hooks, p) == -1, "metric");
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, x, NULL, &opt, &hooks, p) == -1, "centroids w/o assign");
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, NULL, a, &opt, &hooks, p) == -1, "assign w/o centroids");
		opt.clip = 0.3;
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1, "clip 0.3");
		opt.clip = -0.1;
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1, "clip < 0");
		opt.clip = NAN;
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1, "clip NaN");
		VsQuantOptionsInit(&opt);
		opt.kind = 99;
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, NULL, NULL, &opt, &hooks, p) == -1, "kind");
		check(p->magic == 0xA5A5A5A5u, "params written on error");
		/* NULL options mean the defaults */
		check(VsQuantTrain(x, 2, 2, VS_METRIC_L2, NULL, NULL, NULL, &hooks, p) == 0 &&
			  VsQuantValidate(p, p->size) == NULL, "NULL options");
		free(p);
	}
	group_end();
}

/*
 * encode_shape - encode/decode bounds for one (dims, metric, residual).
 */
static void
encode_shape(int dims, VsMetric metric, int residual)
{
	const int	n = 300,
				k = 3;
	float	   *x = xmalloc(sizeof(float) * (size_t) n * dims);
	float	   *cents = xmalloc(sizeof(float) * (size_t) k * dims);
	int32_t    *assign = xmalloc(sizeof(int32_t) * n);
	size_t		rs = RS(dims);
	uint8_t    *rec = xmalloc_aligned(RSPACE(dims));
	float	   *dec = xmalloc(sizeof(float) * dims);
	double	   *in = xmalloc(sizeof(double) * dims);
	VsQuantParams *p;

	fill_clustered(x, n, dims, k, 3.0, 0.5);
	for (int i = 0; i < n; i++)
		assign[i] = i % k;
	for (int c = 0; c < k; c++)
		for (int d = 0; d < dims; d++)
			cents[(size_t) c * dims + d] = (float) (0.3 * rng_gauss());
	p = train(x, n, dims, metric, residual ? cents : NULL, residual ? assign : NULL, 0.0);

	for (int i = 0; i < n + 2; i++)
	{
		float	   *xi = x + (size_t) (i % n) * dims;
		const float *cent = residual ? cents + (size_t) assign[i % n] * dims : NULL;
		const float *lo = p->data;
		const float *step = p->data + dims;
		int			outside = i >= n;

		if (outside)
		{
			/* far outside the trained range, both ways */
			for (int d = 0; d < dims; d++)
				xi[d] = (float) ((d + i) % 2 ? 1e6 : -1e6);
		}
		memset(rec, 0xEE, RSPACE(dims));
		VsQuantEncode(p, xi, cent, rec);
		VsQuantDecode(p, rec, cent, dec);
		input_vec(p, xi, cent, in);
		for (int d = 0; d < dims; d++)
		{
			double		rlo = lo[d],
						rhi = (double) lo[d] + LEVELS * (double) step[d];
			double		want = in[d] < rlo ? rlo : (in[d] > rhi ? rhi : in[d]);
			double		got = (double) lo[d] + (double) step[d] * CODE(rec, d);
			/* the residual is rounded to float before it is quantized */
			double		tol = step[d] * 0.5 * (1 + 1e-9) + 1e-12 * (fabs(rlo) + fabs(rhi)) +
				1.2e-7 * (fabs(in[d]) + (cent ? fabs(cent[d]) : 0));

			if (step[d] == 0)
			{
				check(CODE(rec, d) == 0, "dims %d: constant dim code %d",
					  dims, CODE(rec, d));
				continue;
			}
			check(fabs(got - want) <= tol,
				  "%s dims %d%s vec %d dim %d: in %.9g decoded %.9g (range %g..%g, step %g)",
				  metric_names[metric], dims, residual ? " residual" : "", i, d,
				  in[d], got, rlo, rhi, step[d]);
			if (in[d] < rlo || in[d] > rhi)
				check(CODE(rec, d) == (in[d] > rhi ? LEVELS : 0),
					  "dims %d: out-of-range %g got code %d", dims, in[d],
					  CODE(rec, d));
			/* VsQuantDecode: the same in float arithmetic */
			check(fabs(dec[d] - (got + (cent ? cent[d] : 0))) <=
				  2.4e-7 * (fabs(got) + fabs(rlo) + (cent ? fabs(cent[d]) : 0)) + 1e-30,
				  "dims %d: VsQuantDecode %g vs %g", dims, dec[d], got);
		}
		for (size_t b = HDR + CODE_BYTES(dims); b < rs; b++)
			check(rec[b] == 0, "dims %d: padding byte %zu = %d", dims, b, rec[b]);
		for (size_t b = rs; b < RSPACE(dims); b++)
			check(rec[b] == 0xEE, "dims %d: byte %zu past the record written", dims, b);
		if (test_kind == VS_QUANT_SQ4 && dims % 2 == 1)
			check((rec[HDR + dims / 2] >> 4) == 0,
				  "dims %d: the last byte's unused nibble is %d", dims,
				  rec[HDR + dims / 2] >> 4);
		if (!test_packed)
		{
			float		hdr[4];

			memcpy(hdr, rec, sizeof(hdr));
			check(hdr[1] == 0 && hdr[2] == 0 && hdr[3] == 0, "header reserved floats");
		}
	}
	free(p);
	free(x);
	free(cents);
	free(assign);
	free(rec);
	free(dec);
	free(in);
}

/*
 * test_encode - encode_shape over dims, metrics, both code forms.
 */
static void
test_encode(void)
{
	static const int dimlist[] = {1, 2, 3, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 784, 1536, 2000};

	group_begin("%s encode/decode: |x - x^| <= step/2 in range, ends outside, padding zero; %d dims x 3 metrics x global/residual",
				KIND_NAME, (int) (sizeof(dimlist) / sizeof(dimlist[0])));
	rng_seed(21);
	for (size_t i = 0; i < sizeof(dimlist) / sizeof(dimlist[0]); i++)
		for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
			for (int r = 0; r < 2; r++)
				encode_shape(dimlist[i], (VsMetric) m, r);
	group_end();
}

/*
 * distance_shape - code distances vs the double reference on decoded
 * vectors, for one shape, on the scalar path.  Queries include ones far
 * outside the range (large weights) and a zero query.
 */
static void
distance_shape(int dims, VsMetric metric, int residual, double offset)
{
	const int	n = 200,
				nq = 12,
				k = 4;
	float	   *x = xmalloc(sizeof(float) * (size_t) n * dims);
	float	   *qs = xmalloc(sizeof(float) * (size_t) nq * dims);
	float	   *cents = xmalloc(sizeof(float) * (size_t) k * dims);
	int32_t    *assign = xmalloc(sizeof(int32_t) * n);
	size_t		rs = RS(dims);
	uint8_t    *block;
	double	   *xh = xmalloc(sizeof(double) * dims);
	VsQuantParams *p;

	fill_clustered(x, n, dims, k, 2.0, offset);
	fill_clustered(qs, nq, dims, k, 2.0, offset);
	for (int d = 0; d < dims; d++)
	{
		qs[(size_t) (nq - 1) * dims + d] = 0.0f;	/* zero query */
		qs[(size_t) (nq - 2) * dims + d] = (float) (50.0 * rng_gauss());
	}
	for (int i = 0; i < n; i++)
		assign[i] = i % k;
	for (size_t i = 0; i < (size_t) k * dims; i++)
		cents[i] = (float) (offset + 0.5 * rng_gauss());
	p = train(x, n, dims, metric, residual ? cents : NULL, residual ? assign : NULL, 0.001);

	block = xmalloc_aligned(VsQuantBlockSize(p, n));
	for (int i = 0; i < n; i++)
		VsQuantEncode(p, x + (size_t) i * dims, residual ? cents + (size_t) assign[i] * dims : NULL,
					  block + (size_t) i * rs);

	for (int j = 0; j < nq; j++)
	{
		const float *q = qs + (size_t) j * dims;

		for (int c = 0; c < (residual ? k : 1); c++)
		{
			const float *cent = residual ? cents + (size_t) c * dims : NULL;
			void	   *buf;
			VsQuantQuery *query = prepare(p, q, cent, VS_QUANT_PATH_SCALAR, &buf);
			double		delta = VsQuantQueryDelta(query);
			float	   *qn = xmalloc(sizeof(float) * dims);
			double		nn = 0;

			/* the reference works on the normalised query for cosine */
			for (int d = 0; d < dims; d++)
				nn += (double) q[d] * q[d];
			for (int d = 0; d < dims; d++)
				qn[d] = metric == VS_METRIC_COSINE && nn > 0 ? (float) (q[d] / sqrt(nn)) : q[d];

			for (int i = 0; i < n; i++)
			{
				const uint8_t *rec = block + (size_t) i * rs;
				double		bound,
							ref;
				float		got;

				if (residual && assign[i] != c)
					continue;
				decoded(p, rec, cent, xh);
				if (metric == VS_METRIC_COSINE)
				{
					double		xn = 0;

					for (int d = 0; d < dims; d++)
						xn += (double) x[(size_t) i * dims + d] * x[(size_t) i * dims + d];
					if (xn == 0)
						memset(xh, 0, sizeof(double) * dims);
				}
				ref = ref_code_dist(metric, qn, xh, dims, delta, rec, &bound);
				got = VsQuantDistance(query, rec);
				check(fabs(got - ref) <= bound,
					  "%s dims %d%s off %g q %d vec %d: got %.9g ref %.9g (diff %.3g > bound %.3g, delta %.3g)",
					  metric_names[metric], dims, residual ? " residual" : "", offset, j, i,
					  got, ref, fabs(got - ref), bound, delta);

				/*
				 * The check has teeth: move the code of the query's
				 * heaviest dimension one level (the stored V left as it
				 * was).  The estimate then moves by about 2 max|w|, more
				 * than the bound of L/2 * delta * dims = L/2 * max|w| *
				 * dims / W_max (W_max = 16383) when dims <= 128.
				 */
				if (metric == VS_METRIC_L2 && !residual && dims <= 128 && delta > 0 &&
					i < 8)
				{
					const float *lo = p->data;
					const float *step = p->data + dims;
					uint8_t    *bad = xmalloc_aligned(RSPACE(dims));
					double		maxw = -1;
					int			heavy = 0,
								c;
					float		gbad;
					double		bbad;

					for (int d = 0; d < dims; d++)
					{
						double		w = fabs(((double) q[d] - (lo[d] + LEVELS / 2.0 * step[d])) * step[d]);

						if (w > maxw)
						{
							maxw = w;
							heavy = d;
						}
					}
					memcpy(bad, rec, rs);
					c = CODE(rec, heavy);
					c = c < LEVELS ? c + 1 : c - 1;
					if (test_kind == VS_QUANT_SQ4)
						bad[HDR + heavy / 2] =
							(uint8_t) ((bad[HDR + heavy / 2] &
										(heavy % 2 ? 0x0F : 0xF0)) | (c << (4 * (heavy % 2))));
					else
						bad[HDR + heavy] = (uint8_t) c;
					gbad = VsQuantDistance(query, bad);
					(void) ref_code_dist(metric, qn, xh, dims, delta, rec, &bbad);
					check(fabs(gbad - ref) > bbad,
						  "dims %d q %d vec %d: a code one level off on dimension %d stays within the bound (diff %.3g, bound %.3g)",
						  dims, j, i, heavy, fabs(gbad - ref), bbad);
					free(bad);
				}
			}
			free(qn);
			free(buf);
		}
	}
	free(p);
	free(x);
	free(qs);
	free(cents);
	free(assign);
	free(block);
	free(xh);
}

/*
 * test_distances - distance_shape over dims, metrics, code forms, offsets.
 */
static void
test_distances(void)
{
	static const int dimlist[] = {1, 3, 16, 17, 64, 100, 128, 129, 784, 1536, 2000};

	group_begin("%s distances = double reference on decoded vectors within the derived bound, a code off by one level breaks it; %d dims x 3 metrics x global/residual x 2 offsets",
				KIND_NAME, (int) (sizeof(dimlist) / sizeof(dimlist[0])));
	rng_seed(31);
	for (size_t i = 0; i < sizeof(dimlist) / sizeof(dimlist[0]); i++)
		for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
			for (int r = 0; r < 2; r++)
			{
				distance_shape(dimlist[i], (VsMetric) m, r, 0.0);
				distance_shape(dimlist[i], (VsMetric) m, r, 40.0);
			}
	group_end();
}

/*
 * test_paths - one path against scalar, bit for bit, through every entry
 * point; the block is placed so that it ends at a PROT_NONE page.
 */
static void
test_paths(VsQuantPath path)
{
	static const int dimlist[] = {1, 7, 16, 17, 31, 32, 33, 48, 63, 64, 65, 80, 96, 100, 112,
	128, 129, 200, 784, 1000, 1536, 2000, 4000, 16000};
	size_t		page = (size_t) sysconf(_SC_PAGESIZE);

	group_begin("%s path %s = scalar bit for bit (one, block, ids, callback), no read past the block; %d dims x 3 metrics",
				KIND_NAME, VsQuantPathName(path), (int) (sizeof(dimlist) / sizeof(dimlist[0])));
	if (!VsQuantPathSupported(path))
	{
		group_skip("path not supported by this CPU");
		return;
	}
	rng_seed(41 + path);
	for (size_t di = 0; di < sizeof(dimlist) / sizeof(dimlist[0]); di++)
	{
		int			dims = dimlist[di];
		int			n = dims >= 4000 ? 20 : 64;
		const int	nq = 4;
		size_t		rs = RS(dims);
		size_t		bytes = (size_t) n * rs + (RSPACE(dims) - rs);
		size_t		maplen = ((bytes + page - 1) / page + 1) * page;
		char	   *map;
		uint8_t    *block;
		float	   *x = xmalloc(sizeof(float) * (size_t) n * dims);
		float	   *qs = xmalloc(sizeof(float) * (size_t) nq * dims);
		float	   *want = xmalloc(sizeof(float) * n);
		float	   *got = xmalloc(sizeof(float) * n);
		uint32_t   *ids = xmalloc(sizeof(uint32_t) * n);

		map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (map == MAP_FAILED || mprotect(map + maplen - page, page, PROT_NONE) != 0)
		{
			perror("mmap");
			exit(2);
		}
		/* records are 16-aligned in a segment; the block ends at the guard */
		block = (uint8_t *) map + (maplen - page - bytes);

		/* extreme data: codes at 0 and L and heavy weights */
		fill_clustered(x, n, dims, 3, 5.0, 0.0);
		fill_clustered(qs, nq, dims, 3, 20.0, 0.0);
		for (int d = 0; d < dims; d++)
			qs[d] = d % 2 ? 1e4f : -1e4f;
		for (int i = 0; i < n; i++)
			ids[i] = (uint32_t) ((i * 37 + 11) % n);

		for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
		{
			VsQuantParams *p = train(x, n, dims, (VsMetric) m, NULL, NULL, 0.05);

			for (int i = 0; i < n; i++)
				VsQuantEncode(p, x + (size_t) i * dims, NULL, block + (size_t) i * rs);
			for (int j = 0; j < nq; j++)
			{
				void	   *b1,
						   *b2;
				VsQuantQuery *ref = prepare(p, qs + (size_t) j * dims, NULL, VS_QUANT_PATH_SCALAR, &b1);
				VsQuantQuery *qq = prepare(p, qs + (size_t) j * dims, NULL, path, &b2);
				VsQuantScan scan = {qq, block};
				int			bad = 0;

				if (!check(ref != NULL && qq != NULL, "prepare returned NULL"))
					continue;
				check(VsQuantQueryDelta(ref) == VsQuantQueryDelta(qq), "delta differs");
				VsQuantDistances(ref, block, n, want);
				for (int i = 0; i < n; i++)
					bad += VsQuantDistance(ref, block + (size_t) i * rs) != want[i];
				check(bad == 0, "scalar: block and one-at-a-time differ (%d)", bad);

				VsQuantDistances(qq, block, n, got);
				bad = 0;
				for (int i = 0; i < n; i++)
					if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && bad++ == 0)
						check(0, "%s dims %d q %d vec %d: block %.9g, scalar %.9g",
							  metric_names[m], dims, j, i, got[i], want[i]);
				check(bad == 0, "block");

				VsQuantDistancesIds(qq, block, ids, n, got);
				bad = 0;
				for (int i = 0; i < n; i++)
					bad += memcmp(&got[i], &want[ids[i]], sizeof(float)) != 0;
				check(bad == 0, "%s dims %d q %d: ids differ (%d)", metric_names[m], dims, j, bad);

				bad = 0;
				for (int i = 0; i < n; i++)
				{
					float		a = VsQuantDistance(qq, block + (size_t) i * rs);
					float		b = VsQuantDistanceById(&scan, (uint32_t) i);

					bad += memcmp(&a, &want[i], sizeof(float)) != 0 ||
						memcmp(&b, &want[i], sizeof(float)) != 0;
				}
				check(bad == 0, "%s dims %d q %d: one/callback differ (%d)", metric_names[m], dims, j, bad);
				free(b1);
				free(b2);
			}
			free(p);
		}
		munmap(map, maplen);
		free(x);
		free(qs);
		free(want);
		free(got);
		free(ids);
	}

	/* an unsupported path gives NULL, and the buffer may be unaligned */
	{
		float		q[5] = {1, 2, 3, 4, 5};
		VsQuantParams *p = train(q, 1, 5, VS_METRIC_L2, NULL, NULL, 0);
		char	   *buf = xmalloc(VsQuantQuerySize(p) + 1);

		check(VsQuantPrepareQueryPath(p, q, NULL, VS_QUANT_NPATHS, buf) == NULL, "NPATHS accepted");
		check(VsQuantPrepareQueryPath(p, q, NULL, path, buf + 1) != NULL, "odd buffer");
		free(buf);
		free(p);
	}
	group_end();
}

/*
 * recall_rerank - mean recall@10 over the queries: rank every base vector
 * by code distance, rerank the best R exactly, compare with the exact top
 * 10 (a hit: exact distance <= the 10th exact distance).  "cents" and
 * "assign" for residual codes (each query prepared once per centroid).
 */
static double
recall_rerank(const VsQuantParams *p, const uint8_t *block, const float *x,
			  int n, const float *qs, int nq, int R, const float *cents,
			  const int32_t *assign, int k)
{
	const int	dims = (int) p->dims;
	const VsMetric metric = (VsMetric) p->metric;
	float	   *code = xmalloc(sizeof(float) * n);
	double	   *exact = xmalloc(sizeof(double) * n);
	int		   *order = xmalloc(sizeof(int) * n);
	double		total = 0;

	for (int j = 0; j < nq; j++)
	{
		const float *q = qs + (size_t) j * dims;
		double		kth,
					top[10];
		int			hits = 0;

		for (int c = 0; c < (cents ? k : 1); c++)
		{
			void	   *buf;
			VsQuantQuery *query = prepare(p, q, cents ? cents + (size_t) c * dims : NULL,
										  VsQuantActivePath, &buf);

			for (int i = 0; i < n; i++)
				if (!cents || assign[i] == c)
					code[i] = VsQuantDistance(query, block + (size_t) i * p->record_size);
			free(buf);
		}
		for (int i = 0; i < n; i++)
		{
			exact[i] = exact_dist(metric, q, x + (size_t) i * dims, dims);
			order[i] = i;
		}
		/* the exact 10th distance (selection by repeated minimum) */
		for (int t = 0; t < 10; t++)
			top[t] = INFINITY;
		for (int i = 0; i < n; i++)
		{
			double		v = exact[i];

			for (int t = 0; t < 10; t++)
				if (v < top[t])
				{
					double		s = top[t];

					top[t] = v;
					v = s;
				}
		}
		kth = top[9];
		/* the R best by code (partial selection sort is fine at this size) */
		for (int r = 0; r < R && r < n; r++)
		{
			int			best = r;

			for (int i = r + 1; i < n; i++)
				if (code[order[i]] < code[order[best]])
					best = i;
			{
				int			t = order[r];

				order[r] = order[best];
				order[best] = t;
			}
		}
		/* rerank: the 10 best of the R by exact distance */
		for (int t = 0; t < 10; t++)
		{
			int			best = t;

			for (int r = t + 1; r < R && r < n; r++)
				if (exact[order[r]] < exact[order[best]])
					best = r;
			{
				int			tmp = order[t];

				order[t] = order[best];
				order[best] = tmp;
			}
			if (exact[order[t]] <= kth)
				hits++;
		}
		total += hits / 10.0;
	}
	free(code);
	free(exact);
	free(order);
	return total / nq;
}

/*
 * test_ranking - recall after rerank on clustered data (vsquant.c header
 * has the real-data figures).
 */
static void
test_ranking(void)
{
	const int	n = 4000,
				nq = 50,
				dims = 96,
				k = 8;
	const double recall_min = test_kind == VS_QUANT_SQ4 ? RECALL_MIN_SQ4 : RECALL_MIN;

	group_begin("%s ranking: recall@10 after exact rerank of R=%d >= %.2f (synthetic clustered, 3 metrics x global/residual)",
				KIND_NAME, RECALL_R, recall_min);
	rng_seed(51);
	for (int m = VS_METRIC_L2; m <= VS_METRIC_COSINE; m++)
	{
		float	   *x = xmalloc(sizeof(float) * (size_t) n * dims);
		float	   *qs = xmalloc(sizeof(float) * (size_t) nq * dims);
		float	   *cents = xmalloc(sizeof(float) * (size_t) k * dims);
		int32_t    *assign = xmalloc(sizeof(int32_t) * n);
		uint8_t    *block;
		size_t		rs = RS(dims);

		/* 40 tight blobs, offset so that IP and cosine differ from L2 */
		fill_clustered(x, n, dims, 40, 4.0, 1.0);
		fill_clustered(qs, nq, dims, 40, 4.0, 1.0);
		/*
		 * residual mode: the first k vectors as (crude) centroids; unit
		 * length for cosine, as spherical k-means gives (the codes then
		 * hold x/|x| - centroid)
		 */
		for (int c = 0; c < k; c++)
		{
			double		nn = 0;

			for (int d = 0; d < dims; d++)
				nn += (double) x[(size_t) c * dims + d] * x[(size_t) c * dims + d];
			for (int d = 0; d < dims; d++)
				cents[(size_t) c * dims + d] = m == VS_METRIC_COSINE ?
					(float) (x[(size_t) c * dims + d] / sqrt(nn)) : x[(size_t) c * dims + d];
		}
		for (int i = 0; i < n; i++)
		{
			double		best = INFINITY;

			for (int c = 0; c < k; c++)
			{
				double		dd = exact_dist(m == VS_METRIC_COSINE ? VS_METRIC_COSINE : VS_METRIC_L2,
											x + (size_t) i * dims,
											cents + (size_t) c * dims, dims);

				if (dd < best)
				{
					best = dd;
					assign[i] = c;
				}
			}
		}
		block = xmalloc_aligned((size_t) n * rs);
		for (int r = 0; r < 2; r++)
		{
			VsQuantParams *p = train(x, n, dims, (VsMetric) m, r ? cents : NULL,
									 r ? assign : NULL, 0.0);
			double		rec10,
						rec;

			for (int i = 0; i < n; i++)
				VsQuantEncode(p, x + (size_t) i * dims, r ? cents + (size_t) assign[i] * dims : NULL,
							  block + (size_t) i * rs);
			rec10 = recall_rerank(p, block, x, n, qs, nq, 10, r ? cents : NULL, assign, k);
			rec = recall_rerank(p, block, x, n, qs, nq, RECALL_R, r ? cents : NULL, assign, k);
			check(rec >= recall_min, "%s %s: recall@10 with R=%d is %.3f",
				  metric_names[m], r ? "residual" : "global", RECALL_R, rec);
			check(rec >= rec10, "%s: rerank of 40 (%.3f) worse than of 10 (%.3f)",
				  metric_names[m], rec, rec10);
			/* the figures go on the group's line: R=10 / R=40 per form */
			snprintf(group_note + strlen(group_note), sizeof(group_note) - strlen(group_note),
					 "%s %s %s %.3f/%.3f", group_note[0] ? "," : "; recall",
					 metric_names[m], r ? "resid" : "global", rec10, rec);
			free(p);
		}
		free(x);
		free(qs);
		free(cents);
		free(assign);
		free(block);
	}
	group_end();
}

/*
 * test_edges - constant dimensions, tiny samples, far-away values, zero
 * vectors under cosine.
 */
static void
test_edges(void)
{
	const int	dims = 21;
	float		x[3][21];
	float		q[21];
	uint8_t    *rec = xmalloc_aligned(RSPACE(dims));
	void	   *buf;
	VsQuantQuery *query;
	VsQuantParams *p;

	group_begin("%s edge cases: constant dims, n = 1 and n = 0, far-out values, zero vectors under cosine",
				KIND_NAME);
	rng_seed(61);
	for (int i = 0; i < 3; i++)
		for (int d = 0; d < dims; d++)
			x[i][d] = d < 5 ? 7.25f : (float) rng_gauss();

	/* constant dims: step 0, code 0, decoded exactly, distance exact there */
	p = train(&x[0][0], 3, dims, VS_METRIC_L2, NULL, NULL, 0.0);
	for (int d = 0; d < 5; d++)
		check(p->data[dims + d] == 0.0f && p->data[d] == 7.25f, "dim %d: lo %g step %g",
			  d, p->data[d], p->data[dims + d]);
	memcpy(q, x[1], sizeof(q));
	q[0] = 100.0f;				/* a query off the constant */
	VsQuantEncode(p, x[1], NULL, rec);
	for (int d = 0; d < 5; d++)
		check(CODE(rec, d) == 0, "constant dim %d code %d", d, CODE(rec, d));
	for (int path = 0; path < VS_QUANT_NPATHS; path++)
	{
		if (!VsQuantPathSupported((VsQuantPath) path))
			continue;
		query = prepare(p, q, NULL, (VsQuantPath) path, &buf);
		/* x[1] is a training extreme: all other dims decode within step/2 */
		{
			double		dist = VsQuantDistance(query, rec);
			double		want = (100.0 - 7.25) * (100.0 - 7.25);

			check(fabs(dist - want) <= 1e-3 * want, "constant dim distance %g, want %g",
				  dist, want);
		}
		free(buf);
	}
	free(p);

	/* n = 1: every dim constant; that vector round-trips, others clip */
	p = train(&x[2][0], 1, dims, VS_METRIC_L2, NULL, NULL, 0.001);
	check(VsQuantValidate(p, p->size) == NULL, "n=1 invalid");
	VsQuantEncode(p, x[2], NULL, rec);
	query = prepare(p, x[2], NULL, VsQuantActivePath, &buf);
	check(VsQuantDistance(query, rec) == 0.0f, "n=1: self distance %g", VsQuantDistance(query, rec));
	check(VsQuantQueryDelta(query) == 0.0, "n=1: delta %g", VsQuantQueryDelta(query));
	free(buf);
	query = prepare(p, x[0], NULL, VsQuantActivePath, &buf);
	check(fabs(VsQuantDistance(query, rec) - exact_dist(VS_METRIC_L2, x[0], x[2], dims)) <=
		  1e-5 * exact_dist(VS_METRIC_L2, x[0], x[2], dims), "n=1: distance to the one vector");
	free(buf);
	free(p);

	/* n = 0: valid, all constant 0 */
	p = train(NULL, 0, dims, VS_METRIC_IP, NULL, NULL, 0.0);
	check(VsQuantValidate(p, p->size) == NULL && p->nsamples == 0, "n=0 invalid");
	for (int d = 0; d < dims; d++)
		check(p->data[d] == 0 && p->data[dims + d] == 0, "n=0 dim %d", d);
	free(p);

	/* far outside the range: clipped codes, finite distances on all paths */
	{
		float		big[21],
					small[21];

		p = train(&x[0][0], 3, dims, VS_METRIC_L2, NULL, NULL, 0.0);
		for (int d = 0; d < dims; d++)
		{
			big[d] = 3e38f;
			small[d] = -3e38f;
		}
		VsQuantEncode(p, big, NULL, rec);
		for (int d = 5; d < dims; d++)
			check(CODE(rec, d) == LEVELS, "+3e38 dim %d code %d", d, CODE(rec, d));
		VsQuantEncode(p, small, NULL, rec);
		for (int d = 5; d < dims; d++)
			check(CODE(rec, d) == 0, "-3e38 dim %d code %d", d, CODE(rec, d));
		for (int path = 0; path < VS_QUANT_NPATHS; path++)
		{
			if (!VsQuantPathSupported((VsQuantPath) path))
				continue;
			query = prepare(p, big, NULL, (VsQuantPath) path, &buf);
			check(VsQuantDistance(query, rec) > 1e30f, "far query: %g", VsQuantDistance(query, rec));
			free(buf);
		}
		free(p);
	}

	/* cosine: a zero base vector and a zero query both give 1 */
	{
		float		zero[21] = {0};
		float		xs[4][21];

		for (int i = 0; i < 4; i++)
			for (int d = 0; d < dims; d++)
				xs[i][d] = i == 3 ? 0.0f : (float) rng_gauss();
		p = train(&xs[0][0], 4, dims, VS_METRIC_COSINE, NULL, NULL, 0.0);
		check(p->nsamples == 3, "zero vector not left out of cosine training (%u)", p->nsamples);
		VsQuantEncode(p, zero, NULL, rec);
		{
			float		aux;

			memcpy(&aux, rec, sizeof(aux));
			check(aux == 0.0f, "zero vector aux %g", aux);
		}
		for (int path = 0; path < VS_QUANT_NPATHS; path++)
		{
			if (!VsQuantPathSupported((VsQuantPath) path))
				continue;
			query = prepare(p, xs[0], NULL, (VsQuantPath) path, &buf);
			check(VsQuantDistance(query, rec) == 1.0f, "zero base: %g", VsQuantDistance(query, rec));
			free(buf);
			query = prepare(p, zero, NULL, (VsQuantPath) path, &buf);
			VsQuantEncode(p, xs[1], NULL, rec);
			check(VsQuantDistance(query, rec) == 1.0f, "zero query: %g", VsQuantDistance(query, rec));
			VsQuantEncode(p, zero, NULL, rec);
			free(buf);
		}
		/* scaling a vector changes nothing under cosine */
		{
			uint8_t    *rec2 = xmalloc_aligned(RSPACE(dims));
			float		scaled[21];

			for (int d = 0; d < dims; d++)
				scaled[d] = xs[1][d] * 1024.0f;
			VsQuantEncode(p, xs[1], NULL, rec);
			VsQuantEncode(p, scaled, NULL, rec2);
			check(memcmp(rec, rec2, RS(dims)) == 0, "cosine code depends on length");
			free(rec2);
		}
		free(p);
	}
	free(rec);
	group_end();
}

/*
 * test_build_clip - the clip an index build uses (VsQuantBuildClip): SQ4
 * under L2 and cosine only, and on Gaussian data it must lower SQ4's
 * squared reconstruction error against min/max ranges (its reason to
 * exist: a clip that made codes worse fails here).
 */
static void
test_build_clip(void)
{
	const int	n = 20000,
				dims = 16;
	float	   *x = xmalloc(sizeof(float) * (size_t) n * dims);
	double		err[2] = {0, 0};
	int			saved_kind = test_kind;

	group_begin("build clip: SQ4 under L2 and cosine only; lowers SQ4's error on Gaussian data");
	check(VsQuantBuildClip(VS_QUANT_SQ4, VS_METRIC_L2) == VS_QUANT_SQ4_CLIP &&
		  VsQuantBuildClip(VS_QUANT_SQ4, VS_METRIC_COSINE) == VS_QUANT_SQ4_CLIP &&
		  VS_QUANT_SQ4_CLIP > 0 && VS_QUANT_SQ4_CLIP <= VS_QUANT_MAX_CLIP,
		  "SQ4 under L2 and cosine clips %g", VS_QUANT_SQ4_CLIP);
	check(VsQuantBuildClip(VS_QUANT_SQ4, VS_METRIC_IP) == 0.0 &&
		  VsQuantBuildClip(VS_QUANT_SQ8, VS_METRIC_L2) == 0.0 &&
		  VsQuantBuildClip(VS_QUANT_SQ8, VS_METRIC_COSINE) == 0.0 &&
		  VsQuantBuildClip(VS_QUANT_SQ8, VS_METRIC_IP) == 0.0,
		  "inner product and SQ8 keep min/max");

	rng_seed(29);
	for (int i = 0; i < n * dims; i++)
		x[i] = (float) (rng_gauss() * (1 + i % dims));
	test_kind = VS_QUANT_SQ4;
	for (int c = 0; c < 2; c++)
	{
		VsQuantParams *p = train(x, n, dims, VS_METRIC_L2, NULL, NULL,
								 c == 0 ? 0.0 : VsQuantBuildClip(VS_QUANT_SQ4, VS_METRIC_L2));
		uint8_t    *rec = xmalloc(RSPACE(dims));
		double		in[16],
					out[16];

		for (int i = 0; i < n; i++)
		{
			VsQuantEncode(p, x + (size_t) i * dims, NULL, rec);
			input_vec(p, x + (size_t) i * dims, NULL, in);
			decoded(p, rec, NULL, out);
			for (int d = 0; d < dims; d++)
				err[c] += (in[d] - out[d]) * (in[d] - out[d]);
		}
		free(rec);
		free(p);
	}
	test_kind = saved_kind;
	check(err[1] < 0.75 * err[0],
		  "SQ4 squared error with the build's clip %.4g against %.4g with min/max",
		  err[1] / n, err[0] / n);
	free(x);
	group_end();
}

/*
 * test_validation - corrupted structs are rejected, a good one passes.
 */
static void
test_validation(void)
{
	const int	dims = 40;
	float	   *x = xmalloc(sizeof(float) * 100 * dims);
	VsQuantParams *good;
	VsQuantParams *p;
	size_t		size;
	int			missed = 0;

	group_begin("%s validation: every bit flip, truncation and bad field rejected", KIND_NAME);
	rng_seed(71);
	for (int i = 0; i < 100 * dims; i++)
		x[i] = (float) rng_gauss();
	good = train(x, 100, dims, VS_METRIC_COSINE, NULL, NULL, 0.001);
	size = good->size;
	p = xmalloc(size);
	check(VsQuantValidate(good, size) == NULL, "fresh params rejected: %s", VsQuantValidate(good, size));
	check(VsQuantValidate(good, size + 100) == NULL, "extra room rejected");

	/* every single-bit flip anywhere in the struct */
	for (size_t byte = 0; byte < size; byte++)
		for (int bit = 0; bit < 8; bit++)
		{
			memcpy(p, good, size);
			((uint8_t *) p)[byte] ^= (uint8_t) (1 << bit);
			if (VsQuantValidate(p, size) == NULL)
				missed++;
		}
	check(missed == 0, "%d of %zu bit flips accepted", missed, size * 8);

	/* truncation */
	check(VsQuantValidate(good, size - 1) != NULL, "truncated by 1 accepted");
	check(VsQuantValidate(good, 10) != NULL, "10 bytes accepted");
	check(VsQuantValidate(NULL, size) != NULL, "NULL accepted");

	/* bad fields with a recomputed CRC: the structural checks alone */
#define RESEALED_BAD(stmt, what) \
	do { \
		memcpy(p, good, size); \
		stmt; \
		VsQuantSeal(p); \
		check(VsQuantValidate(p, size) != NULL, "%s accepted", what); \
	} while (0)
	p->size = (uint32_t) size;
	RESEALED_BAD(p->magic ^= 1, "magic");
	RESEALED_BAD(p->version = 2, "version 2");
	RESEALED_BAD(p->kind = 3, "kind 3");
	RESEALED_BAD(p->kind = test_kind == VS_QUANT_SQ4 ? VS_QUANT_SQ8 : VS_QUANT_SQ4,
				 "the other kind (its record size differs)");
	RESEALED_BAD(p->dims = dims - 1, "dims");
	RESEALED_BAD(p->metric = 0, "metric 0");
	RESEALED_BAD(p->flags = 0x10, "unknown flag");
	RESEALED_BAD(p->flags ^= VS_QUANT_PACKED, "the other record layout (its record size differs)");
	RESEALED_BAD(p->record_size += 16, "record size");
	RESEALED_BAD(p->clip_ppm = 300000, "clip 0.3");
	RESEALED_BAD(p->reserved[3] = 1, "reserved");
	RESEALED_BAD(p->data[3] = NAN, "NaN lo");
	RESEALED_BAD(p->data[3] = INFINITY, "infinite lo");
	RESEALED_BAD(p->data[dims + 3] = -1.0f, "negative step");
	RESEALED_BAD(p->data[dims + 3] = NAN, "NaN step");
	RESEALED_BAD(p->data[dims + 3] = 1e-40f, "denormal step");
	RESEALED_BAD((p->data[3] = 3e38f, p->data[dims + 3] = 1e37f), "range end beyond FLT_MAX");
	/* a resealed change to a good value is accepted (the CRC is the guard) */
	memcpy(p, good, size);
	p->data[3] += 1.0f;
	check(VsQuantValidate(p, size) != NULL, "changed lo accepted without resealing");
	VsQuantSeal(p);
	check(VsQuantValidate(p, size) == NULL, "resealed good change rejected");
	free(p);
	free(good);
	free(x);
	group_end();
}

/*
 * main - every group; see the file header.
 */
int
main(void)
{
	VsDistanceInit();
	VsQuantInit();

	test_layout();
	test_build_clip();
	for (int k = 0; k < 4; k++)
	{
		test_kind = k % 2 == 0 ? VS_QUANT_SQ8 : VS_QUANT_SQ4;
		test_packed = k < 2;
		test_training();
		test_encode();
		test_distances();
		for (int p = VS_QUANT_PATH_SCALAR + 1; p < VS_QUANT_NPATHS; p++)
			test_paths((VsQuantPath) p);
		test_ranking();
		test_edges();
		test_validation();
	}

	printf("%d passed, %d failed\n", groups_passed, groups_failed);
	return groups_failed > 0 ? 1 : 0;
}
