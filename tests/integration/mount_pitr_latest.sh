#!/usr/bin/env bash
# pitr/latest in a root with several production databases, each written by
# its own application: every database's file under latest exists (cp and
# sqlite3 work every time, not only for the database whose window reaches
# furthest), and once the writers stop it is each database's newest state.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
mkdir -p "$R"
printf 'CREATE TABLE seq (n INTEGER PRIMARY KEY, t REAL NOT NULL);\n' > "$R/schema.sql"
for db in app billing logs; do
  "$SQLENVFS" init --root "$R" --db "$db" > /dev/null
done
mount_root "$R" "$M"
wait_archiving "$M"

# One writer per database, one row per transaction, at its own pace.
for db in app billing logs; do
  python3 - "$R/data/prod/$db.db" "$T/stop" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
n = 0
while not os.path.exists(sys.argv[2]):
    n += 1
    db.execute("INSERT INTO seq (n, t) VALUES (?, ?)", (n, time.time()))
    time.sleep(0.007)
PY
  track_pid $!
done

# The window appears once every archiver has noted its database alive.
for i in $(seq 1 100); do
  [ -L "$M/pitr/latest" ] && [ "$(ls "$M/pitr/latest/" 2>/dev/null | wc -l)" -eq 3 ] && break
  sleep 0.1
done

# While they write: every database under latest, every time.
for i in $(seq 1 20); do
  target=$(readlink "$M/pitr/latest") || fail "pitr/latest is no link"
  assert_eq "$(ls "$M/pitr/latest/" | tr '\n' ' ')" "app.db billing.db logs.db " "ls pitr/latest/ ($target)"
  for db in app billing logs; do
    rm -f "$T/copy.db"
    cp "$M/pitr/latest/$db.db" "$T/copy.db" || fail "cp pitr/latest/$db.db failed (round $i, latest -> $target)"
    assert_eq "$(sqlite3 "$T/copy.db" 'PRAGMA integrity_check')" "ok" "integrity of pitr/latest/$db.db"
  done
done
pass "every database's file under pitr/latest exists while they are written (20 rounds)"

# After the writers stop: latest reaches each database's last commit (the
# archiver notes its databases alive about twice a second).
touch "$T/stop"
wait
for db in app billing logs; do
  want=$(sqlite3 "$R/data/prod/$db.db" 'SELECT max(n) FROM seq')
  got=
  for i in $(seq 1 100); do
    got=$(sqlite3 "$M/pitr/latest/$db.db" 'SELECT max(n) FROM seq' 2>/dev/null) || got=
    [ "$got" = "$want" ] && break
    sleep 0.1
  done
  assert_eq "$got" "$want" "newest row of pitr/latest/$db.db"
done
pass "pitr/latest is the newest state of every database"
