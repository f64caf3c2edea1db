#!/usr/bin/env bash
# One flipped byte in the middle of an archive segment: `verify` names the
# segment and fails; restoring to a time before the damaged record is still
# exact; restoring to it or past it fails with an error naming the segment,
# never a wrong database, and leaves no file behind. `list` agrees: the
# damaged record ends the window, and a snapshot taken later starts a new
# one, in which every restore is exact again.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_history "$R"
"$SQLENVFS" verify --root "$R" >/dev/null || fail "verify fails before any damage"

# Damage a COMMIT record's page data in a segment in the middle.
read -r SEG T_BEFORE T_AT < <(python3 - "$R/backups/prod/wal_archives/app" "$SRCDIR/tests/integration" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import archive_dump
recs = list(archive_dump.records(sys.argv[1]))
segs = sorted({r["segment"] for r in recs})
assert len(segs) >= 4, "too few segments: %d" % len(segs)
seg = segs[len(segs) // 2]
victim = max((r for r in recs if r["segment"] == seg and r["type"] == "COMMIT"),
             key=lambda r: r["n_pages"])
before = [r for r in recs if r["type"] == "COMMIT" and r["seq"] < victim["seq"]
          and r["time"] < victim["time"]][-1]
off = victim["offset"] + 96 + 4 * victim["n_pages"] + victim["page_size"] // 2
with open(seg, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x10]))
print(seg, "%.6f" % before["time"], "%.6f" % victim["time"])
PY
)
SEGNAME=$(basename "$SEG")
note "flipped one byte in $SEGNAME"

rc=0
"$SQLENVFS" verify --root "$R" > "$T/verify.out" 2> "$T/verify.err" || rc=$?
[ "$rc" -ne 0 ] || fail "verify passed a damaged segment"
grep -q "BAD.*$SEGNAME" "$T/verify.out" || fail "verify did not name $SEGNAME: $(cat "$T/verify.out")"
pass "verify fails and names $SEGNAME"

python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$T_BEFORE" --expect ok
pass "restore to a time before the damaged record is exact"

for when in "@$T_AT" latest; do
  python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
    --time "$when" --expect refused --match "$SEGNAME"
done
pass "restores past the damage fail naming the segment"

# list agrees with restore: the window ends before the damaged record.
windows() {
  "$SQLENVFS" list --root "$R" --json | python3 -c '
import datetime, json, sys
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
for w in json.load(sys.stdin)["windows"]:
    if w["database"] == "app":
        print("%.6f %.6f %s" % (ts(w["from"]), ts(w["to"]), w["note"]))'
}
windows > "$T/w1"
[ "$(wc -l < "$T/w1")" -eq 1 ] || fail "expected one window, list says: $(cat "$T/w1")"
read -r W_FROM W_TO _ < "$T/w1"
python3 -c "import sys; sys.exit(0 if $T_BEFORE <= $W_TO < $T_AT else 1)" \
  || fail "the window ends at $W_TO, not between $T_BEFORE and the damaged record at $T_AT"
pass "list ends the window before the damaged record"

# A time after the window's end but before the damaged record's capture is
# refused for the damage, not as a time not archived yet.
T_NEAR=$(python3 -c "print('%.6f' % (($W_TO + $T_AT) / 2))")
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$T_NEAR" --expect refused --match "missing or unreadable in $SEGNAME"

# A snapshot after the damage makes the archive recoverable again from its
# state on, and only from there.
pitr_start_archiver "$R" "$T/b"
k=$(awk '$1 == "T" {k = $2} END {print k}' "$T/log")
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1.5 --no-vacuum \
  --k0 "$k" --seed 3 >/dev/null
"$SQLENVFS" snapshot --root "$R" >/dev/null
k=$(awk '$1 == "T" {k = $2} END {print k}' "$T/log")
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1.5 --no-vacuum \
  --k0 "$k" --seed 4 >/dev/null
pitr_stop_archiver "$T/b"
windows > "$T/w2"
[ "$(wc -l < "$T/w2")" -eq 2 ] || fail "expected two windows, list says: $(cat "$T/w2")"
grep -q "$SEGNAME" "$T/w2" || fail "the second window does not say what cut it: $(cat "$T/w2")"
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" --expect-latest
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$T_AT" --expect refused --match "$SEGNAME"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$T_NEAR" --expect refused --match "missing or unreadable in $SEGNAME"
pass "a later snapshot starts a new window; list and restore agree on every time"
