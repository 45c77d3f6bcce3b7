#-------------------------------------------------------------------------
#
# 014_segment_repair.pl
#     TAP test: a missing, corrupted, truncated or foreign segment file
#     never changes query results, vecstore_verify reports it, and
#     repair => true rebuilds it.
#
# An index (lists = 40) on 10,000 clustered 64-dimensional vectors; the
# results of 20 queries at probes = 10 and at probes = lists are recorded
# (the latter must equal an exact scan's ids).  Then the segment file under
# the running server is, in turn:
#   A. deleted;
#   B. overwritten with 4 KiB of garbage in the middle (size unchanged),
#      reported and repaired through vecstore_verify(repair => true);
#   C. as B, but queried before anything is repaired;
#   D. truncated to half its size;
#   E. given a corrupt header (the first 64 bytes);
#   F. replaced by the segment of another index of the same shape (same
#      dimensions, lists and row count, other data): valid on its own, but
#      not this index's.
# Each time, new sessions must get exactly the recorded results, and after
# the repair or rebuild vecstore_verify must be clean and the file must
# exist again.  A session that had the segment mapped before A keeps
# answering correctly throughout.
#
# IDENTIFICATION
#     test/t/014_segment_repair.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(clustered_vec_of_sql knn_sql);

my $LISTS    = 40;
my $NQUERIES = 20;

my $node = PostgreSQL::Test::Cluster->new('repair');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

# vec_of(id, seed): one of 40 centres (by id % 40) plus per-id noise, all
# from hashes, so vectors are distinct and exact ties improbable.
$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
@{[ clustered_vec_of_sql() ]}
CREATE TABLE items (id int PRIMARY KEY, v vector(64));
INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series(1, 10000) AS g;
CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);
CREATE TABLE other (id int PRIMARY KEY, v vector(64));
INSERT INTO other SELECT g, vec_of(g, 1) FROM generate_series(1, 10000) AS g;
CREATE INDEX other_v_idx ON other USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);
ANALYZE;
});
is($node->safe_psql('postgres', 'SELECT count(DISTINCT v::text) FROM items'), '10000',
    'the vectors are distinct');

my %SQL = (
    10     => knn_sql('SET enable_seqscan = off; SET vecstore.probes = 10;', $NQUERIES, 20000, 10),
    $LISTS => knn_sql("SET enable_seqscan = off; SET vecstore.probes = $LISTS;", $NQUERIES, 20000, 10),
    exact  => knn_sql('SET enable_indexscan = off; SET enable_bitmapscan = off;', $NQUERIES, 20000, 10));

like(
    $node->safe_psql('postgres',
        'SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items '
          . 'ORDER BY v <-> vec_of(1, 0) LIMIT 10'),
    qr/Index Scan using items_v_idx on items/,
    'queries use the index');

my %expected = map { $_ => $node->safe_psql('postgres', $SQL{$_}) } keys %SQL;
is($expected{$LISTS}, $expected{exact}, 'at probes = lists the index returns the exact ids');
is(scalar(grep { (split / /)[9] } split /\n/, $expected{10}), $NQUERIES,
    "10 rows for each of $NQUERIES queries at probes = 10");

#
# check_results - new sessions return the recorded results.
#
sub check_results
{
    my ($what) = @_;
    for my $p (10, $LISTS)
    {
        is($node->safe_psql('postgres', $SQL{$p}), $expected{$p},
            "$what: results at probes $p unchanged");
    }
    return;
}

#
# segment - the path of the index's segment file (absolute), per
# vecstore_index_info.
#
sub segment
{
    my ($index) = @_;
    my $rel = $node->safe_psql('postgres',
        "SELECT segment_file FROM vecstore_index_info('$index'::regclass)");
    return $node->data_dir . "/$rel";
}

#
# verify - the rows of vecstore_verify, as [problem, repaired] pairs.
#
sub verify
{
    my ($repair) = @_;
    my $out = $node->safe_psql('postgres',
        "SELECT problem, repaired FROM vecstore_verify('items_v_idx'::regclass"
          . ($repair ? ', repair => true' : '') . ')');
    return [ map { [ split /\|/ ] } grep { $_ ne '' } split /\n/, $out ];
}

#
# expect_problem - vecstore_verify reports at least one problem; with
# repair, every problem reported is repaired.
#
sub expect_problem
{
    my ($what, $repair) = @_;
    my $rows = verify($repair);
    note "$what: vecstore_verify"
      . ($repair ? '(repair => true)' : '') . ': '
      . join('; ', map { "$_->[0] (repaired $_->[1])" } @$rows);
    ok(@$rows >= 1, "$what: vecstore_verify"
          . ($repair ? '(repair => true)' : '') . ' reports the problem');
    if ($repair)
    {
        ok(@$rows && !grep({ $_->[1] ne 't' } @$rows), "$what: every problem is repaired");
    }
    else
    {
        ok(!grep({ $_->[1] ne 'f' } @$rows), "$what: nothing is repaired without repair => true");
    }
    return;
}

#
# expect_clean - vecstore_verify reports nothing, and the segment exists.
#
sub expect_clean
{
    my ($what) = @_;
    my $rows = verify(0);
    ok(!@$rows, "$what: vecstore_verify is clean")
      or diag(join("\n", map { "$_->[0] (repaired $_->[1])" } @$rows));
    ok(-f segment('items_v_idx'), "$what: the segment file exists");
    return;
}

#
# overwrite - write $bytes at $offset of $file, in place (size unchanged).
#
sub overwrite
{
    my ($file, $offset, $bytes) = @_;
    my $size = -s $file;
    open my $fh, '+<:raw', $file or die "could not open $file: $!";
    seek($fh, $offset, 0) or die "seek: $!";
    print $fh $bytes or die "write: $!";
    close $fh or die "close: $!";
    is(-s $file, $size, "the file keeps its size ($size bytes)");
    return;
}

my $seg = segment('items_v_idx');
ok(-f $seg, "the segment file exists ($seg)");
expect_clean('after the build');
my $size = -s $seg;
cmp_ok($size, '>', 10000 * 64 * 4, "the segment holds at least the vectors ($size bytes)");

# a session that maps the segment before anything happens to it
my $bg = $node->background_psql('postgres');
$bg->query_safe('SET enable_seqscan = off');
$bg->query_safe("SET vecstore.probes = 10");
my $bgq = "SELECT string_agg(id::text, ' ') FROM (SELECT id FROM items ORDER BY v <-> vec_of(20037, 0) LIMIT 10) s";
my $bg_expected = $bg->query_safe($bgq);
is($bg_expected, (split /\|/, (split /\n/, $expected{10})[0])[1],
    'the long-lived session sees the recorded results');

# A. deleted
unlink $seg or die "could not remove $seg: $!";
ok(!-e $seg, 'A: segment file deleted');
expect_problem('A (deleted)', 0);
check_results('A (deleted)');
is($bg->query_safe($bgq), $bg_expected, 'A: the long-lived session still answers the same');
expect_clean('A, after the queries');

# B. garbage in the middle, found and repaired by vecstore_verify
$seg = segment('items_v_idx');
overwrite($seg, int((-s $seg) / 2), "\x41" x 4096);
expect_problem('B (4 KiB overwritten)', 0);
expect_problem('B (4 KiB overwritten)', 1);
expect_clean('B, after the repair');
check_results('B (4 KiB overwritten, repaired)');

# C. the same, but queried before any repair
$seg = segment('items_v_idx');
overwrite($seg, int((-s $seg) / 3), "\xff" x 4096);
check_results('C (4 KiB overwritten, not repaired)');
verify(1);
expect_clean('C, after vecstore_verify(repair => true)');

# D. truncated to half
$seg = segment('items_v_idx');
truncate($seg, int((-s $seg) / 2)) or die "could not truncate $seg: $!";
expect_problem('D (truncated)', 0);
check_results('D (truncated)');
verify(1);
expect_clean('D, after vecstore_verify(repair => true)');

# E. corrupt header
$seg = segment('items_v_idx');
overwrite($seg, 0, "\x00\x11\x22\x33" x 16);
check_results('E (corrupt header)');
verify(1);
expect_clean('E, after vecstore_verify(repair => true)');

# F. another index's segment in place of this one's
$seg = segment('items_v_idx');
my $other = segment('other_v_idx');
isnt($other, $seg, 'the other index has its own segment file');
copy($other, "$seg.tmp") or die "copy: $!";
rename("$seg.tmp", $seg) or die "rename: $!";
check_results('F (another index\'s segment)');
verify(1);
expect_clean('F, after vecstore_verify(repair => true)');
check_results('F, after the repair');
is( $node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('other_v_idx'::regclass)"),
    '0', 'the other index is untouched');

is($bg->query_safe($bgq), $bg_expected, 'the long-lived session still answers the same at the end');
$bg->quit;

# and after a restart
$node->restart;
check_results('after a restart');
expect_clean('after a restart');

$node->stop;
done_testing();
