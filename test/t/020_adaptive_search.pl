#-------------------------------------------------------------------------
#
# 020_adaptive_search.pl
#     TAP test: the adaptive search (vecstore.effort), the server-wide
#     record of segment checks, and filtered queries.
#
# A. The adaptive search keeps the exact order, and vecstore.effort = 10
#    returns what an exact scan returns, for each operator class; recall
#    does not fall as the effort rises.
# B. Segment checks once per server (shared_preload_libraries): a second
#    session trusts the first one's checks; a file replaced under the
#    running server (new inode), or touched (new modification time), is
#    checked again; so it is after a restart.  A server without the
#    library preloaded checks in every session.
# C. Filtered queries: a filter that keeps 10 rows of 100,000 returns all
#    10 (pgvector's iterative-scan test, names rewritten) when
#    vecstore.max_scan_tuples covers the table; a smaller bound returns
#    fewer, with a NOTICE and a count in vecstore_stats(); a 1 % filter
#    reaches recall@10 >= 0.9 of the exact answer.
#
# IDENTIFICATION
#     test/t/020_adaptive_search.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('adaptive');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 64MB
statement_timeout = '300s'
});
$node->start;

# vec_of(id, seed, dims): one of 40 centres plus per-id noise, from hashes
$node->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE FUNCTION vec_of(id int, seed int, dims int) RETURNS vector
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT ARRAY(SELECT (hashint4((id % 40) * 1000 + j + seed * 7919) % 1000) / 100.0
                      + (hashint4(id * 64 + j + seed * 104729) % 1000) / 40.0
                 FROM generate_series(0, dims - 1) AS j)::real[]::vector
$$;
CREATE TABLE items (id int PRIMARY KEY, v vector(32), category int);
INSERT INTO items SELECT g, vec_of(g, 0, 32), g % 100 FROM generate_series(1, 20000) AS g;
CREATE INDEX items_l2 ON items USING vecstore (v vector_l2_ops) WITH (lists = 8);
ANALYZE items;
});

# knn_sql(settings, op, filter, limit): one line per query, "q|id id ...",
# ids in the order returned, and whether distances never decrease
sub knn_sql
{
    my ($settings, $op, $filter, $limit) = @_;
    $filter //= '';
    $limit  //= 10;
    my $where = $filter ne '' ? "WHERE $filter" : '';
    return qq{$settings
SELECT q, string_agg(id::text, ' ' ORDER BY rn), bool_and(d >= coalesce(prev, d))
FROM (SELECT q, id, rn, d, lag(d) OVER (PARTITION BY q ORDER BY rn) AS prev
      FROM generate_series(1, 20) AS q,
      LATERAL (SELECT id, d, row_number() OVER () AS rn
               FROM (SELECT id, v $op vec_of(30000 + q, 0, 32) AS d FROM items $where
                     ORDER BY v $op vec_of(30000 + q, 0, 32) LIMIT $limit) s) s2) s3
GROUP BY q ORDER BY q;};
}

my $EXACT = 'SET enable_indexscan = off; SET enable_bitmapscan = off;';
my $INDEX = 'SET enable_seqscan = off;';

# recall(got, want): the share of the wanted ids found, over all queries
sub recall
{
    my ($got, $want) = @_;
    my %g = map { (split /\|/)[0] => [ split / /, (split /\|/)[1] // '' ] } split /\n/, $got;
    my ($hit, $total) = (0, 0);
    for my $line (split /\n/, $want)
    {
        my ($q, $ids) = split /\|/, $line;
        my %have = map { $_ => 1 } @{ $g{$q} || [] };
        for my $id (split / /, $ids)
        {
            $hit++ if $have{$id};
            $total++;
        }
    }
    return $total ? $hit / $total : 0;
}

# ordered(result): every query's distances never decrease
sub ordered
{
    my ($result) = @_;
    return !grep { (split /\|/)[2] ne 't' } split /\n/, $result;
}

#
# A. Exact at effort 10, for every operator class; the order is exact at
# every effort; recall rises with the effort.
#
for my $opc (['vector_l2_ops', '<->'], ['vector_ip_ops', '<#>'], ['vector_cosine_ops', '<=>'])
{
    my ($opclass, $op) = @$opc;
    $node->safe_psql('postgres',
        "DROP INDEX IF EXISTS items_l2, items_opc; "
          . "CREATE INDEX items_opc ON items USING vecstore (v $opclass) WITH (lists = 8)");
    my $exact = $node->safe_psql('postgres', knn_sql($EXACT, $op));
    my $full  = $node->safe_psql('postgres', knn_sql("$INDEX SET vecstore.effort = 10;", $op));
    is($full, $exact, "$opclass: effort 10 returns the exact scan's rows in its order");

    my %r;
    for my $effort (1, 4, 9)
    {
        my $got = $node->safe_psql('postgres',
            knn_sql("$INDEX SET vecstore.effort = $effort;", $op));
        ok(ordered($got), "$opclass: effort $effort returns rows in distance order");
        $r{$effort} = recall($got, $exact);
    }
    ok($r{1} <= $r{4} + 0.02 && $r{4} <= $r{9} + 0.02,
        "$opclass: recall rises with the effort ($r{1}, $r{4}, $r{9})");
    cmp_ok($r{4}, '>=', 0.9, "$opclass: recall@10 at the default effort");
}
$node->safe_psql('postgres',
    "DROP INDEX items_opc; CREATE INDEX items_l2 ON items USING vecstore (v vector_l2_ops) WITH (lists = 8)");

#
# B. Segment checks, once per server.
#
my $STATS = 'SELECT files_checked, files_trusted, clusters_checked > 0, clusters_trusted > 0, '
  . 'shared_checks FROM vecstore_stats()';
my $ONE = "SET enable_seqscan = off; SET vecstore.effort = 10; "
  . "SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> vec_of(1, 0, 32) LIMIT 10) s;";

sub session_stats
{
    my ($n) = @_;
    my $out = $n->safe_psql('postgres', "$ONE $STATS");
    return (split /\n/, $out)[1];
}

is(session_stats($node), '1|0|t|f|t', 'the first session checks the segment it reads');
is(session_stats($node), '0|1|f|t|t', 'the next session trusts the first one\'s checks');

my $seg = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT segment_file FROM vecstore_index_info('items_l2')");
copy($seg, "$seg.copy") or die "copy: $!";
rename("$seg.copy", $seg) or die "rename: $!";
is(session_stats($node), '1|0|t|f|t', 'a file replaced under the server is checked again');
is(session_stats($node), '0|1|f|t|t', '... once');

my $mtime = (stat($seg))[9];
utime($mtime + 10, $mtime + 10, $seg) or die "utime: $!";
is(session_stats($node), '1|0|t|f|t', 'a file with a new modification time is checked again');

$node->restart;
is(session_stats($node), '1|0|t|f|t', 'a restarted server checks again');

# vectors_read: the full vectors the scans read.  An exact scan reads the
# vector of every row it examines; a default one compares most rows by
# their codes and reads the vectors of the few it reranks.
my $READ = 'SELECT rows_examined, vectors_read FROM vecstore_stats()';
my ($ex_rows, $ex_read) = split /\|/,
  (split /\n/, $node->safe_psql('postgres', "$ONE $READ"))[1];
ok($ex_read > 0 && $ex_read == $ex_rows,
    "an exact scan reads the vector of every row it examines ($ex_read of $ex_rows)");
my ($df_rows, $df_read) = split /\|/,
  (split /\n/, $node->safe_psql('postgres',
    "$INDEX SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> vec_of(1, 0, 32) LIMIT 10) s; $READ"))[1];
ok($df_read >= 10 && $df_read * 2 < $df_rows,
    "a default scan reads the vectors of the rows it reranks only ($df_read of $df_rows examined)");

my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql(
    'postgres', q{
CREATE EXTENSION vecstore;
CREATE FUNCTION vec_of(id int, seed int, dims int) RETURNS vector
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT ARRAY(SELECT (hashint4(id * 64 + j + seed) % 1000) / 100.0
                 FROM generate_series(0, dims - 1) AS j)::real[]::vector
$$;
CREATE TABLE items (id int PRIMARY KEY, v vector(32));
INSERT INTO items SELECT g, vec_of(g, 0, 32) FROM generate_series(1, 3000) AS g;
CREATE INDEX ON items USING vecstore (v) WITH (lists = 4);
});
is(session_stats($plain), '1|0|t|f|f', 'without preloading, a session checks what it reads');
is(session_stats($plain), '1|0|t|f|f', '... and so does the next one');
$plain->stop;

#
# C. Filtered queries.
#
# pgvector's iterative-scan test at our scale: 100,000 rows of 3
# dimensions, 10 of which pass "i % 10000 = 0"; with max_scan_tuples
# covering the table, all 10 come back, for every query
$node->safe_psql(
    'postgres', q{
CREATE TABLE tst (i int4 PRIMARY KEY, v vector(3));
INSERT INTO tst SELECT i, ARRAY[(hashint4(i) % 100000) / 100000.0,
                                (hashint4(i + 7777777) % 100000) / 100000.0,
                                (hashint4(i + 3333333) % 100000) / 100000.0]
FROM generate_series(1, 100000) i;
CREATE INDEX ON tst USING vecstore (v vector_l2_ops);
ANALYZE tst;
});
my $rare = $node->safe_psql(
    'postgres', q{
SET enable_seqscan = off;
SET vecstore.max_scan_tuples = 100000;
SELECT q, (SELECT count(*) FROM (SELECT i FROM tst WHERE i % 10000 = 0
                                ORDER BY v <-> (SELECT v FROM tst WHERE i = q) LIMIT 11) s)
FROM generate_series(1, 20) AS q;
});
is(scalar(grep { (split /\|/)[1] == 10 } split /\n/, $rare), 20,
    'a filter that keeps 10 rows of 100,000 returns all 10, for every query');

# a tight bound stops the scan, says so once, and counts it
my ($ret, $stdout, $stderr) = $node->psql('postgres',
    "$INDEX SET vecstore.max_scan_tuples = 500; "
      . "SELECT count(*) FROM (SELECT id FROM items WHERE id % 2000 = 0 "
      . "ORDER BY v <-> vec_of(30001, 0, 32) LIMIT 11) s; "
      . "SELECT scans_cut_short FROM vecstore_stats();");
my @lines = split /\n/, $stdout;
cmp_ok($lines[0], '<', 10, 'max_scan_tuples = 500 stops the scan short');
is($lines[1], '1', 'vecstore_stats() counts the scan cut short');
like($stderr, qr/NOTICE:  vecstore index scan of "items_l2" stopped after examining \d+ rows/,
    'a NOTICE says the scan stopped short');
is(scalar(() = $stderr =~ /NOTICE/g), 1, '... once');

# a 1 % filter: recall@10 against the exact answer
my $exact1 = $node->safe_psql('postgres', knn_sql($EXACT, '<->', 'category = 7'));
my $got1   = $node->safe_psql('postgres', knn_sql($INDEX, '<->', 'category = 7'));
cmp_ok(recall($got1, $exact1), '>=', 0.9, 'a 1 % filter: recall@10 at the defaults');
is(scalar(grep { scalar(split / /, (split /\|/)[1]) == 10 } split /\n/, $got1), 20,
    '... with 10 rows for every query');

done_testing();
