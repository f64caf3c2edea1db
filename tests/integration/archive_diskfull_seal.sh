#!/usr/bin/env bash
# A full disk that stops a record part way through its write (ext4 takes
# what fits, then ENOSPC) leaves nothing of it behind: the archiver cuts
# the segment back before it seals it, so that `verify` finds no bytes
# after a seal once room is back, and every restore is exact.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
pitr_make_root "$R"
A=$R/backups/prod/wal_archives/app
mkdir -p "$A"
truncate -s 16M "$T/img"
mkfs.ext4 -q "$T/img" || fail "mkfs.ext4"
if ! mount -o loop "$T/img" "$A" 2>"$T/mount.err"; then
  echo "skipped: no loop device here ($(cat "$T/mount.err"))"
  exit 77
fi
_mounts+=("$A")
pitr_start_archiver "$R" "$T/a"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 8 --no-vacuum \
  >/dev/null
pitr_stop_archiver "$T/a"
grep -q 'No space left on device' "$T/a.err" || fail "the archive's disk did not fill"
"$SQLENVFS" verify --root "$R" > "$T/verify.out" 2>&1 ||
  fail "verify after a full disk: $(grep -v '^ok' "$T/verify.out")"
grep -q "after the seal" "$T/verify.out" && fail "bytes after a seal: $(cat "$T/verify.out")"
python3 "$ORACLE" check --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --random 10 --around 4
pass "records cut short by a full disk are cut off before a seal; the archive verifies"
