#!/usr/bin/env bash
# Benchmarks (docs/BENCHMARKS.md): builds sqlenvfs and the passthrough yardstick, then
# runs scripts/bench.py. Options are passed on (--smoke, --size-mib, --runs,
# --writer-seconds, --big, --scale-only, --only, --dir, --keep). Run as root
# (it mounts and drops caches).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if ! command -v restic >/dev/null && [[ " $* " != *" --smoke "* ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
fi
build=$(realpath -m "${BENCH_BUILD:-build-bench}")
[ -d "$build" ] || meson setup "$build" -Dbuildtype=release -Dtests=false >/dev/null
ninja -C "$build" >/dev/null
pt="$build/passthrough_ro"
cc -O2 -Wall scripts/bench/passthrough_ro.c $(pkg-config --cflags --libs fuse3) -o "$pt"
# The history commands (diff, bisect) against sqldiff: a short run of their own.
if [[ " $* " != *" --smoke "* ]]; then
  scripts/bench/investigate.sh "$build/src/sqlenvfs"
fi
exec python3 scripts/bench.py --sqlenvfs "$build/src/sqlenvfs" --passthrough "$pt" "$@"
