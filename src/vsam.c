/*-------------------------------------------------------------------------
 *
 * vsam.c
 *	  The vecstore access method handler, its reloptions, GUCs and build
 *	  phase names.
 *
 * IDENTIFICATION
 *	  src/vsam.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/amapi.h"
#include "access/reloptions.h"
#include "commands/progress.h"
#include "commands/vacuum.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "vsam.h"

int			vecstore_probes = VS_DEFAULT_PROBES;
int			vecstore_max_scan_tuples = VS_DEFAULT_MAX_SCAN_TUPLES;
int			vecstore_ef_search = VS_DEFAULT_EF_SEARCH;
int			vecstore_effort = VS_DEFAULT_EFFORT;
int			vecstore_rerank_window = VS_DEFAULT_RERANK_WINDOW;
bool		vecstore_debug_packed_codes = true;
int			vecstore_readahead = VS_READAHEAD_AUTO;
int			vecstore_direct_reads = VS_READAHEAD_AUTO;

static const struct config_enum_entry readahead_options[] = {
	{"auto", VS_READAHEAD_AUTO, false},
	{"on", VS_READAHEAD_ON, false},
	{"off", VS_READAHEAD_OFF, false},
	{"true", VS_READAHEAD_ON, true},
	{"false", VS_READAHEAD_OFF, true},
	{"yes", VS_READAHEAD_ON, true},
	{"no", VS_READAHEAD_OFF, true},
	{"1", VS_READAHEAD_ON, true},
	{"0", VS_READAHEAD_OFF, true},
	{NULL, 0, false}
};

static relopt_kind vs_relopt_kind;

static relopt_enum_elt_def quantizer_values[] = {
	{"sq8", VS_QUANTIZER_SQ8},
	{"sq4", VS_QUANTIZER_SQ4},
	{"none", VS_QUANTIZER_NONE},
	{(const char *) NULL}
};

/* the distance function of each operator class, to tell the metric */
extern Datum vs_l2_distance(PG_FUNCTION_ARGS);
extern Datum vs_vector_negative_inner_product(PG_FUNCTION_ARGS);
extern Datum vs_cosine_distance(PG_FUNCTION_ARGS);
extern Datum vs_l1_distance(PG_FUNCTION_ARGS);
extern Datum vs_halfvec_l2_distance(PG_FUNCTION_ARGS);
extern Datum vs_halfvec_negative_inner_product(PG_FUNCTION_ARGS);
extern Datum vs_halfvec_cosine_distance(PG_FUNCTION_ARGS);
extern Datum vs_halfvec_l1_distance(PG_FUNCTION_ARGS);
extern Datum vs_hamming_distance(PG_FUNCTION_ARGS);

/* each operator class: the C function behind its support function 1 */
typedef struct VsOpclassKind
{
	PGFunction	fn;
	VsMetric	metric;			/* what it orders by */
	int			elem;			/* how the index stores the column's
								 * elements: VS_ELEM_* */
} VsOpclassKind;

static const VsOpclassKind opclass_kinds[] = {
	{vs_l2_distance, VS_METRIC_L2, VS_ELEM_FLOAT4},
	{vs_vector_negative_inner_product, VS_METRIC_IP, VS_ELEM_FLOAT4},
	{vs_cosine_distance, VS_METRIC_COSINE, VS_ELEM_FLOAT4},
	{vs_l1_distance, VS_METRIC_L1, VS_ELEM_FLOAT4},
	{vs_halfvec_l2_distance, VS_METRIC_L2, VS_ELEM_HALF},
	{vs_halfvec_negative_inner_product, VS_METRIC_IP, VS_ELEM_HALF},
	{vs_halfvec_cosine_distance, VS_METRIC_COSINE, VS_ELEM_HALF},
	{vs_halfvec_l1_distance, VS_METRIC_L1, VS_ELEM_HALF},
	{vs_hamming_distance, VS_METRIC_HAMMING, VS_ELEM_BIT},
};

/* the strings behind vecstore.probes and vecstore.ef_search */
static char *probes_string = NULL;
static char *ef_search_string = NULL;

/*
 * parse_auto_int - "auto" (any case) as 0, or an integer from min to max;
 * false when "value" is neither.
 */
static bool
parse_auto_int(const char *value, int min, int max, int *result)
{
	char	   *end;
	long		n;

	if (pg_strcasecmp(value, "auto") == 0)
	{
		*result = 0;
		return true;
	}
	errno = 0;
	n = strtol(value, &end, 10);
	while (end != value && *end == ' ')
		end++;
	if (end == value || *end != '\0' || errno != 0 || n < min || n > max)
		return false;
	*result = (int) n;
	return true;
}

/*
 * validate_lists - the "lists" reloption: "auto" or a number of clusters.
 * 0 is refused, as pgvector refuses it; "auto" says what 0 used to.
 */
static void
validate_lists(const char *value)
{
	int			lists;

	if (value != NULL && !parse_auto_int(value, VS_MIN_LISTS, VS_MAX_LISTS, &lists))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"lists\": \"%s\"", value),
				 errdetail("Valid values are \"auto\" (about one cluster per %d rows) and integers between \"%d\" and \"%d\".",
						   VS_AUTO_CLUSTER_ROWS, VS_MIN_LISTS, VS_MAX_LISTS)));
}

/* check hooks of vecstore.probes and vecstore.ef_search */
static bool
check_auto_int(char **newval, void **extra, const char *name, int max, const char *what)
{
	int			n;
	int		   *parsed;

	if (!parse_auto_int(*newval, 1, max, &n))
	{
		GUC_check_errdetail("%s is \"auto\" or %s from 1 to %d.", name, what, max);
		return false;
	}
	parsed = malloc(sizeof(int));	/* GUC frees "extra" with free() */
	if (parsed == NULL)
		return false;
	*parsed = n;
	*extra = parsed;
	return true;
}

static bool
check_probes(char **newval, void **extra, GucSource source)
{
	return check_auto_int(newval, extra, "vecstore.probes", VS_MAX_PROBES,
						  "a number of clusters");
}

static void
assign_probes(const char *newval, void *extra)
{
	vecstore_probes = *(int *) extra;
}

static bool
check_ef_search(char **newval, void **extra, GucSource source)
{
	return check_auto_int(newval, extra, "vecstore.ef_search", VS_HNSW_MAX_EF_SEARCH,
						  "a size of the candidate list");
}

static void
assign_ef_search(const char *newval, void *extra)
{
	vecstore_ef_search = *(int *) extra;
}

/*
 * VsAmInit - register the reloptions and GUCs (from _PG_init).
 */
void
VsAmInit(void)
{
	vs_relopt_kind = add_reloption_kind();
	add_string_reloption(vs_relopt_kind, "lists",
						 "Number of IVF clusters, or auto (chosen from the row count)",
						 "auto", validate_lists, AccessExclusiveLock);
	add_int_reloption(vs_relopt_kind, "m",
					  "Neighbours per node of the graph inside each cluster (twice as many on its bottom level)",
					  VS_HNSW_DEFAULT_M, VS_HNSW_MIN_M, VS_HNSW_MAX_M,
					  AccessExclusiveLock);
	add_int_reloption(vs_relopt_kind, "ef_construction",
					  "Size of the candidate list while building the graph inside each cluster",
					  VS_HNSW_DEFAULT_EF_CONSTRUCTION, VS_HNSW_MIN_EF_CONSTRUCTION,
					  VS_HNSW_MAX_EF_CONSTRUCTION, AccessExclusiveLock);
	add_enum_reloption(vs_relopt_kind, "quantizer",
					   "Compact codes the graph search reads",
					   quantizer_values, VS_QUANTIZER_SQ8,
					   "Valid values are \"sq8\", \"sq4\" and \"none\".",
					   AccessExclusiveLock);
	add_real_reloption(vs_relopt_kind, "compaction_threshold",
					   "Fraction of a cluster's rows that are new or removed before VACUUM re-seals it (0 turns it off)",
					   VS_DEFAULT_COMPACTION_THRESHOLD, 0.0, 1.0,
					   ShareUpdateExclusiveLock);
	add_int_reloption(vs_relopt_kind, "max_cluster_rows",
					  "Rows past which a compaction splits a cluster (0 follows the build: twice its mean rows per cluster)",
					  VS_DEFAULT_MAX_CLUSTER_ROWS, 0, VS_MAX_MAX_CLUSTER_ROWS,
					  ShareUpdateExclusiveLock);
	add_int_reloption(vs_relopt_kind, "min_cluster_rows",
					  "Rows under which a compaction merges a cluster into its nearest neighbour (-1: a tenth of the split bound; 0: never)",
					  VS_DEFAULT_MIN_CLUSTER_ROWS, -1, VS_MAX_MAX_CLUSTER_ROWS,
					  ShareUpdateExclusiveLock);

	DefineCustomStringVariable("vecstore.probes",
							   "Sets the number of IVF clusters searched per query",
							   "auto decides for each query (see vecstore.effort); a number fixes it: more probes find more of the true nearest neighbours and cost more time.",
							   &probes_string, "auto",
							   PGC_USERSET, 0, check_probes, assign_probes, NULL);

	DefineCustomIntVariable("vecstore.max_scan_tuples",
							"Sets how many rows a scan may examine when it continues past the probed clusters",
							"A scan continues into further clusters when a filter discarded the rows it found; it stops after this many rows.",
							&vecstore_max_scan_tuples,
							VS_DEFAULT_MAX_SCAN_TUPLES, VS_MIN_MAX_SCAN_TUPLES, VS_MAX_MAX_SCAN_TUPLES,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("vecstore.ef_search",
							   "Sets the size of the candidate list of the graph search inside each probed cluster",
							   "auto takes it from vecstore.effort; larger values find more of the true nearest neighbours and cost more time.",
							   &ef_search_string, "auto",
							   PGC_USERSET, 0, check_ef_search, assign_ef_search, NULL);

	DefineCustomIntVariable("vecstore.effort",
							"Sets how hard a query searches when vecstore.probes is auto",
							"Higher levels find more of the true nearest neighbours and cost more time; 10 is an exact search.",
							&vecstore_effort,
							VS_DEFAULT_EFFORT, VS_MIN_EFFORT, VS_MAX_EFFORT,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomEnumVariable("vecstore.readahead",
							 "Asks the kernel ahead for the parts of a segment file a scan is about to read",
							 "auto: while the backend meets pages that are not in memory; on: always; off: never.  A scan asks for each opened cluster's graph and codes, and for each batch of candidates' vectors, before reading them, so that the disk serves the reads together.  Unless off, segment files are mapped for random reads (no read-around of missing pages).",
							 &vecstore_readahead, VS_READAHEAD_AUTO, readahead_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomEnumVariable("vecstore.direct_reads",
							 "Reads the vectors a scan reranks while reading ahead around the page cache (O_DIRECT)",
							 "auto: when the index's segment files are larger than the memory the server may use (the smaller of the machine's and its cgroup's limit), so that they cannot stay in the page cache; on: always; off: never.  Only with io_uring (vecstore built with liburing).",
							 &vecstore_direct_reads, VS_READAHEAD_AUTO, readahead_options,
							 PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("vecstore.rerank_window",
							"Sets how many graph candidates get their exact distance at a time",
							"The candidates nearest by their compact codes are reranked on the full vectors, a scan's first batch twice as many; more are reranked when the scan runs low.",
							&vecstore_rerank_window,
							VS_DEFAULT_RERANK_WINDOW, VS_MIN_RERANK_WINDOW, VS_MAX_RERANK_WINDOW,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("vecstore.debug_packed_codes",
							 "Builds indexes with packed code records",
							 "Off builds indexes in the earlier layout (16-byte code record headers, cosine graphs that keep their norms), for tests that indexes built before packed codes are still read and compacted.",
							 &vecstore_debug_packed_codes, true,
							 PGC_SUSET, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
}

/*
 * vsoptions - parse and validate reloptions.
 */
static bytea *
vsoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"lists", RELOPT_TYPE_STRING, offsetof(VsOptions, lists)},
		{"m", RELOPT_TYPE_INT, offsetof(VsOptions, m)},
		{"ef_construction", RELOPT_TYPE_INT, offsetof(VsOptions, ef_construction)},
		{"quantizer", RELOPT_TYPE_ENUM, offsetof(VsOptions, quantizer)},
		{"compaction_threshold", RELOPT_TYPE_REAL, offsetof(VsOptions, compaction_threshold)},
		{"max_cluster_rows", RELOPT_TYPE_INT, offsetof(VsOptions, max_cluster_rows)},
		{"min_cluster_rows", RELOPT_TYPE_INT, offsetof(VsOptions, min_cluster_rows)},
	};

	VsOptions  *opts;

	opts = (VsOptions *) build_reloptions(reloptions, validate, vs_relopt_kind,
										  sizeof(VsOptions), tab, lengthof(tab));
	/* as pgvector's HNSW: a candidate list shorter than the bottom level's
	 * neighbours could not fill them */
	if (validate && opts != NULL && opts->ef_construction < 2 * opts->m)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ef_construction must be greater than or equal to 2 * m")));
	/* a split's parts (about half the bound each) must not be merged back */
	if (validate && opts != NULL && opts->max_cluster_rows > 0 &&
		opts->min_cluster_rows > opts->max_cluster_rows / 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_cluster_rows must be at most half of max_cluster_rows"),
				 errdetail("A compaction splits a cluster past max_cluster_rows into parts of about half as many rows, which it would merge again.")));
	return (bytea *) opts;
}

/*
 * VsGetListsOption - the "lists" reloption of an index (0 = auto).
 */
int
VsGetListsOption(Relation index)
{
	VsOptions  *opts = (VsOptions *) index->rd_options;
	int			lists;

	if (opts == NULL || opts->lists == 0)
		return VS_DEFAULT_LISTS;
	/* checked when it was set; an index of an older release may say "0" */
	if (!parse_auto_int((const char *) opts + opts->lists, 0, VS_MAX_LISTS, &lists))
		return VS_DEFAULT_LISTS;
	return lists;
}

/*
 * VsGetGraphOptions - the reloptions of the graphs and codes.
 */
void
VsGetGraphOptions(Relation index, int *m, int *ef_construction, int *quantizer)
{
	VsOptions  *opts = (VsOptions *) index->rd_options;

	*m = opts ? opts->m : VS_HNSW_DEFAULT_M;
	*ef_construction = opts ? opts->ef_construction : VS_HNSW_DEFAULT_EF_CONSTRUCTION;
	*quantizer = opts ? opts->quantizer : VS_QUANTIZER_SQ8;
}

/*
 * VsGetCompactionThreshold - the "compaction_threshold" reloption.
 */
double
VsGetCompactionThreshold(Relation index)
{
	VsOptions  *opts = (VsOptions *) index->rd_options;

	return opts ? opts->compaction_threshold : VS_DEFAULT_COMPACTION_THRESHOLD;
}

/*
 * VsGetMaxClusterRows - the "max_cluster_rows" reloption (0: automatic).
 */
int
VsGetMaxClusterRows(Relation index)
{
	VsOptions  *opts = (VsOptions *) index->rd_options;

	return opts ? opts->max_cluster_rows : VS_DEFAULT_MAX_CLUSTER_ROWS;
}

/*
 * VsGetMinClusterRows - the "min_cluster_rows" reloption (-1: automatic,
 * 0: no merges).
 */
int
VsGetMinClusterRows(Relation index)
{
	VsOptions  *opts = (VsOptions *) index->rd_options;

	return opts ? opts->min_cluster_rows : VS_DEFAULT_MIN_CLUSTER_ROWS;
}

/*
 * pgvector's query settings, and what does their work in vecstore.  A
 * session that sets one while pgvector's library is not loaded in it gets
 * a placeholder that nothing reads; VsWarnForeignSettings tells it so.
 */
static const struct
{
	const char *name;
	const char *instead;
}			foreign_settings[] =
{
	{"hnsw.ef_search", "vecstore.effort (1-10) sets how hard a query searches; vecstore.ef_search fixes the graph search's depth."},
	{"hnsw.iterative_scan", "vecstore scans always go on until the query has its rows, within vecstore.max_scan_tuples, and return them in exact distance order."},
	{"hnsw.max_scan_tuples", "Set vecstore.max_scan_tuples."},
	{"hnsw.scan_mem_multiplier", "vecstore scans are bounded by vecstore.max_scan_tuples."},
	{"ivfflat.probes", "vecstore.effort (1-10) sets how hard a query searches; vecstore.probes fixes the number of clusters."},
	{"ivfflat.iterative_scan", "vecstore scans always go on until the query has its rows, within vecstore.max_scan_tuples, and return them in exact distance order."},
	{"ivfflat.max_probes", "vecstore scans are bounded by vecstore.max_scan_tuples."},
};

/*
 * VsWarnForeignSettings - at the start of a scan: a WARNING, once per
 * session and setting, for each of pgvector's query settings that this
 * session set (SET, ALTER ROLE/DATABASE SET, PGOPTIONS) as a placeholder:
 * it changes nothing here.  Where pgvector's library is loaded the
 * setting is pgvector's own and is left alone.
 */
void
VsWarnForeignSettings(void)
{
	static bool warned[lengthof(foreign_settings)];
	static int	checked_options = -1;
	bool		placeholders = false;

	/*
	 * Setting one the first time creates its placeholder: while no
	 * placeholder of these exists and no setting was created since the
	 * last look, there is nothing to look up (a scan pays one call).
	 */
	if (GetNumConfigOptions() == checked_options)
		return;
	for (int i = 0; i < lengthof(foreign_settings); i++)
	{
		if (!(GetConfigOptionFlags(foreign_settings[i].name, true) & GUC_CUSTOM_PLACEHOLDER))
			continue;
		placeholders = true;
		if (warned[i] || GetConfigOption(foreign_settings[i].name, true, false) == NULL)
			continue;
		warned[i] = true;
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("setting \"%s\" has no effect on vecstore indexes",
						foreign_settings[i].name),
				 errhint("%s", foreign_settings[i].instead)));
	}
	checked_options = placeholders ? -1 : GetNumConfigOptions();
}

/*
 * opclass_kind - the index's operator class, told from the C function
 * behind its support function 1.
 */
static const VsOpclassKind *
opclass_kind(Relation index)
{
	FmgrInfo   *proc = index_getprocinfo(index, 1, 1);

	for (int i = 0; i < lengthof(opclass_kinds); i++)
	{
		if (proc->fn_addr == opclass_kinds[i].fn)
			return &opclass_kinds[i];
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("operator class of index \"%s\" uses a distance function vecstore does not support",
					RelationGetRelationName(index)),
			 errhint("Use vector_l2_ops, vector_ip_ops, vector_cosine_ops or vector_l1_ops, their halfvec_ forms, or bit_hamming_ops.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * VsGetOrderMetric - which distance the index's operator class orders by.
 */
VsMetric
VsGetOrderMetric(Relation index)
{
	return opclass_kind(index)->metric;
}

/*
 * VsIndexElem - how the index stores its column's elements (VS_ELEM_*):
 * float4 for vector, binary16 for halfvec (half the bytes), packed bits
 * for bit.  The values are widened to float4, exactly, for everything the
 * index computes (VsDatumAsVector).
 */
int
VsIndexElem(Relation index)
{
	return opclass_kind(index)->elem;
}

/*
 * VsGetMetric - the metric the index's structures are built for (the
 * metapage's): its clusters, codes, graphs and routing.  The order metric,
 * except L1: an L1 index is built as an L2 one, whose searches find the
 * candidates, and its scans rank them by their exact L1 distances
 * (vsscan.c).  k-means, Voronoi bounds and SQ8 codes have no L1 form as
 * good as their L2 one, and the rows near a query in L1 are, in the
 * main, those near it in L2.
 */
VsMetric
VsGetMetric(Relation index)
{
	VsMetric	metric = VsGetOrderMetric(index);

	/* Hamming: the squared L2 distance of the bits as 0s and 1s */
	return (metric == VS_METRIC_L1 || metric == VS_METRIC_HAMMING) ? VS_METRIC_L2 : metric;
}

/*
 * vsbuildphasename - names of the build phases in
 * pg_stat_progress_create_index.
 */
static char *
vsbuildphasename(int64 phasenum)
{
	switch (phasenum)
	{
		case PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE:
			return "initializing";
		case VS_PHASE_SAMPLE:
			return "sampling rows";
		case VS_PHASE_KMEANS:
			return "performing k-means";
		case VS_PHASE_ASSIGN:
			return "assigning rows to clusters";
		case VS_PHASE_WRITE:
			return "writing clusters: vectors, codes, graphs";
		case VS_PHASE_SEGMENT:
			return "writing segment file";
		case VS_PHASE_GRAPHS:
			return "building graphs in parallel";
		default:
			return NULL;
	}
}

PG_FUNCTION_INFO_V1(vs_handler);
/*
 * vs_handler - the index access method handler.
 */
Datum
vs_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *amroutine = makeNode(IndexAmRoutine);

	amroutine->amstrategies = 0;
	amroutine->amsupport = 1;
	amroutine->amoptsprocnum = 0;
	amroutine->amcanorder = false;
	amroutine->amcanorderbyop = true;
	amroutine->amcanbackward = false;
	amroutine->amcanunique = false;
	amroutine->amcanmulticol = false;
	amroutine->amoptionalkey = true;
	amroutine->amsearcharray = false;
	amroutine->amsearchnulls = false;
	amroutine->amstorage = false;
	amroutine->amclusterable = false;
	amroutine->ampredlocks = false;
	amroutine->amcanparallel = false;
	amroutine->amcaninclude = false;
	amroutine->amusemaintenanceworkmem = false;
	/*
	 * No parallel vacuum worker for this index: its cleanup, where the
	 * compaction runs, shares its graphs with parallel workers of its own
	 * (vscompact.c, "Parallel graphs"), which a leader in parallel vacuum's
	 * parallel mode cannot start; and a table with one other index (its
	 * primary key) would otherwise vacuum in parallel mode for the sake of
	 * the bulk deletions, which cost far less than the compaction.
	 */
	amroutine->amparallelvacuumoptions = VACUUM_OPTION_NO_PARALLEL;
	amroutine->amkeytype = InvalidOid;

	amroutine->ambuild = vsbuild;
	amroutine->ambuildempty = vsbuildempty;
	amroutine->aminsert = vsinsert;
	amroutine->ambulkdelete = vsbulkdelete;
	amroutine->amvacuumcleanup = vsvacuumcleanup;
	amroutine->amcanreturn = NULL;
	amroutine->amcostestimate = vscostestimate;
	amroutine->amoptions = vsoptions;
	amroutine->amproperty = NULL;
	amroutine->ambuildphasename = vsbuildphasename;
	amroutine->amvalidate = vsvalidate;
	amroutine->amadjustmembers = NULL;
	amroutine->ambeginscan = vsbeginscan;
	amroutine->amrescan = vsrescan;
	amroutine->amgettuple = vsgettuple;
	amroutine->amgetbitmap = NULL;
	amroutine->amendscan = vsendscan;
	amroutine->ammarkpos = NULL;
	amroutine->amrestrpos = NULL;
	amroutine->amestimateparallelscan = NULL;
	amroutine->aminitparallelscan = NULL;
	amroutine->amparallelrescan = NULL;

	PG_RETURN_POINTER(amroutine);
}
