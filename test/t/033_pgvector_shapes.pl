#-------------------------------------------------------------------------
#
# 033_pgvector_shapes.pl
#     TAP test: the cases pgvector's own TAP suite puts to its HNSW index
#     for the vector type, put to vecstore at its defaults with
#     pgvector's thresholds: recall@20 after a build, per operator class
#     (L2, inner product, cosine, L1), at least 0.99 (0.97 for inner
#     product); the same after 10,000 rows inserted by 10 concurrent
#     clients into an empty index, and again after VACUUM has folded them
#     in; recall after three quarters of the rows are deleted, before and
#     after VACUUM (0.93 and 0.95); duplicates: every copy of a vector
#     is returned, however many there are; and build recall on halfvec
#     (four classes, 0.98) and on bit strings (Hamming, 0.98, ties counted
#     as found).
#
# The data is pgvector's shape: 10,000 x 3 products of two uniform
# numbers (random() * random()), 20 uniform queries; seeded, so a
# failure replays.
#
# IDENTIFICATION
#     test/t/033_pgvector_shapes.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $LIMIT = 20;
my $NQUERIES = 20;

my $node = PostgreSQL::Test::Cluster->new('shapes');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.gpu = off
vecstore.compaction_worker = off
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

srand(20261205);
our @queries = map { sprintf('[%.6f,%.6f,%.6f]', rand(), rand(), rand()) } 1 .. $NQUERIES;

my %opclass = (
    '<->' => 'vector_l2_ops',
    '<#>' => 'vector_ip_ops',
    '<=>' => 'vector_cosine_ops',
    '<+>' => 'vector_l1_ops');
my %min_recall = ('<->' => 0.99, '<#>' => 0.97, '<=>' => 0.99, '<+>' => 0.99);

# the exact LIMIT nearest ids of each query (no index)
sub exact_ids
{
    my ($op) = @_;
    my @ids;
    for my $q (@queries)
    {
        push @ids, [ split /\n/, $node->safe_psql('postgres',
            "SET enable_indexscan = off; SET enable_bitmapscan = off;
             SELECT i FROM tst ORDER BY v $op '$q' LIMIT $LIMIT") ];
    }
    return \@ids;
}

# recall of the index scans against "expected", after checking the plan
sub recall
{
    my ($op, $expected, $set) = @_;
    $set //= '';
    my $plan = $node->safe_psql('postgres',
        "SET enable_seqscan = off; $set EXPLAIN (COSTS OFF) SELECT i FROM tst ORDER BY v $op '$queries[0]' LIMIT $LIMIT");
    like($plan, qr/Index Scan using/, "ORDER BY $op is an index scan");
    my ($found, $total) = (0, 0);
    for my $n (0 .. $#queries)
    {
        my %got = map { $_ => 1 } split /\n/, $node->safe_psql('postgres',
            "SET enable_seqscan = off; $set SELECT i FROM tst ORDER BY v $op '$queries[$n]' LIMIT $LIMIT");
        $found += scalar grep { $got{$_} } @{ $expected->[$n] };
        $total += scalar @{ $expected->[$n] };
    }
    return $total ? $found / $total : 0;
}

# --- build recall, per operator class ------------------------------------
$node->safe_psql('postgres', q{
SELECT setseed(0.25);
CREATE TABLE tst (i int4, v vector(3));
INSERT INTO tst SELECT i, ARRAY[random() * random(), random() * random(), random() * random()]
FROM generate_series(1, 10000) i;
});
for my $op ('<->', '<#>', '<=>', '<+>')
{
    my $expected = exact_ids($op);
    $node->safe_psql('postgres', "CREATE INDEX idx ON tst USING vecstore (v $opclass{$op})");
    cmp_ok(recall($op, $expected), '>=', $min_recall{$op}, "build: recall\@$LIMIT of $opclass{$op}");
    $node->safe_psql('postgres', 'DROP INDEX idx');
}
$node->safe_psql('postgres', 'DROP TABLE tst');

# --- halfvec: build recall per operator class (pgvector: 10 dimensions of
# 2 * random() * random(), 0.98 for every class).  "WHERE i > 0" ties the
# sub-SELECT to its row: uncorrelated, it would run once and give every row
# the same vector, and the recall would measure only how ties fall ---------
{
    my @hq = map { '[' . join(',', map { sprintf('%.4f', rand()) } 1 .. 10) . ']' } 1 .. $NQUERIES;
    local @queries = @hq;
    $node->safe_psql('postgres', q{
SELECT setseed(0.75);
CREATE TABLE tst (i int4, v halfvec(10));
INSERT INTO tst SELECT i, ARRAY(SELECT 2 * random() * random() FROM generate_series(1, 10) WHERE i > 0)
FROM generate_series(1, 10000) i;
});
    for my $op ('<->', '<#>', '<=>', '<+>')
    {
        my $expected = exact_ids($op);
        (my $opclass = $opclass{$op}) =~ s/^vector_/halfvec_/;
        $node->safe_psql('postgres', "CREATE INDEX idx ON tst USING vecstore (v $opclass)");
        cmp_ok(recall($op, $expected), '>=', 0.98, "halfvec build: recall\@$LIMIT of $opclass");
        $node->safe_psql('postgres', 'DROP INDEX idx');
    }
    $node->safe_psql('postgres', 'DROP TABLE tst');
}

# --- bit: build recall of bit_hamming_ops (pgvector: 52 bits, 0.98).  Many
# rows share a Hamming distance, so a row counts as found when its
# distance is within the exact LIMIT-th one (which rows of a tie an exact
# scan returns is arbitrary) ---------------------------------------------
{
    my @bq = map { sprintf('%d::bigint::bit(52)', int(rand() * 2**52)) } 1 .. $NQUERIES;
    $node->safe_psql('postgres', q{
SELECT setseed(0.125);
CREATE TABLE tst (i int4, v bit(52));
INSERT INTO tst SELECT i, (random() * 2 ^ 52)::bigint::bit(52) FROM generate_series(1, 10000) i;
CREATE INDEX idx ON tst USING vecstore (v bit_hamming_ops);
});
    like($node->safe_psql('postgres',
            "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT i FROM tst ORDER BY v <~> $bq[0] LIMIT $LIMIT"),
        qr/Index Scan using idx/, 'ORDER BY <~> is an index scan');
    my ($found, $total) = (0, 0);
    for my $q (@bq)
    {
        my $kth = $node->safe_psql('postgres',
            "SET enable_indexscan = off; SELECT max(d) FROM (SELECT v <~> $q AS d FROM tst ORDER BY 1 LIMIT $LIMIT) s");
        $found += $node->safe_psql('postgres',
            "SET enable_seqscan = off; SELECT count(*) FILTER (WHERE d <= $kth) FROM
             (SELECT v <~> $q AS d FROM tst ORDER BY v <~> $q LIMIT $LIMIT) s");
        $total += $LIMIT;
    }
    cmp_ok($found / $total, '>=', 0.98, "bit build: recall\@$LIMIT of bit_hamming_ops (ties counted)");
    $node->safe_psql('postgres', 'DROP TABLE tst');
}

# --- rows inserted by concurrent clients into an empty index --------------
$node->safe_psql('postgres', 'CREATE TABLE tst (i serial, v vector(3))');
for my $op ('<->', '<#>', '<=>', '<+>')
{
    $node->safe_psql('postgres', "CREATE INDEX idx ON tst USING vecstore (v $opclass{$op})");
    $node->pgbench(
        '--no-vacuum --client=10 --transactions=1000',
        0,
        [qr{actually processed}],
        [qr{^$}],
        "inserts by 10 clients ($opclass{$op})",
        {
            "033_insert_$opclass{$op}" =>
              'INSERT INTO tst (v) VALUES (ARRAY[random() * random(), random() * random(), random() * random()]);'
        });
    is($node->safe_psql('postgres', 'SELECT count(*) FROM tst'), '10000', 'every insert arrived');
    my $expected = exact_ids($op);
    cmp_ok(recall($op, $expected), '>=', $min_recall{$op}, "inserts: recall\@$LIMIT of $opclass{$op}");
    # VACUUM compacts: the rows leave the delta chains for sealed clusters
    $node->safe_psql('postgres', 'VACUUM tst');
    is($node->safe_psql('postgres', q{SELECT delta_rows FROM vecstore_index_info('idx')}),
        '0', "VACUUM folded the inserted rows in ($opclass{$op})");
    cmp_ok(recall($op, $expected), '>=', $min_recall{$op},
        "inserts, after VACUUM: recall\@$LIMIT of $opclass{$op}");
    $node->safe_psql('postgres', 'DROP INDEX idx; TRUNCATE tst');
}
$node->safe_psql('postgres', 'DROP TABLE tst');

# --- deletes, before and after VACUUM -------------------------------------
$node->safe_psql('postgres', q{
SELECT setseed(0.5);
CREATE TABLE tst (i int4, v vector(3)) WITH (autovacuum_enabled = false);
INSERT INTO tst SELECT i, ARRAY[random(), random(), random()] FROM generate_series(1, 10000) i;
CREATE INDEX idx ON tst USING vecstore (v vector_l2_ops) WITH (m = 4, ef_construction = 8);
DELETE FROM tst WHERE i > 2500;
});
{
    my $expected = exact_ids('<->');
    cmp_ok(recall('<->', $expected), '>=', 0.93, "deletes, before VACUUM: recall\@$LIMIT");
    $node->safe_psql('postgres', 'VACUUM tst');
    cmp_ok(recall('<->', $expected), '>=', 0.95, "deletes, after VACUUM: recall\@$LIMIT");
    is($node->safe_psql('postgres', q{SELECT dead_rows FROM vecstore_index_info('idx')}),
        '0', 'VACUUM dropped the deleted rows from the index');
}
$node->safe_psql('postgres', 'DROP TABLE tst');

# --- duplicates ------------------------------------------------------------
# every copy of one vector comes back: in the sealed clusters, in the delta
# chains, and in both
$node->safe_psql('postgres', q{
CREATE TABLE dup (v vector(3));
INSERT INTO dup SELECT '[1,1,1]' FROM generate_series(1, 20);
CREATE INDEX ON dup USING vecstore (v);
});
my $count_sql = q{SET enable_seqscan = off;
SELECT count(*) FROM (SELECT v FROM dup ORDER BY v <-> '[1,1,1]' LIMIT 1000) s};
is($node->safe_psql('postgres', $count_sql), '20', 'duplicates built into the index: all 20');
$node->safe_psql('postgres', q{INSERT INTO dup SELECT '[1,1,1]' FROM generate_series(1, 30)});
is($node->safe_psql('postgres', $count_sql), '50', 'duplicates built and inserted: all 50');
$node->safe_psql('postgres', 'VACUUM dup');
is($node->safe_psql('postgres', $count_sql), '50', 'duplicates after VACUUM: all 50');
$node->safe_psql('postgres', q{INSERT INTO dup SELECT '[1,1,1]' FROM generate_series(1, 2000)});
$node->safe_psql('postgres', 'REINDEX TABLE dup');
is($node->safe_psql('postgres', q{SET enable_seqscan = off;
SELECT count(*) FROM (SELECT v FROM dup ORDER BY v <-> '[1,1,1]' LIMIT 5000) s}),
    '2050', 'a cluster of 2050 duplicates (a graph of equal points): all 2050');

$node->stop;
done_testing();
