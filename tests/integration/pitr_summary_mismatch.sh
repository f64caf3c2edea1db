#!/usr/bin/env bash
# A sealed segment's summary that no longer matches the segment file (the
# seal checksum it gives; its own checksums made right, so that it reads as
# sound; the memo of checked segment files says nothing of summaries): a
# restore is planned from the summary without opening the segment, finds
# the mismatch at its first read of it, and composes again from the
# segment's records: exact, and the log names the segment. Through the
# mount, the read that finds the mismatch is refused with an error naming
# the segment, never served with a wrong page; the mount remembers it, and
# the next read of a state across it is composed from the segment's
# records, exact. Once the summary is right again both are exact.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_history "$R"
# The first restore checks every record; the memo remembers the segments.
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time latest --expect ok >/dev/null

# The summary of a sealed segment in the middle: its seal checksum changed,
# its head checksum made right again.
SUM=$(python3 - "$R/backups/prod/wal_archives/app" <<'PY'
import glob, os, struct, sys, zlib
sums = sorted(glob.glob(os.path.join(sys.argv[1], "*.sum")))
assert len(sums) >= 3, "too few summaries: %d" % len(sums)
path = sums[len(sums) // 2]
b = bytearray(open(path, "rb").read())
assert b[:8] == b"SQEFSSUM" and struct.unpack_from("<I", b, 8)[0] == 2
m, g = struct.unpack_from("<II", b, 96)
head = 160 + 112 * m + 40 * g
struct.pack_into("<I", b, 32, struct.unpack_from("<I", b, 32)[0] ^ 0x10)
c = zlib.crc32(bytes(b[0:120]))
c = zlib.crc32(bytes(b[124:head]), c)
struct.pack_into("<I", b, 120, c)
open(path + ".orig", "wb").write(open(path, "rb").read())
open(path, "r+b").write(bytes(b))
print(path)
PY
)
SEGNAME=$(basename "${SUM%.sum}.seg")
note "the summary of $SEGNAME no longer matches it"

# A restore: exact, the segment named in its log.
"$SQLENVFS" restore --root "$R" --time latest --output "$T/r1.db" > /dev/null 2> "$T/r1.err" \
  || fail "restore failed: $(cat "$T/r1.err")"
grep -q "$SEGNAME does not match its summary" "$T/r1.err" \
  || fail "the restore did not name $SEGNAME: $(cat "$T/r1.err")"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time latest --expect ok >/dev/null
pass "a restore across it is exact, composed again from $SEGNAME's records"

# mount_fg LOG: mount the root on $MNT in the foreground (its log in LOG),
# with no archiver of its own; unmounted on exit.
MNT=$T/mnt
mount_fg() {
  mkdir -p "$MNT"
  "$SQLENVFS" mount -f -o noarchiver "$R" "$MNT" 2> "$1" &
  track_pid $!
  _mounts+=("$MNT")
  wait_mounted "$MNT"
}

# Through the mount: refused, the mount's log naming the segment.
mount_fg "$T/mount1.log"
if cat "$MNT/pitr/latest/app.db" > "$T/m1.db" 2> "$T/m1.err"; then
  fail "the mount served a state composed across $SEGNAME"
fi
# The same mount, asked again: it remembers the segment and composes the
# state from its records, the bytes the restore wrote.
cat "$MNT/pitr/latest/app.db" > "$T/m1b.db" 2> "$T/m1b.err" \
  || fail "the mount refused the state again: $(cat "$T/m1b.err")"
unmount_root "$MNT"
grep -q "$SEGNAME does not match its summary" "$T/mount1.log" \
  || fail "the mount's log does not name $SEGNAME: $(tail -5 "$T/mount1.log")"
cmp -s -n 18 "$T/m1b.db" "$T/r1.db" && cmp -s -i 20 "$T/m1b.db" "$T/r1.db" \
  || fail "the mount's state composed from the records differs from the restore's"
pass "the mount refuses the read that found the mismatch, naming the segment, then serves the state from its records"

# The summary right again: the mount serves the state, exact.
mv "$SUM.orig" "$SUM"
mount_fg "$T/mount2.log"
cp "$MNT/pitr/latest/app.db" "$T/m2.db" || fail "the mount did not serve the state again"
unmount_root "$MNT"
# (bytes 18 and 19 of the header aside: a pitr file reads as a rollback
# journal database, a restore's output is in WAL mode)
cmp -s -n 18 "$T/m2.db" "$T/r1.db" && cmp -s -i 20 "$T/m2.db" "$T/r1.db" \
  || fail "the mount's state differs from the restore's"
pass "with the summary right again the mount serves the same database"
