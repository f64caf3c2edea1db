#!/usr/bin/env bash
# Benchmarks (docs/BENCHMARKS.md): builds sqlenvfs and the passthrough yardstick, then
# runs scripts/bench/drill.sh, remote.sh and investigate.sh (unless --smoke),
# then scripts/bench.py. Options are passed on (--smoke, --size-mib, --runs,
# --writer-seconds, --big, --scale-only, --only, --dir, --keep). Then, unless
# --smoke, --only or --scale-only, scripts/bench/history.sh (the cost against
# the history kept, up to HISTORY_MAX commits: 1000000 by default,
# HISTORY_MAX=10000000 for the full table; at most 3 runs per timing here,
# which keeps it within about 5 minutes up to 1 million). Run as root (it
# mounts and drops caches).
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
# The restore drill against reading the database twice (docs/BENCHMARKS.md).
if [[ " $* " == *" --smoke "* ]]; then
  scripts/bench/drill.sh -m 8 -r 1 "$build/src/sqlenvfs"
else
  scripts/bench/drill.sh "$build/src/sqlenvfs"
fi
# Section 10 (reading a replica of a 1 GiB database, the size its targets name,
# scripts/bench/remote.sh; about 5 minutes with
# its S3 server): skipped in smoke runs and with BENCH_REMOTE=0.
if [[ " $* " != *" --smoke "* && "${BENCH_REMOTE:-1}" != 0 ]]; then
  scripts/bench/remote.sh "$build/src/sqlenvfs" --size-mib 1024
fi
# The history commands (diff, bisect) against sqldiff: a short run of their own.
if [[ " $* " != *" --smoke "* ]]; then
  scripts/bench/investigate.sh "$build/src/sqlenvfs"
fi
python3 scripts/bench.py --sqlenvfs "$build/src/sqlenvfs" --passthrough "$pt" "$@"
case " $* " in
  *" --smoke "* | *" --only "* | *" --scale-only "*) ;;
  *) BENCH_BUILD="$build" HISTORY_MAX="${HISTORY_MAX:-1000000}" scripts/bench/history.sh --max-runs 3 --budget 20 ;;
esac
