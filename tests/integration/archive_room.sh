#!/usr/bin/env bash
# An archive on production's own filesystem keeps [cache] min-free-bytes
# free there: when it would take more, the archiver stops writing it, as it
# would on a full disk, while the application can still commit. The
# commits wait in the WAL; once there is room again every one of them is
# archived, and a restore of the latest state is production exactly.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

R=$T/root
tmpfs_root "$R" 64m 16M 2000
A=$R/backups/prod/wal_archives/app
pitr_start_archiver "$R" "$T/a"
avail() { df -B1 --output=avail "$R" | tail -1; }
archive_bytes() { du -sb "$A" | cut -f1; }

# Leave 3 MiB above the minimum, then commit 4000 random bytes every few
# milliseconds: the archive grows until it reaches the minimum.
fallocate -l $(( $(avail) - (16 + 3) * 1024 * 1024 )) "$R/filler"
note "$(avail) bytes free, archive $(archive_bytes) bytes"
app_start "$R/data/prod/app.db" "INSERT INTO b(v) VALUES (randomblob(4000))"
for _ in $(seq 200); do grep -q "min-free-bytes" "$T/a.err" && break; sleep 0.1; done
grep -q "archiver app: the archive's next batch (1.0 MiB) would leave less than \[cache\] \
min-free-bytes (16.0 MiB) of the .* free on the filesystem of production" "$T/a.err" \
  || fail "the archiver did not stop at min-free-bytes: $(cat "$T/a.err")"
sleep 0.5
held=$(archive_bytes)
sleep 2
app_stop
note "archive $held then $(archive_bytes) bytes; $(avail) bytes free; $app_ok commits went in"
assert_eq "$(archive_bytes)" "$held" "the archive's size while production's room is short"
assert_eq "$app_failed" "0" "the application's failed commits"
pass "the archive stops at min-free-bytes on production's filesystem; the application commits"

# Room again: everything is archived, nothing lost.
rm "$R/filler"
for _ in $(seq 100); do grep -q "archiving again; nothing was lost" "$T/a.err" && break; sleep 0.1; done
grep -q "archiver app: archiving again; nothing was lost" "$T/a.err" \
  || fail "the archiver did not go on once there was room: $(cat "$T/a.err")"
pitr_stop_archiver "$T/a"
"$SQLENVFS" restore --root "$R" --time latest --output "$T/latest.db" > /dev/null
q="SELECT count(*), max(i), sum(length(v)) FROM b"
assert_eq "$(sqlite3 "$T/latest.db" "$q")" "$(sqlite3 "$R/data/prod/app.db" "$q")" \
  "the latest state restored against production"
assert_eq "$(sqlite3 "$T/latest.db" "SELECT v FROM b ORDER BY i" | sha256sum)" \
  "$(sqlite3 "$R/data/prod/app.db" "SELECT v FROM b ORDER BY i" | sha256sum)" \
  "every row's bytes, restored against production"
pass "with room again, every commit made meanwhile is archived and restored exactly"
