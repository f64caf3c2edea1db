#!/usr/bin/env bash
# An archive on production's own filesystem keeps [cache] min-free-bytes
# free there: when it would take more, the archiver stops writing it, as it
# would on a full disk, while the application can still commit. The
# commits wait in the WAL; once there is room again every one of them is
# archived, and a restore of the latest state is production exactly. The
# WAL the archiver holds meanwhile does not grow into that room either:
# once less than min-free-bytes is free, the archiver lets go of it (the
# commits from then on become a gap), and the application goes on
# committing without ever finding the disk full.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
MIN=$((16 * 1024 * 1024))
tmpfs_root "$R" 64m 16M 2000
A=$R/backups/prod/wal_archives/app
pitr_start_archiver "$R" "$T/a"
avail() { df -B1 --output=avail "$R" | tail -1; }
archive_bytes() { du -sb "$A" | cut -f1; }
STOPPED="archiver app: the archive's next batch (1.0 MiB) would leave less than \[cache\] \
min-free-bytes (16.0 MiB) of the .* free on the filesystem of production"
# The application rewrites one row of 1000 bytes a commit: its database
# keeps its size, and what fills the disk is the WAL alone.
UPDATE="UPDATE b SET v = randomblob(1000) WHERE i = abs(random()) % 2000 + 1"
# fill_to BYTES: a filler file leaving BYTES above min-free-bytes free.
fill_to() {
  rm -f "$R/filler"
  fallocate -l $(( $(avail) - MIN - $1 )) "$R/filler"
}
# restored_is_production WHAT: the latest state restored is production's.
# With the archiver running, the latest state reaches the commits archived
# late after an outage once its alive time passes them: up to 5 s.
restored_is_production() {
  q="SELECT count(*), max(i), sum(length(v)) FROM b"
  rows() { sqlite3 "$1" "SELECT i, hex(v) FROM b ORDER BY i" | sha256sum; }
  for _ in $(seq 50); do
    "$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" --force > /dev/null
    [ "$(rows "$T/latest.db")" = "$(rows "$R/data/prod/app.db")" ] && break
    sleep 0.1
  done
  assert_eq "$(sqlite3 "$T/latest.db" "$q")" "$(sqlite3 "$R/data/prod/app.db" "$q")" \
    "the latest state restored against production ($1)"
  assert_eq "$(rows "$T/latest.db")" "$(rows "$R/data/prod/app.db")" \
    "every row's bytes, restored against production ($1)"
}

# 1. Leave 1.2 MiB above the minimum, then commit 20 times a second: the
# archive grows until its next batch would reach the minimum, and the 2 s
# of commits after that stay in the WAL, within the room left.
fill_to $((1200 * 1024))
note "$(avail) bytes free, archive $(archive_bytes) bytes"
app_start "$R/data/prod/app.db" "$UPDATE" 5 0.05
for _ in $(seq 300); do grep -q "min-free-bytes" "$T/a.err" && break; sleep 0.1; done
grep -q "$STOPPED" "$T/a.err" || fail "the archiver did not stop at min-free-bytes: $(cat "$T/a.err")"
sleep 0.5
held=$(archive_bytes)
sleep 2
app_stop
note "archive $held then $(archive_bytes) bytes; $(avail) bytes free; $app_ok commits went in"
assert_eq "$(archive_bytes)" "$held" "the archive's size while production's room is short"
assert_eq "$app_failed" "0" "the application's failed commits"
if grep -q "letting go of the WAL" "$T/a.err"; then
  fail "the WAL was let go while it held less than the room: $(tail -3 "$T/a.err")"
fi
pass "the archive stops at min-free-bytes on production's filesystem; the application commits"

# Room again: everything is archived, nothing lost.
rm "$R/filler"
for _ in $(seq 100); do grep -q "archiving again; nothing was lost" "$T/a.err" && break; sleep 0.1; done
grep -q "archiver app: archiving again; nothing was lost" "$T/a.err" \
  || fail "the archiver did not go on once there was room: $(cat "$T/a.err")"
restored_is_production "nothing lost"
pass "with room again, every commit made meanwhile is archived and restored exactly"

# 2. The same room, and an application committing as fast as it can: the
# held WAL reaches min-free-bytes within a second or two, and is let go.
# Then eight more seconds of commits (some 15 MB of WAL, which a WAL still
# held would have to hold: the disk would be full): none fails, and what is
# free stays close to the minimum.
n_stop=$(grep -c "$STOPPED" "$T/a.err")
fill_to $((1200 * 1024))
app_start "$R/data/prod/app.db" "$UPDATE"
for _ in $(seq 200); do grep -q "letting go of the WAL" "$T/a.err" && break; sleep 0.1; done
[ "$(grep -c "$STOPPED" "$T/a.err")" -gt "$n_stop" ] \
  || fail "the archiver did not stop at min-free-bytes again: $(tail -5 "$T/a.err")"
grep -q "production's WAL grew to .*, and production's filesystem has .* free, less than \
\[cache\] min-free-bytes (16.0 MiB): letting go of the WAL" "$T/a.err" \
  || fail "the held WAL was not let go at min-free-bytes: $(tail -5 "$T/a.err")"
low=$(avail)
for _ in $(seq 80); do
  a=$(avail)
  [ "$a" -lt "$low" ] && low=$a
  sleep 0.1
done
app_stop
note "$app_ok commits, $app_failed failed; at least $low bytes free after the release"
assert_eq "$app_failed" "0" "the application's failed commits after the release"
[ "$low" -ge $((MIN - 6 * 1024 * 1024)) ] \
  || fail "the WAL went on growing into production's room: $low bytes free at the lowest"
pass "the held WAL is let go at min-free-bytes; the application commits on, the room kept"

# Room again: capture goes on (after a gap naming the release when the WAL
# restarted meanwhile, with a fresh snapshot), and the latest state is
# production exactly.
n_snap=$(ls "$R/backups/prod/snapshots" | wc -l)
rm "$R/filler"
for _ in $(seq 150); do
  if grep -q 'capturing (a new chain after a gap' "$T/a.err"; then
    [ "$(ls "$R/backups/prod/snapshots" | wc -l)" -gt "$n_snap" ] && break
  elif grep -q "capturing (resumed" "$T/a.err"; then
    break
  fi
  sleep 0.1
done
if grep -q 'capturing (a new chain after a gap' "$T/a.err"; then
  grep -q 'GAP: .*the archiver let go of the WAL at .*min-free-bytes' "$T/a.err" \
    || fail "no gap naming the release: $(tail -5 "$T/a.err")"
  [ "$(ls "$R/backups/prod/snapshots" | wc -l)" -gt "$n_snap" ] \
    || fail "no snapshot after the gap: $(tail -5 "$T/a.err")"
else
  grep -q "capturing (resumed" "$T/a.err" \
    || fail "capture did not go on once there was room: $(tail -5 "$T/a.err")"
fi
pitr_stop_archiver "$T/a"
restored_is_production "after the release"
"$SQLENVFS" verify --root "$R" > /dev/null || fail "verify after the release"
pass "with room again, capture goes on and the latest state is production exactly"
