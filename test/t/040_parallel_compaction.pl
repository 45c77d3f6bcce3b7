#-------------------------------------------------------------------------
#
# 040_parallel_compaction.pl
#     TAP test: a compaction shares the graphs it builds anew with
#     parallel workers (src/vscompact.c, "Parallel graphs";
#     vsbuild_parallel.c) and writes the same bytes as a serial one.
#
# Two tables get the same rows in the same order, each an index built the
# same way.  (A) vecstore_compact() splits every cluster (max_cluster_rows
# lowered): serially on one, with max_parallel_maintenance_workers = 2 on
# the other, which must say that it shared its graphs with a worker; the
# forks (every page, LSN and checksum left out) and the segment files'
# bodies are then the same.  (B) the same rows inserted into both and
# VACUUM, which splits and extends graphs: again the same bytes, and the
# parallel one's index returns every row once and verifies clean.  (C)
# with max_parallel_maintenance_workers = 0 nothing is shared.
#
# IDENTIFICATION
#     test/t/040_parallel_compaction.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(quiet_node check_index_rows fork_digest segment_digest);

my $node = quiet_node('parallel_compaction', qq{
maintenance_work_mem = '256MB'
max_worker_processes = 8
});

# row i: 8 coordinates in [0, 1) from a hash of (i, j)
my $ROW =
  q{(SELECT array_agg((hashint4(i * 8 + j) & 65535) / 65536.0 ORDER BY j) }
  . q{FROM generate_series(0, 7) j)::vector(8)};

$node->safe_psql('postgres', q{CREATE EXTENSION vecstore; CREATE EXTENSION pageinspect;});
foreach my $t ('s', 'p')
{
    $node->safe_psql(
        'postgres', qq{
        CREATE TABLE $t (id int PRIMARY KEY, v vector(8));
        INSERT INTO $t SELECT i, $ROW FROM generate_series(1, 48000) i;
        CREATE INDEX ${t}_idx ON $t USING vecstore (v) WITH (lists = 4, max_cluster_rows = 100000);
        ALTER INDEX ${t}_idx SET (max_cluster_rows = 4000);
    });
}

# digests of index IDX: its fork (LSN and checksum zeroed) and its
# segment file's body
sub digests
{
    my ($idx) = @_;
    return fork_digest($node, $idx, 'main') . ' ' . segment_digest($node, $idx);
}

# run SQL with WORKERS, at DEBUG1; how many workers it said it shared
# graphs with
sub run_with
{
    my ($workers, $sql, $what) = @_;
    my ($ret, $out, $err) = $node->psql(
        'postgres', qq{
SET max_parallel_maintenance_workers = $workers;
SET client_min_messages = debug1;
$sql
});
    is($ret, 0, $what) or diag($err);
    my ($shared) = $err =~ /graphs of index "\w+" shared with (\d+) parallel workers/;
    return $shared // 0;
}

# (A) every cluster split by vecstore_compact()
is(run_with(0, "SELECT vecstore_compact('s_idx', false);", 'A: serial compaction'),
    0, 'A: the serial compaction shared nothing');
cmp_ok(run_with(2, "SELECT vecstore_compact('p_idx', false);", 'A: parallel compaction'),
    '>=', 1, 'A: the compaction shared its new graphs with workers');
cmp_ok($node->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('p_idx')"),
    '>', 4, 'A: the clusters were split');
is(digests('p_idx'), digests('s_idx'), 'A: the same bytes as the serial compaction');

# (B) rows inserted, then VACUUM: splits and extended graphs
foreach my $t ('s', 'p')
{
    $node->safe_psql('postgres',
        "INSERT INTO $t SELECT i, $ROW FROM generate_series(48001, 160000) i");
}
run_with(0, 'VACUUM s;', 'B: serial VACUUM');
cmp_ok(run_with(2, 'VACUUM p;', 'B: parallel VACUUM'),
    '>=', 1, 'B: VACUUM shared its new graphs with workers');
is(digests('p_idx'), digests('s_idx'), 'B: the same bytes as the serial VACUUM');
check_index_rows($node, 'B', 'p', 'p_idx', '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]');

# (C) no workers asked for: none
$node->safe_psql('postgres',
    "INSERT INTO p SELECT i, $ROW FROM generate_series(160001, 200000) i");
is(run_with(0, "SELECT vecstore_compact('p_idx', false);", 'C: compaction without workers'),
    0, 'C: max_parallel_maintenance_workers = 0 shares nothing');
check_index_rows($node, 'C', 'p', 'p_idx', '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]');

done_testing();
