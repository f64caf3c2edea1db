#!/usr/bin/env bash
# A file open under prod/ pins one committed state of production: a read
# transaction, which keeps production's WAL from being reset for as long as
# the file stays open (a sqlite3 shell left open on MNT/prod/app.db, say).
# With [archive] max-wal-bytes set, the mount lets go of such a state once
# the WAL has grown past the limit, so that checkpoints reset it and it stops
# growing: reads of the file left open fail with EIO (never bytes of another
# state), the log says why, and opening the file again shows the current
# state. Without the limit it does so, for files under prod/ and dev/, once
# the WAL's growth leaves less than [cache] min-free-bytes free on
# production's filesystem.
source "$SRCDIR/tests/integration/lib.sh"

# hold_open FILE...: a reader opens each FILE, reads its header and keeps it
# open until $T/done appears; then it reads a page of each and prints, one
# line per file, "read ok" or "errno N" to $T/reader.out (pid in $reader).
hold_open() {
  rm -f "$T/opened" "$T/done"
  python3 - "$T/opened" "$T/done" "$@" > "$T/reader.out" <<'PY' &
import os, sys, time
fds = [os.open(p, os.O_RDONLY) for p in sys.argv[3:]]
heads = [os.pread(fd, 100, 0) for fd in fds]
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
for fd in fds:
    try:
        os.pread(fd, 4096, 4096)
        print("read ok")
    except OSError as e:
        print("errno %d" % e.errno)
PY
  reader=$!
  track_pid "$reader"
  for _ in $(seq 100); do [ -e "$T/opened" ] && break; sleep 0.1; done
  [ -e "$T/opened" ] || fail "the reader did not open $*"
}

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
hold_open "$M/prod/app.db"

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
# Production and development on a 48 MiB filesystem keeping 32 MiB free, the
# archive on a filesystem of its own; no max-wal-bytes. A file held open under
# prod/ and one under dev/, then 11000 commits to each database, each
# rewriting one 1 KiB row of 100 (a 4 KiB page each: about 44 MiB of WAL each
# if it is never reset, more than the filesystem has).
R=$T/root2 M=$T/mnt2
tmpfs_root "$R" 48m 32M 0
mkdir -p "$R/backups"
mount -t tmpfs -o size=256m sqlenvfs-test "$R/backups" || fail "cannot mount a tmpfs"
_mounts+=("$R/backups")
DB=$R/data/prod/app.db DEV=$R/data/dev/app.db
for f in "$DB" "$DEV"; do
  sqlite3 "$f" "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, v BLOB);
    WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 100)
    INSERT INTO t SELECT i, 0, randomblob(1024) FROM k"
done
mount_root "$R" "$M"
wait_archiving "$M"
hold_open "$M/prod/app.db" "$M/dev/app.db"
# The WALs' sizes are read before the writer closes (its close removes
# development's WAL).
read -r wal dwal < <(python3 - "$DB" "$DEV" <<'PY'
import os, sqlite3, sys, time
cons = [sqlite3.connect(p, isolation_level=None, timeout=30) for p in sys.argv[1:3]]
for i in range(1, 11001):
    for con in cons:
        con.execute("UPDATE t SET n = ?, v = ? WHERE id = ?", (i, os.urandom(1024), i % 100 + 1))
    if i % 50 == 49:
        time.sleep(0.05)
print(*(os.stat(p + "-wal").st_size for p in sys.argv[1:3]))
PY
) || true
[ -n "$dwal" ] || fail "the writer failed (above): the WALs filled the filesystem"
avail=$(df -B1 --output=avail "$R" | tail -1)
note "WALs: $wal (prod), $dwal (dev) bytes after 11000 commits each with both files held open; $avail bytes free"
for env in prod dev; do
  grep -q "/$env/app.db: an open file kept .* WAL from being reset.*less than \[cache\] min-free-bytes (32.0 MiB)" \
    "$R/.sqlenvfs/mount.log" || fail "the log does not say the $env state was let go for production's room"
done
[ $((wal + dwal)) -lt $((30 * 1024 * 1024)) ] || fail "the WALs grew to $wal and $dwal bytes while held open"
touch "$T/done"
wait "$reader" || true
assert_eq "$(cat "$T/reader.out" | tr '\n' ' ')" "errno 5 errno 5 " \
  "reads of the files left open after their states were let go"
for env in prod dev; do
  assert_eq "$(sqlite3 "file:$M/$env/app.db?immutable=1" 'SELECT count(*), max(n) FROM t')" "100|11000" \
    "rows seen through $env/app.db opened again"
done
pass "without max-wal-bytes, files held open under prod/ and dev/ do not grow the WALs into min-free-bytes"

unmount_root "$M"
