#!/usr/bin/env bash
# Production overwritten in place while the archiver runs (`cp other.db
# app.db` keeps the inode, so the file's identity does not show it). The
# archive must not go on with its chain on the new file's pages: the
# archiver records the file as replaced (a gap, then a new chain from a
# fresh snapshot), and every restore after it is either refused or exactly
# the database then in place. Before that, the checkpoints of an
# application (every mode, and SQLite's automatic one) change the file as
# SQLite does and must not be taken for such a write.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root
DB=$R/data/prod/app.db
make_root "$R" <(echo 'CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);')
q() { sqlite3 -cmd ".timeout 20000" "$@"; }
state() { q "$1" "SELECT count(*), sum(v LIKE 'copy-%'), sum(v LIKE 'later-%') FROM t"; }

"$SQLENVFS" archive --root "$R" > "$T/a.out" 2> "$T/a.err" &
apid=$!
track_pid "$apid"
wait_log "$T/a.err" 'archiver app: capturing'

# 1. An application's own checkpoints, between commits, in every mode; and
#    the automatic one (wal_autocheckpoint=10 pages).
q "$DB" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<2000)
         INSERT INTO t SELECT i, 'old-' || i || printf('%.200c', 'x') FROM n"
for mode in PASSIVE FULL RESTART TRUNCATE PASSIVE TRUNCATE; do
  q "$DB" "UPDATE t SET v = v || '.' WHERE k % 7 = 0" "PRAGMA wal_checkpoint($mode)" >/dev/null
  sleep 0.3
done
q "$DB" "PRAGMA wal_autocheckpoint=10" \
  "UPDATE t SET v = v || ':' WHERE k % 5 = 0" "UPDATE t SET v = v || ':' WHERE k % 3 = 0" \
  >/dev/null
# A writer at full speed whose checkpoints restart the WAL over and over.
python3 - "$DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=20)
c.execute("PRAGMA wal_autocheckpoint=5")
for i in range(3000):
    c.execute("UPDATE t SET v = v || '+' WHERE k = ?", (i % 2000 + 1,))
    if i % 40 == 0:
        c.execute("PRAGMA wal_checkpoint(%s)" % ("TRUNCATE", "RESTART", "PASSIVE")[i // 40 % 3])
PY
# What changes the file's ctime, not its bytes: its mode, a hard link.
chmod 600 "$DB"
ln "$DB" "$T/another-name.db"
rm "$T/another-name.db"
sleep 1.5
! grep -q 'written by something other than SQLite\|GAP' "$T/a.err" ||
  fail "an application's checkpoints, a chmod or a link were taken for another writer: $(cat "$T/a.err")"
pass "an application's checkpoints (passive, full, restart, truncate, automatic, at full speed), a chmod, a hard link: no gap"

# 2. Overwritten in place, with the WAL empty and nobody connected, as a
#    user would; then a commit on the new file.
q "$DB" "VACUUM INTO '$T/copy.db'"
q "$T/copy.db" "PRAGMA journal_mode=WAL; UPDATE t SET v = 'copy-' || k WHERE k % 2 = 0" >/dev/null
q "$DB" "UPDATE t SET v = 'later-' || k WHERE k % 3 = 0" "PRAGMA wal_checkpoint(TRUNCATE)" \
  >/dev/null
sleep 0.5
t_before=$(date -u +%FT%T.%NZ)
want_before=$(state "$DB")
sleep 0.2
ino=$(stat -c %i "$DB")
cp "$T/copy.db" "$DB"
assert_eq "$(stat -c %i "$DB")" "$ino" "the inode after cp"
wait_log "$T/a.err" 'written by something other than SQLite'
sleep 1.5
t_mid=$(date -u +%FT%T.%NZ)
want_mid=$(state "$DB")
q "$DB" "INSERT INTO t VALUES (100000, 'new')"
sleep 1.5
t_end=$(date -u +%FT%T.%NZ)
want_end=$(state "$DB")
kill -TERM "$apid"
wait "$apid" || fail "the archiver exited with $? on SIGTERM"
grep -Eq '^app: .*, 1 gaps?' "$T/a.out" || fail "the gap is not counted: $(cat "$T/a.out")"

n_ok=0
for pair in "$t_before|$want_before" "$t_mid|$want_mid" "$t_end|$want_end"; do
  t=${pair%%|*} want=${pair#*|}
  rm -f "$T/r.db"
  if "$SQLENVFS" restore --root "$R" --time "$t" --output "$T/r.db" > /dev/null 2> "$T/r.err"; then
    assert_eq "$(state "$T/r.db")" "$want" "production restored at $t"
    n_ok=$((n_ok + 1))
  else
    grep -q 'gap' "$T/r.err" || fail "restore at $t: $(cat "$T/r.err")"
  fi
done
[ "$n_ok" -ge 2 ] || fail "only $n_ok of 3 times restored"
pass "overwritten in place: a gap, then a new chain; each restore is the file then in place ($n_ok of 3 restored)"
