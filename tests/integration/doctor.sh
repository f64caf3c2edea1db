#!/usr/bin/env bash
# sqlenvfs doctor: each finding triggered for real — a second process holding
# the write lock, a nearly full filesystem under the backups, a database over
# the size threshold, a stale and a damaged backup, production not in WAL
# mode, a damaged database, a wrong environment marker, no archiver — and the
# exit status 0 / 1 / 2 for ok / warnings / failures. The doctor must never
# take the archiver's lock nor change a database.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
P=$R/data/prod/app.db
D=$R/data/dev/app.db
cp "$SRCDIR/schema.sql" "$T/schema.sql"
"$SQLENVFS" init --root "$R" --schema "$T/schema.sql" --demo --demo-events 3000 >/dev/null
cat >"$R/sqlenvfs.conf" <<'EOF'
[doctor]
# This machine's SQLite has the WAL-reset bug; the test accepts the risk so
# that a healthy root can come out all ok.
acknowledged-bugs=wal-reset
EOF
"$SQLENVFS" backup --root "$R" >/dev/null

# The doctor as JSON: sets $rc and writes $T/doc.json.
doctor() {
  rc=0
  "$SQLENVFS" doctor --root "$R" --json "$@" >"$T/doc.json" || rc=$?
}
# Succeed when there is a finding SEVERITY CHECK SUBJECT whose "found" text
# contains TEXT (or starts with it, for "^TEXT"); print it either way.
finding() { # severity check subject [text]
  python3 - "$T/doc.json" "$@" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
sev, check, subject = sys.argv[2:5]
text = sys.argv[5] if len(sys.argv) > 5 else ""
for f in doc["findings"]:
    if f["severity"] == sev and f["check"] == check and f["subject"] == subject:
        assert f["action"], "finding without an action: %r" % f
        print(f["found"])
        ok = f["found"].startswith(text[1:]) if text.startswith("^") else text in f["found"]
        sys.exit(0 if ok else 1)
print("no %s %s finding for %s in: %s" % (sev, check, subject,
      "; ".join("%s %s %s" % (f["severity"], f["check"], f["subject"]) for f in doc["findings"])),
      file=sys.stderr)
sys.exit(1)
PY
}
status_of() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["status"], d["exit_status"])' "$T/doc.json"; }
every_finding_has_action() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); bad=[f for f in d["findings"] if not f["action"] or not f["found"]]; sys.exit(1 if bad else 0)' "$T/doc.json" \
    || fail "a finding without what was found or what to do"
}

# The real archiver, in the foreground in the background. The doctor finds it
# by its lock on .sqlenvfs/archiver.lock in /proc/locks. The test, like the
# doctor, only looks at /proc/locks: probing with flock(1) would take the lock
# for an instant and could make a starting archiver fail.
lock_held() {
  local ino
  ino=$(stat -c %i "$R/.sqlenvfs/archiver.lock" 2>/dev/null) || return 1
  grep -Eq "FLOCK +ADVISORY +WRITE +[0-9]+ [0-9a-f]+:[0-9a-f]+:$ino " /proc/locks
}
start_archiver() {
  "$SQLENVFS" archive --root "$R" >"$T/archiver.log" 2>&1 &
  ARCH=$!
  track_pid "$ARCH"
  for _ in $(seq 100); do
    [ "$(cat "$R/.sqlenvfs/archiver.lock" 2>/dev/null)" = "$ARCH" ] && lock_held && return 0
    kill -0 "$ARCH" 2>/dev/null || fail "the archiver exited: $(cat "$T/archiver.log")"
    sleep 0.1
  done
  fail "the archiver did not take its lock"
}
stop_archiver() {
  kill -TERM "$ARCH" 2>/dev/null || true
  wait "$ARCH" 2>/dev/null || true
  for _ in $(seq 100); do
    lock_held || return 0
    sleep 0.1
  done
  fail "the archiver's lock is still held after it stopped: $(grep FLOCK /proc/locks | tr '\n' ' ')"
}

start_archiver
# A restore drill that never ran is a warning: a healthy root has passed one.
"$SQLENVFS" verify --drill --root "$R" >/dev/null || fail "the restore drill failed on a healthy root"
doctor
assert_eq "$(status_of)" "ok 0" "doctor on a healthy root (JSON status, exit)"
assert_eq "$rc" "0" "exit status on a healthy root"
every_finding_has_action
finding ok archiver root "pid $ARCH (sqlenvfs) holds its lock" >/dev/null || fail "archiver holder not named: $(finding ok archiver root)"
finding ok backup prod/app "crc32 and integrity_check passed" >/dev/null || fail "backup not verified"
finding ok environment dev/app >/dev/null || fail "dev marker not checked"
lock_held || fail "the archiver's lock is free: the doctor released or never saw it"
"$SQLENVFS" doctor --root "$R" >"$T/doc.txt" || fail "text doctor exit $?"
grep -q "^0 failures, 0 warnings, [0-9]* ok$" "$T/doc.txt" || fail "text summary: $(tail -1 "$T/doc.txt")"
pass "healthy root: every finding ok, exit 0; the archiver's lock stays with its holder"

# ---- the archiver runs but falls behind -------------------------------------
finding ok archive prod/app "every commit is archived up to" >/dev/null || fail "archive reach"
printf 'archive-lag-warn-seconds=2\n' >>"$R/sqlenvfs.conf"
kill -STOP "$ARCH"
sqlite3 "$P" "INSERT INTO vessel_characteristics (mmsi, vessel_name, vessel_type) VALUES (222222222, 'LAG', 'Tug')"
# The lag grows with the time since the stalled archiver last recorded that
# capture was complete: ask until it passes the 2 s threshold (60 s at most).
deadline=$(( $(date +%s) + 60 ))
while :; do
  doctor
  finding warning archive prod/app "behind" >/dev/null 2>&1 && break
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep 0.2
done
kill -CONT "$ARCH"
assert_eq "$rc" "1" "exit status with a stalled archiver"
finding warning archive prod/app "behind (more than [doctor] archive-lag-warn-seconds=2)" >/dev/null || fail "lag warning"
for _ in $(seq 50); do
  doctor
  [ "$rc" = 0 ] && break
  sleep 0.2
done
assert_eq "$rc" "0" "exit status once the archiver caught up"
sed -i '/archive-lag-warn-seconds/d' "$R/sqlenvfs.conf"
pass "a stalled archiver: lag warning; caught up: ok"

# ---- the archiver is not running: warning --------------------------------------
stop_archiver
doctor
assert_eq "$(status_of)" "warning 1" "doctor without an archiver"
assert_eq "$rc" "1" "exit status with a warning"
finding warning archiver root "no archiver is running" >/dev/null || fail "archiver warning"
start_archiver
pass "no archiver: warning, exit 1"

# ---- a user who may not look into .sqlenvfs/: "cannot tell", never "none" -------------
# Everything else is readable to that user; the archiver runs.
state_mode=$(stat -c %a "$R/.sqlenvfs")
chmod o+x "$T"
chmod -R o+rX "$R"
chmod 700 "$R/.sqlenvfs"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups "$SQLENVFS" doctor --root "$R" --json >"$T/doc.json" 2>"$T/doc.err" || rc=$?
chmod "$state_mode" "$R/.sqlenvfs"
[ "$rc" -ne 2 ] || fail "doctor as another user failed: $(cat "$T/doc.err") $(cat "$T/doc.json")"
finding warning archiver root "cannot tell whether the archiver runs: cannot look at the lock file $R/.sqlenvfs/archiver.lock: Permission denied" >/dev/null \
  || fail "archiver finding for a user who cannot see the lock: $(python3 -c 'import json,sys; print([f for f in json.load(open(sys.argv[1]))["findings"] if f["check"] == "archiver"])' "$T/doc.json")"
python3 - "$T/doc.json" <<'PY' || fail "doctor said no archiver runs while one does"
import json, sys
for f in json.load(open(sys.argv[1]))["findings"]:
    assert "no archiver is running" not in f["found"], f
    assert "the archiver is not running" not in f["found"], f
PY
pass "a user who cannot read .sqlenvfs/: the doctor says it cannot tell whether the archiver runs, and why"

# hold_db DB SQL...: a Python connection to DB runs each SQL statement, then
# holds what it took until killed (its pid in $LOCKER).
hold_db() {
  local db=$1; shift
  rm -f "$T/held"
  python3 - "$db" "$T/held" "$@" >/dev/null 2>&1 <<'PY' &
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
for sql in sys.argv[3:]:
    con.execute(sql).fetchall()
open(sys.argv[2], "w").close()
time.sleep(600)
PY
  LOCKER=$!
  track_pid "$LOCKER"
  for _ in $(seq 100); do [ -e "$T/held" ] && break; sleep 0.1; done
  [ -e "$T/held" ] || fail "the holder of $db did not start"
}

# ---- a second process holds the write lock ----------------------------------
hold_db "$P" "BEGIN IMMEDIATE" \
  "INSERT INTO vessel_characteristics (mmsi, vessel_name, vessel_type) VALUES (111111111, 'LOCK', 'Tug')"
doctor
assert_eq "$rc" "1" "exit status with a lock held"
finding warning locks prod/app "pid $LOCKER (python3) held the write lock" >/dev/null || fail "lock holder not named: $(finding warning locks prod/app)"
finding ok processes prod/app "pid $LOCKER (python3)" >/dev/null || fail "process holding the db open not named"
finding ok locks dev/app >/dev/null 2>&1 && fail "a lock reported on dev/app"
kill "$LOCKER"; wait "$LOCKER" 2>/dev/null || true
assert_eq "$(sqlite3 "$P" 'SELECT count(*) FROM vessel_characteristics WHERE mmsi = 111111111')" "0" "the locker's uncommitted row"
doctor
assert_eq "$rc" "0" "exit status after the locker went"
pass "a second process holding BEGIN IMMEDIATE: warning naming pid $LOCKER (python3)"

# ---- a connection in exclusive locking mode ----------------------------------
# It keeps every other process out of the database: the doctor cannot open it,
# and says who holds it and why rather than only "locked". On development, so
# that production's archive is left alone (on production the archiver's own
# connection keeps such an application out).
D=$R/data/dev/app.db
hold_db "$D" "PRAGMA locking_mode=EXCLUSIVE" "SELECT count(*) FROM sqlite_master"
doctor
assert_eq "$rc" "1" "exit status with development held in exclusive locking mode"
finding warning open dev/app "database is locked" >/dev/null || fail "open finding: $(finding warning open dev/app)"
finding warning locks dev/app "pid $LOCKER (python3) held the database file locked EXCLUSIVE" >/dev/null \
  || fail "exclusive holder not named: $(finding warning locks dev/app)"
finding warning locks dev/app "PRAGMA locking_mode=EXCLUSIVE" >/dev/null || fail "exclusive mode not named"
finding ok processes dev/app "pid $LOCKER (python3)" >/dev/null || fail "process holding dev open not named"
kill "$LOCKER"; wait "$LOCKER" 2>/dev/null || true
doctor
assert_eq "$rc" "0" "exit status after the exclusive holder went"
pass "a connection in exclusive locking mode: the doctor names pid $LOCKER and the pragma"

# ---- less free on production's filesystem than [cache] min-free-bytes -----------
cp "$R/sqlenvfs.conf" "$T/conf.saved"
finding ok space room "at least [cache] min-free-bytes" >/dev/null || fail "room ok: $(head -50 "$T/doc.json")"
printf '[cache]\nmin-free-bytes=1125899906842624\n' >>"$R/sqlenvfs.conf" # 1 PiB
doctor
assert_eq "$rc" "1" "exit status with less than min-free-bytes free"
finding warning space room "less than [cache] min-free-bytes (1.0 PiB)" >/dev/null ||
  fail "room warning: $(head -50 "$T/doc.json")"
cp "$T/conf.saved" "$R/sqlenvfs.conf"
pass "less free on production's filesystem than min-free-bytes: warning"

# ---- database over the size threshold ------------------------------------------
printf 'size-warn-bytes=100000\n' >>"$R/sqlenvfs.conf"
doctor
assert_eq "$rc" "1" "exit status over the size threshold"
finding warning size prod/app "over [doctor] size-warn-bytes" >/dev/null || fail "size warning"
finding warning size dev/app >/dev/null || fail "size warning for dev"
cp "$T/conf.saved" "$R/sqlenvfs.conf"
pass "database over size-warn-bytes: warning"

# ---- replica settings an archiver could not ship with ---------------------------
# No server is needed: doctor and list read the settings, never the network.
# Credentials absent from this environment are not a fault (the archiver's
# may hold them); a URL that is not s3:// and a credentials file that is not
# there are, and list says so instead of "the archiver is not running".
# Settings removed: a status file left by an earlier archiver is not shown.
# replica_case SETTINGS EXIT SEVERITY FOUND LIST: with [replica] SETTINGS
# (printf format) added to the saved settings, doctor exits EXIT with a
# SEVERITY replica finding saying FOUND, and list's line for app matches
# LIST (a grep pattern; "" for none checked)
replica_case() {
  cp "$T/conf.saved" "$R/sqlenvfs.conf"
  printf "[replica]\n$1" >>"$R/sqlenvfs.conf"
  doctor
  assert_eq "$rc" "$2" "exit status with [replica] $1"
  finding "$3" replica prod/app "$4" >/dev/null ||
    fail "[replica] $1: $(grep -A3 '"replica"' "$T/doc.json")"
  [ -z "$5" ] || "$SQLENVFS" list --root "$R" > "$T/list.out"
  [ -z "$5" ] || grep -q "^  app .*$5" "$T/list.out" ||
    fail "list with [replica] $1: $(cat "$T/list.out")"
}
# A URL that is not s3:// is a value every command refuses, naming its line
# (doctor says so as its error, exit 2).
cp "$T/conf.saved" "$R/sqlenvfs.conf"
printf '[replica]\nurl = htp://sqlenvfs-test/p\n' >>"$R/sqlenvfs.conf"
doctor
assert_eq "$rc" 2 "exit status with [replica] url = htp://"
grep -q "line $(wc -l < "$R/sqlenvfs.conf"): \[replica\] url: replica URL 'htp://sqlenvfs-test/p' does not start with s3://" \
  "$T/doc.json" || fail "doctor with [replica] url = htp://: $(cat "$T/doc.json")"
finding failure settings root "[replica] url: replica URL 'htp://sqlenvfs-test/p'" >/dev/null ||
  fail "doctor names the settings' error: $(cat "$T/doc.json")"
"$SQLENVFS" list --root "$R" > /dev/null 2> "$T/list.err" || fail "list: $(cat "$T/list.err")"
grep -q "warning: .*\[replica\] url: replica URL 'htp://sqlenvfs-test/p'" "$T/list.err" ||
  fail "list's warning: $(cat "$T/list.err")"
expect_fail "\[replica\] url: replica URL 'htp://sqlenvfs-test/p'" "$SQLENVFS" prune --root "$R"
replica_case 'url = s3://sqlenvfs-test/p\ncredentials-file = creds\n' 2 failure \
  "read credentials $R/creds" ""
# The archiver running here started before the replica was set: it ships
# nothing until it is started again, and doctor and list say that.
replica_case 'url = s3://sqlenvfs-test/p\n' 1 warning \
  "the running archiver (pid $ARCH) started before the replica was set, and ships nothing" \
  "off.*last shipment never: the running archiver (pid $ARCH) started before the replica was set"
printf '[replica]\nurl=s3://sqlenvfs-test/p\nstate=shipping\nerror=\npid=1\n\n[db app]\nbacklog=0\n' \
  > "$R/.sqlenvfs/replica-status"
cp "$T/conf.saved" "$R/sqlenvfs.conf"
"$SQLENVFS" list --root "$R" > "$T/list.out"
! grep -q "^replica" "$T/list.out" || fail "list shows a replica no longer configured: $(cat "$T/list.out")"
rm "$R/.sqlenvfs/replica-status"
pass "replica settings: a bad URL or credentials file fails, named; list says why nothing ships"

# ---- backups: stale, missing, damaged -------------------------------------------
B=$(ls -d "$R"/backups/prod/daily/2*)
redate_copy "$B" 20200101T000000Z
doctor
assert_eq "$rc" "1" "exit status with a stale backup"
finding warning backup prod/app "older than [doctor] backup-max-age-hours=26" >/dev/null || fail "stale backup"
printf 'backup-max-age-hours=1000000\n' >>"$R/sqlenvfs.conf"
doctor
assert_eq "$rc" "0" "a backup within a larger max age"
cp "$T/conf.saved" "$R/sqlenvfs.conf"
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(5000); b = f.read(1); f.seek(5000); f.write(bytes([b[0] ^ 0xff]))" "$R/backups/prod/daily/20200101T000000Z/app.db"
doctor
assert_eq "$rc" "2" "exit status with a damaged backup"
finding failure backup prod/app "20200101T000000Z is damaged" >/dev/null || fail "damaged backup"
finding warning backup prod/app "no valid backup" >/dev/null || fail "no valid backup left"
rm -rf "$R/backups/prod/daily/20200101T000000Z"
doctor
finding warning backup prod/app "there is no backup of app" >/dev/null || fail "missing backup"
"$SQLENVFS" backup --root "$R" >/dev/null
doctor
assert_eq "$rc" "0" "exit status after a new backup"
pass "stale backup: warning; damaged backup: failure, exit 2; none: warning"

# ---- a nearly full filesystem under the backups ---------------------------------
python3 - "$P" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS filler(x BLOB)")
con.executemany("INSERT INTO filler VALUES (?)", [(b"f" * 4000,) for _ in range(300)])
con.commit()
con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
con.close()
PY
mv "$R/backups" "$T/backups.real"
mkdir "$R/backups"
mount -t tmpfs -o size=512k tmpfs "$R/backups"
_mounts+=("$R/backups")
mkdir -p "$R/backups/prod/daily"
doctor
finding warning space backups "would not fit" >/dev/null || fail "space warning: $(cat "$T/doc.json" | head -50)"
umount "$R/backups"
rmdir "$R/backups"
mv "$T/backups.real" "$R/backups"
"$SQLENVFS" backup --root "$R" >/dev/null
doctor
assert_eq "$rc" "0" "exit status with the backups back on the big filesystem"
pass "backups on a 512 KiB tmpfs: the next backup ($(stat -c %s "$P") bytes) would not fit, warning"

# ---- production not in WAL mode -------------------------------------------------
stop_archiver   # the archiver keeps the database open: the mode cannot change under it
sqlite3 "$P" 'PRAGMA journal_mode=DELETE' >/dev/null
start_archiver
doctor
assert_eq "$rc" "2" "exit status with production not in WAL mode"
finding failure journal prod/app "production is in delete journal mode, not WAL" >/dev/null || fail "journal failure"
# Its integrity check would be a shared lock under which the application
# cannot commit, for as long as it reads: not run, said so.
finding warning integrity prod/app "quick_check not run: in delete journal mode" >/dev/null ||
  fail "integrity of production in rollback-journal mode: $(grep -o '"integrity[^}]*' "$T/doc.json")"
stop_archiver
sqlite3 "$P" 'PRAGMA journal_mode=WAL' >/dev/null
start_archiver
doctor
assert_eq "$rc" "0" "exit status with WAL back"
pass "production in rollback-journal mode: failure, exit 2"

# ---- wrong environment marker -----------------------------------------------------
sqlite3 "$D" "UPDATE _environment SET name = 'production'"
doctor
assert_eq "$rc" "2" "exit status with development marked production"
finding failure environment dev/app "marked 'production', not 'development'" >/dev/null || fail "marker failure"
sqlite3 "$D" "UPDATE _environment SET name = 'development'"
pass "development marked production: failure"

mv "$D" "$T/dev.saved"
doctor
assert_eq "$rc" "1" "exit status without a development database"
finding warning open dev/app "development database is missing" >/dev/null || fail "missing dev"
mv "$T/dev.saved" "$D"
pass "development database missing: warning"

# An empty production file (0 bytes, no WAL): a failure saying it holds no
# data and to restore it, never the advice to switch it to WAL mode and
# snapshot it (which would make nothing the newest recoverable state).
stop_archiver
mv "$P" "$T/prod.saved"
for f in -wal -shm; do [ ! -e "$P$f" ] || mv "$P$f" "$T/prod.saved$f"; done
: > "$P"
doctor
assert_eq "$rc" "2" "exit status with an empty production file"
finding failure open prod/app "the database file is empty (0 bytes)" >/dev/null ||
  fail "empty production: $(grep -o '"prod/app[^}]*' "$T/doc.json" | head -5)"
! grep -q "PRAGMA journal_mode=WAL" "$T/doc.json" || fail "an empty production is advised into WAL mode"
rm "$P"
mv "$T/prod.saved" "$P"
for f in -wal -shm; do [ ! -e "$T/prod.saved$f" ] || mv "$T/prod.saved$f" "$P$f"; done
start_archiver
pass "an empty production file: failure, restore it, no WAL-mode advice"

# ---- a damaged database; --full --------------------------------------------------
cp -a "$R" "$T/root2"
R2=$T/root2
doctor --full
finding ok integrity prod/app "^integrity_check found no problems" >/dev/null || fail "--full did not run integrity_check"
page=$(sqlite3 "$R2/data/prod/app.db" "SELECT rootpage FROM sqlite_schema WHERE name = 'raw_vessel_events'")
psize=$(sqlite3 "$R2/data/prod/app.db" 'PRAGMA page_size')
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(($page - 1) * $psize); f.write(b'\0' * $psize)" "$R2/data/prod/app.db"
before=$(sha256sum "$R2/data/prod/app.db")
rc=0
"$SQLENVFS" doctor --root "$R2" --json >"$T/doc.json" || rc=$?
assert_eq "$rc" "2" "exit status with a damaged production database"
finding failure integrity prod/app "quick_check found" >/dev/null || fail "integrity failure: $(finding failure integrity prod/app 2>&1)"
assert_eq "$(sha256sum "$R2/data/prod/app.db")" "$before" "damaged database after doctor"
pass "damaged production database (page $page): failure, exit 2, file unchanged"

# ---- committed frames of the WAL that fail their checksums ------------------------
# SQLite reads a WAL only up to the first frame whose checksum fails when it
# next recovers it: the commits after it are lost then, though the file
# still holds them. (A WAL left by a process that ended without closing.)
cp -a "$R" "$T/root3"
R3=$T/root3
python3 - "$R3/data/prod/app.db" "$T/w3" <<'PY'
import os, shutil, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA wal_autocheckpoint=0")
c.execute("CREATE TABLE IF NOT EXISTS walt(x)")
for i in range(20):
    c.execute("INSERT INTO walt VALUES (?)", (i,))
shutil.copy(sys.argv[1] + "-wal", sys.argv[2])
os._exit(0)
PY
rm -f "$R3/data/prod/app.db-shm"
cp "$T/w3" "$R3/data/prod/app.db-wal"
rc=0
"$SQLENVFS" doctor --root "$R3" --json >"$T/doc.json" || rc=$?
finding failure wal prod/app >/dev/null 2>&1 && fail "a sound WAL reported damaged: $(finding failure wal prod/app)"
psize=$(python3 -c 'import struct,sys; print(struct.unpack(">I", open(sys.argv[1],"rb").read()[8:12])[0])' "$T/w3")
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); o = 32 + 2 * (24 + $psize) + 24 + 100
f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 1]))" "$R3/data/prod/app.db-wal"
before=$(cat "$R3/data/prod/app.db" "$R3/data/prod/app.db-wal" | sha256sum)
rc=0
"$SQLENVFS" doctor --root "$R3" --json >"$T/doc.json" || rc=$?
assert_eq "$rc" "2" "exit status with committed WAL frames that fail their checksums"
finding failure wal prod/app "from frame 3 on fail their checksums" >/dev/null \
  || fail "WAL damage not found: $(grep -o '"check": "wal"[^}]*' "$T/doc.json")"
assert_eq "$(cat "$R3/data/prod/app.db" "$R3/data/prod/app.db-wal" | sha256sum)" "$before" \
  "production after doctor found its WAL damaged"
pass "committed WAL frames that fail their checksums: failure, exit 2, files unchanged"

# ---- a read-only root: healthy databases are no failure -------------------------------
# Without -wal/-shm (closed cleanly) a read-only connection to a WAL database
# must create the -shm, which a read-only filesystem refuses.
R5=$T/root5
mkdir -p "$R5"
"$SQLENVFS" init --root "$R5" --schema "$T/schema.sql" >/dev/null
"$SQLENVFS" backup --root "$R5" >/dev/null
for db in "$R5/data/prod/app.db" "$R5/data/dev/app.db"; do
  sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
  rm -f "$db-wal" "$db-shm"
done
if mount --bind "$R5" "$R5" 2>/dev/null; then
  _mounts+=("$R5")
  if mount -o remount,ro,bind "$R5" 2>/dev/null; then
    rc=0
    "$SQLENVFS" doctor --root "$R5" --json >"$T/doc.json" 2>"$T/doc.err" || rc=$?
    # info reads them too, as the file alone (their WAL is empty).
    "$SQLENVFS" info --root "$R5" --json > "$T/info.json" 2> "$T/info.err" ||
      fail "info on a read-only root: $(cat "$T/info.err")"
    python3 - "$T/info.json" <<'PY' || fail "info --json on a read-only root: $(cat "$T/info.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
dbs = doc["databases"] if isinstance(doc, dict) else doc
for d in dbs:
    for place in ("production", "development"):
        e = d[place]
        assert e.get("error") is None and e["journal_mode"] == "wal" and e["tables"], (place, e)
PY
    umount "$R5"
    [ "$rc" -ne 2 ] || fail "doctor on a read-only root with healthy databases exited 2: $(grep -B2 -A6 '"failure"' "$T/doc.json" | head -40)"
    for subject in prod/app dev/app; do
      finding ok integrity "$subject" "quick_check found no problems" >/dev/null || fail "integrity of $subject on a read-only root"
      finding ok open "$subject" "opened as immutable" >/dev/null || fail "open note of $subject on a read-only root"
    done
    finding ok journal prod/app "journal mode is WAL" >/dev/null || fail "journal of prod/app on a read-only root: $(finding failure journal prod/app)"
    pass "a read-only root: healthy databases are opened immutable and checked (doctor, info)"
  else
    umount "$R5"
    note "skipped the read-only root case (remount refused)"
  fi
else
  note "skipped the read-only root case (bind mount refused)"
fi

# ---- bad input -----------------------------------------------------------------------
expect_fail "unexpected argument" "$SQLENVFS" doctor --root "$R" extra
expect_fail "^sqlenvfs doctor: .*$T/missing.*no such directory" "$SQLENVFS" doctor --root "$T/missing"
rc=0; "$SQLENVFS" doctor --root "$T/missing" 2>/dev/null || rc=$?
assert_eq "$rc" "2" "doctor's exit status for a root that does not exist (a failure, not a warning)"
pass "bad input: one clear line"
# A settings file with an error is a failure the doctor names, and it
# checks the rest.
printf '[doctor]\nsize-warn-bytes=lots\n' >"$T/root2/sqlenvfs.conf"
rc=0; "$SQLENVFS" doctor --json --root "$T/root2" > "$T/doc.json" || rc=$?
assert_eq "$rc" "2" "doctor's exit status for a settings file with an error"
finding failure settings root "line 2: [doctor] size-warn-bytes=lots is not a whole number" \
  > /dev/null || fail "doctor on a settings file with an error: $(cat "$T/doc.json")"
finding ok environment prod/app > /dev/null || fail "doctor checked nothing else"
# --json for a monitor: JSON that says the doctor could not run, and why.
rc=0; "$SQLENVFS" doctor --json --root "$T/missing" > "$T/fail.json" 2>/dev/null || rc=$?
assert_eq "$rc" "2" "doctor --json's exit status for a root that does not exist"
python3 - "$T/fail.json" <<'PY' || fail "doctor --json on no root: $(cat "$T/fail.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "failure" and d["exit_status"] == 2 and "no such directory" in d["error"], d
PY
pass "doctor names a settings file's error and checks the rest; --json that cannot run says why"
