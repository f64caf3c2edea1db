#!/usr/bin/env bash
# An error in sqlenvfs.conf stops only what needs the section it is in: a
# misspelt [replica] setting leaves the archiver archiving (nothing shipped)
# and a restore working, while a prune, which needs every section, refuses;
# an error in [archive] stops the archiver. A running mount prunes by the
# retention the file holds when the prune runs, not when it started.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t (x INTEGER PRIMARY KEY, v TEXT);")
P=$R/data/prod/app.db
sqlite3 "$P" "INSERT INTO t (v) VALUES ('before')"
"$SQLENVFS" backup --root "$R" > /dev/null

# ---- [replica] misspelt: archived all the same, no gap --------------------------
printf '[replica]\nurl = s3://sqlenvfs-test/p\nsync-intervall = 5\n' > "$R/sqlenvfs.conf"
"$SQLENVFS" archive --root "$R" > "$T/archive.log" 2>&1 &
ARCH=$!
track_pid "$ARCH"
wait_log "$T/archive.log" "capturing"
grep -q "line 3: \[replica\] sync-intervall is not a setting" "$T/archive.log" ||
  fail "the archiver does not say why nothing ships: $(cat "$T/archive.log")"
for i in $(seq 1 20); do
  sqlite3 "$P" "INSERT INTO t (v) VALUES ('row $i')"
done
sqlite3 "$P" "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null
sqlite3 "$P" "INSERT INTO t (v) VALUES ('last')"
want=$(sqlite3 "$P" "SELECT count(*), max(x) FROM t")
for i in $(seq 1 100); do
  "$SQLENVFS" restore --root "$R" --time latest --output "$T/r$i.db" 2> "$T/restore.err" \
    > /dev/null && [ "$(sqlite3 "$T/r$i.db" "SELECT count(*), max(x) FROM t")" = "$want" ] && break
  sleep 0.1
done
[ "$(sqlite3 "$T/r$i.db" "SELECT count(*), max(x) FROM t")" = "$want" ] ||
  fail "restore with a misspelt [replica]: $(cat "$T/restore.err")"
grep -q "warning: .*sync-intervall" "$T/restore.err" ||
  fail "the restore does not warn: $(cat "$T/restore.err")"
"$SQLENVFS" list --root "$R" > "$T/list.out" 2>&1 || fail "list: $(cat "$T/list.out")"
! grep -qi "gap" "$T/list.out" || fail "a gap in the archive: $(cat "$T/list.out")"
pass "a misspelt [replica] setting: archived with no gap, restored exactly, each says why"

before=$(find "$R/backups" | sort | sha256sum)
expect_fail "line 3: \[replica\] sync-intervall is not a setting" "$SQLENVFS" prune --root "$R"
assert_eq "$(find "$R/backups" | sort | sha256sum)" "$before" "backups after a refused prune"
pass "prune refuses a settings file with an error, and removes nothing"
kill "$ARCH"
wait "$ARCH" 2>/dev/null || true

# ---- [archive] with an error: the archiver refuses, naming the line ---------------
printf '[archive]\nmax-wal-bytes = lots\n' > "$R/sqlenvfs.conf"
expect_fail "line 2: \[archive\] max-wal-bytes=lots is not a whole number" \
  "$SQLENVFS" archive --root "$R"
pass "an error in [archive] stops the archiver, naming the line"

# ---- a running mount prunes by the retention the file holds now -------------------
printf '[retention]\ndaily-keep-days=0\ndaily-keep-count=1\n' > "$R/sqlenvfs.conf"
for i in 1 2; do "$SQLENVFS" backup --root "$R" > /dev/null; sleep 1.1; done
n=$(ls "$R/backups/prod/daily" | wc -l)
[ "$n" -ge 3 ] || fail "expected 3 backups, have $n"
M=$T/mnt
mount_root "$R" "$M"
printf '[retention]\ndaily-keep-days=0\ndaily-keep-count=0\n' > "$R/sqlenvfs.conf"
echo 1 > "$M/ctl/prune"
assert_eq "$(ls "$R/backups/prod/daily" | wc -l)" "$n" "backups after ctl/prune with no limit"
printf '[retention]\ndaily-keep-days=0\ndaily-keep-count=x\n' > "$R/sqlenvfs.conf"
! echo 1 2>/dev/null > "$M/ctl/prune" || fail "ctl/prune went on with a [retention] error"
grep -q "daily-keep-count=x" "$M/ctl/prune" || fail "ctl/prune's result: $(cat "$M/ctl/prune")"
assert_eq "$(ls "$R/backups/prod/daily" | wc -l)" "$n" "backups after a refused ctl/prune"
pass "a mount's ctl/prune follows the settings file as it is when the prune runs"

# A replica set while the mount runs: its archiver ships nothing until it
# is started again, and list says so (not that no archiver runs).
printf '[retention]\ndaily-keep-days=0\ndaily-keep-count=1\n[replica]\nurl=s3://sqlenvfs-test/p\n' \
  > "$R/sqlenvfs.conf"
"$SQLENVFS" list --root "$R" > "$T/list.out" 2>&1 || fail "list: $(cat "$T/list.out")"
grep -q "the running archiver (pid [0-9]*) started before the replica was set, and ships nothing: restart it" \
  "$T/list.out" || fail "list with a replica set after the mount: $(cat "$T/list.out")"
! echo 1 2>/dev/null > "$M/ctl/prune" || fail "ctl/prune removed copies not shipped"
assert_eq "$(ls "$R/backups/prod/daily" | wc -l)" "$n" "backups after ctl/prune with nothing shipped"
unmount_root "$M"
pass "a replica set after the mount started: list says to restart it, prune removes nothing"

# ---- the same file read the same way by every reader -------------------------------
# A byte order mark (as some editors write) before [replica]: a prune still
# sees the replica, and removes nothing it has not shipped.
n=$(ls "$R/backups/prod/daily" | wc -l)
printf '\xef\xbb\xbf[retention]\ndaily-keep-days=0\ndaily-keep-count=1\n[replica]\nurl=s3://sqlenvfs-test/p\n' \
  > "$R/sqlenvfs.conf"
expect_fail "not yet shipped to s3://sqlenvfs-test/p" "$SQLENVFS" prune --root "$R"
assert_eq "$(ls "$R/backups/prod/daily" | wc -l)" "$n" "backups after a prune with a BOM"
pass "a byte order mark: prune still sees the replica and removes nothing unshipped"

# [cache] with an error: the room a copy leaves is not a default put in its place.
printf '[cache]\nmin-free-bytes=100T\nmax-byte=4G\n' > "$R/sqlenvfs.conf"
! "$SQLENVFS" backup --root "$R" > /dev/null 2> "$T/backup.err" ||
  fail "a backup with an error in [cache] went on"
grep -q "backup: backup copies: the room to leave free cannot be read: .*line 3: \[cache\] max-byte is not a setting" \
  "$T/backup.err" || fail "the backup's refusal: $(cat "$T/backup.err")"
assert_eq "$(ls "$R/backups/prod/daily" | wc -l)" "$n" "backups after a refused backup"
pass "an error in [cache] stops what leaves room by it (a backup)"

# [archive] with an error: no mount, also without an archiver (it holds
# production's WAL by [archive] max-wal-bytes).
printf '[archive]\nmax-wal-bytes=1M\nsegment-max-bytes=big\n' > "$R/sqlenvfs.conf"
mkdir -p "$T/mnt2"
expect_fail "line 3: \[archive\] segment-max-bytes=big" \
  "$SQLENVFS" mount "$R" "$T/mnt2" -o noarchiver
mountpoint -q "$T/mnt2" && fail "mounted with an error in [archive]"
pass "an error in [archive] stops the mount, also with -o noarchiver"

# A settings file that is a link to no file: --remote says so, not the
# defaults in silence.
rm "$R/sqlenvfs.conf"
ln -s "$T/no-such.conf" "$R/sqlenvfs.conf"
expect_fail "it is a link to a file that cannot be read" \
  "$SQLENVFS" list --root "$R" --remote s3://sqlenvfs-test/p
rm "$R/sqlenvfs.conf"
pass "a settings file that is a link to no file: --remote refuses, naming it"
