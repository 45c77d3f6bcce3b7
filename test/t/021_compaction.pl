#-------------------------------------------------------------------------
#
# 021_compaction.pl
#     TAP test: a living index.  Compactions (vecstore_compact, VACUUM)
#     run while rows are inserted, updated, deleted and searched; a crash
#     at each step of a compaction leaves a working index; a streaming
#     standby replays compactions; the segment files left are those of the
#     current generation's pieces.
#
# A primary (wal_level = replica, vecstore preloaded, autovacuum off, the
# compaction worker off) holds t (id serial, v vector(16)), 8,000 random
# vectors with an index (lists = 16, compaction_threshold = 0.05,
# max_cluster_rows = 800: about 500 rows a cluster at the build), and a
# streaming standby made right after the build, which replays everything
# below.
#
# A. For $WORK_SECONDS s, pgbench (2 clients) inserts single rows and
#    10-row batches, updates and deletes random ids, and runs kNN checks,
#    while a second pgbench loops vecstore_compact (all clusters, and past
#    the threshold only) and VACUUM (which compacts past the threshold).
#    Clusters grow past max_cluster_rows, so compactions split some.  A
#    kNN check (knn_check(), plpgsql, in a REPEATABLE READ transaction:
#    one snapshot) raises an error, which fails pgbench, unless a default
#    search returns 10 distinct rows in distance order, and an exact index
#    search (vecstore.effort = 10) returns the same distances, rank by rank,
#    and the same ids as a sequential scan of the same snapshot: the top
#    10, or (1 check in 20) every row.  (Rows at equal distances may come
#    in either order, and a tie with the 10th either way: the operator's
#    distances are equal for a few pairs of rows in a full scan.)
#    Afterwards, and again after a last VACUUM and vecstore_compact
#    (check_live):
#      - an exact full index scan returns exactly the heap's live rows,
#        each once, in distance order;
#      - vecstore_verify is clean;
#      - for 20 queries, the exact index top-10 equals the seqscan top-10
#        (the same ties allowed);
#    and the index counts the live rows (sealed + delta - dead), dozens of
#    compactions ran, and, after the last one, no delta or dead row is left.
# B. Crashes: the compaction of a changed index (rows inserted, deleted and
#    vacuumed, with compaction_threshold = 0 so VACUUM only marks) is made
#    to wait (vecstore.debug_compaction_stop) at "written", "logged" and
#    "published" in turn; while it waits, another session inserts rows and
#    queries, and sees the old generation ("written", "logged"; the new
#    segment file exists at "logged") or the new one ("published", with the
#    old files still there).  Then SIGKILL: to the postmaster ("written",
#    "published") or to the waiting backend, which makes the postmaster
#    reinitialize ("logged").  After recovery: the generation is the old
#    one, or the new one for "published"; the rows inserted during the wait are
#    there; check_live and the counts hold; a new compaction publishes the
#    next generation; check_live holds again.  Before the crashes, a
#    compaction of one cluster leaves a generation of two pieces.
# C. The standby: after more inserts, updates, deletes, VACUUMs
#    (compacting, compaction_threshold back at 0.1) and vecstore_compact
#    on the primary, and wait_for_catchup, the standby's top-10 for 20
#    queries equal the primary's at the default settings and at effort 10;
#    vecstore_index_info agrees (generation, pieces, counts); check_live
#    holds on the standby.
# D. Files (check_files): after a compaction (and a query), the files of
#    the index's relfilenode under pg_vecstore/<database oid>/ are exactly
#    segment_pieces files named <relfilenode>.<generation>.seg, for
#    generations up to the current one, one of them segment_file, and no
#    temporary file: after A, after each crash's next compaction, on the
#    standby after C.
# E. Space back: while another session's open transaction holds its lock
#    on the index (read committed, between statements: no snapshot),
#    three quarters of the rows deleted and VACUUMed: the compaction drops
#    them, the relation is not truncated, and the transaction reads on;
#    once it has ended, VACUUM truncates the relation by a quarter at
#    least, check_live and check_files hold, and
#    the standby replays the truncation (same relation size), answers as
#    the primary does and check_live holds there.
#
# IDENTIFICATION
#     test/t/021_compaction.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(crash_restart compaction_waiting index_info);

my $LISTS        = 16;
my $DIMS         = 16;
my $NBASE        = 8000;
my $WORK_SECONDS = 60;
my $INDEX        = 't_v_idx';

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
autovacuum = off
restart_after_crash = on
shared_buffers = 128MB
max_connections = 30
max_wal_size = 1GB
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
-- a random vector: plpgsql, so that it is called for every row
CREATE FUNCTION randvec() RETURNS vector($DIMS) LANGUAGE plpgsql VOLATILE AS \$\$
BEGIN
    RETURN ARRAY(SELECT (random() * 10)::real FROM generate_series(1, $DIMS))::real[]::vector($DIMS);
END
\$\$;
CREATE TABLE t (id serial PRIMARY KEY, v vector($DIMS) NOT NULL);
SELECT setseed(0.21);
INSERT INTO t (v) SELECT randvec() FROM generate_series(1, $NBASE);
CREATE INDEX $INDEX ON t USING vecstore (v vector_l2_ops)
    WITH (lists = $LISTS, compaction_threshold = 0.05, max_cluster_rows = 800);
ANALYZE t;
});
is($node->safe_psql('postgres', 'SELECT count(DISTINCT v::text) FROM t'),
    $NBASE, "the $NBASE initial vectors are distinct");

# knn_check(k): see the header; k = 0 compares every row.  Returns the
# number of rows compared.
$node->safe_psql(
    'postgres', q{
CREATE FUNCTION knn_check(k int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    q vector := randvec();
    lim bigint := CASE WHEN k > 0 THEN k ELSE 100000000 END;
    knn text := 'SELECT coalesce(array_agg(id ORDER BY rn), ''{}''), '
             || 'coalesce(array_agg(d ORDER BY rn), ''{}'') FROM '
             || '(SELECT id, d, row_number() OVER () AS rn FROM '
             || '(SELECT id, v <-> $1 AS d FROM t ORDER BY v <-> $1 LIMIT $2) s) s';
    i_ids int[];
    i_d float8[];
    s_ids int[];
    s_d float8[];
    i_key int[];
    s_key int[];
    first int;
BEGIN
    PERFORM set_config('enable_seqscan', 'off', true);
    PERFORM set_config('enable_bitmapscan', 'off', true);
    EXECUTE knn INTO i_ids, i_d USING q, 10;
    IF cardinality(i_ids) <> 10
       OR (SELECT count(DISTINCT x) FROM unnest(i_ids) x) <> 10
       OR EXISTS (SELECT 1 FROM generate_series(2, cardinality(i_d)) n WHERE i_d[n] < i_d[n - 1]) THEN
        RAISE EXCEPTION 'default search for %: ids %, distances %', q, i_ids, i_d;
    END IF;

    PERFORM set_config('vecstore.effort', '10', true);
    PERFORM set_config('vecstore.max_scan_tuples', '1000000', true);
    EXECUTE knn INTO i_ids, i_d USING q, lim;
    PERFORM set_config('enable_seqscan', 'on', true);
    PERFORM set_config('enable_indexscan', 'off', true);
    EXECUTE knn INTO s_ids, s_d USING q, lim;
    -- the same distances rank by rank, and the same ids, but rows at the
    -- same distance may come in any order, and at a limit, a tie with the
    -- last row may be broken either way
    i_key := ARRAY(SELECT x FROM unnest(i_ids, i_d) u(x, y)
                   WHERE k = 0 OR y < i_d[cardinality(i_d)] ORDER BY y, x);
    s_key := ARRAY(SELECT x FROM unnest(s_ids, s_d) u(x, y)
                   WHERE k = 0 OR y < s_d[cardinality(s_d)] ORDER BY y, x);
    IF i_key IS DISTINCT FROM s_key OR i_d IS DISTINCT FROM s_d THEN
        SELECT min(n) INTO first FROM generate_series(1, greatest(cardinality(i_ids), cardinality(s_ids))) n
        WHERE i_ids[n] IS DISTINCT FROM s_ids[n] OR i_d[n] IS DISTINCT FROM s_d[n];
        RAISE EXCEPTION 'exact search (limit %) for %: index % rows, seqscan % rows; first difference at rank %: '
                        'index ids % distances %, seqscan ids % distances %; '
                        'index ids not in the seqscan: %, seqscan ids not in the index: %',
            lim, q, cardinality(i_ids), cardinality(s_ids), first,
            i_ids[greatest(first - 2, 1):first + 2], i_d[greatest(first - 2, 1):first + 2],
            s_ids[greatest(first - 2, 1):first + 2], s_d[greatest(first - 2, 1):first + 2],
            ARRAY(SELECT unnest(i_ids) EXCEPT SELECT unnest(s_ids) LIMIT 10),
            ARRAY(SELECT unnest(s_ids) EXCEPT SELECT unnest(i_ids) LIMIT 10);
    END IF;
    RETURN cardinality(s_ids);
END
$$;
});

# the standby, streaming from just after the build: it replays all below
$node->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'b1', has_streaming => 1);
$standby->start;

# 20 fixed query vectors, and one for the full scans
srand(21);
my @QUERIES =
  map { '[' . join(',', map { sprintf('%.4f', rand(10)) } 1 .. $DIMS) . ']' } 1 .. 20;
my $FULLQ = '[' . join(',', (5) x $DIMS) . ']';

my $EXACT = 'SET enable_seqscan = off; SET enable_bitmapscan = off; '
  . 'SET vecstore.effort = 10; SET vecstore.max_scan_tuples = 1000000;';
my $SEQ = 'SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off;';

#
# top10 - "query|id:distance ..." lines of the 20 queries, with $settings.
#
sub top10
{
    my ($n, $settings) = @_;
    my $sql = "$settings\n";
    for my $i (0 .. $#QUERIES)
    {
        my $q = "'$QUERIES[$i]'";
        $sql .= "SELECT $i, string_agg(id || ':' || d, ' ' ORDER BY rn) FROM "
          . "(SELECT id, d, row_number() OVER () AS rn FROM "
          . "(SELECT id, v <-> $q AS d FROM t ORDER BY v <-> $q LIMIT 10) s) s;\n";
    }
    return $n->safe_psql('postgres', $sql);
}

#
# tie_key - top10's lines in a form that ignores the order of rows at
# equal distances: "query|the distances rank by rank|the ids closer than
# the 10th, by distance and id" (a tie with the 10th may be broken either
# way).
#
sub tie_key
{
    my ($res) = @_;
    my @out;
    for my $line (split /\n/, $res)
    {
        my ($q, $list) = split /\|/, $line, 2;
        my @rows = map { [ split /:/ ] } split / /, ($list // '');
        my $last = @rows ? $rows[-1][1] : 0;
        push @out, "$q|" . join(' ', map { $_->[1] } @rows) . '|'
          . join(' ',
            map { $_->[0] } sort { $a->[1] <=> $b->[1] || $a->[0] <=> $b->[0] }
            grep { $_->[1] < $last } @rows);
    }
    return join("\n", @out);
}

#
# first_diff - the first line where two multi-line results differ.
#
sub first_diff
{
    my ($a, $b) = @_;
    my @a = split /\n/, $a;
    my @b = split /\n/, $b;
    for my $i (0 .. ($#a > $#b ? $#a : $#b))
    {
        return "line $i:\n  " . ($a[$i] // '(none)') . "\n  " . ($b[$i] // '(none)')
          if ($a[$i] // '') ne ($b[$i] // '');
    }
    return '(none)';
}

#
# check_live - on $n: an exact full index scan returns exactly the heap's
# live rows, each once, in distance order; vecstore_verify is clean; the
# exact top-10 of 20 queries equal a sequential scan's.
#
sub check_live
{
    my ($n, $what) = @_;
    my $full = "SELECT id, v <-> '$FULLQ' AS d FROM t ORDER BY v <-> '$FULLQ' LIMIT 100000000";

    like($n->safe_psql('postgres', "$EXACT EXPLAIN (COSTS OFF) $full"),
        qr/Index Scan using $INDEX on t/, "$what: the full scan uses the index");
    my @scan = map { [ split /\|/ ] } split /\n/, $n->safe_psql('postgres', "$EXACT $full");
    my @heap = split /\n/, $n->safe_psql('postgres', "$SEQ SELECT id FROM t");
    my %live = map { $_ => 1 } @heap;
    my (%seen, @dup, @extra, @disorder);
    for my $i (0 .. $#scan)
    {
        my ($id, $d) = @{ $scan[$i] };
        push @dup,   $id if $seen{$id}++;
        push @extra, $id unless $live{$id};
        push @disorder, "rank $i: $d < $scan[$i-1][1]" if $i > 0 && $d < $scan[ $i - 1 ][1];
    }
    my @missing = grep { !$seen{$_} } @heap;
    cmp_ok(scalar(@heap), '>', 0, "$what: the heap has " . scalar(@heap) . ' live rows');
    is(scalar(@scan), scalar(@heap), "$what: the exact index scan returns as many rows as the heap has");
    ok(!@missing, "$what: no live row is missing from the index scan")
      or diag(scalar(@missing) . " missing, first: @missing[0 .. ($#missing < 19 ? $#missing : 19)]");
    ok(!@extra, "$what: the index scan returns no row that is not live")
      or diag(scalar(@extra) . " extra, first: @extra[0 .. ($#extra < 19 ? $#extra : 19)]");
    ok(!@dup, "$what: the index scan returns no row twice")
      or diag(scalar(@dup) . " doubled, first: @dup[0 .. ($#dup < 19 ? $#dup : 19)]");
    ok(!@disorder, "$what: the index scan returns rows in distance order")
      or diag(join("\n", @disorder[ 0 .. ($#disorder < 9 ? $#disorder : 9) ]));

    my $problems = $n->safe_psql('postgres', "SELECT problem FROM vecstore_verify('$INDEX'::regclass)");
    is($problems, '', "$what: vecstore_verify finds no problem");

    my $exact = top10($n, $EXACT);
    my $seq   = top10($n, $SEQ);
    is(scalar(grep { scalar(split / /) == 10 } split /\n/, $seq),
        scalar(@QUERIES), "$what: the seqscan top-10 has 10 rows for each query");
    is(tie_key($exact), tie_key($seq),
        "$what: the exact index top-10 equals the seqscan top-10 for 20 queries")
      or diag('first difference (index, seqscan): ' . first_diff($exact, $seq));
    return;
}

#
# check_counts - after VACUUM (INDEX_CLEANUP ON): sealed + delta - dead
# is the row count, plus any dead rows VACUUM could not remove yet (none
# here: no snapshot is left open and the standby sends no feedback; their
# index entries would rightly stay until a later VACUUM).  Returns the
# index_info hash, and "kept": those rows.
#
sub check_counts
{
    my ($what) = @_;
    my ($out, $err) = ('', '');
    $node->psql('postgres', 'VACUUM (VERBOSE, INDEX_CLEANUP ON) t',
        stdout => \$out, stderr => \$err, on_error_die => 1);
    my ($kept) = $err =~ /(\d+) are dead but not yet removable/;
    $kept //= 0;
    my $count = $node->safe_psql('postgres', 'SELECT count(*) FROM t');
    my $info = index_info($node, $INDEX, qw(sealed_rows delta_rows dead_rows segment_generation));
    is($info->{sealed_rows} + $info->{delta_rows} - $info->{dead_rows},
        $count + $kept,
        "$what: the index counts the $count live rows and $kept dead ones VACUUM could not "
          . "remove yet (sealed $info->{sealed_rows} + delta $info->{delta_rows} - dead $info->{dead_rows})");
    $info->{kept} = $kept;
    return $info;
}

#
# seg_files - the files of the index under pg_vecstore/<database oid>/ on
# $n: (relfilenode, [ files of that relfilenode ], [ temporary files ]).
#
sub seg_files
{
    my ($n) = @_;
    my ($dboid, $rfn) = split /\|/,
      $n->safe_psql('postgres',
        "SELECT (SELECT oid FROM pg_database WHERE datname = current_database()), "
          . "pg_relation_filenode('$INDEX')");
    my $dir = $n->data_dir . "/pg_vecstore/$dboid";
    opendir(my $dh, $dir) or die "could not open $dir: $!";
    my @all = sort grep { $_ ne '.' && $_ ne '..' } readdir $dh;
    closedir $dh;
    return ($rfn, [ grep { /^\Q$rfn\E\./ } @all ], [ grep { /\.tmp\./ } @all ]);
}

#
# check_files - on $n, after a query through the index: the index's files
# are exactly its current generation's pieces.
#
sub check_files
{
    my ($n, $what) = @_;
    $n->safe_psql('postgres',
        "SET enable_seqscan = off; SELECT id FROM t ORDER BY v <-> '$QUERIES[0]' LIMIT 10");
    my $info = index_info($n, $INDEX, qw(segment_pieces segment_generation segment_file));
    my ($rfn, $files, $tmp) = seg_files($n);
    note "$what: segment files @$files; generation $info->{segment_generation}, "
      . "$info->{segment_pieces} pieces";
    is(scalar(@$files), $info->{segment_pieces},
        "$what: the index has as many files as its generation has pieces ($info->{segment_pieces})")
      or diag("files: @$files");
    my @bad = grep { !(/^\Q$rfn\E\.(\d+)\.seg$/ && $1 <= $info->{segment_generation}) } @$files;
    ok(!@bad, "$what: every file is named <relfilenode>.<generation>.seg, "
          . "generation at most $info->{segment_generation}")
      or diag("bad: @bad");
    my ($segname) = $info->{segment_file} =~ m{([^/]+)$};
    ok(defined $segname && grep({ $_ eq $segname } @$files),
        "$what: segment_file $info->{segment_file} is one of them");
    ok(!@$tmp, "$what: no temporary file") or diag("temporary files: @$tmp");
    return;
}

#
# pgbench scripts
#
my $scriptdir = PostgreSQL::Test::Utils::tempdir();
my %SCRIPTS = (
    insert   => "INSERT INTO t (v) VALUES (randvec());\n",
    insert10 => "INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 10);\n",
    update   => "\\set rid random(1, 20000)\nUPDATE t SET v = randvec() WHERE id = :rid;\n",
    delete   => "\\set rid random(1, 20000)\nDELETE FROM t WHERE id = :rid;\n",
    knn  => "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT knn_check(10);\nCOMMIT;\n",
    full => "BEGIN ISOLATION LEVEL REPEATABLE READ;\nSELECT knn_check(0);\nCOMMIT;\n",
    compact_all => "SELECT * FROM vecstore_compact('$INDEX');\n\\sleep 100 ms\n",
    compact_thr => "SELECT * FROM vecstore_compact('$INDEX', all_clusters => false);\n\\sleep 100 ms\n",
    vacuum      => "VACUUM t;\n\\sleep 100 ms\n");
for my $name (keys %SCRIPTS)
{
    open my $fh, '>', "$scriptdir/$name.sql" or die "$name.sql: $!";
    print $fh $SCRIPTS{$name};
    close $fh;
}

#
# start_pgbench - pgbench in the background (016_concurrent.pl);
# $rate 0: as fast as it goes.  Returns [harness, \stdout, \stderr].
#
sub start_pgbench
{
    my ($clients, $seconds, $rate, %weights) = @_;
    my ($out, $err) = ('', '');
    my @cmd = (
        'pgbench', '--no-vacuum', "--client=$clients", "--jobs=$clients",
        "--time=$seconds", ($rate ? ("--rate=$rate") : ()),
        '-h', $node->host, '-p', $node->port,
        map({ ('-f', "$scriptdir/$_.sql\@$weights{$_}") } sort keys %weights),
        'postgres');
    note "running: @cmd";
    my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
        IPC::Run::timeout($seconds + $PostgreSQL::Test::Utils::timeout_default));
    return [ $h, \$out, \$err ];
}

sub finish_pgbench
{
    my ($what, $run) = @_;
    my ($h, $out, $err) = @$run;
    my $ok = $h->finish;
    note "$what: pgbench output:\n$$out";
    ok($ok, "$what: pgbench exits 0") or diag("stderr:\n" . substr($$err, 0, 4000));
    like($$out, qr/number of transactions actually processed: [1-9]\d*/,
        "$what: pgbench processed transactions");
    unlike($$out, qr/number of failed transactions: [1-9]/, "$what: no failed transaction");
    return;
}

#
# A. The living index
#
my $logstart = -s $node->logfile;
my $before   = index_info($node, $INDEX, qw(compactions segment_generation clusters));
my $work = start_pgbench(2, $WORK_SECONDS, 150,
    insert => 6, insert10 => 2, update => 4, delete => 3, knn => 4, full => 1);
my $compactor = start_pgbench(1, $WORK_SECONDS, 0,
    compact_all => 1, compact_thr => 1, vacuum => 1);
finish_pgbench('workload', $work);
finish_pgbench('compactions', $compactor);
unlike(slurp_file($node->logfile, $logstart), qr/PANIC|TRAP:|terminated by signal/,
    'workload: no server process crashed');

my $after = index_info($node, $INDEX,
    qw(compactions segment_generation clusters segment_pieces sealed_rows delta_rows dead_rows));
note 'after the workload: ' . join(', ', map { "$_ $after->{$_}" } sort keys %$after);
cmp_ok($after->{compactions} - $before->{compactions}, '>=', 20,
    'workload: compactions ran meanwhile (' . ($after->{compactions} - $before->{compactions}) . ')');
cmp_ok($after->{segment_generation}, '>', $before->{segment_generation},
    'workload: the generation advanced');
cmp_ok($after->{clusters}, '>', $before->{clusters},
    "workload: compactions split clusters ($before->{clusters} -> $after->{clusters})");

check_live($node, 'after the workload');
my $counted = check_counts('after the workload');

# one more compaction of everything: nothing left in the chains or marked
$node->safe_psql('postgres', 'INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 50)');
my ($files_before) = (seg_files($node))[1];
note 'files before the last compaction: ' . join(' ', @$files_before);
my ($clusters, $gen) = split /\|/,
  $node->safe_psql('postgres', "SELECT clusters, generation FROM vecstore_compact('$INDEX')");
cmp_ok($clusters, '>', 0, "after the workload: a last compaction re-seals $clusters clusters");
my $info = index_info($node, $INDEX, qw(sealed_rows delta_rows dead_rows segment_generation));
{
    my $live = $node->safe_psql('postgres', 'SELECT count(*) FROM t');
    is("$info->{delta_rows} $info->{dead_rows}", '0 0',
        'after the last compaction: no delta or dead row left');
    ok( $info->{sealed_rows} >= $live && $info->{sealed_rows} <= $live + $counted->{kept},
        "after the last compaction: every live row sealed ($info->{sealed_rows} sealed, $live live, "
          . "$counted->{kept} dead ones VACUUM could not remove yet)");
}
is($info->{segment_generation}, $gen, 'vecstore_index_info shows the generation it published');
check_live($node, 'after the last compaction');
check_files($node, 'after the workload and a last compaction');

#
# B. Crashes at each stop point
#
$node->safe_psql('postgres', "ALTER INDEX $INDEX SET (compaction_threshold = 0)");

# a generation of two pieces: re-seal one cluster only
{
    my $v = $node->safe_psql('postgres', 'SELECT v FROM t ORDER BY id LIMIT 1');
    my $all = index_info($node, $INDEX, qw(clusters))->{clusters};
    $node->safe_psql('postgres',
        "INSERT INTO t (v) SELECT (SELECT array_agg(x + 0.01 * g)::real[]::vector FROM "
          . "unnest('$v'::vector::real[]) x) FROM generate_series(1, 100) g");
    my ($c) = $node->safe_psql('postgres', "SELECT clusters FROM vecstore_compact('$INDEX')");
    ok($c >= 1 && $c < $all, "a compaction of rows near one point re-seals $c of $all clusters");
    my $pieces = index_info($node, $INDEX, qw(segment_pieces))->{segment_pieces};
    cmp_ok($pieces, '>=', 2, "its generation reads $pieces pieces");
    check_files($node, 'after a compaction of one cluster');
}

my $dboid = $node->safe_psql('postgres',
    "SELECT oid FROM pg_database WHERE datname = 'postgres'");
my $round = 0;
for my $point (qw(written logged published))
{
    my $how = $point eq 'logged' ? 'backend' : 'postmaster';
    $round++;

    # changes in every cluster: inserts, deletes marked by VACUUM
    $node->safe_psql(
        'postgres', qq{
        INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 300);
        DELETE FROM t WHERE id % 23 = $round;
        VACUUM (INDEX_CLEANUP ON) t;
    });
    my $gen0 = index_info($node, $INDEX, qw(segment_generation))->{segment_generation};
    my $rfn  = $node->safe_psql('postgres', "SELECT pg_relation_filenode('$INDEX')");
    my ($r, $files0) = seg_files($node);

    my ($bg, $pid) =
      compaction_waiting($node, $point, "SELECT * FROM vecstore_compact('$INDEX')");
    is( $node->safe_psql('postgres',
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND state = 'active' "
              . "AND query LIKE '%vecstore_compact%'"),
        '1',
        "$point: the compaction is waiting");

    # meanwhile: inserts and queries go on
    my $ids = $node->safe_psql('postgres',
        "SET statement_timeout = '60s'; "
          . "INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 10) RETURNING id");
    my @ids = split /\n/, $ids;
    is(scalar(@ids), 10, "$point: 10 rows inserted while the compaction waits");
    is( $node->safe_psql('postgres',
            "SET statement_timeout = '60s'; SET enable_seqscan = off; "
              . "SELECT count(*) FROM (SELECT id FROM t ORDER BY v <-> '$QUERIES[1]' LIMIT 10) s"),
        '10',
        "$point: a kNN query answers while the compaction waits");
    my $gen_wait = index_info($node, $INDEX, qw(segment_generation))->{segment_generation};
    # the files of the new generation's pieces are numbered after gen0
    my (undef, $files_now) = seg_files($node);
    my @newfiles = grep { /^\Q$rfn\E\.(\d+)\.seg$/ && $1 > $gen0 } @$files_now;
    if ($point eq 'published')
    {
        cmp_ok($gen_wait, '>', $gen0, "$point: other sessions see the new generation");
        my (undef, $files_wait) = seg_files($node);
        my %now = map { $_ => 1 } @$files_wait;
        my @old = grep { $now{$_} } @$files0;
        ok(scalar(@old), "$point: the files of the old generation are still there (@old)");
    }
    else
    {
        is($gen_wait, $gen0, "$point: other sessions see the old generation");
        if ($point eq 'logged')
        {
            ok(scalar(@newfiles), "$point: the new generation's segment files are written (@newfiles)");
        }
        else
        {
            ok(!@newfiles, "$point: no segment file of the new generation yet");
        }
    }

    # the crash
    my $logpos = -s $node->logfile;
    if ($how eq 'postmaster')
    {
        crash_restart($node, $bg,
            "$point: the server went through crash recovery after SIGKILL to the postmaster");
    }
    else
    {
        kill 'KILL', $pid or die "could not kill $pid: $!";
        $node->wait_for_log(qr/all server processes terminated; reinitializing/, $logpos);
        eval { $bg->quit };
        $node->poll_query_until('postgres', 'SELECT true')
          or die 'the server did not come back after the backend was killed';
        like(slurp_file($node->logfile, $logpos),
            qr/terminated by signal 9.*database system was interrupted/s,
            "$point: the server reinitialized after SIGKILL to the compacting backend");
    }

    my $gen1 = index_info($node, $INDEX, qw(segment_generation))->{segment_generation};
    if ($point eq 'published')
    {
        is($gen1, $gen_wait, "$point: after recovery, the generation is the new one ($gen1; was $gen0)");
    }
    else
    {
        is($gen1, $gen0, "$point: after recovery, the generation is the old one ($gen1)");
    }
    is( $node->safe_psql('postgres',
            'SELECT count(*) FROM t WHERE id IN (' . join(',', @ids) . ')'),
        '10',
        "$point: the rows inserted during the compaction are there");
    check_live($node, "after a crash at \"$point\"");
    check_counts("after a crash at \"$point\"");
    my (undef, $files1) = seg_files($node);
    note "$point: files after recovery: @$files1";

    # a later compaction works
    my ($c, $g) = split /\|/,
      $node->safe_psql('postgres', "SELECT clusters, generation FROM vecstore_compact('$INDEX')");
    cmp_ok($c, '>', 0, "$point: a compaction after recovery re-seals $c clusters");
    cmp_ok($g, '>', $gen1, "$point: it publishes a later generation ($g)");
    is(index_info($node, $INDEX, qw(delta_rows))->{delta_rows}, '0',
        "$point: it folded every delta row");
    check_live($node, "after a crash at \"$point\" and a compaction");
    check_files($node, "after a crash at \"$point\" and a compaction");
}

#
# C. The standby
#
$node->safe_psql('postgres', "ALTER INDEX $INDEX RESET (compaction_threshold)");
my $gen_c = index_info($node, $INDEX, qw(segment_generation))->{segment_generation};
for my $i (1 .. 3)
{
    $node->safe_psql(
        'postgres', qq{
        INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 1500);
        UPDATE t SET v = randvec() WHERE id % 31 = $i;
        DELETE FROM t WHERE id % 17 = $i;
        VACUUM t;
        SELECT * FROM vecstore_compact('$INDEX', all_clusters => false);
        INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 300);
        SELECT * FROM vecstore_compact('$INDEX');
    });
}
# leave delta rows and dead rows for the standby to replay too
$node->safe_psql(
    'postgres', q{
    INSERT INTO t (v) SELECT randvec() FROM generate_series(1, 200);
    DELETE FROM t WHERE id % 101 = 5;
    VACUUM (INDEX_CLEANUP ON) t;
});
my $cinfo = check_counts('C: on the primary');
cmp_ok($cinfo->{dead_rows}, '>', 0,
    "C: the primary's index has rows marked removed ($cinfo->{dead_rows}) for the standby to replay");
my $cols = 'clusters, sealed_rows, delta_rows, dead_rows, segment_generation, segment_pieces, compactions';
my $pinfo = $node->safe_psql('postgres', "SELECT $cols FROM vecstore_index_info('$INDEX')");
cmp_ok((split /\|/, $pinfo)[4], '>=', $gen_c + 3, 'C: the primary compacted at least 3 times');
note "primary: $cols = $pinfo";
$node->wait_for_catchup($standby, 'replay');

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t'),
    $node->safe_psql('postgres', 'SELECT count(*) FROM t'), 'the standby has caught up');
for my $case ([ 'default settings', 'SET enable_seqscan = off; SET enable_bitmapscan = off;' ],
    [ 'effort 10', $EXACT ])
{
    my ($what, $settings) = @$case;
    my $p = top10($node, $settings);
    my $s = top10($standby, $settings);
    is(scalar(grep { scalar(split / /) == 10 } split /\n/, $p),
        scalar(@QUERIES), "standby, $what: the primary returns 10 rows for each query");
    is($s, $p, "standby, $what: the standby's top-10 equal the primary's for 20 queries")
      or diag('first difference (standby, primary): ' . first_diff($s, $p));
}
is($standby->safe_psql('postgres', "SELECT $cols FROM vecstore_index_info('$INDEX')"),
    $pinfo, "the standby's vecstore_index_info agrees ($cols)");
check_live($standby, 'on the standby');
check_files($standby, 'on the standby');

#
# E. Space back
#
my $size0 = $node->safe_psql('postgres', "SELECT pg_relation_size('$INDEX')");
my $holder = $node->background_psql('postgres', on_error_stop => 1);
# a transaction that used the index holds its lock (and, in READ COMMITTED
# between statements, no snapshot: VACUUM can remove rows meanwhile)
$holder->query_safe('BEGIN; SET enable_seqscan = off');
is(scalar(split /\n/, $holder->query_safe("SELECT id FROM t ORDER BY v <-> '$QUERIES[2]' LIMIT 5")),
    5, 'E: a transaction reads through the index and stays open');
my $sealed0 = index_info($node, $INDEX, qw(sealed_rows))->{sealed_rows};
$node->safe_psql('postgres', 'DELETE FROM t WHERE id % 4 <> 0; VACUUM t;');
my $sealed1 = index_info($node, $INDEX, qw(sealed_rows))->{sealed_rows};
cmp_ok($sealed1, '<', $sealed0 / 2, "E: VACUUM compacted the removed rows away ($sealed0 -> $sealed1 sealed rows)");
my $size1 = $node->safe_psql('postgres', "SELECT pg_relation_size('$INDEX')");
cmp_ok($size1, '>=', $size0,
    "E: while that transaction holds its lock on the index, the relation is not truncated ($size0 -> $size1 bytes)");
is(scalar(split /\n/, $holder->query_safe("SELECT id FROM t ORDER BY v <-> '$QUERIES[3]' LIMIT 50")),
    50, 'E: the open transaction reads the new generation');
$holder->query_safe('COMMIT');
$holder->quit;
$node->safe_psql('postgres', 'VACUUM t');
my $size2 = $node->safe_psql('postgres', "SELECT pg_relation_size('$INDEX')");
cmp_ok($size2, '<', $size1 * 3 / 4, "E: once it has ended, VACUUM truncates the relation ($size1 -> $size2 bytes)");
check_live($node, 'E: after the truncation');
check_files($node, 'E: after the truncation');
$node->wait_for_catchup($standby, 'replay');
is($standby->safe_psql('postgres', "SELECT pg_relation_size('$INDEX')"), $size2,
    'E: the standby replayed the truncation');
is(top10($standby, $EXACT), top10($node, $EXACT), "E: the standby's top-10 equal the primary's");
check_live($standby, 'E: on the standby after the truncation');

$standby->stop;
$node->stop;
done_testing();
