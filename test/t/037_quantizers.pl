#-------------------------------------------------------------------------
#
# 037_quantizers.pl
#     TAP test: the three quantizers (sq8, sq4, none) on real data.  For
#     each data set and operator class, one index per quantizer, built on
#     the same rows with clusters of 1,000 rows or more (each gets a graph):
#
#     - vecstore_index_info names the quantizer, and code_bytes is the
#       rows' records (4 + dims bytes per row for sq8, 4 + dims / 2 for
#       sq4, each padded to 4; each cluster's block padded to 64; none for
#       none);
#     - vecstore_verify is clean;
#     - an exhaustive scan (VsTest's $EXACT_SCAN: vecstore.effort = 10)
#       returns the exact scan's distances rank by rank at LIMIT 10 and
#       LIMIT 100, whatever the codes: they steer the search, the rerank
#       decides;
#     - at the default settings every query returns 10 distinct rows in
#       distance order, and recall@10 is at least $MIN_RECALL;
#     - after 10% more rows are inserted and vecstore_compact re-seals the
#       clusters (re-encoding them with the index's codes), the index
#       verifies and the exhaustive scan is still exact;
#     - an sq8 or sq4 index built in the layout before packed codes
#       (vecstore.debug_packed_codes = off: records of a 16-byte header and
#       codes padded to 16, cosine graphs with their inverse norms) has
#       those records, verifies, and answers the default queries exactly
#       as the packed index does (the same distances steer the same
#       graphs); the sq4 one is compacted with the other and keeps its
#       layout.
#
#     The data sets: SIFT (L2, and the same rows as halfvec), GloVe
#     (cosine), Fashion-MNIST normalised (inner product); generated
#     Gaussian mixtures where ../shared/data is missing.
#
# IDENTIFICATION
#     test/t/037_quantizers.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use VsTest qw(quiet_node check_results report_bad same_distances index_info dataset_literals copy_in
  $EXACT_SCAN $SEQ_SCAN);

my $NQUERIES   = 30;
my $MIN_RECALL = 0.85;
my @QUANTIZERS = qw(sq8 sq4 none);

my @CASES = (
    { name => 'l2',  type => 'vector',  opclass => 'vector_l2_ops',  op => '<->',
      dataset => 'sift128-photos-euclidean', rows => 8000, lists => 4, normalize => 0 },
    { name => 'half', type => 'halfvec', opclass => 'halfvec_l2_ops', op => '<->',
      dataset => 'sift128-photos-euclidean', rows => 8000, lists => 4, normalize => 0 },
    { name => 'cos', type => 'vector',  opclass => 'vector_cosine_ops', op => '<=>',
      dataset => 'glove6b-100-angular', rows => 8000, lists => 3, normalize => 0 },
    { name => 'ip',  type => 'vector',  opclass => 'vector_ip_ops',  op => '<#>',
      dataset => 'fashion-mnist-784-euclidean', rows => 4000, lists => 2, normalize => 1 },
);

my $node = quiet_node('quantizers', qq{
shared_buffers = 128MB
maintenance_work_mem = 128MB
max_parallel_maintenance_workers = 0
});
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

# knn - { qid => [ [id, 0, distance], ... ] } for every query of $case
sub knn
{
    my ($case, $settings, $limit) = @_;
    my ($t, $op) = ("items_$case->{name}", $case->{op});
    my $sql = "$settings\n";

    for my $qid (sort { $a <=> $b } keys %{ $case->{queries} })
    {
        my $q = "'$case->{queries}{$qid}'::$case->{type}";
        $sql .= "SELECT $qid, id, v $op $q FROM $t ORDER BY v $op $q LIMIT $limit;\n";
    }
    my %res = map { $_ => [] } keys %{ $case->{queries} };
    for my $line (split /\n/, $node->safe_psql('postgres', $sql))
    {
        my ($qid, $id, $dist) = split /\|/, $line;
        push @{ $res{$qid} }, [ $id, 0, $dist ];
    }
    return \%res;
}

# record_bytes - bytes of one code record (src/vsquant.h, "Record
# layouts"): packed, or the earlier layout when $old
sub record_bytes
{
    my ($quantizer, $dim, $old) = @_;
    my $codes = $quantizer eq 'sq4' ? int(($dim + 1) / 2) : $dim;
    return $old ? 16 + 16 * int(($codes + 15) / 16) : 4 * int(($codes + 4 + 3) / 4);
}

# code_bytes_ok - code_bytes of $info is $rows records of $quantizer in
# $lists blocks
sub code_bytes_ok
{
    my ($what, $info, $quantizer, $dim, $rows, $lists, $old) = @_;
    my $rb  = record_bytes($quantizer, $dim, $old);
    my $low = $rows * $rb;
    ok($info->{code_bytes} >= $low && $info->{code_bytes} < $low + 64 * $lists,
        "$what: code_bytes $info->{code_bytes} is $rows records of $rb bytes, blocks padded to 64");
}

# same_answers - the two result sets name the same rows at the same
# distances, rank by rank
sub same_answers
{
    my ($what, $got, $want) = @_;
    my $differ = 0;

    for my $qid (keys %$want)
    {
        $differ++
          if join(',', map { "$_->[0]:$_->[2]" } @{ $got->{$qid} }) ne
          join(',', map { "$_->[0]:$_->[2]" } @{ $want->{$qid} });
    }
    is($differ, 0, "$what: every query answers as the packed index does");
}

for my $case (@CASES)
{
    my ($name, $rows, $lists) = @$case{qw(name rows lists)};
    my $t    = "items_$name";
    my $nins = int($rows / 10);
    my ($dim, $base, $queries) = dataset_literals($case->{dataset}, $rows + $nins, $NQUERIES, 1);
    my $expr = $case->{normalize} ? 'l2_normalize(v)' : 'v';
    $expr .= "::$case->{type}($dim)";

    $node->safe_psql(
        'postgres', qq{
        CREATE TABLE stage_$name (id int, v vector($dim));
        CREATE TABLE queries_$name (qid int, v vector($dim));
        CREATE TABLE $t (id int PRIMARY KEY, v $case->{type}($dim));
    });
    copy_in($node, "stage_$name", 'id, v', [ map { [ $_ + 1, $base->[$_] ] } 0 .. $#$base ]);
    copy_in($node, "queries_$name", 'qid, v', [ map { [ $_ + 1, $queries->[$_] ] } 0 .. $#$queries ]);
    undef $base;
    $node->safe_psql('postgres',
        "INSERT INTO $t SELECT id, $expr FROM stage_$name WHERE id <= $rows; VACUUM ANALYZE $t;");
    $case->{queries} = {
        map { split /\|/, $_, 2 } split /\n/,
        $node->safe_psql('postgres', "SELECT qid, $expr FROM queries_$name ORDER BY qid")
    };

    my %exact = map { $_ => knn($case, $SEQ_SCAN, $_) } (10, 100);

    for my $quantizer (@QUANTIZERS)
    {
        my $what = "$name $quantizer";
        my $idx  = "${t}_$quantizer";

        # a halfvec index needs codes: its graphs cannot read 16-bit vectors
        if ($case->{type} eq 'halfvec' && $quantizer eq 'none')
        {
            my ($ret, $out, $err) = $node->psql('postgres',
                "CREATE INDEX $idx ON $t USING vecstore (v $case->{opclass}) "
                  . "WITH (lists = $lists, quantizer = none)");
            like($err, qr/need quantizer = sq8 or sq4/, "$what: refused");
            next;
        }
        $node->safe_psql('postgres',
            "CREATE INDEX $idx ON $t USING vecstore (v $case->{opclass}) "
              . "WITH (lists = $lists, quantizer = $quantizer)");

        my $info = index_info($node, $idx,
            qw(quantizer clusters graph_clusters code_bytes sealed_rows));
        is($info->{quantizer}, $quantizer, "$what: vecstore_index_info names the quantizer");
        is($info->{graph_clusters}, $lists, "$what: every cluster has a graph");
        if ($quantizer eq 'none')
        {
            is($info->{code_bytes}, 0, "$what: no codes");
        }
        else
        {
            code_bytes_ok($what, $info, $quantizer, $dim, $rows, $lists, 0);
        }
        is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$idx')"),
            '0', "$what: vecstore_verify is clean");

        for my $limit (10, 100)
        {
            same_distances("$what exhaustive LIMIT $limit",
                knn($case, $EXACT_SCAN, $limit), $exact{$limit});
        }
        my $defaults = knn($case, 'SET enable_seqscan = off;', 10);
        my ($recall, $bad) = check_results($defaults, $exact{10}, 10);
        note sprintf('%s: recall@10 at the defaults %.3f', $what, $recall);
        ok($recall >= $MIN_RECALL,
            sprintf('%s: recall@10 at the defaults %.3f >= %.2f', $what, $recall, $MIN_RECALL));
        report_bad("$what defaults", $bad, 10, 0);

        # the same codes in the earlier layout, beside the packed
        # index; each query below drops the other one in a transaction
        # that its session's end rolls back
        my $old = "${idx}_old";
        if ($quantizer ne 'none')
        {
            $node->safe_psql('postgres',
                "SET vecstore.debug_packed_codes = off; "
                  . "CREATE INDEX $old ON $t USING vecstore (v $case->{opclass}) "
                  . "WITH (lists = $lists, quantizer = $quantizer)");
            my $oinfo = index_info($node, $old, qw(code_bytes graph_bytes));
            code_bytes_ok("$what (old layout)", $oinfo, $quantizer, $dim, $rows, $lists, 1);
            my $ginfo = index_info($node, $idx, qw(graph_bytes));
            if ($case->{opclass} =~ /cosine/)
            {
                ok($oinfo->{graph_bytes} >= $ginfo->{graph_bytes} + 4 * $rows,
                    "$what (old layout): graphs keep their norms ($oinfo->{graph_bytes} "
                      . "against $ginfo->{graph_bytes} bytes)");
            }
            else
            {
                is($oinfo->{graph_bytes}, $ginfo->{graph_bytes},
                    "$what (old layout): graphs of the same size");
            }
            is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$old')"),
                '0', "$what (old layout): vecstore_verify is clean");
            same_answers("$what (old layout) at the defaults",
                knn($case, "BEGIN; DROP INDEX $idx; SET enable_seqscan = off;", 10), $defaults);
        }

        # the sq4 index lives on: inserts, then a compaction re-encodes
        if ($quantizer eq 'sq4')
        {
            $node->safe_psql('postgres',
                "INSERT INTO $t SELECT id, $expr FROM stage_$name WHERE id > $rows;"
                  . "SELECT vecstore_compact('$idx'); SELECT vecstore_compact('$old');");
            my $after = index_info($node, $idx, qw(sealed_rows delta_rows));
            is("$after->{sealed_rows}/$after->{delta_rows}", ($rows + $nins) . '/0',
                "$what: the compaction sealed the inserted rows");
            is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$idx')"),
                '0', "$what: vecstore_verify is clean after the compaction");
            same_distances("$what after the compaction, exhaustive LIMIT 10",
                knn($case, "BEGIN; DROP INDEX $old; $EXACT_SCAN", 10), knn($case, $SEQ_SCAN, 10));

            code_bytes_ok("$what (old layout) after the compaction",
                index_info($node, $old, qw(code_bytes)),
                $quantizer, $dim, $rows + $nins, $lists, 1);
            is($node->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$old')"),
                '0', "$what (old layout): vecstore_verify is clean after the compaction");
            same_answers("$what (old layout) after the compaction, at the defaults",
                knn($case, "BEGIN; DROP INDEX $idx; SET enable_seqscan = off;", 10),
                knn($case, "BEGIN; DROP INDEX $old; SET enable_seqscan = off;", 10));
            $node->safe_psql('postgres', "DELETE FROM $t WHERE id > $rows; VACUUM $t;");
        }
        $node->safe_psql('postgres', "DROP INDEX $idx");
        $node->safe_psql('postgres', "DROP INDEX IF EXISTS $old");
    }
}

$node->stop;
done_testing();
