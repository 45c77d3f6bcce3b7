#-------------------------------------------------------------------------
#
# 042_reclaim_interrupted.pl
#     TAP test: the truncation of the fork that follows a compaction
#     (src/vsfree.c, truncate_tail), interrupted where it has chosen the
#     delta pages it moves down and not yet published its free list: by a
#     crash, and by a cancel.  Afterwards the index answers exactly, and
#     later compactions, which take their blocks from the published free
#     list, overwrite no live page.
#
# The truncation moves the delta pages past the live regions into free
# blocks before them.  It used to move them before the metapage that
# publishes its new free list: interrupted in between (a cancel of
# VACUUM, autovacuum cancelled by a lock request, a crash), it left live
# delta pages in blocks the published list still called free, and the
# next compaction wrote a piece over them: rows lost, "has a blob page
# where a delta page was expected".  Now the moves come after the switch.
#
# A server (quiet_node: vecstore preloaded, no GPU helper, the compaction
# worker and autovacuum off) holds t (id serial, v vector(64)): 8,000
# random rows and an index
# (lists = 16, compaction_threshold = 0: VACUUM only marks).  Each round:
#   1. rows inserted, a third deleted, VACUUM;
#   2. a compaction, held at "logged" (vecstore.debug_compaction_stop,
#      ALTER SYSTEM: a reload moves it on), while 600 rows are inserted:
#      their delta pages go past the new generation's blocks, at the end
#      of the fork;
#   3. then held at "reclaim": the new generation published, the
#      truncation under way; the server log says how many delta pages it
#      chose to move (at least one, or the round tests nothing);
#   4. round 1: SIGKILL to the postmaster, then crash recovery; round 2:
#      the waiting backend cancelled (with the moves made before the stop,
#      as they were, this round ends in "has a blob page at block N where
#      a delta page was expected" at the next compaction; the crash round
#      loses such moves with the WAL not yet flushed);
#   5. every row is there (an exact index scan returns exactly the heap's
#      live rows, in distance order), vecstore_verify is clean; then, twice,
#      more rows, deletes, VACUUM and a compaction of every cluster, and
#      the same checks.
#
# IDENTIFICATION
#     test/t/042_reclaim_interrupted.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(crash_restart compaction_stop_everywhere index_info quiet_node);

my $DIMS  = 64;
my $INDEX = 't_v_idx';

my $node = quiet_node('reclaim', qq{restart_after_crash = on
shared_buffers = 64MB
statement_timeout = '300s'
});

$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
CREATE FUNCTION randvec() RETURNS vector($DIMS) LANGUAGE plpgsql VOLATILE AS \$\$
BEGIN
    RETURN ARRAY(SELECT (random() * 10)::real FROM generate_series(1, $DIMS))::real[]::vector($DIMS);
END
\$\$;
CREATE TABLE t (id serial PRIMARY KEY, v vector($DIMS) NOT NULL);
SELECT setseed(0.42);
INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 8000);
CREATE INDEX $INDEX ON t USING vecstore (v vector_l2_ops)
    WITH (lists = 16, compaction_threshold = 0);
});

my $FULLQ = '[' . join(',', (5) x $DIMS) . ']';
my $EXACT = 'SET enable_seqscan = off; SET enable_bitmapscan = off; '
  . 'SET vecstore.effort = 10; SET vecstore.max_scan_tuples = 100000000;';
my $SEQ = 'SET enable_indexscan = off; SET enable_bitmapscan = off;';

# check - every live row once, in order, from an exact index scan; verify
sub check
{
    my ($what) = @_;
    my $full = "SELECT id, v <-> '$FULLQ' AS d FROM t ORDER BY v <-> '$FULLQ' LIMIT 100000000";
    my ($rc, $out, $err) = $node->psql('postgres', "$EXACT $full");
    is($rc, 0, "$what: an exact index scan of every row runs") or diag($err);
    my @scan = map { [ split /\|/ ] } split /\n/, $out;
    my @heap = split /\n/, $node->safe_psql('postgres', "$SEQ SELECT id FROM t");
    my %live = map { $_ => 1 } @heap;
    my (%seen, $dup, $extra, $disorder);
    for my $i (0 .. $#scan)
    {
        my ($id, $d) = @{ $scan[$i] };
        $dup++   if $seen{$id}++;
        $extra++ unless $live{$id};
        $disorder++ if $i > 0 && $d < $scan[ $i - 1 ][1];
    }
    my $missing = grep { !$seen{$_} } @heap;
    is(scalar(@scan), scalar(@heap),
        "$what: the index scan returns as many rows as the heap has (" . scalar(@heap) . ')');
    ok(!$missing && !$extra && !$dup && !$disorder,
        "$what: every live row once, in distance order")
      or diag('missing ' . ($missing // 0) . ', not live ' . ($extra // 0)
          . ', twice ' . ($dup // 0) . ', out of order ' . ($disorder // 0));
    ($rc, $out, $err) = $node->psql('postgres',
        "SELECT string_agg(problem, '; ') FROM vecstore_verify('$INDEX'::regclass)");
    ok($rc == 0 && $out eq '', "$what: vecstore_verify finds no problem")
      or diag("$out $err");
    return;
}

# later - a few rounds of changes and compactions of every cluster
sub later
{
    my ($what) = @_;
    for my $i (1 .. 2)
    {
        $node->safe_psql(
            'postgres', qq{
            INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 1500);
            DELETE FROM t WHERE id % 7 = $i;
            VACUUM (INDEX_CLEANUP ON) t;
            SELECT * FROM vecstore_compact('$INDEX');
        });
        check("$what, then compaction $i");
    }
    return;
}

for my $how (qw(crash cancel))
{
    $node->safe_psql(
        'postgres', qq{
        INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 2000);
        DELETE FROM t WHERE id % 3 = 0;
        VACUUM (INDEX_CLEANUP ON) t;
    });
    my $gen0 = index_info($node, $INDEX, qw(segment_generation))->{segment_generation};

    # the compaction, held at "logged" while rows come in
    compaction_stop_everywhere($node, 'logged');
    my $bg  = $node->background_psql('postgres', on_error_stop => 0);
    my $pid = $bg->query_safe('SELECT pg_backend_pid()');
    $bg->query_safe('SET log_min_messages = debug1');
    my $logpos = -s $node->logfile;
    $bg->query_until(qr/compacting/, "\\echo compacting\nSELECT * FROM vecstore_compact('$INDEX');\n");
    $node->wait_for_log(qr/compaction waits at "logged"/, $logpos);
    $node->safe_psql('postgres', 'INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 600)');

    # then at "reclaim", its generation published, the moves chosen
    $logpos = -s $node->logfile;
    compaction_stop_everywhere($node, 'reclaim');
    $node->wait_for_log(qr/compaction waits at "reclaim"/, $logpos);
    my ($moves) = slurp_file($node->logfile, $logpos) =~ /(\d+) delta pages move down/;
    cmp_ok($moves // 0, '>', 0, "$how: the truncation chose to move " . ($moves // 0)
          . ' delta pages down');
    # (the truncation holds AccessExclusiveLock on the index: no query now)

    if ($how eq 'crash')
    {
        crash_restart($node, $bg, "$how: the server went through crash recovery");
        compaction_stop_everywhere($node, 'none');
    }
    else
    {
        is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
            "$how: the waiting backend is cancelled");
        $node->wait_for_log(qr/canceling statement due to user request/, $logpos);
        compaction_stop_everywhere($node, 'none');
        $bg->quit;
    }
    cmp_ok(index_info($node, $INDEX, qw(segment_generation))->{segment_generation},
        '>', $gen0, "$how: the compaction's generation was published before");
    check("after the $how");
    later("after the $how");
}

$node->stop;
done_testing();
