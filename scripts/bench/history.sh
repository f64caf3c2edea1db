#!/usr/bin/env bash
# How the cost of point-in-time recovery grows with the history kept
# (docs/BENCHMARKS.md, "History"): ls -l pitr/T/, restore planning, full
# restore against the physical limit, peak RSS of restore and of the mount
# daemon, cat status and verify after one new segment, at 10 thousand, 100
# thousand, 1 million and 10 million archived commits.
#
#   scripts/bench/history.sh [OPTIONS]            archives built by gen_archive
#   scripts/bench/history.sh real-1m [N] [OPTIONS] one archive of N commits (default
#                                                 1000000) from a Python writer under
#                                                 the real `sqlenvfs archive`
#   scripts/bench/history.sh big-db [BYTES] [OPTIONS] first byte of a new pitr time, the first
#                                                 read of a whole pitr file against the
#                                                 physical limit, and the bytes a point
#                                                 query reads, on a database of
#                                                 BYTES (default 4GiB) with --big-commits N
#                                                 (default 100000) archived commits
#
# HISTORY_MAX (default 1000000) is the largest count; HISTORY_MAX=10000000
# runs the 10 million row too (about 7 minutes to generate here, and long
# restores on a reader that loads every index entry). Options are passed to
# history.py: --max N, --counts A,B,..., --min-runs N, --max-runs N,
# --budget S, --no-verify, --dir DIR, --keep. The rows for gnuplot go to
# docs/bench/history.dat and the plot to docs/bench/history.svg unless
# --data/--svg say otherwise (real-1m: docs/bench/history-real.dat, no
# plot; big-db: printed only). Run as root (it mounts; big-db drops the page
# cache). big-db needs twice BYTES free under --dir (the database and its base
# backup), and removes its root at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/deps.sh
build=$(realpath -m "${BENCH_BUILD:-build-bench}")
[ -d "$build" ] || meson setup "$build" -Dbuildtype=release -Dtests=false -Dbench=true >/dev/null
if ! meson introspect --buildoptions "$build" | python3 -c 'import json, sys
sys.exit(0 if any(o["name"] == "bench" and o["value"] for o in json.load(sys.stdin)) else 1)'; then
  meson configure "$build" -Dbench=true >/dev/null
fi
ninja -C "$build" src/sqlenvfs scripts/bench/gen_archive >/dev/null
args=(--sqlenvfs "$build/src/sqlenvfs" --gen "$build/scripts/bench/gen_archive")
if [ "${1:-}" = real-1m ]; then
  shift
  n=1000000
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then n=$1; shift; fi
  exec python3 scripts/bench/history.py "${args[@]}" --real "$n" \
    --data docs/bench/history-real.dat "$@"
fi
if [ "${1:-}" = big-db ]; then
  shift
  size=4GiB
  if [[ "${1:-}" =~ ^[0-9]+([KMGTkmgt](i?[Bb])?)?$ ]]; then size=$1; shift; fi
  exec python3 scripts/bench/history.py "${args[@]}" --big-db "$size" "$@"
fi
exec python3 scripts/bench/history.py "${args[@]}" --max "${HISTORY_MAX:-1000000}" \
  --data docs/bench/history.dat --svg docs/bench/history.svg "$@"
