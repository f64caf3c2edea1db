#!/usr/bin/env bash
# Fuzz every parser of bytes read from disk for longer than the test suite
# does: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds build-fuzz (clang, libFuzzer, ASan+UBSan) if needed, then runs each
# target (default: all of tests/fuzz/meson.build) for SECONDS (default 300),
# one after the other. Each keeps a working corpus in build-fuzz/fuzz/corpus/
# (seeded from tests/fuzz/corpus/, grown across runs) and puts every crashing,
# leaking or slow input in build-fuzz/fuzz/crashes/<target>/. Prints exec/s
# and coverage per target; exits non-zero if any target found something.
# Reproduce a crash with: build-fuzz/tests/fuzz/fuzz_<target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
[ "$#" -gt 0 ] && shift
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(archive blocks btree conf last manifest shipper_state sqltext timefmt walfile)
fi
for t in "${targets[@]}"; do
  if [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
    echo "fuzz.sh: no fuzz target '$t' (the targets: $(cd tests/fuzz && ls fuzz_*.c |
      sed 's/^fuzz_//; s/\.c$//' | tr '\n' ' '))" >&2
    exit 2
  fi
done
build=${FUZZ_BUILD:-build-fuzz}

if [ ! -d "$build" ]; then
  CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dtests=false >/dev/null
fi
ninja -C "$build" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}

work="$(cd "$build" && pwd)/fuzz" # absolute: libFuzzer's artifact prefix
# The targets' private directories, in memory when possible (the archive
# target syncs what it recovers).
base=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
tmp=$(mktemp -d "$base/sqlenvfs-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
status=0
summary=()
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  crashes="$work/crashes/$t"
  log="$work/logs/$t.log"
  mkdir -p "$corpus" "$crashes" "$work/logs"
  cp -R -n tests/fuzz/corpus/"$t"/. "$corpus"/
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/")
  [ -f "tests/fuzz/dict/$t.dict" ] && args+=(-dict="tests/fuzz/dict/$t.dict")
  if [ -f "tests/fuzz/dict/$t.flags" ]; then
    read -r -a extra < "tests/fuzz/dict/$t.flags"
    args+=("${extra[@]}")
  fi
  echo "=== fuzz $t for ${seconds}s (log: $log)"
  mkdir -p "$tmp/$t"
  if TMPDIR="$tmp/$t" "$build/tests/fuzz/fuzz_$t" "${args[@]}" "$corpus" >"$log" 2>&1; then
    result=ok
  else
    result="FOUND SOMETHING: see $crashes and $log"
    status=1
  fi
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  summary+=("$t: ${execs:-?} exec/s; last: ${last:-none}; $result")
done

echo "=== summary"
printf '%s\n' "${summary[@]}"
exit "$status"
