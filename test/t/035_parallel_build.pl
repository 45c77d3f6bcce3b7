#-------------------------------------------------------------------------
#
# 035_parallel_build.pl
#     TAP test: CREATE INDEX with parallel workers (vsbuild_parallel.c)
#     writes the same bytes as a serial build, for every kind of index
#     whose clusters get graphs: vector with codes and without, cosine,
#     halfvec, bit, an UNLOGGED table, an expression, CREATE INDEX
#     CONCURRENTLY and REINDEX CONCURRENTLY.  The fork (every page, LSN and
#     checksum left out) and the segment file's body are compared; the
#     build must say that it shared its graphs with workers, so that a
#     build that silently went serial fails.  Then: a parallel build
#     answers queries like the serial one and vecstore_verify finds
#     nothing; a parallel build cancelled half way leaves the table as it
#     was and a new build succeeds, showing its parallel phase in
#     pg_stat_progress_create_index; with parallel_leader_participation
#     off, the workers alone write the same bytes.
#
# IDENTIFICATION
#     test/t/035_parallel_build.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(quiet_node fork_digest segment_digest);

my $node = quiet_node('parallel_build', qq{
maintenance_work_mem = '256MB'
max_worker_processes = 8
min_parallel_table_scan_size = 0
});

# 24,000 rows in 6 clusters of about 4,000 (each gets a graph)
$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE EXTENSION pageinspect;
SELECT setseed(0.35);
CREATE TABLE items (id int PRIMARY KEY, v vector(24), h halfvec(24), b bit(64));
INSERT INTO items
SELECT i, v::vector, v::vector::halfvec, binary_quantize(v::vector)::bit(64)
FROM (SELECT i, array_agg(CASE WHEN d % 6 = i % 6 THEN 2 ELSE 0 END + random() - 0.5 ORDER BY d) AS v
      FROM generate_series(1, 24000) i, generate_series(1, 24) d GROUP BY i) s;
CREATE UNLOGGED TABLE uitems AS SELECT id, v FROM items;
VACUUM ANALYZE items;
VACUUM ANALYZE uitems;
});
my $b64 = $node->safe_psql('postgres',
    q{SELECT count(DISTINCT b) FROM items});
cmp_ok($b64, '>', 1000, 'the bit column has many distinct values');

# build WORKERS TABLE SPEC - build index "p" with at most WORKERS workers;
# its digests (fork, segment body, init fork of an unlogged table) and
# what the build said about its workers
sub build
{
    my ($workers, $table, $spec, $concurrently) = @_;
    $concurrently = $concurrently ? 'CONCURRENTLY' : '';
    my ($ret, $out, $err) = $node->psql(
        'postgres', qq{
SET max_parallel_maintenance_workers = $workers;
SET client_min_messages = debug1;
DROP INDEX IF EXISTS p;
CREATE INDEX $concurrently p ON $table USING vecstore $spec;
});
    is($ret, 0, "build of $table $spec with $workers workers") or diag($err);
    my ($shared) = $err =~ /graphs of index "p" shared with (\d+) parallel workers/;
    my $seg = segment_digest($node, 'p');
    my $init = $table eq 'uitems' ? fork_digest($node, 'p', 'init') : '';
    return (fork_digest($node, 'p', 'main') . " $seg $init", $shared // 0);
}

my @cases = (
    [ 'items',  '(v vector_l2_ops) WITH (lists = 6)' ],
    [ 'items',  '(v vector_l2_ops) WITH (lists = 6, quantizer = none, m = 8)' ],
    [ 'items',  '(v vector_cosine_ops) WITH (lists = 5)' ],
    [ 'items',  '(h halfvec_l2_ops) WITH (lists = 6)' ],
    [ 'items',  '(b bit_hamming_ops) WITH (lists = 4)' ],
    [ 'uitems', '(v vector_ip_ops) WITH (lists = 6)' ],
    [ 'items',  '((v::halfvec(24)) halfvec_l2_ops) WITH (lists = 6)' ],
    [ 'items',  '(v vector_l2_ops) WITH (lists = 6)', 'concurrently' ],
);
foreach my $case (@cases)
{
    my ($table, $spec, $concurrently) = @$case;
    my ($serial, $none) = build(0, $table, $spec, $concurrently);
    is($none, 0, "serial build of $table $spec used no workers");
    my ($parallel, $shared) = build(2, $table, $spec, $concurrently);
    is($shared, 2, "parallel build of $table $spec shared its graphs with 2 workers");
    is($parallel, $serial, "parallel build of $table $spec wrote the same bytes");
}

# REINDEX CONCURRENTLY builds in parallel too, the same bytes
build(0, 'items', '(v vector_l2_ops) WITH (lists = 6)');
my ($before) = fork_digest($node, 'p', 'main');
my ($rret, $rout, $rerr) = $node->psql(
    'postgres', q{
SET max_parallel_maintenance_workers = 2;
SET client_min_messages = debug1;
REINDEX INDEX CONCURRENTLY p;
});
is($rret, 0, 'REINDEX CONCURRENTLY') or diag($rerr);
like($rerr, qr/shared with 2 parallel workers/, 'REINDEX CONCURRENTLY shares its graphs with 2 workers');
is(fork_digest($node, 'p', 'main'), $before, 'and writes the serial build\'s bytes');

# a parallel build answers as the serial one did, and verifies clean
my $query = q{
SET enable_seqscan = off;
SELECT string_agg(id::text, ',' ORDER BY ord) FROM (
  SELECT id, row_number() OVER () AS ord FROM (
    SELECT id FROM items ORDER BY v <-> (SELECT v FROM items WHERE id = 77) LIMIT 20) a) b;
};
build(0, 'items', '(v vector_l2_ops) WITH (lists = 6)');
my $serial_answer = $node->safe_psql('postgres', $query);
build(2, 'items', '(v vector_l2_ops) WITH (lists = 6)');
is($node->safe_psql('postgres', $query), $serial_answer,
    'parallel build answers as the serial one');
is($node->safe_psql('postgres', q{SELECT count(*) FROM vecstore_verify('p')}), '0',
    'vecstore_verify finds nothing wrong with a parallel build');

# cancelled half way: the table is as it was, and a new build succeeds
$node->safe_psql('postgres', 'DROP INDEX p');
$node->safe_psql('postgres', q{
CREATE TABLE big AS SELECT i AS id, v FROM items, generate_series(0, 3) i;
VACUUM ANALYZE big;
});
my ($ret, $out, $err) = $node->psql(
    'postgres', q{
SET max_parallel_maintenance_workers = 2;
SET statement_timeout = '1s';
CREATE INDEX big_v ON big USING vecstore (v) WITH (lists = 4, ef_construction = 400);
});
like($err, qr/canceling statement due to statement timeout/, 'a parallel build can be cancelled');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'big_v'}), '0',
    'the cancelled build left no index');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'}),
    '0', 'no parallel worker is left');
# a new build succeeds; while its workers build graphs, the leader says so
# in pg_stat_progress_create_index, the graph clusters' rows done / total
$node->safe_psql('postgres', q{ALTER TABLE big SET (parallel_workers = 2)});
my $builder = $node->background_psql('postgres');
$builder->query_until(qr/started/, q{
SET max_parallel_maintenance_workers = 2;
\echo started
CREATE INDEX big_v ON big USING vecstore (v) WITH (lists = 4, ef_construction = 200);
\echo built
});
my @graphs;
my $deadline = time + 240;
while (time < $deadline)
{
    my $row = $node->safe_psql('postgres',
        "SELECT phase, tuples_done, tuples_total FROM pg_stat_progress_create_index "
          . "WHERE relid = 'big'::regclass");
    if ($row eq '')
    {
        last if $node->safe_psql('postgres',
            "SELECT count(*) FROM pg_class WHERE relname = 'big_v'") eq '1';
        next;
    }
    my ($phase, $done, $total) = split /\|/, $row;
    push @graphs, [ $done, $total ] if $phase eq 'building index: building graphs in parallel';
}
$builder->quit;
ok(@graphs > 0, 'the phase of the parallel graphs was seen');
ok(!grep({ $_->[1] != 96000 || $_->[0] > $_->[1] } @graphs),
    'during it, tuples_done counts up to the rows of the clusters with graphs')
  or diag(join(' ', map { "$_->[0]/$_->[1]" } @graphs));
is($node->safe_psql('postgres', q{SELECT count(*) FROM vecstore_verify('big_v')}), '0',
    'the new build verifies clean');
is($node->safe_psql('postgres', q{
SET enable_seqscan = off; SET vecstore.effort = 10;
SELECT count(*) FROM (SELECT id FROM big ORDER BY v <-> (SELECT v FROM items WHERE id = 5) LIMIT 100000) a}),
    '96000', 'an exhaustive search through it returns every row');

# parallel_leader_participation = off: the workers build every graph, the
# same bytes
my ($serial) = build(0, 'items', '(v vector_l2_ops) WITH (lists = 6)');
$node->safe_psql('postgres', 'ALTER SYSTEM SET parallel_leader_participation = off');
$node->reload;
my ($workers_only, $n) = build(2, 'items', '(v vector_l2_ops) WITH (lists = 6)');
is($n, 2, 'without the leader, 2 workers');
is($workers_only, $serial, 'without the leader, the same bytes');

done_testing();
