#-------------------------------------------------------------------------
#
# 011_index_crash.pl
#     TAP test: rows acknowledged before a crash are found through the
#     vecstore index after recovery.
#
# A node (wal_level = replica, vecstore preloaded) holds a table of 10,000
# rows with an index (lists = 20) built just before the first batch, so
# crash recovery replays the build as well as the inserts.  Two batches of
# autocommit inserts (single rows, and 20-row INSERT ... SELECT every 10th
# statement) run in a background psql that prints each id once its
# statement has committed and returned.  In the middle of a batch:
#   1. SIGKILL to the postmaster and every server process;
#   2. after deleting 2,000 rows and a VACUUM (deletion bitmap), an
#      immediate stop (no shutdown checkpoint).
# After each restart, through the index (enable_seqscan = off,
# probes = lists):
#   - every acknowledged row, and a sample of the older rows, finds itself
#     at distance 0 as its nearest neighbour;
#   - a full index-ordered scan returns every row of the table exactly
#     once (no lost and no doubled delta entries after WAL replay);
#   - vecstore_verify finds no problem (every page's CRC included: the
#     CRCs of the pages inserts and VACUUM changed were replayed with
#     them), and vecstore_index_info counts at
#     least the live rows and at most the statement in flight more;
#   - a new row is found at once.
#
# Vectors are vec_of(id): 32 hashed values, distinct for distinct ids
# (checked), so "distance 0" identifies the row.
#
# IDENTIFICATION
#     test/t/011_index_crash.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use VsTest qw(crash_node);

my $LISTS = 20;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init(allows_streaming => 1);    # wal_level = replica, the default outside tests
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 128MB
max_connections = 20
max_wal_size = 1GB
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
CREATE FUNCTION vec_of(id int) RETURNS vector(32)
LANGUAGE sql IMMUTABLE STRICT AS \$\$
    SELECT ARRAY(SELECT (hashint4(id * 64 + j) % 10000) / 100.0
                 FROM generate_series(0, 31) AS j)::real[]::vector(32)
\$\$;
CREATE TABLE items (id int PRIMARY KEY, v vector(32) NOT NULL);
CREATE TABLE acked (id int NOT NULL, batch int NOT NULL);
INSERT INTO items SELECT g, vec_of(g) FROM generate_series(1, 10000) AS g;
CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);
});
is( $node->safe_psql('postgres',
        'SELECT count(DISTINCT v::text) FROM items'),
    '10000',
    'the 10000 initial vectors are distinct');

#
# write_workload - the psql script of one batch: ids first .. first+n-1,
# single-row inserts and, every 10th statement, a 20-row INSERT ... SELECT.
# Each row prints its id through RETURNING.  Returns the number of rows.
#
sub write_workload
{
    my ($file, $first, $n) = @_;
    my ($id, $step) = ($first, 0);

    open my $fh, '>', $file or die "could not write $file: $!";
    while ($id < $first + $n)
    {
        $step++;
        if ($step % 10 == 0 && $id + 19 < $first + $n)
        {
            my $last = $id + 19;
            print $fh "INSERT INTO items SELECT g, vec_of(g) "
              . "FROM generate_series($id, $last) AS g RETURNING id;\n";
            $id += 20;
        }
        else
        {
            print $fh "INSERT INTO items VALUES ($id, vec_of($id)) RETURNING id;\n";
            $id++;
        }
    }
    close $fh;
    return $id - $first;
}

#
# run_batch - run one batch and call $interrupt->() once at least
# $threshold of its rows are visible.  Returns the acknowledged ids.
#
sub run_batch
{
    my ($batch, $first, $n, $threshold, $interrupt) = @_;
    my $dir    = PostgreSQL::Test::Utils::tempdir();
    my $script = "$dir/workload.sql";
    my $out    = "$dir/acked.out";
    my $err    = "$dir/psql.err";
    my $last   = $first + $n - 1;

    my $rows = write_workload($script, $first, $n);
    my $h = IPC::Run::start(
        [
            'psql', '-X', '-q', '-A', '-t',
            '-v',   'ON_ERROR_STOP=1',
            '-d',   $node->connstr('postgres'),
            '-f',   $script
        ],
        '<',  \undef,
        '>',  $out,
        '2>', $err,
        IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));

    my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
    while (1)
    {
        my $count = $node->safe_psql('postgres',
            "SELECT count(*) FROM items WHERE id BETWEEN $first AND $last");
        last if $count >= $threshold;
        die "batch $batch: only $count rows after the timeout"
          if time() > $deadline;
        usleep(20_000);
    }
    $interrupt->();

    my $completed = $h->finish;
    note "batch $batch: psql exit status " . ($? >> 8) . ", stderr: " . slurp_file($err);
    my @acked;
    for my $line (split /\n/, slurp_file($out))
    {
        die "unexpected psql output line: \"$line\"" unless $line =~ /^(\d+)$/;
        push @acked, $1;
    }
    ok(!$completed && @acked < $rows,
        "batch $batch: interrupted mid-workload after "
          . scalar(@acked)
          . " of $rows inserts acknowledged");
    cmp_ok(scalar(@acked), '>=', $threshold - 20,
        "batch $batch: the rows seen before the interruption were acknowledged");
    return \@acked;
}

# an exact search: every cluster, however many compactions' splits made
my $INDEX = "SET enable_seqscan = off; SET enable_bitmapscan = off; "
  . "SET vecstore.effort = 10; SET vecstore.max_scan_tuples = 100000000;";

#
# check_index - after a restart: every acknowledged row (all batches so
# far) and every 10th older row finds itself through the index, a full
# index scan returns each row once, and the index is healthy.
#
sub check_index
{
    my ($name, $batch, $acked) = @_;

    $node->safe_psql('postgres',
        "INSERT INTO acked SELECT unnest('{" . join(',', @$acked) . "}'::int[]), $batch");
    is( $node->safe_psql('postgres',
            'SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = a.id)'),
        '0',
        "$name: every acknowledged row is in the table");

    my $lookup = q{
        FROM items s CROSS JOIN LATERAL
             (SELECT t.id, t.v <-> s.v AS d FROM items t ORDER BY t.v <-> s.v LIMIT 1) r
        WHERE (s.id IN (SELECT id FROM acked) OR s.id % 10 = 0)
    };
    like(
        $node->safe_psql('postgres', "$INDEX EXPLAIN (COSTS OFF) SELECT s.id $lookup"),
        qr/Index Scan using items_v_idx on items t/,
        "$name: the lookups run through the index");
    my $result = $node->safe_psql('postgres',
        "$INDEX SELECT count(*), count(*) FILTER (WHERE r.d = 0 AND r.id = s.id), "
          . "string_agg(s.id || ' -> ' || r.id || ' at ' || r.d, ', ') "
          . "FILTER (WHERE r.d <> 0 OR r.id <> s.id) $lookup");
    my ($n, $found, $missing) = split /\|/, $result, 3;
    is($found, $n,
        "$name: all $n acknowledged and sampled rows find themselves at distance 0 through the index")
      or diag("not found: " . substr($missing, 0, 2000));

    # a full index-ordered scan: every row exactly once
    my $full = "SELECT id FROM items ORDER BY v <-> array_fill(0, ARRAY[32])::real[]::vector(32) "
      . "LIMIT 100000000";
    like($node->safe_psql('postgres', "$INDEX EXPLAIN (COSTS OFF) $full"),
        qr/Index Scan using items_v_idx/, "$name: the full scan uses the index");
    is( $node->safe_psql('postgres',
            "$INDEX SELECT count(*), count(DISTINCT id), "
              . "(SELECT count(*) FROM items) FROM ($full) s"),
        join('|', ($node->safe_psql('postgres', 'SELECT count(*) FROM items')) x 3),
        "$name: a full index scan returns every row exactly once");

    is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx'::regclass)"),
        '0', "$name: vecstore_verify finds no problem");
    my ($sealed, $delta, $dead) = split /\|/,
      $node->safe_psql('postgres',
        "SELECT sealed_rows, delta_rows, dead_rows FROM vecstore_index_info('items_v_idx'::regclass)");
    my $count = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
    my $indexed = $sealed + $delta - $dead;
    # an aborted statement in flight leaves at most 20 index entries for
    # heap tuples that never committed, until VACUUM
    ok($indexed >= $count && $indexed <= $count + 20,
        "$name: index_info counts $indexed live entries for $count rows "
          . "(sealed $sealed + delta $delta - dead $dead)");

    my $probe = 5_000_000 + $batch;
    $node->safe_psql('postgres', "INSERT INTO items VALUES ($probe, vec_of($probe))");
    is( $node->safe_psql('postgres',
            "$INDEX SELECT id, v <-> vec_of($probe) FROM items ORDER BY v <-> vec_of($probe) LIMIT 1"),
        "$probe|0",
        "$name: a row inserted after recovery is found through the index");
    return;
}

# Batch 1: SIGKILL every server process during the inserts.
my $logstart;
my $acked1 = run_batch(
    1, 100_001, 50_000, 3000,
    sub {
        $logstart = -s $node->logfile;
        crash_node($node);
    });
$node->start;
like(
    slurp_file($node->logfile, $logstart),
    qr/database system was not properly shut down; automatic recovery in progress/,
    'batch 1: the server went through crash recovery');
check_index('after SIGKILL', 1, $acked1);

# Batch 2: deletes and a VACUUM first (the deletion bitmap), then an
# immediate stop during the inserts.
$node->safe_psql('postgres', 'DELETE FROM items WHERE id % 5 = 1 AND id <= 10000; VACUUM items;');
my $acked2 = run_batch(
    2, 200_001, 50_000, 3000,
    sub {
        $logstart = -s $node->logfile;
        $node->stop('immediate');
    });
$node->start;
like(
    slurp_file($node->logfile, $logstart),
    qr/database system was not properly shut down; automatic recovery in progress/,
    'batch 2: the server went through crash recovery');
is($node->safe_psql('postgres', 'SELECT count(*) FROM items WHERE id % 5 = 1 AND id <= 10000'),
    '0', 'batch 2: the deleted rows stay deleted');
check_index('after immediate stop', 2, $acked2);

# A clean restart changes nothing.
$node->restart;
check_index('after a clean restart', 3, []);

$node->stop;
done_testing();
