#-------------------------------------------------------------------------
#
# 032_pgvector_migrate.pl
#     TAP test: a dump of a pgvector database restores into vecstore
#     through tools/pgvector-migrate.sh, in one command, from a plain and
#     from a custom-format dump (test/fixtures/README says how they were
#     made).
#
# Checked: every row arrives with the same text as in the pgvector
# database (one digest); the vector indexes come back as vecstore indexes
# (hnsw and ivfflat alike, options kept), those of operator classes
# vecstore does not index (sparsevec) are left out and reported;
# pgvector's setting in ALTER DATABASE is left out; the view restores and
# queries are answered by the new indexes as an exact scan answers them.
# From the "edge" fixtures: text rows of a --inserts dump that look like
# pgvector DDL arrive untouched; statements about an index left out (its
# comment, ALTER INDEX ... ATTACH PARTITION) are left out with it, so the
# restore (one transaction, ON_ERROR_STOP) goes through to its end; a bit
# index wider than vecstore's 4096 bits is left out with a WARNING; a tar
# dump reads as the plain one.  A binary dump on standard input, and a
# custom dump cut short, end the output in a failing statement.
#
# IDENTIFICATION
#     test/t/032_pgvector_migrate.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = $ENV{VECSTORE_SRC} // '.';
my $tool = "$src/tools/pgvector-migrate.sh";
my $fixtures = "$src/test/fixtures";
# the rows' digest in the pgvector database (test/fixtures/README)
my $DIGEST = '3313fc8fa3441a807f02cbd1d0c7900e';

my $node = PostgreSQL::Test::Cluster->new('migrate');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
shared_preload_libraries = 'vecstore'
vecstore.gpu = off
vecstore.compaction_worker = off
});
$node->start;

# pg_restore and psql of the server's installation
my $bindir = $node->config_data('--bindir');
local $ENV{PATH} = "$bindir:$ENV{PATH}";
my $connstr = $node->connstr('postgres');

# restore DUMP through the tool into database DB ('postgres' for a dump
# that creates its own); returns the tool's standard error
sub restore
{
    my ($dump, $db, @args) = @_;
    my $err = "$PostgreSQL::Test::Utils::tmp_check/migrate_$db.err";
    # one transaction, as README says, unless the dump creates its database
    my $one = $db eq 'postgres' ? '' : '-1';
    my $cmd = "'$tool' '$dump' @args 2>'$err' | psql -X -q $one -v ON_ERROR_STOP=1 '"
      . $node->connstr($db) . "' 2>>'$err' >/dev/null";
    my $rc = system('bash', '-c', "set -o pipefail; $cmd");
    is($rc, 0, "restoring $dump into $db through the tool succeeds");
    return slurp_file($err);
}

sub check_database
{
    my ($db, $label) = @_;

    is($node->safe_psql($db,
            q{SELECT md5(string_agg(concat_ws('|', id, embedding, half, sparse, bits, note), ';' ORDER BY id)) || ' ' || count(*) FROM items}),
        "$DIGEST 301", "$label: every row as pgvector had it");
    is($node->safe_psql($db, q{SELECT extname FROM pg_extension WHERE extname IN ('vector', 'vecstore')}),
        'vecstore', "$label: the extension is vecstore");
    is($node->safe_psql($db,
            q{SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_index i
              JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
              WHERE i.indrelid = 'items'::regclass AND a.amname = 'vecstore'}),
        'items_bits,items_expr,items_half,items_half_ivf,items_hnsw_cos,items_hnsw_l1,items_hnsw_l2,items_ivf_ip,items_partial',
        "$label: the vector, halfvec and bit indexes are vecstore indexes");
    is($node->safe_psql($db,
            q{SELECT count(*) FROM pg_class WHERE relname = 'items_sparse'}),
        '0', "$label: the sparsevec index is left out");
    like($node->safe_psql($db, q{SELECT pg_get_indexdef('items_hnsw_l2'::regclass)}),
        qr/USING vecstore \(embedding(?: vector_l2_ops)?\) WITH \(m='8', ef_construction='32'\)/,
        "$label: hnsw's options carry over");
    like($node->safe_psql($db, q{SELECT pg_get_indexdef('items_ivf_ip'::regclass)}),
        qr/USING vecstore \(embedding vector_ip_ops\) WITH \(lists='4'\)/,
        "$label: ivfflat's lists carry over");
    is($node->safe_psql($db, q{SELECT count(*) FROM nearest}), '5', "$label: the view restores");

    # each index answers as an exact scan does
    for my $q (
        [ 'embedding <-> \'[1,2,3]\'', 'items_hnsw_l2' ],
        [ 'embedding <=> \'[1,2,3]\'', 'items_hnsw_cos' ],
        [ 'embedding <#> \'[1,2,3]\'', 'items_ivf_ip' ],
        [ 'embedding <+> \'[1,2,3]\'', 'items_hnsw_l1' ],
        [ 'half <-> \'[3,1,-4]\'', 'items_half' ],
        [ 'half <=> \'[3,1,-4]\'', 'items_half_ivf' ],
        [ 'bits <~> B\'10110011\'', 'items_bits' ])
    {
        my ($order, $index) = @$q;
        my $plan = $node->safe_psql($db,
            "SET enable_seqscan = off; EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY $order LIMIT 5");
        like($plan, qr/Index Scan using $index/, "$label: ORDER BY $order uses $index");
        my $via = $node->safe_psql($db,
            "SET enable_seqscan = off; SELECT array_agg(round(d::numeric, 4)) FROM (SELECT $order AS d FROM items ORDER BY $order LIMIT 5) s");
        my $exact = $node->safe_psql($db,
            "SET enable_indexscan = off; SET enable_bitmapscan = off; SELECT array_agg(round(d::numeric, 4)) FROM (SELECT $order AS d FROM items WHERE $order IS NOT NULL ORDER BY $order LIMIT 5) s");
        is($via, $exact, "$label: $index gives the exact distances");
    }
}

# a plain dump that creates its database (pg_dump --create)
my $err = restore("$fixtures/pgvector-0.8.6.sql", 'postgres');
like($err, qr/left out an index with operator class sparsevec_l2_ops/, 'plain: the sparsevec index is reported');
like($err, qr/index hnsw: 7, index ivfflat: 2, index left out: 1, setting: 1/, 'plain: the summary counts what changed');
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
          WHERE d.datname = 'pgv_src'}),
    '0', "plain: pgvector's setting is left out of ALTER DATABASE");
check_database('pgv_src', 'plain');

# a custom-format dump, into a database made beforehand
$node->safe_psql('postgres', 'CREATE DATABASE fromcustom');
$err = restore("$fixtures/pgvector-0.8.6.dump", 'fromcustom', '--no-owner');
like($err, qr/index hnsw: 7, index ivfflat: 2, index left out: 1/, 'custom: the summary counts what changed');
check_database('fromcustom', 'custom');

# what a dump may hold besides (test/fixtures/README, the "edge" dumps): a
# --inserts dump whose text rows hold lines that look like pgvector DDL;
# a partitioned table with an index vecstore does not make, its
# partition's index attached, a comment on it and a foreign key after;
# bits wider than vecstore indexes; plain, and in the tar format
for my $f ('pgvector-0.8.6-edge.sql', 'pgvector-0.8.6-edge.tar')
{
    my $db = $f =~ /tar$/ ? 'edge_tar' : 'edge_sql';
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $err = restore("$fixtures/$f", $db, '--no-owner');
    like($err, qr/index hnsw: 4, index left out: 2, statement on an index left out: 2/,
        "$f: the summary counts what changed");
    like($err, qr/WARNING:  pgvector-migrate: index wide_h left out: column cannot have more than 4096 dimensions/,
        "$f: the index of bits wider than vecstore's is left out with a WARNING");
    is($node->safe_psql($db,
            q{SELECT md5(string_agg(concat_ws('|', id, body), ';' ORDER BY id)) FROM notes}),
        'a0839f05b23fe14947d9665c94dcedd7', "$f: text rows that look like pgvector DDL are not touched");
    is($node->safe_psql($db,
            q{SELECT md5(string_agg(concat_ws('|', id, tenant, s, e), ';' ORDER BY id)) FROM docs}),
        '1735923e08f5d52566045c201658ef02', "$f: the partitioned table's rows");
    is($node->safe_psql($db,
            q{SELECT string_agg(c.relname || ':' || a.amname, ',' ORDER BY c.relname) FROM pg_class c
              JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('i', 'I') AND n.nspname = 'public'}),
        'docs_a_e_idx:vecstore,docs_e:vecstore,later_pkey:btree,narrow_h:vecstore,notes_pkey:btree',
        "$f: the indexes, the partitioned one attached, those vecstore cannot make left out");
    is($node->safe_psql($db, q{SELECT count(*) FROM pg_constraint WHERE conname = 'child_id_fkey'}),
        '1', "$f: what comes after the left-out index's statements is restored");
}

# pieces of SQL the rewriting must read right: a COPY row that looks like
# a header and an index (untouched), a quoted table name with a space and
# an index without a name (rewritten), a left-out index's comment that
# spans lines with a ';' inside its string (left out whole)
{
    my $in = "$PostgreSQL::Test::Utils::tmp_check/pieces.sql";
    open my $fh, '>', $in or die "$in: $!";
    print $fh <<'SQL';
--
-- Data for Name: snippets; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.snippets (body) FROM stdin;
-- Name: x; Type: INDEX; Schema: public; Owner: -
CREATE INDEX i ON items USING hnsw (embedding vector_l2_ops);
\.

--
-- Name: My Items_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "My Items_idx" ON public."My Items" USING hnsw (embedding public.vector_l2_ops);
CREATE INDEX ON t USING ivfflat (e vector_l2_ops);
CREATE INDEX sv_idx ON public.sv USING hnsw (s public.sparsevec_l2_ops);
COMMENT ON INDEX public.sv_idx IS 'first line;
second line';
SELECT 1;
SQL
    close $fh;
    my $out = `'$tool' - < '$in' 2>/dev/null`;
    like($out, qr/^CREATE INDEX i ON items USING hnsw \(embedding vector_l2_ops\);$/m,
        'pieces: a COPY row that looks like a header and an index is not touched');
    like($out, qr/^CREATE INDEX "My Items_idx" ON public."My Items" USING vecstore \(/m,
        'pieces: a quoted table name with a space');
    like($out, qr/^CREATE INDEX ON t USING vecstore \(/m, 'pieces: an index without a name');
    like($out, qr/^-- second line';\n^SELECT 1;$/m,
        "pieces: a left-out index's comment is left out to its end, and no further");
}

# a binary dump on standard input, or one cut short: the output ends in a
# statement that fails, so that psql stops (and -1 undoes the rest)
for my $case ([ "cat '$fixtures/pgvector-0.8.6-edge.tar' | '$tool' -", 'stdin' ],
    [ "head -c 9000 '$fixtures/pgvector-0.8.6.dump' > '$PostgreSQL::Test::Utils::tmp_check/cut.dump'; '$tool' '$PostgreSQL::Test::Utils::tmp_check/cut.dump'", 'cut' ])
{
    my ($cmd, $what) = @$case;
    my $last = `bash -c "$cmd 2>/dev/null | tail -n 1"`;
    like($last, qr/^DO .*RAISE EXCEPTION 'pgvector-migrate: /, "a dump $what: the output ends in a failing statement");
    my $rc = system('bash', '-c', "set -o pipefail; $cmd >/dev/null 2>&1");
    isnt($rc, 0, "a dump $what: the tool exits non-zero");
}

# a dump with no pgvector in it passes through unchanged
my $plain = "$PostgreSQL::Test::Utils::tmp_check/plain.sql";
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $plain ], 'a dump of postgres');
my $out = `'$tool' '$plain' 2>/dev/null`;
is($out, slurp_file($plain), 'a dump without pgvector passes through byte for byte');

$node->stop;
done_testing();
