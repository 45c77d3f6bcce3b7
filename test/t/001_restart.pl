#-------------------------------------------------------------------------
#
# 001_restart.pl
#     TAP test: acknowledged vector writes survive crashes and restarts.
#
# A node runs with vecstore in shared_preload_libraries.  Three batches of
# autocommit writes (single-row INSERTs with literal vectors, multi-row
# INSERT ... SELECT building vectors from real[], and UPDATEs) run in a
# background psql, which prints each id only once its statement has
# committed and returned (RETURNING output reaches psql after the commit).
# In the middle of a batch the server is
#   1. killed: SIGKILL to the postmaster and every server process;
#   2. restarted cleanly (pg_ctl restart, fast mode);
#   3. stopped in immediate mode (no shutdown checkpoint).
# After each, every acknowledged id must be present with exactly the vector
# it was given, rows may exceed the acknowledged ones only by the one
# statement in flight, and the table must still take inserts and answer a
# kNN query.
#
# Every stored vector is a deterministic function of (id, version):
# element j (1..16) is ((id*31 + j*7 + version*13) % 97 - 48) / 8, exact in
# float4.  Perl writes it as a literal for the single-row inserts; the SQL
# function expected_v() computes it for the multi-row inserts, the updates
# and the checks, so the two computations must also agree.
#
# IDENTIFICATION
#     test/t/001_restart.pl
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

my $DIMS = 16;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
log_statement = 'ddl'
});
$node->start;

$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE TABLE items (id int PRIMARY KEY, v vector(16));

-- the acknowledged writes, loaded after each interruption
CREATE TABLE acked (id int NOT NULL, kind char(1) NOT NULL, batch int NOT NULL);

CREATE FUNCTION expected_v(id int, ver int) RETURNS vector(16)
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT ARRAY(SELECT (((id * 31 + j * 7 + ver * 13) % 97) - 48) / 8.0
                 FROM generate_series(1, 16) AS j)::real[]::vector(16)
$$;
});

is($node->safe_psql('postgres', q{SELECT extname FROM pg_extension WHERE extname = 'vecstore'}),
    'vecstore', 'extension created');
is($node->safe_psql('postgres', q{SHOW shared_preload_libraries}),
    'vecstore', 'vecstore is preloaded');

#
# expected_literal - the vector text of (id, version), computed in Perl.
#
sub expected_literal
{
    my ($id, $ver) = @_;
    my @elems;

    for my $j (1 .. $DIMS)
    {
        push @elems, ((($id * 31 + $j * 7 + $ver * 13) % 97) - 48) / 8;
    }
    return '[' . join(',', @elems) . ']';
}

# Perl and SQL agree on the expected vectors (which also checks vector_in
# against the real[] cast).
{
    my @values;
    for my $id (1 .. 200)
    {
        push @values, "($id, 0, '" . expected_literal($id, 0) . "')",
          "($id, 1, '" . expected_literal($id, 1) . "')";
    }
    is( $node->safe_psql(
            'postgres',
            'SELECT count(*) FROM (VALUES ' . join(',', @values) . ') AS t(id, ver, lit)
             WHERE expected_v(id, ver) <> lit::vector(16)'),
        '0',
        'SQL expected_v matches the Perl literals for 200 ids, both versions');
}

#
# write_workload - the psql script of one batch: ids first .. first+n-1,
# mostly single-row inserts with literal vectors, every 10th step a
# 5-row INSERT ... SELECT, every 4th step an UPDATE of an earlier id to
# version 1.  Each statement prints "i <id>" or "u <id>" per row through
# RETURNING.  Returns the numbers of rows inserted and updates planned.
#
sub write_workload
{
    my ($file, $first, $n) = @_;
    my ($id, $step, $nupdates) = ($first, 0, 0);

    open my $fh, '>', $file or die "could not write $file: $!";
    while ($id < $first + $n)
    {
        $step++;
        if ($step % 10 == 0 && $id + 4 < $first + $n)
        {
            my $last = $id + 4;
            print $fh "INSERT INTO items SELECT g, expected_v(g, 0) "
              . "FROM generate_series($id, $last) AS g RETURNING 'i ' || id;\n";
            $id += 5;
        }
        else
        {
            print $fh "INSERT INTO items VALUES ($id, '"
              . expected_literal($id, 0)
              . "') RETURNING 'i ' || id;\n";
            $id++;
        }
        if ($step % 4 == 0 && $id - 7 >= $first)
        {
            my $target = $id - 7;
            print $fh "UPDATE items SET v = expected_v(id, 1) "
              . "WHERE id = $target RETURNING 'u ' || id;\n";
            $nupdates++;
        }
    }
    close $fh;
    return ($id - $first, $nupdates);
}

#
# run_batch - run one batch of the workload and interrupt it with
# "$interrupt->()" once at least $threshold of its rows are visible.
# Returns references to the lists of acknowledged insert and update ids.
# The caller brings the server back up where the interruption left it down.
#
sub run_batch
{
    my ($name, $batch, $first, $n, $threshold, $interrupt) = @_;
    my $dir    = PostgreSQL::Test::Utils::tempdir();
    my $script = "$dir/workload.sql";
    my $out    = "$dir/acked.out";
    my $err    = "$dir/psql.err";
    my $last   = $first + $n - 1;

    my ($rows, $nupdates) = write_workload($script, $first, $n);
    note "batch $batch ($name): $rows inserts and $nupdates updates planned";

    # -q -A -t: psql prints nothing but the RETURNING values
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

    # wait until the batch is well under way
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

    # psql exits on its own once the connection is lost
    my $completed = $h->finish;
    my $stderr = slurp_file($err);
    note "batch $batch: psql exit status " . ($? >> 8) . ", stderr: $stderr";

    my (@inserted, @updated);
    for my $line (split /\n/, slurp_file($out))
    {
        if ($line =~ /^i (\d+)$/) { push @inserted, $1; }
        elsif ($line =~ /^u (\d+)$/) { push @updated, $1; }
        else { die "unexpected psql output line: \"$line\""; }
    }
    ok(!$completed && @inserted < $rows,
        "batch $batch ($name): interrupted mid-workload after "
          . scalar(@inserted)
          . " of $rows inserts acknowledged");
    cmp_ok(scalar(@inserted), '>=', $threshold - 5,
        "batch $batch: at least the rows seen before the interruption were acknowledged");
    return (\@inserted, \@updated);
}

#
# check_table - after the server is back: every acknowledged write of every
# batch so far is there with the right vector, and the table is usable.
#
sub check_table
{
    my ($name, $batch, $first, $n, $inserted, $updated) = @_;
    my $last = $first + $n - 1;

    # record this batch's acknowledgements in the database itself
    $node->safe_psql('postgres',
        "INSERT INTO acked SELECT unnest('{"
          . join(',', @$inserted)
          . "}'::int[]), 'i', $batch;"
          . "INSERT INTO acked SELECT unnest('{"
          . join(',', @$updated)
          . "}'::int[]), 'u', $batch;");

    is( $node->safe_psql(
            'postgres', q{
            SELECT count(*) FROM acked a
            WHERE a.kind = 'i' AND NOT EXISTS (SELECT 1 FROM items i WHERE i.id = a.id)}),
        '0',
        "$name: every acknowledged insert (all batches) is present");

    my $count = $node->safe_psql('postgres',
        "SELECT count(*) FROM items WHERE id BETWEEN $first AND $last");
    cmp_ok($count, '>=', scalar(@$inserted),
        "$name: row count $count >= " . scalar(@$inserted) . " acknowledged");
    # only the statement in flight (at most 5 rows) may have committed
    # without its acknowledgement reaching psql
    cmp_ok($count, '<=', scalar(@$inserted) + 5,
        "$name: at most one unacknowledged statement's rows are present");

    is($node->safe_psql('postgres', q{SELECT count(*) FROM items WHERE vector_dims(v) <> 16 OR v IS NULL}),
        '0', "$name: every vector has 16 dimensions");

    # every row holds version 0 or 1 of its vector, bit for bit
    is( $node->safe_psql(
            'postgres', q{
            SELECT count(*) FROM items
            WHERE v <> expected_v(id, 0) AND v <> expected_v(id, 1)}),
        '0',
        "$name: every stored vector equals its deterministic value");
    is( $node->safe_psql(
            'postgres', q{
            SELECT count(*) FROM items
            WHERE least(v <-> expected_v(id, 0), v <-> expected_v(id, 1)) <> 0}),
        '0',
        "$name: every stored vector is at distance 0 from its deterministic value");

    # acknowledged updates are all there
    is( $node->safe_psql(
            'postgres', q{
            SELECT count(*) FROM items i
            WHERE EXISTS (SELECT 1 FROM acked a WHERE a.kind = 'u' AND a.id = i.id)
              AND i.v <> expected_v(i.id, 1)}),
        '0',
        "$name: every acknowledged update is present");
    # and besides them, at most the one in flight in this batch
    cmp_ok(
        $node->safe_psql(
            'postgres', qq{
            SELECT count(*) FROM items i
            WHERE i.id BETWEEN $first AND $last
              AND i.v = expected_v(i.id, 1)
              AND NOT EXISTS (SELECT 1 FROM acked a WHERE a.kind = 'u' AND a.id = i.id)}),
        '<=', 1,
        "$name: at most one unacknowledged update is present");

    # the table still works: a write, and a kNN query over everything
    my $probe = 1_000_000 + $batch;
    $node->safe_psql('postgres',
        "INSERT INTO items VALUES ($probe, expected_v($probe, 0))");
    is( $node->safe_psql('postgres',
            "SELECT v = '" . expected_literal($probe, 0) . "' FROM items WHERE id = $probe"),
        't',
        "$name: a new insert reads back");
    my $query = expected_literal($first + 3, 0);
    my $knn = $node->safe_psql('postgres',
        "SELECT id FROM items ORDER BY v <-> '$query' LIMIT 5");
    my @knn = split /\n/, $knn;
    is(scalar(@knn), 5, "$name: kNN query returns 5 rows");
    my $nearest = $node->safe_psql('postgres',
        "SELECT min(v <-> '$query') FROM items");
    is($nearest, '0', "$name: the nearest vector to a stored one is at distance 0");
    return;
}

my $logstart;

# Batch 1: SIGKILL every server process in the middle.
my ($ins1, $upd1) = run_batch(
    'SIGKILL', 1, 1, 20_000, 3000,
    sub {
        $logstart = -s $node->logfile;
        crash_node($node);
    });
$node->start;
like(
    slurp_file($node->logfile, $logstart),
    qr/database system was not properly shut down; automatic recovery in progress/,
    'batch 1: the server went through crash recovery');
check_table('after SIGKILL', 1, 1, 20_000, $ins1, $upd1);

# Batch 2: clean restart (fast shutdown) in the middle.
my ($ins2, $upd2) = run_batch(
    'restart', 2, 100_001, 20_000, 2000,
    sub {
        $node->restart;
    });
check_table('after restart', 2, 100_001, 20_000, $ins2, $upd2);

# Batch 3: immediate shutdown (no checkpoint) in the middle.
my ($ins3, $upd3) = run_batch(
    'immediate stop', 3, 200_001, 20_000, 2000,
    sub {
        $logstart = -s $node->logfile;
        $node->stop('immediate');
    });
$node->start;
like(
    slurp_file($node->logfile, $logstart),
    qr/database system was not properly shut down; automatic recovery in progress/,
    'batch 3: the server went through crash recovery');
check_table('after immediate stop', 3, 200_001, 20_000, $ins3, $upd3);

# Finally a clean stop and start: everything is still there.
my $total = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
$node->restart;
is($node->safe_psql('postgres', 'SELECT count(*) FROM items'),
    $total, "row count ($total) unchanged across a final clean restart");
is( $node->safe_psql(
        'postgres', q{
        SELECT count(*) FROM items
        WHERE v <> expected_v(id, 0) AND v <> expected_v(id, 1)}),
    '0',
    'all vectors intact after the final restart');

$node->stop;
done_testing();
