#!/usr/bin/env bash
# pgvector-migrate.sh - turn a pg_dump of a pgvector database into one that
# restores into vecstore.
#
# Usage:
#   tools/pgvector-migrate.sh DUMP [pg_restore options...] > vecstore.sql
#   psql -d newdb -1 -v ON_ERROR_STOP=1 -f vecstore.sql
#
# or in one command:
#   set -o pipefail
#   tools/pgvector-migrate.sh DUMP | psql -d newdb -1 -v ON_ERROR_STOP=1
#
# (-1: one transaction, so that a restore that fails leaves nothing; not
# with a dump made with --create or by pg_dumpall, which connect.)
#
# DUMP is a plain SQL dump (pg_dump, pg_dumpall, or "-" for standard input)
# or a custom-, tar- or directory-format dump, which goes through
# "pg_restore -f -" first (extra arguments are passed to pg_restore, e.g.
# --no-owner).  The rewritten SQL goes to standard output, a summary of
# what changed to standard error.
#
# What it changes, only in the statements pg_dump's headers say are an
# extension, a comment, an index or database properties (rows, in COPY
# blocks or INSERT statements, and other objects are never touched):
#   - CREATE EXTENSION ... vector  ->  CREATE EXTENSION ... vecstore
#   - COMMENT ON EXTENSION vector: left out (vecstore has its own)
#   - CREATE INDEX ... USING hnsw / ivfflat with an operator class vecstore
#     has  ->  USING vecstore; the options carry over: hnsw's m and
#     ef_construction and ivfflat's lists mean the same in vecstore
#   - CREATE INDEX with an operator class vecstore does not index
#     (bit_jaccard_ops, sparsevec_*): left out, as a comment, and reported,
#     and so are the statements about it that follow (its comment, ALTER
#     INDEX ... ATTACH PARTITION); the column and its rows are restored,
#     and queries on it scan the table
#   - CREATE INDEX ... bit_hamming_ops: made in a DO block that leaves it
#     out with a WARNING when the column is wider than vecstore indexes
#     (4096 bits; pgvector takes 64,000)
#   - settings of pgvector (hnsw.*, ivfflat.*) in ALTER DATABASE / ROLE ...
#     SET: left out, as a comment; README "Coming from pgvector" says what
#     to set instead
#
# Other objects that name hnsw or ivfflat (a function that makes an index
# at run time) are left as they are, and reported.
#
# Exit status: 0, or 1 when the dump could not be read (the output then
# ends in a statement that fails, so that psql stops).
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//'
    exit 1
fi
dump=$1
shift

# the operator classes vecstore indexes, as pgvector names them
supported='vector_l2_ops|vector_ip_ops|vector_cosine_ops|vector_l1_ops|halfvec_l2_ops|halfvec_ip_ops|halfvec_cosine_ops|halfvec_l1_ops|bit_hamming_ops'

rewrite() {
    SUPPORTED="$supported" perl -ne '
        BEGIN {
            $sup = $ENV{SUPPORTED};
            %n = ();
            %gone = ();         # indexes left out, as schema.name and name
            $copy = 0;
            $type = "";         # the object pg_dump said comes next ("" before any)
            $skip = 0;          # inside a statement being left out
            $insert = 0;        # inside an INSERT of rows
        }
        # a binary dump cannot be read line by line
        if ($. == 1 && (/^PGDMP/ || (length($_) > 262 && substr($_, 257, 5) eq "ustar"))) {
            print STDERR "pgvector-migrate: this is a custom- or tar-format dump: give its file name, not standard input\n";
            print "DO \$pgvm\$BEGIN RAISE EXCEPTION \x27pgvector-migrate: a binary dump came on standard input\x27; END\$pgvm\$;\n";
            $fail = 1;
            exit 1;
        }
        # rows of a COPY block pass through untouched, whatever they hold
        if ($copy) {
            $copy = 0 if /^\\\.\r?$/;
            print;
            next;
        }
        # an INSERT (pg_dump --inserts) passes through whole: its strings
        # may hold any line, a COPY or a header among them
        if ($insert) {
            print;
            $quotes += () = /\x27/g;
            $insert = 0 if /;\s*$/ && $quotes % 2 == 0;
            next;
        }
        if (/^INSERT INTO\s/i) {
            print;
            $quotes = () = /\x27/g;
            $insert = 1 unless /;\s*$/ && $quotes % 2 == 0;
            next;
        }
        if (/^COPY\s.*\bFROM\s+stdin;\s*$/i) {
            $copy = 1;
            print;
            next;
        }
        # the rest of a statement being left out
        if ($skip) {
            print "-- $_";
            $quotes += () = /\x27/g;
            $skip = 0 if /;\s*$/ && $quotes % 2 == 0;
            next;
        }
        # pg_dump names each object before it: "-- Name: x; Type: INDEX; ..."
        # ("-- Data for Name: x; Type: TABLE DATA" for rows); statements are
        # rewritten only where they are what the header says (an INSERT of
        # a --inserts dump holds user text, which must pass untouched)
        if (/^-- (?:Data for )?Name: .*; Type: ([^;]+);/) {
            $type = $1;
            print;
            next;
        }
        if ($type eq "TABLE DATA" || ($type ne "" && $type !~ /^(?:EXTENSION|COMMENT|INDEX|INDEX ATTACH|DATABASE|DATABASE PROPERTIES)$/)) {
            if (/\bUSING\s+(hnsw|ivfflat)\b/i && $type ne "TABLE DATA") {
                $n{"hnsw or ivfflat named in other objects, left as they are"}++;
                print STDERR "pgvector-migrate: $type names hnsw or ivfflat (left as it is): $_";
            }
            print;
            next;
        }
        if (/^(CREATE EXTENSION\s+(?:IF NOT EXISTS\s+)?)(?:"?vector"?)(\s|;)(.*)$/s) {
            my ($head, $sep, $rest) = ($1, $2, $3);
            $rest =~ s/\s+VERSION\s+\S+//i;     # a pgvector version means nothing here
            print $head . "vecstore" . $sep . $rest;
            $n{extension}++;
            next;
        }
        if (/^COMMENT ON EXTENSION\s+"?vector"?\s+IS\b/i) {
            print "-- pgvector-migrate: left out: $_";
            $n{comment}++;
            $quotes = () = /\x27/g;
            $skip = 1 unless /;\s*$/ && $quotes % 2 == 0;
            next;
        }
        if (/^\s*ALTER\s+(DATABASE|ROLE|USER)\b.*\bSET\s+"?(hnsw|ivfflat)\./i) {
            print "-- pgvector-migrate: left out (pgvector setting; see README, \"Coming from pgvector\"): $_";
            $n{setting}++;
            next;
        }
        # statements about an index left out: its comment, its partitions
        if (/^(?:COMMENT ON INDEX|ALTER INDEX(?:\s+IF EXISTS)?)\s+((?:"[^"]+"|[^\s."]+)(?:\.(?:"[^"]+"|[^\s."]+))?)/i && $gone{$1}) {
            print "-- pgvector-migrate: left out (its index was left out): $_";
            $n{"statement on an index left out"}++;
            $quotes = () = /\x27/g;
            $skip = 1 unless /;\s*$/ && $quotes % 2 == 0;
            next;
        }
        if (/^ALTER INDEX\b.*\bATTACH PARTITION\s+((?:"[^"]+"|[^\s.";]+)(?:\.(?:"[^"]+"|[^\s.";]+))?)\s*;/i && $gone{$1}) {
            print "-- pgvector-migrate: left out (its index was left out): $_";
            $n{"statement on an index left out"}++;
            next;
        }
        if (/^CREATE\s+(?:UNIQUE\s+)?INDEX\b.*\bUSING\s+(hnsw|ivfflat)\s*\(/i) {
            my $am = lc $1;
            # its name and the schema of its table (pg_dump: "CREATE INDEX name ON
            # [ONLY] schema.table USING"), for the statements about it later
            my ($name, $schema) = ("", "");
            if (/^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF NOT EXISTS\s+)?((?:"(?:[^"]|"")+"|[^\s"(]+))\s+ON\s+(?:ONLY\s+)?((?:"(?:[^"]|"")+"|[^\s".]+)\.)?/i && uc($1) ne "ON") {
                ($name, $schema) = ($1, $2 // "");
            }
            my @ops = /\b(?:[A-Za-z_][A-Za-z0-9_]*\.)?((?:vector|halfvec|bit|sparsevec)_[a-z0-9]+_ops)\b/g;
            my @bad = grep { !/^(?:$sup)$/ } @ops;
            if (@bad) {
                print "-- pgvector-migrate: left out (vecstore does not index $bad[0]): $_";
                $n{"index left out"}++;
                if ($name ne "") {
                    $gone{$name} = 1;
                    $gone{$schema . $name} = 1;
                }
                print STDERR "pgvector-migrate: left out an index with operator class $bad[0]: $_";
                next;
            }
            s/\bUSING\s+(hnsw|ivfflat)\s*\(/USING vecstore (/i;
            if (grep { /^bit_/ } @ops) {
                # pgvector indexes bit columns of up to 64,000 bits, vecstore
                # of up to 4,096: a wider one is left out when it is made
                chomp(my $stmt = $_);
                $stmt =~ s/;\s*$//;
                (my $lit = $name) =~ s/\x27/\x27\x27/g;
                print "DO \$pgvm\$BEGIN EXECUTE \$pgvm_index\$$stmt\$pgvm_index\$; "
                  . "EXCEPTION WHEN program_limit_exceeded THEN "
                  . "RAISE WARNING \x27pgvector-migrate: index % left out: %\x27, \x27$lit\x27, SQLERRM; END\$pgvm\$;\n";
            } else {
                print;
            }
            $n{"index $am"}++;
            next;
        }
        print;
        END {
            exit 1 if $fail;
            my @parts = map { "$_: $n{$_}" } sort keys %n;
            print STDERR "pgvector-migrate: " . (@parts ? join(", ", @parts) : "nothing of pgvector found") . "\n";
        }
    '
}

if [ "$dump" = - ]; then
    rewrite
    exit 0
fi
if [ ! -e "$dump" ]; then
    echo "pgvector-migrate: $dump: no such file or directory" >&2
    exit 1
fi

# custom format starts with PGDMP, a tar-format one has "ustar" at byte
# 257; a directory-format dump has toc.dat.  (A pipe can be read once:
# such input is read as plain SQL.)
binary=0
if [ -d "$dump" ]; then
    binary=1
elif [ -f "$dump" ] && { [ "$(head -c 5 "$dump")" = PGDMP ] ||
                         [ "$(dd if="$dump" bs=1 skip=257 count=5 2>/dev/null)" = ustar ]; }; then
    binary=1
fi
if [ "$binary" = 1 ]; then
    command -v pg_restore >/dev/null ||
        { echo "pgvector-migrate: pg_restore is needed to read $dump (apt-get install postgresql-client-15)" >&2; exit 1; }
    # a dump pg_restore could not read to its end must not restore in part:
    # a statement that fails stops psql (ON_ERROR_STOP) and, with -1, undoes
    # the rest
    set +e
    pg_restore -f - "$@" "$dump" | rewrite
    status=("${PIPESTATUS[@]}")
    set -e
    if [ "${status[0]}" != 0 ] || [ "${status[1]}" != 0 ]; then
        echo "DO \$pgvm\$BEGIN RAISE EXCEPTION 'pgvector-migrate: $dump could not be read to its end'; END\$pgvm\$;"
        echo "pgvector-migrate: pg_restore could not read $dump to its end" >&2
        exit 1
    fi
else
    rewrite < "$dump"
fi
