#-------------------------------------------------------------------------
#
# 023_merge.pl
#     TAP test: a compaction merges clusters shrunk under min_cluster_rows,
#     online, and no row is lost, on the primary or on a standby.
#
# Eight groups of 500 rows, far apart, make an index of eight clusters.
# (A) Deleting all but 20 rows of two groups, VACUUM merges their clusters:
# six are left, an exact index scan returns every live row once, queries
# answer as a sequential scan does, vecstore_verify is clean, and rows
# inserted where a merged cluster was are found.  (B) A compaction that
# merges a third cluster is held (vecstore.debug_compaction_stop, set in
# postgresql.conf, released by a reload) while rows are inserted into that
# cluster's delta chain: after the merge is published they are still found
# (read with the chain of the merged cluster's host), and the next
# compaction gives them to the clusters left.  (C) The standby answers as
# the primary.
#
# IDENTIFICATION
#     test/t/023_merge.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(blob_sql blob_nearest check_blob_index compaction_stop_everywhere $EXACT_SCAN $SEQ_SCAN);

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

# group g (0..7) is a blob of side 1 around (10 g, ..., 10 g)
$node->safe_psql(
    'postgres', blob_sql() . q{
    CREATE TABLE m (id int PRIMARY KEY, g int, v vector(8));
    INSERT INTO m SELECT i, i % 8, blob(i % 8, i) FROM generate_series(1, 4000) i;
    CREATE INDEX m_idx ON m USING vecstore (v) WITH (lists = 8, min_cluster_rows = 100);
});
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;

sub clusters
{
    my ($n) = @_;
    return $n->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('m_idx')");
}

is(clusters($node), '8', 'built: 8 clusters');

# the centres of the groups
my @GROUPS = map { 10 * $_ + 0.5 } 0 .. 7;

# (A) two groups shrink: their clusters are merged
$node->safe_psql(
    'postgres', q{
    DELETE FROM m WHERE g IN (3, 5) AND id > 160;
    VACUUM m;
});
is(clusters($node), '6', 'A: the two shrunk clusters are merged');
check_blob_index($node, 'A', @GROUPS);
is( blob_nearest($node, 'SET enable_seqscan = off;', 30.5, 20),
    blob_nearest($node, $SEQ_SCAN, 30.5, 20),
    'A: at the defaults, the 20 rows left of a merged group are found');
$node->safe_psql('postgres',
    'INSERT INTO m SELECT i, 3, blob(3, i) FROM generate_series(5001, 5100) i');
is( $node->safe_psql('postgres',
        "$EXACT_SCAN SELECT count(*) FROM (SELECT id, g FROM m ORDER BY v <-> "
          . "'[30,30,30,30,30,30,30,30]' LIMIT 120) s WHERE g = 3"),
    '120', 'A: rows inserted where a merged cluster was are found');
check_blob_index($node, 'A, after inserts', @GROUPS);

# (B) a compaction that merges group 6's cluster waits while rows go into
# that cluster's delta chain
# (VACUUM marks the removed rows; compaction_threshold = 0 keeps it from compacting)
$node->safe_psql('postgres',
        'ALTER INDEX m_idx SET (compaction_threshold = 0); '
      . 'DELETE FROM m WHERE g = 6 AND id > 160; VACUUM m; '
      . 'ALTER INDEX m_idx RESET (compaction_threshold);');
is(clusters($node), '6', 'B: VACUUM with compaction_threshold = 0 merges nothing');
compaction_stop_everywhere($node, 'written');
my $bg     = $node->background_psql('postgres', on_error_stop => 1);
my $logpos = -s $node->logfile;
$bg->query_until(qr/compacting/,
    "\\echo compacting\nSELECT clusters FROM vecstore_compact('m_idx');\n");
$node->wait_for_log(qr/compaction waits at "written"/, $logpos);
$node->safe_psql('postgres',
    'INSERT INTO m SELECT i, 6, blob(6, i) FROM generate_series(6001, 6050) i');
is( $node->safe_psql('postgres',
        "SELECT delta_rows >= 50 FROM vecstore_index_info('m_idx')"),
    't', 'B: 50 rows inserted while the compaction waits');
compaction_stop_everywhere($node, 'none');
$bg->quit;
$node->poll_query_until('postgres',
    "SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%vecstore_compact(%' "
      . "AND pid <> pg_backend_pid()")
  or die 'the compaction did not finish';
is(clusters($node), '5', 'B: the compaction merged the shrunk cluster');
is( $node->safe_psql('postgres',
        "$EXACT_SCAN SELECT count(*) FROM (SELECT id, g FROM m ORDER BY v <-> "
          . "'[60,60,60,60,60,60,60,60]' LIMIT 70) s WHERE g = 6"),
    '70', 'B: the rows inserted meanwhile are found after the merge');
check_blob_index($node, 'B, merged', @GROUPS);
$node->safe_psql('postgres', "SELECT * FROM vecstore_compact('m_idx')");
is($node->safe_psql('postgres', "SELECT delta_rows FROM vecstore_index_info('m_idx')"),
    '0', 'B: the next compaction folds them into the clusters left');
check_blob_index($node, 'B, folded', @GROUPS);

# (C) the standby replays the merges
$node->wait_for_catchup($standby, 'replay');
is(clusters($standby), '5', 'C: the standby has 5 clusters');
for my $g (0 .. 7)
{
    is( blob_nearest($standby, $EXACT_SCAN, 10 * $g + 0.5, 30),
        blob_nearest($node, $EXACT_SCAN, 10 * $g + 0.5, 30),
        "C: the standby's 30 nearest to group $g are the primary's");
}

done_testing();
