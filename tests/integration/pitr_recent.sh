#!/usr/bin/env bash
# A time archived since the mount last read the archive: the mount has no
# archiver of its own (`sqlenvfs archive` runs beside it) and compares its
# view of the archive with the files only now and then (here, with the test
# hook, once an hour). A lookup of a time past the end of that view reads
# the archive again before refusing it, so that pitr/T serves what
# `restore --time T` gives, exact against the commit log; a time after the
# last archived one is still refused.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
MNT=$T/mnt
pitr_make_root "$R"
pitr_start_archiver "$R" "$T/a"
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 2 --no-vacuum >/dev/null

# window_end: the end of the recoverable window, as the command line reads it.
window_end() {
  "$SQLENVFS" list --json --root "$R" | python3 -c '
import json, sys
print(json.load(sys.stdin)["windows"][-1]["to"])'
}

mkdir -p "$MNT"
SQLENVFS_TEST_PITR_CHECK_MS=3600000 "$SQLENVFS" mount -f -o noarchiver "$R" "$MNT" 2> "$T/mount.log" &
track_pid $!
_mounts+=("$MNT")
wait_mounted "$MNT"

# The mount reads the archive once, at a time inside the window.
T1=$(window_end)
ls -l "$MNT/pitr/$T1/app.db" > /dev/null || fail "pitr/$T1 (the window's end) was not found"

# More commits, archived by the archiver beside the mount, until the
# window's end (which the command line reads afresh each time) is past the
# last of them.
python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 1 --no-vacuum \
  --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
DONE=$(date -u +%s.%N)
for i in $(seq 1 100); do
  T2=$(window_end)
  python3 -c '
import datetime, sys
t = datetime.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")).timestamp()
sys.exit(0 if t > float(sys.argv[2]) else 1)' "$T2" "$DONE" && break
  sleep 0.1
done
[ "$T2" != "$T1" ] || fail "the window's end did not move after more commits"
"$SQLENVFS" restore --root "$R" --time "$T2" --output "$T/r2.db" > /dev/null \
  || fail "restore --time $T2 failed"

ls -l "$MNT/pitr/$T2/app.db" > /dev/null 2> "$T/ls.err" \
  || fail "pitr/$T2, archived since the mount last read the archive, was not found: $(cat "$T/ls.err")"
cp "$MNT/pitr/$T2/app.db" "$T/m2.db"
# (bytes 18 and 19 of the header aside: a pitr file reads as a rollback
# journal database, a restore's output is in WAL mode)
cmp -s -n 18 "$T/m2.db" "$T/r2.db" && cmp -s -i 20 "$T/m2.db" "$T/r2.db" \
  || fail "pitr/$T2 differs from restore --time $T2"
python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
  --time "$T2" --expect ok > /dev/null || fail "restore --time $T2 is not exact"
pass "a time archived since the mount last read the archive is served, the restore's bytes"

# A time just past, taken right after a commit, while the archiver runs in
# another process: the restore and the -o noarchiver mount wait a moment
# for its window to reach the time, rather than refusing it.
for i in 1 2 3; do
  python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 0.3 --no-vacuum \
    --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
  NOW=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  "$SQLENVFS" restore --root "$R" --time "$NOW" --output "$T/now$i.db" >/dev/null 2>"$T/now.err" ||
    fail "restore --time $NOW, just after a commit, was refused: $(cat "$T/now.err")"
  python3 "$ORACLE" probe --sqlenvfs "$SQLENVFS" --root "$R" --log "$T/log" --tmp "$T" \
    --time "$NOW" --expect ok > /dev/null || fail "restore --time $NOW (just past) is not exact"
  python3 "$ORACLE" writer --db "$R/data/prod/app.db" --log "$T/log" --duration 0.3 --no-vacuum \
    --k0 "$(awk '$1=="T"{k=$2} END{print k}' "$T/log")" >/dev/null
  NOW=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
  ls "$MNT/pitr/$NOW/app.db" >/dev/null 2>"$T/now.err" ||
    fail "pitr/$NOW, just after a commit, was not found: $(tail -3 "$T/mount.log")"
done
pass "a time just past is waited for, by restore and by a mount without its own archiver"

pitr_stop_archiver "$T/a"
sleep 1.5
LATER=$(date -u -d '0.5 seconds ago' +%Y-%m-%dT%H:%M:%S.%6NZ)
if ls "$MNT/pitr/$LATER/" > /dev/null 2>&1; then
  fail "pitr/$LATER, after the last archived time, was found"
fi
pass "a time after the last archived one is still refused"
