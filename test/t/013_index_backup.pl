#-------------------------------------------------------------------------
#
# 013_index_backup.pl
#     TAP test: a base backup restores a working vecstore index, with or
#     without the segment files.
#
# An indexed table (lists = 40) gets rows after the build (delta chains)
# and deletes plus a VACUUM (deletion bitmap); the results of 20 queries
# (probes = 8 and probes = lists, enable_seqscan = off) and the counts of
# vecstore_index_info are recorded, then a base backup is taken
# (pg_basebackup).  Two nodes are restored from it:
#   - "restored": pg_vecstore/ removed from its data directory before it
#     starts, so the segment must be rebuilt from the index fork;
#   - "restored_copy": started as restored, with whatever pg_basebackup
#     copied of pg_vecstore/.
# Each must return exactly the original's results, report the same counts,
# have its segment file under its own data directory once queried, pass
# vecstore_verify, and find a row inserted after the restore.  The original
# changes after the backup, which neither restored node may see.  A restart
# of a restored node changes nothing.
#
# IDENTIFICATION
#     test/t/013_index_backup.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Path qw(rmtree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $NBASE    = 10_000;
my $NQUERIES = 20;
my $LISTS    = 40;
my $data_root = $ENV{VECSTORE_DATA} // '';

my $node = PostgreSQL::Test::Cluster->new('original');
$node->init(allows_streaming => 1);
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
max_connections = 20
max_wal_size = 1GB
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

#
# vectors - n base vectors and the queries, as literals: sift128 from
# $VECSTORE_DATA, else a generated 64-dimensional Gaussian mixture.
#
sub vectors
{
    my ($n, $nq) = @_;
    my $dir = "$data_root/sift128-photos-euclidean";
    my (@base, @queries);

    if ($data_root ne '' && -r "$dir/base.fvecs")
    {
        note 'data set sift128-photos-euclidean';
        for ([ 'base', $n, \@base ], [ 'query', $nq, \@queries ])
        {
            my ($file, $count, $out) = @$_;
            open my $fh, '<:raw', "$dir/$file.fvecs" or die "$dir/$file.fvecs: $!";
            for (1 .. $count)
            {
                read($fh, my $buf, 4 + 4 * 128) == 4 + 4 * 128 or die "$file: short read";
                my ($d, @v) = unpack('l< f<*', $buf);
                die "$file: dimension $d" unless $d == 128;
                push @$out, '[' . join(',', map { sprintf('%.9g', $_) } @v) . ']';
            }
            close $fh;
        }
        return (128, \@base, \@queries);
    }
    note 'generated data';
    srand(13);
    my @cent = map { [ map { rand(10) } 1 .. 64 ] } 1 .. 50;
    for my $out (\@base, \@queries)
    {
        for (1 .. ($out == \@base ? $n : $nq))
        {
            my $c = $cent[ int(rand(50)) ];
            push @$out,
              '['
              . join(',',
                map { sprintf('%.6g', $_ + 2 * sqrt(-2 * log(1 - rand())) * cos(6.2831853 * rand())) }
                  @$c)
              . ']';
        }
    }
    return (64, \@base, \@queries);
}

my ($dim, $base, $queries) = vectors($NBASE + $NBASE / 5, $NQUERIES);
$node->safe_psql('postgres',
    "CREATE TABLE stage (id int, v vector($dim));\n"
      . "CREATE TABLE items (id int PRIMARY KEY, v vector($dim));\n"
      . "COPY stage FROM STDIN;\n"
      . join('', map { ($_ + 1) . "\t$base->[$_]\n" } 0 .. $#$base)
      . "\\.\n"
      . "INSERT INTO items SELECT * FROM stage WHERE id <= $NBASE;\n"
      . "CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);\n"
      . "INSERT INTO items SELECT * FROM stage WHERE id > $NBASE;\n"
      . "DELETE FROM items WHERE id % 10 = 6;\n"
      . "VACUUM ANALYZE items;\n");

#
# knn - ids and distances of every query at the given probes, one line per
# query.
#
sub knn
{
    my ($n, $probes) = @_;
    my $sql = "SET enable_seqscan = off; SET vecstore.probes = $probes;\n";
    for my $i (0 .. $#$queries)
    {
        my $q = "'$queries->[$i]'";
        $sql .= "SELECT $i, string_agg(id || ':' || d, ' ' ORDER BY rn) FROM "
          . "(SELECT id, v <-> $q AS d, row_number() OVER () AS rn FROM "
          . "(SELECT id, v FROM items ORDER BY v <-> $q LIMIT 10) s) s;\n";
    }
    return $n->safe_psql('postgres', $sql);
}

my $INFO = "SELECT clusters, sealed_rows, delta_rows, dead_rows, segment_generation "
  . "FROM vecstore_index_info('items_v_idx'::regclass)";

like(
    $node->safe_psql('postgres',
        "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items "
          . "ORDER BY v <-> '$queries->[0]' LIMIT 10"),
    qr/Index Scan using items_v_idx on items/,
    'the original uses the index');
my %expected = (8 => knn($node, 8), $LISTS => knn($node, $LISTS));
is(scalar(grep { (split / /)[9] } split /\n/, $expected{8}), $NQUERIES,
    "the original returns 10 rows for each of $NQUERIES queries");
my $info  = $node->safe_psql('postgres', $INFO);
my $count = $node->safe_psql('postgres', 'SELECT count(*) FROM items');

$node->backup('b1');

# the original moves on; the restored nodes must not see this
$node->safe_psql('postgres',
    'INSERT INTO items SELECT id + 500000, v FROM stage WHERE id % 7 = 0; DELETE FROM items WHERE id % 10 = 2;');

for my $name ('restored', 'restored_copy')
{
    my $r = PostgreSQL::Test::Cluster->new($name);
    $r->init_from_backup($node, 'b1');
    my $vsdir = $r->data_dir . '/pg_vecstore';
    if ($name eq 'restored')
    {
        note 'the backup holds pg_vecstore/: ' . (-d $vsdir ? 'yes' : 'no');
        rmtree($vsdir);
        ok(!-e $vsdir, "$name: pg_vecstore/ removed before the start");
    }
    $r->start;

    is($r->safe_psql('postgres', 'SELECT count(*) FROM items'), $count,
        "$name: the table is as it was at the backup");
    for my $probes (sort { $a <=> $b } keys %expected)
    {
        is(knn($r, $probes), $expected{$probes},
            "$name, probes $probes: results equal the original's at backup time");
    }
    is($r->safe_psql('postgres', $INFO), $info,
        "$name: vecstore_index_info counts equal the original's ($info)");
    my $seg = $r->safe_psql('postgres',
        "SELECT segment_file FROM vecstore_index_info('items_v_idx'::regclass)");
    like($seg, qr{^pg_vecstore/\d+/\d+\.\d+\.seg$}, "$name: segment file named ($seg)");
    ok(-f $r->data_dir . "/$seg", "$name: the segment file exists under its data directory");
    is($r->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx'::regclass)"),
        '0', "$name: vecstore_verify finds no problem");

    # the restored index takes inserts
    $r->safe_psql('postgres', 'INSERT INTO items SELECT 900000 + id, v FROM stage WHERE id = 4242');
    is( $r->safe_psql('postgres',
            "SET enable_seqscan = off; SET vecstore.effort = 10; "
              . "SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> "
              . "(SELECT v FROM stage WHERE id = 4242) LIMIT 5) s WHERE id = 904242"),
        '1',
        "$name: a row inserted after the restore is found through the index");

    # a restart of the restored node keeps the index as it is
    my $before = knn($r, 8);
    $r->restart;
    is(knn($r, 8), $before, "$name: after a restart, the same results");
    is($r->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx'::regclass)"),
        '0', "$name: vecstore_verify finds no problem after a restart");
    $r->stop;
}

$node->stop;
done_testing();
