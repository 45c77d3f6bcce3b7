#!/usr/bin/env bash
# The GPU tests (make test-gpu): CREATE INDEX through the GPU service on a
# real device, against the CPU, on a throwaway server.
#
#   make install && ./test/gpu/run.sh      (or: make test-gpu)
#
# Needs vecstore installed into the PostgreSQL that PG_CONFIG names (on the
# GPU machine: the bundle of tools/device-pg-bundle.sh, see README) and
# psql; no Perl, so it runs where the TAP modules are missing.  Where no GPU
# is usable it prints "SKIP" and the reason and exits 0.
# VECSTORE_GPU_EMULATE=1 runs it against the helper's CPU emulation
# instead, to test this script anywhere.  GPU_TEST_ROWS (default 200000)
# rows of 128 dimensions.
#
# Checks, each an "ok N - ..." / "not ok N - ..." line (exit status: the
# number of failures):
#   1. the service runs on the device; a build with vecstore.gpu = on
#      succeeds and sends its k-means rounds and assignment to the helper;
#   2. its k-means inertia is within 1% of the CPU build's (the GPU ranks
#      with FP32 GEMM: near-ties may go the other way, nothing more);
#   3. its graphs were built by the GPU service (neighbour lists on the
#      device, assembled on the helper's threads), and its recall@10 (50
#      queries, default settings) is within 0.02 of the CPU-built index's;
#   4. index scans on the GPU (resident clusters answered exactly, then
#      reranked): recall@10 at least the CPU's graph search; on an index
#      whose clusters the CPU scans flat, the same results with
#      vecstore.gpu on and off (EXCEPT ALL both ways empty); clusters are
#      resident;
#   5. the helper killed with kill -9 while a build waits for it: the
#      build completes (on the CPU), the worker starts another helper, and
#      the fallback is counted;
#   6. the status reports requests, batches and device memory.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$repo/tools/pgserver.sh"
vs_init "$repo"

rows=${GPU_TEST_ROWS:-200000}
dims=128
tests=0
failures=0

check() {
    local desc=$1
    shift
    tests=$((tests + 1))
    if "$@"; then
        echo "ok $tests - $desc"
    else
        echo "not ok $tests - $desc"
        failures=$((failures + 1))
    fi
}
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
status() { sql -c "SELECT $1 FROM vecstore_gpu_status()"; }
is_true() { [ "$1" = t ]; }

vs_server_start gpu
if [ "${VECSTORE_GPU_EMULATE:-0}" = 1 ]; then
    sql -c 'ALTER SYSTEM SET vecstore.gpu_emulate = on' -c 'SELECT pg_reload_conf()' >/dev/null
fi
sql -c 'CREATE EXTENSION vecstore'

# the service settles: a helper that answered, or the reason there is none
for _ in $(seq 1 120); do
    state=$(status state)
    case $state in starting | restarting | disabled) sleep 0.5 ;; *) break ;; esac
done
if [ "$state" != running ]; then
    echo "SKIP: no usable GPU (the GPU service is \"$state\": $(status "coalesce(last_error, '')"))"
    exit 0
fi
echo "# device: $(status device), $(status "memory_total / 1048576") MiB"

echo "# loading $rows rows of $dims dimensions"
sql >/dev/null <<EOF
SELECT setseed(0.5);
CREATE TABLE items (id int PRIMARY KEY, v vector($dims));
-- 64 blobs: a centre per id % 64, unit noise around it
INSERT INTO items
SELECT i, ARRAY(SELECT (((i % 64) * 7919 + j * 31) % 101 / 10.0 + random() - 0.5)::real
                FROM generate_series(1, $dims) j WHERE i > 0)::vector
FROM generate_series(1, $rows) i;
CREATE TABLE queries AS
SELECT id AS q, ARRAY(SELECT (x + random() * 0.2)::real FROM unnest(v::real[]) x WHERE id > 0)::vector AS v
FROM items WHERE id % ($rows / 50) = 0;
CREATE TABLE truth AS
SELECT q, ARRAY(SELECT id FROM items ORDER BY items.v <-> queries.v LIMIT 10) AS ids FROM queries;
ANALYZE;
EOF

# build MODE [SETTINGS] - CREATE INDEX with vecstore.gpu = MODE; sets
# build_ok, build_ms, inertia and jobs from its DEBUG1 lines.
build() {
    local out
    build_ok=0
    out=$(sql 2>&1 <<EOF
SET maintenance_work_mem = '1GB';
SET vecstore.gpu = $1; ${2:-}
DROP INDEX IF EXISTS items_v;
SET client_min_messages = debug1;
SELECT extract(epoch FROM clock_timestamp()) * 1000;
CREATE INDEX items_v ON items USING vecstore (v);
SELECT extract(epoch FROM clock_timestamp()) * 1000;
EOF
    ) && build_ok=1
    build_ms=$(echo "$out" | grep -E '^[0-9.]+$' | awk 'NR == 1 { a = $1 } NR == 2 { printf "%.0f", $1 - a }')
    inertia=$(echo "$out" | sed -n 's/.*vecstore k-means: .* inertia \([0-9.e+]*\),.*/\1/p')
    jobs=$(echo "$out" | sed -n 's/.*vecstore assignment: [0-9]* rows, \([0-9]*\) jobs on the GPU in all,.*/\1/p')
    graphs=$(echo "$out" | sed -n 's/.*vecstore clusters: [0-9]*, \([0-9]*\) graphs built by the GPU service.*/\1/p')
    graph_ms=$(echo "$out" | sed -n 's/.*, \([0-9.]*\) ms of it in graphs.*/\1/p')
    [ "$build_ok" = 1 ] || echo "$out" | tail -n 5 | sed 's/^/# /'
}

# recall MODE - mean recall@10 of the index at the default settings, the
# scans run with vecstore.gpu = MODE (off compares builds)
recall() {
    sql -c "SET enable_seqscan = off; SET vecstore.gpu = $1;
            SELECT round(avg((SELECT count(*) FROM unnest(t.ids) i
                              WHERE i = ANY (ARRAY(SELECT id FROM items
                                                   ORDER BY items.v <-> q.v LIMIT 10))))::numeric / 10, 3)
            FROM queries q JOIN truth t USING (q)"
}

build off
cpu_ok=$build_ok cpu_ms=$build_ms cpu_inertia=$inertia cpu_graph_ms=$graph_ms
cpu_recall=$(recall off)
echo "# CPU build: ${cpu_ms} ms, inertia $cpu_inertia, recall@10 $cpu_recall"

build on
gpu_recall=$(recall off)
echo "# GPU build: ${build_ms} ms, inertia $inertia, $jobs jobs, recall@10 $gpu_recall"
echo "# graphs: CPU ${cpu_graph_ms} ms, GPU ${graph_ms} ms with $graphs graphs built by the GPU service"
check "a CPU build (vecstore.gpu = off)" [ "$cpu_ok" = 1 ]
check "a build with vecstore.gpu = on succeeds" [ "$build_ok" = 1 ]
check "its k-means and assignment ran on the GPU ($jobs jobs)" [ "${jobs:-0}" -gt 0 ]
check "its graphs were built by the GPU service ($graphs graphs)" [ "${graphs:-0}" -gt 0 ]
check "k-means inertia within 1% of the CPU's ($inertia vs $cpu_inertia)" \
    is_true "$(sql -c "SELECT abs($inertia - $cpu_inertia) <= 0.01 * $cpu_inertia")"
check "recall@10 within 0.02 of the CPU-built index ($gpu_recall vs $cpu_recall)" \
    is_true "$(sql -c "SELECT $gpu_recall >= $cpu_recall - 0.02")"
echo "# CREATE INDEX: CPU $cpu_ms ms, GPU $build_ms ms ($(awk -v a="$cpu_ms" -v b="$build_ms" 'BEGIN { printf "%.2fx", a / b }'))"

# scans: the helper answers each probed cluster exactly (resident
# clusters, one GEMM per batch), the CPU reranks
req0=$(status requests)
off_recall=$gpu_recall
on_recall=$(recall on)
echo "# recall@10 of the GPU-built index: scans on the CPU $off_recall, on the GPU $on_recall"
check "scans on the GPU: recall@10 at least the CPU's ($on_recall vs $off_recall)" \
    is_true "$(sql -c "SELECT $on_recall >= $off_recall")"
check "every query went to the GPU" [ "$(( $(status requests) - req0 ))" -ge 50 ]

# where the CPU scans clusters flat (exactly), the same rows in the same order
sql >/dev/null <<EOF
SELECT setseed(0.3);
CREATE TABLE flat (id int PRIMARY KEY, v vector(16));
INSERT INTO flat SELECT i, ARRAY(SELECT random()::real FROM generate_series(1, 16) WHERE i > 0)::vector
FROM generate_series(1, 20000) i;
CREATE TABLE flatq AS SELECT id AS q, v FROM flat WHERE id % 400 = 0;
CREATE INDEX flat_v ON flat USING vecstore (v) WITH (lists = 40);
EOF
knn="SELECT q.q, n.id, n.rank FROM flatq q, LATERAL (SELECT id, row_number() OVER () AS rank
     FROM (SELECT id FROM flat ORDER BY v <-> q.v LIMIT 200) s) n"
sql -c "SET enable_seqscan = off; SET vecstore.probes = 3; SET vecstore.gpu = on; CREATE TABLE res_on AS $knn" \
    -c "SET enable_seqscan = off; SET vecstore.probes = 3; SET vecstore.gpu = off; CREATE TABLE res_off AS $knn"
check "flat clusters: results with vecstore.gpu on and off are the same (EXCEPT ALL both ways)" \
    [ "$(sql -c "SELECT (SELECT count(*) FROM (TABLE res_on EXCEPT ALL TABLE res_off) a)
                      + (SELECT count(*) FROM (TABLE res_off EXCEPT ALL TABLE res_on) b)")" = 0 ]
for _ in $(seq 1 20); do
    [ "$(status "resident_clusters > 0")" = t ] && break
    sleep 0.5
done
check "clusters are resident on the device ($(status resident_clusters))" is_true "$(status "resident_clusters > 0")"

# kill -9 of the helper during a build: stopped first (SIGSTOP), so that
# the build's first request is surely with it when it dies
pid=$(status helper_pid)
restarts=$(status restarts)
fallbacks=$(status fallbacks)
requests=$(status requests)
kill -STOP "$pid"
( build auto; echo "$build_ok" >"$VS_DIR/kill_build" ) &
for _ in $(seq 1 600); do
    [ "$(status requests)" -gt "$requests" ] && break
    sleep 0.1
done
kill -KILL "$pid" 2>/dev/null || true
wait
check "a build whose helper is killed completes" [ "$(cat "$VS_DIR/kill_build")" = 1 ]
for _ in $(seq 1 60); do
    [ "$(status "state = 'running' AND helper_pid <> $pid")" = t ] && break
    sleep 0.5
done
check "the worker starts another helper" \
    is_true "$(status "state = 'running' AND helper_pid <> $pid AND restarts > $restarts")"
check "the fallback is counted" [ "$(status fallbacks)" -gt "$fallbacks" ]
check "the status reports requests, batches and device memory" \
    is_true "$(status "requests > 0 AND batches > 0 AND avg_batch_size >= 1 AND memory_used IS NOT NULL")"

echo "1..$tests"
echo "$((tests - failures)) passed, $failures failed"
exit "$failures"
