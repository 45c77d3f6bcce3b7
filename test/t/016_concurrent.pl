#-------------------------------------------------------------------------
#
# 016_concurrent.pl
#     TAP test: concurrent inserts, kNN scans, deletes and VACUUM on a
#     vecstore index (pgbench), then CREATE INDEX CONCURRENTLY under
#     concurrent inserts; afterwards every row is found through each index.
#
# Phase 1: a table of 5,000 random 32-dimensional vectors with an l2 index
# (lists = 20); pgbench runs 4 clients for 15 s (about 500 transactions
# per second, about 20,000 rows in all) with a mix of single-row
# inserts, 10-row inserts, kNN queries through the index, deletes of
# random ids (logged in a table) and VACUUMs.  pgbench must finish without
# errors.
# Phase 2: pgbench inserts and queries for 10 s with 2 clients while
# CREATE INDEX CONCURRENTLY builds a cosine index (lists = 20) on the
# same table; before it, vecstore_verify runs 10 times meanwhile and finds
# no problem.
#
# After each phase, for each index (enable_seqscan = off, probes = lists):
#   - every id the sequence handed out is in the table or in the deleted
#     log (no insert was lost);
#   - a full index-ordered scan returns each row of the table exactly once
#     (nothing missing, nothing doubled: the CIC validation must not
#     insert rows the build already had);
#   - a sample of ~2,000 rows (inserted during pgbench, and older ones)
#     each finds itself first, at distance 0 (l2);
#   - vecstore_verify is clean, and after a VACUUM vecstore_index_info's
#     sealed_rows + delta_rows - dead_rows equals the row count.
#
# IDENTIFICATION
#     test/t/016_concurrent.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $LISTS = 20;

my $node = PostgreSQL::Test::Cluster->new('concurrent');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 128MB
max_connections = 30
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
CREATE TABLE items (id bigserial PRIMARY KEY, v vector(32) NOT NULL);
CREATE TABLE deleted (id bigint NOT NULL);
SELECT setseed(0.16);
INSERT INTO items (v)
    SELECT ARRAY(SELECT random() * 10 + g * 0 FROM generate_series(1, 32))::real[]::vector(32)
    FROM generate_series(1, 5000) AS g;
CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);
ANALYZE items;
});
is($node->safe_psql('postgres', 'SELECT count(DISTINCT v::text) FROM items'), '5000',
    'the 5000 initial vectors are distinct');

my $RANDVEC = 'ARRAY(SELECT random() * 10 + g * 0 FROM generate_series(1, 32))::real[]::vector(32)';
my %SCRIPTS = (
    insert => "INSERT INTO items (v) SELECT $RANDVEC FROM generate_series(1, 1) AS g;\n",
    insert10 => "INSERT INTO items (v) SELECT $RANDVEC FROM generate_series(1, 10) AS g;\n",
    knn => "SET enable_seqscan = off;\n"
      . "SELECT id FROM items ORDER BY v <-> (SELECT $RANDVEC FROM generate_series(1, 1) AS g) LIMIT 10;\n",
    delete => "\\set rid random(1, 20000)\n"
      . "WITH d AS (DELETE FROM items WHERE id = :rid RETURNING id) INSERT INTO deleted SELECT id FROM d;\n",
    vacuum => "VACUUM items;\n");

my $scriptdir = PostgreSQL::Test::Utils::tempdir();
for my $name (keys %SCRIPTS)
{
    open my $fh, '>', "$scriptdir/$name.sql" or die "$name.sql: $!";
    print $fh $SCRIPTS{$name};
    close $fh;
}

#
# start_pgbench - pgbench in the background with the given scripts and
# weights, for $seconds at about $rate transactions per second (which
# bounds the table's growth, and so the time the checks take); returns
# [harness, \stdout, \stderr].
#
sub start_pgbench
{
    my ($clients, $seconds, $rate, %weights) = @_;
    my ($out, $err) = ('', '');
    my @cmd = (
        'pgbench', '--no-vacuum', "--client=$clients", '--jobs=2', "--time=$seconds",
        "--rate=$rate",
        '-h', $node->host, '-p', $node->port,
        map({ ('-f', "$scriptdir/$_.sql\@$weights{$_}") } sort keys %weights),
        'postgres');
    note "running: @cmd";
    my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
        IPC::Run::timeout($seconds + $PostgreSQL::Test::Utils::timeout_default));
    return [ $h, \$out, \$err ];
}

#
# finish_pgbench - wait for pgbench; it must exit 0 with no failed
# transaction.
#
sub finish_pgbench
{
    my ($what, $run) = @_;
    my ($h, $out, $err) = @$run;
    my $ok = $h->finish;
    note "$what: pgbench output:\n$$out";
    ok($ok, "$what: pgbench exits 0") or diag("stderr:\n$$err");
    like($$out, qr/number of transactions actually processed: \d+/,
        "$what: pgbench reports its transactions");
    unlike($$out, qr/number of failed transactions: [1-9]/, "$what: no failed transaction");
    return;
}

# an exact search: every cluster, however many compactions' splits made
my $INDEX = 'SET enable_seqscan = off; SET enable_bitmapscan = off; '
  . "SET vecstore.effort = 10; SET vecstore.max_scan_tuples = 100000000;";

#
# check_index - every row of the table is found through the index.
#
sub check_index
{
    my ($what, $index, $op) = @_;

    my $count = $node->safe_psql('postgres', 'SELECT count(*) FROM items');
    note "$what: $count rows";

    # no insert lost
    is( $node->safe_psql(
            'postgres', q{
            SELECT count(*) FROM generate_series(1, (SELECT last_value FROM items_id_seq)) AS g(id)
            WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = g.id)
              AND NOT EXISTS (SELECT 1 FROM deleted d WHERE d.id = g.id)}),
        '0',
        "$what: every id handed out is in the table or was deleted");

    # the full index scan
    my $full = "SELECT id FROM items ORDER BY v $op array_fill(1, ARRAY[32])::real[]::vector(32) "
      . "LIMIT 100000000";
    like($node->safe_psql('postgres', "$INDEX EXPLAIN (COSTS OFF) $full"),
        qr/Index Scan using $index on items/, "$what: the full scan uses $index");
    is($node->safe_psql('postgres', "$INDEX SELECT count(*), count(DISTINCT id) FROM ($full) s"),
        "$count|$count", "$what: a full scan of $index returns each of the $count rows once");

    # a sample finds itself first
    my $step = int($count / 2000) || 1;
    my $lookup = qq{
        FROM items s CROSS JOIN LATERAL
             (SELECT t.id, t.v $op s.v AS d FROM items t ORDER BY t.v $op s.v LIMIT 1) r
        WHERE s.id % $step = 0
    };
    like($node->safe_psql('postgres', "$INDEX EXPLAIN (COSTS OFF) SELECT s.id $lookup"),
        qr/Index Scan using $index on items t/, "$what: the lookups use $index");
    my $cond = $op eq '<->' ? 'r.id = s.id AND r.d = 0' : 'r.id = s.id';
    my ($n, $found, $missing) = split /\|/,
      $node->safe_psql('postgres',
        "$INDEX SELECT count(*), count(*) FILTER (WHERE $cond), "
          . "string_agg(s.id || ' -> ' || r.id || ' at ' || r.d, ', ') FILTER (WHERE NOT ($cond)) "
          . $lookup), 3;
    cmp_ok($n, '>=', 1000, "$what: $n rows sampled");
    is($found, $n, "$what: every sampled row finds itself through $index")
      or diag('not found: ' . substr($missing, 0, 2000));

    is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$index'::regclass)"),
        '0', "$what: vecstore_verify finds no problem in $index");
    # INDEX_CLEANUP ON: a VACUUM that finds few dead rows may otherwise
    # skip index vacuuming (leaving them LP_DEAD in the heap and in the index)
    $node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) items');
    my ($sealed, $delta, $dead) = split /\|/,
      $node->safe_psql('postgres',
        "SELECT sealed_rows, delta_rows, dead_rows FROM vecstore_index_info('$index'::regclass)");
    is($sealed + $delta - $dead, $count,
        "$what: after VACUUM, $index counts the live rows "
          . "(sealed $sealed + delta $delta - dead $dead)");
    return;
}

# Phase 1: the mixed workload.
my $run = start_pgbench(4, 15, 500, insert => 4, insert10 => 2, knn => 4, delete => 1, vacuum => 1);
finish_pgbench('mixed workload', $run);
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM deleted'), '>', 0,
    'the workload deleted rows');
check_index('after the mixed workload', 'items_v_idx', '<->');

# Phase 2: CREATE INDEX CONCURRENTLY while rows come in.
$run = start_pgbench(2, 10, 300, insert => 1, insert10 => 1, knn => 1);
sleep 2;
# vecstore_verify while rows come in: it compares each delta chain with
# its directory entry as of one moment, and finds nothing that is not
# there (it reported counts, tails and links past the end before)
my @found = map {
    $node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('items_v_idx'::regclass)")
} 1 .. 10;
is(join(',', @found), join(',', ('0') x 10),
    'vecstore_verify during concurrent inserts finds no problem, 10 times');
my $before = $node->safe_psql('postgres', 'SELECT last_value FROM items_id_seq');
$node->safe_psql('postgres',
    "CREATE INDEX CONCURRENTLY items_cos_idx ON items USING vecstore (v vector_cosine_ops) WITH (lists = $LISTS)");
my $after = $node->safe_psql('postgres', 'SELECT last_value FROM items_id_seq');
note "rows inserted while CREATE INDEX CONCURRENTLY ran: " . ($after - $before) . " (ids)";
finish_pgbench('inserts during CREATE INDEX CONCURRENTLY', $run);
cmp_ok($after - $before, '>', 0, 'rows were inserted while the index was built');
is( $node->safe_psql('postgres',
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_cos_idx'::regclass"),
    't', 'the concurrently built index is valid');
check_index('after CREATE INDEX CONCURRENTLY', 'items_cos_idx', '<=>');
check_index('after CREATE INDEX CONCURRENTLY', 'items_v_idx',   '<->');

$node->stop;
done_testing();
