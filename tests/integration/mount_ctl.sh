#!/usr/bin/env bash
# ctl files as a shell uses them: `echo 1 > ctl/backup` returns when the
# backup is done and it shows under backups/, `cat ctl/<op>` reports it, a
# refused refresh-dev fails with "Operation not permitted", a corrupt backup
# makes verify fail with EIO, operations run one at a time, snapshots open in
# place, and an unmount while an operation runs leaves nothing partial.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" "$SRCDIR/schema.sql" --demo --demo-events 5000
P=$R/data/prod/app.db D=$R/data/dev/app.db
# Slow each copy down a little, so that the tests below can catch one running.
export SQLENVFS_TEST_STORE_DELAY_MS=200
mount_root "$R" "$M"
wait_archiving "$M"

ctl_fails() { # op text errno-text
  local err
  err=$(bash -c "echo '$2' > '$M/ctl/$1'" 2>&1) && fail "ctl/$1 <- '$2' succeeded"
  grep -q "$3" <<<"$err" || fail "ctl/$1 <- '$2': expected '$3', got: $err"
}

# --- backup: the write returns when it is done; the entry is there and whole
echo 1 > "$M/ctl/backup"
n=$(ls "$M/backups" | wc -l)
assert_eq "$n" "1" "entries under backups/ after one backup"
ts=$(ls "$M/backups")
grep -Eq "^ok [0-9T:Z.-]+ backup: $ts app \(" "$M/ctl/backup" || fail "ctl/backup says: $(cat "$M/ctl/backup")"
assert_eq "$(ls "$M/backups/$ts")" "app.db" "backups/$ts/"
assert_eq "$(sqlite3 "$M/backups/$ts/app.db" 'SELECT count(*) FROM raw_vessel_events')" "5000" \
  "sqlite3 in place on the backup"
pass "echo 1 > ctl/backup adds a backup and cat ctl/backup reports it"

# --- snapshot of one database: opens in place (sqlite3, Python mode=ro) and
# --- copies to the same database as production
# (The archiver takes snapshots of its own when a recoverable window starts.)
n_snap=$(ls "$M/snapshots" | wc -l)
echo app > "$M/ctl/snapshot"
ss=$(sed -n 's/^ok [^ ]* snapshot: \([0-9T.Z]*\) app .*/\1/p' "$M/ctl/snapshot")
[ -n "$ss" ] || fail "ctl/snapshot says: $(cat "$M/ctl/snapshot")"
assert_eq "$(ls "$M/snapshots" | wc -l)" "$((n_snap + 1))" "entries under snapshots/"
[ -d "$M/snapshots/$ss" ] || fail "snapshots/$ss is missing"
assert_eq "$(sqlite3 "$M/snapshots/$ss/app.db" 'SELECT count(*) FROM raw_vessel_events')" "5000" \
  "sqlite3 in place on the snapshot"
assert_eq "$(python3 -c "
import sqlite3
c = sqlite3.connect('file:$M/snapshots/$ss/app.db?mode=ro', uri=True)
print(c.execute('SELECT count(*) FROM raw_vessel_events').fetchone()[0])")" "5000" "Python on the snapshot"
cp "$M/snapshots/$ss/app.db" "$T/snap.db"
assert_eq "$(sqlite3 "$T/snap.db" .dump | sha256sum)" "$(sqlite3 "$P" .dump | sha256sum)" "dump of the snapshot"
assert_eq "$(od -A n -t u1 -j 18 -N 2 "$T/snap.db" | tr -s ' ')" " 1 1" "snapshot header bytes 18-19"
[ "$(stat -c %s "$M/snapshots/$ss/app.db")" -eq "$(stat -c %s "$R/backups/prod/snapshots/$ss/app.db")" ] \
  || fail "snapshot size through the mount differs from the file"
pass "a snapshot opens in place and copies whole"

# --- refresh-dev refused when production is not marked production
sqlite3 "$P" "UPDATE _environment SET name = 'staging'"
before=$(sqlite3 "$D" .dump | sha256sum)
ctl_fails refresh-dev 1 "Operation not permitted"
grep -q "^failed .* refresh-dev: .*staging" "$M/ctl/refresh-dev" \
  || fail "ctl/refresh-dev after a refusal: $(cat "$M/ctl/refresh-dev")"
# ctl/ has no --force: the refusal says how the command line does it.
grep -q "run \`sqlenvfs refresh-dev --force\`" "$M/ctl/refresh-dev" \
  || fail "ctl/refresh-dev's refusal points at a --force it has no form for: $(cat "$M/ctl/refresh-dev")"
assert_eq "$(sqlite3 "$D" .dump | sha256sum)" "$before" "development after a refused refresh-dev"
sqlite3 "$P" "UPDATE _environment SET name = 'production'"
sqlite3 "$P" "INSERT INTO vessel_characteristics (mmsi, vessel_name, vessel_type) VALUES (999000111, 'NEW ONE', 'Tug')"
echo 1 > "$M/ctl/refresh-dev"
assert_eq "$(sqlite3 "$D" "SELECT vessel_name FROM vessel_characteristics WHERE mmsi = 999000111")" "NEW ONE" \
  "development after refresh-dev"
assert_eq "$(sqlite3 "$D" "SELECT count(*), name FROM _environment")" "1|development" "development marker"
assert_eq "$(sqlite3 "$M/dev/app.db" "SELECT vessel_name FROM vessel_characteristics WHERE mmsi = 999000111")" \
  "NEW ONE" "dev/ image after refresh-dev"
pass "refresh-dev: refused with EPERM when production is not marked, done otherwise"

# --- verify: good, then EIO once a backup is damaged
echo 1 > "$M/ctl/verify"
grep -q "^ok " "$M/ctl/verify" || fail "ctl/verify: $(cat "$M/ctl/verify")"
printf 'garbage' | dd of="$R/backups/prod/daily/$ts/app.db" bs=1 seek=8192 conv=notrunc status=none
ctl_fails verify 1 "Input/output error"
grep -q "^failed .* verify: .*$ts" "$M/ctl/verify" || fail "ctl/verify after damage: $(cat "$M/ctl/verify")"
pass "ctl/verify fails with EIO and names the damaged backup"

# --- prune: a dry run lists, removes nothing
echo dry-run > "$M/ctl/prune"
grep -q "^ok .* prune: " "$M/ctl/prune" || fail "ctl/prune: $(cat "$M/ctl/prune")"
assert_eq "$(ls "$M/backups" | wc -l)" "1" "backups after a dry-run prune"
pass "ctl/prune dry-run"

# --- two writers at once: both succeed, one after the other
echo 1 > "$M/ctl/backup" & w1=$!
echo 1 > "$M/ctl/snapshot" & w2=$!
wait $w1 || fail "the first of two concurrent ctl writes failed"
wait $w2 || fail "the second of two concurrent ctl writes failed"
python3 - "$M/status" <<'PY' || fail "concurrent operations overlapped: $(cat "$M/status")"
import json, sys
from datetime import datetime
ops = json.load(open(sys.argv[1]))["operations"]
b, s = ops["backup"]["last"], ops["snapshot"]["last"]
assert b["ok"] and s["ok"], (b, s)
# Compared as times: the text drops trailing zeros of the fraction.
t = lambda x: datetime.fromisoformat(x)
assert t(b["finished"]) <= t(s["started"]) or t(s["finished"]) <= t(b["started"]), (b, s)
assert ops["verify"]["last"]["ok"] is False and ops["verify"]["last"]["errno"] == "EIO", ops["verify"]
PY
assert_eq "$(ls "$M/backups" | wc -l)" "2" "backups after the concurrent run"
assert_eq "$(ls "$M/snapshots" | wc -l)" "$((n_snap + 2))" "snapshots after the concurrent run"
pass "operations run one at a time; a second writer waits its turn"

# --- unmount while an operation runs: the mount goes away at once, the
# --- operation finishes or leaves nothing, the next mount starts clean
pid=$(tr -d '\n' < "$R/.sqlenvfs/mount.lock")
SQLENVFS_TEST_STORE_DELAY_MS=1000
( echo 1 > "$M/ctl/backup" ) 2> "$T/late.err" & w=$!
for i in $(seq 1 100); do
  ls -a "$R/backups/prod/daily" | grep -q '^\.tmp-' && break
  sleep 0.05
done
ls -a "$R/backups/prod/daily" | grep -q '^\.tmp-' || fail "the backup did not start"
fusermount3 -u -z "$M"
mountpoint -q "$M" && fail "the mount is still there after the unmount"
wait $w || note "the interrupted backup's writer got: $(cat "$T/late.err")"
for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "the daemon did not exit after the unmount"
ls -a "$R/backups/prod/daily" | grep -q '^\.tmp-' && fail "a partial backup was left: $(ls -a "$R/backups/prod/daily")"
for d in "$R"/backups/prod/daily/*/; do
  [ -f "$d/MANIFEST" ] || fail "backup $d has no MANIFEST"
  [ "$(basename "$d")" = "$ts" ] && continue # damaged on purpose above
  assert_eq "$(sqlite3 "$d/app.db" 'PRAGMA integrity_check')" "ok" "integrity of $d"
done
mount_root "$R" "$M"
python3 -m json.tool "$M/status" > /dev/null || fail "status after the remount"
grep -q "never run" "$M/ctl/backup" || fail "ctl/backup after the remount: $(cat "$M/ctl/backup")"
unset SQLENVFS_TEST_STORE_DELAY_MS
unmount_root "$M"
pass "unmount during an operation leaves nothing partial; the next mount starts clean"
