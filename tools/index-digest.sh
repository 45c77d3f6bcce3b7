#!/usr/bin/env bash
# Digests of the bytes a fixed set of vecstore builds writes, for checking
# that a refactoring left the index format and the build's results alone
# ("same index bytes from the same build"): run it with the old code
# installed and with the new, and compare the two outputs.
#
#   make install && ./tools/index-digest.sh > before.txt
#   (change, make install) && ./tools/index-digest.sh > after.txt
#   diff before.txt after.txt
#
# It uses the vecstore that is installed (it builds nothing but
# tools/fvecs2pg when missing), on a throwaway server of its own
# (tools/pgserver.sh; port VECSTORE_PGPORT, default 54393; directory
# tmp_check/index-digest), and prints one line per index:
#
#   <name> rows <n> clusters <c> fork <md5> segment <md5>
#
# Data, all reproducible: tools/fvecs2pg --random sets (clustered
# synthetic rows, fixed seeds), and the first DIGEST_ROWS rows (default
# 20000) of the shared sift and GloVe sets when ../shared/data has them.
# Indexes: L2 at the default options, lists = 8, quantizer = none, m = 8;
# cosine and inner product on GloVe; an empty table; an UNLOGGED table
# (its init fork too); and one index after INSERTs (delta pages) and a
# DELETE + VACUUM (the deletion bitmap).  Builds run with
# max_parallel_maintenance_workers = 0 and maintenance_work_mem = 256MB.
#
# What the digests leave out, because it differs between two identical
# builds: in the fork (pageinspect's get_raw_page, every block), each
# page's pd_lsn and pd_checksum (its first 10 bytes); in the segment file,
# its 4 kB header (database, relfilenode and index oids, the LSN of the
# write), so "segment" covers the body, which is the sealed region.  The
# metapage's generation and CRCs are part of the fork digest.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
rows=${DIGEST_ROWS:-20000}
export VECSTORE_PGPORT=${VECSTORE_PGPORT:-54393}

# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"
[ -x tools/fvecs2pg ] || make -s tools/fvecs2pg >&2
vs_server_start index-digest >&2
trap 'vs_server_stop >&2 || true' EXIT

sql() { psql -X -q -v ON_ERROR_STOP=1 -d digest "$@"; }
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS digest' -c 'CREATE DATABASE digest'
sql -c 'CREATE EXTENSION vecstore' -c 'CREATE EXTENSION pageinspect' \
    -c 'ALTER DATABASE digest SET max_parallel_maintenance_workers = 0' \
    -c "ALTER DATABASE digest SET maintenance_work_mem = '256MB'"

# load TABLE DIM [UNLOGGED] < rows - a table (id, v vector(DIM)) from COPY text
load() {
    sql -c "CREATE ${3:-} TABLE $1 (id bigint PRIMARY KEY, v vector($2))" \
        -c "\\copy $1 from pstdin"
}

./tools/fvecs2pg --random 30000 64 7 | load synth 64
./tools/fvecs2pg --random 8000 32 11 | load unlogged_synth 32 UNLOGGED
./tools/fvecs2pg --random 12000 48 13 | load churn 48
sql -c 'CREATE TABLE empty (id bigint, v vector(16))'

indexes=(
    "synth_default synth (v vector_l2_ops)"
    "synth_lists8 synth (v vector_l2_ops) WITH (lists = 8)"
    "synth_noquant synth (v vector_l2_ops) WITH (quantizer = none)"
    "synth_m8 synth (v vector_l2_ops) WITH (m = 8, lists = 3)"
    "empty_default empty (v vector_l2_ops)"
    "unlogged_default unlogged_synth (v vector_l2_ops) WITH (lists = 2)"
)
if [ -f "$data/sift128-photos-euclidean/base.fvecs" ]; then
    ./tools/fvecs2pg --limit "$rows" "$data/sift128-photos-euclidean/base.fvecs" | load sift 128
    indexes+=("sift_default sift (v vector_l2_ops)" "sift_lists16 sift (v vector_l2_ops) WITH (lists = 16)")
fi
if [ -f "$data/glove6b-100-angular/base.fvecs" ]; then
    ./tools/fvecs2pg --limit "$rows" "$data/glove6b-100-angular/base.fvecs" | load glove 100
    indexes+=("glove_cosine glove (v vector_cosine_ops)" "glove_ip glove (v vector_ip_ops) WITH (lists = 6)")
fi
sql -c 'VACUUM ANALYZE'

for spec in "${indexes[@]}"; do
    read -r name table rest <<<"$spec"
    sql -c "CREATE INDEX $name ON $table USING vecstore $rest"
done

# the living index: deltas, then a deletion marked by VACUUM
sql -c 'CREATE INDEX churn_idx ON churn USING vecstore (v vector_l2_ops) WITH (lists = 4)' \
    -c 'INSERT INTO churn SELECT id + 100000, v FROM churn WHERE id % 10 = 0' \
    -c 'DELETE FROM churn WHERE id % 7 = 0' -c 'VACUUM churn'
indexes+=("churn_idx")

# digest NAME FORK - md5 of every block of FORK, pd_lsn and pd_checksum zeroed
digest() {
    sql -tAc "SELECT md5(string_agg(
                  '\\x00000000000000000000'::bytea || substr(get_raw_page('$1', '$2', b::int), 11),
                  ''::bytea ORDER BY b))
              FROM generate_series(0, pg_relation_size('$1', '$2') / 8192 - 1) b"
}

for spec in "${indexes[@]}"; do
    name=${spec%% *}
    line=$(sql -tAF ' ' -c "SELECT sealed_rows + delta_rows, clusters, segment_file, segment_bytes
                              FROM vecstore_index_info('$name')")
    read -r nrows nclusters path bytes <<<"$line"
    fork=$(digest "$name" main)
    seg=$(sql -tAc "SELECT md5(pg_read_binary_file('$path', 4096, $bytes - 4096))")
    extra=
    if [ "$(sql -tAc "SELECT relpersistence FROM pg_class WHERE relname = '$name'")" = u ]; then
        extra=" init $(digest "$name" init)"
    fi
    echo "$name rows $nrows clusters $nclusters fork $fork segment $seg$extra"
done
