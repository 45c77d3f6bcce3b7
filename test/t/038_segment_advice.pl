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
CREATE INDEX t_v ON t USING vecstore (v vector_l2_ops) WITH (lists = 4);
});

my $q = q{'[1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8]'};
my $query = "SELECT id FROM t ORDER BY v <-> $q LIMIT 20";

# the flags of this backend's mapping of the index's segment file, after a
# query ("SETTINGS" first, in the same session); and the query's answer
sub mapping_flags
{
    my ($settings) = @_;
    my $out = $node->safe_psql('postgres', qq{
SET enable_seqscan = off;
$settings
SELECT string_agg(id::text, ',') FROM ($query) s;
SELECT pg_read_file('/proc/self/smaps');
});
    my ($answer, @smaps) = split /\n/, $out;
    my ($in_seg, $flags) = (0, undef);
    for my $line (@smaps)
    {
        if ($line =~ /^[0-9a-f]+-[0-9a-f]+ /)
        {
            $in_seg = $line =~ m{/pg_vecstore/\d+/\d+\.\d+\.seg$};
        }
        elsif ($in_seg && $line =~ /^VmFlags:\s*(.*)$/)
        {
            $flags = $1;
            last;
        }
    }
    return ($flags, $answer);
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

$node->stop;
done_testing();
