#!/usr/bin/env bash
# The long power-cut run: crash_power.py over the crash filesystem with many
# cuts (default 270, 30 for each of the 9 operations) and a seed, from a built
# tree; then 40 hard starts (--hard-startup: each cut right after the start
# publishes an alive time), and 40 cuts during the operations run only when
# asked for (--extra-cuts, 10 each: a prune with a replica, the seal of a
# segment, after a killed archiver, and init --force over a production with
# commits in its -wal, then the next command a user runs: the old databases
# whole in one place, the new pair in place, no temporaries; small
# segments), each on a root of its own.
#   scripts/crash.sh [BUILD_DIR] [CUTS] [SEED]
# Replay one failing cycle with: crash_power.py run ... --only SEED --op OP
# Seeds that found failures, kept as regressions: 4 (60 cuts: a chain left
# without a base after a gap, during startup at cycle 47 or 56; docs/CRASHFS.md).
# init --force alone: crash_power.py run ... --cuts 60 --op init-force.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cuts=${2:-270}
seed=${3:-$(date +%s)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-crash-XXXXXX")
echo "# crash run: $cuts cuts, seed $seed"
run() { # DIR ARGS...: one run on a root of its own under DIR
  local dir=$1; shift
  mkdir -p "$dir"
  python3 tests/integration/crash_power.py run --sqlenvfs "$build/src/sqlenvfs" \
    --crashfs "$build/tests/crashfs" --tmp "$dir" --seed "$seed" --verbose "$@"
}
if run "$tmp/mixed" --cuts "$cuts" && run "$tmp/starts" --cuts 40 --op startup --hard-startup &&
  run "$tmp/extra" --cuts 0 --extra-cuts 10 --segment-records 150; then
  rm -rf "$tmp"
else
  echo "# the root and the logs are kept in $tmp" >&2
  exit 1
fi
