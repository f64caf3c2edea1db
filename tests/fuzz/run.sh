#!/usr/bin/env bash
# Run one fuzz target briefly: run.sh EXE FUZZDIR NAME ARTIFACTS
#
# FUZZDIR is tests/fuzz: the seeds are FUZZDIR/corpus/NAME, the dictionary
# FUZZDIR/dict/NAME.dict, extra libFuzzer flags (one line) FUZZDIR/dict/NAME.flags.
# The committed seeds are copied first, so that what the run discovers never
# changes them. A crash, leak, timeout or sanitizer report fails the test and
# leaves the input in ARTIFACTS (its path is in the log). FUZZ_SECONDS
# (default 15) is how long it mutates after replaying the seeds.
set -euo pipefail

exe=$1
fuzzdir=$2
name=$3
artifacts=$4
seconds=${FUZZ_SECONDS:-15}

# In memory when possible: the archive target syncs what it recovers.
base=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
work=$(mktemp -d "$base/sqlenvfs-fuzz-run.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/tmp" "$artifacts"
cp -R "$fuzzdir/corpus/$name/." "$work/corpus/"

# libFuzzer's own exit code for a finding is 77, which meson counts as a
# skipped test: make every finding a failure.
args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
      -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$artifacts/")
[ -f "$fuzzdir/dict/$name.dict" ] && args+=(-dict="$fuzzdir/dict/$name.dict")
if [ -f "$fuzzdir/dict/$name.flags" ]; then
  read -r -a extra < "$fuzzdir/dict/$name.flags"
  args+=("${extra[@]}")
fi

# The target writes only below its own temporary directory.
TMPDIR="$work/tmp" "$exe" "${args[@]}" "$work/corpus"
