#-------------------------------------------------------------------------
#
# 043_standby_conflict.pl
#     TAP test: a hot standby's query that reads a generation the primary
#     later reuses the pages of is cancelled by a recovery conflict (never
#     left to read reused pages); with hot_standby_feedback it runs on and
#     sees every row once.
#
# The primary reuses the pages a generation no longer needs once none of
# its own transactions can read them (src/vsfree.c): the delta pages
# before a fold, old deletion bitmaps.  A standby's queries are not among
# its transactions, so before that reuse the primary writes a recovery
# conflict point for the generation's horizon.  Here, with inserts only
# (no row is deleted, so no heap record conflicts) and no VACUUM:
#
#   A  hot_standby_feedback off, max_standby_streaming_delay 0: a standby
#      transaction opens a cursor over an exact kNN scan (vecstore.effort =
#      10) and fetches from it; the primary compacts (the delta rows are
#      folded, their pages retired), inserts more, compacts again (the
#      retired pages ripen and are reused).  The standby counts a snapshot
#      conflict (pg_stat_database_conflicts.confl_snapshot) and the cursor's
#      next FETCH fails with a conflict with recovery.
#   B  hot_standby_feedback on: the same, and the cursor fetches every row
#      its snapshot sees, each once, in exact order; no conflict counted.
#
# IDENTIFICATION
#     test/t/043_standby_conflict.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(clustered_vec_of_sql);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
autovacuum = off
shared_buffers = 32MB
max_connections = 20
statement_timeout = '300s'
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION vecstore;' . clustered_vec_of_sql());
$primary->backup('b');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->append_conf(
    'postgresql.conf', qq{
hot_standby = on
hot_standby_feedback = off
max_standby_streaming_delay = 0
wal_receiver_status_interval = 1
});
$standby->start;

my $QUERY = 'vec_of(7, 3)';

# the table (rebuilt for each part): 3,000 rows indexed, 2,000 in delta
# chains; its storage parameters from the argument
sub setup
{
    my ($with) = @_;
    $primary->safe_psql(
        'postgres', qq{
DROP TABLE IF EXISTS t;
CREATE TABLE t (id int PRIMARY KEY, v vector(64)) $with;
INSERT INTO t SELECT i, vec_of(i, 0) FROM generate_series(1, 3000) i;
CREATE INDEX t_v ON t USING vecstore (v vector_l2_ops) WITH (lists = 4);
INSERT INTO t SELECT i, vec_of(i, 0) FROM generate_series(3001, 5000) i;
});
    $primary->wait_for_catchup($standby);
}

# on the primary: fold the delta rows, insert more, compact again
sub compact_twice
{
    $primary->safe_psql('postgres', "SELECT vecstore_compact('t_v')");
    $primary->safe_psql('postgres',
        'INSERT INTO t SELECT i, vec_of(i, 0) FROM generate_series(5001, 6000) i');
    $primary->safe_psql('postgres', "SELECT vecstore_compact('t_v')");
    $primary->wait_for_catchup($standby);
}

# the standby's count of recovery conflicts of a kind (snapshot, lock)
sub conflicts
{
    my ($kind) = @_;
    return $standby->safe_psql('postgres',
        "SELECT confl_$kind FROM pg_stat_database_conflicts WHERE datname = 'postgres'");
}

# a standby session with a cursor over an exact index scan, 10 rows fetched
sub open_cursor
{
    my $s = $standby->background_psql('postgres', on_error_stop => 0);
    $s->query_safe(
        "SET enable_seqscan = off; SET vecstore.effort = 10;\n"
          . "BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
          . "DECLARE c CURSOR FOR SELECT id FROM t ORDER BY v <-> $QUERY;");
    my $first = $s->query_safe('FETCH 10 FROM c');
    is(scalar(split /\n/, $first), 10, 'the standby cursor reads through the index');
    return ($s, $first);
}

# the ids of an exact scan of the first $n rows, in order
sub exact_ids
{
    my ($n) = @_;
    return $primary->safe_psql('postgres',
        "SET enable_indexscan = off; SET enable_bitmapscan = off;\n"
          . "SELECT id FROM t WHERE id <= $n ORDER BY v <-> $QUERY, id");
}

#
# A: no feedback, no truncation; the reuse cancels the standby's transaction
#
my $NOTRUNC = 'WITH (vacuum_truncate = false)';
setup($NOTRUNC);
my $before = conflicts('snapshot');
my ($s, $first) = open_cursor();
compact_twice();
my $after = conflicts('snapshot');
cmp_ok($after, '>', $before,
    "A: the standby counted a snapshot conflict when the primary reused the pages ($before -> $after)");
is(conflicts('lock'), 0, 'A: and no lock conflict (vacuum_truncate = false: no truncation)');
my $rest = eval { $s->query('FETCH ALL FROM c') };
like(($s->{stderr} // '') . ($rest // '') . ($@ // ''),
    qr/conflict with recovery|server closed the connection|terminating connection|process ended/,
    'A: the cursor of the old generation is cancelled, not left to read reused pages');
eval { $s->quit };

#
# B: with hot_standby_feedback the primary keeps the pages; the cursor runs on
#
$standby->append_conf('postgresql.conf', 'hot_standby_feedback = on');
$standby->reload;
setup($NOTRUNC);
$before = conflicts('snapshot');
($s, $first) = open_cursor();
# the standby reports an xmin no later than the cursor's snapshot's
my $xmin = $s->query_safe('SELECT pg_snapshot_xmin(pg_current_snapshot())');
$primary->poll_query_until('postgres',
        "SELECT count(*) > 0 FROM pg_stat_replication "
      . "WHERE backend_xmin IS NOT NULL AND age(backend_xmin) >= age('$xmin'::text::xid)")
  or die 'the standby reported no xmin';
compact_twice();
$rest = $s->query_safe('FETCH ALL FROM c');
$s->query_safe('COMMIT');
$s->quit;
is(conflicts('snapshot'), $before, 'B: with feedback, no snapshot conflict');
is(conflicts('lock'), 0, 'B: and no lock conflict');
is($first . "\n" . $rest, exact_ids(5000),
    'B: the cursor returned every row of its snapshot once, in exact order, across two compactions');

#
# C: truncation on (the default): the truncation's lock is replayed and
# cancels the cursor, feedback or not
#
setup('');
$before = conflicts('lock');
($s, $first) = open_cursor();
compact_twice();
cmp_ok(conflicts('lock'), '>', $before,
    'C: with vacuum_truncate on, the truncation\'s lock cancelled the standby cursor');
$rest = eval { $s->query('FETCH ALL FROM c') };
like(($s->{stderr} // '') . ($rest // '') . ($@ // ''),
    qr/conflict with recovery|server closed the connection|terminating connection|process ended/,
    'C: the cursor is gone');
eval { $s->quit };

$standby->stop;
$primary->stop;
done_testing();
