#-------------------------------------------------------------------------
#
# 029_build_progress.pl
#     TAP test: pg_stat_progress_create_index's blocks_done/blocks_total
#     mean something in every phase of a vecstore build, not only in the
#     table scans: none during k-means, the index's sealed blocks while
#     the clusters are written, rising to the total.
#
# A 40,000 x 64 table, indexed with two parallel workers and with none;
# while one session runs CREATE INDEX another samples the view every
# millisecond and records what it sees per phase.
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

use VsTest qw(quiet_node);

my $node = quiet_node('progress', "statement_timeout = '300s'\n");

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

# The view is sampled inside the server, every millisecond, by a DO block
# in a session of its own: a phase that lasts a tenth of a second (the
# writing of the clusters when workers build the graphs) would otherwise
# fall between two samples taken by new psql processes.  A sample is kept
# when it differs from the one before.  The block ends when the build it
# saw has gone from the view, or after 240 s.
$node->safe_psql('postgres',
    'CREATE TABLE samples (n serial, phase text, done bigint, total bigint)');
my $sample_sql = q{
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '240 s';
    seen bool := false;
    found_row bool;
    last text := '';
    r record;
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        PERFORM pg_stat_clear_snapshot();
        found_row := false;
        FOR r IN SELECT phase, blocks_done, blocks_total FROM pg_stat_progress_create_index
                 WHERE relid = 'items'::regclass LOOP
            found_row := true;
            IF r::text IS DISTINCT FROM last THEN
                INSERT INTO samples (phase, done, total)
                VALUES (r.phase, r.blocks_done, r.blocks_total);
                last := r::text;
            END IF;
        END LOOP;
        IF found_row THEN
            seen := true;
        ELSIF seen THEN
            EXIT;
        END IF;
        PERFORM pg_sleep(0.001);
    END LOOP;
END $$;
};

# One build with the default parallel workers, one with none: each has its
# own writing loop (the graphs deferred to the workers, or built in place).
foreach my $workers (2, 0)
{
    $node->safe_psql('postgres', 'TRUNCATE samples; DROP INDEX IF EXISTS items_v_idx');
    my $sampler = $node->background_psql('postgres');
    $sampler->query_until(qr/sampling/, "\\echo sampling\n$sample_sql\n");
    $node->safe_psql('postgres',
        "SET max_parallel_maintenance_workers = $workers; "
          . 'CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops)');
    $sampler->query('SELECT 1');    # returns once the DO block has ended
    $sampler->quit;

    # phase => list of [blocks_done, blocks_total], in the order seen
    my %seen;
    foreach my $line (split /\n/, $node->safe_psql('postgres',
            'SELECT phase, done, total FROM samples ORDER BY n'))
    {
        my ($phase, $done, $total) = split /\|/, $line;
        push @{ $seen{$phase} }, [ $done, $total ];
    }
    note "$workers workers:\n" . join("\n", map { "$_: " . scalar(@{ $seen{$_} }) . " samples, last "
          . join('/', @{ $seen{$_}[-1] }) } sort keys %seen);

    my $write_phase = 'building index: writing clusters: vectors, codes, graphs';
    ok(exists $seen{$write_phase}, "$workers workers: the writing phase was seen");
    my $index_blocks = $node->safe_psql('postgres', "SELECT pg_relation_size('items_v_idx') / 8192");
    my @w = @{ $seen{$write_phase} // [] };
    ok(@w && !grep({ $_->[1] <= 0 || $_->[1] > $index_blocks } @w),
        "$workers workers: while writing, blocks_total is the index's sealed blocks (at most its $index_blocks blocks)");
    ok(@w && !grep({ $_->[0] > $_->[1] } @w),
        "$workers workers: while writing, blocks_done never passes blocks_total");
    ok(!grep({ $w[$_]->[0] < $w[ $_ - 1 ]->[0] } 1 .. $#w),
        "$workers workers: while writing, blocks_done never goes back");
    ok(grep({ $_->[0] > 0 && $_->[0] < $_->[1] } @w),
        "$workers workers: while writing, blocks_done is seen between 0 and the total")
      or diag(join(' ', map { "$_->[0]/$_->[1]" } @w));
    ok(!grep({ $_->[1] == $table_blocks } @w),
        "$workers workers: while writing, the table's $table_blocks blocks are not what is shown");

    my $kmeans_phase = 'building index: performing k-means';
    ok($seen{$kmeans_phase}, "$workers workers: the k-means phase was seen");
    ok(!grep({ $_->[0] != 0 || $_->[1] != 0 } @{ $seen{$kmeans_phase} // [] }),
        "$workers workers: during k-means no blocks are counted");
    my $segment_phase = 'building index: writing segment file';
    ok($seen{$segment_phase}, "$workers workers: the segment phase was seen");
    ok(!grep({ $_->[0] != $_->[1] } @{ $seen{$segment_phase} // [] }),
        "$workers workers: after the clusters are written, blocks_done equals blocks_total");
    my $graph_phase = 'building index: building graphs in parallel';
    if ($workers > 0)
    {
        ok($seen{$graph_phase}, "$workers workers: the parallel graph phase was seen");
    }
    else
    {
        ok(!$seen{$graph_phase}, "$workers workers: no parallel graph phase");
    }
}

is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx')"), '0',
    'the index is sound');
$node->stop;
done_testing();
