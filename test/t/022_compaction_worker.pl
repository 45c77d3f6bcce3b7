#-------------------------------------------------------------------------
#
# 022_compaction_worker.pl
#     TAP test: the compaction worker compacts indexes nobody vacuums,
#     in every database that has them, and stops when turned off.
#
# A node runs with vecstore in shared_preload_libraries and
# vecstore.compaction_naptime = 1.  Two databases each get a table with
# autovacuum off and a vecstore index, filled with the worker off; rows
# inserted after the build wait in the delta chains until the worker,
# turned on, re-seals their clusters: each
# index's compactions count rises and its delta rows go to 0 without any
# VACUUM, the log says what the worker did, and an exact index scan still
# returns every row.  With vecstore.compaction_worker = off (a reload),
# new inserts stay in the delta chains; on again, the worker re-seals the
# clusters they pushed past the threshold.  A database without the
# extension (created first) does not stop the worker, nor does another
# session's temporary vecstore index, which it passes over.  Held in a
# compaction (vecstore.debug_compaction_stop), it does not keep a VACUUM
# from removing rows deleted meanwhile, it is cancelled by an ALTER TABLE
# that waits for its lock, as autovacuum would be, and a later round
# compacts the index.  A launcher ended by pg_terminate_backend() is
# started again.
#
# IDENTIFICATION
#     test/t/022_compaction_worker.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(compaction_stop_everywhere quiet_node);

# the compaction worker off until the tables are filled (quiet_node)
my $node = quiet_node('main', "vecstore.compaction_naptime = 1\n");

# a database without the extension comes first in pg_database order
$node->safe_psql('postgres', 'CREATE DATABASE plain');

my @dbs = ('one', 'two');
for my $db (@dbs)
{
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql(
        $db, q{
CREATE EXTENSION vecstore;
CREATE TABLE t (id int PRIMARY KEY, v vector(8)) WITH (autovacuum_enabled = off);
INSERT INTO t SELECT i, ARRAY(SELECT ((i * 7 + j * 13) % 101)::real FROM generate_series(1, 8) j)
  FROM generate_series(1, 4000) i;
CREATE INDEX t_v ON t USING vecstore (v) WITH (lists = 4);
INSERT INTO t SELECT i, ARRAY(SELECT ((i * 11 + j * 5) % 103)::real FROM generate_series(1, 8) j)
  FROM generate_series(4001, 6000) i;
});
    is($node->safe_psql($db, q{SELECT delta_rows FROM vecstore_index_info('t_v')}),
        '2000', "$db: inserted rows wait in the delta chains");
}

# another session's temporary vecstore index, with rows past the
# threshold: the worker cannot read it and leaves it alone
my $temp = $node->background_psql('one', on_error_stop => 1);
$temp->query_safe(q{
CREATE TEMP TABLE tt (id int, v vector(8));
INSERT INTO tt SELECT i, ARRAY(SELECT ((i * 7 + j * 13) % 101)::real FROM generate_series(1, 8) j)
  FROM generate_series(1, 2000) i;
CREATE INDEX tt_v ON tt USING vecstore (v) WITH (lists = 2);
INSERT INTO tt SELECT i, ARRAY(SELECT ((i * 11 + j * 5) % 103)::real FROM generate_series(1, 8) j)
  FROM generate_series(2001, 3000) i;
});

# the worker compacts both, with no VACUUM.  It was off while the tables
# were filled: a round during the second INSERT folds only the rows
# already there, and leaves the rest in clusters under the threshold.
my $logstart = -s $node->logfile;
$node->append_conf('postgresql.conf', 'vecstore.compaction_worker = on');
$node->reload;
for my $db (@dbs)
{
    ok( $node->poll_query_until(
            $db, q{SELECT compactions > 0 AND delta_rows = 0 FROM vecstore_index_info('t_v')}),
        "$db: the worker compacted the index");
    is( $node->safe_psql(
            $db, q{
SET enable_seqscan = off; SET vecstore.effort = 10; SET vecstore.max_scan_tuples = 1000000;
SELECT count(*) || ' ' || count(DISTINCT id) FROM (SELECT id FROM t ORDER BY v <-> '[1,2,3,4,5,6,7,8]') s}),
        '6000 6000', "$db: every row once after the worker's compaction");
    is($node->safe_psql($db, q{SELECT count(*) FROM vecstore_verify('t_v')}),
        '0', "$db: vecstore_verify is clean");
}
like(slurp_file($node->logfile),
    qr/vecstore compaction worker compacted index "one\.t_v"/,
    'the log says what the worker did');
sleep(2);
unlike(slurp_file($node->logfile, $logstart), qr/temporary tables of other sessions/,
    "the worker passes over another session's temporary index (no error in the log)");
is($temp->query_safe(q{SELECT delta_rows FROM vecstore_index_info('tt_v')}), '1000',
    'which keeps its rows where they were');
$temp->quit;

# turned off: new rows stay where they are
$node->append_conf('postgresql.conf', 'vecstore.compaction_worker = off');
$node->reload;
# wait for a round that has seen the new setting
sleep(3);
my $before = $node->safe_psql('one', q{SELECT compactions FROM vecstore_index_info('t_v')});
$node->safe_psql(
    'one', q{
INSERT INTO t SELECT i, ARRAY(SELECT ((i * 3 + j) % 97)::real FROM generate_series(1, 8) j)
  FROM generate_series(6001, 7000) i;
});
sleep(4);
is( $node->safe_psql('one', q{SELECT compactions || ' ' || delta_rows FROM vecstore_index_info('t_v')}),
    "$before 1000", 'with the worker off, inserted rows stay in the delta chains');

# on again: it picks them up
$node->append_conf('postgresql.conf', 'vecstore.compaction_worker = on');
$node->reload;
ok( $node->poll_query_until(
        'one', qq{SELECT compactions > $before AND delta_rows < 1000 FROM vecstore_index_info('t_v')}),
    'turned on again, the worker compacts (the clusters past the threshold)');

# it yields as autovacuum does: held in a compaction of one.t
# (vecstore.debug_compaction_stop), it keeps SHARE UPDATE EXCLUSIVE on the
# table; an ALTER TABLE that waits deadlock_timeout for it cancels it
# instead of waiting for it to end
$node->safe_psql(
    'one', q{
INSERT INTO t SELECT i, ARRAY(SELECT ((i * 5 + j) % 89)::real FROM generate_series(1, 8) j)
  FROM generate_series(7001, 9000) i;
});
my $compactions = $node->safe_psql('one', q{SELECT compactions FROM vecstore_index_info('t_v')});
my $logpos = -s $node->logfile;
compaction_stop_everywhere($node, 'written');
$node->wait_for_log(qr/compaction waits at "written"/, $logpos);
# meanwhile its snapshot does not hold the database's horizon back (it is
# flagged as a lazy VACUUM is): a VACUUM removes rows deleted after it
$node->safe_psql('one', 'CREATE TABLE d AS SELECT generate_series(1, 1000) i; DELETE FROM d;');
my ($vrc, $vout, $verr) = $node->psql('one', 'VACUUM (VERBOSE) d');
like($verr, qr/tuples: 1000 removed, 0 remain, 0 are dead but not yet removable/,
    'a VACUUM while the worker compacts removes the rows deleted meanwhile')
  or diag($verr);
my ($rc, $out, $err) = $node->psql('one',
    "SET statement_timeout = '60s'; SET deadlock_timeout = '200ms'; "
      . 'ALTER TABLE t ADD COLUMN extra int; SELECT 1');
is($rc, 0, 'an ALTER TABLE waiting for the compacting worker gets its lock (it is cancelled)')
  or diag($err);
# (the worker's log lines carry no application name)
like(slurp_file($node->logfile, $logpos), qr/\[\d+\] ERROR:  canceling statement due to user request/,
    'the waiting session cancelled the worker');
compaction_stop_everywhere($node, 'none');
ok( $node->poll_query_until(
        'one', qq{SELECT compactions > $compactions FROM vecstore_index_info('t_v')}),
    'a later round compacts the index');
is($node->safe_psql('one', q{SELECT count(*) FROM vecstore_verify('t_v')}),
    '0', 'vecstore_verify is clean');

# a launcher ended by pg_terminate_backend() comes back (as PostgreSQL's
# logical replication launcher does), after its 10 s restart time
my $LAUNCHER = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'vecstore compaction launcher'};
my $launcher = $node->safe_psql('postgres', $LAUNCHER);
isnt($launcher, '', 'the launcher runs');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($LAUNCHER) s WHERE pid <> $launcher"),
    'a terminated launcher is started again');

$node->stop;
done_testing();
