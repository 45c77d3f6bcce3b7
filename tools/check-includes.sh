#!/usr/bin/env bash
# The include rules that keep vecstore's dependencies pointing one way
# (src/README, "Dependencies"), checked on the sources as they are:
#
#   algorithms  <-  storage  <-  AM phases  ->  offload interface  <-  GPU service
#
#   1. The algorithm cores (src/vsdistance*, vskmeans*, vshnsw*, vsquant*)
#      are plain C: no PostgreSQL header (so the unit tests and the GPU
#      helper link them without the server), and no vecstore header but
#      each other's.
#   2. Only the GPU service (src/vsgpu*.c and .h, and the helper under
#      cuda/) includes its private headers, vsgpu_internal.h and the wire
#      format vsgpu_protocol.h; vsgpu.h (VsGpuInit) is for vecstore.c.
#      The index reaches the service through vsoffload.h alone.
#   3. The GPU service, vsoffload.h, vsutil.h and vssegment.h do not
#      include the AM's private header vsam.h.
#   4. vecstore.c (the module's entry point) has no header: nothing can
#      include it.
#
# Usage: ./tools/check-includes.sh [REPO]   (test/run.sh runs it)
# Prints each broken rule as FILE: what it includes, and why not; exits 1
# when there is any, 0 (with a one-line summary) otherwise.
set -euo pipefail

repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$repo"

bad=0
checked=0

# includes FILE - the quoted includes of FILE (the project's and
# PostgreSQL's headers; system headers come in <...>), one a line
includes() {
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"
}

# fail FILE WHAT WHY
fail() {
    echo "$1: includes $2: $3"
    bad=$((bad + 1))
}

shopt -s nullglob

# 1. the algorithm cores
algo=(src/vsdistance*.[ch] src/vskmeans*.[ch] src/vshnsw*.[ch] src/vsquant*.[ch])
for f in "${algo[@]}"; do
    checked=$((checked + 1))
    while read -r inc; do
        case $inc in
            vsdistance*.h | vskmeans*.h | vshnsw*.h | vsquant*.h) ;;
            *) fail "$f" "$inc" "an algorithm core is plain C: it includes only the other cores (and system headers)" ;;
        esac
    done < <(includes "$f")
done

# 2. the GPU service's headers
for f in src/*.[ch] cuda/*.c cuda/*.h cuda/*.cu test/kernels/*.c bench/*.c tools/*.c; do
    checked=$((checked + 1))
    case $f in
        src/vsgpu*.[ch] | cuda/*) service=1 ;;
        *) service=0 ;;
    esac
    while read -r inc; do
        case $inc in
            vsgpu_internal.h | vsgpu_protocol.h)
                [ "$service" = 1 ] || fail "$f" "$inc" "only the GPU service includes its private headers; use vsoffload.h" ;;
            vsgpu.h)
                [ "$service" = 1 ] || [ "$f" = src/vecstore.c ] ||
                    fail "$f" "$inc" "vsgpu.h is for vecstore.c; the index uses vsoffload.h" ;;
        esac
    done < <(includes "$f")
done

# 3. vsam.h stays out of the service and the light headers
for f in src/vsgpu*.[ch] cuda/*.c cuda/*.h cuda/*.cu src/vsoffload.[ch] src/vsutil.h src/vssegment.h; do
    if includes "$f" | grep -qx 'vsam.h'; then
        fail "$f" vsam.h "the AM's private header is for the AM's own files"
    fi
done

# 4. nothing includes the entry point
if [ -e src/vecstore.h ]; then
    echo "src/vecstore.h: the module's entry point has no header (nothing may depend on it)"
    bad=$((bad + 1))
fi

if [ "$bad" -gt 0 ]; then
    echo "check-includes: $bad broken include rules (see the top of tools/check-includes.sh)"
    exit 1
fi
echo "check-includes: the include rules hold ($checked files)"
