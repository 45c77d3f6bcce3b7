#-------------------------------------------------------------------------
#
# 026_segment_faults.pl
#     TAP test: damage to a segment file that a session has mapped, and a
#     segment file that can be neither read nor rebuilt, cost at most a
#     statement: no crash, no wrong row, no outage.
#
# An index (lists = 40) on 10,000 clustered 64-dimensional vectors; the
# exact answers of 10 queries are recorded from a sequential scan.  Then:
#   A. a session reads half way through a cursor over the index, and the
#      segment file is truncated under its mapping: the next FETCH fails
#      with an ERROR (SIGBUS recovered), the server does not restart, and
#      the session's next queries are exact (the file is rebuilt);
#   B. a session that checked every cluster keeps running while the file
#      is overwritten in place (4 KiB in three places, size unchanged): its
#      next queries are exact (it notices the file changed and checks it
#      again); vecstore_verify in another session reports the damage
#      before anything repaired it;
#   C. after another session's vecstore_verify(repair => true) rebuilt the
#      file, a session that had mapped the damaged one answers exactly;
#   D. the file is removed and its directory made read-only, so that it
#      can be neither read nor rebuilt: scans answer exactly from the
#      index relation, with one WARNING per session naming the cause,
#      fork_reads counts, vecstore_verify names the cause; once the
#      directory is writable again the next session rebuilds the file.
# Throughout, the server log must show no backend killed by a signal.
#
# IDENTIFICATION
#     test/t/026_segment_faults.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(clustered_vec_of_sql knn_sql);

my $LISTS    = 40;
my $NQUERIES = 10;

my $node = PostgreSQL::Test::Cluster->new('faults');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
statement_timeout = '300s'
restart_after_crash = on
});
$node->start;

$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
@{[ clustered_vec_of_sql() ]}
CREATE TABLE items (id int PRIMARY KEY, v vector(64));
INSERT INTO items SELECT g, vec_of(g, 0) FROM generate_series(1, 10000) AS g;
CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);
ANALYZE;
});

my $index_sql = knn_sql("SET enable_seqscan = off; SET vecstore.probes = $LISTS;", $NQUERIES, 20000, 10);
my $exact = $node->safe_psql('postgres',
    knn_sql('SET enable_indexscan = off; SET enable_bitmapscan = off;', $NQUERIES, 20000, 10));
is($node->safe_psql('postgres', $index_sql), $exact,
    'at probes = lists the index returns the exact ids');

my $seg = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT segment_file FROM vecstore_index_info('items_v_idx')");
ok(-f $seg, "the segment file exists ($seg)");

# crashes: a backend killed by a signal shows in the log; the postmaster
# then restarts every session (the start time does not change on that)
sub no_crash
{
    my ($what) = @_;
    my $log = slurp_file($node->logfile);
    unlike($log, qr/terminated by signal|server process .* was terminated/,
        "$what: no backend was killed by a signal");
    return;
}

sub overwrite
{
    my ($file, $offset, $bytes) = @_;
    open my $fh, '+<:raw', $file or die "could not open $file: $!";
    seek($fh, $offset, 0) or die "seek: $!";
    print $fh $bytes or die "write: $!";
    close $fh or die "close: $!";
    return;
}

# a session's answers to the queries (one per line, as knn_sql prints)
sub session_answers
{
    my ($bg) = @_;
    my ($out, $err) = $bg->query($index_sql);
    $out =~ s/\r//g;
    return join("\n", grep { /^\d+\|/ } split /\n/, $out);
}

# A. truncated under a cursor's mapping
my $bg = $node->background_psql('postgres', on_error_stop => 0);
# (at the default settings: a scan of every cluster reads them all at once)
$bg->query_safe('SET enable_seqscan = off');
$bg->query_safe('BEGIN');
$bg->query_safe(
    'DECLARE c CURSOR FOR SELECT id FROM items ORDER BY v <-> vec_of(20037, 0)');
like($bg->query_safe('FETCH 2 FROM c'), qr/^\d+\n\d+$/, 'A: the cursor returns its first rows');
truncate($seg, 16384) or die "could not truncate $seg: $!";
my ($out, $failed) = $bg->query('FETCH 10000 FROM c');
ok($failed, 'A: reading on through the truncated file fails');
like($bg->{stderr}, qr/segment file of index "items_v_idx" was truncated or replaced in place while mapped/,
    'A: with an error that says what happened');
$bg->{stderr} = '';
$bg->query('ROLLBACK');
$bg->{stderr} = '';
no_crash('A');
is(session_answers($bg), $exact, 'A: the same session then answers exactly');
is($bg->{stderr}, '', 'A: without errors');
is($node->safe_psql('postgres', $index_sql), $exact, 'A: so does a new session');
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx')"), '0',
    'A: vecstore_verify is clean after the rebuild');

# B. overwritten in place while a session that checked every cluster runs
is(session_answers($bg), $exact, 'B: the long-lived session has checked the clusters');
my $size = -s $seg;
overwrite($seg, int($size * $_ / 4), "\x7f" x 4096) for (1, 2, 3);
is(-s $seg, $size, 'B: the file keeps its size');
my $problems = $node->safe_psql('postgres', "SELECT problem FROM vecstore_verify('items_v_idx')");
like($problems, qr/fails the checksum of cluster/,
    'B: vecstore_verify in another session reports the damage');
is(session_answers($bg), $exact, 'B: the long-lived session answers exactly after the damage');
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx')"), '0',
    'B: the file was rebuilt by that session');

# C. repaired by another session while this one maps the damaged file
$bg->query_safe('SELECT 1');
$seg = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT segment_file FROM vecstore_index_info('items_v_idx')");
$size = -s $seg;
overwrite($seg, int($size * $_ / 5), "\x00\x7f" x 2048) for (1, 3);
$node->safe_psql('postgres', "SELECT * FROM vecstore_verify('items_v_idx', repair => true)");
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx')"), '0',
    'C: repaired by another session');
is(session_answers($bg), $exact, 'C: the long-lived session answers exactly');
no_crash('B and C');
$bg->quit;

# D. neither readable nor rebuildable: served from the fork
my $dir = $seg;
$dir =~ s{/[^/]+$}{};
unlink $seg or die "could not remove $seg: $!";
chmod(0500, $dir) or die "could not chmod $dir: $!";
my ($stdout, $stderr);
$node->psql('postgres', $index_sql . "SELECT 'fork_reads', fork_reads FROM vecstore_index_info('items_v_idx');",
    stdout => \$stdout, stderr => \$stderr);
my @warnings = ($stderr =~ /WARNING:  reading index "items_v_idx" from its fork/g);
is(scalar(@warnings), 1, 'D: one WARNING in the session');
like($stderr, qr/is missing, and rebuilding it failed \(could not create file .*Permission denied\)/,
    'D: the WARNING names the cause');
my ($reads) = ($stdout =~ /^fork_reads\|(\d+)$/m);
cmp_ok($reads // 0, '>', 0, "D: fork_reads counts the clusters read from the fork ($reads)");
is(join("\n", grep { /^\d+\|/ } split /\n/, $stdout), $exact,
    'D: the answers are exact, from the fork');
like($node->safe_psql('postgres', "SELECT problem FROM vecstore_verify('items_v_idx')"),
    qr/is missing/, 'D: vecstore_verify names the cause');
ok(!-e $seg, 'D: no file could be written');
chmod(0700, $dir) or die "could not chmod $dir: $!";
is($node->safe_psql('postgres', $index_sql), $exact, 'D: once writable, a new session answers exactly');
ok(-f $seg, 'D: and rebuilt the file');
is($node->safe_psql('postgres', "SELECT fork_reads FROM vecstore_index_info('items_v_idx')"), '0',
    'D: and reads no cluster from the fork');

# D'. the file unreadable (and the directory read-only): the cause is named
chmod(0000, $seg) or die "could not chmod $seg: $!";
chmod(0500, $dir) or die "could not chmod $dir: $!";
$node->psql('postgres', $index_sql, stdout => \$stdout, stderr => \$stderr);
like($stderr, qr/could not be opened: Permission denied/, "D': the WARNING says permission denied");
is(join("\n", grep { /^\d+\|/ } split /\n/, $stdout), $exact, "D': the answers are exact");
like($node->safe_psql('postgres', "SELECT problem FROM vecstore_verify('items_v_idx')"),
    qr/could not be opened: Permission denied/, "D': vecstore_verify says permission denied");
chmod(0700, $dir) or die "could not chmod $dir: $!";
chmod(0600, $seg) or die "could not chmod $seg: $!";
no_crash('D');

$node->stop;
done_testing();
