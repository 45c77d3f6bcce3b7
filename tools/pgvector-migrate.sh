#!/usr/bin/env bash
# pgvector-migrate.sh - turn a pg_dump of a pgvector database into one that
# restores into vecstore.
#
# Usage:
#   tools/pgvector-migrate.sh DUMP [pg_restore options...] > vecstore.sql
#   psql -d newdb -v ON_ERROR_STOP=1 -f vecstore.sql
#
# or in one command:
#   tools/pgvector-migrate.sh DUMP | psql -d newdb -v ON_ERROR_STOP=1
#
# DUMP is a plain SQL dump (pg_dump, pg_dumpall, or "-" for standard input)
# or a custom-format or directory-format dump, which goes through
# "pg_restore -f -" first (extra arguments are passed to pg_restore, e.g.
# --no-owner).  The rewritten SQL goes to standard output, a summary of
# what changed to standard error.
#
# What it changes (rows, in COPY blocks, are never touched):
#   - CREATE EXTENSION ... vector  ->  CREATE EXTENSION ... vecstore
#   - COMMENT ON EXTENSION vector: left out (vecstore has its own)
#   - CREATE INDEX ... USING hnsw / ivfflat with an operator class vecstore
#     has  ->  USING vecstore; the options carry over: hnsw's m and
#     ef_construction and ivfflat's lists mean the same in vecstore
#   - CREATE INDEX with an operator class vecstore does not index
#     (bit_jaccard_ops, sparsevec_*): left out, as a comment, and reported;
#     the column and its
#     rows are restored, and queries on it scan the table
#   - settings of pgvector (hnsw.*, ivfflat.*) in ALTER DATABASE / ROLE ...
#     SET: left out, as a comment; README "Coming from pgvector" says what
#     to set instead
#
# Exit status: 0, or 1 when the dump could not be read.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
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
            $copy = 0;
        }
        # rows of a COPY block pass through untouched
        if ($copy) {
            $copy = 0 if /^\\\.\r?$/;
            print;
            next;
        }
        if (/^COPY\s.*\bFROM\s+stdin;\s*$/i) {
            $copy = 1;
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
            next;
        }
        if (/^\s*ALTER\s+(DATABASE|ROLE|USER)\b.*\bSET\s+"?(hnsw|ivfflat)\./i) {
            print "-- pgvector-migrate: left out (pgvector setting; see README, \"Coming from pgvector\"): $_";
            $n{setting}++;
            next;
        }
        if (/^CREATE\s+(UNIQUE\s+)?INDEX\b.*\bUSING\s+(hnsw|ivfflat)\s*\(/i) {
            my $am = lc $2;
            # the operator classes named in the statement (pg_dump qualifies them)
            my @ops = /\b(?:[A-Za-z_][A-Za-z0-9_]*\.)?((?:vector|halfvec|bit|sparsevec)_[a-z0-9]+_ops)\b/g;
            my @bad = grep { !/^(?:$sup)$/ } @ops;
            if (@bad) {
                print "-- pgvector-migrate: left out (vecstore does not index $bad[0]): $_";
                $n{"index left out"}++;
                print STDERR "pgvector-migrate: left out an index with operator class $bad[0]: $_";
                next;
            }
            s/\bUSING\s+(hnsw|ivfflat)\s*\(/USING vecstore (/i;
            print;
            $n{"index $am"}++;
            next;
        }
        print;
        END {
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

# custom format starts with PGDMP; a directory-format dump has toc.dat
if [ -d "$dump" ] || [ "$(head -c 5 "$dump")" = PGDMP ]; then
    command -v pg_restore >/dev/null ||
        { echo "pgvector-migrate: pg_restore is needed to read $dump (apt-get install postgresql-client-15)" >&2; exit 1; }
    pg_restore -f - "$@" "$dump" | rewrite
else
    rewrite < "$dump"
fi
