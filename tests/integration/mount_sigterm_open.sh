#!/usr/bin/env bash
# The mount's daemon stopped by SIGTERM (as `systemctl stop` stops it) while
# files are open under pitr/, prod/ and backups/: it unmounts, closes each
# open file as a release would, and exits 0, leaving no temporary behind.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(echo "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);")
mkdir -p "$M"
("$SQLENVFS" mount "$R" "$M" -f > "$T/fg.out" 2>&1; echo "exit=$?" >> "$T/fg.out") &
_mounts+=("$M")
wait_mounted "$M"
wait_archiving "$M"
python3 -c "
import sqlite3
c = sqlite3.connect('$R/data/prod/app.db')
c.executemany('INSERT INTO t(v) VALUES (randomblob(3000))', [()] * 200)
c.commit()"
echo 1 > "$M/ctl/backup"
B=$(ls "$M/backups" | head -1)
python3 - "$M" "$B" "$T/held" <<'PY' &
import sys, time
m, b, flag = sys.argv[1:4]
files = [open(p, "rb") for p in (m + "/pitr/latest/app.db", m + "/prod/app.db",
                                  m + "/backups/" + b + "/app.db")]
for f in files:
    f.read(16384)
open(flag, "w").close()
time.sleep(8)
PY
READER=$!
track_pid "$READER"
for i in $(seq 1 100); do [ -e "$T/held" ] && break; sleep 0.1; done
[ -e "$T/held" ] || fail "the reader did not open its files"
pid=$(pgrep -f "sqlenvfs mount $R $M -f" | head -1)
[ -n "$pid" ] || fail "no daemon found"
kill -TERM "$pid"
for i in $(seq 1 100); do grep -q '^exit=' "$T/fg.out" && break; sleep 0.1; done
grep -q '^exit=0$' "$T/fg.out" || fail "the daemon stopped with open files: $(tail -5 "$T/fg.out")"
grep -q "unmounted" "$T/fg.out" || fail "no unmounted line: $(tail -5 "$T/fg.out")"
[ -z "$(ls -A "$R/.cache" 2>/dev/null | grep '^\.tmp')" ] || fail "a temporary left in .cache: $(ls -A "$R/.cache")"
kill "$READER" 2>/dev/null || true
pass "SIGTERM with files open under pitr/, prod/ and backups/: exit 0, no temporary left"
