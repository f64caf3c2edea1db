#!/usr/bin/env bash
# sqlenvfs recover: a sound database in rollback-journal mode whose writer
# died inside a transaction (a hot -journal beside it, and pages of the
# unfinished transaction in the file) is not reported damaged: the journal
# is played back in the private copy, as SQLite does on the next open, the
# report says so, the rows are those of the last commit, and the source and
# its -journal stay as they were.
source "$SRCDIR/tests/integration/lib.sh"
cd "$T"

python3 - app.db <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("PRAGMA journal_mode=DELETE")
con.execute("CREATE TABLE rows(id INTEGER PRIMARY KEY, payload BLOB)")
con.executemany("INSERT INTO rows(payload) VALUES (?)", [(bytes([i % 251]) * 100,) for i in range(5000)])
con.commit()
PY
sqlite3 app.db 'SELECT id, hex(payload) FROM rows ORDER BY id' >orig.txt
# The writer spills its changes into the file (a cache of one page) and
# dies before it commits (exit status 9).
python3 - app.db <<'PY' || [ $? -eq 9 ] || fail "the writer that dies mid-transaction failed"
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size=1")
con.execute("BEGIN")
con.execute("DELETE FROM rows")
con.executemany("INSERT INTO rows(payload) VALUES (?)", [(b"x" * 3000,) for _ in range(300)])
os._exit(9)
PY
[ "$(head -c 8 app.db-journal | od -An -tx1 | tr -d ' \n')" = d9d505f920a163d7 ] ||
  fail "no hot journal beside app.db: a poor test"
before=$(sha256sum app.db app.db-journal)

"$SQLENVFS" recover app.db --output rec.db >report.txt
grep -q "the source passed integrity_check: nothing looked damaged" report.txt ||
  fail "a sound database with a hot journal reported damaged: $(cat report.txt)"
grep -q "^note: the source's -journal held a transaction its writer never committed: it was rolled back" report.txt ||
  fail "the report does not say the journal was rolled back: $(cat report.txt)"
assert_eq "$(sqlite3 rec.db 'SELECT id, hex(payload) FROM rows ORDER BY id' | sha256sum)" \
  "$(sha256sum <orig.txt)" "rows of rec.db (those of the last commit)"
assert_eq "$(sha256sum app.db app.db-journal)" "$before" "the source and its -journal after recover"
pass "a hot journal is rolled back in the copy, not reported as a damaged schema"
