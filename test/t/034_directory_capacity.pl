#-------------------------------------------------------------------------
#
# 034_directory_capacity.pl
#     TAP test: an index whose cluster directory is full (lists = 32768,
#     the most it can hold) keeps compacting correctly: a cluster grown
#     past max_cluster_rows is folded but not split while there is no free
#     slot; once deletes let compactions merge clusters, their slots take
#     the split's parts, even when the merged clusters sit in a segment
#     piece every compaction evacuates; and compactions then stop (no
#     compaction rewrites the same clusters again and again).
#
# Every step is checked against the table: an exact search (effort 10)
# returns the table's rows, and vecstore_verify is clean.
#
# IDENTIFICATION
#     test/t/034_directory_capacity.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(quiet_node);

my $node = quiet_node('capacity', qq{
maintenance_work_mem = '256MB'
});

$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE TABLE cap (id int, v vector(4));
INSERT INTO cap SELECT i, ARRAY[(i % 181) / 181.0, (i % 191) / 191.0, (i % 193) / 193.0, (i % 197) / 197.0]
FROM generate_series(1, 33000) i;
CREATE INDEX cap_v ON cap USING vecstore (v) WITH (lists = 32768, max_cluster_rows = 1000);
});

sub info
{
    return $node->safe_psql('postgres',
        q{SELECT clusters || ' ' || max_cluster_rows || ' ' || delta_rows || ' ' || dead_rows
          FROM vecstore_index_info('cap_v')});
}

# the table's rows, and those an exact search through the index returns
sub check_exact
{
    my ($what) = @_;
    my $q = q{'[0.5,0.5,0.5,0.5]'};
    my $via = $node->safe_psql('postgres',
        "SET enable_seqscan = off; SET vecstore.effort = 10;
         SELECT md5(string_agg(id::text, ',' ORDER BY id)) || ' ' || count(*)
         FROM (SELECT id FROM cap ORDER BY v <-> $q LIMIT 100000) s");
    my $table = $node->safe_psql('postgres',
        "SELECT md5(string_agg(id::text, ',' ORDER BY id)) || ' ' || count(*) FROM cap");
    is($via, $table, "$what: an exact search returns the table's rows");
    is($node->safe_psql('postgres', q{SELECT count(*) FROM vecstore_verify('cap_v')}),
        '0', "$what: vecstore_verify is clean");
}

my ($clusters) = split / /, info();
is($clusters, '32768', 'the directory is full: 32768 clusters');
check_exact('built');

# one cluster grows past max_cluster_rows: no free slot, so no split
$node->safe_psql('postgres', q{
INSERT INTO cap SELECT 100000 + i, ARRAY[0.5 + i * 1e-6, 0.5, 0.5, 0.5] FROM generate_series(1, 1500) i;
SELECT vecstore_compact('cap_v');
});
my ($c1, $max1, $delta1) = split / /, info();
is($c1, '32768', 'full directory: no cluster added');
cmp_ok($max1, '>', 1000, 'the grown cluster is folded whole (no slot to split into)');
is($delta1, '0', 'its inserted rows are folded');
check_exact('grown past the bound at capacity');

# deletes empty clusters; a compaction merges them, freeing their slots
$node->safe_psql('postgres', q{
DELETE FROM cap WHERE id <= 300;
VACUUM (INDEX_CLEANUP on) cap;
SELECT vecstore_compact('cap_v');
});
my ($c2) = split / /, info();
cmp_ok($c2, '<', 32768, "merges: $c2 clusters left");
check_exact('after merges');

# the next compactions split the grown cluster into freed slots, and then
# have nothing left to do
my $splits_done = 0;
my $last = '';
for my $round (1 .. 4)
{
    my $r = $node->safe_psql('postgres', q{SELECT clusters FROM vecstore_compact('cap_v', false)});
    my ($c, $max) = split / /, info();
    $splits_done = 1 if $max <= 1000;
    $last = $r;
}
ok($splits_done, 'the grown cluster was split into the freed slots');
my (undef, $max3) = split / /, info();
cmp_ok($max3, '<=', 1000, "largest cluster now $max3 rows");
is($last, '0', 'compactions stop: nothing is rewritten again and again');
check_exact('after the split');

$node->stop;
done_testing();
