#-------------------------------------------------------------------------
#
# VsTest.pm
#     What several TAP tests (test/t/*.pl, test/citus/*.pl) share: a node
#     with nothing running on its own, killing a server the hard way,
#     clustered test vectors and kNN queries over them, vectors read from
#     fvecs files or generated in their stead, and judging kNN results
#     against an exact scan.  test/run.sh puts test/ on prove's include
#     path (-I).
#
# IDENTIFICATION
#     test/VsTest.pm
#
#-------------------------------------------------------------------------
package VsTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT_OK = qw(quiet_node server_pids crash_node crash_restart compaction_waiting
  compaction_stop_everywhere check_results report_bad same_distances
  index_info clustered_vec_of_sql knn_sql blob_sql blob_nearest check_index_rows check_blob_index
  fvecs_literals mixture_literals dataset_literals copy_in fork_digest segment_digest
  $EXACT_SCAN $SEQ_SCAN);

# settings for an exact index scan, and for a sequential scan
our $EXACT_SCAN =
  'SET enable_seqscan = off; SET vecstore.effort = 10; SET vecstore.max_scan_tuples = 1000000;';
our $SEQ_SCAN = 'SET enable_indexscan = off; SET enable_bitmapscan = off;';

#
# quiet_node - a new node "$name", initialized and started, with vecstore
# preloaded and nothing that runs on its own (no GPU helper, no compaction
# worker, no autovacuum), and the lines of "$extra_conf" after those.
#
sub quiet_node
{
    my ($name, $extra_conf) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    $node->append_conf('postgresql.conf', "shared_preload_libraries = 'vecstore'
vecstore.gpu = off
vecstore.compaction_worker = off
autovacuum = off
" . ($extra_conf // ''));
    $node->start;
    return $node;
}

#
# server_pids - pids of every process whose working directory is the
# node's data directory: the postmaster and all its children (the
# vecstore GPU helper included), including ones orphaned by a killed
# postmaster.  Empty where /proc cannot tell.
#
sub server_pids
{
    my ($node) = @_;
    my $datadir = abs_path($node->data_dir);
    my @pids;

    opendir(my $dh, '/proc') or return ();
    while (my $entry = readdir $dh)
    {
        next unless $entry =~ /^\d+$/;
        my $cwd = readlink("/proc/$entry/cwd");
        push @pids, $entry if defined $cwd && $cwd eq $datadir;
    }
    closedir $dh;
    return @pids;
}

#
# crash_node - SIGKILL the postmaster, then every other server process, and
# wait until all of them are gone, reaped zombies included: a new
# postmaster refuses to start while the old postmaster's pid is alive (the
# lock file) or an orphaned backend keeps the old shared memory attached.
#
sub crash_node
{
    my ($node) = @_;
    my $can_see = -d '/proc/self' && defined readlink('/proc/self/cwd');
    my $postmaster_pid;

    open my $fh, '<', $node->data_dir . '/postmaster.pid'
      or die "could not read postmaster.pid: $!";
    chomp($postmaster_pid = <$fh>);
    close $fh;
    my @killed = ($postmaster_pid, server_pids($node));

    # postmaster first, so it cannot react to its children dying
    $node->kill9;
    kill 'KILL', @killed;

    if (!$can_see)
    {
        sleep 5;    # no /proc: give orphans time to notice and exit
        return;
    }
    my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
    while (1)
    {
        # processes forked just before the kill were not in @killed
        my @orphans = server_pids($node);
        kill 'KILL', @orphans;
        my @left = grep { kill 0, $_ } (@killed, @orphans);
        last unless @left;
        die "server processes @left still present after SIGKILL"
          if time() > $deadline;
        usleep(50_000);
    }
    return;
}

#
# compaction_waiting - a background session of "$node" (superuser) whose
# "$call" (SQL running a compaction) waits at vecstore.debug_compaction_stop
# "$point": returns the session and its backend's pid once the server
# logs the wait.  The caller cancels it, kills the server or quits it.
#
sub compaction_waiting
{
    my ($node, $point, $call) = @_;
    my $bg = $node->background_psql('postgres', on_error_stop => 0);
    my $pid = $bg->query_safe('SELECT pg_backend_pid()');
    $bg->query_safe("SET vecstore.debug_compaction_stop = '$point'");
    my $logpos = -s $node->logfile;
    $bg->query_until(qr/compacting/, "\\echo compacting\n$call;\n");
    $node->wait_for_log(qr/compaction waits at "$point"/, $logpos);
    return ($bg, $pid);
}

#
# compaction_stop_everywhere - vecstore.debug_compaction_stop "$point" for
# every session of "$node", the running ones too (ALTER SYSTEM and a
# reload: a compaction waiting at one point goes on to the next); "none"
# resets it.
#
sub compaction_stop_everywhere
{
    my ($node, $point) = @_;
    my $set =
      $point eq 'none'
      ? 'ALTER SYSTEM RESET vecstore.debug_compaction_stop'
      : "ALTER SYSTEM SET vecstore.debug_compaction_stop = '$point'";
    $node->safe_psql('postgres', "LOAD 'vecstore'; $set; SELECT pg_reload_conf();");
    return;
}

#
# crash_restart - SIGKILL to "$node"'s postmaster and its children
# (crash_node), "$bg" (a background session, or undef) let go, the node
# started again; passes test "$name" when the log shows crash recovery.
#
sub crash_restart
{
    my ($node, $bg, $name) = @_;
    my $logpos = -s $node->logfile;

    crash_node($node);
    eval { $bg->quit } if defined $bg;
    $node->start;
    like(slurp_file($node->logfile, $logpos),
        qr/database system was not properly shut down; automatic recovery in progress/, $name);
    return;
}

#
# Results: { query key => [ [id, label, distance], ... ] } in the order the
# server returned them, the distance computed by the SQL operator in the
# select list.
#

# key_name - how a query key reads in a diagnostic
sub key_name
{
    my ($key) = @_;
    return $key =~ /^\d+$/ ? "q$key" : $key;
}

# sorted_keys - query keys in order: numerically when they are numbers
sub sorted_keys
{
    my %keys = map { $_ => 1 } @_;
    my @k = keys %keys;
    return (grep { !/^\d+$/ } @k) ? sort @k : sort { $a <=> $b } @k;
}

#
# check_results - index results against the exact ones.  Returns the
# tie-aware recall@k (k = rows of the exact answer; a returned row is a
# hit when it is no farther than the exact k-th) and a hash of the
# problems: a query (of either side) that did not return $want rows,
# returned a row twice, returned rows out of distance order, or (with
# $label: one label for every query, or a hash of them by key) returned a
# row of another label.  $exact may be undef: no recall, only the checks.
#
sub check_results
{
    my ($res, $exact, $want, $label) = @_;
    my ($hits, $total) = (0, 0);
    my %bad = (count => [], dup => [], order => [], label => []);

    for my $key (sorted_keys(keys %$res, $exact ? keys %$exact : ()))
    {
        my $name = key_name($key);
        my @got  = @{ $res->{$key} // [] };
        my $want_label = ref $label ? $label->{$key} : $label;
        push @{ $bad{count} }, "$name: " . scalar(@got) . " rows" if @got != $want;
        my %seen;
        for my $r (@got)
        {
            push @{ $bad{dup} }, "$name: id $r->[0] twice" if $seen{ $r->[0] }++;
            push @{ $bad{label} }, "$name: id $r->[0] has label $r->[1]"
              if defined $want_label && $r->[1] != $want_label;
        }
        for my $i (1 .. $#got)
        {
            push @{ $bad{order} },
              "$name: rank $i distance $got[$i][2] < rank " . ($i - 1) . " distance $got[$i-1][2]"
              if $got[$i][2] < $got[ $i - 1 ][2];
        }
        next unless defined $exact;
        my @ex = @{ $exact->{$key} // [] };
        next unless @ex;
        my $kth = $ex[-1][2];
        $hits += grep { $_->[2] <= $kth } @got[ 0 .. ($#got < $#ex ? $#got : $#ex) ];
        $total += @ex;
    }
    return ($total ? $hits / $total : 0, \%bad);
}

#
# report_bad - one test per kind of problem check_results found, with the
# first few instances; the label test only when $filtered.
#
sub report_bad
{
    my ($what, $bad, $want, $filtered) = @_;
    for my $kind (qw(count dup order), $filtered ? ('label') : ())
    {
        my @b   = @{ $bad->{$kind} };
        my $msg = {
            count => "every query returns $want rows",
            dup   => 'no row is returned twice',
            order => 'distances are non-decreasing (exact order)',
            label => 'every row has the label of the filter'
        }->{$kind};
        ok(!@b, "$what: $msg")
          or diag(scalar(@b) . " problems, first ones:\n  "
              . join("\n  ", @b[ 0 .. ($#b < 9 ? $#b : 9) ]));
    }
    return;
}

#
# same_distances - do the index results carry the exact scan's distances,
# rank by rank?  (Ties may come in any id order.)
#
sub same_distances
{
    my ($what, $res, $exact) = @_;
    my @diff;

    for my $key (sorted_keys(keys %$exact))
    {
        my @g = map { $_->[2] } @{ $res->{$key} // [] };
        my @e = map { $_->[2] } @{ $exact->{$key} };
        next if join(',', @g) eq join(',', @e);
        my $i = 0;
        $i++ while $i < @g && $i < @e && $g[$i] eq $e[$i];
        push @diff, sprintf('%s: %d rows (exact %d), first difference at rank %d: '
              . 'index %s, exact %s', key_name($key), scalar(@g), scalar(@e), $i,
            $g[$i] // '(none)', $e[$i] // '(none)');
    }
    ok(!@diff, "$what: distances equal the exact scan's rank by rank")
      or diag(scalar(@diff) . " of " . scalar(keys %$exact) . " queries differ:\n  "
          . join("\n  ", @diff[ 0 .. ($#diff < 9 ? $#diff : 9) ]));
    return;
}

#
# index_info - columns @cols of the vecstore_index_info row of an index on
# $node, as a hash ('' for NULL).
#
sub index_info
{
    my ($node, $index, @cols) = @_;
    my $row = $node->safe_psql('postgres',
        'SELECT ' . join(', ', map { "coalesce(${_}::text, '')" } @cols)
          . " FROM vecstore_index_info('$index'::regclass)");
    my %info;
    @info{@cols} = split /\|/, $row, -1;
    return \%info;
}

#
# fork_digest - on node $n, the md5 of every page of fork $fork of index
# $index, each page's LSN and checksum (its first 10 bytes) zeroed, so
# that two builds that wrote the same bytes compare equal (pageinspect).
#
sub fork_digest
{
    my ($n, $index, $fork) = @_;
    return $n->safe_psql('postgres', qq{
        SELECT md5(string_agg('\\x00000000000000000000'::bytea
                              || substr(get_raw_page('$index', '$fork', b::int), 11),
                              ''::bytea ORDER BY b))
        FROM generate_series(0, pg_relation_size('$index', '$fork') / 8192 - 1) b});
}

#
# segment_digest - on node $n, the md5 of the body of vecstore index
# $index's segment file (its 4 kB header, which names the relation, left
# out).
#
sub segment_digest
{
    my ($n, $index) = @_;
    my ($path, $bytes) = split /\|/, $n->safe_psql('postgres',
        "SELECT segment_file, segment_bytes FROM vecstore_index_info('$index')");
    return $n->safe_psql('postgres',
        "SELECT md5(pg_read_binary_file('$path', 4096, $bytes - 4096))");
}

#
# clustered_vec_of_sql - the SQL that creates vec_of(id int, seed int), a
# 64-dimensional vector: one of 40 centres (by id % 40) plus per-id noise,
# all from hashes, so vectors are distinct and exact ties improbable; the
# same ids with another seed give another data set of the same shape.
#
sub clustered_vec_of_sql
{
    return q{
CREATE FUNCTION vec_of(id int, seed int) RETURNS vector(64)
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT ARRAY(SELECT (hashint4((id % 40) * 1000 + j + seed * 7919) % 1000) / 100.0
                      + (hashint4(id * 64 + j + seed * 104729) % 1000) / 400.0
                 FROM generate_series(0, 63) AS j)::real[]::vector(64)
$$;
};
}

#
# knn_sql - $nqueries kNN queries on items(id, v) after $settings, the
# q-th query at vec_of($first + q * 37, 0) with LIMIT $limit; each prints
# one line "q|id id ..." (ids in the order returned).
#
sub knn_sql
{
    my ($settings, $nqueries, $first, $limit) = @_;
    my $sql = "$settings\n";
    for my $q (1 .. $nqueries)
    {
        my $qv = "vec_of(" . ($first + $q * 37) . ", 0)";
        $sql .= "SELECT $q, string_agg(id::text, ' ' ORDER BY rn) FROM "
          . "(SELECT id, row_number() OVER () AS rn FROM "
          . "(SELECT id FROM items ORDER BY v <-> $qv LIMIT $limit) s) s;\n";
    }
    return $sql;
}

#
# blob_sql - the SQL that creates blob(g int, seed int), an 8-dimensional
# vector in a blob of side 1 around (10 g, ..., 10 g): groups of rows that
# compactions merge and split (023_merge.pl, 028_slot_reuse.pl keep them
# in a table m (id int, g int, v vector(8)) with an index m_idx).
#
sub blob_sql
{
    return q{
CREATE FUNCTION blob(g int, seed int) RETURNS vector LANGUAGE sql AS
  $$ SELECT array_agg(10 * g + ((seed * 7919 + d * 104729) % 100003) / 100003.0)::vector
     FROM generate_series(1, 8) d $$;
};
}

#
# blob_nearest - the ids of the $k rows of m nearest to the point
# (x, ..., x), after $settings, in distance order (ties by id).
#
sub blob_nearest
{
    my ($n, $settings, $x, $k) = @_;
    my $c = '[' . join(',', ($x) x 8) . ']';
    return $n->safe_psql('postgres',
        "$settings SELECT string_agg(id::text, ',' ORDER BY d, id) FROM "
          . "(SELECT id, v <-> '$c' AS d FROM m ORDER BY v <-> '$c' LIMIT $k) s");
}

#
# check_index_rows - on node $n: an exact scan of index $index, ordered by
# the distance of column v of $table (with an id column) to the vector
# literal $from, returns every live row once, and vecstore_verify is clean.
#
sub check_index_rows
{
    my ($n, $what, $table, $index, $from) = @_;
    my $live = $n->safe_psql('postgres', "SELECT count(*) FROM $table");
    is( $n->safe_psql('postgres',
            "$EXACT_SCAN SELECT count(*) || '/' || count(DISTINCT id) FROM "
              . "(SELECT id FROM $table ORDER BY v <-> '$from') s"),
        "$live/$live",
        "$what: an exact index scan returns the $live live rows once");
    is($n->safe_psql('postgres', "SELECT count(*) FROM vecstore_verify('$index')"),
        '0', "$what: vecstore_verify finds no problem");
    return;
}

#
# check_blob_index - on node $n: check_index_rows of m and m_idx, and the
# 30 rows nearest to each of the points (x, ..., x) are those of a
# sequential scan.
#
sub check_blob_index
{
    my ($n, $what, @points) = @_;
    check_index_rows($n, $what, 'm', 'm_idx', '[35,35,35,35,35,35,35,35]');
    for my $x (@points)
    {
        is(blob_nearest($n, $EXACT_SCAN, $x, 30), blob_nearest($n, $SEQ_SCAN, $x, 30),
            "$what: the 30 nearest to ($x, ...) as a sequential scan has them");
    }
    return;
}


#
# fvecs_literals - vectors first .. first+n-1 (0-based) of an fvecs file, as
# vector literals; its dimension and a reference to the list.  float4
# values are printed with 9 significant digits, which round-trips exactly.
#
sub fvecs_literals
{
    my ($file, $first, $n) = @_;
    my @lits;

    open my $fh, '<:raw', $file or die "could not open $file: $!";
    read($fh, my $head, 4) == 4 or die "$file: empty";
    my $dim = unpack('l<', $head);
    my $rec = 4 + 4 * $dim;
    seek($fh, $first * $rec, 0) or die "$file: seek: $!";
    for my $i (1 .. $n)
    {
        my $got = read($fh, my $buf, $rec);
        die "$file: short read at vector " . ($first + $i - 1)
          unless defined $got && $got == $rec;
        my ($d, @v) = unpack('l< f<*', $buf);
        die "$file: dimension $d, expected $dim" unless $d == $dim;
        push @lits, '[' . join(',', map { sprintf('%.9g', $_) } @v) . ']';
    }
    close $fh;
    return ($dim, \@lits);
}

#
# mixture_literals - n deterministic vectors of a 48-dimensional Gaussian
# mixture (40 centres, the same for every seed), the stand-in for a data
# set where ../shared/data is missing; its dimension and a reference to
# the list.
#
sub mixture_literals
{
    my ($seed, $n) = @_;
    my ($dim, $ncent) = (48, 40);

    srand(777);
    my @cent = map { [ map { rand(10) } 1 .. $dim ] } 1 .. $ncent;
    srand($seed);
    my @lits;
    for (1 .. $n)
    {
        my $c = $cent[ int(rand($ncent)) ];
        push @lits,
          '['
          . join(',',
            map { sprintf('%.6g', $_ + 2 * sqrt(-2 * log(1 - rand())) * cos(6.2831853 * rand())) }
              @$c)
          . ']';
    }
    return ($dim, \@lits);
}

#
# dataset_literals - the first $n base vectors and $nq queries of the shared
# data set $dataset ($VECSTORE_DATA/$dataset/{base,query}.fvecs), or where
# it is missing mixture_literals($seed, $n) and ($seed + 1, $nq); the
# dimension and references to the two lists.
#
sub dataset_literals
{
    my ($dataset, $n, $nq, $seed) = @_;
    my $root = $ENV{VECSTORE_DATA} // '';
    my $dir  = "$root/$dataset";
    my ($dim, $base, $queries);

    if ($root ne '' && -r "$dir/base.fvecs" && -r "$dir/query.fvecs")
    {
        note "data set $dataset";
        ($dim, $base) = fvecs_literals("$dir/base.fvecs", 0, $n);
        (undef, $queries) = fvecs_literals("$dir/query.fvecs", 0, $nq);
    }
    else
    {
        note "\$VECSTORE_DATA has no $dataset: generated data";
        ($dim, $base) = mixture_literals($seed, $n);
        (undef, $queries) = mixture_literals($seed + 1, $nq);
    }
    return ($dim, $base, $queries);
}

#
# copy_in - COPY rows (references to lists of column texts) into
# $table ($columns) on node $n.
#
sub copy_in
{
    my ($n, $table, $columns, $rows) = @_;
    my $data = join('', map { join("\t", @$_) . "\n" } @$rows);
    $n->safe_psql('postgres', "COPY $table ($columns) FROM STDIN;\n$data\\.\n");
    return;
}

1;
