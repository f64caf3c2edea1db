#!/usr/bin/env bash
# A damaged header in a sealed segment in the middle of the archive (its
# summary sound): no record of it can be trusted. `list`, run again and
# again (each run a new process, after the first has remembered what it
# checked), and `restore` agree: the window ends before the segment, a
# time in it or past it is refused naming that segment (not the next
# one), and nothing remembered makes the segment read as sound.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_history "$R"
"$SQLENVFS" verify --root "$R" >/dev/null || fail "verify fails before any damage"

# Flip a byte of the segment number in the header of a sealed segment in
# the middle; print it and the times of a commit before it and in it.
read -r SEG T_BEFORE T_IN < <(python3 - "$R/backups/prod/wal_archives/app" "$SRCDIR/tests/integration" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
import archive_dump
recs = list(archive_dump.records(sys.argv[1]))
segs = sorted({r["segment"] for r in recs})
assert len(segs) >= 4, "too few segments: %d" % len(segs)
seg = segs[len(segs) // 2]
assert os.path.exists(seg[:-4] + ".sum"), "no summary for " + seg
inside = [r for r in recs if r["segment"] == seg and r["type"] == "COMMIT"]
before = [r for r in recs if r["type"] == "COMMIT" and r["seq"] < inside[0]["seq"]]
with open(seg, "r+b") as f:
    f.seek(20)
    b = f.read(1)
    f.seek(20)
    f.write(bytes([b[0] ^ 0xff]))
print(seg, "%.6f" % before[-1]["time"], "%.6f" % inside[len(inside) // 2]["time"])
PY
)
SEGNAME=$(basename "$SEG")
note "damaged the header of $SEGNAME"
# As in a root whose archive no reader has checked yet (copied to a new
# machine, or written by an archiver alone): the first `list` checks every
# record and remembers what it found for the next process.
rm "$R/.sqlenvfs/checked-app"

windows() {
  "$SQLENVFS" list --root "$R" --json 2>/dev/null | python3 -c '
import json, sys
for w in json.load(sys.stdin)["windows"]:
    if w["database"] == "app":
        print(w["from"], w["to"], w["note"])'
}
for i in 1 2 3; do
  "$SQLENVFS" list --root "$R" > "$T/list$i" 2>&1 || true
  grep -q "NOT RECOVERABLE.*missing or unreadable in $SEGNAME" "$T/list$i" \
    || fail "list run $i does not name $SEGNAME as the break: $(cat "$T/list$i")"
  windows > "$T/w$i"
  [ "$(wc -l < "$T/w$i")" -eq 1 ] || fail "list run $i: expected one window: $(cat "$T/w$i")"
  [ "$i" -eq 1 ] || cmp -s "$T/w1" "$T/w$i" \
    || fail "list run $i differs from the first: $(cat "$T/w1") / $(cat "$T/w$i")"
done
python3 - "$T/w1" "$T_BEFORE" "$T_IN" <<'PY' || fail "the window does not end before $SEGNAME: $(cat "$T/w1")"
import datetime, sys
to = open(sys.argv[1]).read().split()[1]
to = datetime.datetime.fromisoformat(to.replace("Z", "+00:00")).timestamp()
sys.exit(0 if float(sys.argv[2]) <= to < float(sys.argv[3]) else 1)
PY
pass "list, run three times, ends the window before $SEGNAME and names it"

python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$T_BEFORE" --expect ok
# (each process also warns that the segment does not match its summary)
for when in "@$T_IN" latest; do
  if "$SQLENVFS" restore --root "$R" --time "$when" --output "$T/r.db" > /dev/null 2> "$T/r.err"
  then
    fail "restore to $when succeeded across $SEGNAME"
  fi
  tail -1 "$T/r.err" | grep -q "unreadable in $SEGNAME" \
    || fail "restore to $when was not refused naming $SEGNAME: $(cat "$T/r.err")"
  [ ! -e "$T/r.db" ] || fail "a refused restore left $T/r.db"
done
windows > "$T/w4"
cmp -s "$T/w1" "$T/w4" || fail "list changed after the restores: $(cat "$T/w4")"
pass "restores before it are exact, in it and past it refused naming $SEGNAME; list agrees after them"
