#-------------------------------------------------------------------------
#
# 012_index_standby.pl
#     TAP test: a streaming standby answers vecstore index scans exactly as
#     its primary does, with segment files it builds itself.
#
# Segment files are not WAL-logged, so a standby has only the index fork
# (replayed) and must rebuild the segments from it.  The primary gets:
#   items  (l2, lists = 50): built before the base backup; the standby's
#          copy of the backup has its pg_vecstore/ removed before it starts;
#   items2 (cosine, lists = 20): created after the standby is streaming, so
#          only WAL carries it.
# Then, on the primary: 20% more rows (delta chains), 10% deleted and a
# VACUUM (deletion bitmap).  After wait_for_catchup, for 20 queries at
# probes = 10 and at probes = lists (enable_seqscan = off on both sides),
# the standby returns the same ids in the same order with the same
# distances as the primary; vecstore_index_info agrees on the counts; the
# standby's segment files exist under its own pg_vecstore/ once queried;
# vecstore_verify is clean there (every page's CRC included: replay keeps
# the CRCs the primary's writers set).  A REINDEX of items2 on the primary:
# the standby answers through the new relfilenode, writing its file, and
# removes the old one's (older than the sweep's minute: backdated).
# Finally the standby is promoted, takes inserts, and finds them through
# the index.
#
# Data: sift128-photos-euclidean and glove6b-100-angular from
# $VECSTORE_DATA, else generated vectors.
#
# IDENTIFICATION
#     test/t/012_index_standby.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(dataset_literals);

my $NBASE    = 10_000;
my $NQUERIES = 20;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
max_connections = 20
maintenance_work_mem = 128MB
max_wal_size = 1GB
log_statement = 'ddl'
statement_timeout = '300s'
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION vecstore');

#
# load - a table (id, v) with n + n/5 rows of a data set in a staging
# table, and the queries; returns the dimension and the query literals.
#
sub load
{
    my ($table, $dataset, $seed) = @_;
    my $n = $NBASE + $NBASE / 5;
    my ($dim, $base, $queries) = dataset_literals($dataset, $n, $NQUERIES, $seed);
    $primary->safe_psql('postgres',
        "CREATE TABLE stage_$table (id int, v vector($dim));\n"
          . "CREATE TABLE $table (id int PRIMARY KEY, v vector($dim));\n"
          . "COPY stage_$table FROM STDIN;\n"
          . join('', map { ($_ + 1) . "\t$base->[$_]\n" } 0 .. $#$base)
          . "\\.\n"
          . "INSERT INTO $table SELECT * FROM stage_$table WHERE id <= $NBASE;\n");
    return $queries;
}

my $q1 = load('items',  'sift128-photos-euclidean', 10);
my $q2 = load('items2', 'glove6b-100-angular',      20);

$primary->safe_psql('postgres',
    'CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) WITH (lists = 50)');

# the standby, from a base backup without segment files
$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
note 'the backup holds pg_vecstore/: '
  . (-d $standby->data_dir . '/pg_vecstore' ? 'yes' : 'no');
rmtree($standby->data_dir . '/pg_vecstore');
$standby->start;

# items2's index exists only in the WAL the standby streams
$primary->safe_psql('postgres',
    'CREATE INDEX items2_v_idx ON items2 USING vecstore (v vector_cosine_ops) WITH (lists = 20)');

# more rows, deletes and a VACUUM on the primary
for my $t (qw(items items2))
{
    $primary->safe_psql(
        'postgres', qq{
        INSERT INTO $t SELECT * FROM stage_$t WHERE id > $NBASE;
        DELETE FROM $t WHERE id % 10 = 4;
        VACUUM ANALYZE $t;
        INSERT INTO $t SELECT id + 100000, v FROM stage_$t WHERE id % 10 = 4 AND id < 2000;
    });
}
$primary->wait_for_catchup($standby, 'replay');

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is( $standby->safe_psql('postgres', 'SELECT count(*) FROM items'),
    $primary->safe_psql('postgres', 'SELECT count(*) FROM items'),
    'the standby has caught up');

#
# knn - ids and distances of every query, one line per query.
#
sub knn
{
    my ($node, $table, $op, $queries, $probes) = @_;
    my $sql = "SET enable_seqscan = off; SET vecstore.probes = $probes;\n";
    for my $i (0 .. $#$queries)
    {
        my $q = "'$queries->[$i]'";
        $sql .= "SELECT $i, string_agg(id || ':' || d, ' ' ORDER BY rn) FROM "
          . "(SELECT id, v $op $q AS d, row_number() OVER () AS rn FROM "
          . "(SELECT id, v FROM $table ORDER BY v $op $q LIMIT 10) s) s;\n";
    }
    return $node->safe_psql('postgres', $sql);
}

my %cases = (
    items  => { op => '<->', lists => 50, queries => $q1 },
    items2 => { op => '<=>', lists => 20, queries => $q2 });
for my $t (sort keys %cases)
{
    my $c   = $cases{$t};
    my $idx = "${t}_v_idx";
    my $qlit = "'$c->{queries}[0]'";

    for my $node ($primary, $standby)
    {
        like(
            $node->safe_psql('postgres',
                "SET enable_seqscan = off; EXPLAIN (COSTS OFF) "
                  . "SELECT id FROM $t ORDER BY v $c->{op} $qlit LIMIT 10"),
            qr/Index Scan using $idx on $t/,
            "$t: " . $node->name . ' uses the index');
    }
    for my $probes (10, $c->{lists})
    {
        my $p = knn($primary, $t, $c->{op}, $c->{queries}, $probes);
        my $s = knn($standby, $t, $c->{op}, $c->{queries}, $probes);
        my @plines = split /\n/, $p;
        is(scalar(grep { (split / /)[9] } @plines), $NQUERIES,
            "$t, probes $probes: the primary returns 10 rows for each of $NQUERIES queries");
        is($s, $p, "$t, probes $probes: the standby returns exactly the primary's results");
    }

    my $cols = 'clusters, sealed_rows, delta_rows, dead_rows, segment_generation';
    my $pinfo = $primary->safe_psql('postgres', "SELECT $cols FROM vecstore_index_info('$idx'::regclass)");
    is($standby->safe_psql('postgres', "SELECT $cols FROM vecstore_index_info('$idx'::regclass)"),
        $pinfo, "$t: vecstore_index_info agrees on the standby ($cols = $pinfo)");

    my $seg = $standby->safe_psql('postgres',
        "SELECT segment_file FROM vecstore_index_info('$idx'::regclass)");
    like($seg, qr{^pg_vecstore/\d+/\d+\.\d+\.seg$}, "$t: the standby names its segment ($seg)");
    ok(-f $standby->data_dir . "/$seg", "$t: the standby built its own segment file");
    is($standby->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$idx'::regclass)"),
        '0', "$t: vecstore_verify finds no problem on the standby");
}

# a REINDEX on the primary leaves the standby's file of the old
# relfilenode to no one (replay runs none of the primary's removal
# hooks): the standby sweeps it when it writes the new one
{
    my $info = "SELECT segment_file FROM vecstore_index_info('items2_v_idx'::regclass)";
    my $old  = $standby->safe_psql('postgres', $info);
    ok(-f $standby->data_dir . "/$old", "before the REINDEX, the standby has $old");
    # the sweep leaves files younger than a minute alone
    utime(time - 3600, time - 3600, $standby->data_dir . "/$old");
    $primary->safe_psql('postgres', 'REINDEX INDEX items2_v_idx');
    $primary->wait_for_catchup($standby, 'replay');
    is( $standby->safe_psql('postgres',
            'SET enable_seqscan = off; SELECT count(*) FROM '
              . "(SELECT id FROM items2 ORDER BY v <=> (SELECT v FROM items2 LIMIT 1) LIMIT 5) s"),
        '5', 'after the REINDEX, the standby answers through the rebuilt index');
    my $new = $standby->safe_psql('postgres', $info);
    isnt($new, $old, "the standby wrote the new relfilenode's file ($new)");
    ok(!-f $standby->data_dir . "/$old", "and removed the old one's ($old)");
}

# promote: the former standby takes writes, and finds them
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the standby did not leave recovery';
$standby->safe_psql('postgres',
    "INSERT INTO items SELECT id + 200000, v FROM stage_items WHERE id % 100 = 7");
my $lit = $standby->safe_psql('postgres', 'SELECT v FROM stage_items WHERE id = 1007');
is( $standby->safe_psql('postgres',
        "SET enable_seqscan = off; SET vecstore.probes = 50; "
          . "SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> '$lit' LIMIT 10) s "
          . "WHERE id = 201007"),
    '1',
    'after promotion, a new row is found through the index');
is($standby->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx'::regclass)"),
    '0', 'vecstore_verify finds no problem after promotion');

$standby->stop;
$primary->stop;
done_testing();
