#-------------------------------------------------------------------------
#
# 025_metadata_checksums.pl
#     TAP test: damaged metadata in the index's fork (the metapage, the
#     centroids, the directory, the deletion bitmap) is an error for
#     queries, a problem vecstore_verify names, and gone after REINDEX;
#     never a wrong row.  CRCs survive WAL replay after a crash.
#
# An index (lists = 40, compaction_threshold = 0, so that VACUUM only
# marks rows) on 20,000 clustered 64-dimensional vectors; the ids of 10
# queries (an exact index search, vecstore.effort = 10) are recorded, and
# must equal a sequential scan's.  Then, each time with the server
# stopped, two bytes of one page of the fork are changed (its block found
# from the metapage, read from the file):
#   A. the deletion bitmap: two bytes set to 0xFF (16 live rows marked
#      deleted: before the checksums they vanished from every scan); a
#      VACUUM that would mark a row on that page fails too;
#   B. the bitmap, zeroed after 2% of the rows were deleted, VACUUMed and
#      new rows inserted into their heap slots (the deleted rows come
#      back: duplicates, rows out of distance order);
#   C. the directory: two bytes of a cluster's entry inverted; an insert
#      fails too;
#   D. the centroids: two bytes inverted;
#   E. the metapage: two bytes of its contents inverted.
# Each time, after the start: a query through the index fails with
# SQLSTATE XX002 (index_corrupted) and "corrupted page at block N" (the
# damaged block) and returns no row; vecstore_verify reports the damaged
# region and block (after the failed VACUUM and insert too: no writer
# sealed the page as good); after REINDEX, vecstore_verify is clean and the
# queries return the recorded ids (the rows of the table, for B).
# F. Replay: inserts (new delta pages), deletes and a VACUUM (bitmap bits)
#    and a compaction after a checkpoint, then SIGKILL: after crash
#    recovery vecstore_verify is clean (every page's CRC replayed with
#    it), and the queries return the table's rows.
# G. A delta page's link to the next page of its chain inverted: as A-E
#    (vecstore_verify names the chain and the block).
# H. The metapage made to look as format version 3 wrote it (version 3,
#    no CRC in a smaller special space): queries fail with SQLSTATE 0A000
#    (feature_not_supported) naming the versions, with a REINDEX hint;
#    REINDEX rewrites it.
#
# IDENTIFICATION
#     test/t/025_metadata_checksums.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(clustered_vec_of_sql crash_node knn_sql);

my $NROWS    = 20_000;
my $LISTS    = 40;
my $NQUERIES = 10;
my $BLCKSZ   = 8192;
my $CONTENTS = 24;    # MAXALIGN(SizeOfPageHeaderData): where a page's payload starts

my $node = PostgreSQL::Test::Cluster->new('checksums');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
autovacuum = off
shared_buffers = 64MB
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

# vec_of(id, seed): one of 40 centres (by id % 40) plus per-id noise
$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
@{[ clustered_vec_of_sql() ]}
CREATE TABLE items (id int, v vector(64));
INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series(1, $NROWS) AS g;
CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops)
    WITH (lists = $LISTS, compaction_threshold = 0);
ANALYZE;
});

my $INDEX_SQL = knn_sql('SET enable_seqscan = off; SET vecstore.effort = 10;', $NQUERIES, 50000, 20);
my $EXACT_SQL = knn_sql('SET enable_indexscan = off; SET enable_bitmapscan = off;', $NQUERIES, 50000, 20);

like(
    $node->safe_psql('postgres',
        'SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items '
          . 'ORDER BY v <-> vec_of(1, 0) LIMIT 10'),
    qr/Index Scan using items_v_idx on items/,
    'queries use the index');
my $expected = $node->safe_psql('postgres', $EXACT_SQL);
is($node->safe_psql('postgres', $INDEX_SQL), $expected, 'the exact index search returns the exact ids');

#
# verify - the problems vecstore_verify reports.
#
sub verify
{
    my $out = $node->safe_psql('postgres',
        "SELECT problem FROM vecstore_verify('items_v_idx'::regclass)");
    return grep { $_ ne '' } split /\n/, $out;
}

is(join("\n", verify()), '', 'vecstore_verify is clean after the build');

#
# fork_file - the index's fork file (absolute path; the index is far
# smaller than a 1 GB segment).
#
sub fork_file
{
    return $node->data_dir . '/'
      . $node->safe_psql('postgres', "SELECT pg_relation_filepath('items_v_idx')");
}

#
# read_meta - the metapage of the fork file (server stopped): a hash of
# the fields the test needs (VsMetaPageData, little-endian).
#
sub read_meta
{
    my ($file) = @_;
    open my $fh, '<:raw', $file or die "could not open $file: $!";
    my $page;
    read($fh, $page, $BLCKSZ) == $BLCKSZ or die "could not read the metapage of $file";
    close $fh;
    my %m;
    my @f = unpack('V V V V V V Q<', substr($page, $CONTENTS, 32));
    @m{qw(magic version dims metric nclusters lists sealed_rows)} = @f;
    my $off = $CONTENTS + 32;
    for my $region (qw(centroids directory bitmap sealed))
    {
        my ($start, $nblocks, $nbytes) = unpack('V V Q<', substr($page, $off, 16));
        $m{$region} = { start => $start, nblocks => $nblocks, nbytes => $nbytes };
        $off += 16;
    }
    return \%m;
}

#
# change_bytes - with the server stopped: $code maps the bytes at payload
# offset $offset of block $blkno (length of what it is given) to new ones.
#
sub change_bytes
{
    my ($file, $blkno, $offset, $len, $code) = @_;
    my $pos = $blkno * $BLCKSZ + $CONTENTS + $offset;
    open my $fh, '+<:raw', $file or die "could not open $file: $!";
    seek($fh, $pos, 0) or die "seek: $!";
    my $old;
    read($fh, $old, $len) == $len or die "could not read $len bytes at $pos of $file";
    my $new = $code->($old);
    die "change_bytes: the bytes did not change" if $new eq $old;
    seek($fh, $pos, 0) or die "seek: $!";
    print $fh $new or die "write: $!";
    close $fh or die "close: $!";
    return;
}

sub invert { return join('', map { chr(ord($_) ^ 0xFF) } split //, $_[0]) }

#
# expect_error - $sql fails with XX002 naming block $blkno and a REINDEX
# hint, and prints nothing.
#
sub expect_error
{
    my ($what, $sql, $blkno) = @_;
    my ($ret, $stdout, $stderr) =
      $node->psql('postgres', "\\set VERBOSITY verbose\n\\set ON_ERROR_STOP 1\n$sql");
    isnt($ret, 0, "$what fails");
    is($stdout, '', "$what returns no row");
    like($stderr, qr/ERROR:  XX002: .*corrupted page at block $blkno\b/,
        "$what: the error is index_corrupted and names block $blkno")
      or diag($stderr);
    like($stderr, qr/HINT:  Please REINDEX it\./, "$what: the error hints at REINDEX");
    return;
}

#
# expect_damage - with the fork damaged at block $blkno of region
# $region: queries fail with XX002 naming the block and return no row, as
# do the statements of @more (which must change nothing the queries
# see); vecstore_verify reports the region and the block (after them: no
# writer sealed the damaged page as good); after REINDEX all is well and
# the queries return $want.
#
sub expect_damage
{
    my ($what, $region, $blkno, $want, @more) = @_;

    expect_error("$what: the query", $INDEX_SQL, $blkno);
    expect_error("$what: \"$_\"", $_, $blkno) for @more;

    my @problems = verify();
    note "$what: vecstore_verify: " . join('; ', @problems);
    ok(scalar(grep { /\b\Q$region\E\b.*\bblock $blkno\b/ } @problems),
        "$what: vecstore_verify reports the $region at block $blkno")
      or diag(join("\n", @problems));

    $node->safe_psql('postgres', 'REINDEX INDEX items_v_idx');
    is(join("\n", verify()), '', "$what: vecstore_verify is clean after REINDEX");
    is($node->safe_psql('postgres', $INDEX_SQL), $want, "$what: after REINDEX the queries return the exact ids");
    return;
}

#
# damage - stop the server, change bytes of block (region's start +
# $page) at payload offset $offset with $code, start it; returns the
# block.
#
sub damage
{
    my ($region, $page, $offset, $len, $code) = @_;
    my $file = fork_file();
    $node->stop;
    my $meta = read_meta($file);
    is($meta->{magic}, 0x56535831, 'the fork file starts with a vecstore metapage');
    my $blkno = $region eq 'metapage' ? 0 : $meta->{$region}{start} + $page;
    cmp_ok($page, '<', $meta->{$region}{nblocks}, "the $region has page $page")
      unless $region eq 'metapage';
    change_bytes($file, $blkno, $offset, $len, $code);
    $node->start;
    return $blkno;
}

# A. two bytes of the deletion bitmap set to 0xFF: 16 live rows "deleted";
# a VACUUM that would mark a row there fails too (a row none of the
# queries returns, so that their results stay)
my %returned = map { $_ => 1 } map { split / / } map { (split /\|/)[1] } split /\n/, $expected;
my ($gone) = grep { !$returned{$_} } 1 .. 8;
my $blk = damage('bitmap', 0, 0, 2, sub { "\xff\xff" });
expect_damage('A (bitmap bytes set)', 'bitmap', $blk, $expected,
    "DELETE FROM items WHERE id = $gone; VACUUM items");

# B. the bitmap zeroed after deletes, VACUUM and inserts into the freed
# heap slots: the deleted rows would come back
$node->safe_psql(
    'postgres', qq{
DELETE FROM items WHERE id % 50 = 7;
VACUUM items;
INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series($NROWS + 1, $NROWS + 400) AS g;
});
my $after_b = $node->safe_psql('postgres', $EXACT_SQL);
is($node->safe_psql('postgres', $INDEX_SQL), $after_b, 'B: before the damage the index returns the exact ids');
is(join("\n", verify()), '', 'B: vecstore_verify is clean before the damage');
$blk = damage('bitmap', 0, 0, int(($NROWS + 7) / 8), sub { "\0" x length($_[0]) });
expect_damage('B (bitmap zeroed after VACUUM)', 'bitmap', $blk, $after_b);

# C. two bytes of a directory entry (cluster 6's delta count) inverted; an
# insert (into a cluster whose entry is on that page) fails too
$blk = damage('directory', 0, 6 * 16 + 8, 2, \&invert);
expect_damage('C (directory entry)', 'directory', $blk, $after_b,
    'INSERT INTO items VALUES (0, vec_of(0, 0))');

# D. two bytes of the centroids inverted
$blk = damage('centroids', 0, 1000, 2, \&invert);
expect_damage('D (centroids)', 'centroids', $blk, $after_b);

# E. two bytes of the metapage's contents (sealed_rows) inverted
$blk = damage('metapage', 0, 24, 2, \&invert);
expect_damage('E (metapage)', 'metapage', $blk, $after_b);

# F. replay: changes of every kind after a checkpoint, then a crash
$node->safe_psql(
    'postgres', qq{
CHECKPOINT;
INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series($NROWS + 401, $NROWS + 1400) AS g;
DELETE FROM items WHERE id % 50 = 11;
VACUUM items;
SELECT clusters FROM vecstore_compact('items_v_idx'::regclass);
INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series($NROWS + 1401, $NROWS + 1600) AS g;
DELETE FROM items WHERE id % 50 = 13;
VACUUM items;
});
my $after_f = $node->safe_psql('postgres', $EXACT_SQL);
crash_node($node);
$node->start;
is(join("\n", verify()), '', 'F: vecstore_verify is clean after crash recovery');
is($node->safe_psql('postgres', $INDEX_SQL), $after_f, 'F: after crash recovery the queries return the exact ids');

# G. a delta page's link (in its special space) inverted: the page of the
# first cluster with delta rows
$node->safe_psql('postgres',
    "INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series($NROWS + 1601, $NROWS + 2000) AS g");
$after_f = $node->safe_psql('postgres', $EXACT_SQL);
{
    my $file = fork_file();
    $node->stop;
    my $meta = read_meta($file);
    open my $fh, '<:raw', $file or die "could not open $file: $!";
    seek($fh, $meta->{directory}{start} * $BLCKSZ + $CONTENTS, 0) or die "seek: $!";
    my $dir;
    read($fh, $dir, 16 * $meta->{nclusters}) == 16 * $meta->{nclusters} or die "short read";
    close $fh;
    my ($head) = grep { $_ != 0xFFFFFFFF } map { unpack('V', substr($dir, 16 * $_, 4)) }
      0 .. $meta->{nclusters} - 1;
    ok(defined $head, 'G: a cluster has a delta chain');
    # the link: the first field of the special space (16 bytes at the end)
    change_bytes($file, $head, $BLCKSZ - 16 - $CONTENTS, 2, \&invert);
    $node->start;
    expect_damage('G (delta page link)', 'delta chain', $head, $after_f);
}

# H. an index as format version 3 wrote it (its version, and a special
# space of 8 bytes, without the CRC): refused as a format this library
# does not read, not taken for damage; REINDEX rewrites it
{
    my $file = fork_file();
    $node->stop;
    change_bytes($file, 0, 4, 4, sub { pack('V', 3) });
    # pd_special, in the page header before the payload
    change_bytes($file, 0, 16 - $CONTENTS, 2, sub { pack('v', $BLCKSZ - 8) });
    $node->start;
    my ($ret, $stdout, $stderr) =
      $node->psql('postgres', "\\set VERBOSITY verbose\n\\set ON_ERROR_STOP 1\n$INDEX_SQL");
    isnt($ret, 0, 'H (format version 3): the query fails');
    like($stderr, qr/ERROR:  0A000: index "items_v_idx" has format version 3, this vecstore reads version \d+/,
        'H: the error is feature_not_supported and names the versions')
      or diag($stderr);
    like($stderr, qr/HINT:  Please REINDEX it\./, 'H: the error hints at REINDEX');
    $node->safe_psql('postgres', 'REINDEX INDEX items_v_idx');
    is(join("\n", verify()), '', 'H: vecstore_verify is clean after REINDEX');
    is($node->safe_psql('postgres', $INDEX_SQL), $after_f, 'H: after REINDEX the queries return the exact ids');
}

$node->stop;
done_testing();
