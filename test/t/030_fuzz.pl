#-------------------------------------------------------------------------
#
# 030_fuzz.pl
#     TAP test, run by test/run.sh's "fuzz" stage (not its "tap" stage):
#     mutated input and damaged storage, each followed by checks against
#     a model or an exact scan.  No backend may crash, no query may return
#     a wrong row, and every error must be a clean one.
#
# Bounded by time, not by rounds: VECSTORE_FUZZ_SECONDS (default 60) is
# shared out among the categories (literals and copy a tenth each,
# segment and fork four tenths each); setting up the server and the data
# adds about ten seconds.  Each round draws from its own random sequence,
# seeded from VECSTORE_FUZZ_SEED (default: from the clock; printed), the
# category and the round number, so the same seed replays the same
# mutations in the same order, however far a run gets.  Other settings:
# VECSTORE_FUZZ_ONLY=literals|copy|segment|fork runs one category with
# the whole budget; VECSTORE_FUZZ_ROUNDS=N stops each category after N
# rounds (with a large VECSTORE_FUZZ_SECONDS, a replay of exactly the
# rounds up to a failure).
#
# Categories:
#
# literals  Text literals of vectors ('[1, 2e-3, ...]', whitespace,
#           exponents, huge and tiny numbers, NaN and infinity spelled
#           every way, hex floats, 16,000 and 16,001 dimensions), with and
#           without typmods (vector(3), vector(0), vector(3,4), ...), then
#           mutated (characters deleted, inserted, replaced, brackets
#           dropped, truncated, repeated); casts from int[], real[],
#           double precision[] and numeric[] literals (NULLs, 2-D, empty);
#           operators, functions and aggregates over the results.  Each
#           statement returns a value or fails with SQLSTATE class 22, 42
#           or 54.  A value must be well-formed: dimensions within 1..16000
#           (the typmod's, if any), every element finite, and its text form
#           must read back to the same bits.  Unmutated literals are
#           compared with a model: the same elements read as real[]
#           (float4in) and cast to vector must give the same bits, or both
#           must fail.
# copy      Files for COPY ct (id, v, w) FROM ... (FORMAT binary) (v vector,
#           w vector(3)): the PGCOPY header, tuples of 3 fields, each an
#           int32 length and the value (pgvector's binary form: int16
#           dimensions, int16 zero, float4s, network order); then mutated:
#           dimensions, the reserved int16, field lengths (-2, 0, short,
#           long, 1 GB), NaN and infinity bit patterns (and denormals, -0,
#           FLT_MAX, which are valid), field counts, header flags and
#           extension, a missing or early trailer, data after it, flipped,
#           inserted and deleted bytes, truncation.  A model of COPY's
#           binary parser and of vector_recv (copy_model) says whether
#           each file loads and what rows; the server must agree: the same
#           rows, bit for bit (vector_send), or an error of class 22, 08 or
#           54, with no rows.  Loaded rows must read back through their
#           text form.
# segment   t (4,400 rows of 16 dimensions, 3 clusters, 2 with an HNSW
#           graph; 400 rows deleted and vacuumed, so the deletion bitmap
#           has bits set, and 400 rows inserted after, which took the heap
#           slots of the deleted ones and live in the delta chains) and its
#           index; u, an index of the same shape over other data.  Each
#           round, a session maps the segment file and checks every cluster
#           (an exact query), then the file is damaged under the running
#           server: aimed at a query (one of its rows' vector changed, or
#           its TID replaced by another row's; some row given the query's
#           own vector), or at a cluster's codes or graph; or blind: bits
#           flipped (in the file header, the head, anywhere), bytes
#           overwritten, a page zeroed, truncated, extended (all in place),
#           replaced by u's segment, by zeros or by garbage, made
#           unreadable (chmod 000), deleted.  Then that session and a new
#           one each run kNN queries (the damage's query among them): exact
#           ones (vecstore.effort = 10, or vecstore.probes past the cluster
#           count), whose distances (computed from the heap rows) must
#           equal a sequential scan's rank by rank (ties may come in either
#           order), and approximate ones, which must return 10 distinct
#           rows in distance order; and vecstore_verify.  A query may also
#           fail, with SQLSTATE class XX (XX001 data corrupted, XX002 index
#           corrupted) or 58 (58P01 missing file, 58030 I/O error), and
#           nothing else: the fork is intact, so a segment file the server
#           cannot use must cost it a rebuild, not a wrong answer.  Then
#           the file is restored (in place when it was damaged in place;
#           not at all when the server rebuilt it).
# fork      With the server stopped, the index's main fork is damaged:
#           aimed at a query (the deletion bit of one of its rows set; the
#           bit of a deleted row whose heap slot a new row took cleared;
#           the directory entry of the cluster whose delta chain holds one
#           of its rows broken; one of its rows changed in the sealed
#           region, with the segment files removed so that they are rebuilt
#           from it); or blind: the metapage (bytes, or one field set to 0,
#           -1, off by one, past the end...), the centroids (NaN, infinity,
#           huge), the directory, the deletion bitmap (bits flipped, all
#           cleared, all set), the sealed region's head (the cluster table)
#           or body, a delta page's header or special space (the next
#           block of its chain), a page header or special space, a whole
#           page zeroed (and in a fifth of these rounds the segment files
#           removed too).  The server is started and runs the same queries
#           and vecstore_verify, under the same rules; the next round
#           restores the fork and the segment files from copies taken while
#           the server was stopped.  Data checksums are off (initdb's
#           default here), so the damage reaches the index's own checks.
#
# The layouts the aimed damage relies on (vsam.h: the metapage, blob
# pages, VsDirEntry, VsClusterInfo, the deletion bitmap; vssegment.c: the
# 4 kB file header) are read from the files and checked at the start: the
# rows the queries return must be found where the cluster table says,
# with their own TIDs.
#
# After every batch the server log is searched for a crash ("(PID n) was
# terminated by signal", PANIC, a reinitialization); a crash restart keeps
# the postmaster's start time, so the log is the only witness.  Every
# statement runs under statement_timeout = 5 s (they take milliseconds);
# one that runs into it, or a batch without an answer, is a hang.  Then one
# test per category and kind of failure (crash or lost connection, wrong
# result, unclean error, hang), with the first failures of each kind of
# mutation and how to replay them, and a summary of what was tried and how
# it ended, with the errors by SQLSTATE.
#
# IDENTIFICATION
#     test/t/030_fuzz.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use POSIX ();

use File::Path qw(make_path);
use List::Util qw(min max);
use Time::HiRes qw(time);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @CATEGORIES = qw(literals copy segment fork);
my %SHARE      = (literals => 0.1, copy => 0.1, segment => 0.4, fork => 0.4);

my $BUDGET = $ENV{VECSTORE_FUZZ_SECONDS} // 60;
die "VECSTORE_FUZZ_SECONDS must be a positive number, not \"$BUDGET\"\n"
  unless $BUDGET =~ /^\d+(\.\d+)?$/ && $BUDGET > 0;
my $SEED = $ENV{VECSTORE_FUZZ_SEED} // ((int(time() * 1000) ^ ($$ << 16)) % 1_000_000_007);
die "VECSTORE_FUZZ_SEED must be a non-negative integer, not \"$SEED\"\n"
  unless $SEED =~ /^\d+$/ && $SEED < 2**40;
my $MAX_ROUNDS = $ENV{VECSTORE_FUZZ_ROUNDS};
die "VECSTORE_FUZZ_ROUNDS must be a positive integer\n"
  if defined $MAX_ROUNDS && $MAX_ROUNDS !~ /^[1-9]\d*$/;
my @RUN = @CATEGORIES;
if (my $only = $ENV{VECSTORE_FUZZ_ONLY})
{
    die "VECSTORE_FUZZ_ONLY must be one of @CATEGORIES, not \"$only\"\n"
      unless grep { $_ eq $only } @CATEGORIES;
    @RUN = ($only);
}

diag("fuzz seed $SEED, $BUDGET s for " . join(', ', @RUN)
      . " (replay: VECSTORE_FUZZ_SEED=$SEED"
      . (@RUN == 1 ? " VECSTORE_FUZZ_ONLY=$RUN[0]" : '') . ")");

# Clean errors: SQLSTATE classes allowed for bad input and for damage.
my %INPUT_CLASSES  = map { $_ => 1 } qw(22 42 54);
my %COPY_CLASSES   = map { $_ => 1 } qw(22 08 54);
my %DAMAGE_CLASSES = map { $_ => 1 } qw(XX 58);

my $ROWS      = 4000;    # rows at the build; 400 deleted, 400 inserted after
my $DIMS      = 16;
my $LISTS     = 3;
my $QTIMEOUT  = 60;      # seconds a batch may take (its statements: 5 s each)
my $LOG_CRASH =
  qr/\(PID \d+\) (?:was terminated by|exited with exit code (?:[2-9]|\d\d))|PANIC:|terminating any other active server processes|server processes terminated; reinitializing/;

#
# Random numbers.  Every round reseeds from (seed, category, round), so a
# round's mutations do not depend on how many rounds ran before it.
#
sub start_round
{
    my ($cat, $round) = @_;
    my $catno = 1 + (grep { $CATEGORIES[$_] eq $cat } 0 .. $#CATEGORIES)[0];
    my $h = mix32(mix32(mix32(($SEED & 0xffffffff) ^ mix32($SEED >> 32)) ^ $catno) ^ $round);
    srand(1 + $h);
    return;
}

# mix32 - a 32-bit hash (murmur3's finalizer): nearby seeds must not give
# nearby sequences, as they do from drand48
sub mix32
{
    use integer;    # products wrap around, as in C
    my ($h) = @_;
    $h = (($h ^ ($h >> 16)) * 0x85ebca6b) & 0xffffffff;
    $h = (($h ^ ($h >> 13)) * 0xc2b2ae35) & 0xffffffff;
    return $h ^ ($h >> 16);
}

sub rint   { return int(rand($_[0])); }
sub pick   { return $_[ rint(scalar @_) ]; }
sub chance { return rand() < $_[0]; }

# weighted(name => weight, ...) - one name, drawn by weight
sub weighted
{
    my @pairs = @_;
    my $total = 0;
    $total += $pairs[ 2 * $_ + 1 ] for 0 .. $#pairs / 2;
    my $r = rand($total);
    for my $i (0 .. $#pairs / 2)
    {
        return $pairs[ 2 * $i ] if ($r -= $pairs[ 2 * $i + 1 ]) < 0;
    }
    return $pairs[-2];
}

#
# underflow_to_zero - an element literal that strtof would round to zero
# although it is not zero ("1e-46"), as the zero it reads as; any other
# literal as it is.
#
sub underflow_to_zero
{
    my ($lit) = @_;
    (my $trimmed = $lit) =~ s/^[ \t\n\r\x0b\x0c]+|[ \t\n\r\x0b\x0c]+$//g;
    my ($v, $unparsed) = POSIX::strtod($trimmed);
    return $lit if $unparsed || $v != $v || $v == 0 || abs($v) >= 7.0064923216e-46;
    return $v < 0 ? '-0' : '0';
}

sub sqlq { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

# short - a statement or value as it reads in a diagnostic
sub short
{
    my ($s, $max) = @_;
    $max //= 240;
    $s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
    return length($s) > $max ? substr($s, 0, $max) . "... (" . length($s) . " chars)" : $s;
}

#
# Files.
#
sub read_bytes
{
    my ($path) = @_;
    open my $fh, '<:raw', $path or die "could not read $path: $!";
    local $/;
    my $b = <$fh>;
    close $fh;
    return $b // '';
}

sub write_bytes
{
    my ($path, $bytes) = @_;
    open my $fh, '>:raw', $path or die "could not write $path: $!";
    print $fh $bytes or die "could not write $path: $!";
    close $fh or die "could not close $path: $!";
    return;
}

# poke - write $bytes at $offset of $path in place (dd conv=notrunc)
sub poke
{
    my ($path, $offset, $bytes) = @_;
    open my $fh, '+<:raw', $path or die "could not open $path: $!";
    seek($fh, $offset, 0) or die "could not seek in $path: $!";
    print $fh $bytes or die "could not write $path: $!";
    close $fh or die "could not close $path: $!";
    return;
}

sub random_bytes { my ($n) = @_; return join('', map { chr(rint(256)) } 1 .. $n); }

#
# The server.
#
my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
autovacuum = off
shared_buffers = 64MB
statement_timeout = '300s'
restart_after_crash = on
log_statement = none
log_min_error_statement = fatal
});
$node->start;
my $COPYDIR = $node->basedir . '/fuzz_copy';
make_path($COPYDIR);

# vec_of(id, seed): one of 6 centres (by id % 6) plus per-id noise, all
# from hashes: deterministic, distinct, exact ties improbable.
$node->safe_psql(
    'postgres', qq{
CREATE EXTENSION vecstore;
CREATE FUNCTION vec_of(id int, seed int) RETURNS vector($DIMS)
LANGUAGE sql IMMUTABLE STRICT AS \$\$
    SELECT ARRAY(SELECT (hashint4((id % 6) * 1000 + j + seed * 7919) % 1000) / 100.0
                      + (hashint4(id * $DIMS + j + seed * 104729) % 1000) / 400.0
                 FROM generate_series(0, $DIMS - 1) AS j)::real[]::vector($DIMS)
\$\$;
CREATE TABLE t (id int PRIMARY KEY, v vector($DIMS));
INSERT INTO t SELECT g, vec_of(g, 0) FROM generate_series(1, $ROWS) AS g;
CREATE INDEX t_v_idx ON t USING vecstore (v vector_l2_ops)
    WITH (lists = $LISTS, compaction_threshold = 0);
CREATE TABLE u (id int PRIMARY KEY, v vector($DIMS));
INSERT INTO u SELECT g, vec_of(g, 1) FROM generate_series(1, $ROWS) AS g;
CREATE INDEX u_v_idx ON u USING vecstore (v vector_l2_ops) WITH (lists = $LISTS);
CREATE TABLE gone AS SELECT id, ctid AS old_ctid FROM t WHERE id % 10 = 0;
DELETE FROM t WHERE id % 10 = 0;
VACUUM t;
INSERT INTO t SELECT g, vec_of(g, 0) FROM generate_series($ROWS + 1, $ROWS + $ROWS / 10) AS g;
CREATE TABLE ct (f int DEFAULT current_setting('fuzz.file')::int, id int, v vector, w vector(3));
ANALYZE;
});

my $info = $node->safe_psql('postgres',
    "SELECT clusters, graph_clusters, delta_rows, dead_rows, segment_file "
      . "FROM vecstore_index_info('t_v_idx'::regclass)");
my ($nclusters, $ngraphs, $ndelta, $ndead, $SEG_REL) = split /\|/, $info;
note("t_v_idx: $nclusters clusters ($ngraphs with a graph), $ndelta delta rows, "
      . "$ndead dead rows, segment $SEG_REL");
is($nclusters, $LISTS, "the index has $LISTS clusters");
cmp_ok($ndead, '>', 0, 'the deletion bitmap has bits set');
cmp_ok($ndelta, '>', 0, 'the index has delta rows');
my $SEG       = $node->data_dir . "/$SEG_REL";
my $OTHER_SEG = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT segment_file FROM vecstore_index_info('u_v_idx'::regclass)");
my $FORK = $node->data_dir . '/' . $node->safe_psql('postgres', "SELECT pg_relation_filepath('t_v_idx')");
ok(-f $SEG && -f $OTHER_SEG && -f $FORK, 'the segment files and the fork exist');
note('data_checksums: ' . $node->safe_psql('postgres', 'SHOW data_checksums'));

# Query vectors: near the data; far from it; and the vectors of deleted
# rows whose heap slot a new row took, so a deleted row the index brought
# back would be fetched as another row.
my $reused = $node->safe_psql('postgres',
    'SELECT string_agg(g.id::text, \',\' ORDER BY g.id) FROM gone g JOIN t ON t.ctid = g.old_ctid');
my @reused = grep { $_ ne '' } split /,/, $reused;
note(scalar(@reused) . ' deleted rows have their heap slot reused');
my @QSRC = ((map { "vec_of(" . (50_000 + 37 * $_) . ", 0)" } 1 .. 16), (map { "vec_of($_, 3)" } 1 .. 4));
my $Q_REUSED = @QSRC;    # query $Q_REUSED + k is at the vector of $reused[k]
push @QSRC, map { "vec_of($_, 0)" } @reused[ 0 .. min(7, $#reused) ];
my @Q = split /\n/, $node->safe_psql('postgres', join(' UNION ALL ', map { "SELECT ($_)::text" } @QSRC));
die "query vectors: got " . scalar(@Q) . ", expected " . scalar(@QSRC) unless @Q == @QSRC;

# knn_sql - a statement printing "tag|id:distance id:distance ..." (the
# distance computed from the heap row) for query $qi
sub knn_sql
{
    my ($tag, $qi) = @_;
    my $q = sqlq($Q[$qi]);
    return "SELECT '$tag|' || coalesce(string_agg(id || ':' || d, ' ' ORDER BY rn), '') FROM "
      . "(SELECT id, d, row_number() OVER () AS rn FROM "
      . "(SELECT id, v <-> $q AS d FROM t ORDER BY v <-> $q LIMIT 10) s) s2;";
}

my $EXACT_SEQ = 'SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_seqscan = on;';
my @EXACT = map {
    my $r = $node->safe_psql('postgres', "$EXACT_SEQ " . knn_sql('E', $_));
    $r =~ s/^E\|//;
    [ map { [ split /:/ ] } split / /, $r ]
} 0 .. $#Q;
is(scalar(grep { @$_ == 10 } @EXACT), scalar(@Q), 'the exact scan returns 10 rows for every query');
like(
    $node->safe_psql('postgres',
        "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY v <-> "
          . sqlq($Q[0]) . " LIMIT 10"),
    qr/Index Scan using t_v_idx/,
    'the kNN queries use the index');

#
# Where rows are in the segment file, so that damage can be aimed at the
# rows the round's queries return (random damage seldom is): for every
# row of an exact answer and every deleted row whose heap slot was
# reused, its cluster, its position there, and its vector as stored
# (native float4s); checked against the TIDs the file holds.
#
my $PRISTINE_SEG = read_bytes($SEG);

# segment_clusters - the cluster table of a segment body at $base (the
# file's body starts after its 4 kB header; the fork's sealed region is
# the same bytes)
sub segment_clusters
{
    my ($bytes, $base) = @_;
    my ($n, $dims) = unpack('V V', substr($bytes, $base, 8));
    my @c;
    for my $i (0 .. $n - 1)
    {
        my $at = $base + 64 + 80 * $i;
        my %ci;
        @ci{qw(vec_offset tid_offset code_offset graph_offset graph_size first_row nbytes)} =
          unpack('Q< Q< Q< Q< Q< Q< Q<', substr($bytes, $at, 56));
        @ci{qw(count crc)} = unpack('V V', substr($bytes, $at + 56, 8));
        push @c, \%ci;
    }
    return ($dims, \@c);
}

my ($SEG_DIMS, $SEG_CLUSTERS) = segment_clusters($PRISTINE_SEG, 4096);
my %WANT_IDS = map { $_->[0] => 1 } map { @$_ } @EXACT;
$WANT_IDS{$_} = 1 for @reused;
my %ROW;    # id => { sealed, cluster, idx, le (vector bytes as stored), ... }
for my $line (split /\n/, $node->safe_psql('postgres',
    'SELECT id, ctid, encode(vector_send(v), \'hex\') FROM t WHERE id IN (' . join(',', sort { $a <=> $b } keys %WANT_IDS) . ') '
      . 'UNION ALL SELECT id, old_ctid, encode(vector_send(vec_of(id, 0)), \'hex\') FROM gone WHERE id IN ('
      . join(',', @reused, 0) . ')'))
{
    my ($id, $ctid, $hex) = split /\|/, $line;
    my $le = pack('f<*', unpack('x4 f>*', pack('H*', $hex)));
    $ROW{$id} = { le => $le, ctid => $ctid, deleted => $id % 10 == 0 && $id <= $ROWS };
}
my ($located, $tids_ok, $sealed) = (0, 0, 0);
for my $id (sort { $a <=> $b } keys %ROW)
{
    my $r = $ROW{$id};
    next if $id > $ROWS;    # a delta row: in the fork's delta pages only
    $sealed++;
    my $pos = index($PRISTINE_SEG, $r->{le});
    for my $c (0 .. $#$SEG_CLUSTERS)
    {
        my $ci    = $SEG_CLUSTERS->[$c];
        my $start = 4096 + $ci->{vec_offset};
        next unless $pos >= $start && $pos < $start + $ci->{count} * $SEG_DIMS * 4;
        next if ($pos - $start) % ($SEG_DIMS * 4);
        @$r{qw(sealed cluster idx)} = (1, $c, ($pos - $start) / ($SEG_DIMS * 4));
        $r->{vec_at} = $ci->{vec_offset} + $r->{idx} * $SEG_DIMS * 4;    # in the body
        $r->{tid_at} = $ci->{tid_offset} + $r->{idx} * 6;
        $r->{bit}    = $ci->{first_row} + $r->{idx};
        $located++;
        my ($hi, $lo, $off) = unpack('v v v', substr($PRISTINE_SEG, 4096 + $r->{tid_at}, 6));
        $tids_ok++ if $r->{ctid} eq '(' . ($hi * 65536 + $lo) . ",$off)";
    }
}
is($located, $sealed, "the segment holds every sealed row the queries return ($sealed)");
is($tids_ok, $located, 'with the TIDs of their heap rows');

# sealed_ids_of - the sealed rows of query $qi's exact answer
sub sealed_ids_of
{
    my ($qi) = @_;
    return grep { $ROW{$_} && $ROW{$_}{sealed} } map { $_->[0] } @{ $EXACT[$qi] };
}

#
# Running statements.  A batch is a list of units [tag, sql], run in one
# psql script with "\warn @@tag" before each unit, so that an error on
# stderr can be matched to its unit.  psql goes on after errors.
#

my $log_offset = -s $node->logfile;

# log_crashes - crash lines the server log gained since the last call
sub log_crashes
{
    open my $fh, '<', $node->logfile or die "could not read the server log: $!";
    seek($fh, $log_offset, 0);
    local $/;
    my $text = <$fh> // '';
    $log_offset = tell($fh);
    close $fh;
    return grep { /$LOG_CRASH/ } split /\n/, $text;
}

# wait_ready - wait for the server to accept connections again (after a
# crash, while it reinitializes: psql may fail to connect, even before it
# reads its input)
sub wait_ready
{
    my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
    while (time() < $deadline)
    {
        my ($out, $err) = ('', '');
        my $rc = eval { $node->psql('postgres', 'SELECT 1', stdout => \$out, stderr => \$err) };
        return if defined $rc && $rc == 0 && $out eq '1';
        select(undef, undef, undef, 0.2);
    }
    die 'the server did not come back after a crash';
}

#
# run_units - run a batch in a new session, or in the session $bg kept
# across a round.  Returns { tag => { out => line after "tag|", or state
# and msg of its error } } (state LOST or TIMEOUT for the units that never
# ran) and whether the connection was lost or timed out.
#
sub run_units
{
    my ($units, $bg) = @_;
    my $script = "\\set VERBOSITY verbose\nSET statement_timeout = '5s';\n"
      . join('', map { "\\warn \@\@$_->[0]\n$_->[1]\n" } @$units)
      . "\\warn \@\@END\n";
    my ($out, $err, $lost, $timed_out) = ('', '', 0, 0);

    if ($bg)
    {
        my $ok = eval { $out = $$bg->query($script); 1 };
        $err = $$bg->{stderr} // '';
        $$bg->{stderr} = '';
        $timed_out = 1 if !$ok && $@ =~ /timed out/;
        $lost = 1 unless $ok;
    }
    else
    {
        $node->psql(
            'postgres', $script,
            stdout        => \$out,
            stderr        => \$err,
            on_error_stop => 0,
            timeout       => $QTIMEOUT,
            timed_out     => \$timed_out);
    }
    $lost = 1 if $timed_out;

    my %res;
    for my $line (split /\n/, $out // '')
    {
        $res{$1}{out} = $2 if $line =~ /^(\w+)\|(.*)$/s;
    }
    my $tag = '';
    for my $line (split /\n/, $err)
    {
        if ($line =~ /^\@\@(\w+)$/)
        {
            $tag = $1;
        }
        elsif ($line =~ /^(?:psql:.*?:\d+: )?(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}): (.*)$/)
        {
            $res{$tag}{state} //= $1;
            $res{$tag}{msg}   //= $2;
        }
        elsif ($line =~ /server closed the connection unexpectedly|connection to server was lost|no connection to the server/)
        {
            $lost = 1;
        }
    }
    $res{ $_->[0] }{state} //= $timed_out ? 'TIMEOUT' : 'LOST' for grep { !defined $res{ $_->[0] }{out} } @$units;
    unstick() if $timed_out;
    return (\%res, $lost, $timed_out);
}

# unstick - after a batch timed out, end the backends that may still run
# it; restart the server if they do not go (a loop that never checks for
# interrupts)
sub unstick
{
    my $others = "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    $node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) $others");
    for (1 .. 50)
    {
        return if $node->safe_psql('postgres', "SELECT count(*) $others") eq '0';
        select(undef, undef, undef, 0.2);
    }
    $node->stop('immediate');
    $node->start;
    return;
}

#
# Outcomes.  Per category: counters by kind of input or mutation, and the
# failures, each with the round, the mutation and what went wrong.
#
my %stats;       # {cat}{kind}{tried|value|error|fail}
my %failures;    # {cat}{crash|wrong|unclean|hang}{kind} => [ text ]

my $KIND = '';    # the input's or mutation's kind, while it is judged

sub record_failure
{
    my ($cat, $type, $round, $what) = @_;
    push @{ $failures{$cat}{$type}{$KIND} }, "round $round: $what";
    return;
}

# check_crash - a crash since the last check fails the round; after a
# lost connection, wait for the server first, so that the postmaster has
# logged the crash (if it was one) before the log is read
sub check_crash
{
    my ($cat, $round, $what, $lost) = @_;
    wait_ready() if $lost;
    my @crash = log_crashes();
    return 0 unless @crash;
    record_failure($cat, 'crash', $round, "$what: " . join(' / ', @crash));
    wait_ready();
    log_crashes();
    return 1;
}

my %states;    # {cat}{SQLSTATE} => { n => errors seen, msg => the first one's }

# judge_error - an error of an allowed class is clean
sub judge_error
{
    my ($cat, $round, $what, $r, $classes) = @_;
    $states{$cat}{ $r->{state} }{n}++;
    $states{$cat}{ $r->{state} }{msg} //= $r->{msg};
    if ($r->{state} eq 'LOST')
    {
        record_failure($cat, 'crash', $round, "$what: the connection was lost");
        return 0;
    }
    if ($r->{state} eq '57014' || $r->{state} eq 'TIMEOUT')
    {
        record_failure($cat, 'hang', $round, "$what: " . ($r->{state} eq 'TIMEOUT' ? "no answer in $QTIMEOUT s" : 'statement timeout'));
        return 0;
    }
    return 1 if $classes->{ substr($r->{state}, 0, 2) };
    record_failure($cat, 'unclean', $round, "$what: ERROR $r->{state}: " . short($r->{msg}));
    return 0;
}

# more_rounds - go on while the category's time lasts (at least 1 round)
sub more_rounds
{
    my ($round, $deadline) = @_;
    return 0 if defined $MAX_ROUNDS && $round >= $MAX_ROUNDS;
    return $round == 0 || time() < $deadline;
}

#
# vector_hex_ok - is this vector_send output well-formed: dimensions in
# 1..16000 (= $typmod when given), reserved field zero, finite elements?
# Returns '' when it is, else what is wrong.
#
sub vector_hex_ok
{
    my ($hex, $typmod) = @_;
    return 'not hex' unless $hex =~ /^(?:[0-9a-f]{2})+$/;
    my $b = pack('H*', $hex);
    return 'short' if length($b) < 4;
    my ($dim, $unused) = unpack('n n', $b);
    return "dimensions $dim" if $dim < 1 || $dim > 16000;
    return "dimensions $dim, typmod $typmod" if defined $typmod && $dim != $typmod;
    return "reserved field $unused" if $unused != 0;
    return 'length ' . length($b) . " for $dim dimensions" if length($b) != 4 + 4 * $dim;
    for my $i (0 .. $dim - 1)
    {
        my $bits = unpack('N', substr($b, 4 + 4 * $i, 4));
        return sprintf('element %d is not finite (0x%08x)', $i + 1, $bits)
          if ($bits & 0x7f800000) == 0x7f800000;
    }
    return '';
}

###########################################################################
# literals
###########################################################################

my @SPECIAL = (
    'NaN', 'nan', 'NAN', '-nan', '+NaN', 'nan(123)', 'Infinity', '-Infinity',
    '+Infinity', 'inf', '-inf', '+inf', 'INF', 'iNfInItY', 'Inf1', 'infinit',
    '1e39', '-1e39', '3.4028235e38', '3.4028236e38', '3.5e38', '1e308', '1e309',
    '1e-45', '1.4e-45', '7e-46', '1e-46', '1e-50', '1.17549435e-38', '-0', '+0',
    '0.0', '.5', '5.', '.', '-', '+', 'e5', '1e', '1e+', '--1', '+-1', '1.2.3',
    '0x1p3', '0x1.8p1', '0X10', '0x', '1_000', '00001', '16777217', '123456789012',
    '1' . ('0' x 45), '0.' . ('0' x 50) . '1', 'true', 'null', '', ' ', '1 2',
    "\t8\n", "\x0b9", "\f2", '1f', '2d', '0b1', '1e-0', '1E+00');
my @WS = ('', '', '', '', ' ', '  ', "\t", "\n", "\r", "\f", "\x0b");

sub ws { return pick(@WS); }

# number - a random number in one of the ways one can be written
sub number
{
    my $r = rand();
    return (rint(2) ? '-' : '') . rint(1000) if $r < 0.35;
    return sprintf('%.*g', 1 + rint(9), (rand() - 0.5) * 10**(rint(12) - 6)) if $r < 0.65;
    if ($r < 0.9)
    {
        my $e = rint(92) - 46;
        return (rint(3) ? '' : '-')
          . sprintf('%.*f', rint(7), rand() * 10)
          . pick('e', 'E')
          . ($e >= 0 && rint(2) ? '+' : '')
          . $e;
    }
    return pick(@SPECIAL);
}

# typmod - none, the literal's dimensions, others, or invalid ones
sub typmod
{
    my ($dim) = @_;
    my $k = weighted(none => 55, dim => 25, other => 12, invalid => 8);
    return ('', undef) if $k eq 'none';
    return ("($dim)", $dim) if $k eq 'dim' && $dim >= 1;
    if ($k eq 'other' || $k eq 'dim')
    {
        my $n = pick($dim + 1, max(1, $dim - 1), 3, 1);
        return ("($n)", $n);
    }
    return (pick('(0)', '(-1)', '(16001)', '(3,4)', '(a)', "('x')", '(2147483647)'), undef);
}

# structured - a literal from elements: (literal, [elements], dimensions)
sub structured
{
    my $k = weighted(small => 88, sixteen => 6, limit => 3, empty => 3);
    my $dim = $k eq 'small' ? 1 + rint(6) : $k eq 'sixteen' ? 16 : $k eq 'limit' ? pick(16000, 16001) : 0;
    my @el =
        $dim >= 16000 ? (pick('0', '1.5', '-2')) x $dim
      : map { ws() . number() . ws() } 1 .. $dim;
    my $sep = sub { return ws() . ',' . ws() };
    my $lit = ws() . '[' . ($dim ? $el[0] : ws());
    $lit .= $sep->() . $el[$_] for 1 .. $#el;
    $lit .= ']' . ws();
    return ($lit, \@el, $dim);
}

my @CHARS = ('[', ']', ',', ' ', '-', '+', '.', 'e', 'E', '0', '9', 'n', 'a', 'i', 'f', 'x',
    "'", '"', '\\', '{', '}', '(', ')', "\t", "\n", ';', ':');

# mutate_text - 1 to 3 random edits of a string (never a NUL byte)
sub mutate_text
{
    my ($s) = @_;
    for (1 .. 1 + rint(3))
    {
        my $len = length $s;
        my $pos = rint($len + 1);
        my $op  = weighted(
            del => 3, ins => 4, rep => 3, dup => 2, trunc => 1, unbracket => 2,
            swap => 1, repeat => 1, byte => 1);
        if    ($op eq 'del' && $len)  { substr($s, min($pos, $len - 1), 1, ''); }
        elsif ($op eq 'ins')          { substr($s, $pos, 0, pick(@CHARS)); }
        elsif ($op eq 'rep' && $len)  { substr($s, min($pos, $len - 1), 1, pick(@CHARS)); }
        elsif ($op eq 'dup' && $len)  { my $a = rint($len); substr($s, $a, 0, substr($s, $a, 1 + rint(8))); }
        elsif ($op eq 'trunc')        { $s = substr($s, 0, $pos); }
        elsif ($op eq 'unbracket')    { $s =~ s/\[// if rint(2); $s =~ s/\]([^\]]*)$/$1/ if rint(2); }
        elsif ($op eq 'swap' && $len > 1) { my $a = rint($len - 1); substr($s, $a, 2, reverse substr($s, $a, 2)); }
        elsif ($op eq 'repeat')       { $s = $s x 2 if $len < 2000; }
        elsif ($op eq 'byte')         { substr($s, $pos, 0, chr(1 + rint(255))); }
    }
    return $s;
}

# array_literal - an array literal for a cast to vector: (text, type)
sub array_literal
{
    my $type = pick('int', 'real', 'double precision', 'numeric');
    my $dim  = weighted(1 => 1, small => 8, zero => 1) eq 'small' ? 1 + rint(6) : rint(2);
    my @el   = map {
        my $k = weighted(num => 6, int => 3, special => 1, null => 1, big => 1);
            $k eq 'num'     ? number()
          : $k eq 'int'     ? (rint(2) ? '-' : '') . rint(100000)
          : $k eq 'special' ? pick('NaN', 'Infinity', '-Infinity', 'inf')
          : $k eq 'null'    ? 'NULL'
          :                   pick('2147483648', '1e300', '-1e300', '3.5e38', '1e-300', '99999999999999999999')
    } 1 .. $dim;
    my $lit = '{' . join(',', @el) . '}';
    $lit = '{' . join(',', map { "{$_,$_}" } @el) . '}' if chance(0.05);    # 2-D
    $lit = mutate_text($lit) if chance(0.2);
    return ($lit, $type);
}

#
# fuzz_literals - rounds of 40 statements in one session each.
#
sub fuzz_literals
{
    my ($deadline) = @_;
    my $st = $stats{literals} //= {};
    my $round = 0;
    while (more_rounds($round, $deadline))
    {
        start_round('literals', $round);
        my (@units, %check);
        for my $i (1 .. 40)
        {
            my $kind = weighted(structured => 35, mutated => 35, array => 15, ops => 10, aggregate => 5);
            my $t = "L${round}_$i";
            my ($lit, $el, $dim) = structured();
            my ($tm, $tmn) = typmod($dim);
            if ($kind eq 'mutated')
            {
                $lit = mutate_text($lit);
            }
            if ($kind eq 'structured' || $kind eq 'mutated')
            {
                push @units,
                  [ $t,
                        "SELECT '$t|' || encode(vector_send(x), 'hex') || '|' || "
                      . "(vector_send((x::text)::vector) = vector_send(x))::text "
                      . "FROM (SELECT " . sqlq($lit) . "::vector$tm AS x) s;" ];
                $check{$t} = { kind => $kind, typmod => $tmn, sql => $units[-1][1] };
                if ($kind eq 'structured')
                {
                    # the model: the same elements through float4in,
                    # except that an element that underflows to zero
                    # reads as zero (pgvector's rule; float4in refuses it)
                    my $arr = $dim ? 'ARRAY[' . join(',', map { sqlq(underflow_to_zero($_)) } @$el) . ']' : "'{}'";
                    push @units,
                      [ "A$t", "SELECT 'A$t|' || encode(vector_send($arr\::real[]::vector$tm), 'hex');" ];
                    $check{$t}{model} = "A$t";
                }
            }
            elsif ($kind eq 'array')
            {
                my ($alit, $type) = array_literal();
                ($tm, $tmn) = typmod(3) if chance(0.3);
                push @units,
                  [ $t, "SELECT '$t|' || encode(vector_send(" . sqlq($alit) . "::$type\[]::vector$tm), 'hex');" ];
                $check{$t} = { kind => $kind, typmod => $tmn, sql => $units[-1][1] };
            }
            elsif ($kind eq 'ops')
            {
                $lit = mutate_text($lit) if chance(0.3);
                my ($a, $b) = (rint(8) - 2, rint(8) - 2);
                my $x = sqlq($lit) . '::vector';
                push @units,
                  [ $t,
                        "SELECT '$t|' || concat_ws(' ', encode(vector_send(x + x), 'hex'), "
                      . "encode(vector_send(x - x), 'hex'), encode(vector_send(x * x), 'hex'), "
                      . "encode(vector_send(l2_normalize(x)), 'hex'), "
                      . "encode(vector_send(subvector(x, $a, $b)), 'hex'), "
                      . "encode(vector_send(x || x), 'hex')) || '|' || "
                      . "concat_ws(',', x <-> x, x <#> x, x <=> x, x <+> x, vector_norm(x), "
                      . "vector_dims(x), x::real[]) FROM (SELECT $x AS x) s;" ];
                $check{$t} = { kind => $kind, sql => $units[-1][1] };
            }
            else
            {
                my ($lit2) = structured();
                $lit2 = $lit if chance(0.5);
                push @units,
                  [ $t,
                        "SELECT '$t|' || concat_ws(' ', encode(vector_send(avg(x)), 'hex'), "
                      . "encode(vector_send(sum(x)), 'hex')) || '|' FROM (VALUES ("
                      . sqlq($lit) . "::vector), (" . sqlq($lit2) . "::vector)) v(x);" ];
                $check{$t} = { kind => $kind, sql => $units[-1][1] };
            }
        }

        my ($res, $lost) = run_units(\@units);
        for my $t (sort keys %check)
        {
            my $c = $check{$t};
            my $r = $res->{$t};
            my $s = $st->{ $c->{kind} } //= {};
            $KIND = $c->{kind};
            $s->{tried}++;
            my $what = "$c->{kind}: " . short($c->{sql});
            my @bad;
            if (defined $r->{out})
            {
                $s->{value}++;
                my ($hexes, $rt) = split /\|/, $r->{out}, 2;
                for my $hex (split / /, $hexes)
                {
                    my $why = vector_hex_ok($hex, $c->{kind} =~ /^(structured|mutated|array)$/ ? $c->{typmod} : undef);
                    push @bad, "the value is malformed ($why)" if $why;
                }
                push @bad, 'its text form reads back as another vector'
                  if $c->{kind} =~ /^(structured|mutated)$/ && $rt ne 'true';
            }
            else
            {
                $s->{error}++;
                $s->{fail}++ unless judge_error('literals', $round, $what, $r, \%INPUT_CLASSES);
            }
            if ($c->{model})
            {
                my $m = $res->{ $c->{model} };
                judge_error('literals', $round, "model of $what", $m, \%INPUT_CLASSES) unless defined $m->{out};
                my $got  = defined $r->{out} ? (split /\|/, $r->{out})[0] : "ERROR $r->{state}";
                my $want = defined $m->{out} ? $m->{out}                   : "ERROR $m->{state}";
                push @bad, 'vector_in gives ' . short($got) . ', the elements through float4in ' . short($want)
                  if (defined $r->{out} || defined $m->{out}) && $got ne $want;
            }
            next unless @bad;
            $s->{fail}++;
            record_failure('literals', 'wrong', $round, "$what: " . join('; ', @bad));
        }
        $KIND = 'batch';
        check_crash('literals', $round, 'literal batch', $lost);
        $round++;
    }
    return $round;
}

###########################################################################
# copy
###########################################################################

my $SIGNATURE = "PGCOPY\n\377\r\n\0";
my @FLOAT_BITS = (
    0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xffffffff,    # NaNs
    0x7f800000, 0xff800000,                                        # infinities
    0x00000001, 0x80000001, 0x007fffff, 0x80000000, 0x7f7fffff, 0xff7fffff);  # valid

# copy_file - a valid file: (bytes, [field descriptors])
sub copy_file
{
    my $bytes = $SIGNATURE . pack('N N', 0, 0);
    my @fields;
    for my $n (1 .. 1 + rint(6))
    {
        push @fields, { kind => 'count', at => length $bytes };
        $bytes .= pack('n', 3);
        for my $col (0 .. 2)
        {
            if (chance(0.08))
            {
                $bytes .= pack('N', 0xffffffff);
                next;
            }
            my $data;
            if ($col == 0)
            {
                $data = pack('N', rint(2**31));
            }
            else
            {
                my $dim = $col == 2 ? 3 : weighted(small => 20, one => 2, big => 1) eq 'small' ? 2 + rint(8) : chance(0.5) ? 1 : 2000;
                $data = pack('n n', $dim, 0) . join('', map { pack('f>', (rand() - 0.5) * 10**(rint(10) - 4)) } 1 .. $dim);
            }
            push @fields, { kind => ($col ? 'vector' : 'int'), at => length $bytes, len => length $data };
            $bytes .= pack('N', length $data) . $data;
        }
    }
    push @fields, { kind => 'trailer', at => length $bytes };
    $bytes .= pack('n', 0xffff);
    return ($bytes, \@fields);
}

# mutate_copy - 1 to 3 mutations of a file; returns their descriptions
sub mutate_copy
{
    my ($bref, $fields) = @_;
    my @vectors = grep { $_->{kind} eq 'vector' } @$fields;
    my @sized   = grep { $_->{kind} ne 'count' && $_->{kind} ne 'trailer' } @$fields;
    my @counts  = grep { $_->{kind} eq 'count' } @$fields;
    my @did;
    # first the ones that use the offsets, then those that move bytes,
    # truncation last
    my $moves = sub { return $_[0] eq 'truncate' ? 2 : $_[0] =~ /^(header|insert|delete|append)$/ ? 1 : 0 };
    my @ops = sort { $moves->($a) <=> $moves->($b) }
      map {
        weighted(
            dim => 5, reserved => 2, length => 5, float => 6, count => 2, header => 2,
            trailer => 2, flip => 4, truncate => 3, insert => 1, delete => 1, append => 1)
      } 1 .. 1 + rint(3);
    for my $op (@ops)
    {
        if ($op eq 'dim' && @vectors)
        {
            my $f   = pick(@vectors);
            my $cur = unpack('n', substr($$bref, $f->{at} + 4, 2));
            my $v   = pick(0, 1, $cur - 1, $cur + 1, 3, 16000, 16001, 32767, 32768, 65535, rint(65536)) & 0xffff;
            substr($$bref, $f->{at} + 4, 2, pack('n', $v));
            push @did, "dim $cur->$v at $f->{at}";
        }
        elsif ($op eq 'reserved' && @vectors)
        {
            my $f = pick(@vectors);
            my $v = pick(1, 0x8000, 0xffff, 1 + rint(65535));
            substr($$bref, $f->{at} + 6, 2, pack('n', $v));
            push @did, "reserved $v at $f->{at}";
        }
        elsif ($op eq 'length' && @sized)
        {
            my $f = pick(@sized);
            my $l = $f->{len};
            my $v = pick(-2, -1, 0, 1, 2, 3, $l - 1, $l + 1, $l - 4, $l + 4, 0x7fffffff, 0x40000000, 0x3fffffff, 65536);
            substr($$bref, $f->{at}, 4, pack('N', $v & 0xffffffff));
            push @did, "length $l->$v at $f->{at}";
        }
        elsif ($op eq 'float' && @vectors)
        {
            my $f   = pick(@vectors);
            my $dim = ($f->{len} - 4) / 4;
            my $at  = $f->{at} + 8 + 4 * rint($dim);
            my $b   = pick(@FLOAT_BITS);
            substr($$bref, $at, 4, pack('N', $b));
            push @did, sprintf('float 0x%08x at %d', $b, $at);
        }
        elsif ($op eq 'count' && @counts)
        {
            my $f = pick(@counts);
            my $v = pick(0, 1, 2, 4, 0xffff, 0x7fff, 0x8000);
            substr($$bref, $f->{at}, 2, pack('n', $v));
            push @did, "field count $v at $f->{at}";
        }
        elsif ($op eq 'header')
        {
            my $h = weighted(sig => 1, oids => 1, critical => 1, low => 1, ext => 2, negext => 1);
            if    ($h eq 'sig')      { substr($$bref, rint(11), 1, chr(rint(256))); }
            elsif ($h eq 'oids')     { substr($$bref, 11, 4, pack('N', 1 << 16)); }
            elsif ($h eq 'critical') { substr($$bref, 11, 4, pack('N', 1 << (17 + rint(15)))); }
            elsif ($h eq 'low')      { substr($$bref, 11, 4, pack('N', 1 + rint(0xffff))); }
            elsif ($h eq 'ext')
            {
                my $n = rint(20);
                substr($$bref, 15, 4, pack('N', $n + rint(3)));
                substr($$bref, 19, 0, random_bytes($n));
            }
            else { substr($$bref, 15, 4, pack('N', 0x80000000 | rint(2**31))); }
            push @did, "header $h";
        }
        elsif ($op eq 'trailer')
        {
            my $h = weighted(drop => 1, junk => 1, early => 1);
            if ($h eq 'drop') { substr($$bref, -2, 2, '') if substr($$bref, -2) eq "\xff\xff"; }
            elsif ($h eq 'junk') { $$bref .= random_bytes(1 + rint(4)); }
            else { substr($$bref, pick(@counts)->{at}, 2, "\xff\xff") if @counts; }
            push @did, "trailer $h";
        }
        elsif ($op eq 'flip')
        {
            my @at = map { rint(length $$bref) } 1 .. 1 + rint(4);
            substr($$bref, $_, 1, chr(ord(substr($$bref, $_, 1)) ^ (1 << rint(8)))) for @at;
            push @did, 'flip at ' . join(',', @at);
        }
        elsif ($op eq 'truncate')
        {
            my $n = rint(length $$bref);
            $$bref = substr($$bref, 0, $n);
            push @did, "truncate to $n";
        }
        elsif ($op eq 'insert')
        {
            my $at = rint(length($$bref) + 1);
            substr($$bref, $at, 0, random_bytes(1 + rint(8)));
            push @did, "insert at $at";
        }
        elsif ($op eq 'delete')
        {
            my $at = rint(length $$bref);
            substr($$bref, $at, 1 + rint(8), '');
            push @did, "delete at $at";
        }
        elsif ($op eq 'append')
        {
            $$bref .= random_bytes(1 + rint(16));
            push @did, 'append';
        }
    }
    return @did;
}

#
# copy_model - what COPY ... (FORMAT binary) into (id int, v vector,
# w vector(3)) does with these bytes, after PostgreSQL 15's
# copyfromparse.c (header, field counts, field sizes, EOF handling) and
# vector_recv.  Returns (1, [ [id, v hex, w hex] ... ]) (undef for NULL)
# or (0, why).
#
sub copy_model
{
    my ($bytes) = @_;
    my $p    = 0;
    my $take = sub {
        my ($n) = @_;
        return undef if $p + $n > length $bytes;
        my $s = substr($bytes, $p, $n);
        $p += $n;
        return $s;
    };
    my $sig = $take->(11);
    return (0, 'signature') unless defined $sig && $sig eq $SIGNATURE;
    my $f = $take->(4);
    return (0, 'missing flags') unless defined $f;
    my $flags = unpack('N', $f);
    return (0, 'WITH OIDS') if $flags & (1 << 16);
    return (0, 'critical flags') if $flags & 0xfffe0000;
    my $e = $take->(4);
    return (0, 'missing length') unless defined $e;
    my $ext = unpack('l>', $e);
    return (0, 'missing length') if $ext < 0;
    return (0, 'wrong length') unless defined $take->($ext);

    my @rows;
    while (1)
    {
        my $c = $take->(2);
        last unless defined $c;    # EOF, even in the middle of a count
        my $count = unpack('s>', $c);
        if ($count == -1)
        {
            return (0, 'data after the EOF marker') if $p < length $bytes;
            last;
        }
        return (0, "field count $count") if $count != 3;
        my @row;
        for my $col (0 .. 2)
        {
            my $s = $take->(4);
            return (0, 'EOF in a field size') unless defined $s;
            my $size = unpack('l>', $s);
            if ($size == -1)
            {
                push @row, undef;
                next;
            }
            return (0, 'invalid field size') if $size < 0;
            return (0, 'field beyond the buffer limit') if $size >= 0x3fffffff;
            my $data = $take->($size);
            return (0, 'EOF in a field') unless defined $data;
            if ($col == 0)
            {
                return (0, 'int4 of ' . length($data) . ' bytes') if length($data) != 4;
                push @row, unpack('l>', $data);
                next;
            }
            return (0, 'vector of ' . length($data) . ' bytes') if length($data) < 4;
            my ($dim, $unused) = unpack('n n', $data);
            return (0, "dimensions $dim") if $dim < 1 || $dim > 16000;
            return (0, "dimensions $dim for vector(3)") if $col == 2 && $dim != 3;
            return (0, "reserved $unused") if $unused;
            return (0, 'short vector') if length($data) - 4 < 4 * $dim;
            for my $i (0 .. $dim - 1)
            {
                return (0, 'non-finite element')
                  if (unpack('N', substr($data, 4 + 4 * $i, 4)) & 0x7f800000) == 0x7f800000;
            }
            return (0, 'trailing bytes in a vector') if length($data) > 4 + 4 * $dim;
            push @row, unpack('H*', $data);
        }
        push @rows, \@row;
    }
    return (1, \@rows);
}

#
# fuzz_copy - rounds of 8 files, each loaded by its own COPY in one
# session, then every loaded row read back.
#
sub fuzz_copy
{
    my ($deadline) = @_;
    my $st = $stats{copy} //= {};
    my $round = 0;
    while (more_rounds($round, $deadline))
    {
        start_round('copy', $round);
        my (@units, @files);
        push @units, [ 'T', 'TRUNCATE ct;' ];
        for my $i (0 .. 7)
        {
            my ($bytes, $fields) = copy_file();
            my @did = chance(0.1) ? ('none') : mutate_copy(\$bytes, $fields);
            my $path = "$COPYDIR/r${round}_$i.bin";
            write_bytes($path, $bytes);
            my ($ok, $model) = copy_model($bytes);
            push @files, { did => \@did, ok => $ok, model => $model, path => $path, kind => $ok ? 'valid' : 'invalid' };
            push @units,
              [ "C$i", "SET fuzz.file = $i; COPY ct (id, v, w) FROM " . sqlq($path) . " WITH (FORMAT binary); SELECT 'C$i|ran';" ];
        }
        push @units,
          [ 'R',
                "SELECT 'R|' || coalesce(string_agg(concat_ws(',', f, coalesce(id::text, 'N'), "
              . "coalesce(encode(vector_send(v), 'hex'), 'N'), coalesce(encode(vector_send(w), 'hex'), 'N'), "
              . "coalesce((vector_send((v::text)::vector) = vector_send(v))::text, 'N'), "
              . "coalesce((vector_send((w::text)::vector) = vector_send(w))::text, 'N')), ' ' "
              . "ORDER BY f, ctid), '') FROM ct;" ];

        my ($res, $lost) = run_units(\@units);
        my %loaded;
        if (defined $res->{R}{out})
        {
            for my $row (split / /, $res->{R}{out})
            {
                my ($f, @cols) = split /,/, $row;
                push @{ $loaded{$f} }, \@cols;
            }
        }
        else
        {
            $KIND = 'reading back';
            record_failure('copy', 'unclean', $round,
                'reading the loaded rows back: ' . ($res->{R}{state} // '') . ' ' . short($res->{R}{msg} // ''));
        }
        for my $i (0 .. $#files)
        {
            my $fl   = $files[$i];
            my $r    = $res->{"C$i"};
            my $what = "file $i (" . join('; ', @{ $fl->{did} }) . "; model: "
              . ($fl->{ok} ? scalar(@{ $fl->{model} }) . ' rows' : $fl->{model}) . ")";
            my $s = $st->{ $fl->{kind} } //= {};
            $s->{tried}++;
            $KIND = ($fl->{did}[0] // 'none') =~ s/ .*//r;
            my @got = @{ $loaded{$i} // [] };
            if (defined $r->{state})
            {
                $s->{error}++;
                if (!judge_error('copy', $round, $what, $r, \%COPY_CLASSES))
                {
                    $s->{fail}++;
                }
                elsif ($fl->{ok})
                {
                    $s->{fail}++;
                    record_failure('copy', 'wrong', $round, "$what: refused (ERROR $r->{state}: " . short($r->{msg}) . ")");
                }
                next;
            }
            $s->{value}++;
            if (!$fl->{ok})
            {
                $s->{fail}++;
                record_failure('copy', 'wrong', $round, "$what: loaded " . scalar(@got) . ' rows');
                next;
            }
            my @want = map { [ map { $_ // 'N' } @$_ ] } @{ $fl->{model} };
            my @diff;
            for my $k (0 .. max($#got, $#want))
            {
                my ($g, $w) = ($got[$k], $want[$k]);
                if (!$g || !$w)
                {
                    push @diff, "row $k " . ($g ? 'loaded but not in the file' : 'missing');
                    next;
                }
                for my $c (0 .. 2)
                {
                    push @diff, "row $k column $c: " . short($g->[$c]) . ', file ' . short($w->[$c])
                      if $g->[$c] ne $w->[$c];
                }
                push @diff, "row $k: its text form reads back as another vector"
                  if grep { $_ eq 'false' } @$g[ 3, 4 ];
            }
            if (@diff)
            {
                $s->{fail}++;
                record_failure('copy', 'wrong', $round, "$what: " . join('; ', @diff[ 0 .. min(2, $#diff) ]));
            }
        }
        $KIND = 'batch';
        check_crash('copy', $round, 'COPY batch', $lost);
        unlink map { $_->{path} } @files;
        $round++;
    }
    return $round;
}

###########################################################################
# segment and fork: kNN queries against the exact answers
###########################################################################

# knn_units - $n exact and $m approximate queries, the settings with each;
# the first exact and the first approximate one ask query $force, when
# given (the one the damage was aimed at)
sub knn_units
{
    my ($prefix, $n, $m, $force) = @_;
    my (@units, %meta);
    for my $i (1 .. $n + $m)
    {
        my $qi    = rint(scalar @Q);
        my $exact = $i <= $n;
        $qi = $force if defined $force && ($i == 1 || $i == $n + 1);
        my $set =
          $exact
          ? pick('SET vecstore.probes = auto; SET vecstore.effort = 10;',
            'SET vecstore.effort = 4; SET vecstore.probes = 32768;')
          : pick('SET vecstore.probes = auto; SET vecstore.effort = ' . (1 + rint(9)) . ';',
            'SET vecstore.effort = 4; SET vecstore.probes = 1;');
        my $tag = "$prefix$i";
        push @units, [ $tag, "$set " . knn_sql($tag, $qi) ];
        $meta{$tag} = { qi => $qi, exact => $exact, set => $set };
    }
    return (\@units, \%meta);
}

#
# judge_knn - '' when a result is right: exact queries have the exact
# scan's distances rank by rank (ties in any order), approximate ones 10
# distinct rows in distance order; else what is wrong.
#
sub judge_knn
{
    my ($out, $m) = @_;
    my @got = map { [ split /:/ ] } grep { $_ ne '' } split / /, $out;
    my @ex  = @{ $EXACT[ $m->{qi} ] };
    my %seen;
    my @dup = grep { $seen{ $_->[0] }++ } @got;
    return "id $dup[0][0] twice" if @dup;
    return scalar(@got) . ' rows' if @got != 10;
    for my $i (0 .. $#got)
    {
        return "rank $i: id $got[$i][0] at $got[$i][1], nearer than the exact rank ($ex[$i][1])"
          if $got[$i][1] < $ex[$i][1];
        return "rank $i: id $got[$i][0] at $got[$i][1] comes after $got[$i-1][1]"
          if $i && $got[$i][1] < $got[ $i - 1 ][1];
        return "rank $i: id $got[$i][0] at $got[$i][1], exact id $ex[$i][0] at $ex[$i][1]"
          if $m->{exact} && $got[$i][1] != $ex[$i][1];
    }
    return '';
}

#
# judge_knn_batch - judge every query of a batch; returns 'fail', 'error'
# or 'exact' (the worst outcome).
#
sub judge_knn_batch
{
    my ($cat, $round, $desc, $who, $res, $meta, $verify) = @_;
    my $outcome = 'exact';
    my $lost    = 0;
    for my $tag (sort { substr($a, 1) <=> substr($b, 1) } keys %$meta)
    {
        my $m    = $meta->{$tag};
        my $r    = $res->{$tag};
        my $what = "$desc; $who, query $m->{qi} ($m->{set})";
        next if $lost && $r->{state} =~ /^(LOST|TIMEOUT)$/;    # one failure for the session
        $lost = 1 if !defined $r->{out} && $r->{state} =~ /^(LOST|TIMEOUT)$/;
        if (defined $r->{out})
        {
            my $bad = judge_knn($r->{out}, $m);
            next unless $bad;
            record_failure($cat, 'wrong', $round, "$what: $bad");
            $outcome = 'fail';
        }
        elsif (judge_error($cat, $round, $what, $r, \%DAMAGE_CLASSES))
        {
            $outcome = 'error' if $outcome eq 'exact';
        }
        else
        {
            $outcome = 'fail';
        }
    }
    if ($verify && !defined $res->{$verify}{out} && !($lost && $res->{$verify}{state} =~ /^(LOST|TIMEOUT)$/))
    {
        $outcome = 'fail'
          unless judge_error($cat, $round, "$desc; $who, vecstore_verify", $res->{$verify}, \%DAMAGE_CLASSES);
    }
    return $outcome;
}

# count - the outcome of a round in the category's counters
sub count
{
    my ($cat, $kind, $outcome) = @_;
    my $s = $stats{$cat}{$kind} //= {};
    $s->{tried}++;
    $s->{ $outcome eq 'exact' ? 'value' : $outcome }++;
    return;
}

# sanity - the undamaged index answers exactly (before and after a category)
sub sanity
{
    my ($what) = @_;
    my ($units, $meta) = knn_units('S', 8, 0);
    my ($res) = run_units([ [ 'SS', 'SET enable_seqscan = off;' ], @$units ]);
    my @bad = map { "query $meta->{$_}{qi}: " . (defined $res->{$_}{out} ? judge_knn($res->{$_}{out}, $meta->{$_}) : "ERROR $res->{$_}{state}") }
      grep { !defined $res->{$_}{out} || judge_knn($res->{$_}{out}, $meta->{$_}) } sort keys %$meta;
    ok(!@bad, "$what: the index answers exactly") or diag(join("\n", @bad));
    return !@bad;
}

###########################################################################
# segment
###########################################################################

my $SEG_HEADER = 4096;

# flip_bit - the byte at $off of $bytes with one random bit flipped
sub flip_bit
{
    my ($bytes, $off) = @_;
    return chr(ord(substr($bytes, $off, 1)) ^ (1 << rint(8)));
}

#
# mutate_segment - damage the segment file under the running server;
# returns (kind, description, the query the damage was aimed at or undef).
#
# Aimed damage, in place: "vector" gives a row the query's own vector (so
# that a scan trusting it returns that row first) or moves one of the
# query's rows far away; "tid" gives one of the query's rows another
# row's TID; "codes" and "graph" flip bits in a cluster's codes or graph.
# The rest is blind: flipped bits (in the file header, the head, anywhere),
# overwritten bytes, a zeroed page, truncation, bytes appended (all in
# place); replacement by u's segment, zeros or garbage, chmod 000, removal.
#
sub mutate_segment
{
    my $size = -s $SEG;
    my $kind = weighted(
        vector => 12, tid => 8, codes => 5, graph => 7, flip => 12, header => 8,
        overwrite => 8, zero_page => 4, truncate => 10, extend => 4, replace => 8,
        chmod => 6, delete => 6);
    my $cur = read_bytes($SEG);
    my ($desc, $qi);
    if ($kind eq 'vector' || $kind eq 'tid')
    {
        my @ids;
        do { $qi = rint(scalar @Q); @ids = sealed_ids_of($qi) } until @ids;
        my $id = pick(@ids);
        my $r  = $ROW{$id};
        my $c  = rint(scalar @$SEG_CLUSTERS);
        my $ci = $SEG_CLUSTERS->[$c];
        if ($kind eq 'tid')
        {
            my $other = rint($ci->{count});
            poke($SEG, $SEG_HEADER + $r->{tid_at}, substr($cur, $SEG_HEADER + $ci->{tid_offset} + 6 * $other, 6));
            $desc = "TID of row $id (answer to query $qi) replaced by that of row $other of cluster $c";
        }
        elsif (chance(0.5))
        {
            # a row of some cluster takes the query's vector
            my $idx = rint($ci->{count});
            my $le  = pack('f<*', map { 0 + $_ } split /,/, substr($Q[$qi], 1, -1));
            poke($SEG, $SEG_HEADER + $ci->{vec_offset} + $idx * $SEG_DIMS * 4, $le);
            $desc = "row $idx of cluster $c given the vector of query $qi";
        }
        else
        {
            my $j = rint($SEG_DIMS);
            poke($SEG, $SEG_HEADER + $r->{vec_at} + 4 * $j, pack('f<', pick(1e4, -1e4, 3e38, 0)));
            $desc = "element $j of row $id (answer to query $qi) changed";
        }
    }
    elsif ($kind eq 'codes' || $kind eq 'graph')
    {
        my $c  = rint(scalar @$SEG_CLUSTERS);
        my $ci = $SEG_CLUSTERS->[$c];
        my ($from, $len) =
            $kind eq 'graph'
          ? ($ci->{graph_offset}, $ci->{graph_size})
          : ($ci->{code_offset}, ($ci->{graph_offset} || $ci->{vec_offset} + $ci->{nbytes}) - $ci->{code_offset});
        if (!$from || $len <= 0)
        {
            ($from, $len) = ($ci->{vec_offset}, $ci->{nbytes});
            $kind = 'flip';
        }
        my @at = map { $SEG_HEADER + $from + rint($len) } 1 .. 1 + rint(16);
        poke($SEG, $_, flip_bit($cur, $_)) for @at;
        $desc = "bits flipped in the $kind of cluster $c at " . join(',', @at);
        $qi = rint(scalar @Q);
    }
    elsif ($kind eq 'flip' || $kind eq 'header')
    {
        my @at;
        for (1 .. 1 + rint($kind eq 'flip' ? 8 : 3))
        {
            my $where = $kind eq 'header' ? 'header' : weighted(header => 1, head => 2, any => 3);
            my $off =
                $where eq 'header' ? rint(128)
              : $where eq 'head'   ? $SEG_HEADER + rint(min(1024, $size - $SEG_HEADER))
              :                      rint($size);
            poke($SEG, $off, flip_bit($cur, $off));
            push @at, $off;
        }
        $desc = "bits flipped at " . join(',', @at);
    }
    elsif ($kind eq 'overwrite')
    {
        my $off   = rint($size);
        my $len   = min($size - $off, 1 + rint(pick(16, 512, 8192)));
        my $fill  = pick('zeros', 'ones', 'random', 'A');
        my $bytes = $fill eq 'zeros' ? "\0" x $len : $fill eq 'ones' ? "\xff" x $len : $fill eq 'A' ? 'A' x $len : random_bytes($len);
        poke($SEG, $off, $bytes);
        $desc = "$len bytes of $fill at $off";
    }
    elsif ($kind eq 'zero_page')
    {
        my $off = 4096 * rint(int(($size + 4095) / 4096));
        poke($SEG, $off, "\0" x min(4096, $size - $off));
        $desc = "4 kB zeroed at $off";
    }
    elsif ($kind eq 'truncate')
    {
        my $to = pick(0, rint($SEG_HEADER), $SEG_HEADER + rint($size - $SEG_HEADER), $size - 1 - rint(64), int($size / 2));
        $to = max(0, min($size - 1, $to));
        truncate($SEG, $to) or die "could not truncate $SEG: $!";
        $desc = "truncated to $to of $size bytes";
    }
    elsif ($kind eq 'extend')
    {
        my $n = 1 + rint(8192);
        poke($SEG, $size, random_bytes($n));
        $desc = "$n bytes appended";
    }
    elsif ($kind eq 'replace')
    {
        my $with = pick('other', 'zeros', 'garbage', 'other-truncated');
        my $bytes =
            $with eq 'other'   ? read_bytes($OTHER_SEG)
          : $with eq 'zeros'   ? "\0" x $size
          : $with eq 'garbage' ? random_bytes(min($size, 65536)) . ("\x5a" x max(0, $size - 65536))
          :                      substr(read_bytes($OTHER_SEG), 0, int($size / 3));
        write_bytes("$SEG.fuzz", $bytes);
        rename("$SEG.fuzz", $SEG) or die "could not rename to $SEG: $!";
        $desc = "replaced by $with (" . length($bytes) . " bytes)";
    }
    elsif ($kind eq 'chmod')
    {
        chmod(0000, $SEG) or die "could not chmod $SEG: $!";
        $desc = 'chmod 000';
    }
    else
    {
        unlink($SEG) or die "could not remove $SEG: $!";
        $desc = 'deleted';
    }
    return ($kind, $desc, $qi);
}

#
# restore_segment - put the original bytes back: in place when the file
# damaged in place is still there (sessions that map it see them again),
# else as a new file renamed into place, as a rebuild makes it; nothing
# when the file there already holds them (the server rebuilt it).
#
sub restore_segment
{
    my ($pristine, $mode, $ino) = @_;
    my @st = stat($SEG);
    return
      if @st && ($st[2] & 07777) == $mode && $st[7] == length($pristine) && read_bytes($SEG) eq $pristine;
    if (@st && $st[1] == $ino)
    {
        chmod($mode, $SEG) or die "could not chmod $SEG: $!";
        poke($SEG, 0, $pristine);
        truncate($SEG, length $pristine) or die "could not truncate $SEG: $!";
        return;
    }
    write_bytes("$SEG.fuzz", $pristine);
    chmod($mode, "$SEG.fuzz");
    rename("$SEG.fuzz", $SEG) or die "could not rename to $SEG: $!";
    return;
}

# open_bg - a session kept across a round
sub open_bg
{
    my $bg = $node->background_psql('postgres', on_error_stop => 0, timeout => $QTIMEOUT);
    $bg->set_query_timer_restart();
    $bg->query("\\set VERBOSITY verbose\nSET enable_seqscan = off;");
    $bg->{stderr} = '';
    return $bg;
}

sub close_bg
{
    my ($bg) = @_;
    eval { $bg->quit; 1 } or eval { $bg->{run}->kill_kill; 1 };
    return;
}

#
# fuzz_segment - each round: a session maps the file and checks every
# cluster (an exact query), the file is damaged, that session and a new
# one query, the file is restored.
#
sub fuzz_segment
{
    my ($deadline) = @_;
    my $pristine = read_bytes($SEG);
    my $mode     = (stat $SEG)[2] & 07777;
    my $round    = 0;
    while (more_rounds($round, $deadline))
    {
        start_round('segment', $round);
        $KIND = 'none (before the damage)';
        my $ino = (stat $SEG)[1];
        my $bg  = open_bg();

        # the session maps and checks the file as it is
        my ($pre, $pre_meta) = knn_units('P', 1, 0);
        my ($res, $lost) = run_units($pre, \$bg);
        my @o = (judge_knn_batch('segment', $round, 'before the damage', 'mapping session', $res, $pre_meta));
        check_crash('segment', $round, 'before the damage', $lost);

        my ($kind, $desc, $qi) = mutate_segment();
        $desc = "segment $desc";
        $KIND = $kind;
        note("segment round $round: $desc");

        my ($units, $meta) = knn_units('B', 4, 1, $qi);
        ($res, $lost) = run_units($units, \$bg);
        push @o, judge_knn_batch('segment', $round, $desc, 'session that mapped it before', $res, $meta);
        check_crash('segment', $round, "$desc; session that mapped it before", $lost);
        close_bg($bg);

        ($units, $meta) = knn_units('N', 4, 1, $qi);
        push @$units, [ 'V', "SELECT 'V|' || count(*) FROM vecstore_verify('t_v_idx'::regclass);" ];
        ($res, $lost) = run_units([ [ 'SS', 'SET enable_seqscan = off;' ], @$units ]);
        push @o, judge_knn_batch('segment', $round, $desc, 'new session', $res, $meta, 'V');
        check_crash('segment', $round, "$desc; new session", $lost);

        count('segment', $kind, (grep { $_ eq 'fail' } @o) ? 'fail' : (grep { $_ eq 'error' } @o) ? 'error' : 'exact');
        restore_segment($pristine, $mode, $ino);
        $round++;
    }
    return $round;
}

###########################################################################
# fork
###########################################################################

my $BLCKSZ      = 8192;
my $PAGE_HEADER = 24;
my $PAYLOAD     = 8128;    # VS_BLOB_PAYLOAD

# VsMetaPageData (vsam.h, version 3): [name, offset, size]
my @META_FIELDS = (
    [ magic => 0, 4 ], [ version => 4, 4 ], [ dims => 8, 4 ], [ metric => 12, 4 ],
    [ nclusters => 16, 4 ], [ lists_option => 20, 4 ], [ sealed_rows => 24, 8 ],
    (map { my ($n, $o) = @$_; ([ "$n.start" => $o, 4 ], [ "$n.nblocks" => $o + 4, 4 ], [ "$n.nbytes" => $o + 8, 8 ]) }
      [ centroids => 32 ], [ directory => 48 ], [ bitmap => 64 ], [ sealed => 80 ], [ routing => 128 ], [ freelist => 168 ]),
    [ generation => 96, 4 ], [ sealed_crc => 100, 4 ], [ row_metric => 104, 4 ], [ quantizer => 108, 4 ],
    [ params_size => 112, 4 ], [ m => 116, 2 ], [ ef_construction => 118, 2 ], [ graph_threshold => 120, 4 ],
    [ row_space => 144, 8 ], [ compactions => 152, 4 ], [ npieces => 156, 4 ], [ split_rows => 160, 4 ],
    [ moves => 184, 4 ]);
my $META_SIZE = 192;

# VsClusterInfo (80 bytes) after the 64-byte VsSealedHeader
my @CLUSTER_FIELDS = (
    [ vec_offset => 0, 8 ], [ tid_offset => 8, 8 ], [ code_offset => 16, 8 ], [ graph_offset => 24, 8 ],
    [ graph_size => 32, 8 ], [ first_row => 40, 8 ], [ nbytes => 48, 8 ], [ count => 56, 4 ],
    [ crc => 60, 4 ], [ piece => 64, 4 ], [ delta_blk => 68, 4 ], [ delta_off => 72, 2 ],
    [ delta_folded => 76, 4 ]);

sub get_uint
{
    my ($bytes, $off, $size) = @_;
    return unpack($size == 2 ? 'v' : $size == 4 ? 'V' : 'Q<', substr($bytes, $off, $size));
}

sub put_uint
{
    my ($size, $v) = @_;
    return pack($size == 2 ? 'v' : $size == 4 ? 'V' : 'Q<', $v & ($size == 8 ? ~0 : (1 << (8 * $size)) - 1));
}

# fork_layout - the regions of the fork, from its metapage
sub fork_layout
{
    my ($bytes) = @_;
    my %l = (nblocks => length($bytes) / $BLCKSZ);
    $l{$_->[0]} = get_uint($bytes, $PAGE_HEADER + $_->[1], $_->[2]) for @META_FIELDS;
    my %meta_block = (0 => 1);
    for my $r (qw(centroids directory bitmap sealed routing freelist))
    {
        $meta_block{$_} = 1 for $l{"$r.start"} .. $l{"$r.start"} + $l{"$r.nblocks"} - 1;
    }
    $l{meta_blocks}  = [ sort { $a <=> $b } keys %meta_block ];
    $l{delta_blocks} = [ grep { !$meta_block{$_} } 0 .. $l{nblocks} - 1 ];
    return \%l;
}

# blob_offset - the file offset of byte $off of a region
sub blob_offset
{
    my ($l, $region, $off) = @_;
    return ($l->{"$region.start"} + int($off / $PAYLOAD)) * $BLCKSZ + $PAGE_HEADER + $off % $PAYLOAD;
}

# boundary - a damaging value for a field now holding $cur
sub boundary
{
    my ($cur, $size, $l) = @_;
    return pick(0, 1, $cur + 1, $cur - 1, $cur * 2, $cur + 1000, 0x7fffffff, 0xffffffff, 0x80000000,
        $l->{nblocks}, $l->{nblocks} - 1, rint(2**31), ($size == 8 ? (2**62, ~0) : ()));
}

#
# mutate_fork - damage the fork (the server is stopped); returns (kind,
# description, the query the damage was aimed at or undef, whether the
# segment files must go too).
#
# Aimed damage: "hide" sets the deletion bit of one of the query's rows;
# "resurrect" clears the bit of a deleted row whose heap slot a new row
# took, for the query at its vector; "cut" breaks the directory entry of
# the cluster whose delta chain holds one of the query's rows;
# "sealed_row" changes one of the query's rows in the fork's sealed region
# and removes the segment files, so that they are rebuilt from it.  The
# rest is blind (see the top of the file); a fifth of those rounds remove
# the segment files too.
#
sub mutate_fork
{
    my ($l) = @_;
    my $bytes = read_bytes($FORK);
    my $kind  = weighted(
        hide => 8, resurrect => 6, cut => 8, sealed_row => 5,
        meta => 16, centroids => 6, directory => 10, bitmap => 8, sealed_head => 10,
        sealed_body => 5, delta => 6, page_header => 4, zero_page => 4);
    my @resurrect = grep { $ROW{ $reused[$_] }{sealed} } 0 .. min(7, $#reused);
    my @cut = grep { grep { $_ > $ROWS && defined $ROW{$_}{delta_cluster} } map { $_->[0] } @{ $EXACT[$_] } } 0 .. $#Q;
    $kind = 'bitmap'    if $kind eq 'resurrect' && !@resurrect;
    $kind = 'directory' if $kind eq 'cut' && !@cut;
    $kind = 'meta'      if $kind eq 'delta' && !@{ $l->{delta_blocks} };
    my @writes;    # [file offset, bytes]
    my ($desc, $qi, $unlink);
    if ($kind eq 'hide' || $kind eq 'sealed_row')
    {
        my @ids;
        do { $qi = rint(scalar @Q); @ids = sealed_ids_of($qi) } until @ids;
        my $id = pick(@ids);
        if ($kind eq 'hide')
        {
            my $b   = $ROW{$id}{bit};
            my $off = blob_offset($l, 'bitmap', int($b / 8));
            push @writes, [ $off, chr(ord(substr($bytes, $off, 1)) | (1 << ($b % 8))) ];
            $desc = "deletion bit $b set: row $id (answer to query $qi)";
        }
        else
        {
            my $j = rint($DIMS);
            push @writes, [ blob_offset($l, 'sealed', $ROW{$id}{vec_at} + 4 * $j), pack('f<', pick(1e4, -1e4, 3e38, 0)) ];
            $desc = "sealed region: element $j of row $id (answer to query $qi) changed";
            $unlink = 1;
        }
    }
    elsif ($kind eq 'resurrect')
    {
        my $k   = pick(@resurrect);
        my $id  = $reused[$k];
        my $b   = $ROW{$id}{bit};
        my $off = blob_offset($l, 'bitmap', int($b / 8));
        push @writes, [ $off, chr(ord(substr($bytes, $off, 1)) & ~(1 << ($b % 8)) & 0xff) ];
        $qi   = $Q_REUSED + $k;
        $desc = "deletion bit $b cleared: deleted row $id, whose heap slot another row took (query $qi)";
    }
    elsif ($kind eq 'cut')
    {
        $qi = pick(@cut);
        my ($id) = grep { $_ > $ROWS && defined $ROW{$_}{delta_cluster} } map { $_->[0] } @{ $EXACT[$qi] };
        my $c    = $ROW{$id}{delta_cluster};
        my $at   = blob_offset($l, 'directory', 16 * $c);
        my ($head, $tail, $count) = unpack('V V V', substr($bytes, $at, 12));
        my $how = weighted(head_invalid => 3, head_is_tail => 2, tail_invalid => 1, count_zero => 2, head_other => 2);
        my $other = get_uint($bytes, blob_offset($l, 'directory', 16 * (($c + 1) % $l->{nclusters})), 4);
        push @writes,
            $how eq 'head_invalid' ? [ $at, pack('V', 0xffffffff) ]
          : $how eq 'head_is_tail' ? [ $at, pack('V', $tail) ]
          : $how eq 'tail_invalid' ? [ $at + 4, pack('V', 0xffffffff) ]
          : $how eq 'count_zero'   ? [ $at + 8, pack('V', 0) ]
          :                          [ $at, pack('V', $other) ];
        $desc = "directory entry $c ($how; head $head, tail $tail, count $count): "
          . "its chain holds row $id (answer to query $qi)";
    }
    elsif ($kind eq 'meta')
    {
        if (chance(0.6))
        {
            my ($name, $off, $size) = @{ pick(@META_FIELDS) };
            my $cur = get_uint($bytes, $PAGE_HEADER + $off, $size);
            my $v   = boundary($cur, $size, $l);
            push @writes, [ $PAGE_HEADER + $off, put_uint($size, $v) ];
            $desc = "metapage $name $cur -> $v";
        }
        else
        {
            my @at = map { $PAGE_HEADER + rint($META_SIZE) } 1 .. 1 + rint(4);
            push @writes, [ $_, chr(ord(substr($bytes, $_, 1)) ^ (1 << rint(8))) ] for @at;
            $desc = 'metapage bits flipped at ' . join(',', @at);
        }
    }
    elsif ($kind eq 'centroids')
    {
        my $n   = $l->{'centroids.nbytes'} / 4;
        my $i   = rint($n);
        my $val = pick(0x7fc00000, 0x7f800000, 0xff800000, 0x7f7fffff, 0x00000000, 0x4e6e6b28, 0xc2c80000);
        push @writes, [ blob_offset($l, 'centroids', 4 * $i), pack('V', $val) ];
        $desc = sprintf('centroid float %d of %d set to 0x%08x', $i, $n, $val);
    }
    elsif ($kind eq 'directory')
    {
        my $e = rint(max(1, $l->{nclusters}) + (chance(0.1) ? 4 : 0));
        if (chance(0.75))
        {
            my $f   = rint(4);
            my $off = blob_offset($l, 'directory', 16 * $e + 4 * $f);
            my $cur = get_uint($bytes, $off, 4);
            my $v   = chance(0.3) ? pick(@{ $l->{meta_blocks} }, @{ $l->{delta_blocks} }) : boundary($cur, 4, $l);
            push @writes, [ $off, put_uint(4, $v) ];
            $desc = "directory entry $e " . (qw(delta_head delta_tail delta_count delta_skipped))[$f] . " $cur -> $v";
        }
        else
        {
            my @at = map { blob_offset($l, 'directory', 16 * $e + rint(16)) } 1 .. 1 + rint(3);
            push @writes, [ $_, chr(ord(substr($bytes, $_, 1)) ^ (1 << rint(8))) ] for @at;
            $desc = "directory entry $e bits flipped";
        }
    }
    elsif ($kind eq 'bitmap')
    {
        my $nbits  = $l->{row_space} || $l->{sealed_rows};
        my $nbytes = int(($nbits + 7) / 8);
        my $how    = weighted(bit => 5, clear => 2, set => 1, byte => 2);
        if ($how eq 'bit')
        {
            my @b = map { rint($nbits) } 1 .. 1 + rint(3);
            for my $b (@b)
            {
                my $off = blob_offset($l, 'bitmap', int($b / 8));
                push @writes, [ $off, chr(ord(substr($bytes, $off, 1)) ^ (1 << ($b % 8))) ];
            }
            $desc = 'bitmap bits ' . join(',', @b) . " of $nbits flipped";
        }
        elsif ($how eq 'byte')
        {
            my $i = rint($nbytes);
            push @writes, [ blob_offset($l, 'bitmap', $i), chr(rint(256)) ];
            $desc = "bitmap byte $i of $nbytes replaced";
        }
        else
        {
            for my $i (0 .. $nbytes - 1)
            {
                push @writes, [ blob_offset($l, 'bitmap', $i), $how eq 'clear' ? "\0" : "\xff" ];
            }
            $desc = "bitmap: all $nbits bits " . ($how eq 'clear' ? 'cleared' : 'set');
        }
    }
    elsif ($kind eq 'sealed_head')
    {
        my $c = rint(max(1, $l->{nclusters}));
        if (chance(0.6))
        {
            my ($name, $off, $size) = @{ pick(@CLUSTER_FIELDS) };
            my $foff = blob_offset($l, 'sealed', 64 + 80 * $c + $off);
            my $cur  = get_uint($bytes, $foff, $size);
            my $v    = boundary($cur, $size, $l);
            push @writes, [ $foff, put_uint($size, $v) ];
            $desc = "sealed head: cluster $c $name $cur -> $v";
        }
        else
        {
            my @at = map { blob_offset($l, 'sealed', rint(min($l->{'sealed.nbytes'}, 64 + 80 * $l->{nclusters} + 256))) }
              1 .. 1 + rint(4);
            push @writes, [ $_, chr(ord(substr($bytes, $_, 1)) ^ (1 << rint(8))) ] for @at;
            $desc = 'sealed head bits flipped at ' . join(',', @at);
        }
    }
    elsif ($kind eq 'sealed_body')
    {
        my $off = rint($l->{'sealed.nbytes'});
        my $len = min($l->{'sealed.nbytes'} - $off, 1 + rint(pick(4, 64, 1024)));
        my $fill = random_bytes($len);
        for my $i (0 .. $len - 1)
        {
            push @writes, [ blob_offset($l, 'sealed', $off + $i), substr($fill, $i, 1) ];
        }
        $desc = "sealed region: $len bytes at $off replaced";
    }
    elsif ($kind eq 'delta')
    {
        # the chain's structure, not the rows: without data checksums a
        # changed vector on a delta page is as undetectable as one in a
        # heap page
        my $blk  = pick(@{ $l->{delta_blocks} });
        my $base = $blk * $BLCKSZ;
        my $sp   = get_uint($bytes, $base + 16, 2);    # pd_special: nextblkno, type, page id
        my $next = get_uint($bytes, $base + $sp, 4);
        my $what = weighted(nextblkno => 4, type => 1, page_id => 1, pd_lower => 1, pd_upper => 1, pd_special => 1);
        if ($what eq 'nextblkno')
        {
            my $v = pick(0xffffffff, $blk, 0, pick(@{ $l->{delta_blocks} }), pick(@{ $l->{meta_blocks} }), $l->{nblocks} + 5);
            push @writes, [ $base + $sp, pack('V', $v) ];
            $desc = "delta page $blk: next block $next -> $v";
        }
        else
        {
            my ($off, $size) = @{ { type => [ $sp + 4, 2 ], page_id => [ $sp + 6, 2 ], pd_lower => [ 12, 2 ], pd_upper => [ 14, 2 ], pd_special => [ 16, 2 ] }->{$what} };
            my $cur = get_uint($bytes, $base + $off, $size);
            my $v   = pick(0, 1, 2, 4, 0xffff, $cur + 1, $cur - 8, 8192);
            push @writes, [ $base + $off, put_uint($size, $v) ];
            $desc = "delta page $blk: $what $cur -> " . ($v & 0xffff);
        }
    }
    elsif ($kind eq 'page_header')
    {
        my $blk = pick(@{ $l->{meta_blocks} });
        my $sp  = get_uint($bytes, $blk * $BLCKSZ + 16, 2);
        my ($name, $off, $size) = @{ pick([ pd_lower => 12, 2 ], [ pd_upper => 14, 2 ], [ pd_special => 16, 2 ],
            [ pd_pagesize_version => 18, 2 ], [ nextblkno => $sp, 4 ], [ type => $sp + 4, 2 ], [ page_id => $sp + 6, 2 ]) };
        my $cur = get_uint($bytes, $blk * $BLCKSZ + $off, $size);
        my $v   = pick(0, 1, 0xffff, $cur + 1, $cur ^ 0x100, 8192, 3, 4);
        push @writes, [ $blk * $BLCKSZ + $off, put_uint($size, $v) ];
        $desc = "block $blk $name $cur -> $v";
    }
    else
    {
        my $blk = pick(@{ $l->{meta_blocks} }, @{ $l->{delta_blocks} });
        push @writes, [ $blk * $BLCKSZ, "\0" x $BLCKSZ ];
        $desc = "block $blk zeroed";
    }
    poke($FORK, @$_) for @writes;
    $unlink = 1 if !$unlink && !defined $qi && chance(0.2);
    return ($kind, "fork $desc" . ($unlink ? ' (and the segment files removed)' : ''), $qi, $unlink);
}

# restore_dir - make directory $dir hold exactly the files of %$saved
sub restore_dir
{
    my ($dir, $saved) = @_;
    opendir(my $dh, $dir) or die "could not read $dir: $!";
    for my $f (grep { -f "$dir/$_" } readdir $dh)
    {
        unlink("$dir/$f") or die "could not remove $dir/$f: $!" unless exists $saved->{$f};
    }
    closedir $dh;
    for my $f (keys %$saved)
    {
        chmod(0600, "$dir/$f") if -e "$dir/$f";
        write_bytes("$dir/$f", $saved->{$f}{bytes});
        chmod($saved->{$f}{mode}, "$dir/$f");
    }
    return;
}

sub fuzz_fork
{
    my ($deadline) = @_;
    my $segdir = $SEG =~ s{/[^/]+$}{}r;

    $node->stop;
    my $pristine = read_bytes($FORK);
    my $l        = fork_layout($pristine);
    my %segfiles;
    opendir(my $dh, $segdir) or die "could not read $segdir: $!";
    for my $f (grep { -f "$segdir/$_" } readdir $dh)
    {
        $segfiles{$f} = { bytes => read_bytes("$segdir/$f"), mode => (stat "$segdir/$f")[2] & 07777 };
    }
    closedir $dh;
    note("fork: $l->{nblocks} blocks; metadata blocks @{ $l->{meta_blocks} }; "
          . scalar(@{ $l->{delta_blocks} }) . ' delta pages; '
          . join(', ', map { "$_ at $l->{\"$_.start\"} ($l->{\"$_.nblocks\"} blocks, $l->{\"$_.nbytes\"} bytes)" }
              qw(centroids directory bitmap sealed routing freelist)));
    if (!ok($l->{magic} == 0x56535831 && $l->{version} >= 3 && $l->{nclusters} == $LISTS && $l->{dims} == $DIMS,
            'fork: the metapage reads as vsam.h describes it'))
    {
        $node->start;
        return 0;
    }

    # the delta chains: the cluster of each delta page, then of the delta
    # rows the queries return
    my %chain_of;
    for my $c (0 .. $l->{nclusters} - 1)
    {
        my $blk = get_uint($pristine, blob_offset($l, 'directory', 16 * $c), 4);
        my %seen;
        while ($blk != 0xffffffff && $blk < $l->{nblocks} && !$seen{$blk}++)
        {
            $chain_of{$blk} = $c;
            $blk = get_uint($pristine, $blk * $BLCKSZ + get_uint($pristine, $blk * $BLCKSZ + 16, 2), 4);
        }
    }
    my ($delta_rows, $delta_found) = (0, 0);
    for my $id (grep { $_ > $ROWS } keys %ROW)
    {
        $delta_rows++;
        my $pos = index($pristine, $ROW{$id}{le});
        next if $pos < 0 || !exists $chain_of{ int($pos / $BLCKSZ) };
        $ROW{$id}{delta_cluster} = $chain_of{ int($pos / $BLCKSZ) };
        $delta_found++;
    }
    is($delta_found, $delta_rows, "fork: the delta chains hold the delta rows the queries return ($delta_rows)");
    my @unset = grep {
        my $b = $ROW{$_}{bit};
        !(ord(substr($pristine, blob_offset($l, 'bitmap', int($b / 8)), 1)) & (1 << ($b % 8)))
    } grep { $ROW{$_}{sealed} && $ROW{$_}{deleted} } keys %ROW;
    ok(!@unset, 'fork: the deleted rows have their deletion bits set') or diag("not set: @unset");
    my $relfilenode = $SEG =~ s{^.*/}{}r =~ s{\..*$}{}r;

    my $round = 0;
    while (more_rounds($round, $deadline))
    {
        start_round('fork', $round);
        $node->stop if $round > 0;
        write_bytes($FORK, $pristine);
        restore_dir($segdir, \%segfiles);
        my ($kind, $desc, $qi, $unlink) = mutate_fork($l);
        $KIND = $kind;
        note("fork round $round: $desc");
        if ($unlink)
        {
            opendir(my $dh, $segdir) or die "could not read $segdir: $!";
            unlink(map { "$segdir/$_" } grep { /^\Q$relfilenode\E\./ } readdir $dh);
            closedir $dh;
        }
        if (!eval { $node->start; 1 })
        {
            record_failure('fork', 'crash', $round, "$desc: the server did not start");
            count('fork', $kind, 'fail');
            write_bytes($FORK, $pristine);
            $node->start;
            $round++;
            next;
        }
        my ($units, $meta) = knn_units('F', 6, 2, $qi);
        push @$units, [ 'V', "SELECT 'V|' || count(*) FROM vecstore_verify('t_v_idx'::regclass);" ];
        my ($res, $lost) = run_units([ [ 'SS', 'SET enable_seqscan = off;' ], @$units ]);
        my $o = judge_knn_batch('fork', $round, $desc, 'new session', $res, $meta, 'V');
        $o = 'fail' if check_crash('fork', $round, $desc, $lost);
        count('fork', $kind, $o);
        $round++;
    }
    $node->stop;
    write_bytes($FORK, $pristine);
    restore_dir($segdir, \%segfiles);
    $node->start;
    return $round;
}

###########################################################################
# the run
###########################################################################

my %FUZZ = (literals => \&fuzz_literals, copy => \&fuzz_copy, segment => \&fuzz_segment, fork => \&fuzz_fork);
my $share_total = 0;
$share_total += $SHARE{$_} for @RUN;
my $t_start = time();
my ($planned, %rounds, %took) = (0);
log_crashes();
for my $cat (@RUN)
{
    $planned += $BUDGET * $SHARE{$cat} / $share_total;
    my $t0 = time();
    if ($cat eq 'segment' || $cat eq 'fork')
    {
        next unless sanity("$cat, before");
    }
    $rounds{$cat} = $FUZZ{$cat}->($t_start + $planned);
    $took{$cat} = time() - $t0;
    sanity("$cat, after (restored)") if $cat eq 'segment' || $cat eq 'fork';
}

#
# The report: what was tried and how it ended, then one test per category
# and kind of failure.
#
my %FAILURE = (
    crash   => 'no backend crash (server log) and no lost connection',
    wrong   => 'no wrong row or value',
    unclean => 'every error is a clean one',
    hang    => 'no statement runs into the timeout');
for my $cat (@RUN)
{
    next unless defined $rounds{$cat};
    my (@line, %sum);
    for my $kind (sort keys %{ $stats{$cat} // {} })
    {
        my $s = $stats{$cat}{$kind};
        $sum{$_} += $s->{$_} // 0 for qw(tried value error fail);
        push @line, sprintf('%s %d (%d %s, %d errors%s)', $kind, $s->{tried}, $s->{value} // 0,
            $cat =~ /^(segment|fork)$/ ? 'exact' : 'values', $s->{error} // 0,
            $s->{fail} ? ", $s->{fail} FAILED" : '');
    }
    diag(sprintf("%s: %d rounds in %.1f s, %d %s: %d %s, %d clean errors, %d failed\n    %s",
            $cat, $rounds{$cat}, $took{$cat}, $sum{tried} // 0,
            $cat =~ /^(segment|fork)$/ ? 'mutations' : 'inputs', $sum{value} // 0,
            $cat =~ /^(segment|fork)$/ ? 'answered exactly' : 'accepted',
            $sum{error} // 0, $sum{fail} // 0, join("\n    ", @line,
                "errors by SQLSTATE (and the first message):\n      "
                  . join("\n      ", map { "$_ $states{$cat}{$_}{n}" . (defined $states{$cat}{$_}{msg} ? ' (' . short($states{$cat}{$_}{msg}, 90) . ')' : '') }
                      sort keys %{ $states{$cat} // {} }))));
    for my $type (qw(crash wrong unclean hang))
    {
        my $f = $failures{$cat}{$type} // {};
        my @kinds = sort keys %$f;
        ok(!@kinds, "$cat: $FAILURE{$type}")
          or diag("failures (seed $SEED, VECSTORE_FUZZ_ONLY=$cat), by kind, the first two of each:\n  "
              . join("\n  ", map { my @k = @{ $f->{$_} }; ("$_: " . scalar(@k) . ' failures', map { "  $_" } @k[ 0 .. min(1, $#k) ]) } @kinds));
    }
}
diag(sprintf('fuzz seed %d: %.1f s', $SEED, time() - $t_start));

$node->stop;
done_testing();
