#!/usr/bin/env bash
# A production database in rollback-journal mode (not WAL) is listed under
# prod/ but not served: a consistent image of it is a shared lock, under
# which the application cannot commit, held for as long as the file is
# open. Its open fails with EPERM and the log says why; the application's
# commits go through while a reader tries; a WAL database beside it is
# served as before.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
mkdir -p "$R"
cp "$SRCDIR/schema.sql" "$R/schema.sql"
"$SQLENVFS" init --root "$R" > /dev/null
LEGACY=$R/data/prod/legacy.db
sqlite3 "$LEGACY" "PRAGMA journal_mode=DELETE; CREATE TABLE x(a); INSERT INTO x VALUES (1);" \
  > /dev/null
mount_root "$R" "$M"

# try_open FILE: a reader opens FILE (of the mount) and holds it open for
# 5 s, if it can, in the background ($reader); "opened" or "errno N" goes to
# $T/reader.out, and this returns once it has tried.
try_open() {
  rm -f "$T/tried"
  python3 - "$1" "$T/tried" > "$T/reader.out" <<'PY' &
import os, sys, time
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    os.pread(fd, 100, 0)
    print("opened")
except OSError as e:
    print("errno %d" % e.errno)
open(sys.argv[2], "w").close()
time.sleep(5)
PY
  reader=$!
  track_pid "$reader"
  for _ in $(seq 100); do [ -e "$T/tried" ] && break; sleep 0.1; done
  [ -e "$T/tried" ] || fail "the reader did not try to open $1"
}

[ -e "$M/prod/legacy.db" ] || fail "prod/legacy.db is not listed"
try_open "$M/prod/legacy.db"
# The application commits, with a busy timeout of 2 s, while the reader waits.
python3 - "$LEGACY" <<'PY' || fail "no commit while a reader held prod/legacy.db"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=2)
con.execute("INSERT INTO x VALUES (2)")
con.commit()
PY
wait "$reader" || true
assert_eq "$(cat "$T/reader.out")" "errno 1" "opening prod/legacy.db (rollback-journal mode)"
grep -q "legacy.db is not in WAL mode (journal_mode=delete).*journal_mode=WAL" \
  "$R/.sqlenvfs/mount.log" || fail "the log does not say why prod/legacy.db is not served"
assert_eq "$(sqlite3 "$LEGACY" 'SELECT count(*) FROM x')" "2" "rows of legacy.db"
assert_eq "$(sqlite3 "file:$M/prod/app.db?immutable=1" 'SELECT name FROM _environment')" \
  "production" "the WAL database beside it, read through prod/"
pass "a production database not in WAL mode is not served, and its commits go through"

# The same for development: a developer's application switched development
# to rollback-journal mode; dev/app.db is not served, and its commits go
# through while a reader tries.
DEV=$R/data/dev/app.db
sqlite3 "$DEV" "PRAGMA journal_mode=DELETE" > /dev/null
try_open "$M/dev/app.db"
sqlite3 -cmd ".timeout 2000" "$DEV" "CREATE TABLE mine(x); INSERT INTO mine VALUES (1)" ||
  fail "no commit to development while a reader held dev/app.db"
wait "$reader" || true
assert_eq "$(cat "$T/reader.out")" "errno 1" "opening dev/app.db (rollback-journal mode)"
pass "a development database not in WAL mode is not served either, and its commits go through"

unmount_root "$M"
