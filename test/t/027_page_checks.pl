#-------------------------------------------------------------------------
#
# 027_page_checks.pl
#     TAP test: a page of the index that is not what the index expects is
#     an "index corrupted" error that says what is wrong in words.
#
# An index on 2,000 rows; with the server stopped, one page of its fork
# is changed, then a kNN query through the index (in a new server) must
# fail with SQLSTATE XX002 and the message for that case:
#   - the metapage (block 0) given the delta page type: its CRC fails
#     ("has a corrupted page at block 0"); without enable_seqscan = off
#     the planner prices the index out with a WARNING and the query
#     sorts the table (planning failed on every query of the table
#     before);
#   - the first centroid page (block 1, a blob page) given another page id:
#     "has a page at block 1 that is not a vecstore page", the detail
#     naming both ids (the page type still matches: the old message said
#     "type 2 ... where type 2 was expected");
#   - the same page given an unknown type: "a page of unknown type 77";
#   - the same page zeroed: "has an uninitialized page at block 1 where a
#     blob page was expected".
# Each time the original file is put back, and the index answers again.
# Then, after rows were inserted (delta chains), a delta page copied over
# the next one of its chain (a loop) and a delta page whose first line
# pointer points past the page: a query and a VACUUM each fail with
# "has a delta chain that loops" and "has a corrupted delta page" (they
# ran until statement_timeout, and read outside the page, before).
#
# IDENTIFICATION
#     test/t/027_page_checks.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $BLCKSZ = 8192;

my $node = PostgreSQL::Test::Cluster->new('pages');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
statement_timeout = '60s'
});
$node->start;
is($node->safe_psql('postgres', 'SHOW data_checksums'), 'off',
    'no data checksums (the test edits pages in place)');

$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE TABLE t (id int PRIMARY KEY, v vector(8));
INSERT INTO t SELECT g, ARRAY(SELECT (hashint4(g * 8 + j) % 1000) / 100.0
                              FROM generate_series(0, 7) AS j)::real[]::vector(8)
FROM generate_series(1, 2000) AS g;
CREATE INDEX t_idx ON t USING vecstore (v vector_l2_ops) WITH (lists = 4);
CHECKPOINT;
});
my $file = $node->data_dir . '/' . $node->safe_psql('postgres', "SELECT pg_relation_filepath('t_idx')");
my $saved = PostgreSQL::Test::Utils::tempdir() . '/t_idx';
my $query = 'SET enable_seqscan = off; '
  . 'SELECT id FROM t ORDER BY v <-> array_fill(5, ARRAY[8])::real[]::vector LIMIT 1';
my $answer = $node->safe_psql('postgres', $query);
$node->stop;
copy($file, $saved) or die "copy $file: $!";

#
# with_page - with the server stopped, let $edit change the page at $blkno
# (a byte string) and write it back, start the server, and return the
# query's stderr; then put the original file back.
#
sub with_page
{
    my ($blkno, $edit, $sql) = @_;
    $sql //= "\\set VERBOSITY verbose\n$query";
    open my $fh, '+<:raw', $file or die "open $file: $!";
    sysseek($fh, $blkno * $BLCKSZ, 0) or die "seek: $!";
    sysread($fh, my $page, $BLCKSZ) == $BLCKSZ or die "read: $!";
    $page = $edit->($page);
    sysseek($fh, $blkno * $BLCKSZ, 0) or die "seek: $!";
    syswrite($fh, $page) == $BLCKSZ or die "write: $!";
    close $fh;
    $node->start;
    my ($ret, $out, $err) = $node->psql('postgres', $sql);
    $node->stop;
    copy($saved, $file) or die "copy back $file: $!";
    return wantarray ? ($ret, $out, $err) : $err;
}

#
# set_special - the page with the special space's type and page id
# replaced where defined.
#
sub set_special
{
    my ($page, $type, $page_id) = @_;
    # the special space starts at pd_special (the page header's bytes
    # 16-17): nextblkno, then type and page id, 16 bits each
    my $special = unpack('v', substr($page, 16, 2));
    substr($page, $special + 4, 2) = pack('v', $type)    if defined $type;
    substr($page, $special + 6, 2) = pack('v', $page_id) if defined $page_id;
    return $page;
}

# the metapage's CRC is checked before anything else on it, so that
# damage to its version reads as damage (025_metadata_checksums.pl)
my $err = with_page(0, sub { set_special($_[0], 3, undef) });
like($err, qr/XX002/, 'metapage of another type: index corrupted');
like($err, qr/index "t_idx" has a corrupted page at block 0/,
    'metapage of another type: its checksum fails first');

# the planner does not fail on it: the query sorts the table instead, with
# a WARNING (enable_seqscan = off forced the index onto the damage above)
my ($mret, $mout, $merr) = with_page(0, sub { set_special($_[0], 3, undef) },
    'SELECT id FROM t ORDER BY v <-> array_fill(5, ARRAY[8])::real[]::vector LIMIT 1');
is($mret, 0, 'metapage damaged: a query the planner may answer without the index succeeds');
is($mout, $answer, 'with the right row');
like($merr, qr/WARNING:  index "t_idx" cannot be used: its metapage is damaged or of another format/,
    'and a WARNING names the index');

# other pages: the type first, named in words
$err = with_page(1, sub { set_special($_[0], 3, undef) });
like($err, qr/index "t_idx" has a delta page at block 1 where a blob page was expected/,
    'a blob page of another type: the types are named');

$err = with_page(1, sub { set_special($_[0], undef, 0x1234) });
like($err, qr/index "t_idx" has a page at block 1 that is not a vecstore page/,
    'a page with a foreign page id is not a vecstore page');
like($err, qr/DETAIL:  Its page id is 0x1234 where a vecstore page has 0xFF8C\./,
    'and the detail names both page ids');

$err = with_page(1, sub { set_special($_[0], 77, undef) });
like($err, qr/index "t_idx" has a page of unknown type 77 at block 1 where a blob page was expected/,
    'a page of an unknown type');

$err = with_page(1, sub { "\0" x $BLCKSZ });
like($err, qr/index "t_idx" has an uninitialized page at block 1 where a blob page was expected/,
    'an all-zero page is uninitialized');

$node->start;
is($node->safe_psql('postgres', $query), $answer, 'with the original file back, the index answers');

#
# Delta pages (rows inserted after the build), whose CRC covers neither
# their rows nor their line pointers nor their block: a page copied over
# the next one of its chain makes the chain loop, and a line pointer
# pointing outside the page's rows; each is an error, not a scan (or a
# VACUUM) that never ends nor reads outside the page.
#
$node->safe_psql(
    'postgres', q{
INSERT INTO t SELECT g, ARRAY(SELECT (hashint4(g * 8 + j) % 1000) / 100.0
                              FROM generate_series(0, 7) AS j)::real[]::vector(8)
FROM generate_series(2001, 6000) AS g;
CHECKPOINT;
});
$answer = $node->safe_psql('postgres', $query);
$node->stop;
copy($file, $saved) or die "copy $file: $!";

# the delta pages: block => its next block (type 3 in the special space)
my %next;
{
    open my $fh, '<:raw', $file or die "open $file: $!";
    my $blkno = 0;
    while (sysread($fh, my $page, $BLCKSZ) == $BLCKSZ)
    {
        my $special = unpack('v', substr($page, 16, 2));
        if ($special > 0 && $special + 8 <= $BLCKSZ
            && unpack('v', substr($page, $special + 4, 2)) == 3)
        {
            $next{$blkno} = unpack('V', substr($page, $special, 4));
        }
        $blkno++;
    }
    close $fh;
}
my ($from) = grep { exists $next{ $next{$_} } } sort { $a <=> $b } keys %next;
ok(defined $from, 'a delta page whose next page is a delta page too');
my $to = $next{$from};
my $page_from;
{
    open my $fh, '<:raw', $file or die "open $file: $!";
    sysseek($fh, $from * $BLCKSZ, 0) or die "seek: $!";
    sysread($fh, $page_from, $BLCKSZ) == $BLCKSZ or die "read: $!";
    close $fh;
}

# with_delta_page - as with_page, and a VACUUM's stderr too
sub with_delta_page
{
    my ($blkno, $edit) = @_;
    my $qerr = with_page($blkno, $edit);
    my (undef, undef, $verr) = with_page($blkno, $edit, 'VACUUM t');
    return ($qerr, $verr);
}

# block $to becomes a copy of block $from, whose next is $to: a loop
my ($qerr, $verr) = with_delta_page($to, sub { $page_from });
like($qerr, qr/index "t_idx" has a delta chain that loops at block $to/,
    'a delta chain that loops: a scan says so');
unlike($qerr, qr/statement timeout/, 'and does not run until its timeout');
like($verr, qr/index "t_idx" has a delta chain that loops at block $to/,
    'a VACUUM says so too');

# the first line pointer of block $to pointing near the end of 32 kB
($qerr, $verr) = with_delta_page(
    $to,
    sub {
        my ($page) = @_;
        my $lp = unpack('V', substr($page, 24, 4));
        substr($page, 24, 4) = pack('V', ($lp & ~0x7FFF) | 32760);
        return $page;
    });
like($qerr, qr/index "t_idx" has a corrupted delta page at block $to/,
    'a line pointer outside the page: a scan says the page is corrupted');
like($qerr, qr/A line pointer does not point at a whole row inside the page/,
    'and why');
like($verr, qr/index "t_idx" has a corrupted delta page at block $to/, 'a VACUUM too');

$node->start;
is($node->safe_psql('postgres', $query), $answer, 'with the original file back, the index answers');
$node->stop;
done_testing();
