#!/usr/bin/env bash
# tools/device-run.sh - on the GPU machine: unpack device/pg.tar.xz (made
# by tools/device-pack.sh), then run the GPU tests and the GPU benchmark
# against that PostgreSQL, writing their output under OUT (default
# device/out).
#
#   ./tools/device-run.sh [test] [bench]     (default: both)
#
# BENCH_* variables pass through to bench/gpu.sh.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${OUT:-$repo/device/out}
what=${*:-test bench}
mkdir -p "$out"
root=/tmp/vecstore-device
rm -rf "$root"
mkdir -p "$root"
tar -C "$root" -xJf device/pg.tar.xz
# shellcheck disable=SC1091
. "$root/pg/env.sh"
# the server runs as an unprivileged user that must read the tree
chmod -R a+rX "$root"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
rc=0
for w in $what; do
    case $w in
        test) ./test/gpu/run.sh >"$out/test-gpu.txt" 2>&1 || rc=1 ;;
        bench) ./bench/gpu.sh >"$out/bench-gpu.md" 2>"$out/bench-gpu.err" || rc=1 ;;
    esac
done
tail -n 40 "$out"/*.txt "$out"/*.md 2>/dev/null
exit "$rc"
