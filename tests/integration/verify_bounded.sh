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
# A new archive holds one segment, and the report says so in the singular.
for i in $(seq 1 100); do [ "$(n_segments)" -ge 1 ] && break; sleep 0.1; done
[ "$(n_segments)" -eq 1 ] || fail "a new archive holds $(n_segments) segments"
"$SQLENVFS" verify --root "$R" > "$T/v00" || { cat "$T/v00"; fail "verify"; }
grep -q '^ok   wal-archive 1 segment  *app$' "$T/v00" || fail "one segment: $(cat "$T/v00")"
# One commit archived past the archiver's snapshot: a restore says so in the
# singular too.
sqlite3 "$R/data/prod/app.db" "INSERT INTO tx(kind, payload, crc) VALUES ('one', x'00', 0)"
for i in $(seq 1 100); do
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/one.db" --force > "$T/r1" 2>/dev/null &&
    grep -q '^  base .* + 1 archived transaction (' "$T/r1" && break
  sleep 0.1
done
grep -q '^  base .* + 1 archived transaction (' "$T/r1" || fail "one transaction: $(cat "$T/r1")"
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

# Repaired: good again. Read again: it changed (the segment after it still
# chained to its seal while it was damaged, and is remembered: one damaged
# record is told once, not as a chain broken after it).
cp "$T/ref" "$old"
"$SQLENVFS" verify --root "$R" > "$T/v5" || { cat "$T/v5"; fail "verify after the repair"; }
grep -q "^checked 2 segments, 0 copies" "$T/v5" || fail "after the repair: $(scope "$T/v5")"
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

# Damage in a segment sealed since the last run, found by the run that reads
# it for the first time (a memo that does not know it yet): a byte of a
# record's compressed page data, of a record's header, of its index, of its
# summary. Each file is put back after its case.
pitr_start_archiver "$R" "$T/a3"
write 400
pitr_stop_archiver "$T/a3"
cp "$MEMO" "$T/memo.before"
segs=( $(ls "$A" | grep '\.seg$') )
S=${segs[${#segs[@]}-2]}   # the newest sealed segment
S=${S%.seg}
[ -f "$A/$S.sum" ] || fail "the newest sealed segment $S has no summary"
# where FILE: the offset of the first COMMIT with compressed pages in segment
# FILE, its page data's first byte, and its index entry number (from 1).
where() {
  python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
off, i = 64, 1
while off + 96 <= len(b):
    typ, flags, length = struct.unpack_from("<HHQ", b, off + 4)
    n = struct.unpack_from("<I", b, off + 48)[0]
    if typ == 1 and flags & 2:
        print(off, off + 96 + 4 * n + 10, i)
        sys.exit(0)
    off += length
    i += 1
sys.exit("no compressed COMMIT record")
PY
}
read -r rec body entry <<< "$(where "$A/$S.seg")"
flip() { # flip FILE OFFSET
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "\\x$(printf %02x $((b ^ 0x20)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# damaged WHAT FILE OFFSET PATTERN: verify, from the memo of before, reports
# FILE bad (PATTERN) once a byte at OFFSET is flipped, and exits 1.
damaged() {
  local what=$1 file=$2 off=$3 pattern=$4 rc=0
  cp -p "$A/$file" "$T/orig"
  flip "$A/$file" "$off"
  cp "$T/memo.before" "$MEMO"
  "$SQLENVFS" verify --root "$R" > "$T/d" 2> "$T/d.err" || rc=$?
  cp -p "$T/orig" "$A/$file"
  [ "$rc" -eq 1 ] || { cat "$T/d" "$T/d.err"; fail "verify with $what damaged exited $rc"; }
  grep -q "^BAD  wal-archive $file .*app: $pattern" "$T/d" ||
    fail "$what: $file is not reported ($pattern): $(cat "$T/d")"
  pass "a flipped byte in $what of the new segment is found: $(grep "^BAD  wal-archive $file" "$T/d" | head -1)"
}
damaged "a record's compressed pages" "$S.seg" "$body" "record [0-9]* at offset $rec is corrupt (checksum mismatch)"
damaged "a record's header" "$S.seg" $((rec + 17)) "record [0-9]* at offset $rec is corrupt (checksum mismatch)"
damaged "an index entry" "$S.idx" $((32 + (entry - 1) * 112 + 17)) "index entry $entry is corrupt"
damaged "the summary" "$S.sum" $(( $(stat -c %s "$A/$S.sum") / 2 )) "segment summary"
cp "$T/memo.before" "$MEMO"
"$SQLENVFS" verify --root "$R" > "$T/d" || { cat "$T/d"; fail "verify after the repairs"; }
pass "all good again once each file is put back"

# A compressed block whose stored bytes all match their checksums, but whose
# zstd frame declares one byte more than its pages (as a faulty writer would
# make it): the run without --full, which does not decompress blocks, finds
# it from the frame's header; --full finds that it does not decompress.
L=${segs[${#segs[@]}-1]}
cp -p "$A/$L" "$T/orig"
python3 - "$A/$L" <<'PY' || fail "could not forge a frame in $L"
import struct, sys, zlib
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
off = 64
while off + 96 <= len(b):
    typ, flags, length = struct.unpack_from("<HHQ", b, off + 4)
    n = struct.unpack_from("<I", b, off + 48)[0]
    end = off + length
    start = off + 96 + 4 * n
    if typ == 1 and flags & 2 and end <= len(b):
        for nb in range(1, 1024):   # the block table: its lengths add up to the data
            table = end - 8 - 8 * nb
            if table < start:
                break
            lens = [struct.unpack_from("<I", b, table + 8 * j)[0] for j in range(nb)]
            if sum(lens) == table - start:
                break
        else:
            nb = 0
        if nb and b[start:start + 4] == b"\x28\xb5\x2f\xfd":
            fhd = b[start + 4]
            single, fcs_flag, dict_flag = (fhd >> 5) & 1, fhd >> 6, fhd & 3
            fcs_at = start + 5 + (0 if single else 1) + [0, 1, 2, 4][dict_flag]
            size = {0: 1 if single else 0, 1: 2, 2: 4, 3: 8}[fcs_flag]
            if size:
                v = int.from_bytes(b[fcs_at:fcs_at + size], "little") + 1
                b[fcs_at:fcs_at + size] = v.to_bytes(size, "little")
                struct.pack_into("<I", b, table + 4, zlib.crc32(bytes(b[start:start + lens[0]])))
                struct.pack_into("<I", b, end - 8, zlib.crc32(bytes(b[off:end - 8])))
                open(p, "wb").write(bytes(b))
                print(off)
                sys.exit(0)
    off += length
sys.exit("no compressed COMMIT with a zstd frame in the segment being written")
PY
rc=0
"$SQLENVFS" verify --root "$R" > "$T/f1" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/f1"; fail "verify of a forged frame exited $rc"; }
grep -q "^BAD  wal-archive $L .*zstd frame does not hold exactly its pages" "$T/f1" ||
  fail "the forged frame is not reported: $(cat "$T/f1")"
rc=0
"$SQLENVFS" verify --root "$R" --full > "$T/f2" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/f2"; fail "verify --full of a forged frame exited $rc"; }
grep -q "^BAD  wal-archive $L .*does not decompress to its pages" "$T/f2" ||
  fail "--full: the forged frame is not reported: $(cat "$T/f2")"
cp -p "$T/orig" "$A/$L"
pass "a zstd frame that does not hold its pages is found, without --full from its header"
