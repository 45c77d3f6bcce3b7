#-------------------------------------------------------------------------
#
# 039_split_cells.pl
#     TAP test: after a compaction splits clusters, every row is in the
#     cluster of its nearest centroid, on the primary and on a standby.
#
# The adaptive scan's bounds assume that each row lies in its cluster's
# Voronoi cell (src/vsscan_policy.c).  A split gives its parts centroids of
# their own: rows of the split cluster may then be nearer a neighbour's
# centroid than any part's, and rows of a neighbour nearer a part than
# their own centroid; the compaction gives such rows to the cluster of the
# nearest centroid (src/vscompact.c, plan_moves).  The check: with
# vecstore.probes = 1 a query reads only the cluster of the centroid
# nearest to it, so every row, used as a query, must find itself (at
# distance 0) exactly when it lies in that cluster.  Before plan_moves,
# 843 of the 5,000 rows below did not.
#
# 2,000 rows of 8 dimensions spread evenly in the unit cube, an index of 4
# clusters that splits above 1,000 rows, then 3,000 rows more and VACUUM
# (splits); then a third of the rows deleted, 7,000 inserted and VACUUM
# again (splits with removed rows).  Each time: the check above, an exact
# index scan returns every live row once, vecstore_verify finds nothing,
# and the nearest rows of a few queries are a sequential scan's; the
# standby answers the check as the primary.  (C) CREATE INDEX splits a
# cluster its sample says will pass the automatic bound, and the rows are
# then in their cells too.  (D) The rows a split's neighbours give away,
# and rows VACUUM removed, kept in place as dead rows while few, so that
# the neighbours' graphs are extended, not built anew; dropped past that.
# (E) The bits a compaction set before it was cancelled do not hide the
# rows of the next one.
#
# IDENTIFICATION
#     test/t/039_split_cells.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(check_index_rows compaction_waiting $EXACT_SCAN $SEQ_SCAN);

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

# row i: 8 coordinates in [0, 1) from a hash of (i, j), the same everywhere
my $ROW =
  q{(SELECT array_agg((hashint4(i * 8 + j) & 65535) / 65536.0 ORDER BY j) }
  . q{FROM generate_series(0, 7) j)::vector(8)};

$node->safe_psql(
    'postgres', qq{
    CREATE TABLE c (id int PRIMARY KEY, v vector(8));
    INSERT INTO c SELECT i, $ROW FROM generate_series(1, 2000) i;
    CREATE INDEX c_idx ON c USING vecstore (v) WITH (lists = 4, max_cluster_rows = 1000);
});
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;

# rows of table $t that a query reading only its nearest centroid's
# cluster misses
sub outside
{
    my ($t) = @_;

    return 'SET enable_seqscan = off; SET vecstore.probes = 1; SET vecstore.ef_search = 1000; '
      . "SELECT count(*) FROM $t a WHERE "
      . "(SELECT b.v <-> a.v FROM $t b ORDER BY b.v <-> a.v LIMIT 1) > 0";
}

# table $t (index ${t}_idx, rows $row of i): every row in its cell, the
# index's rows, and the 10 nearest of the rows numbered @ids as queries
sub check_table
{
    my ($what, $t, $row, @ids) = @_;

    is($node->safe_psql('postgres', outside($t)),
        '0', "$what: every row is in the cluster of its nearest centroid");
    check_index_rows($node, $what, $t, "${t}_idx", '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]');
    for my $q (1 .. @ids)
    {
        my $sql = "SELECT string_agg(id::text, ',') FROM (SELECT id FROM $t ORDER BY v <-> "
          . "(SELECT $row FROM (SELECT $ids[$q - 1] AS i) x) LIMIT 10) s";
        is( $node->safe_psql('postgres', "$EXACT_SCAN $sql"),
            $node->safe_psql('postgres', "$SEQ_SCAN $sql"),
            "$what: query $q finds a sequential scan's 10 nearest");
    }
    return;
}

# table c, and its standby
sub check
{
    my ($what) = @_;

    check_table($what, 'c', $ROW, map { 100000 + $_ } 1 .. 5);
    $node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
    is($standby->safe_psql('postgres', outside('c')),
        '0', "$what: on the standby too");
    return;
}

is($node->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('c_idx')"),
    '4', 'built: 4 clusters');

# (A) 3,000 rows more: every cluster passes 1,000 rows and is split
$node->safe_psql('postgres',
    "INSERT INTO c SELECT i, $ROW FROM generate_series(2001, 5000) i; VACUUM c;");
cmp_ok($node->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('c_idx')"),
    '>', 4, 'A: VACUUM split clusters');
check('A');

# (B) removed rows in the clusters that are split and that give rows away
my $before = $node->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('c_idx')");
$node->safe_psql('postgres',
        "DELETE FROM c WHERE id % 3 = 0; "
      . "INSERT INTO c SELECT i, $ROW FROM generate_series(5001, 12000) i; VACUUM c;");
cmp_ok($node->safe_psql('postgres', "SELECT clusters FROM vecstore_index_info('c_idx')"),
    '>', $before, 'B: VACUUM split clusters again');
is($node->safe_psql('postgres', "SELECT delta_rows + dead_rows FROM vecstore_index_info('c_idx')"),
    '0', 'B: VACUUM re-sealed every cluster');
check('B');

# (C) CREATE INDEX splits what its sample says will pass the automatic
# bound (src/vsbuild.c, split_oversized) when lists and max_cluster_rows
# are automatic: four groups (unit cubes 5.6 or more apart) of 18,000 and
# three times 2,000 rows, so lists = 24,000 / 5,000 = 4 and the bound is
# twice the mean, 12,000 rows; the same table indexed with a bound of its
# own keeps k-means' four clusters, the largest past that.  The groups
# lie in the table in order: k-means finds all four only if it trains on
# a uniform sample (before the sample's first rows were shuffled, it
# trained on the table's first 10,000 rows, all of the first group).
my $BLOB =
    q{(SELECT array_agg(CASE WHEN i <= 18000 THEN 0 WHEN i <= 20000 THEN 4 }
  . q{WHEN i <= 22000 THEN -4 WHEN j % 2 = 0 THEN -4 ELSE 4 END }
  . q{+ ((hashint4(i * 8 + j) & 65535) / 65536.0 - 0.5) ORDER BY j) }
  . q{FROM generate_series(0, 7) j)::vector(8)};
$node->safe_psql(
    'postgres', qq{
    CREATE TABLE d (id int PRIMARY KEY, v vector(8));
    INSERT INTO d SELECT i, $BLOB FROM generate_series(1, 24000) i;
    CREATE INDEX d_own ON d USING vecstore (v) WITH (max_cluster_rows = 100000);
});
is($node->safe_psql('postgres', "SELECT clusters || ' ' || max_cluster_rows FROM vecstore_index_info('d_own')"),
    '4 18000', 'C: with a bound of its own, the build keeps the 4 clusters of k-means');
$node->safe_psql('postgres', 'DROP INDEX d_own; CREATE INDEX d_idx ON d USING vecstore (v)');
my ($nclusters, $largest) = split /\|/, $node->safe_psql('postgres',
    "SELECT clusters, max_cluster_rows FROM vecstore_index_info('d_idx')");
cmp_ok($nclusters, '>', 4, 'C: the build split the cluster past the automatic bound');
cmp_ok($largest, '<=', 12000, 'C: no cluster past the bound');
check_table('C', 'd', $BLOB, 7000, 14000, 21000);

# (D) a split's neighbours re-sealed with their graphs extended
# (src/vscompact.c, "Extended re-seals"): three clusters of about 3,000
# rows (each with a graph), then 1,800 rows near row 1 split its cluster;
# the rows the neighbours give to the parts stay in them as dead rows
# (nothing was deleted), skipped by scans, and a forced compaction drops
# them.  The same for rows VACUUM removed: 2 % deleted with 9 % more rows
# inserted are kept as dead rows; a compaction that would keep too many
# drops them all.
my $NEAR =
    q{(SELECT array_agg(x + 0.3 * ((hashint4(i * 8 + j::int) & 65535) / 65536.0 - 0.5) ORDER BY j) }
  . q{FROM unnest((SELECT v::real[] FROM e WHERE id = 1)) WITH ORDINALITY AS u(x, j))::vector(8)};
$node->safe_psql(
    'postgres', qq{
    CREATE TABLE e (id int PRIMARY KEY, v vector(8));
    INSERT INTO e SELECT i, $ROW FROM generate_series(1, 9000) i;
    CREATE INDEX e_idx ON e USING vecstore (v) WITH (lists = 3, max_cluster_rows = 3900);
    INSERT INTO e SELECT i, $NEAR FROM generate_series(100001, 101800) i;
    VACUUM e;
});
my ($eclusters, $edead) = split /\|/, $node->safe_psql('postgres',
    "SELECT clusters, dead_rows FROM vecstore_index_info('e_idx')");
is($eclusters, '4', 'D: the cluster near row 1 was split');
cmp_ok($edead, '>', 0, 'D: its neighbours keep the rows they gave away as dead rows');
check_table('D', 'e', $ROW, 1, 2, 3);
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
is($standby->safe_psql('postgres', outside('e')), '0', 'D: on the standby too');
$node->safe_psql('postgres', "SELECT vecstore_compact('e_idx', true)");
is($node->safe_psql('postgres', "SELECT dead_rows FROM vecstore_index_info('e_idx')"),
    '0', 'D: a forced compaction drops them');
check_table('D, compacted', 'e', $ROW, 1, 2, 3);
my $ndel = $node->safe_psql('postgres', 'SELECT count(*) FROM e WHERE id % 50 = 0');
$node->safe_psql('postgres',
        "ALTER INDEX e_idx SET (compaction_threshold = 0); "
      . "DELETE FROM e WHERE id % 50 = 0; "
      . "INSERT INTO e SELECT i, $ROW FROM generate_series(200001, 201000) i; VACUUM e; "
      . "ALTER INDEX e_idx RESET (compaction_threshold);");
my ($eres, $efolded, $eremoved) = split /\|/, $node->safe_psql('postgres',
    "SELECT clusters, rows_folded, rows_removed FROM vecstore_compact('e_idx', false)");
cmp_ok($eres, '>', 0, 'D: a compaction re-sealed clusters');
cmp_ok($efolded, '>', 0, 'D: it folded the new rows');
is($eremoved . ' ' . $node->safe_psql('postgres', "SELECT dead_rows FROM vecstore_index_info('e_idx')"),
    "0 $ndel", 'D: it kept the removed rows in place, as dead rows');
check_table('D, removed rows kept', 'e', $ROW, 1, 2, 3);
$node->safe_psql('postgres', "DELETE FROM e WHERE id % 5 = 1; VACUUM e;");
is($node->safe_psql('postgres', "SELECT dead_rows FROM vecstore_index_info('e_idx')"),
    '0', 'D: past the limit, the removed rows are dropped');
check_table('D, removed rows dropped', 'e', $ROW, 3, 4, 5);

# (E) a compaction that keeps removed rows sets their bits (at the rows it
# numbers, past those in use) before its switch; one cancelled after that
# must leave no bit a later compaction's rows would meet: a forced one
# keeps no removed row, so such a bit would hide a live row.
$node->safe_psql('postgres',
        "ALTER INDEX e_idx SET (compaction_threshold = 0); "
      . "DELETE FROM e WHERE id % 50 = 7; "
      . "INSERT INTO e SELECT i, $ROW FROM generate_series(300001, 301000) i; VACUUM e; "
      . "ALTER INDEX e_idx RESET (compaction_threshold);");
my $edead2 = $node->safe_psql('postgres', "SELECT dead_rows FROM vecstore_index_info('e_idx')");
my ($bg, $bgpid) =
  compaction_waiting($node, 'logged', "SELECT * FROM vecstore_compact('e_idx', false)");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($bgpid)");
$bg->quit;
is($node->safe_psql('postgres', "SELECT dead_rows FROM vecstore_index_info('e_idx')"),
    $edead2, 'E: the cancelled compaction published nothing');
is( $node->safe_psql(
        'postgres', q{
SELECT count(*) FROM pg_ls_dir('pg_vecstore/' || (SELECT oid FROM pg_database
                                                 WHERE datname = current_database())) f
WHERE f LIKE pg_relation_filenode('e_idx') || '.%.seg'
  AND split_part(f, '.', 2)::int > (SELECT segment_generation FROM vecstore_index_info('e_idx'))}),
    '0', 'E: and left no file of the generation it did not publish');
check_table('E, cancelled', 'e', $ROW, 6, 7, 8);
is($node->safe_psql('postgres', "SELECT rows_removed FROM vecstore_compact('e_idx', true)"),
    $edead2, 'E: a forced compaction drops the removed rows');
is($node->safe_psql('postgres', "SELECT dead_rows FROM vecstore_index_info('e_idx')"),
    '0', 'E: and keeps none');
check_table('E, compacted again', 'e', $ROW, 6, 7, 8);

# (F) merges and splits in one compaction: the rows a cluster takes are
# read from their givers in the old generation when it is written
# (src/vscompact.c, "Incoming"), those of merged clusters and those moved
# after a split, and a cluster that took merged rows may give some of them
# away again.  16 clusters; the rows near one corner deleted (clusters
# there merge), 6,000 rows in the opposite half (clusters there split).
my $FAR =
  q{(SELECT array_agg(0.5 + (hashint4(i * 8 + j) & 65535) / 131072.0 ORDER BY j) }
  . q{FROM generate_series(0, 7) j)::vector(8)};
$node->safe_psql(
    'postgres', qq{
    CREATE TABLE f (id int PRIMARY KEY, v vector(8));
    INSERT INTO f SELECT i, $ROW FROM generate_series(1, 8000) i;
    CREATE INDEX f_idx ON f USING vecstore (v)
        WITH (lists = 16, max_cluster_rows = 1200, min_cluster_rows = 300);
    DELETE FROM f WHERE (SELECT sum(x) FROM unnest(v::real[]) x) < 3.2;
    INSERT INTO f SELECT i, $FAR FROM generate_series(100001, 106000) i;
});
my ($frc, $fout, $ferr) =
  $node->psql('postgres', 'SET client_min_messages = debug1; VACUUM f;');
is($frc, 0, 'F: VACUUM');
my ($fsplit, $fmerged, $fmoved) =
  $ferr =~ /compaction of "f_idx": \d+ clusters, (\d+) split, (\d+) merged, \d+ merged slots reused, (\d+) rows moved/;
ok(defined $fsplit && $fsplit > 0 && $fmerged > 0 && $fmoved > 0,
    'F: the compaction split, merged and moved rows'
      . (defined $fsplit ? " ($fsplit, $fmerged, $fmoved)" : ''));
check_table('F', 'f', $ROW, 1, 2, 3);
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
is($standby->safe_psql('postgres', outside('f')), '0', 'F: on the standby too');

done_testing();
