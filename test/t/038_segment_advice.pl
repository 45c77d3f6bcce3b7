#-------------------------------------------------------------------------
#
# 038_segment_advice.pl
#     TAP test: how a backend maps a segment file (vssegment.c,
#     advise_mapping).  Scans read a segment at random, so the mapping is
#     advised MADV_RANDOM (no read-around of read_ahead_kb on each page
#     not in memory), which the kernel shows as the "rr" flag of the
#     mapping in /proc/PID/smaps; with vecstore.readahead = off the
#     kernel's own read-around is left alone.  The answers are the same
#     either way, an exhaustive scan through the advised mapping equals an
#     exact one, and the whole file read in order (vecstore_verify, whose
#     checksum pass asks for each cluster before reading it) is sound.
#     Every piece's file is mapped on a 2 MB boundary of the address space
#     (vssegment.c, "Huge mappings"), before and after a compaction has
#     added a piece, so that a kernel whose page cache holds the file in
#     2 MB pieces can map them whole.  With read-ahead on, and in a
#     cluster a backend reads for the first time, the rerank reads vectors
#     from the files through descriptors (VsSegmentRead; in batches with
#     io_uring where there is one), from every piece, and answers the
#     same.
#
# IDENTIFICATION
#     test/t/038_segment_advice.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(quiet_node);

plan skip_all => 'needs /proc/self/smaps (Linux)' unless -r '/proc/self/smaps';

my $node = quiet_node('advice');

$node->safe_psql('postgres', q{
CREATE EXTENSION vecstore;
CREATE TABLE t (id int PRIMARY KEY, v vector(16));
INSERT INTO t SELECT i, ARRAY(SELECT (hashint4(i * 16 + j) % 1000) / 100.0
                             FROM generate_series(1, 16) j)::vector
  FROM generate_series(1, 6000) i;
CREATE INDEX t_v ON t USING vecstore (v vector_l2_ops)
  WITH (lists = 4, max_cluster_rows = 100000, min_cluster_rows = 0);
});

my $q = q{'[1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8]'};
my $query = "SELECT id FROM t ORDER BY v <-> $q LIMIT 20";

# the query's answer in a new session ("SETTINGS" first), then the lines
# "AFTER" prints in the same session
sub after_query
{
    my ($settings, $after) = @_;
    return split /\n/, $node->safe_psql('postgres', qq{
SET enable_seqscan = off;
$settings
SELECT string_agg(id::text, ',') FROM ($query) s;
$after
});
}

# the inodes of the files the session holds open (its descriptors, as
# /proc/self/fdinfo tells), comma-separated
my $open_inodes_sql = q{
SELECT string_agg(substring(pg_read_file('/proc/self/fdinfo/' || fd, 0, 4096, true)
                            FROM 'ino:\s*(\d+)'), ',')
  FROM pg_ls_dir('/proc/self/fd') fd;
};

# this backend's mappings of segment files after a query ("SETTINGS"
# first, in the same session): their start addresses, VmFlags and
# FilePmdMapped (kB); and the query's answer
sub segment_maps
{
    my ($settings) = @_;
    my ($answer, @smaps) = after_query($settings, q{SELECT pg_read_file('/proc/self/smaps');});
    my (@maps, $cur);
    for my $line (@smaps)
    {
        if ($line =~ /^([0-9a-f]+)-[0-9a-f]+ /)
        {
            my $start = hex($1);
            $cur = undef;
            if ($line =~ m{/pg_vecstore/\d+/\d+\.\d+\.seg$})
            {
                $cur = { start => $start, flags => undef, pmd => 0 };
                push @maps, $cur;
            }
        }
        elsif ($cur && $line =~ /^FilePmdMapped:\s*(\d+)/)
        {
            $cur->{pmd} = $1;
        }
        elsif ($cur && $line =~ /^VmFlags:\s*(.*)$/)
        {
            $cur->{flags} = $1;
        }
    }
    return ($answer, @maps);
}

# the flags of the (first) mapping of the index's segment file, and the
# query's answer
sub mapping_flags
{
    my ($answer, @maps) = segment_maps(@_);
    return (@maps ? $maps[0]{flags} : undef, $answer);
}

my ($flags, $answer) = mapping_flags('');
ok(defined $flags, 'a query maps the segment file');
like($flags // '', qr/\brr\b/, 'the mapping is advised random reads (MADV_RANDOM)');

my ($off_flags, $off_answer) = mapping_flags('SET vecstore.readahead = off;');
ok(defined $off_flags, 'with vecstore.readahead = off, the file is mapped too');
unlike($off_flags // '', qr/\brr\b/, 'with vecstore.readahead = off, no advice');
is($off_answer, $answer, 'the same answer either way');

my $exact = $node->safe_psql('postgres',
    "SET enable_indexscan = off; SELECT string_agg(id::text, ',') FROM ($query) s");
my $effort10 = $node->safe_psql('postgres',
    "SET enable_seqscan = off; SET vecstore.effort = 10; SELECT string_agg(id::text, ',') FROM ($query) s");
is($effort10, $exact, 'an exhaustive scan through the advised mapping equals the exact scan');

is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('t_v')"),
    '0', 'vecstore_verify reads every cluster and finds nothing wrong');

# With read-ahead (on here; "auto" turns it on while pages come from
# disk) the rerank reads the candidates' vectors from the files instead of
# through the mapping (vssegment.c, VsSegmentRead): the backend then holds
# a descriptor of each file it reranked from.  The inodes of the segment
# files, and those of the files a backend holds open after a query
# ("SETTINGS" first), with the query's answer.
sub segment_inodes
{
    return map { (stat($_))[1] } glob($node->data_dir . '/pg_vecstore/*/*.seg');
}

sub open_inodes
{
    my ($settings) = @_;
    my ($ans, $inodes) = after_query($settings, $open_inodes_sql);
    return ($ans, { map { $_ => 1 } split(/,/, $inodes // '') });
}

SKIP:
{
    my (undef, $probe) = open_inodes('');
    skip 'no inodes in /proc/self/fdinfo (kernel before 5.14)', 3 unless %$probe;

    my ($ra_answer, $open) = open_inodes('SET vecstore.readahead = on;');
    my @seg = segment_inodes();
    is($ra_answer, $answer, 'with vecstore.readahead = on, the same answer');
    is((grep { $open->{$_} } @seg), scalar(@seg),
        'with vecstore.readahead = on, the rerank reads the segment file through a descriptor');
}

# A cluster this backend reads for the first time has none of its pages
# mapped here: its vectors come from the file whatever the setting (the
# server's record spared this backend the cluster's check, which would
# have read it through the mapping); the same clusters again come through
# the mapping.
{
    my $out = $node->safe_psql('postgres', qq{
SET enable_seqscan = off;
SET vecstore.readahead = off;
SELECT string_agg(id::text, ',') FROM ($query) s;
SELECT vectors_read || ' ' || vectors_read_from_files || ' ' || clusters_trusted FROM vecstore_stats();
SELECT string_agg(id::text, ',') FROM ($query) s;
SELECT vectors_read || ' ' || vectors_read_from_files FROM vecstore_stats();
});
    my ($first, $counts1, $again, $counts2) = split /\n/, $out;
    my ($read1, $files1, $trusted) = split / /, $counts1;
    my ($read2, $files2) = split / /, $counts2;
    cmp_ok($trusted, '>', 0, 'a new connection takes its clusters\' checks from the server\'s record');
    cmp_ok($files1, '>', 0, 'its first query reads vectors from the file, read-ahead off');
    cmp_ok($read2, '>', $read1, 'the same query again reads vectors too');
    is($files2, $files1, '... through the mapping');
    is($first, $answer, 'the first answer is the one through the mapping');
    is($again, $answer, 'and so is the second');
}

# How a backend reads a batch of vectors from the files: with io_uring
# where vecstore was built with liburing and the kernel offers it, else
# one pread() each; a DEBUG1 message says which, once per backend.  The
# answers are those through the mapping either way (above and below).
{
    my ($rc, $stdout, $stderr) = $node->psql('postgres', qq{
SET client_min_messages = debug1;
SET enable_seqscan = off;
SET vecstore.readahead = on;
SELECT string_agg(id::text, ',') FROM ($query) s;
});
    my ($how) = $stderr =~ /vecstore reads segment files ([^\n]*)/;
    ok(defined $how, 'a backend says how it reads segment files');
    diag('vecstore reads segment files ' . ($how // '(not said)'));
    is($stdout, $answer, 'and answers as through the mapping');

    # around the page cache (O_DIRECT, vecstore.direct_reads), with io_uring
    ($rc, $stdout, $stderr) = $node->psql('postgres', qq{
SET client_min_messages = debug1;
SET enable_seqscan = off;
SET vecstore.readahead = on;
SET vecstore.direct_reads = on;
SELECT string_agg(id::text, ',') FROM ($query) s;
SELECT vectors_read || ' ' || vectors_read_from_files FROM vecstore_stats();
});
    my ($direct_answer, $counts) = split /\n/, $stdout;
    my ($read, $from_files) = split / /, $counts // '';
    is($direct_answer, $answer, 'with vecstore.direct_reads = on, the same answer');
    is($from_files, $read, 'every vector read from the files');
  SKIP:
    {
        skip 'no io_uring here: no direct reads', 1 unless ($how // '') =~ /io_uring/;
        like($stderr, qr/vecstore reads vectors around the page cache/,
            'with io_uring, they are read around the page cache');
    }
}

# the mappings of segment files after the query
sub segment_mappings
{
    my (undef, @maps) = segment_maps('');
    return @maps;
}

my $two_mb = 2 * 1024 * 1024;
my @maps = segment_mappings();
is(scalar(@maps), 1, 'a freshly built index maps one segment file');
is((grep { $_->{start} % $two_mb == 0 } @maps), scalar(@maps),
    'its mapping starts on a 2 MB boundary');

# rows into one cluster, then a compaction that rewrites only it (neither
# split nor merged: the index's options above; a split re-seals the
# neighbours that give or take rows): the generation then reads two
# pieces, each mapped on a boundary
$node->safe_psql('postgres', q{
INSERT INTO t SELECT 6000 + i, ARRAY(SELECT 1 + (hashint4(i * 16 + j) % 100) / 1000.0
                                    FROM generate_series(1, 16) j)::vector
  FROM generate_series(1, 2000) i;
SELECT count(*) FROM vecstore_compact('t_v');
});
my $pieces = $node->safe_psql('postgres',
    "SELECT segment_pieces FROM vecstore_index_info('t_v')");
cmp_ok($pieces, '>=', 2, 'after the compaction the generation reads several pieces');
@maps = segment_mappings();
is(scalar(@maps), $pieces, 'a query maps each piece\'s file');
is((grep { $_->{start} % $two_mb == 0 } @maps), scalar(@maps),
    'every piece is mapped on a 2 MB boundary');
diag('FilePmdMapped (kB) per piece: ' . join(', ', map { $_->{pmd} } @maps)
      . ' (0 where the kernel keeps this file in small pages)');
is($node->safe_psql('postgres', "SET enable_seqscan = off; SET vecstore.effort = 10;
    SELECT string_agg(id::text, ',') FROM ($query) s"),
    $node->safe_psql('postgres', "SET enable_indexscan = off;
    SELECT string_agg(id::text, ',') FROM ($query) s"),
    'after the compaction, an exhaustive scan still equals the exact scan');
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('t_v')"),
    '0', 'and vecstore_verify finds nothing wrong');

# after the compaction, a query far from the new rows reranks in clusters
# the compaction left in the older piece (placed after the new one in the
# mapping), and a query near them in the cluster it rewrote: with
# read-ahead, each read from its file at its piece's place, every vector
# so, and the answers those through the mapping give
SKIP:
{
    my $near_to = sub {
        my ($x) = @_;
        return 'SELECT string_agg(id::text, \',\') FROM (SELECT id FROM t ORDER BY v <-> \''
            . '[' . join(',', ($x) x 16) . ']\' LIMIT 20) s';
    };
    my $both = $near_to->(-5) . '; ' . $near_to->(1) . ';';
    my $out = $node->safe_psql('postgres', qq{
SET enable_seqscan = off;
SET vecstore.readahead = on;
$both
$open_inodes_sql
SELECT vectors_read || ' ' || vectors_read_from_files FROM vecstore_stats();
});
    my ($ra_far, $ra_near, $inodes, $counts) = split /\n/, $out;
    my %open = map { $_ => 1 } split(/,/, $inodes // '');
    my ($read, $from_files) = split / /, $counts;
    cmp_ok($from_files, '>', 0, 'vecstore_stats() counts vectors read from the files');
    is($from_files, $read,
        'every vector the rerank read came from the files (none fell back to the mapping)');
    is("$ra_far\n$ra_near",
        $node->safe_psql('postgres', "SET enable_seqscan = off; SET vecstore.readahead = off; $both"),
        'and the answers are those read through the mapping');
    is($node->safe_psql('postgres',
        "SET enable_seqscan = off; SET vecstore.readahead = on; SET vecstore.direct_reads = on; $both"),
        "$ra_far\n$ra_near", 'and those read around the page cache (vecstore.direct_reads = on)');
    skip 'no inodes in /proc/self/fdinfo (kernel before 5.14)', 1 unless %open;
    my @seg = segment_inodes();
    is((grep { $open{$_} } @seg), $pieces, 'each piece\'s file was read through a descriptor');
}

$node->stop;
done_testing();
