#!/usr/bin/env bash
# (globals are shared with bench/lib.sh; the table's backquotes are literal)
# shellcheck disable=SC2034,SC2154,SC2016
# Rows inserted after CREATE INDEX: recall@10 and queries per second of the
# vecstore index as a growing share of the table lives in the delta chains
# (rows INSERTed after the build, scanned with exact distances, outside
# the codes and graphs), against an index built on the whole table.  It
# prints figures and asserts nothing.
#
#   ./bench/inserts.sh                  sift and glove (about 3 min)
#   BENCH_DATASETS=sift BENCH_QUERIES=50 ./bench/inserts.sh
#
# Knobs: BENCH_DATASETS and BENCH_QUERIES as in bench/pipeline.sh (default
# "sift glove" and 200); BENCH_SHARES, the percentages of the rows the
# index is built on before the rest is inserted (default "100 80 50 20");
# BENCH_SETTINGS, the query settings measured, separated by ";" between
# settings and "|" between configurations (default: the defaults, and
# probes = 2 with ef_search = 40).
#
# Method.  Per dataset and share S: the first S% of base.fvecs (in file
# order) in items, CREATE INDEX with the default options (so lists =
# rows/5000 of those rows), then INSERT of the other rows, ANALYZE; the
# queries and recall as in bench/pipeline.sh (bench/lib.sh: 10 untimed
# warm-up queries, in-server timing, tie-aware recall@10 against the
# ground truth of the whole set), with enable_seqscan = off.  The shared
# sets are shuffled enough that their first rows sample the rest.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
nq=${BENCH_QUERIES:-200}
datasets=${BENCH_DATASETS:-sift glove}
shares=${BENCH_SHARES:-100 80 50 20}
settings_spec=${BENCH_SETTINGS:-SET vecstore.probes = auto|SET vecstore.probes = 2; SET vecstore.ef_search = 40}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54392}
k=10
warm=10
vsdb=bench_inserts
pvdb=
have_pgvector=0

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

./tools/deps.sh >/dev/null
# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"
mkdir -p tmp_check
if [ ! -x tools/fvecs2pg ] || [ tools/fvecs2pg.c -nt tools/fvecs2pg ]; then
    make -s tools/fvecs2pg >tmp_check/bench-inserts-build.log 2>&1
fi
vs_server_start bench-inserts >/dev/null
sqld postgres -c "CREATE DATABASE $vsdb"
sqld "$vsdb" -c 'CREATE EXTENSION vecstore'
sqld "$vsdb" -c "ALTER DATABASE $vsdb SET maintenance_work_mem = '256MB'"

echo "## Rows inserted after the build"
echo
echo "- $(nproc) cores; $(sqld postgres -tAc 'SELECT version()' | cut -d, -f1); $nq queries per configuration, top-$k"
echo "- settings: ${settings_spec//|/ ; then: }"
echo
run=0
for dir in "$data_root"/*/; do
    dir=${dir%/}
    [ -f "$dir/base.fvecs" ] || continue
    dataset_params "$dir"
    selected "$name" || continue
    load_dataset "$dir"
    sqld "$vsdb" -c 'ALTER TABLE items RENAME TO stage' -c 'CREATE TABLE items (LIKE stage)'
    echo "### $name ($rows x $dim, $op)"
    echo
    echo "| built on | inserted after | clusters | delta rows | setting | recall@10 | QPS | p50 ms | p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for share in $shares; do
        nbuild=$((rows * share / 100))
        sqld "$vsdb" -c 'TRUNCATE items' \
            -c "INSERT INTO items SELECT * FROM stage WHERE id < $nbuild" \
            -c "CREATE INDEX items_emb ON items USING vecstore (embedding $opclass)" \
            -c "INSERT INTO items SELECT * FROM stage WHERE id >= $nbuild" \
            -c 'VACUUM ANALYZE items'
        info=$(sqld "$vsdb" -tA -F ' ' -c "SELECT clusters, delta_rows FROM vecstore_index_info('items_emb')")
        IFS='|' read -ra configs <<<"$settings_spec"
        for cfg in "${configs[@]}"; do
            run=$((run + 1))
            run_queries "$vsdb" "$run" "SET enable_seqscan = off; $cfg;"
            IFS=$'\t' read -r recall qps p50 p99 <<<"$(query_stats "$vsdb" "$run")"
            printf '| %s rows (%s%%) | %s | %s | %s | `%s` | %s | %s | %s | %s |\n' \
                "$nbuild" "$share" "$((rows - nbuild))" "${info% *}" "${info#* }" \
                "$cfg" "$recall" "$qps" "$p50" "$p99"
        done
        sqld "$vsdb" -c 'DROP INDEX items_emb'
    done
    sqld "$vsdb" -c 'DROP TABLE items, stage'
    echo
done
