#!/usr/bin/env bash
# Production once the application has stopped, with the archiver running
# (alone, or in the mount): as SQLite's last close would, the archiver puts
# the WAL into the database file and truncates it, so that the file alone
# holds every commit. A copy of it alone then has every row, and a compacted
# copy (VACUUM INTO) moved over it is not corrupted by old frames applied to
# its pages (it was, in 3 runs of 4). While an application is connected the
# WAL is left to it, as SQLite leaves it. Restores stay exact throughout.
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/pitr_lib.sh"

# wal_emptied DB: wait (up to 10 s) until DB's -wal is empty.
wal_emptied() {
  local i
  for i in $(seq 1 100); do
    [ ! -s "$1-wal" ] && return 0
    sleep 0.1
  done
  fail "the WAL of $1 still holds $(stat -c %s "$1-wal") bytes 10 s after the application stopped"
}

# stop_and_compact ROOT: the application writes and stops; its rows are all
# in the file alone, and a compacted copy moved over it is sound.
stop_and_compact() {
  local root=$1 P=$1/data/prod/app.db
  sqlite3 "$P" "CREATE TABLE o(k INTEGER PRIMARY KEY, v TEXT);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20000)
    INSERT INTO o SELECT i, printf('%.50c', 'a') FROM n; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
  sqlite3 -cmd '.timeout 5000' "$P" "DELETE FROM o WHERE k % 2 = 0"
  for i in 1 3 5; do sqlite3 -cmd '.timeout 5000' "$P" "UPDATE o SET v = 'u$i' WHERE k % 10 = $i"; done
  want=$(sqlite3 "$P" "SELECT count(*), sum(length(v)) FROM o")
  wal_emptied "$P"
  "$SQLENVFS" restore --root "$root" --time latest --output "$T/latest.db" --force >/dev/null 2>&1
  assert_eq "$(sqlite3 "$T/latest.db" "SELECT count(*), sum(length(v)) FROM o")" "$want" \
    "the restore of latest after the truncation"
  cp "$P" "$T/alone.db"
  assert_eq "$(sqlite3 "$T/alone.db" "SELECT count(*), sum(length(v)) FROM o")" "$want" \
    "a copy of the database file alone"
  sqlite3 "$P" "VACUUM INTO '$P.new'"
  mv "$P.new" "$P"
  sleep 1
  assert_eq "$(sqlite3 "$P" "SELECT count(*), sum(length(v)) FROM o")" "$want" \
    "production after a compacted copy was moved over it"
  assert_eq "$(sqlite3 "$P" "PRAGMA integrity_check")" "ok" "production's integrity_check"
}

R=$T/root
pitr_make_root "$R"
P=$R/data/prod/app.db
pitr_start_archiver "$R" "$T/a"
# Connected: the WAL stays, as SQLite leaves it for an open connection.
python3 - "$P" "$T/held-in" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("CREATE TABLE held(x)")
db.execute("INSERT INTO held VALUES (1)")
open(sys.argv[2], "w").close()
time.sleep(4)
PY
held=$!
for _ in $(seq 1 300); do [ -e "$T/held-in" ] && break; sleep 0.1; done
[ -e "$T/held-in" ] || fail "the connected application did not commit within 30 s"
sleep 2 # the archiver has looked at the commit (and must leave the WAL alone)
[ -s "$P-wal" ] || fail "the WAL was truncated while an application was connected"
wait "$held"
wal_emptied "$P"
pass "with an application connected the WAL is left; once it has gone, it is in the file"
sqlite3 "$P" "DROP TABLE held"
stop_and_compact "$R"
pitr_stop_archiver "$T/a"
pass "the archiver alone: after the application stopped, the file holds everything"

# Restarts after the WAL was emptied: the archive goes on where the file is
# as the archiver left it (each start after a quiet spell used to record a
# gap and take a snapshot), and records a gap where it is not.
R3=$T/root3
pitr_make_root "$R3"
P3=$R3/data/prod/app.db
pitr_start_archiver "$R3" "$T/c1"
sqlite3 "$P3" "CREATE TABLE r(x); INSERT INTO r VALUES (1)"
wal_emptied "$P3"
sleep 0.2
pitr_stop_archiver "$T/c1"
# A copy of the root as it is now (cp -a: another file of the same size and
# time): a new chain, said as it is, not "the WAL was checkpointed and
# removed ... may be lost".
cp -a "$R3" "$T/copy3"
pitr_start_archiver "$T/copy3" "$T/cc"
pitr_stop_archiver "$T/cc"
grep -q "GAP: the database file was replaced (it is another file .*nothing is known to be lost" \
  "$T/cc.err" || fail "the copy's gap does not say what it is: $(cat "$T/cc.err")"
grep -q "may be lost" "$T/cc.err" && fail "the copy's gap says commits may be lost: $(cat "$T/cc.err")"
pitr_start_archiver "$R3" "$T/c2"
grep -q "GAP" "$T/c2.err" && fail "a restart after the WAL was emptied recorded a gap: $(cat "$T/c2.err")"
# Committed while the archiver is down, by a process still connected at its
# start (the commit stays in the WAL): archived, as after any outage.
pitr_stop_archiver "$T/c2"
python3 - "$P3" "$T/held" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("INSERT INTO r VALUES (2)")
open(sys.argv[2], "w").close()
time.sleep(3)
PY
held=$!
for _ in $(seq 1 50); do [ -e "$T/held" ] && break; sleep 0.1; done
pitr_start_archiver "$R3" "$T/c3"
wait "$held"
grep -q "GAP" "$T/c3.err" && fail "a restart with the WAL's new commits recorded a gap: $(cat "$T/c3.err")"
"$SQLENVFS" restore --root "$R3" --time latest --output "$T/r3.db" > /dev/null 2>&1 ||
  fail "restore latest after the restarts"
assert_eq "$(sqlite3 "$T/r3.db" "SELECT group_concat(x) FROM r")" "1,2" "latest after the restarts"
# Committed and checkpointed while it is down (the last close empties the
# WAL into the file): the file changed, so a gap, never a false chain.
wal_emptied "$P3"
pitr_stop_archiver "$T/c3"
sqlite3 "$P3" "INSERT INTO r VALUES (3)"
pitr_start_archiver "$R3" "$T/c4"
grep -q "GAP" "$T/c4.err" || fail "a restart after commits checkpointed meanwhile recorded no gap"
pitr_stop_archiver "$T/c4"
# The first window; the one after the outage of the commit made while the
# archiver was down (its time cannot be told apart); the one after the gap.
assert_eq "$("$SQLENVFS" list --root "$R3" --json | python3 -c 'import json,sys; print(len([w for w in json.load(sys.stdin)["windows"] if w["database"] == "app"]))')" \
  "3" "windows after the restarts: $("$SQLENVFS" list --root "$R3")"
pass "restarts go on from an emptied WAL while the file is as the archiver left it, and only then"

R2=$T/root2
pitr_make_root "$R2"
mount_root "$R2" "$T/mnt"
wait_archiving "$T/mnt"
stop_and_compact "$R2"
unmount_root "$T/mnt"
pass "under the mount: after the application stopped, the file holds everything"
