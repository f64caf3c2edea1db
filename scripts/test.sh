#!/usr/bin/env bash
# The whole test suite, from nothing: install what is missing, build twice
# (-Dwerror=true, then ASan+UBSan), and run every unit and integration test
# under both builds; then build the fuzz targets (clang, libFuzzer,
# ASan+UBSan) and run each briefly over its seed corpus (suite "fuzz";
# longer runs: scripts/fuzz.sh). Prints "N passed, N failed" last; exits
# non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

passed=0
failed=0
status=0

run_variant() {
  local name=$1; shift
  local dir="build-test-$name"
  echo "=== build: $name ($*)"
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
  echo "=== test: $name"
  # shellcheck disable=SC2086 # MESON_TEST_ARGS is a list of words
  if ! meson test -C "$dir" --print-errorlogs --num-processes 2 ${MESON_TEST_ARGS:-}; then
    status=1
  fi
  local counts
  counts=$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        ok += 1
    else:
        bad += 1
print(ok, bad)
PY
)
  passed=$((passed + ${counts% *}))
  failed=$((failed + ${counts#* }))
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"

run_variant werror -Dwerror=true -Dbuildtype=debugoptimized
run_variant asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
CC=clang MESON_TEST_ARGS="--suite fuzz" run_variant fuzz -Dfuzz=true -Dtests=false \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized

echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
