#!/usr/bin/env bash
# The last segment lost whole: deleted, or emptied below its header. The
# alive file says records up to its number were synced, so no later time
# is answered with the older state the segments before it end on: restore
# --time latest and list refuse it naming the loss, and times inside the
# segments left are still exact. A segment lost before the last, or one
# that lost its SEAL, is named as where the records were lost.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

pitr_history "$T/root"
A=backups/prod/wal_archives/app
last=$(ls "$T/root/$A" | grep '\.seg$' | tail -1)
n=$(ls "$T/root/$A" | grep -c '\.seg$')
[ "$n" -ge 3 ] || fail "too few segments: $n"
early=$(awk '$1=="T" {t[NR]=$4} END {printf "%.6f", t[int(NR*0.2)]}' "$T/log")

for how in deleted emptied; do
  R=$T/$how
  cp -a "$T/root" "$R"
  case $how in
    deleted) rm "$R/$A/$last" "$R/$A/${last%.seg}.idx" ;;
    emptied) : > "$R/$A/$last" ;;
  esac
  python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
    --time latest --expect refused --match "cannot be restored: the archive goes on after a break"
  python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
    --time "@$early" --expect ok
  "$SQLENVFS" list --root "$R" > "$T/list.out" 2>&1 || true
  grep -q "NOT RECOVERABLE" "$T/list.out" || fail "list shows no loss ($how): $(cat "$T/list.out")"
  "$SQLENVFS" verify --full --root "$R" > "$T/verify.out" 2>&1 &&
    fail "verify --full passes with the last segment $how"
  grep -q "BAD .*$last" "$T/verify.out" || fail "verify does not name $last: $(cat "$T/verify.out")"
  grep -q "a bad archive file: do what its line says, and never remove a segment" "$T/verify.out" ||
    fail "verify's advice for a bad archive: $(tail -1 "$T/verify.out")"
  pass "last segment $how: latest refused, an earlier time exact, list and verify show the loss"
done

# A segment in the middle deleted, and one cut short by its SEAL record:
# the gap names the missing file, and the segment that lost its end.
segs=($(ls "$T/root/$A" | grep '\.seg$'))
mid=${segs[n - 2]} first=${segs[n - 3]}
R=$T/middle
cp -a "$T/root" "$R"
rm "$R/$A/$mid"
"$SQLENVFS" list --root "$R" > "$T/list.out" 2>&1 || true
grep -q "NOT RECOVERABLE: gap: .* in $mid, which is missing" "$T/list.out" ||
  fail "the missing segment is not named: $(cat "$T/list.out")"
R=$T/sealcut
cp -a "$T/root" "$R"
truncate -s -20 "$R/$A/$first"
"$SQLENVFS" list --root "$R" > "$T/list.out" 2>&1 || true
grep -q "NOT RECOVERABLE: gap: .* in $first (at its end)" "$T/list.out" ||
  fail "the segment that lost its end is not named: $(cat "$T/list.out")"
pass "a missing segment and one cut short are named where the records were lost"

# A segment lost between two bases ends the first window; the second starts
# at the later base. A time after the second window is refused as after the
# latest archived time (or in the future), not as in the gap the lost
# segment made before it.
R=$T/between
pitr_backup_between "$R" "$T/b" 60 80 '[archive]\nsegment-max-records=16\n'
rm "$R/$A/0000000000000002.seg"
"$SQLENVFS" list --root "$R" --json > "$T/between.json"
end=$(python3 -c "import json, sys; w = json.load(open(sys.argv[1]))['windows']
assert len(w) == 2, w
print(w[1]['to'])" "$T/between.json") || fail "windows: $(cat "$T/between.json")"
after=$(python3 -c "import datetime as d, sys
t = d.datetime.fromisoformat(sys.argv[1].replace('Z', '+00:00')) + d.timedelta(seconds=1)
print(t.strftime('%Y-%m-%dT%H:%M:%S.%fZ'))" "$end")
expect_fail "is after the latest archived time" \
  "$SQLENVFS" restore --root "$R" --time "$after" --output "$T/between1.db"
expect_fail "is in the future" \
  "$SQLENVFS" restore --root "$R" --time 2099-01-01T00:00:00Z --output "$T/between2.db"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/between3.db" > /dev/null ||
  fail "latest after the window past the lost segment"
assert_eq "$(sqlite3 "$T/between3.db" 'SELECT count(*) FROM t')" 80 "rows at latest"
pass "a time after the last window is not refused for a segment lost before it"
