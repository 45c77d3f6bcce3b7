#!/usr/bin/env bash
# The whole vecstore test suite on a throwaway server (README; .ci/run).
#
#   ./test/run.sh              (or: make test)
#
# Stages, in order; a failed stage does not stop the later ones that can
# still run, but the script exits non-zero:
#
#   deps          ./tools/deps.sh (installs as root; fatal when it fails)
#   includes      ./tools/check-includes.sh: the include rules that keep the
#                 dependencies one way (algorithms <- storage <- AM phases ->
#                 offload interface <- GPU service; src/README)
#   build         make clean; make WERROR=1 (vecstore.so and the GPU helper,
#                 cuda/vecstore-gpu-helper); tools/fvecs2pg, bench/bench_kernels
#   install       make install
#   server        initdb + start a private server (tools/pgserver.sh)
#   installcheck  make installcheck against it (pg_regress, the REGRESS list),
#                 twice: with vecstore.gpu at its default (auto) and off, so
#                 the output must not depend on it; regression.diffs is
#                 printed when it fails
#   isolation     pg_isolation_regress for test/isolation/specs/*.spec, if any
#   kernel-test   make kernel-test: the stand-alone unit tests of the pure-C
#                 cores, no server (test/kernels: distance kernels, k-means,
#                 HNSW graphs, compact codes)
#   tap           prove, one test/t/*.pl at a time, as the unprivileged user
#                 (PostgreSQL::Test::Cluster runs its own initdb, which
#                 refuses root); a failing file's regress_log is printed
#   fuzz          test/t/030_fuzz.pl (not run by "tap"), the same way:
#                 mutated vector literals and binary COPY files, damaged
#                 segment files and fork pages, each followed by queries
#                 checked against a model or an exact scan; about a minute
#                 (VECSTORE_FUZZ_SECONDS, default 60); its seed is in the
#                 summary, so a failure replays with VECSTORE_FUZZ_SEED
#                 (and VECSTORE_FUZZ_ONLY=literals|copy|segment|fork)
#   citus         the Citus tests, test/citus/*.pl (not run by "tap"), the
#                 same way: a coordinator and two workers of this machine
#                 with a distributed table and vecstore indexes on its
#                 shards (README, "Scaling out").  When citus.so is not
#                 installed in this PostgreSQL, it first builds and installs
#                 Citus 13.2.2 with ../shared/deps/citus/build.sh (2-8
#                 minutes on 2 cores; $VECSTORE_CITUS_BUILD names another
#                 script); a failed build is FAIL, not SKIP.  About a
#                 minute once Citus is installed.
#
# Then a summary, one line per stage, and a last line "N passed, N failed"
# that counts STAGES (not individual tests): a stage that could not run
# because an earlier one failed counts as failed; a stage with nothing to
# run (no specs, no TAP files yet) is SKIP and not counted.
#
# TAP tests get VECSTORE_DATA (the absolute path of ../shared/data, or a
# copy the test user can read) and VECSTORE_SRC (the repository, or a copy
# the test user can read).  Logs: tmp_check/logs/.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
data_root=${VECSTORE_DATA:-$(dirname "$repo")/shared/data}
citus_build=${VECSTORE_CITUS_BUILD:-$(dirname "$repo")/shared/deps/citus/build.sh}
jobs=$(nproc 2>/dev/null || echo 2)

stage_names=()
stage_results=()
stage_notes=()

# record NAME PASS|FAIL|SKIP [NOTE] - the outcome of one stage.
record() {
    stage_names+=("$1")
    stage_results+=("$2")
    stage_notes+=("${3:-}")
    echo "--- $1: $2${3:+ ($3)}"
}

header() {
    printf '\n=== %s ===\n' "$1"
}

# summary - the per-stage table and the final count; returns the failures.
summary() {
    local i passed=0 failed=0
    header summary
    for i in "${!stage_names[@]}"; do
        printf '  %-4s  %-13s %s\n' "${stage_results[$i]}" "${stage_names[$i]}" "${stage_notes[$i]}"
        case ${stage_results[$i]} in
            PASS) passed=$((passed + 1)) ;;
            FAIL) failed=$((failed + 1)) ;;
        esac
    done
    echo "$passed passed, $failed failed"
    return "$failed"
}

# ok STAGE - did STAGE pass?
ok() {
    local i
    for i in "${!stage_names[@]}"; do
        [ "${stage_names[$i]}" = "$1" ] && [ "${stage_results[$i]}" = PASS ] && return 0
    done
    return 1
}

# --- deps ---------------------------------------------------------------
header deps
if ./tools/deps.sh; then
    record deps PASS
else
    record deps FAIL "./tools/deps.sh failed: nothing else can run"
    summary || true
    exit 1
fi

# --- includes -----------------------------------------------------------
header includes
if ./tools/check-includes.sh; then
    record includes PASS "the include rules hold"
else
    record includes FAIL "./tools/check-includes.sh"
fi

# shellcheck source=tools/pgserver.sh
. "$repo/tools/pgserver.sh"
vs_init "$repo"

# --- build --------------------------------------------------------------
header build
vs_reap_stale      # "make clean" removes tmp_check/, servers and all
if make clean >/dev/null &&
    make -j"$jobs" WERROR=1 &&
    make WERROR=1 tools/fvecs2pg &&
    { [ ! -f bench/bench_kernels.c ] || make WERROR=1 bench/bench_kernels; }; then
    record build PASS "make WERROR=1"
else
    record build FAIL "make WERROR=1"
fi
logdir=$repo/tmp_check/logs
mkdir -p "$logdir"

# --- install ------------------------------------------------------------
if ok build; then
    header install
    if vs_make_install; then
        record install PASS "into $VS_PG_PKGLIBDIR"
    else
        record install FAIL
    fi
else
    record install FAIL "not run: build failed"
fi

# --- server -------------------------------------------------------------
if ok install; then
    header server
    if vs_server_start test; then
        record server PASS "$PGHOST, port $PGPORT, user $VS_USER"
    else
        record server FAIL "did not start"
    fi
else
    record server FAIL "not run: install failed"
fi

# --- installcheck -------------------------------------------------------
if ok server; then
    header installcheck
    # ISOLATION and TAP_TESTS are run below (TAP as the unprivileged user),
    # so keep PGXS from running them here should the Makefile name them.
    if make installcheck ISOLATION= TAP_TESTS= 2>&1 | tee "$logdir/installcheck.log" &&
        PGOPTIONS="${PGOPTIONS:-} -c vecstore.gpu=off" make installcheck ISOLATION= TAP_TESTS= 2>&1 |
        tee -a "$logdir/installcheck.log"; then
        record installcheck PASS "$(grep -Eo '(All )?[0-9]+ (of [0-9]+ )?tests (passed|failed)[^.]*' "$logdir/installcheck.log" | tail -n 1), with vecstore.gpu auto and off"
    else
        if [ -f regression.diffs ]; then
            echo "--- regression.diffs (first 400 lines; all of it in $repo/regression.diffs) ---"
            head -n 400 regression.diffs
        fi
        note=$(grep -Eo '[0-9]+ of [0-9]+ tests failed[^.]*' "$logdir/installcheck.log" | tail -n 1 || true)
        record installcheck FAIL "${note:-see $logdir/installcheck.log}"
    fi
else
    record installcheck FAIL "not run: no server"
fi

# --- isolation ----------------------------------------------------------
shopt -s nullglob
specs=(test/isolation/specs/*.spec)
shopt -u nullglob
if [ ${#specs[@]} -eq 0 ]; then
    record isolation SKIP "no test/isolation/specs/*.spec yet"
elif ! ok server; then
    record isolation FAIL "not run: no server"
else
    header isolation
    names=()
    for s in "${specs[@]}"; do
        names+=("$(basename "$s" .spec)")
    done
    rm -rf output_iso
    if "$VS_PG_PKGLIBDIR/pgxs/src/test/isolation/pg_isolation_regress" \
        --inputdir=test/isolation --outputdir=output_iso \
        --bindir="$VS_PG_BINDIR" --load-extension=vecstore \
        --dbname=isolation_regression "${names[@]}" 2>&1 | tee "$logdir/isolation.log"; then
        record isolation PASS "${#names[@]} specs"
    else
        if [ -f output_iso/regression.diffs ]; then
            echo "--- output_iso/regression.diffs (first 400 lines) ---"
            head -n 400 output_iso/regression.diffs
        fi
        record isolation FAIL "see $logdir/isolation.log"
    fi
fi

# The TAP tests run servers of their own: free this one's memory first.
if ok server && ! vs_server_stop; then
    record server-stop FAIL "the test server did not stop (log: $VS_PGLOG)"
fi

# --- kernel-test --------------------------------------------------------
if [ -f test/kernels/test_kernels.c ]; then
    header kernel-test
    if make WERROR=1 kernel-test 2>&1 | tee "$logdir/kernel-test.log"; then
        record kernel-test PASS "$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logdir/kernel-test.log" | tail -n 1)"
    else
        note=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logdir/kernel-test.log" | tail -n 1 || true)
        record kernel-test FAIL "${note:-see $logdir/kernel-test.log}"
    fi
else
    record kernel-test SKIP "no test/kernels/test_kernels.c yet"
fi

# --- tap, fuzz, citus ----------------------------------------------------
# The fuzz test is a stage of its own, not one of the "tap" files; so are
# the Citus tests, in a directory of their own.
fuzz_file=test/t/030_fuzz.pl
fuzz=
[ -f "$fuzz_file" ] && fuzz=$fuzz_file
shopt -s nullglob
taps=()
for t in test/t/*.pl; do
    [ "$t" = "$fuzz_file" ] || taps+=("$t")
done
citus_tests=(test/citus/*.pl)
shopt -u nullglob
if [ ${#taps[@]} -eq 0 ] && [ -z "$fuzz" ] && [ ${#citus_tests[@]} -eq 0 ]; then
    record tap SKIP "no test/t/*.pl yet"
    record fuzz SKIP "no $fuzz_file yet"
    record citus SKIP "no test/citus/*.pl yet"
elif ! ok install; then
    record tap FAIL "not run: install failed"
    [ -z "$fuzz" ] || record fuzz FAIL "not run: install failed"
    [ ${#citus_tests[@]} -eq 0 ] || record citus FAIL "not run: install failed"
else
    vs_user_dir tap
    testdir=$REPLY

    # The test user needs to read the tests and the data: when it cannot
    # reach them where they are (a checkout under /root), give it copies.
    src=$repo
    if ! vs_as_user test -r "$repo/test/run.sh"; then
        src=$testdir/src
        mkdir "$src"
        tar -C "$repo" --exclude=./.git --exclude=./tmp_check -cf - . | tar -C "$src" -xf -
        chown -R "$VS_USER:" "$src"
        echo "tap: $VS_USER cannot read $repo; running a copy in $src"
    fi
    data=
    if [ -d "$data_root" ]; then
        data=$(cd "$data_root" && pwd)
        if ! vs_as_user test -r "$data/README.md"; then
            data=$testdir/data
            # Hard links where possible (the files are world-readable;
            # never chown them, that would change the originals).
            if ! cp -al "$data_root" "$data" 2>/dev/null; then
                rm -rf "$data"
                cp -r "$data_root" "$data"
                chmod -R a+rX "$data"
            fi
            echo "tap: $VS_USER cannot read $data_root; using a copy in $data"
        fi
    fi

    # prove runs under a child subreaper: a test that kills a postmaster
    # with SIGKILL and restarts it at once needs the dead one reaped at
    # once, and some PID 1s (VMs, containers) reap orphans only now and
    # then, leaving a zombie whose pid blocks the restart.
    # shellcheck disable=SC2016  # Perl, not shell
    reaper='
        use Config;
        my %prctl = (x86_64 => 157, aarch64 => 167);   # SYS_prctl
        my ($arch) = $Config{archname} =~ /^(x86_64|aarch64)/;
        # PR_SET_CHILD_SUBREAPER = 36; without it, just run the command.
        exec @ARGV or die "exec $ARGV[0]: $!\n"
            unless $arch && syscall($prctl{$arch}, 36, 1, 0, 0, 0) == 0;
        my $pid = fork() // die "fork: $!\n";
        exec @ARGV or die "exec $ARGV[0]: $!\n" if $pid == 0;
        my $status = 0;
        while ((my $p = waitpid(-1, 0)) > 0) {
            if ($p == $pid) { $status = $?; last }
        }
        exit(($status & 127) ? 128 + ($status & 127) : $status >> 8);'

    pgxs=$VS_PG_PKGLIBDIR/pgxs

    # prove_file FILE - prove one TAP file as the test user; on failure,
    # print the end of its regress_log.  (VECSTORE_FUZZ_* pass through.)
    prove_file() {
        local t=$1 log
        if (cd "$src" && vs_as_user env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE \
            PERL5LIB="$pgxs/src/test/perl${PERL5LIB:+:$PERL5LIB}" \
            PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
            TESTDIR="$testdir" VECSTORE_DATA="$data" VECSTORE_SRC="$src" \
            perl -e "$reaper" -- prove --norc -I "$pgxs/src/test/perl" -I "$src" -I "$src/test" "$t"); then
            return 0
        fi
        log=$testdir/tmp_check/log/regress_log_$(basename "$t" .pl)
        if [ -f "$log" ]; then
            echo "--- last 60 lines of $log ---"
            tail -n 60 "$log"
        fi
        return 1
    }

    if [ ${#taps[@]} -eq 0 ]; then
        record tap SKIP "no test/t/*.pl yet"
    else
        header tap
        failed_files=()
        for t in "${taps[@]}"; do
            prove_file "$t" || failed_files+=("$(basename "$t")")
        done
        if [ ${#failed_files[@]} -eq 0 ]; then
            record tap PASS "all ${#taps[@]} files passed"
        else
            record tap FAIL "${#failed_files[@]} of ${#taps[@]} files failed: ${failed_files[*]}"
        fi
    fi

    if [ -z "$fuzz" ]; then
        record fuzz SKIP "no $fuzz_file yet"
    else
        header fuzz
        # The seed and the per-category summary are diag lines (stderr).
        if prove_file "$fuzz" 2>&1 | tee "$logdir/fuzz.log"; then
            rc=0
        else
            rc=1
        fi
        seed=$(grep -Eo 'fuzz seed [0-9]+' "$logdir/fuzz.log" | head -n 1 | grep -Eo '[0-9]+$' || true)
        if [ "$rc" = 0 ]; then
            record fuzz PASS "seed ${seed:-?}, ${VECSTORE_FUZZ_SECONDS:-60} s"
        else
            record fuzz FAIL "seed ${seed:-?}: replay with VECSTORE_FUZZ_SEED=${seed:-?}; see $logdir/fuzz.log"
        fi
    fi

    if [ ${#citus_tests[@]} -eq 0 ]; then
        record citus SKIP "no test/citus/*.pl yet"
    else
        header citus
        # Citus goes into the PostgreSQL vecstore was installed into: its
        # build.sh installs into the pg_config first on PATH.
        citus_ok=1
        if [ -f "$VS_PG_PKGLIBDIR/citus.so" ]; then
            echo "citus: $VS_PG_PKGLIBDIR/citus.so is installed"
        elif [ ! -x "$citus_build" ]; then
            citus_ok=0
            record citus FAIL "citus.so is not installed and $citus_build is missing"
        else
            echo "citus: building Citus with $citus_build (log: $logdir/citus-build.log)"
            t0=$SECONDS
            if PATH="$VS_PG_BINDIR:$PATH" "$citus_build" >"$logdir/citus-build.log" 2>&1 &&
                [ -f "$VS_PG_PKGLIBDIR/citus.so" ]; then
                echo "citus: built and installed in $((SECONDS - t0)) s"
            else
                citus_ok=0
                tail -n 30 "$logdir/citus-build.log"
                record citus FAIL "building Citus failed after $((SECONDS - t0)) s; see $logdir/citus-build.log"
            fi
        fi
        if [ "$citus_ok" = 1 ]; then
            failed_files=()
            for t in "${citus_tests[@]}"; do
                prove_file "$t" || failed_files+=("$(basename "$t")")
            done
            if [ ${#failed_files[@]} -eq 0 ]; then
                citus_version=$(sed -n "s/^default_version = '\\(.*\\)'$/\\1/p" \
                    "$("$PG_CONFIG" --sharedir)/extension/citus.control" 2>/dev/null || true)
                record citus PASS "all ${#citus_tests[@]} files passed, extension citus ${citus_version:-?}"
            else
                record citus FAIL "${#citus_tests[@]} files, failed: ${failed_files[*]}"
            fi
        fi
    fi
fi

if summary; then
    exit 0
fi
exit 1
