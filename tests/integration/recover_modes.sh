#!/usr/bin/env bash
# sqlenvfs recover under umask 000, from a database of mode 0600: the files
# it makes in its work directory while it runs (new.db, SQLite's files
# beside it, the sqlite3 shell's shell.err), and those a killed run leaves,
# are never more readable than the source, nor is the output.
source "$SRCDIR/tests/integration/lib.sh"
cd "$T"
umask 000

python3 - app.db <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("CREATE TABLE rows(id INTEGER PRIMARY KEY, payload BLOB)")
con.executemany("INSERT INTO rows(payload) VALUES (?)", [(bytes([i % 251]) * 200,) for i in range(200000)])
con.commit()
PY
chmod 0600 app.db

# Every file under DIR whose mode has a bit 0600 lacks, as "MODE PATH".
too_open() { # dir
  find "$1" -type f -perm /0177 -printf '%m %p\n'
}

# 1. The sqlite3 shell method: a stand-in shell looks at its working
# directory (the work directory) while recover waits for it, then fails,
# so that the salvage follows.
cat >shell.sh <<SH
#!/bin/sh
find . -type f -printf '%m %p\n' >"$T/seen-shell.txt"
exit 1
SH
chmod 0755 shell.sh
mkdir out1
"$SQLENVFS" recover app.db --output out1/rec.db --sqlite3 "$T/shell.sh" >/dev/null
grep -q ' ./new.db$' seen-shell.txt && grep -q ' ./shell.err$' seen-shell.txt ||
  fail "the stand-in shell did not see new.db and shell.err: $(cat seen-shell.txt)"
bad=$(awk '$1 !~ /^[0-7]?600$/' seen-shell.txt)
[ -z "$bad" ] || fail "files of the work directory more readable than the source (0600): $bad"
assert_eq "$(stat -c %a out1/rec.db)" 600 "mode of the output"
pass "under umask 000, new.db and shell.err are made 0600 as the source is"

# 2. The salvage, killed while it writes new.db: what it leaves is 0600.
mkdir out2
for i in 1 2 3; do
  "$SQLENVFS" recover app.db --output out2/rec.db --method salvage >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 2000); do
    [ -e "out2/.tmp-recover-$pid/new.db" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
  done
  [ -e "out2/.tmp-recover-$pid/new.db" ] || fail "run $i: new.db never seen"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  bad=$(too_open out2)
  [ -z "$bad" ] || fail "run $i: a killed recover left files more readable than the source: $bad"
  rm -rf "out2/.tmp-recover-$pid"
done
pass "under umask 000, a salvage killed while it writes leaves nothing more readable than 0600"
