#-------------------------------------------------------------------------
#
# 029_build_progress.pl
#     TAP test: pg_stat_progress_create_index's blocks_done/blocks_total
#     mean something in every phase of a vecstore build, not only in the
#     table scans: none during k-means, the index's sealed blocks while
#     the clusters are written, rising to the total.
#
# A 40,000 x 64 table; one session runs CREATE INDEX while another polls
# the view every few milliseconds and records what it sees per phase.
#
# IDENTIFICATION
#     test/t/029_build_progress.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('progress');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
vecstore.gpu = off
statement_timeout = '300s'
});
$node->start;

$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE TABLE items (id int, v vector(64));
INSERT INTO items
SELECT g, ARRAY(SELECT (hashint4((g % 40) * 1000 + j) % 1000) / 100.0
                     + (hashint4(g * 64 + j) % 1000) / 400.0
                FROM generate_series(0, 63) AS j)::real[]::vector(64)
FROM generate_series(1, 40000) AS g;
});
my $table_blocks = $node->safe_psql('postgres', "SELECT pg_relation_size('items') / 8192");

my $builder = $node->background_psql('postgres');
$builder->query_until(qr/started/, q{
\echo started
CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops);
\echo built
});

# phase => list of [blocks_done, blocks_total]
my %seen;
my $deadline = time + 240;
while (time < $deadline)
{
    my $row = $node->safe_psql('postgres',
        "SELECT phase, blocks_done, blocks_total FROM pg_stat_progress_create_index "
          . "WHERE relid = 'items'::regclass");
    if ($row eq '')
    {
        last if $node->safe_psql('postgres',
            "SELECT count(*) FROM pg_class WHERE relname = 'items_v_idx'") eq '1';
        usleep(5_000);
        next;
    }
    my ($phase, $done, $total) = split /\|/, $row;
    push @{ $seen{$phase} }, [ $done, $total ];
    usleep(5_000);
}
$builder->quit;
note join("\n", map { "$_: " . scalar(@{ $seen{$_} }) . " samples, last "
      . join('/', @{ $seen{$_}[-1] }) } sort keys %seen);

my $write_phase = 'building index: writing clusters: vectors, codes, graphs';
ok(exists $seen{$write_phase}, 'the writing phase was seen');
my $index_blocks = $node->safe_psql('postgres', "SELECT pg_relation_size('items_v_idx') / 8192");
my @w = @{ $seen{$write_phase} // [] };
ok(@w && !grep({ $_->[1] <= 0 || $_->[1] > $index_blocks } @w),
    "while writing, blocks_total is the index's sealed blocks (at most its $index_blocks blocks)");
ok(@w && !grep({ $_->[0] > $_->[1] } @w), 'while writing, blocks_done never passes blocks_total');
ok(!grep({ $w[$_]->[0] < $w[ $_ - 1 ]->[0] } 1 .. $#w), 'while writing, blocks_done never goes back');
ok(grep({ $_->[0] > 0 && $_->[0] < $_->[1] } @w),
    'while writing, blocks_done is seen between 0 and the total')
  or diag(join(' ', map { "$_->[0]/$_->[1]" } @w));
ok(!grep({ $_->[1] == $table_blocks } @w),
    "while writing, the table's $table_blocks blocks are not what is shown");

my $kmeans_phase = 'building index: performing k-means';
SKIP:
{
    skip 'the k-means phase was too short to be seen', 1 unless $seen{$kmeans_phase};
    ok(!grep({ $_->[0] != 0 || $_->[1] != 0 } @{ $seen{$kmeans_phase} }),
        'during k-means no blocks are counted');
}
my $segment_phase = 'building index: writing segment file';
SKIP:
{
    skip 'the segment phase was too short to be seen', 1 unless $seen{$segment_phase};
    ok(!grep({ $_->[0] != $_->[1] } @{ $seen{$segment_phase} }),
        'after the clusters are written, blocks_done equals blocks_total');
}

is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx')"), '0',
    'the index is sound');
$node->stop;
done_testing();
