#-------------------------------------------------------------------------
#
# 036_pinning.pl
#     TAP test: the pinner (vspin.c) locks the hot parts of the clusters
#     scans open most, within vecstore.pin_memory: the most opened cluster
#     is locked, the total stays within the budget (as the access view
#     and the worker's own VmLck say), and everything is given back when
#     the index is dropped and when the setting goes back to 0; when the
#     queries move to another cluster, the lock moves with them.
#
# IDENTIFICATION
#     test/t/036_pinning.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(quiet_node);

# the server may lock no more than RLIMIT_MEMLOCK: a 1 MB budget needs 2 MB
my $limit = `sh -c 'ulimit -l'`;
chomp $limit;
plan skip_all => "RLIMIT_MEMLOCK is $limit kB here; the pinner needs 2048"
  if $limit ne 'unlimited' && $limit < 2048;

my $node = quiet_node('pinning', qq{
vecstore.pin_memory = '1MB'
vecstore.pin_naptime = 1
});

$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
SELECT setseed(0.5);
CREATE TABLE items (id int PRIMARY KEY, v vector(32));
INSERT INTO items
SELECT i, array_agg(CASE WHEN d % 6 = i % 6 THEN 3 ELSE 0 END + random() ORDER BY d)::vector
FROM generate_series(1, 30000) i, generate_series(1, 32) d GROUP BY i;
CREATE INDEX items_v ON items USING vecstore (v) WITH (lists = 6);
});

my $pinner = $node->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'vecstore pinner'});
like($pinner, qr/^\d+$/, 'the pinner runs');

# kB the pinner holds locked, from the kernel
sub vmlck
{
    open(my $fh, '<', "/proc/$pinner/status") or return -1;
    while (my $line = <$fh>)
    {
        return $1 if $line =~ /^VmLck:\s+(\d+) kB/;
    }
    return -1;
}

# queries near one row (cluster of rows like it), $n times
sub query
{
    my ($id, $n) = @_;
    $node->safe_psql('postgres', qq{
SET enable_seqscan = off;
SELECT count(*) FROM generate_series(1, $n) g,
  LATERAL (SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = $id) LIMIT 5) s;
});
}
query(1, 30);
query(2, 10);

ok( $node->poll_query_until(
        'postgres', q{SELECT coalesce(sum(pinned_bytes), 0) > 0 FROM vecstore_cluster_access('items_v')}),
    'the pinner locks clusters once scans opened them');
my $hot = $node->safe_psql('postgres', q{SELECT sum(hot_bytes) FROM vecstore_cluster_access('items_v')});
cmp_ok($hot, '>', 1024 * 1024, "the hot parts ($hot bytes) are larger than the budget");
my $pinned = $node->safe_psql('postgres',
    q{SELECT sum(pinned_bytes) FROM vecstore_cluster_access('items_v')});
cmp_ok($pinned, '<=', 1024 * 1024, "what is locked ($pinned bytes) stays within the budget");
is( $node->safe_psql('postgres', q{
SELECT pinned_bytes > 0 FROM vecstore_cluster_access('items_v') ORDER BY accesses DESC LIMIT 1}),
    't', 'the most opened cluster is locked');
is( $node->safe_psql('postgres', q{
SELECT sum(pinned_bytes) > 0 AND bool_and(pinned_bytes <= bytes)
FROM vecstore_index_memory('items_v') WHERE hot}),
    't', 'vecstore_index_memory reports the locked hot parts');
my $lck = vmlck();
cmp_ok($lck, '>', 0, "the pinner's VmLck ($lck kB)");
cmp_ok($lck * 1024, '<=', 1024 * 1024, 'within the budget');

# as the queries move, so does what is locked: the cluster of row 4, now
# opened most, is locked, and the cluster of row 1, no longer opened, is not
sub cluster_of
{
    my ($id) = @_;
    # the cluster whose count a query near row $id raises
    my $before = $node->safe_psql('postgres',
        q{SELECT string_agg(cluster || ':' || accesses, ',' ORDER BY cluster) FROM vecstore_cluster_access('items_v')});
    query($id, 1);
    my %b = map { split /:/ } split /,/, $before;
    my $after = $node->safe_psql('postgres',
        q{SELECT string_agg(cluster || ':' || accesses, ',' ORDER BY cluster) FROM vecstore_cluster_access('items_v')});
    my %a = map { split /:/ } split /,/, $after;
    my @first = sort { ($a{$b} - $b{$b}) <=> ($a{$a} - $b{$a}) } keys %a;
    return $first[0];
}
my $c1 = cluster_of(1);
my $c4 = cluster_of(4);
isnt($c4, $c1, "rows 1 and 4 are in different clusters ($c1, $c4)");
for (1 .. 4)
{
    query(4, 40);
    sleep 1;
}
ok( $node->poll_query_until(
        'postgres', qq{SELECT pinned_bytes > 0 FROM vecstore_cluster_access('items_v') WHERE cluster = $c4}),
    'the cluster now opened most is locked');
ok( $node->poll_query_until(
        'postgres', qq{SELECT pinned_bytes = 0 FROM vecstore_cluster_access('items_v') WHERE cluster = $c1}),
    'the cluster no longer opened is not');
cmp_ok($node->safe_psql('postgres',
        q{SELECT sum(pinned_bytes) FROM vecstore_cluster_access('items_v')}), '<=', 1024 * 1024,
    'still within the budget');

# DROP gives it back
$node->safe_psql('postgres', 'DROP INDEX items_v');
my $released = 0;
for (1 .. 60)
{
    if (vmlck() == 0) { $released = 1; last; }
    sleep 1;
}
ok($released, 'DROP INDEX: the pinner unlocks and unmaps the dropped files');

# pin_memory = 0 gives it back too
$node->safe_psql('postgres', q{CREATE INDEX items_v ON items USING vecstore (v) WITH (lists = 6)});
query(3, 20);
ok( $node->poll_query_until(
        'postgres', q{SELECT coalesce(sum(pinned_bytes), 0) > 0 FROM vecstore_cluster_access('items_v')}),
    'a new index is locked again');
$node->safe_psql('postgres', q{ALTER SYSTEM SET vecstore.pin_memory = 0});
$node->reload;
ok( $node->poll_query_until(
        'postgres', q{SELECT coalesce(sum(pinned_bytes), 0) = 0 FROM vecstore_cluster_access('items_v')}),
    'vecstore.pin_memory = 0: nothing is locked');
$released = 0;
for (1 .. 60)
{
    if (vmlck() == 0) { $released = 1; last; }
    sleep 1;
}
ok($released, "and the pinner's VmLck is 0");

$node->stop;
done_testing();
