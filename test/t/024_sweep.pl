#-------------------------------------------------------------------------
#
# 024_sweep.pl
#     TAP test: the orphan sweep (run by every CREATE INDEX and by
#     vecstore_verify(repair => true)) never removes a segment file that a
#     transaction still in progress wrote, and still removes real orphans.
#
# Session 1 runs BEGIN; CREATE INDEX ... USING vecstore and keeps its
# transaction open.  Its segment file is made to look two minutes old
# (past the sweep's minimum age of one minute), next to:
#   - real orphans, as old: the file of an index whose table was dropped
#     (written by a committed transaction) and the file of a CREATE INDEX
#     that was rolled back (an aborted one), put back after their removal;
#   - temporary files ("<name>.tmp.<pid>"), as old: one named by session
#     1's backend (a write in progress: kept) and one by a process that is
#     no backend (a dead write: removed).
# Session 2 then runs CREATE INDEX (which sweeps) and vecstore_verify(...,
# repair => true) (which sweeps again).  Session 1's file must survive
# both, and after session 1 commits, still exist before any query (a query
# would rebuild a missing one), and the index must answer kNN queries
# exactly as a sequential scan does.  The real orphans and the dead
# temporary file must be gone.
#
# Then the same for a REINDEX in a transaction held open (a new file of an
# index that is visible, under another relfilenode); then the file is
# given the older header (no writer, the CRC over the fields before it)
# and must still be used as it is and kept by a sweep; and once session 1's
# backend has exited, its old temporary file is removed.
#
# IDENTIFICATION
#     test/t/024_sweep.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('sweep');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
log_statement = 'ddl'
statement_timeout = '300s'
});
$node->start;

$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE FUNCTION vec_of(id int) RETURNS vector(16)
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT ARRAY(SELECT (hashint4((id % 10) * 100 + j) % 1000) / 100.0
                      + (hashint4(id * 16 + j) % 1000) / 500.0
                 FROM generate_series(0, 15) AS j)::real[]::vector(16)
$$;
CREATE TABLE t (id int PRIMARY KEY, v vector(16));
INSERT INTO t SELECT g, vec_of(g) FROM generate_series(1, 2000) AS g;
CREATE TABLE s (id int PRIMARY KEY, v vector(16));
INSERT INTO s SELECT g, vec_of(g) FROM generate_series(1, 300) AS g;
});
my $dboid = $node->safe_psql('postgres',
    "SELECT oid FROM pg_database WHERE datname = current_database()");
my $dir = $node->data_dir . "/pg_vecstore/$dboid";

# a kNN query on t (the query vector's id twice), answered in distance
# order, ties by id
my $KNN = 'SELECT string_agg(id::text, \' \' ORDER BY d, id) FROM '
  . '(SELECT id, v <-> vec_of(%d) AS d FROM t ORDER BY v <-> vec_of(%d) LIMIT 10) x';

#
# segment_of - the segment file of index $index, as session $psql (a
# BackgroundPsql) or a new session sees it, relative to the data directory.
#
sub segment_of
{
    my ($index, $psql) = @_;
    my $sql = "SELECT segment_file FROM vecstore_index_info('$index'::regclass)";
    return $psql ? $psql->query_safe($sql) : $node->safe_psql('postgres', $sql);
}

#
# make_old - push a file's modification time two minutes back, past the
# sweep's minimum age (a missing file is left missing: the test after it
# says so).
#
sub make_old
{
    my ($path) = @_;
    my $old = time() - 120;
    return unless -e $path;
    utime($old, $old, $path) or die "utime $path: $!";
    return;
}

#
# knn_index - the answers of the kNN queries for @q through the index, in
# exact mode.
#
sub knn_index
{
    my @q = @_;
    return map {
        $node->safe_psql('postgres',
            'SET enable_seqscan = off; SET vecstore.effort = 10; ' . sprintf($KNN, $_, $_))
    } @q;
}

#
# crc32c - CRC-32C (Castagnoli) of a byte string, as PostgreSQL's
# INIT/COMP/FIN_CRC32C compute it.
#
sub crc32c
{
    my ($bytes) = @_;
    my $crc = 0xFFFFFFFF;
    for my $byte (unpack('C*', $bytes))
    {
        $crc ^= $byte;
        $crc = ($crc & 1) ? (($crc >> 1) ^ 0x82F63B78) : ($crc >> 1) for 1 .. 8;
    }
    return $crc ^ 0xFFFFFFFF;
}

# Real orphans: files whose header names an index that no longer exists.
# Save each one's file, let the DDL remove it, and put it back.
my $dropped_file = segment_of_new_index('o1', 'COMMIT', 'DROP TABLE o1');
my $aborted_file = segment_of_new_index('o2', 'ROLLBACK', undef);

#
# segment_of_new_index - create table $t and a vecstore index on it in a
# transaction that ends with $end (COMMIT or ROLLBACK), then run $after;
# put the index's segment file back where it was and return its path.
#
sub segment_of_new_index
{
    my ($t, $end, $after) = @_;
    my $psql = $node->background_psql('postgres');
    $psql->query_safe('BEGIN');
    $psql->query_safe("CREATE TABLE $t AS SELECT * FROM s");
    $psql->query_safe("CREATE INDEX ${t}_idx ON $t USING vecstore (v vector_l2_ops) WITH (lists = 2)");
    my $file = $node->data_dir . '/' . segment_of("${t}_idx", $psql);
    ok(-f $file, "$t: the index has written its segment file");
    my $saved = PostgreSQL::Test::Utils::tempdir() . "/$t.seg";
    copy($file, $saved) or die "copy $file: $!";
    $psql->query_safe($end);
    $psql->quit;
    $node->safe_psql('postgres', $after) if defined $after;
    ok(!-e $file, "$t: after $end" . ($after ? " and $after" : '') . ', the file is gone');
    copy($saved, $file) or die "copy back $file: $!";
    make_old($file);
    return $file;
}

# session 1: an index built in a transaction that stays open
my $s1 = $node->background_psql('postgres');
$s1->query_safe('BEGIN');
$s1->query_safe('CREATE INDEX t_idx ON t USING vecstore (v vector_l2_ops) WITH (lists = 5)');
my $s1_pid  = $s1->query_safe('SELECT pg_backend_pid()');
my $s1_file = $node->data_dir . '/' . segment_of('t_idx', $s1);
ok(-f $s1_file, 'the open transaction has written its segment file');
make_old($s1_file);

# temporary files: one of a write in progress (session 1's backend is
# alive), one of a dead write (this test's process is not a backend)
my $tmp_live = "$dir/4000000000.1.seg.tmp.$s1_pid";
my $tmp_dead = "$dir/4000000001.1.seg.tmp.$$";
for my $f ($tmp_live, $tmp_dead)
{
    open my $fh, '>', $f or die "create $f: $!";
    print $fh 'x' x 4096;
    close $fh;
    make_old($f);
}

# session 2: CREATE INDEX sweeps the database's directory
$node->safe_psql('postgres',
    'CREATE INDEX s_idx ON s USING vecstore (v vector_l2_ops) WITH (lists = 2)');
ok(-f $s1_file, 'after a sweep by CREATE INDEX, the open transaction\'s file is kept');
ok(!-e $dropped_file, 'the sweep removed the file of a dropped index');
ok(!-e $aborted_file, 'the sweep removed the file of a rolled-back CREATE INDEX');
ok(-e $tmp_live, 'the sweep kept the temporary file of a live backend');
ok(!-e $tmp_dead, 'the sweep removed the temporary file of a process that is no backend');

# vecstore_verify(repair) sweeps too
make_old($s1_file);
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('s_idx', repair => true)"),
    '0', 'vecstore_verify(repair) finds s_idx healthy');
ok(-f $s1_file, 'after a sweep by vecstore_verify(repair), the open transaction\'s file is kept');

# session 1 commits: its file is the index's, before any query
$s1->query_safe('COMMIT');
$s1->quit;
ok(-f $s1_file, 'after COMMIT, the index\'s segment file exists');
is($node->data_dir . '/' . segment_of('t_idx'), $s1_file, 'and it is the index\'s segment file');
my $mtime = (stat $s1_file)[9];

# the index answers as a sequential scan does
my $plan = $node->safe_psql('postgres',
    'SET enable_seqscan = off; EXPLAIN (COSTS OFF) ' . sprintf($KNN, 7, 7));
like($plan, qr/Index Scan using t_idx on t/, 'the kNN query uses the index');
my @queries = (7, 123, 4567, 99999);
my @exact = map {
    $node->safe_psql('postgres',
        'SET enable_indexscan = off; SET enable_bitmapscan = off; ' . sprintf($KNN, $_, $_))
} @queries;
is_deeply([ knn_index(@queries) ], \@exact, 'the index answers as a sequential scan does');
is((stat $s1_file)[9], $mtime, 'the queries used the file (it was not rebuilt)');
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('t_idx')"),
    '0', 'vecstore_verify finds t_idx healthy');

# REINDEX in a transaction that stays open: its file (a new relfilenode
# of a visible index) is kept too
my $s3 = $node->background_psql('postgres');
$s3->query_safe('BEGIN');
$s3->query_safe('REINDEX INDEX t_idx');
my $s3_file = $node->data_dir . '/' . segment_of('t_idx', $s3);
isnt($s3_file, $s1_file, 'REINDEX wrote a file of a new relfilenode');
ok(-f $s3_file, 'the open REINDEX has written its segment file');
make_old($s3_file);
$node->safe_psql('postgres',
    'CREATE INDEX s_idx3 ON s USING vecstore (v vector_cosine_ops) WITH (lists = 2)');
ok(-f $s3_file, 'after a sweep, the open REINDEX\'s file is kept');
$s3->query_safe('COMMIT');
$s3->quit;
ok(-f $s3_file, 'after COMMIT, the reindexed index\'s segment file exists');
ok(!-e $s1_file, 'and the file of its old relfilenode is gone');
$mtime = (stat $s3_file)[9];
is_deeply([ knn_index(@queries) ], \@exact, 'the reindexed index answers as a sequential scan does');
is((stat $s3_file)[9], $mtime, 'the queries used the file (it was not rebuilt)');

# A file written before the header named its writer (zero there, and a
# header CRC over the fields before it) is still valid: the same file
# with the writer cleared and the old CRC is used as it is, and kept by
# a sweep.
{
    open my $fh, '<:raw', $s3_file or die "open $s3_file: $!";
    local $/;
    my $bytes = <$fh>;
    close $fh;
    my ($stored, $xid) = unpack('V V', substr($bytes, 72, 8));
    isnt($xid, 0, 'the header names the transaction that wrote the file');
    is($stored, crc32c(substr($bytes, 0, 72) . substr($bytes, 76, 4)),
        'the header CRC covers the fields before it and the writer');
    substr($bytes, 72, 8) = pack('V V', crc32c(substr($bytes, 0, 72)), 0);
    my $copy = "$s3_file.old";
    open $fh, '>:raw', $copy or die "create $copy: $!";
    print $fh $bytes;
    close $fh;
    rename($copy, $s3_file) or die "rename $copy: $!";
    make_old($s3_file);
}
my $inode = (stat $s3_file)[1];
is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('t_idx')"),
    '0', 'vecstore_verify accepts a file of the older header');
is_deeply([ knn_index(@queries) ], \@exact, 'and the index answers from it as a sequential scan does');
$node->safe_psql('postgres',
    'CREATE INDEX s_idx4 ON s USING vecstore (v vector_l2_ops) WITH (lists = 3)');
is((stat $s3_file)[1], $inode, 'the older file was neither rebuilt nor swept');

# the temporary file of a backend that has exited goes at the next sweep
$node->poll_query_until('postgres',
    "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $s1_pid")
  or die 'session 1\'s backend did not exit';
$node->safe_psql('postgres', 'CREATE INDEX s_idx2 ON s USING vecstore (v vector_ip_ops) WITH (lists = 2)');
ok(!-e $tmp_live, 'once its backend has exited, the old temporary file is removed');
ok(-f $s3_file, 'and the committed index\'s file is kept');

$node->stop;
done_testing();
