#!/usr/bin/env bash
# prod/ images are consistent while the application writes: a reader copying
# prod/app.db over and over, while a writer commits numbered rows one
# transaction at a time, gets a database that passes integrity_check and
# holds exactly rows 1..k every time, with k never going back.
source "$SRCDIR/tests/integration/lib.sh"

R=$T/root M=$T/mnt
make_root "$R" <(printf 'CREATE TABLE seq (n INTEGER PRIMARY KEY, pad BLOB NOT NULL);\n')
mount_root "$R" "$M"

# The application: rows 1, 2, 3, ... each in its own transaction, with a
# page-sized payload so that the file grows and the WAL checkpoints.
python3 - "$R/data/prod/app.db" "$T/stop" > "$T/writer.out" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
n = 0
while not os.path.exists(sys.argv[2]):
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO seq (n, pad) VALUES (?, randomblob(3000))", (n,))
    db.execute("COMMIT")
    time.sleep(0.003)  # keep the database small however slow the reader is
print(n)
PY
writer=$!
track_pid "$writer"

last=0 seen=""
for i in $(seq 1 25); do
  cp "$M/prod/app.db" "$T/c.db"
  assert_eq "$(sqlite3 "$T/c.db" 'PRAGMA integrity_check')" "ok" "integrity of copy $i"
  read -r cnt lo hi < <(sqlite3 -separator ' ' "$T/c.db" 'SELECT count(*), coalesce(min(n),0), coalesce(max(n),0) FROM seq')
  [ "$cnt" -eq "$hi" ] && { [ "$cnt" -eq 0 ] || [ "$lo" -eq 1 ]; } \
    || fail "copy $i holds $cnt rows from $lo to $hi: not a prefix"
  [ "$cnt" -ge "$last" ] || fail "copy $i went back from $last to $cnt rows"
  last=$cnt
  seen="$seen $cnt"
  # The same through SQLite reading the mount in place.
  read -r cnt2 hi2 < <(sqlite3 -separator ' ' "$M/prod/app.db" 'SELECT count(*), coalesce(max(n),0) FROM seq')
  [ "$cnt2" -eq "$hi2" ] || fail "in-place read $i: $cnt2 rows up to $hi2"
done
touch "$T/stop"
wait "$writer"
total=$(cat "$T/writer.out")
note "copies saw:$seen; the writer committed $total rows"
[ "$(echo "$seen" | tr ' ' '\n' | sort -un | wc -l)" -ge 4 ] \
  || fail "the copies did not see the writer progress:$seen"
# After the writer stopped, the image shows every committed row.
cp "$M/prod/app.db" "$T/final.db"
assert_eq "$(sqlite3 "$T/final.db" 'SELECT count(*), max(n) FROM seq')" "$total|$total" "final copy"
assert_eq "$(sqlite3 "$R/data/prod/app.db" 'PRAGMA integrity_check')" "ok" "production integrity"
pass "every copy of prod/app.db is consistent while the application writes"
unmount_root "$M"
