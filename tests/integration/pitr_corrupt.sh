#!/usr/bin/env bash
# One flipped byte in the middle of an archive segment: `verify` names the
# segment and fails; restoring to a time before the damaged record is still
# exact; restoring to it or past it fails with an error naming the segment,
# never a wrong database, and leaves no file behind.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 4 --no-vacuum >/dev/null
pitr_stop_archiver "$T/a"
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
