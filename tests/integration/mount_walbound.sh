#!/usr/bin/env bash
# A file open under prod/ pins one committed state of production: a read
# transaction, which keeps production's WAL from being reset for as long as
# the file stays open (a sqlite3 shell left open on MNT/prod/app.db, say).
# With [archive] max-wal-bytes set, the mount lets go of such a state once
# the WAL has grown past the limit, so that checkpoints reset it and it stops
# growing: reads of the file left open fail with EIO (never bytes of another
# state), the log says why, and opening the file again shows the current
# state.
source "$SRCDIR/tests/integration/lib.sh"

LIMIT=$((2 * 1024 * 1024))
R=$T/root M=$T/mnt
mkdir -p "$R"
cp "$SRCDIR/schema.sql" "$R/schema.sql"
printf '[archive]\nmax-wal-bytes=%s\n' "$LIMIT" > "$R/sqlenvfs.conf"
"$SQLENVFS" init --root "$R" > /dev/null
DB=$R/data/prod/app.db
sqlite3 "$DB" "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"
mount_root "$R" "$M"
wait_archiving "$M"

# A reader opens prod/app.db, reads its header, and keeps it open.
python3 - "$M/prod/app.db" "$T/opened" "$T/done" > "$T/reader.out" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
head = os.pread(fd, 100, 0)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
try:
    os.pread(fd, 4096, 4096)
    print("read ok")
except OSError as e:
    print("errno %d" % e.errno)
PY
reader=$!
track_pid "$reader"
for _ in $(seq 100); do [ -e "$T/opened" ] && break; sleep 0.1; done
[ -e "$T/opened" ] || fail "the reader did not open prod/app.db"

# 3000 commits of a 1 KiB row: about 12 MiB of WAL frames if it is never reset.
python3 - "$DB" <<'PY'
import os, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
for i in range(3000):
    con.execute("INSERT INTO t(v) VALUES (?)", (os.urandom(1024),))
    if i % 50 == 49:
        time.sleep(0.05)
PY
wal=$(stat -c %s "$DB-wal")
note "WAL: $wal bytes after 3000 commits with prod/app.db held open (limit $LIMIT)"
[ "$wal" -lt $((4 * LIMIT)) ] || fail "the WAL grew to $wal bytes while prod/app.db was held open"
grep -q "/prod/app.db: an open file kept production's WAL from being reset.*max-wal" \
  "$R/.sqlenvfs/mount.log" || fail "the log does not say why the state was let go"
touch "$T/done"
wait "$reader" || true
assert_eq "$(cat "$T/reader.out")" "errno 5" \
  "a read of the file left open after its state was let go"
assert_eq "$(sqlite3 "file:$M/prod/app.db?immutable=1" 'SELECT count(*) FROM t')" "3000" \
  "rows seen through prod/app.db opened again"
pass "a file held open under prod/ does not keep production's WAL past max-wal-bytes"

unmount_root "$M"

# ---- no max-wal-bytes: production's room is the bound ----------------------
# Production on a 48 MiB filesystem keeping 32 MiB free, its archive on a
# filesystem of its own; no max-wal-bytes. A file held open under prod/, then
# 11000 commits each rewriting one 1 KiB row of 100 (a 4 KiB page each: about
# 44 MiB of WAL if it is never reset, more than the filesystem has).
R=$T/root2 M=$T/mnt2
tmpfs_root "$R" 48m 32M 0
mkdir -p "$R/backups"
mount -t tmpfs -o size=256m sqlenvfs-test "$R/backups" || fail "cannot mount a tmpfs"
_mounts+=("$R/backups")
DB=$R/data/prod/app.db
sqlite3 "$DB" "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, v BLOB);
  WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 100)
  INSERT INTO t SELECT i, 0, randomblob(1024) FROM k"
mount_root "$R" "$M"
wait_archiving "$M"
rm -f "$T/opened" "$T/done"
python3 - "$M/prod/app.db" "$T/opened" "$T/done" > "$T/reader.out" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
head = os.pread(fd, 100, 0)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
try:
    os.pread(fd, 4096, 4096)
    print("read ok")
except OSError as e:
    print("errno %d" % e.errno)
PY
reader=$!
track_pid "$reader"
for _ in $(seq 100); do [ -e "$T/opened" ] && break; sleep 0.1; done
[ -e "$T/opened" ] || fail "the reader did not open prod/app.db"
python3 - "$DB" <<'PY'
import os, sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
for i in range(1, 11001):
    con.execute("UPDATE t SET n = ?, v = ? WHERE id = ?", (i, os.urandom(1024), i % 100 + 1))
    if i % 50 == 49:
        time.sleep(0.05)
PY
wal=$(stat -c %s "$DB-wal")
avail=$(df -B1 --output=avail "$R" | tail -1)
note "WAL: $wal bytes after 11000 commits with prod/app.db held open; $avail bytes free"
grep -q "/prod/app.db: an open file kept production's WAL from being reset.*less than \[cache\] min-free-bytes (32.0 MiB)" \
  "$R/.sqlenvfs/mount.log" || fail "the log does not say the state was let go for production's room"
[ "$wal" -lt $((28 * 1024 * 1024)) ] || fail "the WAL grew to $wal bytes while prod/app.db was held open"
touch "$T/done"
wait "$reader" || true
assert_eq "$(cat "$T/reader.out")" "errno 5" \
  "a read of the file left open after its state was let go"
assert_eq "$(sqlite3 "file:$M/prod/app.db?immutable=1" 'SELECT count(*), max(n) FROM t')" "100|11000" \
  "rows seen through prod/app.db opened again"
pass "without max-wal-bytes, a file held open under prod/ does not grow the WAL into min-free-bytes"

unmount_root "$M"
