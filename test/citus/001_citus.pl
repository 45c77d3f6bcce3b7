#-------------------------------------------------------------------------
#
# 001_citus.pl
#     TAP test: vecstore indexes on a table distributed by Citus, on a
#     coordinator and two workers of this machine (the "citus" stage of
#     test/run.sh; not run by the "tap" stage).
#
# Every node preloads 'citus,vecstore' (Citus must come first) with
# vecstore.gpu = off, listens on 127.0.0.1 and is added to the coordinator
# with citus_add_node over the loopback.  CREATE EXTENSION vecstore on the
# coordinator reaches the workers.  The data: the first 20,000 rows of
# sift128-photos-euclidean (4,000 more for the inserts) and its first 50
# queries, from $VECSTORE_DATA (generated vectors without it), with
# label = id % 20.  Two tables of the same rows on the coordinator, each
# with the same CREATE INDEX ... USING vecstore ... WITH (lists = 25):
#   items_local  a plain table: the single node;
#   items        distributed by id into 4 shards, 2 per worker: Citus
#                creates the index on every shard, 25 lists each.
# The exact answers come from items_local by sequential scan; recall@10 is
# VsTest's tie-aware one.  Checked:
#
# - the index exists on every shard; EXPLAIN on the coordinator shows the
#   Citus adaptive executor over 4 tasks, each a vecstore index scan of a
#   shard under a pushed-down LIMIT;
# - recall@10 of the distributed table is within 0.01 of the single
#   node's at the same settings: vecstore.effort 4 (the default) and 6;
#   at effort 1 it is not lower (measured: 0.900 against 0.856; each shard
#   searches its quarter as hard as the single node searches the whole);
#   at effort 10 (exact) the distances equal the exact scan's, query by
#   query;
# - how vecstore.* settings reach the workers, proved by results (effort
#   1 answers differently from the default on this data): a plain SET on
#   the coordinator does NOT reach the workers, nor does SET LOCAL alone;
#   citus.propagate_set_commands = 'local' with SET LOCAL inside a
#   transaction does; ALTER ROLE ... SET and ALTER DATABASE ... SET on the
#   coordinator do (Citus runs them on every node) for the connections
#   the coordinator opens after them;
# - a filtered query (label = 7, 5% of the rows): at effort 10 the
#   distances equal the exact filtered scan's; at the defaults every query
#   returns 10 rows of that label in order, with recall@10 >= 0.9
#   (measured 0.946; the single node's, 0.962, is noted);
# - INSERT, DELETE and VACUUM through the coordinator: the exact search
#   still equals the exact scan, recall stays within 0.01 of the single
#   node's (which had the same changes), inserted rows find themselves,
#   vecstore_verify is clean on every shard;
# - citus_move_shard_placement (logical replication: wal_level = logical)
#   moves a shard and its index to the other worker: the moved shard,
#   queried on its new worker, equals an exact scan there at effort 10;
#   the distributed exact search returns what it did before the move and
#   recall stays within 0.01 (Citus creates the index anew on the target
#   after copying the rows); once Citus drops the old placement
#   (citus_cleanup_orphaned_resources) its segment files are gone from
#   the old worker;
# - worker 2 has a streaming standby: after worker 2 stops, the standby is
#   promoted and citus_update_node points the coordinator at it, the
#   distributed results (default, exact, filtered) are identical to those
#   before the failover, and new rows are found;
# - TRUNCATE leaves no segment file of an old relfilenode on any worker,
#   and the emptied index answers new rows exactly; DROP TABLE leaves no
#   segment file at all on any worker.
#
# Rows at equal distances (the data set has duplicate vectors) may come
# from the coordinator in either order: results are compared with ties in
# id order.  About a minute on 2 cores.
#
# IDENTIFICATION
#     test/citus/001_citus.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(check_results report_bad same_distances dataset_literals $SEQ_SCAN);

my $NBASE    = 20_000;
my $NEXTRA   = 4_000;
my $NQUERIES = 50;
my $K        = 10;
my $SHARDS   = 4;
my $LISTS    = 25;                   # the same CREATE INDEX on both tables
my $HOST     = '127.0.0.1';

# Settings of the distributed session: SET LOCAL inside a transaction
# reaches the workers only with this (see the propagation checks below).
my $PROPAGATE = "SET citus.propagate_set_commands = 'local';";

#
# new_node - a node preloading citus and vecstore, listening on the
# loopback, able to stream (physical and logical: shard moves replicate
# logically); started, with the citus extension created.
#
sub new_node
{
    my ($name) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init(allows_streaming => 'logical');
    $node->append_conf(
        'postgresql.conf', qq{
listen_addresses = '$HOST'
shared_preload_libraries = 'citus,vecstore'
vecstore.gpu = off
vecstore.compaction_worker = off
shared_buffers = 64MB
max_connections = 80
max_prepared_transactions = 20
max_worker_processes = 20
maintenance_work_mem = 128MB
max_parallel_maintenance_workers = 0
max_wal_size = 1GB
log_statement = 'ddl'
statement_timeout = '300s'
citus.node_conninfo = 'sslmode=prefer'
citus.show_shards_for_app_name_prefixes = '*'
citus.shard_count = $SHARDS
});
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION citus');
    return $node;
}

my $coord = new_node('coordinator');
my $w1    = new_node('worker1');
my $w2    = new_node('worker2');

# worker 2's standby, streaming from before any vecstore object exists
$w2->backup('w2b');
my $w2s = PostgreSQL::Test::Cluster->new('worker2_standby');
$w2s->init_from_backup($w2, 'w2b', has_streaming => 1);
$w2s->start;

$coord->safe_psql('postgres', "SELECT citus_set_coordinator_host('$HOST', " . $coord->port . ')');
for my $w ($w1, $w2)
{
    $coord->safe_psql('postgres', "SELECT citus_add_node('$HOST', " . $w->port . ')');
}
is($coord->safe_psql('postgres', 'SELECT count(*) FROM citus_get_active_worker_nodes()'),
    '2', 'two workers are active');
$coord->safe_psql('postgres', 'CREATE EXTENSION vecstore');
is( $coord->safe_psql('postgres',
        "SELECT string_agg(result, ',') FROM run_command_on_workers("
          . "\$\$SELECT extversion FROM pg_extension WHERE extname = 'vecstore'\$\$)"),
    join(',', ($coord->safe_psql('postgres',
                "SELECT extversion FROM pg_extension WHERE extname = 'vecstore'")) x 2),
    'CREATE EXTENSION vecstore reaches both workers');

my ($dim, $base, $queries) =
  dataset_literals('sift128-photos-euclidean', $NBASE + $NEXTRA, $NQUERIES, 10);

# stage (local): every row; items_local and items get the first $NBASE
$coord->safe_psql('postgres',
    "CREATE TABLE stage (id int, label int, v vector($dim));\n"
      . "COPY stage FROM STDIN;\n"
      . join('', map { ($_ + 1) . "\t" . (($_ + 1) % 20) . "\t$base->[$_]\n" } 0 .. $#$base)
      . "\\.\n"
      . "CREATE TABLE items_local (id int PRIMARY KEY, label int, v vector($dim));\n"
      . "CREATE TABLE items (id int PRIMARY KEY, label int, v vector($dim));\n"
      . "SELECT create_distributed_table('items', 'id');\n"
      . "INSERT INTO items_local SELECT * FROM stage WHERE id <= $NBASE;\n"
      . "INSERT INTO items SELECT * FROM stage WHERE id <= $NBASE;\n"
      . "CREATE INDEX items_local_v_idx ON items_local USING vecstore (v vector_l2_ops) "
      . "WITH (lists = $LISTS);\n"
      . "CREATE INDEX items_v_idx ON items USING vecstore (v vector_l2_ops) "
      . "WITH (lists = $LISTS);\n"
      . "ANALYZE items_local; ANALYZE items;\n");

is( $coord->safe_psql('postgres',
        "SELECT count(*) || '/' || count(DISTINCT nodeport) FROM citus_shards "
          . "WHERE table_name = 'items'::regclass"),
    "$SHARDS/2", "items has $SHARDS shards on 2 workers");

#
# vecstore_indexes - "name:rows" of every vecstore index on a node (shard
# indexes and Citus's empty shell indexes), sorted.
#
sub vecstore_indexes
{
    my ($node) = @_;
    return $node->safe_psql('postgres',
        "SELECT string_agg(c.relname || ':' || "
          . "(SELECT sealed_rows + delta_rows - dead_rows FROM vecstore_index_info(c.oid)), ' ' "
          . "ORDER BY c.relname) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
          . "WHERE a.amname = 'vecstore'");
}

my $total = 0;
for my $w ($w1, $w2)
{
    my $idx = vecstore_indexes($w);
    my @shard = $idx =~ /items_v_idx_\d+:(\d+)/g;
    is(scalar(@shard), $SHARDS / 2, $w->name . " has an index on each of its shards ($idx)");
    $total += $_ for @shard;
}
is($total, $NBASE, "the shard indexes hold the $NBASE rows between them");

my $qlit0 = "'$queries->[0]'";
my $plan = $coord->safe_psql('postgres',
    "EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> $qlit0 LIMIT $K");
like($plan, qr/Custom Scan \(Citus Adaptive\)/, 'the coordinator plans a Citus scan');
like($plan, qr/Task Count: $SHARDS/, "over $SHARDS tasks");
like($plan, qr/Limit.*\n.*Index Scan using items_v_idx_\d+ on items_\d+/,
    'each task is a vecstore index scan of a shard under a pushed-down LIMIT')
  or diag($plan);

#
# knn - results of every query on $node: { q => [ [id, label, distance], ... ] }
# in the order returned, and as text (canon: ties in id order).  $settings run first in the
# session; with $local, each query runs in a transaction that starts with
# $local (SET LOCAL ...).
#
sub knn
{
    my ($node, $table, $settings, $local, $where) = @_;
    my $sql = "$settings\n";
    my $w = $where ? "WHERE $where" : '';
    for my $q (0 .. $#$queries)
    {
        my $qv = "'$queries->[$q]'";
        $sql .= "BEGIN; $local\n" if $local;
        $sql .= "SELECT $q, id, label, v <-> $qv FROM $table $w ORDER BY v <-> $qv LIMIT $K;\n";
        $sql .= "COMMIT;\n" if $local;
    }
    my $out = $node->safe_psql('postgres', $sql);
    my %res;
    for my $line (split /\n/, $out)
    {
        my ($q, @row) = split /\|/, $line;
        push @{ $res{$q} }, \@row;
    }
    return (\%res, canon($out));
}

# exact - the exact answers, from items_local by sequential scan
sub exact
{
    my ($where) = @_;
    return (knn($coord, 'items_local', $SEQ_SCAN, undef, $where))[0];
}

#
# compare - recall@10 of items and of items_local against $exact, each
# query in a transaction that starts with $local (SET LOCAL ...;
# propagated to the workers); checks both results, and that the
# distributed recall is within 0.01 of the single node's (with
# $at_least, only that it is not lower by more than 0.01).  Returns the
# distributed results, their text and recall.
#
sub compare
{
    my ($what, $exact, $local, $where, $label, $at_least) = @_;
    my ($dres, $dout) = knn($coord, 'items', $PROPAGATE, $local, $where);
    my ($lres) = knn($coord, 'items_local', '', $local, $where);
    my ($drec, $dbad) = check_results($dres, $exact, $K, $label);
    my ($lrec, $lbad) = check_results($lres, $exact, $K, $label);
    report_bad("$what, distributed", $dbad, $K, defined $label);
    report_bad("$what, single node", $lbad, $K, defined $label);
    if ($at_least)
    {
        cmp_ok($drec, '>=', $lrec - 0.01,
            sprintf('%s: distributed recall@10 %.3f is not below the single node\'s %.3f',
                $what, $drec, $lrec));
    }
    else
    {
        cmp_ok(abs($drec - $lrec), '<=', 0.01,
            sprintf('%s: distributed recall@10 %.3f is within 0.01 of the single node\'s %.3f',
                $what, $drec, $lrec));
    }
    return ($dres, $dout, $drec);
}

#
# canon - query results as text with rows of equal distance in id order:
# the coordinator merges the shards' rows as they arrive, so rows tied in
# distance (duplicate vectors on two shards) may come in either order.
#
sub canon
{
    my ($out) = @_;
    my @rows = map { [ split /\|/ ] } split /\n/, $out;
    return join("\n",
        map { join('|', @$_) }
        sort { $a->[0] <=> $b->[0] || $a->[3] <=> $b->[3] || $a->[1] <=> $b->[1] } @rows);
}

my $exact = exact();
my (undef, $out_e1) = compare('effort 1', $exact, 'SET LOCAL vecstore.effort = 1;', undef, undef, 1);
my (undef, $out_e4) = compare('effort 4 (default)', $exact, 'SET LOCAL vecstore.effort = 4;');
compare('effort 6', $exact, 'SET LOCAL vecstore.effort = 6;');
my ($r10) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;');
same_distances('effort 10 (exact), distributed', $r10, $exact);

# ---- how settings reach the workers --------------------------------------
# The proof is in the results: effort 1 answers differently from the
# default on this data, and each mechanism either gives effort 1's answers
# or the default's.
my (undef, $out_default) = knn($coord, 'items', '', undef);
is($out_default, $out_e4, 'no setting at all gives the default (effort 4) results');
isnt($out_e1, $out_default, 'effort 1 gives other results than the default (the marker)');

my (undef, $out) = knn($coord, 'items', 'SET vecstore.effort = 1;', undef);
is($out, $out_default, 'a plain SET on the coordinator does not reach the workers');
(undef, $out) = knn($coord, 'items', '', 'SET LOCAL vecstore.effort = 1;');
is($out, $out_default, 'SET LOCAL without citus.propagate_set_commands does not either');
(undef, $out) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 1;');
is($out, $out_e1, "citus.propagate_set_commands = 'local' + SET LOCAL reaches them");

for my $target ('ROLE CURRENT_USER', 'DATABASE postgres')
{
    $coord->safe_psql('postgres', "ALTER $target SET vecstore.effort = 1");
    my $shown = $coord->safe_psql('postgres',
        "SELECT string_agg(result, ',') FROM run_command_on_workers('SHOW vecstore.effort')");
    (undef, $out) = knn($coord, 'items', '', undef);
    is($out, $out_e1, "ALTER $target SET on the coordinator reaches the workers (new "
          . "connections show vecstore.effort = $shown)");
    $coord->safe_psql('postgres', "ALTER $target RESET vecstore.effort");
    (undef, $out) = knn($coord, 'items', '', undef);
    is($out, $out_default, "ALTER $target RESET reaches them too");
}

# ---- filtered ------------------------------------------------------------
my $exact_f = exact('label = 7');
my ($fres) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;', 'label = 7');
same_distances('label = 7, effort 10 (exact), distributed', $fres, $exact_f);
($fres) = knn($coord, 'items', '', undef, 'label = 7');
my ($frec, $fbad) = check_results($fres, $exact_f, $K, 7);
report_bad('label = 7, default settings, distributed', $fbad, $K, 1);
my ($flres) = knn($coord, 'items_local', '', undef, 'label = 7');
my ($flrec) = check_results($flres, $exact_f, $K, 7);
cmp_ok($frec, '>=', 0.9,
    sprintf('label = 7, default settings: distributed recall@10 %.3f (single node %.3f)',
        $frec, $flrec));

# ---- INSERT, DELETE, VACUUM through the coordinator ----------------------
for my $t (qw(items items_local))
{
    $coord->safe_psql(
        'postgres', qq{
        INSERT INTO $t SELECT * FROM stage WHERE id > $NBASE;
        DELETE FROM $t WHERE id % 10 = 4;
        VACUUM ANALYZE $t;
        INSERT INTO $t SELECT id + 100000, label, v FROM stage WHERE id % 10 = 4 AND id < 3000;
    });
}
my $live = $coord->safe_psql('postgres', 'SELECT count(*) FROM items_local');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM items'), $live,
    "after INSERT, DELETE, VACUUM: $live rows both sides");
$exact = exact();
($r10) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;');
same_distances('after changes, effort 10 (exact), distributed', $r10, $exact);
compare('after changes, effort 4', $exact, 'SET LOCAL vecstore.effort = 4;');

#
# finds_itself - for the rows of stage (1-based ids) in @ids, inserted into
# items with id + $offset: how many are among the 5 nearest neighbours of
# their own vector through the index at effort 1 (5, not 1: the data set
# may hold duplicates).
#
sub finds_itself
{
    my ($offset, @ids) = @_;
    my $sql = "$PROPAGATE BEGIN; SET LOCAL vecstore.effort = 1;\n";
    $sql .= "SELECT $_, id FROM items ORDER BY v <-> '$base->[$_ - 1]' LIMIT 5;\n" for @ids;
    my %hit;
    for (split /\n/, $coord->safe_psql('postgres', "$sql COMMIT;"))
    {
        my ($q, $id) = split /\|/;
        $hit{$q} = 1 if $id == $q + $offset;
    }
    return scalar(keys %hit);
}
my @sample = grep { $_ % 200 == 1 } $NBASE + 1 .. $NBASE + $NEXTRA;
is(finds_itself(0, @sample), scalar(@sample),
    'each of ' . scalar(@sample) . ' inserted rows is its own nearest neighbour through the index');

#
# verify_all - the problems vecstore_verify finds in the vecstore indexes
# of a node, on one line ('' when there are none); with $shards_only, in
# the shard indexes only (Citus's shell indexes are empty and never
# queried, so a promoted standby has not written their segment files yet,
# which vecstore_verify reports as missing).
#
sub verify_all
{
    my ($node, $shards_only) = @_;
    return $node->safe_psql('postgres',
        "SELECT string_agg(c.relname || ': ' || v.problem, '; ') FROM pg_class c "
          . "JOIN pg_am a ON a.oid = c.relam, LATERAL vecstore_verify(c.oid) v "
          . "WHERE a.amname = 'vecstore'" . ($shards_only ? " AND c.relname ~ '_[0-9]+\$'" : ''));
}
is(verify_all($_), '', $_->name . ': vecstore_verify is clean on every index') for ($w1, $w2);

# ---- segment files against live indexes ----------------------------------

#
# stray_segments - segment files under a node's pg_vecstore/ that belong
# to no vecstore index of its postgres database (by relfilenode), and the
# number of files there.
#
sub stray_segments
{
    my ($node) = @_;
    my %live = map { $_ => 1 } split /\n/,
      $node->safe_psql('postgres',
        "SELECT pg_relation_filenode(c.oid) FROM pg_class c "
          . "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'vecstore'");
    my @files = glob($node->data_dir . '/pg_vecstore/*/*');
    my @stray = grep { !(m{/(\d+)\.\d+\.seg$} && $live{$1}) } @files;
    return (\@stray, scalar(@files));
}

# ---- a shard moves to the other worker -----------------------------------
my ($sid, $table) = split /\|/, $coord->safe_psql('postgres',
    "SELECT shardid, shard_name FROM citus_shards WHERE table_name = 'items'::regclass "
      . "AND nodeport = " . $w1->port . " ORDER BY shardid LIMIT 1");
my (undef, $before_move) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;');
my (undef, undef, $rec_before) = compare('before the move', $exact, 'SET LOCAL vecstore.effort = 4;');
my $shard_rows = $w1->safe_psql('postgres', "SELECT count(*) FROM $table");
my $old_node = $w1->safe_psql('postgres',
    "SELECT pg_relation_filenode('items_v_idx_$sid')");
$coord->safe_psql('postgres',
    "SELECT citus_move_shard_placement($sid, '$HOST', " . $w1->port . ", '$HOST', "
      . $w2->port . ", shard_transfer_mode => 'force_logical')");
$coord->safe_psql('postgres', 'CALL citus_cleanup_orphaned_resources()');
is( $coord->safe_psql('postgres', "SELECT nodeport FROM citus_shards WHERE shardid = $sid"),
    $w2->port, "shard $sid is on worker2 after citus_move_shard_placement");
like(vecstore_indexes($w2), qr/items_v_idx_$sid:$shard_rows\b/,
    "worker2 has the moved shard's index with its $shard_rows rows");

# the moved shard, queried on worker2, against an exact scan there
my ($ms, $me) = (
    (knn($w2, $table, 'SET enable_seqscan = off; SET vecstore.effort = 10;'))[0],
    (knn($w2, $table, $SEQ_SCAN))[0]);
same_distances("moved shard $table on worker2, exact search", $ms, $me);
my ($mres) = knn($w2, $table, 'SET enable_seqscan = off;');
my ($mrec, $mbad) = check_results($mres, $me, $K);
report_bad("moved shard $table on worker2", $mbad, $K);
cmp_ok($mrec, '>=', 0.9, sprintf('moved shard, default effort: recall@10 %.3f', $mrec));
(undef, $out) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;');
is($out, $before_move, 'the distributed exact search returns what it returned before the move');
# the target's index is built anew (Citus copies the rows, then creates
# the indexes), so approximate results may differ a little
my (undef, undef, $rec_after) = compare('after the move', $exact, 'SET LOCAL vecstore.effort = 4;');
cmp_ok(abs($rec_after - $rec_before), '<=', 0.01,
    sprintf('recall@10 after the move %.3f is within 0.01 of before it %.3f', $rec_after, $rec_before));
is(verify_all($w2), '', 'worker2: vecstore_verify is clean after the move');
my ($stray) = stray_segments($w1);
is(scalar(@$stray), 0, 'worker1 keeps no segment file of the moved shard or any dropped index')
  or diag("stray: @$stray");
ok(!grep({ m{/$old_node\.\d+\.seg$} } glob($w1->data_dir . '/pg_vecstore/*/*')),
    "the old placement's segment files ($old_node.*.seg) are gone from worker1");

# ---- worker 2 fails over to its standby ----------------------------------
$w2->wait_for_catchup($w2s, 'replay');
my (undef, $before_failover) = knn($coord, 'items', '', undef);
my (undef, $before_failover_exact) = knn($coord, 'items', $PROPAGATE,
    'SET LOCAL vecstore.effort = 10;');
my (undef, $before_failover_f) = knn($coord, 'items', '', undef, 'label = 7');
$w2->stop;
$w2s->promote;
$w2s->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the standby did not leave recovery';
my $nodeid = $coord->safe_psql('postgres',
    "SELECT nodeid FROM pg_dist_node WHERE nodeport = " . $w2->port);
$coord->safe_psql('postgres',
    "SELECT citus_update_node($nodeid, '$HOST', " . $w2s->port . ')');
(undef, $out) = knn($coord, 'items', '', undef);
is($out, $before_failover, 'after promotion and citus_update_node: the same results (default)');
(undef, $out) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;');
is($out, $before_failover_exact, 'the same results (exact search)');
(undef, $out) = knn($coord, 'items', '', undef, 'label = 7');
is($out, $before_failover_f, 'the same results (label = 7)');
like(vecstore_indexes($w2s), qr/items_v_idx_$sid:$shard_rows\b/,
    'the promoted standby has the moved shard\'s index');
is(verify_all($w2s, 1), '', 'the promoted standby: vecstore_verify is clean on the shard indexes');
$coord->safe_psql('postgres', "INSERT INTO items SELECT id + 200000, label, v FROM stage "
      . "WHERE id % 500 = 7");
@sample = grep { $_ % 500 == 7 } 1 .. $NBASE + $NEXTRA;
is(finds_itself(200000, @sample), scalar(@sample),
    'after failover, rows inserted through the coordinator find themselves');

# ---- TRUNCATE and DROP TABLE ---------------------------------------------
my @workers = ($w1, $w2s);
$coord->safe_psql('postgres', 'TRUNCATE items');
for my $w (@workers)
{
    my ($s, $n) = stray_segments($w);
    is(scalar(@$s), 0, $w->name . ": after TRUNCATE no segment file of an old relfilenode ($n files)")
      or diag("stray: @$s");
}
$coord->safe_psql('postgres', "INSERT INTO items SELECT * FROM stage WHERE id <= 2000");
$coord->safe_psql('postgres', "INSERT INTO items_local SELECT * FROM stage WHERE id <= 2000 "
      . "ON CONFLICT DO NOTHING");
$coord->safe_psql('postgres', "DELETE FROM items_local WHERE id > 2000; VACUUM items_local");
$exact = exact();
($r10) = knn($coord, 'items', $PROPAGATE, 'SET LOCAL vecstore.effort = 10;');
same_distances('after TRUNCATE and 2000 new rows, exact search', $r10, $exact);
for my $w (@workers)
{
    my ($s, $n) = stray_segments($w);
    is(scalar(@$s), 0, $w->name . ": after queries, no stray segment file ($n files)")
      or diag("stray: @$s");
}

$coord->safe_psql('postgres', 'DROP TABLE items');
for my $w (@workers)
{
    my @files = glob($w->data_dir . '/pg_vecstore/*/*');
    is(scalar(@files), 0, $w->name . ': DROP TABLE leaves no segment file')
      or diag("left: @files");
}

$coord->stop;
$w1->stop;
$w2s->stop;
done_testing();
