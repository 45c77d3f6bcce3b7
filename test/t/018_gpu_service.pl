#-------------------------------------------------------------------------
#
# 018_gpu_service.pl
#     TAP test: the GPU service (src/vsgpu.c) supervising the helper
#     process (cuda/vecstore-gpu-helper), on any machine.
#
# 1. With vecstore in shared_preload_libraries the background worker
#    starts the helper.  Without a usable GPU (CI: no driver; or a helper
#    built without CUDA) vecstore_gpu_status() says "no device" (or "no
#    helper") with the reason, the log says so once, vecstore.gpu = on
#    makes CREATE INDEX and index scans fail with a clear error, and
#    "auto" runs them on the CPU and counts the fallback.  Where a GPU is
#    usable, the state is "running" and "on" works; the no-device checks
#    are skipped.
# 2. Results are the same with vecstore.gpu off and auto (both EXCEPT
#    directions empty).
# 3. The helper killed with kill -9 while queries run: the queries are
#    answered, the worker starts a new helper (new pid, restarts counted,
#    the signal in last_error and the log).  This uses the helper's CPU
#    emulation (vecstore.gpu_emulate), which keeps a helper up without a
#    device.
# 4. CREATE INDEX through the request ring (emulation: the helper runs the
#    same CPU code, so the results must be bit-for-bit those of the CPU
#    path): k-means rounds and the row assignment go to the helper
#    (requests and batches counted, no fallback), the k-means inertia and
#    the index's clusters are those of a build with vecstore.gpu = off,
#    and so are the results of queries probing one cluster.  A helper
#    that stops answering (SIGSTOP) costs a build vecstore.gpu_timeout
#    once: the build finishes on the CPU with the same index, the
#    fallback is counted with its reason, and under "on" it is an error.
#    A build cancelled while its graph requests wait gives them up: none
#    is left in the ring (in_flight) once that helper is gone.
# 5. Index scans through the ring (emulation): the probed clusters' nearest
#    rows come from the helper, which keeps the clusters resident, and are
#    reranked exactly.  Where the CPU scans clusters flat (exact), results
#    are identical with vecstore.gpu off and auto, LIMIT 200 included (the
#    scan searches past the helper's answers when it must); where the CPU
#    searches graphs (approximate), the helper's exact answers give at
#    least the CPU's recall.  Concurrent sessions are batched together
#    (a long vecstore.gpu_batch_delay) with the same results; a 1 MB
#    vecstore.gpu_memory keeps fewer clusters resident, still the same
#    results.  Under auto a scan asks the helper only when
#    vecstore.gpu_min_scans scans are open (a cursor holds one open); the
#    other checks set it to 1.
# 6. vecstore.gpu = off in the server's configuration stops the helper;
#    stopping the server leaves no helper behind.
# 7. Without shared_preload_libraries the status says "not loaded" and
#    "on" is an error.
#
# IDENTIFICATION
#     test/t/018_gpu_service.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('gpu');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.compaction_worker = off
statement_timeout = '120s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION vecstore');

sub status
{
    my ($col) = @_;
    return $node->safe_psql('postgres', "SELECT $col FROM vecstore_gpu_status()");
}

sub pid_alive
{
    my ($pid) = @_;
    return kill(0, $pid) ? 1 : 0;
}

# the service settles: the helper answered, or is known to be missing
ok( $node->poll_query_until(
        'postgres',
        "SELECT state NOT IN ('starting', 'restarting', 'disabled') FROM vecstore_gpu_status()"),
    'the GPU service settles');
my $state = status('state');
note "GPU service: $state; " . status("coalesce(device, '-') || ' / ' || coalesce(last_error, '-')");

$node->safe_psql(
    'postgres', q{
CREATE TABLE items (id int PRIMARY KEY, v vector(8));
INSERT INTO items
SELECT i, ARRAY(SELECT ('x' || substr(md5(i || ':' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 8) j)::vector
FROM generate_series(1, 3000) i;
CREATE TABLE queries AS
SELECT q, ARRAY(SELECT ('x' || substr(md5('q' || q || ':' || j), 1, 8))::bit(32)::int / 2147483648.0
                FROM generate_series(1, 8) j)::vector AS v
FROM generate_series(1, 20) q;
});

# 1. no usable GPU: said once, "on" fails clearly, "auto" falls back
SKIP:
{
    skip "a GPU is usable here (state running): the no-device checks do not apply", 7
      if $state eq 'running';

    like($state, qr/^(no device|no helper)$/, "without a GPU the state is \"$state\"");
    isnt(status("coalesce(last_error, '')"), '', 'the status says why');
    my $log = slurp_file($node->logfile);
    my @said = ($log =~ /vecstore: (?:no usable GPU|the GPU helper program is missing)/g);
    is(scalar @said, 1, 'the log says it once');

    my ($ret, $out, $err) = $node->psql('postgres',
        'SET vecstore.gpu = on; CREATE INDEX items_on ON items USING vecstore (v)');
    isnt($ret, 0, 'vecstore.gpu = on: CREATE INDEX fails');
    like($err, qr/vecstore\.gpu is "on" but no GPU is usable for CREATE INDEX/,
        'with a clear error');

    $node->safe_psql('postgres', 'CREATE INDEX items_v ON items USING vecstore (v)');
    ($ret, $out, $err) = $node->psql('postgres',
        q{SET vecstore.gpu = on; SET enable_seqscan = off;
          SELECT id FROM items ORDER BY v <-> (SELECT v FROM queries WHERE q = 1) LIMIT 5});
    like($err, qr/no GPU is usable for index scans/, 'vecstore.gpu = on: an index scan fails too');
    like(status('fallbacks || \' \' || fallback_reason'),
        qr/^[1-9]\d* CREATE INDEX ran on the CPU/, 'auto counts the fallback and says why');
}
$node->safe_psql('postgres', 'CREATE INDEX IF NOT EXISTS items_v ON items USING vecstore (v)');

# 2. the same results with the GPU off and auto
my $knn = q{SELECT q.q, n.id, n.rank FROM queries q,
            LATERAL (SELECT id, row_number() OVER () AS rank FROM
                     (SELECT id FROM items ORDER BY v <-> q.v LIMIT 10) s) n};
$node->safe_psql(
    'postgres', qq{
SET enable_seqscan = off;
SET vecstore.gpu = off;
CREATE TABLE res_off AS $knn;
SET vecstore.gpu = auto;
CREATE TABLE res_auto AS $knn;
});
is( $node->safe_psql(
        'postgres',
        'SELECT (SELECT count(*) FROM (TABLE res_off EXCEPT ALL TABLE res_auto) a) + '
          . '(SELECT count(*) FROM (TABLE res_auto EXCEPT ALL TABLE res_off) b)'),
    '0',
    'results with vecstore.gpu off and auto are the same (EXCEPT ALL both ways)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM res_auto'), '200', '20 queries x 10 rows');

# 3. the helper killed under load is replaced
$node->safe_psql('postgres',
    'ALTER SYSTEM SET vecstore.gpu_emulate = on; SELECT pg_reload_conf()');
ok( $node->poll_query_until(
        'postgres',
        "SELECT state = 'running' AND device = 'CPU emulation' FROM vecstore_gpu_status()"),
    'with vecstore.gpu_emulate a helper runs without a device');
my $pid = status('helper_pid');
my $restarts = status('restarts');
ok(pid_alive($pid), "the helper (pid $pid) is alive");

my $load = q{SET enable_seqscan = off; SET vecstore.gpu_min_scans = 1;
             SELECT count(*) FROM queries q,
             LATERAL (SELECT id FROM items ORDER BY v <-> q.v LIMIT 10) s};
is($node->safe_psql('postgres', $load), '200', 'queries before the kill');
kill 'KILL', $pid;
my $answered = 0;
for my $i (1 .. 20)
{
    $answered++ if $node->safe_psql('postgres', $load) eq '200';
}
is($answered, 20, 'queries during and after the kill are all answered');
ok( $node->poll_query_until(
        'postgres',
        "SELECT state = 'running' AND helper_pid IS NOT NULL AND helper_pid <> $pid "
          . "AND restarts > $restarts FROM vecstore_gpu_status()"),
    'the worker started a new helper');
like(status('last_error'), qr/terminated by signal 9/, 'last_error says how the helper ended');
like(slurp_file($node->logfile), qr/GPU helper \(pid $pid\) was terminated by signal 9/,
    'and so does the log');
ok(!pid_alive($pid), 'the killed helper is gone (reaped)');

# 4. builds through the request ring
$node->safe_psql(
    'postgres', q{
SELECT setseed(0.25);
CREATE TABLE big (id int PRIMARY KEY, v vector(32));
INSERT INTO big
SELECT i, ARRAY(SELECT (random() * (1 + i % 5))::real FROM generate_series(1, 32) WHERE i > 0)::vector
FROM generate_series(1, 20000) i;
CREATE TABLE bigq AS SELECT id AS q, v FROM big WHERE id % 1000 = 0;
});

# build with "gpu", run the one-cluster queries (on the CPU: the build is
# what this compares; at ef_search 1000, about every row of the cluster, so
# that the answers depend on the clusters, not on how their graphs were
# built), report the k-means line
sub ring_build
{
    my ($gpu, $extra) = @_;
    $extra //= '';
    my ($ret, $out, $err) = $node->psql(
        'postgres', qq{
SET vecstore.gpu = $gpu; $extra
SET client_min_messages = debug1;
DROP INDEX IF EXISTS big_v;
CREATE INDEX big_v ON big USING vecstore (v) WITH (lists = 20);
RESET client_min_messages;
SET vecstore.gpu = off; SET enable_seqscan = off; SET vecstore.probes = 1;
SET vecstore.ef_search = 1000;
SELECT string_agg(q::text || ':' || ids, ' ' ORDER BY q) FROM bigq,
  LATERAL (SELECT string_agg(id::text, ',') AS ids FROM
           (SELECT id FROM big ORDER BY v <-> bigq.v LIMIT 10) s) n;
SELECT clusters || ' ' || min_cluster_rows || ' ' || max_cluster_rows || ' ' || code_bytes
  || ' ' || graph_bytes FROM vecstore_index_info('big_v');
});
    my ($kmeans) = $err =~ /vecstore k-means: (.*)/;
    my ($jobs) = $err =~ /vecstore assignment: \d+ rows, (\d+) jobs on the GPU in all/;
    my ($graphs) = $err =~ /vecstore clusters: \d+, (\d+) graphs built by the GPU service/;
    return {
        ret => $ret, out => $out, err => $err, kmeans => $kmeans // '',
        jobs => $jobs // -1, graphs => $graphs // -1 };
}

my $cpu = ring_build('off');
is($cpu->{ret}, 0, 'a CPU build (vecstore.gpu = off)');
like($cpu->{kmeans}, qr/, 0 jobs on the GPU, /, 'no job went to the GPU');
my ($req0, $bat0, $fb0) = split /\|/, status('requests || \'|\' || batches || \'|\' || fallbacks');

my $gpu = ring_build('auto');
is($gpu->{ret}, 0, 'a build through the GPU service (vecstore.gpu = auto, emulated)');
my ($req1, $bat1, $fb1) = split /\|/, status('requests || \'|\' || batches || \'|\' || fallbacks');
cmp_ok($gpu->{jobs}, '>=', 16, "k-means rounds and the assignment went to the helper ($gpu->{jobs} jobs)");
cmp_ok($gpu->{graphs}, '>', 0,
    "the graphs were built by the helper ($gpu->{graphs} graphs)");
is($req1 - $req0, $gpu->{jobs} + $gpu->{graphs}, 'the status counts every request');
cmp_ok($bat1 - $bat0, '>=', 1, 'and the batches they ran in');
is($fb1, $fb0, 'no fallback');
(my $cpu_inertia = $cpu->{kmeans}) =~ s/, \d+ jobs on the GPU, .*$//;
(my $gpu_inertia = $gpu->{kmeans}) =~ s/, \d+ jobs on the GPU, .*$//;
isnt($cpu_inertia, '', "k-means reported: $cpu_inertia");
is($gpu_inertia, $cpu_inertia, 'the same k-means rounds and inertia as on the CPU');
# the graphs differ (built from lists, not by insertion), their size and
# here their answers do not: clusters of 1000 rows, exact lists, rerank
is($gpu->{out}, $cpu->{out}, 'the same clusters and one-cluster query results as the CPU build');

# a helper that stops answering: the timeout, then the CPU
my $stopped = status('helper_pid');
kill 'STOP', $stopped;
my $late = ring_build('auto', 'SET vecstore.gpu_timeout = 200;');
is($late->{ret}, 0, 'a build while the helper does not answer completes');
is($late->{out}, $cpu->{out}, 'on the CPU, with the same index');
like(status('fallbacks || \' \' || fallback_reason'),
    qr/^\Q@{[$fb1 + 1]}\E CREATE INDEX ran on the CPU: no answer from the GPU service within 200 ms$/,
    'the fallback is counted once, with its reason');
my $on = ring_build('on', 'SET vecstore.gpu_timeout = 200;');
isnt($on->{ret}, 0, 'under vecstore.gpu = on the same build fails');
like($on->{err}, qr/vecstore\.gpu is "on" but the GPU could not do the work of CREATE INDEX/,
    'with a clear error');

# a build cancelled while its graphs are with the (stopped) helper: two
# clusters, so the second's graph is sent before the first's is waited
# for (k-means and assignment this small stay on the CPU); the request
# waited for and the one sent ahead are both given up, and once the
# helper is gone the ring holds no slot (a request left behind would stay
# answered and never collected)
my $held = status('in_flight');
my ($cret, $cout, $cerr) = $node->psql(
    'postgres', q{
SET vecstore.gpu = auto; SET vecstore.gpu_timeout = 60000; SET statement_timeout = 1000;
CREATE INDEX big_two ON big USING vecstore (v) WITH (lists = 2);
});
isnt($cret, 0, 'a build waiting for its graphs is cancelled');
like($cerr, qr/canceling statement due to statement timeout/, 'by the statement timeout');
is(status('in_flight'), $held + 2,
    'both of its graph requests are given up, still with the stopped helper');
kill 'KILL', $stopped;
ok( $node->poll_query_until(
        'postgres',
        "SELECT state = 'running' AND helper_pid <> $stopped FROM vecstore_gpu_status()"),
    'the stopped helper, killed, is replaced');
is(status('in_flight'), '0', 'and no request is left in the ring');
my $again = ring_build('auto');
cmp_ok($again->{jobs}, '>=', 16, 'and the next build uses it again');
is($again->{out}, $cpu->{out}, 'with the same results');

# 5. index scans through the ring
$node->safe_psql(
    'postgres', q{
SELECT setseed(0.3);
CREATE TABLE flat (id int PRIMARY KEY, v vector(16));
INSERT INTO flat
SELECT i, ARRAY(SELECT random()::real FROM generate_series(1, 16) WHERE i > 0)::vector
FROM generate_series(1, 20000) i;
CREATE TABLE flatq AS SELECT id AS q, v FROM flat WHERE id % 400 = 0;
CREATE INDEX flat_v ON flat USING vecstore (v) WITH (lists = 40);
});
is($node->safe_psql('postgres', 'SELECT graph_clusters FROM vecstore_index_info(\'flat_v\')'),
    '0', 'an index whose clusters the CPU scans flat');

# the flat queries under "settings" into table "name", as SQL
sub flat_knn_sql
{
    my ($name, $settings) = @_;
    return qq{
SET enable_seqscan = off; SET vecstore.probes = 3; $settings
CREATE TABLE $name AS SELECT q.q, n.id, n.rank FROM flatq q,
  LATERAL (SELECT id, row_number() OVER () AS rank FROM
           (SELECT id FROM flat ORDER BY v <-> q.v LIMIT 200) s) n;
};
}

# run them
sub flat_knn
{
    $node->safe_psql('postgres', flat_knn_sql(@_));
}

sub same_tables
{
    my ($a, $b) = @_;
    return $node->safe_psql('postgres',
            "SELECT (SELECT count(*) FROM (TABLE $a EXCEPT ALL TABLE $b) x) + "
          . "(SELECT count(*) FROM (TABLE $b EXCEPT ALL TABLE $a) y)");
}

# under auto a scan asks the GPU only when vecstore.gpu_min_scans scans
# are open, itself included: a lone query's scans stay on the CPU; with a
# cursor's scan held open, the same queries go to the helper
my @held = split /\n/, $node->safe_psql(
    'postgres', q{
SET enable_seqscan = off; SET vecstore.probes = 3; SET vecstore.gpu = auto;
SET vecstore.gpu_min_scans = 2;
SELECT requests FROM vecstore_gpu_status();
SELECT count(*) FROM flatq q, LATERAL (SELECT id FROM flat ORDER BY v <-> q.v LIMIT 10) s;
SELECT requests FROM vecstore_gpu_status();
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM flat ORDER BY v <-> (SELECT v FROM flatq ORDER BY q LIMIT 1);
FETCH 1 FROM c;
SELECT open_scans FROM vecstore_gpu_status();
SELECT count(*) FROM flatq q, LATERAL (SELECT id FROM flat ORDER BY v <-> q.v LIMIT 10) s;
SELECT requests FROM vecstore_gpu_status();
COMMIT;
SELECT open_scans FROM vecstore_gpu_status();
});
is($held[2] - $held[0], 0, 'vecstore.gpu_min_scans = 2: a lone query\'s scans stay on the CPU');
is($held[4], '1', 'a cursor\'s scan counts as open');
is($held[6] - $held[2], 50, 'with it open, each of the 50 scans asked the helper');
is($held[7], '0', 'and no scan counts as open after the transaction');

# the rest of the scans ask the GPU whatever else runs (gpu_min_scans 1)
my ($sreq0, $sfb0) = split /\|/, status('requests || \'|\' || fallbacks');
flat_knn('flat_off', 'SET vecstore.gpu = off;');
my ($sreq1) = status('requests');
is($sreq1, $sreq0, 'no request with vecstore.gpu = off');
flat_knn('flat_auto', 'SET vecstore.gpu = auto; SET vecstore.gpu_min_scans = 1;');
my ($sreq2, $sfb2) = split /\|/, status('requests || \'|\' || fallbacks');
cmp_ok($sreq2 - $sreq1, '>=', 50, 'every query sent its clusters to the helper (' . ($sreq2 - $sreq1) . ' requests)');
is($sfb2, $sfb0, 'no fallback');
is(same_tables('flat_off', 'flat_auto'), '0',
    'flat clusters: the same 200 rows in the same order with vecstore.gpu off and auto (EXCEPT ALL both ways)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM flat_auto'), '10000', '50 queries x 200 rows');
flat_knn('flat_off_small', 'SET vecstore.gpu = off; SET vecstore.max_scan_tuples = 1000;');
flat_knn('flat_auto_small', 'SET vecstore.gpu = auto; SET vecstore.gpu_min_scans = 1; SET vecstore.max_scan_tuples = 1000;');
is(same_tables('flat_off_small', 'flat_auto_small'), '0',
    'and the same when vecstore.max_scan_tuples is smaller than the probed clusters');
ok( $node->poll_query_until('postgres', 'SELECT resident_clusters > 0 FROM vecstore_gpu_status()'),
    'the helper keeps clusters resident');

# graph clusters: the helper's exact answers against the CPU's graph search
my $truth = $node->safe_psql(
    'postgres', q{
SET enable_seqscan = off; SET vecstore.gpu = off; SET vecstore.probes = 20;
CREATE TABLE big_truth AS SELECT q.q, ARRAY(SELECT id FROM big ORDER BY v <-> q.v LIMIT 10) AS ids FROM bigq q;
SELECT graph_clusters FROM vecstore_index_info('big_v')});
cmp_ok($truth, '>', 0, "an index with graph clusters ($truth)");
my %recall;
for my $gpu ('off', 'auto')
{
    $recall{$gpu} = $node->safe_psql(
        'postgres', qq{
SET enable_seqscan = off; SET vecstore.probes = 2; SET vecstore.ef_search = 20; SET vecstore.gpu = $gpu; SET vecstore.gpu_min_scans = 1;
SELECT sum((SELECT count(*) FROM unnest(ARRAY(SELECT id FROM big ORDER BY v <-> q.v LIMIT 10)) i
            WHERE i = ANY (t.ids)))
FROM bigq q JOIN big_truth t USING (q)});
}
cmp_ok($recall{auto}, '>=', $recall{off},
    "graph clusters: recall with the helper's exact answers ($recall{auto}/200) at least the CPU's ($recall{off}/200)");

# concurrent sessions, batched
$node->safe_psql('postgres',
    'ALTER SYSTEM SET vecstore.gpu_batch_delay = 20000; SELECT pg_reload_conf()');
ok( $node->poll_query_until(
        'postgres', "SELECT state = 'running' FROM vecstore_gpu_status()"),
    'the helper restarts with a 20 ms batching delay');
sleep 1;
my ($breq0, $bbat0) = split /\|/, status('requests || \'|\' || batches');
my @procs;
for my $i (1 .. 4)
{
    my ($in, $out, $err) = ('', '', '');
    push @procs,
      IPC::Run::start(
        [
            'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c',
            flat_knn_sql("flat_c$i", 'SET vecstore.gpu = auto; SET vecstore.gpu_min_scans = 1;')
        ],
        \$in, \$out, \$err);
}
my $finished = 0;
for my $p (@procs)
{
    $finished++ if $p->finish;
}
is($finished, 4, 'four concurrent sessions finished');
my ($breq1, $bbat1) = split /\|/, status('requests || \'|\' || batches');
my $same = 0;
$same += (same_tables('flat_off', "flat_c$_") eq '0') for 1 .. 4;
is($same, 4, 'each with the same results as the CPU');
cmp_ok($bbat1 - $bbat0, '<', $breq1 - $breq0,
    'requests from several sessions were batched (' . ($breq1 - $breq0) . ' requests in '
      . ($bbat1 - $bbat0) . ' batches)');

# little GPU memory: fewer clusters resident, same results
$node->safe_psql('postgres',
    'ALTER SYSTEM RESET vecstore.gpu_batch_delay; ALTER SYSTEM SET vecstore.gpu_memory = 1; SELECT pg_reload_conf()');
ok( $node->poll_query_until(
        'postgres', "SELECT state = 'running' AND memory_limit = 1048576 FROM vecstore_gpu_status()"),
    'the helper restarts with 1 MB of GPU memory');
flat_knn('flat_small', 'SET vecstore.gpu = auto; SET vecstore.gpu_min_scans = 1;');
is(same_tables('flat_off', 'flat_small'), '0', 'with 1 MB the results are the same');
ok( $node->poll_query_until(
        'postgres', 'SELECT resident_clusters BETWEEN 1 AND 30 AND memory_used <= 1048576 FROM vecstore_gpu_status()'),
    'and at most 1 MB of clusters stays resident (LRU)');
# a query over 39 of the 40 clusters (about 1.3 MB; all 40 would be an
# exact scan, which stays on the CPU): the helper takes a batch's clusters
# in rounds that fit, each round's staying resident until its keys are
# computed, so none fails for room
my ($lreq0, $lfb0) = split /\|/, status('requests || \'|\' || fallbacks');
flat_knn('flat_off_most', 'SET vecstore.gpu = off; SET vecstore.probes = 39;');
flat_knn('flat_small_most', 'SET vecstore.gpu = auto; SET vecstore.gpu_min_scans = 1; SET vecstore.probes = 39;');
is(same_tables('flat_off_most', 'flat_small_most'), '0',
    '39 clusters probed with 1 MB of GPU memory: the same results');
my ($lreq1, $lfb1) = split /\|/, status('requests || \'|\' || fallbacks');
cmp_ok($lreq1 - $lreq0, '>=', 50, 'each query asked the helper (' . ($lreq1 - $lreq0) . ' requests)');
is($lfb1, $lfb0, 'and none fell back: the helper went in rounds that fit');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET vecstore.gpu_memory; SELECT pg_reload_conf()');

# 6. vecstore.gpu = off in the configuration stops the helper; so does a
# server stop
$pid = status('helper_pid');
$node->safe_psql('postgres', 'ALTER SYSTEM SET vecstore.gpu = off; SELECT pg_reload_conf()');
ok( $node->poll_query_until(
        'postgres', "SELECT state = 'disabled' AND helper_pid IS NULL FROM vecstore_gpu_status()"),
    'vecstore.gpu = off in the server: the service is disabled');
ok(!pid_alive($pid), 'and its helper has stopped');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET vecstore.gpu; SELECT pg_reload_conf()');
ok( $node->poll_query_until(
        'postgres', "SELECT state = 'running' FROM vecstore_gpu_status()"),
    'back to auto: a helper runs again');
$pid = status('helper_pid');
$node->stop;
ok(!pid_alive($pid), 'after a server stop no helper is left');

# 7. without shared_preload_libraries
my $plain = PostgreSQL::Test::Cluster->new('nogpu');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION vecstore');
is($plain->safe_psql('postgres', 'SELECT state FROM vecstore_gpu_status()'),
    'not loaded', 'without shared_preload_libraries: "not loaded"');
my ($ret, $out, $err) = $plain->psql('postgres',
    q{SET vecstore.gpu = on; CREATE TABLE t (v vector(2));
      INSERT INTO t VALUES ('[1,2]'); CREATE INDEX ON t USING vecstore (v)});
like($err, qr/GPU service is not running/, 'and vecstore.gpu = on is an error there');
$plain->stop;

done_testing();
