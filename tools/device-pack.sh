#!/usr/bin/env bash
# tools/device-pack.sh - pack what the GPU machine needs into device/ (git
# ignored), for the device tool's "carry":
#
#   ./tools/device-pack.sh          here: build, bundle, pack
#   (there) ./tools/device-run.sh   unpack, run make test-gpu and bench/gpu.sh
#
# The GPU machine has CUDA but no PostgreSQL and no package manager.  This
# builds vecstore (WITH_CUDA=yes: the helper must link CUDA), packs this
# machine's PostgreSQL 15 with ../shared/tools/device-pg-bundle.sh,
# installs vecstore into that tree (make install DESTDIR) and writes
# device/pg.tar.xz, plus tools/fvecs2pg for the benchmark.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bundler=${VECSTORE_PG_BUNDLER:-$(dirname "$repo")/shared/tools/device-pg-bundle.sh}
tree=$(mktemp -d /tmp/vecstore-device.XXXXXX)
trap 'rm -rf "$tree"' EXIT

make -s WERROR=1 WITH_CUDA=yes
make -s tools/fvecs2pg
sh "$bundler" "$tree/pg" >/dev/null
make -s install DESTDIR="$tree/pg" WITH_CUDA=yes >/dev/null
mkdir -p device
tar -C "$tree" -cJf device/pg.tar.xz pg
ls -la device/pg.tar.xz
