#-------------------------------------------------------------------------
#
# 044_metadata_cache.pl
#     TAP test: a backend's cache of an index's metadata (the centroids and
#     the routing graph, src/vspage.c VsGetMetaCache) is freed when it is
#     no longer used, however its scans ended.
#
# Counted as the backend's "vecstore metadata cache" memory contexts
# (pg_backend_memory_contexts):
#   C  the centroid page damaged (its checksum fails while the cache
#      loads): three failing queries leave no cache behind (3 before);
#   A  (the file put back) a cursor reads the index while another session
#      changes the index's options twice (each a relcache invalidation)
#      and the session runs other queries on it: after COMMIT, one cache
#      is left (the previous library left the cursor's and the replaced
#      ones behind: 3; and the relcache's pfree of the cursor's cache left
#      the cursor reading freed memory);
#   B  a query with a vector of the wrong dimensions fails after its scan
#      took the cache, then a compaction splits clusters (new centroids)
#      and a query reads the new ones: one cache left (the failed scan's
#      pin, which no amendscan drops, goes at the transaction's end).
#
# IDENTIFICATION
#     test/t/044_metadata_cache.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $BLCKSZ = 8192;

my $node = PostgreSQL::Test::Cluster->new('metacache');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
autovacuum = off
statement_timeout = '120s'
});
$node->start;
$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE TABLE t (id int PRIMARY KEY, v vector(8));
INSERT INTO t SELECT g, ARRAY(SELECT (hashint4(g * 8 + j) % 1000) / 100.0
                              FROM generate_series(0, 7) AS j)::real[]::vector(8)
FROM generate_series(1, 6000) AS g;
CREATE INDEX t_idx ON t USING vecstore (v vector_l2_ops) WITH (lists = 4);
CHECKPOINT;
});

my $COUNT = q{SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'vecstore metadata cache'};
my $Q     = q{SELECT id FROM t ORDER BY v <-> array_fill(%d, ARRAY[8])::real[]::vector LIMIT 3};

#
# C: the centroids' page damaged: the cache fails to load, three times
#
my $file = $node->data_dir . '/' . $node->safe_psql('postgres', "SELECT pg_relation_filepath('t_idx')");
my $saved = PostgreSQL::Test::Utils::tempdir() . '/t_idx';
$node->stop;
copy($file, $saved) or die "copy $file: $!";
{
    # block 1 holds the centroids (a blob page): one byte of its payload
    open my $fh, '+<:raw', $file or die "open $file: $!";
    sysseek($fh, $BLCKSZ + 100, 0) or die "seek: $!";
    sysread($fh, my $byte, 1) == 1 or die "read: $!";
    sysseek($fh, $BLCKSZ + 100, 0) or die "seek: $!";
    syswrite($fh, chr(ord($byte) ^ 0x55)) == 1 or die "write: $!";
    close $fh;
}
$node->start;
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe('SET enable_seqscan = off');
for my $i (1 .. 3)
{
    $s->{stderr} = '';
    $s->query(sprintf($Q, $i));
    like($s->{stderr}, qr/index "t_idx" has a corrupted page at block 1/, "C: query $i fails");
}
$s->query('SELECT 1');
$s->{stderr} = '';
is($s->query_safe($COUNT), '0', 'C: the failed loads leave no cache behind');
$s->quit;
$node->stop;
copy($saved, $file) or die "copy back $file: $!";
$node->start;


#
# A: invalidations while a cursor reads the index
#
$s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe('SET enable_seqscan = off');
$s->query_safe('BEGIN');
$s->query_safe(sprintf('DECLARE c CURSOR FOR ' . $Q =~ s/ LIMIT 3//r, 1));
$s->query_safe('FETCH 2 FROM c');
for my $i (1 .. 2)
{
    $node->safe_psql('postgres', "ALTER INDEX t_idx SET (compaction_threshold = 0.0$i)");
    $s->query_safe(sprintf($Q, $i + 1));
}
$s->query_safe('FETCH 2 FROM c');
$s->query_safe('COMMIT');
is($s->query_safe($COUNT), '1', 'A: after a cursor and two invalidations, one cache is left');

#
# B: a scan that failed after taking the cache, then new centroids
#
$s->query(q{SELECT id FROM t ORDER BY v <-> '[1,2]' LIMIT 1});
like($s->{stderr}, qr/vector has 2 dimensions but index "t_idx" has 8/, 'B: the query fails');
# (the error's last lines may come after the query's end: let them in)
$s->query('SELECT 1');
$s->{stderr} = '';
$s->query_safe(q{ALTER INDEX t_idx SET (max_cluster_rows = 1000)});
my $clusters = $s->query_safe(q{SELECT (vecstore_compact('t_idx')).clusters});
cmp_ok($clusters, '>', 0, 'B: a compaction splits the clusters');
$s->query_safe(sprintf($Q, 4));
is($s->query_safe($COUNT), '1', 'B: after the failed scan and new centroids, one cache is left');
$s->quit;

$node->stop;
done_testing();
