#!/usr/bin/env bash
# What stands in the way of the root's own files, as `doctor` and `info`
# see it: a directory of the root that is a symbolic link (every command
# that writes there refuses) or a file where a directory belongs is a
# failure that names it and what to do, not "take a backup now"; the
# temporaries a killed restore left next to production or in a directory
# of the user's are listed (and left in place); a -wal whose database is
# gone is named, with a restore, not `init`, as the way out; and a
# development database reached through a link is not opened, so that no
# -wal or -shm is made outside the root.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t(a);")
sqlite3 "$R/data/prod/app.db" "INSERT INTO t VALUES (1)"
"$SQLENVFS" backup --root "$R" > /dev/null

# findings CHECK: "severity|path|found|action" of each finding of CHECK.
findings() {
  "$SQLENVFS" doctor --root "$R" --json > "$T/doctor.json" 2> /dev/null || true
  python3 - "$T/doctor.json" "$1" <<'PY'
import json, sys
for f in json.load(open(sys.argv[1]))["findings"]:
    if f["check"] == sys.argv[2]:
        print(f["severity"], f["path"], f["found"], f["action"], sep="|")
PY
}

# 1. A link at backups/prod, then one level down at backups/prod/daily.
mkdir "$T/otherdisk"
mv "$R/backups/prod" "$T/otherdisk/prod"
ln -s "$T/otherdisk/prod" "$R/backups/prod"
layout=$(findings layout)
grep -q "^failure|$R/backups/prod|.*is a symbolic link.*backup.*refuse" <<<"$layout" ||
  fail "no layout failure for backups/prod as a link: $layout"
rm "$R/backups/prod"
mv "$T/otherdisk/prod" "$R/backups/prod"
mv "$R/backups/prod/daily" "$T/otherdisk/daily"
ln -s "$T/otherdisk/daily" "$R/backups/prod/daily"
findings layout | grep -q "^failure|$R/backups/prod/daily|.*symbolic link" ||
  fail "no layout failure for backups/prod/daily as a link: $(findings layout)"
findings leftovers | grep -q "symbolic link" && fail "leftovers misreport the link"
rm "$R/backups/prod/daily"
mv "$T/otherdisk/daily" "$R/backups/prod/daily"
assert_eq "$(findings layout)" "" "layout findings of a whole root"
pass "a directory of the root that is a link is a layout failure"

# 3. .sqlenvfs a regular file.
rm -rf "$R/.sqlenvfs"
echo x > "$R/.sqlenvfs"
findings layout | grep -q "^failure|$R/.sqlenvfs|.*is not a directory" ||
  fail "no layout failure for .sqlenvfs as a file: $(findings layout)"
findings archiver | grep -q "/proc" && fail "archiver advice names /proc: $(findings archiver)"
expect_fail "\.sqlenvfs: a regular file is there, not a directory.*move it aside" \
  "$SQLENVFS" backup --root "$R"
rm "$R/.sqlenvfs"
pass ".sqlenvfs as a file is a layout failure, and a backup says what is in the way"

# 2. Temporaries of a killed restore next to production and in the root.
mkdir "$R/restore"
dead=$(( $(cat /proc/sys/kernel/pid_max) + 1 ))
head -c 65536 /dev/urandom > "$R/data/prod/.tmp-app.db.restored-$dead"
head -c 65536 /dev/urandom > "$R/data/dev/.tmp-copy.db-$dead"
head -c 65536 /dev/urandom > "$R/restore/.tmp-app.db-$dead"
left=$(findings leftovers)
for f in "$R/data/prod/.tmp-app.db.restored-$dead" "$R/data/dev/.tmp-copy.db-$dead" \
         "$R/restore/.tmp-app.db-$dead"; do
  grep -qF "$f" <<<"$left" || fail "leftover $f not reported: $left"
  [ -f "$f" ] || fail "doctor removed $f"
done
rm "$R/data/prod/.tmp-app.db.restored-$dead" "$R/data/dev/.tmp-copy.db-$dead" \
  "$R/restore/.tmp-app.db-$dead"
pass "doctor lists a killed restore's temporaries in data/ and the root, and keeps them"

# 4. Production's database gone, its -wal with commits still there.
R4=$T/root4
make_root "$R4" <(echo "CREATE TABLE t(a);")
python3 - "$R4/data/prod/app.db" "$T/wal.keep" <<'PY'
import os, shutil, sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_autocheckpoint=0")
for i in range(20):
    c.execute("INSERT INTO t VALUES (?)", (i,)); c.commit()
shutil.copy(sys.argv[1] + "-wal", sys.argv[2]); os._exit(0)
PY
rm "$R4/data/prod/app.db" "$R4/data/prod/app.db-shm"
cp "$T/wal.keep" "$R4/data/prod/app.db-wal"
R=$R4
dbs=$(findings databases)
grep -q "^failure|$R4/data/prod/app.db-wal|.*app.db, the database it belongs to, is not.*|.*restore" \
  <<<"$dbs" || fail "no failure for the orphaned -wal: $dbs"
grep -q "create one with" <<<"$dbs" && fail "doctor advises init: $dbs"
expect_fail "app.db-wal is there but .*app.db is not.*restore" \
  "$SQLENVFS" init --root "$R4" --schema "$R4/schema.sql"
pass "a -wal without its database is named, with a restore as the way out"

# 5. A development database reached through a link: not opened.
R=$T/root
mkdir "$T/outside"
sqlite3 "$T/outside/other.db" "CREATE TABLE s(x); PRAGMA journal_mode=WAL;" > /dev/null
rm "$R/data/dev/app.db"*
ln -s "$T/outside/other.db" "$R/data/dev/app.db"
findings open | grep -q "^failure|$R/data/dev/app.db|not opened: .* is a symbolic link" ||
  fail "no open failure for the linked development database: $(findings open)"
expect_fail "app.db is a symbolic link" "$SQLENVFS" info --root "$R"
assert_eq "$(ls "$T/outside")" "other.db" "files beside the link's target"
rm "$R/data/dev/app.db"
mkdir "$T/outdev"
cp "$T/outside/other.db" "$T/outdev/app.db"
rmdir "$R/data/dev"
ln -s "$T/outdev" "$R/data/dev"
"$SQLENVFS" info --root "$R" > /dev/null 2>&1 && fail "info read through data/dev as a link"
findings open > /dev/null
assert_eq "$(ls "$T/outdev")" "app.db" "files in the directory data/dev links to"
pass "info and doctor open no database through a link"

# 6. Production's directory as a link (production kept on another disk):
# only init refuses, every other command reads and archives production
# through it, so the doctor warns, and still opens production.
rm "$R/data/dev"
mkdir "$R/data/dev"
mv "$R/data/prod" "$T/prodisk"
ln -s "$T/prodisk" "$R/data/prod"
findings layout | grep -q "^warning|$R/data/prod|.*symbolic link .*init refuses to run" ||
  fail "no layout warning for a linked data/prod: $(findings layout)"
findings open | grep -q "not opened" && fail "production was not opened: $(findings open)"
"$SQLENVFS" info --root "$R" > /dev/null || fail "info with data/prod a link"
# Production's file itself a link (moved to another disk): read through it
# as backups and the application read it.
mv "$T/prodisk/app.db" "$T/app-elsewhere.db"
ln -s "$T/app-elsewhere.db" "$T/prodisk/app.db"
findings open | grep -q "not opened" && fail "production's linked file was not opened: $(findings open)"
"$SQLENVFS" info --root "$R" > /dev/null || fail "info with production's file a link"
pass "production's directory or file as a link is a warning at most, and production is still checked"
