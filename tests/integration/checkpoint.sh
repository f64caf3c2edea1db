#!/usr/bin/env bash
# `sqlenvfs checkpoint`: the command line's form of ctl/checkpoint. While an
# application holds the database open (so that no close checkpoints for it),
# it copies the WAL's frames into the database file and says how many (and,
# with no archiver running, that what was copied may now be lost to the
# archive); a database that does not exist is refused in one line.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
make_root "$R" <(echo "CREATE TABLE t (x);")
DB=$R/data/prod/app.db

"$SQLENVFS" checkpoint --help | grep -q "PASSIVE checkpoint" || fail "checkpoint --help"

# An application with automatic checkpoints off commits 50 rows, keeps its
# connection open while the command runs, and reads the WAL's size after.
out=$(python3 - "$SQLENVFS" "$R" "$DB" <<'PY'
import os, sqlite3, subprocess, sys
exe, root, db = sys.argv[1:4]
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA wal_autocheckpoint=0")
for i in range(50):
    con.execute("INSERT INTO t VALUES (?)", (i,))
frames = (os.path.getsize(db + "-wal") - 32) // (4096 + 24)
assert frames >= 50, frames
size_before = os.path.getsize(db)
r = subprocess.run([exe, "checkpoint", "--root", root], capture_output=True, text=True)
# No archiver runs: a note says what that means for what was copied.
assert r.returncode == 0 and r.stderr.startswith(
    "sqlenvfs checkpoint: note: no archiver is running: the next writer may restart the WAL"), r
assert r.stderr.count("\n") == 1, r
# Read the database file alone, as a copy without its WAL.
raw = open(db, "rb").read()
open(db + ".copy", "wb").write(raw)
n = sqlite3.connect(db + ".copy").execute("SELECT count(*) FROM t").fetchone()[0]
print(r.stdout.strip(), frames, n)
con.close()
PY
) || fail "checkpoint with an application holding the database: $out"
grep -Eq "^checkpointed app: ([0-9]+) of \1 WAL frames are in $DB [0-9]+ 50$" <<<"$out" \
  || fail "checkpoint output or result: $out"
pass "checkpoint copies every WAL frame into the database file and says so"

rc=0; "$SQLENVFS" checkpoint --root "$R" --db nosuch > "$T/out" 2> "$T/err" || rc=$?
assert_eq "$rc" "1" "exit status for a database that does not exist"
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "expected one error line: $(cat "$T/err")"
grep -q "nosuch.db does not exist" "$T/err" || fail "the error does not name the file: $(cat "$T/err")"
rc=0; "$SQLENVFS" checkpoint --root "$R" extra > /dev/null 2>&1 || rc=$?
assert_eq "$rc" "2" "exit status for an unexpected argument"
pass "checkpoint refuses a missing database and an unexpected argument"

# A read-only root: refused, saying that a checkpoint writes the database
# file and what to do, not SQLite's "attempt to write a readonly database".
sqlite3 "$DB" "INSERT INTO t VALUES (1)"
if mount --bind "$R" "$R" 2>/dev/null; then
  _mounts+=("$R")
  if mount -o remount,ro,bind "$R" 2>/dev/null; then
    rc=0; "$SQLENVFS" checkpoint --root "$R" > "$T/out" 2> "$T/err" || rc=$?
    umount "$R"
    assert_eq "$rc" "1" "exit status of a checkpoint on a read-only root"
    [ "$(wc -l < "$T/err")" -eq 1 ] || fail "expected one error line: $(cat "$T/err")"
    grep -q "cannot be written (Read-only file system): a checkpoint copies the WAL into the database file" \
      "$T/err" || fail "the error does not say why or what to do: $(cat "$T/err")"
    pass "checkpoint on a read-only root: refused, saying what to do"
  else
    umount "$R"
    note "read-only bind mounts are not possible here: case skipped"
  fi
else
  note "bind mounts are not possible here: case skipped"
fi
