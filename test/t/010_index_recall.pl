#-------------------------------------------------------------------------
#
# 010_index_recall.pl
#     TAP test: recall of the vecstore index against an exact scan, per
#     operator class, after the build, after inserts and after VACUUM.
#
# For each operator class a table is loaded from a real data set (from
# $VECSTORE_DATA; generated clustered data when it is absent), an index is
# built with a fixed number of lists, and the first 50 query vectors of the
# set are run as "ORDER BY v OP q LIMIT 10" through the index, for a sweep
# of vecstore.probes, and through an exact scan (the same server with index
# scans disabled).  Recall@10 is tie-aware: a returned row counts as a hit
# when its distance is at most the exact 10th distance.
#
# Documented thresholds (recall@10, 50 queries).  "Ideal" is an exact
# IVF-flat search over the same lists (k-means, 10 Lloyd rounds, every row
# in its nearest list), computed outside PostgreSQL when the thresholds
# were set; the thresholds leave room for k-means on a sample and for the
# graph search inside each list:
#
#   opclass            data set                        rows    lists  probes  min    ideal
#   vector_l2_ops      sift128-photos-euclidean        20000   100    10      0.90   0.956
#   vector_cosine_ops  glove6b-100-angular             20000   100    20      0.90   0.964
#   vector_ip_ops      fashion-mnist-784, normalised   10000    50     5      0.90   0.998
#
# Without $VECSTORE_DATA each case uses a generated Gaussian mixture (32
# dimensions) with the same rows, lists, probes and thresholds; ideal
# recall there is 0.998 / 0.998 / 0.994 at those probes (0.85 / 0.75 / 0.94
# at probes = 1).
#
# and for all three: with probes = lists the distances returned equal the
# exact scan's, query by query (the results equal an exact scan), while
# probes = 1 gives recall < 1 (the setting really limits the search).
# Every query, at every setting, must return 10 distinct rows in
# non-decreasing distance order (checked on the distances the SQL operator
# computes in the select list, not on anything the index reports).
#
# Then 20% more rows are inserted (delta chains): the same thresholds hold
# against the new exact answer, every inserted row finds itself at
# probes = 1 (insert and search route by the same centroids), and
# vecstore_index_info accounts for every row.  For vector_l2_ops, 10% of
# the rows are deleted and vacuumed, new rows are inserted into the freed
# heap space, and the results still equal the exact scan at probes = lists.
#
# A filtered query, "WHERE label = 7" (5% of the rows) with probes = 1,
# must still return 10 matching rows in order: the scan continues into
# further lists (within vecstore.max_scan_tuples, set to the table size);
# a filter matching nothing returns no rows and ends.
#
# IDENTIFICATION
#     test/t/010_index_recall.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use VsTest qw(check_results report_bad same_distances index_info fvecs_literals copy_in);

# the vecstore_index_info columns the checks read
my @INFO_COLS = qw(clusters sealed_rows delta_rows dead_rows segment_file segment_bytes);

my $NQUERIES = 50;
my $K        = 10;
my @SWEEP    = (1, 2, 5, 10, 20, 50, 100);

# The cases; "normalize" loads l2_normalize(v) instead of v.  Generated data
# (no $VECSTORE_DATA) uses the same lists, probes and thresholds.
my @CASES = (
    {
        name       => 'l2',
        opclass    => 'vector_l2_ops',
        op         => '<->',
        dataset    => 'sift128-photos-euclidean',
        nbase      => 20_000,
        lists      => 100,
        probes     => 10,
        min_recall => 0.90,
        normalize  => 0,
        vacuum     => 1,
    },
    {
        name       => 'cosine',
        opclass    => 'vector_cosine_ops',
        op         => '<=>',
        dataset    => 'glove6b-100-angular',
        nbase      => 20_000,
        lists      => 100,
        probes     => 20,
        min_recall => 0.90,
        normalize  => 0,
        vacuum     => 0,
    },
    {
        name       => 'ip',
        opclass    => 'vector_ip_ops',
        op         => '<#>',
        dataset    => 'fashion-mnist-784-euclidean',
        nbase      => 10_000,
        lists      => 50,
        probes     => 5,
        min_recall => 0.90,
        normalize  => 1,
        vacuum     => 0,
    });

my $data_root = $ENV{VECSTORE_DATA} // '';

my $node = PostgreSQL::Test::Cluster->new('recall');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
shared_buffers = 256MB
maintenance_work_mem = 256MB
max_parallel_maintenance_workers = 0
statement_timeout = '300s'
log_statement = 'ddl'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

#
# generated_literals - n vectors of a Gaussian mixture (32 dimensions, 64
# centres in [0,10)^32, sigma 2.5), deterministic for a seed: the stand-in
# for a data set when $VECSTORE_DATA has none.
#
sub generated_literals
{
    my ($seed, $n) = @_;
    my ($dim, $ncent) = (32, 64);

    srand(4242);    # the same centres for base and queries
    my @cent = map { [ map { rand(10) } 1 .. $dim ] } 1 .. $ncent;
    srand($seed);
    my @lits;
    for (1 .. $n)
    {
        my $c = $cent[ int(rand($ncent)) ];
        my @v;
        for my $j (0 .. $dim - 1)
        {
            # Box-Muller
            my $g = sqrt(-2 * log(1 - rand())) * cos(6.283185307179586 * rand());
            push @v, sprintf('%.6g', $c->[$j] + 2.5 * $g);
        }
        push @lits, '[' . join(',', @v) . ']';
    }
    return ($dim, \@lits);
}

#
# run_queries - run every query of the case as ORDER BY .. LIMIT 10 under
# the given SET commands, with an optional extra WHERE condition.  Returns
# { qid => [ [id, label, dist], ... ] } in the order the server returned.
#
sub run_queries
{
    my ($case, $settings, $where) = @_;
    my ($t, $op) = ("items_$case->{name}", $case->{op});
    my $sql = "$settings\n";
    my $cond = defined $where ? "WHERE $where" : '';

    for my $qid (sort { $a <=> $b } keys %{ $case->{queries} })
    {
        my $q = "'$case->{queries}{$qid}'";
        $sql .= "SELECT $qid, id, label, v $op $q FROM $t $cond "
          . "ORDER BY v $op $q LIMIT $K;\n";
    }
    my %res = map { $_ => [] } keys %{ $case->{queries} };
    for my $line (split /\n/, $node->safe_psql('postgres', $sql))
    {
        my ($qid, $id, $label, $dist) = split /\|/, $line;
        push @{ $res{$qid} }, [ $id, $label, $dist ];
    }
    return \%res;
}

my $EXACT = 'SET enable_indexscan = off; SET enable_bitmapscan = off;';

#
# index_settings - force the index, with the given probes.
#
sub index_settings
{
    my ($probes) = @_;
    return "SET enable_seqscan = off; SET vecstore.probes = $probes;";
}





#
# self_lookup - every inserted row (id > nbase) in a sample of 200 finds
# itself (or an identical vector) as its nearest neighbour at probes = 1.
# An ip index fills its lists by L2 but ranks them for a query by inner
# product (vskmeans.c has the measurements), so a row's list need not be
# the one its own vector ranks first: there every row must be found with
# all lists probed.
#
sub self_lookup
{
    my ($case) = @_;
    my ($t, $op) = ("items_$case->{name}", $case->{op});
    my $nbase = $case->{nbase};
    my $step  = int($nbase / 5 / 200) || 1;
    my $sql   = qq{
        SELECT s.id, s.v $op s.v, r.id, r.d
        FROM $t s CROSS JOIN LATERAL
             (SELECT t.id, t.v $op s.v AS d FROM $t t ORDER BY t.v $op s.v LIMIT 1) r
        WHERE s.id > $nbase AND s.id % $step = 0
    };

    like(
        $node->safe_psql('postgres', "SET enable_seqscan = off; EXPLAIN (COSTS OFF) $sql"),
        qr/Index Scan using ${t}_v_idx on $t t/,
        "$case->{name}: the self-lookup runs through the index");
    my $probes = $case->{name} eq 'ip' ? $case->{lists} : 1;
    my (@missing, $n);
    for my $line (split /\n/,
        $node->safe_psql('postgres', index_settings($probes) . $sql))
    {
        my ($id, $self, $rid, $d) = split /\|/, $line;
        $n++;
        # l2: exactly 0; cosine and ip: within float rounding of v OP v
        push @missing, "id $id: nearest is $rid at $d, itself at $self"
          unless $d <= $self + ($case->{op} eq '<->' ? 0 : 1e-5);
    }
    ok($n >= 100 && !@missing,
        "$case->{name}: $n inserted rows each find themselves at probes = $probes")
      or diag(join("\n", @missing[ 0 .. ($#missing < 9 ? $#missing : 9) ]));
    return;
}

for my $case (@CASES)
{
    my $name  = $case->{name};
    my $t     = "items_$name";
    my $idx   = "${t}_v_idx";
    my $nbase = $case->{nbase};
    my $nins  = $nbase / 5;
    my $lists = $case->{lists};
    my $dir   = "$data_root/$case->{dataset}";
    my ($dim, $base, $queries);

    if ($data_root ne '' && -r "$dir/base.fvecs" && -r "$dir/query.fvecs")
    {
        note "$name: data set $case->{dataset}";
        ($dim, $base) = fvecs_literals("$dir/base.fvecs", 0, $nbase + $nins);
        (undef, $queries) = fvecs_literals("$dir/query.fvecs", 0, $NQUERIES);
    }
    else
    {
        note "$name: \$VECSTORE_DATA has no $case->{dataset}: generated data";
        ($dim, $base) = generated_literals(1, $nbase + $nins);
        (undef, $queries) = generated_literals(2, $NQUERIES);
    }
    my $expr = $case->{normalize} ? 'l2_normalize(v)' : 'v';

    $node->safe_psql(
        'postgres', qq{
        CREATE TABLE stage_$name (id int, v vector($dim));
        CREATE TABLE queries_$name (qid int, v vector($dim));
        CREATE TABLE $t (id int PRIMARY KEY, label int NOT NULL, v vector($dim));
    });
    copy_in($node, "stage_$name", 'id, v',
        [ map { [ $_ + 1, $base->[$_] ] } 0 .. $#$base ]);
    copy_in($node, "queries_$name", 'qid, v',
        [ map { [ $_ + 1, $queries->[$_] ] } 0 .. $#$queries ]);
    undef $base;
    $node->safe_psql(
        'postgres', qq{
        INSERT INTO $t SELECT id, id % 20, $expr FROM stage_$name WHERE id <= $nbase;
        VACUUM ANALYZE $t;
    });
    $case->{queries} = {
        map { split /\|/, $_, 2 } split /\n/,
        $node->safe_psql('postgres', "SELECT qid, $expr FROM queries_$name ORDER BY qid")
    };
    is(scalar(keys %{ $case->{queries} }), $NQUERIES, "$name: $NQUERIES queries loaded");

    # build
    my $t0 = time();
    $node->safe_psql('postgres',
        "CREATE INDEX $idx ON $t USING vecstore (v $case->{opclass}) WITH (lists = $lists)");
    note "$name: built the index on $nbase rows of $dim dimensions in about "
      . (time() - $t0) . " s";

    my $info = index_info($node, $idx, @INFO_COLS);
    is($info->{clusters},    $lists, "$name: index has $lists clusters");
    is($info->{sealed_rows}, $nbase, "$name: every row is sealed after the build");
    is($info->{delta_rows},  0,      "$name: no delta rows after the build");
    is($info->{dead_rows},   0,      "$name: no dead rows after the build");
    like($info->{segment_file}, qr{^pg_vecstore/\d+/\d+\.\d+\.seg$},
        "$name: segment file name ($info->{segment_file})");
    my $segpath = $node->data_dir . "/$info->{segment_file}";
    ok(-f $segpath, "$name: the segment file exists");
    is($info->{segment_bytes}, -s $segpath,
        "$name: segment_bytes is the size of the file");

    # the planner picks the index on its own for ORDER BY .. LIMIT
    my $q1 = "'$case->{queries}{1}'";
    like(
        $node->safe_psql('postgres',
            "EXPLAIN (COSTS OFF) SELECT id FROM $t ORDER BY v $case->{op} $q1 LIMIT $K"),
        qr/Index Scan using $idx on $t/,
        "$name: EXPLAIN shows the index scan (default settings)");
    unlike(
        $node->safe_psql('postgres',
            "$EXACT EXPLAIN (COSTS OFF) SELECT id FROM $t ORDER BY v $case->{op} $q1 LIMIT $K"),
        qr/$idx/,
        "$name: the exact scan does not use the index");

    # the sweep
    my $exact = run_queries($case, $EXACT);
    my %recall;
    for my $p (grep { $_ <= $lists } @SWEEP)
    {
        my $res = run_queries($case, index_settings($p));
        my ($r, $bad) = check_results($res, $exact, $K);
        $recall{$p} = $r;
        note sprintf('%s: lists %d probes %3d recall@10 %.3f', $name, $lists, $p, $r);
        report_bad("$name, probes $p", $bad, $K);
        same_distances("$name, probes = lists ($p)", $res, $exact) if $p == $lists;
    }
    cmp_ok($recall{ $case->{probes} }, '>=', $case->{min_recall},
        "$name: recall\@10 at probes $case->{probes} >= $case->{min_recall}");
    is($recall{$lists}, 1, "$name: recall\@10 at probes = lists is 1");
    cmp_ok($recall{1}, '<', 1, "$name: probes = 1 limits the search (recall < 1)");

    # 20% more rows, inserted after the build
    $node->safe_psql('postgres',
        "INSERT INTO $t SELECT id, id % 20, $expr FROM stage_$name WHERE id > $nbase; ANALYZE $t;");
    my $total = $nbase + $nins;
    $info = index_info($node, $idx, @INFO_COLS);
    is($info->{sealed_rows} + $info->{delta_rows}, $total,
        "$name: sealed_rows + delta_rows = $total after $nins inserts "
          . "($info->{sealed_rows} + $info->{delta_rows})");
    is($info->{dead_rows}, 0, "$name: still no dead rows");
    $exact = run_queries($case, $EXACT);
    for my $p ($case->{probes}, $lists)
    {
        my $res = run_queries($case, index_settings($p));
        my ($r, $bad) = check_results($res, $exact, $K);
        note sprintf('%s after inserts: probes %3d recall@10 %.3f', $name, $p, $r);
        report_bad("$name after inserts, probes $p", $bad, $K);
        if ($p == $lists)
        {
            same_distances("$name after inserts, probes = lists", $res, $exact);
        }
        else
        {
            cmp_ok($r, '>=', $case->{min_recall},
                "$name after inserts: recall\@10 at probes $p >= $case->{min_recall}");
        }
        # how many of the returned rows are new ones (informational)
        my $new = 0;
        $new += grep { $_->[0] > $nbase } @$_ for values %$res;
        note "$name after inserts, probes $p: $new returned rows were inserted after the build";
    }
    self_lookup($case);

    # a filter with 5% selectivity, probes = 1: the scan must go on into
    # further lists until it has 10 matching rows
    my $filtered = run_queries($case, $EXACT, 'label = 7');
    like(
        $node->safe_psql('postgres',
            index_settings(1)
              . "EXPLAIN (COSTS OFF) SELECT id FROM $t WHERE label = 7 "
              . "ORDER BY v $case->{op} $q1 LIMIT $K"),
        qr/Index Scan using $idx on $t/,
        "$name: the filtered query uses the index");
    my $res = run_queries($case,
        index_settings(1) . "SET vecstore.max_scan_tuples = $total;", 'label = 7');
    my ($r, $bad) = check_results($res, $filtered, $K, 7);
    note sprintf('%s, label = 7, probes 1: recall@10 %.3f against the exact filtered answer',
        $name, $r);
    report_bad("$name, label = 7 (5%), probes 1", $bad, $K, 1);

    # a filter nothing matches: no rows, and the scan ends
    is( $node->safe_psql('postgres',
            index_settings(1)
              . "SET vecstore.max_scan_tuples = $total;"
              . "SELECT count(*) FROM (SELECT id FROM $t WHERE label = 99 "
              . "ORDER BY v $case->{op} $q1 LIMIT $K) s"),
        '0',
        "$name: a filter that matches nothing returns no rows");

    if ($case->{vacuum})
    {
        # delete 10%, vacuum, then insert rows that can take the freed heap
        # slots: a TID the index still held would now point to another row
        $node->safe_psql(
            'postgres', qq{
            DELETE FROM $t WHERE id % 10 = 3;
            VACUUM $t;
            INSERT INTO $t SELECT id + 1000000, id % 20, $expr FROM stage_$name
                WHERE id % 10 = 3 AND id <= $nbase ORDER BY id DESC;
            ANALYZE $t;
        });
        my $count = $node->safe_psql('postgres', "SELECT count(*) FROM $t");
        $info = index_info($node, $idx, @INFO_COLS);
        is($info->{sealed_rows} + $info->{delta_rows} - $info->{dead_rows}, $count,
            "$name after VACUUM: sealed_rows + delta_rows - dead_rows = $count live rows "
              . "($info->{sealed_rows} + $info->{delta_rows} - $info->{dead_rows})");
        $exact = run_queries($case, $EXACT);
        for my $p ($case->{probes}, $lists)
        {
            my $res = run_queries($case, index_settings($p));
            my ($r, $bad) = check_results($res, $exact, $K);
            note sprintf('%s after delete + VACUUM + insert: probes %3d recall@10 %.3f',
                $name, $p, $r);
            report_bad("$name after VACUUM, probes $p", $bad, $K);
            if ($p == $lists)
            {
                same_distances("$name after VACUUM, probes = lists", $res, $exact);
            }
            else
            {
                cmp_ok($r, '>=', $case->{min_recall},
                    "$name after VACUUM: recall\@10 at probes $p >= $case->{min_recall}");
            }
        }
    }

    is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$idx'::regclass)"),
        '0', "$name: vecstore_verify finds no problem");
}

# lists = auto (the default) follows the row count: about rows / 5000
{
    my $rows = $node->safe_psql('postgres', 'SELECT count(*) FROM items_l2');
    $node->safe_psql('postgres',
        'CREATE INDEX items_l2_auto ON items_l2 USING vecstore (v vector_l2_ops)');
    my $clusters = $node->safe_psql('postgres',
        "SELECT clusters FROM vecstore_index_info('items_l2_auto'::regclass)");
    ok($clusters >= $rows / 10000 && $clusters <= $rows / 2500,
        "default lists on $rows rows gives $clusters clusters (about rows / 5000)");
    $node->safe_psql('postgres', 'DROP INDEX items_l2_auto');
}

$node->stop;
done_testing();
