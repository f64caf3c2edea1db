#!/usr/bin/env bash
# Nothing the product writes is more readable than production: with umask
# 022 and production 0600, run everything that writes (the mount and its
# archiver, backup, snapshot, refresh-dev now and at a time, a pitr rebuild,
# restore, the log, the locks) and check every file under the root (at most
# 0600) and every directory the product created (at most 0700).
source "$SRCDIR/tests/integration/lib.sh"
umask 022

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 3000
P=$R/data/prod/app.db
chmod 600 "$P"
# What init laid out before production was 0600 is the operator's to
# narrow; everything below is created again by the commands that use it.
rm -rf "$R/backups" "$R/.cache" "$R/.sqlenvfs"

mount_root "$R" "$M"
wait_archiving "$M"
sqlite3 "$P" "UPDATE vessel_characteristics SET vessel_name = vessel_name || '!'"
echo 1 > "$M/ctl/backup"
echo 1 > "$M/ctl/snapshot"
# A journal a rollback-mode connection of development left (PERSIST mode
# zeroes its header and keeps the file), readable by all.
head -c 4096 /dev/zero > "$R/data/dev/app.db-journal"
chmod 644 "$R/data/dev/app.db-journal"
echo 1 > "$M/ctl/refresh-dev"
# The window reaches the commit once the archiver has it (poll, deadline 10 s).
for i in $(seq 1 100); do t=$(readlink "$M/pitr/latest" 2>/dev/null) && break; sleep 0.1; done
[ -n "$t" ] || fail "pitr/latest did not appear"
cmp <(cat "$M/pitr/$t/app.db") <(cat "$M/pitr/$t/app.db") || fail "pitr reads differ"
"$SQLENVFS" refresh-dev --root "$R" --time "$t" > /dev/null
mkdir -p "$T/out"
"$SQLENVFS" restore --root "$R" --time "$t" --output "$T/out/restored.db" > /dev/null
echo nonsense > "$M/ctl/backup" 2>/dev/null || true  # a log line
unmount_root "$M"

[ -s "$R/.sqlenvfs/mount.log" ] || fail "the mount wrote no log"
ls "$R/backups/prod/wal_archives/app/"*.seg > /dev/null || fail "no archive segment"
ls "$R/.cache/"*.db > /dev/null || fail "no cached pitr file"

bad=$(cd "$R" && find . -mindepth 1 \
  \( -path ./schema.sql -o -path ./data -o -path ./data/prod -o -path ./data/dev \) -o \
  \( -type f -perm /0177 -printf '%m %p\n' \) -o \( -type d -perm /0077 -printf '%m %p/\n' \))
[ -z "$bad" ] || fail "more readable than production (0600):
$bad"
assert_eq "$(stat -c %a "$T/out/restored.db")" "600" "mode of the restore output"
note "checked $(cd "$R" && find . -mindepth 1 | wc -l) files and directories"
pass "with production 0600 and umask 022, every file written is 0600 and every directory 0700"

# A development directory that refresh-dev creates: no more readable than
# production either (it was made 0755 whatever production's mode).
rm -rf "$R/data/dev"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null
assert_eq "$(stat -c %a "$R/data/dev")" "700" "mode of the development directory refresh-dev made"
assert_eq "$(stat -c %a "$R/data/dev/app.db")" "600" "mode of the development database it made"
pass "refresh-dev makes a missing development directory 0700 for a 0600 production"

# Made by root for a production another user owns (the application's):
# development, directory and file, gets that owner, so that the
# application can open it; an existing one keeps its own.
chown 1234:1234 "$P"
rm -rf "$R/data/dev"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null
assert_eq "$(stat -c %u:%g "$R/data/dev")" "1234:1234" "owner of the development directory"
rm "$R/data/dev/app.db"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null
assert_eq "$(find "$R/data/dev" ! -uid 1234 -printf '%p %u\n')" "" "files of development not the application's"
assert_eq "$(stat -c %u:%g "$R/data/dev/app.db")" "1234:1234" "owner of the development database"
chown 4321:4321 "$R/data/dev/app.db"
"$SQLENVFS" refresh-dev --root "$R" > /dev/null
assert_eq "$(stat -c %u:%g "$R/data/dev/app.db")" "4321:4321" "owner of an existing development database"
chown -R 0:0 "$P" "$R/data/dev"
pass "development made by root gets production's owner; an existing one keeps its own"

# Production narrowed while the archiver runs: the archive follows at once,
# its files made before the chmod and after it (they were left 0644 until a
# restart).
R2=$T/root2
make_root "$R2" "$SRCDIR/schema.sql"
P2=$R2/data/prod/app.db
chmod 644 "$P2"
"$SQLENVFS" archive --root "$R2" > "$T/a2.out" 2> "$T/a2.err" &
apid=$!
track_pid "$apid"
wait_log "$T/a2.err" 'archiver app: capturing'
sqlite3 "$P2" "CREATE TABLE before_chmod(x); INSERT INTO before_chmod VALUES (1)"
A2=$R2/backups/prod/wal_archives/app
for i in $(seq 1 100); do ls "$A2/"*.seg > /dev/null 2>&1 && break; sleep 0.1; done
# Not the archive's to change: another name of a file outside it; and the
# directory's setgid stays.
echo outside > "$T/outside.txt" && chmod 644 "$T/outside.txt"
ln "$T/outside.txt" "$A2/hardlink-to-outside"
chmod g+s "$A2"
chmod 600 "$P2"
sqlite3 "$P2" "CREATE TABLE after_chmod(x); INSERT INTO after_chmod VALUES (2)"
for i in $(seq 1 100); do
  bad=$(find "$A2" -name hardlink-to-outside -prune -o \( -type f -perm /0177 -printf '%m %p\n' \) -o \
    \( -type d -perm /0077 -printf '%m %p/\n' \))
  [ -z "$bad" ] && break
  sleep 0.1
done
kill -TERM "$apid"; wait "$apid" || true
[ -z "$bad" ] || fail "the archive after production was narrowed to 0600 while archived:
$bad"
assert_eq "$(stat -c %a "$T/outside.txt")" "644" "a file outside the archive, linked into it"
assert_eq "$(stat -c %a "$A2")" "2700" "the archive directory, setgid, narrowed"
rm "$A2/hardlink-to-outside"
pass "a running archiver narrows its archive when production is narrowed"

# Production narrowed after backups and snapshots were written: the next
# backup narrows the copies written before (each database file as its
# production database, the rest and the directories as the narrowest), a
# hard link to a file outside them excepted.
R4=$T/root4
make_root "$R4" "$SRCDIR/schema.sql"
P4=$R4/data/prod/app.db
chmod 644 "$P4"
chmod 755 "$R4/backups" "$R4/backups/prod" "$R4/backups/prod/daily" "$R4/backups/prod/snapshots"
"$SQLENVFS" backup --root "$R4" > /dev/null || fail "backup before the chmod"
"$SQLENVFS" snapshot --root "$R4" > /dev/null || fail "snapshot before the chmod"
# Development, refreshed from production while it was 0644, holds its rows.
"$SQLENVFS" refresh-dev --root "$R4" > /dev/null || fail "refresh-dev before the chmod"
sqlite3 "$R4/data/dev/app.db" "PRAGMA journal_mode=WAL; CREATE TABLE w(x);" > /dev/null
head -c 4096 /dev/zero > "$R4/data/dev/app.db-journal"
chmod 644 "$R4/data/dev/app.db" "$R4/data/dev/app.db-journal"
[ "$(stat -c %a "$R4/data/dev/app.db")" = 644 ] || fail "development is not readable by others"
echo x > "$T/outside-dev.db" && chmod 644 "$T/outside-dev.db"
ln -s "$T/outside-dev.db" "$R4/data/dev/linked.db"
chmod 600 "$P4"
"$SQLENVFS" doctor --root "$R4" > "$T/doctor4.out" 2>&1 || true
grep -q "WARN modes .*development's app.db (mode 0644) lets its group and others read it" \
  "$T/doctor4.out" || fail "doctor does not warn of development: $(cat "$T/doctor4.out")"
old=$(find "$R4/backups/prod/daily" "$R4/backups/prod/snapshots" -mindepth 1 -perm /0044 | wc -l)
[ "$old" -gt 0 ] || fail "the copies before the chmod are not readable by others (nothing to narrow)"
b4=$(ls "$R4/backups/prod/daily" | head -1)
ln "$T/outside.txt" "$R4/backups/prod/daily/$b4/hardlink-to-outside"
# A symlink among the copies, to a directory outside them: not followed.
mkdir -p "$T/outside-dir" && echo x > "$T/outside-dir/f.db" && chmod 755 "$T/outside-dir" &&
  chmod 644 "$T/outside-dir/f.db"
ln -s "$T/outside-dir" "$R4/backups/prod/snapshots/20200101T000000Z"
chmod 600 "$P4"
"$SQLENVFS" backup --root "$R4" > /dev/null || fail "backup after the chmod"
bad=$(find "$R4/backups/prod/daily" "$R4/backups/prod/snapshots" -name hardlink-to-outside -prune -o \
  \( -type f -perm /0177 -printf '%m %p\n' \) -o \( -type d -perm /0077 -printf '%m %p/\n' \))
[ -z "$bad" ] || fail "copies written before production was narrowed to 0600, after a backup:
$bad"
bad=$(find "$R4/data/dev" -type f -perm /0044 -printf '%m %p\n')
[ -z "$bad" ] || fail "development written before production was narrowed to 0600, after a backup:
$bad"
assert_eq "$(stat -c %a "$T/outside-dev.db")" "644" "a file outside development, linked into it"
rm "$R4/data/dev/linked.db"
assert_eq "$(stat -c %a "$T/outside.txt")" "644" "a file outside the copies, linked into one"
assert_eq "$(stat -c %a "$T/outside-dir") $(stat -c %a "$T/outside-dir/f.db")" "755 644" \
  "a directory outside the copies, a symlink to it among them"
rm "$R4/backups/prod/snapshots/20200101T000000Z"
"$SQLENVFS" verify --root "$R4" > "$T/v4.out" 2>&1 || fail "verify after the narrowing: $(cat "$T/v4.out")"
pass "a backup narrows the copies and development written before production was narrowed"

# Development shared with production's group (an application's user in it):
# production and development 0660 in group daemon, then production 0640.
# Only read permissions production does not give go: development keeps its
# group's read and write while production gives its group read, and doctor
# says nothing of it.
chgrp daemon "$P4" "$R4/data/dev/app.db"*
chmod 660 "$P4" "$R4/data/dev/app.db"*
"$SQLENVFS" doctor --root "$R4" > "$T/doctor5.out" 2>&1 || true
grep -q "WARN modes" "$T/doctor5.out" && fail "doctor warns of development as open as production:
$(grep "WARN modes" "$T/doctor5.out")"
"$SQLENVFS" backup --root "$R4" > /dev/null || fail "backup with a shared group"
assert_eq "$(stat -c %a "$R4/data/dev/app.db")" 660 "development after a backup, production 0660"
chmod 640 "$P4"
"$SQLENVFS" backup --root "$R4" > /dev/null || fail "backup with production 0640"
assert_eq "$(stat -c %a "$R4/data/dev/app.db")" 660 "development after a backup, production 0640"
chmod 600 "$P4"
"$SQLENVFS" backup --root "$R4" > /dev/null || fail "backup with production 0600"
assert_eq "$(stat -c %a "$R4/data/dev/app.db")" 620 "development after a backup, production 0600"
pass "development loses only the read permissions production does not give"

# archive_and_copy ROOT: the archiver of ROOT runs while a commit is made
# and a backup and a snapshot taken, until its first segment is there.
archive_and_copy() {
  local root=$1 apid i
  "$SQLENVFS" archive --root "$root" > "$T/a.out" 2> "$T/a.err" &
  apid=$!
  track_pid "$apid"
  wait_log "$T/a.err" 'archiver app: capturing'
  sqlite3 "$root/data/prod/app.db" "CREATE TABLE g(x); INSERT INTO g VALUES (1)"
  "$SQLENVFS" backup --root "$root" > /dev/null || fail "backup"
  "$SQLENVFS" snapshot --root "$root" > /dev/null || fail "snapshot"
  for i in $(seq 1 100); do
    ls "$root/backups/prod/wal_archives/app/"*.seg > /dev/null 2>&1 && break
    sleep 0.1
  done
  kill -TERM "$apid"; wait "$apid" || true
}

# Production 0640 in a group that is not the runner's: a new file takes the
# runner's group, so the copies, the archive, development and a restore
# keep no group bits (that group would read what production's may not).
R5=$T/root5
make_root "$R5" "$SRCDIR/schema.sql"
P5=$R5/data/prod/app.db
chgrp daemon "$P5" && chmod 640 "$P5"
[ "$(stat -c %g "$P5")" != "$(id -g)" ] || fail "production's group is the runner's"
archive_and_copy "$R5"
"$SQLENVFS" refresh-dev --root "$R5" > /dev/null || fail "refresh-dev"
"$SQLENVFS" restore --root "$R5" --time latest --output "$T/out/r5.db" > /dev/null || fail "restore"
bad=$(find "$R5/backups" "$R5/data/dev" "$T/out/r5.db" -type f -perm /0070 -printf '%m %g %p\n')
[ -z "$bad" ] || fail "readable by the runner's group, production's being another:
$bad"
pass "production in another group: copies, archive, development and restores keep no group bits"

# Production 0640 in the runner's group, the store's directories setgid to
# another group: a new file there takes that group, so it keeps no group
# bits either.
R6=$T/root6
make_root "$R6" "$SRCDIR/schema.sql"
P6=$R6/data/prod/app.db
chmod 640 "$P6"
[ "$(stat -c %g "$P6")" = "$(id -g)" ] || fail "production's group is not the runner's"
mkdir -p "$R6/backups/prod/wal_archives/app" "$T/out6"
chgrp daemon "$R6/backups/prod/daily" "$R6/backups/prod/snapshots" \
  "$R6/backups/prod/wal_archives/app" "$T/out6"
chmod g+s "$R6/backups/prod/daily" "$R6/backups/prod/snapshots" \
  "$R6/backups/prod/wal_archives/app" "$T/out6"
archive_and_copy "$R6"
"$SQLENVFS" restore --root "$R6" --time latest --output "$T/out6/r6.db" > /dev/null 2>&1 ||
  fail "restore"
"$SQLENVFS" recover "$P6" --output "$T/out6/rec6.db" > /dev/null || fail "recover"
bad=$(find "$R6/backups" "$T/out6" -type f -group daemon -perm /0070 -printf '%m %g %p\n')
[ -z "$bad" ] || fail "readable by the group of a setgid directory, production's being another:
$bad"
[ -n "$(find "$R6/backups/prod/daily" -type f -group daemon)" ] || fail "the setgid group did not apply"
# Nor do the copies' directories: the group would list their names (times).
bad=$(find "$R6/backups/prod/daily" "$R6/backups/prod/snapshots" -type d -group daemon \
  -perm /0070 -printf '%m %g %p\n')
[ -z "$bad" ] || fail "a copy's directory lets the group of a setgid directory list it:
$bad"
pass "in setgid directories of another group, copies, archive and outputs keep no group bits"

# A root owned by another user, where root ran a backup (root's cron, say):
# the owner's list shows the copy as UNREADABLE, naming whose it is, and
# doctor warns, never calling a good copy DAMAGED and advising to remove
# it; an error on a file of root's says whose it is and what to do.
id sqlenvfs-it >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin sqlenvfs-it ||
  fail "cannot add the test user sqlenvfs-it"
R3=$T/owned
mkdir -p "$R3" && cp "$SRCDIR/schema.sql" "$R3/" && chmod 755 "$T"
chown -R sqlenvfs-it: "$R3"
# The program where that user can run it (a checkout may be under a
# directory only root enters), leaks not checked (the suppressions file
# may be out of its reach too).
mkdir -p "$T/bin" && cp "$SQLENVFS" "$T/bin/sqlenvfs" && chmod 755 "$T/bin" "$T/bin/sqlenvfs"
as_owner() {
  runuser -u sqlenvfs-it -- env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    LSAN_OPTIONS= "$T/bin/sqlenvfs" "$@"
}
as_owner init --root "$R3" > /dev/null
chmod 640 "$R3/data/prod/app.db"
"$SQLENVFS" backup --root "$R3" > /dev/null
out=$(as_owner list --root "$R3")
grep -q "^backups (.*): 0, and 1 UNREADABLE$" <<<"$out" || fail "list as the owner: $out"
grep -Eq "UNREADABLE: .*/MANIFEST: this user may not read it, .*it belongs to uid 0 and this runs as uid [0-9]+" \
  <<<"$out" || fail "list as the owner does not say whose the copy is: $out"
grep -q "DAMAGED" <<<"$out" && fail "list as the owner calls root's good copy DAMAGED: $out"
rc=0
as_owner doctor --root "$R3" > "$T/doctor-owned.out" 2>&1 || rc=$?
grep -q "cannot be read by this user" "$T/doctor-owned.out" ||
  fail "doctor as the owner: $(cat "$T/doctor-owned.out")"
grep -q "is damaged" "$T/doctor-owned.out" && fail "doctor calls root's good copy damaged"
expect_fail "store.lock: Permission denied \(it belongs to uid 0 and this runs as uid [0-9]+: run sqlenvfs as the user that owns" \
  as_owner prune --root "$R3"
# A directory outside the root is named as what was refused, not the root's
# files.
mkdir -m 755 "$T/root-owned-out"
expect_fail "Permission denied \(the directory $T/root-owned-out belongs to uid 0 and this runs as uid [0-9]+: give a path in a directory this user may write" \
  as_owner recover --root "$R3" app --output "$T/root-owned-out/x.db"
pass "another user's copies are UNREADABLE to the owner, never DAMAGED; errors say whose a file is"
