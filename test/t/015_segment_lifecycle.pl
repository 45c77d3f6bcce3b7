#-------------------------------------------------------------------------
#
# 015_segment_lifecycle.pl
#     TAP test: the files under $PGDATA/pg_vecstore/ are exactly the
#     segments of live vecstore indexes, after every DDL that drops,
#     truncates, rewrites or copies an index, committed or rolled back,
#     and after a crash.
#
# After each step, check_files:
#   1. before any query: every file under pg_vecstore/ (recursively) is the
#      segment_file of a live vecstore index, per vecstore_index_info in
#      every database (the files of dropped or replaced relfilenodes went
#      at commit);
#   2. then a kNN query through every vecstore index of every database
#      (which writes a missing segment), after which the files are exactly
#      those segments: one per index, named
#      pg_vecstore/<database oid>/<relfilenode>.<generation>.seg, and
#      nothing else (no temporary files);
#   3. every directory under pg_vecstore/ is a live database's oid.
#
# Steps: build; DROP INDEX; DROP TABLE; DROP SCHEMA ... CASCADE; DROP
# DATABASE; TRUNCATE (committed, and rolled back); REINDEX INDEX; REINDEX
# INDEX CONCURRENTLY; VACUUM FULL; CREATE INDEX rolled back; DROP INDEX
# rolled back; DROP INDEX in a prepared transaction, rolled back (the
# file stays through the session's next transaction) and committed (it
# goes); CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY;
# ALTER INDEX SET TABLESPACE (there and back); CREATE DATABASE from a
# template (both strategies: the copies answer like the original); a
# crash while a transaction that created an index (and its segment) is
# open; a clean restart.
#
# Files left by a crash (and any the DDL hooks missed) are the orphan
# sweep's: after SET TABLESPACE and after the crash, the files that are not
# live segments are made to look a day old (the sweep spares recent files,
# which may be a build in progress) and an index is built in the database
# (a build sweeps); then check_files must hold.  The SET TABLESPACE steps
# are checked both before the sweep (the old file should go at commit, as
# for TRUNCATE and REINDEX) and after it.
#
# IDENTIFICATION
#     test/t/015_segment_lifecycle.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Find;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(crash_node);

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
max_prepared_transactions = 2
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

my %OPS = (vector_l2_ops => '<->', vector_ip_ops => '<#>', vector_cosine_ops => '<=>');

#
# setup_db - create a database with the extension and vec_of().
#
sub setup_db
{
    my ($db) = @_;
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql(
        $db, q{
        CREATE EXTENSION vecstore;
        CREATE FUNCTION vec_of(id int) RETURNS vector(16)
        LANGUAGE sql IMMUTABLE STRICT AS $$
            SELECT ARRAY(SELECT (hashint4((id % 10) * 100 + j) % 1000) / 100.0
                              + (hashint4(id * 16 + j) % 1000) / 500.0
                         FROM generate_series(0, 15) AS j)::real[]::vector(16)
        $$;
    });
    return;
}

#
# table_sql - SQL creating table $t with $n rows.
#
sub table_sql
{
    my ($t, $n) = @_;
    return "CREATE TABLE $t (id int PRIMARY KEY, v vector(16));\n"
      . "INSERT INTO $t SELECT g, vec_of(g) FROM generate_series(1, $n) AS g;\n";
}

#
# vecstore_dbs - the databases that have the extension: name => oid.
#
sub vecstore_dbs
{
    my %dbs;
    for my $line (split /\n/,
        $node->safe_psql('postgres',
            'SELECT datname, oid FROM pg_database WHERE datallowconn ORDER BY 1'))
    {
        my ($db, $oid) = split /\|/, $line;
        $dbs{$db} = $oid
          if $node->safe_psql($db,
            "SELECT count(*) FROM pg_extension WHERE extname = 'vecstore'") eq '1';
    }
    return \%dbs;
}

#
# live_segments - [ db, index, relfilenode, segment_file ] of every
# vecstore index in every database.
#
sub live_segments
{
    my @segs;
    my $dbs = vecstore_dbs();
    for my $db (sort keys %$dbs)
    {
        for my $line (split /\n/,
            $node->safe_psql(
                $db, q{
                SELECT c.oid::regclass, pg_relation_filenode(c.oid), coalesce(i.segment_file, '')
                FROM pg_class c JOIN pg_am am ON am.oid = c.relam
                     CROSS JOIN LATERAL vecstore_index_info(c.oid) i
                WHERE am.amname = 'vecstore' AND c.relkind = 'i'
                ORDER BY 1}))
        {
            push @segs, [ $db, split(/\|/, $line, -1) ];
        }
    }
    return \@segs;
}

#
# touch_indexes - one kNN query through every valid vecstore index of
# every database, so that each has its segment written.
#
sub touch_indexes
{
    my $dbs = vecstore_dbs();
    for my $db (sort keys %$dbs)
    {
        for my $line (split /\n/,
            $node->safe_psql(
                $db, q{
                SELECT c.relname, t.oid::regclass, quote_ident(a.attname), oc.opcname, a.atttypmod
                FROM pg_index x
                     JOIN pg_class c ON c.oid = x.indexrelid
                     JOIN pg_am am ON am.oid = c.relam
                     JOIN pg_class t ON t.oid = x.indrelid
                     JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
                     JOIN pg_opclass oc ON oc.oid = x.indclass[0]
                WHERE am.amname = 'vecstore' AND x.indisvalid
                ORDER BY 1}))
        {
            my ($index, $table, $col, $opc, $dims) = split /\|/, $line;
            my $op = $OPS{$opc} // die "unknown operator class $opc";
            my $q = "SELECT count(*) FROM (SELECT 1 FROM $table ORDER BY $col $op "
              . "array_fill(0.5::real, ARRAY[$dims])::vector LIMIT 1) s";
            my $plan = $node->safe_psql($db,
                "SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN (COSTS OFF) $q");
            if ($plan !~ /Index Scan using \Q$index\E on /)
            {
                fail("$db: a kNN query on $table uses $index");
                diag($plan);
            }
            $node->safe_psql($db, "SET enable_seqscan = off; $q");
        }
    }
    return;
}

#
# files_under - files and directories under pg_vecstore/, relative to the
# data directory.
#
sub files_under
{
    my $root = $node->data_dir . '/pg_vecstore';
    my (@files, @dirs);
    return ([], []) unless -d $root;
    find(
        {
            no_chdir => 1,
            wanted   => sub {
                my $rel = substr($File::Find::name, length($node->data_dir) + 1);
                return if $File::Find::name eq $root;
                if   (-d $File::Find::name) { push @dirs,  $rel; }
                else                        { push @files, $rel; }
            }
        },
        $root);
    return ([ sort @files ], [ sort @dirs ]);
}

#
# check_files - the files under pg_vecstore/ are exactly the live segments.
#
sub check_files
{
    my ($what) = @_;

    # 1. before any query: no file of a dead relfilenode
    my ($files) = files_under();
    my %live = map { $_->[3] => 1 } grep { $_->[3] ne '' } @{ live_segments() };
    my @stale = grep { !$live{$_} } @$files;
    ok(!@stale, "$what: no file but live segments, before any query")
      or diag("not live: @stale\nlive: " . join(' ', sort keys %live));

    # 2. after a query through every index: exactly the live segments
    touch_indexes();
    my $segs = live_segments();
    my $dbs  = vecstore_dbs();
    my ($dirs);
    ($files, $dirs) = files_under();
    my @bad;
    for my $s (@$segs)
    {
        my ($db, $index, $filenode, $file) = @$s;
        push @bad, "$db.$index: segment_file '$file' is not "
          . "pg_vecstore/$dbs->{$db}/$filenode.<generation>.seg"
          unless $file =~ m{^pg_vecstore/$dbs->{$db}/$filenode\.\d+\.seg$};
        push @bad, "$db.$index: $file does not exist"
          unless $file ne '' && -f $node->data_dir . "/$file";
    }
    ok(!@bad, "$what: every live index (" . scalar(@$segs) . ") has its segment file")
      or diag(join("\n", @bad));
    is_deeply($files, [ sort map { $_->[3] } @$segs ],
        "$what: the files under pg_vecstore/ are exactly the live segments");

    # 3. directories are live databases
    my %oids = map { $_ => 1 } values %$dbs;
    my @stray = grep { !(m{^pg_vecstore/(\d+)$} && $oids{$1}) } @$dirs;
    ok(!@stray, "$what: every directory under pg_vecstore/ is a live database's")
      or diag("stray directories: @stray");
    return;
}

#
# knn - the ids of a query on db1.t1 through the index.
#
sub knn
{
    my ($db) = @_;
    return $node->safe_psql($db,
        "SET enable_seqscan = off; SET vecstore.probes = 10; "
          . "SELECT string_agg(id::text, ' ') FROM (SELECT id FROM t1 "
          . "ORDER BY v <-> vec_of(777777) LIMIT 10) s");
}

#
# sweep - give the orphan sweep its chance in a database: make every file
# under pg_vecstore/ that is not a live segment look a day old (the sweep
# leaves recent files alone, as they may belong to a build in progress in
# another session), then build an index there (a build sweeps its
# database's directory) and drop it again.
#
sub sweep
{
    my ($db) = @_;
    my ($files) = files_under();
    my %live = map { $_->[3] => 1 } grep { $_->[3] ne '' } @{ live_segments() };
    my $old = time() - 86400;
    for my $f (grep { !$live{$_} } @$files)
    {
        utime($old, $old, $node->data_dir . "/$f") or die "utime $f: $!";
    }
    $node->safe_psql($db,
        table_sql('sweep_t', 100)
          . "CREATE INDEX ON sweep_t USING vecstore (v vector_l2_ops) WITH (lists = 2);
"
          . "DROP TABLE sweep_t;
");
    return;
}

setup_db('db1');
$node->safe_psql('db1',
    table_sql('t1', 3000)
      . "CREATE INDEX t1_v_idx ON t1 USING vecstore (v vector_l2_ops) WITH (lists = 10);\n");
check_files('after CREATE INDEX');
my $t1_seg = live_segments()->[0][3];
my $expected = knn('db1');
is(scalar(split / /, $expected), 10, 'the index answers a kNN query');

# DROP INDEX
$node->safe_psql('db1',
    "CREATE INDEX t1_cos_idx ON t1 USING vecstore (v vector_cosine_ops) WITH (lists = 5);");
check_files('after a second index');
$node->safe_psql('db1', 'DROP INDEX t1_cos_idx');
check_files('after DROP INDEX');

# DROP TABLE
$node->safe_psql('db1',
    table_sql('t2', 1000)
      . "CREATE INDEX t2_v_idx ON t2 USING vecstore (v vector_ip_ops) WITH (lists = 5);\n");
check_files('after CREATE INDEX on t2');
$node->safe_psql('db1', 'DROP TABLE t2');
check_files('after DROP TABLE');

# DROP SCHEMA ... CASCADE
$node->safe_psql('db1',
    "CREATE SCHEMA s;\n"
      . table_sql('s.t3', 1000)
      . table_sql('s.t4', 1000)
      . "CREATE INDEX ON s.t3 USING vecstore (v vector_l2_ops) WITH (lists = 5);\n"
      . "CREATE INDEX ON s.t4 USING vecstore (v vector_l2_ops) WITH (lists = 5);\n");
check_files('after CREATE INDEX in schema s');
$node->safe_psql('db1', 'DROP SCHEMA s CASCADE');
check_files('after DROP SCHEMA CASCADE');

# DROP DATABASE
setup_db('db2');
$node->safe_psql('db2',
    table_sql('t1', 1000)
      . "CREATE INDEX t1_v_idx ON t1 USING vecstore (v vector_l2_ops) WITH (lists = 5);\n");
check_files('after CREATE INDEX in db2');
my $db2_oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'db2'");
ok(-d $node->data_dir . "/pg_vecstore/$db2_oid", 'db2 has its directory');
$node->safe_psql('postgres', 'DROP DATABASE db2');
ok(!-e $node->data_dir . "/pg_vecstore/$db2_oid", 'DROP DATABASE removed its directory');
check_files('after DROP DATABASE');

# TRUNCATE, rolled back then committed
$node->safe_psql('db1', 'BEGIN; TRUNCATE t1; ROLLBACK;');
ok(-f $node->data_dir . "/$t1_seg", 'after TRUNCATE rolled back, the segment is kept');
is(knn('db1'), $expected, 'after TRUNCATE rolled back, the same results');
check_files('after TRUNCATE rolled back');
$node->safe_psql('db1', 'TRUNCATE t1');
check_files('after TRUNCATE (empty index)');
$node->safe_psql('db1', 'INSERT INTO t1 SELECT g, vec_of(g) FROM generate_series(1, 3000) AS g');
check_files('after TRUNCATE and new rows');
$node->safe_psql('db1', 'REINDEX INDEX t1_v_idx');
check_files('after REINDEX INDEX');
$expected = knn('db1');
is(scalar(split / /, $expected), 10, 'the reindexed index answers');

# REINDEX INDEX CONCURRENTLY
$node->safe_psql('db1', 'REINDEX INDEX CONCURRENTLY t1_v_idx');
check_files('after REINDEX INDEX CONCURRENTLY');
is(knn('db1'), $expected, 'after REINDEX CONCURRENTLY, the same results');

# VACUUM FULL
$node->safe_psql('db1', 'VACUUM FULL t1');
check_files('after VACUUM FULL');
is(knn('db1'), $expected, 'after VACUUM FULL, the same results');

# CREATE INDEX rolled back (its segment, if written, goes with it)
$node->safe_psql('db1',
    'BEGIN; CREATE INDEX t1_tmp_idx ON t1 USING vecstore (v vector_ip_ops) WITH (lists = 5); '
      . 'SET LOCAL enable_seqscan = off; '
      . "SELECT count(*) FROM (SELECT id FROM t1 ORDER BY v <#> vec_of(1) LIMIT 3) s; ROLLBACK;");
check_files('after CREATE INDEX rolled back');

# DROP INDEX rolled back (the segment is kept)
$t1_seg = (grep { $_->[1] eq 't1_v_idx' } @{ live_segments() })[0][3];
$node->safe_psql('db1', 'BEGIN; DROP INDEX t1_v_idx; ROLLBACK;');
ok(-f $node->data_dir . "/$t1_seg", 'after DROP INDEX rolled back, the segment is kept');
is(knn('db1'), $expected, 'after DROP INDEX rolled back, the same results');
check_files('after DROP INDEX rolled back');

# DROP INDEX in a prepared transaction: its removals wait for COMMIT or
# ROLLBACK PREPARED in this session, not for its next transaction
{
    my $bg = $node->background_psql('db1', on_error_stop => 1);
    $bg->query_safe("BEGIN; DROP INDEX t1_v_idx; PREPARE TRANSACTION 'vs_p1'");
    $bg->query_safe('SELECT 1');
    ok(-f $node->data_dir . "/$t1_seg",
        "after PREPARE TRANSACTION of a DROP INDEX and another transaction, the segment is kept");
    $bg->query_safe("ROLLBACK PREPARED 'vs_p1'");
    ok(-f $node->data_dir . "/$t1_seg", 'after ROLLBACK PREPARED, the segment is kept');
    $bg->quit;
    is(knn('db1'), $expected, 'after ROLLBACK PREPARED, the same results');
    check_files('after a DROP INDEX prepared and rolled back');

    $bg = $node->background_psql('db1', on_error_stop => 1);
    $bg->query_safe(table_sql('t3', 500)
          . "CREATE INDEX t3_v_idx ON t3 USING vecstore (v vector_l2_ops) WITH (lists = 2);");
    my $t3_seg = (grep { $_->[1] eq 't3_v_idx' } @{ live_segments() })[0][3];
    ok(defined $t3_seg && -f $node->data_dir . "/$t3_seg", 't3 has its segment file');
    $bg->query_safe("BEGIN; DROP INDEX t3_v_idx; PREPARE TRANSACTION 'vs_p2'");
    $bg->query_safe("COMMIT PREPARED 'vs_p2'");
    ok(!-f $node->data_dir . "/$t3_seg", 'after COMMIT PREPARED of a DROP INDEX, its segment is gone');
    $bg->query_safe('DROP TABLE t3');
    $bg->quit;
    check_files('after a DROP INDEX prepared and committed');
}

# CREATE / DROP INDEX CONCURRENTLY
$node->safe_psql('db1',
    'CREATE INDEX CONCURRENTLY t1_cic_idx ON t1 USING vecstore (v vector_cosine_ops) WITH (lists = 5)');
check_files('after CREATE INDEX CONCURRENTLY');
$node->safe_psql('db1', 'DROP INDEX CONCURRENTLY t1_cic_idx');
check_files('after DROP INDEX CONCURRENTLY');

# ALTER INDEX SET TABLESPACE (a new relfilenode; segments stay in
# pg_vecstore/): the old relfilenode's file must go at commit, and a
# sweep must catch it if it did not
my $tsdir = PostgreSQL::Test::Utils::tempdir_short();
$node->safe_psql('postgres', "CREATE TABLESPACE ts LOCATION '$tsdir'");
$node->safe_psql('db1', 'ALTER INDEX t1_v_idx SET TABLESPACE ts');
check_files('after ALTER INDEX SET TABLESPACE');
is(knn('db1'), $expected, 'after SET TABLESPACE, the same results');
sweep('db1');
check_files('after ALTER INDEX SET TABLESPACE and a sweep');
$node->safe_psql('db1', 'ALTER INDEX t1_v_idx SET TABLESPACE pg_default');
check_files('after ALTER INDEX SET TABLESPACE back');
sweep('db1');
check_files('after ALTER INDEX SET TABLESPACE back and a sweep');

# CREATE DATABASE from a template: the copies have no segment until queried
for my $strategy (qw(wal_log file_copy))
{
    my $db = "db_$strategy";
    $node->safe_psql('postgres', "CREATE DATABASE $db TEMPLATE db1 STRATEGY $strategy");
    is(knn($db), $expected, "CREATE DATABASE (strategy $strategy): the copy answers like db1");
    check_files("after CREATE DATABASE (strategy $strategy)");
    $node->safe_psql('postgres', "DROP DATABASE $db");
    check_files("after DROP DATABASE $db");
}

# A crash while a transaction that built an index is still open: the
# index never committed, so its segment is an orphan after recovery.
{
    my ($before) = files_under();
    my $bg = $node->background_psql('db1', on_error_stop => 0);
    for my $sql ('BEGIN',
        'CREATE INDEX t1_crash_idx ON t1 USING vecstore (v vector_l2_ops) WITH (lists = 5)',
        'SET LOCAL enable_seqscan = off',
        'SELECT id FROM t1 ORDER BY v <-> vec_of(5) LIMIT 1')
    {
        my ($out, $err) = $bg->query($sql);
        note "open transaction: $sql: $out" . ($err ? " (stderr: $bg->{stderr})" : '');
    }
    my ($during) = files_under();
    my %old = map { $_ => 1 } @$before;
    my @new = grep { !$old{$_} } @$during;
    note "files written by the open transaction: @new";
    ok(scalar(@new), 'the uncommitted index has written its segment file');
    crash_node($node);
    eval { $bg->quit };    # psql has lost its server
    $node->start;
    is(knn('db1'), $expected, 'after the crash, the same results');
    note "after recovery, the orphan is still there: $_" for grep { -e $node->data_dir . "/$_" } @new;
    sweep('db1');
    ok(!-e $node->data_dir . "/$_", "after the crash, recovery and a sweep, the orphan $_ is gone")
      for @new;
    check_files('after a crash with an uncommitted CREATE INDEX, and a sweep');
}

# a clean restart leaves everything as it was
$node->restart;
check_files('after a clean restart');
is(knn('db1'), $expected, 'after a clean restart, the same results');

$node->stop;
done_testing();
