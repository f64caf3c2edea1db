#!/usr/bin/env bash
# The replica benchmark (scripts/bench/replica.sh) in smoke mode: every row
# is printed, so that the script cannot rot. Its figures are not judged here.
source "$(dirname "$0")/lib.sh"
"$SRCDIR/scripts/bench/replica.sh" "$SQLENVFS" --smoke --dir "$T" >"$T/out.txt" 2>&1 ||
  { cat "$T/out.txt"; fail "scripts/bench/replica.sh --smoke failed"; }
grep '^9-replica' "$T/out.txt"
for row in "throughput ratio" "lag p99" "idle root, per hour" "peak RSS"; do
  grep -q "^9-replica .*$row" "$T/out.txt" || fail "no '$row' row: $(cat "$T/out.txt")"
done
pass "every replica benchmark row is printed"
