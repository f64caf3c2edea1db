#!/usr/bin/env bash
# The whole test suite, from nothing: install what is missing, build twice,
# both with -Dwerror=true and optimized as a release is:
#   plain      without sanitizers: the unit tests (where MALLOC_PERTURB_
#              fills fresh memory, which finds reads of memory never
#              written) and the benchmark scripts' short runs (suite
#              "bench": benchmarks measure this build);
#   ASan+UBSan every unit and integration test except those short runs;
# then build the fuzz targets (clang, libFuzzer, ASan+UBSan) and run each
# briefly over its seed corpus (suite "fuzz"; longer runs: scripts/fuzz.sh).
# Prints "N passed, N failed" last; exits non-zero on any failure.
# MESON_TEST_ARGS, when set, replaces each build's selection of tests.
#
# Each build's tests share one S3 server (scripts/s3server.sh, started in the
# background while the build runs, stopped after its tests and on any exit):
# its directory is exported in SQLENVFS_TEST_S3_SHARED, where the S3 tests
# find it (tests/integration/s3_lib.sh); those that kill or stop radosgw
# start their own. When it does not start, each S3 test starts its own.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

passed=0
failed=0
status=0
jobs=$(( $(nproc) + 1 ))

s3_dir=
s3_pid=
# s3_begin: start the shared S3 server in the background.
s3_begin() {
  s3_dir=$(mktemp -d "${TMPDIR:-/tmp}/sqlenvfs-s3-XXXXXX")
  scripts/s3server.sh start "$s3_dir/srv" >"$s3_dir/env" 2>"$s3_dir/err" &
  s3_pid=$!
}
# s3_wait: wait for it and export its directory; without it (it did not
# start), the S3 tests start their own.
s3_wait() {
  if wait "$s3_pid"; then
    export SQLENVFS_TEST_S3_SHARED=$s3_dir/srv
    echo "=== shared S3 server: $(sed -n 's/^S3_ENDPOINT=//p' "$s3_dir/env") ($s3_dir/srv)"
  else
    cat "$s3_dir/err" >&2
    echo "=== the shared S3 server did not start (logs: $s3_dir/srv/log): each S3 test starts its own"
  fi
  s3_pid=
}
# s3_end: stop it (only the processes it started), also half-started.
s3_end() {
  [ -n "$s3_dir" ] || return 0
  [ -z "$s3_pid" ] || wait "$s3_pid" 2>/dev/null || true
  s3_pid=
  scripts/s3server.sh stop "$s3_dir/srv" || true
  rm -rf "$s3_dir"
  s3_dir=
  unset SQLENVFS_TEST_S3_SHARED
}
trap s3_end EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_variant() {
  local name=$1; shift
  local dir="build-test-$name" began=$SECONDS built
  [ "${S3_SHARED:-1}" = 0 ] || s3_begin
  echo "=== build: $name ($*)"
  if [ -d "$dir" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@" >/dev/null
  fi
  ninja -C "$dir" >/dev/null
  [ -z "$s3_pid" ] || s3_wait
  built=$SECONDS
  echo "=== test: $name (built in $((built - began)) s)"
  # One more test at a time than there are cores: most of a test's time is
  # spent waiting (for a server, a mount, a timer), and with one per core
  # the two cores of a CI machine were busy about half the time.
  # shellcheck disable=SC2086 # MESON_TEST_ARGS is a list of words
  if ! meson test -C "$dir" --print-errorlogs --num-processes "$jobs" ${MESON_TEST_ARGS:-}; then
    status=1
  fi
  s3_end
  echo "=== $name: tests took $((SECONDS - built)) s"
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

MESON_TEST_ARGS=${MESON_TEST_ARGS-"--suite unit --suite bench"} \
  run_variant werror -Dwerror=true -Dbuildtype=debugoptimized
MESON_TEST_ARGS=${MESON_TEST_ARGS-"--no-suite bench"} \
  run_variant asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
  -Dbuildtype=debugoptimized
CC=clang MESON_TEST_ARGS="--suite fuzz" S3_SHARED=0 run_variant fuzz -Dfuzz=true -Dtests=false \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized

echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
