#!/usr/bin/env bash
# `verify` reads only what is new or changed since it last found it good:
# after a first run, the sealed segments and the copies are skipped; after
# the archive grows, only the new segments are read; a sealed segment whose
# bytes are changed with its mtime restored (touch -r; its ctime changes)
# is read again and reported; --full reads everything; a damaged memo is
# ignored and everything read.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
A=$R/backups/prod/wal_archives/app
MEMO=$R/.sqlenvfs/verified

# write N: N transactions of 3 KB each.
write() {
  python3 - "$R/data/prod/app.db" "$1" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
for i in range(int(sys.argv[2])):
    c.execute("INSERT INTO tx(kind, payload, crc) VALUES ('bulk', ?, 0)", (os.urandom(3000),))
PY
}
n_segments() { ls "$A" | grep -c '\.seg$'; }
copies() { [ "$1" -eq 1 ] && echo "1 copy" || echo "$1 copies"; }
# checked / skipped: the counts in the last line before "all N good".
scope() { grep '^checked ' "$1"; }
# settle WANT: run verify until its counts are WANT (deadline 30 s): a file
# is remembered once its times are older than the run by the racy margin.
settle() {
  local i
  for i in $(seq 1 300); do
    "$SQLENVFS" verify --root "$R" > "$T/settle" || { cat "$T/settle"; fail "verify"; }
    [ "$(scope "$T/settle")" = "$1" ] && return 0
    sleep 0.1
  done
  fail "verify did not settle to '$1': $(scope "$T/settle")"
}

pitr_start_archiver "$R" "$T/a1"
write 1500
pitr_stop_archiver "$T/a1"
n1=$(n_segments)
[ "$n1" -ge 4 ] || fail "expected at least 4 segments, got $n1"
sealed1=$((n1 - 1))

# The first run reads everything; a file is remembered once its times are
# older than the run by the racy margin, so run until the sealed segments
# and the snapshot are skipped (deadline 30 s).
"$SQLENVFS" verify --root "$R" > "$T/v0" || { cat "$T/v0"; fail "verify"; }
grep -q "^checked $n1 segments, 1 copy " "$T/v0" || fail "the first run: $(scope "$T/v0")"
[ "$(stat -c %a "$MEMO")" = 600 ] || fail "the memo's mode is $(stat -c %a "$MEMO")"
want="checked 1 segment, 0 copies; $sealed1 segments and 1 copy verified before, skipped (verify --full re-reads them)"
settle "$want"
cp "$T/settle" "$T/v1"
grep -q '^ok   snapshot .*(verified .*, unchanged since)$' "$T/v1" || fail "the skipped copy: $(cat "$T/v1")"
pass "a second run reads only the segment being written: $want"

# More segments: only they (and the one that was being written) are read.
pitr_start_archiver "$R" "$T/a2"
write 400
pitr_stop_archiver "$T/a2"
n2=$(n_segments)
[ "$n2" -gt "$n1" ] || fail "the archive did not grow: $n1 -> $n2 segments"
"$SQLENVFS" verify --root "$R" > "$T/v2" || { cat "$T/v2"; fail "verify"; }
n_copies=$(ls "$R/backups/prod/snapshots" | wc -l)
checked=$((n2 - sealed1))
new_copies=$((n_copies - 1))
[ "$new_copies" -eq 0 ] && skipped="$sealed1 segments and 1 copy" || skipped="$sealed1 segments"
assert_eq "$(scope "$T/v2")" \
  "checked $checked segments, $(copies "$new_copies"); $skipped verified before, skipped (verify --full re-reads them)" \
  "after growing from $n1 to $n2 segments"

pass "after the archive grew: $(scope "$T/v2")"
settle "checked 1 segment, 0 copies; $((n2 - 1)) segments and $(copies "$n_copies") verified before, skipped (verify --full re-reads them)"

# Damage a sealed segment verified before, keeping its size and mtime.
old=$A/0000000000000002.seg
cp -p "$old" "$T/ref"
mtime=$(stat -c %y "$old")
printf '\xff' | dd of="$old" bs=1 seek=5000 conv=notrunc status=none
touch -r "$T/ref" "$old"
assert_eq "$(stat -c %y "$old")" "$mtime" "the damaged segment's mtime"
cmp -s "$old" "$T/ref" && fail "the segment was not changed"
rc=0
"$SQLENVFS" verify --root "$R" > "$T/v3" 2> "$T/v3.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/v3" "$T/v3.err"; fail "verify of a damaged segment exited $rc"; }
grep -q '^BAD  wal-archive 0000000000000002.seg .*app: record .* is corrupt (checksum mismatch)' "$T/v3" ||
  fail "the damaged segment is not reported: $(cat "$T/v3")"
grep -q "^checked 2 segments, 0 copies; $((n2 - 2)) segments and $(copies "$n_copies") verified before, skipped" "$T/v3" ||
  fail "the damaged segment was not the one read: $(scope "$T/v3")"
pass "a segment changed with its mtime restored is read again (with the one being written) and reported BAD"

# --full reads everything, and still finds it.
rc=0
"$SQLENVFS" verify --root "$R" --full > "$T/v4" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "verify --full of a damaged segment exited $rc"
grep -q "^checked $n2 segments, $(copies "$n_copies") (--full: everything read)$" "$T/v4" || fail "--full: $(scope "$T/v4")"
grep -q '^BAD  wal-archive 0000000000000002.seg' "$T/v4" || fail "--full: $(cat "$T/v4")"
pass "--full reads every segment and copy"

# Repaired: good again. Read again: it changed, and so is the segment after
# it, which did not chain to it while it was damaged (not remembered then).
cp "$T/ref" "$old"
"$SQLENVFS" verify --root "$R" > "$T/v5" || { cat "$T/v5"; fail "verify after the repair"; }
grep -q "^checked 3 segments, 0 copies" "$T/v5" || fail "after the repair: $(scope "$T/v5")"
pass "the repaired segment is read again and good"

# A damaged memo is ignored: everything is read, and the run says why.
python3 - "$MEMO" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
i = b.index(b"first=") + 6
b[i] = ord("9") if b[i] != ord("9") else ord("8")
open(p, "wb").write(bytes(b))
PY
"$SQLENVFS" verify --root "$R" > "$T/v6" || { cat "$T/v6"; fail "verify with a damaged memo"; }
grep -q "^note: $MEMO fails its checksum (damaged or edited), so it was ignored and everything read$" "$T/v6" ||
  fail "no note of the damaged memo: $(cat "$T/v6")"
grep -q "^checked $n2 segments, $(copies "$n_copies") (everything: nothing verified before is unchanged)$" "$T/v6" ||
  fail "a damaged memo was trusted: $(scope "$T/v6")"
pass "a damaged memo is ignored and everything read"
