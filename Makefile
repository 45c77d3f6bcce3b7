# vecstore — PGXS build.
#
#   make / make install          build and install the extension (needs pg_config)
#   make installcheck            pg_regress against a running server (PGHOST/PGPORT)
#   make kernel-test             the stand-alone unit tests (KERNEL_TESTS, no server)
#   ./test/run.sh                the whole suite on a throwaway server (README):
#                                include rules, build, pg_regress, isolation,
#                                unit tests, TAP, fuzz
#   ./tools/demo.sh              the demo on a throwaway server (README)
#
# WERROR=1 adds -Werror (the test script sets it).  WITH_CUDA (auto, yes,
# no) says how to build the GPU helper in cuda/, WITH_LIBURING (auto, yes,
# no) whether vecstore.so reads segment files through io_uring; see below.

EXTENSION = vecstore
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = vecstore
OBJS = src/vecstore.o src/vector.o src/halfvec.o src/bitvec.o src/sparsevec.o src/vsdistance.o src/vsdistance_half.o src/vsdistance_bit.o src/vskmeans.o src/vskmeans_assign.o \
	src/vsquant.o src/vshnsw.o src/vshnsw_build.o src/vshnsw_search.o \
	src/vsam.o src/vsaccess.o src/vspin.o src/vsbuild.o src/vsbuild_parallel.o src/vscompact.o src/vscompact_worker.o src/vscost.o src/vsfree.o src/vsinfo.o src/vsinsert.o \
	src/vspage.o src/vsroute.o src/vsscan.o src/vsscan_policy.o src/vssegment.o src/vssegment_checked.o src/vssegment_fault.o src/vssegment_remove.o src/vsvacuum.o src/vsvalidate.o \
	src/vsgpu.o src/vsgpu_client.o src/vsgpu_worker.o src/vsoffload.o src/vsutil.o
HEADERS = src/vector.h src/halfvec.h src/sparsevec.h src/vsdistance.h src/vsdistance_half.h

# The install script of every released version and the update scripts
# between them (0.1.0 is frozen; see CHANGELOG.md).
DATA = sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0--0.2.0.sql sql/$(EXTENSION)--$(EXTVERSION).sql

# Regression tests, in order (never a wildcard: install scripts share sql/).
REGRESS = vector_type vector_functions cast copy aggregates halfvec bit sparsevec errors \
	index_options index_build index_scan index_halfvec index_bit index_vacuum compaction privileges
REGRESS_OPTS = --inputdir=. --load-extension=$(EXTENSION)

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers
ifeq ($(WERROR),1)
PG_CFLAGS += -Werror
endif

# The GPU helper, cuda/vecstore-gpu-helper: the only program that links the
# CUDA runtime and cuBLAS (vecstore.so never does).  WITH_CUDA=auto (the
# default) builds it with nvcc when the toolkit is found (in PATH or
# CUDA_HOME), for sm_80 and sm_90 plus PTX; yes insists on it; no builds
# it without CUDA (it then reports no device, and serves only the CPU
# emulation the tests use).
WITH_CUDA ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/nvcc))
ifeq ($(WITH_CUDA),auto)
VS_CUDA := $(if $(NVCC),yes,no)
else ifeq ($(WITH_CUDA),yes)
VS_CUDA := yes
ifeq ($(NVCC),)
$(error WITH_CUDA=yes but nvcc was not found (set NVCC or CUDA_HOME))
endif
else ifeq ($(WITH_CUDA),no)
VS_CUDA := no
else
$(error WITH_CUDA must be auto, yes or no, not "$(WITH_CUDA)")
endif
GPU_HELPER = cuda/vecstore-gpu-helper
NVCC_GENCODE = -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90

EXTRA_CLEAN = test/kernels/test_kernels bench/bench_kernels tools/fvecs2pg \
	$(GPU_HELPER) cuda/vsgpu_helper.o cuda/vsgpu_device.o cuda/vsgpu_nocuda.o \
	cuda/vskmeans_helper.o cuda/vskmeans_assign_helper.o cuda/vsdistance_helper.o \
	cuda/vshnsw_helper.o cuda/vshnsw_build_helper.o cuda/vshnsw_search_helper.o cuda/vsgpu_pool.o

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(PGXS),)
$(error pg_config not found: install postgresql-server-dev-15 (./tools/deps.sh does) or pass PG_CONFIG=/path/to/pg_config)
endif

# liburing, linked statically (vecstore.so needs no library at run time):
# the rerank's reads from segment files go to the kernel together, one
# system call for a batch (src/vssegment.c, VsSegmentReadMany), where the
# kernel offers io_uring.  WITH_LIBURING=auto (the default) uses it when
# liburing.h and liburing.a are found (Debian: liburing-dev); yes insists;
# no builds without it (one pread() per vector).
WITH_LIBURING ?= auto
VS_CC := $(shell $(PG_CONFIG) --cc 2>/dev/null)
VS_LIBURING_A := $(shell p=$$($(VS_CC) -print-file-name=liburing.a 2>/dev/null); \
	[ -f "$$p" ] && printf '\043include <liburing.h>\n' | $(VS_CC) -E -x c - >/dev/null 2>&1 && echo "$$p")
ifeq ($(WITH_LIBURING),no)
VS_LIBURING_A :=
else ifeq ($(WITH_LIBURING),yes)
ifeq ($(VS_LIBURING_A),)
$(error WITH_LIBURING=yes but liburing.h and liburing.a were not found (Debian: apt-get install liburing-dev))
endif
else ifneq ($(WITH_LIBURING),auto)
$(error WITH_LIBURING must be auto, yes or no, not "$(WITH_LIBURING)")
endif
ifneq ($(VS_LIBURING_A),)
PG_CPPFLAGS += -DVS_USE_LIBURING
SHLIB_LINK += $(VS_LIBURING_A) -Wl,--exclude-libs,liburing.a
endif

include $(PGXS)

# PGXS tracks no header dependencies: rebuild every object when a header
# changes (src/vsgpu_protocol.h, the GPU helper's wire format, included).
$(OBJS): $(wildcard src/*.h)

# The GPU helper (see WITH_CUDA above), built with "all", installed beside
# vecstore.so where the background worker looks for it.
all: $(GPU_HELPER)

# The helper runs vecstore's own CPU code for its emulation mode, for the
# exact distances it returns and for the graphs it assembles:
# src/vskmeans*.c, src/vsdistance.c and src/vshnsw*.c, compiled here as
# separate objects (without the server's flags), and its thread pool.
GPU_HELPER_CFLAGS = -O2 -g -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation -Werror -Icuda -I$(srcdir)/src
GPU_HELPER_OBJS = cuda/vsgpu_helper.o cuda/vskmeans_helper.o cuda/vskmeans_assign_helper.o \
	cuda/vsdistance_helper.o \
	cuda/vshnsw_helper.o cuda/vshnsw_build_helper.o cuda/vshnsw_search_helper.o \
	cuda/vsgpu_pool.o

cuda/vsgpu_helper.o: cuda/vsgpu_helper.c cuda/vsgpu_helper.h cuda/vsgpu_pool.h src/vsgpu_protocol.h src/vskmeans.h src/vsdistance.h src/vshnsw.h
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ cuda/vsgpu_helper.c

VSKMEANS_HEADERS = src/vskmeans.h src/vskmeans_internal.h src/vsdistance.h

cuda/vskmeans_helper.o: src/vskmeans.c $(VSKMEANS_HEADERS)
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ src/vskmeans.c

cuda/vskmeans_assign_helper.o: src/vskmeans_assign.c $(VSKMEANS_HEADERS)
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ src/vskmeans_assign.c

VSHNSW_HEADERS = src/vshnsw.h src/vshnsw_internal.h src/vskmeans.h src/vsdistance.h

cuda/vshnsw_helper.o: src/vshnsw.c $(VSHNSW_HEADERS)
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ src/vshnsw.c

cuda/vshnsw_build_helper.o: src/vshnsw_build.c $(VSHNSW_HEADERS)
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ src/vshnsw_build.c

cuda/vshnsw_search_helper.o: src/vshnsw_search.c $(VSHNSW_HEADERS)
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ src/vshnsw_search.c

cuda/vsgpu_pool.o: cuda/vsgpu_pool.c cuda/vsgpu_pool.h
	$(CC) $(GPU_HELPER_CFLAGS) -pthread -c -o $@ cuda/vsgpu_pool.c

cuda/vsdistance_helper.o: src/vsdistance.c src/vsdistance.h
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ src/vsdistance.c

cuda/vsgpu_nocuda.o: cuda/vsgpu_nocuda.c cuda/vsgpu_helper.h
	$(CC) $(GPU_HELPER_CFLAGS) -c -o $@ cuda/vsgpu_nocuda.c

cuda/vsgpu_device.o: cuda/vsgpu_device.cu cuda/vsgpu_helper.h
	$(NVCC) -O2 -Icuda $(NVCC_GENCODE) -c -o $@ cuda/vsgpu_device.cu

ifeq ($(VS_CUDA),yes)
$(GPU_HELPER): $(GPU_HELPER_OBJS) cuda/vsgpu_device.o
	$(NVCC) -o $@ $(GPU_HELPER_OBJS) cuda/vsgpu_device.o -L$(CUDA_HOME)/lib64 -lcublas \
		-Xlinker -rpath=$(CUDA_HOME)/lib64 -lm -lrt -lpthread
else
$(GPU_HELPER): $(GPU_HELPER_OBJS) cuda/vsgpu_nocuda.o
	$(CC) -pthread -o $@ $(GPU_HELPER_OBJS) cuda/vsgpu_nocuda.o -lm -lrt
endif

install: install-gpu-helper
install-gpu-helper: $(GPU_HELPER)
	$(INSTALL_PROGRAM) $(GPU_HELPER) '$(DESTDIR)$(pkglibdir)/vecstore-gpu-helper'
uninstall: uninstall-gpu-helper
uninstall-gpu-helper:
	rm -f '$(DESTDIR)$(pkglibdir)/vecstore-gpu-helper'
.PHONY: install-gpu-helper uninstall-gpu-helper

# Stand-alone programs that link the kernels without the server.
STANDALONE_CFLAGS = -O2 -g -Wall -Wextra -Werror -I$(srcdir)/src

test/kernels/test_kernels: test/kernels/test_kernels.c src/vsdistance.c src/vsdistance.h
	$(CC) $(STANDALONE_CFLAGS) -o $@ test/kernels/test_kernels.c src/vsdistance.c -lm

bench/bench_kernels: bench/bench_kernels.c src/vsdistance.c src/vsdistance.h
	$(CC) $(STANDALONE_CFLAGS) -o $@ bench/bench_kernels.c src/vsdistance.c -lm

tools/fvecs2pg: tools/fvecs2pg.c
	$(CC) $(STANDALONE_CFLAGS) -o $@ tools/fvecs2pg.c -lm

.PHONY: test demo kernel-test
# every stand-alone unit test; each block below adds its own, and the
# kernel-test rule at the end runs them all
KERNEL_TESTS = test/kernels/test_kernels

# half-precision conversion and kernels (src/vsdistance_half.c)
HALF_SRCS = src/vsdistance_half.c src/vsdistance.c
test/kernels/test_half: test/kernels/test_half.c test/kernels/vstest.h test/kernels/vsrng.h $(HALF_SRCS) src/vsdistance_half.h src/vsdistance.h
	$(CC) $(STANDALONE_CFLAGS) -o $@ test/kernels/test_half.c $(HALF_SRCS) -lm

KERNEL_TESTS += test/kernels/test_half
EXTRA_CLEAN += test/kernels/test_half

test:
	./test/run.sh

demo:
	./tools/demo.sh

# ---------------------------------------------------------------------------
# IVF training (src/vskmeans*.c): stand-alone unit test and benchmark, linked
# without the server like test_kernels above.  "make kernel-test" runs every
# unit test in KERNEL_TESTS; "make bench/bench_kmeans && ./bench/bench_kmeans"
# benchmarks.
# ---------------------------------------------------------------------------
KMEANS_SRCS = src/vskmeans.c src/vskmeans_assign.c src/vsdistance.c
KMEANS_DEPS = $(KMEANS_SRCS) src/vskmeans.h src/vskmeans_internal.h src/vsdistance.h

test/kernels/test_kmeans: test/kernels/test_kmeans.c test/kernels/vstest.h test/kernels/vsrng.h test/kernels/vsfvecs.h $(KMEANS_DEPS)
	$(CC) $(STANDALONE_CFLAGS) -o $@ test/kernels/test_kmeans.c $(KMEANS_SRCS) -lm

bench/bench_kmeans: bench/bench_kmeans.c test/kernels/vsrng.h test/kernels/vsfvecs.h $(KMEANS_DEPS)
	$(CC) $(STANDALONE_CFLAGS) -o $@ bench/bench_kmeans.c $(KMEANS_SRCS) -lm

KERNEL_TESTS += test/kernels/test_kmeans

EXTRA_CLEAN += test/kernels/test_kmeans bench/bench_kmeans

# ---------------------------------------------------------------------------
# Graph search inside clusters (src/vshnsw.c) and compact codes
# (src/vsquant.c): stand-alone modules with their own unit tests and
# benchmarks, built once their sources exist.
# ---------------------------------------------------------------------------
ifneq ($(wildcard src/vshnsw.c),)
HNSW_SRCS = src/vshnsw.c src/vshnsw_build.c src/vshnsw_search.c src/vsdistance.c
HNSW_DEPS = $(HNSW_SRCS) src/vshnsw.h src/vshnsw_internal.h src/vskmeans.h src/vsdistance.h

# with the GPU helper's thread pool, for the parallel builds from lists
POOL_SRCS = cuda/vsgpu_pool.c
POOL_DEPS = $(POOL_SRCS) cuda/vsgpu_pool.h

test/kernels/test_hnsw: test/kernels/test_hnsw.c test/kernels/vstest.h test/kernels/vsrng.h test/kernels/vsfvecs.h $(HNSW_DEPS) $(POOL_DEPS)
	$(CC) $(STANDALONE_CFLAGS) -Icuda -pthread -o $@ test/kernels/test_hnsw.c $(HNSW_SRCS) $(POOL_SRCS) -lm

bench/bench_hnsw: bench/bench_hnsw.c test/kernels/vsrng.h test/kernels/vsfvecs.h $(HNSW_DEPS) $(POOL_DEPS)
	$(CC) $(STANDALONE_CFLAGS) -Icuda -pthread -o $@ bench/bench_hnsw.c $(HNSW_SRCS) $(POOL_SRCS) -lm

KERNEL_TESTS += test/kernels/test_hnsw
EXTRA_CLEAN += test/kernels/test_hnsw bench/bench_hnsw
endif

ifneq ($(wildcard src/vsquant.c),)
QUANT_SRCS = src/vsquant.c src/vsdistance.c
QUANT_DEPS = $(QUANT_SRCS) src/vsquant.h src/vsdistance.h

test/kernels/test_quant: test/kernels/test_quant.c test/kernels/vstest.h test/kernels/vsrng.h $(QUANT_DEPS)
	$(CC) $(STANDALONE_CFLAGS) -o $@ test/kernels/test_quant.c $(QUANT_SRCS) -lm

bench/bench_quant: bench/bench_quant.c test/kernels/vsrng.h test/kernels/vsfvecs.h $(QUANT_DEPS)
	$(CC) $(STANDALONE_CFLAGS) -o $@ bench/bench_quant.c $(QUANT_SRCS) -lm

KERNEL_TESTS += test/kernels/test_quant
EXTRA_CLEAN += test/kernels/test_quant bench/bench_quant
endif

# ---------------------------------------------------------------------------
# Bit distances (src/vsdistance_bit.c): the popcount kernels' unit test,
# every path against the scalar one.
# ---------------------------------------------------------------------------
test/kernels/test_bit: test/kernels/test_bit.c test/kernels/vstest.h test/kernels/vsrng.h src/vsdistance_bit.c src/vsdistance_bit.h
	$(CC) $(STANDALONE_CFLAGS) -o $@ test/kernels/test_bit.c src/vsdistance_bit.c -lm

KERNEL_TESTS += test/kernels/test_bit
EXTRA_CLEAN += test/kernels/test_bit

kernel-test: $(KERNEL_TESTS)
	@rc=0; for t in $(KERNEL_TESTS); do ./$$t || rc=1; done; exit $$rc

# The GPU tests (test/gpu/run.sh): for a machine with a GPU, after "make
# install"; they skip cleanly where no GPU is usable.
.PHONY: test-gpu
test-gpu:
	./test/gpu/run.sh
