#!/usr/bin/env bash
# Benchmarks (docs/BENCHMARKS.md): builds sqlenvfs and the passthrough yardstick, then
# runs scripts/bench.py. Options are passed on (--smoke, --size-mib, --runs,
# --writer-seconds, --big, --scale-only, --only, --dir, --keep). Run as root
# (it mounts and drops caches).
set -euo pipefail
cd "$(dirname "$0")/.."
prev=
scripts/deps.sh
if ! command -v restic >/dev/null && [[ " $* " != *" --smoke "* ]]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
fi
build=$(realpath -m "${BENCH_BUILD:-build-bench}")
[ -d "$build" ] || meson setup "$build" -Dbuildtype=release -Dtests=false >/dev/null
ninja -C "$build" >/dev/null
pt="$build/passthrough_ro"
cc -O2 -Wall scripts/bench/passthrough_ro.c $(pkg-config --cflags --libs fuse3) -o "$pt"
# The replica rows (scripts/bench/replica.sh, against radosgw), unless the
# options ask for other sections only.
only=
for a in "$@"; do
  case "$prev" in --only) only=$a ;; --scale-only) only=none ;; esac
  prev=$a
done
if [ -z "$only" ] || [[ ",$only," == *,replica,* ]]; then
  scripts/bench/replica.sh "$build/src/sqlenvfs" $([[ " $* " == *" --smoke "* ]] && echo --smoke) ||
    echo "9-replica  the replica benchmark failed" >&2
fi
exec python3 scripts/bench.py --sqlenvfs "$build/src/sqlenvfs" --passthrough "$pt" "$@"
