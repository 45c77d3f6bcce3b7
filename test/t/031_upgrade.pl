#-------------------------------------------------------------------------
#
# 031_upgrade.pl
#     TAP test: ALTER EXTENSION vecstore UPDATE from the frozen 0.1.0 to the
#     current version gives the same catalog objects as a fresh install.
#
# Database "upgraded" installs 0.1.0 (its data survives: a table of
# vectors), then updates; database "fresh" installs the default version.
# Both are described by one catalog query: every object of the extension
# (pg_describe_object), and for functions their arguments, result,
# volatility, strictness, parallel safety and C symbol, for operators
# their commutator/negator/restrict/join, for operator classes their
# members, for views their definition, and every comment.  The two
# descriptions must be equal, line for line.
#
# IDENTIFICATION
#     test/t/031_upgrade.pl
#
#-------------------------------------------------------------------------
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf(
    'postgresql.conf', qq{
vecstore.gpu = off
});
$node->start;

my $current = $node->safe_psql('postgres',
    q{SELECT default_version FROM pg_available_extensions WHERE name = 'vecstore'});
isnt($current, '0.1.0', "the default version ($current) is past the frozen 0.1.0");

my @versions = split /\n/, $node->safe_psql('postgres',
    q{SELECT version FROM pg_available_extension_versions WHERE name = 'vecstore' ORDER BY 1});
ok((grep { $_ eq '0.1.0' } @versions), '0.1.0 can still be installed');

my $path = $node->safe_psql('postgres',
    qq{SELECT path FROM pg_extension_update_paths('vecstore')
       WHERE source = '0.1.0' AND target = '$current'});
is($path, "0.1.0--$current", "one update script from 0.1.0 to $current");

$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');

$node->safe_psql(
    'upgraded', q{
CREATE EXTENSION vecstore VERSION '0.1.0';
CREATE TABLE items (id int, v vector(3));
INSERT INTO items SELECT g, ARRAY[g, g % 7, 1]::vector FROM generate_series(1, 100) g;
});
is($node->safe_psql('upgraded',
        q{SELECT extversion FROM pg_extension WHERE extname = 'vecstore'}),
    '0.1.0', 'installed at 0.1.0');
# 0.1.0 lacks what 0.2.0 added
my ($rc, $out, $err) = $node->psql('upgraded', q{SELECT vecstore_stats()});
isnt($rc, 0, 'vecstore_stats does not exist in 0.1.0');

$node->safe_psql('upgraded', 'ALTER EXTENSION vecstore UPDATE');
is($node->safe_psql('upgraded',
        q{SELECT extversion FROM pg_extension WHERE extname = 'vecstore'}),
    $current, "updated to $current");
$node->safe_psql('fresh', 'CREATE EXTENSION vecstore');

# Everything the extension owns, described so that two databases compare:
# no OIDs, only names and definitions.
my $describe = q{
WITH objs AS (
    SELECT d.classid, d.objid, d.objsubid
    FROM pg_depend d
    JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
    WHERE e.extname = 'vecstore' AND d.deptype = 'e'
)
SELECT pg_describe_object(classid, objid, objsubid) || ' | ' ||
    coalesce(CASE classid
        WHEN 'pg_proc'::regclass THEN (
            SELECT format('%s -> %s %s strict=%s parallel=%s cost=%s rows=%s src=%s kind=%s',
                pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                p.provolatile, p.proisstrict, p.proparallel, p.procost, p.prorows,
                p.prosrc, p.prokind)
            FROM pg_proc p WHERE p.oid = objid)
        WHEN 'pg_operator'::regclass THEN (
            SELECT format('%s %s -> %s com=%s neg=%s rest=%s join=%s proc=%s',
                o.oprleft::regtype, o.oprright::regtype, o.oprresult::regtype,
                o.oprcom::regoperator, o.oprnegate::regoperator,
                o.oprrest, o.oprjoin, o.oprcode)
            FROM pg_operator o WHERE o.oid = objid)
        WHEN 'pg_type'::regclass THEN (
            SELECT format('len=%s align=%s storage=%s in=%s out=%s recv=%s send=%s typmodin=%s typmodout=%s cat=%s',
                t.typlen, t.typalign, t.typstorage, t.typinput, t.typoutput,
                t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typcategory)
            FROM pg_type t WHERE t.oid = objid)
        WHEN 'pg_opclass'::regclass THEN (
            SELECT format('default=%s type=%s members=%s', c.opcdefault, c.opcintype::regtype,
                (SELECT string_agg(m, ', ' ORDER BY m) FROM (
                    SELECT format('op %s %s %s', a.amopstrategy, a.amopopr::regoperator,
                                  a.amopsortfamily::regclass) AS m
                    FROM pg_amop a WHERE a.amopfamily = c.opcfamily
                    UNION ALL
                    SELECT format('proc %s %s', p.amprocnum, p.amproc::regprocedure)
                    FROM pg_amproc p WHERE p.amprocfamily = c.opcfamily) s))
            FROM pg_opclass c WHERE c.oid = objid)
        WHEN 'pg_class'::regclass THEN (
            SELECT pg_get_viewdef(objid::oid))
        WHEN 'pg_cast'::regclass THEN (
            SELECT format('%s -> %s func=%s ctx=%s method=%s', c.castsource::regtype,
                c.casttarget::regtype, c.castfunc::regprocedure, c.castcontext, c.castmethod)
            FROM pg_cast c WHERE c.oid = objid)
        WHEN 'pg_am'::regclass THEN (
            SELECT format('handler=%s type=%s', a.amhandler, a.amtype)
            FROM pg_am a WHERE a.oid = objid)
    END, '') || ' | ' ||
    coalesce(obj_description(objid, (SELECT relname FROM pg_class WHERE oid = classid)), '')
FROM objs
ORDER BY 1;
};

my $upgraded = $node->safe_psql('upgraded', $describe);
my $fresh = $node->safe_psql('fresh', $describe);
my @u = split /\n/, $upgraded;
my @f = split /\n/, $fresh;
cmp_ok(scalar(@f), '>', 50, 'a fresh install has its objects (' . scalar(@f) . ')');
is(scalar(@u), scalar(@f), 'the updated extension has as many objects as a fresh install');
my %in_fresh = map { $_ => 1 } @f;
my %in_upgraded = map { $_ => 1 } @u;
my @missing = grep { !$in_upgraded{$_} } @f;
my @extra = grep { !$in_fresh{$_} } @u;
is(join("\n", @missing), '', 'nothing of a fresh install is missing or different after the update');
is(join("\n", @extra), '', 'the update leaves nothing a fresh install does not have');

# psql's own description of the extension, as a user would compare them
my $dx_u = $node->safe_psql('upgraded', '\dx+ vecstore');
my $dx_f = $node->safe_psql('fresh', '\dx+ vecstore');
is($dx_u, $dx_f, '\dx+ vecstore is the same after the update as fresh');

# the data made under 0.1.0 is served by 0.2.0's objects
is($node->safe_psql('upgraded',
        q{SELECT id FROM items ORDER BY v <-> '[50,1,1]' LIMIT 1}),
    '50', 'the table made under 0.1.0 answers');
$node->safe_psql('upgraded', 'CREATE INDEX ON items USING vecstore (v)');
is($node->safe_psql('upgraded',
        q{SET enable_seqscan = off; SELECT id FROM items ORDER BY v <-> '[50,1,1]' LIMIT 1}),
    '50', 'an index made after the update answers');
like($node->safe_psql('upgraded', q{SELECT clusters FROM vecstore_index_info('items_v_idx')}),
    qr/^\d+$/, "0.2.0's vecstore_index_info works after the update");

$node->stop;
done_testing();
