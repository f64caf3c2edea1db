#!/usr/bin/env bash
# A segment of another history copied in: a root is copied (the copy goes on
# by itself, earlier in time), and the copy's segment that holds where the
# two parted is put in the original's archive. Its records have the same
# numbers and layout, and times that still increase, so only the digest the
# next segment's header names tells them apart: restores of the times it
# holds are refused rather than given the copy's rows, and so are times
# before it (where the copy's segments begin cannot be told from the
# break), and verify names the segment that does not follow. With the
# root's own segment back, the same times are exact again. Two segments of
# the copy in a row, and one sealed without a digest, are refused too.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

A=backups/prod/wal_archives/app
R=$T/root C=$T/copy
pitr_make_root "$R"
echo "segment-max-records=50" >> "$R/sqlenvfs.conf"
pitr_start_archiver "$R" "$T/a1"
pitr_write "$R" "$T/log" 1
pitr_stop_archiver "$T/a1"
fork_k=$(pitr_last_k "$T/log")
fork_seg=$(ls "$R/$A" | grep '\.seg$' | tail -1)
early=$(awk -v k=$((fork_k / 2)) '$1=="T" && $2==k {printf "%.6f", $4}' "$T/log")
cp -a "$R" "$C"
cp "$T/log" "$T/copy.log"

# The copy goes on first (its records are the earlier), then the root.
pitr_start_archiver "$C" "$T/a2"
pitr_write "$C" "$T/copy.log" 1 "$fork_k"
pitr_stop_archiver "$T/a2"
pitr_start_archiver "$R" "$T/a3"
pitr_write "$R" "$T/log" 1 "$fork_k"
pitr_stop_archiver "$T/a3"
n=$(ls "$R/$A" | grep -c '\.seg$')
last=$(ls "$R/$A" | grep '\.seg$' | tail -1)
next_seg=$(printf '%016d.seg' $((10#${fork_seg%.seg} + 1)))
[ "$last" != "$fork_seg" ] || fail "the root's archive did not go past $fork_seg ($n segments)"
"$SQLENVFS" verify --full --root "$R" > "$T/v0.out" 2>&1 ||
  fail "verify of the root before anything was copied in: $(cat "$T/v0.out")"

# A time inside the segment where the two parted, after the fork: the
# copy's commits there are older than the root's, so they are in its
# range of times too.
mid=$(python3 - "$R/$A" "$fork_seg" "$T/log" "$fork_k" <<'PY'
import os, subprocess, sys
d, seg, log, k0 = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
dump = os.path.join(os.environ["SRCDIR"], "tests/integration/archive_dump.py")
recs = [l.split() for l in subprocess.check_output([sys.executable, dump, d], text=True).splitlines()]
last_in_seg = max(float(r[4]) for r in recs if r[0] == seg and r[3] == "COMMIT")
ts = [float(l.split()[3]) for l in open(log) if l.startswith("T ") and int(l.split()[1]) > k0]
inside = [t for t in ts if t < last_in_seg]
assert len(inside) >= 3, "too few of the root's commits after the fork in its segment"
print("%.6f" % inside[len(inside) // 2])
PY
)
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect ok
cp -a "$R/$A" "$T/own"
# copy_in FROM SEG...: SEG's files from the archive at FROM into the root's.
copy_in() {
  local from=$1 seg ext; shift
  for seg in "$@"; do
    for ext in seg idx sum last; do
      [ -e "$from/${seg%.seg}.$ext" ] && cp "$from/${seg%.seg}.$ext" "$R/$A/"
    done
  done
  return 0
}
copy_in "$C/$A" "$fork_seg"
cmp -s "$C/$A/$fork_seg" "$T/own/$fork_seg" && fail "the copy's $fork_seg is the root's"

python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect refused --match "was not written after the records $fork_seg holds"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$early" --expect refused --match "was not written after the records $fork_seg holds"
pass "a time the copied-in segment holds is refused, and one before it"

"$SQLENVFS" verify --root "$R" > "$T/v1.out" 2>&1 && fail "verify passes: $(cat "$T/v1.out")"
grep -q "BAD .*$next_seg .*was not written after the records $fork_seg holds" "$T/v1.out" ||
  fail "verify does not name the break: $(cat "$T/v1.out")"
pass "verify names the segment that does not follow"

copy_in "$T/own" "$fork_seg"
for t in "$mid" "$early"; do
  python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
    --time "@$t" --expect ok
done
"$SQLENVFS" verify --root "$R" > "$T/v2.out" 2>&1 ||
  fail "verify with the root's own segment back: $(cat "$T/v2.out")"
pass "with the root's own segment back the time is exact and verify passes"

# Two segments of the copy in a row: they follow each other, and the break
# is past them, after the range a time in the first needs.
after_seg=$(printf '%016d.seg' $((10#${fork_seg%.seg} + 2)))
[ -e "$C/$A/$after_seg" ] || fail "the copy's archive did not reach $after_seg"
copy_in "$C/$A" "$fork_seg" "$next_seg"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect refused --match "was not written after the records $next_seg holds"
"$SQLENVFS" verify --root "$R" > "$T/v3.out" 2>&1 && fail "verify passes: $(cat "$T/v3.out")"
grep -q "BAD .*$after_seg .*was not written after the records $next_seg holds" "$T/v3.out" ||
  fail "verify does not name the break after two segments: $(cat "$T/v3.out")"
copy_in "$T/own" "$fork_seg" "$next_seg"
pass "two segments of the copy in a row: refused, the break named past them"

# The copy's segment as an earlier sqlenvfs would have sealed it (a SEAL
# without a digest): the root's next header names one, which in a single
# history follows only a SEAL that carries it.
copy_in "$C/$A" "$fork_seg"
python3 - "$R/$A/$fork_seg" <<'PY'
import struct, sys, zlib
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
at = len(data) - 104
assert data[at:at + 4] == b"SQAR" and struct.unpack_from("<H", data, at + 4)[0] == 4
struct.pack_into("<H", data, at + 6, 0)        # flags: no digest
struct.pack_into("<I", data, at + 88, 0)       # digest
struct.pack_into("<I", data, at + 92, zlib.crc32(bytes(data[at:at + 92])))
struct.pack_into("<I", data, at + 96, zlib.crc32(bytes(data[at:at + 96])))
open(path, "wb").write(data)
PY
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect refused --match "was not written after the records $fork_seg holds"
"$SQLENVFS" verify --root "$R" > "$T/v4.out" 2>&1 && fail "verify passes: $(cat "$T/v4.out")"
grep -q "BAD .*$next_seg .*was not written after the records $fork_seg holds" "$T/v4.out" ||
  fail "verify does not name the break after a SEAL without a digest: $(cat "$T/v4.out")"
copy_in "$T/own" "$fork_seg"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "@$mid" --expect ok
pass "a copied segment sealed without a digest before a header naming one: refused"
