/*-------------------------------------------------------------------------
 *
 * fvecs2pg.c
 *	  Convert texmex .fvecs/.ivecs files to PostgreSQL text COPY rows.
 *
 * A stand-alone loader for the demo and the tests: it never links the
 * server.  Output goes to stdout, ready for
 *
 *	  fvecs2pg base.fvecs | psql -c "\copy items (id, embedding) from stdin"
 *
 * Modes (see usage() for the exact options):
 *
 *	  FILE.fvecs          id<TAB>[v1,v2,...]      one row per vector
 *	  --ivecs FILE        id<TAB>{i1,i2,...}      an int[] literal per row
 *	  --random N DIM SEED id<TAB>[v1,...]         reproducible synthetic data
 *	  --text N DIM SEED   id<TAB>[v1,...]         synthetic text embeddings
 *	  --knn K BASE QUERY  id<TAB>{i1,...}         exact L2 ground truth
 *
 * The texmex layout is, per record, an int32 little-endian dimension d
 * followed by d little-endian float32 (fvecs) or int32 (ivecs) values.
 * Every record of a file must have the same dimension.  Ids are 0-based
 * row numbers of the file (an --offset does not renumber them).  Floats are
 * printed with "%.9g", which round-trips every float32 exactly.
 *
 * IDENTIFICATION
 *	  tools/fvecs2pg.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PostgreSQL's vector type allows at most 16000 dimensions; be generous. */
#define MAX_DIM			(1 << 20)

/* Synthetic data: a mixture of this many gaussian clusters. */
#define RANDOM_CLUSTERS	16
#define CLUSTER_SPREAD	0.35

/*
 * Synthetic text embeddings (--text): documents of a Zipf vocabulary mixing
 * a few topics, as tf-idf vectors, randomly projected to DIM dimensions and
 * normalised (see mode_text).
 */
#define TEXT_VOCABULARY	30000
#define TEXT_TOPICS		200
#define TEXT_TOPIC_WORDS 300

typedef enum
{
	MODE_FVECS,
	MODE_IVECS,
	MODE_RANDOM,
	MODE_TEXT,
	MODE_KNN
} Mode;

/* One open texmex file and where we are in it. */
typedef struct VecFile
{
	const char *path;
	FILE	   *fp;
	long		dim;			/* dimension of row 0, or -1 before it */
	long		row;			/* index of the next record */
} VecFile;

static const char *progname = "fvecs2pg";

#if defined(__GNUC__) || defined(__clang__)
#define DIE_ATTRS __attribute__((noreturn, format(printf, 1, 2)))
#else
#define DIE_ATTRS
#endif

static void die(const char *fmt,...) DIE_ATTRS;

/*
 * die - print "fvecs2pg: <message>" to stderr and exit with status 1.
 */
static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/*
 * xmalloc - malloc that dies instead of returning NULL.
 */
static void *
xmalloc(size_t size)
{
	void	   *p = malloc(size ? size : 1);

	if (p == NULL)
		die("out of memory (%zu bytes)", size);
	return p;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage:\n"
			"  %s [--offset N] [--limit N] FILE.fvecs\n"
			"      vectors as COPY rows: id<TAB>[v1,v2,...]\n"
			"  %s --ivecs [--k K] [--offset N] [--limit N] FILE.ivecs\n"
			"      integer lists (ground truth) as COPY rows: id<TAB>{i1,i2,...}\n"
			"  %s --random N DIM SEED [--fvecs]\n"
			"      N reproducible synthetic vectors (a mixture of %d gaussian\n"
			"      clusters shared by every SEED of the same DIM), as COPY rows,\n"
			"      or as a binary .fvecs file with --fvecs\n"
			"  %s --text N DIM SEED [--fvecs]\n"
			"      N synthetic text embeddings (random projections of tf-idf\n"
			"      vectors of documents over one vocabulary and set of topics\n"
			"      for every SEED of the same DIM), unit length, for cosine\n"
			"  %s --knn K BASE.fvecs [--offset N] [--limit N] QUERY.fvecs\n"
			"      exact L2 K nearest BASE rows of each QUERY row (ties broken\n"
			"      by lower id), as COPY rows like --ivecs\n"
			"\n"
			"FILE may be - for standard input.  Ids are 0-based row numbers of\n"
			"the input file; --offset skips rows without renumbering them.\n",
			progname, progname, progname, RANDOM_CLUSTERS, progname, progname);
}

/*
 * parse_long - parse a non-negative decimal option value or die naming it.
 */
static long
parse_long(const char *opt, const char *s, long min)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min)
		die("invalid value \"%s\" for %s (expected an integer >= %ld)",
			s, opt, min);
	return v;
}

/*
 * le32 - decode a little-endian 32-bit word, whatever the host order.
 */
static uint32_t
le32(const unsigned char *b)
{
	return (uint32_t) b[0] | ((uint32_t) b[1] << 8) |
		((uint32_t) b[2] << 16) | ((uint32_t) b[3] << 24);
}

/*
 * put_le32 - encode a 32-bit word little-endian.
 */
static void
put_le32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char) v;
	b[1] = (unsigned char) (v >> 8);
	b[2] = (unsigned char) (v >> 16);
	b[3] = (unsigned char) (v >> 24);
}

/*
 * vf_open - open a texmex file ("-" is stdin) for reading.
 */
static void
vf_open(VecFile *vf, const char *path)
{
	vf->path = path;
	vf->dim = -1;
	vf->row = 0;
	if (strcmp(path, "-") == 0)
	{
		vf->path = "(stdin)";
		vf->fp = stdin;
	}
	else if ((vf->fp = fopen(path, "rb")) == NULL)
		die("could not open \"%s\": %s", path, strerror(errno));
}

static void
vf_close(VecFile *vf)
{
	if (vf->fp != stdin)
		fclose(vf->fp);
	vf->fp = NULL;
}

/*
 * vf_read - read the next record into *buf as raw 32-bit words.
 *
 * *buf is (re)allocated by the caller's first call and kept for the next;
 * its capacity is the dimension of row 0.  Returns the record's dimension,
 * or 0 at a clean end of file (between records).  A truncated record, an
 * impossible dimension or one that differs from row 0 is a fatal error.
 */
static long
vf_read(VecFile *vf, uint32_t **buf)
{
	unsigned char hdr[4];
	size_t		got;
	long		dim;
	unsigned char *raw;
	long		i;

	got = fread(hdr, 1, sizeof(hdr), vf->fp);
	if (got == 0)
	{
		if (ferror(vf->fp))
			die("could not read \"%s\": %s", vf->path, strerror(errno));
		return 0;
	}
	if (got < sizeof(hdr))
		die("\"%s\": truncated record header at row %ld (%zu of 4 bytes)",
			vf->path, vf->row, got);

	dim = (long) (int32_t) le32(hdr);
	if (dim <= 0 || dim > MAX_DIM)
		die("\"%s\": row %ld has invalid dimension %ld (corrupt file, or not fvecs/ivecs?)",
			vf->path, vf->row, dim);
	if (vf->dim < 0)
	{
		vf->dim = dim;
		*buf = xmalloc((size_t) dim * sizeof(uint32_t));
	}
	else if (dim != vf->dim)
		die("\"%s\": row %ld has dimension %ld but row 0 has %ld (corrupt file?)",
			vf->path, vf->row, dim, vf->dim);

	/* Read the body into the word buffer, then decode it in place. */
	raw = (unsigned char *) *buf;
	got = fread(raw, 4, (size_t) dim, vf->fp);
	if (got < (size_t) dim)
	{
		if (ferror(vf->fp))
			die("could not read \"%s\": %s", vf->path, strerror(errno));
		die("\"%s\": truncated record at row %ld: %zu of %ld values present",
			vf->path, vf->row, got, dim);
	}
	for (i = 0; i < dim; i++)
		(*buf)[i] = le32(raw + 4 * i);	/* word i only overlaps its own bytes */
	vf->row++;
	return dim;
}

/*
 * word_to_float - reinterpret a decoded 32-bit word as float32.
 */
static float
word_to_float(uint32_t w)
{
	float		f;

	memcpy(&f, &w, sizeof(f));
	return f;
}

/*
 * print_vector_row - write one "id<TAB>[v1,...]" line; dies on NaN/Inf,
 * which the vector type rejects anyway, with a message naming the row.
 */
static void
print_vector_row(long id, const float *v, long dim, const char *what)
{
	long		i;

	printf("%ld\t[", id);
	for (i = 0; i < dim; i++)
	{
		if (!isfinite(v[i]))
			die("%s: row %ld component %ld is not finite (%g)",
				what, id, i, (double) v[i]);
		printf(i ? ",%.9g" : "%.9g", (double) v[i]);
	}
	fputs("]\n", stdout);
}

/*
 * print_int_row - write one "id<TAB>{i1,...}" line (an int[] literal).
 */
static void
print_int_row(long id, const int32_t *v, long n)
{
	long		i;

	printf("%ld\t{", id);
	for (i = 0; i < n; i++)
		printf(i ? ",%ld" : "%ld", (long) v[i]);
	fputs("}\n", stdout);
}

/*
 * load_fvecs - read a whole .fvecs file into one float array.
 *
 * Returns the row count; *dim_out gets the dimension and *data_out a
 * malloc'd array of rows * dim floats.  An empty file is an error.
 */
static long
load_fvecs(const char *path, long *dim_out, float **data_out)
{
	VecFile		vf;
	uint32_t   *buf = NULL;
	float	   *data = NULL;
	long		cap = 0;
	long		n = 0;
	long		dim;

	vf_open(&vf, path);
	while ((dim = vf_read(&vf, &buf)) > 0)
	{
		long		i;

		if (n == cap)
		{
			cap = cap ? cap * 2 : 1024;
			data = realloc(data, (size_t) cap * (size_t) dim * sizeof(float));
			if (data == NULL)
				die("out of memory reading \"%s\" (%ld rows of %ld)",
					vf.path, cap, dim);
		}
		for (i = 0; i < dim; i++)
			data[(size_t) n * dim + i] = word_to_float(buf[i]);
		n++;
	}
	if (n == 0)
		die("\"%s\": file is empty", vf.path);
	vf_close(&vf);
	free(buf);
	*dim_out = vf.dim;
	*data_out = data;
	return n;
}

/*
 * xorshift64* - a tiny, fast PRNG whose output depends only on the seed.
 */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t	x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * UINT64_C(2685821657736338717);
}

/*
 * rng_seed - scramble a user seed (splitmix64) so that 0, 1, 2 ... give
 * unrelated streams and the state is never zero.
 */
static uint64_t
rng_seed(uint64_t seed)
{
	uint64_t	z = seed + UINT64_C(0x9E3779B97F4A7C15);

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	z ^= z >> 31;
	return z ? z : UINT64_C(0x2545F4914F6CDD1D);
}

/* A uniform double in (0, 1), never exactly 0 (log() below). */
static double
rng_uniform(uint64_t *s)
{
	return ((double) (rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* A standard normal deviate (Box-Muller; the second value is discarded). */
static double
rng_gauss(uint64_t *s)
{
	double		u1 = rng_uniform(s);
	double		u2 = rng_uniform(s);

	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/*
 * emit_vector - row "i" of a synthetic set: a COPY row, or with "binary" a
 * texmex record ("raw" has room for dim + 1 words).
 */
static void
emit_vector(long i, const float *v, long dim, int binary, unsigned char *raw, const char *what)
{
	if (binary)
	{
		put_le32(raw, (uint32_t) dim);
		for (long j = 0; j < dim; j++)
		{
			uint32_t	w;

			memcpy(&w, &v[j], sizeof(w));
			put_le32(raw + 4 * (j + 1), w);
		}
		if (fwrite(raw, 4, (size_t) dim + 1, stdout) != (size_t) dim + 1)
			die("could not write to standard output: %s", strerror(errno));
	}
	else
		print_vector_row(i, v, dim, what);
}

/*
 * mode_random - N synthetic vectors of DIM dimensions.
 *
 * The cluster centres depend only on DIM, so a base set and a query set
 * made with different seeds come from the same distribution; each point is
 * a random centre plus gaussian noise from the SEED stream.  Values are
 * rounded to float32 before printing, so text and binary output agree.
 */
static void
mode_random(long n, long dim, uint64_t seed, int binary)
{
	float	   *centres = xmalloc((size_t) RANDOM_CLUSTERS * dim * sizeof(float));
	float	   *v = xmalloc((size_t) dim * sizeof(float));
	unsigned char *raw = xmalloc((size_t) (dim + 1) * 4);
	uint64_t	cs = rng_seed(UINT64_C(0x5EC7) ^ (uint64_t) dim);
	uint64_t	ps = rng_seed(seed);
	long		i,
				j;

	for (i = 0; i < (long) RANDOM_CLUSTERS * dim; i++)
		centres[i] = (float) rng_gauss(&cs);

	for (i = 0; i < n; i++)
	{
		long		c = (long) (rng_next(&ps) % RANDOM_CLUSTERS);

		for (j = 0; j < dim; j++)
			v[j] = (float) (centres[c * dim + j] + CLUSTER_SPREAD * rng_gauss(&ps));
		emit_vector(i, v, dim, binary, raw, "--random");
	}
	free(raw);
	free(v);
	free(centres);
}

/*
 * mode_text - N synthetic text embeddings of DIM dimensions: data unlike
 * the gaussian mixture of --random, with the low contrast of real sentence
 * embeddings (most pairs of documents share common words, so their cosines
 * crowd together).
 *
 * The model depends only on DIM (so base and query sets made with
 * different seeds match): a vocabulary of TEXT_VOCABULARY words with
 * Zipf(1.1) frequencies and idf = log(1 / frequency), TEXT_TOPICS topics of
 * TEXT_TOPIC_WORDS words each, and a gaussian projection of every word to
 * DIM dimensions.  A document of the SEED stream draws 1-3 topics and
 * 20-160 words, each from one of its topics with probability 0.6, else from
 * the whole vocabulary by frequency; its vector is the sum of its words'
 * projections weighted by tf-idf (sqrt of the count, times idf),
 * normalised to unit length.
 */
static void
mode_text(long n, long dim, uint64_t seed, int binary)
{
	double	   *cdf = xmalloc(sizeof(double) * TEXT_VOCABULARY);
	double	   *idf = xmalloc(sizeof(double) * TEXT_VOCABULARY);
	int		   *topics = xmalloc(sizeof(int) * TEXT_TOPICS * TEXT_TOPIC_WORDS);
	float	   *proj = xmalloc(sizeof(float) * (size_t) TEXT_VOCABULARY * dim);
	int		   *counts = xmalloc(sizeof(int) * TEXT_VOCABULARY);
	int		   *words = xmalloc(sizeof(int) * 160);
	double	   *acc = xmalloc(sizeof(double) * dim);
	float	   *v = xmalloc((size_t) dim * sizeof(float));
	unsigned char *raw = xmalloc((size_t) (dim + 1) * 4);
	uint64_t	ms = rng_seed(UINT64_C(0x7E47) ^ (uint64_t) dim);
	uint64_t	ds = rng_seed(seed);
	double		total = 0.0;
	long		i;

	for (i = 0; i < TEXT_VOCABULARY; i++)
	{
		double		f = pow((double) (i + 1), -1.1);

		total += f;
		cdf[i] = total;
	}
	for (i = 0; i < TEXT_VOCABULARY; i++)
	{
		idf[i] = log(total / (cdf[i] - (i > 0 ? cdf[i - 1] : 0.0)));
		cdf[i] /= total;
	}
	for (i = 0; i < (long) TEXT_TOPICS * TEXT_TOPIC_WORDS; i++)
		topics[i] = (int) (rng_next(&ms) % TEXT_VOCABULARY);
	for (i = 0; i < (long) TEXT_VOCABULARY * dim; i++)
		proj[i] = (float) rng_gauss(&ms);
	memset(counts, 0, sizeof(int) * TEXT_VOCABULARY);

	for (i = 0; i < n; i++)
	{
		int			ntopics = 1 + (int) (rng_next(&ds) % 3);
		int			mine[3];
		int			len = 20 + (int) (rng_next(&ds) % 141);
		int			nwords = 0;
		double		norm = 0.0;
		long		j;

		for (j = 0; j < ntopics; j++)
			mine[j] = (int) (rng_next(&ds) % TEXT_TOPICS);
		for (j = 0; j < len; j++)
		{
			int			w;

			if (rng_uniform(&ds) < 0.6)
				w = topics[mine[rng_next(&ds) % ntopics] * TEXT_TOPIC_WORDS +
						   (int) (rng_next(&ds) % TEXT_TOPIC_WORDS)];
			else
			{
				double		u = rng_uniform(&ds);
				long		lo = 0,
							hi = TEXT_VOCABULARY - 1;

				while (lo < hi)
				{
					long		mid = (lo + hi) / 2;

					if (cdf[mid] < u)
						lo = mid + 1;
					else
						hi = mid;
				}
				w = (int) lo;
			}
			if (counts[w]++ == 0)
				words[nwords++] = w;
		}
		memset(acc, 0, sizeof(double) * dim);
		for (j = 0; j < nwords; j++)
		{
			int			w = words[j];
			double		weight = sqrt((double) counts[w]) * idf[w];
			const float *pw = proj + (size_t) w * dim;

			for (long d = 0; d < dim; d++)
				acc[d] += weight * pw[d];
			counts[w] = 0;
		}
		for (j = 0; j < dim; j++)
			norm += acc[j] * acc[j];
		norm = norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
		for (j = 0; j < dim; j++)
			v[j] = (float) (acc[j] * norm);
		emit_vector(i, v, dim, binary, raw, "--text");
	}
	free(raw);
	free(v);
	free(acc);
	free(words);
	free(counts);
	free(proj);
	free(topics);
	free(idf);
	free(cdf);
}

/* A candidate neighbour: squared distance, then id for deterministic ties. */
typedef struct Neighbour
{
	double		dist;
	long		id;
} Neighbour;

/* Is a strictly worse than b (farther, or as far with a higher id)? */
static int
worse(const Neighbour *a, const Neighbour *b)
{
	return a->dist > b->dist || (a->dist == b->dist && a->id > b->id);
}

/*
 * mode_knn - exact L2 ground truth: the K nearest base rows of each query
 * row, nearest first, as "qid<TAB>{id,...}", like --ivecs on a texmex
 * groundtruth file.  Distances are accumulated in double precision.
 */
static void
mode_knn(long k, const char *basepath, const char *querypath,
		 long offset, long limit)
{
	float	   *base;
	long		bdim;
	long		nbase = load_fvecs(basepath, &bdim, &base);
	VecFile		qf;
	uint32_t   *qbuf = NULL;
	float	   *q = NULL;
	Neighbour  *top;
	int32_t    *ids;
	long		qdim;
	long		emitted = 0;

	if (k > nbase)
		die("--knn %ld exceeds the %ld rows of \"%s\"", k, nbase, basepath);
	top = xmalloc((size_t) k * sizeof(Neighbour));
	ids = xmalloc((size_t) k * sizeof(int32_t));

	vf_open(&qf, querypath);
	while ((limit < 0 || emitted < limit) && (qdim = vf_read(&qf, &qbuf)) > 0)
	{
		long		qid = qf.row - 1;
		long		filled = 0;
		long		i,
					j;

		if (qdim != bdim)
			die("\"%s\" has dimension %ld but \"%s\" has %ld",
				qf.path, qdim, basepath, bdim);
		if (qid < offset)
			continue;
		if (q == NULL)
			q = xmalloc((size_t) qdim * sizeof(float));
		for (j = 0; j < qdim; j++)
			q[j] = word_to_float(qbuf[j]);

		/* Keep the best k in a sorted array: k is small, this is plenty. */
		for (i = 0; i < nbase; i++)
		{
			const float *b = base + (size_t) i * bdim;
			Neighbour	cand;
			double		d = 0.0;

			for (j = 0; j < bdim; j++)
			{
				double		diff = (double) b[j] - (double) q[j];

				d += diff * diff;
			}
			cand.dist = d;
			cand.id = i;
			if (filled == k && !worse(&top[k - 1], &cand))
				continue;
			j = filled < k ? filled++ : k - 1;
			while (j > 0 && worse(&top[j - 1], &cand))
			{
				top[j] = top[j - 1];
				j--;
			}
			top[j] = cand;
		}
		for (i = 0; i < k; i++)
			ids[i] = (int32_t) top[i].id;
		print_int_row(qid, ids, k);
		emitted++;
	}
	vf_close(&qf);
	free(q);
	free(qbuf);
	free(ids);
	free(top);
	free(base);
}

/*
 * mode_convert - stream an .fvecs or .ivecs file to COPY rows.
 */
static void
mode_convert(const char *path, int ivecs, long k, long offset, long limit)
{
	VecFile		vf;
	uint32_t   *buf = NULL;
	float	   *f = NULL;
	long		emitted = 0;
	long		dim;

	vf_open(&vf, path);
	while ((limit < 0 || emitted < limit) && (dim = vf_read(&vf, &buf)) > 0)
	{
		long		id = vf.row - 1;
		long		i;

		if (id < offset)
			continue;
		if (ivecs)
		{
			if (k > dim)
				die("\"%s\": --k %ld exceeds the row dimension %ld",
					vf.path, k, dim);
			/* The words are already int32 bit patterns. */
			print_int_row(id, (const int32_t *) buf, k > 0 ? k : dim);
		}
		else
		{
			if (f == NULL)
				f = xmalloc((size_t) dim * sizeof(float));
			for (i = 0; i < dim; i++)
				f[i] = word_to_float(buf[i]);
			print_vector_row(id, f, dim, vf.path);
		}
		emitted++;
	}
	if (vf.row == 0 && limit != 0)
		die("\"%s\": file is empty", vf.path);
	if (offset > 0 && vf.row <= offset && emitted == 0)
		die("\"%s\": --offset %ld is past the last row (%ld rows)",
			vf.path, offset, vf.row);
	vf_close(&vf);
	free(f);
	free(buf);
}

int
main(int argc, char **argv)
{
	Mode		mode = MODE_FVECS;
	long		offset = 0;
	long		limit = -1;
	long		k = 0;
	long		rn = 0,
				rdim = 0;
	uint64_t	rseed = 0;
	int			binary = 0;
	const char *files[2] = {NULL, NULL};
	int			nfiles = 0;
	int			i;

	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];

		/* Options that take values check that the values are there. */
#define NEED(n) do { if (i + (n) >= argc) die("%s needs %d argument%s", a, (n), (n) > 1 ? "s" : ""); } while (0)
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		{
			usage(stdout);
			return 0;
		}
		else if (strcmp(a, "--offset") == 0)
		{
			NEED(1);
			offset = parse_long(a, argv[++i], 0);
		}
		else if (strcmp(a, "--limit") == 0)
		{
			NEED(1);
			limit = parse_long(a, argv[++i], 0);
		}
		else if (strcmp(a, "--k") == 0)
		{
			NEED(1);
			k = parse_long(a, argv[++i], 1);
		}
		else if (strcmp(a, "--ivecs") == 0)
			mode = MODE_IVECS;
		else if (strcmp(a, "--fvecs") == 0)
			binary = 1;
		else if (strcmp(a, "--random") == 0)
		{
			NEED(3);
			mode = MODE_RANDOM;
			rn = parse_long("--random N", argv[++i], 0);
			rdim = parse_long("--random DIM", argv[++i], 1);
			rseed = (uint64_t) parse_long("--random SEED", argv[++i], 0);
		}
		else if (strcmp(a, "--text") == 0)
		{
			NEED(3);
			mode = MODE_TEXT;
			rn = parse_long("--text N", argv[++i], 0);
			rdim = parse_long("--text DIM", argv[++i], 1);
			rseed = (uint64_t) parse_long("--text SEED", argv[++i], 0);
		}
		else if (strcmp(a, "--knn") == 0)
		{
			NEED(1);
			mode = MODE_KNN;
			k = parse_long(a, argv[++i], 1);
		}
		else if (a[0] == '-' && a[1] != '\0')
		{
			fprintf(stderr, "%s: unknown option \"%s\"\n", progname, a);
			usage(stderr);
			return 2;
		}
		else if (nfiles < 2)
			files[nfiles++] = a;
		else
			die("too many file arguments (\"%s\")", a);
#undef NEED
	}

	if (rdim > MAX_DIM)
		die("DIM %ld is larger than %d", rdim, MAX_DIM);
	if (binary && mode != MODE_RANDOM && mode != MODE_TEXT)
		die("--fvecs only applies to --random and --text");

	switch (mode)
	{
		case MODE_RANDOM:
			if (nfiles != 0)
				die("--random takes no file");
			mode_random(rn, rdim, rseed, binary);
			break;
		case MODE_TEXT:
			if (nfiles != 0)
				die("--text takes no file");
			if (rdim > 4096)
				die("--text DIM %ld is larger than 4096", rdim);
			mode_text(rn, rdim, rseed, binary);
			break;
		case MODE_KNN:
			if (nfiles != 2)
				die("--knn K needs BASE.fvecs and QUERY.fvecs");
			mode_knn(k, files[0], files[1], offset, limit);
			break;
		case MODE_FVECS:
		case MODE_IVECS:
			if (nfiles != 1)
			{
				usage(stderr);
				return 2;
			}
			if (mode == MODE_FVECS && k > 0)
				die("--k only applies to --ivecs");
			mode_convert(files[0], mode == MODE_IVECS, k, offset, limit);
			break;
	}

	if (fflush(stdout) != 0 || ferror(stdout))
		die("could not write to standard output: %s", strerror(errno));
	return 0;
}
