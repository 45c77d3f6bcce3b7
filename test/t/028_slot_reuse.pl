#-------------------------------------------------------------------------
#
# 028_slot_reuse.pl
#     TAP test: a split puts its new parts into the slots of clusters
#     merged before, so an index that keeps changing shape does not use up
#     its directory; no row is lost, on the primary or on a standby.
#
# Eight groups of 500 rows, far apart, make an index of eight clusters
# (max_cluster_rows = 1200, min_cluster_rows = 100).  (A) Two groups
# shrink to 20 rows: their clusters are merged, eight slots, six live.
# (B) Another group grows to 2000 rows: its cluster splits into three, and
# the two new parts take the two merged slots: eight slots, eight live
# (without reuse there would be ten).  (C) The same again elsewhere: two
# more groups shrink and merge, another grows and splits, and the slots
# stay eight.  After each step an exact index scan returns every live row
# once, the 30 nearest rows of several queries are a sequential scan's,
# and vecstore_verify is clean; rows inserted then and folded by the next
# compaction are found, and where it splits again, with no merged slot
# left, it appends slots.  (D) The standby answers as the primary.
#
# The slots (the metapage's nclusters, live and merged) are read from the
# metapage with pageinspect: vecstore_index_info counts live clusters
# only.
#
# IDENTIFICATION
#     test/t/028_slot_reuse.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(blob_sql blob_nearest check_blob_index $EXACT_SCAN $SEQ_SCAN);

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore; CREATE EXTENSION pageinspect');

# group g (0..7) is a blob of side 1 around (10 g, ..., 10 g)
$node->safe_psql(
    'postgres', blob_sql() . q{
    CREATE TABLE m (id int PRIMARY KEY, g int, v vector(8));
    INSERT INTO m SELECT i, i % 8, blob(i % 8, i) FROM generate_series(1, 4000) i;
    CREATE INDEX m_idx ON m USING vecstore (v)
      WITH (lists = 8, min_cluster_rows = 100, max_cluster_rows = 1200);
});
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;

# live clusters
sub clusters
{
    my ($n) = @_;
    return $n->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('m_idx')");
}

# cluster slots, live and merged: the metapage's nclusters (VsMetaPageData,
# the fifth uint32 after the 24-byte page header, little-endian)
sub slots
{
    my ($n) = @_;
    return $n->safe_psql('postgres',
            "SELECT get_byte(p, 40) + 256 * get_byte(p, 41) + 65536 * get_byte(p, 42) FROM "
          . "get_raw_page('m_idx', 0) p");
}

is(clusters($node), '8', 'built: 8 clusters');
is(slots($node),    '8', 'built: 8 slots');

# the centres of the groups, and points between them
my @QUERIES = map { 10 * $_ + 0.5 } 0 .. 7;
push @QUERIES, 5, 15.3, 35, 52;

# (A) two groups shrink: their clusters are merged, their slots stay
$node->safe_psql('postgres',
    'DELETE FROM m WHERE g IN (3, 5) AND id > 160; VACUUM m; '
      . "SELECT * FROM vecstore_compact('m_idx')");
is(clusters($node), '6', 'A: the two shrunk clusters are merged');
is(slots($node),    '8', 'A: 8 slots, 2 of them merged');
check_blob_index($node, 'A', @QUERIES);

# (B) another group grows past max_cluster_rows: its cluster splits, and
# the new parts take the merged slots
$node->safe_psql('postgres',
    'INSERT INTO m SELECT i, 1, blob(1, i) FROM generate_series(10001, 11500) i; '
      . "SELECT * FROM vecstore_compact('m_idx')");
is(clusters($node), '8', 'B: the grown cluster is split in three');
is(slots($node),    '8', 'B: its new parts took the merged slots: still 8 slots');
check_blob_index($node, 'B', @QUERIES);

# (C) again elsewhere: two more groups shrink, another grows
$node->safe_psql('postgres',
    'DELETE FROM m WHERE g IN (0, 7) AND id > 160; VACUUM m; '
      . "SELECT * FROM vecstore_compact('m_idx')");
is(clusters($node), '6', 'C: two more shrunk clusters are merged');
is(slots($node),    '8', 'C: 8 slots, 2 of them merged');
check_blob_index($node, 'C, merged', @QUERIES);
$node->safe_psql('postgres',
    'INSERT INTO m SELECT i, 6, blob(6, i) FROM generate_series(20001, 21500) i; '
      . "SELECT * FROM vecstore_compact('m_idx')");
is(clusters($node), '8', 'C: the grown cluster is split in three');
is(slots($node),    '8', 'C: its new parts took the merged slots: still 8 slots');
check_blob_index($node, 'C, split', @QUERIES);

# rows inserted now go to the reused slots' clusters too
$node->safe_psql('postgres',
    'INSERT INTO m SELECT i, 1, blob(1, i) FROM generate_series(30001, 30300) i; '
      . 'INSERT INTO m SELECT i, 6, blob(6, i) FROM generate_series(31001, 31300) i');
check_blob_index($node, 'C, inserts', @QUERIES);
$node->safe_psql('postgres', "SELECT * FROM vecstore_compact('m_idx')");
check_blob_index($node, 'C, folded', @QUERIES);
is(slots($node), clusters($node),
    'C: slots past the eight only once no merged slot was left (' . slots($node) . ' slots)');

# (D) the standby replays it all
$node->wait_for_catchup($standby, 'replay');
is(clusters($standby), clusters($node), "D: the standby has the primary's live clusters");
is(slots($standby),    slots($node),    "D: the standby has the primary's slots");
for my $x (@QUERIES)
{
    is(blob_nearest($standby, $EXACT_SCAN, $x, 30), blob_nearest($node, $EXACT_SCAN, $x, 30),
        "D: the standby's 30 nearest to ($x, ...) are the primary's");
}

done_testing();
